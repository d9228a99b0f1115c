//! The one integration-test binary (`autotests = false`): fixture-driven tests against snapshots
//! that real Flink wrote (`testdata/`, made by `cargo xtask fixtures`).

mod util;

mod dump;
mod inspect;
mod metadata;
mod rocksdb_native;
