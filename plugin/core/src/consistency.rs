//! The store's invariants, checked over a full dump of its keys: what an operator runs
//! against a live store (`scim-edge-fsck` in `host-tests`) and what the property tests and
//! the fuzzer assert after every sequence of requests.
//!
//! The [`Store`](crate::Store) trait cannot list keys (on purpose: not every backend can),
//! so the caller hands [`check`] every `(key, value)` it holds under the layout of
//! [`crate::keys`] — from `MemStore::entries`, Spin's SQLite table, an etcd range read — with
//! the host's own encoding removed.
//!
//! # Invariants
//! - every key is a key of the layout, and every value decodes as what that key holds;
//! - a tenant's current SCIM connection exists, names the tenant back and is not marked off;
//!   the one a plan change turned off is marked off;
//! - every user and group record is indexed (`userName`, `externalId`, `displayName`) by the
//!   entry its current value maps to, and every id an index entry names is a live record whose
//!   value maps to that entry; no two records share a `userName` entry. `externalId` and group
//!   `displayName` entries may name several records (the default, RFC 7643's): whether they
//!   may is the configuration's `uniqueness`, which governs new claims and does not rewrite
//!   stored entries, so the check does not hold stored data to it;
//! - the dense lists (`users`, `groups`, `members.{group}`) hold exactly the live records
//!   (resp. memberships), each once, with a `len`, chunks and `pos` keys that agree;
//! - a membership `m/{group}/{user}` exists iff the group lists the user and the user's
//!   group set `ug/{user}` names the group, and both ends exist;
//! - a block (`crate::blocks`) is of a user that no longer exists, its `userName` index entry
//!   and its `externalId` key name it, and the `blocks` list holds exactly the blocks.
//!
//! # Live stores
//! A request in flight moves the store through states that break these invariants for a
//! few milliseconds (an index entry is claimed before its record is written, a record is
//! written before it is listed). Check a quiet store, or check twice: a problem that is
//! still there on the second run is real. A [`Severity::Garbage`] problem changes no answer
//! of the API (an unreferenced leftover); a [`Severity::Error`] one does (a user missing from
//! lists, a `userName` that can never be used again, a member that is not one).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use crate::blocks::Block;
use crate::groups::GroupRecord;
use crate::keys::{self, Index, Key, List, CHUNK};
use crate::tenants::{Connection, Tenant};
use crate::users::UserRecord;

/// How much a problem matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// A leftover that no request reads in a way that changes its answer.
    Garbage,
    /// The API answers wrongly or refuses valid requests because of it.
    Error,
}

/// One broken invariant. `key` is the key it was found at (or the record it is about).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub kind: ProblemKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// Under `v1/` but not a key of the layout (or with an invalid tenant, id or segment).
    UnknownKey,
    /// The value does not decode as what the key holds.
    Corrupt { reason: String },
    /// Keys under `v1/t/{tenant}/` of a tenant that does not exist.
    DataWithoutTenant { tenant: String },
    /// The tenant's current connection key is missing, names another tenant or is a
    /// Regenerate's marker: SCIM
    /// requests of this tenant all get 401.
    ConnectionMissing { connection: String },
    /// A connection its tenant does not point at: left by a generate that failed before
    /// pointing the tenant at it, so nobody was ever given its token.
    ConnectionOrphan { tenant: String },
    /// The connection a plan change turned off (the tenant's `scimOff`) is not marked off in
    /// its record, which alone decides a SCIM request: its token still works.
    ConnectionNotOff { tenant: String },
    /// The tenant's current connection is marked off: a plan change failed after marking it,
    /// and every SCIM request of the tenant gets 403.
    ConnectionOff { tenant: String },
    /// A tenant missing from `v1/tenants`: the admin API's tenant list misses it.
    TenantNotListed { tenant: String },
    /// The tenant's user counts by state (`counters`) differ from its records: the admin
    /// page shows wrong numbers (a request failed between the change and its count).
    CountDrift { state: String, counted: i64, actual: i64 },
    /// A record stored under another id than its own.
    IdMismatch { id: String },
    /// A record that no index entry and no list position refers to: what a create that
    /// failed half-way leaves behind. Only a request naming its (never disclosed) id finds it.
    OrphanRecord { id: String },
    /// A record's value has no index entry pointing to it: filters on it miss the record
    /// and another resource may take the value.
    NotIndexed { index: Index, value: String, expected_key: String },
    /// An index entry pointing to a record that does not exist (a request failed or raced
    /// half-way): harmless until then, the next claim of the value takes it over.
    IndexDangling { id: String },
    /// An index entry pointing to a record whose value no longer maps to this entry.
    IndexStale { id: String },
    /// Records that map to the same `userName` entry (the same `userName`, ignoring case).
    Duplicate { index: Index, ids: Vec<String> },
    /// A live record (or membership) missing from its list: unfiltered listing misses it.
    NotListed { list: String, id: String },
    /// A list entry for a record (or membership) that does not exist.
    ListedMissing { list: String, id: String, position: u64 },
    /// The same id at two positions of a list.
    ListedTwice { list: String, id: String },
    /// A chunk within the list's length is missing or has the wrong number of ids. More ids
    /// than expected (past the list's end) is garbage: the next push overwrites them.
    ChunkLength { list: String, n: u64, expected: usize, found: usize },
    /// A chunk beyond the list's length.
    ChunkBeyondEnd { list: String, n: u64 },
    /// A `pos` key that does not give the id's position (or names an id not in the list):
    /// a remove through it would take out another id.
    PositionWrong { list: String, id: String, recorded: u64, actual: Option<u64> },
    /// A listed id without its `pos` key: it can never be removed from the list.
    PositionMissing { list: String, id: String },
    /// A `pos` key past the list's end for an id not in it (a push that failed half-way);
    /// every remove skips it.
    PositionBeyondEnd { list: String, id: String, recorded: u64 },
    /// A membership key whose group or user does not exist.
    MembershipDangling { group: String, user: String },
    /// A membership missing from the user's group set (`ug/{user}`).
    MembershipNotInUserGroups { group: String, user: String },
    /// The user's group set names a group the user is not a member of.
    UserGroupsExtra { group: String, user: String },
    /// A block on a user that still exists: a removal by hand was cut short before it deleted
    /// the user (the person still has access; remove the user again).
    BlockedUserPresent { id: String },
    /// The block's `userName` index entry or `externalId` key does not name it: SCIM can
    /// create the removed user again by that value.
    BlockNotAnchored { id: String, attribute: String, expected_key: String },
    /// An `externalId` block key naming no block with that `externalId` (a lift cut short).
    BlockKeyDangling { id: String },
}

impl Problem {
    pub fn severity(&self) -> Severity {
        use ProblemKind::*;
        match self.kind {
            ConnectionOrphan { .. }
            | ChunkBeyondEnd { .. }
            | DataWithoutTenant { .. }
            | OrphanRecord { .. }
            | PositionBeyondEnd { .. }
            | IndexDangling { .. }
            | BlockKeyDangling { .. }
            | CountDrift { .. } => Severity::Garbage,
            ChunkLength { expected, found, .. } if found > expected => Severity::Garbage,
            _ => Severity::Error,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ProblemKind::*;
        let sev = match self.severity() {
            Severity::Error => "error",
            Severity::Garbage => "garbage",
        };
        write!(f, "{sev}: {}: ", self.key)?;
        match &self.kind {
            UnknownKey => write!(f, "not a key of layout v1"),
            Corrupt { reason } => write!(f, "value does not decode: {reason}"),
            DataWithoutTenant { tenant } => write!(f, "data of tenant {tenant:?}, which does not exist"),
            ConnectionMissing { connection } => {
                write!(f, "current SCIM connection {connection} is missing, names another tenant or was replaced")
            }
            ConnectionOrphan { tenant } => write!(f, "connection not current for its tenant {tenant:?}"),
            ConnectionNotOff { tenant } => write!(
                f,
                "connection turned off by a plan change of tenant {tenant:?} is not marked off: its token still works"
            ),
            ConnectionOff { tenant } => {
                write!(f, "current connection of tenant {tenant:?} is marked off: its requests get 403")
            }
            TenantNotListed { tenant } => write!(f, "tenant {tenant:?} is missing from v1/tenants"),
            CountDrift { state, counted, actual } => {
                write!(f, "{counted} {state} users counted, {actual} stored")
            }
            IdMismatch { id } => write!(f, "record of id {id} stored under another id"),
            OrphanRecord { id } => write!(f, "record {id} is neither indexed nor listed"),
            NotIndexed { index, value, expected_key } => {
                write!(f, "{} {value:?} is not indexed to it (expected {expected_key})", index.name())
            }
            IndexDangling { id } => write!(f, "index entry points to {id}, which does not exist"),
            IndexStale { id } => write!(f, "index entry points to {id}, whose value maps elsewhere"),
            Duplicate { index, ids } => write!(f, "{} shared by {}", index.name(), ids.join(", ")),
            NotListed { list, id } => write!(f, "{id} missing from list {list}"),
            ListedMissing { list, id, position } => {
                write!(f, "list {list} holds {id} at {position}, which does not exist")
            }
            ListedTwice { list, id } => write!(f, "list {list} holds {id} twice"),
            ChunkLength { list, n, expected, found } => {
                write!(f, "list {list} chunk {n} holds {found} ids, expected {expected}")
            }
            ChunkBeyondEnd { list, n } => write!(f, "list {list} chunk {n} is beyond its length"),
            PositionWrong { list, id, recorded, actual } => match actual {
                Some(a) => write!(f, "list {list}: pos of {id} says {recorded}, it is at {a}"),
                None => write!(f, "list {list}: pos of {id} says {recorded}, it is not in the list"),
            },
            PositionMissing { list, id } => write!(f, "list {list}: {id} has no pos key"),
            PositionBeyondEnd { list, id, recorded } => {
                write!(f, "list {list}: pos of {id} says {recorded}, past the end")
            }
            MembershipDangling { group, user } => {
                write!(f, "membership of {user} in {group}: group or user does not exist")
            }
            MembershipNotInUserGroups { group, user } => {
                write!(f, "membership of {user} in {group} missing from the user's group set")
            }
            UserGroupsExtra { group, user } => {
                write!(f, "group set of {user} names {group}, which has no such membership")
            }
            BlockedUserPresent { id } => write!(f, "user {id} is blocked but still exists"),
            BlockNotAnchored { id, attribute, expected_key } => {
                write!(f, "block of {id}: its {attribute} is not blocked (expected {expected_key} to name it)")
            }
            BlockKeyDangling { id } => write!(f, "externalId block key names {id}, which is not blocked by it"),
        }
    }
}

/// What [`check`] looked at and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub keys: usize,
    pub tenants: usize,
    pub users: usize,
    pub groups: usize,
    pub memberships: usize,
    pub problems: Vec<Problem>,
}

impl Report {
    /// Whether any problem is a [`Severity::Error`].
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity() == Severity::Error)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} keys: {} tenants, {} users, {} groups, {} memberships; {} problems",
            self.keys,
            self.tenants,
            self.users,
            self.groups,
            self.memberships,
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// One dense list as found.
#[derive(Default)]
struct ListState {
    len: Option<(String, u64)>,
    chunks: BTreeMap<u64, (String, Vec<String>)>,
    pos: BTreeMap<String, (String, u64)>,
}

/// Everything of one tenant.
#[derive(Default)]
struct TenantState {
    users: BTreeMap<String, (String, UserRecord)>,
    groups: BTreeMap<String, (String, GroupRecord)>,
    /// index entry key → (index, ids it names)
    index: BTreeMap<String, (Index, Vec<String>)>,
    /// (group, user) → key
    memberships: BTreeMap<(String, String), String>,
    /// user → (key, groups)
    user_groups: BTreeMap<String, (String, Vec<String>)>,
    lists: BTreeMap<String, (List, ListState)>,
    /// Sums of the user-count shards.
    counts: BTreeMap<String, i64>,
    /// id → (key, block)
    blocks: BTreeMap<String, (String, Block)>,
    /// `externalId` block key → the id it names
    block_external_ids: BTreeMap<String, String>,
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, value: &[u8], problems: &mut Vec<Problem>) -> Option<T> {
    match serde_json::from_slice(value) {
        Ok(v) => Some(v),
        Err(e) => {
            problems
                .push(Problem { key: key.to_owned(), kind: ProblemKind::Corrupt { reason: e.to_string() } });
            None
        }
    }
}

/// Checks a full dump of the store. Keys outside `v1/` (a host adapter's own, such as the
/// Spin adapter's `claim/…` counters) are ignored; the caller removes host encodings
/// (tombstones are absent keys).
pub fn check<I>(dump: I) -> Report
where
    I: IntoIterator<Item = (String, Vec<u8>)>,
{
    let mut report = Report::default();
    let mut problems = Vec::new();
    let mut tenant_records: BTreeMap<String, (String, Tenant)> = BTreeMap::new();
    let mut connections: BTreeMap<String, (String, Connection)> = BTreeMap::new();
    let mut tenants: BTreeMap<String, TenantState> = BTreeMap::new();
    let mut directory: Option<(String, Vec<String>)> = None;

    for (key, value) in dump {
        if !key.starts_with("v1/") {
            continue;
        }
        report.keys += 1;
        let Some(parsed) = keys::parse(&key) else {
            problems.push(Problem { key: key.clone(), kind: ProblemKind::UnknownKey });
            continue;
        };
        match parsed {
            Key::Tenant(t) => {
                if let Some(rec) = decode::<Tenant>(&key, &value, &mut problems) {
                    tenant_records.insert(t.to_owned(), (key.clone(), rec));
                }
            }
            Key::Connection(c) => {
                if let Some(rec) = decode::<Connection>(&key, &value, &mut problems) {
                    connections.insert(c.to_owned(), (key.clone(), rec));
                }
            }
            Key::User { tenant, id } => {
                if let Some(rec) = decode::<UserRecord>(&key, &value, &mut problems) {
                    let st = tenants.entry(tenant.to_owned()).or_default();
                    st.users.insert(id.to_owned(), (key.clone(), rec));
                }
            }
            Key::Group { tenant, id } => {
                if let Some(rec) = decode::<GroupRecord>(&key, &value, &mut problems) {
                    let st = tenants.entry(tenant.to_owned()).or_default();
                    st.groups.insert(id.to_owned(), (key.clone(), rec));
                }
            }
            Key::Index { tenant, index, .. } => {
                let ids = crate::index::parse_entry(&value).into_iter().map(|h| h.id).collect();
                tenants.entry(tenant.to_owned()).or_default().index.insert(key.clone(), (index, ids));
            }
            Key::Membership { tenant, group, user } => {
                if value != b"1" {
                    problems.push(Problem {
                        key: key.clone(),
                        kind: ProblemKind::Corrupt { reason: "a membership holds \"1\"".into() },
                    });
                }
                let st = tenants.entry(tenant.to_owned()).or_default();
                st.memberships.insert((group.to_owned(), user.to_owned()), key.clone());
            }
            Key::UserGroups { tenant, user } => {
                if let Some(groups) = decode::<Vec<String>>(&key, &value, &mut problems) {
                    let st = tenants.entry(tenant.to_owned()).or_default();
                    st.user_groups.insert(user.to_owned(), (key.clone(), groups));
                }
            }
            Key::ListLen { tenant, list } => {
                if let Some(n) = decode::<u64>(&key, &value, &mut problems) {
                    list_state(&mut tenants, tenant, list).len = Some((key.clone(), n));
                }
            }
            Key::ListChunk { tenant, list, n } => {
                if let Some(ids) = decode::<Vec<String>>(&key, &value, &mut problems) {
                    list_state(&mut tenants, tenant, list).chunks.insert(n, (key.clone(), ids));
                }
            }
            Key::ListPos { tenant, list, id } => {
                if let Some(p) = decode::<u64>(&key, &value, &mut problems) {
                    list_state(&mut tenants, tenant, list).pos.insert(id.to_owned(), (key.clone(), p));
                }
            }
            Key::Tenants => {
                directory = decode::<Vec<String>>(&key, &value, &mut problems).map(|ids| (key.clone(), ids));
            }
            Key::TenantStats { tenant, .. } => {
                if let Some(c) = decode::<BTreeMap<String, i64>>(&key, &value, &mut problems) {
                    let st = tenants.entry(tenant.to_owned()).or_default();
                    for (name, n) in c {
                        *st.counts.entry(name).or_insert(0) += n;
                    }
                }
            }
            Key::ConnectionStats { .. } => {
                let _ = decode::<BTreeMap<String, i64>>(&key, &value, &mut problems);
            }
            Key::LogHead { tenant } => {
                let _ = decode::<u64>(&key, &value, &mut problems);
                tenants.entry(tenant.to_owned()).or_default();
            }
            Key::LogSlot { tenant, .. } => {
                let _ = decode::<crate::log::Entry>(&key, &value, &mut problems);
                tenants.entry(tenant.to_owned()).or_default();
            }
            Key::Block { tenant, id } => {
                if let Some(b) = decode::<Block>(&key, &value, &mut problems) {
                    let st = tenants.entry(tenant.to_owned()).or_default();
                    st.blocks.insert(id.to_owned(), (key.clone(), b));
                }
            }
            Key::BlockExternalId { tenant, .. } => {
                let id = String::from_utf8_lossy(&value).into_owned();
                tenants.entry(tenant.to_owned()).or_default().block_external_ids.insert(key.clone(), id);
            }
            Key::Session(_) => {
                // Links and sessions come and go; only their shape is checked (a session of a
                // removed user is ended on its next use).
                let _ = decode::<crate::sessions::Session>(&key, &value, &mut problems);
            }
            Key::Rate { .. } => {
                // The token bucket changes with every request; only its shape is checked.
                let _ = decode::<Value>(&key, &value, &mut problems);
            }
            Key::Lock { tenant, list } => {
                // Leases come and go with every list change; only their shape is checked.
                let _ = decode::<Value>(&key, &value, &mut problems);
                list_state(&mut tenants, tenant, list);
            }
        }
    }

    check_tenants(&tenant_records, &connections, &tenants, &mut problems);
    for t in tenant_records.keys() {
        if !directory.as_ref().is_some_and(|(_, ids)| ids.contains(t)) {
            let key = directory.as_ref().map_or_else(|| keys::TENANTS.to_owned(), |(k, _)| k.clone());
            problems.push(Problem { key, kind: ProblemKind::TenantNotListed { tenant: t.clone() } });
        }
    }
    report.tenants = tenant_records.len();
    for (t, st) in &tenants {
        report.users += st.users.len();
        report.groups += st.groups.len();
        report.memberships += st.memberships.len();
        check_tenant(t, st, &mut problems);
        let active = st.users.values().filter(|(_, u)| u.state.is_active()).count() as i64;
        let disabled = st.users.len() as i64 - active;
        for (state, actual) in [("active", active), ("disabled", disabled)] {
            let counted = st.counts.get(state).copied().unwrap_or(0);
            if counted != actual {
                problems.push(Problem {
                    key: format!("v1/t/{t}/stats/"),
                    kind: ProblemKind::CountDrift { state: state.to_owned(), counted, actual },
                });
            }
        }
    }
    problems.sort_by(|a, b| (b.severity(), &a.key).cmp(&(a.severity(), &b.key)));
    report.problems = problems;
    report
}

fn list_state<'s>(
    tenants: &'s mut BTreeMap<String, TenantState>,
    tenant: &str,
    list: List,
) -> &'s mut ListState {
    let st = tenants.entry(tenant.to_owned()).or_default();
    &mut st.lists.entry(list.name()).or_insert_with(|| (list, ListState::default())).1
}

fn check_tenants(
    tenant_records: &BTreeMap<String, (String, Tenant)>,
    connections: &BTreeMap<String, (String, Connection)>,
    tenants: &BTreeMap<String, TenantState>,
    problems: &mut Vec<Problem>,
) {
    for (t, (key, rec)) in tenant_records {
        if let Some(c) = &rec.connection {
            if connections.get(c).is_none_or(|(_, conn)| &conn.tenant != t || conn.replaced_at.is_some()) {
                problems.push(Problem {
                    key: key.clone(),
                    kind: ProblemKind::ConnectionMissing { connection: c.clone() },
                });
            }
        }
    }
    for (c, (key, conn)) in connections {
        let tenant = tenant_records.get(&conn.tenant).map(|(_, t)| t);
        let current = tenant.and_then(|t| t.connection.as_deref());
        // A connection a plan change turned off is kept to explain its 403.
        let off = tenant.and_then(|t| t.scim_off.as_ref()).map(|o| o.connection.as_str());
        let tenant = conn.tenant.clone();
        let kind = if conn.replaced_at.is_some() {
            // A Regenerate's marker (`tenants` module doc); current, it is reported above.
            None
        } else if current == Some(c.as_str()) {
            conn.off.is_some().then_some(ProblemKind::ConnectionOff { tenant })
        } else if off == Some(c.as_str()) {
            conn.off.is_none().then_some(ProblemKind::ConnectionNotOff { tenant })
        } else {
            Some(ProblemKind::ConnectionOrphan { tenant })
        };
        if let Some(kind) = kind {
            problems.push(Problem { key: key.clone(), kind });
        }
    }
    for t in tenants.keys() {
        if !tenant_records.contains_key(t) {
            problems.push(Problem {
                key: format!("v1/t/{t}/"),
                kind: ProblemKind::DataWithoutTenant { tenant: t.clone() },
            });
        }
    }
}

fn str_attr<'a>(attrs: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a str> {
    attrs.get(name).and_then(Value::as_str)
}

fn check_tenant<'a>(t: &str, st: &'a TenantState, problems: &mut Vec<Problem>) {
    // Records nothing refers to (a create that failed half-way): garbage, and left out of
    // the index and list expectations below.
    let referenced: BTreeSet<&str> =
        st.index.values().flat_map(|(_, ids)| ids.iter().map(String::as_str)).collect();
    let positioned =
        |list: List, id: &str| st.lists.get(&list.name()).is_some_and(|(_, l)| l.pos.contains_key(id));
    let mut orphans: BTreeSet<&str> = BTreeSet::new();
    let records = st.users.iter().map(|(id, (k, _))| (id, k, List::Users));
    for (id, key, list) in records.chain(st.groups.iter().map(|(id, (k, _))| (id, k, List::Groups))) {
        if !referenced.contains(id.as_str()) && !positioned(list, id) {
            orphans.insert(id.as_str());
            problems.push(Problem { key: key.clone(), kind: ProblemKind::OrphanRecord { id: id.clone() } });
        }
    }
    // Index entries each record's values map to: (entry key → ids), and record → entries.
    let mut expected: BTreeMap<String, (Index, Vec<String>)> = BTreeMap::new();
    let mut want = |ix: Index,
                    value: Option<&str>,
                    id: &str,
                    record_key: &str,
                    problems: &mut Vec<Problem>| {
        let Some(v) = value else { return };
        let entry = keys::index(t, ix, v);
        match st.index.get(&entry) {
            Some((_, holders)) if holders.iter().any(|h| h == id) => {}
            _ => problems.push(Problem {
                key: record_key.to_owned(),
                kind: ProblemKind::NotIndexed { index: ix, value: v.to_owned(), expected_key: entry.clone() },
            }),
        }
        expected.entry(entry).or_insert_with(|| (ix, Vec::new())).1.push(id.to_owned());
    };
    for (id, (key, rec)) in st.users.iter().filter(|(id, _)| !orphans.contains(id.as_str())) {
        if &rec.id != id {
            problems.push(Problem { key: key.clone(), kind: ProblemKind::IdMismatch { id: rec.id.clone() } });
        }
        // userName is required: a record without one is as wrong as an unindexed one.
        let name = str_attr(&rec.attributes, "userName").or(Some(""));
        want(Index::UserName, name, id, key, problems);
        want(Index::UserExternalId, str_attr(&rec.attributes, "externalId"), id, key, problems);
    }
    for (id, (key, rec)) in st.groups.iter().filter(|(id, _)| !orphans.contains(id.as_str())) {
        if &rec.id != id {
            problems.push(Problem { key: key.clone(), kind: ProblemKind::IdMismatch { id: rec.id.clone() } });
        }
        let name = str_attr(&rec.attributes, "displayName").or(Some(""));
        want(Index::GroupName, name, id, key, problems);
        want(Index::GroupExternalId, str_attr(&rec.attributes, "externalId"), id, key, problems);
    }
    for (entry, (ix, ids)) in &expected {
        // Only userName is unique whatever the configuration (see the module doc).
        if ids.len() > 1 && *ix == Index::UserName {
            problems.push(Problem {
                key: entry.clone(),
                kind: ProblemKind::Duplicate { index: *ix, ids: ids.clone() },
            });
        }
    }
    for (entry, (ix, ids)) in &st.index {
        for id in ids {
            // A removed user's userName entry anchors its block (`crate::blocks`).
            let anchors_block = *ix == Index::UserName
                && !st.users.contains_key(id)
                && st
                    .blocks
                    .get(id)
                    .is_some_and(|(_, b)| keys::index(t, Index::UserName, &b.user_name) == *entry);
            if anchors_block {
                continue;
            }
            let exists = match ix {
                Index::UserName | Index::UserExternalId => st.users.contains_key(id),
                Index::GroupName | Index::GroupExternalId => st.groups.contains_key(id),
            };
            let kind = if !exists {
                ProblemKind::IndexDangling { id: id.clone() }
            } else if expected.get(entry).is_none_or(|(_, want)| !want.contains(id)) {
                ProblemKind::IndexStale { id: id.clone() }
            } else {
                continue;
            };
            problems.push(Problem { key: entry.clone(), kind });
        }
    }

    // Lists: what each must hold.
    let users: BTreeSet<&str> = st.users.keys().map(String::as_str).collect();
    let groups: BTreeSet<&str> = st.groups.keys().map(String::as_str).collect();
    let mut members: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (g, u) in st.memberships.keys() {
        members.entry(g.as_str()).or_default().insert(u.as_str());
    }
    let empty = ListState::default();
    let check = |list: List, should: BTreeSet<&str>, problems: &mut Vec<Problem>| {
        let state = st.lists.get(&list.name()).map(|(_, s)| s).unwrap_or(&empty);
        check_list(t, &list, state, &should, problems);
    };
    let live = |all: &BTreeSet<&'a str>| all.iter().copied().filter(|id| !orphans.contains(id)).collect();
    check(List::Users, live(&users), problems);
    check(List::Groups, live(&groups), problems);
    check(List::Blocks, st.blocks.keys().map(String::as_str).collect(), problems);
    check_blocks(t, st, problems);
    for g in &groups {
        let should = members.get(g).cloned().unwrap_or_default();
        check(List::Members((*g).to_owned()), should, problems);
    }
    // Member lists of groups that do not exist: their memberships are reported below.
    for (list, _) in st.lists.values() {
        if let List::Members(g) = list {
            if !groups.contains(g.as_str()) {
                let should = members.get(g.as_str()).cloned().unwrap_or_default();
                check(list.clone(), should, problems);
            }
        }
    }

    // Memberships, both directions.
    for ((g, u), key) in &st.memberships {
        if !groups.contains(g.as_str()) || !users.contains(u.as_str()) {
            problems.push(Problem {
                key: key.clone(),
                kind: ProblemKind::MembershipDangling { group: g.clone(), user: u.clone() },
            });
        }
        if st.user_groups.get(u).is_none_or(|(_, gs)| !gs.contains(g)) {
            problems.push(Problem {
                key: key.clone(),
                kind: ProblemKind::MembershipNotInUserGroups { group: g.clone(), user: u.clone() },
            });
        }
    }
    for (u, (key, gs)) in &st.user_groups {
        let mut seen = BTreeSet::new();
        for g in gs {
            if !seen.insert(g) || !st.memberships.contains_key(&(g.clone(), u.clone())) {
                problems.push(Problem {
                    key: key.clone(),
                    kind: ProblemKind::UserGroupsExtra { group: g.clone(), user: u.clone() },
                });
            }
        }
    }
}

fn check_blocks(t: &str, st: &TenantState, problems: &mut Vec<Problem>) {
    for (id, (key, b)) in &st.blocks {
        if st.users.contains_key(id) {
            problems
                .push(Problem { key: key.clone(), kind: ProblemKind::BlockedUserPresent { id: id.clone() } });
        }
        let entry = keys::index(t, Index::UserName, &b.user_name);
        if st.index.get(&entry).is_none_or(|(_, holders)| !holders.contains(id)) {
            problems.push(Problem {
                key: key.clone(),
                kind: ProblemKind::BlockNotAnchored {
                    id: id.clone(),
                    attribute: "userName".into(),
                    expected_key: entry,
                },
            });
        }
        if let Some(x) = b.external_id.as_deref().filter(|_| b.external_id_blocked) {
            let ext = keys::block_external_id(t, x);
            if st.block_external_ids.get(&ext) != Some(id) {
                problems.push(Problem {
                    key: key.clone(),
                    kind: ProblemKind::BlockNotAnchored {
                        id: id.clone(),
                        attribute: "externalId".into(),
                        expected_key: ext,
                    },
                });
            }
        }
    }
    for (key, id) in &st.block_external_ids {
        let names_it = st.blocks.get(id).is_some_and(|(_, b)| {
            b.external_id_blocked
                && b.external_id.as_deref().is_some_and(|x| keys::block_external_id(t, x) == *key)
        });
        if !names_it {
            problems
                .push(Problem { key: key.clone(), kind: ProblemKind::BlockKeyDangling { id: id.clone() } });
        }
    }
}

fn check_list(t: &str, list: &List, state: &ListState, should: &BTreeSet<&str>, problems: &mut Vec<Problem>) {
    let name = list.name();
    let len = state.len.as_ref().map_or(0, |(_, n)| *n);
    let chunks = len.div_ceil(CHUNK);
    // Ids by position, as `list::page` reads them.
    let mut at: BTreeMap<&str, u64> = BTreeMap::new();
    for n in 0..chunks {
        let expected = usize::try_from((len - n * CHUNK).min(CHUNK)).unwrap_or(usize::MAX);
        let ids: &[String] = state.chunks.get(&n).map_or(&[], |(_, ids)| ids.as_slice());
        if ids.len() != expected {
            problems.push(Problem {
                key: list.chunk_key(t, n),
                kind: ProblemKind::ChunkLength { list: name.clone(), n, expected, found: ids.len() },
            });
        }
        for (i, id) in ids.iter().take(expected).enumerate() {
            let position = n * CHUNK + i as u64;
            if at.insert(id.as_str(), position).is_some() {
                problems.push(Problem {
                    key: list.chunk_key(t, n),
                    kind: ProblemKind::ListedTwice { list: name.clone(), id: id.clone() },
                });
            }
            if !should.contains(id.as_str()) {
                problems.push(Problem {
                    key: list.chunk_key(t, n),
                    kind: ProblemKind::ListedMissing { list: name.clone(), id: id.clone(), position },
                });
            }
            if !state.pos.contains_key(id) {
                problems.push(Problem {
                    key: list.pos_key(t, id),
                    kind: ProblemKind::PositionMissing { list: name.clone(), id: id.clone() },
                });
            }
        }
    }
    for (n, (key, _)) in state.chunks.range(chunks..) {
        problems.push(Problem {
            key: key.clone(),
            kind: ProblemKind::ChunkBeyondEnd { list: name.clone(), n: *n },
        });
    }
    for (id, (key, recorded)) in &state.pos {
        let actual = at.get(id.as_str()).copied();
        let kind = match actual {
            Some(a) if a == *recorded => continue,
            None if *recorded >= len => {
                ProblemKind::PositionBeyondEnd { list: name.clone(), id: id.clone(), recorded: *recorded }
            }
            _ => {
                ProblemKind::PositionWrong { list: name.clone(), id: id.clone(), recorded: *recorded, actual }
            }
        };
        problems.push(Problem { key: key.clone(), kind });
    }
    for id in should {
        if !at.contains_key(id) {
            let key = match list {
                List::Users => keys::user(t, id),
                List::Groups => keys::group(t, id),
                List::Members(g) => keys::membership(t, g, id),
                List::Blocks => keys::block(t, id),
            };
            problems.push(Problem {
                key,
                kind: ProblemKind::NotListed { list: name.clone(), id: (*id).to_owned() },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_store_is_consistent() {
        let r = check(Vec::new());
        assert_eq!(r, Report::default());
    }
}
