//! `scim-edge-fsck` on a real Spin store: the Entra lifecycle (both dialects) played through
//! the Spin component over Spin's SQLite table leaves a store the tool calls consistent
//! (tags, tombstones and `claim/` keys of the Spin adapter understood); damage made with SQL
//! behind the component's back is reported and turns the exit status to 1.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use scim_edge_core::keys::{self, Index};
use scim_edge_core::testing::scenario::{entra_lifecycle, tenant_for, Dialect, Target};
use scim_edge_host_tests::kv::SqliteKv;
use scim_edge_host_tests::{sha256_hex, SpinComponent, SpinHost, Variables};

const ADMIN: &str = "fsck-admin-token";

struct Db(PathBuf);

impl Drop for Db {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct Sqlite {
    host: SpinHost,
}

impl Target for Sqlite {
    async fn send(&mut self, req: http::Request<Bytes>) -> http::Response<Bytes> {
        match self.host.handle(req).await {
            Ok(res) => res,
            Err(e) => {
                let mut res = http::Response::new(Bytes::from(format!("host error: {e:#}")));
                *res.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                res
            }
        }
    }
    async fn stored(&mut self, key: &str) -> Option<Vec<u8>> {
        let raw = self.host.kv().get("default", key).ok()??;
        scim_edge_host_tests::spin_value::live(&raw).map(<[u8]>::to_vec)
    }
    fn admin_token(&self) -> String {
        ADMIN.to_owned()
    }
}

fn fsck(db: &Db) -> anyhow::Result<(i32, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_scim-edge-fsck")).arg("--sqlite").arg(&db.0).output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok((out.status.code().unwrap_or(-1), text))
}

#[tokio::test]
async fn fsck_passes_after_the_lifecycle_and_reports_damage() -> anyhow::Result<()> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
    let db = Db(std::env::temp_dir().join(format!("scim-edge-fsck-{}-{nanos}.db", std::process::id())));
    let kv = Arc::new(SqliteKv::open(&db.0)?);
    let variables = Variables::scim_edge()
        .with("admin_token_sha256", sha256_hex(ADMIN))
        .with("config", scim_edge_host_tests::NO_RATE_LIMIT);
    let mut target = Sqlite { host: SpinHost::new(SpinComponent::shared()?, kv, variables) };
    for dialect in [Dialect::Default, Dialect::AadOptScim062020] {
        entra_lifecycle(&mut target, dialect).await.map_err(|f| anyhow::anyhow!("{f}"))?;
    }

    let (code, text) = fsck(&db)?;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("consistent") && text.contains("0 problems"), "{text}");

    // A userName index entry pointing at a live user whose userName maps elsewhere (what a
    // rename interrupted by an outage can leave, until the claim ages out): an error, exit
    // status 1.
    let tenant = tenant_for(Dialect::Default);
    let conn = rusqlite::Connection::open(&db.0)?;
    let user_key: String = conn.query_row(
        "SELECT key FROM spin_key_value WHERE store = 'default' AND key LIKE ?1 AND hex(substr(value, 1, 1)) = '02' LIMIT 1",
        rusqlite::params![format!("v1/t/{tenant}/u/%")],
        |row| row.get(0),
    )?;
    let user_id = user_key.rsplit('/').next().unwrap_or_default().to_owned();
    let ghost = keys::index(tenant, Index::UserName, "ghost@example.com");
    let mut live = vec![0x01];
    live.extend_from_slice(user_id.as_bytes());
    conn.execute(
        "INSERT INTO spin_key_value (store, key, value) VALUES ('default', ?1, ?2)",
        rusqlite::params![ghost, live],
    )?;
    let (code, text) = fsck(&db)?;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&ghost) && text.contains("maps elsewhere") && text.contains("INCONSISTENT"),
        "{text}"
    );

    // A value the adapter never wrote (no tag byte).
    conn.execute(
        "UPDATE spin_key_value SET value = ?2 WHERE store = 'default' AND key = ?1",
        rusqlite::params![ghost, b"untagged".to_vec()],
    )?;
    let (code, text) = fsck(&db)?;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not written by the Spin adapter"), "{text}");

    // A claim whose key was never written (its creator died in between): garbage, since a
    // create of the key takes it over 30 s after one first finds it so (plugin/spin/src/store.rs).
    conn.execute(
        "DELETE FROM spin_key_value WHERE store = 'default' AND key = ?1",
        rusqlite::params![ghost],
    )?;
    conn.execute(
        "INSERT INTO spin_key_value (store, key, value) VALUES ('default', ?1, ?2)",
        rusqlite::params![format!("claim/{ghost}"), 1i64.to_le_bytes().to_vec()],
    )?;
    let (code, text) = fsck(&db)?;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("garbage: {ghost}: claimed for creation")) && text.contains("\nconsistent"),
        "{text}"
    );

    // An unreadable store is exit status 2.
    let out = Command::new(env!("CARGO_BIN_EXE_scim-edge-fsck"))
        .args(["--sqlite", "/nonexistent/x.db"])
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    Ok(())
}
