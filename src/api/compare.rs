//! Comparing snapshots, as functions returning typed reports: [`diff`] (what changed between
//! two snapshots, entry by entry) and [`compat`] (will a snapshot restore into a new version of
//! its job, by the rules Flink applies at restore).

use std::sync::Arc;

use super::default_storage;
use crate::error::Result;
pub use crate::manage::compat::{
    CompatOptions, CompatReport, FlinkVersion, JobDescription, Severity as CompatSeverity, TargetKind as CompatTargetKind, Verdict as CompatVerdict,
};
pub use crate::manage::diff::{DiffOptions, DiffReport, EntryDiff};
use crate::manage::compat::{Target, TargetKind};
use crate::storage::Storage;

/// Compares the state of snapshots `a` and `b` (of one job; any formats and backends, compared
/// by decoded value) (`flinksnap diff`): entries added, removed and changed per operator and
/// state, operators in only one of them or with another (max) parallelism. Keyed state is
/// compared one key group at a time, so memory stays flat.
///
/// ```
/// # let base = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/flink-2.3.0");
/// use flinksnap::{diff, DiffOptions};
/// // A checkpoint and a savepoint of the same state, in different formats: the same entries.
/// let a = format!("{base}/heap-checkpoint/ae4c958bda8589716426dc364fe71548/chk-2");
/// let b = format!("{base}/heap-savepoint-canonical/savepoint-ae4c95-ff41c5f424ab");
/// let report = diff(&a, &b, &DiffOptions::default())?;
/// assert!(!report.different, "{:?}", report.totals);
/// assert!(report.totals.unchanged > 0);
/// # Ok::<(), flinksnap::Error>(())
/// ```
pub fn diff(a: &str, b: &str, opts: &DiffOptions) -> Result<DiffReport> {
    diff_with(default_storage(), a, b, opts, &mut |_| Ok(()))
}

/// [`diff`], reading through `storage`, every differing entry also handed to `sink` as it is
/// found (to stream them; the report keeps [`DiffOptions::examples`] per state). An error from
/// `sink` stops the comparison.
pub fn diff_with(storage: Arc<dyn Storage>, a: &str, b: &str, opts: &DiffOptions, sink: &mut dyn FnMut(&EntryDiff) -> Result<()>) -> Result<DiffReport> {
    crate::manage::diff::diff(storage, a, b, opts, sink)
}

/// Checks whether the snapshot at `location` restores into the job `against` describes
/// (`flinksnap compat`): a snapshot of the new job version, its compiled SQL plan, or a
/// description file ([`describe_job`]'s JSON, `formats/compat-target.md`). Every check applies
/// the rule Flink applies at restore: operators dropped or new, state kinds, key, namespace and
/// value serializer compatibility, max parallelism, distribution modes. `against` `None` runs
/// only the upgrade check of [`CompatOptions::flink_version`]. `uids` name the operators of
/// snapshots that store none (before Flink 2.0).
///
/// ```
/// # let base = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/flink-2.3.0");
/// use flinksnap::{compat, CompatOptions, CompatVerdict};
/// // A heap checkpoint restores into the job that wrote this RocksDB savepoint.
/// let old = format!("{base}/heap-savepoint-canonical/savepoint-ae4c95-ff41c5f424ab");
/// let new = format!("{base}/rocksdb-savepoint-canonical/savepoint-99031b-8b8a44b27bec");
/// let report = compat(&old, Some(&new), &[], &CompatOptions::default())?;
/// assert_eq!(report.verdict, CompatVerdict::Compatible, "{:#?}", report.findings);
/// # Ok::<(), flinksnap::Error>(())
/// ```
pub fn compat(location: &str, against: Option<&str>, uids: &[String], opts: &CompatOptions) -> Result<CompatReport> {
    compat_with(default_storage(), location, against, uids, opts)
}

/// [`compat`], reading snapshots through `storage`.
pub fn compat_with(storage: Arc<dyn Storage>, location: &str, against: Option<&str>, uids: &[String], opts: &CompatOptions) -> Result<CompatReport> {
    let old = describe_job_with(storage.clone(), location, uids)?;
    let target = match against {
        Some(t) => crate::manage::compat::load_target(storage, t, uids)?,
        // The upgrade check alone: the snapshot against itself.
        None => Target { kind: TargetKind::Snapshot, description: old.clone(), coverage: Vec::new() },
    };
    Ok(crate::manage::compat::compat(&old, &target, opts))
}

/// What [`compat`] compares: the job description of the snapshot at `location` (operators,
/// their states, kinds and serializers), as `flinksnap compat --describe` prints it. Written to
/// a file (and edited by hand), it is a target of [`compat`].
///
/// ```
/// # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/flink-2.3.0/heap-savepoint-canonical/savepoint-ae4c95-ff41c5f424ab");
/// let description = flinksnap::describe_job(dir, &[])?;
/// assert!(description.operators.iter().any(|o| o.states.iter().flatten().any(|s| s.name == "v-pojo")));
/// # Ok::<(), flinksnap::Error>(())
/// ```
pub fn describe_job(location: &str, uids: &[String]) -> Result<JobDescription> {
    describe_job_with(default_storage(), location, uids)
}

/// [`describe_job`], reading through `storage`.
pub fn describe_job_with(storage: Arc<dyn Storage>, location: &str, uids: &[String]) -> Result<JobDescription> {
    let snapshot = crate::snapshot::Snapshot::open(storage, location)?;
    crate::manage::compat::describe_snapshot(&snapshot, uids)
}
