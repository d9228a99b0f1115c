//! flinksnap opens Apache Flink state snapshots (checkpoints and savepoints) without a JVM.
//!
//! The modules follow the pipeline, each layer using only those before it:
//! - [`bytes`]: the big-endian cursor every binary reader uses (offsets in every error);
//! - [`storage`]: where snapshot files live: local files, object stores (S3, GCS, Azure,
//!   S3-compatible) and HDFS behind one trait, read and written;
//! - [`metadata`]: the `_metadata` file and its state handles;
//! - [`model`]: Flink's identifiers (operator ids, key groups), the backend-independent model;
//! - [`readers`]: state files (serializer snapshots, keyed and operator state) into the model;
//! - [`snapshot`]: a snapshot opened from storage: metadata plus resolved file references,
//!   its kind and FLIP-47 properties;
//! - [`manage`]: verify, latest, refs, gc, stats and diff over snapshots and their directories;
//! - [`writers`]: the model back into Flink's formats (a canonical savepoint directory);
//! - [`export`]: a snapshot's states into Parquet (typed by their serializers), CSV or JSONL;
//! - `cli` (binary only): one module per subcommand.
//!
//! Cargo features:
//! - `rocksdb` (default): keyed state of RocksDB native snapshots through the bundled RocksDB
//!   (a C++ build that needs libclang); without it such state is reported as unreadable.
//! - `cloud` (default): `s3://`, `gs://`, `abfss://`, `wasbs://`, `oss://` and the other object
//!   store URLs, through `object_store` (ring TLS, no C beyond ring's).
//! - `hdfs`: `hdfs://` and `viewfs://` through `hdfs-native-object-store` (pure Rust).
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
pub mod snapshot;
pub mod storage;
pub mod writers;

pub use error::{Error, Result};
