//! RocksDB native snapshots (incremental checkpoints, native savepoints, native full
//! checkpoints): damaged and missing files are named, the working directory is removed on
//! success and on error, the snapshot is never written to, and selections clip the scans. That
//! every fixture dumps to its expected contents is in `dump.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use flinksnap::metadata::handles::{IncrementalRemoteKeyedStateHandle, KeyedStateHandle};
use flinksnap::snapshot::Snapshot;
use flinksnap::storage::LocalStorage;
use serde_json::Value as J;

use crate::inspect::{copy_dir, fixtures, Fixture};
use crate::util::{flinksnap_ok, root};

/// Whether a fixture keeps keyed state in RocksDB's native format.
pub fn is_rocksdb_native(fx: &Fixture) -> bool {
    let s = fx.open();
    s.metadata.operators.iter().flat_map(|o| &o.subtasks).any(|st| {
        st.state.as_ref().is_some_and(|s| matches!(s.managed_keyed_state, Some(KeyedStateHandle::IncrementalRemote(_))))
    })
}

fn fixture(version: &str, case: &str) -> Fixture {
    fixtures()
        .into_iter()
        .rfind(|f| f.case["flink_version"] == version && f.case["case"] == case)
        .unwrap_or_else(|| panic!("no fixture {version} {case}"))
}

/// A private copy of a fixture: the case's whole directory (so incremental checkpoints find
/// `shared/`), and the snapshot directory inside it.
struct Copy {
    _tmp: tempfile::TempDir,
    snapshot: PathBuf,
}

fn copy(fx: &Fixture) -> Copy {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("case");
    copy_dir(&fx.case_dir, &dst);
    let snapshot = dst.join(fx.snapshot["path"].as_str().unwrap());
    Copy { _tmp: tmp, snapshot }
}

/// The RocksDB handles of a snapshot: its own, and those a changelog handle materialized.
fn rocksdb_handles(s: &Snapshot) -> Vec<&IncrementalRemoteKeyedStateHandle> {
    s.metadata
        .operators
        .iter()
        .flat_map(|o| &o.subtasks)
        .filter_map(|st| st.state.as_ref().and_then(|s| s.managed_keyed_state.as_ref()))
        .flat_map(|k| match k {
            KeyedStateHandle::IncrementalRemote(h) => vec![h],
            KeyedStateHandle::Changelog(c) => c
                .materialized
                .iter()
                .filter_map(|m| match m {
                    KeyedStateHandle::IncrementalRemote(h) => Some(h),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// The meta-data files of the RocksDB handles a changelog checkpoint at `dir` materialized,
/// resolved.
pub fn changelog_rocksdb_meta_files(dir: &Path) -> Vec<PathBuf> {
    let s = Snapshot::open(Arc::new(LocalStorage), dir.to_str().unwrap()).unwrap();
    let out: Vec<PathBuf> = rocksdb_handles(&s)
        .into_iter()
        .map(|h| in_copy(&s, h.meta_state_handle.as_ref().unwrap(), dir))
        .collect();
    assert!(!out.is_empty(), "{}: no RocksDB materialization", dir.display());
    out
}

/// Where the file of `handle` is in the copy at `dir`. An absolute path that still exists where
/// Flink wrote it (e.g. while the interop has a chain placed there) is mapped into the copy too:
/// the tests damage these files and must never touch anything outside their copy.
fn in_copy(s: &Snapshot, handle: &flinksnap::metadata::handles::StreamStateHandle, dir: &Path) -> PathBuf {
    let r = s.resolve(handle).unwrap().unwrap();
    let location = if r.relative || r.rebased { r.location } else { s.rebase(&r.location).unwrap() };
    let path = PathBuf::from(location.as_str());
    let copy_root = dir.parent().unwrap().parent().unwrap();
    assert!(path.starts_with(copy_root), "{} lies outside the copy {}", path.display(), copy_root.display());
    path
}

/// The first RocksDB handle of the snapshot at `dir` (or, in a changelog checkpoint, of its
/// materialized part), with every file resolved: local name → path of the snapshot file in the
/// copy at `dir`.
fn rocksdb_files(dir: &Path) -> BTreeMap<String, PathBuf> {
    let s = Snapshot::open(Arc::new(LocalStorage), dir.to_str().unwrap()).unwrap();
    let h: &IncrementalRemoteKeyedStateHandle = rocksdb_handles(&s).into_iter().next().expect("a RocksDB handle");
    h.shared_state
        .iter()
        .chain(&h.private_state)
        .map(|f| (f.local_path.clone(), in_copy(&s, f.handle.as_ref().unwrap(), dir)))
        .collect()
}

/// Runs flinksnap with its own empty temporary directory and returns the output and whatever
/// was left in that directory afterwards.
fn run_with_tmpdir(args: &[&str]) -> (Output, Vec<PathBuf>) {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flinksnap"))
        .args(args)
        .current_dir(root())
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let left = std::fs::read_dir(tmp.path()).unwrap().flatten().map(|e| e.path()).collect();
    (out, left)
}

/// `dump` fails with exit code 2, names `file`, does not panic and leaves no working directory.
fn assert_named_failure(dir: &Path, file: &Path, what: &str) {
    let (out, left) = run_with_tmpdir(&["dump", dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: not noticed; stderr: {stderr}");
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(stderr.contains(name), "{what}: the message does not name {name}: {stderr}");
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert!(left.is_empty(), "{what}: working directory left behind: {left:?}");
}

/// Every kind of damage to an SST and to the MANIFEST, in one copy of `fx`, each undone before
/// the next.
fn damage_is_named(fx: &Fixture) {
    let c = copy(fx);
    let files = rocksdb_files(&c.snapshot);
    let sst = files.iter().find(|(n, _)| n.ends_with(".sst")).map(|(_, p)| p.clone()).expect("an SST");
    let manifest = files.iter().find(|(n, _)| n.starts_with("MANIFEST-")).map(|(_, p)| p.clone()).expect("a MANIFEST");
    let current = files.get("CURRENT").expect("CURRENT").clone();
    for (label, victim) in [("SST", &sst), ("MANIFEST", &manifest), ("CURRENT", &current)] {
        let orig = std::fs::read(victim).unwrap();
        for cut in [0, orig.len() / 2, orig.len() - 1] {
            std::fs::write(victim, &orig[..cut]).unwrap();
            assert_named_failure(&c.snapshot, victim, &format!("{}: {label} cut to {cut} bytes", fx.name()));
        }
        std::fs::remove_file(victim).unwrap();
        assert_named_failure(&c.snapshot, victim, &format!("{}: {label} deleted", fx.name()));
        std::fs::write(victim, &orig).unwrap();
    }
    // Same size, other bytes: RocksDB's block checksums notice, and the message names the
    // snapshot file, not RocksDB's working copy. Byte 10 lies in the first data block; the last
    // bytes are the footer's magic number.
    let orig = std::fs::read(&sst).unwrap();
    for at in [10, orig.len() - 1] {
        let mut d = orig.clone();
        d[at] ^= 0x55;
        std::fs::write(&sst, &d).unwrap();
        assert_named_failure(&c.snapshot, &sst, &format!("{}: SST byte {at} flipped", fx.name()));
    }
    std::fs::write(&sst, &orig).unwrap();
    // A MANIFEST whose bytes are damaged in place (a record's checksum no longer matches).
    let orig = std::fs::read(&manifest).unwrap();
    let mut d = orig.clone();
    let at = d.len() / 2;
    d[at] ^= 0x55;
    std::fs::write(&manifest, &d).unwrap();
    assert_named_failure(&c.snapshot, &manifest, &format!("{}: MANIFEST byte {at} flipped", fx.name()));
    std::fs::write(&manifest, &orig).unwrap();
    // Restored, it reads again.
    flinksnap_ok(&["dump", c.snapshot.to_str().unwrap()]);
}

#[test]
fn damaged_files_of_an_incremental_checkpoint_are_named() {
    // FRocksDB 5.17, 6.20.3 and 8.10; shared and private files are absolute handles under shared/.
    for v in ["1.13.6", "1.15.4", "2.3.0"] {
        damage_is_named(&fixture(v, "rocksdb-checkpoint-incremental"));
    }
}

#[test]
fn damaged_files_of_native_savepoints_and_full_checkpoints_are_named() {
    // Relative handles: SSTs in the shared list (savepoint) or the private list (full).
    damage_is_named(&fixture("1.15.4", "rocksdb-savepoint-native"));
    damage_is_named(&fixture("2.3.0", "rocksdb-checkpoint-full"));
}

#[test]
fn damaged_materialized_rocksdb_files_of_a_changelog_checkpoint_are_named() {
    // The changelog reader opens the materialization like any RocksDB handle: the same messages,
    // and no working directory left behind on error.
    damage_is_named(&fixture("2.3.0", "rocksdb-changelog-checkpoint"));
}

#[test]
fn the_working_directory_is_removed_and_the_snapshot_untouched() {
    // 1.13.6: FRocksDB 5.17 tables get a new footer and the MANIFEST new sizes in the working
    // copy; the hard links to the snapshot's tables must be replaced, never written through.
    for fx in [
        fixture("2.3.0", "rocksdb-checkpoint-incremental"),
        fixture("1.15.4", "rocksdb-savepoint-native"),
        fixture("1.13.6", "rocksdb-checkpoint-incremental"),
        fixture("2.3.0", "rocksdb-changelog-checkpoint"),
    ] {
        let c = copy(&fx);
        let before = tree(c.snapshot.parent().unwrap());
        let (out, left) = run_with_tmpdir(&["dump", c.snapshot.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(!out.stdout.is_empty());
        assert!(left.is_empty(), "{}: working directory left behind: {left:?}", fx.name());
        assert_eq!(tree(c.snapshot.parent().unwrap()), before, "{}: the snapshot changed", fx.name());
    }
}

/// Every file below `dir` with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn dump(path: &str, extra: &[&str]) -> Vec<J> {
    let mut args = vec!["dump", path];
    args.extend_from_slice(extra);
    flinksnap_ok(&args).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn key_group_and_state_selections_clip_the_scan() {
    // Two subtasks, 2-byte key-group prefixes: a key-group range inside one subtask, one
    // spanning both, and a state filter.
    let v = "2.3.0";
    let fx = fixture(v, "rocksdb-checkpoint-incremental-p2-maxp32768");
    let path = fx.path();
    let all = dump(&path, &[]);
    let keyed: Vec<&J> = all.iter().filter(|e| e["key_group"].is_u64()).collect();
    assert!(keyed.iter().any(|e| e["key_group"].as_u64().unwrap() < 16384));
    assert!(keyed.iter().any(|e| e["key_group"].as_u64().unwrap() >= 16384));
    for (lo, hi) in [(0u64, 9000u64), (10000, 20000), (16384, 32767), (300, 300)] {
        let range = format!("{lo}..={hi}");
        let got = dump(&path, &["--key-group", &range]);
        let want: Vec<&&J> = keyed.iter().filter(|e| (lo..=hi).contains(&e["key_group"].as_u64().unwrap())).collect();
        assert_eq!(got.len(), want.len(), "{} {range}", fx.name());
        assert!(got.iter().all(|e| (lo..=hi).contains(&e["key_group"].as_u64().unwrap())), "{} {range}", fx.name());
    }
    let list = dump(&path, &["--state", "list"]);
    assert!(!list.is_empty());
    assert!(list.iter().all(|e| e["state"] == "list"));
    assert_eq!(list.len(), all.iter().filter(|e| e["state"] == "list").count());
}

#[test]
fn entries_come_in_key_group_order() {
    // Key group by key group, as every keyed source reads (the canonical stream's order).
    let fx = fixture("2.3.0", "rocksdb-savepoint-native");
    let all = dump(&fx.path(), &[]);
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    let mut keyed = 0;
    for e in all.iter().filter(|e| e["key_group"].is_u64()) {
        let op = e["operator_id"].as_str().unwrap().to_owned();
        let kg = e["key_group"].as_u64().unwrap();
        let prev = last.insert(op.clone(), kg).unwrap_or(0);
        assert!(prev <= kg, "operator {op}: key group {kg} after {prev}");
        keyed += 1;
    }
    assert!(keyed > 100, "{keyed} keyed entries");
}
