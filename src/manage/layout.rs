//! A directory of checkpoints or savepoints, scanned: its snapshot directories, and every file
//! with the role its place in Flink's layout gives it (`formats/layout.md`):
//!
//! ```text
//! <checkpoint dir>/<job id>/chk-<N>/_metadata     FileRole::Metadata
//! <checkpoint dir>/<job id>/chk-<N>/<uuid>        FileRole::ExclusiveState
//! <checkpoint dir>/<job id>/shared/<uuid>         FileRole::SharedState
//! <checkpoint dir>/<job id>/shared/op_<…>/db/<uuid>  FileRole::SharedState (ForSt's working DB:
//!                                                  SSTs checkpoints reference in place)
//! <checkpoint dir>/<job id>/shared/op_<…>/db/<other> FileRole::Unknown (ForSt's live DB files)
//! <checkpoint dir>/<job id>/taskowned/…           FileRole::TaskOwned
//! <savepoint dir>/savepoint-<6 hex>-<12 hex>/…    FileRole::Metadata / ExclusiveState
//! anything else                                   FileRole::Unknown (reported, never removed)
//! ```
//!
//! A directory is a snapshot directory when it is named `chk-<N>` or `savepoint-*`, or holds a
//! `_metadata`. One named like a snapshot without `_metadata` is incomplete: a checkpoint still
//! being written, or one Flink abandoned.

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde::Serialize;

use crate::error::Result;
use crate::snapshot::{is_checkpoint_dir_name, METADATA_FILE};
use crate::storage::{FileMeta, Location, Storage};

/// Deepest directory nesting a scan follows below its root: Flink's layout is at most
/// `<checkpoint dir>/<job id>/{chk-N,shared,taskowned}/<file>` (task-owned files one or two levels
/// deeper); a bound keeps a scan pointed at `/` by mistake from walking forever.
const MAX_DEPTH: usize = 12;

/// What a file is, from where it lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileRole {
    /// The `_metadata` of a snapshot directory.
    Metadata,
    /// Any other file in a snapshot directory: EXCLUSIVE scope state (UUID names).
    ExclusiveState,
    /// A file under `shared/`: SHARED scope state (incremental SSTs), reused across checkpoints.
    SharedState,
    /// A file under `taskowned/`: task-owned state (file merging, 1.20+).
    TaskOwned,
    /// Not part of Flink's layout: reported, never removed.
    Unknown,
}

impl FileRole {
    /// Classifies a file by its path relative to the scanned directory (`/`-separated). The
    /// outermost `chk-<N>`, `savepoint-*`, `shared` or `taskowned` directory on the path decides
    /// (what lies inside a snapshot or state directory belongs to it), as does a directory listed
    /// in `snapshot_dirs`: relative paths (`""` for the root) of directories that hold a
    /// `_metadata`.
    pub fn classify(rel: &str, snapshot_dirs: &BTreeSet<String>) -> FileRole {
        let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        let Some((name, parents)) = comps.split_last() else { return FileRole::Unknown };
        for depth in 0..=parents.len() {
            let here = parents.get(depth.wrapping_sub(1)).filter(|_| depth > 0).copied();
            if here.is_some_and(is_snapshot_dir_name) || snapshot_dirs.contains(&parents[..depth].join("/")) {
                return if depth == parents.len() && *name == METADATA_FILE { FileRole::Metadata } else { FileRole::ExclusiveState };
            }
            match here {
                // ForSt with its primary directory in the checkpoint directory keeps its working
                // DB in `shared/op_<operator>_<id>__<subtask>_<parallelism>__attempt_<n>/db/`, SSTs
                // under UUID names that checkpoints reference in place; anything else there
                // belongs to the running DB and is never collected.
                Some("shared") if is_forst_db_file(&parents[depth..], name) && !is_uuid(name) => return FileRole::Unknown,
                Some("shared") => return FileRole::SharedState,
                Some("taskowned") => return FileRole::TaskOwned,
                _ => {}
            }
        }
        FileRole::Unknown
    }
}

/// Whether `dirs/name` (below `shared/`) lies in a ForSt working DB directory: `op_…/db/name`.
fn is_forst_db_file(dirs: &[&str], _name: &str) -> bool {
    matches!(dirs, [op, "db"] if op.starts_with("op_"))
}

/// A UUID in its 36-character text form (Flink's and ForSt's file names).
fn is_uuid(name: &str) -> bool {
    name.len() == 36
        && name.bytes().enumerate().all(|(i, b)| if [8, 13, 18, 23].contains(&i) { b == b'-' } else { b.is_ascii_hexdigit() })
}

/// `chk-<N>` or `savepoint-*`.
pub fn is_snapshot_dir_name(name: &str) -> bool {
    is_checkpoint_dir_name(name) || name.starts_with("savepoint-")
}

/// What a snapshot directory is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum SnapshotDirKind {
    /// `chk-<N>`: a retained checkpoint of the job directory it lies in.
    Checkpoint {
        /// `N`.
        id: u64,
    },
    /// `savepoint-*`.
    Savepoint,
    /// Another name, holding a `_metadata`.
    Other,
}

/// A snapshot directory found by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDir {
    /// Where it is.
    pub dir: Location,
    /// Its path relative to the scanned directory (`.` for the directory itself).
    pub rel: String,
    /// What its name says it is.
    pub kind: SnapshotDirKind,
    /// Its `_metadata`, when there is one (complete snapshot).
    pub metadata: Option<FileMeta>,
    /// The newest modification time of the directory and everything in it: how recently
    /// something wrote there.
    pub newest_modified: Option<SystemTime>,
}

impl SnapshotDir {
    /// Whether `_metadata` exists: Flink writes it last, so without it the snapshot is incomplete.
    pub fn is_complete(&self) -> bool {
        self.metadata.is_some()
    }
}

/// A file found by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    /// Where it is.
    pub location: Location,
    /// Path relative to the scanned directory.
    pub rel: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification.
    pub modified: Option<SystemTime>,
    /// Its role in Flink's layout.
    pub role: FileRole,
    /// Index in [`DirScan::snapshots`] of the snapshot directory it lies in.
    pub snapshot: Option<usize>,
}

/// A directory found by a scan (other than the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedDir {
    /// Where it is.
    pub location: Location,
    /// Path relative to the scanned directory.
    pub rel: String,
    /// Last modification.
    pub modified: Option<SystemTime>,
}

/// A scanned directory.
#[derive(Debug, Clone)]
pub struct DirScan {
    /// The scanned directory.
    pub root: Location,
    /// Snapshot directories, in path order.
    pub snapshots: Vec<SnapshotDir>,
    /// Every file (full scans only), in path order.
    pub files: Vec<ScannedFile>,
    /// Every directory below the root (full scans only), in path order.
    pub dirs: Vec<ScannedDir>,
}

impl DirScan {
    /// Finds the snapshot directories below `root` (or `root` itself), without descending into
    /// them or into `shared/` and `taskowned/`: what `latest` needs.
    pub fn snapshots(storage: &dyn Storage, root: &Location) -> Result<DirScan> {
        Self::scan(storage, root, false)
    }

    /// Lists everything below `root`: snapshot directories, every file with its role, every
    /// directory. What `refs` and `gc` need.
    pub fn full(storage: &dyn Storage, root: &Location) -> Result<DirScan> {
        Self::scan(storage, root, true)
    }

    fn scan(storage: &dyn Storage, root: &Location, full: bool) -> Result<DirScan> {
        let head = storage.head(root)?;
        if !head.is_dir {
            return Err(crate::Error::Invalid(format!("{root}: not a directory")));
        }
        let mut scan = DirScan { root: root.clone(), snapshots: Vec::new(), files: Vec::new(), dirs: Vec::new() };
        let mut walker = Walker { storage, full, scan: &mut scan };
        walker.walk(root, "", 0, Inside::Nothing, head.modified)?;
        let snapshot_dirs: BTreeSet<String> =
            scan.snapshots.iter().map(|s| if s.rel == "." { String::new() } else { s.rel.clone() }).collect();
        for f in &mut scan.files {
            f.role = FileRole::classify(&f.rel, &snapshot_dirs);
            // The innermost snapshot directory the file lies in.
            f.snapshot = scan
                .snapshots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.rel == "." || f.rel.starts_with(&format!("{}/", s.rel)))
                .max_by_key(|(_, s)| s.rel.len())
                .map(|(i, _)| i);
        }
        scan.files.sort_by(|a, b| a.rel.cmp(&b.rel));
        scan.dirs.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(scan)
    }

    /// The path of `loc` relative to the scanned directory, if it lies below it.
    pub fn rel(&self, loc: &Location) -> Option<String> {
        if loc == &self.root {
            return Some(".".into());
        }
        loc.strip_prefix(&self.root).map(str::to_owned)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Inside {
    /// Where snapshot directories may be.
    Nothing,
    /// Below `shared/` or `taskowned/`: no snapshots there.
    StateDir,
    /// Inside a snapshot directory.
    Snapshot,
}

struct Walker<'a> {
    storage: &'a dyn Storage,
    full: bool,
    scan: &'a mut DirScan,
}

impl Walker<'_> {
    /// Scans `dir`; returns the newest modification time in it (itself included).
    fn walk(&mut self, dir: &Location, rel: &str, depth: usize, inside: Inside, modified: Option<SystemTime>) -> Result<Option<SystemTime>> {
        if depth > MAX_DEPTH {
            return Ok(modified);
        }
        let entries = self.storage.list(dir)?;
        let name = dir.file_name();
        let metadata = entries.iter().find(|e| !e.is_dir && e.location.file_name() == METADATA_FILE).cloned();
        let is_snapshot = inside == Inside::Nothing && (metadata.is_some() || (depth > 0 && is_snapshot_dir_name(name)));
        let mut snapshot_index = None;
        let mut inside = inside;
        if is_snapshot {
            let kind = match name.strip_prefix("chk-").and_then(|n| n.parse::<u64>().ok()) {
                Some(id) if is_checkpoint_dir_name(name) => SnapshotDirKind::Checkpoint { id },
                _ if name.starts_with("savepoint-") => SnapshotDirKind::Savepoint,
                _ => SnapshotDirKind::Other,
            };
            snapshot_index = Some(self.scan.snapshots.len());
            self.scan.snapshots.push(SnapshotDir {
                dir: dir.clone(),
                rel: if rel.is_empty() { ".".into() } else { rel.to_owned() },
                kind,
                metadata,
                newest_modified: None,
            });
            inside = Inside::Snapshot;
        }
        let mut newest = modified;
        for e in &entries {
            newest = newest.max(e.modified);
            let n = e.location.file_name();
            let r = if rel.is_empty() { n.to_owned() } else { format!("{rel}/{n}") };
            if e.is_dir {
                let next = match inside {
                    Inside::Nothing if n == "shared" || n == "taskowned" => Inside::StateDir,
                    other => other,
                };
                // Finding snapshots needs neither state directories nor snapshot contents.
                if !self.full && next != Inside::Nothing {
                    continue;
                }
                if self.full {
                    self.scan.dirs.push(ScannedDir { location: e.location.clone(), rel: r.clone(), modified: e.modified });
                }
                let sub = self.walk(&e.location, &r, depth + 1, next, e.modified)?;
                newest = newest.max(sub);
            } else if self.full {
                self.scan.files.push(ScannedFile {
                    location: e.location.clone(),
                    rel: r,
                    size: e.size,
                    modified: e.modified,
                    role: FileRole::Unknown,
                    snapshot: None,
                });
            }
        }
        if let Some(i) = snapshot_index {
            self.scan.snapshots[i].newest_modified = newest;
        }
        Ok(newest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_flink_layout() {
        let none = BTreeSet::new();
        let c = |p: &str| FileRole::classify(p, &none);
        assert_eq!(c("chk-3/_metadata"), FileRole::Metadata);
        assert_eq!(c("job/chk-3/0a1b-uuid"), FileRole::ExclusiveState);
        assert_eq!(c("job/shared/0a1b-uuid"), FileRole::SharedState);
        assert_eq!(c("job/taskowned/x/y"), FileRole::TaskOwned);
        assert_eq!(c("savepoint-1a2b3c-0123456789ab/_metadata"), FileRole::Metadata);
        assert_eq!(c("savepoint-1a2b3c-0123456789ab/abc"), FileRole::ExclusiveState);
        assert_eq!(c("case.json"), FileRole::Unknown);
        assert_eq!(c("job/notes.txt"), FileRole::Unknown);
        assert_eq!(c("chk-x/file"), FileRole::Unknown);
        // The outermost layout directory decides, as the scan does.
        assert_eq!(c("job/chk-3/shared/x"), FileRole::ExclusiveState);
        assert_eq!(c("job/shared/chk-3/x"), FileRole::SharedState);
        let named: BTreeSet<String> = ["my-savepoint".to_owned()].into();
        assert_eq!(FileRole::classify("my-savepoint/_metadata", &named), FileRole::Metadata);
        assert_eq!(FileRole::classify("my-savepoint/x", &named), FileRole::ExclusiveState);
        let root: BTreeSet<String> = [String::new()].into();
        assert_eq!(FileRole::classify("_metadata", &root), FileRole::Metadata);
        // ForSt's working DB in the checkpoint directory (testdata/flink-2.3.0/forst-checkpoint-in-place):
        // its SSTs are shared state referenced in place; its own files are left alone.
        let db = "job/shared/op_KeyedProcessOperator_9ffc9079ae46c8da2062fcba248ae73c__1_1__attempt_0/db";
        assert_eq!(c(&format!("{db}/80b99bee-b323-4572-93ff-9e71b0accfbf")), FileRole::SharedState);
        assert_eq!(c(&format!("{db}/MANIFEST-000005")), FileRole::Unknown);
        assert_eq!(c(&format!("{db}/CURRENT")), FileRole::Unknown);
        assert_eq!(c("job/shared/db/CURRENT"), FileRole::SharedState);
    }
}
