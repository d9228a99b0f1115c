//! flinksnap opens Apache Flink state snapshots (checkpoints and savepoints) without a JVM.
//!
//! The modules follow the pipeline, each layer using only those before it:
//! - [`bytes`]: the big-endian cursor every binary reader uses (offsets in every error);
//! - [`storage`]: where snapshot files live (local files now; object stores fit behind the same
//!   trait);
//! - [`metadata`]: the `_metadata` file and its state handles;
//! - [`model`]: Flink's identifiers (operator ids, key groups), the backend-independent model;
//! - [`rocksdb_files`]: RocksDB's SST and MANIFEST files read in Rust (the RocksDB and ForSt
//!   backends' native snapshots), through ranged reads;
//! - [`readers`]: state files (serializer snapshots, keyed and operator state) into the model;
//! - [`snapshot`]: a snapshot opened from storage: metadata plus resolved file references,
//!   its kind and FLIP-47 properties;
//! - [`manage`]: verify, latest, refs, gc, stats and diff over snapshots and their directories;
//! - [`writers`]: the model back into Flink's formats (a canonical savepoint directory);
//! - [`export`]: a snapshot's states into Parquet (typed by their serializers), CSV or JSONL;
//! - `cli` (binary only): one module per subcommand.
//!
//! Cargo features:
//! - `rocksdb` (off by default): RocksDB native state can also be read through the RocksDB C++
//!   library (a C++ build that needs libclang): the differential test compares both readers,
//!   `FLINKSNAP_ROCKSDB_READER=librocksdb` makes the CLI use it (benchmarks).
#![deny(missing_docs, missing_debug_implementations)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod bytes;
pub mod error;
pub mod manage;
pub mod export;
pub mod metadata;
pub mod model;
pub mod readers;
pub mod rocksdb_files;
pub mod snapshot;
pub mod storage;
pub mod writers;

pub use error::{Error, Result};
