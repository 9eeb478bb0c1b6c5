//! Dense id lists kept in the store: O(1) add, O(1) remove (swap with the last id) and O(1)
//! access by position, so paging with `startIndex` costs the same at any depth and a member
//! change never loads the whole member list.
//!
//! Mutations of one list are serialised by a lease (`keys::List::lock_key`) taken with the
//! store's compare-and-swap; a holder that died is overtaken when its lease expires. The
//! mutation's writes go with the release as one [`Store::apply`] ([`Held::commit`]): on etcd
//! one transaction, so the lease is held for two writes, not one per key. Where `apply` is not
//! atomic (Spin's key-value store: no multi-key transaction) the writes are first logged in the
//! lease record itself (one conditional write), then made, then the lease released; a process
//! that dies between leaves its intent in the lease, and whoever takes the expired lease over
//! makes those writes again (they are whole values, so making them twice is harmless) before
//! its own change. A list is therefore never left torn by a crash. Reads take no lease: a page
//! read during a mutation may miss or repeat one id, which SCIM paging tolerates (RFC 7644
//! §3.4.2.4 does not promise snapshot consistency).

use serde::{Deserialize, Serialize};

use crate::error::{ScimError, ScimResult};
use crate::keys::{List, CHUNK};
use crate::store::{get_json, put_json, Change, Condition, Store, StoreError, Version};
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
    /// The holder's writes, logged before it makes them where `apply` is not atomic: key and
    /// value (JSON text; `None` deletes). Made again by whoever overtakes the lease.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    intent: Vec<(String, Option<String>)>,
}

/// A held lease. Its writes go with its release as one [`Store::apply`] ([`Held::commit`]):
/// on etcd one transaction, conditional on the lease still being ours, instead of a round trip
/// (and an fsync) per key while every other writer of the list waits.
struct Held {
    key: String,
    holder: String,
    version: Version,
}

/// The lease record of a free list.
fn free_lease() -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(&Lease { holder: String::new(), until: 0, intent: Vec::new() })
        .map_err(|e| StoreError::Unavailable(e.to_string()))
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
        let mut lease = Lease { holder: holder.clone(), until: now + LEASE_MS, intent: Vec::new() };
        let cond = match get_json::<S, Lease>(env.store, &key).await {
            Ok(None) => Condition::Absent,
            Ok(Some((l, v))) if l.until <= now || l.holder.is_empty() => {
                // A holder that died while making its writes: take its intent over with the
                // lease, and make it before anything else.
                lease.intent = l.intent;
                Condition::Version(v)
            }
            Ok(Some(_)) => {
                env.clock.pause(attempt).await;
                continue;
            }
            // A lease record we cannot read is overwritten.
            Err(e) if e.status == http::StatusCode::INTERNAL_SERVER_ERROR => Condition::Any,
            Err(e) => return Err(e),
        };
        match put_json(env.store, &key, &lease, cond).await {
            Ok(version) if lease.intent.is_empty() => return Ok(Held { key, holder, version }),
            Ok(version) => return Held { key, holder, version }.redo(env, lease).await,
            Err(StoreError::Conflict) => {
                env.clock.pause(attempt).await;
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
    /// Makes the writes of the intent a dead holder left in the lease we just took, then
    /// clears it from the lease. Fails (the intent stays for the next holder) if the store does.
    async fn redo<S: Store>(self, env: &Env<'_, S>, mut lease: Lease) -> ScimResult<Held> {
        let changes: Vec<Change<'_>> = lease
            .intent
            .iter()
            .map(|(key, value)| Change {
                key,
                value: value.as_deref().map(str::as_bytes),
                cond: Condition::Any,
            })
            .collect();
        crate::store::apply_in_order(env.store, &changes).await?;
        lease.intent.clear();
        let version = put_json(env.store, &self.key, &lease, Condition::Version(self.version)).await?;
        Ok(Held { version, ..self })
    }

    /// Where `apply` is not atomic: logs the writes in the lease (conditional on it being
    /// ours), makes them, releases. A failure after the log leaves the lease to expire with
    /// the intent in it, for the next holder to complete.
    async fn commit_logged<S: Store>(self, env: &Env<'_, S>, writes: Writes) -> ScimResult<()> {
        let intent = writes
            .0
            .iter()
            .map(|(key, value)| {
                let text = value.as_ref().map(|v| String::from_utf8(v.clone())).transpose();
                text.map(|t| (key.clone(), t)).map_err(|_| ScimError::internal(format!("{key}: not UTF-8")))
            })
            .collect::<ScimResult<Vec<_>>>()?;
        let until = env.clock.now_millis() + LEASE_MS;
        let lease = Lease { holder: self.holder.clone(), until, intent };
        let version = match put_json(env.store, &self.key, &lease, Condition::Version(self.version)).await {
            Ok(v) => v,
            // The lease expired and was taken over: nothing was written.
            Err(StoreError::Conflict) => {
                return Err(ScimError::new(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "a concurrent change took over this list; retry (nothing was changed)",
                ))
            }
            Err(e) => {
                let _ = self.release(env).await;
                return Err(e.into());
            }
        };
        let changes: Vec<Change<'_>> = writes
            .0
            .iter()
            .map(|(key, value)| Change { key, value: value.as_deref(), cond: Condition::Any })
            .collect();
        crate::store::apply_in_order(env.store, &changes).await?;
        // Taken over meanwhile (Conflict): the new holder made our intent again; done either way.
        match env.store.put(&self.key, &free_lease()?, Condition::Version(version)).await {
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Releases the lease without writing anything. Only our own: the version we wrote it at
    /// (an expired lease may have been taken over; a `Conflict` then leaves it alone).
    async fn release<S: Store>(self, env: &Env<'_, S>) -> ScimResult<()> {
        match env.store.put(&self.key, &free_lease()?, Condition::Version(self.version)).await {
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies `writes` and releases the lease, as one [`Store::apply`] whose last change is
    /// the release, conditional on the lease still being ours.
    async fn commit<S: Store>(self, env: &Env<'_, S>, writes: Writes) -> ScimResult<()> {
        if writes.0.is_empty() {
            return self.release(env).await;
        }
        if !env.store.atomic_apply(writes.0.len() + 1) {
            return self.commit_logged(env, writes).await;
        }
        let free = free_lease()?;
        let mut changes: Vec<Change<'_>> = writes
            .0
            .iter()
            .map(|(key, value)| Change { key, value: value.as_deref(), cond: Condition::Any })
            .collect();
        changes.push(Change { key: &self.key, value: Some(&free), cond: Condition::Version(self.version) });
        match env.store.apply(&changes).await {
            Ok(()) => Ok(()),
            // The lease expired under us and another request took the list. A transactional
            // store applied nothing; the in-order default applied the writes and only the
            // release failed. The first write tells which.
            Err(StoreError::Conflict) => {
                let applied = match writes.0.first() {
                    Some((key, value)) => env.store.get(key).await?.map(|v| v.value) == *value,
                    None => true,
                };
                if applied {
                    Ok(())
                } else {
                    Err(ScimError::new(
                        http::StatusCode::SERVICE_UNAVAILABLE,
                        "a concurrent change took over this list; retry (nothing was changed)",
                    ))
                }
            }
            Err(e) => {
                // Not left held until it expires; the failure is what the caller hears.
                let _ = self.release(env).await;
                Err(e.into())
            }
        }
    }
}

/// The writes of one list mutation, made under its lease and applied by [`Held::commit`]. One
/// per key (a transaction may not name a key twice): a later write of a key replaces an
/// earlier one, and reads of the mutation go through them ([`Writes::get`]).
#[derive(Default)]
struct Writes(Vec<(String, Option<Vec<u8>>)>);

impl Writes {
    fn put<T: Serialize>(&mut self, key: String, value: &T) -> ScimResult<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        self.set(key, Some(bytes));
        Ok(())
    }

    fn delete(&mut self, key: String) {
        self.set(key, None);
    }

    fn set(&mut self, key: String, value: Option<Vec<u8>>) {
        self.0.retain(|(k, _)| *k != key);
        self.0.push((key, value));
    }

    /// `key` as this mutation leaves it: its pending write, else the store.
    async fn get<S: Store, T: serde::de::DeserializeOwned>(
        &self,
        env: &Env<'_, S>,
        key: &str,
    ) -> ScimResult<Option<T>> {
        match self.0.iter().find(|(k, _)| k == key) {
            Some((_, None)) => Ok(None),
            Some((_, Some(bytes))) => serde_json::from_slice(bytes)
                .map(Some)
                .map_err(|_| ScimError::internal(format!("pending record {key} is corrupt"))),
            None => Ok(get_json::<S, T>(env.store, key).await?.map(|(t, _)| t)),
        }
    }

    async fn chunk<S: Store>(
        &self,
        env: &Env<'_, S>,
        tenant: &str,
        list: &List,
        n: u64,
    ) -> ScimResult<Vec<String>> {
        Ok(self.get::<S, Chunk>(env, &list.chunk_key(tenant, n)).await?.map(|c| c.0).unwrap_or_default())
    }

    /// Writes a chunk; an emptied chunk is deleted so a shrunken list leaves nothing behind.
    fn chunk_write(&mut self, tenant: &str, list: &List, n: u64, ids: Vec<String>) -> ScimResult<()> {
        if ids.is_empty() {
            self.delete(list.chunk_key(tenant, n));
            Ok(())
        } else {
            self.put(list.chunk_key(tenant, n), &Chunk(ids))
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Chunk(Vec<String>);

async fn chunk<S: Store>(env: &Env<'_, S>, tenant: &str, list: &List, n: u64) -> ScimResult<Vec<String>> {
    Ok(get_json::<S, Chunk>(env.store, &list.chunk_key(tenant, n))
        .await?
        .map(|(c, _)| c.0)
        .unwrap_or_default())
}

/// Number of ids in the list. Completes first a change whose holder died half-way ([`settle`]),
/// so a listing that starts here never sees a list torn by a crash.
pub async fn len<S: Store>(env: &Env<'_, S>, tenant: &str, list: &List) -> ScimResult<u64> {
    settle(env, tenant, list).await?;
    stored_len(env, tenant, list).await
}

/// The stored length, as is (under the lease, and for [`page`]).
async fn stored_len<S: Store>(env: &Env<'_, S>, tenant: &str, list: &List) -> ScimResult<u64> {
    Ok(get_json::<S, u64>(env.store, &list.len_key(tenant)).await?.map_or(0, |(n, _)| n))
}

/// Where `apply` is not atomic: a change whose holder died between logging its intent and
/// releasing the list (an expired lease with an intent) is completed now, by taking the lease
/// over (which makes the writes) and releasing it. One read when there is nothing to complete.
async fn settle<S: Store>(env: &Env<'_, S>, tenant: &str, list: &List) -> ScimResult<()> {
    if env.store.atomic_apply(1) {
        return Ok(());
    }
    match get_json::<S, Lease>(env.store, &list.lock_key(tenant)).await {
        Ok(Some((l, _))) if !l.intent.is_empty() && l.until <= env.clock.now_millis() => {
            acquire(env, tenant, list).await?.release(env).await
        }
        // A lease that does not decode is overwritten by the next change (see `acquire`).
        Ok(_) | Err(_) => Ok(()),
    }
}

/// Up to `count` ids starting at 0-based position `start`. Callers read [`len`] first (the
/// total of a listing), which completes an interrupted change.
pub async fn page<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    list: &List,
    start: u64,
    count: u64,
) -> ScimResult<Vec<String>> {
    let total = stored_len(env, tenant, list).await?;
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

/// Runs `mutation` under the list's lease and commits what it wrote with the release. A
/// mutation that fails writes nothing and releases the lease.
async fn mutate<S: Store>(
    env: &Env<'_, S>,
    held: Held,
    mutation: impl std::future::Future<Output = ScimResult<Writes>>,
) -> ScimResult<()> {
    match mutation.await {
        Ok(writes) => held.commit(env, writes).await,
        Err(e) => {
            let _ = held.release(env).await;
            Err(e)
        }
    }
}

/// Adds ids (not already in the list: callers guarantee it with their own unique keys).
pub async fn push<S: Store>(env: &Env<'_, S>, tenant: &str, list: &List, ids: &[String]) -> ScimResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let held = acquire(env, tenant, list).await?;
    mutate(env, held, push_writes(env, tenant, list, ids)).await
}

async fn push_writes<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    list: &List,
    ids: &[String],
) -> ScimResult<Writes> {
    let mut w = Writes::default();
    let mut n = stored_len(env, tenant, list).await?;
    let mut current: Option<(u64, Vec<String>)> = None;
    for id in ids {
        // An id already in the list is skipped, under the lease: a request repairing one that
        // stopped half-way (a group member whose membership key was written and the list not,
        // see groups::add_members; a user whose create was cut short before listing it, see
        // users::relist) may push it while the request it repairs is still running and pushes
        // it too. One read (its position, absent for a new id) unless it is there.
        if let Some(pos) = w.get::<S, u64>(env, &list.pos_key(tenant, id)).await? {
            let at = (pos % CHUNK) as usize;
            let there = match &current {
                // The chunk this push is filling (an id earlier in the same push).
                Some((k, ids)) if *k == pos / CHUNK => ids.get(at) == Some(id),
                _ => w.chunk(env, tenant, list, pos / CHUNK).await?.get(at) == Some(id),
            };
            if pos < n && there {
                continue;
            }
        }
        let c = n / CHUNK;
        if current.as_ref().map(|(k, _)| *k) != Some(c) {
            if let Some((k, ids)) = current.take() {
                w.put(list.chunk_key(tenant, k), &Chunk(ids))?;
            }
            current = Some((c, chunk(env, tenant, list, c).await?));
        }
        if let Some((_, ids)) = current.as_mut() {
            ids.truncate((n % CHUNK) as usize);
            ids.push(id.clone());
        }
        w.put(list.pos_key(tenant, id), &n)?;
        n += 1;
    }
    if let Some((k, ids)) = current {
        w.put(list.chunk_key(tenant, k), &Chunk(ids))?;
    }
    w.put(list.len_key(tenant), &n)?;
    Ok(w)
}

/// Removes ids; ids not in the list are skipped.
pub async fn remove<S: Store>(env: &Env<'_, S>, tenant: &str, list: &List, ids: &[String]) -> ScimResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let held = acquire(env, tenant, list).await?;
    mutate(env, held, remove_writes(env, tenant, list, ids)).await
}

async fn remove_writes<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    list: &List,
    ids: &[String],
) -> ScimResult<Writes> {
    let mut w = Writes::default();
    let mut n = stored_len(env, tenant, list).await?;
    for id in ids {
        let Some(pos) = w.get::<S, u64>(env, &list.pos_key(tenant, id)).await? else {
            continue;
        };
        if n == 0 || pos >= n {
            w.delete(list.pos_key(tenant, id));
            continue;
        }
        let last = n - 1;
        let mut last_chunk = w.chunk(env, tenant, list, last / CHUNK).await?;
        last_chunk.truncate((last % CHUNK + 1) as usize);
        let moved = last_chunk.pop();
        if pos == last {
            w.chunk_write(tenant, list, last / CHUNK, last_chunk)?;
        } else if let Some(moved) = moved {
            // Fill the hole with the last id.
            if pos / CHUNK == last / CHUNK {
                if let Some(slot) = last_chunk.get_mut((pos % CHUNK) as usize) {
                    *slot = moved.clone();
                }
                w.chunk_write(tenant, list, last / CHUNK, last_chunk)?;
            } else {
                let mut hole = w.chunk(env, tenant, list, pos / CHUNK).await?;
                if let Some(slot) = hole.get_mut((pos % CHUNK) as usize) {
                    *slot = moved.clone();
                }
                w.chunk_write(tenant, list, pos / CHUNK, hole)?;
                w.chunk_write(tenant, list, last / CHUNK, last_chunk)?;
            }
            w.put(list.pos_key(tenant, &moved), &pos)?;
        }
        w.delete(list.pos_key(tenant, id));
        n = last;
    }
    w.put(list.len_key(tenant), &n)?;
    Ok(w)
}

/// Every id of the list (for full scans and member listings).
pub async fn all<S: Store>(env: &Env<'_, S>, tenant: &str, list: &List) -> ScimResult<Vec<String>> {
    settle(env, tenant, list).await?;
    page(env, tenant, list, 0, u64::MAX).await
}

/// Deletes the whole list (its ids' positions, chunks and length).
pub async fn clear<S: Store>(env: &Env<'_, S>, tenant: &str, list: &List) -> ScimResult<()> {
    let held = acquire(env, tenant, list).await?;
    let result = async {
        let n = stored_len(env, tenant, list).await?;
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
    // Under the lease, and to the chunk: a concurrent ensure may have listed it meanwhile.
    match listed(env, tenant, list, id, true).await {
        Ok(false) => {
            let id = [id.to_owned()];
            mutate(env, held, push_writes(env, tenant, list, &id)).await.map(|()| true)
        }
        done => {
            let _ = held.release(env).await;
            done.map(|_| false)
        }
    }
}

/// Whether `id` has a position within the list's length (and, `thorough`, whether the chunk
/// holds it there): a push interrupted before its length was written leaves a position
/// beyond the end.
pub(crate) async fn listed<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    list: &List,
    id: &str,
    thorough: bool,
) -> ScimResult<bool> {
    let Some((pos, _)) = get_json::<S, u64>(env.store, &list.pos_key(tenant, id)).await? else {
        return Ok(false);
    };
    if pos >= stored_len(env, tenant, list).await? {
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

    /// A store whose `apply` is atomic, as etcd's is: every condition is checked first.
    struct Atomic<'a>(&'a MemStore);

    impl Store for Atomic<'_> {
        async fn get(&self, key: &str) -> Result<Option<crate::Versioned>, StoreError> {
            self.0.get(key).await
        }
        async fn put(&self, key: &str, value: &[u8], cond: Condition) -> Result<Version, StoreError> {
            self.0.put(key, value, cond).await
        }
        async fn delete(&self, key: &str, cond: Condition) -> Result<(), StoreError> {
            self.0.delete(key, cond).await
        }
        async fn apply(&self, changes: &[Change<'_>]) -> Result<(), StoreError> {
            for c in changes {
                let now = self.0.get(c.key).await?.map(|v| v.version);
                let holds = match c.cond {
                    Condition::Any => true,
                    Condition::Absent => now.is_none(),
                    Condition::Version(v) => now == Some(v),
                };
                if !holds {
                    return Err(StoreError::Conflict);
                }
            }
            crate::store::apply_in_order(self.0, changes).await
        }
    }

    /// A holder whose lease expired and was taken over: its writes are refused whole (503, the
    /// list untouched), by the transaction on a transactional store, by the conditional write
    /// of its intent with the in-order default.
    #[test]
    fn a_commit_after_losing_the_lease_is_all_or_nothing_where_the_store_can() {
        let (mem, clock, random, config) =
            (MemStore::new(), FixedClock::default(), SeqRandom::new(1), Config::default());
        let atomic = Atomic(&mem);
        let l = List::Groups;
        block_on(async {
            let env = Env { store: &atomic, clock: &clock, random: &random, config: &config };
            let late = acquire(&env, "t", &l).await.unwrap();
            clock.advance(LEASE_MS + 1);
            let current = acquire(&env, "t", &l).await.unwrap();
            let e = mutate(&env, late, push_writes(&env, "t", &l, &["a".into()])).await.unwrap_err();
            assert_eq!(e.status, http::StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(len(&env, "t", &l).await.unwrap(), 0);
            assert!(!contains(&env, "t", &l, "a").await.unwrap());
            // The lease it lost is still the current holder's, who commits normally.
            mutate(&env, current, push_writes(&env, "t", &l, &["b".into()])).await.unwrap();
            assert_eq!(all(&env, "t", &l).await.unwrap(), vec!["b".to_owned()]);

            let env = Env { store: &mem, clock: &clock, random: &random, config: &config };
            let late = acquire(&env, "t", &l).await.unwrap();
            clock.advance(LEASE_MS + 1);
            let current = acquire(&env, "t", &l).await.unwrap();
            let e = mutate(&env, late, push_writes(&env, "t", &l, &["c".into()])).await.unwrap_err();
            assert_eq!(e.status, http::StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(all(&env, "t", &l).await.unwrap(), vec!["b".to_owned()]);
            mutate(&env, current, push_writes(&env, "t", &l, &["d".into()])).await.unwrap();
            assert_eq!(all(&env, "t", &l).await.unwrap(), vec!["b".to_owned(), "d".to_owned()]);
        });
    }

    /// A removal of several ids reads through its own pending writes (the last chunk it
    /// shortened, the position it moved), and commits each key once.
    #[test]
    fn a_batch_removal_sees_its_own_writes() {
        let (mem, clock, random, config) =
            (MemStore::new(), FixedClock::default(), SeqRandom::new(1), Config::default());
        let atomic = Atomic(&mem);
        let env = Env { store: &atomic, clock: &clock, random: &random, config: &config };
        let l = List::Users;
        block_on(async {
            let ids: Vec<String> = (0..CHUNK + 3).map(|i| format!("u{i}")).collect();
            push(&env, "t", &l, &ids).await.unwrap();
            let w = remove_writes(&env, "t", &l, &[ids[0].clone(), ids[1].clone(), ids[2].clone()])
                .await
                .unwrap();
            let mut keys: Vec<&String> = w.0.iter().map(|(k, _)| k).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), w.0.len(), "each key written once");
            remove(&env, "t", &l, &[ids[0].clone(), ids[1].clone(), ids[2].clone()]).await.unwrap();
            let mut left = all(&env, "t", &l).await.unwrap();
            left.sort();
            let mut want: Vec<String> = ids[3..].to_vec();
            want.sort();
            assert_eq!(left, want);
            for (i, id) in all(&env, "t", &l).await.unwrap().iter().enumerate() {
                let pos: u64 = serde_json::from_slice(&mem.raw(&l.pos_key("t", id)).unwrap()).unwrap();
                assert_eq!(pos, i as u64, "{id}");
            }
        });
    }

    /// The in-order store, failing every write after the first `writes` (a process that dies
    /// half-way through its writes, as seen from the store).
    struct DiesAfter<'a> {
        mem: &'a MemStore,
        writes: std::cell::Cell<u32>,
    }

    impl DiesAfter<'_> {
        fn spend(&self) -> Result<(), StoreError> {
            match self.writes.get() {
                0 => Err(StoreError::Unavailable("died".into())),
                n => {
                    self.writes.set(n - 1);
                    Ok(())
                }
            }
        }
    }

    impl Store for DiesAfter<'_> {
        async fn get(&self, key: &str) -> Result<Option<crate::Versioned>, StoreError> {
            self.mem.get(key).await
        }
        async fn put(&self, key: &str, value: &[u8], cond: Condition) -> Result<Version, StoreError> {
            self.spend()?;
            self.mem.put(key, value, cond).await
        }
        async fn delete(&self, key: &str, cond: Condition) -> Result<(), StoreError> {
            self.spend()?;
            self.mem.delete(key, cond).await
        }
    }

    /// Without an atomic `apply`, a mutation that dies after any number of its writes leaves
    /// its intent in the lease; once the lease expired, the next read of the list or the next
    /// mutation makes those writes first, and the list is whole: every id once, at its
    /// recorded position.
    #[test]
    fn a_mutation_cut_short_anywhere_is_completed_by_the_next() {
        for survive in 0..12 {
            let (mem, clock, random, config) =
                (MemStore::new(), FixedClock::default(), SeqRandom::new(1), Config::default());
            let l = List::Members("g".into());
            let ids: Vec<String> = (0..CHUNK + 2).map(|i| format!("u{i}")).collect();
            block_on(async {
                let env = Env { store: &mem, clock: &clock, random: &random, config: &config };
                push(&env, "t", &l, &ids).await.unwrap();
                // A removal moving the last id into the first chunk: writes in two chunks, two
                // positions and the length.
                let dying = DiesAfter { mem: &mem, writes: std::cell::Cell::new(survive) };
                let env_dying = Env { store: &dying, clock: &clock, random: &random, config: &config };
                let cut = remove(&env_dying, "t", &l, &[ids[3].clone()]).await;
                clock.advance(LEASE_MS + 1);
                let mut want: Vec<String> = ids.clone();
                if cut.is_ok() || survive >= 2 {
                    // It took the lease (one write) and logged its intent (the next): the
                    // removal is completed, by the first read of the list or the next change.
                    want.swap_remove(3);
                }
                if survive % 2 == 0 {
                    assert_eq!(all(&env, "t", &l).await.unwrap(), want, "read after {survive} writes");
                }
                push(&env, "t", &l, &["new".into()]).await.unwrap();
                want.push("new".into());
                assert_eq!(all(&env, "t", &l).await.unwrap(), want, "cut after {survive} writes: {cut:?}");
                for (i, id) in want.iter().enumerate() {
                    let pos: u64 = serde_json::from_slice(&mem.raw(&l.pos_key("t", id)).unwrap()).unwrap();
                    assert_eq!(pos, i as u64, "cut after {survive} writes: {id}");
                }
                if !want.contains(&ids[3]) {
                    assert!(mem.raw(&l.pos_key("t", &ids[3])).is_none(), "cut after {survive} writes");
                }
            });
        }
    }

    /// Pushing an id the list holds changes nothing (a repair racing the request it repairs),
    /// within one push and across pushes, in every list.
    #[test]
    fn an_id_is_listed_once_however_often_it_is_pushed() {
        let (store, clock, random, config) =
            (MemStore::new(), FixedClock::default(), SeqRandom::new(1), Config::default());
        let env = Env { store: &store, clock: &clock, random: &random, config: &config };
        for l in [List::Users, List::Members("g".into())] {
            block_on(async {
                let ids: Vec<String> = (0..CHUNK + 1).map(|i| format!("u{i}")).collect();
                push(&env, "t", &l, &ids).await.unwrap();
                push(&env, "t", &l, &[ids[0].clone(), "x".into(), "x".into(), ids[CHUNK as usize].clone()])
                    .await
                    .unwrap();
                let mut want = ids.clone();
                want.push("x".into());
                assert_eq!(all(&env, "t", &l).await.unwrap(), want, "{l:?}");
                assert_eq!(len(&env, "t", &l).await.unwrap(), CHUNK + 2);
            });
        }
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
