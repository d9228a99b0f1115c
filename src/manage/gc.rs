//! `gc`: remove the files in a directory of snapshots that no complete snapshot references.
//!
//! Conservative by construction; a file is removed only when all of these hold:
//! 1. no complete snapshot of the *scope* references it: every snapshot under the roots of
//!    `super::scope` — for a job directory the whole checkpoint directory around it (its sibling
//!    job directories: a job restored in CLAIM or LEGACY mode references the old job's
//!    `shared/`), plus `--also` and `--keep` directories. A reference counts both as recorded
//!    and re-based, and any file of the same (UUID) name counts as referenced (`refs`);
//! 2. its role in Flink's layout is known (`shared/`, `taskowned/`, a snapshot directory): files
//!    of unknown role are never removed, nor is any `_metadata`;
//! 3. it is older than `older_than` (a checkpoint in flight writes shared files no `_metadata`
//!    references yet); in a snapshot directory without `_metadata` (in flight or abandoned), the
//!    newest file of that whole directory must be older;
//! 4. it does not lie in a snapshot directory whose `_metadata` does not parse;
//! 5. it does not lie under a path given with `--keep`.
//!
//! And the whole run is refused (nothing removed) when a `_metadata` anywhere in the scope does
//! not parse (its references are unknown; `allow_unreadable` overrides), or when the scope holds
//! no complete snapshot at all (everything would go: likely the wrong directory;
//! `allow_no_snapshots` overrides). Before removing, the roots are scanned again: the references
//! of a snapshot that completed meanwhile are kept too (one that does not parse aborts the run).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::layout::FileRole;
use super::refs::Analysis;
use super::scope::{absolute, roots, Scope, ScopeRoot};
use crate::error::{Error, Result};
use crate::storage::{LocalStorage, Location, Storage};

/// Removing files: kept apart from [`Storage`], which only reads, so that nothing but `gc`
/// can change a snapshot directory.
pub trait Delete: Storage {
    /// Removes a file (not a directory).
    fn remove_file(&self, loc: &Location) -> Result<()>;
    /// Removes a directory if it is empty; fails otherwise.
    fn remove_empty_dir(&self, loc: &Location) -> Result<()>;
    /// Removes files, in bulk where the store can (S3: 1,000 keys a request); returns those that
    /// could not be removed, with why.
    fn remove_files(&self, locs: &[Location]) -> Vec<(Location, Error)> {
        locs.iter().filter_map(|l| self.remove_file(l).err().map(|e| (l.clone(), e))).collect()
    }
}

/// Local files and object stores: files go with the stores' bulk deletes; an object store has
/// no directories, so one "is removed" when nothing lies under it any more.
impl Delete for crate::storage::Storages {
    fn remove_file(&self, loc: &Location) -> Result<()> {
        if loc.is_local() {
            return LocalStorage.remove_file(loc);
        }
        Storage::delete(self, loc)
    }

    fn remove_empty_dir(&self, loc: &Location) -> Result<()> {
        if loc.is_local() {
            return LocalStorage.remove_empty_dir(loc);
        }
        match self.list(loc) {
            Err(Error::NotFound { .. }) => Ok(()),
            Ok(v) if v.is_empty() => Ok(()),
            Ok(_) => Err(Error::Invalid(format!("{loc}: not empty"))),
            Err(e) => Err(e),
        }
    }

    fn remove_files(&self, locs: &[Location]) -> Vec<(Location, Error)> {
        match self.delete_many(locs) {
            Ok(failed) => failed,
            Err(e) => {
                let msg = e.to_string();
                locs.iter().map(|l| (l.clone(), Error::Invalid(msg.clone()))).collect()
            }
        }
    }
}

fn local_path(loc: &Location) -> Result<PathBuf> {
    match loc.scheme() {
        None => Ok(PathBuf::from(loc.as_str())),
        Some(s) => Err(Error::unsupported(format!("{loc}: the {s}:// file system is not supported yet"), None)),
    }
}

impl Delete for LocalStorage {
    fn remove_file(&self, loc: &Location) -> Result<()> {
        std::fs::remove_file(local_path(loc)?).map_err(|e| Error::io(loc.as_str(), e))
    }

    fn remove_empty_dir(&self, loc: &Location) -> Result<()> {
        std::fs::remove_dir(local_path(loc)?).map_err(|e| Error::io(loc.as_str(), e))
    }
}

/// How `gc` runs.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Files younger than this are never removed.
    pub older_than: Duration,
    /// Snapshots (or directories of snapshots) whose references are kept too, and paths under
    /// the directory never to remove.
    pub keep: Vec<String>,
    /// More roots whose snapshots' references are kept (savepoint directories, other checkpoint
    /// directories).
    pub also: Vec<String>,
    /// Go on when a `_metadata` does not parse (its snapshot directory is still left alone).
    pub allow_unreadable: bool,
    /// Go on when the directory holds no complete snapshot.
    pub allow_no_snapshots: bool,
    /// The time ages are measured from.
    pub now: SystemTime,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            older_than: Duration::from_secs(3600),
            keep: Vec::new(),
            also: Vec::new(),
            allow_unreadable: false,
            allow_no_snapshots: false,
            now: SystemTime::now(),
        }
    }
}

/// Why a file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// A shared file no complete snapshot references.
    UnreferencedShared,
    /// A task-owned file no complete snapshot references.
    UnreferencedTaskOwned,
    /// A file in a complete snapshot's directory that it does not reference (a leftover).
    Leftover,
    /// A file of a snapshot directory without `_metadata`, untouched for longer than the limit.
    Abandoned,
}

/// Why an unreferenced file stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeptReason {
    /// Younger than `older_than`.
    Young,
    /// In a snapshot directory without `_metadata` that was written to recently: maybe in flight.
    InFlight,
    /// Not part of Flink's layout.
    UnknownRole,
    /// A `_metadata` (never removed).
    Metadata,
    /// In a snapshot directory whose `_metadata` does not parse.
    UnreadableSnapshot,
    /// Under a `--keep` path.
    Keep,
    /// Its modification time is unknown.
    NoTime,
    /// A snapshot that completed while gc was planning references it.
    CompletedMeanwhile,
}

/// A file to remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removal {
    /// Relative to the directory.
    pub path: String,
    /// Its role.
    pub role: FileRole,
    /// Bytes.
    pub size: u64,
    /// Why.
    pub reason: RemovalReason,
    /// Where it is.
    #[serde(skip)]
    pub location: Location,
}

/// An unreferenced file that stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// Relative to the directory.
    pub path: String,
    /// Its role.
    pub role: FileRole,
    /// Bytes.
    pub size: u64,
    /// Why.
    pub reason: KeptReason,
}

/// A removal that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Relative to the directory.
    pub path: String,
    /// What went wrong.
    pub error: String,
}

/// A file of the directory that a snapshot outside it references: it stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReferencedFromOutside {
    /// Relative to the directory.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// The snapshots outside the directory that reference it (absolute).
    pub by: Vec<String>,
}

/// Totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcTotals {
    /// Complete snapshots whose references are kept (in every root).
    pub snapshots: usize,
    /// Of which inside the directory.
    pub own_snapshots: usize,
    /// Files of the directory referenced by snapshots outside it (kept).
    pub referenced_from_outside_files: usize,
    /// Their bytes.
    pub referenced_from_outside_bytes: u64,
    /// Files to remove (or removed).
    pub remove_files: usize,
    /// Their bytes.
    pub remove_bytes: u64,
    /// Directories to remove (or removed).
    pub remove_dirs: usize,
    /// Unreferenced files kept.
    pub kept_files: usize,
    /// Their bytes.
    pub kept_bytes: u64,
}

/// What `gc` will do (dry run) or did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GcPlan {
    /// The directory.
    pub root: String,
    /// The directories whose snapshots' references are kept: a reference from a snapshot
    /// outside all of them cannot be seen.
    pub roots: Vec<ScopeRoot>,
    /// Whether files were actually removed.
    pub deleted: bool,
    /// Why nothing may be removed, if so.
    pub refused: Option<String>,
    /// Files to remove.
    pub remove: Vec<Removal>,
    /// Directories to remove once empty (relative), deepest first.
    pub remove_dirs: Vec<String>,
    /// Unreferenced files kept, and why.
    pub kept: Vec<Kept>,
    /// Snapshot directories (in any root) whose `_metadata` does not parse.
    pub unreadable: Vec<String>,
    /// Files of the directory that snapshots outside it reference (they stay).
    pub referenced_from_outside: Vec<ReferencedFromOutside>,
    /// Removals that failed (with `--delete`).
    pub failures: Vec<Failure>,
    /// Totals.
    pub totals: GcTotals,
    #[serde(skip)]
    scope: Option<Scope>,
    #[serde(skip)]
    dir_locations: Vec<Location>,
}

/// Plans a collection of `dir`: nothing is removed.
pub fn plan(storage: Arc<dyn Storage>, dir: &str, opts: &GcOptions) -> Result<GcPlan> {
    let root = absolute(&Location::new(dir));
    let roots = roots(storage.as_ref(), &root, &opts.also, &opts.keep)?;
    let a = Analysis::new(storage.clone(), &root, roots)?;
    let sc = &a.scope;
    let mut keep_prefixes: Vec<Location> = Vec::new();
    for k in &opts.keep {
        keep_prefixes.push(absolute(&Location::new(k)));
    }
    let mut refusals = Vec::new();
    let unreadable_dirs: BTreeSet<usize> = a.unreadable.iter().map(|(i, _)| *i).collect();
    let mut p = GcPlan {
        root: root.to_string(),
        roots: sc.roots.clone(),
        deleted: false,
        refused: None,
        remove: Vec::new(),
        remove_dirs: Vec::new(),
        kept: Vec::new(),
        unreadable: sc.unreadable.iter().map(|u| format!("{}: {}", a.display(&u.dir), u.error)).collect(),
        referenced_from_outside: Vec::new(),
        failures: Vec::new(),
        totals: GcTotals { snapshots: sc.snapshots.len(), own_snapshots: a.own.len(), ..Default::default() },
        scope: None,
        dir_locations: Vec::new(),
    };
    if !sc.unreadable.is_empty() && !opts.allow_unreadable {
        let outside = sc.unreadable.iter().filter(|u| a.scan.rel(&u.dir).is_none()).count();
        refusals.push(format!(
            "{} snapshot(s){} have a _metadata that does not parse, so what they reference is unknown: {} (pass --allow-unreadable to collect anyway; their directories are left alone)",
            sc.unreadable.len(),
            if outside > 0 { format!(" ({outside} in other directories of the scanned roots)") } else { String::new() },
            p.unreadable.join("; ")
        ));
    }
    let old = |t: Option<SystemTime>| -> Option<bool> { t.map(|t| opts.now.duration_since(t).is_ok_and(|age| age >= opts.older_than)) };
    let inside = |d: &Location| *d == a.scan.root || d.strip_prefix(&a.scan.root).is_some();
    for f in &a.scan.files {
        let by = sc.referencing(&f.location);
        if !by.is_empty() {
            let outside: Vec<String> = by.iter().filter(|&&j| !inside(&sc.snapshots[j].dir)).map(|&j| sc.snapshots[j].dir.to_string()).collect();
            if !outside.is_empty() && f.role != FileRole::Metadata {
                p.referenced_from_outside.push(ReferencedFromOutside { path: f.rel.clone(), size: f.size, by: outside });
            }
            continue;
        }
        let sd = f.snapshot.map(|i| (i, &a.scan.snapshots[i]));
        let decision: std::result::Result<RemovalReason, KeptReason> = if keep_prefixes.iter().any(|k| &f.location == k || f.location.strip_prefix(k).is_some()) {
            Err(KeptReason::Keep)
        } else {
            match f.role {
                FileRole::Unknown => Err(KeptReason::UnknownRole),
                FileRole::Metadata => Err(if sd.is_some_and(|(i, _)| unreadable_dirs.contains(&i)) { KeptReason::UnreadableSnapshot } else { KeptReason::Metadata }),
                _ => match sd {
                    Some((i, _)) if unreadable_dirs.contains(&i) => Err(KeptReason::UnreadableSnapshot),
                    Some((_, s)) if !s.is_complete() => match old(s.newest_modified) {
                        Some(true) => Ok(RemovalReason::Abandoned),
                        Some(false) => Err(KeptReason::InFlight),
                        None => Err(KeptReason::NoTime),
                    },
                    _ => {
                        let reason = match (sd, f.role) {
                            (Some(_), _) => RemovalReason::Leftover,
                            (None, FileRole::TaskOwned) => RemovalReason::UnreferencedTaskOwned,
                            _ => RemovalReason::UnreferencedShared,
                        };
                        match old(f.modified) {
                            Some(true) => Ok(reason),
                            Some(false) => Err(KeptReason::Young),
                            None => Err(KeptReason::NoTime),
                        }
                    }
                },
            }
        };
        match decision {
            Ok(reason) => p.remove.push(Removal { path: f.rel.clone(), role: f.role, size: f.size, reason, location: f.location.clone() }),
            Err(reason) => p.kept.push(Kept { path: f.rel.clone(), role: f.role, size: f.size, reason }),
        }
    }
    // Directories left empty: subdirectories of shared/ and taskowned/, and snapshot directories
    // without `_metadata` being removed as abandoned (even when already empty, if old). Never the
    // directory itself, `shared/`, `taskowned/` or any directory of unknown role.
    let removed: BTreeSet<&Location> = p.remove.iter().map(|r| &r.location).collect();
    let abandoned: BTreeSet<&Location> = a
        .scan
        .snapshots
        .iter()
        .filter(|s| !s.is_complete() && s.rel != "." && old(s.newest_modified) == Some(true))
        .filter(|s| !keep_prefixes.iter().any(|k| &s.dir == k || s.dir.strip_prefix(k).is_some() || k.strip_prefix(&s.dir).is_some()))
        .map(|s| &s.dir)
        .collect();
    let mut dirs: Vec<_> = a.scan.dirs.iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.rel.matches('/').count()));
    let mut gone: BTreeSet<&Location> = BTreeSet::new();
    for d in dirs {
        let inside_abandoned = abandoned.iter().any(|s| d.location == **s || d.location.strip_prefix(s).is_some());
        let state_subdir = {
            let comps: Vec<&str> = d.rel.split('/').collect();
            comps[..comps.len() - 1].iter().any(|c| *c == "shared" || *c == "taskowned")
                && !a.scan.snapshots.iter().any(|s| d.location.strip_prefix(&s.dir).is_some())
        };
        if !(inside_abandoned || (state_subdir && old(d.modified) == Some(true))) {
            continue;
        }
        let files_left = a.scan.files.iter().any(|f| f.location.strip_prefix(&d.location).is_some() && !removed.contains(&f.location));
        let dirs_left = a.scan.dirs.iter().any(|x| x.location.strip_prefix(&d.location).is_some() && !gone.contains(&x.location));
        if !files_left && !dirs_left {
            gone.insert(&d.location);
            p.remove_dirs.push(d.rel.clone());
            p.dir_locations.push(d.location.clone());
        }
    }
    if sc.snapshots.is_empty() && sc.unreadable.is_empty() && !opts.allow_no_snapshots && !(p.remove.is_empty() && p.remove_dirs.is_empty()) {
        refusals.push(format!(
            "no complete snapshot in this directory (nor in {}): nothing references anything, so everything would go (wrong directory?); pass --allow-no-snapshots to collect anyway",
            sc.roots.iter().map(|r| r.path.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    if !refusals.is_empty() {
        p.refused = Some(refusals.join("\n"));
    }
    p.totals.referenced_from_outside_files = p.referenced_from_outside.len();
    p.totals.referenced_from_outside_bytes = p.referenced_from_outside.iter().map(|r| r.size).sum();
    p.scope = Some(a.scope);
    totals(&mut p);
    Ok(p)
}

fn totals(p: &mut GcPlan) {
    p.totals.remove_files = p.remove.len();
    p.totals.remove_bytes = p.remove.iter().map(|r| r.size).sum();
    p.totals.remove_dirs = p.remove_dirs.len();
    p.totals.kept_files = p.kept.len();
    p.totals.kept_bytes = p.kept.iter().map(|k| k.size).sum();
}

/// Files handed to [`Delete::remove_files`] at once: object stores send up to 20 bulk requests
/// of one chunk at a time (object_store's `delete_stream`).
const DELETE_CHUNK: usize = 10_000;

/// What a fresh listing of the object-store directory `root` says about each candidate, in
/// their order (`NotFound` when it is gone). One paged listing (1,000 objects a request) instead
/// of a HEAD per file, and never an answer from sizes and times the scan learnt. A listing that
/// fails ends the run before anything is deleted.
fn relisted(storage: &dyn Storage, root: &Location, candidates: &[Removal]) -> Result<Vec<Result<crate::storage::FileMeta>>> {
    let index: std::collections::HashMap<&Location, usize> = candidates.iter().enumerate().map(|(i, r)| (&r.location, i)).collect();
    let mut now: Vec<Option<crate::storage::FileMeta>> = vec![None; candidates.len()];
    storage.list_files(root, &mut |page| {
        for m in page {
            if let Some(&i) = index.get(&m.location) {
                now[i] = Some(m);
            }
        }
        Ok(())
    })?;
    Ok(now
        .into_iter()
        .zip(candidates)
        .map(|(m, r)| m.ok_or_else(|| Error::NotFound { file: r.location.to_string(), referenced_by: None }))
        .collect())
}

/// Carries out a plan: removes its files, then its empty directories. Refuses a refused plan.
/// The roots are scanned again first: a snapshot that completed since planning keeps what it
/// references (one whose `_metadata` does not parse aborts the run). Each failure is recorded
/// and the rest goes on.
pub fn execute<D: Delete + Clone + 'static>(storage: &D, plan: &mut GcPlan, opts: &GcOptions) -> Result<()> {
    if let Some(r) = &plan.refused {
        return Err(Error::Invalid(format!("{}: not collecting: {r}", plan.root)));
    }
    let Some(mut scope) = plan.scope.take() else {
        return Err(Error::Invalid(format!("{}: this plan was carried out already", plan.root)));
    };
    let known = scope.complete();
    let new = scope.newly_complete(Arc::new(storage.clone()), &known)?;
    if !new.is_empty() {
        scope.extend(new);
        let (stay, go): (Vec<Removal>, Vec<Removal>) = std::mem::take(&mut plan.remove).into_iter().partition(|r| scope.is_referenced(&r.location));
        for r in stay {
            plan.kept.push(Kept { path: r.path, role: r.role, size: r.size, reason: KeptReason::CompletedMeanwhile });
        }
        plan.remove = go;
        // A directory still holding a kept file is not removed: `remove_empty_dir` fails on it.
    }
    // The files may have changed since the scan: only an unchanged, still old file goes.
    let candidates = std::mem::take(&mut plan.remove);
    let root = Location::new(&plan.root);
    let heads = if storage.is_object_store(&root) {
        relisted(storage, &root, &candidates)?
    } else {
        storage.head_many(&candidates.iter().map(|r| r.location.clone()).collect::<Vec<_>>())
    };
    let mut going = Vec::new();
    for (r, head) in candidates.into_iter().zip(heads) {
        match head {
            Ok(m) if m.is_dir => {
                plan.failures.push(Failure { path: r.path.clone(), error: "became a directory; left alone".into() });
                continue;
            }
            Ok(m) if !m.modified.is_some_and(|t| opts.now.duration_since(t).is_ok_and(|age| age >= opts.older_than)) => {
                plan.kept.push(Kept { path: r.path.clone(), role: r.role, size: m.size, reason: KeptReason::Young });
                continue;
            }
            Ok(_) => {}
            Err(Error::NotFound { .. }) => continue,
            Err(e) => {
                plan.failures.push(Failure { path: r.path.clone(), error: e.to_string() });
                continue;
            }
        }
        going.push(r);
    }
    // In bulk: the store splits each chunk into its requests (S3: 1,000 keys each, Azure:
    // batches of 256) and sends several at once.
    let mut done = Vec::new();
    for batch in going.chunks(DELETE_CHUNK) {
        let locs: Vec<Location> = batch.iter().map(|r| r.location.clone()).collect();
        let failed: std::collections::HashMap<Location, Error> = storage.remove_files(&locs).into_iter().collect();
        for r in batch {
            match failed.get(&r.location) {
                None => done.push(r.clone()),
                Some(e) => plan.failures.push(Failure { path: r.path.clone(), error: e.to_string() }),
            }
        }
    }
    plan.remove = done;
    let mut dirs_done = Vec::new();
    for (rel, loc) in std::mem::take(&mut plan.remove_dirs).into_iter().zip(std::mem::take(&mut plan.dir_locations)) {
        // A directory that is no longer empty got new files: it stays.
        if storage.remove_empty_dir(&loc).is_ok() {
            dirs_done.push(rel);
        }
    }
    plan.remove_dirs = dirs_done;
    plan.deleted = true;
    totals(plan);
    Ok(())
}
