//! Where a state stream's bytes come from: inline in `_metadata` or a file, read by range
//! through the snapshot's storage. Also Flink's Snappy framing (`SnappyStreamCompressionDecorator`:
//! the standard framing format, which the `snap` crate implements).

use std::io::Read;
use std::ops::Range;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::metadata::handles::StreamStateHandle;
use crate::snapshot::Snapshot;
use crate::storage::{Location, Storage};

/// The bytes of one stream handle.
#[derive(Debug, Clone)]
pub enum StreamSource {
    /// Inline in `_metadata`.
    Inline {
        /// `_metadata`, for messages.
        metadata: Location,
        /// Offset of the bytes in `_metadata`.
        offset: u64,
        /// The bytes.
        data: Arc<[u8]>,
    },
    /// A file (or a segment of one).
    File {
        /// Storage to read from.
        storage: Arc<dyn Storage>,
        /// The file.
        location: Location,
        /// Where the stream starts in the file (segments of file-merging checkpoints).
        start: u64,
        /// Stream length.
        size: u64,
    },
}

impl StreamSource {
    /// Resolves a handle of `snapshot` to its bytes.
    pub fn open(snapshot: &Snapshot, handle: &StreamStateHandle) -> Result<StreamSource> {
        if let StreamStateHandle::ByteStream { data, offset, .. } = handle {
            return Ok(StreamSource::Inline { metadata: snapshot.metadata_location.clone(), offset: *offset, data: data.as_slice().into() });
        }
        if let StreamStateHandle::KeyGroups(k) = handle {
            return StreamSource::open(snapshot, &k.delegate);
        }
        let resolved = snapshot
            .resolve(handle)?
            .ok_or_else(|| Error::corrupt(snapshot.metadata_location.as_str(), format!("a {} has no data", handle.class_name())))?;
        let storage = snapshot.storage().clone();
        let (start, size) = match handle {
            StreamStateHandle::SegmentFile { start, size, .. } => (*start, *size),
            // The recorded size can be stale for hand-copied files: the file decides.
            _ => (0, storage.head(&resolved.location)?.size),
        };
        Ok(StreamSource::File { storage, location: resolved.location, start, size })
    }

    /// Stream length in bytes.
    pub fn size(&self) -> u64 {
        match self {
            StreamSource::Inline { data, .. } => data.len() as u64,
            StreamSource::File { size, .. } => *size,
        }
    }

    /// The file offset of byte `offset` of the stream: streams inline in `_metadata` and segments
    /// of file-merging checkpoints start somewhere inside their file.
    pub fn file_offset(&self, offset: u64) -> u64 {
        match self {
            StreamSource::Inline { offset: at, .. } => at.saturating_add(offset),
            StreamSource::File { start, .. } => start.saturating_add(offset),
        }
    }

    /// What to call the stream in messages: the file, or `_metadata (inline at offset N)`.
    pub fn name(&self) -> String {
        match self {
            StreamSource::Inline { metadata, offset, .. } => format!("{metadata} (inline state at byte {offset})"),
            StreamSource::File { location, start: 0, .. } => location.to_string(),
            StreamSource::File { location, start, .. } => format!("{location} (segment at byte {start})"),
        }
    }

    /// Bytes `range` of the stream.
    pub fn read_range(&self, range: Range<u64>) -> Result<Vec<u8>> {
        if range.end > self.size() || range.start > range.end {
            return Err(Error::corrupt(
                self.name(),
                format!("cannot read bytes {}..{} of a {}-byte stream", range.start, range.end, self.size()),
            ));
        }
        match self {
            StreamSource::Inline { data, .. } => Ok(data[range.start as usize..range.end as usize].to_vec()),
            StreamSource::File { storage, location, start, .. } => storage.read_range(location, start + range.start..start + range.end),
        }
    }
}

/// Decompresses a whole Snappy-framed stream (several concatenated streams allowed).
pub fn snappy_decompress(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    snap::read::FrameDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}
