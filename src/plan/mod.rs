//! A job's plan beside its snapshot: Flink's compiled SQL plan (`COMPILE PLAN`, `EXPLAIN PLAN`'s
//! JSON) or the plan the REST API returns for a running job (`GET /jobs/:jobid/plan`), mapped onto
//! the snapshot's operators, so that state can be named by the SQL node that holds it.
//!
//! How an operator is tied to a plan node, most certain first:
//! - the uid the metadata stores (Flink 2.x) is `<node id>_<transformation name>`, or the uid
//!   the node itself records (a process table function's, 2.1+);
//! - the uid derived from the plan: Flink 1.18+ gives every transformation of a compiled plan
//!   the uid `<node id>_<transformation name>` (`ExecNodeBase#createTransformationUid`), and an
//!   operator id is the hash of its uid, so the ids of every node × transformation name are
//!   computed and looked up in the snapshot (and the hash of a node's own uid);
//! - a REST plan's job vertex id is the id of its chain's head operator, and the vertex
//!   description of a SQL job starts with that operator's node (`[4]:GroupAggregate(...)`).
//!
//! Anything else (chained operators of a 1.15 job, connector uids that no plan records) stays
//! unmapped: a guess is never shown as a fact.

pub mod columns;
mod compiled;
mod rest;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::OperatorId;
use crate::snapshot::Summary;

/// The names the table planner gives transformations (`*_TRANSFORMATION` constants of the exec
/// nodes, stream and batch, in flink-table-planner 1.18.1, 2.0.2 and 2.3.0), the second half of a
/// planner uid.
pub const TRANSFORMATION_NAMES: &[&str] = &[
    "async-calc", "async-correlate", "calc", "changelog-normalize", "constraint-validator", "correlate",
    "custom-shuffle", "deduplicate", "delta-join", "drop-update-before", "exchange", "expand", "filter-left",
    "filter-right", "global-group-aggregate", "global-window-aggregate", "group-aggregate", "group-window-aggregate",
    "hash-aggregate", "incremental-group-aggregate", "interval-join", "join", "limit", "local-group-aggregate",
    "local-window-aggregate", "lookup-join", "lookup-join-key-ordered", "lookup-join-materialize", "match",
    "mini-batch-assigner", "ml-predict-table-function", "multi-join", "nested-loop-join", "over", "over-aggregate",
    "pad-left", "pad-right", "partitioner", "process", "python-async-calc", "python-calc", "python-correlate",
    "python-group-aggregate", "python-group-window-aggregate", "python-over-aggregate", "rank", "sink", "sort",
    "sort-aggregate", "sort-limit", "source", "temporal-join", "temporal-sort", "timestamp-inserter",
    "upsert-materialize", "values", "vector-search-table-function", "watermark-assigner",
    "watermark-timestamp-assigner", "window", "window-aggregate", "window-deduplicate", "window-join", "window-rank",
];

/// Where a plan came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanFormat {
    /// A compiled plan (`CompiledPlan#asJsonString`): exec nodes with ids, types, row types and,
    /// from 1.18, their state.
    Compiled,
    /// The REST API's job plan: job vertices with ids and chained descriptions.
    Rest,
}

/// A node of the plan: an exec node of a compiled plan, or the SQL node a REST plan's vertex
/// description names.
#[derive(Debug, Clone, Serialize)]
pub struct PlanNode {
    /// The node id (`[4]` in descriptions, `"id": 4` in a compiled plan).
    pub id: u32,
    /// The exec node type (`stream-exec-join_1`), or the operator name a REST plan prints
    /// (`Join`).
    pub node_type: String,
    /// The node's description (`Join(joinType=[InnerJoin], where=[...])`).
    pub description: String,
    /// The state the compiled plan declares for the node (Flink 1.18+), in index order.
    pub states: Vec<PlanState>,
    /// The node's output row type, as the compiled plan prints it.
    pub output_type: Option<String>,
    /// The job vertices whose chain this node's operator heads (REST plans): a vertex id is
    /// the id of its chain's head operator.
    pub heads: Vec<OperatorId>,
    /// The node's JSON in a compiled plan (its config: grouping, join spec, ...).
    #[serde(skip)]
    pub raw: serde_json::Value,
}

impl PlanNode {
    /// The uid a compiled plan gives the node's operator itself (`"uid"`: a process table
    /// function's, 2.1+, the function call's uid or name), which is then the operator's uid.
    pub fn own_uid(&self) -> Option<&str> {
        self.raw.get("uid").and_then(serde_json::Value::as_str).filter(|u| !u.is_empty())
    }
}

/// One state a compiled plan declares for a node (`"state": [{"index", "ttl", "name"}]`).
#[derive(Debug, Clone, Serialize)]
pub struct PlanState {
    /// The state's index in the node.
    pub index: u32,
    /// Its name (`leftState`, `groupAggregateState`, ...).
    pub name: String,
    /// Its time-to-live as the plan prints it (`0 ms` = none).
    pub ttl: Option<String>,
}

/// A job's plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Which kind of plan this is.
    pub format: PlanFormat,
    /// The Flink version a compiled plan names (`"flinkVersion": "1.18"`).
    pub flink_version: Option<String>,
    /// Its nodes, by id.
    pub nodes: Vec<PlanNode>,
    /// A compiled plan's edges (source node, target node), in the plan's order: a node's
    /// inputs in input order.
    pub edges: Vec<(u32, u32)>,
}

/// How an operator was tied to a plan node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    /// The uid the metadata stores starts with the node id.
    StoredUid,
    /// The operator id is the hash of `<node id>_<transformation name>`.
    DerivedUid,
    /// The operator id is a job vertex id and the node heads that vertex's chain.
    JobVertex,
}

/// An operator of the snapshot tied to a plan node.
#[derive(Debug, Clone, Serialize)]
pub struct OperatorMatch {
    /// The operator's id.
    pub operator_id: OperatorId,
    /// The node id.
    pub node: u32,
    /// The operator's uid, stored or derived, when there is one.
    pub uid: Option<String>,
    /// How the tie was found.
    pub matched_by: MatchedBy,
}

impl Plan {
    /// Reads and parses the plan at `location`: a local path or an object store URL, read
    /// through `storage`.
    pub fn read(storage: &dyn crate::storage::Storage, location: &str) -> Result<Plan> {
        let bytes = storage.read(&crate::storage::Location::new(location))?;
        Plan::parse(&bytes, location)
    }

    /// Parses a compiled plan or a REST job plan (`{"plan": {...}}` or the plan object itself).
    /// `what` names the file in errors.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Plan> {
        let v: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::Invalid(format!("{what}: not JSON ({e}): expected a compiled plan or a REST job plan")))?;
        let rest = v.get("plan").unwrap_or(&v);
        if v.get("flinkVersion").is_some() || v.get("nodes").and_then(|n| n.get(0)).and_then(|n| n.get("type")).is_some() {
            compiled::parse(&v, what)
        } else if rest.get("jid").is_some() || rest.get("nodes").and_then(|n| n.get(0)).and_then(|n| n.get("description")).is_some() {
            rest::parse(rest, what)
        } else {
            Err(Error::Invalid(format!(
                "{what}: neither a compiled plan (\"flinkVersion\", \"nodes\" with \"type\") nor a REST job plan (\"plan\": {{\"jid\", \"nodes\"}})"
            )))
        }
    }

    /// The node with this id.
    pub fn node(&self, id: u32) -> Option<&PlanNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The row types of a node's inputs (the output types of the nodes its edges come from),
    /// in input order; empty when one is not a row type the plan prints.
    pub fn inputs(&self, id: u32) -> Vec<Vec<crate::model::columns::PlanColumn>> {
        let rows: Option<Vec<_>> = self
            .edges
            .iter()
            .filter(|(_, t)| *t == id)
            .map(|(s, _)| self.node(*s).and_then(|n| n.raw.get("outputType")).and_then(columns::row_columns))
            .collect();
        rows.unwrap_or_default()
    }

    /// Ties the snapshot's operators (id and stored uid) to plan nodes; operators no rule ties
    /// are left out.
    pub fn match_operators<'a>(&self, operators: impl IntoIterator<Item = (OperatorId, Option<&'a str>)>) -> Vec<OperatorMatch> {
        let derived: BTreeMap<OperatorId, (u32, String)> = match self.format {
            PlanFormat::Compiled => self
                .nodes
                .iter()
                .flat_map(|n| TRANSFORMATION_NAMES.iter().map(move |t| (n.id, format!("{}_{t}", n.id))).chain(n.own_uid().map(|u| (n.id, u.to_owned()))))
                .map(|(id, uid)| (OperatorId::from_uid(&uid), (id, uid)))
                .collect(),
            PlanFormat::Rest => BTreeMap::new(),
        };
        let heads: BTreeMap<OperatorId, u32> = self.nodes.iter().flat_map(|n| n.heads.iter().map(|v| (*v, n.id))).collect();
        let mut out = Vec::new();
        for (operator_id, stored_uid) in operators {
            let by_stored = stored_uid.and_then(|u| {
                if let Some(n) = self.nodes.iter().find(|n| n.own_uid() == Some(u)) {
                    return Some((n.id, u.to_owned()));
                }
                let id: u32 = u.split_once('_')?.0.parse().ok()?;
                self.node(id).map(|_| (id, u.to_owned()))
            });
            let m = if let Some((node, uid)) = by_stored {
                Some(OperatorMatch { operator_id, node, uid: Some(uid), matched_by: MatchedBy::StoredUid })
            } else if let Some((node, uid)) = derived.get(&operator_id) {
                Some(OperatorMatch { operator_id, node: *node, uid: Some(uid.clone()), matched_by: MatchedBy::DerivedUid })
            } else {
                heads.get(&operator_id).map(|node| OperatorMatch {
                    operator_id,
                    node: *node,
                    uid: stored_uid.map(str::to_owned),
                    matched_by: MatchedBy::JobVertex,
                })
            };
            out.extend(m);
        }
        out
    }
}

/// A plan node with the state the snapshot holds for it: the answer to "which join holds
/// 40 GB".
#[derive(Debug, Clone, Serialize)]
pub struct NodeState {
    /// The node id.
    pub node: u32,
    /// Its type.
    pub node_type: String,
    /// Its description.
    pub description: String,
    /// The state the plan declares for it.
    pub plan_states: Vec<PlanState>,
    /// The operators of the snapshot tied to it.
    pub operators: Vec<OperatorMatch>,
    /// Bytes of state these operators hold (keyed, operator and channel state, files and inline).
    pub state_bytes: u64,
}

/// The plan's view of a snapshot: stateful nodes by size, and the operators holding state that
/// no plan node could be tied to.
#[derive(Debug, Clone, Serialize)]
pub struct PlanView {
    /// Which kind of plan this is.
    pub format: PlanFormat,
    /// Nodes with state (in the snapshot or declared by the plan), largest first.
    pub nodes: Vec<NodeState>,
    /// Operators with state in the snapshot that no node is tied to.
    pub unmapped_operators: Vec<OperatorId>,
}

impl PlanView {
    /// Attributes the snapshot's state (its [`Summary`]) to the plan's nodes.
    pub fn build(plan: &Plan, summary: &Summary) -> PlanView {
        let matches = plan.match_operators(summary.operators.iter().map(|o| (o.operator_id, o.uid.as_deref())));
        let bytes: BTreeMap<OperatorId, u64> = summary.operators.iter().map(|o| (o.operator_id, o.totals.total_bytes)).collect();
        let mut nodes: Vec<NodeState> = plan
            .nodes
            .iter()
            .map(|n| {
                let operators: Vec<OperatorMatch> = matches.iter().filter(|m| m.node == n.id).cloned().collect();
                NodeState {
                    node: n.id,
                    node_type: n.node_type.clone(),
                    description: n.description.clone(),
                    plan_states: n.states.clone(),
                    state_bytes: operators.iter().map(|m| bytes.get(&m.operator_id).copied().unwrap_or(0)).sum(),
                    operators,
                }
            })
            .filter(|n| n.state_bytes > 0 || !n.plan_states.is_empty())
            .collect();
        nodes.sort_by(|a, b| b.state_bytes.cmp(&a.state_bytes).then(a.node.cmp(&b.node)));
        let unmapped_operators = summary
            .operators
            .iter()
            .filter(|o| o.totals.total_bytes > 0 && !matches.iter().any(|m| m.operator_id == o.operator_id))
            .map(|o| o.operator_id)
            .collect();
        PlanView { format: plan.format, nodes, unmapped_operators }
    }
}

#[cfg(test)]
mod tests;
