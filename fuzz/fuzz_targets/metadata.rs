#![no_main]
//! `_metadata` files.
//! (The body is `flinksnap_fuzz::run`, which `tests/fuzz_regressions.rs` replays.)
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flinksnap_fuzz::run("metadata", data));
