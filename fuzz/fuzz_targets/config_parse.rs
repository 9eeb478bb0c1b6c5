//! `Config::from_json` on arbitrary text: no panic, and whatever it accepts is consistent
//! (the invariants the service relies on without re-checking).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_edge_core::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Ok(c) = Config::from_json(s) else { return };
    assert!(c.default_page_size >= 1 && c.default_page_size <= c.max_page_size, "{c:?}");
    if let Some(u) = &c.public_base_url {
        assert!(!u.ends_with('/') && (u.starts_with("https://") || u.starts_with("http://")), "{c:?}");
    }
    let l = &c.limits;
    assert!(l.max_body_bytes >= 4096 && l.max_json_depth >= 8 && l.max_filter_length >= 256, "{c:?}");
    assert!((1..=scim_edge_core::scim::filter::MAX_NESTING).contains(&l.max_filter_depth), "{c:?}");
    assert!(l.max_patch_operations >= 1 && l.max_members_per_request >= 1, "{c:?}");
    assert!(l.max_value_bytes <= l.max_resource_bytes && l.max_resource_bytes <= l.max_body_bytes, "{c:?}");
    // What is accepted is accepted again the same way.
    assert_eq!(Config::from_json(s).as_ref(), Ok(&c));
});
