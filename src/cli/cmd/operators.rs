//! `--operator UID|ID` and `--uid NAME`, as `dump` and `export` take them: which operators are
//! selected, and which uids name operators the metadata stores none for (Flink before 2.0).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use flinksnap::model::OperatorId;
use flinksnap::snapshot::Snapshot;

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
            if snapshot.operator(&id).is_none() {
                bail!("{}: no operator {o} (id {id}) in this snapshot; `flinksnap inspect` lists them", snapshot.metadata_location);
            }
            selected.push(id);
        }
        Ok(NamedOperators { selected, uids: by_id })
    }
}
