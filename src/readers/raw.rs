//! The decoders from plain bytes, without a snapshot on disk: what fuzz targets and tools that
//! hold bytes call. Each runs exactly the code that reading a snapshot runs — the bytes become
//! inline state of an in-memory snapshot ([`Snapshot::in_memory`]) read through the one
//! [`KeyedSource`] dispatch — so what a fuzzer finds here is what a corrupt file would hit.
//!
//! | format | entry point |
//! |---|---|
//! | `_metadata` | [`metadata`] |
//! | serializer snapshot (+ values) | [`serializer_snapshot`], [`serializer_values`] |
//! | keyed / operator backend proxy | [`keyed_backend_meta`], [`operator_backend_meta`] |
//! | canonical key-group stream | [`key_group_stream`] with [`KeyedStreamFormat::Canonical`] |
//! | heap checkpoint | [`key_group_stream`] with [`KeyedStreamFormat::HeapCheckpoint`] |
//! | operator state | [`operator_state`] |
//! | changelog DSTL file (replayed) | [`changelog`] |
//!
//! Errors are what reading a snapshot gives: [`crate::Error`], typed positions included. No
//! input may panic, hang or allocate beyond a small multiple of its size.

use crate::bytes::Cursor;
use crate::error::{DecodeError, Result};
use crate::metadata::consts::handle_type;
use crate::metadata::handles::{
    ChangelogStateBackendHandle, ChangelogStateHandleStreamImpl, DistributionMode, KeyGroupsStateHandle, KeyedStateHandle, OperatorStateHandle,
    OperatorStateMeta, StreamStateHandle,
};
use crate::metadata::{CheckpointMetadata, OperatorState, OperatorSubtaskState, SubtaskState};
use crate::model::value::Value;
use crate::model::{Entry, KeyGroupRange, OperatorId, SubtaskRef, ValueParts};
use crate::readers::keyed::KeyedStreamFormat;
use crate::readers::meta::{read_keyed_backend_meta, read_operator_backend_meta, KeyedBackendMeta, OperatorBackendMeta};
use crate::readers::operator::read_operator_state;
use crate::readers::serializers::{read_proxy_snapshot, TypeSerializer};
use crate::readers::source::{KeyedSource, Selection};
use crate::snapshot::Snapshot;

/// What in-memory snapshots call themselves in messages.
const NAME: &str = "<bytes>/_metadata";

/// A `_metadata` file.
pub fn metadata(bytes: &[u8]) -> Result<CheckpointMetadata, DecodeError> {
    CheckpointMetadata::parse(bytes)
}

/// A serializer snapshot in the form state meta data stores it
/// (`TypeSerializerSnapshotSerializationProxy`).
pub fn serializer_snapshot(bytes: &[u8]) -> Result<TypeSerializer, DecodeError> {
    read_proxy_snapshot(&mut Cursor::new(bytes))
}

/// A serializer snapshot (as [`serializer_snapshot`]) followed by values it wrote, decoded one
/// after the other to the end of `bytes`.
pub fn serializer_values(bytes: &[u8]) -> Result<(TypeSerializer, Vec<Value>), DecodeError> {
    let mut c = Cursor::new(bytes);
    let ser = read_proxy_snapshot(&mut c)?;
    let mut values = Vec::new();
    while !c.is_empty() {
        let before = c.remaining();
        values.push(ser.decode(&mut c)?);
        if c.remaining() == before {
            break; // a value of no bytes: the rest would decode to the same forever
        }
    }
    Ok((ser, values))
}

/// A `KeyedBackendSerializationProxy` (the head of every keyed state file).
pub fn keyed_backend_meta(bytes: &[u8]) -> Result<KeyedBackendMeta, DecodeError> {
    read_keyed_backend_meta(&mut Cursor::new(bytes))
}

/// An `OperatorBackendSerializationProxy` (the head of every operator state file).
pub fn operator_backend_meta(bytes: &[u8]) -> Result<OperatorBackendMeta, DecodeError> {
    read_operator_backend_meta(&mut Cursor::new(bytes))
}

fn inline(bytes: &[u8]) -> StreamStateHandle {
    StreamStateHandle::ByteStream { name: "bytes".into(), offset: 0, data: bytes.to_vec(), size: bytes.len() as u64 }
}

/// A key-grouped keyed-state file: the serialization proxy, then key group `i` at
/// `offsets[i]` (as a `KeyGroupsStateHandle` records them; 0 = empty), in `format`, for an
/// operator of `max_parallelism` key groups. Every entry of every key group, its parts decoded
/// or checked as `values` asks (`Selection::values`).
pub fn key_group_stream(bytes: &[u8], format: KeyedStreamFormat, offsets: &[i64], max_parallelism: u32, values: ValueParts) -> Result<Vec<Entry>> {
    keyed_state(key_groups_handle(bytes, format, offsets), max_parallelism, values)
}

fn key_groups_handle(bytes: &[u8], format: KeyedStreamFormat, offsets: &[i64]) -> KeyedStateHandle {
    KeyedStateHandle::KeyGroups(KeyGroupsStateHandle {
        type_byte: match format {
            KeyedStreamFormat::Canonical => handle_type::SAVEPOINT_KEY_GROUPS,
            // A checkpoint handle: which format it holds is probed, as for real checkpoints.
            KeyedStreamFormat::HeapCheckpoint => handle_type::KEY_GROUPS_V2,
        },
        key_group_range: KeyGroupRange::new(0, offsets.len() as u32),
        offsets: offsets.to_vec(),
        delegate: inline(bytes),
        state_handle_id: None,
    })
}

/// A changelog checkpoint: the materialized state (a key-grouped file as in
/// [`key_group_stream`], heap checkpoint format) and one DSTL file (flag byte, then change
/// sets) whose change sets start at `change_sets` (offsets in its logical stream), replayed as
/// Flink restores them. Every entry of every key group.
pub fn changelog(materialized: &[u8], offsets: &[i64], dstl: &[u8], change_sets: &[u64], max_parallelism: u32, values: ValueParts) -> Result<Vec<Entry>> {
    let range = KeyGroupRange::new(0, offsets.len() as u32);
    let handle = KeyedStateHandle::Changelog(ChangelogStateBackendHandle {
        type_byte: handle_type::CHANGELOG_V2,
        key_group_range: range,
        checkpointed_size: 0,
        materialized: vec![key_groups_handle(materialized, KeyedStreamFormat::HeapCheckpoint, offsets)],
        non_materialized: vec![KeyedStateHandle::ChangelogStream(ChangelogStateHandleStreamImpl {
            type_byte: handle_type::CHANGELOG_FILE_INCREMENT_V2,
            key_group_range: range,
            handles: change_sets.iter().map(|&o| (o, inline(dstl))).collect(),
            state_size: dstl.len() as u64,
            checkpointed_size: 0,
            state_handle_id: String::new(),
            storage_identifier: "filesystem".into(),
        })],
        materialization_id: 0,
        checkpoint_id: 0,
        state_handle_id: String::new(),
    });
    keyed_state(handle, max_parallelism, values)
}

/// An operator-state file laid out as `states` say (name, distribution mode, element offsets):
/// one entry per list element, one per broadcast map key.
pub fn operator_state(bytes: &[u8], states: &[(String, DistributionMode, Vec<u64>)]) -> Result<Vec<Entry>> {
    let handle = OperatorStateHandle {
        type_byte: handle_type::PARTITIONABLE_OPERATOR,
        states: states.iter().map(|(name, mode, offsets)| OperatorStateMeta { name: name.clone(), mode: *mode, offsets: offsets.clone() }).collect(),
        file_merging: None,
        delegate: inline(bytes),
    };
    let snapshot = one_subtask(OperatorSubtaskState { managed_operator_state: Some(handle.clone()), ..Default::default() }, 1);
    read_operator_state(&snapshot, SubtaskRef::default(), &handle)
}

/// Every entry of a keyed-state handle whose streams are all inline, through the keyed source,
/// its parts decoded or checked as `values` asks.
pub fn keyed_state(handle: KeyedStateHandle, max_parallelism: u32, values: ValueParts) -> Result<Vec<Entry>> {
    let snapshot = one_subtask(OperatorSubtaskState { managed_keyed_state: Some(handle), ..Default::default() }, max_parallelism);
    let mut out = Vec::new();
    if let Some(mut source) = KeyedSource::open(&snapshot, SubtaskRef::default(), &Selection { values, ..Selection::default() })? {
        for kg in source.key_groups()? {
            for e in source.read_key_group(kg)? {
                out.push(e?);
            }
        }
    }
    Ok(out)
}

/// An in-memory snapshot of one operator with one subtask holding `state`.
fn one_subtask(state: OperatorSubtaskState, max_parallelism: u32) -> Snapshot {
    let metadata = CheckpointMetadata {
        version: 3,
        checkpoint_id: 1,
        master_states: Vec::new(),
        operators: vec![OperatorState {
            operator_id: OperatorId([0; 16]),
            name: None,
            uid: None,
            parallelism: 1,
            max_parallelism: max_parallelism.max(1),
            coordinator_state: None,
            fully_finished: false,
            subtasks: vec![SubtaskState { index: 0, finished: false, state: Some(state) }],
        }],
        properties: None,
        properties_note: None,
        properties_raw: Vec::new(),
    };
    Snapshot::in_memory(metadata, NAME)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::error::{Error, Position, ValuePart};
    use crate::storage::LocalStorage;

    /// The serialization proxy of the first key-groups handle of a 2.3.0 fixture, as stored.
    fn proxy(case: &str) -> (Vec<u8>, u32) {
        let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/flink-2.3.0").join(case);
        let job = std::fs::read_dir(&case).unwrap().flatten().map(|e| e.path()).find(|p| p.is_dir()).unwrap();
        let chk = std::fs::read_dir(&job).unwrap().flatten().map(|e| e.path()).find(|p| p.join("_metadata").exists()).unwrap();
        let s = Snapshot::open(Arc::new(LocalStorage), chk.to_str().unwrap()).unwrap();
        for op in &s.metadata.operators {
            for st in &op.subtasks {
                if let Some(KeyedStateHandle::KeyGroups(h)) = st.state.as_ref().and_then(|s| s.managed_keyed_state.as_ref()) {
                    let source = crate::readers::stream::StreamSource::open(&s, &h.delegate).unwrap();
                    let first = h.offsets.iter().copied().filter(|&o| o > 0).min().unwrap() as u64;
                    return (source.read_range(0..first).unwrap(), op.max_parallelism);
                }
            }
        }
        panic!("no key-groups handle in {}", case.display());
    }

    /// A heap-checkpoint key group 0 whose first state id is 999 (no such state).
    fn bad_key_group(compressed: bool) -> Vec<u8> {
        let mut data = 0i32.to_be_bytes().to_vec();
        let body = 999i16.to_be_bytes();
        if compressed {
            let mut w = snap::write::FrameEncoder::new(Vec::new());
            std::io::Write::write_all(&mut w, &body).unwrap();
            data.extend(w.into_inner().unwrap());
        } else {
            data.extend(body);
        }
        data
    }

    #[test]
    fn positions_say_what_they_count() {
        for (case, compressed) in [("heap-checkpoint", false), ("heap-checkpoint-compressed", true)] {
            let (mut bytes, maxp) = proxy(case);
            let at = bytes.len() as u64;
            bytes.extend(bad_key_group(compressed));
            let e = key_group_stream(&bytes, KeyedStreamFormat::HeapCheckpoint, &[at as i64], maxp, ValueParts::All).unwrap_err();
            let Error::Decode { error, .. } = &e else { panic!("{case}: {e}") };
            // The state id follows the 4-byte key group; compressed, it is the first byte of the
            // key group's Snappy stream.
            let want = if compressed { Position::DecompressedOffset { block: at + 4, offset: 0 } } else { Position::file(at + 4) };
            assert_eq!(error.position(), Some(want), "{case}: {e}");
        }
        // A RocksDB key too short for its key-group prefix: an offset inside the stored key.
        let meta = keyed_backend_meta(&proxy("heap-checkpoint").0).unwrap();
        let d = crate::readers::keyed::KeyedDecoder::new(OperatorId([0; 16]), 32768, &meta).unwrap();
        let e = d.decode_kv(0, &[1], &[]).unwrap_err();
        assert_eq!(e.position(), Some(Position::WithinValue { part: ValuePart::Key, offset: 0 }), "{e}");
        assert!(e.to_string().contains("offset 0 of the stored key"), "{e}");
    }

    #[test]
    fn every_entry_point_survives_garbage() {
        let (proxy, maxp) = proxy("heap-checkpoint");
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..200 {
            let mut bytes = proxy.clone();
            let n = (next() % 64) as usize;
            bytes.extend((0..n).map(|_| next() as u8));
            let i = (next() as usize) % bytes.len();
            bytes[i] ^= 1 << (next() % 8);
            let at = proxy.len() as i64;
            for values in [ValueParts::All, ValueParts::Key] {
                let _ = key_group_stream(&bytes, KeyedStreamFormat::HeapCheckpoint, &[at], maxp, values);
                let _ = key_group_stream(&bytes, KeyedStreamFormat::Canonical, &[at], maxp, values);
                let _ = changelog(&proxy, &[0], &bytes[bytes.len() - n..], &[0], maxp, values);
            }
            let _ = operator_state(&bytes, &[("s".into(), DistributionMode::SplitDistribute, vec![round % 7])]);
            let _ = serializer_values(&bytes);
            let _ = metadata(&bytes);
        }
    }
}
