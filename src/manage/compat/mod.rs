//! `compat`: will this snapshot restore into that job? Every check applies the rule Flink itself
//! applies at restore, on both sides' [`JobDescription`]s (the snapshot's, and the new job's from
//! its own snapshot, a compiled SQL plan or a description file), without a JVM.
//!
//! - [`describe`]: the job description model, and a snapshot's description;
//! - [`target`]: reading TARGET (a snapshot, a compiled plan, a description file);
//! - `plan.rs`: what a compiled SQL plan (`COMPILE PLAN` JSON) tells: operator uids and TTLs;
//! - `operators.rs`: operators dropped (`--allow-non-restored-state`) and new, max parallelism;
//! - `states.rs`: state names and kinds, distribution modes, key, namespace and value serializers;
//! - `serializers.rs`: `TypeSerializerSnapshot#resolveSchemaCompatibility`, per snapshot family;
//! - `avro.rs`: Avro's reader/writer schema resolution;
//! - `upgrade.rs`: `--flink-version 2.x`, the states a 1.x → 2.x upgrade cannot restore (and
//!   those it restores with a caveat), checked against real 2.3.0 restores.
//!
//! Verdict: [`Verdict::Incompatible`] when a finding says Flink would refuse the restore,
//! else [`Verdict::Undecided`] when a finding could not be decided, else compatible.

mod avro;
pub mod describe;
mod operators;
mod plan;
mod serializers;
mod states;
pub mod target;
mod upgrade;

use serde::Serialize;

pub use describe::{describe_snapshot, JobDescription, OperatorDesc, StateDesc, TypeDesc};
pub use serializers::RuleContext;
pub use target::{load_target, parse_target, Target, TargetKind};

/// What `TypeSerializerSnapshot#resolveSchemaCompatibility` answers, plus "not known".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SchemaCompat {
    /// `compatibleAsIs`.
    #[default]
    AsIs,
    /// `compatibleWithReconfiguredSerializer`: restores without migration.
    Reconfigured,
    /// `compatibleAfterMigration`: the state is read with the old serializer and written with the
    /// new one on restore.
    AfterMigration,
    /// flinksnap cannot decide (an unknown serializer, a missing description).
    Unknown,
    /// `incompatible`: the restore fails (`StateMigrationException`).
    Incompatible,
}

impl SchemaCompat {
    /// The text used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaCompat::AsIs => "compatible as is",
            SchemaCompat::Reconfigured => "compatible with a reconfigured serializer",
            SchemaCompat::AfterMigration => "compatible after migration",
            SchemaCompat::Unknown => "could not decide",
            SchemaCompat::Incompatible => "incompatible",
        }
    }
}

/// The result of resolving one serializer against another, with the reasons.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Resolution {
    /// The combined result (the worst of the parts).
    pub compat: SchemaCompat,
    /// Why, one line per part that is not compatible as is, with its path.
    pub reasons: Vec<String>,
    /// Caveats (what Flink does not check either).
    pub notes: Vec<String>,
}

impl Resolution {
    fn add(&mut self, c: SchemaCompat, path: &str, why: String) {
        self.compat = self.compat.max(c);
        self.reasons.push(if path.is_empty() { why } else { format!("{path}: {why}") });
    }

    fn note(&mut self, path: &str, why: String) {
        self.notes.push(if path.is_empty() { why } else { format!("{path}: {why}") });
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A check that passed.
    Ok,
    /// Worth knowing; the restore works (new operator, state migrated, state left unused).
    Info,
    /// The restore works but something is lost or changes (state dropped with
    /// `--allow-non-restored-state`).
    Warning,
    /// flinksnap could not decide.
    Undecided,
    /// Flink refuses the restore.
    Incompatible,
}

/// Which check a finding comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// An operator with state that the new job does not have.
    OperatorDropped,
    /// An operator of the new job not in the snapshot.
    OperatorAdded,
    /// Max parallelism, and parallelism against it.
    MaxParallelism,
    /// A state's kind (value, list, ...) changed.
    StateKind,
    /// A state the new job does not register.
    StateUnused,
    /// A state only the new job has.
    StateAdded,
    /// The keyed backend's key serializer.
    KeySerializer,
    /// A keyed state's namespace serializer.
    NamespaceSerializer,
    /// A state's value (or element, or map) serializer, broadcast keys included.
    ValueSerializer,
    /// An operator state's distribution mode (split, union, broadcast).
    DistributionMode,
    /// A state the target Flink release cannot restore (`--flink-version`).
    Upgrade,
    /// What the target cannot tell (a SQL plan has no serializers).
    Coverage,
}

impl Check {
    /// The snake-case name (JSON, JUnit test case names).
    pub fn as_str(self) -> &'static str {
        match self {
            Check::OperatorDropped => "operator_dropped",
            Check::OperatorAdded => "operator_added",
            Check::MaxParallelism => "max_parallelism",
            Check::StateKind => "state_kind",
            Check::StateUnused => "state_unused",
            Check::StateAdded => "state_added",
            Check::KeySerializer => "key_serializer",
            Check::NamespaceSerializer => "namespace_serializer",
            Check::ValueSerializer => "value_serializer",
            Check::DistributionMode => "distribution_mode",
            Check::Upgrade => "upgrade",
            Check::Coverage => "coverage",
        }
    }
}

/// One result of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The check.
    pub check: Check,
    /// How bad.
    pub severity: Severity,
    /// The operator: `uid (id)` or the id.
    pub operator: String,
    /// The state, where the finding is about one.
    pub state: Option<String>,
    /// For serializer checks: Flink's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<SchemaCompat>,
    /// What and why.
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

impl Finding {
    fn new(check: Check, severity: Severity, operator: &OperatorDesc, state: Option<&str>, message: String) -> Finding {
        Finding { check, severity, operator: operator.label(), state: state.map(str::to_owned), compatibility: None, message, remedy: None }
    }

    fn remedy(mut self, r: impl Into<String>) -> Finding {
        self.remedy = Some(r.into());
        self
    }
}

/// The overall answer (the exit code of `flinksnap compat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Flink restores it (exit 0).
    Compatible,
    /// Flink refuses it (exit 1).
    Incompatible,
    /// Could not decide (exit 2).
    Undecided,
}

/// A Flink release, as `--flink-version` names it: `1.20`, `2.3.0`, `2.x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FlinkVersion {
    /// Major.
    pub major: u32,
    /// Minor; `None` for `2.x`.
    pub minor: Option<u32>,
}

impl std::str::FromStr for FlinkVersion {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        // A range (`2.1–2.3`): the major version when both ends share it, the minor unknown.
        if let Some((a, b)) = s.split_once(['–', '-']) {
            let (a, b): (FlinkVersion, FlinkVersion) = (a.parse()?, b.parse()?);
            return if a.major == b.major { Ok(FlinkVersion { major: a.major, minor: if a.minor == b.minor { a.minor } else { None } }) } else { Err(format!("a range across major versions: {s:?}")) };
        }
        let mut parts = s.trim().split('.');
        let major = parts.next().and_then(|m| m.parse().ok()).ok_or_else(|| format!("not a Flink version: {s:?} (e.g. 1.20, 2.3.0, 2.x)"))?;
        let minor = match parts.next() {
            None | Some("x") | Some("X") | Some("*") => None,
            Some(m) => Some(m.parse().map_err(|_| format!("not a Flink version: {s:?} (e.g. 1.20, 2.3.0, 2.x)"))?),
        };
        Ok(FlinkVersion { major, minor })
    }
}

impl std::fmt::Display for FlinkVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.minor {
            Some(m) => write!(f, "{}.{m}", self.major),
            None => write!(f, "{}.x", self.major),
        }
    }
}

/// How to check.
#[derive(Debug, Clone, Default)]
pub struct CompatOptions {
    /// The restore will pass `--allow-non-restored-state`: dropped state is a warning.
    pub allow_non_restored_state: bool,
    /// The Flink release that will restore; also turns on the upgrade check when its major
    /// version is newer than the snapshot's.
    pub flink_version: Option<FlinkVersion>,
    /// The state backend that will restore (`hashmap`, `rocksdb`, `forst`), where known.
    pub backend: Option<String>,
}

/// The result of `compat`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompatReport {
    /// The snapshot.
    pub snapshot: String,
    /// The target.
    pub target: String,
    /// What the target is.
    pub target_kind: TargetKind,
    /// The Flink release the rules were applied for, where known.
    pub flink_version: Option<String>,
    /// The answer.
    pub verdict: Verdict,
    /// Findings, in check order, worst first within an operator.
    pub findings: Vec<Finding>,
    /// Counts by severity.
    pub counts: Counts,
}

/// Findings by severity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Checks that passed.
    pub ok: usize,
    /// Infos.
    pub info: usize,
    /// Warnings.
    pub warning: usize,
    /// Undecided.
    pub undecided: usize,
    /// Incompatible.
    pub incompatible: usize,
}

/// Compares the snapshot's description `old` with the new job's `new`.
pub fn compat(old: &JobDescription, new: &Target, opts: &CompatOptions) -> CompatReport {
    // The release that restores: given, else the target's (not the snapshot's when the target
    // names one, even one this build cannot parse), else the snapshot's.
    let version = match (opts.flink_version, &new.description.flink_version) {
        (Some(v), _) => Some(v),
        (None, Some(t)) => t.parse().ok(),
        (None, None) => old.flink_version.as_deref().and_then(|v| v.parse().ok()),
    };
    let backend = opts.backend.clone().or_else(|| new.description.backend.clone());
    let ctx = RuleContext { ttl_migration: ttl_migration(version, backend.as_deref()) };
    let mut findings = Vec::new();
    findings.extend(new.coverage.iter().map(|c| Finding {
        check: Check::Coverage,
        severity: Severity::Undecided,
        operator: "-".into(),
        state: None,
        compatibility: None,
        message: c.clone(),
        remedy: Some("compare against a savepoint of the new job version (e.g. from its test run) to decide".into()),
    }));
    let plan = new.kind == TargetKind::SqlPlan;
    // A plan without operator uids (before 1.18) decides nothing about operators.
    if !(plan && new.description.operators.is_empty()) {
        findings.extend(operators::check(old, &new.description, opts, &ctx, plan));
    }
    // A newer major release (given, or the target's) runs the upgrade check.
    if let Some(v) = version {
        findings.extend(upgrade::check(old, v));
    }
    let mut counts = Counts::default();
    for f in &findings {
        match f.severity {
            Severity::Ok => counts.ok += 1,
            Severity::Info => counts.info += 1,
            Severity::Warning => counts.warning += 1,
            Severity::Undecided => counts.undecided += 1,
            Severity::Incompatible => counts.incompatible += 1,
        }
    }
    let verdict = if counts.incompatible > 0 {
        Verdict::Incompatible
    } else if counts.undecided > 0 {
        Verdict::Undecided
    } else {
        Verdict::Compatible
    };
    CompatReport {
        snapshot: old.source.clone().unwrap_or_default(),
        target: new.description.source.clone().unwrap_or_default(),
        target_kind: new.kind,
        flink_version: version.map(|v| v.to_string()),
        verdict,
        findings,
        counts,
    }
}

/// Whether a release migrates TTL on/off: 2.2+; 2.1 on RocksDB/ForSt (FLINK-32955).
fn ttl_migration(v: Option<FlinkVersion>, backend: Option<&str>) -> Option<bool> {
    let v = v?;
    match (v.major, v.minor) {
        (0 | 1, _) => Some(false),
        (2, Some(0)) => Some(false),
        (2, Some(1)) => match backend {
            Some("rocksdb" | "forst") => Some(true),
            Some(_) => Some(false),
            None => None,
        },
        (2, None) => None,
        _ => Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink_versions_parse() {
        assert_eq!("2.x".parse::<FlinkVersion>(), Ok(FlinkVersion { major: 2, minor: None }));
        assert_eq!("1.20.5".parse::<FlinkVersion>(), Ok(FlinkVersion { major: 1, minor: Some(20) }));
        assert!("two".parse::<FlinkVersion>().is_err());
        assert_eq!("2.1–2.3".parse::<FlinkVersion>(), Ok(FlinkVersion { major: 2, minor: None }));
        assert_eq!("1.16–1.20".parse::<FlinkVersion>(), Ok(FlinkVersion { major: 1, minor: None }));
    }

    #[test]
    fn ttl_migration_by_release_and_backend() {
        let v = |s: &str| Some(s.parse::<FlinkVersion>().unwrap());
        assert_eq!(ttl_migration(v("1.20"), None), Some(false));
        assert_eq!(ttl_migration(v("2.0"), Some("rocksdb")), Some(false));
        assert_eq!(ttl_migration(v("2.1"), Some("rocksdb")), Some(true));
        assert_eq!(ttl_migration(v("2.1"), Some("hashmap")), Some(false));
        assert_eq!(ttl_migration(v("2.1"), None), None);
        assert_eq!(ttl_migration(v("2.3"), Some("hashmap")), Some(true));
        assert_eq!(ttl_migration(None, None), None);
    }
}
