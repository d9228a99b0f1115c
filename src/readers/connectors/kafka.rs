//! The Kafka connector's state (`flink-connector-kafka`): FLIP-27 splits and enumerator state,
//! and the legacy `FlinkKafkaConsumer`'s offsets.

use serde::Serialize;

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind};
use crate::readers::serializers::kryo;

type R<T> = Result<T, DecodeError>;

/// `KafkaPartitionSplit.NO_STOPPING_OFFSET`: an unbounded split.
pub const NO_STOPPING_OFFSET: i64 = i64::MIN;

/// A `KafkaPartitionSplit` (`KafkaPartitionSplitSerializer` v0: `utf` topic, `i32` partition,
/// `i64` starting offset, `i64` stopping offset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KafkaSplit {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The next offset to read; negative values are markers (`-1` latest, `-2` earliest, `-3`
    /// committed: `KafkaPartitionSplit`), resolved when the split is first read.
    pub starting_offset: i64,
    /// Where a bounded split stops; `None` for an unbounded one.
    pub stopping_offset: Option<i64>,
}

/// The name of a negative offset marker of `KafkaPartitionSplit`.
pub fn offset_marker(offset: i64) -> Option<&'static str> {
    match offset {
        -1 => Some("latest"),
        -2 => Some("earliest"),
        -3 => Some("committed"),
        _ => None,
    }
}

/// Reads a split written by `KafkaPartitionSplitSerializer` version `version`: exactly `bytes`.
pub fn read_split(version: i32, bytes: &[u8], base: u64) -> R<KafkaSplit> {
    let mut c = Cursor::with_base(bytes, base);
    if version != 0 {
        return Err(c.error(DecodeErrorKind::Invalid(format!("unknown KafkaPartitionSplitSerializer version {version}"))));
    }
    let topic = c.utf("kafka topic")?;
    let partition = c.i32("kafka partition")?;
    let starting_offset = c.i64("kafka starting offset")?;
    let stopping = c.i64("kafka stopping offset")?;
    c.expect_end("kafka split")?;
    Ok(KafkaSplit { topic, partition, starting_offset, stopping_offset: (stopping != NO_STOPPING_OFFSET).then_some(stopping) })
}

/// A partition known to the Kafka enumerator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KafkaEnumPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// `assigned`, or `unassigned-initial` (discovered by the initial discovery, not yet
    /// assigned to a reader).
    pub status: String,
    /// The subtask it was assigned to (version 0 only, which records assignments by reader).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtask: Option<i32>,
}

/// `KafkaSourceEnumState`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KafkaEnumState {
    /// The partitions, in stored order.
    pub partitions: Vec<KafkaEnumPartition>,
    /// Whether the initial partition discovery had finished (always true before version 2).
    pub initial_discovery_finished: bool,
}

/// Reads `KafkaSourceEnumStateSerializer` version `version`: 2 `i32 n`, n × (`utf` topic, `i32`
/// partition, `i32` status: 0 assigned, 1 unassigned-initial), `bool` initial discovery finished;
/// 1 `i32 n`, n × (`utf` topic, `i32` partition), all assigned; 0 the split assignments of
/// `SerdeUtils.serializeSplitAssignments` (`i32` split serializer version, `i32` readers, per
/// reader `i32` subtask, `i32` splits, per split `i32 len` + a split).
pub fn read_enum_state(version: i32, bytes: &[u8], base: u64) -> R<KafkaEnumState> {
    let mut c = Cursor::with_base(bytes, base);
    let mut partitions = Vec::new();
    let mut initial_discovery_finished = true;
    match version {
        2 | 1 => {
            let n = c.count("number of kafka partitions", 2 + 4 + if version == 2 { 4 } else { 0 })?;
            for _ in 0..n {
                let topic = c.utf("kafka topic")?;
                let partition = c.i32("kafka partition")?;
                let status = if version == 2 {
                    let at = c.position();
                    match c.i32("kafka assignment status")? {
                        0 => "assigned",
                        1 => "unassigned-initial",
                        s => return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "kafka assignment status", value: s.into() }, at)),
                    }
                } else {
                    "assigned"
                };
                partitions.push(KafkaEnumPartition { topic, partition, status: status.into(), subtask: None });
            }
            if version == 2 {
                initial_discovery_finished = c.bool("initial discovery finished")?;
            }
        }
        0 => {
            let split_version = c.i32("split serializer version")?;
            let readers = c.count("number of readers", 8)?;
            for _ in 0..readers {
                let subtask = c.i32("subtask")?;
                let n = c.count("number of splits", 4)?;
                for _ in 0..n {
                    let len = c.count("split length", 1)?;
                    let at = c.position();
                    let s = read_split(split_version, c.bytes(len, "split")?, at)?;
                    partitions.push(KafkaEnumPartition { topic: s.topic, partition: s.partition, status: "assigned".into(), subtask: Some(subtask) });
                }
            }
        }
        v => return Err(c.error(DecodeErrorKind::Invalid(format!("unknown KafkaSourceEnumStateSerializer version {v}")))),
    }
    c.expect_end("kafka enumerator state")?;
    Ok(KafkaEnumState { partitions, initial_discovery_finished })
}

/// The union list state of the legacy `FlinkKafkaConsumer` (`FlinkKafkaConsumerBase`).
pub const LEGACY_OFFSETS_STATE: &str = "topic-partition-offset-states";
/// The class Kryo names in each legacy element.
pub const LEGACY_PARTITION_CLASS: &str = "org.apache.flink.streaming.connectors.kafka.internals.KafkaTopicPartition";

/// One element of the legacy consumer's state: `Tuple2<KafkaTopicPartition, Long>` with the
/// partition under Kryo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegacyOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset of the last record read (`KafkaTopicPartitionStateSentinel` values are
    /// negative markers: `-915623761776` not yet read from a start position, ...).
    pub offset: i64,
}

/// Reads one legacy element (`TupleSerializer` of `KryoSerializer<KafkaTopicPartition>` and
/// `LongSerializer`), exactly `bytes`. Kryo writes the partition with `FieldSerializer`: the
/// class id, the reference marker, then the fields sorted by name — `cachedHash` and
/// `partition` as zig-zag varints, `topic` as a reference marker and a Kryo string.
pub fn read_legacy_offset(bytes: &[u8], registrations: &[String], base: u64) -> R<LegacyOffset> {
    let mut c = Cursor::with_base(bytes, base);
    let at = c.position();
    match kryo::value_class(&mut c, registrations)? {
        Some(class) if class == LEGACY_PARTITION_CLASS => {}
        other => {
            return Err(c.error_at(
                DecodeErrorKind::Invalid(format!("expected a Kryo {LEGACY_PARTITION_CLASS}, found {}", other.as_deref().unwrap_or("null"))),
                at,
            ))
        }
    }
    reference_marker(&mut c)?;
    let _cached_hash = kryo::zigzag(kryo::varint(&mut c, "kafka partition hash")?);
    let partition = kryo::zigzag(kryo::varint(&mut c, "kafka partition")?);
    reference_marker(&mut c)?;
    let tat = c.position();
    let topic = kryo::read_string(&mut c, "kafka topic")?.ok_or_else(|| c.error_at(DecodeErrorKind::Invalid("null kafka topic".into()), tat))?;
    let offset = c.i64("kafka offset")?;
    c.expect_end("kafka offset state element")?;
    Ok(LegacyOffset { topic, partition, offset })
}

/// Kryo's `NOT_NULL` reference marker of a first-seen object (Flink's Kryo tracks references).
fn reference_marker(c: &mut Cursor<'_>) -> R<()> {
    let at = c.position();
    match kryo::varint(c, "kryo reference marker")? {
        1 => Ok(()),
        m => Err(c.error_at(DecodeErrorKind::InvalidValue { what: "kryo reference marker", value: m.into() }, at)),
    }
}
