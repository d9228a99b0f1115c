//! Writes the canonical (unified, FLIP-41) full-snapshot stream of one key-group range, as
//! Flink's `FullSnapshotAsyncWriter` does, and the `SavepointKeyGroupsStateHandle` (type 7) that
//! points into it. Spec: `formats/canonical-stream.md` (layout) and
//! `formats/canonical-savepoint-writer.md` (what the writer guarantees).
//!
//! ```text
//! KeyedBackendSerializationProxy                       never compressed
//! per key group with entries, ascending:
//!   [offset := position]  [compressed: a fresh Snappy framed stream from here]
//!   i16 kv-state id, then per entry: i32 len + key, i32 len + value;
//!   the last entry of a state's run has bit 7 of key[0] set and is followed by
//!   i16 next kv-state id, or -1 = end of key group
//! ```
//!
//! Records arrive one at a time, sorted by key group and, within it, by state id; one record is
//! held back so that the last of a run can be flagged. Nothing else is buffered. Reading threads
//! may instead encode key groups themselves ([`encode_key_group`], or [`KeyGroupEncoder`] in
//! parts), which the writer then copies.

use std::io::Write;

use crate::error::{Error, Result};
use crate::metadata::consts::handle_type;
use crate::metadata::handles::{KeyGroupsStateHandle, StreamStateHandle};
use crate::model::KeyGroupRange;
use crate::writers::stream::StateStreamWriter;

/// Bit 7 of the first key byte: this entry is the last of its (key group, state) run
/// (`FullSnapshotUtil.FIRST_BIT_IN_BYTE_MASK`).
const META_DATA_FOLLOWS: u8 = 0x80;
/// Ends a key group (`FullSnapshotUtil.END_OF_KEY_GROUP_MARK`).
pub(crate) const END_OF_KEY_GROUP: i16 = -1;

/// Which part of a key group encoded elsewhere [`KeyGroupStreamWriter::push_encoded_part`] adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodedPart {
    /// The whole key group.
    Whole,
    /// Its start; more parts follow.
    First,
    /// Neither its start nor its end.
    Middle,
    /// Its end.
    Last,
}

/// One key/value pair of the RocksDB layout, without its key-group prefix (which depends on the
/// max parallelism the stream is written for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The key group the key belongs to.
    pub key_group: u32,
    /// The kv-state id: the state's index in the written proxy.
    pub state: u16,
    /// The key after the key-group prefix: key, namespace (with length suffixes where the layout
    /// needs them), map user key; for timers the `TimerSerializer` bytes.
    pub key: Vec<u8>,
    /// The value as RocksDB stores it.
    pub value: Vec<u8>,
}

impl Record {
    /// Rough bytes the record holds in memory (for the regrouping memory budget).
    pub fn weight(&self) -> usize {
        self.key.len() + self.value.len() + std::mem::size_of::<Record>()
    }
}

/// Bytes of the key-group prefix for `max_parallelism` key groups
/// (`CompositeKeySerializationUtils.computeRequiredBytesInKeyGroupPrefix`).
pub fn key_group_prefix_len(max_parallelism: u32) -> usize {
    if max_parallelism > 128 {
        2
    } else {
        1
    }
}

enum Sink {
    Plain(StateStreamWriter),
    Snappy(Box<snap::write::FrameEncoder<StateStreamWriter>>),
    /// Only while switching between the two.
    Switching,
}

impl Sink {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.write_all(b),
            Sink::Snappy(w) => w.write_all(b),
            Sink::Switching => Err(std::io::Error::other("stream closed")),
        }
    }
}

/// Writes the stream of one target subtask: its key-group range, for a max parallelism.
pub struct KeyGroupStreamWriter {
    sink: Sink,
    /// For error messages: the file (or inline stream) being written.
    name: String,
    range: KeyGroupRange,
    offsets: Vec<i64>,
    prefix_len: usize,
    compressed: bool,
    pending: Option<Record>,
    /// The last key group added by [`Self::push_encoded`].
    last_encoded: Option<u32>,
    /// A key group added in parts and not yet ended.
    open_part: Option<u32>,
    /// The key of the entry being written, with its key-group prefix (reused).
    key: Vec<u8>,
    entries: u64,
}

impl std::fmt::Debug for KeyGroupStreamWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyGroupStreamWriter").field("name", &self.name).field("range", &self.range).finish_non_exhaustive()
    }
}

impl KeyGroupStreamWriter {
    /// Starts the stream with the serialization proxy `proxy` (whose compression flag must say
    /// `compressed`).
    pub fn new(mut out: StateStreamWriter, name: String, proxy: &[u8], range: KeyGroupRange, max_parallelism: u32, compressed: bool) -> Result<Self> {
        out.write_all(proxy).map_err(|e| Error::io(&name, e))?;
        Ok(KeyGroupStreamWriter {
            sink: Sink::Plain(out),
            name,
            range,
            offsets: vec![0; range.len as usize],
            prefix_len: key_group_prefix_len(max_parallelism),
            compressed,
            pending: None,
            last_encoded: None,
            open_part: None,
            key: Vec::new(),
            entries: 0,
        })
    }

    /// Adds a record. Records must come sorted by key group, then state id, and lie in the range.
    pub fn push(&mut self, r: Record) -> Result<()> {
        if !self.range.contains(r.key_group) {
            return Err(Error::Invalid(format!("{}: key group {} is outside this stream's range {}", self.name, r.key_group, self.range)));
        }
        if let Some(kg) = self.open_part {
            return Err(Error::Invalid(format!("{}: a record of key group {} inside key group {kg}, added in parts", self.name, r.key_group)));
        }
        match self.pending.take() {
            None if self.last_encoded.is_some_and(|l| r.key_group <= l) => {
                return Err(Error::Invalid(format!("{}: records out of order (key group {} after key group {})", self.name, r.key_group, self.last_encoded.unwrap_or(0))));
            }
            None => self.begin_key_group(&r)?,
            Some(p) => {
                if (r.key_group, r.state) < (p.key_group, p.state) {
                    return Err(Error::Invalid(format!(
                        "{}: records out of order (key group {} state {} after key group {} state {})",
                        self.name, r.key_group, r.state, p.key_group, p.state
                    )));
                }
                if p.key_group != r.key_group {
                    self.entry(&p, true)?;
                    self.end_key_group()?;
                    self.begin_key_group(&r)?;
                } else if p.state != r.state {
                    self.entry(&p, true)?;
                    self.io(|s| s.write_all(&(r.state as i16).to_be_bytes()))?;
                } else {
                    self.entry(&p, false)?;
                }
            }
        }
        self.pending = Some(r);
        Ok(())
    }

    /// Adds a whole key group encoded by [`encode_key_group`] (`entries` of them): the same
    /// bytes as pushing its records one by one. Key groups must come ascending, after any
    /// record pushed one by one was ended by a later key group.
    pub fn push_encoded(&mut self, key_group: u32, bytes: &[u8], entries: u64) -> Result<()> {
        self.push_encoded_part(key_group, bytes, entries, EncodedPart::Whole)
    }

    /// Adds a part of a key group a [`KeyGroupEncoder`] streamed (`entries` records ended in
    /// it): its first part starts the key group, its last ends it, and no other key group
    /// comes in between.
    pub fn push_encoded_part(&mut self, key_group: u32, bytes: &[u8], entries: u64, part: EncodedPart) -> Result<()> {
        if !self.range.contains(key_group) {
            return Err(Error::Invalid(format!("{}: key group {key_group} is outside this stream's range {}", self.name, self.range)));
        }
        let starts = matches!(part, EncodedPart::Whole | EncodedPart::First);
        if starts {
            let offset = self.offsets[(key_group - self.range.start) as usize];
            if self.pending.is_some() || self.open_part.is_some() || offset != 0 || self.last_encoded.is_some_and(|l| key_group <= l) {
                return Err(Error::Invalid(format!("{}: key group {key_group} written twice or out of order", self.name)));
            }
        } else if self.open_part != Some(key_group) {
            return Err(Error::Invalid(format!("{}: a part of key group {key_group} without its start", self.name)));
        }
        let Sink::Plain(out) = &mut self.sink else {
            return Err(Error::Invalid(format!("{}: key group {key_group} started inside another", self.name)));
        };
        if starts {
            self.offsets[(key_group - self.range.start) as usize] = out.position() as i64;
        }
        out.write_all(bytes).map_err(|e| Error::io(&self.name, e))?;
        self.open_part = matches!(part, EncodedPart::First | EncodedPart::Middle).then_some(key_group);
        self.last_encoded = Some(key_group);
        self.entries += entries;
        Ok(())
    }

    /// Ends the stream and returns its handle (type 7) with the offset of every key group; key
    /// groups without entries have offset 0.
    pub fn finish(mut self) -> Result<(KeyGroupsStateHandle, u64)> {
        if let Some(kg) = self.open_part {
            return Err(Error::Invalid(format!("{}: key group {kg}, added in parts, was never ended", self.name)));
        }
        if let Some(p) = self.pending.take() {
            self.entry(&p, true)?;
            self.end_key_group()?;
        }
        let out = match std::mem::replace(&mut self.sink, Sink::Switching) {
            Sink::Plain(w) => w,
            _ => return Err(Error::Invalid(format!("{}: stream ended inside a key group", self.name))),
        };
        let delegate: StreamStateHandle = out.finish()?;
        Ok((
            KeyGroupsStateHandle {
                type_byte: handle_type::SAVEPOINT_KEY_GROUPS,
                key_group_range: self.range,
                offsets: self.offsets,
                delegate,
                state_handle_id: None,
            },
            self.entries,
        ))
    }

    fn io(&mut self, f: impl FnOnce(&mut Sink) -> std::io::Result<()>) -> Result<()> {
        f(&mut self.sink).map_err(|e| Error::io(&self.name, e))
    }

    fn begin_key_group(&mut self, r: &Record) -> Result<()> {
        let Sink::Plain(out) = std::mem::replace(&mut self.sink, Sink::Switching) else {
            return Err(Error::Invalid(format!("{}: key group {} started inside another", self.name, r.key_group)));
        };
        let offset = out.position();
        // Offset 0 means "no data"; the proxy always comes first, so a key group never starts at 0.
        self.offsets[(r.key_group - self.range.start) as usize] = offset as i64;
        // A compressed key group is its own Snappy framed stream (identifier included), as
        // Flink decorates the output stream anew per key group.
        self.sink = if self.compressed { Sink::Snappy(Box::new(snap::write::FrameEncoder::new(out))) } else { Sink::Plain(out) };
        self.io(|s| s.write_all(&(r.state as i16).to_be_bytes()))
    }

    fn end_key_group(&mut self) -> Result<()> {
        self.io(|s| s.write_all(&END_OF_KEY_GROUP.to_be_bytes()))?;
        self.sink = match std::mem::replace(&mut self.sink, Sink::Switching) {
            Sink::Snappy(enc) => Sink::Plain(enc.into_inner().map_err(|e| Error::io(&self.name, e.into_error()))?),
            other => other,
        };
        Ok(())
    }

    fn entry(&mut self, r: &Record, last_of_run: bool) -> Result<()> {
        let (prefix_len, key) = (self.prefix_len, &mut self.key);
        match &mut self.sink {
            Sink::Plain(w) => write_entry(w, prefix_len, r, last_of_run, key),
            Sink::Snappy(w) => write_entry(w, prefix_len, r, last_of_run, key),
            Sink::Switching => Err(std::io::Error::other("stream closed")),
        }
        .map_err(|e| Error::io(&self.name, e))?;
        self.entries += 1;
        Ok(())
    }
}

/// Writes one entry: its key (key-group prefix, the record's key; bit 7 of the first byte set
/// when it is the last of its run) and value, each after its length. The same writes, in the
/// same order, whoever calls it: a Snappy frame encoder cuts its frames by them.
pub(crate) fn write_entry(w: &mut impl Write, prefix_len: usize, r: &Record, last_of_run: bool, key: &mut Vec<u8>) -> std::io::Result<()> {
    key.clear();
    if prefix_len == 2 {
        key.extend_from_slice(&(r.key_group as u16).to_be_bytes());
    } else {
        key.push(r.key_group as u8);
    }
    key.extend_from_slice(&r.key);
    if last_of_run {
        // Free: key groups are below 32768 (2-byte prefix) or 128 (1-byte prefix).
        key[0] |= META_DATA_FOLLOWS;
    }
    let klen = i32::try_from(key.len()).map_err(|_| std::io::Error::other(format!("key of {} bytes", key.len())))?;
    let vlen = i32::try_from(r.value.len()).map_err(|_| std::io::Error::other(format!("value of {} bytes", r.value.len())))?;
    w.write_all(&klen.to_be_bytes())?;
    w.write_all(key)?;
    w.write_all(&vlen.to_be_bytes())?;
    w.write_all(&r.value)
}

/// Encodes one key group as [`KeyGroupStreamWriter`] writes it from its records (all of key
/// group `records[0].key_group`, sorted by state id), appending to `out`: the state id, the
/// entries of each state's run, the next state id between runs, the end mark; for a compressed
/// stream all of it as one Snappy framed stream. Reading threads encode key groups this way and
/// the writer copies them ([`KeyGroupStreamWriter::push_encoded`]).
pub fn encode_key_group(records: &[Record], max_parallelism: u32, compressed: bool, out: &mut Vec<u8>, key: &mut Vec<u8>) -> Result<()> {
    fn body(w: &mut impl Write, records: &[Record], prefix_len: usize, key: &mut Vec<u8>) -> std::io::Result<()> {
        let Some(first) = records.first() else { return Ok(()) };
        w.write_all(&(first.state as i16).to_be_bytes())?;
        for (i, r) in records.iter().enumerate() {
            let next = records.get(i + 1);
            let last_of_run = next.is_none_or(|n| n.state != r.state);
            write_entry(w, prefix_len, r, last_of_run, key)?;
            if let Some(n) = next.filter(|_| last_of_run) {
                w.write_all(&(n.state as i16).to_be_bytes())?;
            }
        }
        w.write_all(&END_OF_KEY_GROUP.to_be_bytes())
    }
    let kg = records.first().map_or(0, |r| r.key_group);
    if records.iter().any(|r| r.key_group != kg) || records.windows(2).any(|w| w[1].state < w[0].state) {
        return Err(Error::Invalid(format!("key group {kg}: records of other key groups or out of state order")));
    }
    let prefix_len = key_group_prefix_len(max_parallelism);
    let fail = |e: std::io::Error| Error::Invalid(format!("key group {kg}: {e}"));
    if compressed {
        let mut enc = snap::write::FrameEncoder::new(std::mem::take(out));
        body(&mut enc, records, prefix_len, key).map_err(fail)?;
        *out = enc.into_inner().map_err(|e| fail(e.into_error()))?;
    } else {
        body(out, records, prefix_len, key).map_err(fail)?;
    }
    Ok(())
}

/// Encodes one key group as [`encode_key_group`] does, but from records pushed one at a time
/// (sorted by state id), handing its bytes out as they are written: a reading thread streams a
/// key group too large to hold whole this way, in parts the writer appends
/// ([`KeyGroupStreamWriter::push_encoded_part`]). The bytes are the same as
/// [`encode_key_group`]'s over the same records: the same writes, in the same order, into the
/// same (Snappy framed, if compressed) stream.
pub struct KeyGroupEncoder {
    key_group: u32,
    prefix_len: usize,
    out: EncodedSink,
    /// Held back until the next record tells whether it ends its state's run.
    pending: Option<Record>,
    key: Vec<u8>,
    /// Records written, and those of them already handed out with a part.
    entries: u64,
    taken: u64,
}

impl std::fmt::Debug for KeyGroupEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyGroupEncoder").field("key_group", &self.key_group).field("entries", &self.entries).finish_non_exhaustive()
    }
}

/// Where an encoded key group goes: plain bytes, or one Snappy framed stream whose completed
/// frames can be taken as it grows.
pub(crate) enum EncodedSink {
    Plain(Vec<u8>),
    Snappy(Box<snap::write::FrameEncoder<Vec<u8>>>),
}

impl EncodedSink {
    pub(crate) fn new(compressed: bool) -> EncodedSink {
        if compressed {
            EncodedSink::Snappy(Box::new(snap::write::FrameEncoder::new(Vec::new())))
        } else {
            EncodedSink::Plain(Vec::new())
        }
    }

    pub(crate) fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            EncodedSink::Plain(w) => w.write_all(b),
            EncodedSink::Snappy(w) => w.write_all(b),
        }
    }

    /// Writes one entry ([`write_entry`]).
    pub(crate) fn entry(&mut self, prefix_len: usize, r: &Record, last_of_run: bool, key: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            EncodedSink::Plain(w) => write_entry(w, prefix_len, r, last_of_run, key),
            EncodedSink::Snappy(w) => write_entry(w, prefix_len, r, last_of_run, key),
        }
    }

    /// The bytes completed since the last take.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        match self {
            EncodedSink::Plain(w) => std::mem::take(w),
            EncodedSink::Snappy(w) => std::mem::take(w.get_mut()),
        }
    }

    /// Bytes completed and not yet taken.
    pub(crate) fn len(&self) -> usize {
        match self {
            EncodedSink::Plain(w) => w.len(),
            EncodedSink::Snappy(w) => w.get_ref().len(),
        }
    }

    /// The rest of the bytes (a Snappy stream's last frame flushed).
    pub(crate) fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            EncodedSink::Plain(w) => Ok(w),
            EncodedSink::Snappy(w) => w.into_inner().map_err(|e| e.into_error()),
        }
    }
}

impl KeyGroupEncoder {
    /// Starts the key group of `first`, its first record.
    pub fn new(first: Record, max_parallelism: u32, compressed: bool) -> Result<KeyGroupEncoder> {
        let out = EncodedSink::new(compressed);
        let mut e = KeyGroupEncoder { key_group: first.key_group, prefix_len: key_group_prefix_len(max_parallelism), out, pending: None, key: Vec::new(), entries: 0, taken: 0 };
        e.io(|out, _| out.write_all(&(first.state as i16).to_be_bytes()))?;
        e.pending = Some(first);
        Ok(e)
    }

    /// The key group.
    pub fn key_group(&self) -> u32 {
        self.key_group
    }

    /// Adds the next record: of the same key group, with a state id no lower than the last's.
    pub fn push(&mut self, r: Record) -> Result<()> {
        let Some(p) = self.pending.take() else { return Err(Error::Invalid(format!("key group {}: encoder already finished", self.key_group))) };
        if r.key_group != self.key_group || r.state < p.state {
            return Err(Error::Invalid(format!(
                "key group {}: a record of key group {} state {} after state {}: records out of order",
                self.key_group, r.key_group, r.state, p.state
            )));
        }
        let last_of_run = r.state != p.state;
        self.entry(&p, last_of_run)?;
        if last_of_run {
            self.io(|out, _| out.write_all(&(r.state as i16).to_be_bytes()))?;
        }
        self.pending = Some(r);
        Ok(())
    }

    /// A part: the bytes written since the last part (for a compressed key group: the Snappy
    /// frames completed since), and the records they end.
    pub fn take_part(&mut self) -> (Vec<u8>, u64) {
        let bytes = self.out.take();
        let n = self.entries - self.taken;
        self.taken = self.entries;
        (bytes, n)
    }

    /// Bytes written and not yet taken.
    pub fn pending_bytes(&self) -> usize {
        self.out.len()
    }

    /// Ends the key group: its last part (the rest of its bytes, and the records they end).
    pub fn finish(mut self) -> Result<(Vec<u8>, u64)> {
        if let Some(p) = self.pending.take() {
            self.entry(&p, true)?;
        }
        self.io(|out, _| out.write_all(&END_OF_KEY_GROUP.to_be_bytes()))?;
        let kg = self.key_group;
        let bytes = self.out.finish().map_err(|e| Error::Invalid(format!("key group {kg}: {e}")))?;
        Ok((bytes, self.entries - self.taken))
    }

    fn entry(&mut self, r: &Record, last_of_run: bool) -> Result<()> {
        let prefix_len = self.prefix_len;
        self.io(|out, key| out.entry(prefix_len, r, last_of_run, key))?;
        self.entries += 1;
        Ok(())
    }

    fn io(&mut self, f: impl FnOnce(&mut EncodedSink, &mut Vec<u8>) -> std::io::Result<()>) -> Result<()> {
        f(&mut self.out, &mut self.key).map_err(|e| Error::Invalid(format!("key group {}: {e}", self.key_group)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::Cursor;

    fn rec(kg: u32, state: u16, key: &[u8], value: &[u8]) -> Record {
        Record { key_group: kg, state, key: key.to_vec(), value: value.to_vec() }
    }

    fn write(records: &[Record], compressed: bool, maxp: u32) -> (KeyGroupsStateHandle, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let out = StateStreamWriter::new(dir.path(), "s".into(), 1 << 30);
        let mut w = KeyGroupStreamWriter::new(out, "s".into(), b"PROXY", KeyGroupRange::new(0, 4), maxp, compressed).unwrap();
        for r in records {
            w.push(r.clone()).unwrap();
        }
        let (h, n) = w.finish().unwrap();
        assert_eq!(n, records.len() as u64);
        let StreamStateHandle::ByteStream { data, .. } = &h.delegate else { panic!() };
        let data = data.clone();
        (h, data)
    }

    #[test]
    fn lays_out_runs_flags_and_end_marks() {
        let (h, data) = write(&[rec(1, 0, b"a", b"x"), rec(1, 0, b"b", b"y"), rec(1, 2, b"c", b""), rec(3, 1, b"d", b"z")], false, 128);
        assert_eq!(h.type_byte, 7);
        assert_eq!(h.offsets, [0, 5, 0, 43]);
        let mut c = Cursor::new(&data);
        assert_eq!(c.bytes(5, "proxy").unwrap(), b"PROXY");
        assert_eq!(c.i16("id").unwrap(), 0);
        assert_eq!(c.len_prefixed("k").unwrap(), &[1, b'a']);
        assert_eq!(c.len_prefixed("v").unwrap(), b"x");
        assert_eq!(c.len_prefixed("k").unwrap(), &[0x81, b'b']);
        assert_eq!(c.len_prefixed("v").unwrap(), b"y");
        assert_eq!(c.i16("next").unwrap(), 2);
        assert_eq!(c.len_prefixed("k").unwrap(), &[0x81, b'c']);
        assert_eq!(c.len_prefixed("v").unwrap(), b"");
        assert_eq!(c.i16("end").unwrap(), -1);
        assert_eq!(c.position(), 43);
        assert_eq!(c.i16("id").unwrap(), 1);
        assert_eq!(c.len_prefixed("k").unwrap(), &[0x83, b'd']);
        assert_eq!(c.len_prefixed("v").unwrap(), b"z");
        assert_eq!(c.i16("end").unwrap(), -1);
        assert!(c.is_empty());
    }

    #[test]
    fn two_byte_prefixes_and_per_key_group_snappy_streams() {
        let records = [rec(1, 0, b"a", b"x"), rec(2, 0, b"b", b"y")];
        let (plain_h, plain) = write(&records, false, 256);
        let (h, data) = write(&records, true, 256);
        // Each key group is a complete framed stream of exactly the uncompressed key group.
        for (i, kg) in [1usize, 2].iter().enumerate() {
            let start = h.offsets[*kg] as usize;
            let end = if i == 0 { h.offsets[2] as usize } else { data.len() };
            let dec = crate::readers::stream::snappy_decompress(&data[start..end]).unwrap();
            let pstart = plain_h.offsets[*kg] as usize;
            let pend = if i == 0 { plain_h.offsets[2] as usize } else { plain.len() };
            assert_eq!(dec, &plain[pstart..pend]);
        }
        assert_eq!(&plain[plain_h.offsets[1] as usize + 6..][..2], &[0x80, 0x01]);
    }

    /// Key groups encoded apart and copied in are the bytes of the records pushed one by one,
    /// compressed too: with values larger than a Snappy frame (64 KiB), whose frames a
    /// different sequence of writes would cut elsewhere.
    #[test]
    fn encoded_key_groups_are_the_bytes_of_pushed_records() {
        let big: Vec<u8> = (0..150_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let groups = [
            vec![rec(0, 0, b"a", b"x"), rec(0, 0, b"b", &big), rec(0, 3, b"c", b"")],
            vec![rec(2, 1, &big[..70_000], b"y"), rec(2, 1, b"d", &big[..65_536]), rec(2, 2, b"e", b"z")],
        ];
        for compressed in [false, true] {
            for maxp in [4, 256] {
                let all: Vec<Record> = groups.concat();
                let (h, data) = write(&all, compressed, maxp);
                let dir = tempfile::tempdir().unwrap();
                let out = StateStreamWriter::new(dir.path(), "s".into(), 1 << 30);
                let mut w = KeyGroupStreamWriter::new(out, "s".into(), b"PROXY", KeyGroupRange::new(0, 4), maxp, compressed).unwrap();
                let mut key = Vec::new();
                for g in &groups {
                    let mut bytes = vec![9u8; 3];
                    encode_key_group(g, maxp, compressed, &mut bytes, &mut key).unwrap();
                    assert_eq!(&bytes[..3], &[9, 9, 9], "appended");
                    w.push_encoded(g[0].key_group, &bytes[3..], g.len() as u64).unwrap();
                }
                // Out of order: refused.
                assert!(w.push_encoded(1, b"", 0).is_err());
                let (h2, n) = w.finish().unwrap();
                assert_eq!(n, all.len() as u64);
                assert_eq!(h2.offsets, h.offsets, "compressed {compressed} maxp {maxp}");
                let StreamStateHandle::ByteStream { data: data2, .. } = &h2.delegate else { panic!() };
                assert!(*data2 == data, "compressed {compressed} maxp {maxp}: the encoded stream differs");
            }
        }
    }

    /// A key group streamed in parts (`KeyGroupEncoder`, parts taken after every `every`
    /// records) and added part by part gives the stream that pushing its records one by one
    /// gives: the same bytes, offsets and entry count, compressed or not, whatever the cuts
    /// (Snappy frames of 64 KiB cross them).
    #[test]
    fn key_groups_streamed_in_parts_are_the_bytes_of_pushed_records() {
        let big: Vec<u8> = (0..150_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let groups = [
            vec![rec(0, 0, b"a", b"x"), rec(0, 0, b"b", &big), rec(0, 3, b"c", b""), rec(0, 3, b"c2", &big[..40_000])],
            vec![rec(1, 2, b"only", b"v")],
            vec![rec(2, 1, &big[..70_000], b"y"), rec(2, 1, b"d", &big[..65_536]), rec(2, 2, b"e", b"z"), rec(2, 5, b"f", &big[..1000])],
        ];
        let all: Vec<Record> = groups.concat();
        for compressed in [false, true] {
            for maxp in [4, 256] {
                let (h, data) = write(&all, compressed, maxp);
                for every in [1, 2, 100] {
                    let dir = tempfile::tempdir().unwrap();
                    let out = StateStreamWriter::new(dir.path(), "s".into(), 1 << 30);
                    let mut w = KeyGroupStreamWriter::new(out, "s".into(), b"PROXY", KeyGroupRange::new(0, 4), maxp, compressed).unwrap();
                    for g in &groups {
                        let mut enc = KeyGroupEncoder::new(g[0].clone(), maxp, compressed).unwrap();
                        let (bytes, n) = enc.take_part();
                        w.push_encoded_part(g[0].key_group, &bytes, n, EncodedPart::First).unwrap();
                        // Another key group, or records pushed one by one, cannot come in between.
                        assert!(w.push_encoded(3, b"", 0).is_err());
                        for (i, r) in g.iter().enumerate().skip(1) {
                            enc.push(r.clone()).unwrap();
                            if i % every == 0 {
                                let (bytes, n) = enc.take_part();
                                w.push_encoded_part(g[0].key_group, &bytes, n, EncodedPart::Middle).unwrap();
                            }
                        }
                        let (bytes, n) = enc.finish().unwrap();
                        w.push_encoded_part(g[0].key_group, &bytes, n, EncodedPart::Last).unwrap();
                    }
                    let (h2, n) = w.finish().unwrap();
                    let what = format!("compressed {compressed} maxp {maxp} every {every}");
                    assert_eq!(n, all.len() as u64, "{what}");
                    assert_eq!(h2.offsets, h.offsets, "{what}");
                    let StreamStateHandle::ByteStream { data: data2, .. } = &h2.delegate else { panic!() };
                    assert!(*data2 == data, "{what}: the stream differs");
                }
            }
        }
        // Records out of state order, or of another key group, are refused.
        let mut enc = KeyGroupEncoder::new(rec(2, 1, b"a", b""), 128, false).unwrap();
        assert!(enc.push(rec(2, 0, b"b", b"")).unwrap_err().to_string().contains("out of order"));
        let mut enc = KeyGroupEncoder::new(rec(2, 1, b"a", b""), 128, false).unwrap();
        assert!(enc.push(rec(3, 1, b"b", b"")).is_err());
        // A key group started in parts and never ended is refused at the end.
        let dir = tempfile::tempdir().unwrap();
        let out = StateStreamWriter::new(dir.path(), "s".into(), 1 << 20);
        let mut w = KeyGroupStreamWriter::new(out, "s".into(), b"P", KeyGroupRange::new(0, 4), 128, false).unwrap();
        let mut enc = KeyGroupEncoder::new(rec(1, 0, b"a", b""), 128, false).unwrap();
        let (bytes, n) = enc.take_part();
        w.push_encoded_part(1, &bytes, n, EncodedPart::First).unwrap();
        assert!(w.push(rec(2, 0, b"a", b"")).is_err());
        assert!(w.finish().unwrap_err().to_string().contains("never ended"));
    }

    #[test]
    fn refuses_out_of_order_and_out_of_range_records() {
        let dir = tempfile::tempdir().unwrap();
        let out = StateStreamWriter::new(dir.path(), "s".into(), 1 << 20);
        let mut w = KeyGroupStreamWriter::new(out, "s".into(), b"P", KeyGroupRange::new(0, 4), 128, false).unwrap();
        w.push(rec(2, 1, b"a", b"")).unwrap();
        assert!(w.push(rec(2, 0, b"a", b"")).unwrap_err().to_string().contains("out of order"));
        assert!(w.push(rec(9, 0, b"a", b"")).unwrap_err().to_string().contains("outside"));
    }
}
