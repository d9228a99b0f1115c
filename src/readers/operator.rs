//! Operator (non-keyed) state: split and union list state and broadcast state of one
//! operator-state handle (`OperatorBackendSerializationProxy`,
//! `OperatorStateRestoreOperation`). Spec: `formats/operator-state.md`.

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind, Error, Result, ResultExt};
use crate::metadata::handles::{DistributionMode, OperatorStateHandle};
use crate::model::{Entry, OperatorId, RawEntry, StateKind};
use crate::readers::keyed::{decode_framed, decode_span};
use crate::readers::meta::{read_operator_backend_meta, OperatorBackendMeta, KEY_SERIALIZER, VALUE_SERIALIZER};
use crate::readers::stream::{snappy_decompress, StreamSource};
use crate::snapshot::Snapshot;

/// The stream identifier that opens a Snappy framed stream. Compressed operator state has it
/// once, after the proxy; every offset points at a later chunk boundary.
const SNAPPY_STREAM_IDENTIFIER: [u8; 10] = [0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59];

/// Reads every entry of one operator-state handle: one entry per list element, one per
/// broadcast map key.
pub fn read_operator_state(snapshot: &Snapshot, operator_id: OperatorId, handle: &OperatorStateHandle) -> Result<Vec<Entry>> {
    if handle.is_empty() {
        return Ok(Vec::new());
    }
    let source = StreamSource::open(snapshot, &handle.delegate)?;
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
    let meta = read_operator_backend_meta(&mut Cursor::new(&head)).map_err(|e| Error::decode(&file, e.context("operator backend meta data")))?;
    // An element runs from its offset to the next offset of any state, or to the end.
    let span = |start: u64| -> (u64, u64) {
        let end = offsets.iter().copied().find(|&o| o > start).unwrap_or(size);
        (start, end)
    };
    let mut out = Vec::new();
    for state in &handle.states {
        let info = find_meta(&meta, &state.name, state.mode).ok_or_else(|| {
            Error::decode(&file, DecodeError::new(DecodeErrorKind::Invalid(format!("state {:?} is not in the file's meta data", state.name)), 0))
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
            let (data, base) = if meta.compressed {
                let mut framed = SNAPPY_STREAM_IDENTIFIER.to_vec();
                framed.extend_from_slice(&raw);
                let d = snappy_decompress(&framed).map_err(|e| {
                    Error::decode(&file, DecodeError::new(DecodeErrorKind::Invalid(format!("bad snappy data: {e}")), start))
                })?;
                (d, 0)
            } else {
                (raw, start)
            };
            let first = i;
            let ctx = || format!("state {:?} element {first}", state.name);
            let res = if kind == StateKind::Broadcast {
                read_broadcast(&data, base, info, operator_id, &state.name)
            } else {
                read_list_elements(&data, base, run, info, kind, operator_id, &state.name)
            };
            let entries = res.context_with(ctx).map_err(|e| {
                let e = if meta.compressed { e.context(format!("decompressed from file offset {start}")) } else { e };
                Error::decode(&file, e)
            })?;
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
    read_operator_backend_meta(&mut Cursor::new(&head)).map_err(|e| Error::decode(source.name(), e.context("operator backend meta data")))
}

fn find_meta<'m>(meta: &'m OperatorBackendMeta, name: &str, mode: DistributionMode) -> Option<&'m crate::readers::meta::StateMetaInfo> {
    let list = if mode == DistributionMode::Broadcast { &meta.broadcast_states } else { &meta.operator_states };
    list.iter().find(|m| m.name == name)
}

fn no_serializer(what: &str) -> DecodeError {
    DecodeError::new(DecodeErrorKind::Invalid(format!("no {what} serializer")), 0)
}

/// Reads `count` list elements that follow each other in `data` (normally one per offset).
fn read_list_elements(
    data: &[u8],
    base: u64,
    count: usize,
    info: &crate::readers::meta::StateMetaInfo,
    kind: StateKind,
    operator_id: OperatorId,
    name: &str,
) -> std::result::Result<Vec<Entry>, DecodeError> {
    let ser = info.serializer(VALUE_SERIALIZER).ok_or_else(|| no_serializer("value"))?;
    let entry = |value, raw: &[u8]| Entry {
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
    };
    // An element that cannot be delimited (opaque serializer) takes its whole span.
    if count == 1 && ser.is_opaque() {
        return Ok(vec![entry(decode_framed(ser, data, base)?, data)]);
    }
    let mut c = Cursor::with_base(data, base);
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (v, raw) = decode_span(ser, &mut c)?;
        out.push(entry(v, &raw));
    }
    c.expect_end("list elements")?;
    Ok(out)
}

fn read_broadcast(
    data: &[u8],
    base: u64,
    info: &crate::readers::meta::StateMetaInfo,
    operator_id: OperatorId,
    name: &str,
) -> std::result::Result<Vec<Entry>, DecodeError> {
    let key_ser = info.serializer(KEY_SERIALIZER).ok_or_else(|| no_serializer("key"))?;
    let value_ser = info.serializer(VALUE_SERIALIZER).ok_or_else(|| no_serializer("value"))?;
    let mut c = Cursor::with_base(data, base);
    let n = c.count("broadcast state size", 1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
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
        });
    }
    c.expect_end("broadcast state")?;
    Ok(out)
}
