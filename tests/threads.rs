//! `--threads N`: `dump`, `verify --level full`, `export`, `convert` and `stats` give the same output on one thread
//! and on several, for every fixture (the pieces a snapshot is cut into — key-group ranges of
//! each keyed-state handle — are read in parallel and their results put back in snapshot
//! order: `src/readers/parallel.rs`), and an error in one reading thread is the command's error.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::inspect::copy_dir;
use crate::util::{metadata_files, root};

/// Runs `flinksnap ARGS`, failing the test if it has not ended after two minutes (a reading
/// thread's error must end the command, never leave it waiting).
fn run(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_flinksnap"))
        .args(args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run flinksnap");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => out.expect("flinksnap output"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("flinksnap {args:?} hung (killed after 120 s)");
        }
    }
}

fn with_threads<'a>(args: &[&'a str], threads: &'a str) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend(["--threads", threads]);
    v
}

/// One thread and four give the same exit code, stdout and stderr.
fn assert_same(args: &[&str]) -> Output {
    let one = run(&with_threads(args, "1"));
    let four = run(&with_threads(args, "4"));
    assert_eq!(one.status.code(), four.status.code(), "{args:?}: exit codes\n{}", String::from_utf8_lossy(&four.stderr));
    assert!(one.stdout == four.stdout, "{args:?}: the output on 4 threads differs from that on 1");
    assert_eq!(String::from_utf8_lossy(&one.stderr), String::from_utf8_lossy(&four.stderr), "{args:?}: stderr");
    one
}

/// The kinds of snapshot the fixtures must include for the comparisons to mean something:
/// each is cut into several pieces on 4 threads (changelog handles are not cut, but read beside
/// the others).
const KINDS: [&str; 6] =
    ["heap-savepoint-canonical", "heap-checkpoint", "rocksdb-savepoint-native", "rocksdb-checkpoint-incremental", "changelog", "sql-"];

fn check_kinds(done: &[String]) {
    for k in KINDS {
        assert!(done.iter().any(|d| d.contains(k)), "no {k} fixture was compared: {done:?}");
    }
}

#[test]
fn dump_is_byte_identical_on_any_number_of_threads() {
    let mut done = Vec::new();
    let files = metadata_files();
    for m in &files {
        let path = m.to_str().unwrap();
        let out = assert_same(&["dump", path]);
        if out.status.success() && !out.stdout.is_empty() {
            done.push(path.to_owned());
        }
    }
    assert!(done.len() * 4 >= files.len() * 3, "only {} of {} fixtures dumped", done.len(), files.len());
    check_kinds(&done);
    // The other formats and --origin, on one fixture of each kind.
    for k in KINDS {
        let m = metadata_files().into_iter().find(|m| m.to_str().unwrap().contains(k) && m.to_str().unwrap().contains("flink-2.3.0")).unwrap();
        let path = m.to_str().unwrap();
        for extra in [&["--format", "csv"][..], &["--format", "table"], &["--origin"], &["--key-group", "10..=90"]] {
            let args: Vec<&str> = ["dump", path].into_iter().chain(extra.iter().copied()).collect();
            let out = assert_same(&args);
            assert!(out.status.success() && !out.stdout.is_empty(), "{args:?}");
        }
    }
}

#[test]
fn verify_reports_are_identical_on_any_number_of_threads() {
    let mut done = Vec::new();
    let files = metadata_files();
    for m in &files {
        let path = m.to_str().unwrap();
        let out = assert_same(&["verify", path, "--level", "full", "--format", "json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{path}: {e}"));
        if report["data"]["totals"]["entries"].as_u64().is_some_and(|n| n > 0) {
            done.push(path.to_owned());
        }
    }
    assert!(done.len() * 4 >= files.len() * 3, "only {} of {} fixtures verified with entries", done.len(), files.len());
    check_kinds(&done);
}

#[test]
fn export_rows_are_identical_on_any_number_of_threads() {
    for k in KINDS {
        let m = metadata_files().into_iter().find(|m| m.to_str().unwrap().contains(k) && m.to_str().unwrap().contains("flink-2.3.0")).unwrap();
        let path = m.to_str().unwrap();
        for format in ["jsonl", "parquet"] {
            let tmp = tempfile::tempdir().unwrap();
            let mut manifests = Vec::new();
            for threads in ["1", "4"] {
                let dir = tmp.path().join(threads);
                let out = run(&["export", path, "--to", dir.to_str().unwrap(), "--format", format, "--threads", threads]);
                assert!(out.status.success(), "{path}: {}", String::from_utf8_lossy(&out.stderr));
                let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
                assert_eq!(manifest["run"]["threads"], threads.parse::<u64>().unwrap());
                manifest.as_object_mut().unwrap().remove("run");
                manifests.push(manifest);
            }
            assert!(manifests[0]["totals"]["rows"].as_u64().unwrap() > 0, "{path}");
            assert_eq!(manifests[0], manifests[1], "{path} {format}: manifests");
            // The rows, in their order: every file the same.
            for s in manifests[0]["states"].as_array().unwrap() {
                let file = s["file"].as_str().unwrap();
                let a = std::fs::read(tmp.path().join("1").join(file)).unwrap();
                let b = std::fs::read(tmp.path().join("4").join(file)).unwrap();
                assert!(a == b, "{path} {format}: {file} differs between 1 and 4 threads");
            }
        }
    }
}

#[test]
fn stats_reports_are_identical_on_any_number_of_threads() {
    let mut done = Vec::new();
    let files = metadata_files();
    for m in &files {
        let path = m.to_str().unwrap();
        // Few heaviest keys: the ranking's cut-off is compared too.
        let out = assert_same(&["stats", path, "--format", "json", "--top", "3"]);
        if !out.status.success() {
            continue;
        }
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{path}: {e}"));
        if report["data"]["entries"].as_u64().is_some_and(|n| n > 0) {
            done.push(path.to_owned());
        }
    }
    assert!(done.len() * 4 >= files.len() * 3, "only {} of {} fixtures counted with entries", done.len(), files.len());
    check_kinds(&done);
}

/// Every file below `dir`, by its path relative to `dir`, with its bytes (file names derive from
/// the snapshot, so two writes of one savepoint have the same names).
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    crate::util::files_under(dir).into_iter().map(|p| (p.strip_prefix(dir).unwrap().to_str().unwrap().to_owned(), std::fs::read(&p).unwrap())).collect()
}

/// `convert ARGS` into `DST` on 1 and on 4 threads: the same exit code, the same stderr (the
/// target's name aside) and, when it succeeds, the same files with the same bytes.
fn convert_same(src: &str, tmp: &Path, extra: &[&str]) -> bool {
    let mut outs = Vec::new();
    for threads in ["1", "4"] {
        let dst = tmp.join(format!("t{threads}"));
        let _ = std::fs::remove_dir_all(&dst);
        let mut args = vec!["convert", src, dst.to_str().unwrap(), "--threads", threads];
        args.extend(extra);
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).replace(dst.to_str().unwrap(), "DST");
        outs.push((out.status.code(), stderr, out.status.success().then(|| tree(&dst))));
    }
    assert_eq!(outs[0].0, outs[1].0, "{src} {extra:?}: exit codes\n{}", outs[1].1);
    assert_eq!(outs[0].1, outs[1].1, "{src} {extra:?}: stderr");
    let (Some(a), Some(b)) = (&outs[0].2, &outs[1].2) else { return false };
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{src} {extra:?}: files");
    for (name, bytes) in a {
        assert!(*bytes == b[name], "{src} {extra:?}: {name} differs between 1 and 4 threads");
    }
    true
}

#[test]
fn convert_writes_the_same_savepoint_on_any_number_of_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let mut done = Vec::new();
    let files = metadata_files();
    for m in &files {
        let path = m.to_str().unwrap();
        // Files rather than inline streams: every keyed stream is compared as written.
        if convert_same(path, tmp.path(), &["--inline-threshold", "0"]) {
            done.push(path.to_owned());
        }
    }
    assert!(done.len() * 2 >= files.len(), "only {} of {} fixtures converted", done.len(), files.len());
    check_kinds(&done);
    // Keys moved to other key groups (through the external sort, also spilling to disk), and
    // Snappy-compressed key groups, on one fixture of each kind.
    for k in KINDS {
        let m = metadata_files().into_iter().find(|m| m.to_str().unwrap().contains(k) && m.to_str().unwrap().contains("flink-2.3.0")).unwrap();
        let path = m.to_str().unwrap();
        for extra in [&["--max-parallelism", "256"][..], &["--max-parallelism", "4096", "--memory", "64KiB"], &["--compression", "snappy"]] {
            assert!(convert_same(path, tmp.path(), extra), "{path} {extra:?} failed");
        }
    }
}

/// With a small memory budget the reading threads do not hold large key groups whole: they
/// encode them in parts as they read (`KeyGroupEncoder`) or gather them state by state
/// (`StateRuns`). The savepoint is byte for byte the
/// one written with whole key groups, for every fixture, uncompressed and Snappy-compressed,
/// and key groups were indeed streamed, from every kind of keyed state: RocksDB's in state order,
/// key-grouped streams (whose writers order a key group's states as they like) and changelogs
/// gathered state by state and spilled (a 4 KiB budget spills past 256 bytes).
#[test]
fn convert_streams_large_key_groups_in_parts_with_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut streamed_kinds = Vec::new();
    let mut compared = 0;
    for m in metadata_files() {
        let path = m.to_str().unwrap();
        let snappy = path.contains("flink-2.3.0");
        for compression in if snappy { &["none", "snappy"][..] } else { &["none"] } {
            let mut trees = Vec::new();
            for memory in ["256MiB", "4KiB"] {
                let dst = tmp.path().join(memory);
                let _ = std::fs::remove_dir_all(&dst);
                let out = run(&["convert", path, dst.to_str().unwrap(), "--inline-threshold", "0", "--memory", memory, "--compression", compression, "--format", "json"]);
                if !out.status.success() {
                    trees.push(None);
                    continue;
                }
                let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let streamed = report["data"]["streamed_key_groups"].as_u64().unwrap();
                if memory == "256MiB" {
                    assert_eq!(streamed, 0, "{path}: key groups of a few KiB streamed with a 256 MiB budget");
                } else if streamed > 0 {
                    streamed_kinds.push(path.to_owned());
                }
                trees.push(Some(tree(&dst)));
            }
            match (&trees[0], &trees[1]) {
                (Some(a), Some(b)) => {
                    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{path} {compression}: files");
                    for (name, bytes) in a {
                        assert!(*bytes == b[name], "{path} {compression}: {name} differs when key groups are streamed in parts");
                    }
                    compared += 1;
                }
                (None, None) => {}
                _ => panic!("{path} {compression}: converts with one budget and not with the other"),
            }
        }
    }
    assert!(compared * 2 >= metadata_files().len(), "only {compared} conversions compared");
    for k in ["rocksdb-savepoint-native", "rocksdb-checkpoint-incremental", "heap-savepoint-canonical", "heap-checkpoint", "changelog"] {
        assert!(streamed_kinds.iter().any(|p| p.contains(k)), "no key group of a {k} fixture was streamed: {streamed_kinds:?}");
    }
}

/// Overwrites 64 bytes in the middle of the largest state file of a copy of `fixture` with
/// 0xFF: a key group in the middle of a keyed-state handle fails to decode.
fn damaged_copy(fixture: &str, tmp: &Path) -> String {
    let m = metadata_files().into_iter().find(|m| m.to_str().unwrap().contains(fixture)).unwrap();
    let src = root().join(&m).parent().unwrap().to_path_buf();
    let dst = tmp.join(src.file_name().unwrap());
    copy_dir(&src, &dst);
    let largest = crate::util::largest_state_file(&dst);
    let mut bytes = std::fs::read(&largest).unwrap();
    let at = bytes.len() / 2;
    bytes[at..at + 64].fill(0xFF);
    std::fs::write(&largest, bytes).unwrap();
    dst.to_str().unwrap().to_owned()
}

#[test]
fn a_reading_threads_error_is_the_commands_error() {
    let tmp = tempfile::tempdir().unwrap();
    let snapshot = damaged_copy("flink-2.3.0/heap-savepoint-canonical/", tmp.path());
    // dump: fails on both, after the same entries, with the same message naming the file.
    let out = assert_same(&["dump", &snapshot]);
    assert!(!out.status.success(), "the damage went unnoticed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&snapshot), "{stderr}");
    assert!(!out.stdout.is_empty(), "entries before the damaged key group are printed");
    // verify: the same findings on both, and it is not sound.
    let out = assert_same(&["verify", &snapshot, "--level", "full", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["data"]["sound"], false, "{report:#}");
    // export: fails with the same error, and leaves no state file behind.
    for threads in ["1", "4"] {
        let dir = tmp.path().join(format!("export-{threads}"));
        let out = run(&["export", &snapshot, "--to", dir.to_str().unwrap(), "--threads", threads]);
        assert!(!out.status.success(), "export on {threads} threads");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&snapshot), "{err}");
        let left: Vec<_> = crate::util::files_under(&dir);
        assert!(left.is_empty(), "export on {threads} threads left {left:?}");
    }
    // convert: fails on both with the same error, and publishes no savepoint.
    let conv = tmp.path().join("convert");
    std::fs::create_dir_all(&conv).unwrap();
    assert!(!convert_same(&snapshot, &conv, &[]), "convert of a damaged snapshot succeeded");
    assert!(!conv.join("t1").exists() && !conv.join("t4").exists());
}

