//! Flink's format constants that more than one layer needs (readers, writers, manage), defined
//! once. Constants only one format uses stay beside it: `_metadata`'s magic numbers and handle
//! type bytes in [`crate::metadata::consts`], serializer snapshot classes and magics in
//! `readers::serializers`.

/// Flink's upper bound for max parallelism, and so for the number of key groups
/// (`KeyGroupRangeAssignment.UPPER_BOUND_MAX_PARALLELISM`, `Transformation` checks it too).
pub const UPPER_BOUND_MAX_PARALLELISM: u32 = 1 << 15;

/// Up to this max parallelism a key-group prefix is one byte, beyond it two
/// (`CompositeKeySerializationUtils.computeRequiredBytesInKeyGroupPrefix`).
pub const ONE_BYTE_KEY_GROUP_PREFIX_MAX: u32 = 128;

/// What joins list-state elements in the RocksDB layout (FRocksDB's `StringAppendTESTOperator`
/// with `,`), and so in the canonical stream and in [`crate::model::RawEntry::value`].
pub const LIST_DELIMITER: u8 = b',';

/// Marks the last key/value pair of a (key group, state) run in the canonical stream: bit 7 of
/// the first key byte (`FullSnapshotUtil.FIRST_BIT_IN_BYTE_MASK`).
pub const META_DATA_FOLLOWS: u8 = 0x80;

/// Ends a key group in the canonical stream (`FullSnapshotUtil.END_OF_KEY_GROUP_MARK`).
pub const END_OF_KEY_GROUP: i16 = -1;

/// The stream identifier chunk that opens a Snappy framed stream (`SnappyFramedOutputStream`):
/// Flink's `SnappyStreamCompressionDecorator` writes one per key group, and compressed operator
/// state has it once after the proxy.
pub const SNAPPY_STREAM_IDENTIFIER: [u8; 10] = [0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59];
