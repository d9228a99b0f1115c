//! The plan mapping on the SQL fixtures, where Flink itself says which operator is which node:
//! 2.x metadata stores every operator's uid, so the rules used where it does not (uids derived
//! from a compiled plan, REST vertex ids) are checked against it and against each other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::snapshot::Snapshot;
use crate::storage::LocalStorage;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn plan(version: &str, file: &str) -> Plan {
    let p = testdata().join(format!("flink-{version}/sql-plans/{file}"));
    Plan::parse(&std::fs::read(&p).unwrap(), &p.display().to_string()).unwrap()
}

fn summary(version: &str, case: &str) -> Summary {
    let dir = testdata().join(format!("flink-{version}/{case}"));
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
    let path = dir.join(c["snapshots"][0]["path"].as_str().unwrap());
    let s = Snapshot::open(Arc::new(LocalStorage), path.to_str().unwrap()).unwrap();
    Summary::build(&s, &[]).unwrap()
}

/// operator id -> node id
fn by_operator(m: &[OperatorMatch]) -> BTreeMap<OperatorId, u32> {
    m.iter().map(|m| (m.operator_id, m.node)).collect()
}

#[test]
fn stored_uids_tie_every_operator_of_a_2x_sql_job_to_its_node() {
    for v in ["2.0.2", "2.3.0"] {
        let s = summary(v, "sql-heap-savepoint-canonical");
        let p = plan(v, "sql.plan.json");
        let m = p.match_operators(s.operators.iter().map(|o| (o.operator_id, o.uid.as_deref())));
        // Every operator that the plan's planner made (uid `<node id>_...`) is tied to its node.
        let planner_ops = s.operators.iter().filter(|o| o.uid.as_deref().is_some_and(|u| u.split('_').next().unwrap().parse::<u32>().is_ok())).count();
        assert!(planner_ops > 20, "{v}: {planner_ops}");
        assert_eq!(m.len(), planner_ops, "{v}");
        assert!(m.iter().all(|m| m.matched_by == MatchedBy::StoredUid));
        // The uids Flink stored are exactly the ones the plan derives for the planner's own
        // transformations (connector uids such as `1_queue` are the connector's names).
        let derived = by_operator(&p.match_operators(s.operators.iter().map(|o| (o.operator_id, None))));
        for o in &s.operators {
            let uid = o.uid.as_deref().unwrap();
            let name = uid.split_once('_').unwrap().1;
            if TRANSFORMATION_NAMES.contains(&name) {
                assert_eq!(derived.get(&o.operator_id), Some(&uid.split('_').next().unwrap().parse().unwrap()), "{v}: {uid}");
            }
        }
        // Every keyed operator is named by the plan, and the plan declares state for it.
        let view = PlanView::build(&p, &s);
        assert!(view.unmapped_operators.is_empty(), "{v}: {:?}", view.unmapped_operators);
        let join = view.nodes.iter().find(|n| n.node_type.starts_with("stream-exec-join")).unwrap();
        assert!(join.state_bytes > 0);
        assert_eq!(join.plan_states.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["leftState", "rightState"]);
    }
}

#[test]
fn derived_uids_name_the_operators_of_1_18_and_1_20_as_2x_metadata_does() {
    // The same SQL job's operator ids do not depend on the version that ran it (uids from the
    // plan), so 2.0.2's stored uids say what 1.18/1.20's derived ones must be.
    let truth = {
        let s = summary("2.0.2", "sql-heap-savepoint-canonical");
        by_operator(&plan("2.0.2", "sql.plan.json").match_operators(s.operators.iter().map(|o| (o.operator_id, o.uid.as_deref()))))
    };
    // the RocksDB checkpoint only in 1.20.5 (testdata/README.md, "Size rule")
    for (v, cases) in [("1.18.1", &["sql-heap-savepoint-canonical"][..]), ("1.20.5", &["sql-heap-savepoint-canonical", "sql-rocksdb-checkpoint-incremental"])] {
        for &case in cases {
            let s = summary(v, case);
            assert!(s.operators.iter().all(|o| o.uid.is_none()), "{v} stores no uids");
            let p = plan(v, "sql.plan.json");
            let m = p.match_operators(s.operators.iter().map(|o| (o.operator_id, None)));
            assert!(m.iter().all(|m| m.matched_by == MatchedBy::DerivedUid));
            let got = by_operator(&m);
            for (op, node) in &got {
                assert_eq!(truth.get(op), Some(node), "{v} {case}: {op}");
            }
            // Only connector operators (uids the connector names) stay unmapped; every
            // operator with keyed state is a planner operator.
            let view = PlanView::build(&p, &s);
            for op in &view.unmapped_operators {
                let o = s.operators.iter().find(|o| o.operator_id == *op).unwrap();
                assert!(o.keyed_state.is_empty(), "{v} {case}: keyed operator {op} unmapped");
            }
            assert!(view.nodes.iter().filter(|n| n.state_bytes > 0).count() >= 8, "{v} {case}");
        }
    }
}

#[test]
fn rest_plans_tie_chain_heads_and_agree_with_the_compiled_plan() {
    for v in ["1.15.4", "1.18.1", "1.20.5", "2.0.2", "2.3.0"] {
        let s = summary(v, "sql-heap-savepoint-canonical");
        let rest = plan(v, "sql.rest-plan.json");
        assert_eq!(rest.format, PlanFormat::Rest);
        let m = rest.match_operators(s.operators.iter().map(|o| (o.operator_id, None)));
        assert!(m.len() >= 8, "{v}: {} chain heads", m.len());
        assert!(m.iter().all(|m| m.matched_by == MatchedBy::JobVertex));
        // Where a compiled plan gives uids (1.18+), the REST rule must say the same.
        if v != "1.15.4" {
            let derived = by_operator(&plan(v, "sql.plan.json").match_operators(s.operators.iter().map(|o| (o.operator_id, None))));
            for (op, node) in by_operator(&m) {
                assert_eq!(derived.get(&op), Some(&node), "{v}: {op}");
            }
        }
        // The keyed operators a 1.15 job's REST plan ties are the SQL nodes that keep state.
        let view = PlanView::build(&rest, &s);
        let tied: Vec<&str> = view.nodes.iter().filter(|n| n.state_bytes > 0).map(|n| n.node_type.as_str()).collect();
        for kind in ["GroupAggregate", "Join", "Deduplicate", "Rank"] {
            assert!(tied.contains(&kind), "{v}: {kind} not among {tied:?}");
        }
    }
}

#[test]
fn what_is_not_a_plan_is_a_clear_error() {
    for bad in [&b"{\"jobs\": []}"[..], b"not json", b"{\"plan\": {\"jid\": \"x\", \"nodes\": [{\"id\": \"zz\", \"description\": \"\"}]}}"] {
        let e = Plan::parse(bad, "p.json").unwrap_err().to_string();
        assert!(e.starts_with("p.json: "), "{e}");
    }
}

/// The first entry of each (plan node, state) a named scan gives: (key, user key, value) JSON.
fn named_entries(version: &str) -> BTreeMap<(String, String), (serde_json::Value, serde_json::Value, serde_json::Value)> {
    let dir = testdata().join(format!("flink-{version}/sql-heap-savepoint-canonical"));
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
    let path = dir.join(c["snapshots"][0]["path"].as_str().unwrap());
    let p = plan(version, "sql.plan.json");
    let snap = crate::Snapshot::open(path.to_str().unwrap()).unwrap().with_plan(&p);
    let nodes: BTreeMap<OperatorId, u32> =
        by_operator(&p.match_operators(snap.opened().metadata.operators.iter().map(|o| (o.operator_id, o.uid.as_deref()))));
    let mut out = BTreeMap::new();
    for e in snap.scan().build().unwrap().entries() {
        let e = e.unwrap();
        let Some(node) = nodes.get(&e.operator_id) else { continue };
        let j = e.to_json(None);
        out.entry((format!("{node}"), e.state.clone())).or_insert((j["key"].clone(), j["user_key"].clone(), j["value"].clone()));
    }
    out
}

fn names(v: &serde_json::Value) -> Vec<&str> {
    v.as_object().map(|m| m.keys().map(String::as_str).filter(|k| !k.starts_with('$')).collect()).unwrap_or_default()
}

/// The node of the plan whose description starts with `prefix` and contains `has`.
fn node_id(p: &Plan, prefix: &str, has: &str) -> String {
    let n: Vec<&PlanNode> = p.nodes.iter().filter(|n| n.node_type.starts_with(prefix) && n.description.contains(has)).collect();
    assert_eq!(n.len(), 1, "{prefix} {has}: {:?}", n.iter().map(|n| &n.description).collect::<Vec<_>>());
    n[0].id.to_string()
}

#[test]
fn a_plan_names_the_columns_of_sql_state_it_fixes() {
    for v in ["1.18.1", "1.20.5", "2.0.2", "2.3.0"] {
        let p = plan(v, "sql.plan.json");
        let e = named_entries(v);
        let get = |node: &str, state: &str| e.get(&(node.to_owned(), state.to_owned())).unwrap_or_else(|| panic!("{v}: no {state} of node {node}"));
        // `SELECT user_name, COUNT(*) ..., SUM(amount) ... FROM events GROUP BY user_name`: the
        // key is the grouping column; accumulators keep f0…fn (planner-internal types).
        let agg = node_id(&p, "stream-exec-group-aggregate", "groupBy=[user_name], select=[user_name, COUNT(*) AS cnt");
        let (key, _, value) = get(&agg, "accState");
        assert_eq!(names(key), ["user_name"], "{v}");
        assert!(names(value).iter().all(|n| n.starts_with('f')), "{v}: {value}");
        // `events e JOIN users u ON e.user_name = u.user_name`: left rows are `events`' rows
        // (as the join's input projects them), right rows `users`' (after the changelog
        // normalize), the key the left join key.
        let join = node_id(&p, "stream-exec-join", "InnerJoin], where=[(user_name = user_name0)], select=[id, user_name, amount");
        let (key, left_uk, left_v) = get(&join, "left-records");
        assert_eq!(names(key), ["user_name"], "{v}");
        let left = if names(left_uk).is_empty() { left_v } else { left_uk };
        assert_eq!(names(left), ["id", "user_name", "amount"], "{v}: {left}");
        let (_, right_uk, right_v) = get(&join, "right-records");
        let right = if names(right_uk).is_empty() { right_v } else { right_uk };
        assert_eq!(names(right), ["user_name", "level", "city"], "{v}: {right}");
        // Deduplicate keep-last by rowtime, `ROW_NUMBER() OVER (PARTITION BY currency ORDER BY
        // ts DESC)` over all of `events`' columns: key and the remembered row. (Keep-first by
        // rowtime keeps a BOOLEAN in 2.3, unnamed.)
        let dedup = node_id(&p, "stream-exec-deduplicate", "keep=[LastRow], key=[currency], order=[ROWTIME]");
        let (key, _, value) = get(&dedup, "deduplicate-state");
        assert_eq!(names(key), ["currency"], "{v}");
        let cols = names(value);
        assert_eq!(cols[..3], ["id", "user_name", "code"], "{v}: {value}");
        assert!(cols.contains(&"ltz9") && cols.contains(&"payload") && !cols.iter().any(|c| c.starts_with('f') && c[1..].parse::<u32>().is_ok()), "{v}: {cols:?}");
        // Changelog normalize of the upsert source `users` (PRIMARY KEY user_name).
        let norms: Vec<String> = p.nodes.iter().filter(|n| n.description == "ChangelogNormalize(key=[user_name])").map(|n| n.id.to_string()).collect();
        assert_eq!(norms.len(), 2, "{v}");
        for norm in norms {
            let (key, _, value) = get(&norm, "deduplicate-state");
            assert_eq!(names(key), ["user_name"], "{v}");
            assert_eq!(names(value)[..2], ["user_name", "level"], "{v}: {value}");
        }
    }
}
