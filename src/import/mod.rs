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
    let from = Location::new(from);
    let manifest = read_manifest(storage.as_ref(), &from)?;
    let snapshot = Snapshot::open(storage.clone(), into)?;
    let where_ = snapshot.metadata_location.to_string();
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
    let mut imports: HashMap<OperatorId, Vec<Arc<dyn ImportedState>>> = HashMap::new();
    let mut report = ImportReport { dry_run: opts.dry_run, from: from.to_string(), states: Vec::new(), written: None };
    let mut seen: BTreeMap<(OperatorId, String, bool), String> = BTreeMap::new();
    for m in &manifest {
        let path = from.join(&m.file);
        let in_file = || format!("{path} ({} in the manifest)", m.file);
        let kind = [StateKind::Value, StateKind::List, StateKind::Map, StateKind::Reducing, StateKind::Aggregating, StateKind::Timer, StateKind::OperatorList, StateKind::OperatorUnion, StateKind::Broadcast]
            .into_iter()
            .find(|k| k.as_str() == m.kind)
            .ok_or_else(|| Error::Invalid(format!("{}: unknown state kind {:?}", in_file(), m.kind)))?;
        let op_index = crate::writers::edit::find_operator(&snapshot, &m.operator_id).or_else(|| m.operator_uid.as_deref().and_then(|u| crate::writers::edit::find_operator(&snapshot, u)));
        let Some(op_index) = op_index else {
            return Err(Error::unsupported(
                format!(
                    "{}: operator {}{} is not in {where_}: import adds states to the snapshot's operators, not new operators (give the job's \
                     operator by its uid in the export, or add the operator to the snapshot first)",
                    in_file(),
                    m.operator_id,
                    m.operator_uid.as_ref().map(|u| format!(" (uid {u})")).unwrap_or_default()
                ),
                None,
            ));
        };
        let op = &snapshot.metadata.operators[op_index];
        if seen.insert((op.operator_id, m.state.clone(), kind.is_keyed()), m.file.clone()).is_some() {
            return Err(Error::Invalid(format!("{}: state {:?} of operator {} is imported twice", in_file(), m.state, op.operator_id)));
        }
        let existing = declared.get(&op_index).and_then(|d| d.iter().find(|s| s.name() == m.state && s.kind.is_keyed() == kind.is_keyed()));
        let (info, like, new_registration) = match existing {
            Some(info) if info.kind != kind => {
                return Err(Error::Invalid(format!("{}: state {:?} is {} state in {where_}, the manifest says {}", in_file(), m.state, info.kind.as_str(), m.kind)))
            }
            Some(info) => (info.clone(), None, None),
            None => {
                if !kind.is_keyed() || kind == StateKind::Timer {
                    return Err(Error::unsupported(
                        format!("{}: operator {} has no {} state {:?}; import adds new keyed value, list, map, reducing and aggregating states only", in_file(), op.operator_id, m.kind, m.state),
                        None,
                    ));
                }
                let target_key = declared.get(&op_index).and_then(|d| d.iter().find_map(|s| s.key_serializer.clone()));
                let Some(target_key) = target_key else {
                    return Err(Error::unsupported(format!("{}: operator {} has no keyed state, so state {:?} cannot be added to it", in_file(), op.operator_id, m.state), None));
                };
                let like = likes.iter().find(|(_, l, _)| l.kind == kind && l.key_serializer.as_ref().is_some_and(|k| k.class_name() == target_key.class_name()));
                let (meta, like) = match like {
                    Some((_, like, spec)) => (renamed(&like.meta, &m.state)?, Some(spec.clone())),
                    // Without --like: registered for the built-in types of the file's columns.
                    None => {
                        let schema = StateFile::schema(&storage, &path)?;
                        let meta = registration::registration_from_columns(&m.state, kind, &schema).map_err(|e| {
                            Error::Invalid(format!(
                                "{}: operator {} has no state {:?}, and its serializers cannot be taken from the file's columns: {e}; \
                                 give --like OPERATOR/STATE, an existing {} state of the same types (keyed by {})",
                                in_file(),
                                op.operator_id,
                                m.state,
                                m.kind,
                                target_key.class_name()
                            ))
                        })?;
                        (meta, None)
                    }
                };
                let info = StateInfo { operator_id: op.operator_id, kind, key_serializer: Some(target_key), meta: meta.clone() };
                (info, like, Some(meta))
            }
        };
        let file = StateFile::open(&storage, &path, info, op.operator_id, op.max_parallelism)?;
        report.states.push(ImportedStateReport {
            operator_id: op.operator_id,
            operator_uid: op.uid.clone().filter(|u| !u.is_empty()).or_else(|| m.operator_uid.clone()),
            state: m.state.clone(),
            kind: kind.as_str(),
            file: m.file.clone(),
            rows: 0,
            replaced: 0,
            like,
        });
        imports.entry(op.operator_id).or_default().push(Arc::new(Import { file, new_registration }));
    }
    let edits = crate::writers::edit::Edits { imports, ..Default::default() };
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
    let info = StateInfo { operator_id, kind, key_serializer: Some(meta.key_serializer.clone()), meta: reg.clone() };
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
