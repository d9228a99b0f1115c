//! `verify`: does a snapshot hold what its `_metadata` says, so that Flink can restore it?
//!
//! The invariants checked, by level:
//!
//! **shallow**
//! 1. `_metadata` parses (every version 2–7, every handle).
//! 2. Every file a handle references exists (resolved as `Snapshot::resolve` does: relative to the
//!    snapshot directory, absolute, or re-based after a move) and has the size `_metadata` records
//!    for it (a file-merging segment: the file reaches the segment's end).
//!
//! **full** (also)
//! 3. Each keyed operator's managed key-group ranges, over its subtasks, cover
//!    `0..max parallelism` exactly once and lie inside it.
//! 4. Every managed keyed handle's serialization proxy and every key group parse, every entry
//!    decodes (values a serializer flinksnap cannot interpret are counted as opaque, not failed),
//!    and every key whose Java hash is computable lies in the key group that holds it (Flink
//!    writes no checksums, so a flipped byte in a key is caught here, one in a value only when it
//!    breaks the value's structure).
//! 5. Every managed operator-state handle's proxy and elements decode.
//!
//! Raw (user-serialized) keyed and operator state are checked as files only. RocksDB native and
//! changelog handles are decoded through the snapshot-wide entry iterator (every entry, with the
//! logged changes applied, and its key checked against the key group it is stored under); what
//! flinksnap cannot read yet (e.g. changelog over RocksDB) is
//! reported as "not checked (unsupported)", never as a problem.
//!
//! A finding names the operator (uid where known), subtask, file and byte offset where they are
//! known. Severity `error` makes the snapshot unsound; `warning` and `info` do not.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use crate::error::Error;
use crate::metadata::handles::{KeyGroupsStateHandle, KeyedStateHandle, StreamRole, StreamStateHandle};
use crate::metadata::OperatorState;
use crate::model::{KeyGroupRange, OperatorId};
use crate::readers::entries::{Selection, SnapshotEntries};
use crate::readers::keyed::KeyedHandleReader;
use crate::readers::operator::read_operator_state;
use crate::readers::states::snapshot_states;
use crate::readers::serializers::{key_group_for_hash, key_hash_code};
use crate::snapshot::{ResolvedFile, Snapshot, StreamRef, METADATA_FILE};
use crate::storage::{Location, Storage};

/// Flink's upper bound of max parallelism (`KeyGroupRangeAssignment.UPPER_BOUND_MAX_PARALLELISM`).
pub const UPPER_BOUND_MAX_PARALLELISM: u32 = 1 << 15;

/// How much to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// `_metadata` parses; every referenced file exists with its recorded size.
    Shallow,
    /// Also every handle, key group and entry decodes and key groups are covered exactly once.
    Full,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The snapshot is not sound.
    Error,
    /// Worth knowing; Flink can still restore the snapshot.
    Warning,
    /// A limit of the check (e.g. not checked because unsupported).
    Info,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// `_metadata` does not parse.
    Metadata,
    /// A referenced file does not exist.
    MissingFile,
    /// A referenced file's size differs from the recorded one.
    SizeMismatch,
    /// A referenced file could not be read (I/O).
    UnreadableFile,
    /// State bytes do not decode.
    Decode,
    /// A key lies in a key group its hash does not map to.
    WrongKeyGroup,
    /// A key-group range reaches past max parallelism.
    KeyGroupOutOfRange,
    /// Two subtasks hold the same key groups.
    KeyGroupOverlap,
    /// Key groups no subtask holds.
    KeyGroupGap,
    /// Not checked: flinksnap cannot read this yet.
    Unsupported,
    /// Not checked: raw state is user-serialized, or a file it needs failed its own check.
    NotChecked,
}

/// One thing found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// What kind.
    pub kind: FindingKind,
    /// The operator.
    pub operator_id: Option<OperatorId>,
    /// Its uid, where known.
    pub operator_uid: Option<String>,
    /// The subtask.
    pub subtask: Option<u32>,
    /// The file (as found or expected on disk; `_metadata` for inline state).
    pub file: Option<String>,
    /// The byte offset in the file.
    pub offset: Option<u64>,
    /// What is wrong, in words.
    pub message: String,
}

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// No finding.
    Passed,
    /// At least one error.
    Failed,
    /// Warnings only.
    Warning,
    /// Not checked (unsupported, or depends on something that failed).
    NotChecked,
}

/// One check (a JUnit test case).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked against: `metadata`, `files` or `operator <uid (id)>`.
    pub suite: String,
    /// The check, e.g. `_metadata parses`, a file path, `subtask 0 managed keyed state`.
    pub name: String,
    /// Outcome.
    pub status: CheckStatus,
    /// What was found.
    pub findings: Vec<Finding>,
}

/// Counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyTotals {
    /// Checks run.
    pub checks: usize,
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Warnings only.
    pub warnings: usize,
    /// Not checked.
    pub not_checked: usize,
    /// Referenced files checked.
    pub files: usize,
    /// Their bytes on disk.
    pub file_bytes: u64,
    /// Key groups decoded.
    pub key_groups: u64,
    /// Entries decoded.
    pub entries: u64,
    /// Values kept opaque (serializers flinksnap cannot interpret).
    pub opaque_values: u64,
}

/// The result of `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The snapshot directory.
    pub path: String,
    /// The level checked.
    pub level: Level,
    /// No error found.
    pub sound: bool,
    /// Checkpoint id, when `_metadata` parsed.
    pub checkpoint_id: Option<u64>,
    /// Counts.
    pub totals: VerifyTotals,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl VerifyReport {
    /// Every error finding.
    pub fn problems(&self) -> impl Iterator<Item = &Finding> {
        self.checks.iter().flat_map(|c| &c.findings).filter(|f| f.severity == Severity::Error)
    }
}

/// Checks the snapshot at `path` (a snapshot directory or its `_metadata`). Fails only when it
/// cannot run: nothing at `path`, or no `_metadata` there; a `_metadata` that does not parse is a
/// finding.
pub fn verify(storage: Arc<dyn Storage>, path: &str, level: Level, uids: &[String]) -> crate::Result<VerifyReport> {
    let loc = Location::new(path);
    let head = storage.head(&loc)?;
    let metadata_location = if head.is_dir { loc.join(METADATA_FILE) } else { loc.clone() };
    let dir = metadata_location.parent().unwrap_or_else(|| Location::new("."));
    if !storage.exists(&metadata_location)? {
        return Err(Error::Invalid(format!(
            "{loc}: no {METADATA_FILE} file: not a snapshot directory (or an incomplete checkpoint)"
        )));
    }
    let mut v = Verifier { checks: Vec::new(), totals: VerifyTotals::default(), uids };
    let snapshot = match Snapshot::open(storage, metadata_location.as_str()) {
        Ok(s) => {
            v.check("metadata", "_metadata parses", Vec::new());
            s
        }
        Err(e) => {
            let (file, offset, message) = describe(&e);
            let f = Finding {
                severity: Severity::Error,
                kind: FindingKind::Metadata,
                operator_id: None,
                operator_uid: None,
                subtask: None,
                file: Some(file.unwrap_or_else(|| metadata_location.to_string())),
                offset,
                message,
            };
            v.check("metadata", "_metadata parses", vec![f]);
            return Ok(v.report(dir.to_string(), level, None));
        }
    };
    let failed_files = v.files(&snapshot);
    if level == Level::Full {
        for op in &snapshot.metadata.operators {
            v.operator(&snapshot, op, &failed_files);
        }
    }
    Ok(v.report(snapshot.dir.to_string(), level, Some(snapshot.metadata.checkpoint_id)))
}

struct Verifier<'u> {
    checks: Vec<Check>,
    totals: VerifyTotals,
    uids: &'u [String],
}

/// File, offset and message of an error.
fn describe(e: &Error) -> (Option<String>, Option<u64>, String) {
    match e {
        Error::Decode { file, error } => (Some(file.clone()), Some(error.offset), e.to_string()),
        Error::NotFound { file, .. } | Error::Io { file, .. } => (Some(file.clone()), None, e.to_string()),
        _ => (None, None, e.to_string()),
    }
}

/// Errors that mean "flinksnap cannot read this yet" rather than "this is broken": handles whose
/// reader lives on another branch, file systems without a storage implementation.
fn is_unsupported(e: &Error) -> bool {
    matches!(e, Error::Invalid(m) if m.contains("not readable yet") || m.contains("not supported yet"))
}

/// Where an inline stream is, for messages.
fn stream_file(s: &Snapshot, h: &StreamStateHandle, resolved: Option<&ResolvedFile>) -> String {
    match (resolved, Snapshot::recorded_path(h)) {
        (Some(r), _) => r.location.to_string(),
        (None, Some((p, true))) => s.dir.join(p).to_string(),
        (None, Some((p, false))) => p.to_owned(),
        (None, None) => s.metadata_location.to_string(),
    }
}

impl Verifier<'_> {
    fn finding(&self, s: &Snapshot, op: Option<&OperatorState>, subtask: Option<u32>, severity: Severity, kind: FindingKind) -> Finding {
        Finding {
            severity,
            kind,
            operator_id: op.map(|o| o.operator_id),
            operator_uid: op.and_then(|o| super::operator_uid(s, &o.operator_id, self.uids)),
            subtask,
            file: None,
            offset: None,
            message: String::new(),
        }
    }

    fn check(&mut self, suite: &str, name: &str, findings: Vec<Finding>) {
        let status = if findings.iter().any(|f| f.severity == Severity::Error) {
            CheckStatus::Failed
        } else if findings.iter().any(|f| matches!(f.kind, FindingKind::Unsupported | FindingKind::NotChecked)) {
            CheckStatus::NotChecked
        } else if findings.iter().any(|f| f.severity == Severity::Warning) {
            CheckStatus::Warning
        } else {
            CheckStatus::Passed
        };
        self.checks.push(Check { suite: suite.to_owned(), name: name.to_owned(), status, findings });
    }

    fn report(mut self, path: String, level: Level, checkpoint_id: Option<u64>) -> VerifyReport {
        let t = &mut self.totals;
        t.checks = self.checks.len();
        for c in &self.checks {
            match c.status {
                CheckStatus::Passed => t.passed += 1,
                CheckStatus::Failed => t.failed += 1,
                CheckStatus::Warning => t.warnings += 1,
                CheckStatus::NotChecked => t.not_checked += 1,
            }
        }
        let sound = t.failed == 0;
        VerifyReport { path, level, sound, checkpoint_id, totals: self.totals, checks: self.checks }
    }

    /// Invariant 2, once per referenced file; returns the recorded paths of files that failed.
    fn files(&mut self, s: &Snapshot) -> BTreeSet<String> {
        // Group the streams by the file they name, in file order.
        let mut order: Vec<&str> = Vec::new();
        let mut by_file: BTreeMap<&str, Vec<StreamRef<'_>>> = BTreeMap::new();
        let streams = s.streams();
        for r in &streams {
            let Some((recorded, _)) = Snapshot::recorded_path(r.handle) else { continue };
            let e = by_file.entry(recorded).or_default();
            if e.is_empty() {
                order.push(recorded);
            }
            e.push(*r);
        }
        let mut failed = BTreeSet::new();
        for recorded in order {
            let refs = &by_file[recorded];
            let first = refs[0];
            let op = first.operator.map(|i| &s.metadata.operators[i]);
            let mut who = match op {
                Some(o) => format!("operator {}", super::operator_label(s, &o.operator_id, self.uids)),
                None => "the snapshot".to_owned(),
            };
            if let Some(st) = first.subtask {
                who.push_str(&format!(" subtask {st}"));
            }
            who.push_str(&format!(" ({}", role_name(first.role)));
            if let Some(l) = first.local_name {
                who.push_str(&format!(" {l}"));
            }
            who.push(')');
            if refs.len() > 1 {
                who.push_str(&format!(" and {} more", refs.len() - 1));
            }
            // What the file must hold: its recorded size, or the end of its furthest segment.
            // A state-change log (DSTL) file starts with a compression flag byte that its recorded
            // size leaves out (seen in real Flink 1.20 and 2.3 changelog checkpoints).
            let dstl_flag = u64::from(refs.iter().all(|r| r.role == StreamRole::Changelog));
            let expected = refs.iter().map(|r| expected_len(r.handle)).max().unwrap_or(0) + dstl_flag;
            let exact = !refs.iter().any(|r| matches!(r.handle, StreamStateHandle::SegmentFile { .. }));
            let mut f = self.finding(s, op, first.subtask, Severity::Error, FindingKind::MissingFile);
            let (name, finding) = match s.resolve(first.handle) {
                Ok(Some(rf)) => {
                    let name = display_path(s, &rf.location);
                    f.file = Some(rf.location.to_string());
                    match s.storage().head(&rf.location) {
                        Ok(meta) => {
                            self.totals.files += 1;
                            self.totals.file_bytes += meta.size;
                            if (exact && meta.size != expected) || meta.size < expected {
                                f.kind = FindingKind::SizeMismatch;
                                f.offset = Some(meta.size.min(expected));
                                f.message = if meta.size < expected {
                                    format!("{}: truncated: {} bytes, _metadata records {expected} (referenced by {who})", rf.location, meta.size)
                                } else {
                                    format!("{}: {} bytes, _metadata records {expected} (referenced by {who})", rf.location, meta.size)
                                };
                                (name, Some(f))
                            } else {
                                (name, None)
                            }
                        }
                        Err(e) => {
                            f.kind = FindingKind::UnreadableFile;
                            f.message = format!("{e} (referenced by {who})");
                            (name, Some(f))
                        }
                    }
                }
                Ok(None) => continue,
                Err(e) if is_unsupported(&e) => {
                    f.severity = Severity::Info;
                    f.kind = FindingKind::Unsupported;
                    f.file = Some(recorded.to_owned());
                    f.message = format!("not checked (unsupported): {e}");
                    (recorded.to_owned(), Some(f))
                }
                Err(e) => {
                    let (file, _, message) = describe(&e);
                    if !matches!(e, Error::NotFound { .. }) {
                        f.kind = FindingKind::UnreadableFile;
                    }
                    // Name the file where it should be now: beside `_metadata`, or where the
                    // recorded absolute path re-bases to.
                    let (name, expected_at) = match Snapshot::recorded_path(first.handle) {
                        Some((p, true)) => (p.to_owned(), Some(s.dir.join(p))),
                        _ => match s.rebase(&Location::new(recorded)) {
                            Some(l) => (display_path(s, &l), Some(l)),
                            None => (recorded.to_owned(), None),
                        },
                    };
                    let found = matches!(e, Error::NotFound { .. });
                    f.file = Some(match (found, expected_at) {
                        (true, Some(l)) => l.to_string(),
                        _ => file.unwrap_or_else(|| recorded.to_owned()),
                    });
                    f.message = format!("{message}; needed by {who}");
                    (name, Some(f))
                }
            };
            if finding.as_ref().is_some_and(|f| f.severity == Severity::Error) {
                failed.insert(recorded.to_owned());
            }
            self.check("files", &name, finding.into_iter().collect());
        }
        failed
    }

    /// Invariants 3 to 5 for one operator.
    fn operator(&mut self, s: &Snapshot, op: &OperatorState, failed_files: &BTreeSet<String>) {
        let suite = format!("operator {}", super::operator_label(s, &op.operator_id, self.uids));
        let mut keyed: Vec<(u32, &KeyedStateHandle)> = Vec::new();
        let mut without_keyed: Vec<u32> = Vec::new();
        for st in &op.subtasks {
            match st.state.as_ref().and_then(|x| x.managed_keyed_state.as_ref()) {
                Some(h) => keyed.push((st.index, h)),
                None => without_keyed.push(st.index),
            }
        }
        let uses_failed = |h: &KeyedStateHandle| {
            h.streams().iter().any(|(_, x)| Snapshot::recorded_path(x).is_some_and(|(p, _)| failed_files.contains(p)))
        };
        if !keyed.is_empty() {
            let findings = self.coverage(s, op, &keyed, &without_keyed);
            self.check(&suite, "key-group coverage", findings);
            if keyed.iter().all(|(_, h)| matches!(h, KeyedStateHandle::KeyGroups(_))) {
                for (subtask, h) in &keyed {
                    let KeyedStateHandle::KeyGroups(k) = h else { continue };
                    let name = format!("subtask {subtask} managed keyed state");
                    let findings = if uses_failed(h) {
                        vec![self.not_checked_dependent(s, op, *subtask)]
                    } else {
                        self.key_groups(s, op, *subtask, k)
                    };
                    self.check(&suite, &name, findings);
                }
            } else if keyed.iter().any(|(_, h)| uses_failed(h)) {
                let f = self.not_checked_dependent(s, op, keyed[0].0);
                self.check(&suite, "managed keyed state", vec![f]);
            } else {
                let findings = self.keyed_via_entries(s, op, &keyed);
                self.check(&suite, "managed keyed state", findings);
            }
        }
        for st in &op.subtasks {
            let Some(state) = &st.state else { continue };
            if let Some(h) = &state.managed_operator_state {
                let name = format!("subtask {} managed operator state", st.index);
                let fails = Snapshot::recorded_path(&h.delegate).is_some_and(|(p, _)| failed_files.contains(p));
                let findings = if fails {
                    vec![self.not_checked_dependent(s, op, st.index)]
                } else {
                    match read_operator_state(s, op.operator_id, h) {
                        Ok(entries) => {
                            self.totals.entries += entries.len() as u64;
                            self.totals.opaque_values += entries.iter().map(|e| e.opaque_count() as u64).sum::<u64>();
                            Vec::new()
                        }
                        Err(e) => vec![self.error_finding(s, op, Some(st.index), &e, Some(&h.delegate))],
                    }
                };
                self.check(&suite, &name, findings);
            }
            for (what, present) in [("raw keyed state", state.raw_keyed_state.is_some()), ("raw operator state", state.raw_operator_state.is_some())] {
                if present {
                    let mut f = self.finding(s, Some(op), Some(st.index), Severity::Info, FindingKind::NotChecked);
                    f.message = format!("{what} is serialized by user code: its files were checked, its contents are not decoded");
                    self.check(&suite, &format!("subtask {} {what}", st.index), vec![f]);
                }
            }
        }
    }

    fn not_checked_dependent(&self, s: &Snapshot, op: &OperatorState, subtask: u32) -> Finding {
        let mut f = self.finding(s, Some(op), Some(subtask), Severity::Info, FindingKind::NotChecked);
        f.message = "not decoded: a file it needs failed its file check".into();
        f
    }

    fn error_finding(&self, s: &Snapshot, op: &OperatorState, subtask: Option<u32>, e: &Error, stream: Option<&StreamStateHandle>) -> Finding {
        let (file, offset, message) = describe(e);
        let unsupported = is_unsupported(e);
        let mut f = self.finding(
            s,
            Some(op),
            subtask,
            if unsupported { Severity::Info } else { Severity::Error },
            if unsupported { FindingKind::Unsupported } else { FindingKind::Decode },
        );
        f.file = file.or_else(|| stream.map(|h| stream_file(s, h, s.resolve(h).ok().flatten().as_ref())));
        f.offset = offset;
        f.message = if unsupported { format!("not checked (unsupported): {message}") } else { message };
        f
    }

    /// Invariant 3.
    fn coverage(&self, s: &Snapshot, op: &OperatorState, keyed: &[(u32, &KeyedStateHandle)], without_keyed: &[u32]) -> Vec<Finding> {
        let max = op.max_parallelism;
        let mut out = Vec::new();
        if max == 0 || max > UPPER_BOUND_MAX_PARALLELISM {
            let mut f = self.finding(s, Some(op), None, Severity::Error, FindingKind::KeyGroupOutOfRange);
            f.file = Some(s.metadata_location.to_string());
            f.message = format!("max parallelism {max} is outside Flink's 1..={UPPER_BOUND_MAX_PARALLELISM}");
            return vec![f];
        }
        let mut owner: Vec<Option<u32>> = vec![None; max as usize];
        let mut overlaps: BTreeMap<(u32, u32), (u32, u32)> = BTreeMap::new();
        for &(subtask, h) in keyed {
            let r = h.key_group_range();
            let end = r.start as u64 + r.len as u64;
            if end > max as u64 {
                let mut f = self.finding(s, Some(op), Some(subtask), Severity::Error, FindingKind::KeyGroupOutOfRange);
                f.file = Some(s.metadata_location.to_string());
                f.message = format!("subtask {subtask} holds key groups {r}, beyond max parallelism {max}");
                out.push(f);
            }
            for kg in r.start..(end.min(max as u64) as u32) {
                match owner[kg as usize] {
                    Some(other) => {
                        let e = overlaps.entry((other, subtask)).or_insert((kg, kg));
                        e.1 = kg;
                    }
                    None => owner[kg as usize] = Some(subtask),
                }
            }
        }
        for ((a, b), (first, last)) in overlaps {
            let mut f = self.finding(s, Some(op), Some(b), Severity::Error, FindingKind::KeyGroupOverlap);
            f.file = Some(s.metadata_location.to_string());
            f.message = format!("subtasks {a} and {b} both hold key groups {first}..={last}");
            out.push(f);
        }
        let mut kg = 0u32;
        while kg < max {
            if owner[kg as usize].is_some() {
                kg += 1;
                continue;
            }
            let start = kg;
            while kg < max && owner[kg as usize].is_none() {
                kg += 1;
            }
            let expected = (0..op.parallelism.max(1)).find(|&i| KeyGroupRange::for_subtask(max, op.parallelism.max(1), i).contains(start));
            // A subtask whose backend had no state registered writes no keyed handle at all
            // (and a finished one writes nothing): its key groups are empty, not lost.
            let explained = expected.is_some_and(|i| without_keyed.contains(&i) || !op.subtasks.iter().any(|st| st.index == i));
            let mut f = self.finding(
                s,
                Some(op),
                expected,
                if explained { Severity::Warning } else { Severity::Error },
                FindingKind::KeyGroupGap,
            );
            f.file = Some(s.metadata_location.to_string());
            f.message = match (expected, explained) {
                (Some(i), true) => format!("key groups {start}..={} are in no keyed state handle: subtask {i} stored no keyed state (no state registered, or finished)", kg - 1),
                (Some(i), false) => format!("key groups {start}..={} are in no keyed state handle (Flink assigns them to subtask {i})", kg - 1),
                (None, _) => format!("key groups {start}..={} are in no keyed state handle", kg - 1),
            };
            out.push(f);
        }
        out
    }

    /// Invariant 4 for a key-groups handle: proxy, every key group, every entry, key hashing.
    fn key_groups(&mut self, s: &Snapshot, op: &OperatorState, subtask: u32, h: &KeyGroupsStateHandle) -> Vec<Finding> {
        let reader = match KeyedHandleReader::open(s, op.operator_id, op.max_parallelism, h) {
            Ok(r) => r,
            Err(e) => return vec![self.error_finding(s, op, Some(subtask), &e, Some(&h.delegate))],
        };
        let file = stream_file(s, &h.delegate, s.resolve(&h.delegate).ok().flatten().as_ref());
        let mut out = Vec::new();
        let key_serializer = reader.meta().key_serializer.clone();
        let kgs: Vec<u32> = reader.key_groups().collect();
        for kg in kgs {
            let offset = h.offsets.get((kg - h.key_group_range.start) as usize).map(|&o| o as u64);
            match reader.read_key_group(kg) {
                Ok(entries) => {
                    self.totals.key_groups += 1;
                    self.totals.entries += entries.len() as u64;
                    let mut wrong = 0usize;
                    let mut example = None;
                    for e in &entries {
                        self.totals.opaque_values += e.opaque_count() as u64;
                        let Some(key) = &e.key else { continue };
                        let Some(hash) = key_hash_code(&key_serializer, key, &e.raw.key) else { continue };
                        let want = key_group_for_hash(hash, op.max_parallelism);
                        if want != kg {
                            wrong += 1;
                            example.get_or_insert_with(|| (e.state.clone(), key.to_json().to_string(), want));
                        }
                    }
                    if let Some((state, key, want)) = example {
                        let mut f = self.finding(s, Some(op), Some(subtask), Severity::Error, FindingKind::WrongKeyGroup);
                        f.file = Some(file.clone());
                        f.offset = offset;
                        f.message = format!(
                            "{file}: key group {kg} (at byte offset {}) holds {wrong} entries whose key hashes to another key group, e.g. state {state:?} key {key} belongs in key group {want}: a corrupted key",
                            offset.unwrap_or(0)
                        );
                        out.push(f);
                    }
                }
                Err(e) => {
                    let mut f = self.error_finding(s, op, Some(subtask), &e, Some(&h.delegate));
                    if f.offset.is_none() {
                        f.offset = offset;
                    }
                    if !f.message.contains(&format!("key group {kg}")) {
                        f.message = format!("key group {kg}: {}", f.message);
                    }
                    out.push(f);
                }
            }
        }
        out
    }

    /// Invariant 4 for handles read through the snapshot-wide entry iterator (RocksDB native and
    /// changelog): every entry decodes, and every key whose Java hash is computable lies in the
    /// key group it is stored under.
    fn keyed_via_entries(&mut self, s: &Snapshot, op: &OperatorState, keyed: &[(u32, &KeyedStateHandle)]) -> Vec<Finding> {
        let selection = Selection {
            operators: vec![op.operator_id],
            states: Vec::new(),
            key_groups: Some(KeyGroupRange::new(0, op.max_parallelism)),
        };
        // The subtask whose handle an error or a key group belongs to.
        let subtask_of_error = |e: &Error| {
            keyed
                .iter()
                .find(|(_, h)| h.streams().iter().any(|(_, x)| Snapshot::recorded_path(x).is_some_and(|(p, _)| e.to_string().contains(p))))
                .map(|(i, _)| *i)
        };
        let subtask_of_kg = |kg: u32| keyed.iter().find(|(_, h)| h.key_group_range().contains(kg)).map(|(i, _)| *i);
        let key_serializer = match snapshot_states(s, &selection) {
            Ok(states) => states.into_iter().flat_map(|(_, v)| v).find_map(|i| i.key_serializer),
            Err(e) => return vec![self.error_finding(s, op, subtask_of_error(&e), &e, None)],
        };
        let mut key_groups = BTreeSet::new();
        // Per key group: entries whose key hashes elsewhere, and the first of them.
        let mut wrong: BTreeMap<u32, (usize, String, String, u32)> = BTreeMap::new();
        for e in SnapshotEntries::new(s, selection) {
            match e {
                Ok(e) => {
                    self.totals.entries += 1;
                    self.totals.opaque_values += e.opaque_count() as u64;
                    let Some(kg) = e.key_group else { continue };
                    key_groups.insert(kg);
                    let (Some(ser), Some(key)) = (&key_serializer, &e.key) else { continue };
                    let Some(hash) = key_hash_code(ser, key, &e.raw.key) else { continue };
                    let want = key_group_for_hash(hash, op.max_parallelism);
                    if want != kg {
                        let w = wrong.entry(kg).or_insert_with(|| (0, e.state.clone(), key.to_json().to_string(), want));
                        w.0 += 1;
                    }
                }
                // The iterator stops at its first error; which subtask is known only when the
                // message names the handle's file.
                Err(e) => return vec![self.error_finding(s, op, subtask_of_error(&e), &e, None)],
            }
        }
        self.totals.key_groups += key_groups.len() as u64;
        wrong
            .into_iter()
            .map(|(kg, (n, state, key, want))| {
                let mut f = self.finding(s, Some(op), subtask_of_kg(kg), Severity::Error, FindingKind::WrongKeyGroup);
                f.message = format!(
                    "key group {kg} holds {n} entries whose key hashes to another key group, e.g. state {state:?} key {key} belongs in key group {want}: a corrupted key"
                );
                f
            })
            .collect()
    }
}

fn expected_len(h: &StreamStateHandle) -> u64 {
    match h {
        StreamStateHandle::SegmentFile { start, size, .. } => start + size,
        StreamStateHandle::KeyGroups(k) => expected_len(&k.delegate),
        other => other.size(),
    }
}

fn role_name(r: crate::metadata::handles::StreamRole) -> &'static str {
    use crate::metadata::handles::StreamRole as R;
    match r {
        R::KeyedData => "keyed state",
        R::KeyedMeta => "RocksDB meta data",
        R::Shared => "shared SST",
        R::Private => "private RocksDB file",
        R::Changelog => "state changelog",
        R::OperatorData => "operator state",
        R::ChannelData => "channel state",
        R::Coordinator => "coordinator state",
        R::Master => "master state",
    }
}

/// A path relative to the snapshot directory (`../shared/…` beside it), else as it is.
pub(crate) fn display_path(s: &Snapshot, loc: &Location) -> String {
    if let Some(rel) = loc.strip_prefix(&s.dir) {
        return rel.to_owned();
    }
    match s.dir.parent().and_then(|p| loc.strip_prefix(&p).map(str::to_owned)) {
        Some(rel) => format!("../{rel}"),
        None => loc.to_string(),
    }
}
