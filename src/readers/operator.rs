//! Operator (non-keyed) state: split and union list state and broadcast state of one
//! operator-state handle (`OperatorBackendSerializationProxy`,
//! `OperatorStateRestoreOperation`). Spec: `formats/operator-state.md`.

use crate::bytes::Cursor;
use crate::consts::SNAPPY_STREAM_IDENTIFIER;
use crate::error::{DecodeError, DecodeErrorKind, Error, Frame, Result};
use crate::metadata::handles::{DistributionMode, OperatorStateHandle};
use crate::model::{Entry, OperatorId, Origin, RawEntry, StateKind, SubtaskRef};
use crate::readers::decode::{at_state, decode_rest, decode_span};
use crate::readers::meta::{read_operator_backend_meta, OperatorBackendMeta, KEY_SERIALIZER, VALUE_SERIALIZER};
use crate::readers::stream::{snappy_decompress, StreamSource};
use crate::readers::undecodable::{Undecodable, UndecodableKind};
use crate::snapshot::Snapshot;

/// Reads every entry of the operator-state handle of subtask `sub`: one entry per list element,
/// one per broadcast map key. A state that could not be read (see
/// [`read_operator_state_reporting`]) is an error here: callers that write state must not lose it.
pub fn read_operator_state(snapshot: &Snapshot, sub: SubtaskRef, handle: &OperatorStateHandle) -> Result<Vec<Entry>> {
    let (entries, undecodable) = read_operator_state_reporting(snapshot, sub, handle)?;
    match undecodable.first() {
        None => Ok(entries),
        Some(u) => Err(undecodable_error(u.file.as_deref().unwrap_or_default(), u)),
    }
}

/// The error a read that must not lose state gives for a state it could not read.
fn undecodable_error(file: &str, u: &Undecodable) -> Error {
    let kind = DecodeErrorKind::Invalid(format!("operator state {}: {}", u.state_label(), u.reason));
    Error::decode(file, u.position.map_or_else(|| DecodeError::unplaced(kind.clone()), |p| DecodeError::at(kind.clone(), p)))
}

/// Reads the operator-state handle of subtask `sub` as [`read_operator_state`] does, but a state
/// whose serializer flinksnap does not know costs at most that state: a state whose
/// registration could not be read (it follows an unknown serializer snapshot whose end the bytes
/// do not fix), or whose elements cannot be delimited (values of an unknown serializer without a
/// length), is reported as [`Undecodable`] with its name, class and element count instead of
/// failing the read; every other state is read as usual.
pub fn read_operator_state_reporting(snapshot: &Snapshot, sub: SubtaskRef, handle: &OperatorStateHandle) -> Result<(Vec<Entry>, Vec<Undecodable>)> {
    if handle.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let op = snapshot.metadata.operators.get(sub.operator);
    let operator_id = op.map(|o| o.operator_id).unwrap_or(OperatorId([0; 16]));
    let source = StreamSource::open(snapshot, &handle.delegate)?;
    let (entries, mut undecodable) = read_operator_stream_reporting(&source, handle, operator_id, Origin { subtask: Some(sub), stream: Some(0), position: None })?;
    let index = op.and_then(|o| o.subtasks.get(sub.subtask)).map(|st| st.index);
    for u in &mut undecodable {
        u.subtask = index;
        u.subtask_ref = Some(sub);
    }
    Ok((entries, undecodable))
}

/// Reads every entry of an operator-state stream `source` laid out as `handle` says (its states'
/// offsets); entries carry `origin` (with the position of each element). Fails where a state
/// could not be read (see [`read_operator_stream_reporting`]).
pub fn read_operator_stream(source: &StreamSource, handle: &OperatorStateHandle, operator_id: OperatorId, origin: Origin) -> Result<Vec<Entry>> {
    let (entries, undecodable) = read_operator_stream_reporting(source, handle, operator_id, origin)?;
    match undecodable.first() {
        None => Ok(entries),
        Some(u) => Err(undecodable_error(&source.name(), u)),
    }
}

/// [`read_operator_stream`], reporting the states of unknown serializers it could not read
/// instead of failing (see [`read_operator_state_reporting`]).
pub fn read_operator_stream_reporting(
    source: &StreamSource,
    handle: &OperatorStateHandle,
    operator_id: OperatorId,
    origin: Origin,
) -> Result<(Vec<Entry>, Vec<Undecodable>)> {
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
    let mut undecodable = Vec::new();
    for state in &handle.states {
        let Some(info) = find_meta(&meta, &state.name, state.mode) else {
            // Registrations after an unknown serializer snapshot whose end the bytes do not fix
            // are not read: the state is reported, by its name in the handle, not failed.
            if let Some(u) = &meta.unreadable {
                let mut r = Undecodable::new(
                    operator_id,
                    UndecodableKind::Registration,
                    Some(state.name.clone()),
                    u.class().map(str::to_owned),
                    format!("its registration is not read (it follows a serializer snapshot flinksnap cannot read past): {}", u.error),
                );
                r.entries = Some(state.offsets.len() as u64);
                r.file = Some(file.clone());
                r.position = u.error.position();
                undecodable.push(r);
                continue;
            }
            return Err(Error::decode(
                &file,
                DecodeError::new(DecodeErrorKind::Invalid(format!("state {:?} is not in the file's meta data", state.name)), source.file_offset(0)),
            ));
        };
        let unknown = info.serializers.iter().find_map(|(_, s)| s.unknown()).map(|u| u.class_name().to_owned());
        let mut state_entries = Vec::new();
        let mut failed = None;
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
            let mut entries = match (res, &unknown) {
                (Ok(entries), _) => entries,
                // Values of an unknown serializer that cannot be delimited (several elements at
                // one offset, broadcast entries without lengths): this state is reported.
                (Err(e), Some(_)) => {
                    failed = Some(e.context(ctx()));
                    break;
                }
                (Err(e), None) => return Err(Error::decode(&file, e.context(ctx()))),
            };
            for e in &mut entries {
                e.origin = Origin { position: e.origin.position, ..origin };
            }
            state_entries.extend(entries);
            i += run;
        }
        match failed {
            None => out.extend(state_entries),
            Some(e) => {
                let stored = if state.mode == DistributionMode::Broadcast { None } else { Some(state.offsets.len() as u64) };
                let mut r = Undecodable::new(
                    operator_id,
                    UndecodableKind::Entries,
                    Some(state.name.clone()),
                    unknown.clone(),
                    format!("its values (serializer snapshot {}) cannot be delimited: {e}", unknown.as_deref().unwrap_or("?")),
                );
                r.entries = stored;
                r.file = Some(file.clone());
                r.position = e.position();
                undecodable.push(r);
            }
        }
    }
    Ok((out, undecodable))
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
        state: name.into(),
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
    for i in 0..n {
        let at = c.position();
        let (k, kb) = decode_span(key_ser, &mut c)?;
        // A value that cannot be delimited (opaque serializer) takes the rest when it is the
        // last one.
        let (v, vb) = if i + 1 == n && value_ser.is_opaque() {
            let data = c.clone().rest().to_vec();
            (decode_rest(value_ser, &mut c)?, data)
        } else {
            decode_span(value_ser, &mut c)?
        };
        out.push(Entry {
            operator_id,
            state: name.into(),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metadata::consts::handle_type;
    use crate::metadata::handles::{OperatorStateMeta, StreamStateHandle};
    use crate::model::value::Value;
    use crate::readers::meta::OPERATOR_STATE_DISTRIBUTION_MODE;
    use crate::readers::serializers::testutil::Out;
    use crate::storage::Location;

    const LONG: &str = "org.apache.flink.api.common.typeutils.base.LongSerializer$LongSerializerSnapshot";
    const CUSTOM: &str = "com.example.MyType$MySerializerSnapshot";

    /// An operator list state's registration (proxy form).
    fn op_state(name: &str, value: Out) -> Out {
        Out::new().utf(name).i32(1).i32(1).utf(OPERATOR_STATE_DISTRIBUTION_MODE).utf("SPLIT_DISTRIBUTE").i32(1).utf(VALUE_SERIALIZER).i32(2).raw(&value.0)
    }

    /// A stream of three list states `a` (Long), `b` (an unknown serializer snapshot) and `c`
    /// (Long), one element each, `c`'s registration damaged (`damage_c`) so that nothing fixes
    /// where `b`'s snapshot ends; and the handle recording their offsets.
    fn stream(damage_c: bool) -> (StreamSource, OperatorStateHandle) {
        let mut c = op_state("c", Out::new().snap(LONG, 3));
        if damage_c {
            c.0[3] = 0xff; // the backend state type, after the 3-byte name
        }
        let proxy = Out::new()
            .i32(6)
            .bool(false)
            .raw(&3i16.to_be_bytes())
            .raw(&op_state("a", Out::new().snap(LONG, 3)).0)
            .raw(&op_state("b", Out::new().snap(CUSTOM, 1).i32(7)).0)
            .raw(&c.0)
            .raw(&0i16.to_be_bytes())
            .0;
        let at = proxy.len() as u64;
        let data = Out::new().raw(&proxy).i64(11).i64(22).i64(33).0;
        let states = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, n)| OperatorStateMeta { name: (*n).to_owned(), mode: DistributionMode::SplitDistribute, offsets: vec![at + 8 * i as u64] })
            .collect();
        let delegate = StreamStateHandle::ByteStream { name: "op".into(), offset: 0, data: data.clone(), size: data.len() as u64 };
        let handle = OperatorStateHandle { type_byte: handle_type::PARTITIONABLE_OPERATOR, states, file_merging: None, delegate };
        (StreamSource::Inline { metadata: Location::new("_metadata"), offset: 0, data: Arc::from(data) }, handle)
    }

    #[test]
    fn an_unknown_snapshot_read_past_leaves_its_state_untyped_and_the_others_typed() {
        let (source, handle) = stream(false);
        let (entries, undecodable) = read_operator_stream_reporting(&source, &handle, OperatorId([1; 16]), Origin::default()).unwrap();
        assert!(undecodable.is_empty(), "{undecodable:?}");
        let got: Vec<(&str, &Value)> = entries.iter().map(|e| (&*e.state, &e.value)).collect();
        assert_eq!(got[0], ("a", &Value::Int(11)));
        assert_eq!(got[2], ("c", &Value::Int(33)));
        assert_eq!(&*entries[1].state, "b");
        assert_eq!(entries[1].opaque_count(), 1);
    }

    #[test]
    fn registrations_that_cannot_be_read_are_reported_by_name_and_class_not_failed() {
        let (source, handle) = stream(true);
        let (entries, undecodable) = read_operator_stream_reporting(&source, &handle, OperatorId([1; 16]), Origin::default()).unwrap();
        // `a` precedes the unknown snapshot: read as usual.
        assert_eq!(entries.len(), 1);
        assert_eq!((&*entries[0].state, &entries[0].value), ("a", &Value::Int(11)));
        // `b` and `c`: named (from the handle), with the unknown class, their element count.
        assert_eq!(undecodable.len(), 2);
        for (u, name) in undecodable.iter().zip(["b", "c"]) {
            assert_eq!((u.state.as_deref(), u.kind, u.class.as_deref(), u.entries), (Some(name), UndecodableKind::Registration, Some(CUSTOM), Some(1)));
        }
        assert!(undecodable.iter().all(|u| u.file.is_some() && u.position.is_some() && !u.reason.is_empty()));
        // A read that must not lose state (a writer) fails instead.
        let e = read_operator_stream(&source, &handle, OperatorId([1; 16]), Origin::default()).unwrap_err();
        assert!(e.to_string().contains("\"b\""), "{e}");
    }
}
