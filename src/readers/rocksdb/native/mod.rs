//! The RocksDB C++ library as a [`Backend`] (cargo feature `rocksdb`, off by default): the
//! handle's files assembled into a temporary working directory (`materialize`; FRocksDB 5.17
//! tables given a footer RocksDB 11 reads, `legacy`) and opened read-only with Flink's list
//! merge operator. Only the differential test and the benchmark use it: the same files read by
//! both readers must give the same entries.

mod legacy;
mod materialize;

use ::rocksdb::{ColumnFamilyDescriptor, MergeOperands, Options, ReadOptions, DB};

use self::materialize::{assemble, WorkingDir};
use super::backend::{Backend, Visit, LIST_DELIMITER};
use crate::error::{Error, Result};
use crate::metadata::handles::IncrementalRemoteKeyedStateHandle;
use crate::snapshot::Snapshot;

/// The name Flink registers its merge operator under on every state column family
/// (`RocksDBKeyedStateBackend.MERGE_OPERATOR_NAME`).
const MERGE_OPERATOR_NAME: &str = "stringappendtest";

/// RocksDB keeps every table file open by default (-1); large checkpoints have more SSTs than a
/// process may open.
const MAX_OPEN_FILES: i32 = 256;

/// Flink's list-state merge (FRocksDB `StringAppendTESTOperator` with `,`).
fn string_append(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut delimit = false;
    for part in existing.into_iter().chain(operands.iter()) {
        if delimit {
            out.push(LIST_DELIMITER);
        }
        out.extend_from_slice(part);
        delimit = true;
    }
    Some(out)
}

/// Default options plus the merge operator; Flink's OPTIONS file is not loaded (it names
/// FRocksDB-only factories and the TaskManager's directories).
fn db_options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(false);
    o.create_missing_column_families(false);
    o.set_paranoid_checks(true);
    o.set_merge_operator_associative(MERGE_OPERATOR_NAME, string_append);
    o.set_max_open_files(MAX_OPEN_FILES);
    o
}

/// One handle's working directory opened read-only by librocksdb.
pub(super) struct LibrocksdbBackend {
    // Field order matters: the database must close before its directory is removed.
    db: DB,
    dir: WorkingDir,
    column_families: Vec<String>,
    metadata: String,
    what: String,
}

impl std::fmt::Debug for LibrocksdbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibrocksdbBackend").field("dir", &self.dir).field("what", &self.what).finish_non_exhaustive()
    }
}

impl LibrocksdbBackend {
    /// Assembles the files of `handle` and opens them.
    pub(super) fn open(snapshot: &Snapshot, handle: &IncrementalRemoteKeyedStateHandle, what: &str) -> Result<LibrocksdbBackend> {
        let metadata = snapshot.metadata_location.to_string();
        let dir = assemble(snapshot, handle, what)?;
        let opts = db_options();
        let explain = |e: ::rocksdb::Error| Error::Invalid(format!("{metadata}: RocksDB could not open the state of {what}: {}", dir.explain(&e.into_string())));
        let column_families = DB::list_cf(&opts, dir.path()).map_err(explain)?;
        let descriptors: Vec<_> = column_families.iter().map(|n| ColumnFamilyDescriptor::new(n, db_options())).collect();
        let db = DB::open_cf_descriptors_read_only(&opts, dir.path(), descriptors, false).map_err(explain)?;
        Ok(LibrocksdbBackend { db, dir, column_families, metadata, what: what.to_owned() })
    }
}

impl Backend for LibrocksdbBackend {
    fn column_families(&self) -> &[String] {
        &self.column_families
    }

    fn scan(
        &mut self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        after: Option<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        let handle = self
            .db
            .cf_handle(cf)
            .ok_or_else(|| Error::Invalid(format!("{}: RocksDB lost column family {cf:?} of {}", self.metadata, self.what)))?;
        let mut ro = ReadOptions::default();
        // A scan touches every block once: caching them would only evict each other.
        ro.fill_cache(false);
        ro.set_verify_checksums(true);
        ro.set_iterate_lower_bound(lower.to_vec());
        if let Some(u) = upper {
            ro.set_iterate_upper_bound(u.to_vec());
        }
        let mut it = self.db.raw_iterator_cf_opt(&handle, ro);
        match after {
            Some(key) => {
                it.seek(key);
                if it.key() == Some(key) {
                    it.next();
                }
            }
            None => it.seek(lower),
        }
        while let Some((k, v)) = it.item() {
            if !visit(k, v)? {
                return Ok(());
            }
            it.next();
        }
        // `valid()` turning false means the end or an error: only `status()` tells.
        it.status().map_err(|e| {
            Error::Invalid(format!(
                "{}: RocksDB could not read column family {cf:?} of the state of {}: {}",
                self.metadata,
                self.what,
                self.dir.explain(&e.into_string())
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readers::rocksdb::tests::fixture;

    #[test]
    fn the_working_directory_holds_the_handle_files_and_goes_away() {
        let (s, h, _, _) = fixture("flink-2.3.0/rocksdb-savepoint-native");
        let wd = assemble(&s, &h, "test").unwrap();
        let path = wd.path().to_path_buf();
        assert_eq!(wd.files().len(), h.shared_state.len() + h.private_state.len());
        for f in wd.files() {
            let copy = std::fs::read(path.join(&f.local_name)).unwrap();
            assert_eq!(copy, std::fs::read(&f.origin).unwrap(), "{}", f.local_name);
            use std::os::unix::fs::MetadataExt;
            let same_inode = std::fs::metadata(path.join(&f.local_name)).unwrap().ino() == std::fs::metadata(&f.origin).unwrap().ino();
            assert!(!same_inode || f.local_name.ends_with(".sst"), "{} is linked", f.local_name);
        }
        drop(wd);
        assert!(!path.exists());
    }

    #[test]
    fn the_read_only_open_writes_nothing() {
        for rel in ["flink-2.3.0/rocksdb-checkpoint-full", "flink-1.15.4/rocksdb-savepoint-native", "flink-1.13.6/rocksdb-checkpoint-incremental"] {
            let (s, h, _, _) = fixture(rel);
            let b = LibrocksdbBackend::open(&s, &h, "test").unwrap();
            assert_eq!(std::fs::read_dir(b.dir.path()).unwrap().count(), h.shared_state.len() + h.private_state.len(), "{rel}");
            assert!(b.column_families.iter().any(|c| c == "default"));
        }
    }

    #[test]
    fn list_merge_matches_frocksdb() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = db_options();
        o.create_if_missing(true);
        let db = DB::open(&o, dir.path()).unwrap();
        db.put(b"a", b"1").unwrap();
        db.merge(b"a", b"2").unwrap();
        db.merge(b"a", b"3").unwrap();
        db.merge(b"b", b"x").unwrap();
        db.merge(b"b", b"y").unwrap();
        db.put(b"c", b"").unwrap();
        db.merge(b"c", b"z").unwrap();
        assert_eq!(db.get(b"a").unwrap().unwrap(), b"1,2,3");
        assert_eq!(db.get(b"b").unwrap().unwrap(), b"x,y");
        assert_eq!(db.get(b"c").unwrap().unwrap(), b",z");
    }
}
