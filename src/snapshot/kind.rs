//! What kind of snapshot it is, in FLIP-47's terms: every checkpoint and savepoint is a snapshot
//! with properties.

use serde::Serialize;

use super::{is_checkpoint_dir_name, ResolvedFile, Snapshot, StreamRef};
use crate::metadata::handles::{KeyedStateHandle, StreamRole, StreamStateHandle};

/// Savepoint (user-controlled) or checkpoint (Flink-controlled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotType {
    /// Triggered by a user; owned by the user.
    Savepoint,
    /// Taken by Flink's checkpoint coordinator.
    Checkpoint,
}

/// How the keyed state is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotFormat {
    /// Flink's unified savepoint format (FLIP-41): backend independent.
    Canonical,
    /// A savepoint in the backend's own format (FLIP-203).
    Native,
    /// The heap (HashMap) backend's checkpoint format.
    HeapCheckpoint,
    /// A key-grouped full snapshot stream in a checkpoint, written by the heap backend or by
    /// RocksDB up to Flink 1.15: which one is not recorded in `_metadata` before V4.
    Full,
    /// A RocksDB native full checkpoint (1.16+): all files exclusive to this checkpoint.
    NativeFull,
    /// A RocksDB/ForSt incremental checkpoint referencing shared files.
    Incremental,
    /// The changelog state backend.
    Changelog,
    /// No keyed state at all (operator state is backend independent).
    NoKeyedState,
}

impl SnapshotFormat {
    /// Human-readable name.
    pub fn describe(&self) -> &'static str {
        match self {
            SnapshotFormat::Canonical => "canonical",
            SnapshotFormat::Native => "native",
            SnapshotFormat::HeapCheckpoint => "heap checkpoint",
            SnapshotFormat::Full => "full (key-grouped stream)",
            SnapshotFormat::NativeFull => "full (RocksDB native)",
            SnapshotFormat::Incremental => "incremental",
            SnapshotFormat::Changelog => "changelog",
            SnapshotFormat::NoKeyedState => "no keyed state",
        }
    }
}

/// FLIP-47's property matrix of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Flip47Properties {
    /// Triggered and owned by the user (savepoints).
    pub user_controlled: bool,
    /// References files written by earlier checkpoints (shared state).
    pub incremental: bool,
    /// Every file it needs lies inside its own directory.
    pub self_contained: bool,
    /// Self-contained and recorded with relative paths only, so the directory can be moved.
    pub relocatable: bool,
    /// Can be restored with another parallelism (false when it holds in-flight channel data of an
    /// unaligned checkpoint).
    pub rescalable: bool,
    /// Keyed state in the backend-independent (canonical) format, restorable into any backend.
    pub unified_format: bool,
}

/// Savepoint or checkpoint, and how that was decided.
pub(super) fn snapshot_type(s: &Snapshot) -> (SnapshotType, &'static str) {
    if let Some(p) = &s.metadata.properties {
        let t = if p.is_savepoint { SnapshotType::Savepoint } else { SnapshotType::Checkpoint };
        return (t, "checkpoint properties");
    }
    let name = s.dir.file_name();
    if name.starts_with("savepoint-") {
        return (SnapshotType::Savepoint, "directory name");
    }
    if is_checkpoint_dir_name(name) {
        return (SnapshotType::Checkpoint, "directory name");
    }
    let canonical = keyed_handles(s).any(|k| matches!(k, KeyedStateHandle::KeyGroups(h) if h.is_savepoint()));
    if canonical {
        (SnapshotType::Savepoint, "state handles")
    } else {
        (SnapshotType::Checkpoint, "state handles")
    }
}

fn keyed_handles(s: &Snapshot) -> impl Iterator<Item = &KeyedStateHandle> {
    s.metadata
        .operators
        .iter()
        .flat_map(|o| &o.subtasks)
        .filter_map(|st| st.state.as_ref())
        .flat_map(|st| [&st.managed_keyed_state, &st.raw_keyed_state])
        .flatten()
}

/// The keyed-state format, from the handles and, where present, the recorded properties.
pub(super) fn snapshot_format(s: &Snapshot, ty: SnapshotType, files: &[(StreamRef<'_>, ResolvedFile)]) -> SnapshotFormat {
    let managed: Vec<&KeyedStateHandle> = s
        .metadata
        .operators
        .iter()
        .flat_map(|o| &o.subtasks)
        .filter_map(|st| st.state.as_ref()?.managed_keyed_state.as_ref())
        .collect();
    let Some(first) = managed.first() else {
        return match s.metadata.properties.as_ref().and_then(|p| p.format_type.as_deref()) {
            Some("NATIVE") => SnapshotFormat::Native,
            Some("CANONICAL") => SnapshotFormat::Canonical,
            _ => SnapshotFormat::NoKeyedState,
        };
    };
    match first {
        KeyedStateHandle::KeyGroups(h) if h.is_savepoint() => SnapshotFormat::Canonical,
        KeyedStateHandle::KeyGroups(_) if ty == SnapshotType::Savepoint => SnapshotFormat::Native,
        // From 1.16 (metadata V4) RocksDB's full checkpoints are native, so a key-grouped
        // checkpoint stream can only come from the heap backend.
        KeyedStateHandle::KeyGroups(_) if s.metadata.version >= 4 => SnapshotFormat::HeapCheckpoint,
        KeyedStateHandle::KeyGroups(_) => SnapshotFormat::Full,
        KeyedStateHandle::IncrementalRemote(_) => {
            // The recorded sharing strategy does not tell: a RocksDB full checkpoint is a
            // "Checkpoint" with FORWARD_BACKWARD too. Shared-scope files (absolute paths) do.
            let shares = files.iter().any(|(r, f)| r.role == StreamRole::Shared && !f.relative)
                || files.iter().any(|(r, f)| r.role == StreamRole::Private && !f.relative);
            if ty == SnapshotType::Savepoint {
                SnapshotFormat::Native
            } else if shares {
                SnapshotFormat::Incremental
            } else {
                SnapshotFormat::NativeFull
            }
        }
        KeyedStateHandle::Changelog(_) | KeyedStateHandle::InMemoryChangelog(_) | KeyedStateHandle::ChangelogStream(_) => {
            SnapshotFormat::Changelog
        }
    }
}

/// FLIP-47 properties, from the resolved files.
pub(super) fn flip47(
    s: &Snapshot,
    ty: SnapshotType,
    format: SnapshotFormat,
    files: &[(StreamRef<'_>, ResolvedFile)],
) -> Flip47Properties {
    let self_contained = files.iter().all(|(_, f)| f.own);
    let all_relative = files.iter().all(|(_, f)| f.relative);
    let has_channel_state = s.streams().iter().any(|r| r.role == StreamRole::ChannelData)
        || s.metadata.operators.iter().flat_map(|o| &o.subtasks).filter_map(|st| st.state.as_ref()).any(|st| {
            !st.input_channel_state.is_empty() || !st.result_subpartition_state.is_empty()
        });
    let unified_format = keyed_handles(s).all(|k| match k {
        KeyedStateHandle::KeyGroups(h) => h.is_savepoint(),
        _ => false,
    });
    let incremental = format == SnapshotFormat::Incremental
        || files.iter().any(|(r, f)| r.role == StreamRole::Shared && !f.own)
        || matches!(format, SnapshotFormat::Changelog);
    Flip47Properties {
        user_controlled: ty == SnapshotType::Savepoint,
        incremental,
        self_contained,
        relocatable: self_contained && all_relative,
        rescalable: !has_channel_state,
        unified_format,
    }
}

/// Whether a stream handle's bytes sit in `_metadata`.
pub(super) fn is_inline(h: &StreamStateHandle) -> bool {
    h.is_inline()
}
