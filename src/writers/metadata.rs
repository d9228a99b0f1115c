//! Writes a `_metadata` file, the mirror of [`crate::metadata`]'s reader, in any version from 3
//! (`MetadataV3Serializer`) to 7. Spec: `formats/canonical-savepoint-writer.md` § `_metadata`,
//! layouts in `formats/metadata.md`.
//!
//! [`write_metadata_v3`] is what `convert` writes: every Flink release 1.13–2.3 reads V3, and V3
//! needs no Java serialization (V4+ append a Java-serialized `CheckpointProperties`).
//! [`write_metadata`] at the version a snapshot was read in is what `relocate` writes: it keeps
//! operator names and uids (V5+), typed and merged channel-state handles (V6+), reference
//! checkpoint ids (V7) and the properties bytes exactly as read, so a file parsed and written
//! back at its own version is byte-identical.
//!
//! Handles are written with the type byte they carry ([`KeyGroupsStateHandle::type_byte`] etc.),
//! so the caller chooses what the target release understands (the converter writes 7 for keyed
//! state, 4 for operator state, 1 and 6 for streams, all of which 1.13+ read).
//!
//! What a version cannot hold is refused rather than dropped: merged channel-state handles need
//! V6+, reference checkpoint ids V7. Operator names and uids (V5+) are left out below V5; Flink
//! matches operators by id.

use crate::bytes::DataOutput;
use crate::error::{Error, Result};
use crate::metadata::consts::{channel_type, handle_type as ty, HEADER_MAGIC, MASTER_STATE_MAGIC};
use crate::metadata::handles::{
    ChannelStateHandle, ChannelStateKind, DistributionMode, KeyGroupsStateHandle, KeyedStateHandle, OperatorStateHandle,
    StreamStateHandle,
};
use crate::metadata::{CheckpointMetadata, OperatorState, OperatorSubtaskState};

/// The metadata version `convert` writes.
pub const WRITTEN_VERSION: i32 = 3;

/// The versions [`write_metadata`] writes.
pub const WRITABLE_VERSIONS: std::ops::RangeInclusive<i32> = 3..=7;

/// `new ObjectOutputStream(out).writeObject(null)`: what V4+ hold when there are no properties.
const NULL_PROPERTIES: [u8; 5] = [0xac, 0xed, 0x00, 0x05, 0x70];

/// Deepest nesting of keyed handles written (changelog handles nest), as the reader accepts.
const MAX_NESTING: u32 = 8;

/// Serializes `metadata` as a version-3 `_metadata` file. `metadata.version` and
/// `metadata.properties` are ignored: the output is always V3, which has no properties.
pub fn write_metadata_v3(metadata: &CheckpointMetadata) -> Result<Vec<u8>> {
    write_metadata(metadata, WRITTEN_VERSION)
}

/// Serializes `metadata` as a `_metadata` file of `version` (3–7). `metadata.version` is
/// ignored; from V4 on, `metadata.properties_raw` is written as it is (a null object when
/// empty), and `metadata.properties` is not consulted.
pub fn write_metadata(metadata: &CheckpointMetadata, version: i32) -> Result<Vec<u8>> {
    if !WRITABLE_VERSIONS.contains(&version) {
        return Err(Error::Invalid(format!(
            "cannot write _metadata V{version}: versions {}–{} are written",
            WRITABLE_VERSIONS.start(),
            WRITABLE_VERSIONS.end()
        )));
    }
    let mut w = Writer { out: Vec::new(), path: Vec::new(), version };
    w.metadata(metadata)?;
    Ok(w.out)
}

struct Writer {
    /// The metadata version being written.
    version: i32,
    out: Vec<u8>,
    /// Logical path of what is being written, for errors.
    path: Vec<String>,
}

impl Writer {
    fn fail(&self, msg: impl std::fmt::Display) -> Error {
        let at = if self.path.is_empty() { String::new() } else { format!(" (in {})", self.path.join(" / ")) };
        Error::Invalid(format!("cannot write _metadata V{}: {msg}{at}", self.version))
    }

    fn utf(&mut self, s: &str) -> Result<()> {
        self.out.put_utf(s).map_err(|e| self.fail(e))
    }

    fn i32_of(&self, v: u64, what: &str) -> Result<i32> {
        i32::try_from(v).map_err(|_| self.fail(format!("{what} {v} does not fit an i32")))
    }

    fn i64_of(&self, v: u64, what: &str) -> Result<i64> {
        i64::try_from(v).map_err(|_| self.fail(format!("{what} {v} does not fit an i64")))
    }

    fn count(&mut self, n: usize, what: &str) -> Result<()> {
        let n = self.i32_of(n as u64, what)?;
        self.out.put_i32(n);
        Ok(())
    }

    fn nested<T>(&mut self, what: String, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.path.push(what);
        let r = f(self)?;
        self.path.pop();
        Ok(r)
    }

    fn metadata(&mut self, m: &CheckpointMetadata) -> Result<()> {
        self.out.put_u32(HEADER_MAGIC);
        self.out.put_i32(self.version);
        let id = self.i64_of(m.checkpoint_id, "checkpoint id")?;
        self.out.put_i64(id);
        self.count(m.master_states.len(), "number of master states")?;
        for s in &m.master_states {
            // MetadataV2V3SerializerBase.serializeMasterState: magic, then a length-framed block.
            let mut block = Vec::new();
            block.put_i32(s.version);
            block.put_utf(&s.name).map_err(|e| self.fail(e))?;
            block.put_len_prefixed(&s.payload).map_err(|e| self.fail(e))?;
            self.out.put_u32(MASTER_STATE_MAGIC);
            self.out.put_len_prefixed(&block).map_err(|e| self.fail(e))?;
        }
        self.count(m.operators.len(), "number of operator states")?;
        for op in &m.operators {
            self.nested(format!("operator {}", op.operator_id), |w| w.operator(op))?;
        }
        if self.version >= 4 {
            // MetadataV4Serializer: the properties as one Java-serialized object, to the end.
            let raw = if m.properties_raw.is_empty() { &NULL_PROPERTIES[..] } else { &m.properties_raw[..] };
            self.out.extend_from_slice(raw);
        }
        Ok(())
    }

    fn operator(&mut self, op: &OperatorState) -> Result<()> {
        if self.version >= 5 {
            // MetadataV5Serializer: name and uid lead, empty when unknown.
            self.utf(op.name.as_deref().unwrap_or(""))?;
            self.utf(op.uid.as_deref().unwrap_or(""))?;
        }
        // The 16 id bytes in natural order are lowerPart then upperPart, each big-endian.
        self.out.extend_from_slice(&op.operator_id.0);
        let p = self.i32_of(op.parallelism.into(), "parallelism")?;
        let mp = self.i32_of(op.max_parallelism.into(), "max parallelism")?;
        self.out.put_i32(p);
        self.out.put_i32(mp);
        match &op.coordinator_state {
            None => self.out.put_u8(ty::NULL),
            Some(h @ StreamStateHandle::ByteStream { .. }) => self.nested("coordinator state".into(), |w| w.stream(h))?,
            Some(h) => return Err(self.fail(format!("coordinator state must be inline, found {}", h.class_name()))),
        }
        if op.fully_finished {
            if op.coordinator_state.is_some() {
                return Err(self.fail("a fully finished operator has no coordinator state"));
            }
            // Flink 1.14+: -1 subtask states marks a fully finished operator.
            self.out.put_i32(-1);
            return Ok(());
        }
        self.count(op.subtasks.len(), "number of subtask states")?;
        for st in &op.subtasks {
            let index = self.i32_of(st.index.into(), "subtask index")?;
            match (&st.state, st.finished) {
                // A finished subtask is stored as -index-1 with nothing following.
                (_, true) => self.out.put_i32(-index - 1),
                (Some(s), false) => {
                    self.out.put_i32(index);
                    self.nested(format!("subtask {}", st.index), |w| w.subtask(s))?;
                }
                (None, false) => {
                    self.out.put_i32(index);
                    self.nested(format!("subtask {}", st.index), |w| w.subtask(&OperatorSubtaskState::default()))?;
                }
            }
        }
        Ok(())
    }

    fn subtask(&mut self, s: &OperatorSubtaskState) -> Result<()> {
        for (what, h) in [("managed operator state", &s.managed_operator_state), ("raw operator state", &s.raw_operator_state)] {
            match h {
                None => self.out.put_i32(0),
                Some(h) => {
                    self.out.put_i32(1);
                    self.nested(what.into(), |w| w.operator_handle(h))?;
                }
            }
        }
        self.nested("managed keyed state".into(), |w| w.keyed_opt(s.managed_keyed_state.as_ref(), 0))?;
        self.nested("raw keyed state".into(), |w| w.keyed_opt(s.raw_keyed_state.as_ref(), 0))?;
        for (what, list) in [("input channel state", &s.input_channel_state), ("result subpartition state", &s.result_subpartition_state)] {
            self.count(list.len(), what)?;
            for (i, h) in list.iter().enumerate() {
                self.nested(format!("{what} [{i}]"), |w| w.channel(h))?;
            }
        }
        match (s.ref_checkpoint_id, self.version >= 7) {
            (Some(id), false) => return Err(self.fail(format!("a reference checkpoint id ({id}) needs metadata V7"))),
            (None, false) => {}
            (None, true) => self.out.put_u8(0),
            (Some(id), true) => {
                let id = self.i64_of(id, "reference checkpoint id")?;
                self.out.put_u8(1);
                self.out.put_i64(id);
            }
        }
        Ok(())
    }

    fn stream_opt(&mut self, h: Option<&StreamStateHandle>) -> Result<()> {
        match h {
            None => {
                self.out.put_u8(ty::NULL);
                Ok(())
            }
            Some(h) => self.stream(h),
        }
    }

    fn stream(&mut self, h: &StreamStateHandle) -> Result<()> {
        match h {
            StreamStateHandle::ByteStream { name, data, .. } => {
                self.out.put_u8(ty::BYTE_STREAM);
                self.utf(name)?;
                self.out.put_len_prefixed(data).map_err(|e| self.fail(e))?;
            }
            StreamStateHandle::File { path, size } => {
                // Size first, then the path (FileStateHandle).
                self.out.put_u8(ty::FILE_STREAM);
                let size = self.i64_of(*size, "state size")?;
                self.out.put_i64(size);
                self.utf(path)?;
            }
            StreamStateHandle::RelativeFile { relative_path, size } => {
                // Path first, then the size (RelativeFileStateHandle).
                self.out.put_u8(ty::RELATIVE_STREAM);
                self.utf(relative_path)?;
                let size = self.i64_of(*size, "state size")?;
                self.out.put_i64(size);
            }
            StreamStateHandle::SegmentFile { path, start, size, scope, logical_file_id } => {
                self.out.put_u8(ty::SEGMENT_FILE);
                let start = self.i64_of(*start, "segment start")?;
                let size = self.i64_of(*size, "segment size")?;
                let scope = self.i32_of((*scope).into(), "segment scope")?;
                self.out.put_i64(start);
                self.out.put_i64(size);
                self.out.put_i32(scope);
                self.utf(path)?;
                self.utf(logical_file_id)?;
            }
            StreamStateHandle::EmptySegmentFile => self.out.put_u8(ty::EMPTY_SEGMENT_FILE),
            StreamStateHandle::KeyGroups(k) => {
                if k.type_byte != ty::KEY_GROUPS {
                    return Err(self.fail(format!("a key-groups handle of type {} cannot stand as a stream handle", k.type_byte)));
                }
                self.out.put_u8(ty::KEY_GROUPS);
                self.key_groups_body(k)?;
            }
        }
        Ok(())
    }

    fn key_groups_body(&mut self, k: &KeyGroupsStateHandle) -> Result<()> {
        if k.offsets.len() != k.key_group_range.len as usize {
            return Err(self.fail(format!(
                "{} offsets for the {} key groups {}",
                k.offsets.len(),
                k.key_group_range.len,
                k.key_group_range
            )));
        }
        let start = self.i32_of(k.key_group_range.start.into(), "start key group")?;
        let len = self.i32_of(k.key_group_range.len.into(), "number of key groups")?;
        self.out.put_i32(start);
        self.out.put_i32(len);
        for &o in &k.offsets {
            self.out.put_i64(o);
        }
        self.nested("delegate".into(), |w| w.stream(&k.delegate))?;
        if k.type_byte == ty::KEY_GROUPS_V2 {
            let id = k.state_handle_id.as_deref().ok_or_else(|| self.fail("a KeyGroupsStateHandle (12) needs a state handle id"))?;
            self.utf(id)?;
        }
        Ok(())
    }

    fn keyed_opt(&mut self, h: Option<&KeyedStateHandle>, depth: u32) -> Result<()> {
        match h {
            None => {
                self.out.put_u8(ty::NULL);
                Ok(())
            }
            Some(h) => self.keyed(h, depth),
        }
    }

    fn keyed(&mut self, h: &KeyedStateHandle, depth: u32) -> Result<()> {
        if depth > MAX_NESTING {
            return Err(self.fail("keyed handles nested too deeply"));
        }
        match h {
            KeyedStateHandle::KeyGroups(k) => {
                if ![ty::KEY_GROUPS, ty::KEY_GROUPS_V2, ty::SAVEPOINT_KEY_GROUPS].contains(&k.type_byte) {
                    return Err(self.fail(format!("type byte {} is not a key-groups handle", k.type_byte)));
                }
                self.out.put_u8(k.type_byte);
                self.key_groups_body(k)?;
            }
            KeyedStateHandle::IncrementalRemote(h) => {
                let v2 = match h.type_byte {
                    ty::INCREMENTAL_KEY_GROUPS => false,
                    ty::INCREMENTAL_KEY_GROUPS_V2 => true,
                    t => return Err(self.fail(format!("type byte {t} is not an incremental handle"))),
                };
                self.out.put_u8(h.type_byte);
                let id = self.i64_of(h.checkpoint_id, "checkpoint id")?;
                self.out.put_i64(id);
                self.utf(&h.backend_identifier)?;
                let start = self.i32_of(h.key_group_range.start.into(), "start key group")?;
                let len = self.i32_of(h.key_group_range.len.into(), "number of key groups")?;
                self.out.put_i32(start);
                self.out.put_i32(len);
                if v2 {
                    let size = h.checkpointed_size.ok_or_else(|| self.fail("type 11 needs a checkpointed size"))?;
                    let size = self.i64_of(size, "checkpointed size")?;
                    self.out.put_i64(size);
                }
                self.nested("meta state handle".into(), |w| w.stream_opt(h.meta_state_handle.as_ref()))?;
                for (what, list) in [("shared state", &h.shared_state), ("private state", &h.private_state)] {
                    self.count(list.len(), what)?;
                    for f in list {
                        self.utf(&f.local_path)?;
                        self.nested(format!("{what} {}", f.local_path), |w| w.stream_opt(f.handle.as_ref()))?;
                    }
                }
                if v2 {
                    let id = h.state_handle_id.as_deref().ok_or_else(|| self.fail("type 11 needs a state handle id"))?;
                    self.utf(id)?;
                }
            }
            KeyedStateHandle::Changelog(h) => {
                if h.type_byte != ty::CHANGELOG && h.type_byte != ty::CHANGELOG_V2 {
                    return Err(self.fail(format!("type byte {} is not a changelog handle", h.type_byte)));
                }
                self.out.put_u8(h.type_byte);
                let start = self.i32_of(h.key_group_range.start.into(), "start key group")?;
                let len = self.i32_of(h.key_group_range.len.into(), "number of key groups")?;
                self.out.put_i32(start);
                self.out.put_i32(len);
                let size = self.i64_of(h.checkpointed_size, "checkpointed size")?;
                self.out.put_i64(size);
                for (what, list) in [("materialized handles", &h.materialized), ("non-materialized handles", &h.non_materialized)] {
                    self.count(list.len(), what)?;
                    for (i, k) in list.iter().enumerate() {
                        self.nested(format!("{what} [{i}]"), |w| w.keyed(k, depth + 1))?;
                    }
                }
                let mid = self.i64_of(h.materialization_id, "materialization id")?;
                self.out.put_i64(mid);
                if h.type_byte == ty::CHANGELOG_V2 {
                    let cid = self.i64_of(h.checkpoint_id, "checkpoint id")?;
                    self.out.put_i64(cid);
                }
                self.utf(&h.state_handle_id)?;
            }
            KeyedStateHandle::InMemoryChangelog(h) => {
                self.out.put_u8(ty::CHANGELOG_BYTE_INCREMENT);
                let start = self.i32_of(h.key_group_range.start.into(), "start key group")?;
                let len = self.i32_of(h.key_group_range.len.into(), "number of key groups")?;
                self.out.put_i32(start);
                self.out.put_i32(len);
                self.out.put_i64(h.from);
                self.out.put_i64(h.to);
                self.count(h.changes.len(), "state changes")?;
                for (kg, bytes) in &h.changes {
                    self.out.put_i32(*kg);
                    self.out.put_len_prefixed(bytes).map_err(|e| self.fail(e))?;
                }
                self.utf(&h.state_handle_id)?;
            }
            KeyedStateHandle::ChangelogStream(h) => {
                if h.type_byte != ty::CHANGELOG_FILE_INCREMENT && h.type_byte != ty::CHANGELOG_FILE_INCREMENT_V2 {
                    return Err(self.fail(format!("type byte {} is not a changelog stream handle", h.type_byte)));
                }
                self.out.put_u8(h.type_byte);
                let start = self.i32_of(h.key_group_range.start.into(), "start key group")?;
                let len = self.i32_of(h.key_group_range.len.into(), "number of key groups")?;
                self.out.put_i32(start);
                self.out.put_i32(len);
                self.count(h.handles.len(), "changelog files")?;
                for (i, (offset, s)) in h.handles.iter().enumerate() {
                    let o = self.i64_of(*offset, "changelog offset")?;
                    self.out.put_i64(o);
                    self.nested(format!("changelog file [{i}]"), |w| w.stream(s))?;
                }
                let size = self.i64_of(h.state_size, "state size")?;
                let csize = self.i64_of(h.checkpointed_size, "checkpointed size")?;
                self.out.put_i64(size);
                self.out.put_i64(csize);
                self.utf(&h.state_handle_id)?;
                if h.type_byte == ty::CHANGELOG_FILE_INCREMENT_V2 {
                    self.utf(&h.storage_identifier)?;
                }
            }
        }
        Ok(())
    }

    fn operator_handle(&mut self, h: &OperatorStateHandle) -> Result<()> {
        if h.type_byte != ty::PARTITIONABLE_OPERATOR && h.type_byte != ty::SEGMENT_PARTITIONABLE_OPERATOR {
            return Err(self.fail(format!("type byte {} is not an operator-state handle", h.type_byte)));
        }
        self.out.put_u8(h.type_byte);
        self.count(h.states.len(), "operator states")?;
        for s in &h.states {
            self.utf(&s.name)?;
            // OperatorStateHandle.Mode ordinals.
            self.out.put_u8(match s.mode {
                DistributionMode::SplitDistribute => 0,
                DistributionMode::Union => 1,
                DistributionMode::Broadcast => 2,
            });
            self.count(s.offsets.len(), "offsets")?;
            for &o in &s.offsets {
                let o = self.i64_of(o, "offset")?;
                self.out.put_i64(o);
            }
        }
        if h.type_byte == ty::SEGMENT_PARTITIONABLE_OPERATOR {
            let dirs = h.file_merging.as_ref().ok_or_else(|| self.fail("type 17 needs its file-merging directories"))?;
            self.utf(&dirs.task_owned_dir)?;
            self.utf(&dirs.shared_dir)?;
            self.out.put_bool(dirs.is_empty);
        }
        self.nested("delegate".into(), |w| w.stream(&h.delegate))
    }

    fn channel(&mut self, h: &ChannelStateHandle) -> Result<()> {
        let merged = matches!(h.kind, ChannelStateKind::MergedInputChannel | ChannelStateKind::MergedResultSubpartition);
        if self.version >= 6 {
            // ChannelStateHandleSerializerV2: a type byte leads.
            self.out.put_u8(match h.kind {
                ChannelStateKind::InputChannel => channel_type::INPUT_CHANNEL,
                ChannelStateKind::ResultSubpartition => channel_type::RESULT_SUBPARTITION,
                ChannelStateKind::MergedInputChannel => channel_type::MERGED_INPUT_CHANNEL,
                ChannelStateKind::MergedResultSubpartition => channel_type::MERGED_RESULT_SUBPARTITION,
            });
        } else if merged {
            return Err(self.fail(format!("a {:?} channel-state handle needs metadata V6", h.kind)));
        }
        let idx = self.i32_of(h.subtask_index.into(), "subtask index")?;
        self.out.put_i32(idx);
        let size = self.i64_of(h.state_size, "state size")?;
        if merged {
            self.out.put_i64(size);
            self.nested("delegate".into(), |w| w.stream_opt(h.delegate.as_ref()))?;
            return self.out.put_len_prefixed(&h.merged_offsets).map_err(|e| self.fail(e));
        }
        let Some((a, b)) = h.info else {
            return Err(self.fail(format!("a {:?} channel-state handle without its gate and channel", h.kind)));
        };
        self.out.put_i32(a);
        self.out.put_i32(b);
        self.count(h.offsets.len(), "buffer offsets")?;
        for &o in &h.offsets {
            let o = self.i64_of(o, "buffer offset")?;
            self.out.put_i64(o);
        }
        self.out.put_i64(size);
        self.nested("delegate".into(), |w| w.stream_opt(h.delegate.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::metadata::tests::{hex, GOLDEN_V3};

    #[test]
    fn writes_flinks_golden_v3_bytes() {
        let bytes = hex(GOLDEN_V3);
        let m = CheckpointMetadata::parse(&bytes).unwrap();
        assert_eq!(write_metadata_v3(&m).unwrap(), bytes);
    }

    #[test]
    fn v5_and_v6_become_v3_without_names() {
        // The golden V6 form (name "op", uid "my-uid", null properties) written as V3 is the
        // golden V3 file: names and properties are what V3 does not have.
        let v3 = hex(GOLDEN_V3);
        let mut v6 = v3[..24].to_vec();
        v6[7] = 6;
        v6.extend(hex("0002 6f70 0006 6d792d756964"));
        v6.extend(&v3[24..]);
        v6.extend(hex("aced000570"));
        let m = CheckpointMetadata::parse(&v6).unwrap();
        assert_eq!(write_metadata_v3(&m).unwrap(), v3);
    }

    #[test]
    fn every_version_round_trips() {
        // The golden file in V4–V7 form: V5+ add name and uid, V7 a "no reference checkpoint"
        // byte per subtask, V4+ end with the properties object.
        let v3 = hex(GOLDEN_V3);
        let m3 = CheckpointMetadata::parse(&v3).unwrap();
        for version in 4..=7 {
            let bytes = write_metadata(&m3, version).unwrap();
            let m = CheckpointMetadata::parse(&bytes).unwrap();
            assert_eq!(m.version, version);
            // Same content (inline offsets move with the header, so compare as V3 bytes).
            assert_eq!(write_metadata_v3(&m).unwrap(), v3, "V{version}");
            assert_eq!(write_metadata(&m, version).unwrap(), bytes, "V{version}");
            assert!(bytes.ends_with(&NULL_PROPERTIES));
        }
        let e = write_metadata(&m3, 2).unwrap_err().to_string();
        assert!(e.contains("V2") && e.contains("3–7"), "{e}");
    }

    #[test]
    fn refuses_what_v3_cannot_hold() {
        let mut m = CheckpointMetadata::parse(&hex(GOLDEN_V3)).unwrap();
        m.operators[0].subtasks[0].state.as_mut().unwrap().ref_checkpoint_id = Some(3);
        let e = write_metadata_v3(&m).unwrap_err().to_string();
        assert!(e.contains("V7") && e.contains("operator 8409efe6adc6d20787611f16017c808f / subtask 0"), "{e}");
    }
}
