//! Block compression (`util/compression.h`, `UncompressData`).
//!
//! The trailer's type byte says how a block is compressed. Snappy blocks are raw Snappy. From
//! `format_version` 2 ("compress format 2") LZ4, LZ4HC and zlib blocks start with the
//! uncompressed size as a varint32; before that, LZ4 blocks start with 8 bytes of which the
//! first 4 are the size (little-endian) and zlib blocks carry no size. ZSTD blocks always start
//! with the varint32 size. zlib is raw deflate (window bits -14), LZ4 the raw block format.
//! Decompressed sizes are bounded before anything is allocated.

use std::io::Read;

use super::coding::Reader;

/// The most a block may decompress to. RocksDB's blocks are a few KiB to a few MiB; this bound
/// only keeps a corrupt size field from allocating gigabytes.
pub const MAX_BLOCK: usize = 256 << 20;

/// `CompressionType` of `include/rocksdb/compression_type.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// 0x0
    None,
    /// 0x1
    Snappy,
    /// 0x2
    Zlib,
    /// 0x3
    Bzip2,
    /// 0x4
    Lz4,
    /// 0x5
    Lz4hc,
    /// 0x6
    Xpress,
    /// 0x7 (and 0x40, `kZSTDNotFinalCompression`)
    Zstd,
}

impl Compression {
    /// The type of trailer byte `b`, if it is one.
    pub fn from_byte(b: u8) -> Option<Compression> {
        Some(match b {
            0 => Compression::None,
            1 => Compression::Snappy,
            2 => Compression::Zlib,
            3 => Compression::Bzip2,
            4 => Compression::Lz4,
            5 => Compression::Lz4hc,
            6 => Compression::Xpress,
            7 | 0x40 => Compression::Zstd,
            _ => return None,
        })
    }

    /// RocksDB's name of the type (as the `rocksdb.compression` property has it).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "NoCompression",
            Compression::Snappy => "Snappy",
            Compression::Zlib => "Zlib",
            Compression::Bzip2 => "BZip2",
            Compression::Lz4 => "LZ4",
            Compression::Lz4hc => "LZ4HC",
            Compression::Xpress => "Xpress",
            Compression::Zstd => "ZSTD",
        }
    }
}

/// Why a block did not decompress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecompressError {
    /// The bytes are not a valid block of that compression.
    Corrupt(String),
    /// A compression flinksnap does not read (BZip2, Xpress; Flink uses none of them).
    Unsupported(&'static str),
}

/// Decompresses a block of type `kind` (not [`Compression::None`]); `format_version` decides
/// how the size is stored; `dict` is the table's compression dictionary, if it has one.
pub fn decompress(kind: Compression, data: &[u8], format_version: u32, dict: Option<&[u8]>) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    decompress_into(kind, data, format_version, dict, &mut out)?;
    Ok(out)
}

/// [`decompress`] into `out` (emptied first), whose allocation a reader reuses from block to
/// block. The declared size is checked against [`MAX_BLOCK`] before `out` grows.
pub fn decompress_into(kind: Compression, data: &[u8], format_version: u32, dict: Option<&[u8]>, out: &mut Vec<u8>) -> Result<(), DecompressError> {
    let corrupt = |what: String| DecompressError::Corrupt(format!("{} block: {what}", kind.name()));
    let format2 = format_version >= 2;
    match kind {
        Compression::None => {
            out.clear();
            out.extend_from_slice(data);
            Ok(())
        }
        Compression::Snappy => {
            let n = snap::raw::decompress_len(data).map_err(|e| corrupt(e.to_string()))?;
            if n > MAX_BLOCK {
                return Err(corrupt(format!("declares {n} uncompressed bytes")));
            }
            sized_for(out, n);
            let got = snap::raw::Decoder::new().decompress(data, out).map_err(|e| corrupt(e.to_string()))?;
            if got != n {
                return Err(corrupt(format!("{got} bytes decompressed, {n} declared")));
            }
            Ok(())
        }
        Compression::Lz4 | Compression::Lz4hc => {
            let (size, body) = if format2 {
                sized(data).ok_or_else(|| corrupt("no uncompressed size".into()))?
            } else {
                if data.len() < 8 {
                    return Err(corrupt("shorter than its 8-byte size header".into()));
                }
                (u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize, &data[8..])
            };
            if size > MAX_BLOCK {
                return Err(corrupt(format!("declares {size} uncompressed bytes")));
            }
            sized_for(out, size);
            let n = match dict {
                Some(d) if !d.is_empty() => lz4_flex::block::decompress_into_with_dict(body, out, d),
                _ => lz4_flex::block::decompress_into(body, out),
            }
            .map_err(|e| corrupt(e.to_string()))?;
            if n != size {
                return Err(corrupt(format!("{n} bytes decompressed, {size} declared")));
            }
            Ok(())
        }
        Compression::Zlib => {
            if dict.is_some_and(|d| !d.is_empty()) {
                return Err(DecompressError::Unsupported("zlib blocks with a compression dictionary"));
            }
            let (declared, body) = if format2 {
                let (n, b) = sized(data).ok_or_else(|| corrupt("no uncompressed size".into()))?;
                (Some(n), b)
            } else {
                (None, data)
            };
            if declared.is_some_and(|n| n > MAX_BLOCK) {
                return Err(corrupt(format!("declares {} uncompressed bytes", declared.unwrap_or(0))));
            }
            out.clear();
            out.reserve(declared.unwrap_or(data.len().saturating_mul(4).min(MAX_BLOCK)));
            flate2::read::DeflateDecoder::new(body)
                .take(MAX_BLOCK as u64 + 1)
                .read_to_end(out)
                .map_err(|e| corrupt(e.to_string()))?;
            match declared {
                Some(n) if n != out.len() => Err(corrupt(format!("{} bytes decompressed, {n} declared", out.len()))),
                _ if out.len() > MAX_BLOCK => Err(corrupt("decompresses to more than 256 MiB".into())),
                _ => Ok(()),
            }
        }
        Compression::Zstd => {
            let (size, body) = sized(data).ok_or_else(|| corrupt("no uncompressed size".into()))?;
            if size > MAX_BLOCK {
                return Err(corrupt(format!("declares {size} uncompressed bytes")));
            }
            sized_for(out, size);
            let n = match dict {
                Some(d) if !d.is_empty() => zstd::bulk::Decompressor::with_dictionary(d).and_then(|mut z| z.decompress_to_buffer(body, &mut out[..])),
                _ => zstd::bulk::Decompressor::new().and_then(|mut z| z.decompress_to_buffer(body, &mut out[..])),
            }
            .map_err(|e| corrupt(e.to_string()))?;
            if n != size {
                return Err(corrupt(format!("{n} bytes decompressed, {size} declared")));
            }
            Ok(())
        }
        Compression::Bzip2 => Err(DecompressError::Unsupported("BZip2-compressed blocks")),
        Compression::Xpress => Err(DecompressError::Unsupported("Xpress-compressed blocks")),
    }
}

/// Makes `out` `n` bytes long for a decompressor that writes all of them (the callers check
/// the count it reports): bytes left from the previous block are overwritten, not zeroed first.
fn sized_for(out: &mut Vec<u8>, n: usize) {
    if out.len() >= n {
        out.truncate(n);
    } else {
        out.resize(n, 0);
    }
}

/// The varint32 uncompressed size of compress format 2, and the bytes after it.
fn sized(data: &[u8]) -> Option<(usize, &[u8])> {
    let mut r = Reader::new(data);
    let n = r.varint32("size").ok()? as usize;
    Some((n, &data[r.pos()..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rocksdb_files::coding::put_varint64;

    fn with_size(size: usize, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        put_varint64(&mut v, size as u64);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn every_codec_flink_may_use() {
        let text: Vec<u8> = (0..5000u32).flat_map(|i| format!("key-{}|", i % 97).into_bytes()).collect();
        // Snappy, raw
        let s = snap::raw::Encoder::new().compress_vec(&text).unwrap();
        assert_eq!(decompress(Compression::Snappy, &s, 0, None).unwrap(), text);
        // LZ4, both size encodings
        let l = lz4_flex::block::compress(&text);
        assert_eq!(decompress(Compression::Lz4, &with_size(text.len(), &l), 5, None).unwrap(), text);
        let mut legacy = (text.len() as u32).to_le_bytes().to_vec();
        legacy.extend_from_slice(&[0; 4]);
        legacy.extend_from_slice(&l);
        assert_eq!(decompress(Compression::Lz4hc, &legacy, 1, None).unwrap(), text);
        // zlib = raw deflate
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, &text).unwrap();
        let z = z.finish().unwrap();
        assert_eq!(decompress(Compression::Zlib, &with_size(text.len(), &z), 2, None).unwrap(), text);
        assert_eq!(decompress(Compression::Zlib, &z, 0, None).unwrap(), text);
        // ZSTD
        let zs = zstd::bulk::compress(&text, 3).unwrap();
        assert_eq!(decompress(Compression::Zstd, &with_size(text.len(), &zs), 5, None).unwrap(), text);
        // damaged or lying
        assert!(matches!(decompress(Compression::Snappy, &s[..s.len() / 2], 0, None), Err(DecompressError::Corrupt(_))));
        assert!(matches!(decompress(Compression::Lz4, &with_size(text.len() + 1, &l), 5, None), Err(DecompressError::Corrupt(_))));
        assert!(matches!(decompress(Compression::Zstd, &with_size(usize::MAX >> 40, &zs), 5, None), Err(DecompressError::Corrupt(_))));
        assert!(matches!(decompress(Compression::Bzip2, &z, 5, None), Err(DecompressError::Unsupported(_))));
    }

    #[test]
    fn a_reused_buffer_holds_exactly_the_block_decompressed_last() {
        let long: Vec<u8> = (0..9000u32).flat_map(|i| format!("value-{}|", i % 131).into_bytes()).collect();
        let short = b"short block, shorter than the stale bytes before it".to_vec();
        let mut out = Vec::new();
        for (kind, fv, enc) in [
            (Compression::Snappy, 5, (|t: &[u8]| snap::raw::Encoder::new().compress_vec(t).unwrap()) as fn(&[u8]) -> Vec<u8>),
            (Compression::Lz4, 5, |t: &[u8]| with_size(t.len(), &lz4_flex::block::compress(t))),
            (Compression::Zstd, 5, |t: &[u8]| with_size(t.len(), &zstd::bulk::compress(t, 3).unwrap())),
            (Compression::None, 5, |t: &[u8]| t.to_vec()),
        ] {
            for want in [&long, &short, &long] {
                decompress_into(kind, &enc(want), fv, None, &mut out).unwrap();
                assert_eq!(&out, want, "{kind:?}");
            }
            // A failure in between leaves nothing behind for the next block.
            assert!(decompress_into(kind, &enc(&long)[..3], fv, None, &mut out).is_err() || kind == Compression::None);
            decompress_into(kind, &enc(&short), fv, None, &mut out).unwrap();
            assert_eq!(out, short, "{kind:?}");
        }
    }
}
