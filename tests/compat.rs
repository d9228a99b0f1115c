//! `flinksnap compat` on real snapshots: a snapshot against itself, against another Flink
//! release's snapshot of the same job, against another job, against descriptions edited the way
//! a new job version changes, against compiled SQL plans; and the 1.x → 2.x upgrade check on the
//! fixtures with Kryo, Scala and legacy-source state.

use serde_json::Value as J;

use crate::util::{flinksnap, root};

fn savepoint(dir: &str) -> String {
    let d = root().join("testdata").join(dir);
    let sp = std::fs::read_dir(&d)
        .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("savepoint-")))
        .unwrap_or_else(|| panic!("no savepoint in {}", d.display()));
    sp.strip_prefix(root()).unwrap().to_string_lossy().into_owned()
}

/// Runs compat with `--format json`: exit code and the report.
fn compat(args: &[&str]) -> (i32, J) {
    let mut a = vec!["compat"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--format", "json"]);
    let out = flinksnap(&a);
    let code = out.status.code().unwrap();
    let j: J = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{a:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(j["type"], "compat");
    (code, j["data"].clone())
}

fn findings<'a>(r: &'a J, check: &str, severity: &str) -> Vec<&'a J> {
    r["findings"].as_array().unwrap().iter().filter(|f| f["check"] == check && f["severity"] == severity).collect()
}

fn uids(version: &str) -> Vec<String> {
    let case: J = serde_json::from_slice(&std::fs::read(root().join(format!("testdata/flink-{version}/heap-savepoint-canonical/case.json"))).unwrap()).unwrap();
    case["uids"].as_object().unwrap().keys().cloned().collect()
}

#[test]
fn every_savepoint_fixture_is_compatible_with_itself() {
    for v in ["1.13.6", "1.20.5", "2.3.0"] {
        for case in ["heap-savepoint-canonical", "rocksdb-savepoint-canonical", "sql-heap-savepoint-canonical"] {
            let dir = format!("flink-{v}/{case}");
            if !root().join("testdata").join(&dir).exists() {
                continue;
            }
            let sp = savepoint(&dir);
            let (code, r) = compat(&[&sp, "--against", &sp]);
            assert_eq!(code, 0, "{dir}: {r:#}");
            assert_eq!(r["verdict"], "compatible");
            assert_eq!(r["counts"]["incompatible"], 0);
            assert!(r["counts"]["ok"].as_u64().unwrap() >= 5, "{dir}: {r:#}");
        }
    }
}

#[test]
fn native_changelog_and_forst_snapshots_are_compatible_with_themselves() {
    // Their states come from RocksDB meta-data files, changelog and ForSt handles.
    for case in ["flink-2.3.0/rocksdb-savepoint-native", "flink-2.3.0/forst-checkpoint-incremental", "flink-2.3.0/heap-changelog-checkpoint", "flink-1.15.4/rocksdb-checkpoint-incremental"] {
        let meta = crate::util::metadata_files().into_iter().find(|m| m.starts_with(format!("testdata/{case}"))).unwrap_or_else(|| panic!("no _metadata in {case}"));
        let m = meta.to_string_lossy().into_owned();
        let (code, r) = compat(&[&m, "--against", &m]);
        assert_eq!(code, 0, "{case}: {r:#}");
        assert!(r["counts"]["ok"].as_u64().unwrap() >= 20, "{case}: {r:#}");
    }
}

#[test]
fn the_same_job_restores_across_releases() {
    let a = savepoint("flink-1.20.5/heap-savepoint-canonical");
    let b = savepoint("flink-2.3.0/rocksdb-savepoint-canonical");
    let (code, r) = compat(&[&a, "--against", &b]);
    assert_eq!(code, 0, "{r:#}");
    // 2.3 is a newer major release: the upgrade check ran and found nothing to reject.
    assert_eq!(findings(&r, "upgrade", "ok").len(), 1, "{r:#}");
    // Every value serializer of the job was compared (POJO, tuples, TTL, timers, broadcast).
    let ok = findings(&r, "value_serializer", "ok");
    for state in ["v-pojo", "ttl-value", "ttl-map", "window-contents", "aggregating", "rules", "op-union"] {
        assert!(ok.iter().any(|f| f["state"] == state), "{state}: {r:#}");
    }
}

#[test]
fn another_job_drops_every_stateful_operator() {
    let ds = savepoint("flink-2.3.0/heap-savepoint-canonical");
    let sql = savepoint("flink-2.3.0/sql-heap-savepoint-canonical");
    let (code, r) = compat(&[&ds, "--against", &sql]);
    assert_eq!(code, 1);
    assert_eq!(r["verdict"], "incompatible");
    let dropped = findings(&r, "operator_dropped", "incompatible");
    let labels: Vec<&str> = dropped.iter().map(|f| f["operator"].as_str().unwrap()).collect();
    for uid in ["keyed-long", "keyed-string", "window", "op-state", "broadcast"] {
        assert!(labels.iter().any(|l| l.starts_with(&format!("{uid} ("))), "{uid} not dropped: {labels:?}");
    }
    assert!(dropped.iter().all(|f| f["remedy"].as_str().unwrap().contains("--allow-non-restored-state")));
    assert!(!findings(&r, "operator_added", "info").is_empty());
    // With --allow-non-restored-state the state is dropped, with warnings.
    let (code, r) = compat(&[&ds, "--against", &sql, "--allow-non-restored-state"]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(findings(&r, "operator_dropped", "warning").len(), 5);
}

#[test]
fn max_parallelism_set_by_the_new_job_is_incompatible() {
    let a = savepoint("flink-2.3.0/heap-savepoint-canonical");
    let b = savepoint("flink-2.3.0/heap-savepoint-canonical-p2-maxp32768");
    let (code, r) = compat(&[&a, "--against", &b]);
    assert_eq!(code, 1);
    let f = findings(&r, "max_parallelism", "incompatible");
    assert!(!f.is_empty(), "{r:#}");
    assert!(f[0]["message"].as_str().unwrap().contains("128") && f[0]["message"].as_str().unwrap().contains("32768"));
    assert!(f[0]["remedy"].as_str().unwrap().contains("flinksnap convert --max-parallelism 32768"));
}

/// The description of a fixture, changed by `edit`, written to a temporary file.
fn edited(sp: &str, uid_args: &[String], edit: impl FnOnce(&mut J)) -> tempfile::TempPath {
    let mut args = vec!["compat", "--describe", sp];
    let uid_refs: Vec<&str> = uid_args.iter().map(String::as_str).collect();
    args.extend(uid_refs);
    let out = flinksnap(&args);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let mut d: J = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["format"], "flinksnap-compat-target");
    edit(&mut d);
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), serde_json::to_vec_pretty(&d).unwrap()).unwrap();
    f.into_temp_path()
}

fn state_mut<'a>(d: &'a mut J, uid: &str, state: &str) -> &'a mut J {
    let op = d["operators"].as_array_mut().unwrap().iter_mut().find(|o| o["uid"] == uid).unwrap_or_else(|| panic!("no operator {uid}"));
    op["states"].as_array_mut().unwrap().iter_mut().find(|s| s["name"] == state).unwrap_or_else(|| panic!("no state {state}"))
}

#[test]
fn descriptions_changed_like_a_new_job_version() {
    let sp = savepoint("flink-1.20.5/heap-savepoint-canonical");
    let uid_args: Vec<String> = uids("1.20.5").into_iter().flat_map(|u| ["--uid".to_owned(), u]).collect();
    let with_uids = |extra: &[&str]| -> Vec<String> {
        let mut v = vec![sp.clone()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(uid_args.iter().cloned());
        v
    };
    let run = |target: &std::path::Path, extra: &[&str]| {
        let mut a: Vec<String> = with_uids(&["--against", target.to_str().unwrap()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        compat(&refs)
    };

    // Unchanged: compatible, and the 1.20 snapshot's operators are named by --uid.
    let same = edited(&sp, &uid_args, |_| {});
    let (code, r) = run(&same, &[]);
    assert_eq!(code, 0, "{r:#}");
    assert!(r["findings"].as_array().unwrap().iter().any(|f| f["operator"].as_str().unwrap().starts_with("keyed-long (")));

    // A POJO field added: compatible after migration.
    let added = edited(&sp, &uid_args, |d| {
        let v = &mut state_mut(d, "keyed-string", "v-pojo")["value"];
        v["fields"].as_array_mut().unwrap().push(serde_json::json!({"name": "email", "type": {"type": "simple", "name": "string"}}));
    });
    let (code, r) = run(&added, &[]);
    assert_eq!(code, 0, "{r:#}");
    let f = findings(&r, "value_serializer", "info");
    assert!(f.iter().any(|f| f["state"] == "v-pojo" && f["compatibility"] == "after_migration" && f["message"].as_str().unwrap().contains("field email added")), "{r:#}");

    // A field's type changed: incompatible, naming the field.
    let changed = edited(&sp, &uid_args, |d| {
        let v = &mut state_mut(d, "keyed-string", "v-pojo")["value"];
        for f in v["fields"].as_array_mut().unwrap() {
            if f["type"]["name"] == "long" || f["type"]["name"] == "int" {
                f["type"]["name"] = J::from("double");
                break;
            }
        }
    });
    let (code, r) = run(&changed, &[]);
    assert_eq!(code, 1, "{r:#}");
    assert!(findings(&r, "value_serializer", "incompatible").iter().any(|f| f["state"] == "v-pojo"), "{r:#}");

    // TTL turned on: incompatible for 1.20, migrated by 2.3.
    let ttl = edited(&sp, &uid_args, |d| {
        let s = state_mut(d, "keyed-long", "v-long");
        let v = s["value"].take();
        s["value"] = serde_json::json!({"type": "ttl", "value": v});
    });
    let (code, r) = run(&ttl, &["--flink-version", "1.20"]);
    assert_eq!(code, 1, "{r:#}");
    assert!(findings(&r, "value_serializer", "incompatible")[0]["message"].as_str().unwrap().contains("TTL turned on"));
    let (code, _) = run(&ttl, &["--flink-version", "2.3"]);
    assert_eq!(code, 0);
    let (code, _) = run(&ttl, &["--flink-version", "2.1"]);
    assert_eq!(code, 2, "2.1 migrates TTL on RocksDB only: undecided without --backend");
    let (code, _) = run(&ttl, &["--flink-version", "2.1", "--backend", "rocksdb"]);
    assert_eq!(code, 0);

    // A state's kind changed, and operator state's distribution mode.
    let kind = edited(&sp, &uid_args, |d| {
        state_mut(d, "keyed-long", "v-long")["kind"] = J::from("list");
        let s = state_mut(d, "op-state", "op-list");
        s["kind"] = J::from("operator_union");
        s["distribution_mode"] = J::from("UNION");
    });
    let (code, r) = run(&kind, &[]);
    assert_eq!(code, 1);
    assert_eq!(findings(&r, "state_kind", "incompatible").len(), 1, "{r:#}");
    assert_eq!(findings(&r, "distribution_mode", "incompatible").len(), 1, "{r:#}");

    // The key type changed: keys are never migrated.
    let key = edited(&sp, &uid_args, |d| {
        let op = d["operators"].as_array_mut().unwrap().iter_mut().find(|o| o["uid"] == "keyed-long").unwrap();
        for s in op["states"].as_array_mut().unwrap() {
            if s["kind"] != "timer" {
                s["key"] = serde_json::json!({"type": "simple", "name": "string"});
            }
        }
    });
    let (code, r) = run(&key, &[]);
    assert_eq!(code, 1);
    assert_eq!(findings(&r, "key_serializer", "incompatible").len(), 1, "{r:#}");

    // A uid renamed: the old operator is dropped, and the lookalike is named.
    let renamed = edited(&sp, &uid_args, |d| {
        let op = d["operators"].as_array_mut().unwrap().iter_mut().find(|o| o["uid"] == "keyed-long").unwrap();
        op["uid"] = J::from("keyed-long-v2");
        op["id"] = J::Null;
    });
    let (code, r) = run(&renamed, &[]);
    assert_eq!(code, 1);
    let f = findings(&r, "operator_dropped", "incompatible");
    assert_eq!(f.len(), 1, "{r:#}");
    assert!(f[0]["message"].as_str().unwrap().contains("keyed-long-v2"), "{r:#}");
    assert!(f[0]["remedy"].as_str().unwrap().contains("uid(\"keyed-long\")"), "{r:#}");

    // The value type became a Kryo type: incompatible.
    let kryo = edited(&sp, &uid_args, |d| {
        state_mut(d, "keyed-string", "v-pojo")["value"] = serde_json::json!({"type": "kryo", "class": "flinksnap.fixtures.Pojo"});
    });
    let (code, r) = run(&kryo, &[]);
    assert_eq!(code, 1);
    assert!(findings(&r, "value_serializer", "incompatible").iter().any(|f| f["state"] == "v-pojo"));
}

#[test]
fn junit_and_text_outputs() {
    let ds = savepoint("flink-2.3.0/heap-savepoint-canonical");
    let sql = savepoint("flink-2.3.0/sql-heap-savepoint-canonical");
    let out = flinksnap(&["compat", &ds, "--against", &sql, "--format", "junit"]);
    assert_eq!(out.status.code(), Some(1));
    let xml = String::from_utf8(out.stdout).unwrap();
    assert!(xml.starts_with("<?xml"));
    assert_eq!(xml.matches("<failure type=\"incompatible\"").count(), 5, "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), xml.matches("</testcase>").count());
    let out = flinksnap(&["compat", &ds, "--against", &sql]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("INCOMPATIBLE operator_dropped operator keyed-long ("), "{text}");
    assert!(text.contains("fix: "));
}

#[test]
fn compiled_sql_plans() {
    let sp = savepoint("flink-2.3.0/sql-heap-savepoint-canonical");
    let plan = root().join("testdata/flink-2.3.0/sql-plans/sql.plan.json");
    // The job's own plan: every stateful operator is there; serializers cannot be decided.
    let (code, r) = compat(&[&sp, "--against", plan.to_str().unwrap()]);
    assert_eq!(code, 2, "{r:#}");
    assert_eq!(r["target_kind"], "sql_plan");
    assert_eq!(r["counts"]["incompatible"], 0, "{r:#}");
    assert!(findings(&r, "operator_dropped", "undecided").is_empty(), "{r:#}");
    // The 1.20 snapshot (no uids stored) against its 1.20 plan: operator ids derived from the
    // plan's uids match too.
    let sp120 = savepoint("flink-1.20.5/sql-heap-savepoint-canonical");
    let plan120 = root().join("testdata/flink-1.20.5/sql-plans/sql.plan.json");
    let (code, r) = compat(&[&sp120, "--against", plan120.to_str().unwrap()]);
    assert_eq!(code, 2, "{r:#}");
    assert_eq!(r["counts"]["incompatible"], 0, "{r:#}");
    // Before 1.18 a plan gives operators no uids: nothing about operators is decided.
    let sp115 = savepoint("flink-1.15.4/sql-heap-savepoint-canonical");
    let plan115 = root().join("testdata/flink-1.15.4/sql-plans/sql.plan.json");
    let (code, r) = compat(&[&sp115, "--against", plan115.to_str().unwrap()]);
    assert_eq!(code, 2, "{r:#}");
    assert!(findings(&r, "operator_dropped", "incompatible").is_empty(), "{r:#}");
    assert!(findings(&r, "coverage", "undecided").iter().any(|f| f["message"].as_str().unwrap().contains("1.18")), "{r:#}");
    // A REST job plan (read by the same parser as `inspect --plan`) names vertices, not uids:
    // undecided, never a dropped operator.
    let rest = root().join("testdata/flink-2.3.0/sql-plans/sql.rest-plan.json");
    let (code, r) = compat(&[&sp, "--against", rest.to_str().unwrap()]);
    assert_eq!(code, 2, "{r:#}");
    assert_eq!(r["target_kind"], "sql_plan");
    assert!(findings(&r, "operator_dropped", "incompatible").is_empty(), "{r:#}");
    assert!(findings(&r, "coverage", "undecided").iter().any(|f| f["message"].as_str().unwrap().contains("REST job plan")), "{r:#}");
    // A changed query renumbers nodes: the group aggregate's state would be dropped.
    let mut p: J = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    for n in p["nodes"].as_array_mut().unwrap() {
        if n["id"] == 4 {
            n["id"] = J::from(400);
        }
    }
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), serde_json::to_vec(&p).unwrap()).unwrap();
    let (code, r) = compat(&[&sp, "--against", f.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{r:#}");
    let dropped = findings(&r, "operator_dropped", "incompatible");
    assert_eq!(dropped.len(), 1, "{r:#}");
    assert!(dropped[0]["operator"].as_str().unwrap().starts_with("4_group-aggregate"));
    assert!(findings(&r, "operator_added", "info").iter().any(|f| f["operator"].as_str().unwrap().starts_with("400_group-aggregate")));
}

/// States of the upgrade check's findings with that severity.
fn upgrade_states(r: &J, severity: &str) -> Vec<String> {
    let mut s: Vec<String> = findings(r, "upgrade", severity).iter().map(|f| f["state"].as_str().unwrap().to_owned()).collect();
    s.sort();
    s
}

/// What Flink 2.3.0 did restoring the 1.20.5 fixtures state by state (`cargo xtask
/// compat-interop`, `xtask/src/compat_upgrade.rs`, which checks compat against the restores
/// every CI run): it rejects exactly the Scala API's states (ClassNotFoundException for their
/// serializer snapshot classes) and restores the Kryo 2 state (read back equal with Kryo 5), the
/// legacy FlinkKafkaConsumer's union state and every other state. compat flags exactly those.
#[test]
fn upgrade_to_2x_flags_exactly_what_a_2x_restore_rejects() {
    let scala = ["scala-either", "scala-option", "scala-tuple", "scala-unit"];
    for case in ["heap-savepoint-canonical", "rocksdb-savepoint-canonical"] {
        let sp = savepoint(&format!("serializers/flink-1.20.5/{case}"));
        let (code, r) = compat(&[&sp, "--flink-version", "2.x"]);
        assert_eq!(code, 1, "{case}: {r:#}");
        assert_eq!(upgrade_states(&r, "incompatible"), scala, "{case}: {r:#}");
        // Kryo: restored in 2.3.0, a caveat for types not proven.
        assert_eq!(upgrade_states(&r, "warning"), ["kryo", "kryo-object"], "{case}: {r:#}");
        for f in findings(&r, "upgrade", "incompatible") {
            assert!(f["message"].as_str().unwrap().contains("ClassNotFoundException"), "{f:#}");
        }
        assert!(r["findings"].as_array().unwrap().iter().filter(|f| f["check"] == "upgrade").all(|f| f["remedy"].is_string()));
        // The same snapshot restores into 1.20.
        let (code, _) = compat(&[&sp, "--flink-version", "1.20"]);
        assert_eq!(code, 0);
    }
    // The legacy consumer's state restores (into an operator that registers it): a warning.
    let sources = savepoint("serializers/flink-1.20.5/heap-savepoint-sources");
    let (code, r) = compat(&[&sources, "--flink-version", "2.x"]);
    assert_eq!(code, 0, "{r:#}");
    assert!(upgrade_states(&r, "incompatible").is_empty(), "{r:#}");
    let w = findings(&r, "upgrade", "warning");
    assert!(w.iter().any(|f| f["state"] == "topic-partition-offset-states" && f["message"].as_str().unwrap().contains("FlinkKafkaConsumer")), "{r:#}");
    assert!(w.iter().any(|f| f["state"] == "topic-partition-offset-states" && f["message"].as_str().unwrap().contains("Kryo")), "{r:#}");
    // The DataStream fixture job has none of it (2.3.0 restores its savepoints, equal).
    for case in ["heap-savepoint-canonical", "rocksdb-savepoint-canonical"] {
        let (code, r) = compat(&[&savepoint(&format!("flink-1.20.5/{case}")), "--flink-version", "2.x"]);
        assert_eq!(code, 0, "{r:#}");
        assert_eq!(findings(&r, "upgrade", "ok").len(), 1, "{r:#}");
    }
}

#[test]
fn bad_targets_are_clear_errors() {
    let sp = savepoint("flink-2.3.0/heap-savepoint-canonical");
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), b"{\"hello\": 1}").unwrap();
    let out = flinksnap(&["compat", &sp, "--against", f.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a compiled SQL plan"));
    let out = flinksnap(&["compat", &sp, "--against", "no/such/file.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}
