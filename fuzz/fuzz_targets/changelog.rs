#![no_main]
//! A changelog checkpoint: materialized heap-checkpoint state and one DSTL file, replayed
//! (layout: `fuzz/src/lib.rs`).
//! (The body is `flinksnap_fuzz::run`, which `tests/fuzz_regressions.rs` replays.)
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flinksnap_fuzz::run("changelog", data));
