//! FLIP-27 sources: the `SourceOperator`'s reader state and the `SourceCoordinator`'s
//! checkpoint, with the splits and enumerator states of the connectors flinksnap knows.

use serde::Serialize;

use super::{file, kafka};
use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind};

type R<T> = Result<T, DecodeError>;

/// The operator list state of a `SourceOperator` (`SourceOperator.SPLITS_STATE_DESC`): one
/// `byte[]` per split.
pub const READER_STATE: &str = "SourceReaderState";

/// One split of a source reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "connector", rename_all = "kebab-case")]
pub enum Split {
    /// A Kafka partition split (`KafkaPartitionSplitSerializer` v0).
    Kafka(kafka::KafkaSplit),
    /// A file split (`FileSourceSplitSerializer` v1).
    File(file::FileSplit),
    /// A split of a connector flinksnap does not know: its serializer version and bytes.
    Unknown {
        /// The split serializer's version.
        version: i32,
        /// The serialized split, hex.
        hex: String,
    },
}

/// Reads one element of [`READER_STATE`]: `SimpleVersionedSerialization.writeVersionAndSerialize`
/// (`i32` serializer version, `i32` length, the split). The split is recognised by version and
/// an exact parse: Kafka (v0: `utf` topic, `i32`, two `i64`), file (v1); anything else is
/// [`Split::Unknown`]. `base` is the absolute offset of `bytes`, for errors.
pub fn read_reader_split(bytes: &[u8], base: u64) -> R<Split> {
    let mut c = Cursor::with_base(bytes, base);
    let version = c.i32("split serializer version")?;
    let len = c.count("split length", 1)?;
    let at = c.position();
    let split = c.bytes(len, "split")?;
    c.expect_end("source reader state element")?;
    Ok(recognise_split(version, split, at))
}

fn recognise_split(version: i32, split: &[u8], at: u64) -> Split {
    if let Ok(s) = kafka::read_split(version, split, at) {
        return Split::Kafka(s);
    }
    if let Ok(s) = file::read_split(version, split, at) {
        return Split::File(s);
    }
    Split::Unknown { version, hex: crate::model::value::hex(split) }
}

/// The enumerator state in a source's coordinator state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "connector", rename_all = "kebab-case")]
pub enum EnumeratorState {
    /// `KafkaSourceEnumState`.
    Kafka(kafka::KafkaEnumState),
    /// The file source's `PendingSplitsCheckpoint`.
    File(file::PendingSplits),
    /// An enumerator flinksnap does not know.
    Unknown {
        /// The enumerator checkpoint serializer's version.
        version: i32,
        /// The serialized state, hex.
        hex: String,
    },
}

/// Reads a `SourceCoordinator` checkpoint (the coordinator state of a FLIP-27 source operator):
/// `i32` coordinator serde version (0 or 1), `i32` enumerator serializer version, `i32` length,
/// the enumerator state; version 0 may be followed by split assignments (ignored by Flink too).
/// The enumerator state is recognised by an exact parse (file: its 0xDEADBEEF magic; Kafka:
/// versions 0–2).
pub fn read_coordinator_state(bytes: &[u8], base: u64) -> R<EnumeratorState> {
    let mut c = Cursor::with_base(bytes, base);
    let at = c.position();
    let coordinator_version = c.i32("source coordinator serde version")?;
    if !(0..=1).contains(&coordinator_version) {
        return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "source coordinator serde version", value: coordinator_version.into() }, at));
    }
    let version = c.i32("enumerator serializer version")?;
    let len = c.count("enumerator state length", 1)?;
    let sat = c.position();
    let state = c.bytes(len, "enumerator state")?;
    if coordinator_version == 1 {
        c.expect_end("source coordinator state")?;
    }
    if let Ok(s) = file::read_pending_splits(version, state, sat) {
        return Ok(EnumeratorState::File(s));
    }
    if let Ok(s) = kafka::read_enum_state(version, state, sat) {
        return Ok(EnumeratorState::Kafka(s));
    }
    Ok(EnumeratorState::Unknown { version, hex: crate::model::value::hex(state) })
}
