//! The file source's state (`flink-connector-files`): `FileSourceSplitSerializer` and the
//! enumerator's `PendingSplitsCheckpointSerializer`.

use serde::Serialize;

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind};
use crate::readers::serializers::read_fstr;

type R<T> = Result<T, DecodeError>;

/// A `FileSourceSplit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSplit {
    /// The split id.
    pub id: String,
    /// The file, as a URI (`Path.toUri()`); `None` for a split without a path.
    pub path: Option<String>,
    /// Where the split starts in the file.
    pub offset: i64,
    /// Split length.
    pub length: i64,
    /// The file's modification time (ms); `None` in the layout of Flink 1.13 and 1.14, which
    /// did not record it.
    pub file_modification_time: Option<i64>,
    /// The file's size; `None` as the modification time.
    pub file_size: Option<i64>,
    /// Preferred hosts.
    pub hostnames: Vec<String>,
    /// The reader's checkpointed position in the split: (offset, records to skip after it).
    pub reader_position: Option<(i64, i64)>,
}

/// Reads a split written by `FileSourceSplitSerializer` version `version` (1): `utf` id, the path
/// (`Path.serializeToDataOutputView`), `i64` offset, length, [modification time, file size],
/// `i32 n` + n × `utf` host, `bool` has position [`i64` offset, `i64` records after offset].
///
/// Flink 1.15 added the modification time and the file size without a new version: 1.13 and
/// 1.14 write version 1 without them (checked against their `flink-table*.jar`, where the file
/// source lived). The bytes tell the two layouts apart: the one that ends exactly where the split
/// does is taken, 1.15's first.
pub fn read_split(version: i32, bytes: &[u8], base: u64) -> R<FileSplit> {
    let c = Cursor::with_base(bytes, base);
    if version != 1 {
        return Err(c.error(DecodeErrorKind::Invalid(format!("unknown FileSourceSplitSerializer version {version}"))));
    }
    let exact = |with_file_info: bool| -> R<FileSplit> {
        let mut c = c.clone();
        let split = read_split_v1(&mut c, with_file_info)?;
        c.expect_end("file source split")?;
        Ok(split)
    };
    exact(true).or_else(|e| exact(false).map_err(|_| e))
}

fn read_split_v1(c: &mut Cursor<'_>, with_file_info: bool) -> R<FileSplit> {
    let id = c.utf("split id")?;
    let path = read_path(c)?;
    let offset = c.i64("split offset")?;
    let length = c.i64("split length")?;
    let (file_modification_time, file_size) =
        if with_file_info { (Some(c.i64("file modification time")?), Some(c.i64("file size")?)) } else { (None, None) };
    let n = c.count("number of hosts", 2)?;
    let mut hostnames = Vec::with_capacity(n);
    for _ in 0..n {
        hostnames.push(c.utf("host")?);
    }
    let reader_position = if c.bool("reader position flag")? { Some((c.i64("reader offset")?, c.i64("records after offset")?)) } else { None };
    Ok(FileSplit { id, path, offset, length, file_modification_time, file_size, hostnames, reader_position })
}

/// `Path.serializeToDataOutputView`: `bool` has URI, then scheme, user info, host (nullable
/// strings: `bool` + `StringValue` string), `i32` port, path, query, fragment.
fn read_path(c: &mut Cursor<'_>) -> R<Option<String>> {
    if !c.bool("path flag")? {
        return Ok(None);
    }
    let scheme = nullable(c, "uri scheme")?;
    let user = nullable(c, "uri user info")?;
    let host = nullable(c, "uri host")?;
    let port = c.i32("uri port")?;
    let path = nullable(c, "uri path")?;
    let query = nullable(c, "uri query")?;
    let fragment = nullable(c, "uri fragment")?;
    // java.net.URI's toString of its components
    let mut s = String::new();
    if let Some(scheme) = scheme {
        s.push_str(&scheme);
        s.push(':');
    }
    if host.is_some() || user.is_some() || port >= 0 {
        s.push_str("//");
        if let Some(u) = user {
            s.push_str(&u);
            s.push('@');
        }
        if let Some(h) = host {
            s.push_str(&h);
        }
        if port >= 0 {
            s.push_str(&format!(":{port}"));
        }
    }
    s.push_str(path.as_deref().unwrap_or(""));
    if let Some(q) = query {
        s.push('?');
        s.push_str(&q);
    }
    if let Some(f) = fragment {
        s.push('#');
        s.push_str(&f);
    }
    Ok(Some(s))
}

/// `StringUtils.writeNullableString`: `bool` present, then a `StringValue` string.
fn nullable(c: &mut Cursor<'_>, what: &'static str) -> R<Option<String>> {
    if !c.bool(what)? {
        return Ok(None);
    }
    let at = c.position();
    read_fstr(c, what)?.map(Some).ok_or_else(|| c.error_at(DecodeErrorKind::Invalid(format!("{what}: null after a present flag")), at))
}

/// `PendingSplitsCheckpoint`: splits not yet assigned, and paths already processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingSplits {
    /// Splits the enumerator still holds.
    pub splits: Vec<FileSplit>,
    /// Paths the enumerator has processed (continuous monitoring).
    pub processed_paths: Vec<String>,
}

/// `PendingSplitsCheckpoint` magic of version 1 (little-endian, as the whole checkpoint).
pub const PENDING_SPLITS_MAGIC: u32 = 0xDEAD_BEEF;

/// Reads `PendingSplitsCheckpointSerializer` version 1, little-endian: `u32` magic 0xDEADBEEF,
/// `i32` split serializer version, `i32` splits, `i32` paths, per split `i32 len` + split, per
/// path `i32 len` + UTF-8.
pub fn read_pending_splits(version: i32, bytes: &[u8], base: u64) -> R<PendingSplits> {
    let mut c = Cursor::with_base(bytes, base);
    if version != 1 {
        return Err(c.error(DecodeErrorKind::Invalid(format!("unknown PendingSplitsCheckpointSerializer version {version}"))));
    }
    let le = |c: &mut Cursor<'_>, what: &'static str| -> R<i32> { Ok(c.i32(what)?.swap_bytes()) };
    let at = c.position();
    let magic = le(&mut c, "pending splits magic")? as u32;
    if magic != PENDING_SPLITS_MAGIC {
        return Err(c.error_at(DecodeErrorKind::BadMagic { what: "pending splits magic", expected: PENDING_SPLITS_MAGIC, found: magic }, at));
    }
    let split_version = le(&mut c, "split serializer version")?;
    let count = |c: &mut Cursor<'_>, what: &'static str, min: usize| -> R<usize> {
        let at = c.position();
        let n = le(c, what)?;
        let n = usize::try_from(n).map_err(|_| c.error_at(DecodeErrorKind::InvalidValue { what, value: n.into() }, at))?;
        c.check_fits(what, n, min, at)?;
        Ok(n)
    };
    let n_splits = count(&mut c, "number of pending splits", 4)?;
    let n_paths = count(&mut c, "number of processed paths", 4)?;
    let mut splits = Vec::with_capacity(n_splits);
    for _ in 0..n_splits {
        let len = count(&mut c, "split length", 1)?;
        let at = c.position();
        splits.push(read_split(split_version, c.bytes(len, "split")?, at)?);
    }
    let mut processed_paths = Vec::with_capacity(n_paths);
    for _ in 0..n_paths {
        let len = count(&mut c, "path length", 1)?;
        let at = c.position();
        let raw = c.bytes(len, "path")?;
        processed_paths.push(String::from_utf8(raw.to_vec()).map_err(|_| c.error_at(DecodeErrorKind::Invalid("path is not UTF-8".into()), at))?);
    }
    c.expect_end("pending splits checkpoint")?;
    Ok(PendingSplits { splits, processed_paths })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A split of `file:/in/a.txt`, bytes 0..100, no hosts, read 7 records past offset -1; with
    /// the modification time and size (1.15+) or without (1.13, 1.14).
    fn split(with_file_info: bool) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&[0, 1, b'7']); // utf id "7"
        b.extend_from_slice(&[1, 1, 5]); // has URI; scheme present, StringValue length 4 + 1
        b.extend_from_slice(b"file");
        b.extend_from_slice(&[0, 0]); // user info, host: null
        b.extend_from_slice(&(-1i32).to_be_bytes()); // port
        b.extend_from_slice(&[1, 10]); // path present, length 9 + 1
        b.extend_from_slice(b"/in/a.txt");
        b.extend_from_slice(&[0, 0]); // query, fragment: null
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&100i64.to_be_bytes());
        if with_file_info {
            b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
            b.extend_from_slice(&100i64.to_be_bytes());
        }
        b.extend_from_slice(&0i32.to_be_bytes()); // hosts
        b.push(1);
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&7i64.to_be_bytes());
        b
    }

    #[test]
    fn both_layouts_of_version_1_are_read() {
        let new = read_split(1, &split(true), 0).unwrap();
        assert_eq!((new.file_modification_time, new.file_size), (Some(1_700_000_000_000), Some(100)));
        let old = read_split(1, &split(false), 0).unwrap();
        assert_eq!((old.file_modification_time, old.file_size), (None, None));
        for s in [&new, &old] {
            assert_eq!((s.path.as_deref(), s.offset, s.length, s.reader_position), (Some("file:/in/a.txt"), 0, 100, Some((-1, 7))));
        }
        // Neither layout ends where a truncated split does.
        let b = split(true);
        assert!(read_split(1, &b[..b.len() - 1], 0).is_err());
    }
}
