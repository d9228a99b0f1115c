//! The library's front door, in the manner of delta-kernel-rs: a [`Snapshot`] opened from a
//! location, what it holds ([`Snapshot::operators`], [`Snapshot::states`]), and a
//! [`Scan`] of its state built with [`Snapshot::scan`], read as Arrow record batches
//! ([`Scan::batches`], the schema `flinksnap export` writes) or as decoded entries
//! ([`Scan::entries`]). A scan splits into independent [`Partition`]s ([`Scan::plan`]: one per
//! state handle, or per key-group range of a large one) that serialize, travel to another process
//! or machine and run there ([`Partition::execute`]); that is how Spark reads state of many TB.
//! The snapshot-management commands are functions returning typed reports: [`verify`],
//! [`latest`], [`refs`], [`stats`], [`gc`], [`delete`]; so are the writers ([`convert`],
//! [`edit`], `import` with the `parquet` feature, [`relocate`]) and the comparisons ([`diff`],
//! [`compat`]). Where sources stand: [`Snapshot::source_positions`].
//!
//! ```
//! use arrow_array::RecordBatchReader;
//! # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/flink-2.3.0/heap-savepoint-canonical/savepoint-ae4c95-ff41c5f424ab");
//! let snapshot = flinksnap::Snapshot::open(dir)?;
//! for op in snapshot.operators() {
//!     println!("{} {:?} parallelism {}", op.id, op.uid, op.parallelism);
//! }
//! // One state of one operator: typed columns, as `flinksnap export` writes them.
//! let scan = snapshot.scan().operator("keyed-string").state("v-pojo").build()?;
//! let batches = scan.batches()?;
//! // A `ValueState<Pojo>`: the value is a struct of the POJO's fields.
//! let value = batches.schema().field_with_name("value")?.clone();
//! assert!(matches!(value.data_type(), arrow_schema::DataType::Struct(_)));
//! let rows: usize = batches.map(|b| b.map(|b| b.num_rows())).sum::<Result<_, _>>()?;
//! assert_eq!(rows, 9);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Reading a scan in parallel, one partition per worker:
//!
//! ```
//! # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/flink-2.3.0/heap-savepoint-canonical/savepoint-ae4c95-ff41c5f424ab");
//! use flinksnap::{Partition, PlanOptions, Snapshot};
//! let scan = Snapshot::open(dir)?.scan().state("v-pojo").build()?;
//! let partitions = scan.plan(&PlanOptions::default())?;
//! // A partition is plain data: send it anywhere as JSON, and read it there.
//! let sent: Vec<String> = partitions.iter().map(Partition::to_json).collect();
//! let mut rows = 0;
//! for json in sent {
//!     for batch in Partition::from_json(&json)?.execute()? {
//!         rows += batch?.num_rows();
//!     }
//! }
//! assert_eq!(rows, 9);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod batches;
mod compare;
mod manage;
mod scan;
mod write;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::SchemaRef;
use serde::Serialize;

pub use batches::{ScanBatches, ScanEntries};
pub use compare::{
    compat, compat_with, describe_job, describe_job_with, diff, diff_with, CompatOptions, CompatReport, CompatSeverity, CompatTargetKind, CompatVerdict,
    DiffOptions, DiffReport, EntryDiff, FlinkVersion, JobDescription,
};
pub use crate::export::{ExportFormat, ExportOptions, Manifest, NoProgress, ParquetCompression, Progress};
pub use crate::storage::{Storage, StorageOptions, Storages};
pub use manage::{
    delete, delete_with, gc, gc_with, latest, latest_with, refs, refs_with, stats, stats_threads, stats_with, verify, verify_on, verify_with, DeleteFile, DeleteOptions,
    DeletePlan, GcOptions, GcPlan, LatestReport, RefsReport, ScopeRoot, StatsReport, VerifyLevel, VerifyReport,
};
pub use crate::readers::connectors::kafka::offset_marker as kafka_offset_marker;
pub use crate::readers::connectors::{EnumeratorState, SourcePositions, Split};
pub use scan::{Part, Partition, PlanOptions, Scan, ScanBuilder};
#[cfg(feature = "parquet")]
pub use write::{bootstrap, bootstrap_with, import, import_with, ImportOptions, ImportReport};
pub use write::{
    convert, convert_with, edit, edit_with, relocate, relocate_with, Compression, ConvertOptions, ConvertReport, EditOptions, EditReport, ForgetKey,
    KeyInput, RelocateOptions, RelocateReport, Relocation, DEFAULT_INLINE_THRESHOLD, DEFAULT_MEMORY_BUDGET, MAX_INLINE_THRESHOLD,
};

use crate::error::{Error, Result};
use crate::export::state::StateLayout;
use crate::model::{OperatorId, StateKind};
use crate::readers::entries::{Selection, SnapshotEntries};
use crate::readers::states::subtask_states;
use crate::snapshot::Summary;

/// The storage locations are read from when none is given: local paths from the local file
/// system, URLs (`s3://`, `gs://`, `abfss://`, … with the `cloud` feature) from their object
/// store, configured by its environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`). Other options (an
/// endpoint, credentials): [`Snapshot::open_with`] a [`storage_with`] them.
pub fn default_storage() -> Arc<dyn Storage> {
    Arc::new(Storages::default())
}

/// Storage configured by `options` over each cloud's environment: the keys of the CLI's
/// `--storage-option KEY=VALUE` (`endpoint`, `region`, `allow_http`, `access_key_id`,
/// `secret_access_key`, …) and its configuration file's sections per URL prefix. Secrets are
/// never part of an error message.
///
/// ```
/// let mut options = flinksnap::StorageOptions::new();
/// options.set("endpoint", "http://127.0.0.1:8333");
/// options.set("allow_http", "true");
/// let storage = flinksnap::api::storage_with(options);
/// # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/flink-2.3.0/heap-savepoint-canonical/savepoint-ae4c95-ff41c5f424ab");
/// // Local paths read from the local file system whatever the options.
/// let snapshot = flinksnap::Snapshot::open_with(storage, dir)?;
/// # Ok::<(), flinksnap::Error>(())
/// ```
pub fn storage_with(options: StorageOptions) -> Arc<dyn Storage> {
    Arc::new(Storages::new(options))
}

/// A checkpoint or savepoint, opened: its `_metadata` parsed, ready to list and scan. Cheap to
/// clone (the opened snapshot is shared).
///
/// The detailed model (every state handle, resolved files) is [`Snapshot::opened`].
#[derive(Debug, Clone)]
pub struct Snapshot {
    inner: Arc<crate::snapshot::Snapshot>,
    /// The location as given.
    location: String,
    /// Uids given by the caller, by the operator id Flink derives from each.
    uids: Arc<BTreeMap<OperatorId, String>>,
}

/// An operator of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorInfo {
    /// The operator id (32 hex digits).
    pub id: OperatorId,
    /// Its uid: stored in the metadata (Flink 2.x) or given with [`Snapshot::with_uids`].
    pub uid: Option<String>,
    /// Its name (Flink 2.x metadata).
    pub name: Option<String>,
    /// Parallelism when the snapshot was taken.
    pub parallelism: u32,
    /// Max parallelism: the number of key groups.
    pub max_parallelism: u32,
    /// Subtasks that hold state.
    pub subtasks_with_state: usize,
    /// Whether any subtask holds managed keyed state.
    pub keyed_state: bool,
    /// Whether any subtask holds managed operator state (list, union, broadcast).
    pub operator_state: bool,
    /// Bytes of keyed and operator state handles (files and inline).
    pub state_bytes: u64,
}

/// A state some operator registered, as its subtasks' state files declare it: what a scan of
/// it reads, and the Arrow schema its batches have.
#[derive(Debug, Clone)]
pub struct RegisteredState {
    /// The operator.
    pub operator_id: OperatorId,
    /// Its uid, when known.
    pub operator_uid: Option<String>,
    /// The state name (timers: the timer queue's name, e.g. `_timer_state/event_user-timers`).
    pub name: String,
    /// The kind of state.
    pub kind: StateKind,
    /// Subtasks whose state files declare it.
    pub subtasks: usize,
    /// Serializer snapshot class names by role (`BACKEND_KEY_SERIALIZER` for the key).
    pub serializers: Vec<(String, String)>,
    /// The columns of its batches: those `flinksnap export` writes to its Parquet file.
    pub schema: SchemaRef,
}

impl Snapshot {
    /// Opens the snapshot at `location`, a snapshot directory (holding `_metadata`) or a
    /// `_metadata` file, from [`default_storage`].
    pub fn open(location: &str) -> Result<Snapshot> {
        Snapshot::open_with(default_storage(), location)
    }

    /// Opens the snapshot at `location` from `storage`.
    pub fn open_with(storage: Arc<dyn Storage>, location: &str) -> Result<Snapshot> {
        let inner = crate::snapshot::Snapshot::open(storage, location)?;
        Ok(Snapshot { inner: Arc::new(inner), location: location.to_owned(), uids: Arc::default() })
    }

    /// Names operators by uid in snapshots that store none (Flink before 2.0): Flink derives an
    /// operator's id from its uid, so the uids of the job name its operators. Uids the
    /// metadata stores win.
    pub fn with_uids<S: AsRef<str>>(mut self, uids: impl IntoIterator<Item = S>) -> Snapshot {
        let mut map = (*self.uids).clone();
        for u in uids {
            map.insert(OperatorId::from_uid(u.as_ref()), u.as_ref().to_owned());
        }
        self.uids = Arc::new(map);
        self
    }

    /// Names the rows of SQL state after a job's compiled plan: RowData keys and values whose
    /// row type the plan fixes get the SQL column names instead of `f0`…`fn`
    /// (`formats/job-plan.md` § "Column names"); everything else is unchanged. Also gives
    /// operators the planner uids the plan implies (as [`Snapshot::with_uids`]).
    pub fn with_plan(self, plan: &crate::plan::Plan) -> Snapshot {
        let operators = self.inner.metadata.operators.iter().map(|o| (o.operator_id, o.uid.as_deref()));
        let names = crate::plan::columns::column_names(plan, operators);
        let derived: Vec<String> = plan
            .match_operators(self.inner.metadata.operators.iter().map(|o| (o.operator_id, o.uid.as_deref())))
            .into_iter()
            .filter(|m| m.matched_by == crate::plan::MatchedBy::DerivedUid)
            .filter_map(|m| m.uid)
            .collect();
        self.with_column_names(names).with_uids(derived)
    }

    /// The SQL column names the readers apply (none when empty): what [`Snapshot::with_plan`]
    /// derives, or what a partition planned on such a snapshot carries.
    pub(crate) fn with_column_names(mut self, names: crate::model::columns::ColumnNames) -> Snapshot {
        let mut inner = (*self.inner).clone();
        inner.column_names = (!names.operators.is_empty()).then(|| Arc::new(names));
        self.inner = Arc::new(inner);
        self
    }

    /// The location as given to [`Snapshot::open`].
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The checkpoint id.
    pub fn checkpoint_id(&self) -> u64 {
        self.inner.metadata.checkpoint_id
    }

    /// The opened snapshot: metadata, every state handle, file resolution.
    pub fn opened(&self) -> &crate::snapshot::Snapshot {
        &self.inner
    }

    /// The shared opened snapshot, for readers that outlive this value.
    pub(crate) fn shared(&self) -> &Arc<crate::snapshot::Snapshot> {
        &self.inner
    }

    /// What `flinksnap inspect` shows: kind, format, FLIP-47 properties, operators and their
    /// handles, files. Resolves every referenced file (one metadata request per file).
    pub fn summary(&self) -> Result<Summary> {
        Summary::build(&self.inner, &self.uids.values().cloned().collect::<Vec<_>>())
    }

    /// The uid of an operator: stored in the metadata, or given with [`Snapshot::with_uids`].
    pub fn operator_uid(&self, id: &OperatorId) -> Option<String> {
        self.inner.operator(id).and_then(|o| o.uid.clone()).or_else(|| self.uids.get(id).cloned())
    }

    /// Uids given with [`Snapshot::with_uids`], by the operator id Flink derives from each (the
    /// metadata's own are [`Snapshot::operator_uid`]'s).
    pub fn given_uids(&self) -> &BTreeMap<OperatorId, String> {
        &self.uids
    }

    /// The file an entry of this snapshot was read from: a state file, `_metadata` for inline
    /// state; `None` where the entry has no one file (RocksDB tables, changelog).
    pub fn entry_file(&self, entry: &crate::model::Entry) -> Option<String> {
        self.inner.entry_file(entry)
    }

    /// Uids by operator id: the metadata's and those given.
    pub fn uid_map(&self) -> BTreeMap<OperatorId, String> {
        let mut m = (*self.uids).clone();
        for op in &self.inner.metadata.operators {
            if let Some(u) = &op.uid {
                m.insert(op.operator_id, u.clone());
            }
        }
        m
    }

    /// The operator a caller names: a uid or a 32-digit hex id. An operator the snapshot does
    /// not hold is an error, so a misspelt uid never selects nothing silently.
    pub fn operator_id(&self, uid_or_id: &str) -> Result<OperatorId> {
        let by_uid = OperatorId::from_uid(uid_or_id);
        let id = match uid_or_id.parse::<OperatorId>() {
            Ok(id) if self.inner.operator(&id).is_some() => id,
            _ => by_uid,
        };
        if self.inner.operator(&id).is_none() {
            let known: Vec<String> = self.operators().iter().map(|o| o.uid.clone().unwrap_or_else(|| o.id.to_hex())).collect();
            return Err(Error::Invalid(format!(
                "{}: no operator {uid_or_id} (id {id}) in this snapshot; it holds {}",
                self.inner.metadata_location,
                known.join(", ")
            )));
        }
        Ok(id)
    }

    /// Every operator, in metadata order.
    pub fn operators(&self) -> Vec<OperatorInfo> {
        self.inner
            .metadata
            .operators
            .iter()
            .map(|op| {
                let states: Vec<_> = op.subtasks.iter().filter_map(|s| s.state.as_ref()).collect();
                let keyed_bytes: u64 =
                    states.iter().flat_map(|s| s.managed_keyed_state.iter()).flat_map(|k| k.streams()).map(|(_, h)| h.size()).sum();
                let operator_bytes: u64 = states.iter().flat_map(|s| s.managed_operator_state.iter()).map(|o| o.delegate.size()).sum();
                OperatorInfo {
                    id: op.operator_id,
                    uid: self.operator_uid(&op.operator_id),
                    name: op.name.clone(),
                    parallelism: op.parallelism,
                    max_parallelism: op.max_parallelism,
                    subtasks_with_state: states.len(),
                    keyed_state: states.iter().any(|s| s.managed_keyed_state.is_some()),
                    operator_state: states.iter().any(|s| s.managed_operator_state.as_ref().is_some_and(|o| !o.is_empty())),
                    state_bytes: keyed_bytes + operator_bytes,
                }
            })
            .collect()
    }

    /// Every registered state, per operator in metadata order, keyed state first, each once:
    /// read from the serialization proxy at the head of each subtask's state files (no entry
    /// is read).
    pub fn states(&self) -> Result<Vec<RegisteredState>> {
        self.registered_states(&Selection::default())
    }

    /// The registered states a selection selects (see [`Snapshot::states`]).
    pub(crate) fn registered_states(&self, selection: &Selection) -> Result<Vec<RegisteredState>> {
        let snapshot = &*self.inner;
        let file_meta = file_meta(snapshot);
        let mut out: Vec<RegisteredState> = Vec::new();
        let mut index: BTreeMap<(usize, bool, String), usize> = BTreeMap::new();
        for sub in SnapshotEntries::subtasks(snapshot, selection) {
            let op = &snapshot.metadata.operators[sub.operator];
            let uid = self.operator_uid(&op.operator_id);
            for info in subtask_states(snapshot, selection, sub)? {
                let key = (sub.operator, info.kind.is_keyed(), info.name().to_owned());
                let layout = StateLayout::new(&info, uid.as_deref(), &file_meta)
                    .map_err(|e| Error::Invalid(format!("{}: operator {}: {e}", snapshot.metadata_location, op.operator_id)))?;
                if let Some(&i) = index.get(&key) {
                    if out[i].schema.fields() != layout.schema.fields() {
                        return Err(Error::Invalid(format!(
                            "{}: operator {} state {:?}: subtasks registered it with different serializers",
                            snapshot.metadata_location,
                            op.operator_id,
                            info.name()
                        )));
                    }
                    out[i].subtasks += 1;
                    continue;
                }
                let mut serializers = Vec::new();
                if let Some(k) = &info.key_serializer {
                    serializers.push(("BACKEND_KEY_SERIALIZER".to_owned(), k.class_name().to_owned()));
                }
                serializers.extend(info.meta.serializers.iter().map(|(role, s)| (role.clone(), s.class_name().to_owned())));
                index.insert(key, out.len());
                out.push(RegisteredState {
                    operator_id: op.operator_id,
                    operator_uid: uid.clone(),
                    name: info.name().to_owned(),
                    kind: info.kind,
                    subtasks: 1,
                    serializers,
                    schema: layout.schema.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Starts a scan of this snapshot's state: every entry of every state unless narrowed.
    pub fn scan(&self) -> ScanBuilder {
        ScanBuilder::new(self.clone())
    }

    /// Where each source of this snapshot stands (`flinksnap offsets`): per operator with source
    /// state, the splits each FLIP-27 reader subtask held (Kafka topic, partition and offset;
    /// file, offset and records to skip), its enumerator's state, and the legacy
    /// `FlinkKafkaConsumer`'s offsets, in metadata order. Source state that cannot be read is in
    /// [`SourcePositions::problems`], not an error (spec: `formats/connector-state.md`).
    ///
    /// ```
    /// # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/serializers/flink-2.3.0/heap-savepoint-sources/savepoint-70b99d-55056887498c");
    /// use flinksnap::{Snapshot, Split};
    /// let positions = Snapshot::open(dir)?.source_positions()?;
    /// let kafka: Vec<_> = positions.iter().flat_map(|p| &p.splits).filter_map(|s| match &s.split {
    ///     Split::Kafka(k) => Some((k.topic.clone(), k.partition, k.starting_offset)),
    ///     _ => None,
    /// }).collect();
    /// assert!(!kafka.is_empty());
    /// assert!(positions.iter().all(|p| p.problems.is_empty()));
    /// # Ok::<(), flinksnap::Error>(())
    /// ```
    pub fn source_positions(&self) -> Result<Vec<SourcePositions>> {
        crate::readers::connectors::source_positions(&self.inner)
    }

    /// Reads one partition of a scan planned on this snapshot ([`Scan::plan`]); fails if the
    /// partition was planned on another snapshot.
    pub fn read_partition(&self, partition: &Partition) -> Result<ScanBatches> {
        partition.execute_on(self)
    }
}

/// The schema-level metadata every typed batch and exported file carries
/// (`formats/parquet-export.md`).
pub(crate) fn file_meta(snapshot: &crate::snapshot::Snapshot) -> Vec<(String, String)> {
    use crate::export::state::keys;
    vec![
        (keys::VERSION.into(), env!("CARGO_PKG_VERSION").into()),
        (keys::SNAPSHOT.into(), snapshot.dir.to_string()),
        (keys::CHECKPOINT_ID.into(), snapshot.metadata.checkpoint_id.to_string()),
        (keys::METADATA_VERSION.into(), snapshot.metadata.version.to_string()),
        (keys::WRITTEN_BY.into(), crate::metadata::consts::written_by(snapshot.metadata.version).into()),
    ]
}

#[cfg(test)]
mod tests;
