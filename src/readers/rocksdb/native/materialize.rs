//! Assembles the files of one RocksDB keyed-state handle into a private working directory, under
//! the local names RocksDB knows them by, the way Flink's restore downloads them
//! (`RocksDBIncrementalRestoreOperation`, `RocksDBStateDownloader`). Spec:
//! `formats/rocksdb-native.md`.
//!
//! The snapshot is never written to: immutable table files (`*.sst`, `*.blob`) are hard-linked
//! when the snapshot is on a local file system that allows it, everything else is copied. The
//! directory is removed when the [`WorkingDir`] is dropped, also when reading fails half-way.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::metadata::handles::{HandleAndLocalPath, IncrementalRemoteKeyedStateHandle, StreamStateHandle};
use crate::readers::stream::StreamSource;
use crate::snapshot::Snapshot;

/// RocksDB's pointer to the live MANIFEST; without it there is no database.
pub(super) const CURRENT: &str = "CURRENT";

/// Segments of file-merging checkpoints are copied in pieces of this size, so memory stays flat.
const COPY_CHUNK: u64 = 8 << 20;

/// One file of the working directory and where it came from.
#[derive(Debug, Clone)]
pub(super) struct AssembledFile {
    /// The name RocksDB knows it by (`000012.sst`, `MANIFEST-000004`, `CURRENT`).
    pub local_name: String,
    /// The snapshot file it was taken from, as messages name it.
    pub origin: String,
}

/// A temporary directory holding one handle's RocksDB files; removed on drop.
#[derive(Debug)]
pub(super) struct WorkingDir {
    dir: tempfile::TempDir,
    files: Vec<AssembledFile>,
}

impl WorkingDir {
    /// The directory RocksDB opens.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Every file, in the handle's order (shared first, then private).
    #[cfg(test)]
    pub fn files(&self) -> &[AssembledFile] {
        &self.files
    }

    /// Rewrites a message that names working-directory files (RocksDB's errors do) so that it
    /// names the snapshot files instead: the working directory is gone when the user reads it.
    pub fn explain(&self, message: &str) -> String {
        let dir = self.path().to_string_lossy().into_owned();
        let mut out = message.to_owned();
        for f in &self.files {
            let temp = format!("{dir}/{}", f.local_name);
            out = out.replace(&temp, &format!("{} (RocksDB file {})", f.origin, f.local_name));
        }
        out = out.replace(&dir, "<working copy>");
        // RocksDB sometimes names a table file by number only, or by a name the handle does not
        // list (a MANIFEST referring to an SST that was not uploaded): say which snapshot file
        // that is, or that there is none.
        let mut notes = Vec::new();
        for word in out.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')) {
            let Some(number) = table_file_number(word) else { continue };
            match self.files.iter().find(|f| table_file_number(&f.local_name) == Some(number)) {
                Some(f) if !out.contains(&f.origin) => notes.push(format!("{} is {}", f.local_name, f.origin)),
                Some(_) => {}
                None => notes.push(format!("{word} is not among the files the checkpoint lists for this handle")),
            }
        }
        notes.dedup();
        if !notes.is_empty() {
            out.push_str(&format!(" ({})", notes.join("; ")));
        }
        out
    }
}

/// The number of an SST or blob file name (`000012.sst` → 12).
fn table_file_number(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".sst").or_else(|| name.strip_suffix(".blob"))?;
    (!stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit())).then(|| stem.parse().ok()).flatten()
}

/// Whether RocksDB never rewrites a file once written, so a hard link cannot let anything
/// change the snapshot's copy.
fn is_immutable(local_name: &str) -> bool {
    local_name.ends_with(".sst") || local_name.ends_with(".blob")
}

/// Whether the open reads this file. OPTIONS files are not loaded (Flink-only names, the
/// TaskManager's paths): a damaged one does not stop Flink's restore, so it does not stop ours.
fn is_read(local_name: &str) -> bool {
    !local_name.starts_with("OPTIONS-")
}

/// A local name RocksDB could have written: a plain file name. Anything else (`../x`, `a/b`)
/// would place a file outside the working directory.
fn valid_local_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// Assembles the shared and private files of `handle` into a new working directory.
pub(super) fn assemble(snapshot: &Snapshot, handle: &IncrementalRemoteKeyedStateHandle, what: &str) -> Result<WorkingDir> {
    let dir = tempfile::Builder::new()
        .prefix("flinksnap-rocksdb-")
        .tempdir()
        .map_err(|e| Error::io(format!("{} (temporary directory for {what})", std::env::temp_dir().display()), e))?;
    let mut wd = WorkingDir { dir, files: Vec::new() };
    for f in handle.shared_state.iter().chain(&handle.private_state) {
        let assembled = assemble_one(snapshot, f, wd.path(), what)?;
        if wd.files.iter().any(|g| g.local_name == assembled.local_name) {
            return Err(Error::Invalid(format!(
                "{}: {what} lists the RocksDB file {} twice",
                snapshot.metadata_location, assembled.local_name
            )));
        }
        wd.files.push(assembled);
    }
    if !wd.files.iter().any(|f| f.local_name == CURRENT) {
        return Err(Error::Invalid(format!(
            "{}: {what} lists no RocksDB {CURRENT} file, so its files cannot be opened as a database",
            snapshot.metadata_location
        )));
    }
    super::legacy::upgrade(wd.path(), &wd.files)?;
    Ok(wd)
}

fn assemble_one(snapshot: &Snapshot, f: &HandleAndLocalPath, dir: &Path, what: &str) -> Result<AssembledFile> {
    let name = &f.local_path;
    if !valid_local_name(name) {
        return Err(Error::Invalid(format!("{}: {what} lists a RocksDB file named {name:?}, which is not a file name", snapshot.metadata_location)));
    }
    let Some(h) = &f.handle else {
        return Err(Error::Invalid(format!("{}: {what}: RocksDB file {name} has no state handle", snapshot.metadata_location)));
    };
    let source = StreamSource::open(snapshot, h)?;
    let origin = source.name();
    // Flink records the size of every file it uploads; a file of another size was truncated or
    // replaced since. Checked here so the message names the snapshot file, not RocksDB's copy.
    let recorded = match h {
        StreamStateHandle::File { size, .. } | StreamStateHandle::RelativeFile { size, .. } => Some(*size),
        _ => None,
    };
    if let Some(recorded) = recorded.filter(|&r| is_read(name) && r != source.size()) {
        return Err(Error::Invalid(format!(
            "{origin}: RocksDB file {name} of {what} has {} bytes, {} recorded {recorded} (truncated or replaced?)",
            source.size(),
            snapshot.metadata_location
        )));
    }
    let dst = dir.join(name);
    if !(is_immutable(name) && try_link(&source, &dst)) {
        copy(&source, &dst).map_err(|e| match e {
            CopyError::Read(e) => e,
            CopyError::Write(e) => Error::io(format!("{} (working copy of {origin})", dst.display()), e),
        })?;
    }
    Ok(AssembledFile { local_name: name.clone(), origin })
}

/// Hard-links a whole local file; `false` when that is not possible (another file system, a
/// segment of a file, a remote store, inline bytes), and the caller copies instead.
fn try_link(source: &StreamSource, dst: &Path) -> bool {
    match source {
        StreamSource::File { location, start: 0, size, .. } if location.is_local() => {
            let src = PathBuf::from(location.as_str());
            // A segment that happens to start at 0 but ends early must be copied.
            std::fs::metadata(&src).is_ok_and(|m| m.len() == *size) && std::fs::hard_link(&src, dst).is_ok()
        }
        _ => false,
    }
}

enum CopyError {
    Read(Error),
    Write(std::io::Error),
}

fn copy(source: &StreamSource, dst: &Path) -> std::result::Result<(), CopyError> {
    let mut out = File::create(dst).map_err(CopyError::Write)?;
    match source {
        StreamSource::Inline { data, .. } => out.write_all(data).map_err(CopyError::Write)?,
        StreamSource::File { storage, location, start: 0, size } => {
            let mut input = storage.open(location).map_err(CopyError::Read)?.take(*size);
            let mut buf = vec![0u8; 64 * 1024];
            let mut copied = 0u64;
            loop {
                let n = input.read(&mut buf).map_err(|e| CopyError::Read(Error::io(location.as_str(), e)))?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n]).map_err(CopyError::Write)?;
                copied += n as u64;
            }
            if copied != *size {
                return Err(CopyError::Read(Error::Invalid(format!(
                    "{location}: the file ended after {copied} of {size} bytes while it was being read"
                ))));
            }
        }
        StreamSource::File { .. } => {
            let mut at = 0;
            while at < source.size() {
                let end = (at + COPY_CHUNK).min(source.size());
                out.write_all(&source.read_range(at..end).map_err(CopyError::Read)?).map_err(CopyError::Write)?;
                at = end;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_stay_inside_the_directory() {
        for ok in ["000012.sst", "MANIFEST-000004", "CURRENT", "OPTIONS-000013"] {
            assert!(valid_local_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../CURRENT", "a/b", "/etc/passwd", "a\\b", "x\0"] {
            assert!(!valid_local_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn table_file_numbers() {
        assert_eq!(table_file_number("000012.sst"), Some(12));
        assert_eq!(table_file_number("12.blob"), Some(12));
        assert_eq!(table_file_number("MANIFEST-000004"), None);
        assert_eq!(table_file_number(".sst"), None);
        assert!(is_immutable("000012.sst") && !is_immutable("MANIFEST-000004"));
        assert!(is_read("MANIFEST-000004") && !is_read("OPTIONS-000013"));
    }
}
