//! Every key scim-edge writes, in one place. Layout version `v1`.
//!
//! ```text
//! v1/tenant/{tenant}                         tenant: name, plan, current SCIM connection id
//! v1/conn/{conn}                             SCIM connection: tenant, SHA-256 of the token, createdAt, lastUsedAt
//! v1/t/{tenant}/u/{id}                       user record (state, role, SCIM resource, meta)
//! v1/t/{tenant}/g/{id}                       group record (SCIM resource without members, meta)
//! v1/t/{tenant}/ix/{index}/{value}           index entry → the resources with that value, one
//!                                            "{resource id} {claimed at, ms}" line each
//!     index = userName (lower-cased), userExternalId, groupName (lower-cased), groupExternalId
//!     userName is unique (one line); the others name up to `index::MAX_HOLDERS` resources
//!     unless the config key `uniqueness` makes them unique (`crate::index`)
//! v1/t/{tenant}/m/{group}/{user}             membership: present ⇔ user is a member of group
//! v1/t/{tenant}/ug/{user}                    ids of the groups the user belongs to (JSON array)
//! v1/t/{tenant}/list/{list}/len              dense list of ids: its length
//! v1/t/{tenant}/list/{list}/c/{n}            ids at positions n*CHUNK .. (n+1)*CHUNK
//! v1/t/{tenant}/list/{list}/pos/{id}         an id's position in the list
//! v1/t/{tenant}/lock/{list}                  lease that serialises a list's mutations
//!     list = users, groups, members.{group}, blocks
//! v1/t/{tenant}/block/{id}                   block a manual removal of user {id} left (`crate::blocks`):
//!                                            userName, externalId, when, by whom. Its userName's
//!                                            index entry (`ix/userName/…`) stays, pointing at {id}
//! v1/t/{tenant}/block/externalId/{value}     the id of the block on an externalId (case-sensitive)
//! v1/t/{tenant}/rate                         the tenant's rate-limit token bucket (when rateLimit is on)
//! v1/t/{tenant}/stats/{shard}                user counts by state (sharded counters, `crate::counters`)
//! v1/t/{tenant}/log/head                     provisioning log: the next sequence number (a hint)
//! v1/t/{tenant}/log/s/{slot}                 provisioning log entry `seq` at slot `seq % logSize`
//! v1/tenants                                 ids of every tenant (JSON array, sorted)
//! v1/conn/{conn}/stats/{shard}               SCIM connection's request and failure counts (sharded)
//! v1/session/{id}                            sign-in link and the browser session it becomes
//!                                            (`crate::sessions`): tenant, user, SHA-256 of the
//!                                            link secret and of the session secret, limits
//! ```
//!
//! Tenant names are validated by [`valid_tenant`] before they reach a key; resource ids are
//! the core's own (32 lower-case hex digits, checked by [`valid_id`]); every other segment
//! that comes from a client goes through [`segment`], which escapes `/` (and everything
//! outside a small safe set) so it cannot leave its tenant's key space, and hashes very
//! long values so keys stay bounded.

use sha2::{Digest, Sha256};

/// Positions per list chunk: a chunk write stays a few KiB.
pub const CHUNK: u64 = 128;

/// Longest escaped segment kept verbatim; longer ones are replaced by a hash.
const MAX_SEGMENT: usize = 180;

pub fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && t != "."
        && t != ".."
}

/// Ids the core generates: 32 lower-case hex digits (128 random bits).
pub fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Escapes a client-supplied value into one key segment.
pub fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b'+') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push_str(&hex::encode([b]));
        }
    }
    if out.len() > MAX_SEGMENT || out == "." || out == ".." || out.is_empty() {
        return format!("~{}", hex::encode(Sha256::digest(value.as_bytes())));
    }
    out
}

pub fn tenant(t: &str) -> String {
    format!("v1/tenant/{t}")
}
pub fn connection(conn: &str) -> String {
    format!("v1/conn/{conn}")
}
/// A sign-in link and, once used, its browser session (`crate::sessions`); `id` is the core's.
pub fn session(id: &str) -> String {
    format!("v1/session/{id}")
}
pub fn user(t: &str, id: &str) -> String {
    format!("v1/t/{t}/u/{id}")
}
pub fn group(t: &str, id: &str) -> String {
    format!("v1/t/{t}/g/{id}")
}

/// The indexes (which are unique: `crate::index::is_unique`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    /// Case-insensitive (RFC 7643: `userName` is caseExact=false).
    UserName,
    UserExternalId,
    /// Case-insensitive (group `displayName` is caseExact=false).
    GroupName,
    GroupExternalId,
}

impl Index {
    pub const ALL: [Index; 4] =
        [Index::UserName, Index::UserExternalId, Index::GroupName, Index::GroupExternalId];

    /// The index's name in its keys (`v1/t/{tenant}/ix/{name}/…`).
    pub fn name(self) -> &'static str {
        match self {
            Index::UserName => "userName",
            Index::UserExternalId => "userExternalId",
            Index::GroupName => "groupName",
            Index::GroupExternalId => "groupExternalId",
        }
    }
    fn case_insensitive(self) -> bool {
        matches!(self, Index::UserName | Index::GroupName)
    }
}

pub fn index(t: &str, ix: Index, value: &str) -> String {
    let v = if ix.case_insensitive() { value.to_lowercase() } else { value.to_owned() };
    format!("v1/t/{t}/ix/{}/{}", ix.name(), segment(&v))
}

/// A block left by the manual removal of user `id` (`crate::blocks`).
pub fn block(t: &str, id: &str) -> String {
    format!("v1/t/{t}/block/{id}")
}
/// The block on an `externalId` (case-sensitive, like the attribute): holds the block's id.
pub fn block_external_id(t: &str, value: &str) -> String {
    format!("v1/t/{t}/block/externalId/{}", segment(value))
}

/// The tenant's token bucket (`crate::rate`).
pub fn rate(t: &str) -> String {
    format!("v1/t/{t}/rate")
}

/// Every tenant's id.
pub const TENANTS: &str = "v1/tenants";

pub fn tenant_stats(t: &str, shard: u8) -> String {
    format!("v1/t/{t}/stats/{shard}")
}
pub fn connection_stats(conn: &str, shard: u8) -> String {
    format!("v1/conn/{conn}/stats/{shard}")
}
pub fn log_head(t: &str) -> String {
    format!("v1/t/{t}/log/head")
}
pub fn log_slot(t: &str, slot: u64) -> String {
    format!("v1/t/{t}/log/s/{slot}")
}

pub fn membership(t: &str, group: &str, user: &str) -> String {
    format!("v1/t/{t}/m/{group}/{user}")
}
pub fn user_groups(t: &str, user: &str) -> String {
    format!("v1/t/{t}/ug/{user}")
}

/// A dense list of ids with O(1) add and remove (swap-remove) and O(1) access by position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum List {
    Users,
    Groups,
    Members(String),
    /// The tenant's blocks (`crate::blocks`), for the admin API's list.
    Blocks,
}

impl List {
    /// The list's name in its keys (`users`, `groups`, `members.{group}`).
    pub fn name(&self) -> String {
        match self {
            List::Users => "users".into(),
            List::Groups => "groups".into(),
            List::Members(g) => format!("members.{g}"),
            List::Blocks => "blocks".into(),
        }
    }
    pub fn len_key(&self, t: &str) -> String {
        format!("v1/t/{t}/list/{}/len", self.name())
    }
    pub fn chunk_key(&self, t: &str, n: u64) -> String {
        format!("v1/t/{t}/list/{}/c/{n}", self.name())
    }
    pub fn pos_key(&self, t: &str, id: &str) -> String {
        format!("v1/t/{t}/list/{}/pos/{id}", self.name())
    }
    pub fn lock_key(&self, t: &str) -> String {
        format!("v1/t/{t}/lock/{}", self.name())
    }
}

/// A key of the layout above, taken apart (the inverse of the functions of this module), for
/// tools that read a whole store: [`crate::consistency`], the operator's `scim-edge-fsck`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key<'a> {
    Tenant(&'a str),
    Connection(&'a str),
    Session(&'a str),
    User {
        tenant: &'a str,
        id: &'a str,
    },
    Group {
        tenant: &'a str,
        id: &'a str,
    },
    /// `segment` is the escaped (possibly hashed) value, as in the key.
    Index {
        tenant: &'a str,
        index: Index,
        segment: &'a str,
    },
    Membership {
        tenant: &'a str,
        group: &'a str,
        user: &'a str,
    },
    UserGroups {
        tenant: &'a str,
        user: &'a str,
    },
    ListLen {
        tenant: &'a str,
        list: List,
    },
    ListChunk {
        tenant: &'a str,
        list: List,
        n: u64,
    },
    ListPos {
        tenant: &'a str,
        list: List,
        id: &'a str,
    },
    Lock {
        tenant: &'a str,
        list: List,
    },
    Rate {
        tenant: &'a str,
    },
    Block {
        tenant: &'a str,
        id: &'a str,
    },
    /// `segment` is the escaped (possibly hashed) externalId, as in the key.
    BlockExternalId {
        tenant: &'a str,
        segment: &'a str,
    },
    Tenants,
    TenantStats {
        tenant: &'a str,
        shard: u8,
    },
    ConnectionStats {
        connection: &'a str,
        shard: u8,
    },
    LogHead {
        tenant: &'a str,
    },
    LogSlot {
        tenant: &'a str,
        slot: u64,
    },
}

impl Key<'_> {
    /// The tenant the key belongs to (its owner, for `v1/tenant/{t}`); `None` for connections.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Key::Connection(_) | Key::ConnectionStats { .. } | Key::Tenants | Key::Session(_) => None,
            Key::Tenant(tenant)
            | Key::User { tenant, .. }
            | Key::Group { tenant, .. }
            | Key::Index { tenant, .. }
            | Key::Membership { tenant, .. }
            | Key::UserGroups { tenant, .. }
            | Key::ListLen { tenant, .. }
            | Key::ListChunk { tenant, .. }
            | Key::ListPos { tenant, .. }
            | Key::Lock { tenant, .. }
            | Key::Rate { tenant }
            | Key::Block { tenant, .. }
            | Key::BlockExternalId { tenant, .. }
            | Key::TenantStats { tenant, .. }
            | Key::LogHead { tenant }
            | Key::LogSlot { tenant, .. } => Some(tenant),
        }
    }
}

fn parse_list(name: &str) -> Option<List> {
    match name {
        "users" => Some(List::Users),
        "groups" => Some(List::Groups),
        "blocks" => Some(List::Blocks),
        _ => name.strip_prefix("members.").filter(|g| valid_id(g)).map(|g| List::Members(g.to_owned())),
    }
}

/// Takes a key apart; `None` for anything that is not exactly a key of this layout (wrong
/// shape, invalid tenant name or id, an unescaped segment).
pub fn parse(key: &str) -> Option<Key<'_>> {
    let rest = key.strip_prefix("v1/")?;
    if rest == "tenants" {
        return Some(Key::Tenants);
    }
    if let Some(t) = rest.strip_prefix("tenant/") {
        return valid_tenant(t).then_some(Key::Tenant(t));
    }
    if let Some(c) = rest.strip_prefix("conn/") {
        if let Some((c, shard)) = c.split_once("/stats/") {
            let shard = parse_shard(shard)?;
            return valid_id(c).then_some(Key::ConnectionStats { connection: c, shard });
        }
        return valid_id(c).then_some(Key::Connection(c));
    }
    if let Some(id) = rest.strip_prefix("session/") {
        return valid_id(id).then_some(Key::Session(id));
    }
    let rest = rest.strip_prefix("t/")?;
    let (tenant, rest) = rest.split_once('/')?;
    if !valid_tenant(tenant) {
        return None;
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let key = match parts.as_slice() {
        ["u", id] if valid_id(id) => Key::User { tenant, id },
        ["g", id] if valid_id(id) => Key::Group { tenant, id },
        ["ix", name, seg] if is_segment(seg) => {
            let index = Index::ALL.into_iter().find(|i| i.name() == *name)?;
            Key::Index { tenant, index, segment: seg }
        }
        ["m", group, user] if valid_id(group) && valid_id(user) => Key::Membership { tenant, group, user },
        ["ug", user] if valid_id(user) => Key::UserGroups { tenant, user },
        ["list", list, "len"] => Key::ListLen { tenant, list: parse_list(list)? },
        ["list", list, "c", n] if is_decimal(n) => {
            Key::ListChunk { tenant, list: parse_list(list)?, n: n.parse().ok()? }
        }
        ["list", list, "pos", id] if valid_id(id) => Key::ListPos { tenant, list: parse_list(list)?, id },
        ["lock", list] => Key::Lock { tenant, list: parse_list(list)? },
        ["rate"] => Key::Rate { tenant },
        ["block", id] if valid_id(id) => Key::Block { tenant, id },
        ["block", "externalId", seg] if is_segment(seg) => Key::BlockExternalId { tenant, segment: seg },
        ["stats", n] => Key::TenantStats { tenant, shard: parse_shard(n)? },
        ["log", "head"] => Key::LogHead { tenant },
        ["log", "s", n] if is_decimal(n) => Key::LogSlot { tenant, slot: n.parse().ok()? },
        _ => return None,
    };
    Some(key)
}

fn parse_shard(n: &str) -> Option<u8> {
    if is_decimal(n) {
        n.parse().ok()
    } else {
        None
    }
}

/// A chunk number as `chunk_key` writes it: decimal, no leading zero.
fn is_decimal(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 20
        && n.bytes().all(|b| b.is_ascii_digit())
        && (n == "0" || !n.starts_with('0'))
}

/// Whether `s` could be a [`segment`] output.
fn is_segment(s: &str) -> bool {
    if let Some(h) = s.strip_prefix('~') {
        return h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    }
    !s.is_empty()
        && s.len() <= MAX_SEGMENT
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b'+' | b'%'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cannot_escape_the_tenant() {
        assert_eq!(segment("a/b"), "a%2fb");
        assert!(segment("..").starts_with('~'));
        assert!(!segment("x\0y").contains('\0'));
        assert!(segment(&"x".repeat(1000)).len() < 80);
        assert_eq!(index("t1", Index::UserName, "Bob@X.com"), "v1/t/t1/ix/userName/bob@x.com");
        assert_ne!(index("t1", Index::UserExternalId, "A"), index("t1", Index::UserExternalId, "a"));
    }

    #[test]
    fn every_key_parses_back() {
        let (t, id, g) = ("acme.1", "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210");
        let members = List::Members(g.to_owned());
        let cases = [
            (tenant(t), Key::Tenant(t)),
            (connection(id), Key::Connection(id)),
            (session(id), Key::Session(id)),
            (user(t, id), Key::User { tenant: t, id }),
            (group(t, g), Key::Group { tenant: t, id: g }),
            (membership(t, g, id), Key::Membership { tenant: t, group: g, user: id }),
            (user_groups(t, id), Key::UserGroups { tenant: t, user: id }),
            (List::Users.len_key(t), Key::ListLen { tenant: t, list: List::Users }),
            (List::Groups.chunk_key(t, 12), Key::ListChunk { tenant: t, list: List::Groups, n: 12 }),
            (members.chunk_key(t, 0), Key::ListChunk { tenant: t, list: members.clone(), n: 0 }),
            (members.pos_key(t, id), Key::ListPos { tenant: t, list: members.clone(), id }),
            (members.lock_key(t), Key::Lock { tenant: t, list: members.clone() }),
            (rate(t), Key::Rate { tenant: t }),
            (block(t, id), Key::Block { tenant: t, id }),
            (block_external_id(t, "a/B"), Key::BlockExternalId { tenant: t, segment: "a%2fB" }),
            (List::Blocks.pos_key(t, id), Key::ListPos { tenant: t, list: List::Blocks, id }),
            (TENANTS.to_owned(), Key::Tenants),
            (tenant_stats(t, 7), Key::TenantStats { tenant: t, shard: 7 }),
            (connection_stats(id, 3), Key::ConnectionStats { connection: id, shard: 3 }),
            (log_head(t), Key::LogHead { tenant: t }),
            (log_slot(t, 999), Key::LogSlot { tenant: t, slot: 999 }),
        ];
        for (key, want) in cases {
            assert_eq!(parse(&key), Some(want), "{key}");
        }
        for value in ["Bob@X.com", "a/b", "..", "x\0y", &"é".repeat(300), "\u{202e}evil"] {
            for ix in Index::ALL {
                let key = index(t, ix, value);
                assert!(matches!(parse(&key), Some(Key::Index { index, .. }) if index == ix), "{key}");
            }
        }
        for bad in [
            "v1/t/a/b/u/x",
            "v1/t/../u/0123456789abcdef0123456789abcdef",
            "v1/tenant/a/b",
            "v1/t/t/u/0123456789ABCDEF0123456789ABCDEF",
            "v1/t/t/ix/userName/a/b",
            "v1/t/t/ix/other/a",
            "v1/t/t/list/c/01",
            "v1/t/t/list/users/c/01",
            "v1/t/t/list/members.x/len",
            "v2/tenant/t",
            "claim/v1/tenant/t",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn tenant_and_id_validation() {
        assert!(valid_tenant("acme-1"));
        assert!(!valid_tenant("a/b"));
        assert!(!valid_tenant(".."));
        assert!(!valid_tenant(""));
        assert!(valid_id("0123456789abcdef0123456789abcdef"));
        assert!(!valid_id("../../v1/tenant/x"));
    }
}
