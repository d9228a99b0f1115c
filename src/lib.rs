//! flinksnap opens Apache Flink state snapshots (checkpoints and savepoints) without a JVM.
//!
//! # Reading state
//!
//! Open a snapshot, look at what it holds, and scan its state into Arrow record batches (the
//! columns `flinksnap export` writes, typed from each state's serializers) or decoded entries;
//! split a scan into partitions that run elsewhere. The API ([`api`]) follows delta-kernel-rs:
//! snapshot → scan → batches.
//!
//! ```
//! # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/flink-2.3.0/heap-savepoint-canonical/savepoint-ae4c95-ff41c5f424ab");
//! use flinksnap::Snapshot;
//!
//! let snapshot = Snapshot::open(dir)?;
//! for state in snapshot.states()? {
//!     println!("{} {} {:?}: {} columns", state.operator_id, state.name, state.kind, state.schema.fields().len());
//! }
//! // Every entry of a map state of one operator, decoded.
//! let scan = snapshot.scan().operator("keyed-string").state("map").build()?;
//! for entry in scan.entries() {
//!     let entry = entry?;
//!     println!("{:?} {:?} = {:?}", entry.key, entry.user_key, entry.value);
//! }
//! # Ok::<(), flinksnap::Error>(())
//! ```
//!
//! Checking and cleaning up snapshot directories: [`verify`], [`latest`], [`refs`], [`stats`],
//! [`gc`], [`delete`]. Comparing snapshots: [`diff`], [`compat`] (will it restore into the new
//! job?). Where the sources stand: [`Snapshot::source_positions`].
//!
//! # Writing snapshots
//!
//! Every writer produces Flink's canonical savepoint (restorable into any state backend) or a
//! self-contained copy, from any snapshot flinksnap reads; sources are only read:
//! [`convert`] (optionally with another max parallelism), [`edit`] (operators renamed or
//! dropped, states dropped, keys forgotten), `import` (an export's Parquet files back into a
//! snapshot's states, with the `parquet` feature), [`relocate`]. Each has a `_with` variant
//! taking a [`Storage`] (object-store endpoints and credentials).
//!
//! ```
//! # let src = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/flink-2.3.0/heap-savepoint-canonical/savepoint-ae4c95-ff41c5f424ab");
//! # let tmp = tempfile::tempdir()?;
//! # let (rescaled, renamed) = (tmp.path().join("rescaled").display().to_string(), tmp.path().join("renamed").display().to_string());
//! use flinksnap::{convert, edit, ConvertOptions, EditOptions, Snapshot};
//! // For a job with max parallelism 1024: every key moved to its new key group.
//! let opts = ConvertOptions { max_parallelism: Some(1024), ..ConvertOptions::default() };
//! convert(src, &rescaled, &opts)?;
//! // The new job calls the operator `strings`, and no longer has the state `v-pojo`.
//! let opts = EditOptions {
//!     renames: vec![("keyed-string".into(), "strings".into())],
//!     drop_states: vec!["keyed-string/v-pojo".into()],
//!     ..EditOptions::default()
//! };
//! let report = edit(&rescaled, Some(&renamed), &opts)?;
//! assert_eq!(report.dropped_states[0].state, "v-pojo");
//! let states = Snapshot::open(&renamed)?.with_uids(["strings"]).states()?;
//! assert!(states.iter().any(|s| s.operator_uid.as_deref() == Some("strings")));
//! assert!(!states.iter().any(|s| s.name == "v-pojo"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layers
//!
//! The modules follow the pipeline, each layer using only those before it (a test checks it):
//! - [`consts`]: Flink's format constants more than one layer needs;
//! - [`error`]: errors, with typed positions (file offset, decompressed offset, offset inside a
//!   stored value) and "unsupported" apart from corruption;
//! - [`bytes`]: the big-endian cursor every binary reader uses (typed offsets in every error);
//! - [`storage`]: where snapshot files live: local files, object stores (S3, GCS, Azure,
//!   S3-compatible) and HDFS behind one trait, read and written;
//! - [`rocksdb_files`]: RocksDB's SST and MANIFEST files read in Rust (the RocksDB and ForSt
//!   backends' native snapshots), through ranged reads of any [`FileSource`](rocksdb_files::FileSource);
//! - [`model`]: Flink's identifiers (operator ids, key groups) and the backend-independent
//!   [`Entry`](model::Entry) every reader produces, with where it was read;
//! - [`java_serialization`]: Java object serialization streams (checkpoint properties, TTL
//!   configs, `JavaSerializer` values) as an object graph and as values;
//! - [`metadata`]: the `_metadata` file and its state handles;
//! - [`snapshot`]: a snapshot opened from storage: metadata plus resolved file references,
//!   its kind and FLIP-47 properties;
//! - [`plan`]: a job's plan (compiled SQL plan or REST job plan) tied to a snapshot's
//!   operators: which SQL node holds which state;
//! - [`readers`]: state files (serializer snapshots, keyed and operator state) into the model;
//!   keyed state of every kind through one [`KeyedSource`](readers::source::KeyedSource);
//! - [`manage`]: verify, latest, refs, gc, stats, diff and compat over snapshots and their
//!   directories;
//! - [`writers`]: the model back into Flink's formats (a canonical savepoint directory);
//! - [`export`]: a snapshot's states into Parquet (typed by their serializers), CSV or JSONL;
//!   the Arrow schema and record batches of each state;
//! - `import`: an export's Parquet files back into a snapshot's states, written as a canonical
//!   savepoint (with the `parquet` feature);
//! - [`api`]: the public front door: [`Snapshot`] → [`Scan`] → Arrow batches or entries,
//!   [`Partition`]s, and the management, writing and comparing functions with their options
//!   and reports (re-exported here);
//! - `cli` (binary only, feature `cli`): one module per subcommand.
//!
//! # Cargo features
//!
//! - `cli` (default): the `flinksnap` binary (clap, indicatif, anyhow); implies `parquet`. A
//!   library user turns default features off and gets none of these.
//! - `parquet` (default): [`export::export`] writing Parquet files (the parquet crate). Arrow
//!   record batches ([`Scan::batches`]) need only arrow-array and arrow-schema, always built.
//! - `cloud` (default): `s3://`, `gs://`, `abfss://`, `wasbs://`, `oss://` and the other object
//!   store URLs, through `object_store` (ring TLS, no C beyond ring's).
//! - `hdfs`: `hdfs://` and `viewfs://` through `hdfs-native-object-store` (pure Rust).
//! - `rocksdb` (off by default): RocksDB native state can also be read through the RocksDB C++
//!   library (a C++ build that needs libclang): the differential test compares both readers,
//!   `FLINKSNAP_ROCKSDB_READER=librocksdb` makes the CLI use it (benchmarks).
//!
//! A lean library build (local files only, no Parquet writer): `flinksnap = { version = "0.1",
//! default-features = false }`; add `features = ["cloud"]` to read object store URLs.
#![deny(missing_docs, missing_debug_implementations)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod api;
pub mod bytes;
pub mod consts;
pub mod error;
pub mod export;
#[cfg(feature = "parquet")]
pub mod import;
pub mod java_serialization;
pub mod manage;
pub mod metadata;
pub mod model;
pub mod plan;
pub mod readers;
pub mod rocksdb_files;
pub mod snapshot;
pub mod storage;
pub mod writers;

pub use api::{
    compat, compat_with, convert, convert_with, delete, delete_with, describe_job, describe_job_with, diff, diff_with, edit, edit_with, gc, gc_with,
    kafka_offset_marker, latest, latest_with, refs, refs_with, relocate, relocate_with, stats, stats_threads, stats_with, verify, verify_on, verify_with, CompatOptions,
    CompatReport, CompatSeverity, CompatTargetKind, CompatVerdict, Compression, ConvertOptions, ConvertReport, DeleteFile, DeleteOptions, DeletePlan,
    DiffOptions, DiffReport, EditOptions, EditReport, EntryDiff, EnumeratorState, ExportFormat, ExportOptions, FlinkVersion, ForgetKey, GcOptions,
    GcPlan, JobDescription, KeyInput, LatestReport, Manifest, NoProgress, OperatorInfo, ParquetCompression, Part, Partition, PlanOptions, Progress, RefsReport,
    RegisteredState, RelocateOptions, RelocateReport, Relocation, Scan, ScanBatches, ScanBuilder, ScanEntries, ScopeRoot, Snapshot, SourcePositions,
    Split, StatsReport, Storage, StorageOptions, Storages, VerifyLevel, VerifyReport, DEFAULT_INLINE_THRESHOLD, DEFAULT_MEMORY_BUDGET,
    MAX_INLINE_THRESHOLD,
};
#[cfg(feature = "parquet")]
pub use api::{bootstrap, bootstrap_with, import, import_with, ImportOptions, ImportReport};
pub use error::{Error, Result};

/// The module order the crate documentation gives is the one the code keeps.
#[cfg(test)]
mod layering {
    use std::path::{Path, PathBuf};

    /// The top-level modules in the order the crate documentation lists them (`- [`name`]` or
    /// `` - `name` `` items of the module list).
    fn documented_order() -> Vec<String> {
        let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
        lib.lines()
            .take_while(|l| l.starts_with("//!"))
            .skip_while(|l| !l.contains("The modules follow the pipeline"))
            .take_while(|l| l.trim_end() != "//!")
            .filter_map(|l| l.strip_prefix("//! - "))
            .filter_map(|l| {
                let name = l.trim_start_matches(['[', '`']);
                let end = name.find(['`', ']'])?;
                Some(name[..end].to_owned())
            })
            .collect()
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// The names `lib.rs` re-exports from `api` (its `pub use api::{…}` lists).
    fn api_reexports() -> Vec<String> {
        let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
        let mut names = Vec::new();
        let mut rest = lib.as_str();
        while let Some(i) = rest.find("pub use api::{") {
            let list = &rest[i + "pub use api::{".len()..];
            let end = list.find('}').unwrap();
            names.extend(list[..end].split(',').map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()));
            rest = &list[end..];
        }
        names
    }

    /// Every `crate::X` (and in the binary `flinksnap::X`) a file names: the module `X`, or the
    /// layer a root re-export comes from.
    fn uses(text: &str, prefix: &str, api_names: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let after = &rest[i + prefix.len()..];
            let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            // `crate::Result` and `crate::Error` are re-exports of `error`; the other root
            // re-exports are `api`'s, but for a module of the same name (`import`) used as a
            // path.
            let is_path = after[name.len()..].starts_with("::") && !name.starts_with(|c: char| c.is_ascii_uppercase());
            out.push(match name.as_str() {
                "Result" | "Error" => "error".to_owned(),
                n if !is_path && api_names.iter().any(|a| a == n) => "api".to_owned(),
                _ => name,
            });
            rest = after;
        }
        out
    }

    #[test]
    fn each_layer_uses_only_the_layers_before_it() {
        let order = documented_order();
        for m in ["consts", "error", "bytes", "storage", "model", "metadata", "snapshot", "readers", "manage", "writers", "export", "api", "cli"] {
            assert!(order.iter().any(|o| o == m), "lib.rs does not document module {m}: {order:?}");
        }
        let api_names = api_reexports();
        for n in ["Snapshot", "verify", "convert", "import", "diff", "compat", "delete", "relocate", "edit"] {
            assert!(api_names.iter().any(|a| a == n), "lib.rs does not re-export {n} from api: {api_names:?}");
        }
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut checked = 0;
        for (i, module) in order.iter().enumerate() {
            let mut files = Vec::new();
            let dir = src.join(module);
            if dir.is_dir() {
                rust_files(&dir, &mut files);
            }
            let file = src.join(format!("{module}.rs"));
            if file.is_file() {
                files.push(file);
            }
            assert!(!files.is_empty(), "no source for module {module}");
            let later = &order[i + 1..];
            for f in files {
                // Code only: documentation may mention any module.
                let text: String = std::fs::read_to_string(&f)
                    .unwrap()
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let prefix = if module == "cli" { "flinksnap::" } else { "crate::" };
                for used in uses(&text, prefix, &api_names) {
                    assert!(
                        !later.contains(&used),
                        "{} (layer {module}) uses crate::{used}, a later layer: lib.rs documents the order {order:?}",
                        f.strip_prefix(&src).unwrap().display()
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 200, "only {checked} uses found: is the parsing right?");
    }
}
