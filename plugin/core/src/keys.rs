//! Every key scim-edge writes, in one place. Layout version `v1`.
//!
//! ```text
//! v1/tenant/{tenant}                         tenant: name, plan, current SCIM connection id
//! v1/conn/{conn}                             SCIM connection: tenant, SHA-256 of the token, createdAt, lastUsedAt
//! v1/t/{tenant}/u/{id}                       user record (state, role, SCIM resource, meta)
//! v1/t/{tenant}/g/{id}                       group record (SCIM resource without members, meta)
//! v1/t/{tenant}/ix/{index}/{value}           unique index → resource id
//!     index = userName (lower-cased), userExternalId, groupName (lower-cased), groupExternalId
//! v1/t/{tenant}/m/{group}/{user}             membership: present ⇔ user is a member of group
//! v1/t/{tenant}/ug/{user}                    ids of the groups the user belongs to (JSON array)
//! v1/t/{tenant}/list/{list}/len              dense list of ids: its length
//! v1/t/{tenant}/list/{list}/c/{n}            ids at positions n*CHUNK .. (n+1)*CHUNK
//! v1/t/{tenant}/list/{list}/pos/{id}         an id's position in the list
//! v1/t/{tenant}/lock/{list}                  lease that serialises a list's mutations
//!     list = users, groups, members.{group}
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
pub fn user(t: &str, id: &str) -> String {
    format!("v1/t/{t}/u/{id}")
}
pub fn group(t: &str, id: &str) -> String {
    format!("v1/t/{t}/g/{id}")
}

/// The unique indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    /// Case-insensitive (RFC 7643: `userName` is caseExact=false).
    UserName,
    UserExternalId,
    /// Case-insensitive; Entra requires unique group display names.
    GroupName,
    GroupExternalId,
}

impl Index {
    fn name(self) -> &'static str {
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
}

impl List {
    fn name(&self) -> String {
        match self {
            List::Users => "users".into(),
            List::Groups => "groups".into(),
            List::Members(g) => format!("members.{g}"),
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
    fn tenant_and_id_validation() {
        assert!(valid_tenant("acme-1"));
        assert!(!valid_tenant("a/b"));
        assert!(!valid_tenant(".."));
        assert!(!valid_tenant(""));
        assert!(valid_id("0123456789abcdef0123456789abcdef"));
        assert!(!valid_id("../../v1/tenant/x"));
    }
}
