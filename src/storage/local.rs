//! Local files.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::PathBuf;

use super::{FileMeta, FileWriter, Location, PutMode, Storage};
use crate::error::{Error, Result};

/// Files on the local file system. URLs are refused with a clear error ([`super::Storages`]
/// routes them to their stores).
#[derive(Debug, Default, Clone)]
pub struct LocalStorage;

impl LocalStorage {
    fn path(&self, loc: &Location) -> Result<PathBuf> {
        match loc.scheme() {
            None => Ok(PathBuf::from(loc.as_str())),
            Some(s) => Err(Error::Invalid(format!("{loc}: a {s}:// URL is not a local path"))),
        }
    }

    fn create_parent(&self, loc: &Location) -> Result<PathBuf> {
        let path = self.path(loc)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent.display().to_string(), e))?;
        }
        Ok(path)
    }
}

impl Storage for LocalStorage {
    fn head(&self, loc: &Location) -> Result<FileMeta> {
        let md = std::fs::metadata(self.path(loc)?).map_err(|e| Error::io(loc.as_str(), e))?;
        Ok(FileMeta {
            location: loc.clone(),
            size: if md.is_dir() { 0 } else { md.len() },
            modified: md.modified().ok(),
            is_dir: md.is_dir(),
        })
    }

    fn read(&self, loc: &Location) -> Result<Vec<u8>> {
        std::fs::read(self.path(loc)?).map_err(|e| Error::io(loc.as_str(), e))
    }

    fn read_range(&self, loc: &Location, range: Range<u64>) -> Result<Vec<u8>> {
        let mut f = File::open(self.path(loc)?).map_err(|e| Error::io(loc.as_str(), e))?;
        let len = f.metadata().map_err(|e| Error::io(loc.as_str(), e))?.len();
        if range.end > len || range.start > range.end {
            return Err(Error::Invalid(format!(
                "{loc}: cannot read bytes {}..{}: the file has {len} bytes",
                range.start, range.end
            )));
        }
        f.seek(SeekFrom::Start(range.start)).map_err(|e| Error::io(loc.as_str(), e))?;
        // Into the spare capacity, not zeroed first (RocksDB blocks: 5% of a verify's instructions).
        let n = range.end - range.start;
        let mut buf = Vec::with_capacity(n as usize);
        f.take(n).read_to_end(&mut buf).map_err(|e| Error::io(loc.as_str(), e))?;
        if buf.len() as u64 != n {
            return Err(Error::io(loc.as_str(), std::io::Error::from(std::io::ErrorKind::UnexpectedEof)));
        }
        Ok(buf)
    }

    fn open(&self, loc: &Location) -> Result<Box<dyn Read + Send>> {
        let f = File::open(self.path(loc)?).map_err(|e| Error::io(loc.as_str(), e))?;
        Ok(Box::new(BufReader::with_capacity(64 * 1024, f)))
    }

    fn open_at(&self, loc: &Location, start: u64) -> Result<Box<dyn Read + Send>> {
        let mut f = File::open(self.path(loc)?).map_err(|e| Error::io(loc.as_str(), e))?;
        f.seek(SeekFrom::Start(start)).map_err(|e| Error::io(loc.as_str(), e))?;
        Ok(Box::new(BufReader::with_capacity(64 * 1024, f)))
    }

    fn list(&self, dir: &Location) -> Result<Vec<FileMeta>> {
        let rd = std::fs::read_dir(self.path(dir)?).map_err(|e| Error::io(dir.as_str(), e))?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(dir.as_str(), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let loc = dir.join(&name);
            let md = entry.metadata().map_err(|e| Error::io(loc.as_str(), e))?;
            out.push(FileMeta {
                size: if md.is_dir() { 0 } else { md.len() },
                modified: md.modified().ok(),
                is_dir: md.is_dir(),
                location: loc,
            });
        }
        out.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(out)
    }

    fn create(&self, loc: &Location) -> Result<Box<dyn FileWriter>> {
        let path = self.create_parent(loc)?;
        let f = File::create(&path).map_err(|e| Error::io(loc.as_str(), e))?;
        Ok(Box::new(LocalWriter { out: Some(BufWriter::with_capacity(256 * 1024, f)), path, size: 0 }))
    }

    fn put(&self, loc: &Location, bytes: &[u8], mode: PutMode) -> Result<()> {
        let path = self.create_parent(loc)?;
        let mut o = std::fs::OpenOptions::new();
        match mode {
            PutMode::Overwrite => o.write(true).create(true).truncate(true),
            PutMode::Create => o.write(true).create_new(true),
        };
        let mut f = o.open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::AlreadyExists { file: loc.to_string() },
            _ => Error::io(loc.as_str(), e),
        })?;
        f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| Error::io(loc.as_str(), e))
    }

    fn copy(&self, from: &Location, to: &Location) -> Result<()> {
        let dst = self.create_parent(to)?;
        std::fs::copy(self.path(from)?, &dst).map_err(|e| Error::io(format!("{from} → {to}"), e))?;
        Ok(())
    }

    fn rename(&self, from: &Location, to: &Location) -> Result<()> {
        let dst = self.create_parent(to)?;
        std::fs::rename(self.path(from)?, dst).map_err(|e| Error::io(format!("{from} → {to}"), e))
    }

    fn delete(&self, loc: &Location) -> Result<()> {
        match std::fs::remove_file(self.path(loc)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(loc.as_str(), e)),
            _ => Ok(()),
        }
    }

    fn delete_empty_dir(&self, loc: &Location) -> Result<()> {
        std::fs::remove_dir(self.path(loc)?).map_err(|e| Error::io(loc.as_str(), e))
    }
}

/// A local file being written; removed when dropped unfinished.
#[derive(Debug)]
struct LocalWriter {
    out: Option<BufWriter<File>>,
    path: PathBuf,
    size: u64,
}

impl Write for LocalWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.as_mut().ok_or_else(|| std::io::Error::other("finished"))?.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.as_mut().map_or(Ok(()), |o| o.flush())
    }
}

impl FileWriter for LocalWriter {
    fn finish(mut self: Box<Self>) -> Result<u64> {
        let name = self.path.display().to_string();
        let out = self.out.take().ok_or_else(|| Error::Invalid(format!("{name}: finished twice")))?;
        let f = out.into_inner().map_err(|e| Error::io(&name, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&name, e))?;
        Ok(self.size)
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
