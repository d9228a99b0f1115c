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
        let oracle = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e} (cargo xtask oracle)", file.display()));
        let args = dump_args(&fx, &fx.path());
        let out = flinksnap_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let (ours, theirs) = (entries(&out), entries(&oracle));
        if let Some(d) = difference(&ours, &theirs) {
            panic!("{}: dump differs from {}:\n{d}", fx.name(), file.display());
        }
        assert!(theirs.len() > 50, "{}: {} entries prove little", fx.name(), theirs.len());
        versions.insert(fx.case["flink_version"].as_str().unwrap().to_owned());
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} SQL fixture snapshots");
    assert_eq!(versions.len(), 5, "SQL fixtures of {versions:?}");
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
