//! Blocks (`table/block_based/block.cc`, `block_builder.cc`): a stored block decoded (checksum,
//! decompression) and its entries iterated.
//!
//! A block is a run of entries, then the restart array (`u32` offsets of entries whose key is
//! stored whole), then a `u32` footer: the number of restarts, whose top bit says that a data
//! block hash index (`kDataBlockBinaryAndHash`, only in blocks up to 64 KiB) sits between the
//! restart array and the footer: bucket bytes then a `u16` bucket count. The hash index only
//! speeds up point lookups, so it is skipped.
//!
//! An entry is `varint32 shared, varint32 non_shared, varint32 value_length, key delta, value`:
//! the key is the first `shared` bytes of the previous key plus the delta. Index blocks of
//! `format_version` 4 and later leave out the value length ("value delta encoding"): the value is
//! a block handle, written whole when the key shares nothing with the previous one and as the
//! size difference to the previous handle otherwise (`IndexValue`).

use std::cmp::Ordering;
use std::sync::Arc;

use super::checksum::{verify_block, ChecksumType};
use super::coding::{fixed32_at, Reader};
use super::compression::{decompress_into, Compression, DecompressError};
use super::error::{corrupt, unsupported, BlockKind, FormatError, Position, Problem, Result};
use super::footer::{BlockHandle, BLOCK_TRAILER};

/// Blocks larger than this carry no hash index (`kMaxBlockSizeSupportedByHashIndex`): their
/// footer is the restart count as it is.
const MAX_BLOCK_SIZE_WITH_HASH_INDEX: usize = 1 << 16;

/// How a table's blocks are stored: what decoding a block needs from the footer.
#[derive(Debug, Clone, Copy)]
pub struct Stored {
    /// The footer's checksum type.
    pub checksum: ChecksumType,
    /// The footer's base context checksum (`format_version` 6).
    pub base_context_checksum: u32,
    /// `format_version` (how compressed blocks store their size).
    pub format_version: u32,
    /// Whether checksums are checked.
    pub verify: bool,
}

/// Decodes the stored block at `handle`: `raw` holds its bytes and trailer. Checks the checksum
/// (when `stored.verify`) and decompresses.
pub fn decode_stored(
    file: &str,
    kind: BlockKind,
    handle: BlockHandle,
    raw: &[u8],
    stored: &Stored,
    dict: Option<&[u8]>,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    decode_stored_into(file, kind, handle, raw, stored, dict, &mut out)?;
    Ok(out)
}

/// [`decode_stored`] into `out` (emptied first), whose allocation is reused from block to block.
pub fn decode_stored_into(
    file: &str,
    kind: BlockKind,
    handle: BlockHandle,
    raw: &[u8],
    stored: &Stored,
    dict: Option<&[u8]>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let pos = Position::Block { kind, block: handle.offset };
    if raw.len() as u64 != handle.size + BLOCK_TRAILER {
        return Err(corrupt(file, pos, format!("{} bytes read for a block of {} plus its trailer", raw.len(), handle.size)));
    }
    if stored.verify {
        if let Err((stored_sum, computed)) = verify_block(stored.checksum, stored.base_context_checksum, raw, handle.offset) {
            return Err(FormatError {
                file: file.to_owned(),
                position: pos,
                problem: Problem::Checksum { kind: stored.checksum.name(), stored: stored_sum, computed },
            }
            .into());
        }
    }
    let size = handle.size as usize;
    let type_byte = raw[size];
    let compression = Compression::from_byte(type_byte)
        .ok_or_else(|| corrupt(file, pos, format!("unknown compression type 0x{type_byte:02x} in the block trailer")))?;
    decompress_into(compression, &raw[..size], stored.format_version, dict, out).map_err(|e| match e {
        DecompressError::Corrupt(m) => corrupt(file, pos, m),
        DecompressError::Unsupported(m) => unsupported(file, pos, m),
    })
}

/// Where the restart array of block contents `data` starts, and how many restart points it has
/// (checks that they fit): the `kind` block at file offset `offset`.
pub fn restart_array(file: &str, kind: BlockKind, offset: u64, data: &[u8]) -> Result<(usize, usize)> {
    let len = data.len();
    let bad = |what: String| corrupt(file, Position::Block { kind, block: offset }, what);
    let footer = fixed32_at(data, len.wrapping_sub(4)).filter(|_| len >= 4).ok_or_else(|| bad(format!("a block of {len} bytes has no restart count")))?;
    let (num_restarts, array_end) = if len <= MAX_BLOCK_SIZE_WITH_HASH_INDEX && footer & (1 << 31) != 0 {
        // A data block hash index: buckets and their u16 count before the footer.
        let n = (footer & 0x7fff_ffff) as usize;
        let buckets = data
            .get(len.wrapping_sub(6)..len.wrapping_sub(4))
            .filter(|_| len >= 6)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
            .ok_or_else(|| bad("hash index without its bucket count".into()))?;
        let map = (len - 6).checked_sub(buckets).ok_or_else(|| bad(format!("hash index of {buckets} buckets does not fit")))?;
        (n, map)
    } else {
        (footer as usize, len - 4)
    };
    let restarts = num_restarts
        .checked_mul(4)
        .and_then(|b| array_end.checked_sub(b))
        .ok_or_else(|| bad(format!("{num_restarts} restart points do not fit in a block of {len} bytes")))?;
    if num_restarts == 0 && restarts > 0 {
        return Err(bad("entries without a restart point".into()));
    }
    Ok((restarts, num_restarts))
}

/// How entries store their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryFormat {
    /// With a value length (data, meta and older index blocks).
    Standard,
    /// Index blocks with delta-encoded block handles (no value length); `first_key`: each value
    /// is followed by the block's first internal key (`kBinarySearchWithFirstKey`).
    IndexDelta {
        /// Whether values end with a length-prefixed first key.
        first_key: bool,
    },
}

/// A decoded block: its contents and where the restart array is.
#[derive(Debug, Clone)]
pub struct Block {
    data: Arc<Vec<u8>>,
    /// End of the entries = start of the restart array.
    restarts: usize,
    num_restarts: usize,
    kind: BlockKind,
    /// Offset of the block in the file (for messages).
    offset: u64,
}

impl Block {
    /// Parses the restart array of `data`, the contents of the `kind` block at file offset
    /// `offset`.
    pub fn new(file: &str, kind: BlockKind, offset: u64, data: Vec<u8>) -> Result<Block> {
        let (restarts, num_restarts) = restart_array(file, kind, offset, &data)?;
        Ok(Block { data: Arc::new(data), restarts, num_restarts, kind, offset })
    }

    /// The block's contents, when nothing else holds them (to reuse their allocation).
    pub fn into_data(self) -> Option<Vec<u8>> {
        Arc::try_unwrap(self.data).ok()
    }

    /// The block's contents.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// What the block is.
    pub fn kind(&self) -> BlockKind {
        self.kind
    }

    /// Offset of the block in its file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Offset of entry `i` of the restart array.
    fn restart(&self, i: usize) -> usize {
        fixed32_at(&self.data, self.restarts + 4 * i).map_or(usize::MAX, |v| v as usize)
    }

    /// An iterator over the entries, positioned before the first.
    pub fn iter(&self, format: EntryFormat) -> BlockIter {
        BlockIter { block: self.clone(), format, next: 0, key: Vec::new(), value: 0..0, shared: 0, entry: 0, valid: false, handle: BlockHandle::default() }
    }
}

/// An iterator over a block's entries. Keys are rebuilt into a buffer; values are ranges of the
/// block.
#[derive(Debug, Clone)]
pub struct BlockIter {
    block: Block,
    format: EntryFormat,
    /// Offset of the next entry to decode.
    next: usize,
    key: Vec<u8>,
    value: std::ops::Range<usize>,
    /// The current entry's shared-prefix length (index value delta encoding depends on it).
    shared: usize,
    /// Offset of the current entry.
    entry: usize,
    valid: bool,
    /// In index blocks with delta-encoded values: the current entry's block handle (a delta is
    /// relative to the previous entry's, so it is tracked while iterating).
    handle: BlockHandle,
}

impl BlockIter {
    /// Whether the iterator is at an entry.
    pub fn valid(&self) -> bool {
        self.valid
    }

    /// The current key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The current value.
    pub fn value(&self) -> &[u8] {
        &self.block.data[self.value.clone()]
    }

    /// Whether the current entry's key shares bytes with the previous one (in index blocks with
    /// delta encoding: its value is a size delta).
    pub fn is_shared(&self) -> bool {
        self.shared > 0
    }

    /// In an index block with delta-encoded values, the current entry's block handle.
    pub fn delta_handle(&self) -> BlockHandle {
        self.handle
    }

    /// The block iterated.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// The block iterated, the iterator dropped.
    pub fn into_block(self) -> Block {
        self.block
    }

    /// Offset of the current entry in the block.
    pub fn entry_offset(&self) -> usize {
        self.entry
    }

    fn error(&self, file: &str, at: usize, what: impl Into<String>) -> super::error::Error {
        corrupt(file, Position::InBlock { kind: self.block.kind, block: self.block.offset, at: at as u64 }, what)
    }

    /// Moves to the first entry.
    pub fn seek_to_first(&mut self, file: &str) -> Result<()> {
        self.key.clear();
        self.next = 0;
        self.next(file)
    }

    /// Moves to the next entry (`valid()` turns false after the last).
    pub fn next(&mut self, file: &str) -> Result<()> {
        let data = &self.block.data[..];
        let limit = self.block.restarts;
        if self.next >= limit {
            self.valid = false;
            return Ok(());
        }
        let at = self.next;
        let entries = &data[..limit];
        // Fast path (as RocksDB's `DecodeEntry`): the lengths fit one byte each.
        let fast = match self.format {
            EntryFormat::Standard => entries.get(at..at + 3).filter(|b| (b[0] | b[1] | b[2]) < 128).map(|b| (b[0] as usize, b[1] as usize, Some(b[2] as usize), at + 3)),
            EntryFormat::IndexDelta { .. } => entries.get(at..at + 2).filter(|b| (b[0] | b[1]) < 128).map(|b| (b[0] as usize, b[1] as usize, None, at + 2)),
        };
        let decoded = match fast {
            Some((shared, non_shared, value_len, p)) => entries
                .get(p..p + non_shared)
                .map(|delta| (shared, delta, value_len, p + non_shared))
                .ok_or("key bytes"),
            None => {
                let mut r = Reader::at(entries, at);
                let bad = |b: super::coding::Bad| b.what;
                (|| {
                    let shared = r.varint32("shared key length").map_err(bad)? as usize;
                    let non_shared = r.varint32("key length").map_err(bad)? as usize;
                    let value_len = match self.format {
                        EntryFormat::Standard => Some(r.varint32("value length").map_err(bad)? as usize),
                        EntryFormat::IndexDelta { .. } => None,
                    };
                    let delta = r.bytes(non_shared, "key bytes").map_err(bad)?;
                    Ok::<_, &'static str>((shared, delta, value_len, r.pos()))
                })()
            }
        };
        let (shared, delta, value_len, value_start) = decoded.map_err(|what| self.error(file, at, format!("entry cut short: {what}")))?;
        if shared > self.key.len() {
            return Err(self.error(file, at, format!("entry shares {shared} bytes with a previous key of {}", self.key.len())));
        }
        self.key.truncate(shared);
        self.key.extend_from_slice(delta);
        let value_end = match (value_len, self.format) {
            (Some(n), _) => value_start.checked_add(n).filter(|&e| e <= limit).ok_or_else(|| self.error(file, at, format!("value of {n} bytes runs past the entries")))?,
            (None, EntryFormat::IndexDelta { first_key }) => {
                let mut v = Reader::at(&data[..limit], value_start);
                let prev = self.handle;
                let decoded = (|| {
                    let h = if shared == 0 {
                        BlockHandle::decode(&mut v)?
                    } else {
                        let delta = v.varsigned64("block size delta")?;
                        // `IndexValue::DecodeFrom`: the block follows the previous one.
                        let offset = prev.offset.wrapping_add(prev.size).wrapping_add(BLOCK_TRAILER);
                        BlockHandle { offset, size: (prev.size as i64).wrapping_add(delta) as u64 }
                    };
                    if first_key {
                        v.length_prefixed("first key")?;
                    }
                    Ok::<_, super::coding::Bad>(h)
                })();
                self.handle = decoded.map_err(|b| self.error(file, b.at, format!("index entry cut short: {}", b.what)))?;
                v.pos()
            }
            (None, EntryFormat::Standard) => value_start,
        };
        self.entry = at;
        self.shared = shared;
        self.value = value_start..value_end;
        self.next = value_end;
        self.valid = true;
        Ok(())
    }

    /// Moves to the first entry whose key is at or after `target` in the order `cmp`: a binary
    /// search over the restart points, then a linear scan.
    pub fn seek(&mut self, file: &str, target: &[u8], cmp: impl Fn(&[u8], &[u8]) -> Ordering) -> Result<()> {
        let n = self.block.num_restarts;
        if n == 0 {
            self.valid = false;
            return Ok(());
        }
        // The last restart point whose key is before the target (or the first one).
        let (mut lo, mut hi) = (0usize, n - 1);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            let at = self.block.restart(mid);
            self.key.clear();
            self.next = at;
            self.next(file)?;
            if !self.valid || self.shared != 0 {
                return Err(self.error(file, at.min(self.block.restarts), format!("restart point {mid} is not a whole key")));
            }
            if cmp(&self.key, target) == Ordering::Less {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let start = self.block.restart(lo);
        if start > self.block.restarts {
            return Err(self.error(file, self.block.restarts, format!("restart point {lo} at {start} lies outside the entries")));
        }
        self.key.clear();
        self.next = start;
        self.next(file)?;
        while self.valid && cmp(&self.key, target) == Ordering::Less {
            self.next(file)?;
        }
        Ok(())
    }
}

/// Decodes a whole block into (key, value) pairs: small meta blocks (metaindex, properties,
/// range deletions).
pub fn entries(file: &str, block: &Block) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut it = block.iter(EntryFormat::Standard);
    it.seek_to_first(file)?;
    let mut out = Vec::new();
    while it.valid() {
        out.push((it.key().to_vec(), it.value().to_vec()));
        it.next(file)?;
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rocksdb_files::coding::put_varint64;

    /// A block as `BlockBuilder` writes it: delta-encoded keys, a restart every `interval`.
    pub(crate) fn build(entries: &[(&[u8], &[u8])], interval: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut restarts = Vec::new();
        let mut last: &[u8] = &[];
        for (i, (k, v)) in entries.iter().enumerate() {
            let shared = if i % interval == 0 {
                restarts.push(out.len() as u32);
                0
            } else {
                k.iter().zip(last).take_while(|(a, b)| a == b).count()
            };
            put_varint64(&mut out, shared as u64);
            put_varint64(&mut out, (k.len() - shared) as u64);
            put_varint64(&mut out, v.len() as u64);
            out.extend_from_slice(&k[shared..]);
            out.extend_from_slice(v);
            last = k;
        }
        if restarts.is_empty() {
            restarts.push(0);
        }
        for r in &restarts {
            out.extend(r.to_le_bytes());
        }
        out.extend((restarts.len() as u32).to_le_bytes());
        out
    }

    #[test]
    fn iterate_and_seek_with_shared_prefixes() {
        let keys: Vec<Vec<u8>> = (0..50u32).map(|i| format!("key{:04}", i * 2).into_bytes()).collect();
        let pairs: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (k.as_slice(), &k[3..])).collect();
        for interval in [1, 3, 16] {
            let b = Block::new("f", BlockKind::Data, 0, build(&pairs, interval)).unwrap();
            let all = entries("f", &b).unwrap();
            assert_eq!(all.len(), 50);
            assert!(all.iter().zip(&keys).all(|((k, v), want)| k == want && v[..] == want[3..]));
            let mut it = b.iter(EntryFormat::Standard);
            it.seek("f", b"key0031", |a, b| a.cmp(b)).unwrap();
            assert_eq!(it.key(), b"key0032");
            it.seek("f", b"key0000", |a, b| a.cmp(b)).unwrap();
            assert_eq!(it.key(), b"key0000");
            it.seek("f", b"key9", |a, b| a.cmp(b)).unwrap();
            assert!(!it.valid());
        }
    }

    #[test]
    fn damaged_blocks_are_errors_not_panics() {
        let pairs: Vec<(&[u8], &[u8])> = vec![(b"aaaa", b"1"), (b"aaab", b"2"), (b"aabb", b"3")];
        let good = build(&pairs, 2);
        for cut in 0..good.len() {
            if let Ok(b) = Block::new("f", BlockKind::Data, 0, good[..cut].to_vec()) {
                let _ = entries("f", &b);
            }
        }
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut d = good.clone();
                d[i] ^= 1 << bit;
                if let Ok(b) = Block::new("f", BlockKind::Data, 0, d) {
                    let _ = entries("f", &b);
                    let _ = b.iter(EntryFormat::Standard).seek("f", b"aab", |a, b| a.cmp(b));
                }
            }
        }
        let mut d = good.clone();
        d[0] = 9; // the first entry shares 9 bytes with nothing
        let e = entries("f", &Block::new("f", BlockKind::Data, 4096, d).unwrap()).unwrap_err();
        assert_eq!(e.format().unwrap().position, Position::InBlock { kind: BlockKind::Data, block: 4096, at: 0 });
    }
}
