#![no_main]
//! A Java serialization stream (header and one object), and its JSON form.
//! (The body is `flinksnap_fuzz::run`, which `tests/fuzz_regressions.rs` replays.)
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flinksnap_fuzz::run("java_serialization", data));
