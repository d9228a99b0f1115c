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
//! Raw (user-serialized) keyed and operator state are checked as files only. Managed keyed state
//! is read the same way whatever the handle kind (key-grouped stream, RocksDB native, changelog
//! with its logged changes applied): through one [`KeyedSource`](crate::readers::source::KeyedSource)
//! per subtask, key group by key group. What flinksnap cannot read (in this build, or yet:
//! [`Error::Unsupported`]) is reported as "not checked (unsupported)", never as a problem.
//!
//! A finding names the operator (uid where known), subtask, file and position where they are
//! known — the position typed: a byte offset in the file, an offset in a decompressed block, or
//! an offset inside a stored key or value. Severity `error` makes the snapshot unsound; `warning`
//! and `info` do not.
//!
//! Structure: `files` checks invariant 2, `keyed` invariants 3 and 4, this module the rest and the
//! report.

mod files;
mod keyed;

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Position};
use crate::metadata::handles::{KeyedStateHandle, StreamStateHandle};
use crate::metadata::OperatorState;
use crate::model::{OperatorId, SubtaskRef};
use crate::readers::operator::{read_operator_meta, read_operator_state_reporting};
use crate::readers::undecodable::Undecodable;
use crate::snapshot::{ResolvedFile, Snapshot, METADATA_FILE};
use crate::storage::{Location, Storage};

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
    /// The byte offset in the file nearest to the problem: exact for a file offset, the start
    /// of the compressed block for an offset in decompressed bytes; `None` inside a stored
    /// RocksDB key or value (see `position`).
    pub offset: Option<u64>,
    /// Where exactly, and what the offset counts (`file_offset`, `decompressed_offset`,
    /// `within_value`).
    pub position: Option<Position>,
    /// What is wrong, in words.
    pub message: String,
}

impl Finding {
    /// Sets the position, and the file offset nearest to it.
    pub fn set_position(&mut self, position: Option<Position>) {
        self.position = position;
        self.offset = position.and_then(|p| p.file_offset());
    }
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

/// The three outcomes of `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyOutcome {
    /// No problem, everything checked.
    Sound,
    /// No problem, but some state was not checked: serializers flinksnap cannot interpret
    /// ([`VerifyReport::undecodable`]) or state it cannot read in this build. Never a corruption.
    SoundPartlyUndecodable,
    /// Problems: corruption, missing or short files.
    Problems,
}

/// The result of `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The snapshot directory.
    pub path: String,
    /// The level checked.
    pub level: Level,
    /// No error found (`outcome` is not `problems`).
    pub sound: bool,
    /// Sound, sound but partly undecodable, or problems.
    pub outcome: VerifyOutcome,
    /// States (or parts of them) not decoded, by operator, subtask and state, with the serializer
    /// class and the reason.
    pub undecodable: Vec<Undecodable>,
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
    verify_on(storage, path, level, uids, crate::readers::parallel::default_threads())
}

/// [`verify`] on `threads` threads (`--threads`): key-group ranges of every keyed-state handle
/// are decoded in parallel; the report is the same for any number.
pub fn verify_on(storage: Arc<dyn Storage>, path: &str, level: Level, uids: &[String], threads: usize) -> crate::Result<VerifyReport> {
    let loc = Location::new(path);
    let head = storage.head(&loc)?;
    let metadata_location = if head.is_dir { loc.join(METADATA_FILE) } else { loc.clone() };
    let dir = metadata_location.parent().unwrap_or_else(|| Location::new("."));
    if !storage.exists(&metadata_location)? {
        return Err(Error::Invalid(format!(
            "{loc}: no {METADATA_FILE} file: not a snapshot directory (or an incomplete checkpoint)"
        )));
    }
    let mut v = Verifier { checks: Vec::new(), totals: VerifyTotals::default(), uids, undecodable: Vec::new(), threads: threads.max(1) };
    let snapshot = match Snapshot::open(storage, metadata_location.as_str()) {
        Ok(s) => {
            v.check("metadata", "_metadata parses", Vec::new());
            s
        }
        Err(e) => {
            let (file, position, message) = describe(&e);
            let mut f = Finding {
                severity: Severity::Error,
                kind: FindingKind::Metadata,
                operator_id: None,
                operator_uid: None,
                subtask: None,
                file: Some(file.unwrap_or_else(|| metadata_location.to_string())),
                offset: None,
                position: None,
                message,
            };
            f.set_position(position);
            v.check("metadata", "_metadata parses", vec![f]);
            return Ok(v.report(dir.to_string(), level, None));
        }
    };
    let failed_files = v.files(&snapshot);
    if level == Level::Full {
        for i in 0..snapshot.metadata.operators.len() {
            v.operator(&snapshot, i, &failed_files);
        }
    }
    Ok(v.report(snapshot.dir.to_string(), level, Some(snapshot.metadata.checkpoint_id)))
}

pub(super) struct Verifier<'u> {
    checks: Vec<Check>,
    totals: VerifyTotals,
    uids: &'u [String],
    undecodable: Vec<Undecodable>,
    /// Threads decoding keyed state.
    threads: usize,
}

/// File, position and message of an error.
pub(super) fn describe(e: &Error) -> (Option<String>, Option<Position>, String) {
    match e {
        Error::Decode { file, error } => (Some(file.clone()), error.position(), e.to_string()),
        Error::NotFound { file, .. } | Error::Io { file, .. } | Error::Corrupt { file, .. } => (Some(file.clone()), None, e.to_string()),
        _ => (None, None, e.to_string()),
    }
}

/// Where an inline stream is, for messages.
pub(super) fn stream_file(s: &Snapshot, h: &StreamStateHandle, resolved: Option<&ResolvedFile>) -> String {
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
            position: None,
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
        let outcome = if !sound {
            VerifyOutcome::Problems
        } else if t.not_checked > 0 || !self.undecodable.is_empty() {
            VerifyOutcome::SoundPartlyUndecodable
        } else {
            VerifyOutcome::Sound
        };
        VerifyReport { path, level, sound, outcome, undecodable: self.undecodable, checkpoint_id, totals: self.totals, checks: self.checks }
    }

    /// Invariants 3 to 5 for one operator.
    fn operator(&mut self, s: &Snapshot, op_index: usize, failed_files: &BTreeSet<String>) {
        let op = &s.metadata.operators[op_index];
        let suite = format!("operator {}", super::operator_label(s, &op.operator_id, self.uids));
        let mut keyed: Vec<(u32, &KeyedStateHandle)> = Vec::new();
        let mut without_keyed: Vec<u32> = Vec::new();
        for st in &op.subtasks {
            match st.state.as_ref().and_then(|x| x.managed_keyed_state.as_ref()) {
                Some(h) => keyed.push((st.index, h)),
                None => without_keyed.push(st.index),
            }
        }
        if !keyed.is_empty() {
            let findings = self.coverage(s, op, &keyed, &without_keyed);
            self.check(&suite, "key-group coverage", findings);
        }
        for (j, st) in op.subtasks.iter().enumerate() {
            let Some(h) = st.state.as_ref().and_then(|x| x.managed_keyed_state.as_ref()) else { continue };
            let uses_failed = h.streams().iter().any(|(_, x)| Snapshot::recorded_path(x).is_some_and(|(p, _)| failed_files.contains(p)));
            let findings = if uses_failed {
                vec![self.not_checked_dependent(s, op, st.index)]
            } else {
                let mut findings = self.keyed(s, op, SubtaskRef { operator: op_index, subtask: j }, st.index);
                // Errors that name no file: the handle's first stream is the likeliest.
                for f in findings.iter_mut().filter(|f| f.file.is_none()) {
                    f.file = h.streams().first().map(|(_, x)| stream_file(s, x, s.resolve(x).ok().flatten().as_ref()));
                }
                findings
            };
            self.check(&suite, &format!("subtask {} managed keyed state", st.index), findings);
        }
        for (j, st) in op.subtasks.iter().enumerate() {
            let Some(state) = &st.state else { continue };
            if let Some(h) = &state.managed_operator_state {
                let name = format!("subtask {} managed operator state", st.index);
                let fails = Snapshot::recorded_path(&h.delegate).is_some_and(|(p, _)| failed_files.contains(p));
                let findings = if fails {
                    vec![self.not_checked_dependent(s, op, st.index)]
                } else {
                    let sub = SubtaskRef { operator: op_index, subtask: j };
                    match read_operator_state_reporting(s, sub, h) {
                        Ok((entries, undecodable)) => {
                            self.totals.entries += entries.len() as u64;
                            self.totals.opaque_values += entries.iter().map(|e| e.opaque_count() as u64).sum::<u64>();
                            // States whose serializer snapshots had to be read past: untyped,
                            // their contents unchecked. States of an unknown serializer that
                            // could not be read at all: partly undecodable, never a problem.
                            let mut out = Vec::new();
                            let file = Some(stream_file(s, &h.delegate, s.resolve(&h.delegate).ok().flatten().as_ref()));
                            if let Ok(meta) = read_operator_meta(s, h) {
                                let states: Vec<_> = meta.operator_states.into_iter().chain(meta.broadcast_states).collect();
                                let untyped = Undecodable::untyped(op.operator_id, None, &states, file.clone());
                                self.add_undecodable(s, op, st.index, sub, untyped, &mut out);
                            }
                            let undecodable = undecodable.into_iter().map(|mut u| {
                                u.file = file.clone();
                                u
                            });
                            self.add_undecodable(s, op, st.index, sub, undecodable.collect(), &mut out);
                            out
                        }
                        Err(e) => {
                            let mut f = self.error_finding(s, op, Some(st.index), &e);
                            f.file = f.file.or_else(|| Some(stream_file(s, &h.delegate, s.resolve(&h.delegate).ok().flatten().as_ref())));
                            vec![f]
                        }
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

    /// A finding for an error: a decode error (with its typed position), or, for what flinksnap
    /// cannot read ([`Error::Unsupported`]), a note that it was not checked.
    fn error_finding(&self, s: &Snapshot, op: &OperatorState, subtask: Option<u32>, e: &Error) -> Finding {
        let (file, position, message) = describe(e);
        let unsupported = e.is_unsupported();
        let mut f = self.finding(
            s,
            Some(op),
            subtask,
            if unsupported { Severity::Info } else { Severity::Error },
            if unsupported { FindingKind::Unsupported } else { FindingKind::Decode },
        );
        f.file = file;
        f.set_position(position);
        f.message = if unsupported { format!("not checked (unsupported): {message}") } else { message };
        f
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
