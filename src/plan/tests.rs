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
fn derived_uids_name_the_operators_of_1_20_as_2x_metadata_does() {
    // The same SQL job's operator ids do not depend on the version that ran it (uids from the
    // plan), so 2.0.2's stored uids say what 1.20's derived ones must be.
    let truth = {
        let s = summary("2.0.2", "sql-heap-savepoint-canonical");
        by_operator(&plan("2.0.2", "sql.plan.json").match_operators(s.operators.iter().map(|o| (o.operator_id, o.uid.as_deref()))))
    };
    // the 1.x SQL fixtures with a compiled plan that gives uids (1.18+; testdata/README.md, "SQL
    // cases")
    let (v, case) = ("1.20.5", "sql-heap-savepoint-canonical");
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

#[test]
fn rest_plans_tie_chain_heads_and_agree_with_the_compiled_plan() {
    for v in ["1.15.4", "1.20.5", "2.0.2", "2.3.0"] {
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

