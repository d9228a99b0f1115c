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
    /// The file's modification time (ms).
    pub file_modification_time: i64,
    /// The file's size.
    pub file_size: i64,
    /// Preferred hosts.
    pub hostnames: Vec<String>,
    /// The reader's checkpointed position in the split: (offset, records to skip after it).
    pub reader_position: Option<(i64, i64)>,
}

/// Reads a split written by `FileSourceSplitSerializer` version `version` (1): `utf` id, the path
/// (`Path.serializeToDataOutputView`), `i64` offset, length, modification time, file size,
/// `i32 n` + n × `utf` host, `bool` has position [`i64` offset, `i64` records after offset].
pub fn read_split(version: i32, bytes: &[u8], base: u64) -> R<FileSplit> {
    let mut c = Cursor::with_base(bytes, base);
    if version != 1 {
        return Err(c.error(DecodeErrorKind::Invalid(format!("unknown FileSourceSplitSerializer version {version}"))));
    }
    let split = read_split_v1(&mut c)?;
    c.expect_end("file source split")?;
    Ok(split)
}

fn read_split_v1(c: &mut Cursor<'_>) -> R<FileSplit> {
    let id = c.utf("split id")?;
    let path = read_path(c)?;
    let offset = c.i64("split offset")?;
    let length = c.i64("split length")?;
    let file_modification_time = c.i64("file modification time")?;
    let file_size = c.i64("file size")?;
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
