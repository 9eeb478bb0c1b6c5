//! Dense id lists kept in the store: O(1) add, O(1) remove (swap with the last id) and O(1)
//! access by position, so paging with `startIndex` costs the same at any depth and a member
//! change never loads the whole member list.
//!
//! Mutations of one list are serialised by a lease (`keys::List::lock_key`) taken with the
//! store's compare-and-swap; a holder that died is overtaken when its lease expires. Reads
//! take no lease: a page read during a mutation may miss or repeat one id, which SCIM paging
//! tolerates (RFC 7644 §3.4.2.4 does not promise snapshot consistency).

use serde::{Deserialize, Serialize};

use crate::error::{ScimError, ScimResult};
use crate::keys::{List, CHUNK};
use crate::store::{get_json, put_json, Condition, Store, StoreError, Version};
use crate::Env;

/// How long a lease protects a list; mutations take a few store round trips.
const LEASE_MS: u64 = 2_000;
/// How long, and how many times at most, a request waits for a lease held by another before
/// answering 503. Time is the real bound: long enough for a dead holder's lease to expire and
/// for a queue of live ones (waiters are not served in order: under a burst of creates on one
/// list, 4 s starved one request of 2,000 in the benchmark); the count bounds hosts whose clock
/// stands still (tests).
const LEASE_WAIT_MS: u64 = 10_000;
const LEASE_ATTEMPTS: u32 = 100_000;

#[derive(Serialize, Deserialize)]
struct Lease {
    holder: String,
    until: u64,
}

/// A held lease; release it with [`Held::release`] (it expires on its own otherwise).
struct Held {
    key: String,
    holder: String,
}

async fn acquire<S: Store>(env: &Env<'_, S>, tenant: &str, list: &List) -> ScimResult<Held> {
    let key = list.lock_key(tenant);
    let holder = crate::tenants::random_hex(env, 8)?;
    let started = env.clock.now_millis();
    for attempt in 0..LEASE_ATTEMPTS {
        let now = env.clock.now_millis();
        if now.saturating_sub(started) > LEASE_WAIT_MS {
            break;
        }
        let lease = Lease { holder: holder.clone(), until: now + LEASE_MS };
        let cond = match get_json::<S, Lease>(env.store, &key).await {
            Ok(None) => Condition::Absent,
            Ok(Some((l, v))) if l.until <= now || l.holder.is_empty() => Condition::Version(v),
            Ok(Some(_)) => {
                env.clock.pause(attempt);
                continue;
            }
            // A lease record we cannot read is overwritten.
            Err(e) if e.status == http::StatusCode::INTERNAL_SERVER_ERROR => Condition::Any,
            Err(e) => return Err(e),
        };
        match put_json(env.store, &key, &lease, cond).await {
            Ok(_) => return Ok(Held { key, holder }),
            Err(StoreError::Conflict) => {
                env.clock.pause(attempt);
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ScimError::new(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "too many concurrent changes to this list; retry (nothing was changed)",
    ))
}

impl Held {
    async fn release<S: Store>(self, env: &Env<'_, S>) -> ScimResult<()> {
        // Only release our own lease; an expired one may have been taken over.
        if let Some((l, v)) = get_json::<S, Lease>(env.store, &self.key).await? {
            if l.holder == self.holder {
                let free = Lease { holder: String::new(), until: 0 };
                match put_json(env.store, &self.key, &free, Condition::Version(v)).await {
                    Ok(_) | Err(StoreError::Conflict) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Chunk(Vec<String>);

async fn len_of<S: Store>(env: &Env<'_, S>, tenant: &str, list: &List) -> ScimResult<(u64, Option<Version>)> {
    Ok(match get_json::<S, u64>(env.store, &list.len_key(tenant)).await? {
        Some((n, v)) => (n, Some(v)),
        None => (0, None),
    })
}

async fn chunk<S: Store>(env: &Env<'_, S>, tenant: &str, list: &List, n: u64) -> ScimResult<Vec<String>> {
    Ok(get_json::<S, Chunk>(env.store, &list.chunk_key(tenant, n))
        .await?
        .map(|(c, _)| c.0)
        .unwrap_or_default())
}

/// Number of ids in the list.
pub async fn len<S: Store>(env: &Env<'_, S>, tenant: &str, list: &List) -> ScimResult<u64> {
    Ok(len_of(env, tenant, list).await?.0)
}

/// Up to `count` ids starting at 0-based position `start`.
pub async fn page<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    list: &List,
    start: u64,
    count: u64,
) -> ScimResult<Vec<String>> {
    let total = len(env, tenant, list).await?;
    let end = total.min(start.saturating_add(count));
    let mut out = Vec::new();
    let mut pos = start;
    while pos < end {
        let c = chunk(env, tenant, list, pos / CHUNK).await?;
        let from = (pos % CHUNK) as usize;
        let take = ((end - pos) as usize).min(CHUNK as usize - from);
        out.extend(c.into_iter().skip(from).take(take));
        pos = (pos / CHUNK + 1) * CHUNK;
    }
    Ok(out)
}

/// Adds ids (not already in the list: callers guarantee it with their own unique keys).
pub async fn push<S: Store>(env: &Env<'_, S>, tenant: &str, list: &List, ids: &[String]) -> ScimResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let held = acquire(env, tenant, list).await?;
    let result = push_locked(env, tenant, list, ids).await;
    // The change's own outcome decides; a lease that could not be released expires by
    // itself (reporting the change as failed would make the caller undo a change that held).
    let _ = held.release(env).await;
    result
}

async fn push_locked<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    list: &List,
    ids: &[String],
) -> ScimResult<()> {
    let (mut n, _) = len_of(env, tenant, list).await?;
    let mut current: Option<(u64, Vec<String>)> = None;
    for id in ids {
        let c = n / CHUNK;
        if current.as_ref().map(|(k, _)| *k) != Some(c) {
            if let Some((k, ids)) = current.take() {
                put_json(env.store, &list.chunk_key(tenant, k), &Chunk(ids), Condition::Any).await?;
            }
            current = Some((c, chunk(env, tenant, list, c).await?));
        }
        if let Some((_, ids)) = current.as_mut() {
            ids.truncate((n % CHUNK) as usize);
            ids.push(id.clone());
        }
        put_json(env.store, &list.pos_key(tenant, id), &n, Condition::Any).await?;
        n += 1;
    }
    if let Some((k, ids)) = current {
        put_json(env.store, &list.chunk_key(tenant, k), &Chunk(ids), Condition::Any).await?;
    }
    put_json(env.store, &list.len_key(tenant), &n, Condition::Any).await?;
    Ok(())
}

/// Removes ids; ids not in the list are skipped.
pub async fn remove<S: Store>(env: &Env<'_, S>, tenant: &str, list: &List, ids: &[String]) -> ScimResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let held = acquire(env, tenant, list).await?;
    let result = remove_locked(env, tenant, list, ids).await;
    // The change's own outcome decides; a lease that could not be released expires by
    // itself (reporting the change as failed would make the caller undo a change that held).
    let _ = held.release(env).await;
    result
}

async fn remove_locked<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    list: &List,
    ids: &[String],
) -> ScimResult<()> {
    let (mut n, _) = len_of(env, tenant, list).await?;
    for id in ids {
        let Some((pos, _)) = get_json::<S, u64>(env.store, &list.pos_key(tenant, id)).await? else {
            continue;
        };
        if n == 0 || pos >= n {
            env.store.delete(&list.pos_key(tenant, id), Condition::Any).await?;
            continue;
        }
        let last = n - 1;
        let mut last_chunk = chunk(env, tenant, list, last / CHUNK).await?;
        last_chunk.truncate((last % CHUNK + 1) as usize);
        let moved = last_chunk.pop();
        if pos == last {
            write_chunk(env, tenant, list, last / CHUNK, last_chunk).await?;
        } else if let Some(moved) = moved {
            // Fill the hole with the last id.
            if pos / CHUNK == last / CHUNK {
                if let Some(slot) = last_chunk.get_mut((pos % CHUNK) as usize) {
                    *slot = moved.clone();
                }
                write_chunk(env, tenant, list, last / CHUNK, last_chunk).await?;
            } else {
                let mut hole = chunk(env, tenant, list, pos / CHUNK).await?;
                if let Some(slot) = hole.get_mut((pos % CHUNK) as usize) {
                    *slot = moved.clone();
                }
                write_chunk(env, tenant, list, pos / CHUNK, hole).await?;
                write_chunk(env, tenant, list, last / CHUNK, last_chunk).await?;
            }
            put_json(env.store, &list.pos_key(tenant, &moved), &pos, Condition::Any).await?;
        }
        env.store.delete(&list.pos_key(tenant, id), Condition::Any).await?;
        n = last;
    }
    put_json(env.store, &list.len_key(tenant), &n, Condition::Any).await?;
    Ok(())
}

/// Writes a chunk; an emptied chunk is deleted so a shrunken list leaves nothing behind.
async fn write_chunk<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    list: &List,
    n: u64,
    ids: Vec<String>,
) -> ScimResult<()> {
    if ids.is_empty() {
        env.store.delete(&list.chunk_key(tenant, n), Condition::Any).await?;
    } else {
        put_json(env.store, &list.chunk_key(tenant, n), &Chunk(ids), Condition::Any).await?;
    }
    Ok(())
}

/// Every id of the list (for full scans and member listings).
pub async fn all<S: Store>(env: &Env<'_, S>, tenant: &str, list: &List) -> ScimResult<Vec<String>> {
    page(env, tenant, list, 0, u64::MAX).await
}

/// Deletes the whole list (its ids' positions, chunks and length).
pub async fn clear<S: Store>(env: &Env<'_, S>, tenant: &str, list: &List) -> ScimResult<()> {
    let held = acquire(env, tenant, list).await?;
    let result = async {
        let (n, _) = len_of(env, tenant, list).await?;
        for id in page(env, tenant, list, 0, n).await? {
            env.store.delete(&list.pos_key(tenant, &id), Condition::Any).await?;
        }
        for c in 0..n.div_ceil(CHUNK) {
            env.store.delete(&list.chunk_key(tenant, c), Condition::Any).await?;
        }
        env.store.delete(&list.len_key(tenant), Condition::Any).await?;
        Ok(())
    }
    .await;
    held.release(env).await?;
    env.store.delete(&list.lock_key(tenant), Condition::Any).await?;
    result
}

/// Adds `id` unless it is listed already; two reads when it is. Heals a create that failed
/// after writing its record and before listing it, or half-way through listing it (its next
/// update lists it). Returns whether it was added.
pub async fn ensure<S: Store>(env: &Env<'_, S>, tenant: &str, list: &List, id: &str) -> ScimResult<bool> {
    if listed(env, tenant, list, id, false).await? {
        return Ok(false);
    }
    let held = acquire(env, tenant, list).await?;
    let result = async {
        // Under the lease, and to the chunk: a concurrent ensure may have listed it meanwhile.
        if listed(env, tenant, list, id, true).await? {
            return Ok(false);
        }
        push_locked(env, tenant, list, std::slice::from_ref(&id.to_owned())).await.map(|()| true)
    }
    .await;
    let _ = held.release(env).await;
    result
}

/// Whether `id` has a position within the list's length (and, `thorough`, whether the chunk
/// holds it there): a push interrupted before its length was written leaves a position
/// beyond the end.
async fn listed<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    list: &List,
    id: &str,
    thorough: bool,
) -> ScimResult<bool> {
    let Some((pos, _)) = get_json::<S, u64>(env.store, &list.pos_key(tenant, id)).await? else {
        return Ok(false);
    };
    if pos >= len(env, tenant, list).await? {
        return Ok(false);
    }
    if !thorough {
        return Ok(true);
    }
    let c = chunk(env, tenant, list, pos / CHUNK).await?;
    Ok(c.get((pos % CHUNK) as usize).is_some_and(|x| x == id))
}

/// Whether `id` is in the list (one read).
pub async fn contains<S: Store>(env: &Env<'_, S>, tenant: &str, list: &List, id: &str) -> ScimResult<bool> {
    Ok(env.store.get(&list.pos_key(tenant, id)).await?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FixedClock, MemStore, SeqRandom};
    use crate::Config;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        crate::testing::scenario::block_on(f).expect("the future completes without I/O")
    }

    #[test]
    fn matches_a_swap_remove_model_across_chunks() {
        let (store, clock, random, config) =
            (MemStore::new(), FixedClock::default(), SeqRandom::new(1), Config::default());
        let env = Env { store: &store, clock: &clock, random: &random, config: &config };
        let l = List::Users;
        let mut model: Vec<String> = Vec::new();
        block_on(async {
            let ids: Vec<String> = (0..300).map(|i| format!("id{i:03}")).collect();
            push(&env, "t", &l, &ids[..10]).await.unwrap();
            push(&env, "t", &l, &ids[10..]).await.unwrap();
            model.extend(ids.iter().cloned());
            // First, last, cross-chunk, unknown, and a batch.
            for victim in ["id000", "id299", "id130", "nope", "id005"] {
                remove(&env, "t", &l, &[victim.to_owned()]).await.unwrap();
                if let Some(p) = model.iter().position(|x| x == victim) {
                    model.swap_remove(p);
                }
            }
            let batch: Vec<String> = (200..260).map(|i| format!("id{i:03}")).collect();
            remove(&env, "t", &l, &batch).await.unwrap();
            for v in &batch {
                if let Some(p) = model.iter().position(|x| x == v) {
                    model.swap_remove(p);
                }
            }
            assert_eq!(len(&env, "t", &l).await.unwrap(), model.len() as u64);
            assert_eq!(all(&env, "t", &l).await.unwrap(), model);
            assert_eq!(page(&env, "t", &l, 120, 20).await.unwrap(), model[120..140].to_vec());
            assert_eq!(page(&env, "t", &l, 230, 100).await.unwrap(), model[230..].to_vec());
            assert!(page(&env, "t", &l, 10_000, 5).await.unwrap().is_empty());
            for (i, id) in model.iter().enumerate() {
                let pos: u64 = serde_json::from_slice(&store.raw(&l.pos_key("t", id)).unwrap()).unwrap();
                assert_eq!(pos, i as u64, "{id}");
            }
            assert!(contains(&env, "t", &l, "id001").await.unwrap());
            assert!(!contains(&env, "t", &l, "id000").await.unwrap());
            clear(&env, "t", &l).await.unwrap();
            assert_eq!(len(&env, "t", &l).await.unwrap(), 0);
        });
        // Nothing of the list is left behind.
        assert!(store.dump().keys().all(|k| !k.contains("/list/users/")), "{:?}", store.dump().keys());
    }

    #[test]
    fn a_live_lease_blocks_and_an_expired_one_is_taken_over() {
        let (store, clock, random, config) =
            (MemStore::new(), FixedClock::default(), SeqRandom::new(1), Config::default());
        let env = Env { store: &store, clock: &clock, random: &random, config: &config };
        let l = List::Groups;
        block_on(async {
            let held = acquire(&env, "t", &l).await.unwrap();
            let e = push(&env, "t", &l, &["a".into()]).await.unwrap_err();
            assert_eq!(e.status, http::StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(len(&env, "t", &l).await.unwrap(), 0, "a refused change changes nothing");
            clock.advance(LEASE_MS + 1);
            push(&env, "t", &l, &["a".into()]).await.unwrap();
            assert_eq!(all(&env, "t", &l).await.unwrap(), vec!["a".to_owned()]);
            // The overtaken holder's release leaves the new holder's lease alone.
            held.release(&env).await.unwrap();
        });
    }

    #[test]
    fn store_outage_is_a_503_not_a_panic() {
        let (store, clock, random, config) =
            (MemStore::new(), FixedClock::default(), SeqRandom::new(1), Config::default());
        let env = Env { store: &store, clock: &clock, random: &random, config: &config };
        store.set_down(true);
        let e = block_on(push(&env, "t", &List::Users, &["a".into()])).unwrap_err();
        assert_eq!(e.status, http::StatusCode::SERVICE_UNAVAILABLE);
    }
}
