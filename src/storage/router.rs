//! [`Storages`]: the one [`Storage`] every command uses. Local paths go to the local file
//! system, URLs to a client for their store, made when first needed and kept for the run: one
//! per bucket, container or name node. A snapshot on S3 whose `_metadata` records `file:/` paths,
//! or a local copy of one that records `s3://` paths, is read through the same object.

use std::collections::HashMap;
use std::io::Read;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use super::url::{self, StoreUrl};
use super::{FileMeta, FileWriter, LocalStorage, Location, PutMode, Storage, StorageOptions};
use crate::error::{Error, Result};

/// Local files and every object store a run touches. Clones share the clients.
#[derive(Debug, Clone)]
pub struct Storages {
    local: LocalStorage,
    options: StorageOptions,
    stores: Arc<Mutex<HashMap<String, Arc<dyn Storage>>>>,
}

impl Default for Storages {
    fn default() -> Self {
        Storages::new(StorageOptions::new())
    }
}

impl Storages {
    /// Local files, and object stores configured by their environment and `options`.
    pub fn new(options: StorageOptions) -> Storages {
        Storages { local: LocalStorage, options, stores: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// The same, shared.
    pub fn shared(options: StorageOptions) -> Arc<dyn Storage> {
        Arc::new(Storages::new(options))
    }

    /// The options the stores are made with.
    pub fn options(&self) -> &StorageOptions {
        &self.options
    }

    /// The store `loc` lives in.
    fn store(&self, loc: &Location) -> Result<Arc<dyn Storage>> {
        let u = url::parse(loc)?;
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = stores.get(&u.identity) {
            return Ok(s.clone());
        }
        let s = make_store(&u, &self.options)?;
        stores.insert(u.identity.clone(), s.clone());
        Ok(s)
    }

    /// Runs `f` on the storage that holds `loc`.
    fn with<T>(&self, loc: &Location, f: impl FnOnce(&dyn Storage) -> Result<T>) -> Result<T> {
        if loc.is_local() {
            f(&self.local)
        } else {
            f(self.store(loc)?.as_ref())
        }
    }
}

#[cfg(feature = "cloud")]
fn make_store(u: &StoreUrl, options: &StorageOptions) -> Result<Arc<dyn Storage>> {
    Ok(Arc::new(super::ObjectStorage::connect(u, options)?))
}

#[cfg(not(feature = "cloud"))]
fn make_store(u: &StoreUrl, _: &StorageOptions) -> Result<Arc<dyn Storage>> {
    Err(Error::Invalid(format!(
        "{}: this flinksnap was built without object store support (cargo feature `cloud`)",
        u.prefix
    )))
}

impl Storage for Storages {
    fn head(&self, loc: &Location) -> Result<FileMeta> {
        self.with(loc, |s| s.head(loc))
    }

    fn head_many(&self, locs: &[Location]) -> Vec<Result<FileMeta>> {
        // Grouped by store so that each store asks for its own concurrently.
        let mut out: Vec<Option<Result<FileMeta>>> = (0..locs.len()).map(|_| None).collect();
        let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, l) in locs.iter().enumerate() {
            let key = if l.is_local() { String::new() } else { url::parse(l).map(|u| u.identity).unwrap_or_else(|_| format!("?{i}")) };
            groups.entry(key).or_default().push(i);
        }
        for idx in groups.into_values() {
            let group: Vec<Location> = idx.iter().map(|&i| locs[i].clone()).collect();
            let results = match self.with(&group[0], |s| Ok(s.head_many(&group))) {
                Ok(r) => r,
                Err(e) => {
                    let msg = e.to_string();
                    group.iter().map(|_| Err(Error::Invalid(msg.clone()))).collect()
                }
            };
            for (i, r) in idx.into_iter().zip(results) {
                out[i] = Some(r);
            }
        }
        out.into_iter().map(|r| r.unwrap_or_else(|| Err(Error::Invalid("head_many: no answer".into())))).collect()
    }

    fn exists(&self, loc: &Location) -> Result<bool> {
        self.with(loc, |s| s.exists(loc))
    }

    fn read(&self, loc: &Location) -> Result<Vec<u8>> {
        self.with(loc, |s| s.read(loc))
    }

    fn read_range(&self, loc: &Location, range: Range<u64>) -> Result<Vec<u8>> {
        self.with(loc, |s| s.read_range(loc, range))
    }

    fn open(&self, loc: &Location) -> Result<Box<dyn Read + Send>> {
        self.with(loc, |s| s.open(loc))
    }

    fn open_at(&self, loc: &Location, start: u64) -> Result<Box<dyn Read + Send>> {
        self.with(loc, |s| s.open_at(loc, start))
    }

    fn list(&self, dir: &Location) -> Result<Vec<FileMeta>> {
        self.with(dir, |s| s.list(dir))
    }

    fn list_files(&self, dir: &Location, page: &mut dyn FnMut(Vec<FileMeta>) -> Result<()>) -> Result<()> {
        self.with(dir, |s| s.list_files(dir, page))
    }

    fn is_object_store(&self, loc: &Location) -> bool {
        !loc.is_local()
    }

    fn create(&self, loc: &Location) -> Result<Box<dyn FileWriter>> {
        self.with(loc, |s| s.create(loc))
    }

    fn put(&self, loc: &Location, bytes: &[u8], mode: PutMode) -> Result<()> {
        self.with(loc, |s| s.put(loc, bytes, mode))
    }

    fn copy(&self, from: &Location, to: &Location) -> Result<()> {
        let same = match (from.is_local(), to.is_local()) {
            (true, true) => true,
            (false, false) => url::parse(from)?.identity == url::parse(to)?.identity,
            _ => false,
        };
        if same {
            return self.with(from, |s| s.copy(from, to));
        }
        // Between stores: through this process.
        let size = self.head(from)?.size;
        super::copy_through(self, from, 0, size, self, to, 8 << 20, &mut |_| {})?;
        Ok(())
    }

    fn rename(&self, from: &Location, to: &Location) -> Result<()> {
        if from.is_local() && to.is_local() {
            return self.local.rename(from, to);
        }
        self.copy(from, to)?;
        self.delete(from)
    }

    fn delete(&self, loc: &Location) -> Result<()> {
        self.with(loc, |s| s.delete(loc))
    }

    fn delete_many(&self, locs: &[Location]) -> Result<Vec<(Location, Error)>> {
        let mut groups: HashMap<String, Vec<Location>> = HashMap::new();
        for l in locs {
            let key = if l.is_local() { String::new() } else { url::parse(l)?.identity };
            groups.entry(key).or_default().push(l.clone());
        }
        let mut failed = Vec::new();
        for group in groups.into_values() {
            failed.extend(self.with(&group[0], |s| s.delete_many(&group))?);
        }
        Ok(failed)
    }

    fn delete_empty_dir(&self, loc: &Location) -> Result<()> {
        self.with(loc, |s| s.delete_empty_dir(loc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_stay_local_and_unknown_schemes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storages::default();
        let f = Location::new(dir.path().join("x").to_str().unwrap());
        s.put(&f, b"abc", PutMode::Create).unwrap();
        assert!(matches!(s.put(&f, b"abc", PutMode::Create), Err(Error::AlreadyExists { .. })));
        assert_eq!(s.read_range(&f, 1..3).unwrap(), b"bc");
        let e = s.head(&Location::new("ftp://host/x")).unwrap_err().to_string();
        assert!(e.contains("unknown file system ftp://"), "{e}");
    }
}
