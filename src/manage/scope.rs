//! Which snapshots a collection has to respect: every complete snapshot under a set of *roots*.
//!
//! References cross job directories. A job restored from a retained checkpoint in CLAIM mode (or
//! LEGACY, Flink 1.x) gets a new job id, so its checkpoints live in a new job directory beside
//! the old one, yet they reference SST files in the old job's `shared/` (FLIP-47's shortcoming
//! A). A job restored from a native savepoint in CLAIM mode names the savepoint's files. So what
//! `gc` and `delete` may remove is decided by every snapshot that can see the file, not only by
//! the snapshots of the directory they work on:
//!
//! - a job directory (holds `chk-N/`, `shared/`, `taskowned/` or `dstl/`, or is named like a job
//!   id) and a checkpoint (`chk-N`) have their **checkpoint directory** as root: the parent of the
//!   job directory, holding the sibling job directories;
//! - a savepoint (`savepoint-*`) or any other snapshot directory has its parent as root;
//! - any other directory (a checkpoint directory itself, a savepoint directory) is its own root;
//! - `--also DIR` adds roots (savepoint directories, other checkpoint directories), `--keep`
//!   too.
//!
//! A snapshot outside every root cannot be seen: the roots scanned are always reported.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use super::layout::{is_snapshot_dir_name, DirScan, SnapshotDirKind};
use super::refs::{references, Reference};
use crate::error::{Error, Result};
use crate::snapshot::{is_checkpoint_dir_name, Snapshot, METADATA_FILE};
use crate::storage::{Location, Storage};

/// Why a directory is scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RootReason {
    /// The directory worked on is its own root.
    Directory,
    /// The checkpoint directory that holds the job directory worked on (its sibling jobs).
    CheckpointRoot,
    /// The directory that holds the savepoint (or other snapshot) worked on.
    Parent,
    /// Named by `--also`.
    Also,
    /// Named by `--keep`.
    Keep,
}

/// A directory whose snapshots are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScopeRoot {
    /// The directory.
    pub path: String,
    /// Why it is scanned.
    pub reason: RootReason,
    /// Complete snapshots found below it (those already found below an earlier root not counted).
    pub snapshots: usize,
    /// Of which the `_metadata` does not parse.
    pub unreadable: usize,
    #[serde(skip)]
    location: Location,
}

impl ScopeRoot {
    /// A root to scan.
    pub fn new(location: Location, reason: RootReason) -> ScopeRoot {
        ScopeRoot { path: location.to_string(), reason, snapshots: 0, unreadable: 0, location }
    }

    /// Where it is.
    pub fn location(&self) -> &Location {
        &self.location
    }
}

/// A local path made absolute (against the working directory) and free of `.` and `..`, so that
/// its parents are the real ones: the root of `chk-3` given as a relative path is still the
/// checkpoint directory two levels up. URIs are returned as they are.
pub fn absolute(loc: &Location) -> Location {
    if !loc.is_local() {
        return loc.clone();
    }
    let p = std::path::Path::new(loc.as_str());
    let abs = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf()) };
    let mut out = std::path::PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    Location::new(&out.to_string_lossy())
}

/// Whether `dir` is a job directory: it holds Flink's per-job layout (`chk-N/`, `shared/`,
/// `taskowned/`, `dstl/`) or is named like a job id (32 hex digits).
pub fn is_job_dir(storage: &dyn Storage, dir: &Location) -> Result<bool> {
    if is_job_id(dir.file_name()) {
        return Ok(true);
    }
    let entries = storage.list(dir)?;
    if entries.iter().any(|e| !e.is_dir && e.location.file_name() == METADATA_FILE) {
        return Ok(false);
    }
    Ok(entries.iter().any(|e| {
        let n = e.location.file_name();
        e.is_dir && (is_checkpoint_dir_name(n) || n == "shared" || n == "taskowned" || n == "dstl")
    }))
}

/// 32 hexadecimal digits: a Flink job id.
pub fn is_job_id(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The root a directory is collected within, and why (see the module doc). `None` parent (the
/// file-system root, a bucket) keeps the directory its own root.
pub fn root_of(storage: &dyn Storage, dir: &Location) -> Result<(Location, RootReason)> {
    let name = dir.file_name();
    let has_metadata = storage.exists(&dir.join(METADATA_FILE))?;
    // `levels` up, but never to the top of a file system or bucket: scanning all of it for
    // snapshots is never what was meant.
    let up = |levels: usize, reason: RootReason| -> (Location, RootReason) {
        let mut best: Option<Location> = None;
        let mut l = dir.clone();
        for _ in 0..levels {
            match l.parent() {
                Some(p) if !p.components().is_empty() && p.scheme().is_none_or(|_| p.components().len() > 2) => {
                    best = Some(p.clone());
                    l = p;
                }
                _ => break,
            }
        }
        match best {
            Some(root) => (root, reason),
            None => (dir.clone(), RootReason::Directory),
        }
    };
    if is_checkpoint_dir_name(name) {
        return Ok(up(2, RootReason::CheckpointRoot));
    }
    if has_metadata || is_snapshot_dir_name(name) {
        return Ok(up(1, RootReason::Parent));
    }
    if is_job_dir(storage, dir)? {
        return Ok(up(1, RootReason::CheckpointRoot));
    }
    Ok((dir.clone(), RootReason::Directory))
}

/// The roots for working on `dir`: its own root, then `also`, then `keep` directories (files
/// named by `--keep` that are not snapshots add no root). Duplicates and roots inside an earlier
/// root are dropped.
pub fn roots(storage: &dyn Storage, dir: &Location, also: &[String], keep: &[String]) -> Result<Vec<ScopeRoot>> {
    let (root, reason) = root_of(storage, dir)?;
    let mut out = vec![ScopeRoot::new(root, reason)];
    for a in also {
        let loc = absolute(&Location::new(a));
        let head = storage.head(&loc).map_err(|e| Error::Invalid(format!("--also {a}: {e}")))?;
        if !head.is_dir {
            return Err(Error::Invalid(format!("--also {a}: not a directory")));
        }
        push_root(&mut out, ScopeRoot::new(loc, RootReason::Also));
    }
    for k in keep {
        let loc = absolute(&Location::new(k));
        let head = storage.head(&loc).map_err(|e| Error::Invalid(format!("--keep {k}: {e}")))?;
        let at = if head.is_dir {
            loc
        } else if loc.file_name() == METADATA_FILE {
            loc.parent().unwrap_or(loc)
        } else {
            continue;
        };
        push_root(&mut out, ScopeRoot::new(at, RootReason::Keep));
    }
    Ok(out)
}

fn push_root(out: &mut Vec<ScopeRoot>, r: ScopeRoot) {
    if out.iter().any(|o| o.location == r.location || r.location.strip_prefix(&o.location).is_some()) {
        return;
    }
    out.push(r);
}

/// Where a snapshot or file belongs (`crate::snapshot::home_dir`).
pub use crate::snapshot::home_dir as home;

/// A complete snapshot in the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeSnapshot {
    /// Its directory.
    pub dir: Location,
    /// What its name says it is.
    pub kind: SnapshotDirKind,
    /// Checkpoint id from `_metadata`.
    pub checkpoint_id: u64,
    /// Where it belongs: its job directory (checkpoints), else its own directory.
    pub home: Location,
    /// Its references (`_metadata` first).
    pub references: Vec<Reference>,
    /// Index of the root it was found under.
    pub root: usize,
    /// Modification time of its `_metadata`.
    pub metadata_modified: Option<SystemTime>,
}

/// A snapshot directory with a `_metadata` that does not parse: what it references is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableSnapshot {
    /// Its directory.
    pub dir: Location,
    /// Index of the root it was found under.
    pub root: usize,
    /// Why it cannot be read.
    pub error: String,
}

/// Every complete snapshot under the roots, opened, and the union of their references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The roots, in order, with what was found under each.
    pub roots: Vec<ScopeRoot>,
    /// Complete snapshots whose `_metadata` parses, in root and path order.
    pub snapshots: Vec<ScopeSnapshot>,
    /// Complete snapshots whose `_metadata` does not parse.
    pub unreadable: Vec<UnreadableSnapshot>,
    /// Every location a snapshot references (as recorded and re-based), with the snapshots that do.
    pub referenced: BTreeMap<Location, Vec<usize>>,
    /// The file names of those locations (never `_metadata`), with the snapshots that reference
    /// them: Flink names state files with random UUIDs, so a name is the file, under whatever
    /// spelling of its path.
    pub referenced_names: BTreeMap<String, Vec<usize>>,
}

impl Scope {
    /// Scans the roots and opens every complete snapshot except `exclude`. References of the
    /// snapshots below `check_under` are checked for existence (`Reference::found`); the others
    /// only count as candidates, which saves a request per file on object stores.
    pub fn scan(storage: Arc<dyn Storage>, mut roots: Vec<ScopeRoot>, exclude: Option<&Location>, check_under: Option<&Location>) -> Result<Scope> {
        let mut snapshots = Vec::new();
        let mut unreadable = Vec::new();
        let mut seen: BTreeSet<Location> = BTreeSet::new();
        for (ri, root) in roots.iter_mut().enumerate() {
            let scan = DirScan::snapshots(storage.as_ref(), &root.location)?;
            for sd in scan.snapshots.iter().filter(|s| s.is_complete()) {
                if Some(&sd.dir) == exclude || !seen.insert(sd.dir.clone()) {
                    continue;
                }
                match Snapshot::open(storage.clone(), sd.dir.as_str()) {
                    Ok(s) => {
                        let check = check_under.is_some_and(|c| sd.dir == *c || sd.dir.strip_prefix(c).is_some());
                        root.snapshots += 1;
                        snapshots.push(ScopeSnapshot {
                            home: if matches!(sd.kind, SnapshotDirKind::Checkpoint { .. }) { sd.dir.parent().unwrap_or(sd.dir.clone()) } else { sd.dir.clone() },
                            dir: sd.dir.clone(),
                            kind: sd.kind,
                            checkpoint_id: s.metadata.checkpoint_id,
                            references: references(&s, check),
                            root: ri,
                            metadata_modified: sd.metadata.as_ref().and_then(|m| m.modified),
                        });
                    }
                    Err(e) => {
                        root.snapshots += 1;
                        root.unreadable += 1;
                        unreadable.push(UnreadableSnapshot { dir: sd.dir.clone(), root: ri, error: e.to_string() });
                    }
                }
            }
        }
        let mut scope = Scope { roots, snapshots, unreadable, referenced: BTreeMap::new(), referenced_names: BTreeMap::new() };
        scope.index();
        Ok(scope)
    }

    fn index(&mut self) {
        self.referenced.clear();
        self.referenced_names.clear();
        for (i, s) in self.snapshots.iter().enumerate() {
            for r in &s.references {
                for c in &r.candidates {
                    let v = self.referenced.entry(c.clone()).or_default();
                    if v.last() != Some(&i) {
                        v.push(i);
                    }
                    if r.role.is_some() {
                        let v = self.referenced_names.entry(c.file_name().to_owned()).or_default();
                        if v.last() != Some(&i) {
                            v.push(i);
                        }
                    }
                }
            }
        }
    }

    /// Adds snapshots (found later, e.g. completed while planning) and re-indexes.
    pub fn extend(&mut self, more: Vec<ScopeSnapshot>) {
        self.snapshots.extend(more);
        self.index();
    }

    /// The snapshots that reference the file at `loc`: by one of the places a reference could
    /// denote, or by its name (see [`Scope::referenced_names`]).
    pub fn referencing(&self, loc: &Location) -> Vec<usize> {
        let mut v = self.referenced.get(loc).cloned().unwrap_or_default();
        if loc.file_name() != METADATA_FILE {
            v.extend(self.referenced_names.get(loc.file_name()).into_iter().flatten());
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Whether any snapshot references the file at `loc`.
    pub fn is_referenced(&self, loc: &Location) -> bool {
        !self.referencing(loc).is_empty()
    }

    /// Whether `loc` lies below one of the roots.
    pub fn within(&self, loc: &Location) -> bool {
        self.roots.iter().any(|r| *loc == r.location || loc.strip_prefix(&r.location).is_some())
    }

    /// Complete snapshot directories under the roots now, `_metadata` parsed or not.
    pub fn complete_now(&self, storage: &dyn Storage) -> Result<BTreeSet<Location>> {
        let mut out = BTreeSet::new();
        for r in &self.roots {
            out.extend(DirScan::snapshots(storage, &r.location)?.snapshots.into_iter().filter(|s| s.is_complete()).map(|s| s.dir));
        }
        Ok(out)
    }

    /// Every snapshot directory the scan saw complete (read or not).
    pub fn complete(&self) -> BTreeSet<Location> {
        self.snapshots.iter().map(|s| s.dir.clone()).chain(self.unreadable.iter().map(|u| u.dir.clone())).collect()
    }

    /// How a snapshot is named in reports: relative to `base` when below it, else its path.
    pub fn label(&self, i: usize, base: &Location) -> String {
        let d = &self.snapshots[i].dir;
        match d.strip_prefix(base) {
            Some(rel) if !rel.is_empty() => rel.to_owned(),
            _ if d == base => ".".to_owned(),
            _ => d.to_string(),
        }
    }

    /// Opens snapshots that completed under the roots after the scan (not in `known`). A new one
    /// whose `_metadata` does not parse is an error: what it references is unknown.
    pub fn newly_complete(&self, storage: Arc<dyn Storage>, known: &BTreeSet<Location>) -> Result<Vec<ScopeSnapshot>> {
        let mut out = Vec::new();
        for (ri, r) in self.roots.iter().enumerate() {
            for sd in DirScan::snapshots(storage.as_ref(), &r.location)?.snapshots.into_iter().filter(|s| s.is_complete()) {
                if known.contains(&sd.dir) || out.iter().any(|o: &ScopeSnapshot| o.dir == sd.dir) {
                    continue;
                }
                let s = Snapshot::open(storage.clone(), sd.dir.as_str())
                    .map_err(|e| Error::Invalid(format!("{} completed meanwhile and cannot be read ({e}); nothing removed", sd.dir)))?;
                out.push(ScopeSnapshot {
                    home: if matches!(sd.kind, SnapshotDirKind::Checkpoint { .. }) { sd.dir.parent().unwrap_or(sd.dir.clone()) } else { sd.dir.clone() },
                    dir: sd.dir.clone(),
                    kind: sd.kind,
                    checkpoint_id: s.metadata.checkpoint_id,
                    references: references(&s, false),
                    root: ri,
                    metadata_modified: sd.metadata.as_ref().and_then(|m| m.modified),
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homes() {
        let h = |p: &str| home(&Location::new(p)).map(|l| l.to_string());
        assert_eq!(h("/c/job/chk-3/x").as_deref(), Some("/c/job"));
        assert_eq!(h("/c/job/chk-3").as_deref(), Some("/c/job"));
        assert_eq!(h("/c/job/shared/x").as_deref(), Some("/c/job"));
        assert_eq!(h("/c/job/shared/job_a_op_b/x").as_deref(), Some("/c/job"));
        assert_eq!(h("/c/job/taskowned/x").as_deref(), Some("/c/job"));
        assert_eq!(h("/sp/savepoint-1a2b3c-0123456789ab/x").as_deref(), Some("/sp/savepoint-1a2b3c-0123456789ab"));
        assert_eq!(h("/sp/savepoint-1a2b3c-0123456789ab").as_deref(), Some("/sp/savepoint-1a2b3c-0123456789ab"));
        assert_eq!(h("s3://b/c/job/shared/x").as_deref(), Some("s3://b/c/job"));
        assert_eq!(h("/backup/copy/x"), None);
    }

    #[test]
    fn roots_of_job_checkpoint_savepoint_and_other_directories() {
        use crate::storage::LocalStorage;
        let tmp = tempfile::tempdir().unwrap();
        let base = Location::new(tmp.path().to_str().unwrap());
        let ck = base.join("ckpts");
        let job = ck.join("not-a-job-id-but-has-shared");
        std::fs::create_dir_all(format!("{job}/shared")).unwrap();
        std::fs::create_dir_all(format!("{job}/chk-7")).unwrap();
        let sp = base.join("sp/savepoint-1a2b3c-0123456789ab");
        std::fs::create_dir_all(sp.as_str()).unwrap();
        let s = LocalStorage;
        assert_eq!(root_of(&s, &job).unwrap(), (ck.clone(), RootReason::CheckpointRoot));
        assert_eq!(root_of(&s, &job.join("chk-7")).unwrap(), (ck.clone(), RootReason::CheckpointRoot));
        assert_eq!(root_of(&s, &sp).unwrap(), (base.join("sp"), RootReason::Parent));
        assert_eq!(root_of(&s, &ck).unwrap(), (ck.clone(), RootReason::Directory));
        // Never the top of the file system.
        assert_eq!(root_of(&s, &Location::new("/chk-3")).unwrap(), (Location::new("/chk-3"), RootReason::Directory));
        // --also inside a root adds nothing; relative paths are made absolute.
        let r = roots(&s, &job, &[job.join("shared").to_string()], &[]).unwrap();
        assert_eq!(r.iter().map(|r| r.location().clone()).collect::<Vec<_>>(), std::slice::from_ref(&ck));
        assert_eq!(absolute(&Location::new("/a/b/../c/./d")), Location::new("/a/c/d"));
    }

    #[test]
    fn job_ids() {
        assert!(is_job_id("884d27de0abb2ce22241dffc7fbb6ee8"));
        assert!(!is_job_id("884d27de0abb2ce22241dffc7fbb6ee"));
        assert!(!is_job_id("chk-3"));
    }
}
