//! SQL column names a job's plan fixes for RowData keys and rows, by operator: the data
//! `plan::columns` builds from a compiled plan, a snapshot carries, and the keyed-state readers
//! apply (`readers::columns`; `formats/job-plan.md` § "Column names").

use std::collections::BTreeMap;

use super::OperatorId;

/// One column of a plan's row type: its name and its type's root (`VARCHAR`, `TIMESTAMP`, ...).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanColumn {
    /// The SQL column name.
    pub name: String,
    /// The type root, as `plan::columns::type_root` names it (`?` when unknown: never matches).
    pub root: String,
}

/// The row types a plan fixes for one operator's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OperatorColumns {
    /// The plan node.
    pub node: u32,
    /// The backend key's row type.
    pub key: Option<Vec<PlanColumn>>,
    /// Row types of rows the named state holds (as user key, value or list element); `"*"`:
    /// every state of the operator.
    pub states: BTreeMap<String, Vec<Vec<PlanColumn>>>,
}

/// Row types the plan fixes, by operator.
#[derive(Debug, Clone, Default)]
pub struct ColumnNames {
    /// By operator id.
    pub operators: BTreeMap<OperatorId, OperatorColumns>,
}

