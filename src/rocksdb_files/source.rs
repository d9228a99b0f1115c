//! Where the bytes of a RocksDB file come from: ranged reads of a snapshot file through the
//! storage (local disk, object store) or bytes in memory. Nothing is copied into a working
//! directory; a table reads its footer, its meta blocks, its index and the data blocks a scan
//! needs, and nothing else.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// A file that can be read by byte range.
pub trait FileSource: Send + Sync + fmt::Debug {
    /// The file as messages name it.
    fn name(&self) -> &str;
    /// Its size in bytes.
    fn size(&self) -> u64;
    /// Bytes `range`; fails if the file is shorter.
    fn read(&self, range: Range<u64>) -> crate::Result<Vec<u8>>;
}

/// A file held in memory (tests, inline state handles).
#[derive(Clone)]
pub struct MemoryFile {
    name: String,
    data: Arc<[u8]>,
}

impl MemoryFile {
    /// `data`, named `name` in messages.
    pub fn new(name: impl Into<String>, data: impl Into<Arc<[u8]>>) -> MemoryFile {
        MemoryFile { name: name.into(), data: data.into() }
    }
}

impl fmt::Debug for MemoryFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemoryFile({:?}, {} bytes)", self.name, self.data.len())
    }
}

impl FileSource for MemoryFile {
    fn name(&self) -> &str {
        &self.name
    }
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read(&self, range: Range<u64>) -> crate::Result<Vec<u8>> {
        if range.start > range.end || range.end > self.size() {
            return Err(crate::Error::Invalid(format!(
                "{}: cannot read bytes {}..{}: the file has {} bytes",
                self.name,
                range.start,
                range.end,
                self.size()
            )));
        }
        Ok(self.data[range.start as usize..range.end as usize].to_vec())
    }
}
