//! `relocate`: a checkpoint or savepoint copied together with every file it references (shared
//! files of earlier checkpoints, file-merging segments, changelog files) into one directory, with
//! `_metadata` rewritten so that every file handle is relative to that directory. The result is
//! self-contained and relocatable (FLIP-47): it can be moved anywhere and restored with
//! `flink run -s`. Spec: `formats/relocated-snapshot.md`.
//!
//! What changes in `_metadata`, and only that:
//! - every file handle (`FileStateHandle`, `RelativeFileStateHandle`) becomes a
//!   `RelativeFileStateHandle` (type 6) naming the copy, with the size Flink recorded;
//! - a file-merging segment (`SegmentFileStateHandle`, a byte range of a shared physical file,
//!   absolute by design) is cut out into a file of its own and becomes a relative handle too: its
//!   offsets (key-group offsets, operator-state offsets) are relative to the segment start, so
//!   they hold unchanged for the extracted file;
//! - a file-merging operator-state handle (type 17, which records the job's absolute `shared/` and
//!   `taskowned/` directories) becomes a plain operator-state handle (type 4); its empty form, a
//!   placeholder that holds no state, is dropped.
//!
//! Everything else (ids, key-group ranges and offsets, inline state, changelog and channel state,
//! operator names and uids, the checkpoint properties) is written back as read, in the metadata
//! version the source has (V2 becomes V3, the oldest version written).
//!
//! The source is only read; the target is written under a temporary name, checked by reading it
//! back, and renamed into place (see `super::target`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::metadata::consts::handle_type as ty;
use crate::metadata::handles::{KeyedStateHandle, OperatorStateHandle, StreamStateHandle};
use crate::metadata::CheckpointMetadata;
use crate::snapshot::{Snapshot, METADATA_FILE};
use crate::storage::{Location, Storage};
use crate::writers::metadata::{write_metadata, WRITABLE_VERSIONS};
use crate::writers::target::TargetDir;

/// Bytes copied per read: large enough for sequential throughput, small enough for memory.
const COPY_CHUNK: u64 = 8 << 20;

/// Options of [`Relocation::plan`].
#[derive(Debug, Clone, Default)]
pub struct RelocateOptions {
    /// Replace the target directory if it exists.
    pub force: bool,
}

/// One file of the relocated snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct RelocatedFile {
    /// Where the bytes come from.
    pub source: String,
    /// Byte range of the source for an extracted file-merging segment, `None` for a whole file.
    pub segment: Option<(u64, u64)>,
    /// Path in the target directory, as `_metadata` now records it.
    pub target: String,
    /// Bytes copied.
    pub bytes: u64,
    /// Whether the source lies outside the snapshot directory (a shared file, a changelog file).
    pub outside: bool,
}

/// What [`Relocation::execute`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RelocateReport {
    /// The source snapshot directory.
    pub source: String,
    /// The written directory.
    pub target: String,
    /// Checkpoint id (unchanged).
    pub checkpoint_id: u64,
    /// Metadata version of the source.
    pub source_metadata_version: i32,
    /// Metadata version written.
    pub metadata_version: i32,
    /// Size of the written `_metadata`.
    pub metadata_bytes: u64,
    /// Every file copied, in `_metadata` order.
    pub files: Vec<RelocatedFile>,
    /// Bytes copied in all.
    pub bytes: u64,
    /// File handles in `_metadata` (each now relative).
    pub file_handles: usize,
    /// Of those, the ones that were absolute.
    pub made_relative: usize,
    /// File-merging segments cut out into files of their own.
    pub segments_extracted: usize,
    /// File-merging operator-state handles (type 17) written as plain ones (type 4).
    pub file_merging_handles_converted: usize,
    /// Empty file-merging placeholders (no state) left out.
    pub empty_placeholders_dropped: usize,
    /// State streams inline in `_metadata` (kept as they are).
    pub inline_streams: usize,
}

/// A planned relocation: the rewritten `_metadata` and the files to copy.
#[derive(Debug)]
pub struct Relocation {
    snapshot: Snapshot,
    target: TargetDir,
    metadata: CheckpointMetadata,
    report: RelocateReport,
}

impl Relocation {
    /// Opens `src`, resolves every file it references and rewrites its `_metadata` for `dst`.
    /// Fails, before anything is copied, on a referenced file that cannot be found and on a
    /// `dst` that lies inside the source or contains what the source references.
    pub fn plan(storage: Arc<dyn Storage>, src: &str, dst: &str, opts: &RelocateOptions) -> Result<Relocation> {
        let snapshot = Snapshot::open(storage.clone(), src)?;
        let target = TargetDir::prepare(&snapshot, storage, dst, opts.force)?;
        let mut report = RelocateReport {
            source: snapshot.dir.to_string(),
            target: target.dst.to_string(),
            checkpoint_id: snapshot.metadata.checkpoint_id,
            source_metadata_version: snapshot.metadata.version,
            metadata_version: snapshot.metadata.version.max(*WRITABLE_VERSIONS.start()),
            ..RelocateReport::default()
        };
        let mut metadata = snapshot.metadata.clone();
        let mut placer = Placer::new(&snapshot);
        rewrite(&mut metadata, &mut placer, &mut report)?;
        report.files = placer.files;
        report.segments_extracted = report.files.iter().filter(|f| f.segment.is_some()).count();
        report.bytes = report.files.iter().map(|f| f.bytes).sum();
        Ok(Relocation { snapshot, target, metadata, report })
    }

    /// Bytes that [`Relocation::execute`] copies.
    pub fn total_bytes(&self) -> u64 {
        self.report.bytes
    }

    /// What [`Relocation::execute`] would do (`metadata_bytes` is 0 until it has).
    pub fn planned(&self) -> &RelocateReport {
        &self.report
    }

    /// Copies the files, writes `_metadata`, reads the result back and renames it into place.
    /// `progress` is called with the bytes copied so far.
    pub fn execute(mut self, progress: &dyn Fn(u64)) -> Result<RelocateReport> {
        let storage = self.snapshot.storage().clone();
        let out = self.target.storage().clone();
        let mut copied = 0u64;
        for f in &self.report.files {
            let from = Location::new(&f.source);
            let to = self.target.tmp.join(&f.target);
            match f.segment {
                // Whole files within one store: a server-side copy where the store has one.
                None if same_store(&from, &to) => {
                    out.copy(&from, &to)?;
                    copied += f.bytes;
                    progress(copied);
                }
                _ => {
                    let start = f.segment.map_or(0, |(s, _)| s);
                    crate::storage::copy_through(storage.as_ref(), &from, start, f.bytes, out.as_ref(), &to, COPY_CHUNK, &mut |n| {
                        copied += n;
                        progress(copied);
                    })?;
                }
            }
        }
        let bytes = write_metadata(&self.metadata, self.report.metadata_version)?;
        // Last: on object stores the directory becomes a snapshot only now.
        self.target.put_metadata(&bytes)?;
        self.report.metadata_bytes = bytes.len() as u64;
        check_written(out, &self.target.tmp, &self.report)?;
        self.target.commit()?;
        Ok(self.report)
    }
}

/// Whether a server-side copy can go from `a` to `b`: both local, or both in one bucket.
fn same_store(a: &Location, b: &Location) -> bool {
    match (a.is_local(), b.is_local()) {
        (true, true) => true,
        (false, false) => matches!((crate::storage::url::parse(a), crate::storage::url::parse(b)), (Ok(x), Ok(y)) if x.identity == y.identity),
        _ => false,
    }
}

/// Relocates `src` to `dst` in one call.
pub fn relocate(storage: Arc<dyn Storage>, src: &str, dst: &str, opts: &RelocateOptions) -> Result<RelocateReport> {
    Relocation::plan(storage, src, dst, opts)?.execute(&|_| {})
}

/// Reads the written directory back as flinksnap would read any snapshot: `_metadata` parses, and
/// every file it references is relative, inside the directory, and as long as what was copied.
fn check_written(storage: Arc<dyn Storage>, dir: &Location, report: &RelocateReport) -> Result<()> {
    let written = Snapshot::open(storage, dir.as_str())?;
    let lengths: HashMap<&str, u64> = report.files.iter().map(|f| (f.target.as_str(), f.bytes)).collect();
    for (s, f) in written.files()? {
        let bad = |why: String| Error::Invalid(format!("relocated {}: {} {why} (a flinksnap bug)", written.metadata_location, f.recorded));
        if !f.relative || !f.own {
            return Err(bad("is not relative to the snapshot directory".into()));
        }
        let Some(&want) = lengths.get(f.recorded.as_str()) else {
            return Err(bad("was not copied".into()));
        };
        let got = written.storage().head(&f.location)?.size;
        if got != want {
            return Err(bad(format!("has {got} bytes, {want} were copied")));
        }
        if matches!(s.handle, StreamStateHandle::SegmentFile { .. } | StreamStateHandle::File { .. }) {
            return Err(bad("is still an absolute handle".into()));
        }
    }
    Ok(())
}

/// Decides where each referenced file goes in the target, once per source file (or segment).
struct Placer<'a> {
    snapshot: &'a Snapshot,
    /// The job directory (parent of the snapshot directory), where `shared/` and `taskowned/` are.
    job_dir: Option<Location>,
    /// (source, segment) → target path.
    placed: HashMap<(String, Option<(u64, u64)>), String>,
    /// Target paths taken, and by which source.
    taken: BTreeMap<String, (String, Option<(u64, u64)>)>,
    files: Vec<RelocatedFile>,
}

impl<'a> Placer<'a> {
    fn new(snapshot: &'a Snapshot) -> Placer<'a> {
        let mut taken = BTreeMap::new();
        taken.insert(METADATA_FILE.to_owned(), (String::new(), None));
        Placer { snapshot, job_dir: snapshot.dir.parent(), placed: HashMap::new(), taken, files: Vec::new() }
    }

    /// The relative path for the file `loc` (or its `segment`): the path inside the snapshot
    /// directory for its own files, the path inside the job directory for `shared/`,
    /// `taskowned/` and other checkpoints' files, `external/<name>` for anything else;
    /// `segments/<logical file id>` for extracted segments. A clash gets a `~N` suffix.
    ///
    /// `naming` is where the file sits in the snapshot's layout, which decides its name; `loc`
    /// is where its bytes are read (the two differ when an absolute path recorded elsewhere
    /// still exists).
    fn place(&mut self, loc: &Location, naming: &Location, segment: Option<(u64, u64)>, logical_id: Option<&str>) -> Result<String> {
        let key = (loc.as_str().to_owned(), segment);
        if let Some(rel) = self.placed.get(&key) {
            return Ok(rel.clone());
        }
        let (base, outside) = if let Some(r) = naming.strip_prefix(&self.snapshot.dir) {
            (r.to_owned(), false)
        } else if let Some(r) = self.job_dir.as_ref().and_then(|j| naming.strip_prefix(j)) {
            (r.to_owned(), true)
        } else {
            (format!("external/{}", naming.file_name()), true)
        };
        let base = match (segment, logical_id) {
            (Some(_), Some(id)) if is_plain_name(id) => format!("segments/{id}"),
            (Some((start, _)), _) => format!("segments/{}-{start}", loc.file_name()),
            (None, _) => base,
        };
        if base.is_empty() || base.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            return Err(Error::Invalid(format!("{}: cannot place {loc} inside the target", self.snapshot.metadata_location)));
        }
        let mut rel = base.clone();
        let mut n = 1;
        while self.taken.get(&rel).is_some_and(|k| *k != key) {
            rel = format!("{base}~{n}");
            n += 1;
        }
        let bytes = match segment {
            Some((_, size)) => size,
            None => self.snapshot.storage().head(loc)?.size,
        };
        self.taken.insert(rel.clone(), key.clone());
        self.placed.insert(key, rel.clone());
        self.files.push(RelocatedFile { source: loc.to_string(), segment, target: rel.clone(), bytes, outside });
        Ok(rel)
    }

    /// Rewrites one stream handle to point at its copy.
    fn relocate(&mut self, h: &mut StreamStateHandle, report: &mut RelocateReport) -> Result<()> {
        let (size, segment, logical_id, absolute) = match h {
            StreamStateHandle::ByteStream { .. } => {
                report.inline_streams += 1;
                return Ok(());
            }
            StreamStateHandle::EmptySegmentFile => return Ok(()),
            StreamStateHandle::KeyGroups(k) => return self.relocate(&mut k.delegate, report),
            StreamStateHandle::File { size, .. } => (*size, None, None, true),
            StreamStateHandle::RelativeFile { size, .. } => (*size, None, None, false),
            StreamStateHandle::SegmentFile { start, size, logical_file_id, .. } => {
                (*size, Some((*start, *size)), Some(logical_file_id.clone()), true)
            }
        };
        let resolved = self.snapshot.resolve(h)?.ok_or_else(|| Error::Invalid(format!("{}: a {} without a file", self.snapshot.metadata_location, h.class_name())))?;
        // An absolute path that still exists is read where it is, but named after its place in
        // the job's layout (shared/..., chk-N/...), as if the snapshot had moved with it.
        let naming = if !resolved.relative && !resolved.rebased {
            self.snapshot.rebase(&Location::new(&resolved.recorded)).unwrap_or_else(|| resolved.location.clone())
        } else {
            resolved.location.clone()
        };
        let relative_path = self.place(&resolved.location, &naming, segment, logical_id.as_deref())?;
        report.file_handles += 1;
        report.made_relative += usize::from(absolute);
        *h = StreamStateHandle::RelativeFile { relative_path, size };
        Ok(())
    }
}

/// A logical file id as Flink makes them (a UUID): safe as a file name.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Rewrites every file handle of `m` through `placer`, in `_metadata` order.
fn rewrite(m: &mut CheckpointMetadata, placer: &mut Placer<'_>, report: &mut RelocateReport) -> Result<()> {
    for op in &mut m.operators {
        if let Some(h) = &mut op.coordinator_state {
            placer.relocate(h, report)?;
        }
        for st in &mut op.subtasks {
            let Some(s) = &mut st.state else { continue };
            for slot in [&mut s.managed_operator_state, &mut s.raw_operator_state] {
                operator_handle(slot, placer, report)?;
            }
            for k in [&mut s.managed_keyed_state, &mut s.raw_keyed_state].into_iter().flatten() {
                keyed_handle(k, placer, report)?;
            }
            for c in s.input_channel_state.iter_mut().chain(s.result_subpartition_state.iter_mut()) {
                if let Some(d) = &mut c.delegate {
                    placer.relocate(d, report)?;
                }
            }
        }
    }
    Ok(())
}

fn operator_handle(slot: &mut Option<OperatorStateHandle>, placer: &mut Placer<'_>, report: &mut RelocateReport) -> Result<()> {
    let Some(h) = slot else { return Ok(()) };
    if h.type_byte == ty::SEGMENT_PARTITIONABLE_OPERATOR {
        if h.is_empty() {
            // EmptyFileMergingOperatorStreamStateHandle: only keeps the job's file-merging
            // directories alive; no state to restore.
            *slot = None;
            report.empty_placeholders_dropped += 1;
            return Ok(());
        }
        if matches!(h.delegate, StreamStateHandle::EmptySegmentFile) {
            return Err(Error::Invalid(format!(
                "{}: a file-merging operator-state handle with offsets but no data",
                placer.snapshot.metadata_location
            )));
        }
        // The recorded directories are absolute and belong to the source job: a plain
        // OperatorStreamStateHandle carries the same states and offsets without them.
        h.type_byte = ty::PARTITIONABLE_OPERATOR;
        h.file_merging = None;
        report.file_merging_handles_converted += 1;
    }
    placer.relocate(&mut h.delegate, report)
}

fn keyed_handle(k: &mut KeyedStateHandle, placer: &mut Placer<'_>, report: &mut RelocateReport) -> Result<()> {
    match k {
        KeyedStateHandle::KeyGroups(h) => placer.relocate(&mut h.delegate, report),
        KeyedStateHandle::IncrementalRemote(h) => {
            if let Some(m) = &mut h.meta_state_handle {
                placer.relocate(m, report)?;
            }
            for f in h.shared_state.iter_mut().chain(h.private_state.iter_mut()) {
                if let Some(s) = &mut f.handle {
                    placer.relocate(s, report)?;
                }
            }
            Ok(())
        }
        KeyedStateHandle::Changelog(h) => {
            for n in h.materialized.iter_mut().chain(h.non_materialized.iter_mut()) {
                keyed_handle(n, placer, report)?;
            }
            Ok(())
        }
        KeyedStateHandle::InMemoryChangelog(_) => Ok(()),
        KeyedStateHandle::ChangelogStream(h) => {
            for (_, s) in &mut h.handles {
                placer.relocate(s, report)?;
            }
            Ok(())
        }
    }
}
