//! Where each source of a snapshot stands: the splits of every FLIP-27 source reader and its
//! enumerator's state, and the legacy `FlinkKafkaConsumer`'s offsets — what `flinksnap offsets`
//! prints.

use serde::Serialize;

use super::kafka::{self, LegacyOffset};
use super::source::{self, EnumeratorState, Split};
use crate::error::Result;
use crate::metadata::handles::StreamStateHandle;
use crate::model::value::Value;
use crate::model::SubtaskRef;
use crate::readers::meta::VALUE_SERIALIZER;
use crate::readers::operator::{read_operator_meta, read_operator_state};
use crate::readers::serializers::SerializerKind;
use crate::snapshot::Snapshot;

/// The source positions of one operator.
#[derive(Debug, Clone, Serialize)]
pub struct SourcePositions {
    /// Operator id, hex.
    pub operator_id: String,
    /// Operator uid (stored from Flink 2.0), else `None`.
    pub operator_uid: Option<String>,
    /// Operator name (stored from Flink 2.0), else `None`.
    pub operator_name: Option<String>,
    /// The enumerator state (coordinator state), when the operator has one.
    pub enumerator: Option<EnumeratorState>,
    /// The splits each reader subtask held.
    pub splits: Vec<SubtaskSplit>,
    /// The legacy `FlinkKafkaConsumer` offsets, by the subtask that stored them.
    pub legacy_kafka_offsets: Vec<SubtaskLegacyOffset>,
    /// What could not be read, with why (the rest is still reported).
    pub problems: Vec<String>,
}

/// One split of one reader subtask.
#[derive(Debug, Clone, Serialize)]
pub struct SubtaskSplit {
    /// The subtask.
    pub subtask: u32,
    /// The split.
    #[serde(flatten)]
    pub split: Split,
}

/// One legacy offset of one subtask.
#[derive(Debug, Clone, Serialize)]
pub struct SubtaskLegacyOffset {
    /// The subtask.
    pub subtask: u32,
    /// Topic, partition, offset.
    #[serde(flatten)]
    pub offset: LegacyOffset,
}

/// The source positions of every operator with source state (reader splits, a source
/// enumerator, or legacy Kafka offsets), in metadata order. A state that cannot be read is
/// listed in [`SourcePositions::problems`], never an error: only an unreadable snapshot is.
pub fn source_positions(snapshot: &Snapshot) -> Result<Vec<SourcePositions>> {
    let mut out = Vec::new();
    for (op_index, op) in snapshot.metadata.operators.iter().enumerate() {
        let mut p = SourcePositions {
            operator_id: op.operator_id.to_hex(),
            operator_uid: op.uid.clone(),
            operator_name: op.name.clone(),
            enumerator: None,
            splits: Vec::new(),
            legacy_kafka_offsets: Vec::new(),
            problems: Vec::new(),
        };
        let mut is_source = false;
        if let Some(StreamStateHandle::ByteStream { data, offset, .. }) = &op.coordinator_state {
            match source::read_coordinator_state(data, *offset) {
                Ok(EnumeratorState::Unknown { .. }) | Err(_) if !has_reader_state(op) => {}
                Ok(e) => {
                    is_source = true;
                    p.enumerator = Some(e);
                }
                Err(e) => {
                    is_source = true;
                    p.problems.push(format!("coordinator state in {}: {e}", snapshot.metadata_location));
                }
            }
        }
        for (sub_index, st) in op.subtasks.iter().enumerate() {
            let Some(handle) = st.state.as_ref().and_then(|s| s.managed_operator_state.as_ref()) else { continue };
            let names: Vec<&str> = handle.states.iter().map(|s| s.name.as_str()).collect();
            let reader = names.contains(&source::READER_STATE);
            let legacy = names.contains(&kafka::LEGACY_OFFSETS_STATE);
            if !reader && !legacy {
                continue;
            }
            is_source = true;
            let entries = match read_operator_state(snapshot, SubtaskRef { operator: op_index, subtask: sub_index }, handle) {
                Ok(e) => e,
                Err(e) => {
                    p.problems.push(format!("subtask {}: {e}", st.index));
                    continue;
                }
            };
            let registrations = if legacy { legacy_registrations(snapshot, handle) } else { Vec::new() };
            for e in entries {
                if &*e.state == source::READER_STATE {
                    let Value::Bytes(bytes) = &e.value else {
                        p.problems.push(format!("subtask {}: {} holds {:?}, not bytes", st.index, source::READER_STATE, e.value.to_json()));
                        continue;
                    };
                    match source::read_reader_split(bytes, 0) {
                        Ok(split) => p.splits.push(SubtaskSplit { subtask: st.index, split }),
                        Err(err) => p.problems.push(format!("subtask {}: split: {err}", st.index)),
                    }
                } else if &*e.state == kafka::LEGACY_OFFSETS_STATE {
                    match kafka::read_legacy_offset(&e.raw.value, &registrations, 0) {
                        Ok(offset) => p.legacy_kafka_offsets.push(SubtaskLegacyOffset { subtask: st.index, offset }),
                        Err(err) => p.problems.push(format!("subtask {}: {}: {err}", st.index, kafka::LEGACY_OFFSETS_STATE)),
                    }
                }
            }
        }
        if is_source {
            out.push(p);
        }
    }
    Ok(out)
}

fn has_reader_state(op: &crate::metadata::OperatorState) -> bool {
    op.subtasks.iter().filter_map(|s| s.state.as_ref()?.managed_operator_state.as_ref()).any(|h| h.states.iter().any(|s| s.name == source::READER_STATE))
}

/// The Kryo registrations of the legacy state's `KafkaTopicPartition` serializer (the first
/// field of its tuple serializer), for naming registered class ids.
fn legacy_registrations(snapshot: &Snapshot, handle: &crate::metadata::handles::OperatorStateHandle) -> Vec<String> {
    let Ok(meta) = read_operator_meta(snapshot, handle) else { return Vec::new() };
    let Some(info) = meta.operator_states.iter().find(|m| m.name == kafka::LEGACY_OFFSETS_STATE) else { return Vec::new() };
    let Some(ser) = info.serializer(VALUE_SERIALIZER) else { return Vec::new() };
    match ser.nested().first().map(|s| s.kind()) {
        Some(SerializerKind::Kryo { registrations, .. }) => registrations.clone(),
        _ => Vec::new(),
    }
}
