//! The snapshot-management commands as functions returning typed reports (each serializes to
//! the `data` of the command's JSON output, `formats/cli-json.md`), on [`default_storage`]:
//! [`verify`], [`latest`], [`refs`], [`stats`], [`gc`], [`delete`].

use std::sync::Arc;

use super::default_storage;
use crate::error::Result;
pub use crate::manage::delete::{DeleteFile, DeleteOptions, DeletePlan};
pub use crate::manage::gc::{GcOptions, GcPlan};
pub use crate::manage::latest::LatestReport;
pub use crate::manage::refs::RefsReport;
pub use crate::manage::scope::ScopeRoot;
pub use crate::manage::stats::StatsReport;
pub use crate::manage::verify::{Level as VerifyLevel, VerifyReport};
use crate::storage::{Storage, Storages};

/// Checks the snapshot at `location` (`flinksnap verify`): shallow, `_metadata` parses and every
/// referenced file exists with its recorded size; full, also every handle, key group and entry
/// decodes. Fails only when it cannot run; problems are in the report
/// ([`VerifyReport::sound`], [`VerifyReport::problems`]).
///
/// ```
/// # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/flink-2.3.0/heap-savepoint-canonical/savepoint-ae4c95-ff41c5f424ab");
/// let report = flinksnap::verify(dir, flinksnap::VerifyLevel::Full, &[])?;
/// assert!(report.sound);
/// # Ok::<(), flinksnap::Error>(())
/// ```
pub fn verify(location: &str, level: VerifyLevel, uids: &[String]) -> Result<VerifyReport> {
    verify_with(default_storage(), location, level, uids)
}

/// [`verify`], reading from `storage` (e.g. [`Storages::new`] with an endpoint and credentials).
pub fn verify_with(storage: Arc<dyn Storage>, location: &str, level: VerifyLevel, uids: &[String]) -> Result<VerifyReport> {
    crate::manage::verify::verify(storage, location, level, uids)
}

/// [`verify_with`] on `threads` threads (default of the others: one per core): key-group ranges
/// of each keyed-state handle are decoded in parallel; the report is the same for any number.
pub fn verify_on(storage: Arc<dyn Storage>, location: &str, level: VerifyLevel, uids: &[String], threads: usize) -> Result<VerifyReport> {
    crate::manage::verify::verify_on(storage, location, level, uids, threads)
}

/// The newest complete snapshot under `dir` that passes shallow verification
/// (`flinksnap latest`); [`LatestReport::path`] is `None` when there is none.
///
/// ```
/// # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/flink-2.3.0/heap-checkpoint");
/// let latest = flinksnap::latest(dir)?;
/// assert!(latest.path.unwrap().contains("chk-"));
/// # Ok::<(), flinksnap::Error>(())
/// ```
pub fn latest(dir: &str) -> Result<LatestReport> {
    latest_with(default_storage(), dir)
}

/// [`latest`], reading from `storage`.
pub fn latest_with(storage: Arc<dyn Storage>, dir: &str) -> Result<LatestReport> {
    crate::manage::latest::latest(storage, dir)
}

/// Which files each snapshot under `dir` references, which snapshots reference each file
/// (across the job directories around it and `also`), and which files nothing references
/// (`flinksnap refs`).
pub fn refs(dir: &str, also: &[String]) -> Result<RefsReport> {
    refs_with(default_storage(), dir, also)
}

/// [`refs`], reading from `storage`.
pub fn refs_with(storage: Arc<dyn Storage>, dir: &str, also: &[String]) -> Result<RefsReport> {
    crate::manage::refs::refs(storage, dir, also)
}

/// Where the bytes and entries of the snapshot at `location` are (`flinksnap stats`): per
/// operator, state, subtask and key group, the skew over key groups and subtasks, and the
/// `top` heaviest key groups and keys per operator. Reads every entry.
///
/// ```
/// # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/flink-2.3.0/heap-savepoint-canonical/savepoint-ae4c95-ff41c5f424ab");
/// let report = flinksnap::stats(dir, 3, &[])?;
/// assert!(report.entries > 0);
/// # Ok::<(), flinksnap::Error>(())
/// ```
pub fn stats(location: &str, top: usize, uids: &[String]) -> Result<StatsReport> {
    stats_with(default_storage(), location, top, uids)
}

/// [`stats`], reading from `storage`.
pub fn stats_with(storage: Arc<dyn Storage>, location: &str, top: usize, uids: &[String]) -> Result<StatsReport> {
    stats_threads(storage, location, top, uids, crate::readers::parallel::default_threads())
}

/// [`stats_with`] on `threads` threads (the others use one per core): pieces of each operator's
/// state are read in parallel; the report is the same for any number.
pub fn stats_threads(storage: Arc<dyn Storage>, location: &str, top: usize, uids: &[String], threads: usize) -> Result<StatsReport> {
    crate::manage::stats::stats(storage, location, top, uids, threads)
}

/// Plans `gc` of `dir` (`flinksnap gc`) and, with `delete`, removes what the plan says; the plan
/// tells what was (or would be) removed and what was kept and why. A refused run
/// ([`GcPlan::refused`]) removes nothing.
pub fn gc(dir: &str, opts: &GcOptions, delete: bool) -> Result<GcPlan> {
    gc_with(&Storages::default(), dir, opts, delete)
}

/// [`gc`], reading and deleting through `storage` (one set of store clients for the plan and
/// the deletes).
pub fn gc_with(storage: &Storages, dir: &str, opts: &GcOptions, delete: bool) -> Result<GcPlan> {
    let mut plan = crate::manage::gc::plan(Arc::new(storage.clone()), dir, opts)?;
    if delete && plan.refused.is_none() {
        crate::manage::gc::execute(storage, &mut plan, opts)?;
    }
    Ok(plan)
}

/// Plans the deletion of the snapshot at `location` (`flinksnap delete`, FLIP-47's DELETE of a
/// retained checkpoint or savepoint) and, with `delete`, carries it out: `_metadata` first (so
/// it stops being a snapshot at once), then its own files, then the shared files it references
/// that no other complete snapshot of the scanned roots references. The plan tells what was (or
/// would be) removed and what was kept and why. A refused run ([`DeletePlan::refused`]: the only
/// restorable snapshot of its job, a running job, an unreadable `_metadata`, unless
/// [`DeleteOptions`] overrides) removes nothing; removals that failed are in
/// [`DeletePlan::failures`].
///
/// ```
/// # let chk = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/flink-2.3.0/rocksdb-checkpoint-incremental/884d27de0abb2ce22241dffc7fbb6ee8/chk-3");
/// use flinksnap::{delete, DeleteOptions};
/// // A dry run: what deleting chk-3 would remove, and what stays because chk-4 shares it.
/// let plan = delete(chk, &DeleteOptions::default(), false)?;
/// assert!(plan.refused.is_none() && !plan.deleted);
/// assert!(plan.remove[0].path.ends_with("_metadata"));
/// assert!(plan.kept.iter().any(|f| f.referenced_by.iter().any(|s| s.contains("chk-4"))));
/// # Ok::<(), flinksnap::Error>(())
/// ```
pub fn delete(location: &str, opts: &DeleteOptions, delete: bool) -> Result<DeletePlan> {
    delete_with(&Storages::default(), location, opts, delete)
}

/// [`delete`], reading and deleting through `storage`.
pub fn delete_with(storage: &Storages, location: &str, opts: &DeleteOptions, delete: bool) -> Result<DeletePlan> {
    let mut plan = crate::manage::delete::plan(Arc::new(storage.clone()), location, opts)?;
    if delete && plan.refused.is_none() {
        crate::manage::delete::execute(storage, &mut plan)?;
    }
    Ok(plan)
}
