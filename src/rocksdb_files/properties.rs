//! Table properties (`table/meta_blocks.cc`, `table/table_properties.cc`): the
//! `rocksdb.properties` meta block, name → value. Numbers RocksDB itself keeps are varint64s;
//! properties of collectors are raw bytes (the block-based table's index type is a fixed32, an
//! ingested file's version a fixed32 and its global sequence number a fixed64).

use std::collections::BTreeMap;

use super::coding::Reader;

/// Index types (`BlockBasedTableOptions::IndexType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexType {
    /// 0: one index block, binary search.
    BinarySearch,
    /// 1: binary search plus a prefix hash (the hash part is skipped).
    HashSearch,
    /// 2: partitioned: a top-level index over index partitions.
    TwoLevel,
    /// 3: binary search, values also hold each block's first key.
    BinarySearchWithFirstKey,
}

/// The properties of one table.
#[derive(Debug, Clone, Default)]
pub struct Properties {
    /// Every property, raw.
    pub raw: BTreeMap<String, Vec<u8>>,
}

impl Properties {
    /// From the properties block's entries.
    pub fn new(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Properties {
        Properties { raw: entries.into_iter().map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v)).collect() }
    }

    /// A varint64 property.
    pub fn number(&self, name: &str) -> Option<u64> {
        self.raw.get(name).and_then(|v| Reader::new(v).varint64("property").ok())
    }

    /// A string property.
    pub fn text(&self, name: &str) -> Option<String> {
        self.raw.get(name).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn fixed32(&self, name: &str) -> Option<u32> {
        self.raw.get(name).and_then(|v| Reader::new(v).fixed32("property").ok())
    }

    /// `rocksdb.block.based.table.index.type` (absent in very old tables: binary search).
    pub fn index_type(&self) -> Result<IndexType, u32> {
        match self.fixed32("rocksdb.block.based.table.index.type") {
            None | Some(0) => Ok(IndexType::BinarySearch),
            Some(1) => Ok(IndexType::HashSearch),
            Some(2) => Ok(IndexType::TwoLevel),
            Some(3) => Ok(IndexType::BinarySearchWithFirstKey),
            Some(other) => Err(other),
        }
    }

    /// Whether index keys are user keys (`format_version` 3+), not internal keys.
    pub fn index_key_is_user_key(&self) -> bool {
        self.number("rocksdb.index.key.is.user.key").is_some_and(|v| v != 0)
    }

    /// Whether index values are delta-encoded block handles (`format_version` 4+).
    pub fn index_value_is_delta_encoded(&self) -> bool {
        self.number("rocksdb.index.value.is.delta.encoded").is_some_and(|v| v != 0)
    }

    /// The compression the table was written with (its blocks each say their own).
    pub fn compression_name(&self) -> Option<String> {
        self.text("rocksdb.compression")
    }

    /// The comparator name (`leveldb.BytewiseComparator` for Flink).
    pub fn comparator(&self) -> Option<String> {
        self.text("rocksdb.comparator")
    }

    /// The column family the table was written for.
    pub fn column_family_name(&self) -> Option<String> {
        self.text("rocksdb.column.family.name")
    }

    /// An ingested (external) file's version and global sequence number properties
    /// (`rocksdb.external_sst_file.version`, `…global_seqno`), when present.
    pub fn external_file(&self) -> (Option<u32>, Option<u64>) {
        let seq = self.raw.get("rocksdb.external_sst_file.global_seqno").and_then(|v| Reader::new(v).fixed64("global seqno").ok());
        (self.fixed32("rocksdb.external_sst_file.version"), seq)
    }

    /// Number of entries (`rocksdb.num.entries`).
    pub fn num_entries(&self) -> Option<u64> {
        self.number("rocksdb.num.entries")
    }
}
