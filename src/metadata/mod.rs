//! The `_metadata` file of a checkpoint or savepoint, every version Flink 1.13–2.3 writes (V3–V6)
//! or still reads (V2), and V7.
//!
//! Structure (spec: `formats/metadata.md`):
//! - header: magic `0x4960672D`, `i32` version;
//! - checkpoint id, master states;
//! - operator states ([`OperatorState`]), each with subtask states holding state handles
//!   ([`handles`]);
//! - V4+: a Java-serialized `CheckpointProperties` ([`CheckpointProperties`]), read where it can
//!   be and otherwise kept as a note: it never fails the file.

pub mod consts;
pub mod handles;
mod operator;
mod properties;

use serde::Serialize;

pub use operator::{OperatorState, OperatorSubtaskState, SubtaskState};
pub use properties::CheckpointProperties;

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind, ResultExt};

type R<T> = Result<T, DecodeError>;

/// State of a legacy master hook (`MasterTriggerRestoreHook`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MasterState {
    /// Hook name.
    pub name: String,
    /// Version of the hook's serializer.
    pub version: i32,
    /// Absolute offset of the payload in `_metadata`.
    pub offset: u64,
    /// The payload.
    #[serde(skip)]
    pub payload: Vec<u8>,
}

/// A parsed `_metadata` file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckpointMetadata {
    /// Metadata format version (2–7).
    pub version: i32,
    /// Checkpoint id.
    pub checkpoint_id: u64,
    /// Master-hook states (normally none).
    pub master_states: Vec<MasterState>,
    /// Operators, in file order.
    pub operators: Vec<OperatorState>,
    /// The trailing properties (V4+), when present and readable.
    pub properties: Option<CheckpointProperties>,
    /// Why the trailing properties could not be read, if they could not.
    pub properties_note: Option<String>,
    /// The trailing properties exactly as stored (V4+: a Java-serialized `CheckpointProperties`
    /// up to the end of the file), so a rewritten `_metadata` keeps them byte for byte.
    #[serde(skip)]
    pub properties_raw: Vec<u8>,
}

impl CheckpointMetadata {
    /// Parses a whole `_metadata` file.
    pub fn parse(data: &[u8]) -> R<CheckpointMetadata> {
        let mut c = Cursor::new(data);
        let at = c.position();
        let magic = c.u32("header magic")?;
        if magic != consts::HEADER_MAGIC {
            return Err(c.error_at(
                DecodeErrorKind::BadMagic { what: "_metadata header", expected: consts::HEADER_MAGIC, found: magic },
                at,
            ));
        }
        let at = c.position();
        let version = c.i32("metadata version")?;
        if !(consts::MIN_VERSION..=consts::MAX_VERSION).contains(&version) {
            return Err(c.error_at(DecodeErrorKind::UnsupportedMetadataVersion(version), at));
        }
        let checkpoint_id = c.non_negative_i64("checkpoint id")?;
        let master_states = read_master_states(&mut c)?;
        // An operator state is at least 16 bytes of id plus parallelism and max parallelism.
        let n = c.count("number of operator states", 24)?;
        let mut operators = Vec::with_capacity(n);
        for i in 0..n {
            operators.push(operator::read_operator_state(&mut c, version).context_with(|| format!("operator state [{i}]"))?);
        }
        let (mut properties, mut properties_note) = (None, None);
        let properties_raw = if version >= 4 { data[c.position() as usize..].to_vec() } else { Vec::new() };
        if version >= 4 {
            match properties::read_properties(&mut c) {
                Ok(p) => properties = p,
                Err(e) => properties_note = Some(format!("checkpoint properties not read: {e}")),
            }
        } else {
            c.expect_end("_metadata")?;
        }
        Ok(CheckpointMetadata { version, checkpoint_id, master_states, operators, properties, properties_note, properties_raw })
    }
}

fn read_master_states(c: &mut Cursor<'_>) -> R<Vec<MasterState>> {
    // A master state is at least its magic and length.
    let n = c.count("number of master states", 8)?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let at = c.position();
        let magic = c.u32("master state magic")?;
        if magic != consts::MASTER_STATE_MAGIC {
            return Err(c.error_at(
                DecodeErrorKind::BadMagic { what: "master state", expected: consts::MASTER_STATE_MAGIC, found: magic },
                at,
            ));
        }
        let len = c.count("master state length", 1)?;
        let mut block = c.sub(len, "master state")?;
        let version = block.i32("master state version")?;
        let name = block.utf("master state name")?;
        let payload = block.len_prefixed("master state payload")?;
        let offset = block.position() - payload.len() as u64;
        block.expect_end("master state").context_with(|| format!("master state [{i}]"))?;
        out.push(MasterState { name, version, offset, payload: payload.to_vec() });
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::handles::{DistributionMode, KeyedStateHandle, StreamStateHandle};
    use super::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// Appendix A.1 of the formats reference: V3 bytes written by Flink 1.13.6 and 2.3.0.
    pub(crate) const GOLDEN_V3: &str = "4960672d 00000003 000000000000002a 00000000 00000001
        8409efe6adc6d207 87611f16017c808f 00000001 00000080 00 00000001 00000000
        00000001 04 00000001 0001 73 01 00000001 0000000000000007 01 0001 68 00000003 010203
        00000000
        07 00000000 00000004 0000000000000064 0000000000000000 00000000000000c8 000000000000012c
        06 0004 61623132 0000000000000190
        00
        00000000 00000000";

    fn check_golden(m: &CheckpointMetadata) {
        assert_eq!(m.checkpoint_id, 42);
        assert_eq!(m.operators.len(), 1);
        let op = &m.operators[0];
        assert_eq!(op.operator_id.to_hex(), "8409efe6adc6d20787611f16017c808f");
        assert_eq!((op.parallelism, op.max_parallelism), (1, 128));
        let s = op.subtasks[0].state.as_ref().unwrap();
        let ops = s.managed_operator_state.as_ref().unwrap();
        assert_eq!(ops.states[0].name, "s");
        assert_eq!(ops.states[0].mode, DistributionMode::Union);
        assert_eq!(ops.states[0].offsets, [7]);
        assert!(matches!(&ops.delegate, StreamStateHandle::ByteStream { name, data, .. } if name == "h" && data == &[1, 2, 3]));
        let Some(KeyedStateHandle::KeyGroups(k)) = &s.managed_keyed_state else { panic!() };
        assert!(k.is_savepoint());
        assert_eq!((k.key_group_range.start, k.key_group_range.len), (0, 4));
        assert_eq!(k.offsets, [100, 0, 200, 300]);
        assert_eq!(k.delegate, StreamStateHandle::RelativeFile { relative_path: "ab12".into(), size: 400 });
    }

    #[test]
    fn reads_golden_v3() {
        let m = CheckpointMetadata::parse(&hex(GOLDEN_V3)).unwrap();
        assert_eq!(m.version, 3);
        check_golden(&m);
        assert_eq!(m.properties, None);
    }

    #[test]
    fn reads_golden_v4_to_v6() {
        let v3 = hex(GOLDEN_V3);
        let mut v4 = v3.clone();
        v4[7] = 4;
        v4.extend(hex("aced000570"));
        let m = CheckpointMetadata::parse(&v4).unwrap();
        assert_eq!((m.version, m.properties.is_none(), m.properties_note.is_none()), (4, true, true));
        check_golden(&m);
        for version in [5u8, 6] {
            let mut v = v3[..24].to_vec();
            v[7] = version;
            v.extend(hex("0002 6f70 0006 6d792d756964"));
            v.extend(&v3[24..]);
            v.extend(hex("aced000570"));
            assert_eq!(v.len(), 179);
            let m = CheckpointMetadata::parse(&v).unwrap();
            check_golden(&m);
            assert_eq!(m.operators[0].name.as_deref(), Some("op"));
            assert_eq!(m.operators[0].uid.as_deref(), Some("my-uid"));
        }
    }

    #[test]
    fn every_truncation_of_golden_fails_with_an_offset() {
        let v3 = hex(GOLDEN_V3);
        for n in 0..v3.len() {
            let e = CheckpointMetadata::parse(&v3[..n]).unwrap_err();
            assert!(e.offset <= n as u64, "prefix {n}: {e}");
        }
    }
}
