#![no_main]
//! An `OperatorBackendSerializationProxy` (the head of every operator-state file).
//! (The body is `flinksnap_fuzz::run`, which `tests/fuzz_regressions.rs` replays.)
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flinksnap_fuzz::run("operator_backend_meta", data));
