#![no_main]
//! One RocksDB table file (block-based, any format version): footer, meta blocks, properties,
//! index and range tombstones opened, then every entry iterated; once without and once with
//! block checksums checked.
//! (The body is `flinksnap_fuzz::run`, which `tests/fuzz_regressions.rs` replays.)
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flinksnap_fuzz::run("sst", data));
