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
use crate::consts::UPPER_BOUND_MAX_PARALLELISM;
use crate::error::{Error, Result};
use crate::metadata::handles::{DistributionMode, KeyGroupsStateHandle, KeyedStateHandle, OperatorStateHandle, StreamStateHandle};
use crate::metadata::{CheckpointMetadata, OperatorState, OperatorSubtaskState, SubtaskState};
use crate::model::{Entry, KeyGroupRange, OperatorId, RawParts, StateKind, SubtaskRef, ValueParts};
use crate::readers::entries::Selection;
use crate::readers::parallel::{self, Piece};
use crate::readers::undecodable::{Undecodable, UndecodableKind};
use crate::readers::meta::read_operator_backend_meta;
use crate::readers::operator::read_operator_state;
use crate::readers::source::KeyedSource;
use crate::readers::stream::StreamSource;
use crate::snapshot::{Snapshot, METADATA_FILE};
use crate::storage::{Location, Storage};
use crate::writers::canonical::{EncodedPart, KeyGroupStreamWriter, Record};
use crate::writers::key_group_batcher::{EncodedKeyGroups, KeyGroupBatcher};
use crate::writers::edit::{Counts, Edits, ImportedState};
use crate::writers::keys::{KeyedLayout, RecordContext};
use crate::writers::metadata::write_metadata_v3;
use crate::writers::operator::{write_operator_state, NamedOperatorState, OperatorStateData};
use crate::writers::spill::ExternalSorter;
use crate::writers::stream::{uuid_name, StateStreamWriter, DEFAULT_INLINE_THRESHOLD, MAX_INLINE_THRESHOLD};
use crate::writers::target::TargetDir;

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
    /// Bytes of keyed entries held in memory while regrouping before spilling to disk. A
    /// sixteenth of it (at most 4 MiB) bounds the records of one key group a reading thread
    /// holds before it streams the key group in parts or gathers it state by state.
    pub memory_budget: usize,
    /// Replace an existing target.
    pub force: bool,
    /// Threads reading and encoding keyed state (the written bytes are the same for any number).
    pub threads: usize,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            max_parallelism: None,
            compression: Compression::None,
            inline_threshold: DEFAULT_INLINE_THRESHOLD,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            force: false,
            threads: parallel::default_threads(),
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
    /// Key groups too large to hold whole, streamed in parts or gathered state by state (see
    /// [`ConvertOptions::memory_budget`]).
    pub streamed_key_groups: u64,
    /// Things the user should know (e.g. compression that could not be applied).
    pub notes: Vec<String>,
}

/// Converts the snapshot at `src` into a canonical savepoint directory `dst` (a local path or
/// an object-store URL).
pub fn convert(storage: Arc<dyn Storage>, src: &str, dst: &str, opts: &ConvertOptions) -> Result<ConvertReport> {
    let snapshot = Snapshot::open(storage.clone(), src)?;
    Ok(write_savepoint(&snapshot, storage, dst, opts, &Edits::default())?.0)
}

/// Writes `snapshot` as a canonical savepoint directory `dst` (a local path or an object-store
/// URL), with `edits` applied on the way (`convert`: none). Returns what was written and what
/// the edits left out.
pub(crate) fn write_savepoint(
    snapshot: &Snapshot,
    storage: Arc<dyn Storage>,
    dst: &str,
    opts: &ConvertOptions,
    edits: &Edits,
) -> Result<(ConvertReport, Counts)> {
    // The writer reads the stored bytes, the key and a timer's timestamp of every entry
    // (`RecordContext::record_owned`, `Edits::keep`): the other decoded parts are checked only.
    write_savepoint_building(snapshot, storage, dst, opts, edits, ValueParts::Key)
}

/// [`write_savepoint`] reading entries with the decoded parts `values` (tests compare the
/// output of both modes).
pub(crate) fn write_savepoint_building(
    snapshot: &Snapshot,
    storage: Arc<dyn Storage>,
    dst: &str,
    opts: &ConvertOptions,
    edits: &Edits,
    values: ValueParts,
) -> Result<(ConvertReport, Counts)> {
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
    let target = TargetDir::prepare(snapshot, storage, dst, opts.force)?;
    let mut report = ConvertReport { source: snapshot.metadata_location.to_string(), target: target.dst.to_string(), ..Default::default() };
    // Sorted runs spill to a local disk: beside the target when it is local, else the temp dir.
    let spill_tmp = if target.is_remote() {
        Some(tempfile::Builder::new().prefix("flinksnap-spill-").tempdir().map_err(|e| Error::io(std::env::temp_dir().display().to_string(), e))?)
    } else {
        None
    };
    let spill_base = spill_tmp.as_ref().map_or_else(|| PathBuf::from(target.tmp.as_str()), |t| t.path().to_path_buf());
    let mut counts = Counts::default();
    let metadata =
        Converter { snapshot, target: &target, spill_base, opts, report: &mut report, edits, counts: &mut counts, values }.run()?;
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
    Ok((report, counts))
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
    edits: &'a Edits,
    counts: &'a mut Counts,
    /// The decoded parts keyed entries are read with.
    values: ValueParts,
}

impl Converter<'_> {
    fn run(mut self) -> Result<CheckpointMetadata> {
        let src = &self.snapshot.metadata;
        let mut operators = Vec::with_capacity(src.operators.len());
        for (i, op) in src.operators.iter().enumerate() {
            if self.edits.drops_operator(&op.operator_id) {
                continue;
            }
            operators.push(self.operator(i, op)?);
        }
        for n in &self.edits.new_operators {
            operators.push(self.new_operator(n)?);
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

    fn operator(&mut self, index: usize, op: &OperatorState) -> Result<OperatorState> {
        // A max parallelism of 1 is always set by the program (Flink's default is at least 128):
        // the SQL planner's singleton operators (global aggregates, their sinks), a job's
        // setMaxParallelism(1). The restoring program sets it again, and Flink refuses a
        // snapshot whose max parallelism differs for such an operator: it keeps 1.
        let max_parallelism = if op.max_parallelism == 1 { 1 } else { self.opts.max_parallelism.unwrap_or(op.max_parallelism) };
        if max_parallelism < op.parallelism {
            return Err(Error::Invalid(format!(
                "{}: max parallelism {max_parallelism} is below the operator's parallelism {}",
                self.where_(op),
                op.parallelism
            )));
        }
        let (operator_id, uid) = self.edits.target(op);
        let mut out = OperatorState {
            operator_id,
            name: op.name.clone(),
            uid,
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
        for (j, st) in op.subtasks.iter().enumerate() {
            let ctx = || format!("{} subtask {}", self.where_(op), st.index);
            let Some(s) = &st.state else {
                if has_keyed {
                    return Err(Error::unsupported(format!("{}: finished; a keyed operator with finished subtasks cannot be converted", ctx()), None));
                }
                subtasks.insert(st.index, st.clone());
                continue;
            };
            if !s.input_channel_state.is_empty() || !s.result_subpartition_state.is_empty() {
                return Err(Error::unsupported(
                    format!(
                        "{}: holds in-flight channel data of an unaligned checkpoint, which a savepoint cannot carry \
                         (take an aligned checkpoint or a savepoint instead)",
                        ctx()
                    ),
                    None,
                ));
            }
            if s.ref_checkpoint_id.is_some() {
                return Err(Error::unsupported(format!("{}: refers to the state of an earlier checkpoint (metadata V7)", ctx()), None));
            }
            let mut t = OperatorSubtaskState::default();
            // An empty file-merging handle holds nothing and is not written.
            if let Some(h) = s.managed_operator_state.as_ref().filter(|h| !h.is_empty()) {
                // Every state dropped: no operator state at all.
                if h.states.iter().any(|m| !self.edits.drops_state(&op.operator_id, &m.name)) || h.states.is_empty() {
                    t.managed_operator_state = Some(self.operator_state(op, SubtaskRef { operator: index, subtask: j }, st.index, h)?);
                }
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
            for (index, handle) in self.keyed(index, op, max_parallelism, None)? {
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
            return Err(Error::unsupported(format!("{}: raw keyed state in a {} is not supported", self.where_(op), h.class_name()), Some(h.class_name())));
        };
        if max_parallelism != op.max_parallelism {
            // Raw keyed state is operator-defined bytes per key group: flinksnap cannot move its keys.
            return Err(Error::unsupported(
                format!(
                    "{}: holds raw keyed state (e.g. heap timers of a RocksDB checkpoint), whose keys cannot be \
                     moved to other key groups; convert without --max-parallelism",
                    self.where_(op)
                ),
                None,
            ));
        }
        let seed = format!("{}/{}/raw-keyed", op.operator_id, k.key_group_range.start);
        let delegate = self.copy_stream(&k.delegate, &seed)?;
        Ok(KeyedStateHandle::KeyGroups(KeyGroupsStateHandle { delegate, ..k.clone() }))
    }

    fn compressed_keyed(&self) -> bool {
        self.opts.compression == Compression::Snappy
    }

    /// Rewrites one subtask's operator state.
    fn operator_state(&mut self, op: &OperatorState, sub: SubtaskRef, subtask: u32, h: &OperatorStateHandle) -> Result<OperatorStateHandle> {
        let source = StreamSource::open(self.snapshot, &h.delegate)?;
        let first = h.states.iter().flat_map(|s| s.offsets.iter().copied()).min().unwrap_or(source.size()).min(source.size());
        let head = source.read_range(0..first)?;
        let meta = read_operator_backend_meta(&mut Cursor::with_base(&head, source.file_offset(0)))
            .map_err(|e| Error::decode(source.name(), e.context("operator backend meta data")))?;
        let dropped = |name: &str| self.edits.drops_state(&op.operator_id, name);
        let mut proxy = if meta.operator_states.iter().chain(&meta.broadcast_states).any(|s| dropped(&s.name)) {
            operator_proxy_without(&meta, &dropped)?
        } else {
            meta.raw.clone()
        };
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
        let entries = read_operator_state(self.snapshot, sub, h)?;
        let mut by_state: HashMap<&str, Vec<&Entry>> = HashMap::new();
        for e in &entries {
            by_state.entry(&*e.state).or_default().push(e);
        }
        let mut states = Vec::with_capacity(h.states.len());
        // Imported operator state: list and union elements all go to the first subtask. Flink
        // spreads list elements over the subtasks on a restore with another parallelism, and
        // gives every subtask the union of all subtasks' union elements on every restore, so a
        // copy in each subtask would multiply them. Broadcast state goes to every subtask, as
        // Flink stores it (each subtask's copy is the whole map; a restore reads one).
        let mut imported: HashMap<String, Vec<Entry>> = HashMap::new();
        for i in self.edits.imports(&op.operator_id).iter().filter(|i| !i.kind().is_keyed()) {
            let Some(mode) = h.states.iter().find(|s| s.name == i.state()).map(|s| s.mode) else { continue };
            if mode != DistributionMode::Broadcast && subtask != first_subtask(op) {
                imported.insert(i.state().to_owned(), Vec::new());
                continue;
            }
            let es = i.entries()?.collect::<Result<Vec<Entry>>>()?;
            // Broadcast state is a map: a user key twice would keep one of the values.
            if mode == DistributionMode::Broadcast {
                let mut seen = std::collections::HashSet::new();
                for e in &es {
                    let uk = e.raw.user_key.as_deref().unwrap_or_default();
                    if !seen.insert(uk) {
                        let operator = op.label();
                        if let Some(err) = crate::writers::edit::duplicate_error(i.as_ref(), &operator, |x| Ok(x.raw.user_key.as_deref().unwrap_or_default() == uk))? {
                            return Err(err);
                        }
                    }
                }
            }
            if subtask == first_subtask(op) {
                *self.counts.imported.entry((op.operator_id, i.state().to_owned())).or_default() += es.len() as u64;
            }
            imported.insert(i.state().to_owned(), es);
        }
        // Replaced: every subtask's list and union elements; broadcast state once (each subtask
        // holds the same map).
        for e in &entries {
            if self.edits.replaces(e) && (e.kind != StateKind::Broadcast || subtask == first_subtask(op)) {
                *self.counts.replaced.entry((op.operator_id, e.state.to_string())).or_default() += 1;
            }
        }
        for s in h.states.iter().filter(|s| !dropped(&s.name)) {
            let es = match imported.get(&s.name) {
                Some(es) => es.iter().collect(),
                None => by_state.remove(s.name.as_str()).unwrap_or_default(),
            };
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

    /// An operator the snapshot does not have, holding only imported state: keyed state in the
    /// canonical stream of each subtask's key-group range, operator list and union elements in
    /// the first subtask, broadcast state in every subtask.
    fn new_operator(&mut self, n: &crate::writers::edit::NewOperator) -> Result<OperatorState> {
        let mut op = n.operator_state();
        if op.max_parallelism < op.parallelism {
            return Err(Error::Invalid(format!("{}: max parallelism {} is below the operator's parallelism {}", self.where_(&op), op.max_parallelism, op.parallelism)));
        }
        let imports = self.edits.imports(&n.operator_id);
        let mut subtasks: BTreeMap<u32, SubtaskState> = BTreeMap::new();
        let operator_states: Vec<&crate::readers::meta::StateMetaInfo> =
            imports.iter().filter(|i| !i.kind().is_keyed()).map(|i| i.new_registration().ok_or_else(|| Error::Invalid(format!("{}: state {:?} has no registration", self.where_(&op), i.state())))).collect::<Result<_>>()?;
        if !operator_states.is_empty() {
            for i in 0..op.parallelism {
                let h = self.new_operator_state(&op, i, imports)?;
                subtasks.insert(i, SubtaskState { index: i, finished: false, state: Some(OperatorSubtaskState { managed_operator_state: Some(h), ..Default::default() }) });
            }
        }
        if imports.iter().any(|i| i.kind().is_keyed()) {
            let (key_serializer, key_serializer_raw) = n.key_serializer.clone().ok_or_else(|| Error::Invalid(format!("{}: keyed state without a key serializer", self.where_(&op))))?;
            let mut layout = KeyedLayout { proxy_version: 6, key_serializer, key_serializer_raw, states: Vec::new(), ids: HashMap::new() };
            for i in imports.iter().filter(|i| i.kind().is_keyed()) {
                let meta = i.new_registration().ok_or_else(|| Error::Invalid(format!("{}: state {:?} has no registration", self.where_(&op), i.state())))?;
                layout.add_state(&self.where_(&op), meta.clone())?;
            }
            self.report.keyed_operators += 1;
            let max_parallelism = op.max_parallelism;
            for (index, handle) in self.keyed(usize::MAX, &op, max_parallelism, Some(layout))? {
                let st = subtasks.entry(index).or_insert_with(|| SubtaskState { index, finished: false, state: Some(OperatorSubtaskState::default()) });
                if let Some(s) = st.state.as_mut() {
                    s.managed_keyed_state = Some(KeyedStateHandle::KeyGroups(handle));
                }
            }
        }
        op.subtasks = subtasks.into_values().collect();
        Ok(op)
    }

    /// Subtask `subtask`'s operator state of a new operator: a proxy of the imported states'
    /// registrations (version 5, which every release 1.13–2.3 reads; Flink 1.18+ writes 6 only
    /// to carry the compression flag), list and union elements in the first subtask only,
    /// broadcast state in every subtask.
    fn new_operator_state(&mut self, op: &OperatorState, subtask: u32, imports: &[Arc<dyn ImportedState>]) -> Result<OperatorStateHandle> {
        use crate::bytes::DataOutput;
        let imports: Vec<&Arc<dyn ImportedState>> = imports.iter().filter(|i| !i.kind().is_keyed()).collect();
        let mut proxy = Vec::new();
        proxy.put_i32(5);
        for broadcast in [false, true] {
            let regs: Vec<_> = imports.iter().filter(|i| (i.kind() == StateKind::Broadcast) == broadcast).filter_map(|i| i.new_registration()).collect();
            proxy.put_i16(i16::try_from(regs.len()).map_err(|_| Error::Invalid(format!("{}: too many operator states", self.where_(op))))?);
            for r in regs {
                proxy.extend_from_slice(&r.raw);
            }
        }
        if self.opts.compression == Compression::Snappy {
            let note = "the new operators' operator state is written uncompressed (proxy version 5, which every Flink release reads)".to_owned();
            if !self.report.notes.contains(&note) {
                self.report.notes.push(note);
            }
        }
        let mut states = Vec::with_capacity(imports.len());
        for i in &imports {
            let broadcast = i.kind() == StateKind::Broadcast;
            let es = if broadcast || subtask == 0 { i.entries()?.collect::<Result<Vec<Entry>>>()? } else { Vec::new() };
            if broadcast {
                let mut seen = std::collections::HashSet::new();
                for e in &es {
                    let uk = e.raw.user_key.as_deref().unwrap_or_default();
                    if !seen.insert(uk) {
                        if let Some(err) = crate::writers::edit::duplicate_error(i.as_ref(), &op.label(), |x| Ok(x.raw.user_key.as_deref().unwrap_or_default() == uk))? {
                            return Err(err);
                        }
                    }
                }
            }
            if subtask == 0 {
                *self.counts.imported.entry((op.operator_id, i.state().to_owned())).or_default() += es.len() as u64;
            }
            self.report.operator_entries += es.len() as u64;
            let (mode, data) = match i.kind() {
                StateKind::Broadcast => (DistributionMode::Broadcast, OperatorStateData::Broadcast(es.iter().map(|e| (e.raw.user_key.clone().unwrap_or_default(), e.raw.value.clone())).collect())),
                StateKind::OperatorUnion => (DistributionMode::Union, OperatorStateData::List(es.iter().map(|e| e.raw.value.clone()).collect())),
                _ => (DistributionMode::SplitDistribute, OperatorStateData::List(es.iter().map(|e| e.raw.value.clone()).collect())),
            };
            states.push(NamedOperatorState { name: i.state().to_owned(), mode, data });
        }
        let (out, name) = self.new_stream(&format!("{}/{subtask}/operator", op.operator_id));
        write_operator_state(out, &name, &proxy, false, &states)
    }

    /// Writes the keyed state of `op` for `max_parallelism`: one handle per subtask. The
    /// serialization proxy is the union of the subtasks' (`layout` given: a new operator's).
    fn keyed(&mut self, index: usize, op: &OperatorState, max_parallelism: u32, layout: Option<KeyedLayout>) -> Result<Vec<(u32, KeyGroupsStateHandle)>> {
        let new_operator = layout.is_some();
        let mut metas = Vec::new();
        let mut ranges = Vec::new();
        let mut subtask_metas = Vec::new();
        for j in (0..op.subtasks.len()).filter(|_| !new_operator) {
            // The proxies only (a RocksDB handle's from its meta-data file; a changelog handle's
            // with the states registered since its materialization).
            let Some(mut source) = KeyedSource::open(self.snapshot, SubtaskRef { operator: index, subtask: j }, &Selection::default())? else { continue };
            metas.push(source.meta().clone());
            ranges.push(source.key_group_range());
            subtask_metas.push((j, source.states_in_proxy_order()?));
        }
        let layout = match layout {
            Some(layout) => layout,
            None => {
                let mut layout = KeyedLayout::union(&self.where_(op), &metas)?;
                layout.retain_states(|name| !self.edits.drops_state(&op.operator_id, name));
                for meta in self.edits.imports(&op.operator_id).iter().filter_map(|i| i.new_registration()) {
                    layout.add_state(&self.where_(op), meta.clone())?;
                }
                layout
            }
        };
        // Subtasks whose key groups may be encoded in parts as they are read (`KeyGroupEncoder`)
        // once they grow large: those whose reader gives a key group's states in the order of
        // their proxy (RocksDB), where that order is the written proxy's. The others
        // (key-grouped streams, whose writer may order states as it likes, and changelogs) have
        // large key groups gathered state by state (`StateRuns`).
        let mut streamable = vec![false; op.subtasks.len()];
        for (&(j, in_order), meta) in subtask_metas.iter().zip(&metas) {
            let ids: Vec<u16> = meta.states.iter().filter_map(|st| layout.id(&st.name)).collect();
            streamable[j] = in_order && ids.windows(2).all(|w| w[0] < w[1]);
        }
        // A key group holding more than this many bytes of records is not held whole (streamed
        // in parts, or gathered state by state and spilled): memory stays bounded whatever the
        // size of a key group.
        let stream_above = (self.opts.memory_budget / 16).clamp(1, STREAM_KEY_GROUP_BYTES);
        let regroup = max_parallelism != op.max_parallelism;
        // Every keyed source yields key group by key group, ascending, so with an unchanged max
        // parallelism and subtasks in key-group order the entries stream straight through.
        // Anything else is sorted first.
        let mut last_end: Option<u32> = None;
        let ordered = !regroup
            && ranges.iter().all(|r| {
                let ok = last_end.is_none_or(|e| r.start > e) && r.end_inclusive().is_none_or(|e| e < max_parallelism);
                last_end = r.end_inclusive().or(last_end);
                ok
            });
        // Imported entries come in any key-group order: sorted with the source's.
        let imports = self.edits.imports(&op.operator_id);
        let ordered = ordered && imports.is_empty();
        if regroup {
            self.report.regrouped_operators += 1;
        }
        // Only keyed entries of this operator: a key-group selection leaves operator state out.
        // Every stored byte: what the writer does not re-encode it copies.
        let selection = Selection {
            operators: vec![op.operator_id],
            states: Vec::new(),
            key_groups: Some(KeyGroupRange::new(0, u32::MAX)),
            raw: RawParts::All,
            values: self.values,
        };
        let (snapshot, edits) = (self.snapshot, self.edits);
        let ctx = RecordContext { op, layout: &layout, source_max_parallelism: op.max_parallelism, max_parallelism, regroup };
        let spill_dir = self.spill_base.join(format!(".spill-{}", op.operator_id));
        let threads = self.opts.threads.max(1);
        let pieces = parallel::pieces(snapshot, &selection, threads);
        // Worker threads read pieces of the operator's keyed state and turn their entries into
        // records; this thread takes them in snapshot order (the written bytes do not depend on
        // the number of threads).
        // In key-group order (`ordered`) the reading threads also sort each key group's records
        // by state and encode it as the stream holds it (a piece holds whole key groups, in
        // ascending order): the writer only copies bytes. Else they hand on records to sort.
        let compressed = self.compressed_keyed();
        let produce = |piece: &Piece, emit: &mut dyn FnMut(RecordChunk) -> Result<()>| -> Result<()> {
            let mut entries = piece.entries(snapshot, &selection);
            let mut chunk = RecordChunk::default();
            let in_proxy_order = streamable.get(piece.subtask.subtask).copied().unwrap_or(false);
            let mut batcher = KeyGroupBatcher::new(op.operator_id, max_parallelism, compressed, stream_above, in_proxy_order, CHUNK_BYTES, &spill_dir);
            for e in entries.by_ref() {
                let e = match e {
                    Ok(e) => e,
                    Err(err) => {
                        chunk.encoded = batcher.take();
                        emit(chunk)?;
                        return Err(err);
                    }
                };
                if !edits.keep(&e, &mut chunk.counts) {
                    continue;
                }
                let Some(r) = ctx.record_owned(e)? else { continue };
                if !ordered {
                    chunk.bytes += r.weight();
                    chunk.records.push(r);
                    if chunk.bytes >= CHUNK_BYTES {
                        emit(std::mem::take(&mut chunk))?;
                    }
                } else {
                    batcher.push(r, &mut |encoded| {
                        chunk.encoded = encoded;
                        emit(std::mem::take(&mut chunk))
                    })?;
                }
            }
            batcher.finish(&mut |encoded| {
                chunk.encoded = encoded;
                emit(std::mem::take(&mut chunk))
            })?;
            chunk.undecodable = entries.undecodable().to_vec();
            emit(chunk)
        };
        let mut counts = std::mem::take(&mut *self.counts);
        let mut undecodable: Vec<Undecodable> = Vec::new();
        let mut streamed = 0;
        let mut take = |chunk: &mut RecordChunk| {
            streamed += chunk.encoded.streamed;
            counts.merge(std::mem::take(&mut chunk.counts));
            for u in chunk.undecodable.drain(..) {
                Undecodable::merge_into(&mut undecodable, u);
            }
        };
        let proxy = layout.proxy(self.compressed_keyed())?;
        let mut streams = KeyedStreams {
            conv: self,
            op,
            proxy: &proxy,
            max_parallelism,
            ctx: &ctx,
            repeats: RepeatedKeys::new(imports, &layout),
            current: None,
            next: 0,
            out: Vec::with_capacity(op.parallelism as usize),
            entries: 0,
            last_encoded: None,
        };
        let mut spilled = 0;
        if ordered {
            parallel::ordered(&pieces, threads, READ_AHEAD_BYTES, RecordChunk::weight, produce, |mut chunk| {
                take(&mut chunk);
                for (kg, bytes, n, part) in chunk.encoded.parts() {
                    streams.push_encoded(kg, bytes, n, part)?;
                }
                Ok(())
            })?;
        } else {
            let mut sorter = ExternalSorter::new(&spill_dir, self.opts.memory_budget);
            parallel::ordered(&pieces, threads, READ_AHEAD_BYTES, RecordChunk::weight, produce, |mut chunk| {
                take(&mut chunk);
                for r in chunk.records {
                    sorter.push(r)?;
                }
                Ok(())
            })?;
            for import in imports.iter().filter(|i| i.kind().is_keyed()) {
                let mut n = 0u64;
                for e in import.entries()? {
                    if let Some(r) = ctx.record_owned(e?)? {
                        sorter.push(r)?;
                    }
                    n += 1;
                }
                *counts.imported.entry((op.operator_id, import.state().to_owned())).or_default() += n;
            }
            spilled = sorter.spilled_runs();
            for r in sorter.finish()? {
                streams.push(r?)?;
            }
        }
        let (out, entries) = streams.finish()?;
        self.report.spilled_runs += spilled;
        self.report.streamed_key_groups += streamed;
        self.report.keyed_entries += entries;
        // States (or entries) a serializer flinksnap cannot interpret kept from being read would
        // be missing from the savepoint: refused, nothing is published. Untyped entries (read
        // past an unknown snapshot, their bytes exact) are written as they were stored.
        let lost: Vec<String> = undecodable
            .iter()
            .filter(|u| u.kind != UndecodableKind::Untyped)
            .map(|u| {
                let what = if u.kind == UndecodableKind::Registration { "registration" } else { "entries" };
                format!("{} ({what}{})", u.state.as_deref().unwrap_or("states after an unknown serializer"), u.class.as_deref().map(|c| format!(", serializer {c}")).unwrap_or_default())
            })
            .collect();
        if !lost.is_empty() {
            let class = undecodable.iter().find_map(|u| u.class.as_deref());
            return Err(Error::unsupported(
                format!(
                    "{}: operator {}: {} could not be read (a serializer flinksnap cannot interpret): a savepoint written without them would lose state, so none is written",
                    self.snapshot.metadata_location,
                    op.operator_id,
                    lost.join(", ")
                ),
                class,
            ));
        }
        *self.counts = counts;
        let _ = std::fs::remove_dir_all(&spill_dir);
        Ok(out)
    }
}

/// Records of a run of entries of one piece, made on a reading thread.
#[derive(Default)]
struct RecordChunk {
    /// Records to sort.
    records: Vec<Record>,
    /// The records' weight ([`Record::weight`]).
    bytes: usize,
    /// Or key groups (and parts of them) encoded as the stream holds them.
    encoded: EncodedKeyGroups,
    /// What the edits left out.
    counts: Counts,
    /// At the end of a piece: what it could not decode.
    undecodable: Vec<Undecodable>,
}

impl RecordChunk {
    fn weight(&self) -> usize {
        self.bytes + self.encoded.weight() + 256 * self.undecodable.len()
    }
}

/// A chunk of records is handed on once it weighs this much.
const CHUNK_BYTES: usize = 256 * 1024;
/// A reading thread streams a key group in parts once it holds this many bytes of its records
/// (less with a smaller memory budget: 1/16 of it).
const STREAM_KEY_GROUP_BYTES: usize = 4 * 1024 * 1024;
/// Records the reading threads hold ahead of the writer, at most (about).
const READ_AHEAD_BYTES: usize = 32 * 1024 * 1024;

/// The keyed-state streams of one operator's subtasks, written one after the other from
/// records sorted by key group and state: each subtask's stream holds its key-group range.
struct KeyedStreams<'a, 'c> {
    conv: &'a Converter<'c>,
    op: &'a OperatorState,
    proxy: &'a [u8],
    max_parallelism: u32,
    ctx: &'a RecordContext<'a>,
    repeats: RepeatedKeys<'a>,
    /// The subtask being written, its key-group range and stream.
    current: Option<(u32, KeyGroupRange, KeyGroupStreamWriter)>,
    /// The next subtask to start.
    next: u32,
    out: Vec<(u32, KeyGroupsStateHandle)>,
    entries: u64,
    /// The last key group added encoded.
    last_encoded: Option<u32>,
}

impl KeyedStreams<'_, '_> {
    /// Starts the next subtask's stream; false when every subtask was written.
    fn start_next(&mut self) -> Result<bool> {
        if self.next >= self.op.parallelism {
            return Ok(false);
        }
        let i = self.next;
        self.next += 1;
        let range = KeyGroupRange::for_subtask(self.max_parallelism, self.op.parallelism, i);
        let (stream, name) = self.conv.new_stream(&format!("{}/{i}/keyed", self.op.operator_id));
        let w = KeyGroupStreamWriter::new(stream, name, self.proxy, range, self.max_parallelism, self.conv.compressed_keyed())?;
        self.current = Some((i, range, w));
        Ok(true)
    }

    fn end_current(&mut self) -> Result<()> {
        if let Some((i, _, w)) = self.current.take() {
            let (handle, n) = w.finish()?;
            self.entries += n;
            self.out.push((i, handle));
        }
        Ok(())
    }

    /// Adds a key group encoded by a reading thread, or a part of one.
    fn push_encoded(&mut self, key_group: u32, bytes: &[u8], entries: u64, part: EncodedPart) -> Result<()> {
        let starts = matches!(part, EncodedPart::Whole | EncodedPart::First);
        if let Some(l) = self.last_encoded.filter(|&l| key_group < l || (starts && key_group == l)) {
            return Err(Error::Invalid(format!("operator {}: entries of key group {key_group} arrived after key group {l}", self.op.operator_id)));
        }
        self.last_encoded = Some(key_group);
        self.writer_for(key_group)?.push_encoded_part(key_group, bytes, entries, part)
    }

    fn push(&mut self, r: Record) -> Result<()> {
        if let Some(e) = self.repeats.check(&r, self.ctx)? {
            return Err(e);
        }
        self.writer_for(r.key_group)?.push(r)
    }

    /// The stream of the subtask whose key groups `key_group` is before the end of (those
    /// before it ended).
    fn writer_for(&mut self, key_group: u32) -> Result<&mut KeyGroupStreamWriter> {
        loop {
            match &self.current {
                Some((_, range, _)) if range.end_inclusive().is_none_or(|end| key_group <= end) => break,
                Some(_) => self.end_current()?,
                None => {}
            }
            if !self.start_next()? {
                return Err(Error::corrupt(
                    self.conv.snapshot.metadata_location.as_str(),
                    format!("operator {}: an entry in key group {key_group}, beyond max parallelism {}", self.op.operator_id, self.max_parallelism),
                ));
            }
        }
        match &mut self.current {
            Some((_, _, w)) => Ok(w),
            None => Err(Error::Invalid("no keyed stream".into())),
        }
    }

    /// Ends the streams (subtasks without records get an empty one): each subtask's handle,
    /// and the entries written.
    fn finish(mut self) -> Result<(Vec<(u32, KeyGroupsStateHandle)>, u64)> {
        loop {
            self.end_current()?;
            if !self.start_next()? {
                return Ok((self.out, self.entries));
            }
        }
    }
}

/// Imported keyed states must not hold a key twice (Flink would keep one of the entries on
/// restore, silently). The sorted stream brings the records of one (key group, state)
/// together, in arrival order, so a set of their keys' hashes — bounded by the key group's
/// size, reset at the next key group — finds every repeat; a hit is confirmed (and its rows
/// named) by reading the imported state's file again.
struct RepeatedKeys<'a> {
    /// Imported keyed states by their id in the written proxy.
    imported: HashMap<u16, &'a Arc<dyn ImportedState>>,
    /// The (key group, state) whose key hashes `seen` holds.
    current: Option<(u32, u16)>,
    seen: std::collections::HashSet<u64>,
}

impl<'a> RepeatedKeys<'a> {
    fn new(imports: &'a [Arc<dyn ImportedState>], layout: &KeyedLayout) -> Self {
        let imported = imports.iter().filter(|i| i.kind().is_keyed()).filter_map(|i| layout.ids.get(i.state()).map(|&id| (id, i))).collect();
        RepeatedKeys { imported, current: None, seen: Default::default() }
    }

    /// The error naming the repeated rows when `r`'s key was already written for its state.
    fn check(&mut self, r: &Record, ctx: &RecordContext<'_>) -> Result<Option<Error>> {
        let Some(import) = self.imported.get(&r.state) else { return Ok(None) };
        if self.current != Some((r.key_group, r.state)) {
            self.current = Some((r.key_group, r.state));
            self.seen.clear();
        }
        if self.seen.insert(twox_hash::XxHash3_64::oneshot(&r.key)) {
            return Ok(None);
        }
        let op = ctx.op;
        let operator = op.label();
        crate::writers::edit::duplicate_error(import.as_ref(), &operator, |e| Ok(ctx.record(e)?.is_some_and(|x| x.key_group == r.key_group && x.key == r.key)))
    }
}

/// The index of the first subtask of `op` that holds state.
fn first_subtask(op: &OperatorState) -> u32 {
    op.subtasks.iter().filter(|s| s.state.is_some()).map(|s| s.index).min().unwrap_or(0)
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

/// An `OperatorBackendSerializationProxy` without the states `dropped` names: version, the
/// compression flag (version 6), then the operator and broadcast states' meta infos as stored.
fn operator_proxy_without(meta: &crate::readers::meta::OperatorBackendMeta, dropped: &dyn Fn(&str) -> bool) -> Result<Vec<u8>> {
    use crate::bytes::DataOutput;
    let mut p = Vec::new();
    p.put_i32(meta.version);
    if meta.version >= 6 {
        p.put_bool(meta.compressed);
    }
    for list in [&meta.operator_states, &meta.broadcast_states] {
        let kept: Vec<_> = list.iter().filter(|s| !dropped(&s.name)).collect();
        p.put_i16(i16::try_from(kept.len()).map_err(|_| Error::Invalid("too many operator states".into()))?);
        for s in kept {
            p.extend_from_slice(&s.raw);
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::LocalStorage;

    fn tree(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut dirs = vec![dir.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    out.push((p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    /// `convert` (and `edit`, `import`: the same writer) reads entries with only their keys
    /// built ([`ValueParts::Key`]): for every fixture it writes byte for byte the savepoint it
    /// writes building every part (or fails with the same error), also moving keys to another
    /// max parallelism (which reads the decoded key).
    #[test]
    fn convert_writes_the_same_bytes_building_only_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let dst = tmp.path().join("out");
        let (mut written, mut failed) = (0, 0);
        for m in crate::readers::entries::tests::every_fixture() {
            let Ok(snapshot) = Snapshot::open(Arc::new(LocalStorage), m.to_str().unwrap()) else { continue };
            for max_parallelism in [None, Some(256)] {
                let opts = ConvertOptions { inline_threshold: 0, threads: 1, max_parallelism, force: true, ..ConvertOptions::default() };
                let mut outs = Vec::new();
                for values in [ValueParts::All, ValueParts::Key] {
                    let _ = std::fs::remove_dir_all(&dst);
                    let r = write_savepoint_building(&snapshot, Arc::new(LocalStorage), dst.to_str().unwrap(), &opts, &Edits::default(), values);
                    outs.push(match r {
                        Ok((report, _)) => Ok((format!("{report:?}"), tree(&dst))),
                        Err(e) => Err(e.to_string()),
                    });
                }
                match (&outs[0], &outs[1]) {
                    (Ok(a), Ok(b)) => {
                        assert_eq!(a.0, b.0, "{} {max_parallelism:?}", m.display());
                        assert_eq!(a.1.iter().map(|f| &f.0).collect::<Vec<_>>(), b.1.iter().map(|f| &f.0).collect::<Vec<_>>(), "{}", m.display());
                        assert!(a.1 == b.1, "{} {max_parallelism:?}: different bytes", m.display());
                        written += 1;
                    }
                    (Err(a), Err(b)) => {
                        assert_eq!(a, b, "{}", m.display());
                        failed += 1;
                    }
                    (a, b) => panic!("{} {max_parallelism:?}: {:?} vs {:?}", m.display(), a.as_ref().err(), b.as_ref().err()),
                }
            }
        }
        assert!(written > 100, "{written} written, {failed} failed");
    }
}
