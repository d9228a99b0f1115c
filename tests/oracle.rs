//! `flinksnap dump` equals what real Flink decodes from the same snapshot: the dump oracle's
//! `oracle*.jsonl` (`cargo xtask oracle`, `xtask/ORACLE.md`: Flink restores the snapshot with
//! serializers restored from its serializer snapshots and prints every entry), for every fixture
//! snapshot, entry for entry, TTL timestamps exact.

use std::collections::BTreeMap;

use serde_json::Value as J;

use crate::dump::{dump_args, readable};
use crate::inspect::{fixtures, Fixture};
use crate::util::flinksnap_ok;

/// The oracle file of a fixture snapshot: `expected.jsonl` → `oracle.jsonl`,
/// `expected-chk-N.jsonl` → `oracle-chk-N.jsonl`.
pub(crate) fn oracle_file(fx: &Fixture) -> std::path::PathBuf {
    fx.case_dir.join(fx.snapshot["expected"].as_str().unwrap().replacen("expected", "oracle", 1))
}

/// Entries as a multiset of canonical JSON strings: object keys sorted, and map values
/// (`[{"key", "value"}, …]`, printed in stored order by flinksnap and in `HashMap` order by the
/// oracle) sorted too.
pub(crate) fn entries(lines: &str) -> BTreeMap<String, usize> {
    let mut set = BTreeMap::new();
    for l in lines.lines().filter(|l| !l.trim().is_empty()) {
        let j: J = serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}"));
        *set.entry(canonical(&j).to_string()).or_default() += 1;
    }
    set
}

fn canonical(j: &J) -> J {
    match j {
        J::Object(m) => {
            let mut v: Vec<_> = m.iter().collect();
            v.sort_by(|a, b| a.0.cmp(b.0));
            J::Object(v.into_iter().map(|(k, v)| (k.clone(), canonical(v))).collect())
        }
        J::Array(a) => {
            let mut items: Vec<J> = a.iter().map(canonical).collect();
            let is_map = !items.is_empty()
                && items.iter().all(|e| e.as_object().is_some_and(|o| o.len() == 2 && o.contains_key("key") && o.contains_key("value")));
            if is_map {
                items.sort_by_key(|e| e.to_string());
            }
            J::Array(items)
        }
        other => other.clone(),
    }
}

/// The first differences of two entry multisets, for a failure message.
pub(crate) fn difference(ours: &BTreeMap<String, usize>, theirs: &BTreeMap<String, usize>) -> Option<String> {
    let missing: Vec<_> = theirs.keys().filter(|k| ours.get(*k) != theirs.get(*k)).take(5).collect();
    let extra: Vec<_> = ours.keys().filter(|k| ours.get(*k) != theirs.get(*k)).take(5).collect();
    if missing.is_empty() && extra.is_empty() {
        None
    } else {
        Some(format!("Flink decoded, flinksnap did not: {missing:#?}\nflinksnap dumped, Flink did not decode: {extra:#?}"))
    }
}

#[test]
fn dump_equals_the_oracle() {
    let mut checked = 0;
    let mut without = Vec::new();
    for fx in fixtures().iter().filter(|f| readable(f)) {
        let file = oracle_file(fx);
        let Ok(oracle) = crate::util::read_fixture_text(&file) else {
            without.push(fx.name());
            continue;
        };
        let args = dump_args(fx, &fx.path());
        let out = flinksnap_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let (ours, theirs) = (entries(&out), entries(&oracle));
        if let Some(d) = difference(&ours, &theirs) {
            panic!("{}: dump differs from {}:\n{d}", fx.name(), file.display());
        }
        assert!(!theirs.is_empty(), "{}: an empty oracle proves nothing", fx.name());
        checked += 1;
    }
    assert!(without.is_empty(), "fixtures without an oracle file (run `cargo xtask oracle`): {without:#?}");
    assert!(checked >= 70, "only {checked} fixtures checked against the oracle");
}

#[test]
fn the_oracle_agrees_with_the_jobs_model() {
    // The fixture job's expected contents (its own model of the state) and Flink's decoding of
    // the snapshot are two independent sources: they must agree, TTL timestamps aside (the job
    // can only bound them).
    let mask_ttl = |lines: &str| -> String {
        lines
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut j: J = serde_json::from_str(l).unwrap();
                if let Some(o) = j.as_object_mut().filter(|o| o.contains_key("ttl_timestamp")) {
                    o.insert("ttl_timestamp".into(), J::Bool(true));
                }
                j.to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut checked = 0;
    for fx in fixtures() {
        let Ok(oracle) = crate::util::read_fixture_text(&oracle_file(&fx)) else { continue };
        let expected = crate::util::read_fixture_text(&fx.case_dir.join(fx.snapshot["expected"].as_str().unwrap())).unwrap();
        let (o, e) = (entries(&mask_ttl(&oracle)), entries(&mask_ttl(&expected)));
        if let Some(d) = difference(&o, &e) {
            panic!("{}: the oracle and expected.jsonl differ:\n{d}", fx.name());
        }
        checked += 1;
    }
    assert!(checked >= 70, "only {checked} oracle files");
}

/// The serializers fixtures (`cargo xtask serializer-fixtures`: Either, enum, Java
/// serialization, Nullable, Value, Kryo, Scala types in 1.x, async I/O in flight): their only
/// expected contents are the oracle's.
#[test]
fn serializers_fixtures_dump_equals_the_oracle() {
    let mut checked = Vec::new();
    let (mut scala, mut kafka) = (Vec::new(), Vec::new());
    for (version, case_dir) in crate::util::versioned_cases("serializers", &["heap-savepoint-canonical", "rocksdb-savepoint-canonical", "heap-savepoint-sources"]) {
            let case: J = serde_json::from_slice(&std::fs::read(case_dir.join("case.json")).unwrap()).unwrap();
            for s in case["snapshots"].as_array().unwrap() {
                let path = case_dir.join(s["path"].as_str().unwrap());
                let mut args = vec!["dump".to_owned(), path.to_string_lossy().into_owned()];
                for u in case["uids"].as_object().unwrap().keys() {
                    args.extend(["--uid".to_owned(), u.clone()]);
                }
                let out = flinksnap_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
                let oracle = crate::util::read_fixture_text(&case_dir.join(s["oracle"].as_str().unwrap())).unwrap();
                let (ours, theirs) = (entries(&out), entries(&oracle));
                if let Some(d) = difference(&ours, &theirs) {
                    panic!("{}: dump differs from the oracle:\n{d}", path.display());
                }
                // Every serializer of the job is there; Scala ones in every 1.x (2.x has no Scala
                // API), the Kafka connector's splits where its jar could be had (2.x): each
                // absence is recorded with its reason in case.json.
                let mut states: Vec<&str> = if case_dir.ends_with("heap-savepoint-sources") {
                    vec!["SourceReaderState", "topic-partition-offset-states"]
                } else {
                    vec!["either", "enum", "java-serialized", "nullable", "int-value", "copyable-value", "kryo", "kryo-object", "_async_wait_operator_state_"]
                };
                let one_x = version.starts_with("1.");
                if case_dir.ends_with("heap-savepoint-sources") {
                    assert_eq!(case["kafka_connector"], !one_x, "{}: the Kafka connector in Flink {version}", path.display());
                    if one_x {
                        assert!(case["kafka_connector_absent"].is_string(), "{}: no reason for the missing Kafka source", path.display());
                    } else {
                        kafka.push(version.clone());
                    }
                } else {
                    assert_eq!(case["scala"], one_x, "{}: Scala state in Flink {version}", path.display());
                    if one_x {
                        states.extend(["scala-tuple", "scala-option", "scala-either", "scala-unit"]);
                        scala.push(version.clone());
                    } else {
                        assert!(case["scala_absent"].is_string(), "{}: no reason for the missing Scala state", path.display());
                    }
                }
                for state in states {
                    assert!(oracle.contains(&format!("\"state\":\"{state}\"")), "{}: no {state} entries", path.display());
                }
                checked.push(path);
            }
    }
    assert_eq!(checked.len(), 3 * crate::util::fixture_versions().len(), "serializers fixtures: {checked:?}");
    // Scala state in every 1.x (both backends), the Kafka connector's splits in every 2.x.
    let versions = crate::util::fixture_versions();
    let n = |one_x: bool| versions.iter().filter(|v| v.starts_with("1.") == one_x).count();
    assert_eq!(scala.len(), 2 * n(true), "Scala state: {scala:?}");
    assert_eq!(kafka.len(), n(false), "Kafka source state: {kafka:?}");
}
