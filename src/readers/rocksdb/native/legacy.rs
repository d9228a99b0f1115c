//! Table files of FRocksDB 5.17 (Flink 1.13), which RocksDB 11 no longer opens.
//!
//! Flink 1.13's RocksDB writes block-based tables with `format_version=0` (its OPTIONS files say
//! so): the 48-byte legacy footer with the legacy magic number `0xdb4775248b80fb57`. RocksDB 11
//! refuses that footer ("Unsupported legacy magic number"), though the blocks themselves are
//! what `format_version=2` reads: versions 0 to 2 differ only in the footer (no checksum-type
//! byte and no version field before 1) and in how LZ4, Zlib, BZip2 and Xpress blocks record
//! their size (2); Snappy blocks and uncompressed blocks are the same.
//!
//! So the working copy of such a table gets the 53-byte footer of `format_version=2` (checksum
//! type CRC32c, the legacy default; same block handles) — after the compression recorded in its
//! properties was checked to be Snappy or none — and, since the file is then 5 bytes longer
//! and RocksDB checks every table's size against the MANIFEST, the working copy of the MANIFEST
//! records the new sizes. The snapshot's files are never written: a hard-linked table is
//! unlinked from the working directory before its copy is written. Spec:
//! `formats/rocksdb-native.md` ("FRocksDB 5.17 tables").

use std::path::Path;

use crate::error::{Error, Result};

use super::materialize::{AssembledFile, CURRENT};

/// `kLegacyBlockBasedTableMagicNumber`.
const LEGACY_MAGIC: u64 = 0xdb47_7524_8b80_fb57;
/// `kBlockBasedTableMagicNumber`.
const MAGIC: u64 = 0x88e2_41b7_85f4_cff7;
const LEGACY_FOOTER: usize = 48;
/// Checksum type byte, two block handles padded to 40 bytes, format version, magic.
const FOOTER: usize = 1 + 40 + 4 + 8;
/// CRC32c, the checksum every legacy table uses.
const CHECKSUM_CRC32C: u8 = 1;
const UPGRADED_FORMAT_VERSION: u32 = 2;
/// Block trailer: compression type byte and checksum.
const BLOCK_TRAILER: u64 = 5;

/// Whether the file ends with the legacy table magic number.
fn has_legacy_magic(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len < LEGACY_FOOTER as u64 {
        return Ok(false);
    }
    f.seek(SeekFrom::End(-8))?;
    let mut magic = [0u8; 8];
    f.read_exact(&mut magic)?;
    Ok(u64::from_le_bytes(magic) == LEGACY_MAGIC)
}

/// Upgrades every legacy table of the working directory `dir` (see the module documentation);
/// nothing happens when there is none.
pub(super) fn upgrade(dir: &Path, files: &[AssembledFile]) -> Result<()> {
    let mut grown: Vec<(u64, u64)> = Vec::new(); // (table number, new size)
    for f in files.iter().filter(|f| f.local_name.ends_with(".sst")) {
        let path = dir.join(&f.local_name);
        // Only the last 8 bytes decide: tables of every other release are not read here.
        if !has_legacy_magic(&path).map_err(|e| Error::io(&f.origin, e))? {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&f.origin, e))?;
        if bytes.len() < LEGACY_FOOTER {
            continue;
        }
        let upgraded = upgrade_table(&bytes).map_err(|(at, why)| {
            Error::Invalid(format!("{} (RocksDB file {}) at byte {at}: legacy table (format_version 0): {why}", f.origin, f.local_name))
        })?;
        let number = f.local_name.trim_end_matches(".sst").parse::<u64>().map_err(|_| {
            Error::Invalid(format!("{} (RocksDB file {}): a table file name that is not a number", f.origin, f.local_name))
        })?;
        // Possibly a hard link to the snapshot's file: replace the link, never write through it.
        std::fs::remove_file(&path).map_err(|e| Error::io(path.display().to_string(), e))?;
        std::fs::write(&path, &upgraded).map_err(|e| Error::io(path.display().to_string(), e))?;
        grown.push((number, upgraded.len() as u64));
    }
    if grown.is_empty() {
        return Ok(());
    }
    let current = std::fs::read_to_string(dir.join(CURRENT)).map_err(|e| Error::io(CURRENT, e))?;
    let manifest_name = current.trim_end().to_owned();
    let origin = files.iter().find(|f| f.local_name == manifest_name).map_or(manifest_name.clone(), |f| f.origin.clone());
    let path = dir.join(&manifest_name);
    let log = std::fs::read(&path).map_err(|e| Error::io(&origin, e))?;
    let patched = patch_manifest(&log, &grown)
        .map_err(|(at, why)| Error::Invalid(format!("{origin} (RocksDB file {manifest_name}) at byte {at}: {why}")))?;
    std::fs::remove_file(&path).map_err(|e| Error::io(path.display().to_string(), e))?;
    std::fs::write(&path, patched).map_err(|e| Error::io(path.display().to_string(), e))
}

type Fail = (u64, String);

fn varint(b: &[u8], at: &mut usize, base: u64) -> std::result::Result<u64, Fail> {
    let start = *at;
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&c) = b.get(*at) else { return Err((base + start as u64, "truncated varint".into())) };
        *at += 1;
        v |= u64::from(c & 0x7f) << shift;
        if c < 0x80 {
            return Ok(v);
        }
    }
    Err((base + start as u64, "varint longer than 10 bytes".into()))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The table with the footer of `format_version=2`.
fn upgrade_table(b: &[u8]) -> std::result::Result<Vec<u8>, Fail> {
    let footer_at = b.len() - LEGACY_FOOTER;
    let mut at = footer_at;
    let meta_offset = varint(b, &mut at, 0)?;
    let meta_size = varint(b, &mut at, 0)?;
    let index_offset = varint(b, &mut at, 0)?;
    let index_size = varint(b, &mut at, 0)?;
    let handles = b[footer_at..at].to_vec();
    if handles.len() > 40 {
        return Err((footer_at as u64, "block handles longer than 40 bytes".into()));
    }
    for (what, off, size) in [("metaindex", meta_offset, meta_size), ("index", index_offset, index_size)] {
        if off.checked_add(size).and_then(|e| e.checked_add(BLOCK_TRAILER)).is_none_or(|e| e > footer_at as u64) {
            return Err((footer_at as u64, format!("{what} block [{off}, +{size}) lies beyond the footer")));
        }
    }
    check_compression(b, meta_offset as usize, meta_size as usize)?;
    let mut out = Vec::with_capacity(footer_at + FOOTER);
    out.extend_from_slice(&b[..footer_at]);
    out.push(CHECKSUM_CRC32C);
    out.extend_from_slice(&handles);
    out.resize(footer_at + 1 + 40, 0);
    out.extend_from_slice(&UPGRADED_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    Ok(out)
}

/// (key, value) pairs of a block.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The (key, value) entries of an uncompressed block.
fn block_entries(b: &[u8], offset: usize, size: usize) -> std::result::Result<Entries, Fail> {
    let block = &b[offset..offset + size];
    let fail = |at: usize, why: &str| ((offset + at) as u64, why.to_owned());
    if block.len() < 4 {
        return Err(fail(0, "block too short"));
    }
    let n = block.len();
    let restarts = u32::from_le_bytes([block[n - 4], block[n - 3], block[n - 2], block[n - 1]]) as usize;
    let end = restarts.checked_mul(4).and_then(|r| block.len().checked_sub(4 + r)).ok_or_else(|| fail(block.len() - 4, "bad restart count"))?;
    let mut entries: Entries = Vec::new();
    let mut at = 0;
    let mut key = Vec::new();
    while at < end {
        let entry = at;
        let shared = varint(block, &mut at, offset as u64)?;
        let non_shared = varint(block, &mut at, offset as u64)?;
        let value_len = varint(block, &mut at, offset as u64)?;
        // Lengths read from the file: checked before any arithmetic (a corrupt varint can be
        // near 2^64).
        let fits = |n: u64| usize::try_from(n).ok();
        let (Some(shared), Some(non_shared), Some(value_len)) = (fits(shared), fits(non_shared), fits(value_len)) else {
            return Err(fail(entry, "block entry out of bounds"));
        };
        if shared > key.len() || at.checked_add(non_shared).and_then(|x| x.checked_add(value_len)).is_none_or(|x| x > end) {
            return Err(fail(entry, "block entry out of bounds"));
        }
        key.truncate(shared);
        key.extend_from_slice(&block[at..at + non_shared]);
        at += non_shared;
        entries.push((key.clone(), block[at..at + value_len].to_vec()));
        at += value_len;
    }
    Ok(entries)
}

/// Versions 0 and 2 store Snappy-compressed and uncompressed blocks alike; other compressions differ.
fn check_compression(b: &[u8], meta_offset: usize, meta_size: usize) -> std::result::Result<(), Fail> {
    if b[meta_offset + meta_size] != 0 {
        return Err((meta_offset as u64, "the metaindex block is compressed".into()));
    }
    let meta = block_entries(b, meta_offset, meta_size)?;
    let Some((_, handle)) = meta.iter().find(|(k, _)| k == b"rocksdb.properties") else {
        return Err((meta_offset as u64, "no rocksdb.properties block, so its compression is unknown".into()));
    };
    let mut at = 0;
    let fits = |n: u64| usize::try_from(n).map_err(|_| (meta_offset as u64, "properties block handle out of range".to_owned()));
    let off = fits(varint(handle, &mut at, meta_offset as u64)?)?;
    let size = fits(varint(handle, &mut at, meta_offset as u64)?)?;
    let end = off.checked_add(size).filter(|&e| e.checked_add(BLOCK_TRAILER as usize).is_some_and(|t| t <= b.len() - LEGACY_FOOTER));
    if end.is_none_or(|e| b[e] != 0) {
        return Err((off as u64, "properties block out of bounds or compressed".into()));
    }
    let props = block_entries(b, off, size)?;
    match props.iter().find(|(k, _)| k == b"rocksdb.compression").map(|(_, v)| v.as_slice()) {
        Some(b"Snappy") | Some(b"NoCompression") => Ok(()),
        Some(other) => Err((
            off as u64,
            format!("compression {:?} is stored differently by the RocksDB flinksnap uses (only Snappy and none are read)", String::from_utf8_lossy(other)),
        )),
        None => Err((off as u64, "no rocksdb.compression property".into())),
    }
}

// ---- MANIFEST ------------------------------------------------------------------------------

const LOG_BLOCK: usize = 32 * 1024;
const LOG_HEADER: usize = 7;
const FULL: u8 = 1;
const FIRST: u8 = 2;
const MIDDLE: u8 = 3;
const LAST: u8 = 4;

/// The logical records of a RocksDB log file, each with the file offset of its first fragment.
fn log_records(b: &[u8]) -> std::result::Result<Vec<(usize, Vec<u8>)>, Fail> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut partial: Option<(usize, Vec<u8>)> = None;
    while at < b.len() {
        let left = LOG_BLOCK - at % LOG_BLOCK;
        if left < LOG_HEADER {
            at += left;
            continue;
        }
        if at + LOG_HEADER > b.len() {
            break;
        }
        let len = u16::from_le_bytes([b[at + 4], b[at + 5]]) as usize;
        let kind = b[at + 6];
        if kind == 0 && len == 0 {
            at += left; // zero padding (preallocated space)
            continue;
        }
        let data = b.get(at + LOG_HEADER..at + LOG_HEADER + len).ok_or((at as u64, "log record runs past the end".to_owned()))?;
        let stored = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        if unmask(stored) != crc32c(&b[at + 6..at + LOG_HEADER + len]) {
            return Err((at as u64, "log record checksum mismatch".into()));
        }
        match (kind, &mut partial) {
            (FULL, None) => out.push((at, data.to_vec())),
            (FIRST, None) => partial = Some((at, data.to_vec())),
            (MIDDLE, Some((_, p))) => p.extend_from_slice(data),
            (LAST, Some((start, p))) => {
                p.extend_from_slice(data);
                out.push((*start, std::mem::take(p)));
                partial = None;
            }
            _ => return Err((at as u64, format!("unexpected log record type {kind}"))),
        }
        at += LOG_HEADER + len;
    }
    Ok(out)
}

fn write_log(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let mut rest = r.as_slice();
        let mut first = true;
        loop {
            let left = LOG_BLOCK - out.len() % LOG_BLOCK;
            if left < LOG_HEADER {
                out.resize(out.len() + left, 0);
                continue;
            }
            let n = rest.len().min(left - LOG_HEADER);
            let last = n == rest.len();
            let kind = match (first, last) {
                (true, true) => FULL,
                (true, false) => FIRST,
                (false, false) => MIDDLE,
                (false, true) => LAST,
            };
            let mut covered = vec![kind];
            covered.extend_from_slice(&rest[..n]);
            out.extend_from_slice(&mask(crc32c(&covered)).to_le_bytes());
            out.extend_from_slice(&(n as u16).to_le_bytes());
            out.extend_from_slice(&covered);
            rest = &rest[n..];
            first = false;
            if last {
                break;
            }
        }
    }
    out
}

/// The MANIFEST with the sizes of the `grown` tables (number, size) replaced in every
/// `VersionEdit` that adds them.
fn patch_manifest(log: &[u8], grown: &[(u64, u64)]) -> std::result::Result<Vec<u8>, Fail> {
    let mut records = Vec::new();
    for (start, r) in log_records(log)? {
        records.push(patch_edit(&r, grown).map_err(|(at, why)| (start as u64 + at, format!("VersionEdit (record at byte {start}, +{at}): {why}")))?);
    }
    Ok(write_log(&records))
}

/// Tags of `VersionEdit` (`db/version_edit.h`), as FRocksDB 5.17 writes them.
fn patch_edit(r: &[u8], grown: &[(u64, u64)]) -> std::result::Result<Vec<u8>, Fail> {
    let mut out = Vec::with_capacity(r.len() + 8);
    let mut at = 0;
    let slice = |at: &mut usize| -> std::result::Result<(), Fail> {
        let n = varint(r, at, 0)?;
        // A corrupt length can be near 2^64: compare before adding.
        match usize::try_from(n).ok().and_then(|n| at.checked_add(n)).filter(|&end| end <= r.len()) {
            Some(end) => {
                *at = end;
                Ok(())
            }
            None => Err((*at as u64, "length-prefixed field runs past the record".into())),
        }
    };
    while at < r.len() {
        let tag_at = at;
        let tag = varint(r, &mut at, 0)?;
        match tag {
            // comparator, column family add (slice)
            1 | 201 => slice(&mut at)?,
            // log number, next file, last sequence, prev log, min log to keep, column family,
            // column family drop, max column family, in atomic group (varint)
            2 | 3 | 4 | 9 | 10 | 200 | 202 | 203 | 300 => {
                varint(r, &mut at, 0)?;
            }
            // compact pointer: level, internal key
            5 => {
                varint(r, &mut at, 0)?;
                slice(&mut at)?;
            }
            // deleted file: level, number
            6 => {
                varint(r, &mut at, 0)?;
                varint(r, &mut at, 0)?;
            }
            // new file (7, 100, 102, 103): level, number, [path id], size, smallest, largest, [seqnos], [fields]
            7 | 100 | 102 | 103 => {
                varint(r, &mut at, 0)?;
                let number = varint(r, &mut at, 0)?;
                if tag == 102 {
                    varint(r, &mut at, 0)?;
                }
                let size_at = at;
                let size = varint(r, &mut at, 0)?;
                out.extend_from_slice(&r[tag_at..size_at]);
                put_varint(&mut out, grown.iter().find(|(n, _)| *n == number).map_or(size, |(_, s)| *s));
                let rest_at = at;
                slice(&mut at)?;
                slice(&mut at)?;
                if tag != 7 {
                    varint(r, &mut at, 0)?;
                    varint(r, &mut at, 0)?;
                }
                if tag == 103 {
                    loop {
                        let field = varint(r, &mut at, 0)?;
                        if field == 1 {
                            break; // kTerminate
                        }
                        slice(&mut at)?;
                    }
                }
                out.extend_from_slice(&r[rest_at..at]);
                continue;
            }
            // forward-compatible tags carry their length
            t if t & (1 << 13) != 0 => slice(&mut at)?,
            t => return Err((tag_at as u64, format!("unknown VersionEdit tag {t}"))),
        }
        out.extend_from_slice(&r[tag_at..at]);
    }
    Ok(out)
}

fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn unmask(masked: u32) -> u32 {
    masked.wrapping_sub(0xa282_ead8).rotate_left(15)
}

/// CRC-32C (Castagnoli), bitwise: MANIFESTs are small.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_mask() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(unmask(mask(0x1234_5678)), 0x1234_5678);
    }

    #[test]
    fn log_round_trip_over_block_boundaries() {
        let records: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 1000 * usize::from(i)]).collect();
        let log = write_log(&records);
        let back: Vec<Vec<u8>> = log_records(&log).unwrap().into_iter().map(|(_, r)| r).collect();
        assert_eq!(back, records);
    }

    #[test]
    fn huge_lengths_are_refused_not_added() {
        // A block entry whose lengths are near 2^64: no overflow, an error.
        let mut block = vec![0];
        put_varint(&mut block, u64::MAX - 1);
        put_varint(&mut block, 5);
        block.extend_from_slice(&0u32.to_le_bytes()); // no restarts
        let e = block_entries(&block, 0, block.len()).unwrap_err();
        assert!(e.1.contains("out of bounds"), "{e:?}");
        // A VersionEdit field whose length is near 2^64.
        let mut r = vec![1];
        put_varint(&mut r, u64::MAX);
        let e = patch_edit(&r, &[]).unwrap_err();
        assert!(e.1.contains("runs past the record"), "{e:?}");
        // Every truncation and every corrupted length byte of a small table is an error or
        // passes, never a panic.
        let mut t = vec![0u8; 64];
        for (i, b) in t.iter_mut().enumerate() {
            *b = (i * 37) as u8;
        }
        t.extend_from_slice(&LEGACY_MAGIC.to_le_bytes());
        for cut in LEGACY_FOOTER..t.len() {
            let _ = upgrade_table(&t[..cut.max(LEGACY_FOOTER)]);
        }
        for i in 0..t.len() {
            let mut c = t.clone();
            c[i] = 0xff;
            let _ = upgrade_table(&c);
        }
    }

    #[test]
    fn new_file_sizes_are_replaced() {
        // kNewFile2: level 0, number 25, size 766, smallest "a", largest "b", seqnos 1, 2; then kColumnFamily 1
        let mut r = vec![100, 0, 25];
        put_varint(&mut r, 766);
        r.extend_from_slice(&[1, b'a', 1, b'b', 1, 2, 0xc8, 1, 1]); // 200 = 0xc8 0x01
        let p = patch_edit(&r, &[(25, 771)]).unwrap();
        let mut want = vec![100, 0, 25];
        put_varint(&mut want, 771);
        want.extend_from_slice(&[1, b'a', 1, b'b', 1, 2, 0xc8, 1, 1]);
        assert_eq!(p, want);
        assert_eq!(patch_edit(&r, &[(26, 9)]).unwrap(), r);
        assert!(patch_edit(&[77, 0], &[]).unwrap_err().1.contains("unknown VersionEdit tag 77"));
    }
}
