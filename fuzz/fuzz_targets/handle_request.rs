//! Whole requests (admin and SCIM) through `scim_edge_core::handle` over the in-memory store:
//! see `scim_edge_fuzz` (fuzz/src/lib.rs) for the input format, the pre-seeded world and the
//! oracles.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_edge_fuzz::{Script, World};

fuzz_target!(|script: Script| {
    World::new().run(&script);
});
