//! flinksnap built without the `rocksdb` feature (`cargo test --no-default-features --test
//! integration without_rocksdb`, which `.ci/run` runs) on the fixtures that keep keyed state in
//! RocksDB's native format: the state it cannot read is "unsupported", never "corrupt". verify
//! reports those handles as not checked and exits 0 (every fixture is sound), dump says why it
//! cannot print them (exit 2) and still prints everything else, stats marks them incomplete.

use std::collections::BTreeMap;

use serde_json::Value as J;

use crate::dump::{dump_args, normalise};
use crate::inspect::{fixtures, Fixture};
use crate::rocksdb_native::is_rocksdb_native;
use crate::util::{flinksnap, flinksnap_ok};

/// Fixtures with RocksDB native keyed state: their own handles or a changelog handle's
/// materialized part.
fn rocksdb_fixtures() -> Vec<Fixture> {
    let out: Vec<Fixture> = fixtures().into_iter().filter(|f| is_rocksdb_native(f) || f.case["case"] == "rocksdb-changelog-checkpoint").collect();
    assert!(out.len() >= 20, "only {} RocksDB fixtures", out.len());
    out
}

#[test]
fn verify_reports_rocksdb_state_unsupported_never_corrupt() {
    let mut unsupported = 0;
    for fx in rocksdb_fixtures() {
        let name = fx.name();
        let out = flinksnap(&["verify", &fx.path(), "--level", "full", "--format", "json"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{name}: verify must not call RocksDB state corrupt:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let j: J = serde_json::from_str(&stdout).unwrap();
        assert_eq!(j["data"]["sound"], true, "{name}");
        for c in j["data"]["checks"].as_array().unwrap() {
            for f in c["findings"].as_array().unwrap() {
                assert_ne!(f["severity"], "error", "{name}: {f}");
                assert_ne!(f["kind"], "decode", "{name}: {f}");
            }
            if c["name"].as_str().unwrap().ends_with("managed keyed state") && c["status"] == "not_checked" {
                let f = &c["findings"][0];
                assert_eq!(f["kind"], "unsupported", "{name}: {c}");
                assert!(f["message"].as_str().unwrap().contains("built without RocksDB support"), "{name}: {f}");
                unsupported += 1;
            }
        }
        // The text form says the same.
        let text = flinksnap(&["verify", &fx.path(), "--level", "full"]);
        assert_eq!(text.status.code(), Some(0), "{name}");
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("NOT CHECKED") && text.contains("not checked (unsupported)") && !text.contains("NOT SOUND"), "{name}:\n{text}");
    }
    assert!(unsupported >= 20, "only {unsupported} keyed-state checks reported unsupported");
}

#[test]
fn dump_says_why_and_still_prints_what_it_can_read() {
    let mut partial = 0;
    for fx in rocksdb_fixtures() {
        let name = fx.name();
        let args = dump_args(&fx, &fx.path());
        let out = flinksnap(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains("built without RocksDB support") && stderr.contains("rebuild it with default features"), "{name}: {stderr}");
        assert!(!stderr.to_lowercase().contains("corrupt"), "{name}: {stderr}");

        // Operators whose state is not RocksDB's dump exactly what the job wrote.
        let s = fx.open();
        let readable: Vec<String> = s
            .metadata
            .operators
            .iter()
            .filter(|o| o.subtasks.iter().all(|st| st.state.as_ref().is_none_or(|s| s.managed_keyed_state.is_none())))
            .filter(|o| o.subtasks.iter().any(|st| st.state.as_ref().is_some_and(|s| s.managed_operator_state.is_some())))
            .map(|o| o.operator_id.to_hex())
            .collect();
        if readable.is_empty() {
            continue;
        }
        let mut args = dump_args(&fx, &fx.path());
        for id in &readable {
            args.extend(["--operator".to_owned(), id.clone()]);
        }
        let ours = flinksnap_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let expected = std::fs::read_to_string(fx.case_dir.join(fx.snapshot["expected"].as_str().unwrap())).unwrap();
        let theirs: String = expected
            .lines()
            .filter(|l| serde_json::from_str::<J>(l).is_ok_and(|j| readable.iter().any(|id| j["operator_id"] == *id)))
            .map(|l| format!("{l}\n"))
            .collect();
        let (ours, _) = normalise(&ours);
        let (theirs, _) = normalise(&theirs);
        assert!(!theirs.is_empty(), "{name}: the job wrote operator state");
        assert_eq!(ours, theirs, "{name}: operator state");
        partial += 1;
    }
    assert!(partial >= 10, "only {partial} fixtures had readable operator state");
}

#[test]
fn stats_marks_rocksdb_entries_incomplete() {
    for fx in rocksdb_fixtures().into_iter().filter(is_rocksdb_native).take(5) {
        let name = fx.name();
        let j: J = serde_json::from_str(&flinksnap_ok(&["stats", &fx.path(), "--format", "json"])).unwrap();
        let incomplete: BTreeMap<String, String> = j["data"]["operators"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["entries_complete"] == false)
            .map(|o| (o["operator_id"].as_str().unwrap().to_owned(), o["note"].as_str().unwrap_or_default().to_owned()))
            .collect();
        assert!(!incomplete.is_empty(), "{name}: {j}");
        for note in incomplete.values() {
            assert!(note.contains("built without RocksDB support"), "{name}: {note}");
        }
    }
}
