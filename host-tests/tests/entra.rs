//! The shared Entra ID lifecycle scenario (`scim_edge_core::testing::scenario`) replayed
//! against the real Spin component in the wasmtime host: on Spin's SQLite semantics (the
//! in-memory `MemKv`) and on its Redis semantics (`RedisKv`).

use scim_edge_core::testing::scenario::{entra_lifecycle, Dialect};
use std::sync::Arc;

use scim_edge_host_tests::kv::RedisKv;
use scim_edge_host_tests::{SpinComponent, SpinTarget};

async fn run(dialect: Dialect) -> anyhow::Result<()> {
    play(SpinTarget::new(SpinComponent::shared()?, "entra-admin-token"), dialect).await
}

async fn play(mut target: SpinTarget, dialect: Dialect) -> anyhow::Result<()> {
    match entra_lifecycle(&mut target, dialect).await {
        Ok(report) => {
            println!("{report}");
            Ok(())
        }
        Err(failure) => Err(anyhow::anyhow!("{failure}")),
    }
}

#[tokio::test]
async fn entra_lifecycle_default_dialect() -> anyhow::Result<()> {
    run(Dialect::Default).await
}

#[tokio::test]
async fn entra_lifecycle_aad_opt_scim_062020() -> anyhow::Result<()> {
    run(Dialect::AadOptScim062020).await
}

#[tokio::test]
async fn entra_lifecycle_on_spin_redis_semantics_both_dialects() -> anyhow::Result<()> {
    let kv = Arc::new(RedisKv::new());
    for dialect in [Dialect::Default, Dialect::AadOptScim062020] {
        play(SpinTarget::with_kv(SpinComponent::shared()?, "entra-admin-token", kv.clone()), dialect).await?;
    }
    Ok(())
}
