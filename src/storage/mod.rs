//! Where snapshot files live. Every reader and writer goes through [`Storage`]: local files
//! ([`LocalStorage`]) and object stores (S3, GCS, Azure Blob/ADLS, S3-compatible stores, HDFS:
//! `ObjectStorage` with the `cloud` feature) behind one trait, and [`Storages`] routes each
//! location to the store it lives in (one store per bucket, container or name node).
//!
//! A [`Location`] is a local path or a URL. Flink records local files as `file:/path` (or
//! `file:///path`); those become plain local paths. URL schemes are Flink's own (`s3a://`,
//! `wasbs://`, ...): [`url`] says how each maps onto a store.

mod local;
#[cfg(feature = "cloud")]
mod object;
pub mod options;
mod router;
pub mod url;

use std::fmt;
use std::io::{Read, Write};
use std::ops::Range;
use std::time::SystemTime;

pub use local::LocalStorage;
#[cfg(feature = "cloud")]
pub use object::ObjectStorage;
pub use options::StorageOptions;
pub use router::Storages;

use crate::error::{Error, Result};
/// A file or directory: a local path, or a URI with a scheme such as `s3://bucket/key`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location(String);

impl Location {
    /// Parses a path or URI; `file:` URIs become local paths.
    pub fn new(s: &str) -> Location {
        let local = s
            .strip_prefix("file://")
            .filter(|rest| rest.starts_with('/'))
            .or_else(|| s.strip_prefix("file:").filter(|rest| rest.starts_with('/')));
        let s = local.unwrap_or(s);
        // Normalise trailing slashes, but keep a root.
        let trimmed = s.trim_end_matches('/');
        Location(if trimmed.is_empty() && s.starts_with('/') { "/".to_owned() } else { trimmed.to_owned() })
    }

    /// The string form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a local path (no URI scheme).
    pub fn is_local(&self) -> bool {
        self.scheme().is_none()
    }

    /// The URI scheme, if any (`s3`, `hdfs`, ...).
    pub fn scheme(&self) -> Option<&str> {
        let (scheme, rest) = self.0.split_once("://")?;
        (!scheme.is_empty() && !rest.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-'))
            .then_some(scheme)
    }

    /// `self/rel`, or `rel` itself when it is absolute.
    pub fn join(&self, rel: &str) -> Location {
        if rel.starts_with('/') || Location::new(rel).scheme().is_some() || rel.starts_with("file:") {
            return Location::new(rel);
        }
        let rel = rel.trim_start_matches("./");
        if self.0.ends_with('/') {
            Location::new(&format!("{}{}", self.0, rel))
        } else {
            Location::new(&format!("{}/{}", self.0, rel))
        }
    }

    /// The directory holding this location.
    pub fn parent(&self) -> Option<Location> {
        let idx = self.0.rfind('/')?;
        let parent = &self.0[..idx];
        if parent.is_empty() {
            return (self.0 != "/").then(|| Location("/".to_owned()));
        }
        if parent.ends_with(':') || parent.ends_with(":/") {
            return None;
        }
        Some(Location(parent.to_owned()))
    }

    /// The last path component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The path of `self` below `base`, if it lies below it.
    pub fn strip_prefix(&self, base: &Location) -> Option<&str> {
        let rest = self.0.strip_prefix(base.0.as_str())?;
        if base.0.ends_with('/') {
            return Some(rest);
        }
        rest.strip_prefix('/')
    }

    /// Path components (after any scheme and authority).
    pub fn components(&self) -> Vec<&str> {
        self.0.split('/').filter(|c| !c.is_empty()).collect()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({:?})", self.0)
    }
}

impl From<&str> for Location {
    fn from(s: &str) -> Self {
        Location::new(s)
    }
}

/// What [`Storage::head`] and [`Storage::list`] know about an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// Where it is.
    pub location: Location,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Last modification time, where the storage knows it.
    pub modified: Option<SystemTime>,
    /// Whether it is a directory (or a common prefix, in an object store).
    pub is_dir: bool,
}

/// How [`Storage::put`] treats a file that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Replace it.
    Overwrite,
    /// Fail with [`Error::AlreadyExists`] and leave it as it is (a conditional put on object
    /// stores: `If-None-Match: *`). How a snapshot's `_metadata` is written: never over another.
    Create,
}

/// A file being written, byte by byte: on object stores a multipart upload whose parts go out
/// while the caller writes (the object appears whole at [`FileWriter::finish`], or never), on
/// local disks a file. Dropped unfinished, it leaves nothing behind.
pub trait FileWriter: Write + Send + fmt::Debug {
    /// Completes the file and returns its size.
    fn finish(self: Box<Self>) -> Result<u64>;
}

/// Read and write access to the files of snapshots. Implementations are synchronous; object
/// stores bridge their async clients behind this trait. "Not found" is always reported as
/// [`crate::Error::NotFound`], every other failure names the location.
///
/// Object stores have no directories: a directory is a prefix that objects lie under, listed as
/// one by [`Storage::list`], and [`Storage::head`] reports it with `is_dir` when objects lie
/// under it.
pub trait Storage: fmt::Debug + Send + Sync {
    /// What is at `loc`; `Error::NotFound` when nothing is.
    fn head(&self, loc: &Location) -> Result<FileMeta>;

    /// What is at each of `locs`, in their order: object stores ask concurrently.
    fn head_many(&self, locs: &[Location]) -> Vec<Result<FileMeta>> {
        locs.iter().map(|l| self.head(l)).collect()
    }

    /// Whether anything is at `loc`.
    fn exists(&self, loc: &Location) -> Result<bool> {
        match self.head(loc) {
            Ok(_) => Ok(true),
            Err(crate::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The whole file.
    fn read(&self, loc: &Location) -> Result<Vec<u8>>;

    /// Bytes `range` of the file; fails if the file is shorter. Object stores answer it from
    /// blocks fetched with ranged GETs and read ahead while the caller reads on sequentially.
    fn read_range(&self, loc: &Location, range: Range<u64>) -> Result<Vec<u8>>;

    /// A sequential reader over the file, for streams too large to hold.
    fn open(&self, loc: &Location) -> Result<Box<dyn Read + Send>>;

    /// A sequential reader over the file from byte `start` on (at the end when `start` lies
    /// beyond it). Local files seek and object stores start their ranged reads there; the
    /// default reads and drops the bytes before `start`.
    fn open_at(&self, loc: &Location, start: u64) -> Result<Box<dyn Read + Send>> {
        let mut r = self.open(loc)?;
        std::io::copy(&mut (&mut r).take(start), &mut std::io::sink()).map_err(|e| Error::io(loc.as_str(), e))?;
        Ok(r)
    }

    /// The direct children of directory `dir`, sorted by location.
    fn list(&self, dir: &Location) -> Result<Vec<FileMeta>>;

    /// Every file below `dir` (recursively, no directories), a page at a time: object stores
    /// list with their paged APIs, so directories of 100,000s of objects never sit in memory
    /// twice. An error ends the listing: the caller must not act on a partial one.
    fn list_files(&self, dir: &Location, page: &mut dyn FnMut(Vec<FileMeta>) -> Result<()>) -> Result<()> {
        let mut pending = vec![dir.clone()];
        while let Some(d) = pending.pop() {
            let mut files = Vec::new();
            for e in self.list(&d)? {
                if e.is_dir {
                    pending.push(e.location);
                } else {
                    files.push(e);
                }
            }
            if !files.is_empty() {
                page(files)?;
            }
        }
        Ok(())
    }

    /// Whether `loc` lies in an object store (no directories, no rename; a file appears whole
    /// when its upload completes) rather than on a local file system.
    fn is_object_store(&self, loc: &Location) -> bool {
        !loc.is_local()
    }

    /// Starts writing file `loc` (parent directories are created where there are any).
    fn create(&self, loc: &Location) -> Result<Box<dyn FileWriter>> {
        Err(read_only(loc))
    }

    /// Writes a whole (small) file in one request.
    fn put(&self, loc: &Location, bytes: &[u8], mode: PutMode) -> Result<()> {
        let _ = (bytes, mode);
        Err(read_only(loc))
    }

    /// Copies file `from` to `to` (both in this storage), server-side where the store can.
    fn copy(&self, from: &Location, to: &Location) -> Result<()> {
        let _ = to;
        Err(read_only(from))
    }

    /// Renames file `from` to `to` (local files: atomically; object stores: a copy and a delete).
    fn rename(&self, from: &Location, to: &Location) -> Result<()> {
        self.copy(from, to)?;
        self.delete(from)
    }

    /// Removes file `loc`; a file that is already gone is no error.
    fn delete(&self, loc: &Location) -> Result<()> {
        Err(read_only(loc))
    }

    /// Removes files, in bulk where the store can (S3: 1,000 keys a request, Azure: batches of
    /// 256). Returns the files that could not be removed, with why; `Err` when the store
    /// could not be asked at all.
    fn delete_many(&self, locs: &[Location]) -> Result<Vec<(Location, Error)>> {
        Ok(locs.iter().filter_map(|l| self.delete(l).err().map(|e| (l.clone(), e))).collect())
    }

    /// Removes directory `loc` if it is empty (object stores have no directories: nothing to do).
    fn delete_empty_dir(&self, loc: &Location) -> Result<()> {
        let _ = loc;
        Ok(())
    }
}

fn read_only(loc: &Location) -> Error {
    Error::Invalid(format!("{loc}: this storage is read-only"))
}

/// Copies `from` to `to` through the client: a ranged read and a streamed (multipart) write,
/// in pieces of `chunk` bytes, `progress` told the bytes written so far. What a copy between two
/// stores is, and the fallback when a server-side copy cannot be made.
#[allow(clippy::too_many_arguments)]
pub fn copy_through(from_storage: &dyn Storage, from: &Location, start: u64, len: u64, to_storage: &dyn Storage, to: &Location, chunk: u64, progress: &mut dyn FnMut(u64)) -> Result<u64> {
    let mut out = to_storage.create(to)?;
    let mut at = 0;
    while at < len {
        let n = chunk.min(len - at);
        let bytes = from_storage.read_range(from, start + at..start + at + n)?;
        out.write_all(&bytes).map_err(|e| Error::io(to.as_str(), e))?;
        at += n;
        progress(n);
    }
    out.finish()
}

/// A storage that holds no files: for snapshots whose state is all inline in `_metadata` (and
/// for decoding bytes that never were files, [`crate::readers::raw`]). Every location is not
/// found.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFiles;

impl Storage for NoFiles {
    fn head(&self, loc: &Location) -> Result<FileMeta> {
        Err(crate::Error::NotFound { file: loc.to_string(), referenced_by: None })
    }

    fn read(&self, loc: &Location) -> Result<Vec<u8>> {
        self.head(loc).map(|_| Vec::new())
    }

    fn read_range(&self, loc: &Location, _range: Range<u64>) -> Result<Vec<u8>> {
        self.head(loc).map(|_| Vec::new())
    }

    fn open(&self, loc: &Location) -> Result<Box<dyn Read + Send>> {
        Err(crate::Error::NotFound { file: loc.to_string(), referenced_by: None })
    }

    fn list(&self, loc: &Location) -> Result<Vec<FileMeta>> {
        self.head(loc).map(|_| Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_become_local_paths() {
        assert_eq!(Location::new("file:/tmp/a/shared/x").as_str(), "/tmp/a/shared/x");
        assert_eq!(Location::new("file:///tmp/a").as_str(), "/tmp/a");
        assert_eq!(Location::new("s3://bucket/a/").as_str(), "s3://bucket/a");
        assert_eq!(Location::new("s3://bucket/a").scheme(), Some("s3"));
        assert!(Location::new("/tmp").is_local());
    }

    /// A storage with only the required methods, so `open_at` is the trait's default.
    #[derive(Debug)]
    struct Plain(LocalStorage);

    impl Storage for Plain {
        fn head(&self, loc: &Location) -> Result<FileMeta> {
            self.0.head(loc)
        }
        fn read(&self, loc: &Location) -> Result<Vec<u8>> {
            self.0.read(loc)
        }
        fn read_range(&self, loc: &Location, range: Range<u64>) -> Result<Vec<u8>> {
            self.0.read_range(loc, range)
        }
        fn open(&self, loc: &Location) -> Result<Box<dyn Read + Send>> {
            self.0.open(loc)
        }
        fn list(&self, dir: &Location) -> Result<Vec<FileMeta>> {
            self.0.list(dir)
        }
    }

    #[test]
    fn open_at_starts_at_the_offset_seeking_or_skipping() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let loc = Location::new(dir.path().join("f").to_str().unwrap());
        std::fs::write(loc.as_str(), &data).unwrap();
        for storage in [&LocalStorage as &dyn Storage, &Plain(LocalStorage)] {
            for start in [0u64, 1, 65_536, 199_999, 200_000, 300_000] {
                let mut tail = Vec::new();
                storage.open_at(&loc, start).unwrap().read_to_end(&mut tail).unwrap();
                assert_eq!(tail, &data[(start as usize).min(data.len())..], "{storage:?} from {start}");
            }
        }
    }

    #[test]
    fn join_parent_and_strip() {
        let d = Location::new("/data/job/chk-3");
        assert_eq!(d.join("abc").as_str(), "/data/job/chk-3/abc");
        assert_eq!(d.join("/abs/x").as_str(), "/abs/x");
        assert_eq!(d.parent().unwrap().as_str(), "/data/job");
        assert_eq!(Location::new("/x").parent().unwrap().as_str(), "/");
        assert_eq!(d.join("a/b").strip_prefix(&d), Some("a/b"));
        assert_eq!(Location::new("/data/job/chk-30/a").strip_prefix(&d), None);
        assert_eq!(Location::new("s3://b/k").parent().unwrap().as_str(), "s3://b");
        assert_eq!(Location::new("s3://b").parent(), None);
        assert_eq!(Location::new("s3://b/k/x").parent().unwrap().as_str(), "s3://b/k");
    }
}
