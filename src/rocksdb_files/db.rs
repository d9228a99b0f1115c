//! A RocksDB database read from a set of named files (a Flink state handle's `CURRENT`,
//! `MANIFEST-*` and `*.sst`, wherever they are stored): `CURRENT` names the MANIFEST, its replay
//! names the live tables of each column family, and a column family is read through a
//! [`CfCursor`]. Tables are opened when first needed and kept (their index and meta blocks).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::error::{corrupt, unsupported, Position, Result};
use super::internal_key;
use super::log;
use super::manifest::{self, ColumnFamily, FileMeta, Version};
use super::merge::{CfCursor, MergeOperator, TableOpener};
use super::range_del::{clip, Fragments};
use super::source::FileSource;
use super::table::Table;

/// A MANIFEST larger than this is refused rather than read into memory (Flink's are KiBs).
const MAX_MANIFEST: u64 = 1 << 30;

/// How to read.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Check every block's checksum.
    pub verify_checksums: bool,
    /// The merge operator of every column family.
    pub merge: Arc<dyn MergeOperator>,
}

/// The live tables, by file number, opened on demand.
#[derive(Debug)]
struct TableCache {
    sources: HashMap<u64, Arc<dyn FileSource>>,
    tables: Mutex<HashMap<u64, Arc<Table>>>,
    verify: bool,
}

impl TableOpener for TableCache {
    fn open(&self, f: &FileMeta) -> Result<Arc<Table>> {
        if let Some(t) = self.tables.lock().ok().and_then(|t| t.get(&f.number).cloned()) {
            return Ok(t);
        }
        let Some(src) = self.sources.get(&f.number) else {
            return Err(super::error::Error::Storage(crate::Error::Invalid(format!("table file {:06}.sst is not among the database's files", f.number))));
        };
        let t = Arc::new(Table::open(src.clone(), Some(f.largest_sequence), self.verify)?);
        if let Ok(mut tables) = self.tables.lock() {
            tables.insert(f.number, t.clone());
        }
        Ok(t)
    }
}

/// A database opened read-only from its files.
#[derive(Debug)]
pub struct Db {
    version: Version,
    manifest: String,
    tables: Arc<TableCache>,
    merge: Arc<dyn MergeOperator>,
}

/// The RocksDB name of table file `number`.
pub fn table_file_name(number: u64) -> String {
    format!("{number:06}.sst")
}

/// The number of a table file name (`000012.sst` → 12; also LevelDB's `.ldb`).
pub fn table_file_number(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".sst").or_else(|| name.strip_suffix(".ldb"))?;
    (!stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit())).then(|| stem.parse().ok()).flatten()
}

impl Db {
    /// Opens the database whose files are `files` (local name → bytes).
    pub fn open(files: &HashMap<String, Arc<dyn FileSource>>, options: DbOptions) -> Result<Db> {
        let current = files.get("CURRENT").ok_or_else(|| super::error::Error::Storage(crate::Error::Invalid("no CURRENT file".into())))?;
        let text = current.read(0..current.size())?;
        let manifest_name = std::str::from_utf8(&text).ok().map(|s| s.trim_end_matches('\n')).filter(|s| {
            s.strip_prefix("MANIFEST-").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
        let Some(manifest_name) = manifest_name else {
            return Err(corrupt(current.name(), Position::File(0), format!("CURRENT holds {:?}, not the name of a MANIFEST", String::from_utf8_lossy(&text[..text.len().min(64)]))));
        };
        let manifest = files.get(manifest_name).ok_or_else(|| {
            super::error::Error::Storage(crate::Error::Invalid(format!("{}: names {manifest_name}, which is not among the database's files", current.name())))
        })?;
        if manifest.size() > MAX_MANIFEST {
            return Err(unsupported(manifest.name(), Position::File(0), format!("a MANIFEST of {} bytes", manifest.size())));
        }
        let bytes = manifest.read(0..manifest.size())?;
        let records = log::records(manifest.name(), &bytes)?;
        if records.is_empty() {
            return Err(corrupt(manifest.name(), Position::File(0), "a MANIFEST without a single record"));
        }
        let version = manifest::replay(manifest.name(), &records)?;
        if let Some(c) = version.comparator.as_deref().filter(|c| *c != "leveldb.BytewiseComparator") {
            return Err(unsupported(manifest.name(), Position::File(0), format!("a database ordered by comparator {c:?} (Flink uses leveldb.BytewiseComparator)")));
        }
        let by_number: HashMap<u64, &Arc<dyn FileSource>> = files.iter().filter_map(|(n, s)| Some((table_file_number(n)?, s))).collect();
        let mut sources = HashMap::new();
        for cf in &version.column_families {
            for f in cf.levels.iter().flatten() {
                let Some(src) = by_number.get(&f.number) else {
                    return Err(super::error::Error::Storage(crate::Error::Invalid(format!(
                        "{}: column family {:?} has the live table {}, which is not among the database's files",
                        manifest.name(),
                        cf.name,
                        table_file_name(f.number)
                    ))));
                };
                if src.size() != f.size {
                    return Err(corrupt(
                        src.name(),
                        Position::File(src.size()),
                        format!("the table has {} bytes, the MANIFEST records {} (truncated or replaced?)", src.size(), f.size),
                    ));
                }
                sources.insert(f.number, (*src).clone());
            }
        }
        Ok(Db {
            version,
            manifest: manifest.name().to_owned(),
            tables: Arc::new(TableCache { sources, tables: Mutex::new(HashMap::new()), verify: options.verify_checksums }),
            merge: options.merge,
        })
    }

    /// The column families, `default` first.
    pub fn column_families(&self) -> Vec<String> {
        self.version.column_families.iter().map(|c| c.name.clone()).collect()
    }

    /// The replayed MANIFEST.
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// The MANIFEST, as messages name it.
    pub fn manifest_name(&self) -> &str {
        &self.manifest
    }

    fn column_family(&self, name: &str) -> Option<&ColumnFamily> {
        self.version.column_families.iter().find(|c| c.name == name)
    }

    /// A cursor over the live entries of column family `cf` with user keys in
    /// `lower..upper` (`upper` `None`: to the end), positioned at the first.
    pub fn cursor(&self, cf: &str, lower: &[u8], upper: Option<&[u8]>) -> Result<CfCursor> {
        let Some(family) = self.column_family(cf) else {
            return Err(super::error::Error::Storage(crate::Error::Invalid(format!("{}: no column family {cf:?}", self.manifest))));
        };
        let overlaps = |f: &FileMeta| {
            internal_key::user_key(&f.largest) >= lower && upper.is_none_or(|u| internal_key::user_key(&f.smallest) < u)
        };
        let levels: Vec<Vec<FileMeta>> = family.levels.iter().map(|l| l.iter().filter(|f| overlaps(f)).cloned().collect()).collect();
        let mut tombstones = Vec::new();
        for f in levels.iter().flatten() {
            let t = self.tables.open(f)?;
            tombstones.extend(t.range_tombstones().iter().filter_map(|r| clip(r, f)));
        }
        let opener: Arc<dyn TableOpener> = self.tables.clone();
        let mut c = CfCursor::new(&levels, opener, Fragments::new(&tombstones), upper.map(<[u8]>::to_vec), self.merge.clone())?;
        c.seek(lower)?;
        Ok(c)
    }

    /// How many data blocks the cursors have decoded so far (read, checked, decompressed),
    /// over every table opened.
    pub fn data_blocks_decoded(&self) -> u64 {
        self.tables.tables.lock().map_or(0, |t| t.values().map(|t| t.data_blocks_decoded()).sum())
    }

    /// Reads every block of every live table and checks its checksum (and that it decodes):
    /// `verify --level full`. Returns the number of data blocks checked.
    pub fn verify_all_blocks(&self) -> Result<u64> {
        let mut blocks = 0;
        for f in self.version.column_families.iter().flat_map(|c| c.levels.iter().flatten()) {
            let src = self.tables.sources.get(&f.number).cloned();
            let Some(src) = src else { continue };
            let t = Table::open(src, Some(f.largest_sequence), true)?;
            blocks += t.verify_data_blocks()?;
        }
        Ok(blocks)
    }
}
