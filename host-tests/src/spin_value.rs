//! The Spin adapter's value encoding (`plugin/spin/src/store.rs`), for what reads Spin's store
//! from outside the component: the test targets, the consistency checks, `scim-edge-fsck`.
//!
//! - `0x02` ‖ write id (8 bytes) ‖ prev (8 bytes) ‖ the core's bytes: a live value;
//! - `0x03` ‖ write id ‖ prev: a tombstone (the key is absent for the core);
//! - the earlier encoding, still read by the adapter: `0x01` ‖ bytes (live), `0x00` (tombstone);
//! - `claim/…` and `claimtake/…` keys are the adapter's create-if-absent counters (SQLite: an
//!   8-byte `i64`, Redis: decimal ASCII), `claimseen/…` the times (decimal milliseconds) a
//!   claimed key was first found unwritten; none is the core's.

/// A value of the Spin adapter.
#[derive(Debug, PartialEq, Eq)]
pub enum SpinValue<'a> {
    /// The core's bytes.
    Live(&'a [u8]),
    Tombstone,
}

/// Tag, write id, prev.
const HEADER: usize = 17;

/// `None`: not a value the adapter writes.
pub fn decode(raw: &[u8]) -> Option<SpinValue<'_>> {
    match raw.first()? {
        0x02 => raw.get(HEADER..).map(SpinValue::Live),
        0x03 if raw.len() == HEADER => Some(SpinValue::Tombstone),
        0x01 => raw.get(1..).map(SpinValue::Live),
        0x00 if raw.len() == 1 => Some(SpinValue::Tombstone),
        _ => None,
    }
}

/// The core's bytes of a live value; `None` for a tombstone or a foreign value.
pub fn live(raw: &[u8]) -> Option<&[u8]> {
    match decode(raw)? {
        SpinValue::Live(v) => Some(v),
        SpinValue::Tombstone => None,
    }
}

/// True for the adapter's own keys: claim counters (`claim/`, `claimtake/`) and the times a
/// claimed, unwritten key was first noticed (`claimseen/`).
pub fn is_claim(key: &str) -> bool {
    ["claim/", "claimseen/", "claimtake/"].iter().any(|p| key.starts_with(p))
}

/// The store as [`scim_edge_core::consistency::check`] wants it: every live key with the
/// core's bytes, tombstones and claim counters left out. Keys whose value the adapter did not
/// write come back in the second list.
pub fn core_entries(
    raw: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    let (mut entries, mut foreign) = (Vec::new(), Vec::new());
    for (key, value) in raw {
        if is_claim(&key) {
            continue;
        }
        match decode(&value) {
            Some(SpinValue::Live(v)) => entries.push((key, v.to_vec())),
            Some(SpinValue::Tombstone) => {}
            None => foreign.push(key),
        }
    }
    (entries, foreign)
}

/// Keys whose `claim/…` counter exists but which hold nothing, not even a tombstone: a creator
/// won the claim and never wrote the key (it died between the two, or is writing it right now).
/// A create of it 30 s after one first found it so takes it over (see
/// `plugin/spin/src/store.rs`, "A claimer that died").
pub fn unwritten_claims(raw: &[(String, Vec<u8>)]) -> Vec<String> {
    let keys: std::collections::BTreeSet<&str> = raw.iter().map(|(k, _)| k.as_str()).collect();
    raw.iter()
        .filter_map(|(k, _)| k.strip_prefix("claim/"))
        .filter(|k| !keys.contains(k))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_encodings_and_claims() {
        let mut v2 = vec![0x02];
        v2.extend_from_slice(&[7; 16]);
        v2.extend_from_slice(b"{}");
        assert_eq!(decode(&v2), Some(SpinValue::Live(b"{}")));
        assert_eq!(decode(&[&[0x03][..], &[1; 16]].concat()), Some(SpinValue::Tombstone));
        assert_eq!(decode(b"\x01{}"), Some(SpinValue::Live(b"{}")));
        assert_eq!(decode(&[0x00]), Some(SpinValue::Tombstone));
        assert_eq!(decode(b"1"), None);
        let (entries, foreign) = core_entries([
            ("v1/a".to_owned(), v2.clone()),
            ("v1/b".to_owned(), vec![0x00]),
            ("claim/v1/a".to_owned(), b"1".to_vec()),
            ("v1/c".to_owned(), b"x".to_vec()),
        ]);
        assert_eq!(entries, vec![("v1/a".to_owned(), b"{}".to_vec())]);
        assert_eq!(foreign, vec!["v1/c".to_owned()]);
        let raw = vec![
            ("claim/v1/a".to_owned(), b"1".to_vec()),
            ("claim/v1/gone".to_owned(), b"1".to_vec()),
            ("v1/a".to_owned(), v2),
        ];
        assert_eq!(unwritten_claims(&raw), vec!["v1/gone".to_owned()]);
    }
}
