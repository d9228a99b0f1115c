#![no_main]
//! An operator-state file and the states its handle lays out (layout: `fuzz/src/lib.rs`).
//! (The body is `flinksnap_fuzz::run`, which `tests/fuzz_regressions.rs` replays.)
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flinksnap_fuzz::run("operator_state", data));
