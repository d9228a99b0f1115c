//! `flinksnap relocate` on every real-Flink fixture snapshot: the copy holds every referenced
//! byte, only relative handles, reads back to the same entries after being moved, and the source
//! is left untouched. (That real Flink restores the copies is `cargo xtask interop`.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use flinksnap::metadata::handles::{KeyedStateHandle, StreamStateHandle};
use flinksnap::metadata::CheckpointMetadata;
use serde_json::Value as J;

use crate::dump::{dump_args, normalise, readable};
use crate::inspect::{copy_dir, fixtures};
use crate::util::{flinksnap, flinksnap_ok, root};

/// Every file below `dir` with its size and modification time.
fn tree(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, (u64, SystemTime)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                walk(&e.path(), out);
            } else {
                out.insert(e.path(), (m.len(), m.modified().unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out);
    out
}

/// Every stream handle of `m`'s subtask states, coordinator states aside.
fn streams(m: &CheckpointMetadata) -> Vec<StreamStateHandle> {
    fn keyed(k: &KeyedStateHandle, out: &mut Vec<StreamStateHandle>) {
        out.extend(k.streams().into_iter().map(|(_, s)| s.clone()));
    }
    let mut out = Vec::new();
    for op in &m.operators {
        for st in op.subtasks.iter().filter_map(|s| s.state.as_ref()) {
            for o in [&st.managed_operator_state, &st.raw_operator_state].into_iter().flatten() {
                assert_ne!(o.type_byte, 17, "a file-merging operator handle keeps absolute directories");
                out.push(o.delegate.clone());
            }
            for k in [&st.managed_keyed_state, &st.raw_keyed_state].into_iter().flatten() {
                keyed(k, &mut out);
            }
            for c in st.input_channel_state.iter().chain(&st.result_subpartition_state) {
                out.extend(c.delegate.clone());
            }
        }
    }
    out
}

#[test]
fn every_fixture_relocates_and_reads_back_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut dumped = 0;
    for (i, fx) in fixtures().iter().enumerate() {
        let name = fx.name();
        let before = tree(&fx.case_dir);
        let dst = tmp.path().join(format!("r{i}"));
        let dst_s = dst.to_str().unwrap();
        let out = flinksnap_ok(&["relocate", &fx.path(), dst_s, "--format", "json"]);
        let report: J = serde_json::from_str(&out).unwrap();
        let report = &report["data"];
        assert_eq!(tree(&fx.case_dir), before, "{name}: the source changed");

        // Every copied file holds exactly the bytes it was copied from.
        for f in report["files"].as_array().unwrap() {
            let src = std::fs::read(root().join(f["source"].as_str().unwrap())).unwrap();
            let want = match f["segment"].as_array() {
                Some(r) => {
                    let (start, len) = (r[0].as_u64().unwrap() as usize, r[1].as_u64().unwrap() as usize);
                    src[start..start + len].to_vec()
                }
                None => src,
            };
            let got = std::fs::read(dst.join(f["target"].as_str().unwrap())).unwrap();
            assert!(got == want, "{name}: {} differs from its source", f["target"]);
        }

        // Moved elsewhere, it is still whole: only relative handles, every file inside it.
        let moved = tmp.path().join(format!("moved{i}"));
        std::fs::rename(&dst, &moved).unwrap();
        let moved_s = moved.to_str().unwrap();
        let src_meta = CheckpointMetadata::parse(&std::fs::read(root().join(fx.path()).join("_metadata")).unwrap()).unwrap();
        let meta = CheckpointMetadata::parse(&std::fs::read(moved.join("_metadata")).unwrap()).unwrap();
        assert_eq!(meta.version, src_meta.version.max(3), "{name}");
        assert_eq!(meta.checkpoint_id, src_meta.checkpoint_id, "{name}");
        assert_eq!(meta.properties_raw, src_meta.properties_raw, "{name}: checkpoint properties changed");
        let ids = |m: &CheckpointMetadata| m.operators.iter().map(|o| (o.operator_id, o.name.clone(), o.uid.clone(), o.max_parallelism)).collect::<Vec<_>>();
        assert_eq!(ids(&meta), ids(&src_meta), "{name}");
        for s in streams(&meta) {
            assert!(
                matches!(s, StreamStateHandle::RelativeFile { .. } | StreamStateHandle::ByteStream { .. } | StreamStateHandle::EmptySegmentFile),
                "{name}: {s:?} is not relative"
            );
        }
        let inspect: J = serde_json::from_str(&flinksnap_ok(&["inspect", moved_s, "--format", "json"])).unwrap();
        let props = &inspect["data"]["properties"];
        assert_eq!((props["self_contained"].as_bool(), props["relocatable"].as_bool()), (Some(true), Some(true)), "{name}");
        let verify = flinksnap(&["verify", moved_s]);
        assert_eq!(verify.status.code(), Some(0), "{name}: {}", String::from_utf8_lossy(&verify.stdout));

        // The same entries as the job wrote.
        if readable(fx) {
            let args = dump_args(fx, moved_s);
            let out = flinksnap_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
            let expected = crate::util::read_fixture_text(&fx.case_dir.join(fx.snapshot["expected"].as_str().unwrap())).unwrap();
            let ((ours, _), (theirs, _)) = (normalise(&out), normalise(&expected));
            let differ = theirs.keys().chain(ours.keys()).filter(|k| ours.get(*k) != theirs.get(*k)).take(3).collect::<Vec<_>>();
            assert!(differ.is_empty(), "{name}: relocated entries differ from the job's, e.g. {differ:#?}");
            // TTL timestamps too, exactly: the source read the same way.
            let args = dump_args(fx, &fx.path());
            let source = flinksnap_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
            let sorted = |s: &str| {
                let mut v: Vec<String> = s.lines().map(str::to_owned).collect();
                v.sort();
                v
            };
            assert!(sorted(&out) == sorted(&source), "{name}: relocated dump differs from the source's");
            dumped += 1;
        }
        checked += 1;
    }
    // The fixture job's snapshots (testdata/flink-*) that Flink can restore; testdata/serializers
    // has its own job and checks (tests/oracle.rs).
    // (the SQL cases, testdata/flink-*/sql-*, have their own jobs and checks: tests/sql.rs)
    let job_snapshots = crate::util::metadata_files()
        .iter()
        .filter(|p| p.starts_with("testdata") && p.iter().nth(1).is_some_and(|c| c.to_string_lossy().starts_with("flink-")))
        .filter(|p| !p.iter().nth(2).is_some_and(|c| c.to_string_lossy().starts_with("sql-")))
        .count();
    assert_eq!(checked, job_snapshots - crate::inspect::unsound_snapshots(), "every fixture snapshot Flink can restore");
    assert!(dumped >= 60, "only {dumped} relocated fixtures dumped");
}

#[test]
fn refuses_to_overwrite_or_nest_and_leaves_nothing_on_failure() {
    let fx = fixtures().into_iter().find(|f| f.case["case"] == "rocksdb-checkpoint-incremental" && f.snapshot["checkpoint_id"] == 4).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("dst");
    let dst_s = dst.to_str().unwrap();
    // A dry run plans the same files and writes nothing.
    let files = |json: &str| serde_json::from_str::<J>(json).unwrap()["data"]["files"].clone();
    let planned = files(&flinksnap_ok(&["relocate", &fx.path(), dst_s, "--dry-run", "--format", "json"]));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "a dry run wrote something");
    let done = files(&flinksnap_ok(&["relocate", &fx.path(), dst_s, "--format", "json"]));
    assert_eq!(planned, done);
    assert!(planned.as_array().unwrap().len() > 10);
    let again = flinksnap(&["relocate", &fx.path(), dst_s]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists (use --force"), "{}", String::from_utf8_lossy(&again.stderr));
    flinksnap_ok(&["relocate", &fx.path(), dst_s, "--force"]);

    // A job directory with the snapshot's shared files: the target may not lie inside the source.
    let job = tmp.path().join("job");
    copy_dir(&fx.case_dir, &job);
    let snap = job.join(fx.snapshot["path"].as_str().unwrap());
    let inside = snap.join("copy");
    let nested = flinksnap(&["relocate", snap.to_str().unwrap(), inside.to_str().unwrap()]);
    assert_eq!(nested.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nested.stderr).contains("outside the source"));

    // A referenced file gone (a native savepoint: relative paths, so nothing else can stand in
    // for it): the error names it, and no target (or temporary directory) is left.
    let native = fixtures().into_iter().find(|f| f.case["case"] == "rocksdb-savepoint-native").unwrap();
    let sp = tmp.path().join("sp");
    copy_dir(&root().join(native.path()), &sp);
    let victim = std::fs::read_dir(&sp).unwrap().flatten().map(|e| e.path()).find(|p| !p.ends_with("_metadata")).unwrap();
    std::fs::remove_file(&victim).unwrap();
    let out_dir = tmp.path().join("out");
    let failed = flinksnap(&["relocate", sp.to_str().unwrap(), out_dir.join("x").to_str().unwrap()]);
    assert_eq!(failed.status.code(), Some(2));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains(victim.file_name().unwrap().to_str().unwrap()), "{err}");
    let left: Vec<_> = std::fs::read_dir(&out_dir).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}
