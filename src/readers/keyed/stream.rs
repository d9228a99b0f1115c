//! One key group of a key-grouped stream, decoded one stored entry at a time from a window of
//! its bytes (read, and decompressed, as decoding goes): how the canonical stream and the heap
//! checkpoint format frame their stored entries within a key group, and the windowed reading.
//!
//! Memory holds the window ([`WINDOW`], or one stored entry when larger) and the entries of one
//! stored entry (one key's map in the heap format), never a whole key group.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::Arc;

use crate::bytes::Cursor;
use crate::consts::{END_OF_KEY_GROUP, META_DATA_FOLLOWS};
use crate::error::{DecodeError, DecodeErrorKind, Error, Frame, Result, ResultExt};
use crate::model::{Entry, Origin};
use crate::readers::stream::StreamSource;

use super::decoder::{KeyedDecoder, StateDecoder};
use super::heap_resync::{resync, Resynced};
use crate::readers::undecodable::{Undecodable, UndecodableKind};

/// Bytes of a heap key group read into memory at most to read past undecodable values in it.
const MAX_RESYNC_BYTES: usize = 64 << 20;

type R<T> = std::result::Result<T, DecodeError>;

/// Bytes a key group is read in (more when one stored entry is larger).
pub const WINDOW: usize = 256 * 1024;

/// A byte range of a stream, as `Read`, fetched through the storage range by range.
pub(super) struct RangeRead {
    pub source: StreamSource,
    pub pos: u64,
    pub end: u64,
}

impl Read for RangeRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.end - self.pos);
        if n == 0 {
            return Ok(0);
        }
        // the storage's error travels inside the io::Error and is unwrapped by `KeyGroupEntries`
        let bytes = self.source.read_range(self.pos..self.pos + n).map_err(std::io::Error::other)?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        self.pos += bytes.len() as u64;
        Ok(bytes.len())
    }
}

/// Where a key group's bytes come from.
pub(super) enum Input {
    /// Stored as they are: appended to the window range by range as the storage returns them
    /// (through `Read` they were zeroed, then copied: 5% of `verify --level full`).
    Stored(RangeRead),
    /// Decompressed (Snappy) as read.
    Decompressed(Box<dyn Read + Send>),
}

/// Where decoding a key group stands.
#[derive(Debug, Clone, Copy)]
pub(super) enum Progress {
    /// Canonical stream, before the first state id.
    CanonicalStart,
    /// Canonical stream: the next key/value pair belongs to `state_id` (read at `at`).
    Canonical { state_id: i16, at: u64 },
    /// Heap checkpoint format: the next state's header, `states_left` to go.
    Heap { states_left: usize },
    /// Heap checkpoint format: entry `i` of `n` of state index `state`.
    HeapEntries { state: usize, i: usize, n: usize, states_left: usize },
    /// The key group ended (and was checked to end where its bytes do).
    Done,
    /// The rest of the key group cannot be read (a state whose registration could not be read):
    /// skipped.
    SkipRest,
}

/// The entries of one key group, decoded lazily ([`super::KeyGroupsReader::key_group_entries`]):
/// memory holds a window of the key group's bytes, never all of them. Stops after the first
/// error.
pub struct KeyGroupEntries {
    pub(super) decoder: Arc<KeyedDecoder>,
    pub(super) kg: u32,
    /// Bytes to read at least per refill.
    pub(super) window: usize,
    /// The key group's bytes (decompressed when compressed), from where `data` ends.
    pub(super) input: Option<Input>,
    /// `input` has nothing more.
    pub(super) eof: bool,
    /// The window: bytes read and not yet dropped.
    pub(super) data: Vec<u8>,
    /// Offset of `data[0]` in `frame` (file bytes, or decompressed bytes of the key group).
    pub(super) base: u64,
    /// What the offsets count.
    pub(super) frame: Frame,
    /// Next byte of `data` to decode.
    pub(super) pos: usize,
    pub(super) progress: Progress,
    pub(super) file: String,
    /// Subtask and stream of every entry; the position is set per stored entry.
    pub(super) origin: Origin,
    /// Entries of the stored entry decoded last (several for a heap map), to hand out in
    /// order: the decoders push into it (its capacity kept: no vector per stored entry).
    pub(super) pending: VecDeque<Entry>,
    /// What could not be decoded in this key group (`key_groups` left 0: the reader counts).
    pub(super) notes: Vec<Undecodable>,
}

impl std::fmt::Debug for KeyGroupEntries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyGroupEntries")
            .field("kg", &self.kg)
            .field("file", &self.file)
            .field("offset", &(self.base + self.pos as u64))
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

impl KeyGroupEntries {
    /// The key group.
    pub fn key_group(&self) -> u32 {
        self.kg
    }

    /// Reads in windows of `bytes` instead of [`WINDOW`] (tests: tiny windows make every
    /// stored entry straddle a window boundary).
    #[cfg(test)]
    pub(crate) fn with_window(mut self, bytes: usize) -> Self {
        self.window = bytes.max(1);
        self
    }

    fn error(&self, e: DecodeError) -> Error {
        Error::decode(&self.file, e.context(format!("key group {}", self.kg)))
    }

    /// Drops the decoded bytes and reads at least a window more (twice what is held when a
    /// stored entry outgrows the window), or up to the end.
    fn refill(&mut self) -> Result<()> {
        if self.pos > 0 {
            self.data.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        let Some(input) = self.input.as_mut() else {
            self.eof = true;
            return Ok(());
        };
        let want = self.data.len().max(self.window);
        let input = match input {
            Input::Stored(r) => {
                let n = (want as u64).min(r.end - r.pos);
                if n > 0 {
                    let bytes = r.source.read_range(r.pos..r.pos + n)?;
                    r.pos += bytes.len() as u64;
                    if self.data.is_empty() {
                        self.data = bytes;
                    } else {
                        self.data.extend_from_slice(&bytes);
                    }
                }
                if r.pos == r.end {
                    self.eof = true;
                    self.input = None;
                }
                return Ok(());
            }
            Input::Decompressed(input) => input,
        };
        self.data.reserve_exact(want);
        // Into the spare capacity, not zeroed first: a small key group of a large window must
        // not cost a window's worth of memset (4% of `verify --level full`).
        match input.by_ref().take(want as u64).read_to_end(&mut self.data) {
            Ok(n) if n < want => {
                self.eof = true;
                self.input = None;
            }
            Ok(_) => {}
            Err(e) => return Err(self.read_error(e)),
        }
        Ok(())
    }

    fn read_error(&self, e: std::io::Error) -> Error {
        let e = match e.downcast::<Error>() {
            Ok(storage) => return storage,
            Err(e) => e,
        };
        match self.frame {
            // The decompressor failed: the compressed block is bad, wherever in it.
            Frame::Decompressed { block } => Error::decode(
                &self.file,
                DecodeError::new(DecodeErrorKind::Invalid(format!("key group {}: bad snappy stream: {e}", self.kg)), block),
            ),
            _ => Error::io(&self.file, e),
        }
    }
}

impl Iterator for KeyGroupEntries {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(Ok(e));
            }
            if matches!(self.progress, Progress::Done) && self.input.is_none() {
                return None;
            }
            // A step that ran out of window (or ended the key group before everything was read)
            // is retried, from where it started, on a larger window: steps only read.
            let progress = self.progress;
            let start = self.base + self.pos as u64;
            let noted = self.notes.len();
            let mut c = Cursor::in_frame(&self.data[self.pos..], self.frame, start);
            let step = self.decoder.step(&mut c, self.kg, &mut self.progress, &mut self.notes, &mut self.pending);
            let consumed = (c.position() - start) as usize;
            let short = match &step {
                Err(e) => matches!(e.kind, DecodeErrorKind::Truncated { .. } | DecodeErrorKind::LengthTooLarge { .. }),
                Ok(_) => matches!(self.progress, Progress::Done | Progress::SkipRest),
            };
            if short && !self.eof {
                self.progress = progress;
                self.notes.truncate(noted);
                self.pending.clear();
                if let Err(e) = self.refill() {
                    self.progress = Progress::Done;
                    self.input = None;
                    return Some(Err(e));
                }
                continue;
            }
            // A heap value flinksnap cannot delimit: the rest of the key group is read as the
            // one layout its bytes allow, if there is one.
            if let Err(e) = &step {
                if matches!(e.kind, DecodeErrorKind::Unsupported { .. }) && matches!(progress, Progress::Heap { .. } | Progress::HeapEntries { .. }) {
                    self.progress = progress;
                    self.notes.truncate(noted);
                    self.pending.clear();
                    if let Err(e) = self.resync_heap(progress, e) {
                        self.progress = Progress::Done;
                        self.input = None;
                        return Some(Err(e));
                    }
                    continue;
                }
            }
            self.pos += consumed;
            if matches!(self.progress, Progress::SkipRest) {
                // What is left of the key group cannot be read (noted by the step).
                self.progress = Progress::Done;
                self.input = None;
                self.data = Vec::new();
                self.pos = 0;
                return None;
            }
            match step {
                Ok(Some(at)) => {
                    let position = self.frame.position(at);
                    for e in &mut self.pending {
                        e.origin = Origin { position: e.origin.position.or(position), ..self.origin };
                    }
                }
                Ok(None) => {
                    self.input = None;
                    self.data = Vec::new();
                    return None;
                }
                Err(e) => {
                    self.progress = Progress::Done;
                    self.input = None;
                    self.pending.clear();
                    return Some(Err(self.error(e)));
                }
            }
        }
    }
}

impl KeyGroupEntries {
    /// Reads the rest of a heap key group from the step that failed on an undecodable value
    /// (`progress` before it, at `self.pos`): its one layout's entries become pending, or the
    /// rest is noted as not decoded.
    fn resync_heap(&mut self, progress: Progress, failed: &DecodeError) -> Result<()> {
        while !self.eof && self.data.len() - self.pos <= MAX_RESYNC_BYTES {
            self.refill()?;
        }
        let start = self.base + self.pos as u64;
        let (state, entries, why) = if self.data.len() - self.pos > MAX_RESYNC_BYTES {
            let state = match progress {
                Progress::HeapEntries { state, i, n, .. } if i < n => Some(state),
                _ => None,
            };
            (state, None, "the key group is too large to search")
        } else {
            match resync(&self.decoder, self.kg, &self.data[self.pos..], progress) {
                Resynced::Entries { entries: found, uncertain } => {
                    for (at, mut e) in found {
                        e.origin = Origin { position: self.frame.position(start + at as u64), ..self.origin };
                        self.pending.push_back(e);
                    }
                    // Stored entries the layouts the bytes allow read differently: not read.
                    for state in uncertain {
                        let mut note = Undecodable::new(
                            self.decoder.operator_id(),
                            UndecodableKind::Entries,
                            self.decoder.state_name(state).map(str::to_owned),
                            self.decoder.value_class(state),
                            "its values carry no length in a heap checkpoint, and the bytes allow several ways to delimit these entries: they are not read (the rest of their key group is)".to_owned(),
                        );
                        note.state_index = Some(state);
                        note.entries = Some(1);
                        note.file = Some(self.file.clone());
                        note.position = self.frame.position(start);
                        Undecodable::merge_into(&mut self.notes, note);
                    }
                    self.finish_key_group();
                    return Ok(());
                }
                Resynced::Unknown { state, entries, why } => (state, entries, why),
            }
        };
        let class = match &failed.kind {
            DecodeErrorKind::Unsupported { class, .. } => class.clone(),
            _ => None,
        };
        let mut note = Undecodable::new(
            self.decoder.operator_id(),
            UndecodableKind::Entries,
            state.and_then(|s| self.decoder.state_name(s)).map(str::to_owned),
            class.clone(),
            format!(
                "values of {} carry no length in a heap checkpoint, and {why}: these entries and the rest of their key group are not read",
                class.as_deref().unwrap_or("a serializer flinksnap cannot interpret")
            ),
        );
        note.state_index = state;
        note.entries = entries;
        note.file = Some(self.file.clone());
        note.position = self.frame.position(start);
        self.notes.push(note);
        self.finish_key_group();
        Ok(())
    }

    /// Drops what is left of the key group (read or not).
    fn finish_key_group(&mut self) {
        self.progress = Progress::Done;
        self.input = None;
        self.eof = true;
        self.data = Vec::new();
        self.pos = 0;
    }
}

impl std::iter::FusedIterator for KeyGroupEntries {}

impl KeyedDecoder {
    fn decoder(&self, c: &Cursor<'_>, id: i16, at: u64) -> R<&StateDecoder> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.decoders.get(i))
            .ok_or_else(|| c.error_at(DecodeErrorKind::InvalidValue { what: "kv state id", value: id.into() }, at))
    }

    /// Decodes the next stored entry of a key group from `c` (which starts where the previous
    /// step stopped): where it starts, its entries appended to `out` (one; a heap map state's
    /// key gives one per map entry; none for a skipped one), or `None` once the key group has
    /// ended, checked to end with `c`'s bytes. On an error `out` may hold some entries of the
    /// failed stored entry: the caller drops them.
    pub(super) fn step(&self, c: &mut Cursor<'_>, kg: u32, p: &mut Progress, notes: &mut Vec<Undecodable>, out: &mut VecDeque<Entry>) -> R<Option<u64>> {
        loop {
            match *p {
                Progress::Done => return Ok(None),
                Progress::SkipRest => {
                    c.rest();
                    return Ok(Some(c.position()));
                }
                Progress::CanonicalStart => {
                    let at = c.position();
                    let state_id = c.i16("kv state id")?;
                    *p = Progress::Canonical { state_id, at };
                }
                Progress::Canonical { state_id, .. } if usize::try_from(state_id).is_ok_and(|i| i >= self.decoders.len()) && self.unreadable_state(state_id as usize).is_some() => {
                    // A state whose registration could not be read: its pairs are framed, so
                    // they are skipped and counted.
                    let key_at = c.position();
                    let key = c.len_prefixed("key")?;
                    c.len_prefixed("value")?;
                    let last_of_run = key.first().is_some_and(|&b| b & META_DATA_FOLLOWS != 0);
                    let (name, class) = self.unreadable_state(state_id as usize).unwrap_or_default();
                    let mut note = Undecodable::new(
                        self.operator_id(),
                        UndecodableKind::Entries,
                        name,
                        class,
                        "the state's registration could not be read (an unknown serializer snapshot before it): its entries are not decoded".to_owned(),
                    );
                    note.state_index = Some(state_id as usize);
                    note.entries = Some(1);
                    note.position = c.frame().position(key_at);
                    Undecodable::merge_into(notes, note);
                    if last_of_run {
                        let next_at = c.position();
                        let next = c.i16("next kv state id")?;
                        if next == END_OF_KEY_GROUP {
                            c.expect_end("key group")?;
                            *p = Progress::Done;
                        } else {
                            *p = Progress::Canonical { state_id: next, at: next_at };
                        }
                    }
                    return Ok(Some(key_at));
                }
                Progress::Canonical { state_id, at } => {
                    let d = self.decoder(c, state_id, at)?;
                    let key_at = c.position();
                    let key = c.len_prefixed("key")?;
                    let value_at = c.position();
                    let value = c.len_prefixed("value")?;
                    let Some(&first) = key.first() else {
                        return Err(c.error_at(DecodeErrorKind::Invalid("empty key".into()), key_at));
                    };
                    let last_of_run = first & META_DATA_FOLLOWS != 0;
                    // A copy only for the last pair of a run, whose flag bit must be cleared.
                    let key: std::borrow::Cow<'_, [u8]> = if last_of_run {
                        let mut key = key.to_vec();
                        key[0] = first & !META_DATA_FOLLOWS;
                        key.into()
                    } else {
                        key.into()
                    };
                    let k = Cursor::in_frame(&key, c.frame(), key_at + 4);
                    let v = Cursor::in_frame(value, c.frame(), value_at + 4);
                    self.decode_pair(d, kg, k, v, out).context_with(|| format!("state {:?}", d.name))?;
                    if last_of_run {
                        let next_at = c.position();
                        let next = c.i16("next kv state id")?;
                        if next == END_OF_KEY_GROUP {
                            c.expect_end("key group")?;
                            *p = Progress::Done;
                        } else {
                            *p = Progress::Canonical { state_id: next, at: next_at };
                        }
                    }
                    return Ok(Some(key_at));
                }
                Progress::Heap { states_left: 0 } => {
                    c.expect_end("key group")?;
                    *p = Progress::Done;
                }
                Progress::Heap { states_left } => {
                    let at = c.position();
                    let id = c.i16("kv state id")?;
                    if let Some((name, class)) = usize::try_from(id).ok().filter(|&i| i >= self.decoders.len()).and_then(|i| self.unreadable_state(i)) {
                        // A state whose registration could not be read: its entries cannot be
                        // delimited, nor anything after them in this key group.
                        let n = c.i32("number of entries")?;
                        let mut note = Undecodable::new(
                            self.operator_id(),
                            UndecodableKind::Entries,
                            name,
                            class,
                            "the state's registration could not be read (an unknown serializer snapshot before it): its entries and the rest of their key group are not read".to_owned(),
                        );
                        note.state_index = Some(id as usize);
                        note.entries = u64::try_from(n).ok();
                        note.position = c.frame().position(at);
                        Undecodable::merge_into(notes, note);
                        *p = Progress::SkipRest;
                        continue;
                    }
                    let d = self.decoder(c, id, at)?;
                    // Each entry takes at least one byte.
                    let n = c.count("number of entries", 1).context_with(|| format!("state {:?}", d.name))?;
                    *p = Progress::HeapEntries { state: id as usize, i: 0, n, states_left: states_left - 1 };
                }
                Progress::HeapEntries { state, i, n, states_left } => {
                    if i == n {
                        *p = Progress::Heap { states_left };
                        continue;
                    }
                    let d = &self.decoders[state];
                    let at = c.position();
                    self.heap_entry(d, kg, c, out).context_with(|| format!("state {:?} entry {i}", d.name))?;
                    *p = Progress::HeapEntries { state, i: i + 1, n, states_left };
                    return Ok(Some(at));
                }
            }
        }
    }
}
