//! The output directory of a writer (`convert`, `relocate`): written under a temporary sibling
//! name and renamed into place, so a reader never sees half a snapshot and a failed run leaves
//! nothing behind. The source is never written: the target may not lie inside it, contain it, or
//! contain any file it references.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::snapshot::Snapshot;

/// The target directory, written under a temporary sibling name and renamed into place by
/// [`TargetDir::commit`]; dropped uncommitted, the temporary directory is removed.
#[derive(Debug)]
pub(crate) struct TargetDir {
    /// Where the directory ends up.
    pub(crate) dst: PathBuf,
    /// Where it is written meanwhile.
    pub(crate) tmp: PathBuf,
    committed: bool,
}

impl TargetDir {
    /// Checks `dst` against the source (never inside it, never containing it or any file it
    /// references; an existing `dst` only with `force`) and creates the temporary directory.
    pub(crate) fn prepare(snapshot: &Snapshot, dst: &Path, force: bool) -> Result<TargetDir> {
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
        if !snapshot.dir.is_local() {
            return Err(Error::Invalid(format!("{}: only local sources are supported", snapshot.dir)));
        }
        let src_dir = std::fs::canonicalize(snapshot.dir.as_str()).map_err(|e| Error::io(snapshot.dir.as_str(), e))?;
        if dst_abs.starts_with(&src_dir) || src_dir.starts_with(&dst_abs) {
            return Err(Error::Invalid(format!(
                "{shown}: the target must lie outside the source {} (and not contain it)",
                src_dir.display()
            )));
        }
        for (_, f) in snapshot.files()? {
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
        Ok(TargetDir { dst: dst_abs, tmp, committed: false })
    }

    /// Renames the temporary directory to `dst`, replacing an existing `dst` (after `force`).
    pub(crate) fn commit(mut self) -> Result<()> {
        let sync_dir = |p: &Path| std::fs::File::open(p).and_then(|f| f.sync_all());
        sync_dir(&self.tmp).map_err(|e| Error::io(self.tmp.display().to_string(), e))?;
        let old = self.dst.with_file_name(format!(
            ".{}.flinksnap-old-{}",
            self.dst.file_name().and_then(|n| n.to_str()).unwrap_or("savepoint"),
            std::process::id()
        ));
        let replaced = std::fs::symlink_metadata(&self.dst).is_ok();
        if replaced {
            std::fs::rename(&self.dst, &old).map_err(|e| Error::io(self.dst.display().to_string(), e))?;
        }
        if let Err(e) = std::fs::rename(&self.tmp, &self.dst) {
            if replaced {
                let _ = std::fs::rename(&old, &self.dst);
            }
            return Err(Error::io(self.dst.display().to_string(), e));
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
        if let Some(parent) = self.dst.parent() {
            let _ = sync_dir(parent);
        }
        Ok(())
    }
}

impl Drop for TargetDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Writes a whole file and syncs it to disk.
pub(crate) fn write_file_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let name = path.display().to_string();
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(&name, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&name, e))?;
    f.sync_all().map_err(|e| Error::io(&name, e))
}
