//! Unique indexes (`keys::Index`): claiming a value for a resource id with a create-if-absent
//! write, so uniqueness holds under concurrent requests on every backend.

use crate::error::{ScimError, ScimResult};
use crate::keys::{self, Index, List};
use crate::store::{put_json, Condition, Store, StoreError, Version};
use crate::{list, Env};

/// An entry's stored value: the id, a space and when it was claimed (ms since the epoch).
/// Entries written before claims carried their time hold the id alone (time 0).
fn entry_value(id: &str, now_ms: u64) -> String {
    format!("{id} {now_ms}")
}

/// (id, claimed at) of a stored entry.
pub fn parse_entry(value: &[u8]) -> (String, u64) {
    let text = String::from_utf8_lossy(value);
    match text.split_once(' ') {
        Some((id, ms)) => (id.to_owned(), ms.parse().unwrap_or(0)),
        None => (text.into_owned(), 0),
    }
}

/// How old a claim must be before a claim of the same value may take it over from a record
/// that no longer has that value (a rename that failed between claiming and writing). Far
/// beyond any request's lifetime, so a rename still in progress is never overtaken.
const STALE_CLAIM_MS: u64 = 60_000;

/// The id a value is indexed to, if any.
pub async fn lookup<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    ix: Index,
    value: &str,
) -> ScimResult<Option<String>> {
    let key = keys::index(tenant, ix, value);
    Ok(env.store.get(&key).await?.map(|v| parse_entry(&v.value).0))
}

/// Claims `value` for `id`. Claiming a value already held by the same id succeeds (retries
/// are idempotent); held by another id → 409 uniqueness.
///
/// Two kinds of leftovers of a request that failed half-way (a store outage between the claim
/// and its undo) are taken over, with compare-and-swap on the entry's version:
/// - an entry held by an id whose record does not exist: creates write their record *before*
///   claiming (see [`register`]) and deletes remove the record before releasing, so nothing
///   in progress looks like that. Without the take-over that value would answer 409 for ever,
///   and Entra, whose create timed out, would retry into that 409 for ever too;
/// - an entry whose record no longer has the value, claimed more than [`STALE_CLAIM_MS`] ago:
///   a rename claims the new value before writing the record, so a younger such entry may be a
///   rename in progress and is respected.
///
/// A `userName` entry whose record is gone but which anchors a block (`crate::blocks`: the user
/// was removed by hand) is not taken over: the claim gets the block's refusal (403).
pub async fn claim<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    ix: Index,
    value: &str,
    id: &str,
) -> ScimResult<()> {
    let key = keys::index(tenant, ix, value);
    let taken = || ScimError::uniqueness(format!("{} {value:?} is already in use in this tenant", label(ix)));
    let now = env.clock.now_millis();
    let mine = entry_value(id, now);
    for _ in 0..CLAIM_ATTEMPTS {
        match env.store.put(&key, mine.as_bytes(), Condition::Absent).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
        // Released meanwhile: try again.
        let Some(held) = env.store.get(&key).await? else { continue };
        let (holder, since) = parse_entry(&held.value);
        if holder == id {
            return Ok(());
        }
        if keys::valid_id(&holder) {
            if let Some(record) = env.store.get(&record_key(tenant, ix, &holder)).await? {
                let still_has_it = record_value(ix, &record.value).is_none_or(|v| same(ix, &v, value));
                if still_has_it || now.saturating_sub(since) < STALE_CLAIM_MS {
                    return Err(taken());
                }
            } else if ix == Index::UserName {
                // A user removed by hand keeps its userName entry as the anchor of its block
                // (`crate::blocks`): never taken over while the block stands.
                if let Some(block) = crate::blocks::get(env, tenant, &holder).await? {
                    return Err(block.refusal());
                }
            }
        }
        match env.store.put(&key, mine.as_bytes(), Condition::Version(held.version)).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Rounds of create-if-absent / take-over before a contended claim gives up (409, retry).
const CLAIM_ATTEMPTS: usize = 4;

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

/// Releases `value` if it is still indexed to `id`.
pub async fn release<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    ix: Index,
    value: &str,
    id: &str,
) -> ScimResult<()> {
    let key = keys::index(tenant, ix, value);
    if let Some(v) = env.store.get(&key).await? {
        if parse_entry(&v.value).0 == id {
            match env.store.delete(&key, Condition::Version(v.version)).await {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
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
            if let Some(n) = new {
                claim(env, tenant, ix, n, id).await?;
            }
            Ok(Change { ix: Some(ix), claimed: new.map(str::to_owned), released: old.map(str::to_owned) })
        }
    }
}

/// An index move in progress (see [`begin_move`]).
#[derive(Default)]
struct Change {
    ix: Option<Index>,
    claimed: Option<String>,
    released: Option<String>,
}

impl Change {
    /// The record was written: drop the old entry.
    async fn commit<S: Store>(self, env: &Env<'_, S>, tenant: &str, id: &str) -> ScimResult<()> {
        if let (Some(ix), Some(old)) = (self.ix, self.released) {
            release(env, tenant, ix, &old, id).await?;
        }
        Ok(())
    }
    /// The record was not written: drop the new claim.
    async fn abort<S: Store>(self, env: &Env<'_, S>, tenant: &str, id: &str) {
        if let (Some(ix), Some(new)) = (self.ix, self.claimed) {
            let _ = release(env, tenant, ix, &new, id).await;
        }
    }
}

/// Candidate ids for a filter from an equality in its top-level `and` chain on `id` or on an
/// indexed attribute (`indexed`: attribute name → index), or `None` when the filter needs a
/// scan. Attributes may carry the resource's core schema URN (`core_urn`).
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
            return Ok(Some(lookup(env, tenant, *ix, &v).await?.into_iter().collect()));
        }
    }
    Ok(None)
}
