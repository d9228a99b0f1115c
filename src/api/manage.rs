//! The snapshot-management commands as functions returning typed reports (each serializes to
//! the `data` of the command's JSON output, `formats/cli-json.md`), on [`default_storage`].

use super::default_storage;
use crate::error::Result;
pub use crate::manage::gc::{GcOptions, GcPlan};
pub use crate::manage::latest::LatestReport;
pub use crate::manage::refs::RefsReport;
pub use crate::manage::verify::{Level as VerifyLevel, VerifyReport};
use crate::storage::Storages;

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
    crate::manage::verify::verify(default_storage(), location, level, uids)
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
    crate::manage::latest::latest(default_storage(), dir)
}

/// Which files each snapshot under `dir` references, which snapshots reference each file
/// (across the job directories around it and `also`), and which files nothing references
/// (`flinksnap refs`).
pub fn refs(dir: &str, also: &[String]) -> Result<RefsReport> {
    crate::manage::refs::refs(default_storage(), dir, also)
}

/// Plans `gc` of `dir` (`flinksnap gc`) and, with `delete`, removes what the plan says; the plan
/// tells what was (or would be) removed and what was kept and why. A refused run
/// ([`GcPlan::refused`]) removes nothing.
pub fn gc(dir: &str, opts: &GcOptions, delete: bool) -> Result<GcPlan> {
    // One set of store clients for the plan and the deletes.
    let storage = Storages::default();
    let mut plan = crate::manage::gc::plan(std::sync::Arc::new(storage.clone()), dir, opts)?;
    if delete && plan.refused.is_none() {
        crate::manage::gc::execute(&storage, &mut plan, opts)?;
    }
    Ok(plan)
}
