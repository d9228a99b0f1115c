//! Regrouping keyed records by (key group, state) when they do not arrive in that order — a
//! changed max parallelism moves every key, and readers of RocksDB column families hand out one
//! state at a time. Records are kept in memory up to a budget; beyond it, sorted runs are
//! spilled to files and merged at the end (a stable external merge sort), so memory stays
//! bounded whatever the state size.
//!
//! Run file format (private to this module): per record `u32 key group`, `u16 state`,
//! `u32 key length`, key, `u32 value length`, value; records sorted within the file.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::writers::canonical::Record;

/// Sorts records by (key group, state id), keeping arrival order among equals.
#[derive(Debug)]
pub struct ExternalSorter {
    dir: PathBuf,
    budget: usize,
    buf: Vec<Record>,
    buf_bytes: usize,
    runs: Vec<PathBuf>,
    total: u64,
}

impl ExternalSorter {
    /// A sorter that spills into `dir` (created when first needed) whenever more than
    /// `budget_bytes` of records are held.
    pub fn new(dir: &Path, budget_bytes: usize) -> Self {
        ExternalSorter { dir: dir.to_path_buf(), budget: budget_bytes, buf: Vec::new(), buf_bytes: 0, runs: Vec::new(), total: 0 }
    }

    /// Adds a record.
    pub fn push(&mut self, r: Record) -> Result<()> {
        self.buf_bytes += r.weight();
        self.buf.push(r);
        self.total += 1;
        if self.buf_bytes > self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Sorted runs written to disk so far.
    pub fn spilled_runs(&self) -> usize {
        self.runs.len()
    }

    fn spill(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(self.dir.display().to_string(), e))?;
        let path = self.dir.join(format!("run-{:06}", self.runs.len()));
        let name = path.display().to_string();
        self.buf.sort_by_key(|r| (r.key_group, r.state));
        let f = File::create(&path).map_err(|e| Error::io(&name, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        for r in self.buf.drain(..) {
            write_record(&mut w, &r).map_err(|e| Error::io(&name, e))?;
        }
        w.flush().map_err(|e| Error::io(&name, e))?;
        self.buf_bytes = 0;
        self.runs.push(path);
        Ok(())
    }

    /// Ends input: every record, sorted. Run files are deleted as the iterator is dropped.
    pub fn finish(mut self) -> Result<SortedRecords> {
        if self.runs.is_empty() {
            self.buf.sort_by_key(|r| (r.key_group, r.state));
            return Ok(SortedRecords { inner: Inner::Memory(std::mem::take(&mut self.buf).into_iter()), runs: Vec::new(), failed: false });
        }
        self.spill()?;
        let mut readers = Vec::with_capacity(self.runs.len());
        let mut heap = BinaryHeap::new();
        for (i, p) in self.runs.iter().enumerate() {
            let f = File::open(p).map_err(|e| Error::io(p.display().to_string(), e))?;
            let mut r = RunReader { name: p.display().to_string(), r: BufReader::with_capacity(256 * 1024, f) };
            if let Some(rec) = r.next()? {
                heap.push(Reverse(HeapItem { key: (rec.key_group, rec.state, i), rec }));
            }
            readers.push(r);
        }
        Ok(SortedRecords { inner: Inner::Merge { readers, heap }, runs: std::mem::take(&mut self.runs), failed: false })
    }
}

fn write_record(w: &mut impl Write, r: &Record) -> std::io::Result<()> {
    let len = |n: usize| u32::try_from(n).map_err(|_| std::io::Error::other("record larger than 4 GiB"));
    w.write_all(&r.key_group.to_be_bytes())?;
    w.write_all(&r.state.to_be_bytes())?;
    w.write_all(&len(r.key.len())?.to_be_bytes())?;
    w.write_all(&r.key)?;
    w.write_all(&len(r.value.len())?.to_be_bytes())?;
    w.write_all(&r.value)
}

struct RunReader {
    name: String,
    r: BufReader<File>,
}

impl RunReader {
    fn next(&mut self) -> Result<Option<Record>> {
        let io = |e: std::io::Error| Error::io(&self.name, e);
        let mut head = [0u8; 4];
        // End of the run is a clean end of file before a record.
        match self.r.read(&mut head[..1]).map_err(io)? {
            0 => return Ok(None),
            _ => self.r.read_exact(&mut head[1..]).map_err(io)?,
        }
        let key_group = u32::from_be_bytes(head);
        let mut st = [0u8; 2];
        self.r.read_exact(&mut st).map_err(io)?;
        let mut bytes = || -> std::io::Result<Vec<u8>> {
            let mut n = [0u8; 4];
            self.r.read_exact(&mut n)?;
            let mut v = vec![0u8; u32::from_be_bytes(n) as usize];
            self.r.read_exact(&mut v)?;
            Ok(v)
        };
        let key = bytes().map_err(|e| Error::io(&self.name, e))?;
        let value = bytes().map_err(|e| Error::io(&self.name, e))?;
        Ok(Some(Record { key_group, state: u16::from_be_bytes(st), key, value }))
    }
}

struct HeapItem {
    /// (key group, state, run index): the run index keeps equal records in arrival order.
    key: (u32, u16, usize),
    rec: Record,
}

impl PartialEq for HeapItem {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for HeapItem {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key.cmp(&o.key)
    }
}

enum Inner {
    Memory(std::vec::IntoIter<Record>),
    Merge { readers: Vec<RunReader>, heap: BinaryHeap<Reverse<HeapItem>> },
}

/// The sorted records of an [`ExternalSorter`].
pub struct SortedRecords {
    inner: Inner,
    runs: Vec<PathBuf>,
    failed: bool,
}

impl std::fmt::Debug for SortedRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SortedRecords").field("runs", &self.runs.len()).finish_non_exhaustive()
    }
}

impl Iterator for SortedRecords {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if self.failed {
            return None;
        }
        match &mut self.inner {
            Inner::Memory(it) => it.next().map(Ok),
            Inner::Merge { readers, heap } => {
                let Reverse(top) = heap.pop()?;
                let run = top.key.2;
                match readers[run].next() {
                    Ok(Some(rec)) => heap.push(Reverse(HeapItem { key: (rec.key_group, rec.state, run), rec })),
                    Ok(None) => {}
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                }
                Some(Ok(top.rec))
            }
        }
    }
}

impl Drop for SortedRecords {
    fn drop(&mut self) {
        for r in &self.runs {
            let _ = std::fs::remove_file(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kg: u32, state: u16, n: u32) -> Record {
        Record { key_group: kg, state, key: n.to_be_bytes().to_vec(), value: vec![n as u8; (n % 7) as usize] }
    }

    #[test]
    fn sorts_stably_in_memory_and_through_spilled_runs() {
        let dir = tempfile::tempdir().unwrap();
        let input: Vec<Record> = (0..5000u32).map(|n| rec((n * 7919) % 97, (n % 3) as u16, n)).collect();
        let mut expected = input.clone();
        expected.sort_by_key(|r| (r.key_group, r.state));
        for budget in [usize::MAX, 4096, 1] {
            let mut s = ExternalSorter::new(&dir.path().join("spill"), budget);
            for r in &input {
                s.push(r.clone()).unwrap();
            }
            let runs = s.spilled_runs();
            assert_eq!(runs > 0, budget != usize::MAX);
            let out: Vec<Record> = s.finish().unwrap().map(Result::unwrap).collect();
            assert_eq!(out, expected, "budget {budget}");
            // Run files are gone once the records were consumed.
            assert_eq!(std::fs::read_dir(dir.path().join("spill")).map(|d| d.count()).unwrap_or(0), 0);
        }
    }
}
