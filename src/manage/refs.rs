//! `refs`: which files each snapshot in a directory references, and which files nothing
//! references. The reference set is also what `gc` keeps.
//!
//! A reference counts for every place it could denote: a relative path beside `_metadata`; an
//! absolute path both as recorded and re-based onto where the snapshot is now
//! (`Snapshot::rebase`). So a job directory that was copied elsewhere, whose recorded paths still
//! point at the original, keeps its own copies of the shared files too.
//!
//! A file also counts as referenced when a reference names a file of the same name anywhere:
//! Flink names state files with random UUIDs, so a name match is the same file reached under
//! another spelling of its path (relative vs absolute directory, a symlinked mount, a layout the
//! re-basing rule does not know). Keeping such a file is safe; removing it would not be.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::layout::{DirScan, FileRole, SnapshotDirKind};
use crate::error::Result;
use crate::metadata::handles::StreamRole;
use crate::snapshot::{Snapshot, METADATA_FILE};
use crate::storage::{Location, Storage};

/// One file a snapshot references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The path as `_metadata` records it.
    pub recorded: String,
    /// Every place the reference could denote (see the module doc).
    pub candidates: Vec<Location>,
    /// The first candidate that exists.
    pub found: Option<Location>,
    /// Size `_metadata` records (a segment's end for file-merging segments).
    pub size: u64,
    /// What the file holds; `None` for `_metadata` itself.
    pub role: Option<StreamRole>,
}

/// Every file `s` references (its `_metadata` first), one entry per file.
pub fn references(s: &Snapshot) -> Vec<Reference> {
    let mut out = vec![Reference {
        recorded: METADATA_FILE.to_owned(),
        candidates: vec![s.metadata_location.clone()],
        found: Some(s.metadata_location.clone()),
        size: s.metadata_size,
        role: None,
    }];
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for r in s.streams() {
        let Some((recorded, relative)) = Snapshot::recorded_path(r.handle) else { continue };
        let end = match r.handle {
            crate::metadata::handles::StreamStateHandle::SegmentFile { start, size, .. } => start + size,
            h => h.size(),
        };
        if let Some(&i) = index.get(recorded) {
            out[i].size = out[i].size.max(end);
            continue;
        }
        let mut candidates = Vec::new();
        if relative {
            candidates.push(s.dir.join(recorded));
        } else {
            let original = Location::new(recorded);
            if let Some(rebased) = s.rebase(&original) {
                if rebased != original {
                    candidates.push(rebased);
                }
            }
            candidates.insert(0, original);
        }
        // A candidate that cannot be checked (a file system without storage support) is kept
        // as a candidate all the same: keeping too much is safe, removing too much is not.
        let found = candidates.iter().find(|c| s.storage().exists(c).unwrap_or(false)).cloned();
        index.insert(recorded.to_owned(), out.len());
        out.push(Reference { recorded: recorded.to_owned(), candidates, found, size: end, role: Some(r.role) });
    }
    out
}

/// A snapshot of the directory, opened.
#[derive(Debug, Clone)]
pub struct AnalyzedSnapshot {
    /// Index in [`DirScan::snapshots`].
    pub scan_index: usize,
    /// Checkpoint id from `_metadata`.
    pub checkpoint_id: u64,
    /// Its references.
    pub references: Vec<Reference>,
}

/// A directory with every snapshot in it opened and the union of their references.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The scan.
    pub scan: DirScan,
    /// Complete snapshots whose `_metadata` parsed.
    pub snapshots: Vec<AnalyzedSnapshot>,
    /// Snapshots with a `_metadata` that does not parse: (index in the scan, error).
    pub unreadable: Vec<(usize, String)>,
    /// Every location any complete snapshot references, with how many snapshots do.
    pub referenced: BTreeMap<Location, usize>,
    /// The file names of all those locations.
    pub referenced_names: BTreeSet<String>,
}

impl Analysis {
    /// Scans `root` and opens every complete snapshot in it.
    pub fn new(storage: Arc<dyn Storage>, root: &Location) -> Result<Analysis> {
        let scan = DirScan::full(storage.as_ref(), root)?;
        let mut snapshots = Vec::new();
        let mut unreadable = Vec::new();
        let mut referenced: BTreeMap<Location, usize> = BTreeMap::new();
        for (i, sd) in scan.snapshots.iter().enumerate() {
            if !sd.is_complete() {
                continue;
            }
            match Snapshot::open(storage.clone(), sd.dir.as_str()) {
                Ok(s) => {
                    let refs = references(&s);
                    let mut seen = BTreeSet::new();
                    for r in &refs {
                        for c in &r.candidates {
                            if seen.insert(c.clone()) {
                                *referenced.entry(c.clone()).or_default() += 1;
                            }
                        }
                    }
                    snapshots.push(AnalyzedSnapshot { scan_index: i, checkpoint_id: s.metadata.checkpoint_id, references: refs });
                }
                Err(e) => unreadable.push((i, e.to_string())),
            }
        }
        let referenced_names = referenced.keys().map(|l| l.file_name().to_owned()).collect();
        Ok(Analysis { scan, snapshots, unreadable, referenced, referenced_names })
    }

    /// Whether a complete snapshot references the file at `loc` (see the module doc).
    pub fn is_referenced(&self, loc: &Location) -> bool {
        self.referenced.contains_key(loc) || self.referenced_names.contains(loc.file_name())
    }

    /// A location as the report shows it: relative to the scanned directory, else as it is.
    pub fn display(&self, loc: &Location) -> String {
        self.scan.rel(loc).unwrap_or_else(|| loc.to_string())
    }
}

pub(crate) fn millis(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_millis() as u64)
}

/// A referenced file, in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefFile {
    /// Where it is (or would be): relative to the scanned directory, else absolute.
    pub path: String,
    /// The path as `_metadata` records it.
    pub recorded: String,
    /// Its role in the directory layout (`unknown` outside the scanned directory).
    pub role: FileRole,
    /// What it holds, from the handle; `null` for `_metadata` itself.
    pub holds: Option<StreamRole>,
    /// Recorded size.
    pub size: u64,
    /// Whether it exists.
    pub exists: bool,
    /// Inside the snapshot's own directory.
    pub own: bool,
    /// How many snapshots of the directory reference it.
    pub referenced_by: usize,
}

/// One snapshot's references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotRefs {
    /// The snapshot directory, relative to the scanned directory.
    pub path: String,
    /// What its name says it is.
    pub kind: SnapshotDirKind,
    /// Checkpoint id from `_metadata`.
    pub checkpoint_id: u64,
    /// Files it references, `_metadata` first, in metadata order.
    pub files: Vec<RefFile>,
    /// Their recorded bytes.
    pub bytes: u64,
    /// Referenced files that do not exist.
    pub missing: usize,
}

/// A file nothing references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreferencedFile {
    /// Relative to the scanned directory.
    pub path: String,
    /// Its role in the layout.
    pub role: FileRole,
    /// Bytes.
    pub size: u64,
    /// Modification time, milliseconds since the epoch.
    pub modified_ms: Option<u64>,
    /// The snapshot directory it lies in, if any.
    pub snapshot: Option<String>,
    /// Whether that snapshot directory is incomplete (no `_metadata`).
    pub in_incomplete_snapshot: bool,
}

/// A snapshot directory that is not a usable snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OtherSnapshot {
    /// Relative to the scanned directory.
    pub path: String,
    /// Why it is listed here.
    pub reason: String,
    /// Newest modification inside, milliseconds since the epoch.
    pub newest_modified_ms: Option<u64>,
}

/// Totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RefsTotals {
    /// Files in the directory.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Of which referenced by a complete snapshot.
    pub referenced_files: usize,
    /// Their bytes.
    pub referenced_bytes: u64,
    /// Of which referenced by nothing.
    pub unreferenced_files: usize,
    /// Their bytes.
    pub unreferenced_bytes: u64,
}

/// The result of `refs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefsReport {
    /// The scanned directory.
    pub root: String,
    /// Complete snapshots, in path order.
    pub snapshots: Vec<SnapshotRefs>,
    /// Incomplete snapshot directories (no `_metadata`).
    pub incomplete: Vec<OtherSnapshot>,
    /// Snapshots whose `_metadata` does not parse: what they reference is unknown.
    pub unreadable: Vec<OtherSnapshot>,
    /// Files in the directory that no complete snapshot references.
    pub unreferenced: Vec<UnreferencedFile>,
    /// Totals.
    pub totals: RefsTotals,
}

impl RefsReport {
    /// Builds the report from an analysis.
    pub fn build(a: &Analysis) -> RefsReport {
        let snapshot_dirs: BTreeSet<String> =
            a.scan.snapshots.iter().map(|s| if s.rel == "." { String::new() } else { s.rel.clone() }).collect();
        let mut snapshots = Vec::new();
        for s in &a.snapshots {
            let sd = &a.scan.snapshots[s.scan_index];
            let mut files = Vec::new();
            for r in &s.references {
                let loc = r.found.clone().unwrap_or_else(|| r.candidates.last().cloned().unwrap_or_else(|| Location::new(&r.recorded)));
                let rel = a.scan.rel(&loc);
                files.push(RefFile {
                    path: a.display(&loc),
                    recorded: r.recorded.clone(),
                    role: rel.as_deref().map_or(FileRole::Unknown, |p| FileRole::classify(p, &snapshot_dirs)),
                    holds: r.role,
                    size: r.size,
                    exists: r.found.is_some(),
                    own: loc.strip_prefix(&sd.dir).is_some(),
                    referenced_by: a.referenced.get(&loc).copied().unwrap_or(0),
                });
            }
            snapshots.push(SnapshotRefs {
                path: sd.rel.clone(),
                kind: sd.kind,
                checkpoint_id: s.checkpoint_id,
                bytes: files.iter().map(|f| f.size).sum(),
                missing: files.iter().filter(|f| !f.exists).count(),
                files,
            });
        }
        let incomplete = a
            .scan
            .snapshots
            .iter()
            .filter(|s| !s.is_complete())
            .map(|s| OtherSnapshot {
                path: s.rel.clone(),
                reason: "no _metadata: in flight or abandoned".into(),
                newest_modified_ms: millis(s.newest_modified),
            })
            .collect();
        let unreadable = a
            .unreadable
            .iter()
            .map(|(i, e)| {
                let s = &a.scan.snapshots[*i];
                OtherSnapshot { path: s.rel.clone(), reason: e.clone(), newest_modified_ms: millis(s.newest_modified) }
            })
            .collect();
        let mut totals = RefsTotals::default();
        let mut unreferenced = Vec::new();
        for f in &a.scan.files {
            totals.files += 1;
            totals.bytes += f.size;
            if a.is_referenced(&f.location) {
                totals.referenced_files += 1;
                totals.referenced_bytes += f.size;
                continue;
            }
            totals.unreferenced_files += 1;
            totals.unreferenced_bytes += f.size;
            let sd = f.snapshot.map(|i| &a.scan.snapshots[i]);
            unreferenced.push(UnreferencedFile {
                path: f.rel.clone(),
                role: f.role,
                size: f.size,
                modified_ms: millis(f.modified),
                snapshot: sd.map(|s| s.rel.clone()),
                in_incomplete_snapshot: sd.is_some_and(|s| !s.is_complete()),
            });
        }
        RefsReport { root: a.scan.root.to_string(), snapshots, incomplete, unreadable, unreferenced, totals }
    }
}

/// Scans `dir` and reports what references what.
pub fn refs(storage: Arc<dyn Storage>, dir: &str) -> Result<RefsReport> {
    let a = Analysis::new(storage, &Location::new(dir))?;
    Ok(RefsReport::build(&a))
}
