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
