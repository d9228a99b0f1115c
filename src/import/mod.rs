//! `flinksnap import`: state from files in the layout `flinksnap export` writes (Parquet with
//! its `manifest.json`) written into a canonical savepoint, with the guarantees of `convert`
//! and `edit`. Spec: `formats/import.md`.
//!
//! - the manifest names each file's operator, state and kind; each file's entries replace all
//!   entries of that state in the snapshot `--into` (states not in the directory are kept);
//! - each row is read with the serializers the snapshot registered for that state (or, for a
//!   state the snapshot lacks, those of the state `--like` names), encoded to Flink's bytes
//!   (`rows`, `cells`), its key group computed from the key;
//! - the savepoint writer ([`crate::writers::savepoint`]) streams the snapshot's other entries
//!   and the imported ones through its external sort into the canonical stream.

pub(crate) mod cells;
mod registration;
mod rows;
mod sql;

pub use registration::StructType;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::export::MANIFEST;
use crate::model::{Entry, OperatorId, StateKind};
use crate::readers::entries::Selection;
use crate::readers::states::{snapshot_states, StateInfo};
use crate::snapshot::Snapshot;
use crate::storage::{Location, Storage};
use crate::writers::savepoint::{write_savepoint, ConvertOptions, ConvertReport};
use crate::writers::edit::NewOperator;
use crate::writers::ImportedState;
use rows::StateFile;

/// What to import and how to write.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// How to write the savepoint (as `convert`).
    pub convert: ConvertOptions,
    /// `OPERATOR/STATE` of the snapshot whose registration (serializer snapshots) a state new to
    /// the snapshot takes: one of the same kind, in an operator with the same key serializer.
    pub like: Vec<String>,
    /// Only report what would change; write nothing (every file is still read and checked).
    pub dry_run: bool,
    /// Parallelism of new operators (default: the one the snapshot's operators share; a new
    /// savepoint: 1).
    pub parallelism: Option<u32>,
    /// Checkpoint id of a new savepoint ([`bootstrap`]; default 1).
    pub checkpoint_id: Option<u64>,
    /// `OPERATOR/STATE=TYPE`: what the struct columns of a state registered from its column
    /// types hold ([`StructType`]: `tuple`, `rowdata`).
    pub types: Vec<String>,
}

/// The `--type` specs, parsed: `OPERATOR/STATE`, what its struct columns hold.
fn parse_types(specs: &[String]) -> Result<Vec<(String, StructType)>> {
    specs
        .iter()
        .map(|spec| {
            let (target, t) = spec.rsplit_once('=').ok_or_else(|| Error::Invalid(format!("--type {spec}: expected OPERATOR/STATE=TYPE")))?;
            if !target.contains('/') {
                return Err(Error::Invalid(format!("--type {spec}: expected OPERATOR/STATE=TYPE")));
            }
            let t = t.parse::<StructType>().map_err(|e| Error::Invalid(format!("--type {spec}: {e}")))?;
            Ok((target.to_owned(), t))
        })
        .collect()
}

/// Whether `OPERATOR/STATE` names manifest entry `m` (the operator by uid or id; `*` for any
/// operator or state).
fn names_entry(target: &str, m: &ManifestEntry) -> bool {
    target.match_indices('/').any(|(i, _)| {
        let (op, state) = (&target[..i], &target[i + 1..]);
        (state == "*" || state == m.state) && (op == "*" || m.operator_uid.as_deref() == Some(op) || op.eq_ignore_ascii_case(&m.operator_id))
    })
}

/// One state imported.
#[derive(Debug, Clone, Serialize)]
pub struct ImportedStateReport {
    /// The operator (source id).
    pub operator_id: OperatorId,
    /// Its uid, when known.
    pub operator_uid: Option<String>,
    /// The state.
    pub state: String,
    /// Its kind.
    pub kind: &'static str,
    /// The file, as the manifest names it.
    pub file: String,
    /// Entries imported (rows of the file).
    pub rows: u64,
    /// Entries of the snapshot's state that the rows replace.
    pub replaced: u64,
    /// The state was not in the snapshot: registered like this `OPERATOR/STATE`.
    pub like: Option<String>,
    /// The operator was not in the snapshot: created by the import.
    pub new_operator: bool,
}

/// What an import changed (or, in a dry run, would change).
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// Nothing was written.
    pub dry_run: bool,
    /// The export directory.
    pub from: String,
    /// Per imported state.
    pub states: Vec<ImportedStateReport>,
    /// What was written (`None` in a dry run).
    pub written: Option<ConvertReport>,
}

/// A manifest's state, as far as import needs it.
#[derive(Debug, Clone, serde::Deserialize)]
struct ManifestEntry {
    operator_id: String,
    operator_uid: Option<String>,
    state: String,
    kind: String,
    file: String,
}

#[derive(Debug, serde::Deserialize)]
struct ManifestFile {
    format: String,
    states: Vec<ManifestEntry>,
}

fn read_manifest(storage: &dyn Storage, dir: &Location) -> Result<Vec<ManifestEntry>> {
    let path = dir.join(MANIFEST);
    let text = match storage.read(&path) {
        Ok(t) => t,
        Err(Error::NotFound { .. }) => {
            return Err(Error::Invalid(format!("{path}: not found: the directory to import is one `flinksnap export --format parquet` wrote, with its manifest")))
        }
        Err(e) => return Err(e),
    };
    let m: ManifestFile = serde_json::from_slice(&text).map_err(|e| Error::Invalid(format!("{path}: not an export manifest: {e}")))?;
    if m.format != "parquet" {
        return Err(Error::Invalid(format!("{path}: an export in {}; import reads Parquet exports", m.format)));
    }
    Ok(m.states)
}

/// One state's file, resolved: what the savepoint writer reads.
#[derive(Debug)]
struct Import {
    file: StateFile,
    new_registration: Option<crate::readers::meta::StateMetaInfo>,
}

impl ImportedState for Import {
    fn state(&self) -> &str {
        self.file.info.name()
    }
    fn kind(&self) -> StateKind {
        self.file.info.kind
    }
    fn entries(&self) -> Result<Box<dyn Iterator<Item = Result<Entry>> + '_>> {
        Ok(Box::new(self.file.entries()?))
    }
    fn new_registration(&self) -> Option<&crate::readers::meta::StateMetaInfo> {
        self.new_registration.as_ref()
    }
    fn file(&self) -> Option<&Path> {
        Some(&self.file.path)
    }
}

/// What makes two entries of one imported state the same entry: key group and the key's,
/// namespace's and user key's bytes (a timer: also its timestamp). Operator list and union
/// states have no identity (their rows are elements); broadcast entries are their user keys.
fn identity(e: &Entry) -> Option<Vec<u8>> {
    let raw = &e.raw;
    let mut id = Vec::with_capacity(16 + raw.key.len() + raw.namespace.len());
    match e.kind {
        StateKind::OperatorList | StateKind::OperatorUnion => return None,
        StateKind::Broadcast => {}
        _ => {
            id.extend_from_slice(&e.key_group.unwrap_or(u32::MAX).to_be_bytes());
            for part in [&raw.key, &raw.namespace] {
                id.extend_from_slice(&(part.len() as u64).to_be_bytes());
                id.extend_from_slice(part);
            }
        }
    }
    if let Some(uk) = &raw.user_key {
        id.extend_from_slice(uk);
    }
    if e.kind == StateKind::Timer {
        id.extend_from_slice(&e.value.to_json().to_string().into_bytes());
    }
    Some(id)
}

/// A dry run's check that a state's rows repeat no key (the write checks it per key group of
/// its sorted stream). Each row's identity hash goes through an external sort, bucketed by its
/// high 32 bits, so memory stays within `memory_budget` whatever the file's size (sorted runs
/// spill to a temporary directory); within a bucket a set of full hashes finds a repeat, which
/// is confirmed by reading the file again. Returns the rows read.
fn check_repeats(import: &dyn ImportedState, operator: &str, memory_budget: usize) -> Result<u64> {
    let spill = tempfile::Builder::new().prefix("flinksnap-import-check-").tempdir().map_err(|e| Error::io(std::env::temp_dir().display().to_string(), e))?;
    let mut sorter = crate::writers::spill::ExternalSorter::new(spill.path(), memory_budget);
    let mut n = 0u64;
    for e in import.entries()? {
        let e = e?;
        n += 1;
        let Some(id) = identity(&e) else { continue };
        let h = twox_hash::XxHash3_64::oneshot(&id);
        sorter.push(crate::writers::canonical::Record { key_group: (h >> 32) as u32, state: 0, key: h.to_be_bytes().to_vec(), value: Vec::new() })?;
    }
    let mut bucket = None;
    let mut seen = std::collections::HashSet::new();
    for r in sorter.finish()? {
        let r = r?;
        if bucket != Some(r.key_group) {
            bucket = Some(r.key_group);
            seen.clear();
        }
        if seen.insert(r.key.clone()) {
            continue;
        }
        let h = r.key;
        // The first row with this hash names the identity; only rows equal to it count (a hash
        // collision of different keys carries on).
        let mut first: Option<Vec<u8>> = None;
        let same = |x: &Entry| {
            let Some(id) = identity(x).filter(|id| twox_hash::XxHash3_64::oneshot(id).to_be_bytes()[..] == h[..]) else { return Ok(false) };
            Ok(first.get_or_insert_with(|| id.clone()) == &id)
        };
        if let Some(err) = crate::writers::edit::duplicate_error(import, operator, same)? {
            return Err(err);
        }
    }
    Ok(n)
}

/// A registration renamed: the meta info's bytes start with the name (`writeUTF`).
fn renamed(meta: &crate::readers::meta::StateMetaInfo, name: &str) -> Result<crate::readers::meta::StateMetaInfo> {
    use crate::bytes::DataOutput;
    let mut c = crate::bytes::Cursor::new(&meta.raw);
    c.utf("state name").map_err(|e| Error::decode("state meta info", e))?;
    let rest = &meta.raw[c.position() as usize..];
    let mut raw = Vec::new();
    raw.put_utf(name).map_err(|e| Error::Invalid(format!("state name {name:?}: {e}")))?;
    raw.extend_from_slice(rest);
    Ok(crate::readers::meta::StateMetaInfo { name: name.to_owned(), raw, position: None, ..meta.clone() })
}

/// Imports the export directory `from` into the snapshot at `into`, writing `dst` (in a dry
/// run, only reading and checking every file).
pub fn import(storage: Arc<dyn Storage>, from: &str, into: &str, dst: Option<&str>, opts: &ImportOptions) -> Result<ImportReport> {
    import_into(storage, from, Some(into), dst, opts)
}

/// Writes a new savepoint `dst` holding only the states of the export directory `from`
/// (bootstrapping): every operator of its manifest is new, with the max parallelism
/// `opts.convert.max_parallelism` (required) and the parallelism `opts.parallelism` (default 1).
pub fn bootstrap(storage: Arc<dyn Storage>, from: &str, dst: Option<&str>, opts: &ImportOptions) -> Result<ImportReport> {
    import_into(storage, from, None, dst, opts)
}

/// Where the savepoint written from nothing is named in messages (no such file exists).
const NEW_SAVEPOINT: &str = "new://savepoint/_metadata";

/// An empty snapshot: what a new savepoint starts from (checkpoint id `checkpoint_id`, no master
/// state, no operators).
fn empty_snapshot(checkpoint_id: u64) -> Snapshot {
    let metadata = crate::metadata::CheckpointMetadata {
        version: crate::writers::metadata::WRITTEN_VERSION,
        checkpoint_id,
        master_states: Vec::new(),
        operators: Vec::new(),
        properties: None,
        properties_note: None,
        properties_raw: Vec::new(),
    };
    Snapshot::in_memory(metadata, NEW_SAVEPOINT)
}

/// The id of the operator a manifest entry names that `SRC` lacks: Flink's id of its uid
/// (`OperatorIDGenerator.fromUid`), else its 32-hex `operator_id`. A uid whose id is not the
/// manifest's `operator_id` is refused (which one is meant cannot be told).
fn new_operator_id(m: &ManifestEntry, in_file: &str) -> Result<(OperatorId, Option<String>)> {
    let given = m.operator_id.parse::<OperatorId>().ok();
    match m.operator_uid.as_deref().filter(|u| !u.is_empty()) {
        Some(uid) => {
            let id = OperatorId::from_uid(uid);
            if given.is_some_and(|g| g != id) {
                return Err(Error::Invalid(format!(
                    "{in_file}: operator_id {} is not the id of operator_uid {uid:?} (Flink derives {id} from it): give the uid with its id, \
                     or only the operator_id (an operator without a uid)",
                    m.operator_id
                )));
            }
            Ok((id, Some(uid.to_owned())))
        }
        None => given.map(|g| (g, None)).ok_or_else(|| {
            Error::Invalid(format!("{in_file}: operator_id {:?} is not a 32-hex operator id, and no operator_uid is given", m.operator_id))
        }),
    }
}

/// What the snapshot's operators agree on (`f` of each, operators of max parallelism 1 left
/// out: the program fixes those); `None` when they disagree or there are none.
fn agreed(snapshot: &Snapshot, f: impl Fn(&crate::metadata::OperatorState) -> u32) -> std::result::Result<Option<u32>, Vec<u32>> {
    let mut values: Vec<u32> = snapshot.metadata.operators.iter().filter(|o| o.max_parallelism != 1).map(f).collect();
    values.sort_unstable();
    values.dedup();
    match values.len() {
        0 => Ok(None),
        1 => Ok(Some(values[0])),
        _ => Err(values),
    }
}

/// A new operator's parallelism and max parallelism: the options', else those the snapshot's
/// operators share (parallelism: 1 when it has none).
fn new_operator(snapshot: &Snapshot, opts: &ImportOptions, id: OperatorId, uid: Option<String>, shown: &str, where_: &str, in_file: &str) -> Result<NewOperator> {
    let max_parallelism = match opts.convert.max_parallelism {
        Some(n) => n,
        None => match agreed(snapshot, |o| o.max_parallelism) {
            Ok(Some(n)) => n,
            Ok(None) => return Err(Error::Invalid(format!("{in_file}: new operator {shown}: {where_} has no operator whose max parallelism it could take; give --max-parallelism"))),
            Err(v) => {
                return Err(Error::Invalid(format!(
                    "{in_file}: new operator {shown}: the operators of {where_} have the max parallelisms {v:?}; give --max-parallelism (it applies to every operator)"
                )))
            }
        },
    };
    let parallelism = match opts.parallelism {
        Some(p) => p,
        None => match agreed(snapshot, |o| o.parallelism) {
            Ok(p) => p.unwrap_or(1),
            Err(v) => return Err(Error::Invalid(format!("{in_file}: new operator {shown}: the operators of {where_} have the parallelisms {v:?}; give --parallelism"))),
        },
    };
    if parallelism == 0 || parallelism > max_parallelism {
        return Err(Error::Invalid(format!("{in_file}: new operator {shown}: parallelism {parallelism} is not in 1..={max_parallelism} (its max parallelism)")));
    }
    Ok(NewOperator { operator_id: id, uid, parallelism, max_parallelism, key_serializer: None })
}

/// The key serializer of a new keyed operator: the one its file records, else the built-in
/// type of its `key` column, else that of the operator of a keyed `--like` state.
fn new_key_serializer(
    snapshot: &Snapshot,
    schema: &arrow_schema::Schema,
    likes: &[(usize, StateInfo, String)],
    hint: Option<&StructType>,
    in_file: &str,
    uid_or_id: &str,
) -> Result<(crate::readers::serializers::TypeSerializer, Vec<u8>)> {
    // The key serializer of the snapshot exported from, recorded in the file.
    if let Some(k) = registration::embedded_key_serializer(schema).map_err(|e| Error::Invalid(format!("{in_file}: {e}")))? {
        return Ok(k);
    }
    let column = registration::column_type(schema, "key", hint);
    if let Ok(t) = &column {
        return registration::key_serializer(t);
    }
    if let Some((op, _, spec)) = likes.iter().find(|(_, l, _)| l.kind.is_keyed()) {
        for j in 0..snapshot.metadata.operators[*op].subtasks.len() {
            if let Some(source) = crate::readers::source::KeyedSource::open(snapshot, crate::model::SubtaskRef { operator: *op, subtask: j }, &Selection::default())? {
                let raw = source.meta().key_serializer_raw.clone();
                if !raw.is_empty() {
                    return Ok((source.meta().key_serializer.clone(), raw));
                }
            }
        }
        return Err(Error::unsupported(format!("{in_file}: --like {spec}: its operator's key serializer is not recorded"), None));
    }
    Err(Error::unsupported(
        format!(
            "{in_file}: new operator {uid_or_id} needs a key serializer: {}; give --like OPERATOR/STATE, a keyed state of an operator with the same key type",
            column.err().map(|e| e.to_string()).unwrap_or_default()
        ),
        None,
    ))
}

/// [`import`] into `into`, or ([`bootstrap`]) into an empty snapshot.
fn import_into(storage: Arc<dyn Storage>, from: &str, into: Option<&str>, dst: Option<&str>, opts: &ImportOptions) -> Result<ImportReport> {
    let from = Location::new(from);
    let manifest = read_manifest(storage.as_ref(), &from)?;
    let snapshot = match into {
        Some(into) => Snapshot::open(storage.clone(), into)?,
        None => {
            if opts.convert.max_parallelism.is_none() {
                return Err(Error::Invalid("a new savepoint needs --max-parallelism (the job's max parallelism: its number of key groups)".into()));
            }
            empty_snapshot(opts.checkpoint_id.unwrap_or(1))
        }
    };
    let where_ = match into {
        Some(_) => snapshot.metadata_location.to_string(),
        None => "the new savepoint".to_owned(),
    };
    // The states every operator declares, with their serializers.
    let mut declared: HashMap<usize, Vec<StateInfo>> = HashMap::new();
    for (sub, infos) in snapshot_states(&snapshot, &Selection::default())? {
        let d = declared.entry(sub.operator).or_default();
        for i in infos {
            if !d.iter().any(|x| x.name() == i.name() && x.kind.is_keyed() == i.kind.is_keyed()) {
                d.push(i);
            }
        }
    }
    let mut likes: Vec<(usize, StateInfo, String)> = Vec::new();
    for spec in &opts.like {
        let found = spec.match_indices('/').find_map(|(i, _)| {
            let op = crate::writers::edit::find_operator(&snapshot, &spec[..i])?;
            let info = declared.get(&op)?.iter().find(|s| s.name() == &spec[i + 1..])?;
            Some((op, info.clone()))
        });
        let (op, info) = found.ok_or_else(|| Error::Invalid(format!("{where_}: --like {spec}: no such OPERATOR/STATE in this snapshot (`flinksnap inspect` lists them)")))?;
        likes.push((op, info, spec.clone()));
    }
    let types = parse_types(&opts.types)?;
    for (target, _) in &types {
        if !manifest.iter().any(|m| names_entry(target, m)) {
            return Err(Error::Invalid(format!("--type {target}: no such OPERATOR/STATE in {}'s manifest", from)));
        }
    }
    let mut imports: HashMap<OperatorId, Vec<Arc<dyn ImportedState>>> = HashMap::new();
    let mut new_operators: Vec<NewOperator> = Vec::new();
    let mut report = ImportReport { dry_run: opts.dry_run, from: from.to_string(), states: Vec::new(), written: None };
    let mut seen: BTreeMap<(OperatorId, String, bool), String> = BTreeMap::new();
    for m in &manifest {
        let path = from.join(&m.file);
        let in_file = || format!("{path} ({} in the manifest)", m.file);
        let hint = types.iter().find(|(target, _)| names_entry(target, m)).map(|(_, t)| t);
        let kind = [StateKind::Value, StateKind::List, StateKind::Map, StateKind::Reducing, StateKind::Aggregating, StateKind::Timer, StateKind::OperatorList, StateKind::OperatorUnion, StateKind::Broadcast]
            .into_iter()
            .find(|k| k.as_str() == m.kind)
            .ok_or_else(|| Error::Invalid(format!("{}: unknown state kind {:?}", in_file(), m.kind)))?;
        let op_index = crate::writers::edit::find_operator(&snapshot, &m.operator_id).or_else(|| m.operator_uid.as_deref().and_then(|u| crate::writers::edit::find_operator(&snapshot, u)));
        // The operator: the snapshot's, or a new one (its states all new).
        let (operator_id, max_parallelism, operator_uid, target_key) = match op_index {
            Some(i) => {
                let op = &snapshot.metadata.operators[i];
                let key = declared.get(&i).and_then(|d| d.iter().find_map(|s| s.key_serializer.clone()));
                (op.operator_id, op.max_parallelism, op.uid.clone().filter(|u| !u.is_empty()).or_else(|| m.operator_uid.clone()), key)
            }
            None => {
                let (id, uid) = new_operator_id(m, &in_file())?;
                let shown = uid.clone().map_or_else(|| id.to_string(), |u| format!("{id} (uid {u})"));
                let at = match new_operators.iter().position(|n| n.operator_id == id) {
                    Some(at) => at,
                    None => {
                        new_operators.push(new_operator(&snapshot, opts, id, uid.clone(), &shown, &where_, &in_file())?);
                        new_operators.len() - 1
                    }
                };
                let n = &mut new_operators[at];
                if kind.is_keyed() && n.key_serializer.is_none() {
                    let schema = StateFile::schema(&storage, &path)?;
                    n.key_serializer = Some(new_key_serializer(&snapshot, &schema, &likes, hint, &in_file(), &shown)?);
                }
                (id, n.max_parallelism, uid, n.key_serializer.as_ref().map(|(k, _)| k.clone()))
            }
        };
        if seen.insert((operator_id, m.state.clone(), kind.is_keyed()), m.file.clone()).is_some() {
            return Err(Error::Invalid(format!("{}: state {:?} of operator {} is imported twice", in_file(), m.state, operator_id)));
        }
        let existing = op_index.and_then(|i| declared.get(&i)).and_then(|d| d.iter().find(|s| s.name() == m.state && s.kind.is_keyed() == kind.is_keyed()));
        let (info, like, new_registration) = match existing {
            Some(info) if info.kind != kind => {
                return Err(Error::Invalid(format!("{}: state {:?} is {} state in {where_}, the manifest says {}", in_file(), m.state, info.kind.as_str(), m.kind)))
            }
            Some(info) => (info.clone(), None, None),
            None => {
                // New operator state only in a new operator: an operator's states share one
                // serialization proxy per subtask, rewritten only for new operators.
                if !kind.is_keyed() && op_index.is_some() {
                    return Err(Error::unsupported(
                        format!(
                            "{}: operator {operator_id} has no {} state {:?}; import adds new operator state to new operators only (keyed states to any)",
                            in_file(),
                            m.kind,
                            m.state
                        ),
                        None,
                    ));
                }
                let target_key = if kind.is_keyed() {
                    match target_key.clone() {
                        Some(k) => Some(k),
                        None => return Err(Error::unsupported(format!("{}: operator {operator_id} has no keyed state, so state {:?} cannot be added to it", in_file(), m.state), None)),
                    }
                } else {
                    None
                };
                let like = likes.iter().find(|(_, l, _)| {
                    l.kind == kind && (!kind.is_keyed() || l.key_serializer.as_ref().zip(target_key.as_ref()).is_some_and(|(a, b)| a.class_name() == b.class_name()))
                });
                let (meta, like) = match like {
                    Some((_, like, spec)) => (renamed(&like.meta, &m.state)?, Some(spec.clone())),
                    // Without --like: registered as the snapshot exported from registered it
                    // (the file's metadata), else for the built-in types of the file's columns.
                    None => {
                        let schema = StateFile::schema(&storage, &path)?;
                        if let Some(meta) = registration::embedded_registration(&schema, &m.state, kind).map_err(|e| Error::Invalid(format!("{}: {e}", in_file())))? {
                            (meta, None)
                        } else {
                        let meta = registration::registration_from_columns(&m.state, kind, &schema, hint).map_err(|e| {
                            Error::Invalid(format!(
                                "{}: operator {operator_id} has no state {:?}, and its serializers cannot be taken from the file's columns: {e}; \
                                 give --like OPERATOR/STATE, an existing {} state of the same types{}",
                                in_file(),
                                m.state,
                                m.kind,
                                target_key.as_ref().map(|k| format!(" (keyed by {})", k.class_name())).unwrap_or_default()
                            ))
                        })?;
                        (meta, None)
                        }
                    }
                };
                let info = StateInfo { operator_id, kind, key_serializer: target_key, key_serializer_raw: Vec::new(), meta: meta.clone() };
                (info, like, Some(meta))
            }
        };
        let file = StateFile::open(&storage, &path, info, operator_id, max_parallelism)?;
        report.states.push(ImportedStateReport {
            operator_id,
            operator_uid,
            new_operator: op_index.is_none(),
            state: m.state.clone(),
            kind: kind.as_str(),
            file: m.file.clone(),
            rows: 0,
            replaced: 0,
            like,
        });
        imports.entry(operator_id).or_default().push(Arc::new(Import { file, new_registration }));
    }
    let edits = crate::writers::edit::Edits { imports, new_operators, ..Default::default() };
    let counts = if opts.dry_run {
        // Every row read and encoded: a dry run finds what the import would refuse.
        for (id, list) in &edits.imports {
            for i in list {
                // Named as the write names it (`OperatorState::label`).
                let operator = snapshot.metadata.operators.iter().find(|o| o.operator_id == *id).map_or_else(|| id.to_string(), |o| o.label());
                let n = check_repeats(i.as_ref(), &operator, opts.convert.memory_budget)?;
                if let Some(r) = report.states.iter_mut().find(|r| r.operator_id == *id && r.state == i.state() && r.kind == i.kind().as_str()) {
                    r.rows = n;
                }
            }
        }
        edits.dry_run(&snapshot)?
    } else {
        let dst = dst.ok_or_else(|| Error::Invalid("import: a target directory is needed (or --dry-run)".into()))?;
        let (written, counts) = write_savepoint(&snapshot, storage, dst, &opts.convert, &edits)?;
        report.written = Some(written);
        counts
    };
    for r in &mut report.states {
        let k = (r.operator_id, r.state.clone());
        r.replaced = counts.replaced.get(&k).copied().unwrap_or(0);
        if !opts.dry_run {
            r.rows = counts.imported.get(&k).copied().unwrap_or(0);
        }
    }
    Ok(report)
}

/// The rows a Parquet file in the export layout gives for one keyed state, read and encoded
/// exactly as [`import`] reads them (cells → serializer values → Flink's bytes, key group from
/// the key), from bytes instead of files: what the `import_parquet` fuzz target and tools that
/// hold bytes call. The state is entry `state` of the serialization proxy `keyed_meta` (a
/// keyed state file's meta data); at most `max_rows` rows are read; returns the rows read.
pub fn rows_from_bytes(keyed_meta: &[u8], state: usize, max_parallelism: u32, parquet: &[u8], max_rows: usize) -> Result<u64> {
    if !(1..=crate::consts::UPPER_BOUND_MAX_PARALLELISM).contains(&max_parallelism) {
        return Err(Error::Invalid(format!("max parallelism {max_parallelism} is not in 1..={}", crate::consts::UPPER_BOUND_MAX_PARALLELISM)));
    }
    let meta = crate::readers::raw::keyed_backend_meta(keyed_meta).map_err(|e| Error::decode("<keyed meta>", e))?;
    let reg = meta.states.get(state).ok_or_else(|| Error::Invalid(format!("the proxy has {} states, not {}", meta.states.len(), state + 1)))?;
    let kind = reg.kind().ok_or_else(|| Error::Invalid(format!("state {:?}: no state kind", reg.name)))?;
    let operator_id = OperatorId::from_uid("import");
    let info = StateInfo { operator_id, kind, key_serializer: Some(meta.key_serializer.clone()), key_serializer_raw: meta.key_serializer_raw.clone(), meta: reg.clone() };
    let file = StateFile::from_bytes("<parquet bytes>", bytes::Bytes::copy_from_slice(parquet), info, operator_id, max_parallelism)?;
    let mut n = 0;
    for e in file.entries()?.take(max_rows) {
        e?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fuzzer's input (`import_parquet` layout: `u32` max parallelism, `u16` state, `u32` meta
    /// length, meta, Parquet bytes) whose Parquet footer embeds an Arrow schema with an integer
    /// type of bit width 0: arrow-ipc panics on it; import gives an error naming the file.
    #[test]
    fn a_parquet_file_the_parquet_crate_panics_on_is_an_error() {
        let input = include_bytes!("../../fuzz/regressions/import_parquet/arrow-schema-int-width-0");
        let max_parallelism = u32::from_le_bytes(input[..4].try_into().unwrap());
        let state = u16::from_le_bytes(input[4..6].try_into().unwrap()) as usize;
        let len = u32::from_le_bytes(input[6..10].try_into().unwrap()) as usize;
        let (meta, parquet) = input[10..].split_at(len);
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = rows_from_bytes(meta, state, max_parallelism, parquet, 100);
        std::panic::set_hook(hook);
        let e = r.unwrap_err().to_string();
        assert!(e.starts_with("<parquet bytes>: not a Parquet file this reader can read (the parquet crate failed on it: "), "{e}");
        assert!(e.contains("bit width of 0"), "{e}");
    }
}
