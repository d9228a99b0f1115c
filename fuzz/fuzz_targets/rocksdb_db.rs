#![no_main]
//! A RocksDB database from its files (`CURRENT`, MANIFEST, tables; layout: `fuzz/src/lib.rs`):
//! opened, then every column family read through the merge of its tables (deletes, range
//! tombstones, merge operands), checksums checked.
//! (The body is `flinksnap_fuzz::run`, which `tests/fuzz_regressions.rs` replays.)
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flinksnap_fuzz::run("rocksdb_db", data));
