//! The table footer (`table/format.cc`, `Footer::DecodeFrom`): the last 48 or 53 bytes of every
//! block-based table.
//!
//! - `format_version` 0 (legacy magic `0xdb4775248b80fb57`, FRocksDB 5.17 / Flink 1.13): the
//!   metaindex and index block handles (varints), zero padding to 40 bytes, the magic. 48 bytes;
//!   checksums are CRC32c.
//! - 1 to 5 (magic `0x88e241b785f4cff7`): checksum type byte, the two handles padded to 40
//!   bytes, `format_version` (u32), the magic. 53 bytes.
//! - 6: checksum type, the extended magic `3e 00 7a 00`, the footer's own checksum, the base
//!   context checksum, the metaindex size (the metaindex ends right before the footer; the index
//!   handle moves into the metaindex as `rocksdb.index`), 24 reserved bytes (the last 8 zero),
//!   `format_version`, magic.

use super::checksum::{context_modifier, ChecksumType};
use super::coding::Reader;
use super::error::{corrupt, unsupported, Position, Result};

/// `kLegacyBlockBasedTableMagicNumber`.
pub const LEGACY_MAGIC: u64 = 0xdb47_7524_8b80_fb57;
/// `kBlockBasedTableMagicNumber`.
pub const MAGIC: u64 = 0x88e2_41b7_85f4_cff7;
/// Footer length of `format_version` 0.
pub const LEGACY_LEN: u64 = 48;
/// Footer length of every later version.
pub const LEN: u64 = 53;
/// Every block is followed by its compression type and checksum.
pub const BLOCK_TRAILER: u64 = 5;
/// The newest `format_version` this reader knows (RocksDB 8–11 write at most 6; 7 is newer).
pub const LATEST_FORMAT_VERSION: u32 = 6;
const EXTENDED_MAGIC: [u8; 4] = [0x3e, 0x00, 0x7a, 0x00];

/// Where a block is: offset and size in the file, without the trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockHandle {
    /// Offset in the file.
    pub offset: u64,
    /// Size of the stored (possibly compressed) block, trailer not included.
    pub size: u64,
}

impl BlockHandle {
    /// Decodes a handle (two varint64s).
    pub fn decode(r: &mut Reader<'_>) -> std::result::Result<BlockHandle, super::coding::Bad> {
        let offset = r.varint64("block handle offset")?;
        let size = r.varint64("block handle size")?;
        Ok(BlockHandle { offset, size })
    }

    /// The byte after the block's trailer.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.size).saturating_add(BLOCK_TRAILER)
    }
}

/// A decoded footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// `format_version` (0 for the legacy footer).
    pub format_version: u32,
    /// How blocks are checksummed.
    pub checksum: ChecksumType,
    /// Added to block checksums from `format_version` 6 (0 before).
    pub base_context_checksum: u32,
    /// The metaindex block.
    pub metaindex: BlockHandle,
    /// The (top-level) index block; `None` from `format_version` 6 (it is in the metaindex).
    pub index: Option<BlockHandle>,
    /// Where the footer starts.
    pub offset: u64,
}

/// How many bytes to read from the end of a file to be sure to have the footer.
pub fn tail_len(file_size: u64) -> u64 {
    file_size.min(LEN)
}

/// Decodes the footer from `tail`, the last bytes of a file of `file_size` bytes.
pub fn decode(file: &str, tail: &[u8], file_size: u64) -> Result<Footer> {
    let tail_start = file_size - tail.len() as u64;
    if (tail.len() as u64) < LEGACY_LEN {
        return Err(corrupt(
            file,
            Position::File(0),
            format!("{file_size} bytes are too few for a RocksDB table (its footer alone has 48 or 53): truncated?"),
        ));
    }
    let magic = u64::from_le_bytes(tail[tail.len() - 8..].try_into().unwrap_or([0; 8]));
    if magic == LEGACY_MAGIC {
        let offset = file_size - LEGACY_LEN;
        let part = &tail[(offset - tail_start) as usize..];
        let mut r = Reader::new(part);
        let bad = |b: super::coding::Bad| corrupt(file, Position::File(offset + b.at as u64), format!("bad {} in the footer", b.what));
        let metaindex = BlockHandle::decode(&mut r).map_err(bad)?;
        let index = BlockHandle::decode(&mut r).map_err(bad)?;
        return Ok(Footer {
            format_version: 0,
            checksum: ChecksumType::Crc32c,
            base_context_checksum: 0,
            metaindex,
            index: Some(index),
            offset,
        });
    }
    if magic != MAGIC {
        return Err(corrupt(
            file,
            Position::File(file_size - 8),
            format!(
                "magic number 0x{magic:016x} is not a block-based table's (0x{MAGIC:016x}, or 0x{LEGACY_MAGIC:016x} for format_version 0): \
                 not an SST file, truncated, or another table format (plain, cuckoo)"
            ),
        ));
    }
    if (tail.len() as u64) < LEN {
        return Err(corrupt(file, Position::File(0), format!("{file_size} bytes are too few for a table with a 53-byte footer")));
    }
    let offset = file_size - LEN;
    let f = &tail[(offset - tail_start) as usize..];
    let format_version = u32::from_le_bytes([f[41], f[42], f[43], f[44]]);
    if format_version == 0 || format_version > LATEST_FORMAT_VERSION {
        return Err(unsupported(
            file,
            Position::File(offset + 41),
            format!("table format_version {format_version} (flinksnap reads 0 to {LATEST_FORMAT_VERSION})"),
        ));
    }
    let checksum = ChecksumType::from_byte(f[0])
        .ok_or_else(|| corrupt(file, Position::File(offset), format!("unknown checksum type {} in the footer", f[0])))?;
    if format_version < 6 {
        let mut r = Reader::new(&f[1..41]);
        let bad = |b: super::coding::Bad| corrupt(file, Position::File(offset + 1 + b.at as u64), format!("bad {} in the footer", b.what));
        let metaindex = BlockHandle::decode(&mut r).map_err(bad)?;
        let index = BlockHandle::decode(&mut r).map_err(bad)?;
        return Ok(Footer { format_version, checksum, base_context_checksum: 0, metaindex, index: Some(index), offset });
    }
    if f[1..5] != EXTENDED_MAGIC {
        return Err(corrupt(file, Position::File(offset + 1), "format_version 6 footer without its extended magic number"));
    }
    let le = |at: usize| u32::from_le_bytes([f[at], f[at + 1], f[at + 2], f[at + 3]]);
    let stored = le(5);
    let base_context_checksum = le(9);
    let metaindex_size = le(13);
    if f[33..41].iter().any(|&b| b != 0) {
        return Err(unsupported(file, Position::File(offset + 33), "a table feature newer than format_version 6 (reserved footer bytes set)"));
    }
    if checksum != ChecksumType::None {
        let mut copy = f.to_vec();
        copy[5..9].fill(0);
        let computed = checksum.compute(&copy).wrapping_add(context_modifier(base_context_checksum, offset));
        if computed != stored {
            return Err(super::error::FormatError {
                file: file.to_owned(),
                position: Position::File(offset),
                problem: super::error::Problem::Checksum { kind: checksum.name(), stored, computed },
            }
            .into());
        }
    }
    let metaindex_end = offset.checked_sub(BLOCK_TRAILER).ok_or_else(|| corrupt(file, Position::File(offset), "footer at the very start"))?;
    let metaindex_offset = metaindex_end
        .checked_sub(u64::from(metaindex_size))
        .ok_or_else(|| corrupt(file, Position::File(offset + 13), format!("metaindex of {metaindex_size} bytes does not fit before the footer")))?;
    Ok(Footer {
        format_version,
        checksum,
        base_context_checksum,
        metaindex: BlockHandle { offset: metaindex_offset, size: u64::from(metaindex_size) },
        index: None,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rocksdb_files::coding::put_varint64;

    fn handles(meta: (u64, u64), index: (u64, u64)) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [meta.0, meta.1, index.0, index.1] {
            put_varint64(&mut v, x);
        }
        v.resize(40, 0);
        v
    }

    #[test]
    fn legacy_and_versioned_footers() {
        let mut legacy = vec![0xaa; 100];
        legacy.extend(handles((10, 20), (35, 40)));
        legacy.extend(LEGACY_MAGIC.to_le_bytes());
        let f = decode("t", &legacy[legacy.len() - 53..], legacy.len() as u64).unwrap();
        assert_eq!((f.format_version, f.checksum, f.offset), (0, ChecksumType::Crc32c, 100));
        assert_eq!(f.metaindex, BlockHandle { offset: 10, size: 20 });

        let mut v5 = vec![0xaa; 100];
        v5.push(4);
        v5.extend(handles((1, 2), (3, 4)));
        v5.extend(5u32.to_le_bytes());
        v5.extend(MAGIC.to_le_bytes());
        let f = decode("t", &v5[v5.len() - 53..], v5.len() as u64).unwrap();
        assert_eq!((f.format_version, f.checksum, f.index), (5, ChecksumType::Xxh3, Some(BlockHandle { offset: 3, size: 4 })));

        let mut bad = v5.clone();
        let n = bad.len();
        bad[n - 12] = 9; // format_version 9
        let e = decode("t", &bad[n - 53..], n as u64).unwrap_err();
        assert!(e.to_string().contains("format_version 9"), "{e}");
        bad[n - 1] ^= 1;
        let e = decode("t", &bad[n - 53..], n as u64).unwrap_err();
        assert_eq!(e.format().unwrap().position, Position::File(n as u64 - 8));
        assert!(decode("t", &v5[..20], 20).is_err());
    }

    #[test]
    fn format_version_6_footer_checksum() {
        // metaindex of 30 bytes right before the footer, at 100 - 5 - 30.
        let mut f = vec![4u8];
        f.extend(EXTENDED_MAGIC);
        f.extend(0u32.to_le_bytes());
        f.extend(0x1234_5678u32.to_le_bytes());
        f.extend(30u32.to_le_bytes());
        f.extend([0u8; 24]);
        f.extend(6u32.to_le_bytes());
        f.extend(MAGIC.to_le_bytes());
        let c = ChecksumType::Xxh3.compute(&f).wrapping_add(context_modifier(0x1234_5678, 100));
        f[5..9].copy_from_slice(&c.to_le_bytes());
        let mut file = vec![0u8; 100];
        file.extend(&f);
        let footer = decode("t", &file[file.len() - 53..], file.len() as u64).unwrap();
        assert_eq!(footer.metaindex, BlockHandle { offset: 65, size: 30 });
        assert_eq!(footer.index, None);
        file[100 + 14] ^= 1;
        let e = decode("t", &file[file.len() - 53..], file.len() as u64).unwrap_err();
        assert!(matches!(e.format().unwrap().problem, crate::rocksdb_files::error::Problem::Checksum { .. }), "{e}");
    }
}
