//! The scan API against fixtures real Flink wrote: batches, entries and partitions agree with
//! each other and with the export's schema.

use super::*;
use crate::readers::entries::SnapshotEntries;

fn fixture(rel: &str) -> String {
    format!("{}/testdata/{rel}", env!("CARGO_MANIFEST_DIR"))
}

const CANONICAL: &str = "flink-2.3.0/heap-savepoint-canonical/savepoint-ae4c95-ff41c5f424ab";

#[test]
fn operators_and_states_are_listed() {
    let snap = Snapshot::open(&fixture(CANONICAL)).unwrap();
    let ops = snap.operators();
    assert!(ops.iter().any(|o| o.uid.as_deref() == Some("keyed-string") && o.keyed_state));
    let states = snap.states().unwrap();
    let pojo = states.iter().find(|s| s.name == "v-pojo").unwrap();
    assert_eq!(pojo.operator_uid.as_deref(), Some("keyed-string"));
    assert!(pojo.schema.field_with_name("value").is_ok());
    // Each (operator, keyed, name) once.
    let mut keys: Vec<_> = states.iter().map(|s| (s.operator_id, s.kind.is_keyed(), s.name.clone())).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n);
}

#[test]
fn a_typed_scan_reads_the_entries_of_its_state() {
    let snap = Snapshot::open(&fixture(CANONICAL)).unwrap();
    let scan = snap.scan().operator("keyed-string").state("v-pojo").batch_rows(4).build().unwrap();
    assert!(scan.is_typed());
    let batches: Vec<RecordBatch> = scan.batches().unwrap().collect::<std::result::Result<_, _>>().unwrap();
    assert!(batches.len() >= 3, "4 rows per batch");
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let entries: Vec<_> = scan.entries().collect::<Result<_>>().unwrap();
    assert_eq!(rows, entries.len());
    let all = SnapshotEntries::new(snap.opened(), Selection::default()).filter(|e| e.as_ref().is_ok_and(|e| &*e.state == "v-pojo")).count();
    assert_eq!(rows, all);
    assert!(rows > 0);
    for b in &batches {
        assert_eq!(b.schema(), scan.schema());
    }
}

#[test]
fn a_scan_keeps_the_stored_bytes_only_when_asked() {
    let snap = Snapshot::open(&fixture(CANONICAL)).unwrap();
    let full: Vec<_> = SnapshotEntries::new(snap.opened(), Selection::default()).filter(|e| e.as_ref().is_ok_and(|e| e.kind.is_keyed())).map(Result::unwrap).collect();
    assert!(!full.is_empty() && full.iter().all(|e| !e.raw.key.is_empty() || e.raw.stored_key.is_some()));
    let keyed = |b: crate::ScanBuilder| b.build().unwrap().entries().map(Result::unwrap).filter(|e| e.kind.is_keyed()).collect::<Vec<_>>();
    // By default the entries hold decoded values only.
    let lean = keyed(snap.scan());
    assert_eq!(lean.len(), full.len());
    assert!(lean.iter().all(|e| e.raw == crate::model::RawEntry::default()));
    // Asked for, every stored byte is there, as a full read has them.
    let raw = keyed(snap.scan().raw(crate::model::RawParts::All));
    assert_eq!(raw.iter().map(|e| &e.raw).collect::<Vec<_>>(), full.iter().map(|e| &e.raw).collect::<Vec<_>>());
    assert_eq!(raw.iter().map(|e| e.to_json(None)).collect::<Vec<_>>(), lean.iter().map(|e| e.to_json(None)).collect::<Vec<_>>());
}

#[test]
fn an_untyped_scan_of_one_state_has_the_dump_form() {
    let snap = Snapshot::open(&fixture(CANONICAL)).unwrap();
    let typed = snap.scan().operator("keyed-string").state("v-pojo").build().unwrap();
    let dump = snap.scan().operator("keyed-string").state("v-pojo").typed(false).build().unwrap();
    assert!(!dump.is_typed());
    assert_eq!(dump.schema(), snap.scan().build().unwrap().schema());
    let rows = |s: &crate::Scan| s.batches().unwrap().map(|b| b.unwrap().num_rows()).sum::<usize>();
    assert_eq!(rows(&dump), rows(&typed));
    // Its partitions carry the form.
    let parts = dump.plan(&crate::PlanOptions::default()).unwrap();
    for p in parts {
        assert_eq!(arrow_array::RecordBatchReader::schema(&p.execute().unwrap()), dump.schema());
    }
}

#[test]
fn unknown_and_ambiguous_names_are_errors() {
    let snap = Snapshot::open(&fixture(CANONICAL)).unwrap();
    let e = snap.scan().state("no-such-state").build().unwrap_err().to_string();
    assert!(e.contains("no state named") && e.contains("v-pojo"), "{e}");
    let e = snap.scan().operator("no-such-operator").build().unwrap_err().to_string();
    assert!(e.contains("no operator no-such-operator"), "{e}");
}

#[test]
fn partitions_read_what_the_whole_scan_reads() {
    for rel in [CANONICAL, "flink-2.3.0/heap-checkpoint", "flink-1.15.4/heap-savepoint-canonical"] {
        let path = fixture(rel);
        let path = find_snapshot(&path);
        let snap = Snapshot::open(&path).unwrap();
        let scan = snap.scan().build().unwrap();
        let whole: Vec<RecordBatch> = scan.batches().unwrap().collect::<std::result::Result<_, _>>().unwrap();
        let whole = arrow_select_concat(&whole);
        for max in [u64::MAX, 1, 200] {
            let opts = PlanOptions { max_partition_bytes: max, split_unindexed: true };
            let parts = scan.plan(&opts).unwrap();
            assert!(!parts.is_empty());
            let mut read = Vec::new();
            for p in &parts {
                let p = Partition::from_json(&p.to_json()).unwrap();
                read.extend(snap.read_partition(&p).unwrap().collect::<std::result::Result<Vec<_>, _>>().unwrap());
            }
            assert_eq!(arrow_select_concat(&read), whole, "{rel}: max {max}: {} partitions", parts.len());
            if max == 1 {
                assert!(parts.iter().any(|p| matches!(p.part, Part::KeyGroups { .. })), "{rel}: split");
            }
        }
    }
}

#[test]
fn a_partition_is_refused_by_another_snapshot() {
    let a = Snapshot::open(&fixture(CANONICAL)).unwrap();
    let b = Snapshot::open(&find_snapshot(&fixture("flink-2.3.0/heap-checkpoint"))).unwrap();
    let p = a.scan().build().unwrap().plan(&PlanOptions::default()).unwrap().remove(0);
    let e = b.read_partition(&p).unwrap_err().to_string();
    assert!(e.contains("not the snapshot this partition was planned on"), "{e}");
}

#[test]
fn a_key_group_range_reads_its_key_groups_only() {
    let snap = Snapshot::open(&fixture(CANONICAL)).unwrap();
    let scan = snap.scan().key_groups(10..20).build().unwrap();
    let entries: Vec<_> = scan.entries().collect::<Result<_>>().unwrap();
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| e.key_group.is_some_and(|k| (10..20).contains(&k))));
}

/// A snapshot directory under `dir` (the fixture itself, or the first `_metadata` below it).
fn find_snapshot(dir: &str) -> String {
    fn walk(p: &std::path::Path) -> Option<std::path::PathBuf> {
        if p.join("_metadata").is_file() {
            return Some(p.to_path_buf());
        }
        let mut kids: Vec<_> = std::fs::read_dir(p).ok()?.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
        kids.sort();
        kids.iter().find_map(|k| walk(k))
    }
    walk(std::path::Path::new(dir)).unwrap().display().to_string()
}

/// The rows of batches as JSON lines, for comparison whatever the batch boundaries.
fn arrow_select_concat(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b.columns().iter().map(|c| format!("{:?}", c.slice(r, 1))).collect();
            out.push(cells.join("|"));
        }
    }
    out
}

use arrow_array::RecordBatch;

// ---- SQL column names from a compiled plan (`Snapshot::with_plan`) ----

use crate::plan::Plan;

fn sql_plan(version: &str) -> Plan {
    plan_file(version, "sql")
}

fn plan_file(version: &str, name: &str) -> Plan {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("testdata/flink-{version}/sql-plans/{name}.plan.json"));
    Plan::parse(&std::fs::read(&p).unwrap(), &p.display().to_string()).unwrap()
}

/// The first entry of each (plan node, state) a named scan gives: (key, user key, value) JSON.
fn named_entries(version: &str) -> BTreeMap<(String, String), (serde_json::Value, serde_json::Value, serde_json::Value)> {
    named_entries_of(version, "sql-heap-savepoint-canonical", &sql_plan(version))
}

fn named_entries_of(version: &str, case: &str, p: &Plan) -> BTreeMap<(String, String), (serde_json::Value, serde_json::Value, serde_json::Value)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("testdata/flink-{version}/{case}"));
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
    let path = dir.join(c["snapshots"][0]["path"].as_str().unwrap());
    let snap = Snapshot::open(path.to_str().unwrap()).unwrap().with_plan(p);
    let nodes: BTreeMap<OperatorId, u32> =
        p.match_operators(snap.opened().metadata.operators.iter().map(|o| (o.operator_id, o.uid.as_deref()))).into_iter().map(|m| (m.operator_id, m.node)).collect();
    let mut out = BTreeMap::new();
    for e in snap.scan().build().unwrap().entries() {
        let e = e.unwrap();
        let Some(node) = nodes.get(&e.operator_id) else { continue };
        let j = e.to_json(None);
        out.entry((format!("{node}"), e.state.to_string())).or_insert((j["key"].clone(), j["user_key"].clone(), j["value"].clone()));
    }
    out
}

fn names(v: &serde_json::Value) -> Vec<&str> {
    v.as_object().map(|m| m.keys().map(String::as_str).filter(|k| !k.starts_with('$')).collect()).unwrap_or_default()
}

/// The node of the plan whose description starts with `prefix` and contains `has`.
fn node_id(p: &Plan, prefix: &str, has: &str) -> String {
    let n: Vec<&crate::plan::PlanNode> = p.nodes.iter().filter(|n| n.node_type.starts_with(prefix) && n.description.contains(has)).collect();
    assert_eq!(n.len(), 1, "{prefix} {has}: {:?}", n.iter().map(|n| &n.description).collect::<Vec<_>>());
    n[0].id.to_string()
}

#[test]
fn a_plan_names_the_columns_of_sql_state_it_fixes() {
    for v in ["1.20.5", "2.0.2", "2.3.0"] {
        let p = sql_plan(v);
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

#[test]
fn a_partition_planned_with_a_plan_names_columns_wherever_it_is_read() {
    // 1.20.5 stores no uids (the plan's derived uids name its operators), 2.3.0 stores them.
    for v in ["1.20.5", "2.3.0"] {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("testdata/flink-{v}/sql-heap-savepoint-canonical"));
        let path = find_snapshot(dir.to_str().unwrap());
        let p = sql_plan(v);
        let agg = node_id(&p, "stream-exec-group-aggregate", "groupBy=[user_name], select=[user_name, COUNT(*) AS cnt");
        let named = Snapshot::open(&path).unwrap().with_plan(&p);
        let op = named.operators().into_iter().find(|o| p.match_operators([(o.id, o.uid.as_deref())]).iter().any(|m| m.node.to_string() == agg)).unwrap();
        let plain = Snapshot::open(&path).unwrap();
        for typed in [false, true] {
            let scan = named.scan().operator(op.id.to_hex()).state("accState").typed(typed).build().unwrap();
            let whole = arrow_select_concat(&scan.batches().unwrap().collect::<std::result::Result<Vec<_>, _>>().unwrap());
            assert!(!whole.is_empty() && whole.iter().all(|r| r.contains("user_name")), "{v} typed {typed}: {:?}", whole.first());
            let unnamed = plain.scan().operator(op.id.to_hex()).state("accState").typed(typed).build().unwrap();
            let unnamed = arrow_select_concat(&unnamed.batches().unwrap().collect::<std::result::Result<Vec<_>, _>>().unwrap());
            assert!(unnamed.iter().all(|r| !r.contains("user_name")), "{v} typed {typed}: names without a plan");
            // Read on a snapshot opened without the plan (as a worker does): the partition
            // carries the names.
            let mut read = Vec::new();
            for part in scan.plan(&PlanOptions { max_partition_bytes: 1, split_unindexed: true }).unwrap() {
                let part = Partition::from_json(&part.to_json()).unwrap();
                let batches = plain.read_partition(&part).unwrap();
                assert_eq!(arrow_array::RecordBatchReader::schema(&batches), scan.schema(), "{v} typed {typed}");
                read.extend(batches.collect::<std::result::Result<Vec<_>, _>>().unwrap());
            }
            assert_eq!(arrow_select_concat(&read), whole, "{v} typed {typed}");
        }
    }
}

#[test]
fn a_plan_names_the_keys_of_window_join_over_match_and_two_phase_state() {
    // (plan, exec node type, description part, the key's SQL columns) for the statements the
    // SQL fixture jobs ran (xtask's SQL job).
    let expect: &[(&str, &str, &str, &[&str])] = &[
        ("sql", "stream-exec-global-window-aggregate", "groupBy=[user_name], window=[TUMBLE", &["user_name"]),
        ("sql", "stream-exec-global-window-aggregate", "groupBy=[currency], window=[HOP", &["currency"]),
        ("sql", "stream-exec-window-deduplicate", "keep", &["user_name"]),
        ("sql", "stream-exec-window-join", "", &["id"]),
        ("sql", "stream-exec-interval-join", "", &["id"]),
        ("sql", "stream-exec-temporal-join", "", &["currency"]),
        ("sql", "stream-exec-over-aggregate", "partitionBy=[user_name]", &["user_name"]),
        ("sql", "stream-exec-over-aggregate", "partitionBy=[currency]", &["currency"]),
        ("sql", "stream-exec-match", "partitionBy=[user_name]", &["user_name"]),
        ("sql", "stream-exec-group-window-aggregate", "groupBy=[user_name]", &["user_name"]),
        ("sql-minibatch", "stream-exec-global-group-aggregate", "groupBy=[user_name], select", &["user_name"]),
        ("sql-minibatch", "stream-exec-global-group-aggregate", "groupBy=[city]", &["city"]),
        ("sql-minibatch", "stream-exec-global-group-aggregate", "groupBy=[currency], partialFinalType=[FINAL]", &["currency"]),
        ("sql-minibatch", "stream-exec-incremental-group-aggregate", "finalAggGrouping=[currency]", &["currency", "$f4", "$f5"]),
    ];
    for v in ["1.20.5", "2.0.2", "2.3.0"] {
        let mut named = 0;
        for plan_name in ["sql", "sql-minibatch"] {
            let p = plan_file(v, plan_name);
            let case = if plan_name == "sql" { "sql-heap-savepoint-canonical" } else { "sql-minibatch-heap-savepoint-canonical" };
            let e = named_entries_of(v, case, &p);
            for (_, node_type, has, want) in expect.iter().filter(|x| x.0 == plan_name) {
                let node = node_id(&p, node_type, has);
                let keys: Vec<&serde_json::Value> = e.iter().filter(|((n, _), _)| *n == node).map(|(_, (k, _, _))| k).filter(|k| !k.is_null()).collect();
                for k in &keys {
                    // Every field, `$`-named planner columns too.
                    let fields: Vec<&str> = k.as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
                    assert_eq!(fields, *want, "{v} {plan_name} {node_type} {has}: {k}");
                }
                named += usize::from(!keys.is_empty());
            }
        }
        // Every operator above holds state at the fixtures' savepoint but the ones whose
        // windows had fired; the count pins what the fixtures prove.
        assert!(named >= 10, "{v}: {named} of {} operators had state", expect.len());
    }
}

#[test]
fn a_plan_names_the_input_rows_that_joins_windows_over_match_and_the_materializer_keep() {
    // (exec node type, description part, state, the SQL columns of the rows it keeps: the
    // node's input row as the planner pruned it for the statements of xtask's SQL job).
    let expect: &[(&str, &str, &str, &[&str])] = &[
        ("stream-exec-window-join", "", "left-records", &["id", "window_start", "window_end"]),
        ("stream-exec-window-join", "", "right-records", &["order_id", "carrier", "window_start", "window_end"]),
        ("stream-exec-temporal-join", "", "left", &["id", "amount", "ts", "currency"]),
        ("stream-exec-temporal-join", "", "right", &["currency", "rate", "rts"]),
        ("stream-exec-over-aggregate", "partitionBy=[user_name]", "inputState", &["id", "user_name", "amount", "ts"]),
        ("stream-exec-over-aggregate", "partitionBy=[currency]", "inputState", &["id", "d", "ts", "currency"]),
        ("stream-exec-window-deduplicate", "keep", "window_deduplicate", &["id", "user_name", "ts", "window_start", "window_end"]),
        ("stream-exec-window-rank", "", "window_rank", &["user_name", "amount", "window_start", "window_end"]),
        ("stream-exec-sink", "materialize", "values", &["level", "user_name", "city"]),
    ];
    // The first row of a value: the value itself, or a list's first element.
    fn first_row(v: &serde_json::Value) -> &serde_json::Value {
        v.as_array().and_then(|a| a.first()).unwrap_or(v)
    }
    for v in ["1.20.5", "2.0.2", "2.3.0"] {
        let p = sql_plan(v);
        let e = named_entries(v);
        let mut named = 0;
        for (node_type, has, state, want) in expect {
            let node = node_id(&p, node_type, has);
            let Some((key, _, value)) = e.get(&(node.clone(), state.to_string())) else { continue };
            // A row that is not an INSERT carries its `rowKind` beside the columns.
            let cols: Vec<&str> = names(first_row(value)).into_iter().filter(|n| *n != "rowKind").collect();
            assert_eq!(cols, *want, "{v} {node_type} {has} {state}: {value}");
            assert!(!names(key).is_empty() || key.as_object().is_some_and(|k| k.is_empty()), "{v} {node_type} {state}: key {key}");
            named += 1;
        }
        // The sink materializer's key: the sink table's primary key.
        let sink = node_id(&p, "stream-exec-sink", "materialize");
        if let Some((key, _, _)) = e.get(&(sink, "values".to_owned())) {
            assert_eq!(names(key), ["level"], "{v}");
        }
        // The interval join's rows, each the `f0` of a `Tuple2<RowData, Boolean>`.
        let ij = node_id(&p, "stream-exec-interval-join", "");
        for (state, want) in [("IntervalJoinLeftCache", &["id", "ts"][..]), ("IntervalJoinRightCache", &["order_id", "carrier", "ship_ts"][..])] {
            if let Some((_, _, value)) = e.get(&(ij.clone(), state.to_owned())) {
                assert_eq!(names(&first_row(value)["f0"]), want, "{v} {state}: {value}");
                named += 1;
            }
        }
        // MATCH_RECOGNIZE's waiting rows: `events`' columns.
        let m = node_id(&p, "stream-exec-match", "partitionBy=[user_name]");
        if let Some((_, _, value)) = e.get(&(m, "eventQueuesStateName".to_owned())) {
            assert_eq!(names(first_row(value))[..3], ["id", "user_name", "code"], "{v}: {value}");
            named += 1;
        }
        // Which of these held rows at the fixtures' savepoint is fixed by the fixtures: the
        // count pins what they prove.
        assert!(named >= 9, "{v}: {named} of {} states held rows", expect.len() + 3);
    }
}

#[test]
fn every_state_of_the_sql_fixtures_reads_typed_with_their_plan() {
    // What `export --plan` does: each state alone, typed. A key named in the backend's key
    // serializer but not in a timer queue's (window operators) once failed here.
    for v in ["1.20.5", "2.0.2", "2.3.0"] {
        for (case, plan_name) in [("sql-heap-savepoint-canonical", "sql"), ("sql-minibatch-heap-savepoint-canonical", "sql-minibatch")] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("testdata/flink-{v}/{case}"));
            let snap = Snapshot::open(&find_snapshot(dir.to_str().unwrap())).unwrap().with_plan(&plan_file(v, plan_name));
            let (mut timers, mut named_timers) = (0, 0);
            for s in snap.states().unwrap() {
                let scan = snap.scan().operator(s.operator_id.to_hex()).state(s.name.clone()).keyed(s.kind.is_keyed()).build().unwrap();
                let rows: usize = scan.batches().unwrap().map(|b| b.unwrap_or_else(|e| panic!("{v} {case} {} {}: {e}", s.operator_id, s.name)).num_rows()).sum();
                if s.name.starts_with("_timer_state/") && rows > 0 {
                    timers += 1;
                    let key = scan.schema().field_with_name("key").unwrap().data_type().to_string();
                    named_timers += usize::from(!key.contains("\"f0\""));
                }
            }
            if plan_name == "sql" {
                assert!(timers > 0 && named_timers > 0, "{v} {case}: {named_timers} of {timers} timer queues named");
            }
        }
    }
}
