//! The PATCH engine on arbitrary documents and operations. The input is a JSON document in
//! the shape of the core's PATCH fixtures (`plugin/core/tests/fixtures/patch/*.json`):
//! `{"kind": "User"|"Group", "before": {…}, "request": {…}}`; the fixtures are the seeds.
//!
//! Checked: nothing panics; `apply` is all or nothing (an error leaves the document as it
//! was); a successful result is a fixed point of `schema::normalize` (what is stored can be
//! stored again unchanged); and the request itself run through `normalize` as a POST/PUT
//! body never panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_edge_core::scim::patch;
use scim_edge_core::scim::schema::{self, ResourceKind};
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<Value>(data) else { return };
    let kind = match doc.get("kind").and_then(Value::as_str) {
        Some("Group") => ResourceKind::Group,
        _ => ResourceKind::User,
    };
    let before = doc.get("before").cloned().unwrap_or(Value::Null);
    let request = doc.get("request").cloned().unwrap_or(Value::Null);

    // What the store would hold (normalised), or, when the document does not normalise, the
    // raw object: `apply` must not panic on anything.
    let mut attrs = match schema::normalize(kind, &before) {
        Ok(a) => {
            assert_eq!(
                schema::normalize(kind, &Value::Object(a.clone())).as_ref(),
                Ok(&a),
                "normalize is idempotent"
            );
            a
        }
        Err(_) => before.as_object().cloned().unwrap_or_default(),
    };
    let _ = schema::normalize(kind, &request);

    let Ok(ops) = patch::parse_request(&request) else { return };
    let ops = match kind {
        ResourceKind::Group => match patch::split_members(ops) {
            Ok((rest, _changes)) => rest,
            Err(_) => return,
        },
        ResourceKind::User => ops,
    };
    let original: Map<String, Value> = attrs.clone();
    match patch::apply(kind, &mut attrs, &ops) {
        Ok(()) => {
            let again = schema::normalize(kind, &Value::Object(attrs.clone()));
            assert_eq!(again.as_ref(), Ok(&attrs), "a patched document is stored as normalised");
        }
        Err(e) => {
            assert_eq!(attrs, original, "a failed PATCH ({e:?}) leaves the document unchanged");
            assert_ne!(e.status.as_u16(), 500, "only an engine bug is a 500: {e:?}");
        }
    }
});
