//! SQL state (`formats/sql-serializers.md`): every SQL fixture snapshot (state written by real
//! Flink SQL jobs, `xtask/flink-job/src-sql`) dumps exactly what Flink's own restored serializers
//! decode from it (`oracle.jsonl`, `cargo xtask oracle`), and every SQL key lies in the key group
//! its `BinaryRowData` hash gives.

use crate::dump::dump_args;
use crate::inspect::sql_fixtures;
use crate::oracle::{difference, entries};
use crate::util::flinksnap_ok;

#[test]
fn sql_dump_equals_the_oracle() {
    let mut checked = 0;
    let mut versions = std::collections::BTreeSet::new();
    for fx in sql_fixtures() {
        let file = fx.case_dir.join(fx.snapshot["oracle"].as_str().expect("SQL fixtures name their oracle"));
        let oracle = crate::util::read_fixture_text(&file).unwrap_or_else(|e| panic!("{e} (cargo xtask oracle)"));
        let args = dump_args(&fx, &fx.path());
        let out = flinksnap_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let (ours, theirs) = (entries(&out), entries(&oracle));
        if let Some(d) = difference(&ours, &theirs) {
            panic!("{}: dump differs from {}:\n{d}", fx.name(), file.display());
        }
        // `sql-lookup` holds one small operator's state (and the changelog normalize's)
        let least = if fx.case["job"] == "sql-lookup" { 10 } else { 50 };
        assert!(theirs.len() > least, "{}: {} entries prove little", fx.name(), theirs.len());
        versions.insert(fx.case["flink_version"].as_str().unwrap().to_owned());
        checked += 1;
    }
    // both SQL jobs' canonical savepoints in every SQL fixture version, their RocksDB checkpoints
    assert!(checked >= 2 * crate::util::SQL_VERSIONS.len() + 2, "only {checked} SQL fixture snapshots");
    assert_eq!(versions.iter().map(String::as_str).collect::<Vec<_>>(), crate::util::SQL_VERSIONS, "SQL fixtures");
}

#[test]
fn sql_keys_lie_in_their_key_groups() {
    // verify --level full checks every key against its key group: for SQL keys, the hash of the
    // BinaryRowData bytes (a wrong hash would put most keys elsewhere)
    for fx in sql_fixtures().iter().filter(|f| f.case["format"] == "canonical") {
        let out = flinksnap_ok(&["verify", &fx.path(), "--level", "full", "--format", "json"]);
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        let text = j.to_string();
        assert!(!text.contains("WrongKeyGroup") && !text.contains("wrong_key_group"), "{}: {text}", fx.name());
    }
}

#[test]
fn sql_export_has_the_sql_types() {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let fx = sql_fixtures()
        .into_iter()
        .find(|f| f.case["flink_version"] == "2.3.0" && f.case["case"] == "sql-heap-savepoint-canonical")
        .expect("the 2.3.0 SQL savepoint");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("export");
    flinksnap_ok(&["export", &fx.path(), "--to", dir.to_str().unwrap()]);
    // the ROW_NUMBER deduplication keeps the whole input row: every column type of the events
    let file = std::fs::File::open(dir.join("108_deduplicate/deduplicate-state.parquet")).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let schema = reader.schema().clone();
    let arrow_schema::DataType::Struct(fields) = schema.field_with_name("value").unwrap().data_type().clone() else { panic!("value is a struct") };
    let types: Vec<String> = fields.iter().map(|f| format!("{}", f.data_type())).collect();
    assert_eq!(
        &types[..19],
        [
            "Int64", "Utf8", "Utf8", "Boolean", "Binary", "Binary", "Decimal128(10, 2)", "Decimal128(30, 6)", "Int8", "Int16",
            "Int32", "Float32", "Float64", "Date32", "Time32(ms)", "Timestamp(ms)", "Timestamp(ns)", "Timestamp(ms, \"UTC\")",
            "Timestamp(ns, \"UTC\")",
        ]
        .map(str::to_owned),
        "{types:?}"
    );
    assert_eq!(fields[fields.len() - 1].name(), "rowKind");
    let batch = reader.build().unwrap().next().unwrap().unwrap();
    assert_eq!(batch.num_rows(), 3, "one row per currency");
}

#[test]
fn inspect_plan_says_which_sql_node_holds_how_much_state() {
    // Every version's SQL snapshots with their compiled plan (1.15: the REST job plan, since a
    // 1.15 job sets no uids): the canonical savepoint (every SQL fixture version) and the RocksDB
    // checkpoint (2.3.0): the keyed operators are named by their SQL nodes, and the bytes per
    // node are the bytes inspect reports for those operators.
    let mut versions = std::collections::BTreeSet::new();
    let cases = ["sql-heap-savepoint-canonical", "sql-rocksdb-checkpoint-incremental"];
    for fx in sql_fixtures().iter().filter(|f| cases.iter().any(|c| f.case["case"] == *c)) {
        let version = fx.case["flink_version"].as_str().unwrap();
        versions.insert(version.to_owned());
        let key = if version == "1.15.4" { "rest_plan" } else { "plan" };
        let plan = fx.case_dir.join(fx.case[key].as_str().unwrap());
        let out = flinksnap_ok(&["inspect", &fx.path(), "--plan", plan.to_str().unwrap(), "--format", "json"]);
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        let data = &j["data"];
        let bytes: std::collections::BTreeMap<String, u64> = data["operators"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["operator_id"].as_str().unwrap().to_owned(), o["totals"]["total_bytes"].as_u64().unwrap()))
            .collect();
        let nodes = data["plan"]["nodes"].as_array().unwrap();
        let mut previous = u64::MAX;
        for n in nodes {
            let sum: u64 = n["operators"].as_array().unwrap().iter().map(|m| bytes[m["operator_id"].as_str().unwrap()]).sum();
            assert_eq!(n["state_bytes"].as_u64().unwrap(), sum, "{version}: node {}", n["node"]);
            assert!(sum <= previous, "{version}: largest first");
            previous = sum;
        }
        let holders: Vec<&str> = nodes.iter().filter(|n| n["state_bytes"].as_u64().unwrap() > 0).map(|n| n["node_type"].as_str().unwrap()).collect();
        let joins = holders.iter().filter(|t| t.contains("join") || t.contains("Join")).count();
        assert!(joins >= 3, "{version}: joins among {holders:?}");
        // Keyed operators are all tied to nodes: nothing keyed is "not in the plan" (1.15's
        // REST plan ties chain heads only, and SQL's keyed operators head their chains).
        for op in data["plan"]["unmapped_operators"].as_array().unwrap() {
            let o = data["operators"].as_array().unwrap().iter().find(|o| o["operator_id"] == *op).unwrap();
            assert!(o["keyed_state"].as_array().unwrap().is_empty(), "{version}: keyed operator {op} not tied to a node");
        }
        // The table names the operators by their plan uid where the metadata stores none.
        let table = flinksnap_ok(&["inspect", &fx.path(), "--plan", plan.to_str().unwrap()]);
        assert!(table.contains("State by plan node"), "{table}");
        if key == "plan" && version.starts_with('1') {
            assert!(table.contains("_group-aggregate (plan)"), "{table}");
        }
    }
    assert_eq!(versions.iter().map(String::as_str).collect::<Vec<_>>(), crate::util::SQL_VERSIONS, "SQL snapshots with plans");
}

#[test]
fn dump_with_the_plan_names_1_20_operators_as_2x_stores_them() {
    // 2.0.2's metadata stores the uids of the same SQL job; 1.20 stores none, and `--plan`
    // derives them from the compiled plan: every entry gets the uid 2.x would store.
    let uids_of = |fx: &crate::inspect::Fixture, plan: Option<&str>| -> std::collections::BTreeSet<String> {
        let mut args = vec!["dump".to_owned(), fx.path()];
        if let Some(p) = plan {
            args.extend(["--plan".to_owned(), p.to_owned()]);
        }
        let out = flinksnap_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        out.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["operator_uid"].as_str().map(str::to_owned).unwrap_or_default())
            .collect()
    };
    let fixtures = sql_fixtures();
    let case = |v: &str| fixtures.iter().find(|f| f.case["flink_version"] == v && f.case["case"] == "sql-heap-savepoint-canonical").unwrap();
    let stored = uids_of(case("2.0.2"), None);
    assert!(stored.len() >= 20 && !stored.contains(""), "{stored:?}");
    let v = "1.20.5";
    let fx = case(v);
    assert_eq!(uids_of(fx, None), [String::new()].into(), "{v} stores no uids");
    let plan = fx.case_dir.join(fx.case["plan"].as_str().unwrap());
    assert_eq!(uids_of(fx, Some(plan.to_str().unwrap())), stored, "{v}");
}

#[test]
fn the_2_1_operators_are_read_and_named_by_their_plan() {
    // `sql-v2` (2.3.0): a multi-way join and a process table function with structured, ListView,
    // MapView and TTL state and named and unnamed timers, as real Flink wrote them (the oracle
    // test holds the values): inspect ties both to their plan nodes, dump names their keys and
    // the join's rows.
    let fixtures = sql_fixtures();
    let fx = fixtures.iter().find(|f| f.case["job"] == "sql-v2").expect("the sql-v2 fixture");
    let plan = fx.case_dir.join(fx.case["plan"].as_str().unwrap());
    let plan = plan.to_str().unwrap();
    let j: serde_json::Value = serde_json::from_str(&flinksnap_ok(&["inspect", &fx.path(), "--plan", plan, "--format", "json"])).unwrap();
    let nodes = j["data"]["plan"]["nodes"].as_array().unwrap();
    for ty in ["stream-exec-multi-join_1", "stream-exec-process-table-function_1"] {
        let n = nodes.iter().find(|n| n["node_type"] == ty).unwrap_or_else(|| panic!("no {ty} node: {nodes:?}"));
        assert!(n["state_bytes"].as_u64().unwrap() > 1000, "{ty}: {n}");
    }
    assert_eq!(j["data"]["plan"]["unmapped_operators"], serde_json::json!([]));
    let out = flinksnap_ok(&["dump", &fx.path(), "--plan", plan]);
    let entries: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // the join's uid (`<node id>_multi-join`), as inspect ties it
    let join = nodes.iter().find(|n| n["node_type"] == "stream-exec-multi-join_1").unwrap()["operators"][0]["uid"].as_str().unwrap().to_owned();
    let of = |uid: &str, state: &str| -> Vec<&serde_json::Value> { entries.iter().filter(|e| e["operator_uid"] == uid && e["state"] == state).collect() };
    // The join: input 0 (no unique key) as map keys, the users (unique key) as values.
    let events = of(&join, "multi-join-input-0");
    let users = of(&join, "multi-join-input-1");
    assert!(events.len() >= 20 && users.len() >= 5, "{} {}", events.len(), users.len());
    let dave = users.iter().find(|e| e["key"]["user_name"] == "dave").expect("dave's user row");
    assert_eq!(dave["value"], serde_json::json!({"user_name": "dave", "level": 7, "city": "Rome"}));
    assert!(events.iter().all(|e| e["user_key"]["user_name"] == e["key"]["user_name"] && e["user_key"]["id"].is_i64()), "{events:?}");
    // The PTF, keyed by its PARTITION BY column: a list, a map, a structured value per user,
    // the named timer both as a timer (namespace: its name) and in the name map.
    let ptf = |state: &str| of("SqlTracker", state);
    let codes = ptf("codes");
    assert!(codes.len() >= 6 && codes.iter().all(|e| e["kind"] == "list" && (e["key"]["user_name"].is_string() || e["key"]["user_name"].is_null())), "{codes:?}");
    assert!(ptf("perCurrency").iter().all(|e| ["EUR", "USD", "JPY"].contains(&e["user_key"].as_str().unwrap())));
    let seen: i64 = ptf("seen").iter().map(|e| e["value"]["f0"].as_i64().unwrap()).sum();
    assert_eq!(seen, 32, "events of phases 1 and 2, counted per user");
    let named = ptf("_timer_state/event_user-named-timers");
    assert!(!named.is_empty() && named.iter().all(|e| e["namespace"] == "idle"));
    assert_eq!(named.len(), ptf("internal-named-timers-map").len());
    assert!(!ptf("_timer_state/event_user-unnamed-timers").is_empty());
    assert!(ptf("last").iter().all(|e| e["ttl_timestamp"].is_i64()), "the TTL state");

    // `sql-lookup`: the lookup join TRY_RESOLVE materialized (`KeyedLookupJoinWrapper`), keyed by
    // the users' upsert key, keeping the lookup table's row each user joined (the fixture's
    // lookup gives tier = length of the city % 3 + 1).
    let fx = fixtures.iter().find(|f| f.case["job"] == "sql-lookup").expect("the sql-lookup fixture");
    let plan = fx.case_dir.join(fx.case["plan"].as_str().unwrap());
    let j: serde_json::Value = serde_json::from_str(&flinksnap_ok(&["inspect", &fx.path(), "--plan", plan.to_str().unwrap(), "--format", "json"])).unwrap();
    let node = j["data"]["plan"]["nodes"].as_array().unwrap().iter().find(|n| n["node_type"] == "stream-exec-lookup-join_1").expect("the lookup join node").clone();
    assert!(node["state_bytes"].as_u64().unwrap() > 1000, "{node}");
    let operator = node["operators"][0]["operator_id"].as_str().unwrap();
    let out = flinksnap_ok(&["dump", &fx.path(), "--plan", plan.to_str().unwrap(), "--operator", operator]);
    let joined: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(joined.len(), 7, "the users after phase 2 (carol deleted): {joined:?}");
    for e in &joined {
        assert_eq!(e["state"], "unique-value");
        assert!(e["key"]["user_name"].is_string());
        match e["value"]["city"].as_str() {
            Some(city) => assert_eq!(e["value"]["tier"], city.chars().count() % 3 + 1, "{e}"),
            // frank has no city: nothing to look up, kept as a row of nulls
            None => assert_eq!(e["value"], serde_json::json!({"city": null, "tier": null, "region": null}), "{e}"),
        }
    }
    let bob = joined.iter().find(|e| e["key"]["user_name"] == "bob").unwrap();
    assert_eq!(bob["value"]["city"], "Rome", "bob moved from Paris in phase 2");
}
