//! A user-defined serializer with its own snapshot class (testdata/custom-serializer, written by
//! `CustomSerializerJob` in a real Flink MiniCluster: `cargo xtask serializer-fixtures --case
//! heap-custom --case rocksdb-custom`): as the first, a middle and the last state of the backend,
//! in heap checkpoints, canonical savepoints and RocksDB checkpoints. An unknown serializer costs
//! at most its own state: every other state decodes as the job wrote it, the custom states'
//! entries come out untyped (`{"class", "hex"}`, the bytes the job's serializer wrote), and
//! `verify` calls the pristine snapshots sound but partly undecodable (the custom values are not
//! checked), exit 0 (1 with `--strict`). The same operator holds operator state: a split list
//! state of the custom serializer registered before a union list state of Strings. The fixtures
//! are in one Flink version per layout (1.13.6, 1.15.4, 1.20.5, 2.3.0: heap checkpoint handle 3
//! and 12, RocksDB full checkpoints as a canonical stream and as native files, operator-state
//! proxy 5 and 6, metadata V3, V4, V6); `export` lists the untyped and the
//! undecodable states in its manifest. Broadcast state too: a broadcast state of the custom
//! serializer (one entry: delimited by the state's end) before a known one. And a variant whose
//! operator-state registrations flinksnap cannot read past (`heap-opaque-registration`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use flinksnap::model::SubtaskRef;
use flinksnap::readers::operator::read_operator_meta;
use flinksnap::readers::source::{KeyedSource, Selection};
use flinksnap::snapshot::Snapshot;
use flinksnap::storage::LocalStorage;
use serde_json::{json, Value as J};

use crate::util::{flinksnap, flinksnap_ok, versioned_cases_of, CUSTOM_SERIALIZER_VERSIONS};

/// (case dir, case.json, snapshot dir) of every custom-serializer fixture snapshot, of every
/// version of the group (a missing one fails).
fn snapshots() -> Vec<(PathBuf, J, PathBuf)> {
    let mut out = Vec::new();
    for (version, case_dir) in versioned_cases_of("custom-serializer", CUSTOM_SERIALIZER_VERSIONS, &["heap-custom", "rocksdb-custom"]) {
        let case: J = serde_json::from_slice(&std::fs::read(case_dir.join("case.json")).unwrap()).unwrap();
        assert_eq!(case["flink_version"], version.as_str(), "{}", case_dir.display());
        for s in case["snapshots"].as_array().unwrap() {
            let path = case_dir.join(s["path"].as_str().unwrap());
            out.push((case_dir.clone(), case.clone(), path));
        }
    }
    out
}

/// What `CustomSerializer` writes for `Custom(id, tag)`: `writeLong`, `writeUTF`.
fn custom_hex(id: i64, tag: &str) -> String {
    let mut b = id.to_be_bytes().to_vec();
    b.extend_from_slice(&(tag.len() as u16).to_be_bytes());
    b.extend_from_slice(tag.as_bytes());
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The job's contents (CustomSerializerJob's class comment): (state, key, user key) -> value,
/// custom values as their hex.
fn expected(keys: i64) -> BTreeMap<(String, i64, Option<String>), J> {
    let mut m = BTreeMap::new();
    for k in 0..keys {
        m.insert(("custom-a2".into(), k, None), json!(custom_hex(k, &format!("first-{k}"))));
        m.insert(("known-sums".into(), k, None), json!(10 * k));
        m.insert(("custom-g0".into(), k, Some(format!("m-{k}"))), json!(custom_hex(-k, &format!("middle-{k}"))));
        m.insert(("known-count".into(), k, None), json!(k + 1));
        m.insert(("known-names".into(), k, None), json!([format!("n-{k}"), "x"]));
        m.insert(("custom-a7".into(), k, None), json!(custom_hex(100 * k, &format!("last-{k}"))));
    }
    m
}

/// The job's operator and broadcast state (CustomSerializerJob's class comment): (state, kind,
/// broadcast key, value), custom values as their hex.
fn expected_operator_state() -> Vec<(String, String, Option<String>, J)> {
    let mut out = Vec::new();
    for k in 0..3i64 {
        out.push(("custom-op".to_owned(), "operator_list".to_owned(), None, json!(custom_hex(k, &format!("op-{k}")))));
        out.push(("known-op".to_owned(), "operator_union".to_owned(), None, json!(format!("known-op-{k}"))));
        out.push(("known-bc".to_owned(), "broadcast".to_owned(), Some(format!("bc-{k}")), json!(1000 * k)));
    }
    out.push(("custom-bc".to_owned(), "broadcast".to_owned(), Some("bc".to_owned()), json!(custom_hex(7, "broadcast"))));
    out.sort_by(|a, b| (&a.0, &a.2, a.3.to_string()).cmp(&(&b.0, &b.2, b.3.to_string())));
    out
}

/// `dump`'s "not decoded" lines: (state, stored entries).
fn not_decoded(stderr: &str) -> Vec<(String, u64)> {
    stderr
        .lines()
        .filter(|l| l.starts_with("flinksnap: not decoded:"))
        .map(|l| {
            let state = l.split(" state \"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_else(|| panic!("no state name in {l}"));
            let after = l.split(&format!("state \"{state}\" (")).nth(1);
            let n = after.and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no entry count in {l}"));
            (state.to_owned(), n)
        })
        .collect()
}

#[test]
fn states_around_a_custom_serializer_decode_and_its_entries_come_out_untyped() {
    let all = snapshots();
    let mut kinds = BTreeMap::new();
    for (_, case, path) in &all {
        let p = path.to_str().unwrap();
        let keys = case["keys"].as_i64().unwrap();
        let heap_checkpoint = case["backend"] == "hashmap" && p.contains("/checkpoints/");
        let out = flinksnap(&["dump", p, "--format", "jsonl"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{p}: {stderr}");
        let missing = not_decoded(&stderr);
        // Only heap checkpoints store values without lengths; there a custom state's entries
        // may be left undecodable where the bytes allow several layouts, and are reported.
        assert!(heap_checkpoint || missing.is_empty(), "{p}: entries left undecodable:\n{stderr}");
        assert!(missing.iter().all(|(s, _)| s.starts_with("custom-")), "{p}: a state of Flink's serializers not decoded:\n{stderr}");
        let mut got = BTreeMap::new();
        let mut operator_state = Vec::new();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let e: J = serde_json::from_str(line).unwrap();
            if e["operator_id"] != case["uids"]["custom"] {
                continue;
            }
            let state = e["state"].as_str().unwrap().to_owned();
            let mut value = e["value"].clone();
            if e["key"].is_null() {
                // Operator state: the custom list untyped, the String union after it typed; the
                // custom broadcast state's one entry untyped (its key typed), the known
                // broadcast state after it typed.
                if state == "custom-op" || state == "custom-bc" {
                    assert_eq!(value["class"], "flinksnap.fixtures.CustomSerializerJob$CustomSnapshot", "{p}: {line}");
                    value = value["hex"].clone();
                }
                let user_key = e.get("user_key").and_then(J::as_str).map(str::to_owned);
                operator_state.push((state, e["kind"].as_str().unwrap().to_owned(), user_key, value));
                continue;
            }
            if state.starts_with("custom-") {
                // Untyped: the serializer (snapshot) class and the bytes as stored.
                let class = value["class"].as_str().unwrap_or_else(|| panic!("{p}: {state}: {value}"));
                assert!(class.starts_with("flinksnap.fixtures.CustomSerializerJob$Custom"), "{p}: {state}: class {class}");
                value = value["hex"].clone();
            }
            let key = e["key"].as_i64().unwrap_or_else(|| panic!("{p}: {state}: key {}", e["key"]));
            let user_key = e.get("user_key").and_then(J::as_str).map(str::to_owned);
            assert!(got.insert((state, key, user_key), value).is_none(), "{p}: an entry twice: {line}");
        }
        let want = expected(keys);
        // Every entry dumped is one the job wrote, exactly.
        for (k, v) in &got {
            assert_eq!(want.get(k), Some(v), "{p}: entry {k:?} is not the job's");
        }
        operator_state.sort_by(|a, b| (&a.0, &a.2, a.3.to_string()).cmp(&(&b.0, &b.2, b.3.to_string())));
        assert_eq!(operator_state, expected_operator_state(), "{p}: operator state");
        // Every state of Flink's serializers is complete; each custom state is, but for the
        // entries reported as not decoded. In a heap checkpoint an undelimited value also costs
        // the rest of its key group (the sections after it, whichever states they are: the
        // order of the sections in a key group is the backend's, 1.13 and 1.14 put custom
        // sections next to each other), which is reported with the state it stopped at.
        for state in ["custom-a2", "known-sums", "custom-g0", "known-count", "known-names", "custom-a7"] {
            let n = got.keys().filter(|k| k.0 == state).count() as u64;
            let reported: u64 = missing.iter().filter(|m| m.0 == state).map(|m| m.1).sum();
            if heap_checkpoint {
                assert!(n + reported <= keys as u64, "{p}: state {state}: {n} entries dumped, {reported} reported not decoded");
                assert!(n == keys as u64 || !missing.is_empty(), "{p}: state {state}: {n} entries dumped and nothing reported");
            } else {
                assert_eq!(n + reported, keys as u64, "{p}: state {state}: {n} entries dumped, {reported} reported not decoded");
            }
        }
        if heap_checkpoint {
            kinds.entry("heap checkpoint: custom entries decoded").or_insert((0, 0)).0 += got.keys().filter(|k| k.0.starts_with("custom-")).count();
            kinds.entry("heap checkpoint: custom entries decoded").or_insert((0, 0)).1 += 3 * keys as usize;
        }

        // The custom serializer's states are the first, one in the middle and the last of the
        // backend's states (what the fixture is for).
        let snapshot = Snapshot::open(Arc::new(LocalStorage), p).unwrap();
        let op = snapshot.metadata.operators.iter().position(|o| o.operator_id.to_string() == case["uids"]["custom"].as_str().unwrap()).unwrap();
        let source = KeyedSource::open(&snapshot, SubtaskRef { operator: op, subtask: 0 }, &Selection::default()).unwrap().unwrap();
        let names: Vec<&str> = source.meta().states.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), 6, "{p}: states {names:?}");
        assert!(names[0].starts_with("custom-") && names[5].starts_with("custom-"), "{p}: states {names:?}");
        assert!(names[1..5].iter().any(|n| n.starts_with("custom-")), "{p}: states {names:?}");
        // The operator state's custom registration comes first: the known one follows an
        // unknown serializer snapshot.
        let h = snapshot.metadata.operators[op].subtasks[0].state.as_ref().unwrap().managed_operator_state.as_ref().unwrap();
        let meta = read_operator_meta(&snapshot, h).unwrap();
        let names: Vec<&str> = meta.operator_states.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["custom-op", "known-op"], "{p}: operator states");
        // So does the broadcast one's, after the custom broadcast state's.
        let names: Vec<&str> = meta.broadcast_states.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["custom-bc", "known-bc"], "{p}: broadcast states");
    }
    // Heap checkpoints, canonical savepoints of both backends, RocksDB checkpoints, every
    // version of the group.
    let versions: std::collections::BTreeSet<String> = all.iter().map(|(_, c, _)| c["flink_version"].as_str().unwrap().to_owned()).collect();
    assert_eq!(versions, CUSTOM_SERIALIZER_VERSIONS.iter().map(|v| v.to_string()).collect(), "custom-serializer fixture versions");
    assert!(all.len() >= 4 * CUSTOM_SERIALIZER_VERSIONS.len(), "only {} custom-serializer snapshots", all.len());
    // Most of the heap checkpoints' custom entries are read past their missing lengths.
    for (what, (decoded, of)) in kinds {
        assert!(decoded * 2 > of, "{what}: {decoded} of {of}");
    }
}

#[test]
fn verify_calls_pristine_snapshots_with_a_custom_serializer_sound_but_partly_undecodable() {
    for (_, _, path) in snapshots() {
        let p = path.to_str().unwrap();
        let out = flinksnap_ok(&["verify", p, "--level", "full", "--format", "json"]);
        let r: J = serde_json::from_str::<J>(&out).unwrap()["data"].clone();
        assert_eq!(r["sound"], true, "{p}: {out}");
        assert!(r["totals"]["opaque_values"].as_u64().unwrap() > 0, "{p}: {out}");
        // The custom states' values are not checked (their serializer snapshot was read past):
        // sound, partly undecodable, each such state by name and serializer class; exit 0, and 1
        // with --strict.
        assert_eq!(r["outcome"], "sound_partly_undecodable", "{p}: {out}");
        let undecodable = r["undecodable"].as_array().unwrap();
        for u in undecodable {
            assert!(u["state"].as_str().unwrap().starts_with("custom-"), "{p}: {u}");
            assert!(u["class"].as_str().unwrap().starts_with("flinksnap.fixtures.CustomSerializerJob$Custom"), "{p}: {u}");
            assert!(u["file"].is_string(), "{p}: {u}");
        }
        for state in ["custom-a2", "custom-g0", "custom-a7", "custom-op", "custom-bc"] {
            assert!(undecodable.iter().any(|u| u["state"] == state && u["kind"] == "untyped"), "{p}: {state} not listed as untyped: {out}");
        }
        let strict = flinksnap(&["verify", p, "--level", "full", "--strict"]);
        assert_eq!(strict.status.code(), Some(1), "{p}: {}", String::from_utf8_lossy(&strict.stdout));
        assert!(String::from_utf8_lossy(&strict.stdout).contains("sound (partly undecodable)"));
        let plain = flinksnap(&["verify", p, "--level", "full"]);
        assert_eq!(plain.status.code(), Some(0), "{p}: {}", String::from_utf8_lossy(&plain.stdout));
    }
}

/// `convert` carries untyped states over byte for byte (the savepoint dumps as the source does),
/// and refuses — writing nothing — where entries of a custom state could not be read (heap
/// checkpoints whose custom values have no length): a savepoint without them would lose state.
#[test]
fn convert_keeps_untyped_states_and_refuses_to_lose_undecodable_ones() {
    let dir = std::env::temp_dir().join(format!("flinksnap-custom-convert-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (mut kept, mut refused) = (0, 0);
    for (i, (_, _, path)) in snapshots().iter().enumerate() {
        let p = path.to_str().unwrap();
        let dump = |s: &str| {
            let out = flinksnap(&["dump", s, "--format", "jsonl"]);
            assert_eq!(out.status.code(), Some(0), "{s}: {}", String::from_utf8_lossy(&out.stderr));
            let mut lines: Vec<J> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str::<J>(l).unwrap()).collect();
            for l in &mut lines {
                l.as_object_mut().unwrap().remove("operator_uid");
            }
            let mut lines: Vec<String> = lines.iter().map(J::to_string).collect();
            lines.sort();
            (lines, not_decoded(&String::from_utf8_lossy(&out.stderr)))
        };
        let (source, missing) = dump(p);
        let dst = dir.join(format!("sp-{i}"));
        let out = flinksnap(&["convert", p, dst.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if missing.is_empty() {
            assert_eq!(out.status.code(), Some(0), "{p}: {stderr}");
            let (converted, m) = dump(dst.to_str().unwrap());
            assert!(m.is_empty());
            assert_eq!(converted, source, "{p}: the converted savepoint holds other entries");
            kept += 1;
        } else {
            assert_ne!(out.status.code(), Some(0), "{p}: converted although entries were not read");
            assert!(stderr.contains("would lose state"), "{p}: {stderr}");
            assert!(!dst.exists(), "{p}: {} written", dst.display());
            refused += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(kept >= 4, "{kept} converted");
    eprintln!("{kept} converted with their untyped states, {refused} refused");
}

/// `export` names what it could not type and what it could not export (issue 11: "each
/// undecodable state is reported by name and class"): the manifest lists exactly the job's
/// custom-serializer states as untyped (the three keyed ones and the operator list state, by
/// operator, state, serializer role and snapshot class), and as undecodable exactly what `dump`
/// reports not decoded (heap checkpoints only: values without a length); each state file holds
/// the entries `dump` gives. The text report on stderr names them too.
#[test]
fn export_lists_untyped_and_undecodable_states_in_its_manifest() {
    let dir = std::env::temp_dir().join(format!("flinksnap-custom-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let class = "flinksnap.fixtures.CustomSerializerJob$CustomSnapshot";
    let (mut with_undecodable, mut n) = (0, 0);
    for (i, (_, case, path)) in snapshots().iter().enumerate() {
        let p = path.to_str().unwrap();
        let custom_op = case["uids"]["custom"].as_str().unwrap();
        let dump = flinksnap(&["dump", p, "--format", "jsonl"]);
        assert_eq!(dump.status.code(), Some(0), "{p}");
        let mut dumped: BTreeMap<String, u64> = BTreeMap::new();
        for line in String::from_utf8(dump.stdout).unwrap().lines() {
            let e: J = serde_json::from_str(line).unwrap();
            *dumped.entry(e["state"].as_str().unwrap().to_owned()).or_default() += 1;
        }
        let mut not_decoded = not_decoded(&String::from_utf8_lossy(&dump.stderr));
        not_decoded.sort();

        let out = dir.join(format!("e{i}"));
        let format = if i % 2 == 0 { "parquet" } else { "jsonl" };
        let r = flinksnap(&["export", p, "--to", out.to_str().unwrap(), "--format", format]);
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(0), "{p}: {stderr}");
        let m: J = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();

        // Untyped: exactly the custom states, each with its file.
        let mut untyped: Vec<(String, String, String, String)> = m["untyped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                assert_eq!(u["operator_id"], custom_op, "{p}: {u}");
                assert!(out.join(u["file"].as_str().unwrap()).is_file(), "{p}: {u}");
                let s = |k: &str| u[k].as_str().unwrap().to_owned();
                (s("state"), s("kind"), s("serializer"), s("class"))
            })
            .collect();
        untyped.sort();
        let want = |s: &str, k: &str| (s.to_owned(), k.to_owned(), "value".to_owned(), class.to_owned());
        assert_eq!(
            untyped,
            [want("custom-a2", "value"), want("custom-a7", "value"), want("custom-bc", "broadcast"), want("custom-g0", "map"), want("custom-op", "operator_list")],
            "{p}"
        );
        assert_eq!(m["totals"]["untyped_states"], 5, "{p}");
        for (state, ..) in &untyped {
            let said = |l: &&str| l.starts_with("flinksnap: untyped: operator ") && l.contains(custom_op) && l.contains(&format!(" state {state:?}: "));
            assert!(stderr.lines().any(|l| said(&l)), "{p}: {stderr}");
        }

        // Undecodable: what dump reports not decoded, by state, class and entry count.
        let mut undecodable: Vec<(String, u64)> = m["undecodable"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                assert_eq!(u["operator_id"], custom_op, "{p}: {u}");
                assert_eq!(u["class"], class, "{p}: {u}");
                assert_eq!(u["kind"], "entries", "{p}: {u}");
                assert_eq!(u["subtask"], 0, "{p}: {u}");
                assert!(u["file"].is_string() && !u["reason"].as_str().unwrap().is_empty(), "{p}: {u}");
                (u["state"].as_str().unwrap().to_owned(), u["entries"].as_u64().unwrap())
            })
            .collect();
        undecodable.sort();
        assert_eq!(undecodable, not_decoded, "{p}: the manifest's undecodable states are not dump's");
        let states: std::collections::BTreeSet<&str> = undecodable.iter().map(|u| u.0.as_str()).collect();
        assert_eq!(m["totals"]["undecodable_states"], states.len(), "{p}");
        for s in &states {
            assert!(s.starts_with("custom-"), "{p}: {s}");
            let said = |l: &&str| l.starts_with("flinksnap: not exported: operator ") && l.contains(custom_op) && l.contains(&format!(" subtask 0 state {s:?} "));
            assert!(stderr.lines().any(|l| said(&l)), "{p}: {stderr}");
        }
        let heap_checkpoint = case["backend"] == "hashmap" && p.contains("/checkpoints/");
        assert!(heap_checkpoint || undecodable.is_empty(), "{p}: {undecodable:?}");
        with_undecodable += usize::from(!undecodable.is_empty());

        // Every state has its file, with the rows dump gives.
        for s in m["states"].as_array().unwrap() {
            let state = s["state"].as_str().unwrap();
            assert_eq!(s["rows"].as_u64(), Some(dumped.get(state).copied().unwrap_or(0)), "{p}: state {state}");
        }
        n += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(n >= 4 * CUSTOM_SERIALIZER_VERSIONS.len(), "{n} exports");
    // The heap checkpoints whose custom values the bytes do not delimit are listed.
    assert!(with_undecodable > 0, "no export listed an undecodable state");
}

/// `stats` names the same: each custom state's class (its entries counted, untyped) and what
/// `dump` reports not decoded.
#[test]
fn stats_names_untyped_and_undecodable_states() {
    let class = "flinksnap.fixtures.CustomSerializerJob$CustomSnapshot";
    for (_, case, path) in snapshots() {
        let p = path.to_str().unwrap();
        let dump = flinksnap(&["dump", p, "--format", "jsonl"]);
        let mut not_decoded = not_decoded(&String::from_utf8_lossy(&dump.stderr));
        not_decoded.sort();
        let out = flinksnap_ok(&["stats", p, "--format", "json"]);
        let r: J = serde_json::from_str::<J>(&out).unwrap()["data"].clone();
        let op = r["operators"].as_array().unwrap().iter().find(|o| o["operator_id"] == case["uids"]["custom"]).unwrap();
        let mut untyped: Vec<&str> = Vec::new();
        for s in op["states"].as_array().unwrap() {
            match s["untyped"].as_str() {
                Some(c) => {
                    assert_eq!(c, class, "{p}: {s}");
                    untyped.push(s["name"].as_str().unwrap());
                }
                None => assert!(s["untyped"].is_null(), "{p}: {s}"),
            }
        }
        untyped.sort();
        assert_eq!(untyped, ["custom-a2", "custom-a7", "custom-bc", "custom-g0", "custom-op"], "{p}");
        let mut undecodable: Vec<(String, u64)> =
            op["undecodable"].as_array().unwrap().iter().map(|u| (u["state"].as_str().unwrap().to_owned(), u["entries"].as_u64().unwrap())).collect();
        undecodable.sort();
        assert_eq!(undecodable, not_decoded, "{p}");
        assert_eq!(op["entries_complete"], not_decoded.is_empty(), "{p}");
    }
}

/// An operator-state registration flinksnap cannot read past, in a real snapshot
/// (testdata/custom-serializer/flink-VERSION/heap-opaque-registration, `CustomSerializerJob
/// --variant opaque`): two list states whose serializer snapshot class is in the default package
/// (`OpaqueSerializer$Snapshot`, no dot: `formats/serializers.md` § Unknown snapshots) follow a
/// known one, and a known union list state and a broadcast state come after them. Through the
/// real binary: `verify` calls it sound but partly undecodable (exit 0; 1 with `--strict`),
/// naming each state from the first unknown snapshot on with the class, in text and JSON;
/// `dump` and `export` give every other state with the job's contents (the known list state
/// before the unknown snapshots, the operator's keyed state) and name the rest; `convert`
/// refuses, writing nothing.
#[test]
fn an_operator_state_registration_flinksnap_cannot_read_past_costs_only_the_states_from_it_on() {
    const CLASS: &str = "OpaqueSerializer$Snapshot";
    // From the first unknown snapshot on, in the proxy's order; (state, elements stored).
    let lost = [("known-bc", 1), ("known-f", 3), ("opaque-l", 3), ("opaque-o", 3)];
    let dir = std::env::temp_dir().join(format!("flinksnap-opaque-registration-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cases = versioned_cases_of("custom-serializer", CUSTOM_SERIALIZER_VERSIONS, &["heap-opaque-registration"]);
    for (i, (version, case_dir)) in cases.iter().enumerate() {
        let case: J = serde_json::from_slice(&std::fs::read(case_dir.join("case.json")).unwrap()).unwrap();
        assert_eq!(case["flink_version"], version.as_str());
        let path = case_dir.join(case["snapshots"][0]["path"].as_str().unwrap());
        let p = path.to_str().unwrap();
        let op = case["uids"]["opaque"].as_str().unwrap();
        let keys = case["keys"].as_i64().unwrap();

        // verify, JSON: sound, partly undecodable; each lost state by name and class.
        let out = flinksnap_ok(&["verify", p, "--level", "full", "--format", "json"]);
        let r: J = serde_json::from_str::<J>(&out).unwrap()["data"].clone();
        assert_eq!((&r["sound"], &r["outcome"]), (&json!(true), &json!("sound_partly_undecodable")), "{p}: {out}");
        let mut listed: Vec<(String, u64)> = r["undecodable"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                assert_eq!(u["operator_id"], op, "{p}: {u}");
                assert_eq!(u["kind"], "registration", "{p}: {u}");
                assert_eq!(u["class"], CLASS, "{p}: {u}");
                assert!(u["file"].is_string() && u["reason"].as_str().unwrap().contains("cannot read past"), "{p}: {u}");
                (u["state"].as_str().unwrap().to_owned(), u["entries"].as_u64().unwrap())
            })
            .collect();
        listed.sort();
        assert_eq!(listed, lost.map(|(s, n)| (s.to_owned(), n)), "{p}: {out}");
        // verify, text: exit 0, the same states and class; --strict: exit 1.
        let text = flinksnap(&["verify", p, "--level", "full"]);
        let stdout = String::from_utf8_lossy(&text.stdout);
        assert_eq!(text.status.code(), Some(0), "{p}: {stdout}");
        assert!(stdout.contains("sound (partly undecodable)"), "{p}: {stdout}");
        for (state, _) in lost {
            assert!(stdout.lines().any(|l| l.contains(&format!("state {state:?}")) && l.contains(CLASS)), "{p}: {state} not named: {stdout}");
        }
        let strict = flinksnap(&["verify", p, "--level", "full", "--strict"]);
        assert_eq!(strict.status.code(), Some(1), "{p}: {}", String::from_utf8_lossy(&strict.stdout));

        // dump: the known list state before the unknown snapshots and the keyed state, exactly
        // as the job wrote them; the lost states named on stderr.
        let out = flinksnap(&["dump", p, "--format", "jsonl"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{p}: {stderr}");
        let mut got: Vec<(String, Option<i64>, J)> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<J>(l).unwrap())
            .filter(|e| e["operator_id"] == op)
            .map(|e| (e["state"].as_str().unwrap().to_owned(), e["key"].as_i64(), e["value"].clone()))
            .collect();
        got.sort_by_key(|g| format!("{g:?}"));
        let mut want: Vec<(String, Option<i64>, J)> = (0..keys).map(|k| ("known-keyed".to_owned(), Some(k), json!(3 * k))).collect();
        want.extend((0..3).map(|k| ("known-m".to_owned(), None, json!(format!("m-{k}")))));
        want.sort_by_key(|g| format!("{g:?}"));
        assert_eq!(got, want, "{p}: {stderr}");
        let mut missing = not_decoded(&stderr);
        missing.sort();
        assert_eq!(missing, lost.map(|(s, n)| (s.to_owned(), n)), "{p}: {stderr}");

        // export: the same two states, with the same rows; the lost ones in the manifest.
        let out_dir = dir.join(format!("e{i}"));
        let r = flinksnap(&["export", p, "--to", out_dir.to_str().unwrap(), "--format", if i % 2 == 0 { "jsonl" } else { "parquet" }]);
        assert_eq!(r.status.code(), Some(0), "{p}: {}", String::from_utf8_lossy(&r.stderr));
        let m: J = serde_json::from_slice(&std::fs::read(out_dir.join("manifest.json")).unwrap()).unwrap();
        let mut states: Vec<(String, u64)> =
            m["states"].as_array().unwrap().iter().map(|s| (s["state"].as_str().unwrap().to_owned(), s["rows"].as_u64().unwrap())).collect();
        states.sort();
        assert_eq!(states, [("known-keyed".to_owned(), keys as u64), ("known-m".to_owned(), 3)], "{p}");
        let mut undecodable: Vec<(String, u64)> = m["undecodable"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                assert_eq!(u["class"], CLASS, "{p}: {u}");
                (u["state"].as_str().unwrap().to_owned(), u["entries"].as_u64().unwrap())
            })
            .collect();
        undecodable.sort();
        assert_eq!(undecodable, lost.map(|(s, n)| (s.to_owned(), n)), "{p}");

        // convert would lose them: it refuses and writes nothing.
        let dst = dir.join(format!("c{i}"));
        let r = flinksnap(&["convert", p, dst.to_str().unwrap()]);
        assert_ne!(r.status.code(), Some(0), "{p}: converted although states were not read");
        assert!(String::from_utf8_lossy(&r.stderr).contains("opaque-l"), "{p}: {}", String::from_utf8_lossy(&r.stderr));
        assert!(!dst.exists(), "{p}: {} written", dst.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
