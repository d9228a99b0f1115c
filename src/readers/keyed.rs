//! Keyed state of key-grouped handles (types 3, 12, 7): the canonical full-snapshot stream of
//! savepoints (and of RocksDB full checkpoints up to 1.15) and the heap backend's checkpoint
//! format. Specs: `formats/canonical-stream.md`, `formats/heap-checkpoint.md`.
//!
//! Reading is per key group and, inside a key group, one stored entry at a time
//! ([`KeyGroupEntries`]) from a window of its bytes (read, and decompressed, as decoding goes):
//! memory holds the window ([`WINDOW`], or one stored entry when larger) and the entries of one
//! stored entry (one key's map in the heap format), never a whole key group, whatever the state
//! size or the max parallelism.

use std::io::Read;
use std::sync::Arc;

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind, Error, Result, ResultExt};
use crate::metadata::handles::{KeyGroupsStateHandle, StreamStateHandle};
use crate::model::value::Value;
use crate::model::{Entry, OperatorId, RawEntry, StateKind};
use crate::readers::meta::{read_keyed_backend_meta, KeyedBackendMeta, StateMetaInfo, NAMESPACE_SERIALIZER, VALUE_SERIALIZER};
use crate::readers::serializers::TypeSerializer;
use crate::readers::stream::StreamSource;
use crate::snapshot::Snapshot;

type R<T> = std::result::Result<T, DecodeError>;

/// Marks the last entry of a (key group, state) run in the canonical stream: bit 7 of the first
/// key byte (`FullSnapshotUtil.FIRST_BIT_IN_BYTE_MASK`).
const META_DATA_FOLLOWS: u8 = 0x80;
/// Ends a key group in the canonical stream (`FullSnapshotUtil.END_OF_KEY_GROUP_MARK`).
const END_OF_KEY_GROUP: i16 = -1;
/// The list-state element delimiter of the RocksDB layout.
const LIST_DELIMITER: u8 = b',';

/// How a key-grouped stream lays out its key groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyedStreamFormat {
    /// FLIP-41 unified format: RocksDB-layout key/value pairs.
    Canonical,
    /// The heap backend's checkpoint format: per state, (namespace, key, value) triples.
    HeapCheckpoint,
}

/// How a state's entries are decoded, prepared once per state.
#[derive(Debug, Clone)]
struct StateDecoder {
    name: Arc<str>,
    kind: StateKind,
    namespace: Option<TypeSerializer>,
    value: TypeSerializer,
}

impl StateDecoder {
    fn new(meta: &StateMetaInfo) -> R<StateDecoder> {
        let bad = |msg: String| DecodeError::new(DecodeErrorKind::Invalid(msg), 0);
        let kind = meta.kind().ok_or_else(|| bad(format!("state {:?}: unknown keyed state type", meta.name)))?;
        let value = meta
            .serializer(VALUE_SERIALIZER)
            .cloned()
            .ok_or_else(|| bad(format!("state {:?} has no value serializer", meta.name)))?;
        Ok(StateDecoder { name: meta.name.as_str().into(), kind, namespace: meta.serializer(NAMESPACE_SERIALIZER).cloned(), value })
    }
}

/// Reads the keyed state of one key-groups handle.
#[derive(Debug)]
pub struct KeyedHandleReader {
    source: StreamSource,
    handle: KeyGroupsStateHandle,
    meta: KeyedBackendMeta,
    format: KeyedStreamFormat,
    decoder: Arc<KeyedDecoder>,
    /// (key group, start, end) of each key group with data, in key-group order.
    spans: Vec<(u32, u64, u64)>,
}

impl KeyedHandleReader {
    /// Opens the handle's stream and reads its serialization proxy.
    pub fn open(snapshot: &Snapshot, operator_id: OperatorId, max_parallelism: u32, handle: &KeyGroupsStateHandle) -> Result<Self> {
        let source = StreamSource::open(snapshot, &handle.delegate)?;
        let size = source.size();
        let first = handle.offsets.iter().copied().filter(|&o| o > 0).min().map_or(size, |o| o as u64);
        if first > size {
            return Err(Error::decode(
                source.name(),
                DecodeError::new(DecodeErrorKind::Invalid(format!("key-group offset {first} lies past the end of the file ({size} bytes)")), size),
            ));
        }
        let head = source.read_range(0..first)?;
        let meta = read_keyed_backend_meta(&mut Cursor::new(&head)).map_err(|e| Error::decode(source.name(), e.context("keyed backend meta data")))?;
        let decoder = Arc::new(KeyedDecoder::new(operator_id, max_parallelism, &meta).map_err(|e| Error::decode(source.name(), e))?);

        // Key groups with data, ordered by offset; each runs to the next offset or the file end.
        let mut by_offset: Vec<(u32, u64)> = handle
            .offsets
            .iter()
            .enumerate()
            .filter(|(_, &o)| o > 0)
            .map(|(i, &o)| (handle.key_group_range.start + i as u32, o as u64))
            .collect();
        by_offset.sort_by_key(|&(kg, o)| (o, kg));
        let mut spans = Vec::with_capacity(by_offset.len());
        for (i, &(kg, start)) in by_offset.iter().enumerate() {
            let end = by_offset.get(i + 1).map_or(size, |&(_, o)| o);
            if start > size || end < start {
                return Err(Error::decode(
                    source.name(),
                    DecodeError::new(DecodeErrorKind::Invalid(format!("offset {start} of key group {kg} is outside the file ({size} bytes)")), start),
                ));
            }
            spans.push((kg, start, end));
        }
        spans.sort_by_key(|&(kg, _, _)| kg);

        let format = if handle.is_savepoint() { KeyedStreamFormat::Canonical } else { KeyedStreamFormat::HeapCheckpoint };
        let mut reader = KeyedHandleReader { source, handle: handle.clone(), meta, format, decoder, spans };
        // Before metadata V4 a key-groups *checkpoint* handle holds either the heap checkpoint
        // format or (RocksDB full checkpoints up to 1.15) the canonical stream, and nothing in
        // the metadata says which: the first key group is parsed both ways (entry by entry, so
        // the probe holds no more than reading does).
        if !handle.is_savepoint() {
            let first = reader.key_groups().next();
            if let Some(kg) = first {
                if let Err(heap_err) = reader.check_key_group(kg) {
                    reader.format = KeyedStreamFormat::Canonical;
                    if reader.check_key_group(kg).is_err() {
                        return Err(heap_err);
                    }
                }
            }
        }
        Ok(reader)
    }

    /// Reads only the serialization proxy of a key-groups handle (states and serializers),
    /// without opening the key groups: cheaper than [`KeyedHandleReader::open`] when only the
    /// layout of the states is wanted.
    pub fn read_meta(snapshot: &Snapshot, handle: &KeyGroupsStateHandle) -> Result<KeyedBackendMeta> {
        let source = StreamSource::open(snapshot, &handle.delegate)?;
        // The proxy ends where the first key group starts.
        let first = handle.offsets.iter().copied().filter(|&o| o > 0).min().map_or(source.size(), |o| o as u64).min(source.size());
        let head = source.read_range(0..first)?;
        read_keyed_backend_meta(&mut Cursor::new(&head)).map_err(|e| Error::decode(source.name(), e.context("keyed backend meta data")))
    }

    /// The serialization proxy: states and serializers.
    pub fn meta(&self) -> &KeyedBackendMeta {
        &self.meta
    }

    /// The stream format.
    pub fn format(&self) -> KeyedStreamFormat {
        self.format
    }

    /// The handle being read.
    pub fn handle(&self) -> &KeyGroupsStateHandle {
        &self.handle
    }

    /// Key groups that hold data, ascending.
    pub fn key_groups(&self) -> impl Iterator<Item = u32> + '_ {
        self.spans.iter().map(|&(kg, _, _)| kg)
    }

    /// Every entry of key group `kg` (empty when it holds none), collected: holds all of the key
    /// group's decoded entries at once; [`KeyedHandleReader::key_group_entries`] streams them.
    pub fn read_key_group(&self, kg: u32) -> Result<Vec<Entry>> {
        self.key_group_entries(kg)?.collect()
    }

    /// Decodes key group `kg` to its end, keeping nothing.
    fn check_key_group(&self, kg: u32) -> Result<()> {
        self.key_group_entries(kg)?.try_for_each(|e| e.map(drop))
    }

    /// The entries of key group `kg`, decoded one stored entry at a time while its bytes are
    /// read (and decompressed) in windows of [`WINDOW`] bytes. Empty when the key group holds
    /// none.
    pub fn key_group_entries(&self, kg: u32) -> Result<KeyGroupEntries> {
        let file = self.source.name();
        let mut entries = KeyGroupEntries {
            decoder: self.decoder.clone(),
            kg,
            window: WINDOW,
            input: None,
            eof: true,
            data: Vec::new(),
            base: 0,
            pos: 0,
            progress: Progress::Done,
            file,
            compressed_at: None,
            pending: Vec::new().into_iter(),
        };
        let Some(&(_, start, end)) = self.spans.iter().find(|&&(k, _, _)| k == kg) else { return Ok(entries) };
        // The heap checkpoint format repeats the key group before its (possibly compressed) data.
        let skip = match self.format {
            KeyedStreamFormat::Canonical => {
                entries.progress = Progress::CanonicalStart;
                0
            }
            KeyedStreamFormat::HeapCheckpoint => {
                let head = self.source.read_range(start..(start + 4).min(end))?;
                let mut c = Cursor::with_base(&head, start);
                let stored = c.i32("key group").map_err(|e| Error::decode(&entries.file, e.context(format!("key group {kg}"))))?;
                if stored as i64 != kg as i64 {
                    return Err(Error::decode(
                        &entries.file,
                        DecodeError::new(DecodeErrorKind::Invalid(format!("key group {stored} stored where {kg} was expected")), start),
                    ));
                }
                entries.progress = Progress::Heap { states_left: self.decoder.decoders.len() };
                4
            }
        };
        let raw = RangeRead { source: self.source.clone(), pos: start + skip, end };
        if self.meta.compressed {
            // offsets in messages count decompressed bytes
            // the decoder reads chunk headers and bodies one by one: buffer them
            entries.input = Some(Box::new(snap::read::FrameDecoder::new(std::io::BufReader::with_capacity(64 * 1024, raw))));
            entries.compressed_at = Some(start);
        } else {
            entries.input = Some(Box::new(raw));
            entries.base = start + skip;
        }
        entries.eof = false;
        Ok(entries)
    }
}

/// Bytes a key group is read in (more when one stored entry is larger).
pub const WINDOW: usize = 256 * 1024;

/// A byte range of a stream, as `Read`, fetched through the storage range by range.
struct RangeRead {
    source: StreamSource,
    pos: u64,
    end: u64,
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

/// Where decoding a key group stands.
#[derive(Debug, Clone, Copy)]
enum Progress {
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
}

/// The entries of one key group, decoded lazily ([`KeyedHandleReader::key_group_entries`]):
/// memory holds a window of the key group's bytes, never all of them. Stops after the first
/// error.
pub struct KeyGroupEntries {
    decoder: Arc<KeyedDecoder>,
    kg: u32,
    /// Bytes to read at least per refill.
    window: usize,
    /// The key group's bytes (decompressed when compressed), from where `data` ends.
    input: Option<Box<dyn Read + Send>>,
    /// `input` has nothing more.
    eof: bool,
    /// The window: bytes read and not yet dropped.
    data: Vec<u8>,
    /// Absolute offset of `data[0]` for messages (counted in decompressed bytes when compressed).
    base: u64,
    /// Next byte of `data` to decode.
    pos: usize,
    progress: Progress,
    file: String,
    /// File offset of the key group when its data is Snappy-compressed.
    compressed_at: Option<u64>,
    /// Entries of the stored entry decoded last (several for a heap map).
    pending: std::vec::IntoIter<Entry>,
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
        let mut e = e.context(format!("key group {}", self.kg));
        if let Some(start) = self.compressed_at {
            e = e.context(format!("snappy stream at file offset {start}, offset counted in decompressed bytes"));
        }
        Error::decode(&self.file, e)
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
        let filled = self.data.len();
        self.data.resize(filled + filled.max(self.window), 0);
        let mut at = filled;
        while at < self.data.len() {
            match input.read(&mut self.data[at..]) {
                Ok(0) => {
                    self.eof = true;
                    self.input = None;
                    break;
                }
                Ok(n) => at += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.data.truncate(at);
                    return Err(self.read_error(e));
                }
            }
        }
        self.data.truncate(at);
        Ok(())
    }

    fn read_error(&self, e: std::io::Error) -> Error {
        let e = match e.downcast::<Error>() {
            Ok(storage) => return storage,
            Err(e) => e,
        };
        match self.compressed_at {
            Some(start) => Error::decode(
                &self.file,
                DecodeError::new(DecodeErrorKind::Invalid(format!("key group {}: bad snappy stream: {e}", self.kg)), start),
            ),
            None => Error::io(&self.file, e),
        }
    }
}

impl Iterator for KeyGroupEntries {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            if let Some(e) = self.pending.next() {
                return Some(Ok(e));
            }
            if matches!(self.progress, Progress::Done) && self.input.is_none() {
                return None;
            }
            // A step that ran out of window (or ended the key group before everything was read)
            // is retried, from where it started, on a larger window: steps only read.
            let progress = self.progress;
            let mut c = Cursor::with_base(&self.data[self.pos..], self.base + self.pos as u64);
            let step = self.decoder.step(&mut c, self.kg, &mut self.progress);
            let consumed = (c.position() - self.base) as usize - self.pos;
            let short = match &step {
                Err(e) => matches!(e.kind, DecodeErrorKind::Truncated { .. } | DecodeErrorKind::LengthTooLarge { .. }),
                Ok(_) => matches!(self.progress, Progress::Done),
            };
            if short && !self.eof {
                self.progress = progress;
                if let Err(e) = self.refill() {
                    self.progress = Progress::Done;
                    self.input = None;
                    return Some(Err(e));
                }
                continue;
            }
            self.pos += consumed;
            match step {
                Ok(Some(entries)) => self.pending = entries.into_iter(),
                Ok(None) => {
                    self.input = None;
                    self.data = Vec::new();
                    return None;
                }
                Err(e) => {
                    self.progress = Progress::Done;
                    self.input = None;
                    return Some(Err(self.error(e)));
                }
            }
        }
    }
}

impl std::iter::FusedIterator for KeyGroupEntries {}

/// Decodes keyed-state entries of one backend's states: the RocksDB key/value layout (canonical
/// stream, RocksDB column families) and the heap checkpoint's triples.
#[derive(Debug, Clone)]
pub struct KeyedDecoder {
    operator_id: OperatorId,
    key_serializer: TypeSerializer,
    decoders: Vec<StateDecoder>,
    key_group_prefix: usize,
}

impl KeyedDecoder {
    /// A decoder for the states of `meta`, for an operator with `max_parallelism` key groups.
    pub fn new(operator_id: OperatorId, max_parallelism: u32, meta: &KeyedBackendMeta) -> R<KeyedDecoder> {
        Ok(KeyedDecoder {
            operator_id,
            key_serializer: meta.key_serializer.clone(),
            decoders: meta.states.iter().map(StateDecoder::new).collect::<R<Vec<_>>>()?,
            key_group_prefix: if max_parallelism > 128 { 2 } else { 1 },
        })
    }

    /// Bytes of the key-group prefix of every key (1 up to max parallelism 128, else 2).
    pub fn key_group_prefix_len(&self) -> usize {
        self.key_group_prefix
    }

    /// The key group a RocksDB-layout key belongs to.
    pub fn key_group_of(&self, key: &[u8]) -> Option<u32> {
        match self.key_group_prefix {
            2 => key.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]) as u32),
            _ => key.first().map(|&b| b as u32),
        }
    }

    /// Decodes one RocksDB-layout key/value pair of state `state` (its index in the proxy):
    /// one entry, or one per map user key. `key_base` and `value_base` are the absolute offsets
    /// of the bytes, for errors.
    pub fn decode_kv(&self, state: usize, key: &[u8], key_base: u64, value: &[u8], value_base: u64) -> R<Vec<Entry>> {
        let d = self.decoders.get(state).ok_or_else(|| {
            DecodeError::new(DecodeErrorKind::InvalidValue { what: "kv state id", value: state as i64 }, key_base)
        })?;
        let kg = self
            .key_group_of(key)
            .ok_or_else(|| DecodeError::new(DecodeErrorKind::Invalid("key shorter than its key-group prefix".into()), key_base))?;
        self.canonical_entry(d, kg, key, key_base, value, value_base).context_with(|| format!("state {:?}", d.name))
    }

    fn decoder(&self, c: &Cursor<'_>, id: i16, at: u64) -> R<&StateDecoder> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.decoders.get(i))
            .ok_or_else(|| c.error_at(DecodeErrorKind::InvalidValue { what: "kv state id", value: id.into() }, at))
    }

    /// Decodes the next stored entry of a key group from `c` (which starts where the previous
    /// step stopped): its entries (one; a heap map state's key gives one per map entry), or
    /// `None` once the key group has ended, checked to end with `c`'s bytes.
    fn step(&self, c: &mut Cursor<'_>, kg: u32, p: &mut Progress) -> R<Option<Vec<Entry>>> {
        loop {
            match *p {
                Progress::Done => return Ok(None),
                Progress::CanonicalStart => {
                    let at = c.position();
                    let state_id = c.i16("kv state id")?;
                    *p = Progress::Canonical { state_id, at };
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
                    let mut key = key.to_vec();
                    key[0] = first & !META_DATA_FOLLOWS;
                    let e = self
                        .canonical_entry(d, kg, &key, key_at + 4, value, value_at + 4)
                        .context_with(|| format!("state {:?}", d.name))?;
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
                    return Ok(Some(e));
                }
                Progress::Heap { states_left: 0 } => {
                    c.expect_end("key group")?;
                    *p = Progress::Done;
                }
                Progress::Heap { states_left } => {
                    let at = c.position();
                    let id = c.i16("kv state id")?;
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
                    let e = self.heap_entry(d, kg, c).context_with(|| format!("state {:?} entry {i}", d.name))?;
                    *p = Progress::HeapEntries { state, i: i + 1, n, states_left };
                    return Ok(Some(e));
                }
            }
        }
    }

    /// Decodes one RocksDB-layout key/value pair.
    fn canonical_entry(&self, d: &StateDecoder, kg: u32, key: &[u8], key_base: u64, value: &[u8], value_base: u64) -> R<Vec<Entry>> {
        let mut k = Cursor::with_base(key, key_base);
        let stored_kg = if self.key_group_prefix == 2 { k.u16("key-group prefix")? as u32 } else { k.u8("key-group prefix")? as u32 };
        if stored_kg != kg {
            return Err(k.error_at(DecodeErrorKind::Invalid(format!("entry of key group {stored_kg} inside key group {kg}")), key_base));
        }
        if d.kind == StateKind::Timer {
            let (timestamp, tkey, tns, key_bytes, ns_bytes) = decode_timer(&d.value, &mut k)?;
            k.expect_end("timer key")?;
            return Ok(vec![self.entry(d, kg, tkey, tns, None, Value::Int(timestamp), None, RawEntry { key: key_bytes, namespace: ns_bytes, user_key: None, value: value.to_vec() })]);
        }
        let key_ser = &self.key_serializer;
        let ns_ser = d.namespace.as_ref().ok_or_else(|| k.error(DecodeErrorKind::Invalid("no namespace serializer".into())))?;
        let ambiguous = key_ser.fixed_length().is_none() && ns_ser.fixed_length().is_none();
        let (key_value, key_bytes) = decode_span(key_ser, &mut k)?;
        if ambiguous {
            skip_length_suffix(&mut k, key_bytes.len())?;
        }
        let (ns_value, ns_bytes) = decode_span(ns_ser, &mut k)?;
        if ambiguous {
            skip_length_suffix(&mut k, ns_bytes.len())?;
        }
        let mut v = Cursor::with_base(value, value_base);
        let raw = |user_key: Option<Vec<u8>>| RawEntry { key: key_bytes.clone(), namespace: ns_bytes.clone(), user_key, value: value.to_vec() };
        match d.kind {
            StateKind::Map => {
                let (uk_ser, uv_ser) = d.value.map_key_value().ok_or_else(|| k.error(DecodeErrorKind::Invalid("map state without a map serializer".into())))?;
                let uk_bytes = k.rest();
                let user_key = decode_framed(uk_ser, uk_bytes, k.position() - uk_bytes.len() as u64)?;
                let is_null = v.bool("map value null flag")?;
                let (value, ttl) = if is_null { (Value::Null, None) } else { decode_value_framed(uv_ser, &mut v)? };
                Ok(vec![self.entry(d, kg, key_value, ns_value, Some(user_key), value, ttl, raw(Some(uk_bytes.to_vec())))])
            }
            StateKind::List => {
                k.expect_end("list state key")?;
                let elem = d.value.list_element().ok_or_else(|| k.error(DecodeErrorKind::Invalid("list state without a list serializer".into())))?;
                let (items, ttl) = decode_delimited_list(elem, &mut v)?;
                Ok(vec![self.entry(d, kg, key_value, ns_value, None, Value::List(items), ttl, raw(None))])
            }
            _ => {
                k.expect_end("state key")?;
                let (value, ttl) = decode_value_framed(&d.value, &mut v)?;
                Ok(vec![self.entry(d, kg, key_value, ns_value, None, value, ttl, raw(None))])
            }
        }
    }

    fn heap_entry(&self, d: &StateDecoder, kg: u32, c: &mut Cursor<'_>) -> R<Vec<Entry>> {
        if d.kind == StateKind::Timer {
            let (timestamp, tkey, tns, key_bytes, ns_bytes) = decode_timer(&d.value, c)?;
            return Ok(vec![self.entry(d, kg, tkey, tns, None, Value::Int(timestamp), None, RawEntry { key: key_bytes, namespace: ns_bytes, user_key: None, value: Vec::new() })]);
        }
        let ns_ser = d.namespace.as_ref().ok_or_else(|| c.error(DecodeErrorKind::Invalid("no namespace serializer".into())))?;
        let (ns_value, ns_bytes) = decode_span(ns_ser, c)?;
        let (key_value, key_bytes) = decode_span(&self.key_serializer, c)?;
        match d.kind {
            StateKind::Map => {
                let (uk_ser, uv_ser) = d.value.map_key_value().ok_or_else(|| c.error(DecodeErrorKind::Invalid("map state without a map serializer".into())))?;
                let n = c.count("map size", 1)?;
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    let (uk, uk_bytes) = decode_span(uk_ser, c)?;
                    let null_at = c.position();
                    let is_null = c.bool("map value null flag")?;
                    let (value, ttl) = if is_null { (Value::Null, None) } else { decode_value(uv_ser, c)? };
                    let value_bytes = c_slice(c, null_at);
                    out.push(self.entry(
                        d,
                        kg,
                        key_value.clone(),
                        ns_value.clone(),
                        Some(uk),
                        value,
                        ttl,
                        RawEntry { key: key_bytes.clone(), namespace: ns_bytes.clone(), user_key: Some(uk_bytes), value: value_bytes },
                    ));
                }
                Ok(out)
            }
            StateKind::List => {
                let elem = d.value.list_element().ok_or_else(|| c.error(DecodeErrorKind::Invalid("list state without a list serializer".into())))?;
                let n = c.count("list size", 1)?;
                let mut items = Vec::with_capacity(n);
                let mut raw = Vec::new();
                let mut ttl = None;
                for i in 0..n {
                    let at = c.position();
                    let (item, t) = decode_value(elem, c)?;
                    if i > 0 {
                        raw.push(LIST_DELIMITER);
                    }
                    raw.extend_from_slice(&c_slice(c, at));
                    ttl = ttl.max(t);
                    items.push(item);
                }
                Ok(vec![self.entry(d, kg, key_value, ns_value, None, Value::List(items), ttl, RawEntry { key: key_bytes, namespace: ns_bytes, user_key: None, value: raw })])
            }
            _ => {
                let at = c.position();
                let (value, ttl) = decode_value(&d.value, c)?;
                let raw = c_slice(c, at);
                Ok(vec![self.entry(d, kg, key_value, ns_value, None, value, ttl, RawEntry { key: key_bytes, namespace: ns_bytes, user_key: None, value: raw })])
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn entry(&self, d: &StateDecoder, kg: u32, key: Value, namespace: Value, user_key: Option<Value>, value: Value, ttl_timestamp: Option<i64>, raw: RawEntry) -> Entry {
        Entry {
            operator_id: self.operator_id,
            state: d.name.to_string(),
            kind: d.kind,
            key_group: Some(kg),
            key: Some(key),
            namespace: Some(namespace),
            user_key,
            value,
            ttl_timestamp,
            raw,
        }
    }
}

/// The bytes a cursor consumed since absolute offset `from`.
pub(crate) fn c_slice(c: &Cursor<'_>, from: u64) -> Vec<u8> {
    c.consumed_since(from).to_vec()
}

/// Decodes one value and returns it with the exact bytes it took.
pub(crate) fn decode_span(ser: &TypeSerializer, c: &mut Cursor<'_>) -> R<(Value, Vec<u8>)> {
    let at = c.position();
    let v = ser.decode(c)?;
    Ok((v, c_slice(c, at)))
}

/// Decodes a value that fills `bytes` exactly; what its serializer cannot interpret stays
/// opaque bytes, corruption is an error.
pub(crate) fn decode_framed(ser: &TypeSerializer, bytes: &[u8], base: u64) -> R<Value> {
    ser.decode_framed(bytes, base)
}

/// Decodes a value, unwrapping a TTL wrapper into (value, last-access timestamp).
pub(crate) fn decode_value(ser: &TypeSerializer, c: &mut Cursor<'_>) -> R<(Value, Option<i64>)> {
    match ser.ttl_inner() {
        Some(inner) => {
            let ts = c.i64("TTL last-access timestamp")?;
            Ok((inner.decode(c)?, Some(ts)))
        }
        None => Ok((ser.decode(c)?, None)),
    }
}

/// Like [`decode_value`] for a value that fills the rest of `c`; opaque serializers keep the bytes.
pub(crate) fn decode_value_framed(ser: &TypeSerializer, c: &mut Cursor<'_>) -> R<(Value, Option<i64>)> {
    let (inner, ts) = match ser.ttl_inner() {
        Some(inner) => (inner, Some(c.i64("TTL last-access timestamp")?)),
        None => (ser, None),
    };
    let base = c.position();
    let rest = c.rest();
    Ok((decode_framed(inner, rest, base)?, ts))
}

/// A RocksDB-layout list value: elements joined by `,`.
fn decode_delimited_list(elem: &TypeSerializer, c: &mut Cursor<'_>) -> R<(Vec<Value>, Option<i64>)> {
    let mut items = Vec::new();
    let mut ttl = None;
    while !c.is_empty() {
        let (item, t) = decode_value(elem, c)?;
        items.push(item);
        ttl = ttl.max(t);
        if !c.is_empty() {
            let at = c.position();
            let d = c.u8("list delimiter")?;
            if d != LIST_DELIMITER {
                return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "list delimiter", value: d.into() }, at));
            }
        }
    }
    Ok((items, ttl))
}

/// A decoded timer: timestamp, key, namespace, and the bytes the key and the namespace took.
pub(crate) type Timer = (i64, Value, Value, Vec<u8>, Vec<u8>);

/// `TimerSerializer`: sign-flipped `i64` timestamp, key, namespace.
pub(crate) fn decode_timer(ser: &TypeSerializer, c: &mut Cursor<'_>) -> R<Timer> {
    let (key_ser, ns_ser) = ser
        .timer_key_namespace()
        .ok_or_else(|| c.error(DecodeErrorKind::Invalid(format!("timer state with serializer {}", ser.class_name()))))?;
    let timestamp = c.i64("timer timestamp")? ^ i64::MIN;
    let (key, key_bytes) = decode_span(key_ser, c)?;
    let (ns, ns_bytes) = decode_span(ns_ser, c)?;
    Ok((timestamp, key, ns, key_bytes, ns_bytes))
}

/// Skips the minimum-width little-endian length suffix the RocksDB layout writes after a key
/// (or namespace) when both key and namespace serializers are variable-length
/// (`CompositeKeySerializationUtils.writeLengthFrom`), and checks it.
fn skip_length_suffix(c: &mut Cursor<'_>, len: usize) -> R<()> {
    let at = c.position();
    let mut n = len;
    let mut stored: u64 = 0;
    let mut i = 0;
    loop {
        stored |= (c.u8("length suffix")? as u64) << (8 * i);
        i += 1;
        n >>= 8;
        if n == 0 {
            break;
        }
    }
    if stored != len as u64 {
        return Err(c.error_at(DecodeErrorKind::Invalid(format!("length suffix says {stored}, the value took {len} bytes")), at));
    }
    Ok(())
}

/// Whether a stream handle is one this module reads.
pub fn is_key_groups(h: &StreamStateHandle) -> bool {
    !matches!(h, StreamStateHandle::EmptySegmentFile)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::metadata::handles::KeyedStateHandle;
    use crate::storage::LocalStorage;

    fn metadata_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                metadata_files(&p, out);
            } else if p.file_name().is_some_and(|n| n == "_metadata") {
                out.push(p);
            }
        }
    }

    /// Every key group of every key-groups handle in `testdata/` decodes to the same entries
    /// whatever the window: with windows of a few bytes every stored entry (and the key group's
    /// end) straddles a refill, which must resume exactly where the step started.
    #[test]
    fn tiny_windows_decode_what_one_window_does() {
        let mut files = Vec::new();
        metadata_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata"), &mut files);
        files.sort();
        let (mut groups, mut entries) = (0, 0);
        for f in files {
            let snapshot = Snapshot::open(Arc::new(LocalStorage), f.to_str().unwrap()).unwrap();
            for op in &snapshot.metadata.operators {
                for st in &op.subtasks {
                    let Some(KeyedStateHandle::KeyGroups(h)) = st.state.as_ref().and_then(|s| s.managed_keyed_state.as_ref()) else { continue };
                    let reader = KeyedHandleReader::open(&snapshot, op.operator_id, op.max_parallelism, h)
                        .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                    for kg in reader.key_groups() {
                        let want = reader.read_key_group(kg).unwrap();
                        for window in [1, 2, 3, 5, 8, 13, 100] {
                            let got: Vec<Entry> = reader
                                .key_group_entries(kg)
                                .unwrap()
                                .with_window(window)
                                .collect::<Result<_>>()
                                .unwrap_or_else(|e| panic!("{} key group {kg} window {window}: {e}", f.display()));
                            // compared as text: a NaN (SQL state holds some) is never == itself
                            assert!(format!("{got:?}") == format!("{want:?}"), "{} key group {kg}: window {window} decodes differently", f.display());
                        }
                        groups += 1;
                        entries += want.len();
                    }
                }
            }
        }
        assert!(groups > 100 && entries > 1000, "only {groups} key groups, {entries} entries found in testdata/");
    }

    /// A key group cut short fails the same way, with the same message, whatever the window.
    #[test]
    fn truncation_errors_do_not_depend_on_the_window() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/flink-2.3.0");
        let mut checked = 0;
        for case in ["heap-savepoint-canonical", "heap-checkpoint", "heap-checkpoint-compressed", "rocksdb-savepoint-canonical"] {
            let mut files = Vec::new();
            metadata_files(&root.join(case), &mut files);
            let src = files.first().unwrap_or_else(|| panic!("no {case} in testdata/flink-2.3.0")).parent().unwrap();
            let tmp = tempfile::tempdir().unwrap();
            for e in std::fs::read_dir(src).unwrap().flatten() {
                std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
            }
            let snapshot = Snapshot::open(Arc::new(LocalStorage), tmp.path().to_str().unwrap()).unwrap();
            for op in &snapshot.metadata.operators {
                let Some(KeyedStateHandle::KeyGroups(h)) = op.subtasks.first().and_then(|st| st.state.as_ref()).and_then(|s| s.managed_keyed_state.as_ref()) else { continue };
                let StreamStateHandle::RelativeFile { .. } = &h.delegate else { continue };
                let reader = KeyedHandleReader::open(&snapshot, op.operator_id, op.max_parallelism, h).unwrap();
                let (last, start, end) = *reader.spans.last().unwrap();
                // cut the file inside its last key group (which runs to the end of the file)
                let file = reader.source.name();
                let orig = std::fs::read(&file).unwrap();
                assert_eq!(end, orig.len() as u64);
                std::fs::write(&file, &orig[..(start + (end - start) / 2) as usize]).unwrap();
                let reader = KeyedHandleReader::open(&snapshot, op.operator_id, op.max_parallelism, h).unwrap();
                let one = reader.key_group_entries(last).unwrap().collect::<Result<Vec<_>>>().map(|v| v.len());
                let tiny = reader.key_group_entries(last).unwrap().with_window(3).collect::<Result<Vec<_>>>().map(|v| v.len());
                let (one, tiny) = (one.unwrap_err().to_string(), tiny.unwrap_err().to_string());
                assert_eq!(one, tiny, "{case}");
                assert!(one.contains("byte offset"), "{case}: {one}");
                std::fs::write(&file, &orig).unwrap();
                checked += 1;
            }
        }
        assert!(checked >= 8, "only {checked} handles cut");
    }
}
