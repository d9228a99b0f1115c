//! Writing snapshots as functions returning typed reports (each serializes to the `data` of the
//! command's JSON output, `formats/cli-json.md`), on [`default_storage`]: [`convert`] (a
//! canonical savepoint any state backend restores, optionally with another max parallelism),
//! [`edit`] (the same with operators renamed or dropped, states dropped, keys forgotten),
//! `import` (an export's Parquet files back into a snapshot's states, with the `parquet`
//! feature) and [`relocate`] (a snapshot and every file it references, self-contained).
//! Sources are only read; targets are written under a temporary name and published at the end.

use std::sync::Arc;

use super::default_storage;
use crate::error::Result;
use crate::storage::Storage;
pub use crate::writers::savepoint::DEFAULT_MEMORY_BUDGET;
pub use crate::writers::stream::{DEFAULT_INLINE_THRESHOLD, MAX_INLINE_THRESHOLD};
pub use crate::writers::{Compression, ConvertOptions, ConvertReport, EditOptions, EditReport, ForgetKey, KeyInput, RelocateOptions, RelocateReport, Relocation};
#[cfg(feature = "parquet")]
pub use crate::import::{ImportOptions, ImportReport};

/// Writes the snapshot at `src` (any checkpoint or savepoint flinksnap reads, a directory or its
/// `_metadata`) as a canonical savepoint directory `dst` that Flink restores into any state
/// backend (`flinksnap convert`); with [`ConvertOptions::max_parallelism`], every key moved to
/// its key group for the new max parallelism. An existing `dst` is refused unless
/// [`ConvertOptions::force`].
///
/// ```
/// # let src = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/flink-2.3.0/rocksdb-checkpoint-incremental/884d27de0abb2ce22241dffc7fbb6ee8/chk-4");
/// # let tmp = tempfile::tempdir()?;
/// use flinksnap::{convert, ConvertOptions, Snapshot};
/// // A RocksDB incremental checkpoint into a savepoint for any backend, with 256 key groups.
/// let dst = tmp.path().join("savepoint").display().to_string();
/// let opts = ConvertOptions { max_parallelism: Some(256), ..ConvertOptions::default() };
/// let report = convert(src, &dst, &opts)?;
/// assert!(report.keyed_entries > 0);
/// let written = Snapshot::open(&dst)?;
/// assert!(written.operators().iter().filter(|o| o.keyed_state).all(|o| o.max_parallelism == 256));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn convert(src: &str, dst: &str, opts: &ConvertOptions) -> Result<ConvertReport> {
    convert_with(default_storage(), src, dst, opts)
}

/// [`convert`], reading and writing through `storage` (e.g. [`storage_with`](super::storage_with)
/// an endpoint and credentials): `dst` may be an object-store URL, `_metadata` written last.
pub fn convert_with(storage: Arc<dyn Storage>, src: &str, dst: &str, opts: &ConvertOptions) -> Result<ConvertReport> {
    crate::writers::convert(storage, src, dst, opts)
}

/// Writes the snapshot at `src` as [`convert`] does, with the edits of `opts` applied on the way
/// (`flinksnap edit`, spec `formats/edit.md`): operators renamed ([`EditOptions::renames`]) or
/// dropped, states dropped, keys forgotten in every state, namespace and timer of an operator,
/// key groups filtered. With [`EditOptions::dry_run`] nothing is written (`dst` may be `None`)
/// and the report says what would change.
///
/// ```
/// # let src = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/flink-2.3.0/heap-savepoint-canonical/savepoint-ae4c95-ff41c5f424ab");
/// # let tmp = tempfile::tempdir()?;
/// use flinksnap::{edit, EditOptions, ForgetKey, KeyInput, Snapshot};
/// // Erase key "k03" from every state of operator `keyed-string`.
/// let opts = EditOptions {
///     forget_keys: vec![ForgetKey { target: "keyed-string".into(), key: KeyInput::Json("k03".into()) }],
///     ..EditOptions::default()
/// };
/// let dst = tmp.path().join("erased").display().to_string();
/// let report = edit(src, Some(&dst), &opts)?;
/// assert!(report.forgotten_keys[0].entries_removed > 0);
/// // The written savepoint holds no entry of the key any more.
/// let scan = Snapshot::open(&dst)?.scan().operator("keyed-string").build()?;
/// for entry in scan.entries() {
///     assert_ne!(entry?.key.map(|k| k.to_json()), Some("k03".into()));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn edit(src: &str, dst: Option<&str>, opts: &EditOptions) -> Result<EditReport> {
    edit_with(default_storage(), src, dst, opts)
}

/// [`edit`], reading and writing through `storage`.
pub fn edit_with(storage: Arc<dyn Storage>, src: &str, dst: Option<&str>, opts: &EditOptions) -> Result<EditReport> {
    crate::writers::edit(storage, src, dst, opts)
}

/// Writes the snapshot at `into` with the states of an export directory `from` (what
/// [`Scan::export`](super::Scan::export) writes as Parquet, with its `manifest.json`, edited
/// with any tool) as a canonical savepoint `dst` (`flinksnap import`, spec `formats/import.md`):
/// each file's rows replace all entries of its state, read with the serializers the snapshot
/// registered for it, each key placed in the key group Flink assigns it. States without a file
/// are kept. With [`ImportOptions::dry_run`] every file is read and checked, nothing written.
///
/// ```
/// # let src = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/flink-2.3.0/heap-savepoint-canonical/savepoint-ae4c95-ff41c5f424ab");
/// # let tmp = tempfile::tempdir()?;
/// use flinksnap::{import, ExportOptions, ImportOptions, NoProgress, Snapshot};
/// // Export one state to Parquet (edit the files with any tool here), then import it back.
/// let export = tmp.path().join("export");
/// let scan = Snapshot::open(src)?.scan().operator("keyed-long").state("v-long").build()?;
/// let manifest = scan.export(&ExportOptions::new(&export), &NoProgress)?;
/// let dst = tmp.path().join("imported").display().to_string();
/// let report = import(export.to_str().unwrap(), src, Some(&dst), &ImportOptions::default())?;
/// assert_eq!(report.states[0].rows, manifest.totals.rows);
/// assert_eq!(report.states[0].replaced, manifest.totals.rows);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "parquet")]
pub fn import(from: &str, into: &str, dst: Option<&str>, opts: &ImportOptions) -> Result<ImportReport> {
    import_with(default_storage(), from, into, dst, opts)
}

/// [`import`], reading the export directory and the snapshot and writing through `storage`.
#[cfg(feature = "parquet")]
pub fn import_with(storage: Arc<dyn Storage>, from: &str, into: &str, dst: Option<&str>, opts: &ImportOptions) -> Result<ImportReport> {
    crate::import::import(storage, from, into, dst, opts)
}

/// Writes a new savepoint `dst` from an export directory alone (bootstrapping a job's state):
/// every operator of the manifest is created (id from its uid as Flink derives it), with max
/// parallelism `opts.convert.max_parallelism` (required) and parallelism `opts.parallelism`
/// (default 1); serializers from the files' built-in column types (spec: `formats/import.md`).
#[cfg(feature = "parquet")]
pub fn bootstrap(from: &str, dst: Option<&str>, opts: &ImportOptions) -> Result<ImportReport> {
    bootstrap_with(default_storage(), from, dst, opts)
}

/// [`bootstrap`], reading and writing through `storage`.
#[cfg(feature = "parquet")]
pub fn bootstrap_with(storage: Arc<dyn Storage>, from: &str, dst: Option<&str>, opts: &ImportOptions) -> Result<ImportReport> {
    crate::import::bootstrap(storage, from, dst, opts)
}

/// Copies the snapshot at `src` together with every file it references (shared files of earlier
/// checkpoints, file-merging segments, changelog files) into the directory `dst`, its
/// `_metadata` rewritten to relative paths, so the copy restores from wherever it is moved
/// (`flinksnap relocate`). The copy is read back before it is published. To see the plan first,
/// or to follow the bytes copied: [`Relocation::plan`] and [`Relocation::execute`].
///
/// ```
/// # let src = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/flink-2.3.0/rocksdb-checkpoint-incremental/884d27de0abb2ce22241dffc7fbb6ee8/chk-4");
/// # let tmp = tempfile::tempdir()?;
/// use flinksnap::{relocate, RelocateOptions, Snapshot};
/// let dst = tmp.path().join("chk-4").display().to_string();
/// let report = relocate(src, &dst, &RelocateOptions::default())?;
/// // The checkpoint's shared SST files came along.
/// assert!(report.files.iter().any(|f| f.outside));
/// assert_eq!(Snapshot::open(&dst)?.checkpoint_id(), report.checkpoint_id);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn relocate(src: &str, dst: &str, opts: &RelocateOptions) -> Result<RelocateReport> {
    relocate_with(default_storage(), src, dst, opts)
}

/// [`relocate`], reading and writing through `storage`.
pub fn relocate_with(storage: Arc<dyn Storage>, src: &str, dst: &str, opts: &RelocateOptions) -> Result<RelocateReport> {
    crate::writers::relocate(storage, src, dst, opts)
}
