//! `delete`: FLIP-47's DELETE of one snapshot (a retained checkpoint or a savepoint).
//!
//! Order: its `_metadata` first, so that it stops being a snapshot at once (`latest`, Flink's
//! restore and every other reader see it gone even if the rest is interrupted); then its
//! exclusive files (its directory); then the files outside its directory it references
//! (`shared/` of its own or another job, a savepoint's files) — each file only when **no other
//! complete snapshot of the scope** (`super::scope`: the checkpoint directory around it, plus
//! `--also` roots) references it, by path as recorded or re-based, or by name. A file outside
//! every scanned root is never removed (a snapshot there could not be seen). Its directory goes
//! once empty, as do subdirectories of `shared/` and `taskowned/` it emptied.
//!
//! Refused (nothing removed):
//! - a `_metadata` in the scope that does not parse (its references are unknown;
//!   `allow_unreadable` overrides);
//! - without `force`: the snapshot is the only restorable one of its job (no other complete
//!   snapshot of the job passes shallow verification: its checkpoints in the same job directory,
//!   and for savepoints those whose name carries the same job-id prefix), or its job directory
//!   has a checkpoint in flight (a `chk-N` without `_metadata` written to within
//!   [`IN_FLIGHT`]): a running job's next checkpoint reuses the shared files of its last one.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::gc::{Delete, Failure};
use super::layout::{DirScan, SnapshotDirKind};
use super::refs::references;
use super::scope::{absolute, is_job_id, root_of, roots, Scope, ScopeRoot};
use super::verify::{verify, Level};
use crate::error::{Error, Result};
use crate::metadata::handles::StreamRole;
use crate::snapshot::{Snapshot, METADATA_FILE};
use crate::storage::{Location, Storage};

/// A `chk-N` without `_metadata` written to more recently than this is taken for a checkpoint in
/// flight: its job is running.
pub const IN_FLIGHT: Duration = Duration::from_secs(3600);

/// How `delete` runs.
#[derive(Debug, Clone)]
pub struct DeleteOptions {
    /// More roots whose snapshots' references are kept (savepoint directories, other checkpoint
    /// directories).
    pub also: Vec<String>,
    /// Delete even the only restorable snapshot of its job, or one of a running job.
    pub force: bool,
    /// Go on when a `_metadata` in the scope does not parse.
    pub allow_unreadable: bool,
    /// The time ages are measured from.
    pub now: SystemTime,
}

impl Default for DeleteOptions {
    fn default() -> Self {
        DeleteOptions { also: Vec::new(), force: false, allow_unreadable: false, now: SystemTime::now() }
    }
}

/// Why a file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteReason {
    /// The snapshot's `_metadata` (removed first).
    Metadata,
    /// A file of the snapshot's directory that it references.
    Exclusive,
    /// A file outside its directory that it references and no other snapshot does.
    Shared,
    /// A file of its directory that it does not reference.
    Leftover,
}

/// Why a file of the snapshot stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteKeptReason {
    /// Another complete snapshot references it.
    ReferencedElsewhere,
    /// It lies outside every scanned root: a snapshot there could reference it unseen.
    OutsideScannedRoots,
    /// A snapshot that completed while delete was planning references it.
    CompletedMeanwhile,
}

/// A file of the snapshot: removed, or kept and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeleteFile {
    /// Relative to the snapshot's root (its checkpoint directory or savepoint directory), else
    /// absolute.
    pub path: String,
    /// What it holds (`null` for `_metadata` and leftovers).
    pub holds: Option<StreamRole>,
    /// Bytes (on disk).
    pub size: u64,
    /// Why it goes (`remove[]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<DeleteReason>,
    /// Why it stays (`kept[]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<DeleteKeptReason>,
    /// The other snapshots that reference it (kept files).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referenced_by: Vec<String>,
    #[serde(skip)]
    location: Location,
}

/// Totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeleteTotals {
    /// Files removed (or to remove).
    pub remove_files: usize,
    /// Their bytes.
    pub remove_bytes: u64,
    /// Directories removed (or to remove).
    pub remove_dirs: usize,
    /// Files of the snapshot that stay.
    pub kept_files: usize,
    /// Their bytes.
    pub kept_bytes: u64,
    /// Referenced files that were missing already.
    pub missing_files: usize,
    /// Complete snapshots read in all roots (the deleted one not counted).
    pub scanned_snapshots: usize,
}

/// What `delete` will do (dry run) or did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletePlan {
    /// The snapshot directory.
    pub snapshot: String,
    /// What its name says it is.
    pub kind: SnapshotDirKind,
    /// Checkpoint id from `_metadata`.
    pub checkpoint_id: u64,
    /// Its job directory (checkpoints) or its own directory.
    pub job: String,
    /// The directories whose snapshots' references are kept.
    pub roots: Vec<ScopeRoot>,
    /// Whether files were removed.
    pub deleted: bool,
    /// Why nothing may be removed, if so.
    pub refused: Option<String>,
    /// Refusals `--force` overrode.
    pub forced: Vec<String>,
    /// Other restorable snapshots of its job (the newest sound one first, if any).
    pub alternatives: Vec<String>,
    /// Files to remove, in order (`_metadata` first).
    pub remove: Vec<DeleteFile>,
    /// Directories to remove once empty, deepest first.
    pub remove_dirs: Vec<String>,
    /// Files of the snapshot that stay, and why.
    pub kept: Vec<DeleteFile>,
    /// Files it references that do not exist (nothing to remove).
    pub missing: Vec<String>,
    /// Snapshot directories of the scope whose `_metadata` does not parse.
    pub unreadable: Vec<String>,
    /// Removals that failed.
    pub failures: Vec<Failure>,
    /// Totals.
    pub totals: DeleteTotals,
    #[serde(skip)]
    scope: Option<Scope>,
    #[serde(skip)]
    dir_locations: Vec<Location>,
}

/// The job a snapshot belongs to, as far as names tell: a checkpoint's job directory name (a job
/// id), a savepoint's `savepoint-<first 6 hex of the job id>-…` prefix.
fn job_key(kind: SnapshotDirKind, dir: &Location) -> Option<String> {
    match kind {
        SnapshotDirKind::Checkpoint { .. } => dir.parent().map(|p| p.file_name().to_owned()).filter(|n| is_job_id(n)),
        SnapshotDirKind::Savepoint => {
            let rest = dir.file_name().strip_prefix("savepoint-")?;
            let prefix = rest.split('-').next()?;
            (prefix.len() == 6 && prefix.bytes().all(|b| b.is_ascii_hexdigit())).then(|| prefix.to_owned())
        }
        SnapshotDirKind::Other => None,
    }
}

/// Whether `other` is a snapshot of the same job as the one at `dir`.
fn same_job(kind: SnapshotDirKind, dir: &Location, other_kind: SnapshotDirKind, other: &Location) -> bool {
    if matches!((kind, other_kind), (SnapshotDirKind::Checkpoint { .. }, SnapshotDirKind::Checkpoint { .. })) && dir.parent() == other.parent() {
        return true;
    }
    match (job_key(kind, dir), job_key(other_kind, other)) {
        (Some(a), Some(b)) => a.starts_with(&b) || b.starts_with(&a),
        _ => false,
    }
}

/// Plans the deletion of the snapshot at `path` (a snapshot directory or its `_metadata`):
/// nothing is removed.
pub fn plan(storage: Arc<dyn Storage>, path: &str, opts: &DeleteOptions) -> Result<DeletePlan> {
    let given = absolute(&Location::new(path));
    let dir = if given.file_name() == METADATA_FILE { given.parent().unwrap_or(given.clone()) } else { given };
    let snapshot = Snapshot::open(storage.clone(), dir.as_str())
        .map_err(|e| Error::Invalid(format!("{dir}: not deleting: what it references is unknown: {e}")))?;
    let name = dir.file_name().to_owned();
    let kind = match name.strip_prefix("chk-").and_then(|n| n.parse::<u64>().ok()) {
        Some(id) if crate::snapshot::is_checkpoint_dir_name(&name) => SnapshotDirKind::Checkpoint { id },
        _ if name.starts_with("savepoint-") => SnapshotDirKind::Savepoint,
        _ => SnapshotDirKind::Other,
    };
    let job = if matches!(kind, SnapshotDirKind::Checkpoint { .. }) { dir.parent().unwrap_or(dir.clone()) } else { dir.clone() };
    let roots = roots(storage.as_ref(), &dir, &opts.also, &[])?;
    let (base, _) = root_of(storage.as_ref(), &dir)?;
    let scope = Scope::scan(storage.clone(), roots, Some(&dir), None)?;
    let show = |l: &Location| match l.strip_prefix(&base) {
        Some(r) if !r.is_empty() => r.to_owned(),
        _ => l.to_string(),
    };
    let mut p = DeletePlan {
        snapshot: dir.to_string(),
        kind,
        checkpoint_id: snapshot.metadata.checkpoint_id,
        job: job.to_string(),
        roots: scope.roots.clone(),
        deleted: false,
        refused: None,
        forced: Vec::new(),
        alternatives: Vec::new(),
        remove: Vec::new(),
        remove_dirs: Vec::new(),
        kept: Vec::new(),
        missing: Vec::new(),
        unreadable: scope.unreadable.iter().map(|u| format!("{}: {}", u.dir, u.error)).collect(),
        failures: Vec::new(),
        totals: DeleteTotals { scanned_snapshots: scope.snapshots.len() + scope.unreadable.len(), ..Default::default() },
        scope: None,
        dir_locations: Vec::new(),
    };
    let mut refusals = Vec::new();
    if !scope.unreadable.is_empty() && !opts.allow_unreadable {
        refusals.push(format!(
            "{} snapshot(s) of the scanned roots have a _metadata that does not parse, so what they reference is unknown: {} (pass --allow-unreadable to delete anyway)",
            scope.unreadable.len(),
            p.unreadable.join("; ")
        ));
    }
    let mut overridable = Vec::new();
    // Other restorable snapshots of the same job: newest first, the first sound one is enough.
    let mut same: Vec<_> = scope.snapshots.iter().filter(|s| same_job(kind, &dir, s.kind, &s.dir)).collect();
    same.sort_by_key(|s| std::cmp::Reverse((s.metadata_modified, s.checkpoint_id)));
    for s in same {
        if verify(storage.clone(), s.dir.as_str(), Level::Shallow, &[]).is_ok_and(|r| r.sound) {
            p.alternatives.push(s.dir.to_string());
            break;
        }
    }
    // A snapshot whose job its name does not tell (a copy named otherwise) has no known siblings.
    let job_known = matches!(kind, SnapshotDirKind::Checkpoint { .. }) || job_key(kind, &dir).is_some();
    if p.alternatives.is_empty() && job_known {
        overridable.push(format!(
            "it is the only restorable snapshot of its job (no other complete snapshot of {} in the scanned roots passes shallow verification)",
            job_key(kind, &dir).map_or_else(|| job.to_string(), |k| format!("job {k}"))
        ));
    }
    if matches!(kind, SnapshotDirKind::Checkpoint { .. }) {
        let in_flight: Vec<String> = DirScan::snapshots(storage.as_ref(), &job)?
            .snapshots
            .into_iter()
            .filter(|s| !s.is_complete() && s.dir != dir)
            .filter(|s| s.newest_modified.is_none_or(|t| opts.now.duration_since(t).map_or(true, |age| age < IN_FLIGHT)))
            .map(|s| s.dir.file_name().to_owned())
            .collect();
        if !in_flight.is_empty() {
            overridable.push(format!(
                "its job looks running ({} without _metadata written to within the last hour): its next checkpoint may reuse this one's shared files",
                in_flight.join(", ")
            ));
        }
    }
    if opts.force {
        p.forced = overridable;
    } else {
        refusals.extend(overridable.into_iter().map(|r| format!("{r}; pass --force to delete it anyway")));
    }

    // The snapshot's files: what it references, then whatever else lies in its directory.
    let mut seen: BTreeSet<Location> = BTreeSet::new();
    let mut exclusive = Vec::new();
    let mut shared = Vec::new();
    for r in references(&snapshot, true) {
        let Some(loc) = r.found.clone() else {
            p.missing.push(r.recorded.clone());
            continue;
        };
        if !seen.insert(loc.clone()) {
            continue;
        }
        let size = storage.head(&loc).map(|m| m.size).unwrap_or(r.size);
        let inside = loc.strip_prefix(&dir).is_some();
        let reason = match (r.role, inside) {
            (None, _) => DeleteReason::Metadata,
            (_, true) => DeleteReason::Exclusive,
            (_, false) => DeleteReason::Shared,
        };
        let f = DeleteFile { path: show(&loc), holds: r.role, size, reason: Some(reason), kept: None, referenced_by: Vec::new(), location: loc };
        match reason {
            DeleteReason::Metadata => p.remove.push(f),
            DeleteReason::Exclusive => exclusive.push(f),
            _ => shared.push(f),
        }
    }
    let listing = DirScan::full(storage.as_ref(), &dir)?;
    for f in &listing.files {
        if seen.insert(f.location.clone()) {
            exclusive.push(DeleteFile {
                path: show(&f.location),
                holds: None,
                size: f.size,
                reason: Some(DeleteReason::Leftover),
                kept: None,
                referenced_by: Vec::new(),
                location: f.location.clone(),
            });
        }
    }
    for mut f in exclusive.into_iter().chain(shared) {
        let by = scope.referencing(&f.location);
        if !by.is_empty() {
            f.kept = Some(DeleteKeptReason::ReferencedElsewhere);
            f.referenced_by = by.iter().map(|&j| show(&scope.snapshots[j].dir)).collect();
        } else if !scope.within(&f.location) {
            f.kept = Some(DeleteKeptReason::OutsideScannedRoots);
        }
        if f.kept.is_some() {
            f.reason = None;
            p.kept.push(f);
        } else {
            p.remove.push(f);
        }
    }
    // Directories left empty: the snapshot's own (and below it), and subdirectories of `shared/`
    // and `taskowned/` (file merging) whose every entry goes. Never `shared/` itself or the job
    // directory.
    let removed: BTreeSet<Location> = p.remove.iter().map(|f| f.location.clone()).collect();
    let mut dirs: Vec<Location> = listing.dirs.iter().map(|d| d.location.clone()).collect();
    dirs.push(dir.clone());
    for f in p.remove.iter().filter(|f| f.reason == Some(DeleteReason::Shared)) {
        let mut d = f.location.parent();
        while let Some(x) = d {
            let below_state = x.components().iter().rev().skip(1).any(|c| *c == "shared" || *c == "taskowned");
            if !below_state || dirs.contains(&x) {
                break;
            }
            dirs.push(x.clone());
            d = x.parent();
        }
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().len()));
    let mut gone: BTreeSet<Location> = BTreeSet::new();
    for d in dirs {
        let empty_after = if d == dir || d.strip_prefix(&dir).is_some() {
            !listing.files.iter().any(|f| f.location.strip_prefix(&d).is_some() && !removed.contains(&f.location))
                && !listing.dirs.iter().any(|x| x.location.strip_prefix(&d).is_some() && !gone.contains(&x.location))
        } else {
            storage.list(&d)?.iter().all(|e| if e.is_dir { gone.contains(&e.location) } else { removed.contains(&e.location) })
        };
        if empty_after {
            p.remove_dirs.push(show(&d));
            p.dir_locations.push(d.clone());
            gone.insert(d);
        }
    }
    if !refusals.is_empty() {
        p.refused = Some(refusals.join("\n"));
    }
    p.scope = Some(scope);
    totals(&mut p);
    Ok(p)
}

fn totals(p: &mut DeletePlan) {
    p.totals.remove_files = p.remove.len();
    p.totals.remove_bytes = p.remove.iter().map(|f| f.size).sum();
    p.totals.remove_dirs = p.remove_dirs.len();
    p.totals.kept_files = p.kept.len();
    p.totals.kept_bytes = p.kept.iter().map(|f| f.size).sum();
    p.totals.missing_files = p.missing.len();
}

/// Carries out a plan: `_metadata` first (if that fails, nothing else is touched), then the other
/// files, then the directories left empty. The roots are scanned again first: what a snapshot
/// that completed since planning references stays.
pub fn execute<D: Delete + Clone + 'static>(storage: &D, plan: &mut DeletePlan) -> Result<()> {
    if let Some(r) = &plan.refused {
        return Err(Error::Invalid(format!("{}: not deleting: {r}", plan.snapshot)));
    }
    let Some(mut scope) = plan.scope.take() else {
        return Err(Error::Invalid(format!("{}: this plan was carried out already", plan.snapshot)));
    };
    let mut known = scope.complete();
    known.insert(Location::new(&plan.snapshot));
    let new = scope.newly_complete(Arc::new(storage.clone()), &known)?;
    if !new.is_empty() {
        scope.extend(new);
        let (stay, go): (Vec<DeleteFile>, Vec<DeleteFile>) =
            std::mem::take(&mut plan.remove).into_iter().partition(|f| f.reason != Some(DeleteReason::Metadata) && scope.is_referenced(&f.location));
        for mut f in stay {
            f.reason = None;
            f.kept = Some(DeleteKeptReason::CompletedMeanwhile);
            plan.kept.push(f);
        }
        plan.remove = go;
    }
    let mut done = Vec::new();
    for f in std::mem::take(&mut plan.remove) {
        match storage.remove_file(&f.location) {
            Ok(()) => done.push(f),
            Err(Error::NotFound { .. }) => {}
            Err(e) => {
                let metadata = f.reason == Some(DeleteReason::Metadata);
                plan.failures.push(Failure { path: f.path.clone(), error: e.to_string() });
                if metadata {
                    // Still a snapshot: leave every file of it.
                    plan.remove = done;
                    totals(plan);
                    return Ok(());
                }
            }
        }
    }
    plan.remove = done;
    let mut dirs_done = Vec::new();
    for (rel, loc) in std::mem::take(&mut plan.remove_dirs).into_iter().zip(std::mem::take(&mut plan.dir_locations)) {
        if storage.remove_empty_dir(&loc).is_ok() {
            dirs_done.push(rel);
        }
    }
    plan.remove_dirs = dirs_done;
    plan.deleted = true;
    totals(plan);
    Ok(())
}
