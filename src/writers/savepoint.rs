//! Converts any snapshot the readers understand into a canonical savepoint directory that Flink
//! restores into any state backend. Spec: `formats/canonical-savepoint-writer.md`.
//!
//! What is written, per operator of the source (same ids, same order, same parallelism):
//! - keyed state: one canonical key-grouped stream per subtask ([`super::canonical`]) with a
//!   `SavepointKeyGroupsStateHandle` (type 7) for the subtask's key-group range
//!   (`KeyGroupRange::for_subtask`). The serialization proxy is rebuilt from the exact bytes of
//!   the source's key serializer snapshot and state meta infos (the union over the source's
//!   subtasks, which may have registered different states); only the compression flag is set
//!   anew. With `--max-parallelism` every key is moved to its key group for the new max
//!   parallelism (Flink's murmur of the key's Java `hashCode()`), through an external sort when
//!   the entries do not fit the memory budget;
//! - operator, union and broadcast state: one file per subtask ([`super::operator`]), the source's
//!   `OperatorBackendSerializationProxy` bytes with the compression flag set anew, each element at
//!   a recorded offset;
//! - raw keyed and raw operator state (operator-defined bytes): copied byte for byte;
//! - coordinator and master states: copied;
//! - `_metadata` in version 3 ([`super::metadata`]).
//!
//! Streams up to the inline threshold go inside `_metadata`, larger ones into files named by
//! UUIDs referenced by relative paths, so the directory is self-contained and relocatable. The
//! source is only read; the target is written under a temporary sibling name and renamed at
//! the end.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use crate::bytes::Cursor;
use crate::error::{Error, Result};
use crate::metadata::handles::{
    DistributionMode, KeyGroupsStateHandle, KeyedStateHandle, OperatorStateHandle, StreamStateHandle,
};
use crate::metadata::{CheckpointMetadata, OperatorState, OperatorSubtaskState, SubtaskState};
use crate::model::value::Value;
use crate::model::{Entry, KeyGroupRange, OperatorId, StateKind};
use crate::readers::entries::{Selection, SnapshotEntries};
use crate::readers::keyed::KeyedHandleReader;
use crate::readers::meta::{read_keyed_backend_meta, read_operator_backend_meta, BackendStateType, KeyedBackendMeta, StateMetaInfo, NAMESPACE_SERIALIZER};
use crate::readers::operator::read_operator_state;
use crate::readers::serializers::{java_hash_code, key_group_for_hash, TypeSerializer};
use crate::readers::stream::StreamSource;
use crate::snapshot::{Snapshot, METADATA_FILE};
use crate::storage::{Location, Storage};
use crate::writers::canonical::{KeyGroupStreamWriter, Record};
use crate::writers::metadata::write_metadata_v3;
use crate::writers::operator::{write_operator_state, NamedOperatorState, OperatorStateData};
use crate::writers::spill::ExternalSorter;
use crate::writers::stream::{uuid_name, StateStreamWriter, DEFAULT_INLINE_THRESHOLD, MAX_INLINE_THRESHOLD};
use crate::writers::target::TargetDir;

/// Flink's upper bound for max parallelism (`Transformation.UPPER_BOUND_MAX_PARALLELISM`).
pub const UPPER_BOUND_MAX_PARALLELISM: u32 = 1 << 15;

/// Default memory for regrouping keyed entries before spilling sorted runs to disk.
pub const DEFAULT_MEMORY_BUDGET: usize = 256 << 20;

/// Snapshot compression of the written state (Flink's `execution.checkpointing.snapshot-compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Uncompressed (Flink's default).
    #[default]
    None,
    /// Snappy framing per key group, and for operator state of proxy version 6 (Flink 1.18+).
    Snappy,
}

/// How to convert.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Rewrite every operator to this max parallelism (moving keys to their new key groups).
    pub max_parallelism: Option<u32>,
    /// Compression of the written state.
    pub compression: Compression,
    /// Streams of at most this many bytes are inlined into `_metadata`.
    pub inline_threshold: u64,
    /// Bytes of keyed entries held in memory while regrouping before spilling to disk.
    pub memory_budget: usize,
    /// Replace an existing target.
    pub force: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            max_parallelism: None,
            compression: Compression::None,
            inline_threshold: DEFAULT_INLINE_THRESHOLD,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            force: false,
        }
    }
}

/// What a conversion wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConvertReport {
    /// The source `_metadata`.
    pub source: String,
    /// The written savepoint directory.
    pub target: String,
    /// Checkpoint id (copied from the source).
    pub checkpoint_id: u64,
    /// Operators written.
    pub operators: usize,
    /// Operators with keyed state.
    pub keyed_operators: usize,
    /// Keyed operators whose keys were moved to new key groups.
    pub regrouped_operators: usize,
    /// Keyed entries (RocksDB-layout key/value pairs) written.
    pub keyed_entries: u64,
    /// Operator list elements and broadcast entries written.
    pub operator_entries: u64,
    /// State files written.
    pub files: usize,
    /// Streams inlined into `_metadata`.
    pub inline_streams: usize,
    /// Bytes of all state streams (files and inline).
    pub state_bytes: u64,
    /// Size of `_metadata`.
    pub metadata_bytes: u64,
    /// Sorted runs spilled to disk while regrouping.
    pub spilled_runs: usize,
    /// Things the user should know (e.g. compression that could not be applied).
    pub notes: Vec<String>,
}

/// Converts the snapshot at `src` into a canonical savepoint directory `dst` (a local path or
/// an object-store URL).
pub fn convert(storage: Arc<dyn Storage>, src: &str, dst: &str, opts: &ConvertOptions) -> Result<ConvertReport> {
    let snapshot = Snapshot::open(storage.clone(), src)?;
    if let Some(n) = opts.max_parallelism {
        if n == 0 || n > UPPER_BOUND_MAX_PARALLELISM {
            return Err(Error::Invalid(format!("max parallelism {n} is outside Flink's range 1..={UPPER_BOUND_MAX_PARALLELISM}")));
        }
    }
    if opts.inline_threshold > MAX_INLINE_THRESHOLD {
        return Err(Error::Invalid(format!(
            "inline threshold {} is above Flink's maximum of {MAX_INLINE_THRESHOLD} bytes",
            opts.inline_threshold
        )));
    }
    let target = TargetDir::prepare(&snapshot, storage, dst, opts.force)?;
    let mut report = ConvertReport { source: snapshot.metadata_location.to_string(), target: target.dst.to_string(), ..Default::default() };
    // Sorted runs spill to a local disk: beside the target when it is local, else the temp dir.
    let spill_tmp = if target.is_remote() {
        Some(tempfile::Builder::new().prefix("flinksnap-spill-").tempdir().map_err(|e| Error::io(std::env::temp_dir().display().to_string(), e))?)
    } else {
        None
    };
    let spill_base = spill_tmp.as_ref().map_or_else(|| PathBuf::from(target.tmp.as_str()), |t| t.path().to_path_buf());
    let metadata = Converter { snapshot: &snapshot, target: &target, spill_base, opts, report: &mut report }.run()?;
    let bytes = write_metadata_v3(&metadata).map_err(|e| Error::Invalid(format!("{}: {e}", target.dst)))?;
    // What was written must read back as what was meant (a writer bug must never reach Flink).
    CheckpointMetadata::parse(&bytes).map_err(|e| Error::decode(format!("{} (as written)", target.dst.join(METADATA_FILE)), e))?;
    // Last: on object stores the directory becomes a snapshot only now.
    target.put_metadata(&bytes)?;
    report.metadata_bytes = bytes.len() as u64;
    count_streams(&metadata, &mut report);
    report.checkpoint_id = metadata.checkpoint_id;
    report.operators = metadata.operators.len();
    target.commit()?;
    Ok(report)
}

fn count_streams(m: &CheckpointMetadata, r: &mut ConvertReport) {
    let mut count = |h: &StreamStateHandle| match h {
        StreamStateHandle::ByteStream { size, .. } => {
            r.inline_streams += 1;
            r.state_bytes += size;
        }
        other => {
            r.files += 1;
            r.state_bytes += other.size();
        }
    };
    for op in &m.operators {
        for s in op.subtasks.iter().filter_map(|s| s.state.as_ref()) {
            for o in [&s.managed_operator_state, &s.raw_operator_state].into_iter().flatten() {
                count(&o.delegate);
            }
            for k in [&s.managed_keyed_state, &s.raw_keyed_state].into_iter().flatten() {
                for (_, h) in k.streams() {
                    count(h);
                }
            }
        }
    }
}

struct Converter<'a> {
    snapshot: &'a Snapshot,
    target: &'a TargetDir,
    /// Local directory for sorted runs.
    spill_base: PathBuf,
    opts: &'a ConvertOptions,
    report: &'a mut ConvertReport,
}

/// The states of a keyed operator as written: the proxy, and per state what its entries need.
struct KeyedLayout {
    proxy_version: i32,
    key_serializer: TypeSerializer,
    key_serializer_raw: Vec<u8>,
    states: Vec<StateMetaInfo>,
    ids: HashMap<String, u16>,
}

impl KeyedLayout {
    fn proxy(&self, compressed: bool) -> Result<Vec<u8>> {
        use crate::bytes::DataOutput;
        let mut p = Vec::new();
        p.put_i32(self.proxy_version);
        p.put_bool(compressed);
        p.extend_from_slice(&self.key_serializer_raw);
        let n = i16::try_from(self.states.len()).map_err(|_| Error::Invalid(format!("{} states do not fit a serialization proxy", self.states.len())))?;
        p.put_i16(n);
        for s in &self.states {
            p.extend_from_slice(&s.raw);
        }
        Ok(p)
    }
}

impl Converter<'_> {
    fn run(mut self) -> Result<CheckpointMetadata> {
        let src = &self.snapshot.metadata;
        let mut operators = Vec::with_capacity(src.operators.len());
        for op in &src.operators {
            operators.push(self.operator(op)?);
        }
        Ok(CheckpointMetadata {
            version: super::metadata::WRITTEN_VERSION,
            checkpoint_id: src.checkpoint_id,
            master_states: src.master_states.clone(),
            operators,
            properties: None,
            properties_note: None,
            properties_raw: Vec::new(),
        })
    }

    fn where_(&self, op: &OperatorState) -> String {
        format!("{}: operator {}", self.snapshot.metadata_location, op.operator_id)
    }

    fn operator(&mut self, op: &OperatorState) -> Result<OperatorState> {
        let max_parallelism = self.opts.max_parallelism.unwrap_or(op.max_parallelism);
        if max_parallelism < op.parallelism {
            return Err(Error::Invalid(format!(
                "{}: max parallelism {max_parallelism} is below the operator's parallelism {}",
                self.where_(op),
                op.parallelism
            )));
        }
        let mut out = OperatorState {
            operator_id: op.operator_id,
            name: op.name.clone(),
            uid: op.uid.clone(),
            parallelism: op.parallelism,
            max_parallelism,
            coordinator_state: op.coordinator_state.clone(),
            fully_finished: op.fully_finished,
            subtasks: Vec::new(),
        };
        if op.fully_finished {
            return Ok(out);
        }
        let mut subtasks: BTreeMap<u32, SubtaskState> = BTreeMap::new();
        let has_keyed = op.subtasks.iter().any(|s| s.state.as_ref().is_some_and(|s| s.managed_keyed_state.is_some()));
        for st in &op.subtasks {
            let ctx = || format!("{} subtask {}", self.where_(op), st.index);
            let Some(s) = &st.state else {
                if has_keyed {
                    return Err(Error::Invalid(format!(
                        "{}: finished; a keyed operator with finished subtasks cannot be converted",
                        ctx()
                    )));
                }
                subtasks.insert(st.index, st.clone());
                continue;
            };
            if !s.input_channel_state.is_empty() || !s.result_subpartition_state.is_empty() {
                return Err(Error::Invalid(format!(
                    "{}: holds in-flight channel data of an unaligned checkpoint, which a savepoint cannot carry \
                     (take an aligned checkpoint or a savepoint instead)",
                    ctx()
                )));
            }
            if s.ref_checkpoint_id.is_some() {
                return Err(Error::Invalid(format!("{}: refers to the state of an earlier checkpoint (metadata V7)", ctx())));
            }
            let mut t = OperatorSubtaskState::default();
            // An empty file-merging handle holds nothing and is not written.
            if let Some(h) = s.managed_operator_state.as_ref().filter(|h| !h.is_empty()) {
                t.managed_operator_state = Some(self.operator_state(op, st.index, h)?);
            }
            if let Some(h) = &s.raw_operator_state {
                let delegate = self.copy_stream(&h.delegate, &format!("{}/{}/raw-operator", op.operator_id, st.index))?;
                t.raw_operator_state = Some(OperatorStateHandle { type_byte: crate::metadata::consts::handle_type::PARTITIONABLE_OPERATOR, states: h.states.clone(), file_merging: None, delegate });
            }
            if let Some(h) = &s.raw_keyed_state {
                t.raw_keyed_state = Some(self.raw_keyed(op, max_parallelism, h)?);
            }
            subtasks.insert(st.index, SubtaskState { index: st.index, finished: false, state: Some(t) });
        }
        if has_keyed {
            self.report.keyed_operators += 1;
            for (index, handle) in self.keyed(op, max_parallelism)? {
                let st = subtasks.entry(index).or_insert_with(|| SubtaskState { index, finished: false, state: Some(OperatorSubtaskState::default()) });
                if let Some(s) = st.state.as_mut() {
                    s.managed_keyed_state = Some(KeyedStateHandle::KeyGroups(handle));
                }
            }
        }
        out.subtasks = subtasks.into_values().collect();
        Ok(out)
    }

    fn new_stream(&self, seed: &str) -> (StateStreamWriter, String) {
        let name = uuid_name(&format!("{}/{}", self.snapshot.metadata.checkpoint_id, seed));
        let dir: Location = self.target.tmp.clone();
        let shown = self.target.dst.join(&name).to_string();
        (StateStreamWriter::in_storage(self.target.storage().clone(), dir, name, self.opts.inline_threshold), shown)
    }

    /// Copies a stream byte for byte into a new stream of the target.
    fn copy_stream(&self, h: &StreamStateHandle, seed: &str) -> Result<StreamStateHandle> {
        use std::io::Write;
        let source = StreamSource::open(self.snapshot, h)?;
        let (mut out, name) = self.new_stream(seed);
        let size = source.size();
        let mut at = 0;
        while at < size {
            let end = (at + (4 << 20)).min(size);
            out.write_all(&source.read_range(at..end)?).map_err(|e| Error::io(&name, e))?;
            at = end;
        }
        out.finish()
    }

    fn raw_keyed(&self, op: &OperatorState, max_parallelism: u32, h: &KeyedStateHandle) -> Result<KeyedStateHandle> {
        let KeyedStateHandle::KeyGroups(k) = h else {
            return Err(Error::Invalid(format!("{}: raw keyed state in a {} is not supported", self.where_(op), h.class_name())));
        };
        if max_parallelism != op.max_parallelism {
            // Raw keyed state is operator-defined bytes per key group: flinksnap cannot move its keys.
            return Err(Error::Invalid(format!(
                "{}: holds raw keyed state (e.g. heap timers of a RocksDB checkpoint), whose keys cannot be \
                 moved to other key groups; convert without --max-parallelism",
                self.where_(op)
            )));
        }
        let seed = format!("{}/{}/raw-keyed", op.operator_id, k.key_group_range.start);
        let delegate = self.copy_stream(&k.delegate, &seed)?;
        Ok(KeyedStateHandle::KeyGroups(KeyGroupsStateHandle { delegate, ..k.clone() }))
    }

    fn compressed_keyed(&self) -> bool {
        self.opts.compression == Compression::Snappy
    }

    /// Rewrites one subtask's operator state.
    fn operator_state(&mut self, op: &OperatorState, subtask: u32, h: &OperatorStateHandle) -> Result<OperatorStateHandle> {
        let source = StreamSource::open(self.snapshot, &h.delegate)?;
        let first = h.states.iter().flat_map(|s| s.offsets.iter().copied()).min().unwrap_or(source.size()).min(source.size());
        let head = source.read_range(0..first)?;
        let meta = read_operator_backend_meta(&mut Cursor::new(&head)).map_err(|e| Error::decode(source.name(), e.context("operator backend meta data")))?;
        let mut proxy = meta.raw.clone();
        // Proxy version 6 (1.18+) carries the compression flag right after the version; version 5
        // has none and is read uncompressed by the releases that write it.
        let compressed = self.opts.compression == Compression::Snappy && meta.version >= 6;
        if meta.version >= 6 {
            proxy[4] = u8::from(compressed);
        } else if self.opts.compression == Compression::Snappy {
            let note = "operator state written uncompressed: its proxy version 5 (Flink up to 1.17) has no compression flag".to_owned();
            if !self.report.notes.contains(&note) {
                self.report.notes.push(note);
            }
        }
        let entries = read_operator_state(self.snapshot, op.operator_id, h)?;
        let mut by_state: HashMap<&str, Vec<&Entry>> = HashMap::new();
        for e in &entries {
            by_state.entry(e.state.as_str()).or_default().push(e);
        }
        let mut states = Vec::with_capacity(h.states.len());
        for s in &h.states {
            let es = by_state.remove(s.name.as_str()).unwrap_or_default();
            self.report.operator_entries += es.len() as u64;
            let data = match s.mode {
                DistributionMode::Broadcast => OperatorStateData::Broadcast(
                    es.iter().map(|e| (e.raw.user_key.clone().unwrap_or_default(), e.raw.value.clone())).collect(),
                ),
                _ => OperatorStateData::List(es.iter().map(|e| e.raw.value.clone()).collect()),
            };
            states.push(NamedOperatorState { name: s.name.clone(), mode: s.mode, data });
        }
        let (out, name) = self.new_stream(&format!("{}/{subtask}/operator", op.operator_id));
        write_operator_state(out, &name, &proxy, compressed, &states)
    }

    /// The serialization proxy of one source keyed handle.
    fn keyed_meta(&self, op: &OperatorState, h: &KeyedStateHandle) -> Result<KeyedBackendMeta> {
        match h {
            KeyedStateHandle::KeyGroups(k) => Ok(KeyedHandleReader::open(self.snapshot, op.operator_id, op.max_parallelism, k)?.meta().clone()),
            // RocksDB native snapshots: the meta file holds the same proxy (uncompressed flag).
            KeyedStateHandle::IncrementalRemote(inc) => {
                let m = inc.meta_state_handle.as_ref().ok_or_else(|| Error::Invalid(format!("{}: an incremental handle without its meta file", self.where_(op))))?;
                let source = StreamSource::open(self.snapshot, m)?;
                let bytes = source.read_range(0..source.size())?;
                read_keyed_backend_meta(&mut Cursor::new(&bytes)).map_err(|e| Error::decode(source.name(), e.context("keyed backend meta data")))
            }
            // Changelog checkpoints: the materialized proxy plus the states registered since.
            KeyedStateHandle::Changelog(h) => crate::readers::changelog::read_meta(self.snapshot, h),
            other => Err(Error::Invalid(format!("{}: keyed state in a {} cannot be converted", self.where_(op), other.class_name()))),
        }
    }

    /// The union of the states the source subtasks registered (a subtask that never saw a
    /// key registers nothing), first seen first; each keeps its exact serializer snapshot bytes.
    fn layout(&self, op: &OperatorState, metas: &[KeyedBackendMeta]) -> Result<KeyedLayout> {
        let first = metas.first().ok_or_else(|| Error::Invalid(format!("{}: no keyed state", self.where_(op))))?;
        let mut layout = KeyedLayout {
            proxy_version: first.version,
            key_serializer: first.key_serializer.clone(),
            key_serializer_raw: first.key_serializer_raw.clone(),
            states: Vec::new(),
            ids: HashMap::new(),
        };
        for m in metas {
            if m.key_serializer_raw != layout.key_serializer_raw {
                return Err(Error::Invalid(format!("{}: subtasks disagree on the key serializer", self.where_(op))));
            }
            for s in &m.states {
                if s.backend_type == BackendStateType::KeyValueV2 {
                    return Err(Error::Invalid(format!(
                        "{}: state {:?} belongs to the async state API (2.x), which Flink cannot restore from a canonical savepoint",
                        self.where_(op),
                        s.name
                    )));
                }
                if s.kind().is_none() {
                    return Err(Error::Invalid(format!("{}: state {:?} has an unknown keyed state type", self.where_(op), s.name)));
                }
                match layout.ids.get(&s.name) {
                    Some(&i) if layout.states[i as usize].raw != s.raw => {
                        return Err(Error::Invalid(format!("{}: subtasks disagree on the serializers of state {:?}", self.where_(op), s.name)));
                    }
                    Some(_) => {}
                    None => {
                        let id = u16::try_from(layout.states.len()).ok().filter(|&i| i < i16::MAX as u16).ok_or_else(|| Error::Invalid(format!("{}: too many states", self.where_(op))))?;
                        layout.ids.insert(s.name.clone(), id);
                        layout.states.push(s.clone());
                    }
                }
            }
        }
        Ok(layout)
    }

    /// Writes the keyed state of `op` for `max_parallelism`: one handle per subtask.
    fn keyed(&mut self, op: &OperatorState, max_parallelism: u32) -> Result<Vec<(u32, KeyGroupsStateHandle)>> {
        let handles: Vec<(u32, &KeyedStateHandle)> = op
            .subtasks
            .iter()
            .filter_map(|st| st.state.as_ref().and_then(|s| s.managed_keyed_state.as_ref()).map(|h| (st.index, h)))
            .collect();
        let metas = handles.iter().map(|(_, h)| self.keyed_meta(op, h)).collect::<Result<Vec<_>>>()?;
        let layout = self.layout(op, &metas)?;
        let regroup = max_parallelism != op.max_parallelism;
        // Key-grouped handles are read key group by key group, ascending, so with an unchanged max
        // parallelism their entries can stream straight through. Anything else is sorted first.
        let mut last_end: Option<u32> = None;
        let ordered = !regroup
            && handles.iter().all(|(_, h)| match h {
                KeyedStateHandle::KeyGroups(k) => {
                    let ok = last_end.is_none_or(|e| k.key_group_range.start > e) && k.key_group_range.end_inclusive().is_none_or(|e| e < max_parallelism);
                    last_end = k.key_group_range.end_inclusive().or(last_end);
                    ok
                }
                _ => false,
            });
        if regroup {
            self.report.regrouped_operators += 1;
        }
        // Only keyed entries of this operator: a key-group selection leaves operator state out.
        let selection = Selection { operators: vec![op.operator_id], states: Vec::new(), key_groups: Some(KeyGroupRange::new(0, u32::MAX)) };
        let entries = SnapshotEntries::new(self.snapshot, selection);
        let ctx = RecordContext { op, layout: &layout, source_max_parallelism: op.max_parallelism, max_parallelism, regroup };
        let spill_dir = self.spill_base.join(format!(".spill-{}", op.operator_id));
        let records: Box<dyn Iterator<Item = Result<Record>> + '_> = if ordered {
            let records = entries.filter_map(move |e| e.and_then(|e| ctx.record(&e)).transpose());
            Box::new(KeyGroupBatches::new(records))
        } else {
            let mut sorter = ExternalSorter::new(&spill_dir, self.opts.memory_budget);
            for e in entries {
                if let Some(r) = ctx.record(&e?)? {
                    sorter.push(r)?;
                }
            }
            self.report.spilled_runs += sorter.spilled_runs();
            Box::new(sorter.finish()?)
        };
        let proxy = layout.proxy(self.compressed_keyed())?;
        let mut records = records.peekable();
        let mut out = Vec::with_capacity(op.parallelism as usize);
        for i in 0..op.parallelism {
            let range = KeyGroupRange::for_subtask(max_parallelism, op.parallelism, i);
            let (stream, name) = self.new_stream(&format!("{}/{i}/keyed", op.operator_id));
            let mut w = KeyGroupStreamWriter::new(stream, name, &proxy, range, max_parallelism, self.compressed_keyed())?;
            while let Some(next) = records.peek() {
                match next {
                    Ok(r) if range.end_inclusive().is_some_and(|end| r.key_group > end) => break,
                    _ => {}
                }
                match records.next() {
                    Some(Ok(r)) => w.push(r)?,
                    Some(Err(e)) => return Err(e),
                    None => break,
                }
            }
            let (handle, n) = w.finish()?;
            self.report.keyed_entries += n;
            out.push((i, handle));
        }
        if let Some(r) = records.next() {
            let kg = r?.key_group;
            return Err(Error::Invalid(format!("{}: an entry in key group {kg}, beyond max parallelism {max_parallelism}", self.where_(op))));
        }
        drop(records);
        let _ = std::fs::remove_dir_all(&spill_dir);
        Ok(out)
    }
}

/// Turns entries of one keyed operator into records for the written stream.
#[derive(Clone, Copy)]
struct RecordContext<'a> {
    op: &'a OperatorState,
    layout: &'a KeyedLayout,
    source_max_parallelism: u32,
    max_parallelism: u32,
    regroup: bool,
}

impl RecordContext<'_> {
    fn fail(&self, e: &Entry, msg: impl std::fmt::Display) -> Error {
        let key = e.key.as_ref().map_or("null".to_owned(), |k| k.to_json().to_string());
        Error::Invalid(format!("operator {} state {:?} key {key}: {msg}", self.op.operator_id, e.state))
    }

    /// The record of one entry; `None` for what the canonical stream does not hold (empty lists).
    fn record(&self, e: &Entry) -> Result<Option<Record>> {
        if !e.kind.is_keyed() {
            return Ok(None);
        }
        let &state = self.layout.ids.get(&e.state).ok_or_else(|| self.fail(e, "state is not in the serialization proxy"))?;
        let meta = &self.layout.states[state as usize];
        let source_kg = e.key_group.ok_or_else(|| self.fail(e, "keyed entry without a key group"))?;
        let key_group = if self.regroup { self.new_key_group(e, source_kg)? } else { source_kg };
        if key_group >= self.max_parallelism {
            return Err(self.fail(e, format!("key group {key_group} is beyond max parallelism {}", self.max_parallelism)));
        }
        let raw = &e.raw;
        let (key, value) = match e.kind {
            StateKind::Timer => {
                // TimerSerializer: sign-flipped timestamp (so byte order is numeric order), key,
                // namespace; the value is empty.
                let Value::Int(ts) = e.value else { return Err(self.fail(e, "timer without a timestamp")) };
                let mut k = Vec::with_capacity(8 + raw.key.len() + raw.namespace.len());
                k.extend_from_slice(&(ts ^ i64::MIN).to_be_bytes());
                k.extend_from_slice(&raw.key);
                k.extend_from_slice(&raw.namespace);
                (k, Vec::new())
            }
            // An empty list is no entry in the canonical stream (RocksDB never stores one).
            StateKind::List if raw.value.is_empty() => return Ok(None),
            kind => {
                let ns = meta.serializer(NAMESPACE_SERIALIZER).ok_or_else(|| self.fail(e, "state has no namespace serializer"))?;
                // CompositeKeySerializationUtils: length suffixes only when both key and namespace
                // are of variable length.
                let ambiguous = self.layout.key_serializer.fixed_length().is_none() && ns.fixed_length().is_none();
                let mut k = Vec::with_capacity(raw.key.len() + raw.namespace.len() + 8);
                k.extend_from_slice(&raw.key);
                if ambiguous {
                    push_length_suffix(&mut k, raw.key.len());
                }
                k.extend_from_slice(&raw.namespace);
                if ambiguous {
                    push_length_suffix(&mut k, raw.namespace.len());
                }
                if kind == StateKind::Map {
                    k.extend_from_slice(raw.user_key.as_deref().ok_or_else(|| self.fail(e, "map entry without a user key"))?);
                }
                (k, raw.value.clone())
            }
        };
        Ok(Some(Record { key_group, state, key, value }))
    }

    /// The key group of the entry's key for the new max parallelism: Flink's murmur of the
    /// key's Java `hashCode()`. Checked against the key group the source stored it in, so a key
    /// whose hash flinksnap gets wrong is refused instead of silently lost.
    fn new_key_group(&self, e: &Entry, source_kg: u32) -> Result<u32> {
        let key = e.key.as_ref().ok_or_else(|| self.fail(e, "keyed entry without a key"))?;
        let ser = &self.layout.key_serializer;
        let hash = java_hash_code(ser, key).ok_or_else(|| {
            self.fail(
                e,
                format!(
                    "cannot move keys to another max parallelism: the Java hashCode() of keys of {} is not defined by their value \
                     (flinksnap computes it for Long, Integer, Short, Byte, Boolean, Double, Float, Character, String and \
                     Tuple/Row of these)",
                    ser.opaque_class()
                ),
            )
        })?;
        let old = key_group_for_hash(hash, self.source_max_parallelism);
        if old != source_kg {
            return Err(self.fail(
                e,
                format!("the source stores this key in key group {source_kg}, but its hash puts it in {old}: its hashCode() is not the one flinksnap computes"),
            ));
        }
        Ok(key_group_for_hash(hash, self.max_parallelism))
    }
}

/// `CompositeKeySerializationUtils.writeLengthFrom`: the length little-endian in as few bytes
/// as it needs (at least one), no continuation bits.
fn push_length_suffix(out: &mut Vec<u8>, len: usize) {
    let mut v = len;
    loop {
        out.push(v as u8);
        v >>= 8;
        if v == 0 {
            break;
        }
    }
}

/// Records in key-group order as a reader yields them, sorted by state id within each key group
/// (one key group in memory); an entry out of key-group order is an error.
struct KeyGroupBatches<I> {
    inner: I,
    batch: std::vec::IntoIter<Record>,
    next: Option<Record>,
    last: Option<u32>,
    done: bool,
}

impl<I: Iterator<Item = Result<Record>>> KeyGroupBatches<I> {
    fn new(inner: I) -> Self {
        KeyGroupBatches { inner, batch: Vec::new().into_iter(), next: None, last: None, done: false }
    }

    fn fill(&mut self) -> Result<bool> {
        let first = match self.next.take() {
            Some(r) => r,
            None => match self.inner.next() {
                Some(r) => r?,
                None => return Ok(false),
            },
        };
        let kg = first.key_group;
        if self.last.is_some_and(|l| kg <= l) {
            return Err(Error::Invalid(format!("entries of key group {kg} arrived after key group {}", self.last.unwrap_or(0))));
        }
        self.last = Some(kg);
        let mut batch = vec![first];
        for r in self.inner.by_ref() {
            let r = r?;
            if r.key_group != kg {
                self.next = Some(r);
                break;
            }
            batch.push(r);
        }
        batch.sort_by_key(|r| r.state);
        self.batch = batch.into_iter();
        Ok(true)
    }
}

impl<I: Iterator<Item = Result<Record>>> Iterator for KeyGroupBatches<I> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        loop {
            if let Some(r) = self.batch.next() {
                return Some(Ok(r));
            }
            if self.done {
                return None;
            }
            match self.fill() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// The operator ids of a snapshot that hold keyed state (for callers choosing what to check).
pub fn keyed_operators(snapshot: &Snapshot) -> Vec<OperatorId> {
    snapshot
        .metadata
        .operators
        .iter()
        .filter(|o| o.subtasks.iter().any(|s| s.state.as_ref().is_some_and(|s| s.managed_keyed_state.is_some())))
        .map(|o| o.operator_id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RawEntry;
    use crate::readers::serializers::{SerializerKind, SimpleType};

    #[test]
    fn length_suffix_is_little_endian_minimal() {
        let mut v = Vec::new();
        push_length_suffix(&mut v, 0);
        push_length_suffix(&mut v, 5);
        push_length_suffix(&mut v, 0x1234);
        assert_eq!(v, [0, 5, 0x34, 0x12]);
    }

    #[test]
    fn batches_sort_states_within_a_key_group_and_refuse_disorder() {
        let r = |kg, st| Ok(Record { key_group: kg, state: st, key: vec![], value: vec![] });
        let got: Vec<(u32, u16)> =
            KeyGroupBatches::new(vec![r(1, 2), r(1, 0), r(3, 1), r(3, 0)].into_iter()).map(|x| x.map(|r| (r.key_group, r.state)).unwrap()).collect();
        assert_eq!(got, [(1, 0), (1, 2), (3, 0), (3, 1)]);
        let bad: Vec<_> = KeyGroupBatches::new(vec![r(3, 0), r(1, 0)].into_iter()).collect();
        assert!(bad.last().unwrap().is_err());
    }

    fn context_test(key_serializer: TypeSerializer, key: Value, source_kg: u32) -> Result<Option<Record>> {
        let ns = TypeSerializer::new("VoidNamespaceSerializerSnapshot".into(), 3, SerializerKind::Simple(SimpleType::VoidNamespace));
        context_with(key_serializer, ns, key, source_kg, (vec![1], vec![0]))
    }

    fn context_with(key_serializer: TypeSerializer, ns: TypeSerializer, key: Value, source_kg: u32, raw: (Vec<u8>, Vec<u8>)) -> Result<Option<Record>> {
        let value = TypeSerializer::new("LongSerializerSnapshot".into(), 3, SerializerKind::Simple(SimpleType::Long));
        let meta = StateMetaInfo {
            name: "s".into(),
            backend_type: BackendStateType::KeyValue,
            options: vec![("KEYED_STATE_TYPE".into(), "VALUE".into())],
            serializers: vec![("VALUE_SERIALIZER".into(), value), (NAMESPACE_SERIALIZER.into(), ns)],
            raw: Vec::new(),
        };
        let layout = KeyedLayout { proxy_version: 6, key_serializer, key_serializer_raw: Vec::new(), states: vec![meta], ids: [("s".to_owned(), 0u16)].into() };
        let op = OperatorState {
            operator_id: OperatorId([0; 16]),
            name: None,
            uid: None,
            parallelism: 1,
            max_parallelism: 128,
            coordinator_state: None,
            fully_finished: false,
            subtasks: Vec::new(),
        };
        let ctx = RecordContext { op: &op, layout: &layout, source_max_parallelism: 128, max_parallelism: 256, regroup: true };
        let e = Entry {
            operator_id: op.operator_id,
            state: "s".into(),
            kind: StateKind::Value,
            key_group: Some(source_kg),
            key: Some(key),
            namespace: Some(Value::Null),
            user_key: None,
            value: Value::Int(1),
            ttl_timestamp: None,
            raw: RawEntry { key: raw.0, namespace: raw.1, user_key: None, value: vec![0; 8] },
        };
        ctx.record(&e)
    }

    #[test]
    fn variable_length_key_and_namespace_get_length_suffixes() {
        // String key "k" (02 6B) and String namespace "n" (02 6E): both variable-length, so
        // CompositeKeySerializationUtils appends each one's byte count (formats reference §4.4).
        let string = || TypeSerializer::new("StringSerializerSnapshot".into(), 3, SerializerKind::Simple(SimpleType::String));
        let r = context_with(string(), string(), Value::String("k".into()), 21, (vec![2, 0x6b], vec![2, 0x6e])).unwrap().unwrap();
        assert_eq!(r.key, [2, 0x6b, 2, 2, 0x6e, 2]);
        // And the reader's decoder (shared with the RocksDB column-family readers) agrees.
        let meta = crate::readers::meta::KeyedBackendMeta {
            version: 6,
            compressed: false,
            key_serializer: string(),
            states: vec![StateMetaInfo {
                name: "s".into(),
                backend_type: BackendStateType::KeyValue,
                options: vec![("KEYED_STATE_TYPE".into(), "VALUE".into())],
                serializers: vec![
                    ("VALUE_SERIALIZER".into(), TypeSerializer::new("LongSerializerSnapshot".into(), 3, SerializerKind::Simple(SimpleType::Long))),
                    (NAMESPACE_SERIALIZER.into(), string()),
                ],
                raw: Vec::new(),
            }],
            key_serializer_raw: Vec::new(),
            raw: Vec::new(),
        };
        let dec = crate::readers::keyed::KeyedDecoder::new(OperatorId([0; 16]), 128, &meta).unwrap();
        let mut key = vec![21u8];
        key.extend(&r.key);
        let e = dec.decode_kv(0, &key, 0, &r.value, 0).unwrap();
        assert_eq!((e[0].key.clone(), e[0].namespace.clone()), (Some(Value::String("k".into())), Some(Value::String("n".into()))));
    }

    #[test]
    fn regrouping_refuses_keys_whose_hash_is_not_computable_or_disagrees() {
        // Kryo (or POJO, enum) keys: Java's hashCode() is not a function of the value.
        let kryo = TypeSerializer::new("KryoSerializerSnapshot".into(), 2, SerializerKind::Kryo { type_class: "com.example.Key".into() });
        let e = context_test(kryo, Value::Bytes(vec![1]), 0).unwrap_err().to_string();
        assert!(e.contains("com.example.Key") && e.contains("hashCode()"), "{e}");
        // "k" hashes to key group 21 of 128 (release-verified); stored elsewhere, it is refused.
        let string = || TypeSerializer::new("StringSerializerSnapshot".into(), 3, SerializerKind::Simple(SimpleType::String));
        let e = context_test(string(), Value::String("k".into()), 20).unwrap_err().to_string();
        assert!(e.contains("key group 20") && e.contains("puts it in 21"), "{e}");
        let r = context_test(string(), Value::String("k".into()), 21).unwrap().unwrap();
        assert_eq!(r.key_group, key_group_for_hash(107, 256));
        assert_eq!(r.key, [1, 0], "key and namespace bytes, no length suffixes (VoidNamespace is fixed-length)");
    }
}
