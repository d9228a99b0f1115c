//! `flinksnap dump` equals what the real-Flink job wrote, for every heap and canonical fixture of
//! every Flink version: as a set of entries, TTL timestamps present and inside the window in
//! which the job made its TTL updates.

use std::collections::BTreeMap;

use serde_json::Value as J;

use crate::inspect::{copy_dir, fixtures, Fixture};
use crate::util::{flinksnap, flinksnap_ok, root};

/// Whether flinksnap reads this fixture's keyed state yet: heap snapshots and canonical
/// savepoints, changelog checkpoints (materialized on the HashMap or the RocksDB backend), the
/// canonical-stream full checkpoints RocksDB wrote up to Flink 1.15, and RocksDB native
/// snapshots (native savepoints, native full checkpoints, incremental checkpoints).
pub(crate) fn readable(fx: &Fixture) -> bool {
    let c = &fx.case;
    c["backend"] == "hashmap"
        || c["format"] == "canonical"
        || c["format"] == "changelog"
        || (c["format"] == "full" && ["1.13.6", "1.14.6", "1.15.4"].iter().any(|v| c["flink_version"] == *v))
        || crate::rocksdb_native::is_rocksdb_native(fx)
}

/// Entries as a multiset of canonical JSON strings, with TTL timestamps taken out and returned
/// separately.
pub(crate) fn normalise(lines: &str) -> (BTreeMap<String, usize>, Vec<i64>) {
    let mut set = BTreeMap::new();
    let mut ttl = Vec::new();
    for l in lines.lines().filter(|l| !l.trim().is_empty()) {
        let mut j: J = serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}"));
        if let Some(t) = j.as_object_mut().unwrap().remove("ttl_timestamp") {
            ttl.push(t.as_i64().unwrap());
            j.as_object_mut().unwrap().insert("ttl_timestamp".into(), J::Bool(true));
        }
        *set.entry(sorted(&j).to_string()).or_default() += 1;
    }
    (set, ttl)
}

fn sorted(j: &J) -> J {
    match j {
        J::Object(m) => {
            let mut v: Vec<_> = m.iter().collect();
            v.sort_by(|a, b| a.0.cmp(b.0));
            J::Object(v.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
        }
        J::Array(a) => J::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

pub(crate) fn dump_args(fx: &Fixture, path: &str) -> Vec<String> {
    let mut args = vec!["dump".to_owned(), path.to_owned()];
    for u in fx.uids() {
        args.extend(["--uid".to_owned(), u]);
    }
    args
}

#[test]
fn dump_equals_expected_contents() {
    let mut checked = 0;
    for fx in fixtures().iter().filter(|f| readable(f)) {
        let name = fx.name();
        let args = dump_args(fx, &fx.path());
        let out = flinksnap_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let expected = crate::util::read_fixture_text(&fx.case_dir.join(fx.snapshot["expected"].as_str().unwrap())).unwrap();
        let (ours, ttl) = normalise(&out);
        let (theirs, theirs_ttl) = normalise(&expected);
        let missing: Vec<_> = theirs.keys().filter(|k| ours.get(*k) != theirs.get(*k)).take(5).collect();
        let extra: Vec<_> = ours.keys().filter(|k| ours.get(*k) != theirs.get(*k)).take(5).collect();
        assert!(missing.is_empty() && extra.is_empty(), "{name}:\nexpected, not dumped: {missing:#?}\ndumped, not expected: {extra:#?}");
        assert_eq!(ttl.len(), theirs_ttl.len(), "{name}");
        assert!(!ttl.is_empty(), "{name}: the job keeps TTL state");
        let window = &fx.case["ttl_window_ms"];
        let (lo, hi) = (window[0].as_i64().unwrap(), window[1].as_i64().unwrap());
        for t in ttl {
            assert!((lo..=hi).contains(&t), "{name}: TTL timestamp {t} outside the job's window {lo}..={hi}");
        }
        checked += 1;
    }
    assert!(checked >= 55, "only {checked} readable fixtures");
}

#[test]
fn every_kind_of_state_is_covered() {
    // The fixtures exercise every kind the dump format names, and opaque values never appear
    // for the serializers the job uses.
    let fx = fixtures().into_iter().find(|f| f.case["format"] == "canonical" && f.case["flink_version"] == "2.3.0").unwrap();
    let out = flinksnap(&dump_args(&fx, &fx.path()).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let kinds: std::collections::BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<J>(l).unwrap()["kind"].as_str().unwrap().to_owned())
        .collect();
    for k in ["value", "list", "map", "reducing", "aggregating", "timer", "operator_list", "operator_union", "broadcast"] {
        assert!(kinds.contains(k), "no {k} entries in {}", fx.name());
    }
}

#[test]
fn filters_select_operator_state_and_key_groups() {
    let fx = fixtures().into_iter().find(|f| f.case["format"] == "canonical" && f.case["flink_version"] == "2.3.0").unwrap();
    let path = fx.path();
    let all: Vec<J> = flinksnap_ok(&["dump", &path]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let one: Vec<J> = flinksnap_ok(&["dump", &path, "--operator", "keyed-string", "--state", "ttl-value"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want: Vec<&J> = all.iter().filter(|e| e["operator_uid"] == "keyed-string" && e["state"] == "ttl-value").collect();
    assert!(!one.is_empty());
    assert_eq!(one.iter().collect::<Vec<_>>(), want);
    let kg: Vec<J> = flinksnap_ok(&["dump", &path, "--key-group", "0..=63"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!kg.is_empty());
    assert!(kg.iter().all(|e| e["key_group"].as_u64().is_some_and(|k| k <= 63)));
    assert_eq!(kg.len(), all.iter().filter(|e| e["key_group"].as_u64().is_some_and(|k| k <= 63)).count());
    // CSV has a header and one row per entry.
    let csv = flinksnap_ok(&["dump", &path, "--format", "csv"]);
    assert_eq!(csv.lines().next().unwrap(), "operator_id,operator_uid,state,kind,key_group,key,namespace,user_key,value,ttl_timestamp");
    let unknown = flinksnap(&["dump", &path, "--operator", "no-such-uid"]);
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn corrupt_state_files_give_file_and_offset() {
    // Truncate and flip bytes in every state file of a canonical savepoint and of a heap
    // checkpoint: dump fails with the file and an offset, or (a flipped value byte) decodes
    // something else; it never panics.
    let mut rng = crate::util::Rng(0xdead_beef);
    // Not the unaligned checkpoint: dump does not read its in-flight channel data, so a cut in
    // those files goes unnoticed, rightly. RocksDB's files are damaged in tests/rocksdb_native.rs:
    // its checksum errors carry no byte offset, and its OPTIONS file is never read.
    // Changelog checkpoints keep their files beside the snapshot directory (`changelog_files_damaged`).
    let files_in_snapshot_dir = |f: &Fixture| readable(f) && !crate::rocksdb_native::is_rocksdb_native(f) && f.case["format"] != "changelog";
    for fx in fixtures().into_iter().filter(|f| files_in_snapshot_dir(f) && f.case["flink_version"] == "2.3.0" && f.case["parallelism"] == 1 && f.case["unaligned"] != true) {
        let tmp = tempfile::tempdir().unwrap();
        let src = root().join(fx.path());
        let dst = tmp.path().join(src.file_name().unwrap());
        copy_dir(&src, &dst);
        let files: Vec<_> = std::fs::read_dir(&dst).unwrap().flatten().map(|e| e.path()).filter(|p| p.file_name().unwrap() != "_metadata").collect();
        for f in files {
            let len = std::fs::metadata(&f).unwrap().len() as usize;
            damage_file(&mut rng, &fx.name(), &f, &dst, &[len / 3, len / 2, len - 1], 20);
        }
    }
}

/// Cuts `file` at each of `cuts` (dump of `snapshot` must fail naming the file) and flips a
/// random bit `flips` times (dump fails naming a byte offset, or decodes something else); never
/// a panic. The file is restored.
fn damage_file(rng: &mut crate::util::Rng, name: &str, file: &std::path::Path, snapshot: &std::path::Path, cuts: &[usize], flips: usize) {
    let orig = std::fs::read(file).unwrap();
    let dump = || {
        let out = flinksnap(&["dump", snapshot.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        (out.status.code(), stderr)
    };
    for &n in cuts {
        std::fs::write(file, &orig[..n]).unwrap();
        let (code, stderr) = dump();
        assert_eq!(code, Some(2), "{name}: cut {} at {n} was not noticed", file.display());
        assert!(stderr.contains(file.file_name().unwrap().to_str().unwrap()), "{stderr}");
    }
    for _ in 0..flips {
        let mut d = orig.clone();
        let i = rng.below(d.len() as u64) as usize;
        d[i] ^= 1 << rng.below(8);
        std::fs::write(file, &d).unwrap();
        let (code, stderr) = dump();
        assert!(matches!(code, Some(0) | Some(2)), "{stderr}");
        if code == Some(2) {
            // A typed position: a byte of the file, of a decompressed Snappy stream, or of one
            // stored RocksDB key or value.
            let placed = ["byte offset", "snappy", " of the stored key", " of the stored value"].iter().any(|p| stderr.contains(p));
            assert!(placed, "{name}: {stderr}");
            // A flip that turns a serializer class of the materialization into one flinksnap
            // cannot interpret is no corruption it can prove: the replay is refused as
            // unsupported, placed at the state-change record it cannot apply.
            if stderr.contains("cannot interpret") {
                assert!(stderr.contains("unsupported") || stderr.contains("cannot be applied"), "{name}: {stderr}");
                assert!(stderr.contains("/dstl/") && stderr.contains("state change of key group"), "{name}: {stderr}");
            }
        }
    }
    std::fs::write(file, &orig).unwrap();
}

/// A changelog checkpoint's state-change log (DSTL) file and materialized files, cut and with
/// flipped bytes: dump fails naming the file and a byte offset, or decodes something else; it
/// never panics. The files live beside `chk-N` (`dstl/`, `taskowned/`), so the job directory is
/// copied. Of a RocksDB materialization only the meta-data files are damaged here: RocksDB's own
/// files give checksum errors without byte offsets, and its OPTIONS file is never read
/// (`rocksdb_native::damaged_materialized_rocksdb_files_of_a_changelog_checkpoint_are_named`).
#[test]
fn changelog_files_damaged() {
    let mut rng = crate::util::Rng(0xc4a9_6e10);
    let mut checked = 0;
    for fx in fixtures().into_iter().filter(|f| f.case["format"] == "changelog" && f.case["changelog_storage"] == "filesystem") {
        let tmp = tempfile::tempdir().unwrap();
        let chk = root().join(fx.path());
        let job = chk.parent().unwrap();
        let dst_job = tmp.path().join(job.file_name().unwrap());
        copy_dir(job, &dst_job);
        let dst = dst_job.join(chk.file_name().unwrap());
        let mut files: Vec<_> = if fx.case["backend"] == "rocksdb" {
            let mut f: Vec<_> = std::fs::read_dir(dst_job.join("dstl")).unwrap().flatten().map(|e| e.path()).collect();
            f.extend(crate::rocksdb_native::changelog_rocksdb_meta_files(&dst));
            f
        } else {
            ["dstl", "taskowned"].iter().flat_map(|d| std::fs::read_dir(dst_job.join(d)).unwrap().flatten().map(|e| e.path())).collect()
        };
        files.sort();
        for f in files {
            let len = std::fs::metadata(&f).unwrap().len() as usize;
            let cuts = [1, len / 3, len / 2, len - 1];
            damage_file(&mut rng, &fx.name(), &f, &dst, &cuts, 30);
            checked += cuts.len();
        }
    }
    assert!(checked >= 16, "only {checked} cuts checked");
}

/// `--origin` names where each entry was read: a state file of the snapshot (or `_metadata`)
/// with a typed position; for the changelog replay, the state-change file of the last change;
/// nothing for RocksDB tables.
#[test]
fn origin_names_file_and_position() {
    let find = |case: &str| fixtures().into_iter().find(|f| f.case["case"] == case && f.case["flink_version"] == "2.3.0").unwrap();
    let lines = |fx: &Fixture| -> Vec<J> {
        let mut args = dump_args(fx, &fx.path());
        args.push("--origin".into());
        flinksnap_ok(&args.iter().map(String::as_str).collect::<Vec<_>>()).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    // Heap checkpoint, compressed: keyed entries in decompressed key groups, files in chk-N.
    let heap = lines(&find("heap-checkpoint-compressed"));
    assert!(heap.len() > 100);
    for j in &heap {
        let file = j["origin"]["file"].as_str().unwrap_or_else(|| panic!("{j}"));
        assert!(std::path::Path::new(file).exists(), "{j}");
        let kind = j["origin"]["position"]["kind"].as_str().unwrap();
        if j["key_group"].is_null() {
            assert!(matches!(kind, "file_offset" | "decompressed_offset"), "{j}");
        } else {
            assert_eq!(kind, "decompressed_offset", "{j}");
            assert!(j["origin"]["position"]["block"].as_u64().unwrap() > 0, "{j}");
        }
    }
    // RocksDB native: the tables are RocksDB's business.
    let native = lines(&find("rocksdb-savepoint-native"));
    assert!(native.iter().filter(|j| !j["key_group"].is_null()).all(|j| j["origin"]["file"].is_null() && j["origin"]["position"].is_null()));
    // Changelog: the replay's results point into the state-change log.
    let changelog = lines(&find("heap-changelog-checkpoint"));
    let from_log = changelog.iter().filter(|j| j["origin"]["file"].as_str().is_some_and(|f| f.contains("/dstl/"))).count();
    assert!(from_log > 0, "no entry points into the state-change log");
    // Other formats have no place for it.
    let fx = find("heap-checkpoint");
    let out = flinksnap(&["dump", &fx.path(), "--origin", "--format", "csv"]);
    assert_eq!(out.status.code(), Some(2));
}
