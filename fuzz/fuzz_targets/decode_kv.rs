#![no_main]
//! RocksDB key/value pairs of keyed state decoded by the decoder a keyed backend meta-data file
//! makes (layout: `fuzz/src/lib.rs`).
//! (The body is `flinksnap_fuzz::run`, which `tests/fuzz_regressions.rs` replays.)
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flinksnap_fuzz::run("decode_kv", data));
