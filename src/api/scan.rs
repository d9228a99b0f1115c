//! A scan: which entries to read and in which form, and its split into partitions.
//!
//! Two forms of output:
//! - **typed**, when the scan names exactly one state: the columns `flinksnap export` writes to
//!   that state's Parquet file, typed from the state's serializers (struct, list, map, …);
//! - **dump**, otherwise (every state, or several): one schema for all states, the columns of
//!   `flinksnap dump --format csv` with key, namespace, user key and value as JSON text.

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use arrow_schema::SchemaRef;
use serde::{Deserialize, Serialize};

use super::batches::{dump_schema, EntrySource, ScanBatches, ScanEntries};
use super::{file_meta, Snapshot};
use crate::error::{Error, Result};
use crate::export::state::StateLayout;
use crate::model::columns::{ColumnNames, OperatorColumns};
use crate::model::{KeyGroupRange, OperatorId, RawParts, SubtaskRef, ValueParts};
use crate::readers::entries::{Selection, SnapshotEntries};
use crate::readers::parallel::{intersect, key_group_splits, PiecePart};
use crate::readers::states::subtask_states;

/// Rows per record batch unless set ([`ScanBuilder::batch_rows`]).
pub const DEFAULT_BATCH_ROWS: usize = 8192;

/// Builds a [`Scan`]: [`Snapshot::scan`], narrowed, then [`ScanBuilder::build`].
#[derive(Debug, Clone)]
pub struct ScanBuilder {
    snapshot: Snapshot,
    operators: Vec<String>,
    states: Vec<String>,
    key_groups: Option<KeyGroupRange>,
    kind: Option<bool>,
    typed: bool,
    batch_rows: usize,
    raw: RawParts,
}

impl ScanBuilder {
    pub(crate) fn new(snapshot: Snapshot) -> ScanBuilder {
        ScanBuilder {
            snapshot,
            operators: Vec::new(),
            states: Vec::new(),
            key_groups: None,
            kind: None,
            typed: true,
            batch_rows: DEFAULT_BATCH_ROWS,
            raw: RawParts::None,
        }
    }

    /// Which stored bytes the entries of [`Scan::entries`] and [`Scan::read_ordered`] keep in
    /// [`Entry::raw`](crate::model::Entry::raw): none by default (record batches never hold
    /// them, and copying them costs two or more allocations per entry); `RawParts::All` for a
    /// consumer that copies or measures the bytes as stored.
    pub fn raw(mut self, parts: RawParts) -> Self {
        self.raw = parts;
        self
    }

    /// Only this operator, by uid or 32-digit hex id (repeatable: each call adds one).
    pub fn operator(mut self, uid_or_id: impl Into<String>) -> Self {
        self.operators.push(uid_or_id.into());
        self
    }

    /// Only the state with this name (repeatable). With exactly one state the batches have its
    /// typed columns; otherwise the dump form (module doc).
    pub fn state(mut self, name: impl Into<String>) -> Self {
        self.states.push(name.into());
        self
    }

    /// Only keyed state in these key groups, e.g. `0..64` or `10..=19`. Operator state has no
    /// key group and is left out.
    pub fn key_groups(mut self, range: impl RangeBounds<u32>) -> Self {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => u64::from(e) + 1,
            Bound::Excluded(&e) => u64::from(e),
            // Flink's largest max parallelism is 32768.
            Bound::Unbounded => u64::from(u32::MAX),
        };
        self.key_groups = Some(KeyGroupRange::new(start, end.saturating_sub(u64::from(start)) as u32));
        self
    }

    /// Keyed state only (`true`) or operator state only (`false`): names a state when an
    /// operator registered a keyed and an operator state of the same name.
    pub fn keyed(mut self, keyed: bool) -> Self {
        self.kind = Some(keyed);
        self
    }

    /// `false`: the dump form even when the scan names one state. A consumer that fixed its
    /// schema before it knew the selection (a Spark data source pushing a state filter down)
    /// keeps one schema for any selection.
    pub fn typed(mut self, typed: bool) -> Self {
        self.typed = typed;
        self
    }

    /// Rows per record batch (at most; a batch also closes at 8 MiB of stored bytes).
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// Resolves operators and states against the snapshot. Reads the serialization proxies of
    /// the selected subtasks (to type a single state's columns), no entry.
    pub fn build(self) -> Result<Scan> {
        let snap = &self.snapshot;
        let mut operators = Vec::with_capacity(self.operators.len());
        for o in &self.operators {
            operators.push(snap.operator_id(o)?);
        }
        // Batches hold decoded values only: the stored bytes are copied only when asked for.
        let mut selection = Selection { operators, states: self.states.clone(), key_groups: self.key_groups, raw: self.raw, values: ValueParts::All };
        let spec = ScanSpec {
            operators: selection.operators.iter().map(OperatorId::to_hex).collect(),
            states: self.states.clone(),
            key_groups: self.key_groups.map(|r| (r.start, r.len)),
            keyed: self.kind,
            typed: None,
            batch_rows: self.batch_rows,
            uids: snap.uids.iter().map(|(id, u)| (id.to_hex(), u.clone())).collect(),
            columns: snap.inner.column_names.as_ref().map(|c| c.operators.iter().map(|(id, o)| (id.to_hex(), o.clone())).collect()).unwrap_or_default(),
        };
        let mut scan = Scan { snapshot: self.snapshot.clone(), selection: selection.clone(), spec, layout: None, schema: dump_schema() };
        if self.states.len() != 1 || !self.typed {
            return Ok(scan);
        }
        let name = &self.states[0];
        let candidates: Vec<_> =
            snap.registered_states(&selection)?.into_iter().filter(|s| self.kind.is_none_or(|k| k == s.kind.is_keyed())).collect();
        let state = match candidates.as_slice() {
            [one] => one.clone(),
            [] => {
                let all = snap.registered_states(&Selection { states: Vec::new(), ..selection.clone() })?;
                let mut names: Vec<String> = all.iter().map(|s| format!("{:?}", s.name)).collect();
                names.dedup();
                return Err(Error::Invalid(format!(
                    "{}: no state named {name:?}{}; states: {}",
                    snap.inner.metadata_location,
                    if selection.operators.is_empty() { String::new() } else { " in the selected operators".into() },
                    names.join(", ")
                )));
            }
            many => {
                let owners: Vec<String> = many
                    .iter()
                    .map(|s| {
                        format!(
                            "{} ({})",
                            s.operator_uid.clone().unwrap_or_else(|| s.operator_id.to_hex()),
                            if s.kind.is_keyed() { "keyed" } else { "operator state" }
                        )
                    })
                    .collect();
                return Err(Error::Invalid(format!(
                    "{}: state {name:?} is registered by {}: name the operator (and keyed or not)",
                    snap.inner.metadata_location,
                    owners.join(", ")
                )));
            }
        };
        let keyed = state.kind.is_keyed();
        selection.operators = vec![state.operator_id];
        // Keyed state only: a key-group selection leaves operator state unread.
        if keyed && selection.key_groups.is_none() {
            let max = snap.inner.operator(&state.operator_id).map_or(u32::MAX, |o| o.max_parallelism);
            selection.key_groups = Some(KeyGroupRange::new(0, max));
        }
        scan.spec.operators = vec![state.operator_id.to_hex()];
        scan.spec.typed = Some(TypedState { operator: state.operator_id.to_hex(), name: state.name.clone(), keyed });
        scan.layout = Some(Arc::new(typed_layout(snap, &selection, state.operator_id, &state.name, keyed, None)?));
        scan.schema = state.schema.clone();
        scan.selection = selection;
        Ok(scan)
    }
}

/// The layout of one state, from the first subtask (or the given one) that declares it.
fn typed_layout(
    snap: &Snapshot,
    selection: &Selection,
    operator: OperatorId,
    name: &str,
    keyed: bool,
    only: Option<SubtaskRef>,
) -> Result<StateLayout> {
    let inner = &*snap.inner;
    let uid = snap.operator_uid(&operator);
    let subtasks = match only {
        Some(s) => vec![s],
        None => SnapshotEntries::subtasks(inner, selection),
    };
    for sub in subtasks {
        for info in subtask_states(inner, selection, sub)? {
            if info.name() == name && info.kind.is_keyed() == keyed {
                return StateLayout::new(&info, uid.as_deref(), &file_meta(inner))
                    .map_err(|e| Error::Invalid(format!("{}: operator {operator}: {e}", inner.metadata_location)));
            }
        }
    }
    Err(Error::Invalid(format!("{}: operator {operator}: no subtask declares state {name:?}", inner.metadata_location)))
}

/// The state a typed scan reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TypedState {
    /// Operator id, hex.
    pub operator: String,
    /// State name.
    pub name: String,
    /// Keyed state (or operator state).
    pub keyed: bool,
}

/// A scan as plain data: what a partition carries so that it can be rebuilt elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ScanSpec {
    /// Selected operators, hex ids (all when empty).
    pub operators: Vec<String>,
    /// Selected state names (all when empty).
    pub states: Vec<String>,
    /// Selected key groups: (start, count).
    pub key_groups: Option<(u32, u32)>,
    /// Keyed state only, operator state only, or both.
    pub keyed: Option<bool>,
    /// The one state of a typed scan.
    pub typed: Option<TypedState>,
    /// Rows per batch.
    pub batch_rows: usize,
    /// Uids given by the caller, by hex operator id.
    pub uids: Vec<(String, String)>,
    /// SQL column names from the job's plan ([`Snapshot::with_plan`]), by hex operator id: a
    /// partition read elsewhere names its rows as the planning side did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<(String, OperatorColumns)>,
}

/// What to read, resolved against a snapshot: [`Scan::batches`] for Arrow record batches,
/// [`Scan::entries`] for decoded entries, [`Scan::plan`] to split the work.
#[derive(Debug, Clone)]
pub struct Scan {
    snapshot: Snapshot,
    selection: Selection,
    spec: ScanSpec,
    /// The typed columns of a one-state scan; `None`: the dump form.
    layout: Option<Arc<StateLayout>>,
    schema: SchemaRef,
}

/// How [`Scan::plan`] splits a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    /// A keyed-state handle that stores more than this is split into key-group ranges of about
    /// this many stored bytes, where the format records where each key group starts
    /// (canonical savepoints, heap checkpoints, full checkpoints up to 1.15: offsets in
    /// `_metadata`). Default 128 MiB, Spark's `maxPartitionBytes`.
    pub max_partition_bytes: u64,
    /// Split handles that do not record key-group offsets (RocksDB native snapshots, changelog
    /// state) too, into equal key-group ranges by their total size. Each part then opens the
    /// whole handle (a RocksDB database, the change log) to read its range: more parallelism
    /// for more reading. Default `false`: one partition per such handle.
    pub split_unindexed: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions { max_partition_bytes: 128 * 1024 * 1024, split_unindexed: false }
    }
}

/// Which part of a subtask's state a partition reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Part {
    /// All its selected state: operator state, then keyed state.
    Subtask,
    /// Its operator state only (its keyed state is split into [`Part::KeyGroups`]).
    OperatorState,
    /// Keyed state in key groups `start ..= end` of its handle.
    KeyGroups {
        /// First key group.
        start: u32,
        /// Last key group (inclusive).
        end: u32,
    },
}

/// One independent piece of a [`Scan`]: a subtask's state handle, or a key-group range of a
/// large one. Plain data ([`Partition::to_json`]): plan on one machine, read on another with
/// [`Partition::execute`]. Reading every partition of a plan, in plan order, gives exactly the
/// rows of the whole scan, in its order. Storage credentials are not part of it: each reader
/// has its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// The snapshot, as given to [`Snapshot::open`].
    pub snapshot: String,
    /// Its checkpoint id, and the size of its `_metadata`: a partition read against another
    /// snapshot (the directory was overwritten) is refused.
    pub checkpoint_id: u64,
    /// Size of `_metadata` in bytes.
    pub metadata_bytes: u64,
    /// The operator (hex id).
    pub operator_id: String,
    /// The operator's uid, when known.
    pub operator_uid: Option<String>,
    /// The subtask index (as Flink numbers subtasks).
    pub subtask: u32,
    /// The part of the subtask's state.
    pub part: Part,
    /// Stored bytes the partition reads, estimated from the handles.
    pub bytes: u64,
    /// Position of the operator and subtask in `_metadata`.
    operator_position: usize,
    subtask_position: usize,
    scan: ScanSpec,
}

impl Scan {
    /// The Arrow schema of every batch: the typed columns of the one state scanned, or the dump
    /// form (module doc).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Whether batches have a state's typed columns (one state scanned) rather than the dump
    /// form.
    pub fn is_typed(&self) -> bool {
        self.layout.is_some()
    }

    /// The snapshot scanned.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Writes the scan's operators and states (and key groups) into files a query engine reads
    /// (`flinksnap export`): one file per operator and state under `opts.dir`, plus
    /// `manifest.json`; the scan's selection and the snapshot's uids replace those of `opts`.
    /// Parquet needs the `parquet` feature.
    ///
    /// ```
    /// # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/flink-2.3.0/heap-savepoint-canonical/savepoint-ae4c95-ff41c5f424ab");
    /// # let out = std::env::temp_dir().join(format!("flinksnap-doctest-export-{}", std::process::id()));
    /// use flinksnap::{ExportFormat, ExportOptions, NoProgress, Snapshot};
    /// let scan = Snapshot::open(dir)?.scan().operator("keyed-string").typed(false).build()?;
    /// let mut opts = ExportOptions::new(&out);
    /// opts.format = ExportFormat::Jsonl;
    /// let manifest = scan.export(&opts, &NoProgress)?;
    /// assert!(manifest.totals.rows > 0);
    /// # std::fs::remove_dir_all(&out).ok();
    /// # Ok::<(), flinksnap::Error>(())
    /// ```
    pub fn export(&self, opts: &crate::export::ExportOptions, progress: &dyn crate::export::Progress) -> Result<crate::export::Manifest> {
        let mut opts = opts.clone();
        opts.selection = self.selection.clone();
        opts.uids = (*self.snapshot.uids).clone();
        crate::export::export(self.snapshot.shared(), &opts, progress)
    }

    /// The selected entries, streamed: memory holds a window of one key group at a time.
    pub fn entries(&self) -> ScanEntries {
        ScanEntries::new(self.source(None))
    }

    /// Reads the selected entries on `threads` threads, in bounded memory
    /// ([`crate::readers::parallel`]): `produce` is given the entries of one piece at a time (a
    /// subtask's state, or a key-group range of it) on a worker thread and emits what it makes
    /// of them; `consume` gets that on this thread in snapshot order — exactly what one thread
    /// producing from [`Scan::entries`] would hand it. The first error ends the read. What the
    /// threads produce ahead of `consume` takes at most about `budget` bytes, each result
    /// counting `weight(&result)`.
    pub fn read_ordered<T, F, C, W>(&self, threads: usize, budget: usize, weight: W, produce: F, consume: C) -> Result<()>
    where
        T: Send,
        W: Fn(&T) -> usize + Sync,
        F: Fn(&mut ScanEntries, &mut dyn FnMut(T) -> Result<()>) -> Result<()> + Sync,
        C: FnMut(T) -> Result<()>,
    {
        let pieces = crate::readers::parallel::pieces(self.snapshot.shared(), &self.selection, threads);
        crate::readers::parallel::ordered(
            &pieces,
            threads,
            budget,
            weight,
            |piece, emit| {
                let part = match piece.part {
                    PiecePart::Subtask => Part::Subtask,
                    PiecePart::OperatorState => Part::OperatorState,
                    PiecePart::KeyGroups(r) => Part::KeyGroups { start: r.start, end: r.end_inclusive().unwrap_or(r.start) },
                };
                produce(&mut ScanEntries::new(self.source(Some((piece.subtask, part)))), emit)
            },
            consume,
        )
    }

    /// The selected entries as Arrow record batches of [`Scan::schema`], streamed.
    pub fn batches(&self) -> Result<ScanBatches> {
        Ok(ScanBatches::new(self.source(None), self.schema.clone(), self.layout.clone(), self.spec.batch_rows, self.snapshot.uid_map()))
    }

    fn source(&self, part: Option<(SubtaskRef, Part)>) -> EntrySource {
        let mut selection = self.selection.clone();
        let typed = self.spec.typed.as_ref().map(|t| (t.name.clone(), t.keyed));
        let keyed_filter = self.spec.keyed.or(typed.as_ref().map(|t| t.1));
        match part {
            None => EntrySource::new(self.snapshot.shared().clone(), selection, None, keyed_filter),
            Some((sub, p)) => {
                if let Part::KeyGroups { start, end } = p {
                    let r = KeyGroupRange::new(start, end - start + 1);
                    selection.key_groups = Some(match selection.key_groups {
                        Some(s) => intersect(s, r),
                        None => r,
                    });
                }
                EntrySource::new(self.snapshot.shared().clone(), selection, Some((sub, p)), keyed_filter)
            }
        }
    }

    /// Splits the scan into partitions (see [`PlanOptions`]): per subtask holding selected
    /// state, one partition, or its operator state and key-group ranges of its keyed-state
    /// handle. Reads nothing but `_metadata` (already read).
    pub fn plan(&self, opts: &PlanOptions) -> Result<Vec<Partition>> {
        let inner = &*self.snapshot.inner;
        let keyed_filter = self.spec.keyed.or(self.spec.typed.as_ref().map(|t| t.keyed));
        let reads_keyed = keyed_filter != Some(false);
        let reads_operator = keyed_filter != Some(true) && self.selection.key_groups.is_none();
        let metadata_bytes = inner.metadata_size;
        let mut out = Vec::new();
        for sub in SnapshotEntries::subtasks(inner, &self.selection) {
            let op = &inner.metadata.operators[sub.operator];
            let st = &op.subtasks[sub.subtask];
            let Some(state) = &st.state else { continue };
            let operator_bytes = state.managed_operator_state.as_ref().filter(|o| reads_operator && !o.is_empty()).map(|o| o.delegate.size());
            let keyed = state.managed_keyed_state.as_ref().filter(|_| reads_keyed);
            let mut push = |part: Part, bytes: u64| {
                out.push(Partition {
                    snapshot: self.snapshot.location.clone(),
                    checkpoint_id: inner.metadata.checkpoint_id,
                    metadata_bytes,
                    operator_id: op.operator_id.to_hex(),
                    operator_uid: self.snapshot.operator_uid(&op.operator_id),
                    subtask: st.index,
                    part,
                    bytes,
                    operator_position: sub.operator,
                    subtask_position: sub.subtask,
                    scan: self.spec.clone(),
                })
            };
            let ranges = match keyed {
                Some(h) => {
                    let range = match self.selection.key_groups {
                        Some(s) => intersect(h.key_group_range(), s),
                        None => h.key_group_range(),
                    };
                    if range.len == 0 {
                        Vec::new()
                    } else {
                        key_group_splits(h, range, opts.max_partition_bytes, opts.split_unindexed)
                    }
                }
                None => Vec::new(),
            };
            match (operator_bytes, ranges.as_slice()) {
                (None, []) => {}
                (Some(b), []) => push(Part::OperatorState, b),
                (ob, [(r, b)]) if keyed.is_some_and(|h| *r == h.key_group_range()) => push(Part::Subtask, b + ob.unwrap_or(0)),
                (ob, rs) => {
                    if let Some(b) = ob {
                        push(Part::OperatorState, b);
                    }
                    for (r, b) in rs {
                        let end = r.end_inclusive().unwrap_or(r.start);
                        push(Part::KeyGroups { start: r.start, end }, *b);
                    }
                }
            }
        }
        Ok(out)
    }
}

impl Partition {
    /// The partition as JSON text (what travels to the worker that reads it).
    pub fn to_json(&self) -> String {
        // Plain data of strings and numbers: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A partition from [`Partition::to_json`]'s text.
    pub fn from_json(text: &str) -> Result<Partition> {
        serde_json::from_str(text).map_err(|e| Error::Invalid(format!("not a flinksnap partition: {e}")))
    }

    /// Opens the snapshot (from [`super::default_storage`]) and reads the partition.
    pub fn execute(&self) -> Result<ScanBatches> {
        self.execute_on(&Snapshot::open(&self.snapshot)?)
    }

    /// Reads the partition from `snapshot`, opened already (a worker reading many partitions of
    /// one snapshot opens it once).
    pub fn execute_on(&self, snapshot: &Snapshot) -> Result<ScanBatches> {
        let inner = &*snapshot.inner;
        let op = inner.metadata.operators.get(self.operator_position);
        let st = op.and_then(|o| o.subtasks.get(self.subtask_position));
        let same = inner.metadata.checkpoint_id == self.checkpoint_id
            && inner.metadata_size == self.metadata_bytes
            && op.is_some_and(|o| o.operator_id.to_hex() == self.operator_id)
            && st.is_some_and(|s| s.index == self.subtask);
        if !same {
            return Err(Error::Invalid(format!(
                "{}: not the snapshot this partition was planned on (checkpoint {}, _metadata of {} bytes, operator {} subtask {})",
                inner.metadata_location, self.checkpoint_id, self.metadata_bytes, self.operator_id, self.subtask
            )));
        }
        let scan = self.rebuild(snapshot)?;
        let sub = SubtaskRef { operator: self.operator_position, subtask: self.subtask_position };
        Ok(ScanBatches::new(
            scan.source(Some((sub, self.part))),
            scan.schema.clone(),
            scan.layout.clone(),
            scan.spec.batch_rows,
            scan.snapshot.uid_map(),
        ))
    }

    /// The scan this partition belongs to, on `snapshot`, typed from this partition's subtask.
    fn rebuild(&self, snapshot: &Snapshot) -> Result<Scan> {
        let spec = &self.scan;
        let hex = |h: &String| h.parse::<OperatorId>().map_err(|e| Error::Invalid(format!("partition: operator id {h:?}: {e}")));
        let mut snapshot = snapshot.clone().with_uids(spec.uids.iter().map(|(_, u)| u.as_str()));
        if !spec.columns.is_empty() && snapshot.inner.column_names.is_none() {
            let mut names = ColumnNames::default();
            for (h, o) in &spec.columns {
                names.operators.insert(hex(h)?, o.clone());
            }
            snapshot = snapshot.with_column_names(names);
        }
        let operators = spec.operators.iter().map(hex).collect::<Result<Vec<_>>>()?;
        let mut selection = Selection { operators, states: spec.states.clone(), key_groups: spec.key_groups.map(|(s, n)| KeyGroupRange::new(s, n)), raw: RawParts::None, values: ValueParts::All };
        let mut scan = Scan { snapshot: snapshot.clone(), selection: selection.clone(), spec: spec.clone(), layout: None, schema: dump_schema() };
        if let Some(t) = &spec.typed {
            let id = hex(&t.operator)?;
            if t.keyed && selection.key_groups.is_none() {
                let max = snapshot.inner.operator(&id).map_or(u32::MAX, |o| o.max_parallelism);
                selection.key_groups = Some(KeyGroupRange::new(0, max));
            }
            let sub = SubtaskRef { operator: self.operator_position, subtask: self.subtask_position };
            let layout = typed_layout(&snapshot, &selection, id, &t.name, t.keyed, Some(sub))?;
            scan.schema = layout.schema.clone();
            scan.layout = Some(Arc::new(layout));
            scan.selection = selection;
        }
        Ok(scan)
    }

    /// The key groups this partition reads, when it reads keyed state of a range only.
    pub fn key_groups(&self) -> Option<(u32, u32)> {
        match self.part {
            Part::KeyGroups { start, end } => Some((start, end)),
            _ => None,
        }
    }

    /// The kind of state a typed scan reads (`None` for the dump form).
    pub fn typed_state(&self) -> Option<(&str, bool)> {
        self.scan.typed.as_ref().map(|t| (t.name.as_str(), t.keyed))
    }
}
