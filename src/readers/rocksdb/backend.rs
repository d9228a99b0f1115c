//! What reads a handle's files: one interface, two implementations. The default is flinksnap's
//! own reader ([`crate::rocksdb_files`]: ranged reads, nothing copied); with the cargo feature
//! `rocksdb` the RocksDB C++ library can read the same files from a working copy (`native`),
//! which the differential test compares against.

use std::fmt;

use crate::error::{Error, Result};
use crate::rocksdb_files::{self, CfCursor, Db, DbOptions, StringAppend};

use super::files::HandleFile;

/// What FRocksDB's `StringAppendTESTOperator` puts between list elements.
pub(super) use crate::consts::LIST_DELIMITER;

/// What a scan calls for each entry: `false` stops it.
pub(super) type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

/// A handle's database, open.
pub(super) trait Backend: Send + fmt::Debug {
    /// The column families, as the MANIFEST lists them.
    fn column_families(&self) -> &[String];

    /// Visits the live entries of column family `cf` with keys in `lower..upper` (to the end
    /// when `upper` is `None`), in key order, starting after key `after` when given, until
    /// `visit` returns `false` (the entry it was given counts as visited).
    fn scan(
        &mut self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        after: Option<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<()>;

    /// The first live key of column family `cf` in `lower..upper`. Called with ascending
    /// `lower` and the same `upper` to find the non-empty key groups.
    fn first_key(&mut self, cf: &str, lower: &[u8], upper: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
        let mut key = None;
        self.scan(cf, lower, upper, None, &mut |k, _| {
            key = Some(k.to_vec());
            Ok(false)
        })?;
        Ok(key)
    }

    /// Reads and checks every block of every live table (`verify --level full`): the number of
    /// data blocks; `None` when the backend cannot (librocksdb checks blocks as it reads them).
    fn verify_blocks(&self) -> Option<Result<u64>> {
        None
    }

    /// How many data blocks the scans have read and decompressed so far; `None` when the
    /// backend cannot tell.
    #[cfg(test)]
    fn data_blocks_decoded(&self) -> Option<u64> {
        None
    }
}

/// Which implementation reads the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// flinksnap's own reader.
    #[default]
    Rust,
    /// The RocksDB C++ library (cargo feature `rocksdb`).
    #[cfg(feature = "rocksdb")]
    Librocksdb,
}

impl Engine {
    /// The engine `FLINKSNAP_ROCKSDB_READER=librocksdb` asks for (benchmarks compare the two),
    /// else the Rust reader.
    pub fn from_env() -> Engine {
        #[cfg(feature = "rocksdb")]
        if std::env::var("FLINKSNAP_ROCKSDB_READER").is_ok_and(|v| v == "librocksdb") {
            return Engine::Librocksdb;
        }
        Engine::Rust
    }
}

/// Converts an error of the Rust reader, naming the handle.
pub(super) fn rocks_error(e: rocksdb_files::Error, what: &str) -> Error {
    match Error::from(e) {
        Error::Decode { file, mut error } => {
            error.context.insert(0, format!("RocksDB state of {what}"));
            Error::Decode { file, error }
        }
        Error::Invalid(m) => Error::Invalid(format!("{m} (RocksDB state of {what})")),
        other => other,
    }
}

/// The Rust reader.
#[derive(Debug)]
pub(super) struct RustBackend {
    db: Db,
    column_families: Vec<String>,
    what: String,
    /// The cursor of the last scan, where it stopped, so that the next batch continues
    /// without seeking again.
    parked: Option<Parked>,
    /// The cursor [`Backend::first_key`] seeks on from key group to key group (one cursor per
    /// column family, not one per key group; its table iterators keep their block and
    /// readahead). Dropped when a scan starts.
    probe: Option<Probe>,
}

/// A cursor over `lower..upper` of a column family, sought forward.
#[derive(Debug)]
struct Probe {
    column_family: String,
    lower: Vec<u8>,
    upper: Option<Vec<u8>>,
    cursor: CfCursor,
}

/// A cursor past the last key a scan visited.
#[derive(Debug)]
struct Parked {
    column_family: String,
    upper: Option<Vec<u8>>,
    last: Vec<u8>,
    cursor: CfCursor,
}

impl RustBackend {
    /// Opens the database of `files`.
    pub(super) fn open(files: &[HandleFile], what: &str) -> Result<RustBackend> {
        let sources = super::files::sources(files);
        let opts = DbOptions { verify_checksums: true, merge: std::sync::Arc::new(StringAppend(LIST_DELIMITER)) };
        let db = Db::open(&sources, opts).map_err(|e| rocks_error(e, what))?;
        let column_families = db.column_families();
        Ok(RustBackend { db, column_families, what: what.to_owned(), parked: None, probe: None })
    }

    /// Reads and checks every block of every live table (`verify --level full`).
    pub(super) fn verify_all_blocks(&self) -> Result<u64> {
        self.db.verify_all_blocks().map_err(|e| rocks_error(e, &self.what))
    }
}

impl Backend for RustBackend {
    fn column_families(&self) -> &[String] {
        &self.column_families
    }

    fn verify_blocks(&self) -> Option<Result<u64>> {
        Some(self.verify_all_blocks())
    }

    fn first_key(&mut self, cf: &str, lower: &[u8], upper: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
        let err = |e| rocks_error(e, &self.what);
        // The cursor covers the files overlapping its own range: it serves seeks within it.
        match self.probe.take().filter(|p| p.column_family == cf && p.upper.as_deref() == upper && p.lower.as_slice() <= lower) {
            Some(mut p) => {
                p.cursor.seek(lower).map_err(err)?;
                self.probe = Some(p);
            }
            None => {
                let cursor = self.db.cursor(cf, lower, upper).map_err(err)?;
                self.probe = Some(Probe { column_family: cf.to_owned(), lower: lower.to_vec(), upper: upper.map(<[u8]>::to_vec), cursor });
            }
        }
        Ok(self.probe.as_ref().filter(|p| p.cursor.valid()).map(|p| p.cursor.key().to_vec()))
    }

    #[cfg(test)]
    fn data_blocks_decoded(&self) -> Option<u64> {
        Some(self.db.data_blocks_decoded())
    }

    fn scan(
        &mut self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        after: Option<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        self.probe = None;
        let what = self.what.clone();
        let err = |e| rocks_error(e, &what);
        let parked = self.parked.take().filter(|p| p.column_family == cf && p.upper.as_deref() == upper && Some(p.last.as_slice()) == after);
        let mut cursor = match parked {
            Some(p) => p.cursor,
            None => {
                let mut c = self.db.cursor(cf, lower, upper).map_err(err)?;
                if let Some(a) = after.filter(|a| *a >= lower) {
                    c.seek(a).map_err(err)?;
                    if c.valid() && c.key() == a {
                        c.advance().map_err(err)?;
                    }
                }
                c
            }
        };
        while cursor.valid() {
            if !visit(cursor.key(), cursor.value())? {
                let last = cursor.key().to_vec();
                cursor.advance().map_err(err)?;
                self.parked = Some(Parked { column_family: cf.to_owned(), upper: upper.map(<[u8]>::to_vec), last, cursor });
                return Ok(());
            }
            cursor.advance().map_err(err)?;
        }
        Ok(())
    }
}
