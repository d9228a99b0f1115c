//! `_metadata` and `flinksnap inspect` on every real-Flink fixture, against `metadata.json`: what
//! Flink's own `Checkpoints.loadCheckpointMetadata` read from the same file when the fixture was
//! written.

use std::collections::BTreeSet;
use std::sync::Arc;

use flinksnap::metadata::handles::{ChannelStateHandle, ChannelStateKind, KeyedStateHandle, OperatorStateHandle, StreamStateHandle};
use flinksnap::snapshot::Snapshot;
use flinksnap::storage::LocalStorage;
use serde_json::Value as J;

use crate::util::{flinksnap, flinksnap_ok, root};

/// One snapshot of a fixture case.
pub struct Fixture {
    pub case_dir: std::path::PathBuf,
    pub case: J,
    pub snapshot: J,
}

impl Fixture {
    /// Repository-relative path of the snapshot directory.
    pub fn path(&self) -> String {
        let rel = self.case_dir.strip_prefix(root()).unwrap().join(self.snapshot["path"].as_str().unwrap());
        rel.to_string_lossy().into_owned()
    }

    pub fn oracle(&self) -> J {
        let f = self.case_dir.join(self.snapshot["metadata"].as_str().unwrap());
        serde_json::from_str(&crate::util::read_fixture_text(&f).unwrap()).unwrap()
    }

    pub fn name(&self) -> String {
        format!("{} {}", self.case_dir.strip_prefix(root().join("testdata")).unwrap().display(), self.snapshot["path"])
    }

    pub fn uids(&self) -> Vec<String> {
        self.case["uids"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    pub fn open(&self) -> Snapshot {
        Snapshot::open(Arc::new(LocalStorage), root().join(self.path()).to_str().unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", self.name()))
    }
}

/// The snapshots case.json marks `unsound` (Flink itself cannot restore them, FLINK-39964),
/// which [`fixtures`] leaves out.
pub fn unsound_snapshots() -> usize {
    let mut n = 0;
    for v in std::fs::read_dir(root().join("testdata")).unwrap().flatten() {
        for c in std::fs::read_dir(v.path()).into_iter().flatten().flatten() {
            let Ok(text) = std::fs::read(c.path().join("case.json")) else { continue };
            let case: J = serde_json::from_slice(&text).unwrap();
            n += case["snapshots"].as_array().unwrap().iter().filter(|s| s["unsound"].is_string()).count();
        }
    }
    n
}

/// Every snapshot of every case under `testdata/flink-*/` (and a restore case's savepoint).
pub fn fixtures() -> Vec<Fixture> {
    // The fixture job's snapshots: each with its expected contents and metadata oracle. The
    // SQL cases have neither (their state has no model): `sql_fixtures()`.
    all_fixtures().into_iter().filter(|f| f.snapshot.get("expected").is_some()).collect()
}

/// The SQL fixtures (`xtask/flink-job/src-sql`): no model, real Flink's dump (`oracle`) instead.
pub fn sql_fixtures() -> Vec<Fixture> {
    all_fixtures().into_iter().filter(|f| f.case.get("job").is_some_and(|j| j.as_str().is_some_and(|j| j.starts_with("sql")))).collect()
}

fn all_fixtures() -> Vec<Fixture> {
    let mut out = Vec::new();
    let mut versions: Vec<_> = std::fs::read_dir(root().join("testdata")).unwrap().flatten().map(|e| e.path()).collect();
    versions.sort();
    for v in versions.into_iter().filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("flink-")) {
        let mut cases: Vec<_> = std::fs::read_dir(&v).unwrap().flatten().map(|e| e.path()).collect();
        cases.sort();
        for case_dir in cases {
            let Ok(text) = std::fs::read(case_dir.join("case.json")) else { continue };
            let case: J = serde_json::from_slice(&text).unwrap();
            for snapshot in case["snapshots"].as_array().unwrap().clone() {
                // Flink cannot restore it as it is (FLINK-39964): `cross_job.rs` covers it.
                if snapshot["unsound"].is_string() {
                    continue;
                }
                out.push(Fixture { case_dir: case_dir.clone(), case: case.clone(), snapshot });
            }
            // A restore case's savepoint (the restored job's checkpoints are the case's
            // snapshots) is a native savepoint like any other.
            if let Some(sp) = case["restore"].get("savepoint").filter(|s| s.is_object()) {
                let mut c = case.clone();
                c["kind"] = J::from("savepoint");
                c["format"] = J::from("native");
                out.push(Fixture { case_dir: case_dir.clone(), case: c, snapshot: sp.clone() });
            }
        }
    }
    out
}

fn stream_matches(ours: &StreamStateHandle, theirs: &J, ctx: &str) {
    let class = theirs["class"].as_str().unwrap();
    match ours {
        StreamStateHandle::ByteStream { size, .. } => {
            assert_eq!(class, "ByteStreamStateHandle", "{ctx}");
            assert_eq!(Some(*size), theirs["state_size"].as_u64(), "{ctx}");
        }
        StreamStateHandle::RelativeFile { relative_path, size } => {
            assert_eq!(class, "RelativeFileStateHandle", "{ctx}");
            assert_eq!(Some(relative_path.as_str()), theirs["relative_path"].as_str(), "{ctx}");
            assert_eq!(Some(*size), theirs["state_size"].as_u64(), "{ctx}");
        }
        StreamStateHandle::File { path, size } => {
            assert_eq!(class, "FileStateHandle", "{ctx}");
            assert_eq!(Some(path.as_str()), theirs["path"].as_str(), "{ctx}");
            assert_eq!(Some(*size), theirs["state_size"].as_u64(), "{ctx}");
        }
        StreamStateHandle::SegmentFile { path, start, size, scope, logical_file_id } => {
            assert_eq!(class, "SegmentFileStateHandle", "{ctx}");
            assert_eq!(Some(path.as_str()), theirs["path"].as_str(), "{ctx}");
            assert_eq!(Some(*start), theirs["start_pos"].as_u64(), "{ctx}");
            assert_eq!(Some(*size), theirs["state_size"].as_u64(), "{ctx}");
            assert_eq!(theirs["scope"], ["EXCLUSIVE", "SHARED"][*scope as usize], "{ctx}");
            assert_eq!(Some(logical_file_id.as_str()), theirs["logical_file_id"].as_str(), "{ctx}");
        }
        StreamStateHandle::EmptySegmentFile => {
            assert_eq!(class, "EmptySegmentFileStateHandle", "{ctx}");
            assert_eq!(Some(0), theirs["state_size"].as_u64(), "{ctx}");
        }
        other => assert_eq!(class, other.class_name(), "{ctx}"),
    }
}

/// A changelog sequence number as the generator wrote it: a number, or (1.x) the `toString` of a
/// `SequenceNumber` object with the number in it.
fn sequence_number(j: &J) -> i64 {
    let s = j.as_str().unwrap();
    let digits: String = s.chars().filter(|c| c.is_ascii_digit() || *c == '-').collect();
    digits.parse().unwrap_or_else(|_| panic!("sequence number {s:?}"))
}

fn keyed_matches(ours: &KeyedStateHandle, theirs: &J, ctx: &str) {
    let r = ours.key_group_range();
    assert_eq!(Some(r.start as u64), theirs["key_group_range"]["start"].as_u64(), "{ctx}");
    assert_eq!(r.end_inclusive().map(|e| e as i64), theirs["key_group_range"]["end"].as_i64(), "{ctx}");
    match ours {
        KeyedStateHandle::KeyGroups(h) => {
            let class = theirs["class"].as_str().unwrap();
            let want = if h.is_savepoint() { "KeyGroupsSavepointStateHandle" } else { "KeyGroupsStateHandle" };
            assert_eq!(class, want, "{ctx}");
            if let Some(offsets) = theirs["offsets"].as_array() {
                let offsets: Vec<i64> = offsets.iter().map(|o| o.as_i64().unwrap()).collect();
                assert_eq!(h.offsets, offsets, "{ctx}");
            } else {
                // Large handles: the generator keeps the count and the non-zero offsets.
                assert_eq!(Some(h.offsets.len() as u64), theirs["offsets_count"].as_u64(), "{ctx}");
                let nonzero = theirs["offsets_nonzero"].as_object().unwrap();
                let ours: Vec<(u32, i64)> = h.offsets.iter().enumerate().filter(|(_, &o)| o != 0).map(|(i, &o)| (h.key_group_range.start + i as u32, o)).collect();
                assert_eq!(ours.len(), nonzero.len(), "{ctx}");
                for (kg, o) in ours {
                    assert_eq!(nonzero[&kg.to_string()].as_i64(), Some(o), "{ctx} key group {kg}");
                }
            }
            stream_matches(&h.delegate, &theirs["delegate"], &format!("{ctx} delegate"));
        }
        KeyedStateHandle::IncrementalRemote(h) => {
            assert_eq!(theirs["class"], "IncrementalRemoteKeyedStateHandle", "{ctx}");
            assert_eq!(Some(h.checkpoint_id), theirs["checkpoint_id"].as_u64(), "{ctx}");
            assert_eq!(Some(h.backend_identifier.as_str()), theirs["backend_identifier"].as_str(), "{ctx}");
            assert_eq!(h.checkpointed_size, theirs["checkpointed_size"].as_u64(), "{ctx}");
            assert_eq!(h.state_handle_id.as_deref(), theirs["state_handle_id"].as_str(), "{ctx}");
            stream_matches(h.meta_state_handle.as_ref().unwrap(), &theirs["meta"], &format!("{ctx} meta"));
            for (list, key) in [(&h.shared_state, "shared"), (&h.private_state, "private")] {
                let mut theirs_list = theirs[key].as_array().unwrap().clone();
                theirs_list.sort_by_key(|f| f["local_path"].as_str().unwrap().to_owned());
                let mut ours_list = list.clone();
                ours_list.sort_by(|a, b| a.local_path.cmp(&b.local_path));
                assert_eq!(ours_list.len(), theirs_list.len(), "{ctx} {key}");
                for (o, t) in ours_list.iter().zip(&theirs_list) {
                    assert_eq!(Some(o.local_path.as_str()), t["local_path"].as_str(), "{ctx} {key}");
                    stream_matches(o.handle.as_ref().unwrap(), &t["handle"], &format!("{ctx} {key} {}", o.local_path));
                }
            }
        }
        KeyedStateHandle::Changelog(h) => {
            // ChangelogStateBackendHandleImpl
            assert!(theirs["class"].as_str().unwrap().starts_with("ChangelogStateBackendHandle"), "{ctx}");
            assert_eq!(Some(h.checkpointed_size), theirs["checkpointed_size"].as_u64(), "{ctx}");
            assert_eq!(Some(h.materialization_id), theirs["materialization_id"].as_u64(), "{ctx}");
            assert_eq!(Some(h.checkpoint_id), theirs["checkpoint_id"].as_u64(), "{ctx}");
            assert_eq!(Some(h.state_handle_id.as_str()), theirs["state_handle_id"].as_str(), "{ctx}");
            for (ours, key) in [(&h.materialized, "materialized"), (&h.non_materialized, "non_materialized")] {
                let t = theirs[key].as_array().unwrap();
                assert_eq!(ours.len(), t.len(), "{ctx} {key}");
                for (i, (o, t)) in ours.iter().zip(t).enumerate() {
                    keyed_matches(o, t, &format!("{ctx} {key} [{i}]"));
                }
            }
        }
        KeyedStateHandle::InMemoryChangelog(h) => {
            assert_eq!(theirs["class"], "InMemoryChangelogStateHandle", "{ctx}");
            assert_eq!(h.from, sequence_number(&theirs["from"]), "{ctx}");
            assert_eq!(h.to, sequence_number(&theirs["to"]), "{ctx}");
            assert_eq!(Some(h.change_count()), theirs["change_count"].as_u64(), "{ctx}");
            assert_eq!(Some(h.size()), theirs["change_bytes"].as_u64(), "{ctx}");
            assert_eq!(Some(h.state_handle_id.as_str()), theirs["state_handle_id"].as_str(), "{ctx}");
        }
        KeyedStateHandle::ChangelogStream(h) => {
            assert_eq!(theirs["class"], "ChangelogStateHandleStreamImpl", "{ctx}");
            let t = theirs["handles"].as_array().unwrap();
            assert_eq!(h.handles.len(), t.len(), "{ctx}");
            for (i, ((offset, stream), t)) in h.handles.iter().zip(t).enumerate() {
                assert_eq!(Some(*offset), t["offset"].as_u64(), "{ctx} [{i}]");
                stream_matches(stream, &t["handle"], &format!("{ctx} [{i}]"));
            }
            assert_eq!(Some(h.state_size), theirs["state_size"].as_u64(), "{ctx}");
            assert_eq!(Some(h.checkpointed_size), theirs["checkpointed_size"].as_u64(), "{ctx}");
            assert_eq!(Some(h.state_handle_id.as_str()), theirs["state_handle_id"].as_str(), "{ctx}");
            assert_eq!(Some(h.storage_identifier.as_str()), theirs["storage_identifier"].as_str(), "{ctx}");
        }
    }
}

/// Channel infos (gate/channel or partition/subpartition) of a merged channel-state handle's
/// `serializedChannelOffsets`: `i32 count`, then per channel `i32, i32, i64 size, i32 n, n x i64`.
fn merged_channel_infos(blob: &[u8]) -> Vec<(i32, i32)> {
    let i32_at = |p: usize| i32::from_be_bytes(blob[p..p + 4].try_into().unwrap());
    let mut p = 4;
    let mut out = Vec::new();
    for _ in 0..i32_at(0) {
        out.push((i32_at(p), i32_at(p + 4)));
        let n = i32_at(p + 16) as usize;
        p += 20 + 8 * n;
    }
    assert_eq!(p, blob.len(), "serialized channel offsets: trailing bytes");
    out
}

fn channel_matches(ours: &ChannelStateHandle, theirs: &J, ctx: &str) {
    let class = match ours.kind {
        ChannelStateKind::InputChannel => "InputChannelStateHandle",
        ChannelStateKind::ResultSubpartition => "ResultSubpartitionStateHandle",
        ChannelStateKind::MergedInputChannel => "MergedInputChannelStateHandle",
        ChannelStateKind::MergedResultSubpartition => "MergedResultSubpartitionStateHandle",
    };
    assert_eq!(theirs["class"], class, "{ctx}");
    assert_eq!(Some(ours.subtask_index as u64), theirs["subtask_index"].as_u64(), "{ctx}");
    assert_eq!(Some(ours.state_size), theirs["state_size"].as_u64(), "{ctx}");
    let info = |j: &J| (j[0].as_i64().unwrap() as i32, j[1].as_i64().unwrap() as i32);
    match ours.info {
        Some(i) => {
            assert_eq!(i, info(&theirs["info"]), "{ctx}");
            let offsets: Vec<u64> = theirs["offsets"].as_array().unwrap().iter().map(|o| o.as_u64().unwrap()).collect();
            assert_eq!(ours.offsets, offsets, "{ctx}");
        }
        None => {
            assert_eq!(Some(ours.merged_offsets.len() as u64), theirs["serialized_channel_offsets_size"].as_u64(), "{ctx}");
            let infos: Vec<(i32, i32)> = theirs["infos"].as_array().unwrap().iter().map(info).collect();
            assert_eq!(merged_channel_infos(&ours.merged_offsets), infos, "{ctx}");
        }
    }
    match &ours.delegate {
        Some(d) => stream_matches(d, &theirs["delegate"], &format!("{ctx} delegate")),
        None => assert!(theirs["delegate"].is_null(), "{ctx}"),
    }
}

fn operator_handle_matches(ours: &OperatorStateHandle, theirs: &J, ctx: &str) {
    let states = theirs["states"].as_object().unwrap();
    assert_eq!(ours.states.len(), states.len(), "{ctx}");
    for s in &ours.states {
        let t = &states[&s.name];
        assert_eq!(Some(s.mode.as_str()), t["mode"].as_str(), "{ctx} {}", s.name);
        let offsets: Vec<u64> = t["offsets"].as_array().unwrap().iter().map(|o| o.as_u64().unwrap()).collect();
        assert_eq!(s.offsets, offsets, "{ctx} {}", s.name);
    }
    stream_matches(&ours.delegate, &theirs["delegate"], &format!("{ctx} delegate"));
    match &ours.file_merging {
        // type 17: FileMergingOperatorStreamStateHandle, or its Empty… subclass
        Some(d) => {
            assert!(theirs["class"].as_str().unwrap().ends_with("FileMergingOperatorStreamStateHandle"), "{ctx}");
            assert_eq!(Some(d.task_owned_dir.as_str()), theirs["task_owned_dir"].as_str(), "{ctx}");
            assert_eq!(Some(d.shared_dir.as_str()), theirs["shared_dir"].as_str(), "{ctx}");
            assert_eq!(Some(d.is_empty), theirs["is_empty"].as_bool(), "{ctx}");
        }
        None => assert!(theirs.get("task_owned_dir").is_none(), "{ctx}: a file-merging handle read as type 4"),
    }
}

fn single<'a>(list: &'a J, ctx: &str) -> Option<&'a J> {
    let a = list.as_array().unwrap_or_else(|| panic!("{ctx}: not a list"));
    assert!(a.len() <= 1, "{ctx}: Flink writes at most one handle per kind");
    a.first()
}

#[test]
fn metadata_matches_what_flink_read() {
    let all = fixtures();
    assert!(all.len() >= 20, "expected the real-Flink fixtures, found {} snapshots", all.len());
    for fx in &all {
        let name = fx.name();
        let s = fx.open();
        let m = &s.metadata;
        let o = fx.oracle();
        assert_eq!(Some(m.version as u64), o["version"].as_u64(), "{name}");
        assert_eq!(Some(m.checkpoint_id), o["checkpoint_id"].as_u64(), "{name}");
        assert_eq!(Some(m.master_states.len() as u64), o["master_state_count"].as_u64(), "{name}");
        let ops = o["operators"].as_array().unwrap();
        assert_eq!(m.operators.len(), ops.len(), "{name}");
        for op in &m.operators {
            let id = op.operator_id.to_hex();
            let t = ops.iter().find(|t| t["operator_id"] == id.as_str()).unwrap_or_else(|| panic!("{name}: operator {id} unknown to Flink"));
            let ctx = format!("{name} operator {id}");
            assert_eq!(Some(op.parallelism as u64), t["parallelism"].as_u64(), "{ctx}");
            assert_eq!(Some(op.max_parallelism as u64), t["max_parallelism"].as_u64(), "{ctx}");
            // Flink 1.13 has no finished operators (no isFullyFinished, oracle null): never finished.
            assert_eq!(op.fully_finished, t["fully_finished"].as_bool().unwrap_or(false), "{ctx}");
            assert_eq!(op.coordinator_state.is_some(), !t["coordinator_state"].is_null(), "{ctx}");
            if m.version >= 5 {
                assert_eq!(op.uid.as_deref(), t["uid"].as_str(), "{ctx}");
                assert_eq!(op.name.as_deref(), t["name"].as_str(), "{ctx}");
            }
            // Flink derives the id from the uid, and so do we.
            if let Some(uid) = t["uid"].as_str() {
                assert_eq!(flinksnap::model::OperatorId::from_uid(uid), op.operator_id, "{ctx}");
            }
            let subtasks = t["subtasks"].as_array().unwrap();
            assert_eq!(op.subtasks.len(), subtasks.len(), "{ctx}");
            for st in &op.subtasks {
                let ts = subtasks.iter().find(|x| x["index"].as_u64() == Some(st.index as u64)).unwrap();
                let ctx = format!("{ctx} subtask {}", st.index);
                assert_eq!(st.finished, ts["finished"].as_bool().unwrap_or(false), "{ctx}");
                let Some(state) = &st.state else { continue };
                match (&state.managed_keyed_state, single(&ts["managed_keyed"], &ctx)) {
                    (Some(h), Some(t)) => keyed_matches(h, t, &format!("{ctx} managed keyed")),
                    (None, None) => {}
                    (a, b) => panic!("{ctx}: managed keyed {a:?} vs {b:?}"),
                }
                assert_eq!(state.raw_keyed_state.is_some(), single(&ts["raw_keyed"], &ctx).is_some(), "{ctx}");
                match (&state.managed_operator_state, single(&ts["managed_operator"], &ctx)) {
                    (Some(h), Some(t)) => operator_handle_matches(h, t, &format!("{ctx} managed operator")),
                    (None, None) => {}
                    (a, b) => panic!("{ctx}: managed operator {a:?} vs {b:?}"),
                }
                assert_eq!(state.raw_operator_state.is_some(), single(&ts["raw_operator"], &ctx).is_some(), "{ctx}");
                assert_eq!(Some(state.input_channel_state.len() as u64), ts["input_channel_handles"].as_u64(), "{ctx}");
                assert_eq!(Some(state.result_subpartition_state.len() as u64), ts["result_subpartition_handles"].as_u64(), "{ctx}");
                // the generator describes channel handles (only) where there are any
                for (ours, key) in [(&state.input_channel_state, "input_channel_state"), (&state.result_subpartition_state, "result_subpartition_state")] {
                    let theirs = ts.get(key).and_then(J::as_array).cloned().unwrap_or_default();
                    assert_eq!(ours.len(), theirs.len(), "{ctx} {key}");
                    for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
                        channel_matches(o, t, &format!("{ctx} {key} [{i}]"));
                    }
                }
            }
        }
        match (&m.properties, o.get("properties").filter(|p| p.is_object())) {
            (Some(p), Some(t)) => {
                assert_eq!(p.type_name, t["type_name"].as_str().unwrap(), "{name}");
                assert_eq!(p.is_savepoint, t["type_class"] == "SavepointType", "{name}");
                assert_eq!(p.format_type.as_deref(), t["format_type"].as_str(), "{name}");
                assert_eq!(p.sharing_files_strategy.as_deref(), t["sharing_files_strategy"].as_str(), "{name}");
                assert_eq!(Some(p.forced), t["forceCheckpoint"].as_bool(), "{name}");
                assert_eq!(Some(p.discard_subsumed), t["discardOnSubsumed"].as_bool(), "{name}");
                assert_eq!(Some(p.discard_cancelled), t["discardOnJobCancelled"].as_bool(), "{name}");
                assert_eq!(Some(p.unclaimed), t["isUnclaimed"].as_bool(), "{name}");
            }
            (None, None) => assert!(m.version < 4, "{name}: V4+ without properties"),
            (a, b) => panic!("{name}: properties {a:?} vs {b:?}"),
        }
    }
}

/// The format `inspect` must report for a case, from what the generator says it wrote.
fn expected_format(case: &J, metadata_version: i32) -> &'static str {
    match (case["kind"].as_str().unwrap(), case["format"].as_str().unwrap()) {
        (_, "canonical") => "canonical",
        ("savepoint", "native") => "native",
        ("checkpoint", "heap") if metadata_version >= 4 => "heap-checkpoint",
        ("checkpoint", "heap") => "full",
        ("checkpoint", "full") if metadata_version >= 4 => "native-full",
        ("checkpoint", "full") => "full",
        ("checkpoint", "incremental") => "incremental",
        ("checkpoint", "changelog") => "changelog",
        other => panic!("unknown case kind/format {other:?}"),
    }
}

#[test]
fn inspect_reports_kind_properties_and_files_of_every_fixture() {
    for fx in fixtures() {
        let name = fx.name();
        let path = fx.path();
        let mut args = vec!["inspect".to_owned(), path.clone(), "--format".into(), "json".into()];
        for u in fx.uids() {
            args.extend(["--uid".to_owned(), u]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let doc: J = serde_json::from_str(&flinksnap_ok(&args)).unwrap();
        assert_eq!(doc["schema_version"], 1);
        assert_eq!(doc["type"], "inspect");
        let d = &doc["data"];
        let version = d["metadata_version"].as_i64().unwrap() as i32;
        assert_eq!(d["format"], expected_format(&fx.case, version), "{name}");
        let savepoint = fx.case["kind"] == "savepoint";
        assert_eq!(d["snapshot_type"], if savepoint { "savepoint" } else { "checkpoint" }, "{name}");
        let p = &d["properties"];
        assert_eq!(p["user_controlled"], savepoint, "{name}");
        // A changelog checkpoint refers to materializations and state-change files written before.
        let incremental = fx.case["format"] == "incremental" || fx.case["format"] == "changelog";
        assert_eq!(p["incremental"], incremental, "{name}");
        assert_eq!(p["unified_format"], fx.case["format"] == "canonical", "{name}");
        // In-flight channel data cannot be redistributed.
        assert_eq!(p["rescalable"], fx.case["unaligned"] != true, "{name}");
        // Savepoints and full checkpoints keep all their files; incremental ones share, and
        // file-merging ones write into taskowned/ and shared/. Whatever Flink recorded with an
        // absolute path cannot move with the directory.
        let self_contained = !incremental && fx.case["file_merging"] != true;
        assert_eq!(p["self_contained"], self_contained, "{name}");
        let oracle_text = fx.oracle().to_string();
        let absolute = oracle_text.contains("\"FileStateHandle\"") || oracle_text.contains("\"SegmentFileStateHandle\"");
        assert_eq!(p["relocatable"], self_contained && !absolute, "{name}");
        // Every uid of the job names its operator.
        let uids: BTreeSet<String> = fx.uids().into_iter().collect();
        for op in d["operators"].as_array().unwrap() {
            let uid = op["uid"].as_str().unwrap_or_else(|| panic!("{name}: operator {} has no uid", op["operator_id"]));
            assert!(uids.contains(uid), "{name}: {uid}");
            assert_eq!(fx.case["uids"][uid], op["operator_id"], "{name}");
            assert_eq!(op["uid_source"], if version >= 5 { "metadata" } else { "argument" }, "{name}");
        }
        // The files inspect lists are exactly the files Flink's handles name.
        let oracle = fx.oracle();
        let mut flink_files = BTreeSet::new();
        collect_files(&oracle, &mut flink_files);
        let ours: BTreeSet<String> = d["operators"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|o| o["files"].as_array().unwrap().iter().map(|f| f["recorded"].as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(ours, flink_files, "{name}");
        let t = &d["totals"];
        assert_eq!(
            t["own_files"].as_u64().unwrap() + t["shared_files"].as_u64().unwrap(),
            flink_files.len() as u64,
            "{name}"
        );
        assert!(t["total_bytes"].as_u64().unwrap() > 0, "{name}");
    }
}

fn collect_files(j: &J, out: &mut BTreeSet<String>) {
    match j {
        J::Object(m) => {
            match m.get("class").and_then(J::as_str) {
                Some("RelativeFileStateHandle") => {
                    out.insert(m["relative_path"].as_str().unwrap().to_owned());
                }
                Some("FileStateHandle") | Some("SegmentFileStateHandle") => {
                    out.insert(m["path"].as_str().unwrap().to_owned());
                }
                _ => {}
            }
            m.values().for_each(|v| collect_files(v, out));
        }
        J::Array(a) => a.iter().for_each(|v| collect_files(v, out)),
        _ => {}
    }
}

#[test]
fn inspect_table_and_json_are_pinned() {
    // One snapshot per (version, case): the table and JSON of the last snapshot of each case.
    let mut last = std::collections::BTreeMap::new();
    for fx in fixtures() {
        last.insert(fx.case_dir.clone(), fx);
    }
    for fx in last.values() {
        let path = fx.path();
        let version = fx.case["flink_version"].as_str().unwrap();
        let case = fx.case["case"].as_str().unwrap();
        let table = flinksnap_ok(&["inspect", &path]);
        let json = flinksnap_ok(&["inspect", &path, "--format", "json"]);
        insta::with_settings!({snapshot_suffix => format!("{version}-{case}"), prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!("inspect_table", table);
            insta::assert_snapshot!("inspect_json", json);
        });
    }
}

#[test]
fn a_missing_referenced_file_is_named() {
    // A canonical savepoint with a state file beside `_metadata` (small ones are all inline).
    let has_file = |f: &Fixture| std::fs::read_dir(root().join(f.path())).unwrap().flatten().any(|e| e.file_name() != "_metadata");
    let fx = fixtures().into_iter().find(|f| f.case["format"] == "canonical" && has_file(f)).expect("a canonical fixture with a state file");
    let tmp = tempfile::tempdir().unwrap();
    let src = root().join(fx.path());
    let dst = tmp.path().join("savepoint-copy");
    copy_dir(&src, &dst);
    let victim = std::fs::read_dir(&dst).unwrap().flatten().map(|e| e.path()).find(|p| p.file_name().unwrap() != "_metadata").unwrap();
    std::fs::remove_file(&victim).unwrap();
    let out = flinksnap(&["inspect", dst.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(victim.file_name().unwrap().to_str().unwrap()) && stderr.contains("not found"), "{stderr}");
    assert!(stderr.contains("_metadata"), "names the referencing _metadata: {stderr}");
}

#[test]
fn a_moved_incremental_checkpoint_is_rebased() {
    let Some(fx) = fixtures().into_iter().find(|f| f.case["format"] == "incremental") else { panic!("no incremental fixture") };
    // Copy the whole job directory (chk-N and shared/) somewhere else.
    let snap_dir = root().join(fx.path());
    let job_dir = snap_dir.parent().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let new_job = tmp.path().join(job_dir.file_name().unwrap());
    copy_dir(job_dir, &new_job);
    let moved = new_job.join(snap_dir.file_name().unwrap());
    // The recorded absolute paths may exist on this machine (where Flink wrote the fixture, or
    // a test placed it there): then they are used as they are, and nothing is re-based. Point
    // them at a directory that cannot exist (same length, so `_metadata` stays well formed).
    let meta = moved.join("_metadata");
    let bytes = std::fs::read(&meta).unwrap();
    let first = {
        let at = bytes.windows(6).position(|w| w == b"file:/").expect("absolute paths in _metadata") + 5;
        let end = at + 1 + bytes[at + 1..].iter().position(|&b| b == b'/').unwrap();
        bytes[at..end].to_vec()
    };
    let mut fake = first.clone();
    fake[1..].fill(b'q');
    assert!(!std::path::Path::new(std::str::from_utf8(&fake).unwrap()).exists());
    let mut rewritten = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"file:") && bytes[i + 5..].starts_with(&first) {
            rewritten.extend_from_slice(b"file:");
            rewritten.extend_from_slice(&fake);
            i += 5 + first.len();
        } else {
            rewritten.push(bytes[i]);
            i += 1;
        }
    }
    std::fs::write(&meta, &rewritten).unwrap();
    let doc: J = serde_json::from_str(&flinksnap_ok(&["inspect", moved.to_str().unwrap(), "--format", "json"])).unwrap();
    let files: Vec<&J> = doc["data"]["operators"].as_array().unwrap().iter().flat_map(|o| o["files"].as_array().unwrap()).collect();
    let shared: Vec<&&J> = files.iter().filter(|f| f["own"] == false).collect();
    assert!(!shared.is_empty());
    for f in &shared {
        // Recorded where Flink wrote it, found where it is now.
        assert!(f["path"].as_str().unwrap().starts_with("../shared/"), "{f}");
    }
    assert!(shared.iter().all(|f| f["rebased"] == true), "every shared file is found by re-basing: {shared:#?}");
    // Removing a shared file makes it an error that names it.
    let victim = new_job.join(shared[0]["path"].as_str().unwrap().trim_start_matches("../"));
    std::fs::remove_file(&victim).unwrap();
    let out = flinksnap(&["inspect", moved.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(victim.file_name().unwrap().to_str().unwrap()), "{stderr}");
}

pub fn copy_dir(src: &std::path::Path, dst: &std::path::Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let p = e.path();
        let to = dst.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &to);
        } else {
            std::fs::copy(&p, &to).unwrap();
        }
    }
}
