//! The output directory of a writer (`convert`, `relocate`), on a local disk or an object store.
//! A reader never sees half a snapshot and a failed run leaves nothing behind:
//! - locally, the directory is written under a temporary sibling name and renamed into place;
//! - on an object store (no directories, no rename), the files are written where they belong and
//!   `_metadata` last, with a conditional put that never replaces an existing one: a prefix
//!   without `_metadata` is no snapshot. A failed run removes `_metadata` (if it got that far)
//!   and then everything under the prefix.
//!
//! The source is never written: the target may not lie inside it, contain it, or contain any file
//! it references.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::snapshot::{Snapshot, METADATA_FILE};
use crate::storage::{Location, PutMode, Storage};

/// The target directory; dropped uncommitted, what was written is removed.
#[derive(Debug)]
pub(crate) struct TargetDir {
    storage: Arc<dyn Storage>,
    /// Where the directory ends up.
    pub(crate) dst: Location,
    /// Where it is written meanwhile: a temporary sibling locally, `dst` on object stores.
    pub(crate) tmp: Location,
    /// Whether `dst` is on an object store.
    remote: bool,
    committed: bool,
}

impl TargetDir {
    /// Checks `dst` against the source (never inside it, never containing it or any file it
    /// references; an existing `dst` only with `force`) and prepares it.
    pub(crate) fn prepare(snapshot: &Snapshot, storage: Arc<dyn Storage>, dst: &str, force: bool) -> Result<TargetDir> {
        let dst_loc = Location::new(dst);
        if storage.is_object_store(&dst_loc) {
            return Self::prepare_remote(snapshot, storage, dst_loc, force);
        }
        let dst = Path::new(dst);
        let shown = dst.display().to_string();
        let name = dst
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Invalid(format!("{shown}: not a usable directory name")))?;
        let parent = match dst.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(parent.display().to_string(), e))?;
        let parent = std::fs::canonicalize(&parent).map_err(|e| Error::io(parent.display().to_string(), e))?;
        let dst_abs = parent.join(name);
        let exists = std::fs::symlink_metadata(&dst_abs).is_ok();
        if exists && !force {
            return Err(Error::Invalid(format!("{shown}: already exists (use --force to replace it)")));
        }
        // Never write into, or replace, anything the source consists of.
        if snapshot.dir.is_local() {
            let src_dir = std::fs::canonicalize(snapshot.dir.as_str()).map_err(|e| Error::io(snapshot.dir.as_str(), e))?;
            if dst_abs.starts_with(&src_dir) || src_dir.starts_with(&dst_abs) {
                return Err(Error::Invalid(format!(
                    "{shown}: the target must lie outside the source {} (and not contain it)",
                    src_dir.display()
                )));
            }
        }
        for (_, f) in snapshot.files()? {
            if !f.location.is_local() {
                continue;
            }
            if let Ok(p) = std::fs::canonicalize(f.location.as_str()) {
                if p.starts_with(&dst_abs) {
                    return Err(Error::Invalid(format!("{shown}: contains {}, which the source references", p.display())));
                }
            }
        }
        let tmp = parent.join(format!(".{name}.flinksnap-tmp-{}", std::process::id()));
        if std::fs::symlink_metadata(&tmp).is_ok() {
            // Left behind by an earlier run of this process id that did not finish.
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(tmp.display().to_string(), e))?;
        }
        std::fs::create_dir(&tmp).map_err(|e| Error::io(tmp.display().to_string(), e))?;
        Ok(TargetDir {
            storage,
            dst: Location::new(&dst_abs.display().to_string()),
            tmp: Location::new(&tmp.display().to_string()),
            remote: false,
            committed: false,
        })
    }

    fn prepare_remote(snapshot: &Snapshot, storage: Arc<dyn Storage>, dst: Location, force: bool) -> Result<TargetDir> {
        let inside = |a: &Location, b: &Location| a == b || a.strip_prefix(b).is_some();
        if inside(&dst, &snapshot.dir) || inside(&snapshot.dir, &dst) {
            return Err(Error::Invalid(format!("{dst}: the target must lie outside the source {} (and not contain it)", snapshot.dir)));
        }
        if let Some((_, f)) = snapshot.files()?.into_iter().find(|(_, f)| inside(&f.location, &dst)) {
            return Err(Error::Invalid(format!("{dst}: contains {}, which the source references", f.location)));
        }
        let existing = match storage.list(&dst) {
            Ok(entries) => !entries.is_empty(),
            Err(Error::NotFound { .. }) => false,
            Err(e) => return Err(e),
        };
        if existing {
            if !force {
                return Err(Error::Invalid(format!("{dst}: already exists (use --force to replace it)")));
            }
            // The old snapshot stops being one first; then its files go.
            storage.delete(&dst.join(METADATA_FILE))?;
            remove_all(storage.as_ref(), &dst)?;
        }
        Ok(TargetDir { storage, tmp: dst.clone(), dst, remote: true, committed: false })
    }

    /// The storage the target is written to.
    pub(crate) fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Whether the target is on an object store.
    pub(crate) fn is_remote(&self) -> bool {
        self.remote
    }

    /// Writes `_metadata`, the last file: never over an existing one.
    pub(crate) fn put_metadata(&self, bytes: &[u8]) -> Result<()> {
        let loc = self.tmp.join(METADATA_FILE);
        self.storage.put(&loc, bytes, PutMode::Create).map_err(|e| match e {
            Error::AlreadyExists { file } => Error::Invalid(format!("{file}: another _metadata appeared meanwhile; left as it is")),
            other => other,
        })
    }

    /// Publishes the directory: locally the temporary directory is renamed to `dst` (replacing
    /// an existing `dst` after `force`); on object stores `_metadata` already did it.
    pub(crate) fn commit(mut self) -> Result<()> {
        if self.remote {
            self.committed = true;
            return Ok(());
        }
        let tmp = PathBuf::from(self.tmp.as_str());
        let dst = PathBuf::from(self.dst.as_str());
        let sync_dir = |p: &Path| std::fs::File::open(p).and_then(|f| f.sync_all());
        sync_dir(&tmp).map_err(|e| Error::io(tmp.display().to_string(), e))?;
        let old = dst.with_file_name(format!(
            ".{}.flinksnap-old-{}",
            dst.file_name().and_then(|n| n.to_str()).unwrap_or("savepoint"),
            std::process::id()
        ));
        let replaced = std::fs::symlink_metadata(&dst).is_ok();
        if replaced {
            std::fs::rename(&dst, &old).map_err(|e| Error::io(dst.display().to_string(), e))?;
        }
        if let Err(e) = std::fs::rename(&tmp, &dst) {
            if replaced {
                let _ = std::fs::rename(&old, &dst);
            }
            return Err(Error::io(dst.display().to_string(), e));
        }
        self.committed = true;
        if replaced {
            let r = if std::fs::symlink_metadata(&old).map(|m| m.is_dir()).unwrap_or(false) {
                std::fs::remove_dir_all(&old)
            } else {
                std::fs::remove_file(&old)
            };
            r.map_err(|e| Error::io(old.display().to_string(), e))?;
        }
        if let Some(parent) = dst.parent() {
            let _ = sync_dir(parent);
        }
        Ok(())
    }
}

/// Removes every file under `dir` (object stores), in bulk.
pub(crate) fn remove_all(storage: &dyn Storage, dir: &Location) -> Result<()> {
    let mut failed = Vec::new();
    storage.list_files(dir, &mut |page| {
        let locs: Vec<Location> = page.into_iter().map(|f| f.location).collect();
        failed.extend(storage.delete_many(&locs)?);
        Ok(())
    })?;
    match failed.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

impl Drop for TargetDir {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if self.remote {
            // `_metadata` first: whatever is left after a failure here is no snapshot.
            if self.storage.delete(&self.tmp.join(METADATA_FILE)).is_ok() {
                if let Err(e) = remove_all(self.storage.as_ref(), &self.tmp) {
                    eprintln!("flinksnap: could not remove the partial output under {}: {e}", self.tmp);
                }
            } else {
                eprintln!("flinksnap: could not remove the partial output under {} (no _metadata: it is no snapshot)", self.tmp);
            }
        } else {
            let _ = std::fs::remove_dir_all(self.tmp.as_str());
        }
    }
}
