//! Magic numbers, versions and state-handle type bytes of `_metadata`
//! (`Checkpoints.java`, `MetadataV2V3SerializerBase.java`). See `formats/metadata.md`.

/// `Checkpoints.HEADER_MAGIC_NUMBER`.
pub const HEADER_MAGIC: u32 = 0x4960_672D;
/// Opens every master state (`MetadataV2V3SerializerBase.MASTER_STATE_MAGIC_NUMBER`).
pub const MASTER_STATE_MAGIC: u32 = 0xC96B_1696;

/// Oldest metadata version still readable (written by Flink 1.3–1.10).
pub const MIN_VERSION: i32 = 2;
/// Newest metadata version known (V7 is on Flink's master after 2.3).
pub const MAX_VERSION: i32 = 7;

/// Which Flink releases write a metadata version.
pub fn written_by(version: i32) -> &'static str {
    match version {
        2 => "Flink 1.3–1.10",
        3 => "Flink 1.11–1.15",
        4 => "Flink 1.16–1.20",
        5 => "Flink 2.0",
        6 => "Flink 2.1–2.3",
        7 => "Flink after 2.3",
        _ => "unknown",
    }
}

/// State-handle type bytes: one number space for stream, keyed and operator handles.
#[allow(missing_docs)]
pub mod handle_type {
    pub const NULL: u8 = 0;
    pub const BYTE_STREAM: u8 = 1;
    pub const FILE_STREAM: u8 = 2;
    pub const KEY_GROUPS: u8 = 3;
    pub const PARTITIONABLE_OPERATOR: u8 = 4;
    pub const INCREMENTAL_KEY_GROUPS: u8 = 5;
    pub const RELATIVE_STREAM: u8 = 6;
    pub const SAVEPOINT_KEY_GROUPS: u8 = 7;
    pub const CHANGELOG: u8 = 8;
    pub const CHANGELOG_BYTE_INCREMENT: u8 = 9;
    pub const CHANGELOG_FILE_INCREMENT: u8 = 10;
    pub const INCREMENTAL_KEY_GROUPS_V2: u8 = 11;
    pub const KEY_GROUPS_V2: u8 = 12;
    pub const CHANGELOG_FILE_INCREMENT_V2: u8 = 13;
    pub const CHANGELOG_V2: u8 = 14;
    pub const SEGMENT_FILE: u8 = 15;
    pub const EMPTY_SEGMENT_FILE: u8 = 16;
    pub const SEGMENT_PARTITIONABLE_OPERATOR: u8 = 17;
}

/// Channel-state handle type bytes of metadata V6+ (`ChannelStateHandleSerializerV2`).
#[allow(missing_docs)]
pub mod channel_type {
    pub const INPUT_CHANNEL: u8 = 1;
    pub const RESULT_SUBPARTITION: u8 = 2;
    pub const MERGED_INPUT_CHANNEL: u8 = 3;
    pub const MERGED_RESULT_SUBPARTITION: u8 = 4;
}
