//! `flinksnap export`: every selected state of a snapshot into one file per operator and state
//! (Parquet with typed columns, or CSV / JSONL in the dump form), plus a `manifest.json`.
//! Spec: `formats/parquet-export.md`.
//!
//! Structure:
//! - [`schema`]: a serializer snapshot into an Arrow column (type, nullability, metadata);
//! - `arrays`: decoded values into Arrow arrays of that column;
//! - [`state`]: the columns of one state and a batch of its entries as a `RecordBatch`;
//! - [`sink`]: the output files, written under a temporary name and renamed when complete;
//! - this module: the plan (states from the serialization proxies, so empty states get a typed
//!   file too), the threads (the pieces of [`crate::readers::parallel`]: workers read a subtask
//!   or key-group range each and encode chunks of entries into record batches, which are
//!   appended to their files in snapshot order), and the manifest.
//!
//! Memory stays bounded whatever the state size: entries are read one at a time
//! ([`SnapshotEntries`], which decodes a key group through a window of its bytes, never the
//! whole key group), buffered per state up to a fixed number of rows or bytes, written as one
//! record batch, and Parquet row groups are closed when the writers' buffers grow past a limit.
//! What grows with the state, up to that limit, is the row groups the Parquet writers buffer;
//! what grows with `threads` is a fixed buffer per thread and the chunks in flight.

pub(crate) mod arrays;
pub mod schema;
pub(crate) mod sql;
pub mod sink;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{Entry, OperatorId, RawParts};
use crate::readers::entries::{Selection, SnapshotEntries};
use crate::readers::parallel::{self, Piece};
use crate::readers::states::subtask_states;
use crate::readers::undecodable::Undecodable;
use crate::snapshot::{Snapshot, Summary};
use crate::storage::{LocalStorage, Location, PutMode, Storage};
use sink::{Finished, StateFile};
use state::{keys, ColumnSummary, StateLayout};

/// The manifest's file name in the export directory.
pub const MANIFEST: &str = "manifest.json";

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Parquet (zstd-compressed unless [`ExportOptions::compression`] says otherwise), typed
    /// columns from the serializers.
    Parquet,
    /// CSV, the columns of `flinksnap dump --format csv`.
    Csv,
    /// JSON lines, the `flinksnap dump` format.
    Jsonl,
}

impl ExportFormat {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Parquet => "parquet",
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl => "jsonl",
        }
    }
}

/// The codec of exported Parquet files' pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParquetCompression {
    /// zstd level 3 (the default): the smallest files of these, at the most CPU.
    #[default]
    Zstd,
    /// Snappy: what most Parquet writers use by default.
    Snappy,
    /// LZ4 (Parquet's `LZ4_RAW` codec).
    Lz4,
    /// Uncompressed.
    None,
}

impl ParquetCompression {
    /// The name `export --compression` and the manifest use.
    pub fn as_str(self) -> &'static str {
        match self {
            ParquetCompression::Zstd => "zstd",
            ParquetCompression::Snappy => "snappy",
            ParquetCompression::Lz4 => "lz4",
            ParquetCompression::None => "none",
        }
    }
}

/// What to export, where, how.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The export directory: a local path, or a URL (`s3://bucket/exports/x`) of [`Self::storage`].
    pub dir: PathBuf,
    /// Where the files are written (local files by default).
    pub storage: Arc<dyn Storage>,
    /// Output format.
    pub format: ExportFormat,
    /// Which operators and states (its `raw` does not matter: exports never read stored bytes).
    pub selection: Selection,
    /// Operator uids by operator id, for operators the metadata stores without one.
    pub uids: BTreeMap<OperatorId, String>,
    /// Write into a non-empty directory, replacing what an earlier export listed there.
    pub force: bool,
    /// Threads reading and encoding (at least 1): subtasks and key-group ranges of their keyed
    /// state are read in parallel, and their rows appended to the files in snapshot order.
    pub threads: usize,
    /// Rows per record batch (and per buffered chunk of text).
    pub batch_rows: usize,
    /// The Parquet files' codec (ignored for CSV and JSONL).
    pub compression: ParquetCompression,
}

impl ExportOptions {
    /// Options with the defaults: Parquet, every state, one thread per core, 8192-row batches.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ExportOptions {
            dir: dir.into(),
            storage: Arc::new(LocalStorage),
            format: ExportFormat::Parquet,
            selection: Selection::default(),
            uids: BTreeMap::new(),
            force: false,
            threads: parallel::default_threads(),
            batch_rows: 8192,
            compression: ParquetCompression::Zstd,
        }
    }
}

/// A chunk of entries of one state is written once it holds this many bytes (as stored, estimated: `Entry::size_hint`), even
/// with fewer than `batch_rows` rows: large values must not make a batch large.
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Everything one reading thread buffers across states is handed on once it holds this many
/// bytes (as stored, estimated; decoded entries take two to three times that). The same for any number of
/// threads, so the chunks, and with them the files' row groups, are too.
const THREAD_BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// Emptied chunk buffers a reading thread keeps for reuse (see `Reader::read_piece`).
const SPARE_CHUNKS: usize = 4;
/// What a piece's first chunks may reserve, at most, for the entries the largest chunks of their
/// files held in other pieces (see `Reader::chunk_rows`).
const HINTED_RESERVE_BYTES: usize = 32 * 1024 * 1024;
/// Encoded chunks the reading threads hold ahead of the writer, at most (about).
const READ_AHEAD_BYTES: usize = 32 * 1024 * 1024;

/// Told how an export progresses (e.g. to draw a progress bar). Calls come from any thread.
pub trait Progress: Sync {
    /// Reading starts; `total_bytes` of state files are to be read.
    fn start(&self, _total_bytes: u64) {}
    /// `rows` more rows were written.
    fn rows(&self, _rows: u64) {}
    /// A subtask's state files (`bytes`) are read.
    fn bytes(&self, _bytes: u64) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// `manifest.json`: what an export wrote, from which snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// The flinksnap version that wrote it.
    pub flinksnap_version: &'static str,
    /// Output format.
    pub format: ExportFormat,
    /// The snapshot exported.
    pub snapshot: ManifestSnapshot,
    /// One entry per operator and state, in snapshot order.
    pub states: Vec<ManifestState>,
    /// The exported states whose serializer snapshot flinksnap does not know: their entries are
    /// in their files, the values (or keys) untyped (`{"class", "hex"}`, Binary in Parquet).
    pub untyped: Vec<ManifestUntyped>,
    /// What could not be exported: states whose registration could not be read (they have no
    /// file) and stored entries that could not be delimited, per operator, subtask and state,
    /// with the serializer class and the reason. Empty when every stored entry was exported.
    pub undecodable: Vec<ManifestUndecodable>,
    /// Sums over `states`.
    pub totals: ManifestTotals,
    /// How the export ran.
    pub run: ManifestRun,
}

/// The snapshot an export came from.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestSnapshot {
    /// The snapshot directory, as given.
    pub path: String,
    /// Its `_metadata`.
    pub metadata: String,
    /// Checkpoint id.
    pub checkpoint_id: u64,
    /// `_metadata` format version.
    pub metadata_version: i32,
    /// The Flink releases that write that version.
    pub written_by: &'static str,
    /// `savepoint` or `checkpoint`.
    pub snapshot_type: serde_json::Value,
    /// Keyed-state format.
    pub format: serde_json::Value,
    /// Bytes of state files (and inline state) the snapshot references.
    pub state_bytes: u64,
}

/// One exported state.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestState {
    /// Operator id.
    pub operator_id: String,
    /// Operator uid, when known.
    pub operator_uid: Option<String>,
    /// State name.
    pub state: String,
    /// State kind.
    pub kind: &'static str,
    /// The file, relative to the export directory.
    pub file: String,
    /// Rows.
    pub rows: u64,
    /// File size.
    pub bytes: u64,
    /// Values kept opaque (serializers flinksnap cannot interpret).
    pub opaque_values: u64,
    /// Parquet row groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_groups: Option<usize>,
    /// Parquet columns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnSummary>,
}

/// An exported state of a serializer flinksnap does not know (see [`Manifest::untyped`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestUntyped {
    /// Operator id.
    pub operator_id: String,
    /// Operator uid, when known.
    pub operator_uid: Option<String>,
    /// State name.
    pub state: String,
    /// State kind.
    pub kind: &'static str,
    /// The serializer snapshot class flinksnap does not know.
    pub class: String,
    /// Which serializer holds it, by its role in the registration, lower case: `value`,
    /// `namespace`, `key` (broadcast state's map keys; for keyed state the keyed backend's key
    /// serializer: every state's keys are untyped then).
    pub serializer: String,
    /// The state's file, relative to the export directory.
    pub file: String,
}

/// Something not exported (see [`Manifest::undecodable`]): the reader's record, with the
/// operator's uid.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestUndecodable {
    /// Operator uid, when known.
    pub operator_uid: Option<String>,
    /// What was not decoded: `operator_id`, `subtask`, `state` (null where its name could not be
    /// read), `state_index`, `kind` (`registration`, `entries`), `class`, `entries` (stored
    /// entries not exported, where known), `key_groups`, `file` and `position` in the snapshot,
    /// `reason`.
    #[serde(flatten)]
    pub record: Undecodable,
}

/// Sums over the exported states.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ManifestTotals {
    /// States (= files).
    pub states: usize,
    /// Rows.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Opaque values.
    pub opaque_values: u64,
    /// States in [`Manifest::untyped`] (distinct operator and state).
    pub untyped_states: usize,
    /// States in [`Manifest::undecodable`] (distinct operator and state, or registration).
    pub undecodable_states: usize,
}

/// How the export ran (the one part of the manifest that differs between runs).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ManifestRun {
    /// Threads used.
    pub threads: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Snapshot state bytes read per second.
    pub snapshot_bytes_per_second: f64,
    /// Peak resident memory of the process (Linux), bytes.
    pub peak_rss_bytes: Option<u64>,
}

/// Exports `snapshot` as `opts` says and writes the manifest, which it returns. On failure
/// nothing is left under a final name except what an earlier export wrote.
pub fn export(snapshot: &Snapshot, opts: &ExportOptions, progress: &dyn Progress) -> Result<Manifest> {
    let started = Instant::now();
    // Exported rows hold decoded values only: the stored bytes are never copied.
    let opts = &ExportOptions { selection: Selection { raw: RawParts::None, ..opts.selection.clone() }, ..opts.clone() };
    if cfg!(not(feature = "parquet")) && opts.format == ExportFormat::Parquet {
        return Err(sink::parquet_unsupported());
    }
    let dir = Location::new(&opts.dir.to_string_lossy());
    let storage = opts.storage.as_ref();
    let earlier = prepare_dir(storage, &dir, opts.force)?;
    let uid_names: Vec<String> = opts.uids.values().cloned().collect();
    let summary = Summary::build(snapshot, &uid_names)?;
    let uid_of = |op: &crate::metadata::OperatorState| op.uid.clone().or_else(|| opts.uids.get(&op.operator_id).cloned());

    let file_meta: Vec<(String, String)> = vec![
        (keys::VERSION.into(), env!("CARGO_PKG_VERSION").into()),
        (keys::SNAPSHOT.into(), summary.path.clone()),
        (keys::CHECKPOINT_ID.into(), summary.checkpoint_id.to_string()),
        (keys::METADATA_VERSION.into(), summary.metadata_version.to_string()),
        (keys::WRITTEN_BY.into(), summary.written_by.into()),
    ];

    // The plan: every state every selected subtask declares, one file per (operator, state),
    // in snapshot order. A state declared by several subtasks must have the same columns in
    // each (Flink registers it with the same serializers everywhere).
    let units = SnapshotEntries::subtasks(snapshot, &opts.selection);
    let mut files: Vec<StateFile> = Vec::new();
    let mut index: HashMap<(usize, bool, String), usize> = HashMap::new();
    let mut names = Names::default();
    let mut untyped: Vec<ManifestUntyped> = Vec::new();
    let result = (|| -> Result<()> {
        for &sub in &units {
            let op = &snapshot.metadata.operators[sub.operator];
            let uid = uid_of(op);
            for info in subtask_states(snapshot, &opts.selection, sub)? {
                let key = (sub.operator, info.kind.is_keyed(), info.name().to_owned());
                let layout = StateLayout::new(&info, uid.as_deref(), &file_meta)
                    .map_err(|e| Error::Invalid(format!("{}: operator {}: {e}", snapshot.metadata_location, op.operator_id)))?;
                if let Some(&i) = index.get(&key) {
                    if files[i].layout.schema.fields() != layout.schema.fields() {
                        return Err(Error::Invalid(format!(
                            "{}: operator {} state {:?}: subtasks registered it with different serializers",
                            snapshot.metadata_location,
                            op.operator_id,
                            info.name()
                        )));
                    }
                    continue;
                }
                let relative = names.file(sub.operator, &op.operator_id, uid.as_deref(), info.name(), info.kind.is_keyed(), opts.format);
                untyped.extend(info.unknown_serializers().into_iter().map(|(serializer, class)| ManifestUntyped {
                    operator_id: op.operator_id.to_hex(),
                    operator_uid: uid.clone(),
                    state: info.name().to_owned(),
                    kind: info.kind.as_str(),
                    class,
                    serializer,
                    file: relative.clone(),
                }));
                files.push(StateFile::create(layout, opts.storage.clone(), &dir, relative, opts.format, opts.compression, &file_meta)?);
                index.insert(key, files.len() - 1);
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        files.iter().for_each(StateFile::abandon);
        return Err(e);
    }

    // The pieces of the snapshot (subtasks, key-group ranges of their keyed state) are read
    // and encoded into record batches (or text) on `threads` threads and appended to their
    // files here, in snapshot order ([`crate::readers::parallel`]): every file's rows come in
    // the same order whatever the number of threads, and at most about `READ_AHEAD_BYTES` of
    // chunks wait for the writer.
    let threads = opts.threads.max(1);
    let pieces = parallel::pieces(snapshot, &opts.selection, threads);
    progress.start(pieces.iter().map(|p| p.bytes).sum());
    let buffered = AtomicUsize::new(0);
    let mut undecodable: Vec<Undecodable> = Vec::new();
    let mut subtask_touched: BTreeSet<usize> = BTreeSet::new();
    let chunk_rows: Vec<AtomicUsize> = files.iter().map(|_| AtomicUsize::new(0)).collect();
    let reader = Reader { snapshot, opts, index: &index, files: &files, chunk_rows: &chunk_rows };
    let read = parallel::ordered(
        &pieces,
        threads,
        READ_AHEAD_BYTES,
        |job| match job {
            Job::Chunk { chunk, .. } => chunk.memory_size(),
            Job::PieceDone { undecodable, .. } => 256 * (1 + undecodable.len()),
        },
        |piece, emit| reader.read_piece(piece, emit),
        |job| {
            match job {
                Job::Chunk { file, chunk, rows, opaque } => {
                    files[file].append(chunk, rows, opaque, &buffered)?;
                    progress.rows(rows);
                }
                Job::PieceDone { touched, undecodable: u, bytes, ends_subtask } => {
                    // Row groups are cut where a subtask ends, not a piece: the files are the
                    // same for any number of threads.
                    subtask_touched.extend(touched);
                    if ends_subtask {
                        for i in std::mem::take(&mut subtask_touched) {
                            files[i].subtask_done(&buffered)?;
                        }
                    }
                    for u in u {
                        Undecodable::merge_into(&mut undecodable, u);
                    }
                    progress.bytes(bytes);
                }
            }
            Ok(())
        },
    );
    if let Err(e) = read {
        files.iter().for_each(StateFile::abandon);
        return Err(e);
    }

    let mut states = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let done: Finished = match f.finish() {
            Ok(d) => d,
            Err(e) => {
                // Files already renamed go too: a half export must not look like a whole one.
                files[..i].iter().for_each(StateFile::remove);
                files[i..].iter().for_each(StateFile::abandon);
                return Err(e);
            }
        };
        let l = &f.layout;
        states.push(ManifestState {
            operator_id: l.operator_id.to_hex(),
            operator_uid: l.operator_uid.clone(),
            state: l.name.clone(),
            kind: l.kind.as_str(),
            file: f.relative.clone(),
            rows: done.rows,
            bytes: done.bytes,
            opaque_values: done.opaque,
            row_groups: done.row_groups,
            columns: if opts.format == ExportFormat::Parquet { l.columns() } else { Vec::new() },
        });
    }

    // Files of an earlier export that this one did not rewrite are stale: remove them.
    let written: BTreeSet<&str> = states.iter().map(|s| s.file.as_str()).collect();
    for old in earlier.iter().filter(|f| !written.contains(f.as_str())) {
        remove_stale(storage, &dir, old);
    }

    // In snapshot order: operators as the metadata lists them, then subtask, state, kind.
    let order: HashMap<OperatorId, usize> = snapshot.metadata.operators.iter().enumerate().map(|(i, o)| (o.operator_id, i)).collect();
    undecodable.sort_by(|a, b| {
        let key = |u: &Undecodable| (order.get(&u.operator_id).copied(), u.subtask, u.state_index, u.state.clone(), u.kind);
        key(a).cmp(&key(b))
    });
    let undecodable: Vec<ManifestUndecodable> = undecodable
        .into_iter()
        .map(|record| {
            let op = order.get(&record.operator_id).map(|&i| &snapshot.metadata.operators[i]);
            ManifestUndecodable { operator_uid: op.and_then(uid_of), record }
        })
        .collect();

    let seconds = started.elapsed().as_secs_f64();
    let totals = ManifestTotals {
        states: states.len(),
        rows: states.iter().map(|s| s.rows).sum(),
        bytes: states.iter().map(|s| s.bytes).sum(),
        opaque_values: states.iter().map(|s| s.opaque_values).sum(),
        untyped_states: untyped.iter().map(|u| (&u.operator_id, &u.state, u.kind)).collect::<BTreeSet<_>>().len(),
        undecodable_states: undecodable.iter().map(|u| (u.record.operator_id, u.record.state.clone(), u.record.state_index)).collect::<BTreeSet<_>>().len(),
    };
    let manifest = Manifest {
        flinksnap_version: env!("CARGO_PKG_VERSION"),
        format: opts.format,
        snapshot: ManifestSnapshot {
            path: summary.path.clone(),
            metadata: snapshot.metadata_location.to_string(),
            checkpoint_id: summary.checkpoint_id,
            metadata_version: summary.metadata_version,
            written_by: summary.written_by,
            snapshot_type: serde_json::to_value(summary.snapshot_type).unwrap_or_default(),
            format: serde_json::to_value(summary.format).unwrap_or_default(),
            state_bytes: summary.totals.total_bytes,
        },
        states,
        untyped,
        undecodable,
        totals,
        run: ManifestRun {
            threads,
            seconds,
            snapshot_bytes_per_second: if seconds > 0.0 { summary.totals.total_bytes as f64 / seconds } else { 0.0 },
            peak_rss_bytes: peak_rss_bytes(),
        },
    };
    // Last: the manifest says the export is complete.
    write_manifest(storage, &dir, &manifest)?;
    Ok(manifest)
}

/// What a reading thread hands on, in snapshot order.
enum Job {
    /// Entries of state file `file`, encoded, to append.
    Chunk { file: usize, chunk: sink::Chunk, rows: u64, opaque: u64 },
    /// A piece is read: the files it wrote to, what it could not decode, its stored bytes.
    PieceDone { touched: BTreeSet<usize>, undecodable: Vec<Undecodable>, bytes: u64, ends_subtask: bool },
}

/// What the reading threads share.
struct Reader<'a> {
    snapshot: &'a Snapshot,
    opts: &'a ExportOptions,
    index: &'a HashMap<(usize, bool, String), usize>,
    files: &'a [StateFile],
    /// The most entries a chunk of each file held, on any thread: a piece's first chunk of a
    /// file reserves that many at once (as much as that chunk took; all first chunks of a piece
    /// together at most `HINTED_RESERVE_BYTES`). (With `--threads` above 1 a subtask is read in many
    /// pieces; growing each piece's first chunks by doubling copied their entries again.)
    chunk_rows: &'a [AtomicUsize],
}

impl Reader<'_> {
    /// Reads one piece's entries, in chunks per state, and hands them on encoded.
    fn read_piece(&self, piece: &Piece, emit: &mut dyn FnMut(Job) -> Result<()>) -> Result<()> {
        let sub = piece.subtask;
        // Per state file (by index): its chunk being filled and the chunk's bytes. A vector, not
        // a hash map: it is looked up for every entry.
        let mut chunks: Vec<(Vec<Entry>, usize)> = (0..self.files.len()).map(|_| (Vec::new(), 0)).collect();
        let mut held = 0usize;
        let mut touched = BTreeSet::new();
        // Entries come in runs of one state (a key group holds each state's entries together):
        // the last lookup is nearly always the next one.
        let mut last: Option<(bool, String, usize)> = None;
        let mut entries = piece.entries(self.snapshot, &self.opts.selection);
        // Emptied chunk buffers, kept for the next chunks: an `Entry` is a few hundred bytes, and
        // growing a fresh buffer to `batch_rows` entries for every chunk copied each entry about
        // twice more (5% of export's instructions). At most `SPARE_CHUNKS` are kept, whatever the
        // number of states.
        let mut spare: Vec<Vec<Entry>> = Vec::new();
        // How many entries each file's last chunk held: a new chunk reserves that many at once
        // instead of growing by doubling, which copies every entry again (4% of export's
        // instructions, with more states than spare buffers). Never more than the last chunk
        // held, so memory stays what the chunks themselves take.
        let mut last_len: Vec<usize> = vec![0; self.files.len()];
        // Bytes of entries this piece's first chunks reserved on other pieces' say-so
        // (`chunk_rows`), at most `HINTED_RESERVE_BYTES`: a piece touching many states that
        // filled large chunks elsewhere must not reserve room for all of them.
        let mut hinted = 0usize;
        // Chunks are handed on in the order they fill up: the same order for any thread count.
        let mut send = |i: usize, mut entries: Vec<Entry>, spare: &mut Vec<Vec<Entry>>| -> Result<()> {
            let file = &self.files[i];
            let opaque: usize = if file.layout.may_hold_opaque() { entries.iter().map(Entry::opaque_count).sum() } else { 0 };
            let chunk = file.encode(&entries)?;
            let rows = entries.len() as u64;
            self.chunk_rows[i].fetch_max(entries.len(), Ordering::Relaxed);
            if spare.len() < SPARE_CHUNKS {
                entries.clear();
                spare.push(entries);
            }
            emit(Job::Chunk { file: i, chunk, rows, opaque: opaque as u64 })
        };
        loop {
            // The entry is looked at where the iterator put it and only then moved into its
            // chunk: binding it first (`let e = e?`) cost one more copy of it (440 bytes then,
            // 1% of an export's instructions).
            let next = entries.next();
            let e = match &next {
                None => break,
                Some(Ok(e)) => e,
                Some(Err(_)) => return next.map_or(Ok(()), |r| r.map(drop)),
            };
            let keyed = e.kind.is_keyed();
            let i = match &last {
                Some((k, name, i)) if *k == keyed && name.as_str() == &*e.state => *i,
                _ => {
                    let i = *self.index.get(&(sub.operator, keyed, e.state.to_string())).ok_or_else(|| {
                        Error::Invalid(format!(
                            "{}: operator {}: an entry of state {:?}, which the state file does not declare",
                            self.snapshot.metadata_location, e.operator_id, e.state
                        ))
                    })?;
                    last = Some((keyed, e.state.to_string(), i));
                    // Once per run of a state, not per entry: the run's entries go to `i` too.
                    touched.insert(i);
                    i
                }
            };
            let size = e.size_hint();
            let (chunk, bytes) = &mut chunks[i];
            if chunk.capacity() == 0 {
                if let Some(buf) = spare.pop() {
                    *chunk = buf;
                }
                let mut rows = last_len[i];
                if rows == 0 {
                    let room = HINTED_RESERVE_BYTES.saturating_sub(hinted) / std::mem::size_of::<Entry>();
                    rows = self.chunk_rows[i].load(Ordering::Relaxed).min(room);
                    hinted += rows * std::mem::size_of::<Entry>();
                }
                chunk.reserve(rows);
            }
            if let Some(Ok(e)) = next {
                chunk.push(e);
            }
            *bytes += size;
            held += size;
            if chunk.len() >= self.opts.batch_rows.max(1) || *bytes >= BATCH_BYTES {
                held -= *bytes;
                *bytes = 0;
                last_len[i] = chunk.len();
                send(i, std::mem::take(chunk), &mut spare)?;
            }
            if held >= THREAD_BUFFER_BYTES {
                // In file order.
                for (i, (chunk, bytes)) in chunks.iter_mut().enumerate().filter(|(_, (c, _))| !c.is_empty()) {
                    *bytes = 0;
                    last_len[i] = chunk.len();
                    send(i, std::mem::take(chunk), &mut spare)?;
                }
                held = 0;
            }
        }
        for (i, (chunk, _)) in chunks.into_iter().enumerate().filter(|(_, (c, _))| !c.is_empty()) {
            send(i, chunk, &mut spare)?;
        }
        emit(Job::PieceDone { touched, undecodable: entries.undecodable().to_vec(), bytes: piece.bytes, ends_subtask: piece.ends_subtask })
    }
}

/// Output file names: one directory per operator, one file per state, unique, made of
/// characters every file system takes.
#[derive(Debug, Default)]
struct Names {
    operators: HashMap<usize, String>,
    used_dirs: BTreeSet<String>,
    used: BTreeSet<String>,
}

impl Names {
    fn file(&mut self, operator: usize, id: &OperatorId, uid: Option<&str>, state: &str, keyed: bool, format: ExportFormat) -> String {
        let dir = match self.operators.get(&operator) {
            Some(d) => d.clone(),
            None => {
                let mut d = path_segment(uid.unwrap_or(&id.to_hex()));
                // A uid that encodes like another operator's name (e.g. a uid that is another
                // operator's hex id) gets the id appended.
                if self.used_dirs.contains(&d) {
                    d = format!("{d}@{}", id.to_hex());
                }
                self.used_dirs.insert(d.clone());
                self.operators.insert(operator, d.clone());
                d
            }
        };
        let mut name = format!("{dir}/{}", path_segment(state));
        // Keyed and operator state names are separate namespaces in Flink: the same name can be
        // both. '@' never survives `path_segment`, so the suffix cannot meet another name.
        if self.used.contains(&format!("{name}.{}", format.extension())) {
            name.push_str(if keyed { "@keyed" } else { "@operator" });
        }
        let name = format!("{name}.{}", format.extension());
        self.used.insert(name.clone());
        name
    }
}

/// A name as a file name: ASCII letters, digits, `-`, `_` and `.` (not leading) stay, every
/// other byte of its UTF-8 becomes `%XX`, so distinct names stay distinct (`/` in timer names
/// such as `_timer_state/event_user-timers` becomes `%2F`).
pub fn path_segment(name: &str) -> String {
    if name.is_empty() {
        return "@empty".into();
    }
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Checks the export directory: missing or empty is fine; non-empty needs `force`, and then
/// returns the files an earlier export's manifest lists (to remove those this one does not
/// rewrite).
fn prepare_dir(storage: &dyn Storage, dir: &Location, force: bool) -> Result<Vec<String>> {
    let entries = match storage.list(dir) {
        Err(Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e),
        Ok(entries) => entries,
    };
    if entries.is_empty() {
        if !storage.is_object_store(dir) {
            std::fs::create_dir_all(dir.as_str()).map_err(|e| Error::io(dir.as_str(), e))?;
        }
        return Ok(Vec::new());
    }
    if !force {
        return Err(Error::Invalid(format!("{dir}: the export directory is not empty (--force writes into it, replacing an earlier export)")));
    }
    let earlier = storage.read(&dir.join(MANIFEST)).ok().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    Ok(earlier
        .as_ref()
        .and_then(|m| m["states"].as_array())
        .map(|a| a.iter().filter_map(|s| s["file"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default())
}

/// Removes a file an earlier export wrote, and its directory once empty. Only plain relative
/// paths are followed: a manifest is input, and must not make flinksnap delete elsewhere.
fn remove_stale(storage: &dyn Storage, dir: &Location, relative: &str) {
    let p = Path::new(relative);
    if p.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return;
    }
    let path = dir.join(relative);
    let _ = storage.delete(&path);
    if let Some(parent) = path.parent().filter(|d| d != dir) {
        // Fails (and is meant to) while the directory still holds files.
        let _ = storage.delete_empty_dir(&parent);
    }
}

fn write_manifest(storage: &dyn Storage, dir: &Location, manifest: &Manifest) -> Result<()> {
    let path = dir.join(MANIFEST);
    let mut text = serde_json::to_vec_pretty(manifest).map_err(|e| Error::Invalid(format!("{path}: {e}")))?;
    text.push(b'\n');
    if storage.is_object_store(&path) {
        return storage.put(&path, &text, PutMode::Overwrite);
    }
    let temp = dir.join(&format!(".{MANIFEST}.flinksnap-tmp"));
    storage.put(&temp, &text, PutMode::Overwrite)?;
    storage.rename(&temp, &path)
}

/// The process's peak resident set size (`VmHWM`), where the OS reports it.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
