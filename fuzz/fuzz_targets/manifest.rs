#![no_main]
//! A RocksDB MANIFEST: its log records read and its `VersionEdit`s replayed.
//! (The body is `flinksnap_fuzz::run`, which `tests/fuzz_regressions.rs` replays.)
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flinksnap_fuzz::run("manifest", data));
