//! `flinksnap export` against what the real-Flink job wrote: every readable fixture exported to
//! Parquet and read back by pyarrow (an independent reader, installed from PyPI into a venv
//! under the cache directory) gives exactly the rows of `expected.jsonl`; JSONL and CSV exports
//! equal `dump`; the export directory rules hold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value as J;

use crate::dump::{dump_args, normalise, readable};
use crate::inspect::{fixtures, Fixture};
use crate::util::{flinksnap, flinksnap_ok, root};

/// The pyarrow release the read-back is pinned to (wheels for CPython 3.9+ on Linux, macOS,
/// Windows; no numpy needed).
const PYARROW: &str = "pyarrow==26.0.1";

fn cache_dir() -> PathBuf {
    match std::env::var_os("FLINKSNAP_CACHE") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/flinksnap"),
    }
}

/// The venv's python with pyarrow, set up once (`python3 -m venv` + `pip install`); `.ci/run`
/// installs it before the tests. Missing pyarrow fails the test (it never skips): a read-back
/// that does not run checks nothing.
fn pyarrow_python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let venv = cache_dir().join("venv-pyarrow");
        let python = venv.join("bin/python");
        let works = |py: &Path| Command::new(py).args(["-c", "import pyarrow"]).output().is_ok_and(|o| o.status.success());
        if works(&python) {
            return python;
        }
        // Built beside the final place and renamed into it, so test processes running at the
        // same time never see (or install into) a half-made venv.
        let tmp = cache_dir().join(format!("venv-pyarrow.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(cache_dir()).unwrap();
        let out = Command::new("python3").args(["-m", "venv"]).arg(&tmp).output().expect("python3 must be installed to test export");
        assert!(out.status.success(), "python3 -m venv failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let out = Command::new(tmp.join("bin/python"))
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-q", PYARROW])
            .output()
            .expect("run pip");
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&tmp);
            panic!(
                "pip install {PYARROW} failed, so the Parquet read-back cannot run (`.ci/run` installs it into {}; \
                 without a package index, install it there by hand):\n{}",
                venv.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = std::fs::rename(&tmp, &venv);
        // Another process may have won the race: use whichever venv ended up in place.
        let _ = std::fs::remove_dir_all(&tmp);
        assert!(works(&python), "{} has no pyarrow after installing it", venv.display());
        python
    })
}

fn export_args(fx: &Fixture, to: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["export".to_owned(), fx.path(), "--to".to_owned(), to.to_string_lossy().into_owned()];
    for u in fx.uids() {
        args.extend(["--uid".to_owned(), u]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run_ok(args: &[String]) -> String {
    flinksnap_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn manifest(dir: &Path) -> J {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

fn expected(fx: &Fixture) -> String {
    crate::util::read_fixture_text(&fx.case_dir.join(fx.snapshot["expected"].as_str().unwrap())).unwrap()
}

/// Compares entries (dump JSON lines) with a fixture's expected contents, as `dump`'s test does.
fn assert_same_entries(what: &str, fx: &Fixture, ours: &str) {
    let name = fx.name();
    let (ours, ttl) = normalise(ours);
    let (theirs, theirs_ttl) = normalise(&expected(fx));
    let missing: Vec<_> = theirs.keys().filter(|k| ours.get(*k) != theirs.get(*k)).take(5).collect();
    let extra: Vec<_> = ours.keys().filter(|k| ours.get(*k) != theirs.get(*k)).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{what} {name}:\nexpected, not exported: {missing:#?}\nexported, not expected: {extra:#?}");
    assert_eq!(ttl.len(), theirs_ttl.len(), "{what} {name}: TTL timestamps");
    let window = &fx.case["ttl_window_ms"];
    let (lo, hi) = (window[0].as_i64().unwrap(), window[1].as_i64().unwrap());
    for t in ttl {
        assert!((lo..=hi).contains(&t), "{what} {name}: TTL timestamp {t} outside the job's window {lo}..={hi}");
    }
}

#[test]
fn parquet_read_back_by_pyarrow_equals_expected_contents() {
    let fixtures: Vec<Fixture> = fixtures().into_iter().filter(readable).collect();
    assert!(fixtures.len() >= 30, "only {} readable fixtures", fixtures.len());
    let tmp = tempfile::tempdir().unwrap();
    let mut pairs = Vec::new();
    for (i, fx) in fixtures.iter().enumerate() {
        let dir = tmp.path().join(format!("export-{i}"));
        run_ok(&export_args(fx, &dir, &[]));
        let m = manifest(&dir);
        assert_eq!(m["format"], "parquet");
        assert_eq!(m["snapshot"]["checkpoint_id"].as_u64(), Some(fx.open().metadata.checkpoint_id), "{}", fx.name());
        // One file per state, each present under its final name, no temporary file left.
        for s in m["states"].as_array().unwrap() {
            assert!(dir.join(s["file"].as_str().unwrap()).is_file(), "{}: {}", fx.name(), s["file"]);
        }
        assert_no_temporaries(&dir);
        pairs.push((dir.clone(), tmp.path().join(format!("readback-{i}.jsonl"))));
    }
    let mut cmd = Command::new(pyarrow_python());
    cmd.arg(root().join("tests/export_readback.py"));
    for (dir, out) in &pairs {
        cmd.arg(dir).arg(out);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "pyarrow read-back failed:\n{}", String::from_utf8_lossy(&out.stderr));
    for (fx, (_, out)) in fixtures.iter().zip(&pairs) {
        assert_same_entries("parquet", fx, &std::fs::read_to_string(out).unwrap());
    }
}

fn assert_no_temporaries(dir: &Path) {
    for e in crate::util::files_under(dir) {
        assert!(!e.to_string_lossy().contains("flinksnap-tmp"), "left behind: {}", e.display());
    }
}


fn newest_canonical() -> Fixture {
    fixtures().into_iter().find(|f| f.case["format"] == "canonical" && f.case["backend"] == "hashmap" && f.case["flink_version"] == "2.3.0" && f.case["parallelism"] == 1).unwrap()
}

#[test]
fn jsonl_and_csv_exports_equal_dump() {
    // A p=2 snapshot too: two subtasks write into one file per state.
    let p2 = fixtures().into_iter().find(|f| f.case["parallelism"] == 2 && readable(f)).unwrap();
    for fx in [newest_canonical(), p2] {
        let tmp = tempfile::tempdir().unwrap();
        let dump = dump_args(&fx, &fx.path());

        let jsonl = tmp.path().join("jsonl");
        run_ok(&export_args(&fx, &jsonl, &["--format", "jsonl", "--threads", "3"]));
        let mut exported: Vec<String> = Vec::new();
        let m = manifest(&jsonl);
        for s in m["states"].as_array().unwrap() {
            let text = std::fs::read_to_string(jsonl.join(s["file"].as_str().unwrap())).unwrap();
            assert_eq!(text.lines().count() as u64, s["rows"].as_u64().unwrap());
            exported.extend(text.lines().map(str::to_owned));
        }
        let mut dumped: Vec<String> = run_ok(&dump).lines().map(str::to_owned).collect();
        exported.sort();
        dumped.sort();
        assert_eq!(exported, dumped, "{}: jsonl export differs from dump", fx.name());
        assert_same_entries("jsonl", &fx, &exported.join("\n"));

        let csv = tmp.path().join("csv");
        run_ok(&export_args(&fx, &csv, &["--format", "csv"]));
        let mut dump_csv = dump.clone();
        dump_csv.extend(["--format".to_owned(), "csv".to_owned()]);
        let dumped = run_ok(&dump_csv);
        let header = dumped.lines().next().unwrap().to_owned();
        let mut dumped_rows = csv_records(&dumped);
        let mut exported_rows = Vec::new();
        for s in manifest(&csv)["states"].as_array().unwrap() {
            let text = std::fs::read_to_string(csv.join(s["file"].as_str().unwrap())).unwrap();
            assert_eq!(text.lines().next().unwrap(), header);
            exported_rows.extend(csv_records(&text));
        }
        exported_rows.sort();
        dumped_rows.sort();
        assert_eq!(exported_rows, dumped_rows, "{}: csv export differs from dump --format csv", fx.name());
    }
}

fn csv_records(text: &str) -> Vec<Vec<String>> {
    csv::Reader::from_reader(text.as_bytes()).records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect()
}

#[test]
fn schema_comes_from_the_serializers() {
    let fx = newest_canonical();
    let tmp = tempfile::tempdir().unwrap();
    run_ok(&export_args(&fx, tmp.path(), &["--threads", "1"]));
    let m = manifest(tmp.path());
    let col = |uid: &str, state: &str, column: &str| -> String {
        let s = m["states"].as_array().unwrap().iter().find(|s| s["operator_uid"] == uid && s["state"] == state).unwrap_or_else(|| panic!("no {uid}/{state}"));
        let c = s["columns"].as_array().unwrap().iter().find(|c| c["name"] == column).unwrap_or_else(|| panic!("no {uid}/{state}.{column}"));
        c["type"].as_str().unwrap().to_owned()
    };
    assert_eq!(col("keyed-long", "v-long", "key"), "Int64");
    assert_eq!(col("keyed-long", "v-long", "value"), "Int64");
    assert_eq!(col("keyed-long", "v-int", "value"), "Int32");
    assert_eq!(col("keyed-long", "v-double", "value"), "Float64");
    assert_eq!(col("keyed-long", "v-bool", "value"), "Boolean");
    assert_eq!(col("keyed-long", "v-bytes", "value"), "Binary");
    assert_eq!(col("keyed-long", "v-string", "value"), "Utf8");
    assert_eq!(col("keyed-long", "v-long", "namespace"), "Null");
    assert!(col("keyed-long", "list", "value").starts_with("List<"), "{}", col("keyed-long", "list", "value"));
    assert!(col("keyed-string", "map", "value").contains("Int64"));
    assert_eq!(col("keyed-string", "map", "user_key"), "Utf8");
    assert_eq!(col("keyed-string", "ttl-value", "ttl_timestamp"), "Int64");
    for f in ["count", "flag", "id", "name"] {
        assert!(col("keyed-string", "v-pojo", "value").contains(f), "{}", col("keyed-string", "v-pojo", "value"));
    }
    assert!(col("keyed-string", "aggregating", "value").starts_with("Struct<"));
    let window_ns = col("window", "window-contents", "namespace");
    assert!(window_ns.starts_with("Struct<") && window_ns.contains("start") && window_ns.contains("end"), "{window_ns}");
    assert_eq!(col("window", "_timer_state/event_window-timers", "value"), "Int64");
    assert_eq!(col("broadcast", "rules", "user_key"), "Utf8");
    assert_eq!(col("broadcast", "rules", "value"), "Int32");
    // Timer queues have '/' in their names.
    assert!(m["states"].as_array().unwrap().iter().any(|s| s["file"] == "window/_timer_state%2Fevent_window-timers.parquet"));
    let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["flinksnap_version", "format", "snapshot", "states", "untyped", "undecodable", "totals", "run"]);
    // Every serializer of this job is Flink's: nothing untyped, nothing left out.
    assert_eq!(m["untyped"], serde_json::json!([]));
    assert_eq!(m["undecodable"], serde_json::json!([]));
    assert_eq!((m["totals"]["untyped_states"].as_u64(), m["totals"]["undecodable_states"].as_u64()), (Some(0), Some(0)));
    assert!(m["run"]["seconds"].as_f64().is_some());
}

/// Dictionary encoding only where values repeat (`formats/parquet-export.md`, "Parquet
/// encoding"): every leaf of the metadata columns, `key_group` and `namespace` has a dictionary
/// page in every row group; keys, user keys, values and TTL timestamps have none (before, every
/// column had one: arrow-rs's default).
#[test]
fn parquet_dictionary_only_on_repeating_columns() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let fx = newest_canonical();
    let tmp = tempfile::tempdir().unwrap();
    run_ok(&export_args(&fx, tmp.path(), &["--threads", "2"]));
    let m = manifest(tmp.path());
    let dictionary = ["operator_id", "operator_uid", "state", "kind", "key_group", "namespace"];
    let (mut with, mut without) = (BTreeMap::<String, usize>::new(), BTreeMap::<String, usize>::new());
    for s in m["states"].as_array().unwrap() {
        let file = std::fs::File::open(tmp.path().join(s["file"].as_str().unwrap())).unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        for rg in reader.metadata().row_groups() {
            for c in rg.columns() {
                let path = c.column_path().string();
                let top = c.column_path().parts()[0].clone();
                let has = c.dictionary_page_offset().is_some();
                assert_eq!(has, dictionary.contains(&top.as_str()), "{}: column {path}: dictionary page {has}", s["file"]);
                *(if has { &mut with } else { &mut without }).entry(top).or_default() += 1;
            }
        }
    }
    // The fixture has every kind of column: the assertions above ran on each.
    for c in dictionary {
        assert!(with.contains_key(c), "no {c} column chunk in {with:?}");
    }
    for c in ["key", "user_key", "value", "ttl_timestamp"] {
        assert!(without.contains_key(c), "no {c} column chunk in {without:?}");
    }
}

/// `--compression`: every column chunk of every file has the codec asked for (LZ4 as Parquet's
/// LZ4_RAW), pyarrow reads each export back to exactly the entries real Flink wrote, and arrow-rs
/// reads the same batches (values, schema, field metadata) as from the default zstd export. The
/// option is refused for CSV and JSONL.
#[test]
fn parquet_compression_codecs_read_back_the_same() {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::Compression;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let fx = newest_canonical();
    let tmp = tempfile::tempdir().unwrap();
    let read = |path: &Path| -> Vec<arrow_array::RecordBatch> {
        let file = std::fs::File::open(path).unwrap();
        ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap().map(Result::unwrap).collect()
    };
    let zstd = tmp.path().join("zstd");
    run_ok(&export_args(&fx, &zstd, &[]));
    let states = manifest(&zstd)["states"].as_array().unwrap().clone();
    let mut cmd = Command::new(pyarrow_python());
    cmd.arg(root().join("tests/export_readback.py"));
    let mut outs = Vec::new();
    for (codec, expected_codec) in [("zstd", "ZSTD"), ("snappy", "SNAPPY"), ("lz4", "LZ4_RAW"), ("none", "UNCOMPRESSED")] {
        let dir = tmp.path().join(format!("out-{codec}"));
        run_ok(&export_args(&fx, &dir, &["--compression", codec]));
        let mut chunks = 0;
        for s in &states {
            let f = s["file"].as_str().unwrap();
            let reader = SerializedFileReader::new(std::fs::File::open(dir.join(f)).unwrap()).unwrap();
            for rg in reader.metadata().row_groups() {
                for c in rg.columns() {
                    let found = match c.compression() {
                        Compression::ZSTD(_) => "ZSTD",
                        Compression::SNAPPY => "SNAPPY",
                        Compression::LZ4_RAW => "LZ4_RAW",
                        Compression::UNCOMPRESSED => "UNCOMPRESSED",
                        other => panic!("{codec}: {f}: {other:?}"),
                    };
                    assert_eq!(found, expected_codec, "{codec}: {f}: {}", c.column_path());
                    chunks += 1;
                }
            }
            let (ours, default) = (read(&dir.join(f)), read(&zstd.join(f)));
            assert_eq!(ours, default, "{codec}: {f}");
            if let (Some(a), Some(b)) = (ours.first(), default.first()) {
                // With the field metadata (the serializers, encodings) of the embedded schema.
                assert_eq!(a.schema(), b.schema(), "{codec}: {f}");
            }
        }
        assert!(chunks > 50, "{codec}: {chunks} column chunks");
        let out = tmp.path().join(format!("readback-{codec}.jsonl"));
        cmd.arg(&dir).arg(&out);
        outs.push(out);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "pyarrow read-back failed:\n{}", String::from_utf8_lossy(&out.stderr));
    for out in outs {
        assert_same_entries(&out.display().to_string(), &fx, &std::fs::read_to_string(out).unwrap());
    }
    // Text formats have no codec to choose.
    let args = export_args(&fx, &tmp.path().join("csv"), &["--format", "csv", "--compression", "snappy"]);
    let out = flinksnap(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--compression applies to Parquet files only"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn empty_states_get_a_typed_file() {
    // Every state the proxies declare gets a file, also those the job emptied again (no line in
    // expected.jsonl): those have the typed schema and no rows.
    let fx = newest_canonical();
    let tmp = tempfile::tempdir().unwrap();
    run_ok(&export_args(&fx, tmp.path(), &[]));
    let m = manifest(tmp.path());
    let expected_states: std::collections::BTreeSet<(String, String)> = expected(&fx)
        .lines()
        .map(|l| serde_json::from_str::<J>(l).unwrap())
        .map(|e| (e["operator_uid"].as_str().unwrap().to_owned(), e["state"].as_str().unwrap().to_owned()))
        .collect();
    let states = m["states"].as_array().unwrap();
    for s in states {
        let key = (s["operator_uid"].as_str().unwrap().to_owned(), s["state"].as_str().unwrap().to_owned());
        let rows = s["rows"].as_u64().unwrap();
        assert_eq!(rows > 0, expected_states.contains(&key), "{key:?}: {rows} rows");
        // Every file, empty or not, has its value column typed.
        assert!(s["columns"].as_array().unwrap().iter().any(|c| c["name"] == "value"));
    }
    assert_eq!(states.iter().filter(|s| s["rows"].as_u64() > Some(0)).count(), expected_states.len());
    // The window operator's processing-time timer queue is registered and never used.
    let empty = states.iter().find(|s| s["state"] == "_timer_state/processing_window-timers").unwrap();
    assert_eq!(empty["rows"], 0);
    let path = tmp.path().join(empty["file"].as_str().unwrap());
    assert!(std::fs::metadata(&path).unwrap().len() > 0, "{}", path.display());
}

#[test]
fn export_directory_rules() {
    let fx = newest_canonical();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    // A non-empty directory is refused...
    let args = export_args(&fx, &dir, &[]);
    let out = flinksnap(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert!(!dir.join("manifest.json").exists());
    // ... unless --force, which leaves files it did not write alone.
    run_ok(&export_args(&fx, &dir, &["--force"]));
    let all = manifest(&dir);
    assert!(dir.join("notes.txt").exists());
    // Exporting less with --force removes what the earlier export wrote and this one did not.
    run_ok(&export_args(&fx, &dir, &["--force", "--operator", "broadcast"]));
    let one = manifest(&dir);
    assert_eq!(one["states"].as_array().unwrap().len(), 1);
    for s in all["states"].as_array().unwrap() {
        let f = s["file"].as_str().unwrap();
        assert_eq!(dir.join(f).exists(), s["operator_uid"] == "broadcast", "{f}");
    }
    assert!(dir.join("notes.txt").exists());
    assert!(!dir.join("keyed-long").exists(), "empty operator directories are removed");
    assert_no_temporaries(&dir);
}

#[test]
fn selection_and_thread_counts_give_the_same_rows() {
    let fx = fixtures().into_iter().find(|f| f.case["parallelism"] == 2 && readable(f)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut by_threads = Vec::new();
    for threads in ["1", "4"] {
        let dir = tmp.path().join(format!("t{threads}"));
        run_ok(&export_args(&fx, &dir, &["--format", "jsonl", "--threads", threads]));
        let m = manifest(&dir);
        let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for s in m["states"].as_array().unwrap() {
            let f = s["file"].as_str().unwrap();
            let mut lines: Vec<String> = std::fs::read_to_string(dir.join(f)).unwrap().lines().map(str::to_owned).collect();
            lines.sort();
            rows.insert(f.to_owned(), lines);
        }
        by_threads.push(rows);
    }
    assert_eq!(by_threads[0], by_threads[1]);
    let dir = tmp.path().join("one");
    run_ok(&export_args(&fx, &dir, &["--format", "jsonl", "--operator", "keyed-string", "--state", "map"]));
    let m = manifest(&dir);
    let states = m["states"].as_array().unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0]["file"], "keyed-string/map.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(dir.join("keyed-string/map.jsonl")).unwrap().lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(&lines, &by_threads[0]["keyed-string/map.jsonl"]);
}

#[test]
fn rocksdb_native_states_are_typed_from_their_meta_file() {
    // RocksDB native snapshots keep the serialization proxy in a meta-data file of its own, so
    // their states and Parquet columns are known without RocksDB, and equal the heap backend's
    // for the same job.
    use flinksnap::export::state::StateLayout;
    use flinksnap::readers::entries::Selection;
    use flinksnap::readers::states::snapshot_states;
    let columns = |fx: &Fixture| -> std::collections::BTreeMap<(String, String), String> {
        snapshot_states(&fx.open(), &Selection::default())
            .unwrap_or_else(|e| panic!("{}: {e}", fx.name()))
            .into_iter()
            .flat_map(|(_, states)| states)
            .map(|s| {
                let cols = StateLayout::new(&s, None, &[]).unwrap().columns();
                ((s.operator_id.to_hex(), s.name().to_owned()), serde_json::to_string(&cols).unwrap())
            })
            .collect()
    };
    let all = fixtures();
    let mut checked = 0;
    for fx in all.iter().filter(|f| f.case["backend"] == "rocksdb" && f.case["format"] == "native") {
        let heap = all
            .iter()
            .find(|h| h.case["flink_version"] == fx.case["flink_version"] && h.case["backend"] == "hashmap" && h.case["format"] == "canonical" && h.case["parallelism"] == 1)
            .unwrap();
        assert_eq!(columns(fx), columns(heap), "{} vs {}", fx.name(), heap.name());
        checked += 1;
    }
    // 1.15.4 and 2.3.0 (testdata/README.md: one per FRocksDB generation with native savepoints)
    assert!(checked >= 2, "{checked}");
}

#[test]
fn failed_export_leaves_nothing_under_a_final_name() {
    // A truncated state file fails the export half-way (other operators' files are being
    // written by then): exit 2 naming the file, and no file, temporary or manifest is left.
    let fx = newest_canonical();
    let tmp = tempfile::tempdir().unwrap();
    let src = root().join(fx.path());
    let snap = tmp.path().join(src.file_name().unwrap());
    crate::inspect::copy_dir(&src, &snap);
    let biggest = crate::util::largest_state_file(&snap);
    let bytes = std::fs::read(&biggest).unwrap();
    std::fs::write(&biggest, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out_dir = tmp.path().join("out");
    let mut args = vec!["export".to_owned(), snap.to_string_lossy().into_owned(), "--to".to_owned(), out_dir.to_string_lossy().into_owned()];
    for u in fx.uids() {
        args.extend(["--uid".to_owned(), u]);
    }
    let out = flinksnap(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(biggest.file_name().unwrap().to_str().unwrap()), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(crate::util::files_under(&out_dir), Vec::<PathBuf>::new(), "files left after a failed export");
}
