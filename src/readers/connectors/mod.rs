//! Connector state: what FLIP-27 sources and the legacy Kafka consumer keep in a snapshot, read
//! into positions (topic, partition, offset; file, offset). Spec: `formats/connector-state.md`.
//!
//! - [`source`]: the `SourceOperator`'s reader state (operator list state `SourceReaderState`,
//!   one `SimpleVersionedSerialization` of a split per element) and the `SourceCoordinator`'s
//!   checkpoint (coordinator state: the enumerator's state);
//! - [`kafka`]: `KafkaPartitionSplitSerializer`, `KafkaSourceEnumStateSerializer`, and the legacy
//!   `FlinkKafkaConsumer`'s union state `topic-partition-offset-states`;
//! - [`file`](mod@file): `FileSourceSplitSerializer`, `PendingSplitsCheckpointSerializer`.
//!
//! Nothing in a snapshot names a split's class: a split is recognised by its serializer's
//! version and a parse of the connector's format that takes exactly its bytes (see
//! [`source::Split`]).

pub mod file;
pub mod kafka;
pub mod positions;
pub mod source;

pub use positions::{source_positions, SourcePositions};
pub use source::{read_coordinator_state, read_reader_split, EnumeratorState, Split};
