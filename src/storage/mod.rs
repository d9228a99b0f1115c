//! Where snapshot files live. Every reader goes through [`Storage`], so an object store (S3, GCS,
//! Azure) fits in later as one more implementation without touching the readers.
//!
//! A [`Location`] is a local path or a URI. Flink records local files as `file:/path` (or
//! `file:///path`); those become plain local paths.

mod local;

use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::time::SystemTime;

pub use local::LocalStorage;

use crate::error::Result;

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

/// Read access to the files of snapshots. Implementations are synchronous; an async object
/// store bridges behind this trait. "Not found" is always reported as
/// [`crate::Error::NotFound`], every other failure names the location.
pub trait Storage: fmt::Debug + Send + Sync {
    /// What is at `loc`; `Error::NotFound` when nothing is.
    fn head(&self, loc: &Location) -> Result<FileMeta>;

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

    /// Bytes `range` of the file; fails if the file is shorter.
    fn read_range(&self, loc: &Location, range: Range<u64>) -> Result<Vec<u8>>;

    /// A sequential reader over the file, for streams too large to hold.
    fn open(&self, loc: &Location) -> Result<Box<dyn Read + Send>>;

    /// The direct children of directory `dir`, sorted by location.
    fn list(&self, dir: &Location) -> Result<Vec<FileMeta>>;
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
