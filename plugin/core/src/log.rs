//! The provisioning log: every SCIM write and every admin action of a tenant, bounded, and
//! readable with a cursor so that the product behind the gateway can follow changes
//! incrementally (a change feed) instead of listing every user.
//!
//! Entries live in a ring of `logSize` slots (`keys::log_slot`): entry `seq` goes to slot
//! `seq % logSize` and carries its `seq`, so a reader can tell a slot's current entry from an
//! older or a newer lap. A writer claims the next sequence number by writing the slot with
//! compare-and-swap (absent, or holding an entry of an older lap); `keys::log_head` is only a
//! hint of where to start. Numbers are claimed in order and an entry is written in the same
//! step that claims its number, so the feed has no holes: when entry `n` is missing, no entry
//! after it exists yet.
//!
//! An entry never holds a secret: actors are named by connection id or user id, and details
//! are the error details the client got, which never contain tokens.

use serde::{Deserialize, Serialize};

use crate::error::{ScimError, ScimResult};
use crate::store::{get_json, put_json, Condition, Store, StoreError};
use crate::{keys, time, Env};

/// Who did it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Actor {
    /// A SCIM client (Entra) through the tenant's connection.
    #[serde(rename_all = "camelCase")]
    Scim { connection: String },
    /// A person of the tenant, through the admin API (`X-Acting-User`).
    #[serde(rename_all = "camelCase")]
    User { id: String, user_name: String },
    /// The operator (admin token, no acting user).
    Operator,
}

impl Actor {
    fn kind(&self) -> &'static str {
        match self {
            Actor::Scim { .. } => "scim",
            Actor::User { .. } => "user",
            Actor::Operator => "operator",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Success,
    Failure,
}

/// What happened, before it gets its number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub actor: Actor,
    /// `user.create`, `scim.regenerate`, … (see docs/admin-api.md).
    pub operation: &'static str,
    pub resource_type: &'static str,
    pub target: Option<String>,
    pub target_name: Option<String>,
    pub status: u16,
    /// The error detail, for failures.
    pub detail: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub seq: u64,
    pub time: String,
    pub tenant: String,
    pub actor: Actor,
    pub operation: String,
    pub resource_type: String,
    pub target: Option<String>,
    pub target_name: Option<String>,
    pub outcome: Outcome,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Longest detail kept in an entry.
const MAX_DETAIL: usize = 500;
/// Longest target id or name kept in an entry.
const MAX_NAME: usize = 128;
/// Slots probed past the head hint before giving up (the hint lags by the writes in flight).
const APPEND_ATTEMPTS: usize = 64;
/// Refused creates of a slot that still reads empty before an append gives up (see `append`).
const MAX_REFUSED_EMPTY: u32 = 3;

/// The head hint: the number the next entry will likely get. Numbers start at 1, so that
/// `after=0` reads a log from its start.
async fn head<S: Store>(env: &Env<'_, S>, t: &str) -> ScimResult<(u64, Option<crate::Version>)> {
    Ok(match get_json::<S, u64>(env.store, &keys::log_head(t)).await? {
        Some((h, v)) => (h.max(1), Some(v)),
        None => (1, None),
    })
}

/// Appends an entry; returns its sequence number.
pub async fn append<S: Store>(env: &Env<'_, S>, t: &str, event: Event) -> ScimResult<u64> {
    let size = env.config.log_size;
    let (hint, hint_version) = head(env, t).await?;
    let outcome = if event.status < 400 { Outcome::Success } else { Outcome::Failure };
    let mut entry = Entry {
        seq: hint,
        time: time::rfc3339(env.clock.now_millis()),
        tenant: t.to_owned(),
        actor: event.actor,
        operation: event.operation.to_owned(),
        resource_type: event.resource_type.to_owned(),
        // Ids a client made up can be long; real ones are 32 characters.
        target: event.target.map(|t| truncate(t, MAX_NAME)),
        target_name: event.target_name.map(|t| truncate(t, MAX_NAME)),
        outcome,
        status: event.status,
        detail: event.detail.map(|d| truncate(d, MAX_DETAIL)),
    };
    // Creates of an empty slot refused in a row: a creator that claimed it is writing it, or
    // died doing so (Spin: the adapter takes such a key over after a while). Not waited on.
    let mut refused_empty = 0;
    for attempt in 0..APPEND_ATTEMPTS {
        let key = keys::log_slot(t, entry.seq % size);
        let cond = match get_json::<S, Entry>(env.store, &key).await {
            Ok(None) if refused_empty >= MAX_REFUSED_EMPTY => break,
            Ok(None) => Condition::Absent,
            Ok(Some((e, _))) if e.seq >= entry.seq => {
                // Taken (or a newer lap): go past it.
                entry.seq = e.seq + 1;
                continue;
            }
            Ok(Some((_, v))) => Condition::Version(v),
            // An unreadable slot is overwritten.
            Err(e) if e.status == http::StatusCode::INTERNAL_SERVER_ERROR => Condition::Any,
            Err(e) => return Err(e),
        };
        match put_json(env.store, &key, &entry, cond).await {
            Ok(_) => {
                advance_head(env, t, entry.seq + 1, hint, hint_version).await;
                return Ok(entry.seq);
            }
            // Someone claimed this number first: look again.
            Err(StoreError::Conflict) => {
                if cond == Condition::Absent {
                    refused_empty += 1;
                    env.clock.pause(attempt as u32).await;
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Moves the head hint forward to `next` (never back); best effort, a stale hint only costs
/// the next writer a few probes.
async fn advance_head<S: Store>(
    env: &Env<'_, S>,
    t: &str,
    next: u64,
    mut seen: u64,
    mut version: Option<crate::Version>,
) {
    for _ in 0..3 {
        if seen >= next {
            return;
        }
        let cond = version.map_or(Condition::Absent, Condition::Version);
        match put_json(env.store, &keys::log_head(t), &next, cond).await {
            Ok(_) => return,
            Err(StoreError::Conflict) => match head(env, t).await {
                Ok((h, v)) => (seen, version) = (h, v),
                Err(_) => return,
            },
            Err(_) => return,
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// The entry with number `seq`, if the ring still holds it. `Err(newer)` when its slot already
/// holds a later lap's entry.
async fn read<S: Store>(env: &Env<'_, S>, t: &str, seq: u64) -> ScimResult<Result<Option<Entry>, u64>> {
    let key = keys::log_slot(t, seq % env.config.log_size);
    Ok(match get_json::<S, Entry>(env.store, &key).await? {
        Some((e, _)) if e.seq == seq => Ok(Some(e)),
        Some((e, _)) if e.seq > seq => Err(e.seq),
        _ => Ok(None),
    })
}

/// The number the next entry will get: the head hint, moved past entries written after it.
pub async fn next_seq<S: Store>(env: &Env<'_, S>, t: &str) -> ScimResult<u64> {
    let (mut next, _) = head(env, t).await?;
    for _ in 0..env.config.log_size {
        match read(env, t, next).await? {
            Ok(Some(_)) => next += 1,
            _ => break,
        }
    }
    Ok(next)
}

/// Which entries a reader wants.
#[derive(Default, Debug, Clone)]
pub struct Filter {
    /// Exact operation (`user.create`) or a prefix ending in `.` (`user.`).
    pub operation: Option<String>,
    pub outcome: Option<Outcome>,
    /// `scim`, `user` or `operator`.
    pub actor: Option<String>,
    pub target: Option<String>,
    pub resource_type: Option<String>,
    /// A person, by id or userName (any case): entries whose target or acting user it is.
    pub user: Option<String>,
    /// Entries at or after / at or before these RFC 3339 times (compared as the log writes them).
    pub since: Option<String>,
    pub until: Option<String>,
}

impl Filter {
    fn matches(&self, e: &Entry) -> bool {
        let op_ok = match self.operation.as_deref() {
            None => true,
            Some(p) if p.ends_with('.') => e.operation.starts_with(p),
            Some(p) => e.operation == p,
        };
        op_ok
            && self.outcome.is_none_or(|o| o == e.outcome)
            && self.actor.as_deref().is_none_or(|a| a == e.actor.kind())
            && self.target.as_deref().is_none_or(|x| e.target.as_deref() == Some(x))
            && self.resource_type.as_deref().is_none_or(|r| r.eq_ignore_ascii_case(&e.resource_type))
            && self.user.as_deref().is_none_or(|u| {
                let named = |id: Option<&str>, name: Option<&str>| {
                    id == Some(u) || name.is_some_and(|n| n.eq_ignore_ascii_case(u))
                };
                let actor = match &e.actor {
                    Actor::User { id, user_name } => named(Some(id), Some(user_name)),
                    _ => false,
                };
                actor || (e.resource_type == "User" && named(e.target.as_deref(), e.target_name.as_deref()))
            })
            && self.since.as_deref().is_none_or(|t| e.time.as_str() >= t)
            && self.until.as_deref().is_none_or(|t| e.time.as_str() <= t)
    }
}

/// Where to read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// The newest entries, newest first.
    Newest,
    /// Entries older than this number, newest first.
    Before(u64),
    /// Entries newer than this number, oldest first (the change feed).
    After(u64),
}

pub struct Page {
    pub entries: Vec<Entry>,
    /// The oldest number the ring may still hold.
    pub oldest: u64,
    /// The newest entry's number (0: none yet): the change feed's starting point (`after`).
    pub latest: u64,
    /// The cursor value for the next call (`before` or `after`, as asked), `None` at the end
    /// of a newest-first read.
    pub next: Option<u64>,
}

pub async fn page<S: Store>(
    env: &Env<'_, S>,
    t: &str,
    cursor: Cursor,
    count: usize,
    filter: &Filter,
) -> ScimResult<Page> {
    let next = next_seq(env, t).await?;
    let latest = next - 1;
    let oldest = next.saturating_sub(env.config.log_size).max(1);
    let mut entries = Vec::new();
    // Every read is bounded by the ring's size, filters or not.
    match cursor {
        Cursor::Newest | Cursor::Before(_) => {
            let mut s = match cursor {
                Cursor::Before(b) => b.min(next),
                _ => next,
            };
            while s > oldest && entries.len() < count {
                s -= 1;
                match read(env, t, s).await? {
                    Ok(Some(e)) if filter.matches(&e) => entries.push(e),
                    Ok(_) => {}
                    // Overwritten while we read: everything older is gone too.
                    Err(_) => {
                        s = oldest;
                        break;
                    }
                }
            }
            Ok(Page { entries, oldest, latest, next: (s > oldest).then_some(s) })
        }
        Cursor::After(a) => {
            if a.saturating_add(1) < oldest {
                return Err(gone(a, oldest));
            }
            let mut s = a.saturating_add(1);
            let mut last = a;
            while entries.len() < count {
                match read(env, t, s).await? {
                    Ok(Some(e)) => {
                        last = s;
                        if filter.matches(&e) {
                            entries.push(e);
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return Err(gone(a, oldest)),
                }
                s += 1;
                if s - a > env.config.log_size {
                    break;
                }
            }
            Ok(Page { entries, oldest, latest, next: Some(last) })
        }
    }
}

fn gone(after: u64, oldest: u64) -> ScimError {
    ScimError::new(
        http::StatusCode::GONE,
        format!(
            "entries after {after} were already dropped (the log keeps the newest logSize entries; the \
             oldest kept is {oldest}): list the users again and follow the log from \"latest\""
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::scenario::block_on;
    use crate::testing::{FixedClock, MemStore, SeqRandom};
    use crate::Config;

    fn event(n: u16) -> Event {
        Event {
            actor: Actor::Scim { connection: "c".into() },
            operation: if n.is_multiple_of(2) { "user.create" } else { "group.update" },
            resource_type: if n.is_multiple_of(2) { "User" } else { "Group" },
            target: Some(format!("t{n}")),
            target_name: None,
            status: if n.is_multiple_of(5) { 409 } else { 201 },
            detail: None,
        }
    }

    #[test]
    fn bounded_ring_with_cursors() {
        let store = MemStore::new();
        let (clock, random) = (FixedClock::default(), SeqRandom::new(1));
        let config = Config { log_size: 10, ..Config::default() };
        let env = Env { store: &store, clock: &clock, random: &random, config: &config };
        let done = block_on(async {
            for n in 0..25u16 {
                assert_eq!(append(&env, "t", event(n)).await.unwrap(), u64::from(n) + 1);
            }
            // Bounded: 10 slots and the head.
            assert_eq!(store.dump().len(), 11);
            let p = page(&env, "t", Cursor::Newest, 4, &Filter::default()).await.unwrap();
            assert_eq!(p.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [25, 24, 23, 22]);
            assert_eq!((p.oldest, p.latest, p.next), (16, 25, Some(22)));
            let p = page(&env, "t", Cursor::Before(22), 100, &Filter::default()).await.unwrap();
            assert_eq!(p.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [21, 20, 19, 18, 17, 16]);
            assert_eq!(p.next, None);
            // The change feed, oldest first, resumable.
            let p = page(&env, "t", Cursor::After(20), 3, &Filter::default()).await.unwrap();
            assert_eq!(p.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [21, 22, 23]);
            let p = page(&env, "t", Cursor::After(p.next.unwrap()), 10, &Filter::default()).await.unwrap();
            assert_eq!(p.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [24, 25]);
            assert_eq!(p.next, Some(25));
            // Following from "latest" misses nothing: the next entry is the first one read.
            let p = page(&env, "t", Cursor::After(p.latest), 10, &Filter::default()).await.unwrap();
            assert!(p.entries.is_empty());
            assert_eq!(p.next, Some(25));
            append(&env, "t", event(1)).await.unwrap();
            let p = page(&env, "t", Cursor::After(25), 10, &Filter::default()).await.unwrap();
            assert_eq!(p.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [26]);
            // Fell behind the ring: 410, not a silent gap.
            let e = page(&env, "t", Cursor::After(3), 10, &Filter::default()).await.err().unwrap();
            assert_eq!(e.status, http::StatusCode::GONE);
            // Filters.
            let f = Filter {
                operation: Some("user.".into()),
                outcome: Some(Outcome::Failure),
                ..Filter::default()
            };
            let p = page(&env, "t", Cursor::Newest, 10, &f).await.unwrap();
            assert_eq!(p.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [21]);
            assert_eq!(p.entries[0].outcome, Outcome::Failure);
        });
        assert!(done.is_some());
    }

    #[test]
    fn a_stale_head_hint_never_reuses_a_number() {
        let store = MemStore::new();
        let (clock, random) = (FixedClock::default(), SeqRandom::new(1));
        let config = Config { log_size: 10, ..Config::default() };
        let env = Env { store: &store, clock: &clock, random: &random, config: &config };
        let done = block_on(async {
            for n in 0..13u16 {
                append(&env, "t", event(n)).await.unwrap();
            }
            // A writer whose hint update was lost.
            store.delete(&keys::log_head("t"), Condition::Any).await.unwrap();
            assert_eq!(append(&env, "t", event(13)).await.unwrap(), 14);
            assert_eq!(next_seq(&env, "t").await.unwrap(), 15);
        });
        assert!(done.is_some());
    }
}
