//! Writes one subtask's operator state file (`DefaultOperatorStateBackendSnapshotStrategy`): the
//! `OperatorBackendSerializationProxy`, then every list element and every broadcast state at an
//! offset recorded in the operator-state handle (type 4). Spec: `formats/operator-state.md`,
//! `formats/canonical-savepoint-writer.md`.
//!
//! Compressed (proxy version 6 with its flag set), a layout every release that reads compressed
//! operator state accepts:
//!
//! ```text
//! proxy, k × stream identifier,
//! per state with elements: one chunk (or more) per element, then k × stream identifier
//! ```
//!
//! with a chunk boundary before every element, so each offset can be sought to on its own, and
//! k = 1 + the number of states without elements. Why: Flink 1.19+ (and 2.x) open one
//! decompressing stream right after the proxy and seek from offset to offset; Flink 1.18.x opens
//! a new one per state (in the handle's HashMap order) wherever reading the previous state left
//! the raw stream, which is after that state's last element, or 10 bytes further for a state
//! without elements. Every such place holds enough stream identifiers, whatever the order;
//! readers skip identifiers met mid-stream. (1.18.1's own writer did not flush between elements,
//! FLINK-34063, and its reader then restores wrong elements.)

use std::io::Write;

use crate::error::{Error, Result};
use crate::metadata::consts::handle_type;
use crate::metadata::handles::{DistributionMode, OperatorStateHandle, OperatorStateMeta};
use crate::writers::stream::{StateStreamWriter, WithoutStreamIdentifier, SNAPPY_STREAM_IDENTIFIER};

/// The data of one named operator state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorStateData {
    /// List state (split or union): the serialized elements in list order.
    List(Vec<Vec<u8>>),
    /// Broadcast state: serialized (key, value) pairs.
    Broadcast(Vec<(Vec<u8>, Vec<u8>)>),
}

/// One named state of the handle, in the order the handle lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedOperatorState {
    /// State name.
    pub name: String,
    /// Redistribution mode.
    pub mode: DistributionMode,
    /// Its data.
    pub data: OperatorStateData,
}

enum Sink {
    Plain(StateStreamWriter),
    Snappy(Box<snap::write::FrameEncoder<WithoutStreamIdentifier<StateStreamWriter>>>),
}

impl Sink {
    /// The raw file position the next element starts at; for a compressed stream after closing
    /// the current chunk.
    fn element_start(&mut self) -> std::io::Result<u64> {
        match self {
            Sink::Plain(w) => Ok(w.position()),
            Sink::Snappy(enc) => {
                enc.flush()?;
                Ok(enc.get_ref().get_ref().position())
            }
        }
    }

    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.write_all(b),
            Sink::Snappy(enc) => enc.write_all(b),
        }
    }

    /// Ends the current chunk and writes stream identifiers (compressed streams only).
    fn identifiers(&mut self, ids: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(_) => Ok(()),
            Sink::Snappy(enc) => {
                enc.flush()?;
                enc.get_mut().get_mut().write_all(ids)
            }
        }
    }

    fn into_inner(self) -> std::io::Result<StateStreamWriter> {
        match self {
            Sink::Plain(w) => Ok(w),
            Sink::Snappy(enc) => Ok(enc.into_inner().map_err(|e| e.into_error())?.into_inner()),
        }
    }
}

/// Writes an operator state file: `proxy` (its compression flag must say `compressed`), then
/// the states. Returns the handle with the offsets.
pub fn write_operator_state(mut out: StateStreamWriter, name: &str, proxy: &[u8], compressed: bool, states: &[NamedOperatorState]) -> Result<OperatorStateHandle> {
    let io = |e: std::io::Error| Error::io(name, e);
    out.write_all(proxy).map_err(io)?;
    let empty = states.iter().filter(|s| matches!(&s.data, OperatorStateData::List(e) if e.is_empty())).count();
    let identifiers = SNAPPY_STREAM_IDENTIFIER.repeat(1 + empty);
    let mut sink = if compressed {
        out.write_all(&identifiers).map_err(io)?;
        Sink::Snappy(Box::new(snap::write::FrameEncoder::new(WithoutStreamIdentifier::new(out))))
    } else {
        Sink::Plain(out)
    };
    let mut metas = Vec::with_capacity(states.len());
    for s in states {
        let mut offsets = Vec::new();
        match (&s.data, s.mode) {
            (OperatorStateData::List(elements), DistributionMode::SplitDistribute | DistributionMode::Union) => {
                for e in elements {
                    offsets.push(sink.element_start().map_err(io)?);
                    sink.write_all(e).map_err(io)?;
                }
            }
            (OperatorStateData::Broadcast(pairs), DistributionMode::Broadcast) => {
                offsets.push(sink.element_start().map_err(io)?);
                let n = i32::try_from(pairs.len()).map_err(|_| Error::Invalid(format!("{name}: broadcast state {:?} has too many entries", s.name)))?;
                sink.write_all(&n.to_be_bytes()).map_err(io)?;
                for (k, v) in pairs {
                    sink.write_all(k).map_err(io)?;
                    sink.write_all(v).map_err(io)?;
                }
            }
            _ => return Err(Error::Invalid(format!("{name}: state {:?} has data that does not match its mode {}", s.name, s.mode.as_str()))),
        }
        if !offsets.is_empty() {
            sink.identifiers(&identifiers).map_err(io)?;
        }
        metas.push(OperatorStateMeta { name: s.name.clone(), mode: s.mode, offsets });
    }
    let delegate = sink.into_inner().map_err(io)?.finish()?;
    Ok(OperatorStateHandle { type_byte: handle_type::PARTITIONABLE_OPERATOR, states: metas, file_merging: None, delegate })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::handles::StreamStateHandle;

    fn data(h: &OperatorStateHandle) -> Vec<u8> {
        match &h.delegate {
            StreamStateHandle::ByteStream { data, .. } => data.clone(),
            _ => panic!(),
        }
    }

    fn states() -> Vec<NamedOperatorState> {
        vec![
            NamedOperatorState { name: "l".into(), mode: DistributionMode::SplitDistribute, data: OperatorStateData::List(vec![b"ab".to_vec(), b"c".to_vec()]) },
            NamedOperatorState { name: "e".into(), mode: DistributionMode::Union, data: OperatorStateData::List(vec![]) },
            NamedOperatorState { name: "b".into(), mode: DistributionMode::Broadcast, data: OperatorStateData::Broadcast(vec![(b"k".to_vec(), b"v".to_vec())]) },
        ]
    }

    #[test]
    fn uncompressed_offsets_point_at_elements() {
        let dir = tempfile::tempdir().unwrap();
        let h = write_operator_state(StateStreamWriter::new(dir.path(), "o".into(), 1 << 20), "o", b"PROXY", false, &states()).unwrap();
        let d = data(&h);
        assert_eq!(h.states[0].offsets, [5, 7]);
        assert!(h.states[1].offsets.is_empty());
        assert_eq!(h.states[2].offsets, [8]);
        assert_eq!(&d[5..], b"abc\x00\x00\x00\x01kv");
    }

    #[test]
    fn compressed_offsets_are_chunk_boundaries_after_one_identifier() {
        let dir = tempfile::tempdir().unwrap();
        let h = write_operator_state(StateStreamWriter::new(dir.path(), "o".into(), 1 << 20), "o", b"PROXY", true, &states()).unwrap();
        let d = data(&h);
        // One state without elements: two identifiers wherever Flink 1.18 opens a stream.
        let two = SNAPPY_STREAM_IDENTIFIER.repeat(2);
        assert_eq!(&d[5..25], &two[..]);
        assert_eq!(h.states[0].offsets[0], 25);
        let after_l = h.states[2].offsets[0] as usize - 20;
        assert_eq!(&d[after_l..after_l + 20], &two[..]);
        assert_eq!(&d[d.len() - 20..], &two[..]);
        // Every offset decodes on its own (identifier prefixed, as a reader that seeks does).
        let decode = |from: u64, to: u64| {
            let mut framed = SNAPPY_STREAM_IDENTIFIER.to_vec();
            framed.extend_from_slice(&d[from as usize..to as usize]);
            crate::readers::stream::snappy_decompress(&framed).unwrap()
        };
        let o = [h.states[0].offsets[0], h.states[0].offsets[1], h.states[2].offsets[0], d.len() as u64];
        assert_eq!(decode(o[0], o[1]), b"ab");
        assert_eq!(decode(o[1], o[2] - 20), b"c");
        assert_eq!(decode(o[2], o[3]), b"\x00\x00\x00\x01kv");
        // The whole data section is one framed stream.
        assert_eq!(crate::readers::stream::snappy_decompress(&d[5..]).unwrap(), b"abc\x00\x00\x00\x01kv");
    }
}
