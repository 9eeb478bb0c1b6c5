//! Index entries (`keys::Index`): for each value of an indexed attribute, one key that names
//! the resources holding that value, so a lookup by value reads one key whatever the tenant's
//! size.
//!
//! A **unique** index (`userName` always; `externalId` and group `displayName` when the config
//! key `uniqueness` asks for it) is claimed with a create-if-absent write, so uniqueness holds
//! under concurrent requests on every backend. A **shared** index (the default for
//! `externalId` and group `displayName`, RFC 7643 makes neither unique) holds every resource
//! with the value, at most [`MAX_HOLDERS`], changed with compare-and-swap on the entry.
//!
//! Both kinds store the same value: one `{id} {claimed at, ms}` line per holder. Entries
//! written when every index was unique hold one such line (or the id alone, before claims
//! carried their time) and read as an entry with one holder, so a tenant's existing data needs
//! no migration either way.

use crate::error::{ScimError, ScimResult};
use crate::keys::{self, Index, List};
use crate::store::{put_json, Condition, Store, StoreError, Version, Versioned};
use crate::{list, Env};

/// The most resources one value of a shared index may name: a lookup by a shared value reads
/// the entry and at most this many records (Entra's shared `mailNickname`s and group names
/// come in handfuls). One more gets 409 `uniqueness` saying so.
pub const MAX_HOLDERS: usize = 1000;

/// One resource an entry names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub id: String,
    /// When it claimed the value (ms since the epoch; 0 for entries older than claim times).
    pub since: u64,
}

/// An entry's stored value: a line per holder (see the module doc).
fn entry_value(holders: &[Holder]) -> String {
    let lines: Vec<String> = holders.iter().map(|h| format!("{} {}", h.id, h.since)).collect();
    lines.join("\n")
}

/// The holders of a stored entry, each once, in the order they claimed it.
pub fn parse_entry(value: &[u8]) -> Vec<Holder> {
    let text = String::from_utf8_lossy(value);
    let mut out: Vec<Holder> = Vec::new();
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        let h = match line.split_once(' ') {
            Some((id, ms)) => Holder { id: id.to_owned(), since: ms.parse().unwrap_or(0) },
            None => Holder { id: line.to_owned(), since: 0 },
        };
        if !out.iter().any(|x| x.id == h.id) {
            out.push(h);
        }
    }
    out
}

/// Whether `ix` is unique under the configuration.
pub fn is_unique(ix: Index, config: &crate::Config) -> bool {
    match ix {
        Index::UserName => true,
        Index::UserExternalId | Index::GroupExternalId => config.uniqueness.external_id,
        Index::GroupName => config.uniqueness.group_display_name,
    }
}

/// How old a claim must be before a claim of the same value may take it over from a record
/// that no longer has that value (a rename that failed between claiming and writing). Far
/// beyond any request's lifetime, so a rename still in progress is never overtaken.
const STALE_CLAIM_MS: u64 = 60_000;

/// The ids a value is indexed to (one at most in a unique index), in the order they claimed
/// it. Some may be leftovers of a request that failed half-way: callers read the records.
pub async fn lookup<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    ix: Index,
    value: &str,
) -> ScimResult<Vec<String>> {
    let key = keys::index(tenant, ix, value);
    Ok(env
        .store
        .get(&key)
        .await?
        .map(|v| parse_entry(&v.value).into_iter().map(|h| h.id).collect())
        .unwrap_or_default())
}

/// Claims `value` for `id` and returns the claim's stamp (its `since`). Claiming a value the
/// entry already names `id` for succeeds (retries are idempotent) and stamps it anew, later
/// than before: two requests moving one resource onto the same value at once (Entra retrying a
/// rename, a client racing itself) each hold a claim of their own, and a request undoing its
/// claim (see [`Change`]) removes only its own stamp, never the other's. In a unique index a
/// value held by another id is 409 uniqueness; in a shared one `id` joins the holders (409
/// only past [`MAX_HOLDERS`]).
///
/// Two kinds of leftovers of a request that failed half-way (a store outage between the claim
/// and its undo) are taken over (unique) or dropped (shared, when the entry is full), with
/// compare-and-swap on the entry's version:
/// - a holder whose record does not exist: creates write their record *before* claiming (see
///   [`register`]) and deletes remove the record before releasing, so nothing in progress
///   looks like that. Without the take-over that value would answer 409 for ever, and Entra,
///   whose create timed out, would retry into that 409 for ever too;
/// - a holder whose record no longer has the value, claimed more than [`STALE_CLAIM_MS`] ago:
///   a rename claims the new value before writing the record, so a younger such entry may be a
///   rename in progress and is respected.
///
/// A shared entry's leftovers change no answer (a lookup reads the records and the filter
/// decides), so they are only looked for when the entry is full.
///
/// A `userName` entry whose record is gone but which anchors a block (`crate::blocks`: the user
/// was removed by hand) is not taken over: the claim gets the block's refusal (403).
pub async fn claim<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    ix: Index,
    value: &str,
    id: &str,
) -> ScimResult<u64> {
    let key = keys::index(tenant, ix, value);
    let unique = is_unique(ix, env.config);
    let taken = || ScimError::uniqueness(format!("{} {value:?} is already in use in this tenant", label(ix)));
    let now = env.clock.now_millis();
    let mine = Holder { id: id.to_owned(), since: now };
    let attempts = if unique { CLAIM_ATTEMPTS } else { SHARED_ATTEMPTS };
    for attempt in 0..attempts {
        match env
            .store
            .put(&key, entry_value(std::slice::from_ref(&mine)).as_bytes(), Condition::Absent)
            .await
        {
            Ok(_) => return Ok(mine.since),
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
        // Released meanwhile: try again.
        let Some(held) = env.store.get(&key).await? else { continue };
        let mut holders = parse_entry(&held.value);
        if let Some(h) = holders.iter_mut().find(|h| h.id == id) {
            // Ours already: stamp it anew (see above), later than the stamp it had.
            h.since = now.max(h.since.saturating_add(1));
            let since = h.since;
            match env
                .store
                .put(&key, entry_value(&holders).as_bytes(), Condition::Version(held.version))
                .await
            {
                Ok(_) => return Ok(since),
                Err(StoreError::Conflict) => {
                    env.clock.pause(attempt).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if unique || holders.len() >= MAX_HOLDERS {
            let mut kept = Vec::with_capacity(holders.len());
            for h in holders {
                if !leftover(env, tenant, ix, value, &h, now).await? {
                    kept.push(h);
                }
            }
            holders = kept;
            if unique && !holders.is_empty() {
                return Err(taken());
            }
            if holders.len() >= MAX_HOLDERS {
                return Err(ScimError::uniqueness(format!(
                    "{} {value:?} is already shared by {MAX_HOLDERS} resources in this tenant, the most scim-edge allows",
                    label(ix)
                )));
            }
        }
        holders.push(mine.clone());
        match env.store.put(&key, entry_value(&holders).as_bytes(), Condition::Version(held.version)).await {
            Ok(_) => return Ok(mine.since),
            Err(StoreError::Conflict) => env.clock.pause(attempt).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Whether holder `h` of `value`'s entry is a leftover (see [`claim`]).
async fn leftover<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    ix: Index,
    value: &str,
    h: &Holder,
    now: u64,
) -> ScimResult<bool> {
    if !keys::valid_id(&h.id) {
        return Ok(true);
    }
    let Some(record) = env.store.get(&record_key(tenant, ix, &h.id)).await? else {
        // A user removed by hand keeps its userName entry as the anchor of its block
        // (`crate::blocks`): never taken over while the block stands.
        if ix == Index::UserName {
            if let Some(block) = crate::blocks::get(env, tenant, &h.id).await? {
                return Err(block.refusal());
            }
        }
        return Ok(true);
    };
    let still_has_it = record_value(ix, &record.value).is_none_or(|v| same(ix, &v, value));
    Ok(!still_has_it && now.saturating_sub(h.since) >= STALE_CLAIM_MS)
}

/// Rounds of compare-and-swap on a shared entry before a contended change gives up (409,
/// retry): every round one of the contenders wins, so this is the crowd it serves at once.
const SHARED_ATTEMPTS: u32 = 32;

/// Rounds of create-if-absent / take-over before a contended claim gives up (409, retry).
const CLAIM_ATTEMPTS: u32 = 4;

/// The value a stored record has for index `ix`; `None` if the record does not decode (then
/// it is treated as holding the value).
fn record_value(ix: Index, record: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(record).ok()?;
    let attr = match ix {
        Index::UserName => "userName",
        Index::UserExternalId | Index::GroupExternalId => "externalId",
        Index::GroupName => "displayName",
    };
    // A record without the attribute does not hold the value: "" maps to no entry of a value.
    Some(v.get("attributes")?.get(attr).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned())
}

/// The record an index entry of `ix` refers to.
fn record_key(tenant: &str, ix: Index, id: &str) -> String {
    match ix {
        Index::UserName | Index::UserExternalId => keys::user(tenant, id),
        Index::GroupName | Index::GroupExternalId => keys::group(tenant, id),
    }
}

/// Removes `id` from `value`'s entry (deleting the entry when it was the last holder).
pub async fn release<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    ix: Index,
    value: &str,
    id: &str,
) -> ScimResult<()> {
    release_claim(env, tenant, ix, value, id, None).await
}

/// [`release`], but only the claim with stamp `since` when one is given: a claim stamped anew
/// by another request since (see [`claim`]) is that request's, and stays.
async fn release_claim<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    ix: Index,
    value: &str,
    id: &str,
    since: Option<u64>,
) -> ScimResult<()> {
    let key = keys::index(tenant, ix, value);
    for attempt in 0..SHARED_ATTEMPTS {
        let Some(Versioned { value: held, version }) = env.store.get(&key).await? else { return Ok(()) };
        let mut holders = parse_entry(&held);
        let before = holders.len();
        holders.retain(|h| h.id != id || since.is_some_and(|s| s != h.since));
        if holders.len() == before {
            return Ok(());
        }
        let written = if holders.is_empty() {
            env.store.delete(&key, Condition::Version(version)).await
        } else {
            env.store
                .put(&key, entry_value(&holders).as_bytes(), Condition::Version(version))
                .await
                .map(|_| ())
        };
        match written {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict) => env.clock.pause(attempt).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Files a new resource, whose record was just written at `record_key`: claims its `entries`
/// ((index, value)), then pushes `id` onto `list`. The record comes first, then its entries,
/// then its list position: an entry never points at a record that is not written yet, so
/// [`claim`] may take over entries whose record is missing (leftovers of a request that failed
/// half-way) instead of answering 409 for ever. The id is 128 random bits: no other writer can
/// hold it, so the record needs no create-if-absent.
///
/// When a step fails, the entries and then the record are removed as far as the store lets
/// them be, and the error is returned. Whatever an outage leaves behind is harmless: an entry whose record is gone is
/// taken over by the next claim, and a record without entries or list position is found by
/// nothing (`consistency` reports both).
pub async fn register<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    record_key: &str,
    id: &str,
    entries: &[(Index, &str)],
    list: &List,
) -> ScimResult<()> {
    let filed = async {
        for &(ix, value) in entries {
            claim(env, tenant, ix, value, id).await?;
        }
        list::push(env, tenant, list, &[id.to_owned()]).await
    }
    .await;
    if let Err(e) = filed {
        for &(ix, value) in entries {
            let _ = release(env, tenant, ix, value, id).await;
        }
        let _ = env.store.delete(record_key, Condition::Any).await;
        return Err(e);
    }
    Ok(())
}

/// Whether two values are the same index entry (case-insensitive indexes fold case).
pub fn same(ix: Index, a: &str, b: &str) -> bool {
    keys::index("", ix, a) == keys::index("", ix, b)
}

fn label(ix: Index) -> &'static str {
    match ix {
        Index::UserName => "userName",
        Index::UserExternalId | Index::GroupExternalId => "externalId",
        Index::GroupName => "displayName",
    }
}

/// Writes `record` at `record_key` if it is still at version `ver`, moving its index entries
/// with it: for each of `moves` ((index, old value, new value)) the new value is claimed before
/// the write and the old one released after it; when the write fails, the new claims are
/// released. `Ok(false)`: the record changed meanwhile, and the caller retries.
pub async fn rewrite<S: Store, T: serde::Serialize>(
    env: &Env<'_, S>,
    tenant: &str,
    id: &str,
    moves: [(Index, Option<&str>, Option<&str>); 2],
    record_key: &str,
    record: &T,
    ver: Version,
) -> ScimResult<bool> {
    let mut changes = Vec::with_capacity(moves.len());
    for (ix, old, new) in moves {
        match begin_move(env, tenant, ix, old, new, id).await {
            Ok(c) => changes.push(c),
            Err(e) => {
                for c in changes {
                    c.abort(env, tenant, id).await;
                }
                return Err(e);
            }
        }
    }
    match put_json(env.store, record_key, record, Condition::Version(ver)).await {
        Ok(_) => {
            for c in changes {
                c.commit(env, tenant, id).await?;
            }
            Ok(true)
        }
        Err(e) => {
            for c in changes {
                c.abort(env, tenant, id).await;
            }
            match e {
                StoreError::Conflict => Ok(false),
                e => Err(e.into()),
            }
        }
    }
}

/// Moves an index entry from `old` to `new` for `id`: claims `new` now and returns the value
/// to release once the record that refers to it is written.
async fn begin_move<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    ix: Index,
    old: Option<&str>,
    new: Option<&str>,
    id: &str,
) -> ScimResult<Change> {
    match (old, new) {
        (Some(o), Some(n)) if same(ix, o, n) => Ok(Change::default()),
        (None, None) => Ok(Change::default()),
        _ => {
            // The old value's claim as it is before the record is written: the one to drop
            // after it. A request that claims the old value again meanwhile (a rename back)
            // stamps it anew, and that claim is not ours to drop.
            let released = match old {
                Some(o) => {
                    let entry = env.store.get(&keys::index(tenant, ix, o)).await?;
                    let mine = entry.and_then(|e| parse_entry(&e.value).into_iter().find(|h| h.id == id));
                    mine.map(|h| (o.to_owned(), h.since))
                }
                None => None,
            };
            let claimed = match new {
                Some(n) => Some((n.to_owned(), claim(env, tenant, ix, n, id).await?)),
                None => None,
            };
            Ok(Change { ix: Some(ix), claimed, released })
        }
    }
}

/// An index move in progress (see [`begin_move`]): the claims it made and will drop, each
/// with its stamp, so that it drops only those (see [`claim`]).
#[derive(Default)]
struct Change {
    ix: Option<Index>,
    claimed: Option<(String, u64)>,
    released: Option<(String, u64)>,
}

impl Change {
    /// The record was written: drop the old value's claim.
    async fn commit<S: Store>(self, env: &Env<'_, S>, tenant: &str, id: &str) -> ScimResult<()> {
        if let (Some(ix), Some((old, since))) = (self.ix, self.released) {
            release_claim(env, tenant, ix, &old, id, Some(since)).await?;
        }
        Ok(())
    }
    /// The record was not written: drop the new claim.
    async fn abort<S: Store>(self, env: &Env<'_, S>, tenant: &str, id: &str) {
        if let (Some(ix), Some((new, since))) = (self.ix, self.claimed) {
            let _ = release_claim(env, tenant, ix, &new, id, Some(since)).await;
        }
    }
}

/// Candidate ids for a filter from an equality in its top-level `and` chain on `id` or on an
/// indexed attribute (`indexed`: attribute name → index): every holder of the value (at most
/// [`MAX_HOLDERS`]), which the caller filters; or `None` when the filter needs a scan. Attributes may carry the resource's core schema URN (`core_urn`).
pub async fn candidates<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    f: &crate::scim::filter::Filter,
    core_urn: &str,
    indexed: &[(&str, Index)],
) -> ScimResult<Option<Vec<String>>> {
    for (path, value) in crate::scim::filter::required_equalities(f) {
        if path.sub.is_some() || path.urn.as_deref().is_some_and(|u| !u.eq_ignore_ascii_case(core_urn)) {
            continue;
        }
        let Some(v) = crate::users::comp_str(value) else { continue };
        if path.name.eq_ignore_ascii_case("id") {
            return Ok(Some(if keys::valid_id(&v) { vec![v] } else { vec![] }));
        }
        if let Some((_, ix)) = indexed.iter().find(|(name, _)| path.name.eq_ignore_ascii_case(name)) {
            return Ok(Some(lookup(env, tenant, *ix, &v).await?));
        }
    }
    Ok(None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::testing::{FixedClock, MemStore, SeqRandom};
    use crate::Config;
    use serde_json::json;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        crate::testing::scenario::block_on(f).expect("the future completes without I/O")
    }

    fn holders(store: &MemStore, value: &str) -> Vec<String> {
        store
            .raw(&keys::index("t", Index::UserName, value))
            .map_or_else(Vec::new, |v| parse_entry(&v).into_iter().map(|h| h.id).collect())
    }

    /// Two requests rename one user onto the same value at once (both read the record at the
    /// same version): the first claims the value, the second finds it claimed for the same id
    /// and writes the record; the first's write then fails and it undoes its claim. The value
    /// must stay indexed to the user, whose record now holds it. (Before claims were stamped,
    /// the undo removed the winner's entry: the contention test saw a user its own userName
    /// did not find.)
    #[test]
    fn an_undone_rename_keeps_a_concurrent_renames_claim() {
        let (store, clock, random, config) =
            (MemStore::new(), FixedClock::new(1_000_000), SeqRandom::new(1), Config::default());
        let env = Env { store: &store, clock: &clock, random: &random, config: &config };
        let (id, rec) = ("u1", keys::user("t", "u1"));
        block_on(async {
            let v1 = put_json(&store, &rec, &json!({"attributes": {"userName": "a"}}), Condition::Any)
                .await
                .unwrap();
            claim(&env, "t", Index::UserName, "a", id).await.unwrap();
            let first = begin_move(&env, "t", Index::UserName, Some("a"), Some("b"), id).await.unwrap();
            let second = begin_move(&env, "t", Index::UserName, Some("a"), Some("b"), id).await.unwrap();
            put_json(&store, &rec, &json!({"attributes": {"userName": "b"}}), Condition::Version(v1))
                .await
                .unwrap();
            second.commit(&env, "t", id).await.unwrap();
            // The first request's write fails on the version; it undoes its claim.
            assert!(put_json(
                &store,
                &rec,
                &json!({"attributes": {"userName": "b"}}),
                Condition::Version(v1)
            )
            .await
            .is_err());
            first.abort(&env, "t", id).await;
        });
        assert_eq!(holders(&store, "b"), vec![id.to_owned()], "the record says b: b stays indexed to it");
        assert!(holders(&store, "a").is_empty(), "a was released by the rename that wrote");
    }

    /// A rename a → b that wrote its record releases a only if nobody claimed a for the same
    /// resource meanwhile: a rename back b → a that already wrote keeps its claim of a.
    #[test]
    fn a_late_release_keeps_a_rename_backs_claim() {
        let (store, clock, random, config) =
            (MemStore::new(), FixedClock::new(1_000_000), SeqRandom::new(1), Config::default());
        let env = Env { store: &store, clock: &clock, random: &random, config: &config };
        let (id, rec) = ("u1", keys::user("t", "u1"));
        block_on(async {
            let v1 = put_json(&store, &rec, &json!({"attributes": {"userName": "a"}}), Condition::Any)
                .await
                .unwrap();
            claim(&env, "t", Index::UserName, "a", id).await.unwrap();
            let forth = begin_move(&env, "t", Index::UserName, Some("a"), Some("b"), id).await.unwrap();
            let v2 =
                put_json(&store, &rec, &json!({"attributes": {"userName": "b"}}), Condition::Version(v1))
                    .await
                    .unwrap();
            // Before the first rename releases a, a second one moves the user back to a.
            let back = begin_move(&env, "t", Index::UserName, Some("b"), Some("a"), id).await.unwrap();
            put_json(&store, &rec, &json!({"attributes": {"userName": "a"}}), Condition::Version(v2))
                .await
                .unwrap();
            back.commit(&env, "t", id).await.unwrap();
            forth.commit(&env, "t", id).await.unwrap();
        });
        assert_eq!(holders(&store, "a"), vec![id.to_owned()], "the record says a: a stays indexed to it");
        assert!(holders(&store, "b").is_empty());
    }
}
