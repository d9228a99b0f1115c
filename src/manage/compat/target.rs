//! TARGET of `compat`: what a CI pipeline has of the new job version before deploying it.
//!
//! - a snapshot (directory or `_metadata`) written by the new job version: everything is known;
//! - a compiled SQL plan (`COMPILE PLAN` JSON, `plan.rs`): operator uids, not serializers;
//! - a description file (`formats/compat-target.md`, as `flinksnap compat --describe` writes
//!   it): whatever it states.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::describe::{describe_snapshot, JobDescription, FORMAT, VERSION};
use crate::error::{Error, Result};
use crate::snapshot::Snapshot;
use crate::storage::Storage;

/// What TARGET was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// A snapshot of the new job version.
    Snapshot,
    /// A compiled SQL plan.
    SqlPlan,
    /// A description file.
    Description,
}

/// The new job, as TARGET describes it.
#[derive(Debug, Clone)]
pub struct Target {
    /// What it was.
    pub kind: TargetKind,
    /// What it says.
    pub description: JobDescription,
    /// What it cannot tell (each becomes an undecided finding).
    pub coverage: Vec<String>,
}

/// Reads TARGET: a snapshot directory or `_metadata` file, else a JSON file (a compiled plan or
/// a description). `uids` name operators of snapshots that store none (before 2.0).
pub fn load_target(storage: Arc<dyn Storage>, path: &str, uids: &[String]) -> Result<Target> {
    let p = Path::new(path);
    let is_snapshot = p.is_dir() || p.file_name().is_some_and(|n| n == "_metadata");
    if is_snapshot {
        let snapshot = Snapshot::open(storage, path)?;
        return Ok(Target { kind: TargetKind::Snapshot, description: describe_snapshot(&snapshot, uids)?, coverage: Vec::new() });
    }
    let bytes = std::fs::read(p).map_err(|e| Error::io(path, e))?;
    parse_target(path, &bytes)
}

/// A plan or description from its bytes (`path` names it in messages).
pub fn parse_target(path: &str, bytes: &[u8]) -> Result<Target> {
    let json: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        Error::Invalid(format!("{path}: not a snapshot and not JSON ({e}): TARGET is a snapshot directory, a compiled SQL plan (COMPILE PLAN JSON) or a description (formats/compat-target.md)"))
    })?;
    if json.get("format").and_then(|f| f.as_str()) == Some(FORMAT) {
        let mut d: JobDescription = serde_json::from_value(json).map_err(|e| Error::Invalid(format!("{path}: not a valid compat description: {e} (formats/compat-target.md)")))?;
        if d.version > VERSION {
            return Err(Error::Invalid(format!("{path}: description version {} is newer than this flinksnap reads ({VERSION})", d.version)));
        }
        for o in &d.operators {
            if o.operator_id().is_none() {
                return Err(Error::Invalid(format!("{path}: operator {:?}: neither a valid id (32 hex digits) nor a uid", o.name.as_deref().unwrap_or("?"))));
            }
        }
        d.source.get_or_insert_with(|| path.to_owned());
        return Ok(Target { kind: TargetKind::Description, description: d, coverage: Vec::new() });
    }
    if json.get("nodes").is_some_and(|n| n.is_array()) || json.get("plan").is_some_and(|p| p.get("nodes").is_some()) {
        // The plan module reads compiled and REST plans alike (one parser for `inspect --plan`
        // and compat).
        let plan = crate::plan::Plan::parse(bytes, path)?;
        let (description, coverage) = super::plan::describe_plan(path, &plan)?;
        return Ok(Target { kind: TargetKind::SqlPlan, description, coverage });
    }
    Err(Error::Invalid(format!("{path}: JSON but neither a compiled SQL plan (no \"nodes\") nor a compat description (no \"format\": \"{FORMAT}\")")))
}
