//! Local files.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::PathBuf;

use super::{FileMeta, Location, Storage};
use crate::error::{Error, Result};

/// Files on the local file system. Remote URIs are refused with a clear error.
#[derive(Debug, Default, Clone)]
pub struct LocalStorage;

impl LocalStorage {
    fn path(&self, loc: &Location) -> Result<PathBuf> {
        match loc.scheme() {
            None => Ok(PathBuf::from(loc.as_str())),
            Some(s) => Err(Error::unsupported(format!("{loc}: the {s}:// file system is not supported yet; copy the snapshot to a local directory"), None)),
        }
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
        let mut buf = vec![0; (range.end - range.start) as usize];
        f.read_exact(&mut buf).map_err(|e| Error::io(loc.as_str(), e))?;
        Ok(buf)
    }

    fn open(&self, loc: &Location) -> Result<Box<dyn Read + Send>> {
        let f = File::open(self.path(loc)?).map_err(|e| Error::io(loc.as_str(), e))?;
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
}
