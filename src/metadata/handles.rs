//! State handles: stream, keyed, operator and channel handles (`MetadataV2V3SerializerBase`,
//! `ChannelStateHandleSerializerV1/V2`). Layouts in `formats/metadata.md` § Handles.

use serde::Serialize;

use super::consts::{channel_type, handle_type as ty};
use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind, ResultExt};
use crate::model::KeyGroupRange;

type R<T> = Result<T, DecodeError>;

/// Deepest nesting of keyed handles accepted (changelog handles nest); Flink writes 2 levels.
const MAX_NESTING: u32 = 8;

/// A handle to a stream of bytes: inline in `_metadata`, or a file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamStateHandle {
    /// Type 1: the bytes are inlined in `_metadata`.
    ByteStream {
        /// Informational name (for file-system storage, the path the file would have had).
        name: String,
        /// Absolute offset of the first inline byte in `_metadata`.
        offset: u64,
        /// The bytes.
        #[serde(skip)]
        data: Vec<u8>,
        /// `data.len()`.
        size: u64,
    },
    /// Type 2: a file by absolute path or URI.
    File {
        /// Path or URI as Flink stored it.
        path: String,
        /// Size Flink recorded.
        size: u64,
    },
    /// Type 6: a file relative to the directory that holds `_metadata`.
    RelativeFile {
        /// Path relative to the snapshot directory.
        relative_path: String,
        /// Size Flink recorded.
        size: u64,
    },
    /// Type 15: a segment of a shared physical file (file-merging checkpoints, 1.20+).
    SegmentFile {
        /// Absolute path of the physical file.
        path: String,
        /// Where the segment starts in it.
        start: u64,
        /// Segment length.
        size: u64,
        /// `CheckpointedStateScope` ordinal: 0 exclusive, 1 shared.
        scope: u32,
        /// UUID of the logical file.
        logical_file_id: String,
    },
    /// Type 16: an empty file-merging segment.
    EmptySegmentFile,
    /// Type 3 used as a stream handle (an old key-groups handle).
    KeyGroups(Box<KeyGroupsStateHandle>),
}

impl StreamStateHandle {
    /// Bytes of state this handle stands for.
    pub fn size(&self) -> u64 {
        match self {
            StreamStateHandle::ByteStream { size, .. }
            | StreamStateHandle::File { size, .. }
            | StreamStateHandle::RelativeFile { size, .. }
            | StreamStateHandle::SegmentFile { size, .. } => *size,
            StreamStateHandle::EmptySegmentFile => 0,
            StreamStateHandle::KeyGroups(h) => h.delegate.size(),
        }
    }

    /// Whether the bytes are inlined in `_metadata`.
    pub fn is_inline(&self) -> bool {
        match self {
            StreamStateHandle::ByteStream { .. } => true,
            StreamStateHandle::KeyGroups(h) => h.delegate.is_inline(),
            _ => false,
        }
    }

    /// Flink's class name for this handle.
    pub fn class_name(&self) -> &'static str {
        match self {
            StreamStateHandle::ByteStream { .. } => "ByteStreamStateHandle",
            StreamStateHandle::File { .. } => "FileStateHandle",
            StreamStateHandle::RelativeFile { .. } => "RelativeFileStateHandle",
            StreamStateHandle::SegmentFile { .. } => "SegmentFileStateHandle",
            StreamStateHandle::EmptySegmentFile => "EmptySegmentFileStateHandle",
            StreamStateHandle::KeyGroups(_) => "KeyGroupsStateHandle",
        }
    }
}

/// A full snapshot of a key-group range in one stream, with the offset of each key group
/// (types 3, 12 and 7).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyGroupsStateHandle {
    /// The type byte: 3 (≤1.14), 12 (1.15+) or 7 (canonical savepoint).
    pub type_byte: u8,
    /// Key groups covered.
    pub key_group_range: KeyGroupRange,
    /// Offset of each key group's data in the delegate stream, in range order. Full snapshots
    /// write 0 for an empty key group; raw keyed state writes -1 for one never started.
    pub offsets: Vec<i64>,
    /// The stream.
    pub delegate: StreamStateHandle,
    /// `StateHandleID` (type 12 only).
    pub state_handle_id: Option<String>,
}

impl KeyGroupsStateHandle {
    /// True for a canonical savepoint handle (type 7).
    pub fn is_savepoint(&self) -> bool {
        self.type_byte == ty::SAVEPOINT_KEY_GROUPS
    }
}

/// A file of a RocksDB checkpoint under the name RocksDB gave it locally (`HandleAndLocalPath`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandleAndLocalPath {
    /// Local file name, e.g. `000123.sst`, `MANIFEST-000005`.
    pub local_path: String,
    /// The uploaded file.
    pub handle: Option<StreamStateHandle>,
}

/// A RocksDB (or ForSt) native snapshot: SST files plus private files (types 5 and 11).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncrementalRemoteKeyedStateHandle {
    /// The type byte: 5 (≤1.14) or 11.
    pub type_byte: u8,
    /// Checkpoint that created this handle.
    pub checkpoint_id: u64,
    /// UUID of the backend instance.
    pub backend_identifier: String,
    /// Key groups covered.
    pub key_group_range: KeyGroupRange,
    /// Bytes uploaded by this checkpoint (type 11 only).
    pub checkpointed_size: Option<u64>,
    /// The meta-data file holding the serialization proxy.
    pub meta_state_handle: Option<StreamStateHandle>,
    /// SST files.
    pub shared_state: Vec<HandleAndLocalPath>,
    /// MANIFEST, CURRENT, OPTIONS and other private files.
    pub private_state: Vec<HandleAndLocalPath>,
    /// `StateHandleID` (type 11 only).
    pub state_handle_id: Option<String>,
}

/// The changelog backend's handle: materialized part plus state-change log (types 8 and 14).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangelogStateBackendHandle {
    /// The type byte.
    pub type_byte: u8,
    /// Key groups covered.
    pub key_group_range: KeyGroupRange,
    /// Bytes uploaded by this checkpoint.
    pub checkpointed_size: u64,
    /// Handles of the delegate backend.
    pub materialized: Vec<KeyedStateHandle>,
    /// State-change log handles.
    pub non_materialized: Vec<KeyedStateHandle>,
    /// Materialization id.
    pub materialization_id: u64,
    /// Checkpoint id (type 14; for type 8 the materialization id).
    pub checkpoint_id: u64,
    /// `StateHandleID`.
    pub state_handle_id: String,
}

/// State changes held inline (type 9).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InMemoryChangelogStateHandle {
    /// Key groups covered.
    pub key_group_range: KeyGroupRange,
    /// First sequence number.
    pub from: i64,
    /// Last sequence number.
    pub to: i64,
    /// The serialized state changes: (key group, or -1 for a meta-data change; bytes).
    #[serde(skip)]
    pub changes: Vec<(i32, Vec<u8>)>,
    /// `StateHandleID`.
    pub state_handle_id: String,
}

impl InMemoryChangelogStateHandle {
    /// Number of changes.
    pub fn change_count(&self) -> u64 {
        self.changes.len() as u64
    }

    /// Bytes of all changes.
    pub fn size(&self) -> u64 {
        self.changes.iter().map(|(_, b)| b.len() as u64).sum()
    }
}

/// State changes in files (types 10 and 13).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangelogStateHandleStreamImpl {
    /// The type byte.
    pub type_byte: u8,
    /// Key groups covered.
    pub key_group_range: KeyGroupRange,
    /// (offset in the uncompressed log, file) pairs.
    pub handles: Vec<(u64, StreamStateHandle)>,
    /// Total state size.
    pub state_size: u64,
    /// Bytes uploaded by this checkpoint.
    pub checkpointed_size: u64,
    /// `StateHandleID`.
    pub state_handle_id: String,
    /// Changelog storage, e.g. "filesystem".
    pub storage_identifier: String,
}

/// Any keyed-state handle.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KeyedStateHandle {
    /// Types 3, 12, 7.
    KeyGroups(KeyGroupsStateHandle),
    /// Types 5, 11.
    IncrementalRemote(IncrementalRemoteKeyedStateHandle),
    /// Types 8, 14.
    Changelog(ChangelogStateBackendHandle),
    /// Type 9.
    InMemoryChangelog(InMemoryChangelogStateHandle),
    /// Types 10, 13.
    ChangelogStream(ChangelogStateHandleStreamImpl),
}

impl KeyedStateHandle {
    /// Key groups the handle covers.
    pub fn key_group_range(&self) -> KeyGroupRange {
        match self {
            KeyedStateHandle::KeyGroups(h) => h.key_group_range,
            KeyedStateHandle::IncrementalRemote(h) => h.key_group_range,
            KeyedStateHandle::Changelog(h) => h.key_group_range,
            KeyedStateHandle::InMemoryChangelog(h) => h.key_group_range,
            KeyedStateHandle::ChangelogStream(h) => h.key_group_range,
        }
    }

    /// Flink's class name for this handle.
    pub fn class_name(&self) -> &'static str {
        match self {
            KeyedStateHandle::KeyGroups(h) if h.is_savepoint() => "SavepointKeyGroupsStateHandle",
            KeyedStateHandle::KeyGroups(_) => "KeyGroupsStateHandle",
            KeyedStateHandle::IncrementalRemote(_) => "IncrementalRemoteKeyedStateHandle",
            KeyedStateHandle::Changelog(_) => "ChangelogStateBackendHandle",
            KeyedStateHandle::InMemoryChangelog(_) => "InMemoryChangelogStateHandle",
            KeyedStateHandle::ChangelogStream(_) => "ChangelogStateHandleStreamImpl",
        }
    }

    /// Every stream handle this handle references, with a role for each, outermost first.
    pub fn streams(&self) -> Vec<(StreamRole, &StreamStateHandle)> {
        let mut out = Vec::new();
        self.collect_streams(&mut out);
        out
    }

    fn collect_streams<'a>(&'a self, out: &mut Vec<(StreamRole, &'a StreamStateHandle)>) {
        match self {
            KeyedStateHandle::KeyGroups(h) => out.push((StreamRole::KeyedData, &h.delegate)),
            KeyedStateHandle::IncrementalRemote(h) => {
                if let Some(m) = &h.meta_state_handle {
                    out.push((StreamRole::KeyedMeta, m));
                }
                out.extend(h.shared_state.iter().filter_map(|f| f.handle.as_ref().map(|s| (StreamRole::Shared, s))));
                out.extend(h.private_state.iter().filter_map(|f| f.handle.as_ref().map(|s| (StreamRole::Private, s))));
            }
            KeyedStateHandle::Changelog(h) => {
                for k in h.materialized.iter().chain(&h.non_materialized) {
                    k.collect_streams(out);
                }
            }
            KeyedStateHandle::InMemoryChangelog(_) => {}
            KeyedStateHandle::ChangelogStream(h) => {
                out.extend(h.handles.iter().map(|(_, s)| (StreamRole::Changelog, s)));
            }
        }
    }
}

/// What a referenced stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamRole {
    /// Key-grouped keyed state (heap checkpoint or full/canonical stream).
    KeyedData,
    /// The meta-data file of a RocksDB native snapshot.
    KeyedMeta,
    /// A shared file (SST) of a RocksDB native snapshot.
    Shared,
    /// A private file (MANIFEST, CURRENT, OPTIONS) of a RocksDB native snapshot.
    Private,
    /// A state-change log file.
    Changelog,
    /// Operator state.
    OperatorData,
    /// In-flight channel data of an unaligned checkpoint.
    ChannelData,
    /// Coordinator state.
    Coordinator,
    /// A master hook's state.
    Master,
}

/// How operator list state is redistributed on restore (`OperatorStateHandle.Mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DistributionMode {
    /// Split list state.
    SplitDistribute,
    /// Union list state.
    Union,
    /// Broadcast state.
    Broadcast,
}

impl DistributionMode {
    /// Flink's name of the mode.
    pub fn as_str(&self) -> &'static str {
        match self {
            DistributionMode::SplitDistribute => "SPLIT_DISTRIBUTE",
            DistributionMode::Union => "UNION",
            DistributionMode::Broadcast => "BROADCAST",
        }
    }
}

/// One named state inside an operator-state handle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorStateMeta {
    /// State name.
    pub name: String,
    /// Redistribution mode.
    pub mode: DistributionMode,
    /// Offsets of the elements in the delegate stream.
    pub offsets: Vec<u64>,
}

/// The directories of a file-merging operator-state handle (type 17).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileMergingDirs {
    /// Task-owned directory.
    pub task_owned_dir: String,
    /// Shared directory.
    pub shared_dir: String,
    /// Whether the handle is empty.
    pub is_empty: bool,
}

/// Operator (non-keyed) state of one subtask (types 4 and 17).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorStateHandle {
    /// The type byte.
    pub type_byte: u8,
    /// The states, in the order stored (Flink writes a `HashMap`, so any order).
    pub states: Vec<OperatorStateMeta>,
    /// File-merging directories (type 17 only).
    pub file_merging: Option<FileMergingDirs>,
    /// The stream.
    pub delegate: StreamStateHandle,
}

impl OperatorStateHandle {
    /// True for the handle file-merging checkpoints (1.20+) give every operator without operator
    /// state (`EmptyFileMergingOperatorStreamStateHandle`): no elements, an empty segment
    /// delegate. It has no file to read.
    pub fn is_empty(&self) -> bool {
        matches!(self.delegate, StreamStateHandle::EmptySegmentFile) && self.states.iter().all(|s| s.offsets.is_empty())
    }
}

/// What a channel-state handle belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelStateKind {
    /// An input channel.
    InputChannel,
    /// A result subpartition.
    ResultSubpartition,
    /// Several input channels in one handle (V6+).
    MergedInputChannel,
    /// Several result subpartitions in one handle (V6+).
    MergedResultSubpartition,
}

/// In-flight data of an unaligned checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelStateHandle {
    /// Input or output, single or merged.
    pub kind: ChannelStateKind,
    /// Subtask index.
    pub subtask_index: u32,
    /// (gate, channel) or (partition, subpartition); `None` for merged handles.
    pub info: Option<(i32, i32)>,
    /// Buffer offsets in the delegate (single handles).
    pub offsets: Vec<u64>,
    /// State size.
    pub state_size: u64,
    /// The data file.
    pub delegate: Option<StreamStateHandle>,
    /// Serialized per-channel offsets (merged handles).
    #[serde(skip)]
    pub merged_offsets: Vec<u8>,
}

fn range(c: &mut Cursor<'_>) -> R<KeyGroupRange> {
    let at = c.position();
    let start = c.non_negative_i32("start key group")?;
    let len = c.non_negative_i32("number of key groups")?;
    if start.checked_add(len).is_none() {
        return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "key-group range", value: start as i64 }, at));
    }
    Ok(KeyGroupRange::new(start, len))
}

fn offsets(c: &mut Cursor<'_>, n: usize) -> R<Vec<u64>> {
    let at = c.position();
    c.check_fits("offsets", n, 8, at)?;
    (0..n).map(|_| c.non_negative_i64("offset")).collect()
}

/// Reads a stream handle (type byte first); `None` for the null handle.
pub fn read_stream_handle(c: &mut Cursor<'_>) -> R<Option<StreamStateHandle>> {
    let at = c.position();
    let t = c.u8("stream handle type")?;
    let h = match t {
        ty::NULL => return Ok(None),
        ty::BYTE_STREAM => {
            let name = c.utf("handle name")?;
            let data = c.len_prefixed("inline state")?;
            let offset = c.position() - data.len() as u64;
            StreamStateHandle::ByteStream { name, offset, size: data.len() as u64, data: data.to_vec() }
        }
        ty::FILE_STREAM => {
            let size = c.non_negative_i64("state size")?;
            let path = c.utf("file path")?;
            StreamStateHandle::File { path, size }
        }
        ty::RELATIVE_STREAM => {
            let relative_path = c.utf("relative path")?;
            let size = c.non_negative_i64("state size")?;
            StreamStateHandle::RelativeFile { relative_path, size }
        }
        ty::SEGMENT_FILE => {
            let start = c.non_negative_i64("segment start")?;
            let size = c.non_negative_i64("segment size")?;
            let scope_at = c.position();
            let scope = c.non_negative_i32("segment scope")?;
            if scope > 1 {
                return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "segment scope", value: scope.into() }, scope_at));
            }
            let path = c.utf("physical file path")?;
            let logical_file_id = c.utf("logical file id")?;
            StreamStateHandle::SegmentFile { path, start, size, scope, logical_file_id }
        }
        ty::EMPTY_SEGMENT_FILE => StreamStateHandle::EmptySegmentFile,
        ty::KEY_GROUPS => StreamStateHandle::KeyGroups(Box::new(read_key_groups_body(c, t)?)),
        other => {
            return Err(c.error_at(DecodeErrorKind::BadHandleType { what: "stream handle", found: other }, at));
        }
    };
    Ok(Some(h))
}

fn required_stream(c: &mut Cursor<'_>, what: &'static str) -> R<StreamStateHandle> {
    let at = c.position();
    read_stream_handle(c)?.ok_or_else(|| c.error_at(DecodeErrorKind::Invalid(format!("{what} must not be null")), at))
}

fn read_key_groups_body(c: &mut Cursor<'_>, type_byte: u8) -> R<KeyGroupsStateHandle> {
    let key_group_range = range(c)?;
    let at = c.position();
    let n = key_group_range.len as usize;
    c.check_fits("key-group offsets", n, 8, at)?;
    let offsets = (0..n).map(|_| c.i64("key-group offset")).collect::<R<Vec<i64>>>()?;
    let delegate = required_stream(c, "key-groups delegate").context_with(|| "delegate".into())?;
    let state_handle_id = if type_byte == ty::KEY_GROUPS_V2 { Some(c.utf("state handle id")?) } else { None };
    Ok(KeyGroupsStateHandle { type_byte, key_group_range, offsets, delegate, state_handle_id })
}

fn read_file_list(c: &mut Cursor<'_>, what: &'static str) -> R<Vec<HandleAndLocalPath>> {
    // Each entry is at least a 2-byte name length and a 1-byte handle type.
    let n = c.count(what, 3)?;
    (0..n)
        .map(|i| {
            let local_path = c.utf("local file name")?;
            let handle = read_stream_handle(c).context_with(|| format!("{what} [{i}] {local_path}"))?;
            Ok(HandleAndLocalPath { local_path, handle })
        })
        .collect()
}

/// Reads a keyed-state handle (type byte first); `None` for the null handle.
pub fn read_keyed_handle(c: &mut Cursor<'_>) -> R<Option<KeyedStateHandle>> {
    read_keyed_handle_nested(c, 0)
}

fn read_keyed_handle_nested(c: &mut Cursor<'_>, depth: u32) -> R<Option<KeyedStateHandle>> {
    let at = c.position();
    if depth > MAX_NESTING {
        return Err(c.error(DecodeErrorKind::Invalid("keyed handles nested too deeply".into())));
    }
    let t = c.u8("keyed handle type")?;
    let h = match t {
        ty::NULL => return Ok(None),
        ty::KEY_GROUPS | ty::KEY_GROUPS_V2 | ty::SAVEPOINT_KEY_GROUPS => KeyedStateHandle::KeyGroups(read_key_groups_body(c, t)?),
        ty::INCREMENTAL_KEY_GROUPS | ty::INCREMENTAL_KEY_GROUPS_V2 => {
            let v2 = t == ty::INCREMENTAL_KEY_GROUPS_V2;
            let checkpoint_id = c.non_negative_i64("checkpoint id")?;
            let backend_identifier = c.utf("backend identifier")?;
            let key_group_range = range(c)?;
            let checkpointed_size = if v2 { Some(c.non_negative_i64("checkpointed size")?) } else { None };
            let meta_state_handle = read_stream_handle(c).context_with(|| "meta state handle".into())?;
            let shared_state = read_file_list(c, "shared state")?;
            let private_state = read_file_list(c, "private state")?;
            let state_handle_id = if v2 { Some(c.utf("state handle id")?) } else { None };
            KeyedStateHandle::IncrementalRemote(IncrementalRemoteKeyedStateHandle {
                type_byte: t,
                checkpoint_id,
                backend_identifier,
                key_group_range,
                checkpointed_size,
                meta_state_handle,
                shared_state,
                private_state,
                state_handle_id,
            })
        }
        ty::CHANGELOG | ty::CHANGELOG_V2 => {
            let key_group_range = range(c)?;
            let checkpointed_size = c.non_negative_i64("checkpointed size")?;
            let read_list = |c: &mut Cursor<'_>, what: &'static str| -> R<Vec<KeyedStateHandle>> {
                let n = c.count(what, 1)?;
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    let h_at = c.position();
                    let h = read_keyed_handle_nested(c, depth + 1).context_with(|| format!("{what} [{i}]"))?;
                    v.push(h.ok_or_else(|| c.error_at(DecodeErrorKind::Invalid(format!("{what} handle is null")), h_at))?);
                }
                Ok(v)
            };
            let materialized = read_list(c, "materialized handles")?;
            let non_materialized = read_list(c, "non-materialized handles")?;
            let materialization_id = c.non_negative_i64("materialization id")?;
            let checkpoint_id =
                if t == ty::CHANGELOG_V2 { c.non_negative_i64("checkpoint id")? } else { materialization_id };
            let state_handle_id = c.utf("state handle id")?;
            KeyedStateHandle::Changelog(ChangelogStateBackendHandle {
                type_byte: t,
                key_group_range,
                checkpointed_size,
                materialized,
                non_materialized,
                materialization_id,
                checkpoint_id,
                state_handle_id,
            })
        }
        ty::CHANGELOG_BYTE_INCREMENT => {
            let key_group_range = range(c)?;
            let from = c.i64("from sequence number")?;
            let to = c.i64("to sequence number")?;
            let n = c.count("state changes", 8)?;
            let mut changes = Vec::with_capacity(n);
            for _ in 0..n {
                let kg = c.i32("change key group")?;
                changes.push((kg, c.len_prefixed("state change")?.to_vec()));
            }
            let state_handle_id = c.utf("state handle id")?;
            KeyedStateHandle::InMemoryChangelog(InMemoryChangelogStateHandle { key_group_range, from, to, changes, state_handle_id })
        }
        ty::CHANGELOG_FILE_INCREMENT | ty::CHANGELOG_FILE_INCREMENT_V2 => {
            let key_group_range = range(c)?;
            let n = c.count("changelog files", 9)?;
            let mut handles = Vec::with_capacity(n);
            for i in 0..n {
                let offset = c.non_negative_i64("changelog offset")?;
                let h = required_stream(c, "changelog file").context_with(|| format!("changelog file [{i}]"))?;
                handles.push((offset, h));
            }
            let state_size = c.non_negative_i64("state size")?;
            let checkpointed_size = c.non_negative_i64("checkpointed size")?;
            let state_handle_id = c.utf("state handle id")?;
            let storage_identifier = if t == ty::CHANGELOG_FILE_INCREMENT_V2 {
                c.utf("storage identifier")?
            } else {
                "filesystem".to_owned()
            };
            KeyedStateHandle::ChangelogStream(ChangelogStateHandleStreamImpl {
                type_byte: t,
                key_group_range,
                handles,
                state_size,
                checkpointed_size,
                state_handle_id,
                storage_identifier,
            })
        }
        other => return Err(c.error_at(DecodeErrorKind::BadHandleType { what: "keyed handle", found: other }, at)),
    };
    Ok(Some(h))
}

/// Reads an operator-state handle (type byte first); `None` for the null handle.
pub fn read_operator_handle(c: &mut Cursor<'_>) -> R<Option<OperatorStateHandle>> {
    let at = c.position();
    let t = c.u8("operator handle type")?;
    if t == ty::NULL {
        return Ok(None);
    }
    if t != ty::PARTITIONABLE_OPERATOR && t != ty::SEGMENT_PARTITIONABLE_OPERATOR {
        return Err(c.error_at(DecodeErrorKind::BadHandleType { what: "operator handle", found: t }, at));
    }
    // Each state is at least a name length, a mode byte and an offset count.
    let n = c.count("operator states", 7)?;
    let mut states = Vec::with_capacity(n);
    for _ in 0..n {
        let name = c.utf("state name")?;
        let mode_at = c.position();
        let mode = match c.u8("distribution mode")? {
            0 => DistributionMode::SplitDistribute,
            1 => DistributionMode::Union,
            2 => DistributionMode::Broadcast,
            m => {
                return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "distribution mode", value: m.into() }, mode_at))
            }
        };
        let count = c.count("offsets", 8)?;
        let offsets = offsets(c, count).map_err(|e| e.context(format!("state {name:?}")))?;
        states.push(OperatorStateMeta { name, mode, offsets });
    }
    let file_merging = if t == ty::SEGMENT_PARTITIONABLE_OPERATOR {
        Some(FileMergingDirs {
            task_owned_dir: c.utf("task-owned directory")?,
            shared_dir: c.utf("shared directory")?,
            is_empty: c.bool("is empty")?,
        })
    } else {
        None
    };
    let delegate = required_stream(c, "operator state delegate").context_with(|| "delegate".into())?;
    Ok(Some(OperatorStateHandle { type_byte: t, states, file_merging, delegate }))
}

/// Reads one channel-state handle. `typed` is true from metadata V6 on, where a type byte leads;
/// `input` says which list it is in (which decides the kind before V6).
pub fn read_channel_handle(c: &mut Cursor<'_>, typed: bool, input: bool) -> R<ChannelStateHandle> {
    let kind = if typed {
        let at = c.position();
        match (c.u8("channel handle type")?, input) {
            (channel_type::INPUT_CHANNEL, true) => ChannelStateKind::InputChannel,
            (channel_type::MERGED_INPUT_CHANNEL, true) => ChannelStateKind::MergedInputChannel,
            (channel_type::RESULT_SUBPARTITION, false) => ChannelStateKind::ResultSubpartition,
            (channel_type::MERGED_RESULT_SUBPARTITION, false) => ChannelStateKind::MergedResultSubpartition,
            (t, _) => return Err(c.error_at(DecodeErrorKind::BadHandleType { what: "channel handle", found: t }, at)),
        }
    } else if input {
        ChannelStateKind::InputChannel
    } else {
        ChannelStateKind::ResultSubpartition
    };
    let subtask_index = c.non_negative_i32("subtask index")?;
    match kind {
        ChannelStateKind::InputChannel | ChannelStateKind::ResultSubpartition => {
            let info = (c.i32("gate or partition index")?, c.i32("channel or subpartition index")?);
            let n = c.count("buffer offsets", 8)?;
            let offsets = offsets(c, n)?;
            let state_size = c.non_negative_i64("state size")?;
            let delegate = read_stream_handle(c).context_with(|| "delegate".into())?;
            Ok(ChannelStateHandle { kind, subtask_index, info: Some(info), offsets, state_size, delegate, merged_offsets: Vec::new() })
        }
        ChannelStateKind::MergedInputChannel | ChannelStateKind::MergedResultSubpartition => {
            let state_size = c.non_negative_i64("state size")?;
            let delegate = read_stream_handle(c).context_with(|| "delegate".into())?;
            let merged_offsets = c.len_prefixed("serialized channel offsets")?.to_vec();
            Ok(ChannelStateHandle { kind, subtask_index, info: None, offsets: Vec::new(), state_size, delegate, merged_offsets })
        }
    }
}
