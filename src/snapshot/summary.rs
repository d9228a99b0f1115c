//! What `flinksnap inspect` reports: a snapshot's kind, FLIP-47 properties and, per operator, its
//! handles, files and sizes. Serializable so the CLI can print it as JSON as it is.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::kind::{flip47, is_inline, snapshot_format, snapshot_type};
use super::{home_dir, Flip47Properties, ResolvedFile, Snapshot, SnapshotFormat, SnapshotType, StreamRef};
use crate::error::Result;
use crate::metadata::consts::written_by;
use crate::metadata::handles::{DistributionMode, KeyedStateHandle, OperatorStateHandle, StreamRole, StreamStateHandle};
use crate::metadata::CheckpointProperties;
use crate::model::{KeyGroupRange, OperatorId};

/// Totals over files and inline bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileTotals {
    /// Files inside the snapshot directory.
    pub own_files: usize,
    /// Their bytes (as recorded).
    pub own_bytes: u64,
    /// Files outside it (shared SSTs, earlier checkpoints' files).
    pub shared_files: usize,
    /// Their bytes.
    pub shared_bytes: u64,
    /// Bytes inlined in `_metadata`.
    pub inline_bytes: u64,
    /// All of the above.
    pub total_bytes: u64,
}

/// One element of an operator-state handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorStateEntry {
    /// State name.
    pub name: String,
    /// Distribution mode.
    pub mode: DistributionMode,
    /// Number of elements (offsets).
    pub elements: usize,
}

/// One state handle of one subtask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandleSummary {
    /// Subtask index.
    pub subtask: u32,
    /// `managed` or `raw` (keyed and operator state), `input` or `output` (channel state).
    pub scope: &'static str,
    /// Flink's class name of the handle.
    pub handle: &'static str,
    /// The metadata type byte of the handle.
    pub type_byte: Option<u8>,
    /// Key groups (keyed state).
    pub key_group_range: Option<KeyGroupRange>,
    /// Checkpoint that wrote it (RocksDB native handles).
    pub checkpoint_id: Option<u64>,
    /// States inside (operator state).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<OperatorStateEntry>,
    /// Bytes of state (recorded sizes of every stream the handle references).
    pub bytes: u64,
    /// Of which inline in `_metadata`.
    pub inline_bytes: u64,
    /// Files it references.
    pub files: usize,
}

/// A referenced file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSummary {
    /// Path relative to the snapshot directory (`../shared/…` for shared files).
    pub path: String,
    /// The path as `_metadata` records it.
    pub recorded: String,
    /// Whether it was recorded relative to the snapshot directory.
    pub relative: bool,
    /// Whether the recorded absolute path was re-based onto where the snapshot is now.
    pub rebased: bool,
    /// Inside the snapshot directory.
    pub own: bool,
    /// What it holds.
    pub role: StreamRole,
    /// Subtask that references it.
    pub subtask: Option<u32>,
    /// RocksDB's local file name.
    pub local_name: Option<String>,
    /// Recorded size.
    pub size: u64,
}

/// One operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorSummary {
    /// Operator id.
    pub operator_id: OperatorId,
    /// Uid, from the metadata (2.x) or from `--uid`.
    pub uid: Option<String>,
    /// Where the uid came from: `metadata`, `argument` or `plan` (derived from `--plan`).
    pub uid_source: Option<&'static str>,
    /// Name (2.x metadata).
    pub name: Option<String>,
    /// Parallelism.
    pub parallelism: u32,
    /// Max parallelism.
    pub max_parallelism: u32,
    /// Subtask entries stored.
    pub subtasks: usize,
    /// Of which finished.
    pub finished_subtasks: usize,
    /// All subtasks finished (nothing stored).
    pub fully_finished: bool,
    /// Bytes of coordinator state, if any.
    pub coordinator_state_bytes: Option<u64>,
    /// Keyed-state handles.
    pub keyed_state: Vec<HandleSummary>,
    /// Operator-state handles.
    pub operator_state: Vec<HandleSummary>,
    /// Channel-state handles.
    pub channel_state: Vec<HandleSummary>,
    /// Files referenced.
    pub files: Vec<FileSummary>,
    /// Totals.
    pub totals: FileTotals,
}

/// Files a snapshot references outside its own job directory (for a savepoint or another
/// snapshot directory: outside that directory), grouped by where they lie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExternalReferences {
    /// The directory they belong to: another job directory (a checkpoint of a job restored in
    /// CLAIM or LEGACY mode references the old job's `shared/`), a savepoint directory, or the
    /// directory holding them when they lie outside Flink's layout.
    pub directory: String,
    /// How many files.
    pub files: usize,
    /// Their bytes (as recorded).
    pub bytes: u64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The snapshot directory.
    pub path: String,
    /// Metadata format version.
    pub metadata_version: i32,
    /// Releases that write that version.
    pub written_by: &'static str,
    /// Size of `_metadata`.
    pub metadata_bytes: u64,
    /// Checkpoint id.
    pub checkpoint_id: u64,
    /// Savepoint or checkpoint.
    pub snapshot_type: SnapshotType,
    /// How the type was determined.
    pub snapshot_type_source: &'static str,
    /// Keyed-state format.
    pub format: SnapshotFormat,
    /// FLIP-47 properties.
    pub properties: Flip47Properties,
    /// What Flink recorded (V4+).
    pub checkpoint_properties: Option<CheckpointProperties>,
    /// Number of master states.
    pub master_states: usize,
    /// Operators, in metadata order.
    pub operators: Vec<OperatorSummary>,
    /// Totals over all operators (files counted once).
    pub totals: FileTotals,
    /// Files outside the snapshot's job directory (its own directory for savepoints), by the
    /// directory they lie in. Omitted when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub external_references: Vec<ExternalReferences>,
    /// Anything worth knowing that is not an error.
    pub notes: Vec<String>,
}

impl Summary {
    /// Builds the report; `uids` names operators that the metadata stores without a uid.
    pub fn build(s: &Snapshot, uids: &[String]) -> Result<Summary> {
        let files = s.files()?;
        let (snapshot_type, snapshot_type_source) = snapshot_type(s);
        let format = snapshot_format(s, snapshot_type, &files);
        let properties = flip47(s, snapshot_type, format, &files);
        let by_id: BTreeMap<OperatorId, &String> = uids.iter().map(|u| (OperatorId::from_uid(u), u)).collect();

        let mut operators = Vec::new();
        let mut all_files: Vec<&(StreamRef<'_>, ResolvedFile)> = Vec::new();
        for (i, op) in s.metadata.operators.iter().enumerate() {
            let (uid, uid_source) = match (&op.uid, by_id.get(&op.operator_id)) {
                (Some(u), _) => (Some(u.clone()), Some("metadata")),
                (None, Some(u)) => (Some((*u).clone()), Some("argument")),
                (None, None) => (None, None),
            };
            let mut keyed_state = Vec::new();
            let mut operator_state = Vec::new();
            let mut channel_state = Vec::new();
            for st in &op.subtasks {
                let Some(state) = &st.state else { continue };
                for (scope, h) in [("managed", &state.managed_keyed_state), ("raw", &state.raw_keyed_state)] {
                    if let Some(h) = h {
                        keyed_state.push(keyed_summary(st.index, scope, h));
                    }
                }
                for (scope, h) in [("managed", &state.managed_operator_state), ("raw", &state.raw_operator_state)] {
                    if let Some(h) = h {
                        operator_state.push(operator_summary(st.index, scope, h));
                    }
                }
                for (scope, list) in [("input", &state.input_channel_state), ("output", &state.result_subpartition_state)] {
                    for c in list {
                        let d = c.delegate.as_ref();
                        channel_state.push(HandleSummary {
                            subtask: st.index,
                            scope,
                            handle: match c.kind {
                                crate::metadata::handles::ChannelStateKind::InputChannel => "InputChannelStateHandle",
                                crate::metadata::handles::ChannelStateKind::ResultSubpartition => "ResultSubpartitionStateHandle",
                                crate::metadata::handles::ChannelStateKind::MergedInputChannel => "MergedInputChannelStateHandle",
                                crate::metadata::handles::ChannelStateKind::MergedResultSubpartition => {
                                    "MergedResultSubpartitionStateHandle"
                                }
                            },
                            type_byte: None,
                            key_group_range: None,
                            checkpoint_id: None,
                            states: Vec::new(),
                            bytes: c.state_size,
                            inline_bytes: d.filter(|d| is_inline(d)).map_or(0, |d| d.size()),
                            files: usize::from(d.is_some_and(|d| !is_inline(d))),
                        });
                    }
                }
            }
            let op_files: Vec<&(StreamRef<'_>, ResolvedFile)> = files.iter().filter(|(r, _)| r.operator == Some(i)).collect();
            all_files.extend(op_files.iter().copied());
            let inline_bytes = s
                .streams()
                .iter()
                .filter(|r| r.operator == Some(i) && is_inline(r.handle))
                .map(|r| r.handle.size())
                .sum();
            let totals = totals(&op_files, inline_bytes);
            operators.push(OperatorSummary {
                operator_id: op.operator_id,
                uid,
                uid_source,
                name: op.name.clone(),
                parallelism: op.parallelism,
                max_parallelism: op.max_parallelism,
                subtasks: op.subtasks.len(),
                finished_subtasks: op.subtasks.iter().filter(|s| s.finished).count(),
                fully_finished: op.fully_finished,
                coordinator_state_bytes: op.coordinator_state.as_ref().map(|h| h.size()),
                keyed_state,
                operator_state,
                channel_state,
                files: op_files.iter().map(|(r, f)| file_summary(s, r, f)).collect(),
                totals,
            });
        }
        let inline_total: u64 = s.streams().iter().filter(|r| is_inline(r.handle)).map(|r| r.handle.size()).sum::<u64>()
            + s.metadata.master_states.iter().map(|m| m.payload.len() as u64).sum::<u64>();
        let mut notes = Vec::new();
        if let Some(n) = &s.metadata.properties_note {
            notes.push(n.clone());
        }
        if files.iter().any(|(_, f)| f.rebased) {
            notes.push(
                "absolute paths recorded in _metadata no longer exist; they were re-based onto the directory the snapshot is in now"
                    .to_owned(),
            );
        }
        if format == SnapshotFormat::Full {
            notes.push(
                "metadata before V4 does not record whether a key-grouped checkpoint stream comes from the heap or the RocksDB backend"
                    .to_owned(),
            );
        }
        let external_references = external_references(s, &files);
        Ok(Summary {
            path: s.dir.to_string(),
            metadata_version: s.metadata.version,
            written_by: written_by(s.metadata.version),
            metadata_bytes: s.metadata_size,
            checkpoint_id: s.metadata.checkpoint_id,
            snapshot_type,
            snapshot_type_source,
            format,
            properties,
            checkpoint_properties: s.metadata.properties.clone(),
            master_states: s.metadata.master_states.len(),
            operators,
            totals: totals(&all_files, inline_total),
            external_references,
            notes,
        })
    }
}

/// Files outside the snapshot's job directory, grouped by the job or savepoint directory (else
/// the directory) they lie in, in path order.
fn external_references(s: &Snapshot, files: &[(StreamRef<'_>, ResolvedFile)]) -> Vec<ExternalReferences> {
    let own_home = home_dir(&s.dir).unwrap_or_else(|| s.dir.clone());
    let mut groups: BTreeMap<String, (BTreeSet<crate::storage::Location>, u64)> = BTreeMap::new();
    for (r, f) in files {
        if f.location.strip_prefix(&own_home).is_some() {
            continue;
        }
        let dir = home_dir(&f.location).or_else(|| f.location.parent()).map_or_else(|| f.location.to_string(), |d| d.to_string());
        let g = groups.entry(dir).or_default();
        let segment = matches!(r.handle, StreamStateHandle::SegmentFile { .. });
        if g.0.insert(f.location.clone()) || segment {
            g.1 += r.handle.size();
        }
    }
    groups.into_iter().map(|(directory, (f, bytes))| ExternalReferences { directory, files: f.len(), bytes }).collect()
}

fn totals(files: &[&(StreamRef<'_>, ResolvedFile)], inline_bytes: u64) -> FileTotals {
    let mut t = FileTotals { inline_bytes, ..Default::default() };
    let mut seen = BTreeSet::new();
    for (r, f) in files {
        // Segments of one physical file count the file once and each segment's bytes; a whole
        // file that several handles share (one channel-state file of several channels or
        // subtasks, one changelog file of several operators) counts once.
        let new = seen.insert(f.location.clone());
        let segment = matches!(r.handle, StreamStateHandle::SegmentFile { .. });
        let size = if new || segment { r.handle.size() } else { 0 };
        if f.own {
            t.own_files += usize::from(new);
            t.own_bytes += size;
        } else {
            t.shared_files += usize::from(new);
            t.shared_bytes += size;
        }
    }
    t.total_bytes = t.own_bytes + t.shared_bytes + t.inline_bytes;
    t
}

fn display_path(s: &Snapshot, f: &ResolvedFile) -> String {
    if let Some(rel) = f.location.strip_prefix(&s.dir) {
        return rel.to_owned();
    }
    match s.dir.parent() {
        Some(parent) => match f.location.strip_prefix(&parent) {
            Some(rel) => format!("../{rel}"),
            None => f.location.to_string(),
        },
        None => f.location.to_string(),
    }
}

fn file_summary(s: &Snapshot, r: &StreamRef<'_>, f: &ResolvedFile) -> FileSummary {
    FileSummary {
        path: display_path(s, f),
        recorded: f.recorded.clone(),
        relative: f.relative,
        rebased: f.rebased,
        own: f.own,
        role: r.role,
        subtask: r.subtask,
        local_name: r.local_name.map(str::to_owned),
        size: r.handle.size(),
    }
}

fn stream_sizes<'a>(streams: impl Iterator<Item = &'a StreamStateHandle>) -> (u64, u64, usize) {
    let (mut bytes, mut inline, mut files) = (0, 0, 0);
    for s in streams {
        bytes += s.size();
        if is_inline(s) {
            inline += s.size();
        } else if !matches!(s, StreamStateHandle::EmptySegmentFile) {
            files += 1;
        }
    }
    (bytes, inline, files)
}

fn keyed_summary(subtask: u32, scope: &'static str, h: &KeyedStateHandle) -> HandleSummary {
    let (bytes, inline_bytes, files) = stream_sizes(h.streams().into_iter().map(|(_, s)| s));
    let (type_byte, checkpoint_id) = match h {
        KeyedStateHandle::KeyGroups(k) => (k.type_byte, None),
        KeyedStateHandle::IncrementalRemote(k) => (k.type_byte, Some(k.checkpoint_id)),
        KeyedStateHandle::Changelog(k) => (k.type_byte, Some(k.checkpoint_id)),
        KeyedStateHandle::InMemoryChangelog(_) => (9, None),
        KeyedStateHandle::ChangelogStream(k) => (k.type_byte, None),
    };
    let inline_extra = match h {
        KeyedStateHandle::InMemoryChangelog(k) => k.size(),
        _ => 0,
    };
    HandleSummary {
        subtask,
        scope,
        handle: h.class_name(),
        type_byte: Some(type_byte),
        key_group_range: Some(h.key_group_range()),
        checkpoint_id,
        states: Vec::new(),
        bytes: bytes + inline_extra,
        inline_bytes: inline_bytes + inline_extra,
        files,
    }
}

fn operator_summary(subtask: u32, scope: &'static str, h: &OperatorStateHandle) -> HandleSummary {
    let (bytes, inline_bytes, files) = stream_sizes(std::iter::once(&h.delegate));
    let mut states: Vec<OperatorStateEntry> = h
        .states
        .iter()
        .map(|m| OperatorStateEntry { name: m.name.clone(), mode: m.mode, elements: m.offsets.len() })
        .collect();
    // Flink writes a HashMap: sort for stable output.
    states.sort_by(|a, b| a.name.cmp(&b.name));
    HandleSummary {
        subtask,
        scope,
        handle: if h.file_merging.is_some() { "FileMergingOperatorStreamStateHandle" } else { "OperatorStreamStateHandle" },
        type_byte: Some(h.type_byte),
        key_group_range: None,
        checkpoint_id: None,
        states,
        bytes,
        inline_bytes,
        files,
    }
}
