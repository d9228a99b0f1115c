//! One state stream being written into the savepoint directory, as Flink's
//! `FsCheckpointStreamFactory.FsCheckpointStateOutputStream` does it: bytes stay in memory until
//! they exceed the inline threshold, then go to a file named by a UUID; a stream that never
//! exceeded it becomes a `ByteStreamStateHandle` inside `_metadata`, a file a
//! `RelativeFileStateHandle` (the savepoint directory stays relocatable).
//!
//! Also Flink's Snappy framing for writing (`SnappyStreamCompressionDecorator`): the standard
//! framing format, produced by `snap::write::FrameEncoder`.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use crate::error::Result;
use crate::metadata::handles::StreamStateHandle;
use crate::storage::{FileWriter, LocalStorage, Location, Storage};

/// Flink's default inline threshold (`state.storage.fs.memory-threshold`, 2.x
/// `execution.checkpointing.data-inline-threshold`): 20 KiB.
pub const DEFAULT_INLINE_THRESHOLD: u64 = 20 * 1024;
/// The largest inline threshold Flink accepts (`MAX_FILE_STATE_THRESHOLD`): 1 MiB.
pub const MAX_INLINE_THRESHOLD: u64 = 1024 * 1024;

/// The stream identifier chunk every Snappy framed stream starts with.
pub const SNAPPY_STREAM_IDENTIFIER: [u8; 10] = [0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59];

/// A state stream being written: inline until it outgrows the threshold, then a file.
#[derive(Debug)]
pub struct StateStreamWriter {
    storage: Arc<dyn Storage>,
    dir: Location,
    name: String,
    threshold: u64,
    buf: Vec<u8>,
    file: Option<Box<dyn FileWriter>>,
    pos: u64,
}

impl StateStreamWriter {
    /// A stream that will be local file `dir/name` if it grows beyond `threshold` bytes.
    pub fn new(dir: &Path, name: String, threshold: u64) -> Self {
        Self::in_storage(Arc::new(LocalStorage), Location::new(&dir.display().to_string()), name, threshold)
    }

    /// A stream that will be file `dir/name` of `storage` (an object when `dir` is a URL) if it
    /// grows beyond `threshold` bytes.
    pub fn in_storage(storage: Arc<dyn Storage>, dir: Location, name: String, threshold: u64) -> Self {
        StateStreamWriter { storage, dir, name, threshold, buf: Vec::new(), file: None, pos: 0 }
    }

    /// Bytes written so far: the position the next byte will have in the stream.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Ends the stream: an inline handle, or the file completed as a relative handle.
    pub fn finish(self) -> Result<StreamStateHandle> {
        match self.file {
            None => {
                let size = self.buf.len() as u64;
                Ok(StreamStateHandle::ByteStream { name: self.name, offset: 0, data: self.buf, size })
            }
            Some(f) => {
                f.finish()?;
                Ok(StreamStateHandle::RelativeFile { relative_path: self.name, size: self.pos })
            }
        }
    }
}

impl Write for StateStreamWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(f) = &mut self.file {
            f.write_all(data)?;
        } else if self.buf.len() as u64 + data.len() as u64 > self.threshold {
            // Outgrew the threshold: from now on this stream is a file (Flink's flushToFile).
            let mut f = self.storage.create(&self.dir.join(&self.name)).map_err(io::Error::other)?;
            f.write_all(&self.buf)?;
            f.write_all(data)?;
            self.buf = Vec::new();
            self.file = Some(f);
        } else {
            self.buf.extend_from_slice(data);
        }
        self.pos += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

/// A writer that drops the stream identifier `snap::write::FrameEncoder` writes first, for a
/// framed stream whose identifier was already written elsewhere (compressed operator state has
/// it once, right after the proxy, where Flink's reader expects it before any element).
#[derive(Debug)]
pub struct WithoutStreamIdentifier<W> {
    inner: W,
    seen: bool,
}

impl<W: Write> WithoutStreamIdentifier<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        WithoutStreamIdentifier { inner, seen: false }
    }

    /// The wrapped writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The wrapped writer, to write past the encoder (only between flushed chunks).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Unwraps.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for WithoutStreamIdentifier<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if !self.seen {
            // FrameEncoder writes the identifier with one write_all before the first chunk.
            self.seen = true;
            if data == SNAPPY_STREAM_IDENTIFIER {
                return Ok(data.len());
            }
            return Err(io::Error::other("snappy encoder did not start with its stream identifier"));
        }
        self.inner.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A name in the form Flink gives state files (`UUID.toString()`), derived from `seed` so that
/// converting the same snapshot twice writes the same bytes.
pub fn uuid_name(seed: &str) -> String {
    let mut reader = seed.as_bytes();
    let h = murmur3::murmur3_x64_128(&mut reader, 0x5eed).unwrap_or_default();
    let mut b = h.to_be_bytes();
    // Version 4 / IETF variant bits, so the name is a well-formed random-style UUID.
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_streams_are_inline_large_ones_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = StateStreamWriter::new(dir.path(), "a".into(), 4);
        w.write_all(b"abcd").unwrap();
        assert!(matches!(w.finish().unwrap(), StreamStateHandle::ByteStream { data, size: 4, .. } if data == b"abcd"));
        assert!(!dir.path().join("a").exists());
        let mut w = StateStreamWriter::new(dir.path(), "b".into(), 4);
        w.write_all(b"abc").unwrap();
        w.write_all(b"de").unwrap();
        assert_eq!(w.position(), 5);
        assert_eq!(w.finish().unwrap(), StreamStateHandle::RelativeFile { relative_path: "b".into(), size: 5 });
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), b"abcde");
    }

    #[test]
    fn uuid_names_are_stable_and_well_formed() {
        let a = uuid_name("x");
        assert_eq!(a, uuid_name("x"));
        assert_ne!(a, uuid_name("y"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn frame_encoder_output_decodes_and_carries_valid_crcs() {
        // snap's decoder verifies the masked CRC-32C of every chunk.
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut enc = snap::write::FrameEncoder::new(Vec::new());
        enc.write_all(&data).unwrap();
        let framed = enc.into_inner().unwrap();
        assert_eq!(&framed[..10], &SNAPPY_STREAM_IDENTIFIER);
        assert_eq!(crate::readers::stream::snappy_decompress(&framed).unwrap(), data);
    }
}
