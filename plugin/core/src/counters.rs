//! Sharded counters: named integers split over [`SHARDS`] keys, each request adding its delta to
//! one shard picked at random, so concurrent requests rarely contend for the same key; a read
//! sums the shards. Used for a tenant's user counts by state and a SCIM connection's request
//! and failure counts.

use std::collections::BTreeMap;

use crate::error::ScimResult;
use crate::store::{get_json, put_json, Condition, Store, StoreError};
use crate::Env;

pub const SHARDS: u8 = 8;

type Counts = BTreeMap<String, i64>;

/// Adds `deltas` to one shard (`key(shard)`), retrying on a concurrent change.
pub async fn add<S: Store>(
    env: &Env<'_, S>,
    key: impl Fn(u8) -> String,
    deltas: &[(&str, i64)],
) -> ScimResult<()> {
    let mut b = [0u8; 1];
    // Without entropy every request uses shard 0: slower under contention, still correct.
    let _ = env.random.fill(&mut b);
    let mut shard = b[0] % SHARDS;
    for _ in 0..16 {
        let k = key(shard);
        let (mut counts, cond) = match get_json::<S, Counts>(env.store, &k).await? {
            Some((c, v)) => (c, Condition::Version(v)),
            None => (Counts::new(), Condition::Absent),
        };
        for (name, d) in deltas {
            let c = counts.entry((*name).to_owned()).or_insert(0);
            *c = c.saturating_add(*d);
        }
        match put_json(env.store, &k, &counts, cond).await {
            Ok(_) => return Ok(()),
            // Lost a race: the next shard is likely free.
            Err(StoreError::Conflict) => shard = (shard + 1) % SHARDS,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// The sums over every shard.
pub async fn sum<S: Store>(env: &Env<'_, S>, key: impl Fn(u8) -> String) -> ScimResult<Counts> {
    let mut total = Counts::new();
    for shard in 0..SHARDS {
        if let Some((c, _)) = get_json::<S, Counts>(env.store, &key(shard)).await? {
            for (name, n) in c {
                let t = total.entry(name).or_insert(0);
                *t = t.saturating_add(n);
            }
        }
    }
    Ok(total)
}

/// Deletes every shard.
pub async fn clear<S: Store>(env: &Env<'_, S>, key: impl Fn(u8) -> String) -> ScimResult<()> {
    for shard in 0..SHARDS {
        env.store.delete(&key(shard), Condition::Any).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::scenario::block_on;
    use crate::testing::{FixedClock, MemStore, SeqRandom};
    use crate::Config;

    #[test]
    fn deltas_add_up_across_shards() {
        let store = MemStore::new();
        let (clock, random, config) = (FixedClock::default(), SeqRandom::new(1), Config::default());
        let env = Env { store: &store, clock: &clock, random: &random, config: &config };
        let key = |s: u8| format!("c/{s}");
        let done = block_on(async {
            for i in 0..40 {
                add(&env, key, &[("a", 1), ("b", if i % 2 == 0 { 1 } else { -1 })]).await.unwrap();
            }
            let s = sum(&env, key).await.unwrap();
            assert_eq!((s["a"], s["b"]), (40, 0));
            assert!(store.dump().len() > 1, "spread over shards");
            clear(&env, key).await.unwrap();
            assert!(sum(&env, key).await.unwrap().is_empty());
        });
        assert!(done.is_some());
    }
}
