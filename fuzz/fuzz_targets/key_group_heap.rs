#![no_main]
//! A key-grouped keyed-state file in the heap checkpoint format (probed as for real checkpoints), with its key-group offsets
//! and max parallelism (layout: `fuzz/src/lib.rs`).
//! (The body is `flinksnap_fuzz::run`, which `tests/fuzz_regressions.rs` replays.)
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flinksnap_fuzz::run("key_group_heap", data));
