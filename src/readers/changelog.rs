//! Keyed state of the changelog state backend (FLIP-158): a `ChangelogStateBackendHandle` is the
//! *materialized* state (ordinary keyed handles of the delegate backend, read by
//! [`KeyedHandleReader`]) plus the *non-materialized* state changes logged since (the DSTL:
//! in-memory handles or change sets in files), replayed on top in log order.
//! Spec: `formats/changelog.md`.
//!
//! Memory: the changes are read once and indexed by key group (they are bounded by design: only
//! what happened since the last materialization). A key group is then streamed from the
//! materialized handles: entries no change touches pass straight through, the few that are
//! touched are held, the key group's changes applied to them, and the results emitted.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind, Error, Result, ResultExt};
use crate::metadata::handles::{ChangelogStateBackendHandle, KeyedStateHandle};
use crate::model::value::Value;
use crate::model::{Entry, KeyGroupRange, OperatorId, RawEntry, StateKind};
use crate::readers::keyed::{decode_span, decode_timer, decode_value, KeyGroupEntries, KeyedHandleReader};
use crate::readers::rocksdb::RocksDbHandleReader;
use crate::readers::meta::{read_state_meta_info, BackendStateType, KeyedBackendMeta, StateMetaInfo, NAMESPACE_SERIALIZER, VALUE_SERIALIZER};
use crate::readers::serializers::TypeSerializer;
use crate::readers::stream::{snappy_decompress, StreamSource};
use crate::snapshot::Snapshot;

type R<T> = std::result::Result<T, DecodeError>;

/// `StateChangeOperation` codes (`flink-statebackend-changelog/.../StateChangeOperation.java`,
/// 1.15 and later).
mod op {
    pub const CLEAR: u8 = 0;
    pub const SET: u8 = 1;
    pub const SET_INTERNAL: u8 = 2;
    pub const ADD: u8 = 3;
    pub const MERGE_NS: u8 = 4;
    pub const ADD_ELEMENT: u8 = 5;
    pub const ADD_OR_UPDATE_ELEMENT: u8 = 6;
    pub const REMOVE_ELEMENT: u8 = 7;
    pub const METADATA: u8 = 8;

    pub fn name(op: u8) -> &'static str {
        match op {
            CLEAR => "CLEAR",
            SET => "SET",
            SET_INTERNAL => "SET_INTERNAL",
            ADD => "ADD",
            MERGE_NS => "MERGE_NS",
            ADD_ELEMENT => "ADD_ELEMENT",
            ADD_OR_UPDATE_ELEMENT => "ADD_OR_UPDATE_ELEMENT",
            REMOVE_ELEMENT => "REMOVE_ELEMENT",
            METADATA => "METADATA",
            _ => "unknown",
        }
    }
}

/// The key group of meta-data changes (`AbstractStateChangeLogger.COMMON_KEY_GROUP`).
const COMMON_KEY_GROUP: i32 = -1;
/// The DSTL file's first byte when the change sets are Snappy-framed.
const COMPRESSED: u8 = 1;
/// The list element delimiter of the canonical layout that [`RawEntry::value`] uses.
const LIST_DELIMITER: u8 = b',';

/// A registered state: from the materialized part's proxy or a METADATA change.
#[derive(Debug, Clone)]
struct LoggedState {
    meta: StateMetaInfo,
}

impl LoggedState {
    fn kind(&self) -> R<StateKind> {
        self.meta
            .kind()
            .ok_or_else(|| DecodeError::new(DecodeErrorKind::Invalid(format!("state {:?}: unknown keyed state type", self.meta.name)), 0))
    }

    fn value(&self) -> R<&TypeSerializer> {
        self.meta
            .serializer(VALUE_SERIALIZER)
            .ok_or_else(|| DecodeError::new(DecodeErrorKind::Invalid(format!("state {:?} has no value serializer", self.meta.name)), 0))
    }

    fn namespace(&self) -> R<&TypeSerializer> {
        self.meta
            .serializer(NAMESPACE_SERIALIZER)
            .ok_or_else(|| DecodeError::new(DecodeErrorKind::Invalid(format!("state {:?} has no namespace serializer", self.meta.name)), 0))
    }
}

/// One data change of keyed (not timer) state, kept as stored until its key group is read.
#[derive(Debug)]
struct Change {
    state: usize,
    op: u8,
    /// The bytes after the operation and state id: scope (key, namespace), then the payload.
    data: Vec<u8>,
    /// Absolute offset of `data` in its source.
    at: u64,
    /// Index into the sources (file or `_metadata`) for messages.
    source: usize,
}

/// A (state, key, namespace) as their serializers wrote them.
type Slot = (usize, Vec<u8>, Vec<u8>);

/// What a held slot holds, as stored bytes (decoded when emitted).
#[derive(Debug)]
enum Held {
    /// Value, reducing and aggregating state: the value serializer's bytes (TTL wrapper included).
    Single(Vec<u8>),
    /// List state: each element's bytes.
    List(Vec<Vec<u8>>),
    /// Map state: user-key bytes to the null flag followed by the value bytes.
    Map(BTreeMap<Vec<u8>, Vec<u8>>),
}

/// What the changes did to one timer: set (in this key group) or removed.
type TimerFates = HashMap<(usize, Vec<u8>), Option<u32>>;

/// Everything the change log says, read and indexed.
#[derive(Debug, Default)]
struct Log {
    states: Vec<LoggedState>,
    by_name: HashMap<String, usize>,
    /// State short id (`AbstractStateChangeLogger.stateShortId`) to state, as METADATA changes
    /// assigned them so far.
    ids: HashMap<i16, usize>,
    sources: Vec<String>,
    changes: BTreeMap<u32, Vec<Change>>,
    timers: TimerFates,
}

impl Log {
    fn register(&mut self, meta: StateMetaInfo) -> usize {
        match self.by_name.get(&meta.name) {
            Some(&i) => {
                self.states[i] = LoggedState { meta };
                i
            }
            None => {
                self.by_name.insert(meta.name.clone(), self.states.len());
                self.states.push(LoggedState { meta });
                self.states.len() - 1
            }
        }
    }

    /// Reads every non-materialized handle of `h`, in order.
    fn read(&mut self, snapshot: &Snapshot, h: &ChangelogStateBackendHandle) -> Result<()> {
        // A DSTL file holds the change sets of many operators: read (and decompress) it once.
        let mut files: HashMap<String, (Arc<Vec<u8>>, bool)> = HashMap::new();
        for (n, handle) in h.non_materialized.iter().enumerate() {
            match handle {
                KeyedStateHandle::InMemoryChangelog(m) => {
                    let source = self.sources.len();
                    self.sources.push(format!("{} (in-memory state changes, non-materialized handle [{n}])", snapshot.metadata_location));
                    for (i, (kg, bytes)) in m.changes.iter().enumerate() {
                        self.record(*kg, bytes, 0, source, h.key_group_range)
                            .map_err(|e| Error::decode(&self.sources[source], e.context(format!("change [{i}] (offsets count from the change's first byte)"))))?;
                    }
                }
                KeyedStateHandle::ChangelogStream(s) => {
                    for (offset, stream) in &s.handles {
                        let src = StreamSource::open(snapshot, stream)?;
                        let name = src.name();
                        let (data, compressed) = match files.get(&name) {
                            Some(f) => f.clone(),
                            None => {
                                let raw = src.read_range(0..src.size())?;
                                let flag = *raw.first().ok_or_else(|| {
                                    Error::decode(&name, DecodeError::new(DecodeErrorKind::Truncated { what: "compression flag", needed: 1, available: 0 }, 0))
                                })?;
                                let f = if flag == COMPRESSED {
                                    let out = snappy_decompress(&raw[1..])
                                        .map_err(|e| Error::decode(&name, DecodeError::new(DecodeErrorKind::Invalid(format!("bad snappy stream: {e}")), 1)))?;
                                    (Arc::new(out), true)
                                } else {
                                    // The logical stream starts after the flag byte.
                                    (Arc::new(raw[1..].to_vec()), false)
                                };
                                files.insert(name.clone(), f.clone());
                                f
                            }
                        };
                        let source = self.sources.len();
                        self.sources.push(if compressed { format!("{name} (snappy, offsets count decompressed bytes)") } else { name });
                        self.change_set(&data, *offset, compressed, source, h.key_group_range)
                            .map_err(|e| Error::decode(&self.sources[source], e.context(format!("change set at offset {offset}"))))?;
                    }
                }
                other => {
                    return Err(Error::Invalid(format!(
                        "{}: a {} among the state changes of a changelog handle",
                        snapshot.metadata_location,
                        other.class_name()
                    )))
                }
            }
        }
        Ok(())
    }

    /// One change set (`StateChangeFormat.writeChangeSet`) at `offset` of a DSTL file's logical
    /// stream.
    fn change_set(&mut self, data: &[u8], offset: u64, compressed: bool, source: usize, range: KeyGroupRange) -> R<()> {
        // Uncompressed, the logical stream is the file after its flag byte: offsets in messages
        // are file offsets.
        let base = if compressed { 0 } else { 1 };
        let start = usize::try_from(offset).ok().filter(|&o| o <= data.len()).ok_or_else(|| {
            DecodeError::new(DecodeErrorKind::Invalid(format!("change set offset {offset} lies past the end of the {}-byte stream", data.len())), base)
        })?;
        let mut c = Cursor::with_base(&data[start..], base + offset);
        // A group is at least its count and key group.
        let groups = c.count("number of key groups", 8)?;
        for _ in 0..groups {
            let n = c.count("number of changes", 4)?;
            let kg = c.i32("key group")?;
            for _ in 0..n {
                let len_at = c.position();
                let bytes = c.len_prefixed("state change")?;
                self.record(kg, bytes, len_at + 4, source, range)?;
            }
        }
        Ok(())
    }

    /// One change (`AbstractStateChangeLogger.serialize` / `logMetaIfNeeded`).
    fn record(&mut self, kg: i32, bytes: &[u8], at: u64, source: usize, range: KeyGroupRange) -> R<()> {
        let mut c = Cursor::with_base(bytes, at);
        let op_at = c.position();
        let op = c.u8("state change operation")?;
        if op == op::METADATA {
            return self.metadata(&mut c).context_with(|| "METADATA change".into());
        }
        if op > op::REMOVE_ELEMENT {
            return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "state change operation", value: op.into() }, op_at));
        }
        let id_at = c.position();
        let id = c.i16("state id")?;
        let state = *self
            .ids
            .get(&id)
            .ok_or_else(|| c.error_at(DecodeErrorKind::Invalid(format!("state id {id} was not registered by a METADATA change before")), id_at))?;
        if kg == COMMON_KEY_GROUP {
            return Err(c.error_at(DecodeErrorKind::Invalid(format!("a {} data change in the meta-data key group", op::name(op))), op_at));
        }
        let kg = u32::try_from(kg).map_err(|_| c.error_at(DecodeErrorKind::InvalidValue { what: "key group of a data change", value: kg.into() }, op_at))?;
        // Flink applies only changes of the handle's key groups (`ChangelogBackendLogApplier`).
        if !range.contains(kg) {
            return Ok(());
        }
        let s = &self.states[state];
        let name = s.meta.name.clone();
        if s.kind()? == StateKind::Timer {
            let ser = s.value()?.clone();
            return self.timer_change(op, kg, state, &ser, &mut c).context_with(|| format!("{} of timer {name:?}", op::name(op)));
        }
        let at = c.position();
        self.changes.entry(kg).or_default().push(Change { state, op, data: c.rest().to_vec(), at, source });
        Ok(())
    }

    /// `PriorityQueueStateChangeLoggerImpl` (no scope) and `ChangelogKeyGroupedPriorityQueue`:
    /// ADD_ELEMENT holds `i32 n` elements, REMOVE_ELEMENT one. A timer queue is a set, so each
    /// timer's last change decides.
    fn timer_change(&mut self, op: u8, kg: u32, state: usize, ser: &TypeSerializer, c: &mut Cursor<'_>) -> R<()> {
        match op {
            op::ADD_ELEMENT => {
                // A timer is at least its 8-byte timestamp.
                let n = c.count("number of timers", 8)?;
                for _ in 0..n {
                    let at = c.position();
                    decode_timer(ser, c)?;
                    self.timers.insert((state, c.consumed_since(at).to_vec()), Some(kg));
                }
            }
            op::REMOVE_ELEMENT => {
                let at = c.position();
                decode_timer(ser, c)?;
                self.timers.insert((state, c.consumed_since(at).to_vec()), None);
            }
            other => return Err(c.error(DecodeErrorKind::InvalidValue { what: "operation on a timer queue", value: other.into() })),
        }
        c.expect_end("timer change")
    }

    /// A METADATA change: meta-info version, `StateMetaInfoSnapshot`, for key/value state the TTL
    /// config (a Java-serialized `StateTtlConfig`) and default value, then the state's short id
    /// and backend state type code.
    fn metadata(&mut self, c: &mut Cursor<'_>) -> R<()> {
        let v_at = c.position();
        let version = c.i32("meta info version")?;
        if !(6..=7).contains(&version) {
            return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "meta info version", value: version.into() }, v_at));
        }
        let meta = read_state_meta_info(c)?;
        match meta.backend_type {
            BackendStateType::KeyValue => {
                if c.bool("TTL enabled flag")? {
                    skip_java_object(c).context_with(|| "Java-serialized StateTtlConfig".into())?;
                }
                if c.bool("default value flag")? {
                    let ser = meta
                        .serializer(VALUE_SERIALIZER)
                        .ok_or_else(|| c.error(DecodeErrorKind::Invalid(format!("state {:?} has no value serializer", meta.name))))?;
                    ser.decode(c).context_with(|| "default value".into())?;
                }
            }
            BackendStateType::PriorityQueue => {}
            other => return Err(c.error(DecodeErrorKind::Invalid(format!("state {:?}: a {other:?} state in the change log", meta.name)))),
        }
        let id = c.i16("state id")?;
        let code_at = c.position();
        let code = c.u8("backend state type code")?;
        let want = if meta.backend_type == BackendStateType::KeyValue { 0 } else { 3 };
        if code != want {
            return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "backend state type code", value: code.into() }, code_at));
        }
        c.expect_end("METADATA change")?;
        let i = self.register(meta);
        self.ids.insert(id, i);
        Ok(())
    }
}

/// One materialized handle: the HashMap backend's key groups, or a RocksDB native handle.
#[derive(Debug)]
enum Materialized {
    Heap(KeyedHandleReader),
    /// The RocksDB instance is opened once (its files assembled into a working directory that
    /// lives as long as the reader) and re-aimed at each key group in turn.
    RocksDb {
        reader: Arc<Mutex<RocksDbHandleReader>>,
        range: KeyGroupRange,
        meta: KeyedBackendMeta,
        /// The key groups holding an entry.
        key_groups: Vec<u32>,
    },
}

impl Materialized {
    fn meta(&self) -> &KeyedBackendMeta {
        match self {
            Materialized::Heap(r) => r.meta(),
            Materialized::RocksDb { meta, .. } => meta,
        }
    }

    fn range(&self) -> KeyGroupRange {
        match self {
            Materialized::Heap(r) => r.handle().key_group_range,
            Materialized::RocksDb { range, .. } => *range,
        }
    }

    fn key_groups(&self) -> Vec<u32> {
        match self {
            Materialized::Heap(r) => r.key_groups().collect(),
            Materialized::RocksDb { key_groups, .. } => key_groups.clone(),
        }
    }

    fn key_group_entries(&self, kg: u32) -> Result<MaterializedEntries> {
        match self {
            Materialized::Heap(r) => Ok(MaterializedEntries::Heap(r.key_group_entries(kg)?)),
            Materialized::RocksDb { reader, .. } => {
                lock(reader)?.select_key_group(kg)?;
                Ok(MaterializedEntries::RocksDb { reader: reader.clone(), batch: Vec::new().into_iter() })
            }
        }
    }
}

fn lock(reader: &Mutex<RocksDbHandleReader>) -> Result<std::sync::MutexGuard<'_, RocksDbHandleReader>> {
    reader.lock().map_err(|_| Error::Invalid("the RocksDB reader of a materialized changelog handle failed before".into()))
}

/// The materialized entries of one key group. A RocksDB handle's entries come batch by batch
/// (bounded memory); the reader serves one key group at a time, so a key group's entries must
/// be read before the next key group's are asked for (as [`ChangelogHandleReader`] is used).
enum MaterializedEntries {
    Heap(KeyGroupEntries),
    RocksDb { reader: Arc<Mutex<RocksDbHandleReader>>, batch: std::vec::IntoIter<Entry> },
}

impl Iterator for MaterializedEntries {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        match self {
            MaterializedEntries::Heap(e) => e.next(),
            MaterializedEntries::RocksDb { reader, batch } => loop {
                if let Some(e) = batch.next() {
                    return Some(Ok(e));
                }
                match lock(reader).and_then(|mut r| r.next_batch()) {
                    Ok(Some(b)) => *batch = b.into_iter(),
                    Ok(None) => return None,
                    Err(e) => return Some(Err(e)),
                }
            },
        }
    }
}

/// Reads the keyed state of one `ChangelogStateBackendHandle`.
#[derive(Debug)]
pub struct ChangelogHandleReader {
    operator_id: OperatorId,
    materialized: Vec<Materialized>,
    /// The first materialized handle's proxy (the layout of the delegate backend).
    base: Option<KeyedBackendMeta>,
    key_serializer: Option<TypeSerializer>,
    states: Arc<Vec<LoggedState>>,
    by_name: Arc<HashMap<String, usize>>,
    sources: Arc<Vec<String>>,
    changes: BTreeMap<u32, Vec<Change>>,
    timers: Arc<TimerFates>,
    /// Timers set by the changes, by key group.
    timers_by_kg: BTreeMap<u32, Vec<(usize, Vec<u8>)>>,
    key_groups: Vec<u32>,
}

impl ChangelogHandleReader {
    /// Opens the materialized handles and reads (and indexes) every state change.
    pub fn open(snapshot: &Snapshot, operator_id: OperatorId, max_parallelism: u32, handle: &ChangelogStateBackendHandle) -> Result<Self> {
        let mut materialized = Vec::new();
        for h in &handle.materialized {
            match h {
                KeyedStateHandle::KeyGroups(k) => materialized.push(Materialized::Heap(KeyedHandleReader::open(snapshot, operator_id, max_parallelism, k)?)),
                KeyedStateHandle::IncrementalRemote(inc) => {
                    // Every state, every key group of the handle: the replay needs all of them.
                    let mut reader = RocksDbHandleReader::open(snapshot, operator_id, max_parallelism, inc, &[], None)?;
                    let meta = match reader.meta() {
                        Some(m) => m.clone(),
                        None => crate::readers::rocksdb::read_meta(snapshot, inc)?,
                    };
                    let key_groups = reader.key_groups()?;
                    materialized.push(Materialized::RocksDb { reader: Arc::new(Mutex::new(reader)), range: inc.key_group_range, meta, key_groups });
                }
                other => return Err(not_readable(snapshot, other)),
            }
        }
        let base = materialized.first().map(|r| r.meta().clone());
        let mut log = Log::default();
        for r in &materialized {
            for m in &r.meta().states {
                if !log.by_name.contains_key(&m.name) {
                    log.register(m.clone());
                }
            }
        }
        log.read(snapshot, handle)?;
        // The key serializer is in the materialized proxy; before the first materialization only
        // a timer queue's serializer names it.
        let key_serializer = base.as_ref().map(|m| m.key_serializer.clone()).or_else(|| {
            log.states.iter().find_map(|s| s.meta.serializer(VALUE_SERIALIZER).and_then(|v| v.timer_key_namespace()).map(|(k, _)| k.clone()))
        });
        let mut timers_by_kg: BTreeMap<u32, Vec<(usize, Vec<u8>)>> = BTreeMap::new();
        for ((state, element), fate) in &log.timers {
            if let Some(kg) = fate {
                timers_by_kg.entry(*kg).or_default().push((*state, element.clone()));
            }
        }
        let mut key_groups: Vec<u32> = materialized.iter().flat_map(Materialized::key_groups).collect();
        key_groups.extend(log.changes.keys());
        key_groups.extend(timers_by_kg.keys());
        key_groups.sort_unstable();
        key_groups.dedup();
        key_groups.retain(|&kg| handle.key_group_range.contains(kg));
        Ok(ChangelogHandleReader {
            operator_id,
            materialized,
            base,
            key_serializer,
            states: Arc::new(log.states),
            by_name: Arc::new(log.by_name),
            sources: Arc::new(log.sources),
            changes: log.changes,
            timers: Arc::new(log.timers),
            timers_by_kg,
            key_groups,
        })
    }

    /// The states (and serializers) of the handle: the materialized proxy, plus the states
    /// registered since by METADATA changes.
    pub fn meta(&self) -> Result<KeyedBackendMeta> {
        let Some(base) = &self.base else {
            return Err(Error::Invalid(
                "changelog state without a materialized part: its key serializer is not recorded (not readable yet)".into(),
            ));
        };
        let mut meta = base.clone();
        for s in self.states.iter() {
            match meta.states.iter_mut().find(|m| m.name == s.meta.name) {
                Some(_) => {}
                None => meta.states.push(s.meta.clone()),
            }
        }
        Ok(meta)
    }

    /// Key groups that may hold entries, ascending.
    pub fn key_groups(&self) -> impl Iterator<Item = u32> + '_ {
        self.key_groups.iter().copied()
    }

    /// The entries of key group `kg`: the materialized entries with the key group's changes
    /// applied. Each key group is read once (its changes are handed over).
    pub fn key_group_entries(&mut self, kg: u32) -> Result<ChangelogKeyGroupEntries> {
        let mut materialized = VecDeque::new();
        for r in &self.materialized {
            if r.range().contains(kg) {
                materialized.push_back(r.key_group_entries(kg)?);
            }
        }
        let changes = self.changes.remove(&kg).unwrap_or_default();
        let mut out = ChangelogKeyGroupEntries {
            kg,
            operator_id: self.operator_id,
            key_serializer: self.key_serializer.clone(),
            states: self.states.clone(),
            by_name: self.by_name.clone(),
            sources: self.sources.clone(),
            timers: self.timers.clone(),
            new_timers: self.timers_by_kg.remove(&kg).unwrap_or_default(),
            materialized,
            scoped: Vec::new(),
            touched: HashSet::new(),
            held: BTreeMap::new(),
            out: None,
            done: false,
        };
        out.scope(changes)?;
        Ok(out)
    }
}

fn not_readable(snapshot: &Snapshot, h: &KeyedStateHandle) -> Error {
    Error::Invalid(format!(
        "{}: a changelog handle materialized as {}: not readable yet (only the HashMap and RocksDB backends' materialized state is)",
        snapshot.metadata_location,
        h.class_name()
    ))
}

/// The states of a changelog handle (materialized proxy plus states registered in the log),
/// without reading any entry of the materialized part.
pub fn read_meta(snapshot: &Snapshot, handle: &ChangelogStateBackendHandle) -> Result<KeyedBackendMeta> {
    let mut base: Option<KeyedBackendMeta> = None;
    for h in &handle.materialized {
        match h {
            KeyedStateHandle::KeyGroups(k) => {
                let m = KeyedHandleReader::read_meta(snapshot, k)?;
                base.get_or_insert(m);
            }
            KeyedStateHandle::IncrementalRemote(inc) => {
                let m = crate::readers::rocksdb::read_meta(snapshot, inc)?;
                base.get_or_insert(m);
            }
            other => return Err(not_readable(snapshot, other)),
        }
    }
    let Some(mut meta) = base else {
        return Err(Error::Invalid(
            "changelog state without a materialized part: its key serializer is not recorded (not readable yet)".into(),
        ));
    };
    let mut log = Log::default();
    for m in &meta.states {
        log.register(m.clone());
    }
    log.read(snapshot, handle)?;
    for s in log.states.into_iter().skip(meta.states.len()) {
        meta.states.push(s.meta);
    }
    Ok(meta)
}

/// A change with its scope decoded.
#[derive(Debug)]
struct Scoped {
    slot: Slot,
    op: u8,
    /// The payload after the scope.
    payload: Vec<u8>,
    at: u64,
    source: usize,
    /// MERGE_NS: the source namespaces.
    merge_sources: Vec<Vec<u8>>,
}

/// The entries of one key group of a changelog handle ([`ChangelogHandleReader::key_group_entries`]):
/// first the materialized entries no change touches, streamed, then the touched ones with the
/// changes applied, and the timers the changes set. Stops after the first error.
pub struct ChangelogKeyGroupEntries {
    kg: u32,
    operator_id: OperatorId,
    key_serializer: Option<TypeSerializer>,
    states: Arc<Vec<LoggedState>>,
    by_name: Arc<HashMap<String, usize>>,
    sources: Arc<Vec<String>>,
    timers: Arc<TimerFates>,
    new_timers: Vec<(usize, Vec<u8>)>,
    materialized: VecDeque<MaterializedEntries>,
    scoped: Vec<Scoped>,
    touched: HashSet<Slot>,
    held: BTreeMap<Slot, Held>,
    out: Option<std::vec::IntoIter<Entry>>,
    done: bool,
}

impl std::fmt::Debug for ChangelogKeyGroupEntries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangelogKeyGroupEntries").field("kg", &self.kg).field("changes", &self.scoped.len()).finish_non_exhaustive()
    }
}

impl ChangelogKeyGroupEntries {
    fn key_serializer(&self) -> R<&TypeSerializer> {
        self.key_serializer.as_ref().ok_or_else(|| {
            DecodeError::new(DecodeErrorKind::Invalid("no materialized state: the key serializer is not recorded (not readable yet)".into()), 0)
        })
    }

    fn change_error(&self, source: usize, e: DecodeError) -> Error {
        Error::decode(&self.sources[source], e.context(format!("state change of key group {}", self.kg)))
    }

    /// Decodes the scope (key, namespace) of every change and notes the slots they touch.
    fn scope(&mut self, changes: Vec<Change>) -> Result<()> {
        for ch in changes {
            let scoped = self.scope_one(&ch).map_err(|e| self.change_error(ch.source, e))?;
            self.touched.insert(scoped.slot.clone());
            for ns in &scoped.merge_sources {
                self.touched.insert((scoped.slot.0, scoped.slot.1.clone(), ns.clone()));
            }
            self.scoped.push(scoped);
        }
        Ok(())
    }

    fn scope_one(&self, ch: &Change) -> R<Scoped> {
        let s = &self.states[ch.state];
        let mut c = Cursor::with_base(&ch.data, ch.at);
        let (_, key) = decode_span(self.key_serializer()?, &mut c).context_with(|| format!("key of {} on state {:?}", op::name(ch.op), s.meta.name))?;
        let ns_ser = s.namespace()?;
        let (_, ns) = decode_span(ns_ser, &mut c).context_with(|| format!("namespace of {} on state {:?}", op::name(ch.op), s.meta.name))?;
        let at = c.position();
        let mut merge_sources = Vec::new();
        if ch.op == op::MERGE_NS {
            // `KvStateChangeLoggerImpl.namespacesMerged`: target, i32 n, n sources.
            let mut m = c.clone();
            decode_span(ns_ser, &mut m)?;
            let n = m.count("number of merged namespaces", 1)?;
            for _ in 0..n {
                merge_sources.push(decode_span(ns_ser, &mut m)?.1);
            }
            m.expect_end("MERGE_NS change")?;
        }
        Ok(Scoped { slot: (ch.state, key, ns), op: ch.op, payload: c.rest().to_vec(), at, source: ch.source, merge_sources })
    }

    /// Takes a materialized entry into the held slots when a change touches it; gives it back
    /// when it passes through unchanged, `None` when the changes decide about it.
    fn absorb(&mut self, e: Entry) -> R<Option<Entry>> {
        let Some(&state) = self.by_name.get(&e.state) else { return Ok(Some(e)) };
        if e.kind == StateKind::Timer {
            let Value::Int(ts) = e.value else { return Ok(Some(e)) };
            let mut element = (ts ^ i64::MIN).to_be_bytes().to_vec();
            element.extend_from_slice(&e.raw.key);
            element.extend_from_slice(&e.raw.namespace);
            return Ok(if self.timers.contains_key(&(state, element)) { None } else { Some(e) });
        }
        let slot = (state, e.raw.key.clone(), e.raw.namespace.clone());
        if !self.touched.contains(&slot) {
            return Ok(Some(e));
        }
        match e.kind {
            StateKind::Map => {
                let uk = e.raw.user_key.clone().unwrap_or_default();
                match self.held.entry(slot).or_insert_with(|| Held::Map(BTreeMap::new())) {
                    Held::Map(m) => {
                        m.insert(uk, e.raw.value);
                    }
                    _ => return Err(DecodeError::new(DecodeErrorKind::Invalid(format!("map state {:?} held as another kind", e.state)), 0)),
                }
            }
            StateKind::List => {
                let elem = self.states[state].value()?.list_element().ok_or_else(|| {
                    DecodeError::new(DecodeErrorKind::Invalid(format!("list state {:?} without a list serializer", e.state)), 0)
                })?;
                let items = split_list(elem, &e.raw.value)?;
                self.held.insert(slot, Held::List(items));
            }
            _ => {
                self.held.insert(slot, Held::Single(e.raw.value));
            }
        }
        Ok(None)
    }

    /// Applies the changes in log order (the `*StateChangeApplier` classes).
    fn apply(&mut self) -> Result<()> {
        for ch in std::mem::take(&mut self.scoped) {
            let s = &self.states[ch.slot.0];
            let what = format!("{} on state {:?}", op::name(ch.op), s.meta.name);
            apply_one(&self.states, &mut self.held, &ch)
                .context_with(|| what)
                .map_err(|e| self.change_error(ch.source, e))?;
        }
        Ok(())
    }

    /// The held slots and the new timers, as entries.
    fn results(&mut self) -> R<Vec<Entry>> {
        let mut out = Vec::new();
        let held = std::mem::take(&mut self.held);
        for ((state, key, ns), h) in held {
            let s = &self.states[state];
            let kind = s.kind()?;
            let key_value = decode_exact(self.key_serializer()?, &key, "key")?;
            let ns_value = decode_exact(s.namespace()?, &ns, "namespace")?;
            let entry = |user_key: Option<Value>, value: Value, ttl: Option<i64>, raw: RawEntry| Entry {
                operator_id: self.operator_id,
                state: s.meta.name.clone(),
                kind,
                key_group: Some(self.kg),
                key: Some(key_value.clone()),
                namespace: Some(ns_value.clone()),
                user_key,
                value,
                ttl_timestamp: ttl,
                raw,
            };
            match h {
                Held::Single(v) => {
                    let mut c = Cursor::new(&v);
                    let (value, ttl) = decode_value(s.value()?, &mut c)?;
                    c.expect_end("value")?;
                    out.push(entry(None, value, ttl, RawEntry { key: key.clone(), namespace: ns.clone(), user_key: None, value: v }));
                }
                Held::List(items) => {
                    if items.is_empty() {
                        continue;
                    }
                    let elem = s.value()?.list_element().ok_or_else(|| DecodeError::new(DecodeErrorKind::Invalid("list state without a list serializer".into()), 0))?;
                    let mut values = Vec::with_capacity(items.len());
                    let mut raw = Vec::new();
                    let mut ttl = None;
                    for (i, item) in items.iter().enumerate() {
                        let mut c = Cursor::new(item);
                        let (v, t) = decode_value(elem, &mut c)?;
                        c.expect_end("list element")?;
                        values.push(v);
                        ttl = ttl.max(t);
                        if i > 0 {
                            raw.push(LIST_DELIMITER);
                        }
                        raw.extend_from_slice(item);
                    }
                    out.push(entry(None, Value::List(values), ttl, RawEntry { key: key.clone(), namespace: ns.clone(), user_key: None, value: raw }));
                }
                Held::Map(m) => {
                    let (uk_ser, uv_ser) = s.value()?.map_key_value().ok_or_else(|| DecodeError::new(DecodeErrorKind::Invalid("map state without a map serializer".into()), 0))?;
                    for (uk, v) in m {
                        let user_key = decode_exact(uk_ser, &uk, "user key")?;
                        let mut c = Cursor::new(&v);
                        let (value, ttl) = if c.bool("map value null flag")? { (Value::Null, None) } else { decode_value(uv_ser, &mut c)? };
                        c.expect_end("map value")?;
                        out.push(entry(Some(user_key), value, ttl, RawEntry { key: key.clone(), namespace: ns.clone(), user_key: Some(uk), value: v }));
                    }
                }
            }
        }
        for (state, element) in std::mem::take(&mut self.new_timers) {
            let s = &self.states[state];
            let mut c = Cursor::new(&element);
            let (timestamp, key, namespace, key_bytes, ns_bytes) = decode_timer(s.value()?, &mut c)?;
            out.push(Entry {
                operator_id: self.operator_id,
                state: s.meta.name.clone(),
                kind: StateKind::Timer,
                key_group: Some(self.kg),
                key: Some(key),
                namespace: Some(namespace),
                user_key: None,
                value: Value::Int(timestamp),
                ttl_timestamp: None,
                raw: RawEntry { key: key_bytes, namespace: ns_bytes, user_key: None, value: Vec::new() },
            });
        }
        Ok(out)
    }

    fn step(&mut self) -> Result<Option<Entry>> {
        loop {
            if let Some(out) = &mut self.out {
                return Ok(out.next());
            }
            match self.materialized.front_mut().map(Iterator::next) {
                Some(Some(e)) => {
                    let kg = self.kg;
                    if let Some(e) = self.absorb(e?).map_err(|e| Error::Invalid(format!("materialized state of key group {kg}: {e}")))? {
                        return Ok(Some(e));
                    }
                }
                Some(None) => {
                    self.materialized.pop_front();
                }
                None => {
                    self.apply()?;
                    let results = self.results().map_err(|e| {
                        Error::decode(self.sources.first().map_or("change log", String::as_str), e.context(format!("changed entries of key group {}", self.kg)))
                    })?;
                    self.out = Some(results.into_iter());
                }
            }
        }
    }
}

impl Iterator for ChangelogKeyGroupEntries {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for ChangelogKeyGroupEntries {}

/// Decodes a value that must fill `bytes`.
fn decode_exact(ser: &TypeSerializer, bytes: &[u8], what: &'static str) -> R<Value> {
    let mut c = Cursor::new(bytes);
    let v = ser.decode(&mut c)?;
    c.expect_end(what)?;
    Ok(v)
}

/// Splits a canonical-layout list value (elements joined by `,`) into its elements' bytes.
fn split_list(elem: &TypeSerializer, raw: &[u8]) -> R<Vec<Vec<u8>>> {
    let mut c = Cursor::new(raw);
    let mut out = Vec::new();
    while !c.is_empty() {
        let at = c.position();
        decode_value(elem, &mut c)?;
        out.push(c.consumed_since(at).to_vec());
        if !c.is_empty() {
            let d_at = c.position();
            let d = c.u8("list delimiter")?;
            if d != LIST_DELIMITER {
                return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "list delimiter", value: d.into() }, d_at));
            }
        }
    }
    Ok(out)
}

/// Reads a `ListSerializer` value: `i32 n`, then the elements; returns each element's bytes.
fn read_list(elem: &TypeSerializer, c: &mut Cursor<'_>) -> R<Vec<Vec<u8>>> {
    let n = c.count("list size", 1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let at = c.position();
        decode_value(elem, c)?;
        out.push(c.consumed_since(at).to_vec());
    }
    Ok(out)
}

/// Applies one change to the held slots.
fn apply_one(states: &[LoggedState], held: &mut BTreeMap<Slot, Held>, ch: &Scoped) -> R<()> {
    let s = &states[ch.slot.0];
    let kind = s.kind()?;
    let mut c = Cursor::with_base(&ch.payload, ch.at);
    let unsupported = |c: &Cursor<'_>| c.error_at(DecodeErrorKind::Invalid(format!("operation {} on {} state", op::name(ch.op), kind.as_str())), ch.at);
    if ch.op == op::CLEAR {
        held.remove(&ch.slot);
        return c.expect_end("CLEAR change");
    }
    match kind {
        StateKind::Value | StateKind::Reducing | StateKind::Aggregating => match ch.op {
            op::SET | op::SET_INTERNAL => {
                let at = c.position();
                decode_value(s.value()?, &mut c)?;
                held.insert(ch.slot.clone(), Held::Single(c.consumed_since(at).to_vec()));
            }
            // Merging reducing or aggregating state needs the user's function unless at most one
            // of the namespaces holds a value (then the merge moves it to the target).
            op::MERGE_NS if kind != StateKind::Value => {
                let mut values: Vec<Held> = Vec::new();
                for ns in &ch.merge_sources {
                    if let Some(v) = held.remove(&(ch.slot.0, ch.slot.1.clone(), ns.clone())) {
                        values.push(v);
                    }
                }
                if let Some(v) = held.remove(&ch.slot) {
                    values.push(v);
                }
                if values.len() > 1 {
                    return Err(c.error_at(
                        DecodeErrorKind::Invalid(format!(
                            "merging {} namespaces of {} state needs the job's {} function: not readable",
                            values.len(),
                            kind.as_str(),
                            if kind == StateKind::Reducing { "reduce" } else { "aggregate" }
                        )),
                        ch.at,
                    ));
                }
                if let Some(v) = values.pop() {
                    held.insert(ch.slot.clone(), v);
                }
                return Ok(());
            }
            _ => return Err(unsupported(&c)),
        },
        StateKind::List => {
            let elem = s.value()?.list_element().ok_or_else(|| c.error(DecodeErrorKind::Invalid("list state without a list serializer".into())))?;
            match ch.op {
                op::SET | op::SET_INTERNAL => {
                    let items = read_list(elem, &mut c)?;
                    // `HeapListState.update` of an empty list clears the state.
                    if items.is_empty() {
                        held.remove(&ch.slot);
                    } else {
                        held.insert(ch.slot.clone(), Held::List(items));
                    }
                }
                op::ADD | op::ADD_ELEMENT => {
                    let items = if ch.op == op::ADD {
                        read_list(elem, &mut c)?
                    } else {
                        let at = c.position();
                        decode_value(elem, &mut c)?;
                        vec![c.consumed_since(at).to_vec()]
                    };
                    if !items.is_empty() {
                        match held.entry(ch.slot.clone()).or_insert_with(|| Held::List(Vec::new())) {
                            Held::List(l) => l.extend(items),
                            _ => return Err(unsupported(&c)),
                        }
                    }
                }
                op::MERGE_NS => {
                    // `AbstractHeapMergingState.mergeNamespaces`: the target's list, then each
                    // source's in order.
                    let mut merged: Vec<Vec<u8>> = Vec::new();
                    for ns in &ch.merge_sources {
                        if let Some(Held::List(l)) = held.remove(&(ch.slot.0, ch.slot.1.clone(), ns.clone())) {
                            merged.extend(l);
                        }
                    }
                    if !merged.is_empty() {
                        match held.entry(ch.slot.clone()).or_insert_with(|| Held::List(Vec::new())) {
                            Held::List(l) => l.extend(merged),
                            _ => return Err(unsupported(&c)),
                        }
                    }
                    return Ok(());
                }
                _ => return Err(unsupported(&c)),
            }
        }
        StateKind::Map => {
            let (uk_ser, uv_ser) = s.value()?.map_key_value().ok_or_else(|| c.error(DecodeErrorKind::Invalid("map state without a map serializer".into())))?;
            let map = match held.entry(ch.slot.clone()).or_insert_with(|| Held::Map(BTreeMap::new())) {
                Held::Map(m) => m,
                _ => return Err(unsupported(&c)),
            };
            match ch.op {
                // `MapSerializer`: i32 n, then key, null flag, value.
                op::ADD => {
                    let n = c.count("map size", 2)?;
                    for _ in 0..n {
                        let (_, uk) = decode_span(uk_ser, &mut c)?;
                        let at = c.position();
                        if !c.bool("map value null flag")? {
                            decode_value(uv_ser, &mut c)?;
                        }
                        map.insert(uk, c.consumed_since(at).to_vec());
                    }
                }
                // key, then value (never null: a null value is logged as ADD)
                op::ADD_ELEMENT | op::ADD_OR_UPDATE_ELEMENT => {
                    let (_, uk) = decode_span(uk_ser, &mut c)?;
                    let at = c.position();
                    decode_value(uv_ser, &mut c)?;
                    let mut v = vec![0u8];
                    v.extend_from_slice(c.consumed_since(at));
                    map.insert(uk, v);
                }
                op::REMOVE_ELEMENT => {
                    let (_, uk) = decode_span(uk_ser, &mut c)?;
                    map.remove(&uk);
                }
                _ => return Err(unsupported(&c)),
            }
            // `HeapMapState.remove` clears the state once its map is empty.
            if map.is_empty() {
                held.remove(&ch.slot);
            }
        }
        _ => return Err(unsupported(&c)),
    }
    c.expect_end("state change")
}

/// Skips one Java-serialized object (`ObjectOutputStream`: stream header, then one object), as
/// the TTL config of a METADATA change holds: only its extent matters here. Follows the Java
/// Object Serialization Specification's grammar (chapter 6), with its class descriptors kept to
/// know the fields of later objects.
fn skip_java_object(c: &mut Cursor<'_>) -> R<()> {
    let at = c.position();
    if c.u16("Java serialization magic")? != 0xACED || c.u16("Java serialization version")? != 5 {
        return Err(c.error_at(DecodeErrorKind::Invalid("not a Java serialization stream".into()), at));
    }
    JavaSkipper { c, handles: Vec::new() }.content(0)
}

mod tc {
    pub const NULL: u8 = 0x70;
    pub const REFERENCE: u8 = 0x71;
    pub const CLASSDESC: u8 = 0x72;
    pub const OBJECT: u8 = 0x73;
    pub const STRING: u8 = 0x74;
    pub const ARRAY: u8 = 0x75;
    pub const CLASS: u8 = 0x76;
    pub const BLOCKDATA: u8 = 0x77;
    pub const ENDBLOCKDATA: u8 = 0x78;
    pub const RESET: u8 = 0x79;
    pub const BLOCKDATALONG: u8 = 0x7A;
    pub const LONGSTRING: u8 = 0x7C;
    pub const PROXYCLASSDESC: u8 = 0x7D;
    pub const ENUM: u8 = 0x7E;
    pub const BASE_HANDLE: u32 = 0x7E_0000;
    pub const SC_WRITE_METHOD: u8 = 0x01;
    pub const SC_EXTERNALIZABLE: u8 = 0x04;
    pub const SC_BLOCK_DATA: u8 = 0x08;
}

/// A class descriptor: what reading an instance needs.
#[derive(Debug)]
struct JavaClass {
    flags: u8,
    /// Field type codes, in stream order.
    fields: Vec<u8>,
    /// Arrays: the element type code (second character of the class name).
    element: Option<u8>,
    super_class: Option<Arc<JavaClass>>,
}

struct JavaSkipper<'a, 'b> {
    c: &'b mut Cursor<'a>,
    /// Handles in assignment order; class descriptors are kept.
    handles: Vec<Option<Arc<JavaClass>>>,
}

const JAVA_MAX_DEPTH: u32 = 32;

impl JavaSkipper<'_, '_> {
    fn invalid(&self, msg: String) -> DecodeError {
        self.c.error(DecodeErrorKind::Invalid(msg))
    }

    fn reference(&mut self) -> R<Option<Arc<JavaClass>>> {
        let at = self.c.position();
        let h = self.c.u32("Java object handle")?;
        h.checked_sub(tc::BASE_HANDLE)
            .and_then(|i| self.handles.get(i as usize))
            .cloned()
            .ok_or_else(|| self.c.error_at(DecodeErrorKind::InvalidValue { what: "Java object handle", value: h.into() }, at))
    }

    fn skip_utf(&mut self) -> R<()> {
        let n = self.c.u16("Java string length")? as usize;
        self.c.skip(n, "Java string")
    }

    /// One content element: an object or a block of data.
    fn content(&mut self, depth: u32) -> R<()> {
        if depth > JAVA_MAX_DEPTH {
            return Err(self.invalid("Java object nested too deeply".into()));
        }
        let at = self.c.position();
        match self.c.u8("Java object tag")? {
            tc::NULL => {}
            tc::REFERENCE => {
                self.reference()?;
            }
            t @ (tc::CLASSDESC | tc::PROXYCLASSDESC) => {
                self.new_class(t, depth)?;
            }
            tc::OBJECT => {
                let class = self.class_desc(depth)?.ok_or_else(|| self.invalid("Java object without a class".into()))?;
                self.handles.push(None);
                self.object_data(&class, depth)?;
            }
            tc::CLASS => {
                self.class_desc(depth)?;
                self.handles.push(None);
            }
            tc::ARRAY => {
                let class = self.class_desc(depth)?.ok_or_else(|| self.invalid("Java array without a class".into()))?;
                self.handles.push(None);
                let code = class.element.unwrap_or(b'L');
                let n = self.c.count("Java array length", field_size(code).unwrap_or(1))?;
                for _ in 0..n {
                    self.field(code, depth)?;
                }
            }
            tc::STRING => {
                self.handles.push(None);
                self.skip_utf()?;
            }
            tc::LONGSTRING => {
                self.handles.push(None);
                let n = self.c.non_negative_i64("Java long string length")?;
                let n = usize::try_from(n).map_err(|_| self.invalid("Java long string too long".into()))?;
                self.c.skip(n, "Java long string")?;
            }
            tc::ENUM => {
                self.class_desc(depth)?;
                self.handles.push(None);
                self.content(depth + 1)?;
            }
            tc::BLOCKDATA => {
                let n = self.c.u8("Java block data length")? as usize;
                self.c.skip(n, "Java block data")?;
            }
            tc::BLOCKDATALONG => {
                let n = self.c.count("Java block data length", 1)?;
                self.c.skip(n, "Java block data")?;
            }
            tc::RESET => self.handles.clear(),
            t => return Err(self.c.error_at(DecodeErrorKind::InvalidValue { what: "Java object tag", value: t.into() }, at)),
        }
        Ok(())
    }

    /// A class descriptor: new, null or a reference.
    fn class_desc(&mut self, depth: u32) -> R<Option<Arc<JavaClass>>> {
        if depth > JAVA_MAX_DEPTH {
            return Err(self.invalid("Java class descriptors nested too deeply".into()));
        }
        let at = self.c.position();
        match self.c.u8("Java class descriptor tag")? {
            tc::NULL => Ok(None),
            tc::REFERENCE => match self.reference()? {
                Some(d) => Ok(Some(d)),
                None => Err(self.c.error_at(DecodeErrorKind::Invalid("Java reference is not a class descriptor".into()), at)),
            },
            t @ (tc::CLASSDESC | tc::PROXYCLASSDESC) => self.new_class(t, depth).map(Some),
            t => Err(self.c.error_at(DecodeErrorKind::InvalidValue { what: "Java class descriptor tag", value: t.into() }, at)),
        }
    }

    fn new_class(&mut self, tag: u8, depth: u32) -> R<Arc<JavaClass>> {
        let class = if tag == tc::CLASSDESC {
            let name_at = self.c.position();
            let name_len = self.c.u16("Java class name")? as usize;
            let name = self.c.bytes(name_len, "Java class name")?;
            let element = (name.first() == Some(&b'[')).then(|| name.get(1).copied()).flatten();
            if name.first() == Some(&b'[') && element.is_none() {
                return Err(self.c.error_at(DecodeErrorKind::Invalid("bad Java array class name".into()), name_at));
            }
            self.c.i64("serialVersionUID")?;
            let slot = self.handles.len();
            self.handles.push(None);
            let flags = self.c.u8("Java class flags")?;
            let n = self.c.u16("Java field count")? as usize;
            // A field is at least its type code and name length.
            self.c.check_fits("Java fields", n, 3, self.c.position())?;
            let mut fields = Vec::with_capacity(n);
            for _ in 0..n {
                let code_at = self.c.position();
                let code = self.c.u8("Java field type code")?;
                if field_size(code).is_none() && code != b'L' && code != b'[' {
                    return Err(self.c.error_at(DecodeErrorKind::InvalidValue { what: "Java field type code", value: code.into() }, code_at));
                }
                self.skip_utf()?;
                if code == b'L' || code == b'[' {
                    // the field's class name, a string object
                    self.content(depth + 1)?;
                }
                fields.push(code);
            }
            self.annotation(depth)?;
            let super_class = self.class_desc(depth + 1)?;
            let class = Arc::new(JavaClass { flags, fields, element, super_class });
            self.handles[slot] = Some(class.clone());
            class
        } else {
            let slot = self.handles.len();
            self.handles.push(None);
            let n = self.c.count("Java proxy interfaces", 2)?;
            for _ in 0..n {
                self.skip_utf()?;
            }
            self.annotation(depth)?;
            let super_class = self.class_desc(depth + 1)?;
            let class = Arc::new(JavaClass { flags: 0x02, fields: Vec::new(), element: None, super_class });
            self.handles[slot] = Some(class.clone());
            class
        };
        Ok(class)
    }

    /// Contents up to and including `TC_ENDBLOCKDATA`.
    fn annotation(&mut self, depth: u32) -> R<()> {
        loop {
            let mut peek = self.c.clone();
            if peek.u8("Java annotation")? == tc::ENDBLOCKDATA {
                self.c.u8("end of Java block data")?;
                return Ok(());
            }
            self.content(depth + 1)?;
        }
    }

    /// An instance's data, from the topmost superclass down.
    fn object_data(&mut self, class: &Arc<JavaClass>, depth: u32) -> R<()> {
        let mut chain = vec![class.clone()];
        while let Some(s) = chain.last().and_then(|c| c.super_class.clone()) {
            if chain.len() > JAVA_MAX_DEPTH as usize {
                return Err(self.invalid("Java class hierarchy too deep".into()));
            }
            chain.push(s);
        }
        for d in chain.iter().rev() {
            if d.flags & tc::SC_EXTERNALIZABLE != 0 {
                if d.flags & tc::SC_BLOCK_DATA == 0 {
                    return Err(self.invalid("Java externalizable data of protocol version 1 cannot be skipped".into()));
                }
                self.annotation(depth)?;
                continue;
            }
            for &code in &d.fields {
                self.field(code, depth)?;
            }
            if d.flags & tc::SC_WRITE_METHOD != 0 {
                self.annotation(depth)?;
            }
        }
        Ok(())
    }

    fn field(&mut self, code: u8, depth: u32) -> R<()> {
        match field_size(code) {
            Some(n) => self.c.skip(n, "Java field"),
            None => self.content(depth + 1),
        }
    }
}

/// Bytes of a primitive Java field; `None` for objects and arrays.
fn field_size(code: u8) -> Option<usize> {
    match code {
        b'B' | b'Z' => Some(1),
        b'C' | b'S' => Some(2),
        b'I' | b'F' => Some(4),
        b'J' | b'D' => Some(8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change set of one group: `(kg, [records])`.
    fn change_set(groups: &[(i32, Vec<Vec<u8>>)]) -> Vec<u8> {
        let mut out = (groups.len() as i32).to_be_bytes().to_vec();
        for (kg, records) in groups {
            out.extend((records.len() as i32).to_be_bytes());
            out.extend(kg.to_be_bytes());
            for r in records {
                out.extend((r.len() as i32).to_be_bytes());
                out.extend(r);
            }
        }
        out
    }

    fn read(data: &[u8]) -> R<Log> {
        let mut log = Log::default();
        log.change_set(data, 0, false, 0, KeyGroupRange::new(0, 128))?;
        Ok(log)
    }

    /// On the real changelog fixtures the log changes what the materialized part holds (so the
    /// dump tests, which match Flink's expected contents, exercise the replay): entries are
    /// removed, changed and added.
    #[test]
    fn replay_changes_the_materialized_state_of_real_fixtures() {
        use crate::storage::LocalStorage;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let mut checked = 0;
        for version in ["1.20.5", "2.3.0"] {
            for case in ["heap-changelog-checkpoint", "heap-changelog-memory-checkpoint", "rocksdb-changelog-checkpoint"] {
                let dir = root.join(format!("flink-{version}")).join(case);
                let job = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).find(|p| p.is_dir()).unwrap();
                let chk = std::fs::read_dir(&job).unwrap().flatten().map(|e| e.path()).find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("chk-")).unwrap();
                let snapshot = Snapshot::open(Arc::new(LocalStorage), chk.to_str().unwrap()).unwrap();
                let (mut removed, mut added) = (0, 0);
                for op in &snapshot.metadata.operators {
                    for st in &op.subtasks {
                        let Some(KeyedStateHandle::Changelog(h)) = st.state.as_ref().and_then(|s| s.managed_keyed_state.as_ref()) else { continue };
                        let mut reader = ChangelogHandleReader::open(&snapshot, op.operator_id, op.max_parallelism, h).unwrap();
                        let key = |e: &Entry| format!("{} {:?} {:?} {:?} {:?}", e.state, e.raw.key, e.raw.namespace, e.raw.user_key, e.raw.value);
                        let mut before: Vec<String> = Vec::new();
                        for m in &reader.materialized {
                            for kg in m.key_groups() {
                                before.extend(m.key_group_entries(kg).unwrap().map(|e| key(&e.unwrap())));
                            }
                        }
                        let mut after: Vec<String> = Vec::new();
                        for kg in reader.key_groups().collect::<Vec<_>>() {
                            for e in reader.key_group_entries(kg).unwrap() {
                                after.push(key(&e.unwrap()));
                            }
                        }
                        removed += before.iter().filter(|b| !after.contains(b)).count();
                        added += after.iter().filter(|a| !before.contains(a)).count();
                    }
                }
                assert!(removed > 0 && added > 0, "{version} {case}: the log changed nothing ({removed} removed, {added} added)");
                checked += 1;
            }
        }
        assert_eq!(checked, 6);
    }

    #[test]
    fn empty_change_set_reads() {
        let log = read(&change_set(&[])).unwrap();
        assert!(log.changes.is_empty());
    }

    #[test]
    fn truncated_change_set_names_the_offset() {
        let full = change_set(&[(5, vec![vec![op::CLEAR, 0, 1, 9, 9]])]);
        // cut inside the record: its length field (data byte 12, file offset 13: offsets count
        // the flag byte) promises more than is left
        let e = read(&full[..full.len() - 2]).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::LengthTooLarge { what: "state change", count: 5, available: 3 }), "{e}");
        assert_eq!(e.offset, 1 + 12);
        // every cut fails, none panics
        for cut in 0..full.len() {
            assert!(read(&full[..cut]).is_err(), "cut {cut}");
        }
        // a count no file could hold is refused before allocating
        let mut huge = full.clone();
        huge[..4].copy_from_slice(&0x7fff_ffffi32.to_be_bytes());
        let e = read(&huge).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::LengthTooLarge { .. }), "{e}");
        assert_eq!(e.offset, 1);
        let mut neg = full.clone();
        neg[8..12].copy_from_slice(&(-7i32).to_be_bytes());
        assert!(read(&neg).is_err());
    }

    #[test]
    fn unknown_operation_and_unregistered_state_are_errors_with_offsets() {
        let e = read(&change_set(&[(3, vec![vec![42, 0, 1]])])).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::InvalidValue { what: "state change operation", value: 42 }), "{e}");
        // flag byte + i32 groups + i32 n + i32 kg + i32 len = 17
        assert_eq!(e.offset, 17);
        let e = read(&change_set(&[(3, vec![vec![op::SET, 0, 7, 1, 2]])])).unwrap_err();
        assert!(e.to_string().contains("state id 7 was not registered"), "{e}");
        assert_eq!(e.offset, 18);
        // a data change must name a key group
        let mut log = Log::default();
        log.ids.insert(7, 0);
        log.register(StateMetaInfo {
            name: "s".into(),
            backend_type: BackendStateType::KeyValue,
            options: vec![("KEYED_STATE_TYPE".into(), "VALUE".into())],
            serializers: Vec::new(),
            raw: Vec::new(),
        });
        let e = log.change_set(&change_set(&[(-1, vec![vec![op::SET, 0, 7]])]), 0, false, 0, KeyGroupRange::new(0, 128)).unwrap_err();
        assert!(e.to_string().contains("SET data change in the meta-data key group"), "{e}");
    }

    #[test]
    fn offsets_past_the_stream_and_truncated_metadata_are_errors() {
        let data = change_set(&[]);
        let mut log = Log::default();
        let e = log.change_set(&data, 99, false, 0, KeyGroupRange::new(0, 1)).unwrap_err();
        assert!(e.to_string().contains("past the end"), "{e}");
        // METADATA with a version and nothing else
        let e = read(&change_set(&[(COMMON_KEY_GROUP, vec![vec![op::METADATA, 0, 0, 0, 7]])])).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::Truncated { .. }), "{e}");
        assert_eq!(e.offset, 22);
        let e = read(&change_set(&[(COMMON_KEY_GROUP, vec![vec![op::METADATA, 0, 0, 0, 2]])])).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::InvalidValue { what: "meta info version", value: 2 }), "{e}");
    }

    fn utf(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u16).to_be_bytes().to_vec();
        v.extend(s.as_bytes());
        v
    }

    /// A small `ObjectOutputStream` stream: an object with an int, a string field, an enum and
    /// a class with `writeObject` block data, then an externalizable one.
    fn java_stream() -> Vec<u8> {
        let mut v = vec![0xAC, 0xED, 0, 5, tc::OBJECT, tc::CLASSDESC];
        v.extend(utf("A"));
        v.extend(1i64.to_be_bytes());
        v.extend([0x02 | tc::SC_WRITE_METHOD]);
        v.extend(2u16.to_be_bytes());
        v.push(b'I');
        v.extend(utf("i"));
        v.push(b'L');
        v.extend(utf("s"));
        v.push(tc::STRING);
        v.extend(utf("Ljava/lang/String;"));
        v.push(tc::ENDBLOCKDATA);
        v.push(tc::NULL); // no superclass
        v.extend(7i32.to_be_bytes());
        v.push(tc::STRING);
        v.extend(utf("hello"));
        // writeObject data: a block and an externalizable object, then the end
        v.extend([tc::BLOCKDATA, 2, 0xAB, 0xCD]);
        v.extend([tc::OBJECT, tc::CLASSDESC]);
        v.extend(utf("E"));
        v.extend(2i64.to_be_bytes());
        v.extend([tc::SC_EXTERNALIZABLE | tc::SC_BLOCK_DATA, 0, 0, tc::ENDBLOCKDATA, tc::NULL]);
        v.extend([tc::BLOCKDATA, 1, 0xEE, tc::ENDBLOCKDATA]);
        v.push(tc::ENDBLOCKDATA);
        v
    }

    #[test]
    fn java_objects_are_skipped_exactly_and_truncation_is_an_error() {
        let mut stream = java_stream();
        stream.extend([0x55, 0x66]);
        let mut c = Cursor::with_base(&stream, 10);
        skip_java_object(&mut c).unwrap();
        assert_eq!(c.rest(), &[0x55, 0x66]);
        let full = java_stream();
        for cut in 0..full.len() {
            let mut c = Cursor::with_base(&full[..cut], 10);
            let e = skip_java_object(&mut c).unwrap_err();
            assert!(e.offset >= 10 && e.offset <= 10 + cut as u64, "cut {cut}: {e}");
        }
        // a bad reference is refused
        let bad = [0xAC, 0xED, 0, 5, tc::REFERENCE, 0, 0x7E, 0, 9];
        let e = skip_java_object(&mut Cursor::new(&bad)).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::InvalidValue { what: "Java object handle", .. }), "{e}");
        assert_eq!(e.offset, 5);
    }
}
