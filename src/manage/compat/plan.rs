//! A compiled SQL plan (`COMPILE PLAN` JSON) as a partial job description.
//!
//! The planner of Flink 1.18+ gives every operator of a compiled plan the uid
//! `<node id>_<transformation name>` (`ExecNodeBase#createTransformationUid`), e.g.
//! `4_group-aggregate`; before 1.18 operator ids come from the graph and a plan cannot name
//! them (then nothing about operators is decided), and Flink derives the operator id
//! from it. So a plan tells which stateful operators the new job has — a changed query that
//! renumbers or removes a stateful node drops its state — and each node's state TTL. It does not
//! tell the state serializers (a changed column type), nor the max parallelism: those stay
//! undecided. Sources and sinks may take their uid from their connector (`<id>_<name>`), so
//! their operator state is matched where the name is Flink's default only.

use super::describe::{JobDescription, OperatorDesc, FORMAT, VERSION};
use crate::error::Result;
use crate::plan::{Plan, PlanFormat};

/// Transformation names of the stateful (or state-carrying) operators each exec node type makes
/// (`ExecNode` type without its `_<version>` suffix), Flink 1.15–2.3.
const TRANSFORMATIONS: &[(&str, &[&str])] = &[
    ("stream-exec-group-aggregate", &["group-aggregate"]),
    ("stream-exec-global-group-aggregate", &["global-group-aggregate"]),
    ("stream-exec-incremental-group-aggregate", &["incremental-group-aggregate"]),
    ("stream-exec-local-group-aggregate", &["local-group-aggregate"]),
    ("stream-exec-changelog-normalize", &["changelog-normalize"]),
    ("stream-exec-join", &["join"]),
    ("stream-exec-interval-join", &["interval-join"]),
    ("stream-exec-temporal-join", &["temporal-join"]),
    ("stream-exec-lookup-join", &["lookup-join"]),
    ("stream-exec-deduplicate", &["deduplicate"]),
    ("stream-exec-rank", &["rank"]),
    ("stream-exec-limit", &["limit"]),
    ("stream-exec-sort-limit", &["sort-limit"]),
    ("stream-exec-sort", &["sort"]),
    ("stream-exec-temporal-sort", &["temporal-sort"]),
    ("stream-exec-over-aggregate", &["over-aggregate"]),
    ("stream-exec-match", &["match"]),
    ("stream-exec-group-window-aggregate", &["group-window-aggregate"]),
    ("stream-exec-window-aggregate", &["window-aggregate"]),
    ("stream-exec-local-window-aggregate", &["local-window-aggregate"]),
    ("stream-exec-global-window-aggregate", &["global-window-aggregate"]),
    ("stream-exec-window-rank", &["window-rank"]),
    ("stream-exec-window-deduplicate", &["window-deduplicate"]),
    ("stream-exec-window-join", &["window-join"]),
    ("stream-exec-window-table-function", &["window"]),
    ("stream-exec-watermark-assigner", &["watermark-assigner"]),
    ("stream-exec-mini-batch-assigner", &["mini-batch-assigner"]),
    ("stream-exec-drop-update-before", &["drop-update-before"]),
    ("stream-exec-calc", &["calc"]),
    ("stream-exec-correlate", &["correlate"]),
    ("stream-exec-union", &[]),
    ("stream-exec-exchange", &[]),
    ("stream-exec-table-source-scan", &["source"]),
    ("stream-exec-sink", &["upsert-materialize", "sink", "constraint-validator", "timestamp-inserter"]),
];

/// The plan's operators (`source` names the plan in messages) and what it cannot decide.
pub(super) fn describe_plan(source: &str, plan: &Plan) -> Result<(JobDescription, Vec<String>)> {
    let mut operators = Vec::new();
    let mut coverage = vec![
        "a compiled plan names operators, not state serializers: key and value types (a changed column type) are not checked".to_owned(),
        "a compiled plan does not record max parallelism".to_owned(),
    ];
    let flink_version = plan.flink_version.clone();
    if plan.format == PlanFormat::Rest {
        coverage.push("a REST job plan names job vertices, not the uids of the new job's operators: which operators it keeps is not decided (use a compiled plan)".to_owned());
        return Ok((description(source, flink_version, operators), coverage));
    }
    let mut unknown = Vec::new();
    for n in &plan.nodes {
        let ty = n.node_type.as_str();
        let base = ty.rsplit_once('_').map_or(ty, |(b, _)| b);
        let stateful = !n.states.is_empty();
        let names: Vec<&str> = match TRANSFORMATIONS.iter().find(|(t, _)| *t == base) {
            Some((_, names)) => names.to_vec(),
            None => {
                unknown.push(format!("{} ({base})", n.id));
                Vec::new()
            }
        };
        let ttl: Vec<String> = n.states.iter().map(|s| format!("{} ttl {}", s.name, s.ttl.as_deref().unwrap_or("?"))).collect();
        for t in &names {
            // Of a sink's operators, the materializer holds the plan's state.
            let has_state = stateful && (base != "stream-exec-sink" || *t == "upsert-materialize");
            operators.push(OperatorDesc {
                id: None,
                uid: Some(format!("{}_{t}", n.id)),
                name: Some(if ttl.is_empty() { base.to_owned() } else { format!("{base} [{}]", ttl.join(", ")) }),
                parallelism: None,
                max_parallelism: None,
                max_parallelism_explicit: None,
                has_state: Some(has_state),
                coordinator_state: false,
                states: None,
            });
        }
    }
    if !unknown.is_empty() {
        coverage.push(format!("exec nodes whose operator uids flinksnap does not know: {}", unknown.join(", ")));
    }
    let before_uids = flink_version.as_deref().and_then(|v| v.parse::<super::FlinkVersion>().ok()).is_some_and(|v| v.major == 1 && v.minor.is_some_and(|m| m < 18));
    if before_uids {
        operators.clear();
        coverage.push(format!("a plan of Flink {} gives operators no uids (1.18+ does): which operators the new job keeps is not decided", flink_version.as_deref().unwrap_or("?")));
    }
    Ok((description(source, flink_version, operators), coverage))
}

fn description(source: &str, flink_version: Option<String>, operators: Vec<OperatorDesc>) -> JobDescription {
    JobDescription { format: FORMAT.to_owned(), version: VERSION, source: Some(source.to_owned()), flink_version, backend: None, operators }
}
