//! `refs`: which files each snapshot in a directory references, which snapshots (of which job
//! directory) reference each file, and which files nothing references. The reference set is also
//! what `gc` and `delete` keep. Every complete snapshot of the *scope* counts (`super::scope`: for
//! a job directory the whole checkpoint directory around it, plus `--also` roots), because a job
//! restored in CLAIM or LEGACY mode references the old job's files from its own job directory.
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
use super::scope::{absolute, roots, Scope, ScopeRoot};
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

/// Every file `s` references (its `_metadata` first), one entry per file. With `check`, the
/// first candidate that exists is looked up (`Reference::found`); without, every candidate only
/// counts (what `gc` keeps for snapshots outside the directory it collects).
pub fn references(s: &Snapshot, check: bool) -> Vec<Reference> {
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
            candidates.push(original.clone());
            candidates.extend(s.rebase_candidates(&original).into_iter().filter(|c| *c != original));
        }
        // A candidate that cannot be checked (a file system without storage support) is kept
        // as a candidate all the same: keeping too much is safe, removing too much is not.
        let found = if check { candidates.iter().find(|c| s.storage().exists(c).unwrap_or(false)).cloned() } else { None };
        index.insert(recorded.to_owned(), out.len());
        out.push(Reference { recorded: recorded.to_owned(), candidates, found, size: end, role: Some(r.role) });
    }
    out
}

/// A directory, scanned, with every complete snapshot of its scope opened (`super::scope`): its
/// own snapshots, and those of the roots around it whose references count too.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The directory, every file listed.
    pub scan: DirScan,
    /// The snapshots of every root.
    pub scope: Scope,
    /// The directory's own complete, readable snapshots: (index in `scope.snapshots`, index in
    /// `scan.snapshots`).
    pub own: Vec<(usize, usize)>,
    /// The directory's own snapshots whose `_metadata` does not parse: (index in
    /// `scan.snapshots`, error).
    pub unreadable: Vec<(usize, String)>,
}

impl Analysis {
    /// Scans `dir` (every file) and the roots (`super::scope::roots`), opening every complete
    /// snapshot.
    pub fn new(storage: Arc<dyn Storage>, dir: &Location, roots: Vec<ScopeRoot>) -> Result<Analysis> {
        let scan = DirScan::full(storage.as_ref(), dir)?;
        let scope = Scope::scan(storage, roots, None, Some(dir))?;
        let mut own = Vec::new();
        let mut unreadable = Vec::new();
        for (i, sd) in scan.snapshots.iter().enumerate() {
            if let Some(si) = scope.snapshots.iter().position(|s| s.dir == sd.dir) {
                own.push((si, i));
            } else if let Some(u) = scope.unreadable.iter().find(|u| u.dir == sd.dir) {
                unreadable.push((i, u.error.clone()));
            }
        }
        Ok(Analysis { scan, scope, own, unreadable })
    }

    /// Whether a complete snapshot of the scope references the file at `loc`.
    pub fn is_referenced(&self, loc: &Location) -> bool {
        self.scope.is_referenced(loc)
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
    /// How many snapshots of the scanned roots reference it.
    pub referenced_by: usize,
    /// Which: snapshot directories relative to the scanned directory, absolute outside it.
    pub referenced_by_snapshots: Vec<String>,
    /// A snapshot of another job directory (or a savepoint) references it too, or it lies
    /// outside this snapshot's job directory: removing it is a matter for more than one job.
    pub cross_job: bool,
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
    /// Its job directory (checkpoints) or its own directory, relative to the scanned directory
    /// (`.` for the directory itself), else absolute.
    pub job: String,
    /// Files it references, `_metadata` first, in metadata order.
    pub files: Vec<RefFile>,
    /// Their recorded bytes.
    pub bytes: u64,
    /// Referenced files that do not exist.
    pub missing: usize,
    /// Referenced files outside its job directory (another job's `shared/`, a savepoint).
    pub cross_job_files: usize,
}

/// A snapshot outside the scanned directory that references files inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExternalRefs {
    /// The snapshot directory (absolute).
    pub path: String,
    /// What its name says it is.
    pub kind: SnapshotDirKind,
    /// Checkpoint id from `_metadata`.
    pub checkpoint_id: u64,
    /// Its job directory (checkpoints) or its own directory.
    pub job: String,
    /// The files of the scanned directory it references (relative to it).
    pub files: Vec<String>,
    /// Their bytes (as found on disk).
    pub bytes: u64,
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
    /// Relative to the scanned directory, absolute outside it.
    pub path: String,
    /// Why it is listed here.
    pub reason: String,
    /// Newest modification inside, milliseconds since the epoch (inside the scanned directory).
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
    /// Files of the directory that a snapshot outside it references.
    pub externally_referenced_files: usize,
    /// Complete snapshots read in all roots.
    pub scanned_snapshots: usize,
}

/// The result of `refs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefsReport {
    /// The scanned directory.
    pub root: String,
    /// The directories whose snapshots were read: a reference from a snapshot outside all of
    /// them cannot be seen.
    pub roots: Vec<ScopeRoot>,
    /// Complete snapshots of the directory, in path order.
    pub snapshots: Vec<SnapshotRefs>,
    /// Snapshots outside the directory that reference files inside it.
    pub external: Vec<ExternalRefs>,
    /// Incomplete snapshot directories (no `_metadata`) of the directory.
    pub incomplete: Vec<OtherSnapshot>,
    /// Snapshots of any root whose `_metadata` does not parse: what they reference is unknown.
    pub unreadable: Vec<OtherSnapshot>,
    /// Files in the directory that no complete snapshot references.
    pub unreferenced: Vec<UnreferencedFile>,
    /// Totals.
    pub totals: RefsTotals,
}

impl RefsReport {
    /// Builds the report from an analysis.
    pub fn build(a: &Analysis) -> RefsReport {
        let sc = &a.scope;
        let snapshot_dirs: BTreeSet<String> =
            a.scan.snapshots.iter().map(|s| if s.rel == "." { String::new() } else { s.rel.clone() }).collect();
        let label = |j: usize| a.display(&sc.snapshots[j].dir);
        let mut snapshots = Vec::new();
        for &(si, i) in &a.own {
            let s = &sc.snapshots[si];
            let sd = &a.scan.snapshots[i];
            let mut files = Vec::new();
            let mut cross_job_files = 0;
            for r in &s.references {
                let loc = r.found.clone().unwrap_or_else(|| r.candidates.last().cloned().unwrap_or_else(|| Location::new(&r.recorded)));
                let rel = a.scan.rel(&loc);
                let by = if r.role.is_none() { vec![si] } else { sc.referencing(&loc) };
                let outside = |j: &usize| loc.strip_prefix(&sc.snapshots[*j].home).is_none();
                cross_job_files += usize::from(r.role.is_some() && outside(&si));
                files.push(RefFile {
                    path: a.display(&loc),
                    recorded: r.recorded.clone(),
                    role: rel.as_deref().map_or(FileRole::Unknown, |p| FileRole::classify(p, &snapshot_dirs)),
                    holds: r.role,
                    size: r.size,
                    exists: r.found.is_some(),
                    own: loc.strip_prefix(&sd.dir).is_some(),
                    referenced_by: by.len(),
                    referenced_by_snapshots: by.iter().map(|&j| label(j)).collect(),
                    cross_job: r.role.is_some() && (outside(&si) || by.iter().any(outside)),
                });
            }
            snapshots.push(SnapshotRefs {
                path: sd.rel.clone(),
                kind: sd.kind,
                checkpoint_id: s.checkpoint_id,
                job: a.display(&s.home),
                bytes: files.iter().map(|f| f.size).sum(),
                missing: files.iter().filter(|f| !f.exists).count(),
                cross_job_files,
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
        let unreadable = sc
            .unreadable
            .iter()
            .map(|u| OtherSnapshot {
                path: a.display(&u.dir),
                reason: u.error.clone(),
                newest_modified_ms: a.scan.snapshots.iter().find(|s| s.dir == u.dir).and_then(|s| millis(s.newest_modified)),
            })
            .collect();
        let inside = |d: &Location| *d == a.scan.root || d.strip_prefix(&a.scan.root).is_some();
        let mut external: BTreeMap<usize, ExternalRefs> = BTreeMap::new();
        let mut totals = RefsTotals { scanned_snapshots: sc.snapshots.len() + sc.unreadable.len(), ..Default::default() };
        let mut unreferenced = Vec::new();
        for f in &a.scan.files {
            totals.files += 1;
            totals.bytes += f.size;
            let by = sc.referencing(&f.location);
            if !by.is_empty() && f.role != FileRole::Metadata {
                let mut outside = false;
                for &j in by.iter().filter(|&&j| !inside(&sc.snapshots[j].dir)) {
                    outside = true;
                    let s = &sc.snapshots[j];
                    let e = external.entry(j).or_insert_with(|| ExternalRefs {
                        path: s.dir.to_string(),
                        kind: s.kind,
                        checkpoint_id: s.checkpoint_id,
                        job: s.home.to_string(),
                        files: Vec::new(),
                        bytes: 0,
                    });
                    e.files.push(f.rel.clone());
                    e.bytes += f.size;
                }
                totals.externally_referenced_files += usize::from(outside);
            }
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
        RefsReport {
            root: a.scan.root.to_string(),
            roots: sc.roots.clone(),
            snapshots,
            external: external.into_values().collect(),
            incomplete,
            unreadable,
            unreferenced,
            totals,
        }
    }
}

/// Scans `dir` and the roots around it (plus `also`) and reports what references what.
pub fn refs(storage: Arc<dyn Storage>, dir: &str, also: &[String]) -> Result<RefsReport> {
    let dir = absolute(&Location::new(dir));
    let roots = roots(storage.as_ref(), &dir, also, &[])?;
    let a = Analysis::new(storage, &dir, roots)?;
    Ok(RefsReport::build(&a))
}
