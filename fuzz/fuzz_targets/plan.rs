#![no_main]
//! A job's plan (compiled or REST) and compat's TARGET JSON.
//! (The body is `flinksnap_fuzz::run`, which `tests/fuzz_regressions.rs` replays.)
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flinksnap_fuzz::run("plan", data));
