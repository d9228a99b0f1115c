//! The files of one RocksDB keyed-state handle by the local names RocksDB knows them by
//! (`000012.sst`, `MANIFEST-000004`, `CURRENT`, `OPTIONS-*`), each resolved to where its bytes
//! are (a snapshot file, a segment of one, inline bytes), as Flink's restore would download
//! them (`RocksDBStateDownloader`), but without downloading: readers read ranges. Spec:
//! `formats/rocksdb-native.md` ("The handle's files").

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::metadata::handles::{IncrementalRemoteKeyedStateHandle, StreamStateHandle};
use crate::readers::stream::StreamSource;
use crate::rocksdb_files::FileSource;
use crate::snapshot::Snapshot;

/// RocksDB's pointer to the live MANIFEST; without it there is no database.
pub(super) const CURRENT: &str = "CURRENT";

/// One file of the handle.
#[derive(Debug, Clone)]
pub(super) struct HandleFile {
    /// The name RocksDB knows it by.
    pub local_name: String,
    /// Where its bytes are.
    pub source: StreamSource,
    /// The snapshot file, as messages name it.
    pub origin: String,
}

/// A local name RocksDB could have written: a plain file name. Anything else (`../x`, `a/b`)
/// would name a file outside the database's directory.
pub(super) fn valid_local_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// Whether a reader reads this file. OPTIONS files are not (Flink-only names, the
/// TaskManager's paths): a damaged one does not stop Flink's restore, so it does not stop ours.
pub(super) fn is_read(local_name: &str) -> bool {
    !local_name.starts_with("OPTIONS-")
}

/// Resolves every shared and private file of `handle` (`what` names the handle in messages).
/// Checks the names (plain, unique, `CURRENT` present) and that each file read has the size
/// Flink recorded.
pub(super) fn resolve(snapshot: &Snapshot, handle: &IncrementalRemoteKeyedStateHandle, what: &str) -> Result<Vec<HandleFile>> {
    let mut out: Vec<HandleFile> = Vec::new();
    for f in handle.shared_state.iter().chain(&handle.private_state) {
        let name = &f.local_path;
        if !valid_local_name(name) {
            return Err(Error::Invalid(format!("{}: {what} lists a RocksDB file named {name:?}, which is not a file name", snapshot.metadata_location)));
        }
        if out.iter().any(|g| &g.local_name == name) {
            return Err(Error::Invalid(format!("{}: {what} lists the RocksDB file {name} twice", snapshot.metadata_location)));
        }
        let Some(h) = &f.handle else {
            return Err(Error::Invalid(format!("{}: {what}: RocksDB file {name} has no state handle", snapshot.metadata_location)));
        };
        let source = StreamSource::open(snapshot, h)?;
        let origin = source.name();
        // Flink records the size of every file it uploads; a file of another size was truncated
        // or replaced since.
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
        out.push(HandleFile { local_name: name.clone(), source, origin });
    }
    if !out.iter().any(|f| f.local_name == CURRENT) {
        return Err(Error::Invalid(format!(
            "{}: {what} lists no RocksDB {CURRENT} file, so its files cannot be opened as a database",
            snapshot.metadata_location
        )));
    }
    Ok(out)
}

/// The files as the Rust reader reads them: local name → ranged reads, named
/// `<snapshot file> (RocksDB file <local name>)` in messages.
pub(super) fn sources(files: &[HandleFile]) -> HashMap<String, Arc<dyn FileSource>> {
    files
        .iter()
        .filter(|f| is_read(&f.local_name))
        .map(|f| {
            let name = if f.origin.ends_with(&f.local_name) { f.origin.clone() } else { format!("{} (RocksDB file {})", f.origin, f.local_name) };
            let src: Arc<dyn FileSource> = Arc::new(StreamFile { name, source: f.source.clone() });
            (f.local_name.clone(), src)
        })
        .collect()
}

/// A stream handle's bytes (a snapshot file, a segment of one, or inline bytes) as the Rust
/// reader reads them: by byte range, under the name messages give it.
#[derive(Debug)]
struct StreamFile {
    name: String,
    source: StreamSource,
}

impl FileSource for StreamFile {
    fn name(&self) -> &str {
        &self.name
    }
    fn size(&self) -> u64 {
        self.source.size()
    }
    fn read(&self, range: std::ops::Range<u64>) -> Result<Vec<u8>> {
        self.source.read_range(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_stay_plain_file_names() {
        for ok in ["000012.sst", "MANIFEST-000004", "CURRENT", "OPTIONS-000013"] {
            assert!(valid_local_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../CURRENT", "a/b", "/etc/passwd", "a\\b", "x\0"] {
            assert!(!valid_local_name(bad), "{bad:?}");
        }
        assert!(is_read("MANIFEST-000004") && !is_read("OPTIONS-000013"));
    }
}
