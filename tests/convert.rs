//! `flinksnap convert` on every readable real-Flink fixture: the written savepoint reads back as
//! exactly the source's entries (through flinksnap's own readers; `cargo xtask interop` checks
//! the same with real Flink), keys move to the key groups Flink assigns when the max parallelism
//! changes, and the target is written safely (never the source, temporary name, `--force`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use flinksnap::metadata::handles::{KeyedStateHandle, StreamStateHandle};
use flinksnap::metadata::CheckpointMetadata;
use flinksnap::writers::metadata::write_metadata_v3;
use serde_json::Value as J;

use crate::inspect::{copy_dir, fixtures, Fixture};
use crate::util::{flinksnap, flinksnap_ok, metadata_files, root};

/// Fixtures whose keyed state the readers of this build understand (as in `tests/dump.rs`).
fn readable(fx: &Fixture) -> bool {
    let c = &fx.case;
    c["backend"] == "hashmap"
        || c["format"] == "canonical"
        || c["format"] == "changelog"
        || (c["format"] == "full" && ["1.13.6", "1.14.6", "1.15.4"].iter().any(|v| c["flink_version"] == *v))
}

fn dump(fx: &Fixture, path: &str) -> Vec<J> {
    let mut args = vec!["dump".to_owned(), path.to_owned()];
    for u in fx.uids() {
        args.extend(["--uid".to_owned(), u]);
    }
    flinksnap_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
        .collect()
}

/// Entries as a sorted multiset of JSON strings, optionally without key groups.
fn multiset(entries: &[J], drop_key_group: bool) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in entries {
        let mut e = e.clone();
        if drop_key_group {
            e.as_object_mut().unwrap().remove("key_group");
        }
        *m.entry(e.to_string()).or_default() += 1;
    }
    m
}

fn assert_same(name: &str, a: &BTreeMap<String, usize>, b: &BTreeMap<String, usize>) {
    let missing: Vec<_> = a.keys().filter(|k| a.get(*k) != b.get(*k)).take(5).collect();
    let extra: Vec<_> = b.keys().filter(|k| a.get(*k) != b.get(*k)).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{name}:\nsource, not converted: {missing:#?}\nconverted, not source: {extra:#?}");
}

fn convert(src: &str, dst: &Path, extra: &[&str]) -> String {
    let mut args = vec!["convert", src, dst.to_str().unwrap()];
    args.extend_from_slice(extra);
    flinksnap_ok(&args)
}

#[test]
fn convert_then_dump_equals_dump_of_the_source() {
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    // Unaligned checkpoints with in-flight data are refused (tested below): a savepoint cannot
    // carry channel state.
    for (i, fx) in fixtures().iter().filter(|f| readable(f) && f.case["unaligned"] != true).enumerate() {
        let src = dump(fx, &fx.path());
        assert!(!src.is_empty(), "{}", fx.name());
        // Alternate compression and inline threshold, so both paths meet every format.
        let compression = if i % 2 == 0 { "none" } else { "snappy" };
        let threshold = if i % 3 == 0 { "0" } else { "20480" };
        let dst = tmp.path().join(format!("sp-{i}"));
        convert(&fx.path(), &dst, &["--compression", compression, "--inline-threshold", threshold]);
        let out = dump(fx, dst.to_str().unwrap());
        assert_same(&format!("{} ({compression}, inline {threshold})", fx.name()), &multiset(&src, false), &multiset(&out, false));
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} readable fixtures");
}

/// key (as JSON) -> key group, from a fixture's expected contents (Flink's own assignment).
fn key_groups_of(expected: &Path) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in crate::util::read_fixture_text(expected).unwrap().lines() {
        let j: J = serde_json::from_str(l).unwrap();
        if let Some(kg) = j["key_group"].as_u64() {
            let prev = m.insert(j["key"].to_string(), kg);
            assert!(prev.is_none_or(|p| p == kg), "{}: key {} in two key groups", expected.display(), j["key"]);
        }
    }
    m
}

fn expected_of(version: &str, case: &str) -> PathBuf {
    root().join("testdata").join(format!("flink-{version}")).join(case).join("expected.jsonl.gz")
}

#[test]
fn max_parallelism_moves_keys_to_flinks_key_groups() {
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    // Flink's key groups at max parallelism 32768: the keys of the job are the same in every
    // version, the case at 32768 is 2.3.0's (testdata/README.md, "Size rule").
    let at_32768 = key_groups_of(&expected_of("2.3.0", "heap-savepoint-canonical-p2-maxp32768"));
    let unknown = BTreeMap::new();
    for version in ["1.15.4", "2.3.0"] {
        let at_128 = key_groups_of(&expected_of(version, "heap-savepoint-canonical"));
        assert_eq!(at_128.len(), at_32768.len());
        let mut cases = vec![
            // (case, new max parallelism, Flink's key groups for it); a tiny memory budget makes
            // every other conversion spill sorted runs to disk.
            ("heap-savepoint-canonical", 32768, &at_32768, "256MiB"),
            ("heap-checkpoint-compressed", 32768, &at_32768, "2KiB"),
            ("rocksdb-savepoint-canonical", 32768, &at_32768, "256MiB"),
            ("heap-savepoint-canonical", 256, &unknown, "1KiB"),
        ];
        if version == "2.3.0" {
            cases.push(("heap-savepoint-canonical-p2-maxp32768", 128, &at_128, "1KiB"));
        }
        for (case, maxp, flink_kgs, memory) in cases {
            let fx = fixtures().into_iter().find(|f| f.case["case"] == case && f.case["flink_version"] == version).unwrap();
            let dst = tmp.path().join(format!("{version}-{case}-{maxp}"));
            let out = convert(&fx.path(), &dst, &["--max-parallelism", &maxp.to_string(), "--memory", memory]);
            assert!(out.contains("moved to new key groups"), "{out}");
            if memory != "256MiB" {
                assert!(out.contains("sorted runs spilled"), "{case} with --memory {memory} did not spill: {out}");
            }
            let src = dump(&fx, &fx.path());
            let conv = dump(&fx, dst.to_str().unwrap());
            assert_same(&format!("{version} {case} -> {maxp}"), &multiset(&src, true), &multiset(&conv, true));
            for e in conv.iter().filter(|e| !e["key_group"].is_null()) {
                let kg = e["key_group"].as_u64().unwrap();
                assert!(kg < maxp, "{e}");
                if let Some(&want) = flink_kgs.get(&e["key"].to_string()) {
                    assert_eq!(kg, want, "{version} {case}: key {} in key group {kg}, Flink puts it in {want}", e["key"]);
                    checked += 1;
                }
            }
            // The metadata says so too, for every operator, with the source's parallelism.
            let m = CheckpointMetadata::parse(&std::fs::read(dst.join("_metadata")).unwrap()).unwrap();
            assert!(m.operators.iter().all(|o| o.max_parallelism == maxp as u32));
            for o in &m.operators {
                for s in o.subtasks.iter().filter_map(|s| s.state.as_ref()) {
                    if let Some(KeyedStateHandle::KeyGroups(k)) = &s.managed_keyed_state {
                        assert_eq!(k.type_byte, 7);
                        assert_eq!(k.offsets.len() as u32, k.key_group_range.len);
                    }
                }
            }
        }
    }
    assert!(checked > 500, "only {checked} key groups compared with Flink's");
}

#[test]
fn written_savepoint_is_relocatable_self_contained_and_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixtures().into_iter().find(|f| f.case["case"] == "heap-checkpoint" && f.case["flink_version"] == "1.20.5").unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    convert(&fx.path(), &a, &["--inline-threshold", "0"]);
    convert(&fx.path(), &b, &["--inline-threshold", "0"]);
    // Same input, same bytes: file names derive from the snapshot, not from randomness.
    let files = |d: &Path| {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(d).unwrap().flatten().map(|e| (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap())).collect();
        v.sort();
        v
    };
    assert_eq!(files(&a), files(&b));
    assert!(files(&a).len() > 1, "inline threshold 0 writes files");
    // Only relative and inline handles; inspect agrees it is a relocatable canonical savepoint.
    let m = CheckpointMetadata::parse(&std::fs::read(a.join("_metadata")).unwrap()).unwrap();
    assert_eq!(m.version, 3);
    let snapshot = flinksnap::snapshot::Snapshot::open(std::sync::Arc::new(flinksnap::storage::LocalStorage), a.to_str().unwrap()).unwrap();
    for s in snapshot.streams() {
        assert!(matches!(s.handle, StreamStateHandle::RelativeFile { .. } | StreamStateHandle::ByteStream { .. }), "{:?}", s.handle);
    }
    let j: J = serde_json::from_str(&flinksnap_ok(&["inspect", a.to_str().unwrap(), "--format", "json"])).unwrap();
    let text = j.to_string();
    assert!(text.contains("\"relocatable\":true") && text.contains("\"unified_format\":true"), "{text}");
    // Moved elsewhere, it reads the same.
    let moved = tmp.path().join("elsewhere").join("sp");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&a, &moved).unwrap();
    assert_same("moved", &multiset(&dump(&fx, b.to_str().unwrap()), false), &multiset(&dump(&fx, moved.to_str().unwrap()), false));
}

/// Every file below `dir` with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path(), std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

#[test]
fn target_is_written_safely_and_the_source_never_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixtures().into_iter().find(|f| f.case["case"] == "heap-savepoint-canonical" && f.case["flink_version"] == "2.3.0").unwrap();
    let src = tmp.path().join("src");
    copy_dir(&root().join(fx.path()), &src);
    let before = tree(&src);
    let dst = tmp.path().join("out").join("sp");
    convert(src.to_str().unwrap(), &dst, &[]);
    // An existing target is refused, and left alone.
    let again = flinksnap(&["convert", src.to_str().unwrap(), dst.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists (use --force"));
    std::fs::write(dst.join("marker"), b"x").unwrap();
    convert(src.to_str().unwrap(), &dst, &["--force", "--compression", "snappy"]);
    assert!(!dst.join("marker").exists(), "--force replaces the whole directory");
    // The target must not be inside the source or contain it, even with --force.
    for bad in [src.join("inner"), tmp.path().to_path_buf(), src.clone()] {
        let out = flinksnap(&["convert", src.to_str().unwrap(), bad.to_str().unwrap(), "--force"]);
        assert_eq!(out.status.code(), Some(2), "{}", bad.display());
        assert!(String::from_utf8_lossy(&out.stderr).contains("outside the source"), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(tree(&src), before, "the source changed");
    // No temporary directories are left next to the target.
    let left: Vec<_> = std::fs::read_dir(dst.parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("sp")]);
    // Usage errors.
    for args in [&["--max-parallelism", "0"][..], &["--max-parallelism", "32769"], &["--inline-threshold", "2000000"], &["--compression", "lz4"]] {
        let mut a = vec!["convert", src.to_str().unwrap(), "/nonexistent/x"];
        a.extend_from_slice(args);
        assert_eq!(flinksnap(&a).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn corrupt_source_fails_with_file_and_offset_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixtures().into_iter().find(|f| f.case["case"] == "heap-checkpoint" && f.case["flink_version"] == "2.3.0").unwrap();
    let src = tmp.path().join("src");
    copy_dir(&root().join(fx.path()), &src);
    let state = std::fs::read_dir(&src).unwrap().flatten().map(|e| e.path()).find(|p| p.file_name().unwrap() != "_metadata").unwrap();
    let data = std::fs::read(&state).unwrap();
    std::fs::write(&state, &data[..data.len() / 2]).unwrap();
    let dst = tmp.path().join("out").join("sp");
    let out = flinksnap(&["convert", src.to_str().unwrap(), dst.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(state.file_name().unwrap().to_str().unwrap()), "{stderr}");
    assert!(!dst.exists());
    assert_eq!(std::fs::read_dir(dst.parent().unwrap()).unwrap().count(), 0, "temporary directory left behind");
}

#[test]
fn metadata_writer_mirrors_the_reader_on_every_fixture() {
    for f in metadata_files() {
        let bytes = std::fs::read(root().join(&f)).unwrap();
        let m = CheckpointMetadata::parse(&bytes).unwrap();
        let merged_channels = m.operators.iter().flat_map(|o| &o.subtasks).filter_map(|s| s.state.as_ref()).any(|s| {
            s.input_channel_state.iter().chain(&s.result_subpartition_state).any(|c| c.info.is_none())
        });
        let written = match write_metadata_v3(&m) {
            // Merged channel-state handles (Flink 2.1+) exist only from metadata V6 on.
            Err(e) if merged_channels => {
                assert!(e.to_string().contains("needs metadata V6"), "{}: {e}", f.display());
                continue;
            }
            other => other.unwrap_or_else(|e| panic!("{}: {e}", f.display())),
        };
        if m.version == 3 {
            // Flink 1.13.6, 1.14.6 (handle types 3, 5, 7) and 1.15.4 (12, 11, 7) wrote these:
            // the mirror gives back their exact bytes.
            assert_eq!(written, bytes, "{}", f.display());
        }
        let back = CheckpointMetadata::parse(&written).unwrap();
        assert_eq!((back.checkpoint_id, back.operators.len()), (m.checkpoint_id, m.operators.len()));
        for (a, b) in m.operators.iter().zip(&back.operators) {
            assert_eq!((a.operator_id, a.parallelism, a.max_parallelism), (b.operator_id, b.parallelism, b.max_parallelism));
            // Equal but for the inline offsets inside _metadata, which move with the layout.
            let strip = |s: &str| s.split("offset: ").map(|p| p.trim_start_matches(char::is_numeric)).collect::<String>();
            assert_eq!(strip(&format!("{:?}", a.subtasks)), strip(&format!("{:?}", b.subtasks)), "{}", f.display());
        }
    }
}

#[test]
fn an_unaligned_checkpoint_with_in_flight_data_is_refused() {
    let fx = fixtures().into_iter().find(|f| f.case["unaligned"] == true).expect("an unaligned fixture");
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("sp");
    let out = flinksnap(&["convert", &fx.path(), dst.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in-flight channel data"), "{stderr}");
    assert!(!dst.exists());
}
