//! Operator (non-keyed) state: split and union list state and broadcast state of one
//! operator-state handle (`OperatorBackendSerializationProxy`,
//! `OperatorStateRestoreOperation`). Spec: `formats/operator-state.md`.

use crate::bytes::Cursor;
use crate::consts::SNAPPY_STREAM_IDENTIFIER;
use crate::error::{DecodeError, DecodeErrorKind, Error, Frame, Result, ResultExt};
use crate::metadata::handles::{DistributionMode, OperatorStateHandle};
use crate::model::{Entry, OperatorId, Origin, RawEntry, StateKind, SubtaskRef};
use crate::readers::decode::{at_state, decode_rest, decode_span};
use crate::readers::meta::{read_operator_backend_meta, OperatorBackendMeta, KEY_SERIALIZER, VALUE_SERIALIZER};
use crate::readers::stream::{snappy_decompress, StreamSource};
use crate::snapshot::Snapshot;

/// Reads every entry of the operator-state handle of subtask `sub`: one entry per list element,
/// one per broadcast map key.
pub fn read_operator_state(snapshot: &Snapshot, sub: SubtaskRef, handle: &OperatorStateHandle) -> Result<Vec<Entry>> {
    if handle.is_empty() {
        return Ok(Vec::new());
    }
    let operator_id = snapshot.metadata.operators.get(sub.operator).map(|o| o.operator_id).unwrap_or(OperatorId([0; 16]));
    let source = StreamSource::open(snapshot, &handle.delegate)?;
    read_operator_stream(&source, handle, operator_id, Origin { subtask: Some(sub), stream: Some(0), position: None })
}

/// Reads every entry of an operator-state stream `source` laid out as `handle` says (its states'
/// offsets); entries carry `origin` (with the position of each element).
pub fn read_operator_stream(source: &StreamSource, handle: &OperatorStateHandle, operator_id: OperatorId, origin: Origin) -> Result<Vec<Entry>> {
    let size = source.size();
    let mut offsets: Vec<u64> = handle.states.iter().flat_map(|s| s.offsets.iter().copied()).collect();
    offsets.sort_unstable();
    offsets.dedup();
    let file = source.name();
    if let Some(&last) = offsets.last() {
        if last >= size {
            return Err(Error::decode(
                file,
                DecodeError::new(DecodeErrorKind::Invalid(format!("state offset {last} lies past the end ({size} bytes)")), size),
            ));
        }
    }
    let head = source.read_range(0..offsets.first().copied().unwrap_or(size))?;
    let meta = read_operator_backend_meta(&mut Cursor::with_base(&head, source.file_offset(0)))
        .map_err(|e| Error::decode(&file, e.context("operator backend meta data")))?;
    // An element runs from its offset to the next offset of any state, or to the end.
    let span = |start: u64| -> (u64, u64) {
        let end = offsets.iter().copied().find(|&o| o > start).unwrap_or(size);
        (start, end)
    };
    let mut out = Vec::new();
    for state in &handle.states {
        let info = find_meta(&meta, &state.name, state.mode).ok_or_else(|| {
            Error::decode(&file, DecodeError::new(DecodeErrorKind::Invalid(format!("state {:?} is not in the file's meta data", state.name)), source.file_offset(0)))
        })?;
        let kind = match state.mode {
            DistributionMode::SplitDistribute => StateKind::OperatorList,
            DistributionMode::Union => StateKind::OperatorUnion,
            DistributionMode::Broadcast => StateKind::Broadcast,
        };
        // Flink up to 1.18.1 did not flush the compressor between list elements (FLINK-34063), so
        // several elements can share one offset: a run of equal offsets is read one element after
        // the other from there.
        let mut i = 0;
        while i < state.offsets.len() {
            let offset = state.offsets[i];
            let run = state.offsets[i..].iter().take_while(|&&o| o == offset).count();
            let (start, end) = span(offset);
            let raw = source.read_range(start..end)?;
            let at = source.file_offset(start);
            let (data, c) = if meta.compressed {
                // Offsets count the bytes decompressed from the chunks at this offset.
                let mut framed = SNAPPY_STREAM_IDENTIFIER.to_vec();
                framed.extend_from_slice(&raw);
                let d = snappy_decompress(&framed)
                    .map_err(|e| Error::decode(&file, DecodeError::new(DecodeErrorKind::Invalid(format!("bad snappy data: {e}")), at)))?;
                (d, Frame::Decompressed { block: at })
            } else {
                (raw, Frame::File)
            };
            let base = if meta.compressed { 0 } else { at };
            let c = Cursor::in_frame(&data, c, base);
            let first = i;
            let ctx = || format!("state {:?} element {first}", state.name);
            let res = if kind == StateKind::Broadcast {
                read_broadcast(c, info, operator_id, &state.name)
            } else {
                read_list_elements(c, run, info, kind, operator_id, &state.name)
            };
            let mut entries = res.context_with(ctx).map_err(|e| Error::decode(&file, e))?;
            for e in &mut entries {
                e.origin = Origin { position: e.origin.position, ..origin };
            }
            out.extend(entries);
            i += run;
        }
    }
    Ok(out)
}

/// Reads only the serialization proxy of one operator-state handle: its states and
/// serializers (what a writer needs to lay out typed output before reading any element).
pub fn read_operator_meta(snapshot: &Snapshot, handle: &OperatorStateHandle) -> Result<OperatorBackendMeta> {
    let source = StreamSource::open(snapshot, &handle.delegate)?;
    // The proxy ends where the first state's data starts (or at the end: no elements at all).
    let first = handle.states.iter().flat_map(|s| s.offsets.iter().copied()).min().unwrap_or(source.size()).min(source.size());
    let head = source.read_range(0..first)?;
    read_operator_backend_meta(&mut Cursor::with_base(&head, source.file_offset(0)))
        .map_err(|e| Error::decode(source.name(), e.context("operator backend meta data")))
}

fn find_meta<'m>(meta: &'m OperatorBackendMeta, name: &str, mode: DistributionMode) -> Option<&'m crate::readers::meta::StateMetaInfo> {
    let list = if mode == DistributionMode::Broadcast { &meta.broadcast_states } else { &meta.operator_states };
    list.iter().find(|m| m.name == name)
}

fn no_serializer(info: &crate::readers::meta::StateMetaInfo, what: &str) -> DecodeError {
    at_state(info, format!("state {:?} has no {what} serializer", info.name))
}

/// Reads `count` list elements that follow each other in `c` (normally one per offset), each
/// with its position.
fn read_list_elements(
    mut c: Cursor<'_>,
    count: usize,
    info: &crate::readers::meta::StateMetaInfo,
    kind: StateKind,
    operator_id: OperatorId,
    name: &str,
) -> std::result::Result<Vec<Entry>, DecodeError> {
    let ser = info.serializer(VALUE_SERIALIZER).ok_or_else(|| no_serializer(info, "value"))?;
    let entry = |value, raw: &[u8], at: u64, frame: Frame| Entry {
        operator_id,
        state: name.to_owned(),
        kind,
        key_group: None,
        key: None,
        namespace: None,
        user_key: None,
        value,
        ttl_timestamp: None,
        raw: RawEntry { value: raw.to_vec(), ..Default::default() },
        origin: Origin { position: frame.position(at), ..Origin::default() },
    };
    let (frame, at) = (c.frame(), c.position());
    // An element that cannot be delimited (opaque serializer) takes its whole span.
    if count == 1 && ser.is_opaque() {
        let data = c.clone().rest();
        return Ok(vec![entry(decode_rest(ser, &mut c)?, data, at, frame)]);
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let at = c.position();
        let (v, raw) = decode_span(ser, &mut c)?;
        out.push(entry(v, &raw, at, frame));
    }
    c.expect_end("list elements")?;
    Ok(out)
}

fn read_broadcast(
    mut c: Cursor<'_>,
    info: &crate::readers::meta::StateMetaInfo,
    operator_id: OperatorId,
    name: &str,
) -> std::result::Result<Vec<Entry>, DecodeError> {
    let key_ser = info.serializer(KEY_SERIALIZER).ok_or_else(|| no_serializer(info, "key"))?;
    let value_ser = info.serializer(VALUE_SERIALIZER).ok_or_else(|| no_serializer(info, "value"))?;
    let n = c.count("broadcast state size", 1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let at = c.position();
        let (k, kb) = decode_span(key_ser, &mut c)?;
        let (v, vb) = decode_span(value_ser, &mut c)?;
        out.push(Entry {
            operator_id,
            state: name.to_owned(),
            kind: StateKind::Broadcast,
            key_group: None,
            key: None,
            namespace: None,
            user_key: Some(k),
            value: v,
            ttl_timestamp: None,
            raw: RawEntry { user_key: Some(kb), value: vb, ..Default::default() },
            origin: Origin { position: c.frame().position(at), ..Origin::default() },
        });
    }
    c.expect_end("broadcast state")?;
    Ok(out)
}
