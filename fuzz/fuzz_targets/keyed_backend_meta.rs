#![no_main]
//! A `KeyedBackendSerializationProxy` (the head of every keyed-state file, RocksDB's meta-data file).
//! (The body is `flinksnap_fuzz::run`, which `tests/fuzz_regressions.rs` replays.)
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flinksnap_fuzz::run("keyed_backend_meta", data));
