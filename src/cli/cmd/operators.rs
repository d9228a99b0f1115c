//! `--operator UID|ID` and `--uid NAME`, as `dump` and `export` take them: which operators are
//! selected, and which uids name operators the metadata stores none for (Flink before 2.0).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use flinksnap::model::OperatorId;
use flinksnap::plan::{MatchedBy, Plan};
use flinksnap::Snapshot;

/// The operators named on the command line, resolved against a snapshot.
#[derive(Debug)]
pub struct NamedOperators {
    /// The `--operator`s, each an operator of the snapshot (empty: every operator).
    pub selected: Vec<OperatorId>,
    /// Uids given with `--uid`, and `--operator`s given by uid, by the operator id Flink
    /// derives from each.
    pub uids: BTreeMap<OperatorId, String>,
}

impl NamedOperators {
    /// Resolves `operators` (uids or 32-digit hex ids) and `uids`; an operator the snapshot does
    /// not hold is an error, so a misspelt uid never selects nothing silently.
    pub fn resolve(snapshot: &Snapshot, operators: &[String], uids: &[String]) -> Result<NamedOperators> {
        // A hex id names no uid; anything else is a uid and names its operator too.
        let mut by_id = BTreeMap::new();
        for u in uids.iter().chain(operators.iter().filter(|o| o.parse::<OperatorId>().is_err())) {
            by_id.insert(OperatorId::from_uid(u), u.clone());
        }
        let mut selected = Vec::with_capacity(operators.len());
        for o in operators {
            let id = o.parse::<OperatorId>().unwrap_or_else(|_| OperatorId::from_uid(o));
            if !snapshot.operators().iter().any(|op| op.id == id) {
                bail!("{}: no operator {o} (id {id}) in this snapshot; `flinksnap inspect` lists them", snapshot.opened().metadata_location);
            }
            selected.push(id);
        }
        Ok(NamedOperators { selected, uids: by_id })
    }
}

/// Reads `--plan` (a compiled SQL plan or a REST job plan), when given.
pub fn read_plan(path: Option<&str>) -> Result<Option<Plan>> {
    let Some(path) = path else { return Ok(None) };
    Ok(Some(Plan::read(&*crate::cli::storage(), path).with_context(|| format!("{path}: cannot read the plan"))?))
}

/// The uids a job's plan implies for operators whose metadata stores none: the planner's
/// `<node id>_<transformation>` uids whose hash is an operator id of the snapshot
/// (`formats/job-plan.md`).
pub fn plan_uids(snapshot: &Snapshot, plan: Option<&Plan>) -> Vec<String> {
    let Some(plan) = plan else { return Vec::new() };
    let operators = snapshot.opened().metadata.operators.iter().map(|o| (o.operator_id, o.uid.as_deref()));
    plan.match_operators(operators).into_iter().filter(|m| m.matched_by == MatchedBy::DerivedUid).filter_map(|m| m.uid).collect()
}
