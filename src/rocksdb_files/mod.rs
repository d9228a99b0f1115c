//! A reader of the RocksDB files Flink's RocksDB and ForSt state backends write, in Rust: no
//! RocksDB library, no working copy. Spec: `formats/sst.md` and `formats/manifest.md`.
//!
//! Bottom up, one job per module:
//! - [`coding`]: varints, fixed-width integers, length-prefixed slices;
//! - [`checksum`]: block checksums (CRC32c, xxHash, xxHash64, XXH3; context of format 6);
//! - [`compression`]: Snappy, LZ4/LZ4HC, ZSTD, zlib blocks;
//! - [`footer`]: the table footer, legacy and versioned, and block handles;
//! - [`block`]: a stored block checked and decoded, its entries (shared-prefix keys, restart
//!   points) iterated and searched;
//! - [`properties`]: table properties;
//! - [`internal_key`]: user key, sequence number, value type and their order;
//! - [`table`]: one SST opened (metaindex, properties, index, range tombstones) and iterated
//!   through its (one- or two-level) index;
//! - [`log`]: the log format of the MANIFEST;
//! - [`manifest`]: `VersionEdit`s and their replay into column families and live files;
//! - [`range_del`]: range tombstones clipped to their files and fragmented;
//! - [`merge`]: the k-way merge of a column family's tables and the resolution of each user
//!   key (newest version, deletes, tombstones, merge operands);
//! - [`db`]: a database opened from its named files;
//! - [`source`]: where the bytes come from (ranged reads through the storage);
//! - [`error`]: errors with typed positions (file, block and offset in the block, record).

pub mod block;
pub mod checksum;
pub mod coding;
pub mod compression;
pub mod db;
pub mod error;
pub mod footer;
pub mod internal_key;
pub mod log;
pub mod manifest;
pub mod merge;
pub mod properties;
pub mod range_del;
pub mod source;
pub mod table;
#[cfg(all(test, feature = "rocksdb"))]
mod tests;

pub use db::{Db, DbOptions};
pub use error::{Error, FormatError, Position, Problem};
pub use merge::{CfCursor, MergeOperator, StringAppend};
pub use source::{FileSource, MemoryFile};
