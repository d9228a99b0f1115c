//! The one integration-test binary (`autotests = false`): fixture-driven tests against snapshots
//! that real Flink wrote (`testdata/`, made by `cargo xtask fixtures`).

mod util;

mod compat;
mod convert;
mod cross_job;
mod custom_serializer;
mod dump;
mod edit;
mod encode;
mod export;
mod fuzz_regressions;
mod import;
mod inspect;
mod manage;
mod metadata;
mod no_uids;
mod offsets;
mod oracle;
mod relocate;
mod rocksdb_native;
mod sql;
mod sql_write;
mod threads;
mod stores;
