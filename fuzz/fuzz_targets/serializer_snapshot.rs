#![no_main]
//! A serializer snapshot as state meta data stores it (`TypeSerializerSnapshotSerializationProxy`).
//! (The body is `flinksnap_fuzz::run`, which `tests/fuzz_regressions.rs` replays.)
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flinksnap_fuzz::run("serializer_snapshot", data));
