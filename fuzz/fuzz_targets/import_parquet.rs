#![no_main]
//! A Parquet file in the export layout read back as one keyed state's entries, as `flinksnap
//! import` reads it, with the state's registration from a keyed backend meta-data file (layout:
//! `fuzz/src/lib.rs`).
//! (The body is `flinksnap_fuzz::run`, which `tests/fuzz_regressions.rs` replays.)
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flinksnap_fuzz::run("import_parquet", data));
