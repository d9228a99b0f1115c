//! A large key group whose records do not come in the written proxy's state order — a heap
//! backend's savepoint orders a key group's states as its state map iterates them, a changelog
//! replay as its changes come — held in bounded memory: each state's entries are encoded as they
//! come into a buffer of their own, the buffers spilled to a file once they hold a budget, and
//! at the key group's end the stream is assembled state by state in id order and handed on in
//! parts (`formats/canonical-savepoint-writer.md` § Order and memory). The bytes are those
//! [`super::canonical::encode_key_group`] writes from the records sorted by state (stable).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::canonical::{key_group_prefix_len, write_entry, EncodedPart, EncodedSink, Record, END_OF_KEY_GROUP};

/// One state's entries in a key group.
#[derive(Default)]
struct StateRun {
    /// Entries encoded and still in memory (all but `last`) ...
    bytes: Vec<u8>,
    /// ... after those spilled earlier: (offset, length) in the spill file, in order.
    spilled: Vec<(u64, usize)>,
    /// Held back: whether it ends the run is known only when the key group ends.
    last: Option<Record>,
}

/// The states of one key group, gathered in any order.
pub struct StateRuns {
    key_group: u32,
    prefix_len: usize,
    states: BTreeMap<u16, StateRun>,
    entries: u64,
    /// Encoded bytes held in memory, and how many may be before they are spilled.
    held: usize,
    spill_above: usize,
    spill_dir: PathBuf,
    spill: Option<(File, u64)>,
    key: Vec<u8>,
}

impl StateRuns {
    /// Gathers key group `key_group` of an operator of `max_parallelism` key groups, spilling
    /// into an unnamed file in `spill_dir` (created when needed) past `spill_above` bytes.
    pub fn new(key_group: u32, max_parallelism: u32, spill_dir: &Path, spill_above: usize) -> StateRuns {
        StateRuns {
            key_group,
            prefix_len: key_group_prefix_len(max_parallelism),
            states: BTreeMap::new(),
            entries: 0,
            held: 0,
            spill_above: spill_above.max(1),
            spill_dir: spill_dir.to_path_buf(),
            spill: None,
            key: Vec::new(),
        }
    }

    /// Adds a record of the key group; the records of one state keep their order.
    pub fn push(&mut self, r: Record) -> Result<()> {
        if r.key_group != self.key_group {
            return Err(Error::Invalid(format!("key group {}: a record of key group {} inside it", self.key_group, r.key_group)));
        }
        let run = self.states.entry(r.state).or_default();
        if let Some(prev) = run.last.replace(r) {
            let before = run.bytes.len();
            write_entry(&mut run.bytes, self.prefix_len, &prev, false, &mut self.key).map_err(|e| Error::Invalid(format!("key group {}: {e}", self.key_group)))?;
            self.held += run.bytes.len() - before;
        }
        self.entries += 1;
        if self.held >= self.spill_above {
            self.spill_out()?;
        }
        Ok(())
    }

    /// The key group.
    pub fn key_group(&self) -> u32 {
        self.key_group
    }

    /// Whether some entries went to the spill file.
    #[cfg(test)]
    pub fn spilled(&self) -> bool {
        self.spill.is_some()
    }

    fn spill_out(&mut self) -> Result<()> {
        let dir = &self.spill_dir;
        let name = || dir.display().to_string();
        if self.spill.is_none() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(name(), e))?;
            // Unnamed: the file goes with the handle, whatever ends the conversion.
            self.spill = Some((tempfile::tempfile_in(dir).map_err(|e| Error::io(name(), e))?, 0));
        }
        let Some((file, len)) = self.spill.as_mut() else { return Ok(()) };
        for run in self.states.values_mut().filter(|r| !r.bytes.is_empty()) {
            file.write_all(&run.bytes).map_err(|e| Error::io(name(), e))?;
            run.spilled.push((*len, run.bytes.len()));
            *len += run.bytes.len() as u64;
            run.bytes.clear();
        }
        self.held = 0;
        Ok(())
    }

    /// Writes the key group — per state in id order its id, its entries (the spilled ones read
    /// back), the last one flagged; then the end mark — into one stream (Snappy framed when
    /// `compressed`), giving `part` its bytes whenever `part_bytes` of them are complete:
    /// [`EncodedPart::First`], then `Middle`s, then `Last`, or one `Whole`. The entries are
    /// counted in the last part.
    pub fn finish(mut self, compressed: bool, part_bytes: usize, part: &mut dyn FnMut(Vec<u8>, u64, EncodedPart) -> Result<()>) -> Result<()> {
        let kg = self.key_group;
        let fail = |e: std::io::Error| Error::Invalid(format!("key group {kg}: {e}"));
        let mut out = EncodedSink::new(compressed);
        let mut started = false;
        let mut hand_on = |out: &mut EncodedSink, started: &mut bool| -> Result<()> {
            if out.len() >= part_bytes {
                part(out.take(), 0, if *started { EncodedPart::Middle } else { EncodedPart::First })?;
                *started = true;
            }
            Ok(())
        };
        let mut buf = Vec::new();
        for (state, run) in std::mem::take(&mut self.states) {
            out.write_all(&(state as i16).to_be_bytes()).map_err(fail)?;
            for &(offset, len) in &run.spilled {
                let Some((file, _)) = self.spill.as_mut() else { return Err(Error::Invalid(format!("key group {kg}: spilled entries without a spill file"))) };
                buf.resize(len, 0);
                file.seek(SeekFrom::Start(offset)).and_then(|_| file.read_exact(&mut buf)).map_err(|e| Error::io(self.spill_dir.display().to_string(), e))?;
                out.write_all(&buf).map_err(fail)?;
                hand_on(&mut out, &mut started)?;
            }
            out.write_all(&run.bytes).map_err(fail)?;
            if let Some(last) = &run.last {
                out.entry(self.prefix_len, last, true, &mut self.key).map_err(fail)?;
            }
            hand_on(&mut out, &mut started)?;
        }
        out.write_all(&END_OF_KEY_GROUP.to_be_bytes()).map_err(fail)?;
        let rest = out.finish().map_err(fail)?;
        part(rest, self.entries, if started { EncodedPart::Last } else { EncodedPart::Whole })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writers::canonical::encode_key_group;

    fn record(state: u16, i: usize) -> Record {
        Record { key_group: 6, state, key: format!("key {i}").into_bytes(), value: vec![i as u8; 1 + i % 200] }
    }

    /// States 4, 1, 4, 0, 1 in runs, as a heap savepoint or a changelog may give them.
    fn records() -> Vec<Record> {
        let mut rs = Vec::new();
        for (state, n) in [(4u16, 500usize), (1, 300), (4, 20), (0, 1), (1, 700)] {
            let at = rs.len();
            rs.extend((at..at + n).map(|i| record(state, i)));
        }
        rs
    }

    #[test]
    fn gathered_states_are_the_bytes_of_the_key_group_sorted_by_state() {
        let tmp = tempfile::tempdir().unwrap();
        for compressed in [false, true] {
            let mut sorted = records();
            sorted.sort_by_key(|r| r.state);
            let mut want = Vec::new();
            encode_key_group(&sorted, 256, compressed, &mut want, &mut Vec::new()).unwrap();
            for (spill_above, part_bytes) in [(usize::MAX, usize::MAX), (1, usize::MAX), (5000, 1), (5000, 4096)] {
                let mut runs = StateRuns::new(6, 256, tmp.path(), spill_above);
                for r in records() {
                    runs.push(r).unwrap();
                }
                assert_eq!(runs.spilled(), spill_above < usize::MAX);
                let (mut got, mut parts, mut entries) = (Vec::new(), Vec::new(), 0);
                runs.finish(compressed, part_bytes, &mut |bytes, n, part| {
                    got.extend(bytes);
                    parts.push(part);
                    entries += n;
                    Ok(())
                })
                .unwrap();
                let what = format!("compressed {compressed}, spill above {spill_above}, parts of {part_bytes}");
                assert!(got == want, "{what}: other bytes");
                assert_eq!(entries, 1521, "{what}");
                // (More than 64 KiB: a Snappy stream completes frames before its end.)
                if part_bytes == usize::MAX {
                    assert_eq!(parts, [EncodedPart::Whole], "{what}");
                } else {
                    assert_eq!(parts.first(), Some(&EncodedPart::First), "{what}");
                    assert_eq!(parts.last(), Some(&EncodedPart::Last), "{what}");
                    assert!(parts[1..parts.len() - 1].iter().all(|p| *p == EncodedPart::Middle), "{what}: {parts:?}");
                }
            }
        }
        // The spill files have no names: nothing is left in the directory.
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_record_of_another_key_group_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut runs = StateRuns::new(6, 256, tmp.path(), 1 << 20);
        let mut r = record(0, 0);
        r.key_group = 7;
        assert!(runs.push(r).unwrap_err().to_string().contains("a record of key group 7"));
    }
}
