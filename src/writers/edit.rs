//! `flinksnap edit`: a snapshot written as a canonical savepoint with operators renamed or
//! dropped, states dropped, keys forgotten and key groups filtered. Spec: `formats/edit.md`.
//!
//! Edits are a stage between the readers and the savepoint writer ([`super::savepoint`]):
//! operator-level ones change what `_metadata` holds (an operator under another id, or not at
//! all); state-level ones change the serialization proxies (a dropped state is no longer
//! registered); entry-level ones (`Edits::keep`) leave entries out as they stream from the
//! reader to the writer. Everything else is written exactly as `convert` writes it.
//!
//! Keys are matched by their serialized bytes in the key group their hash puts them in: a key
//! given as JSON is read with the operator's key serializer ([`TypeSerializer::value_from_json`]),
//! written back to bytes, and its key group computed from its Java `hashCode()`. Keys whose hash
//! flinksnap cannot compute (POJOs, enums, Kryo types) are refused by name: their key group, and
//! so where their entries are, is not known.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::metadata::OperatorState;
use crate::model::{Entry, KeyGroupRange, OperatorId, RawParts, StateKind, SubtaskRef, ValueParts};
use crate::readers::entries::{Selection, SnapshotEntries};
use crate::readers::serializers::{key_group_for_hash, key_hash_code, TypeSerializer};
use crate::readers::source::KeyedSource;
use crate::readers::states::snapshot_states;
use crate::snapshot::Snapshot;
use crate::storage::Storage;
use crate::writers::savepoint::{write_savepoint, ConvertOptions, ConvertReport};

/// A key to forget, as given: the JSON of the key as `flinksnap dump` prints it, or (from the
/// command line) plain text, which is tried as JSON first and else taken as a string.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyInput {
    /// A JSON value (`"k03"`, `42`, `{"f0": 1, "f1": "a"}`).
    Json(serde_json::Value),
    /// Text from the command line: JSON if it parses and fits the key type, else a string.
    Text(String),
}

impl KeyInput {
    fn shown(&self) -> serde_json::Value {
        match self {
            KeyInput::Json(j) => j.clone(),
            KeyInput::Text(t) => serde_json::Value::String(t.clone()),
        }
    }
}

/// One `--forget-key`: which operator (uid, 32-hex id, or `*` for every keyed operator),
/// optionally which state, and the key.
#[derive(Debug, Clone, PartialEq)]
pub struct ForgetKey {
    /// `OPERATOR` or `OPERATOR/STATE`, or `*` (every keyed operator whose key type the key fits).
    pub target: String,
    /// The key.
    pub key: KeyInput,
}

/// What to change.
#[derive(Debug, Clone, Default)]
pub struct EditOptions {
    /// How to write the savepoint (as `convert`).
    pub convert: ConvertOptions,
    /// `OLD=NEW` pairs: each a uid or a 32-digit hex operator id.
    pub renames: Vec<(String, String)>,
    /// Operators to leave out (uid or id).
    pub drop_operators: Vec<String>,
    /// `OPERATOR/STATE` to leave out.
    pub drop_states: Vec<String>,
    /// Keys to remove from keyed state.
    pub forget_keys: Vec<ForgetKey>,
    /// Keep only keyed state in these key groups (of the source's max parallelism).
    pub key_groups: Option<KeyGroupRange>,
    /// Only report what would change; write nothing.
    pub dry_run: bool,
}

impl EditOptions {
    /// True when no edit is asked for (the result is what `convert` writes).
    pub fn is_empty(&self) -> bool {
        self.renames.is_empty() && self.drop_operators.is_empty() && self.drop_states.is_empty() && self.forget_keys.is_empty() && self.key_groups.is_none()
    }
}

/// An operator renamed.
#[derive(Debug, Clone, Serialize)]
pub struct Renamed {
    /// The id in the source.
    pub from_id: OperatorId,
    /// Its uid in the source (2.x metadata), or the uid it was named by.
    pub from_uid: Option<String>,
    /// The id written.
    pub to_id: OperatorId,
    /// The uid it was given (Flink derives `to_id` from it), `None` when given as an id.
    pub to_uid: Option<String>,
}

/// An operator left out.
#[derive(Debug, Clone, Serialize)]
pub struct DroppedOperator {
    /// Its id.
    pub operator_id: OperatorId,
    /// Its uid, when known.
    pub operator_uid: Option<String>,
    /// The states it held.
    pub states: Vec<String>,
}

/// A state left out.
#[derive(Debug, Clone, Serialize)]
pub struct DroppedState {
    /// The operator (as in the source).
    pub operator_id: OperatorId,
    /// The state.
    pub state: String,
    /// Its kind.
    pub kind: &'static str,
}

/// A key forgotten.
#[derive(Debug, Clone, Serialize)]
pub struct ForgottenKey {
    /// The operator (as in the source).
    pub operator_id: OperatorId,
    /// Only this state (`None`: every keyed state and timer of the operator).
    pub state: Option<String>,
    /// The key as the operator's key type reads it (the dump's JSON of it).
    pub key: serde_json::Value,
    /// The key group its hash puts it in (the source's max parallelism).
    pub key_group: u32,
    /// Entries removed (values, list values, map entries, timers; all namespaces).
    pub entries_removed: u64,
}

/// Entries removed from one state.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    /// The operator (as in the source).
    pub operator_id: OperatorId,
    /// The state.
    pub state: String,
    /// Its kind.
    pub kind: &'static str,
    /// Entries of forgotten keys.
    pub forgotten: u64,
    /// Entries outside `--filter-key-groups`.
    pub filtered: u64,
}

/// What an edit changed (or, in a dry run, would change).
#[derive(Debug, Clone, Serialize)]
pub struct EditReport {
    /// Nothing was written.
    pub dry_run: bool,
    /// Operators renamed.
    pub renamed: Vec<Renamed>,
    /// Operators left out.
    pub dropped_operators: Vec<DroppedOperator>,
    /// States left out.
    pub dropped_states: Vec<DroppedState>,
    /// Keys forgotten.
    pub forgotten_keys: Vec<ForgottenKey>,
    /// `--forget-key *=KEY`: keyed operators whose key type the key does not fit, skipped.
    pub skipped_operators: Vec<String>,
    /// Key groups kept (`--filter-key-groups`).
    pub key_groups: Option<KeyGroupRange>,
    /// Entries removed per state (forgotten keys, filtered key groups).
    pub removed: Vec<Removed>,
    /// What was written (`None` in a dry run).
    pub written: Option<ConvertReport>,
}

/// One key to forget in one operator, resolved.
#[derive(Debug, Clone)]
struct Forget {
    /// Index into the report's `forgotten_keys`.
    report: usize,
    state: Option<String>,
}

/// The edits of one operator, resolved against the snapshot.
#[derive(Debug, Clone, Default)]
pub(crate) struct OperatorEdit {
    /// Written under this id (and uid).
    pub(crate) rename: Option<(OperatorId, Option<String>)>,
    pub(crate) drop: bool,
    pub(crate) drop_states: BTreeSet<String>,
    /// (key group, key bytes) → what to forget.
    forget: HashMap<(u32, Vec<u8>), Vec<Forget>>,
    forget_key_groups: HashSet<u32>,
}

/// Entries that replace all entries of one state of the source (`flinksnap import`): read
/// when the savepoint writer reaches the operator, each with its key group for the source's max
/// parallelism and its bytes as the state's serializers write them.
pub trait ImportedState: std::fmt::Debug + Send + Sync {
    /// The state's name.
    fn state(&self) -> &str;
    /// Its kind.
    fn kind(&self) -> StateKind;
    /// The entries, read anew on every call.
    fn entries(&self) -> Result<Box<dyn Iterator<Item = Result<Entry>> + '_>>;
    /// For a keyed state the source's operator does not declare: its registration (name,
    /// serializer snapshots), added to the written serialization proxy.
    fn new_registration(&self) -> Option<&crate::readers::meta::StateMetaInfo> {
        None
    }
    /// The file the entries are read from (named in errors), when there is one.
    fn file(&self) -> Option<&std::path::Path> {
        None
    }
}

/// The error for two entries of `import` with the same key (and namespace, user key; for timers
/// the same timer): `same` says which entries are the repeated one. The entries are read again
/// to name the rows (row numbers count entries from 0, as the file's rows). `None` when fewer
/// than two entries match: the caller's hash collided, there is no duplicate.
pub(crate) fn duplicate_error(import: &dyn ImportedState, operator: &str, mut same: impl FnMut(&Entry) -> Result<bool>) -> Result<Option<Error>> {
    let mut rows: Vec<u64> = Vec::new();
    let mut first: Option<Entry> = None;
    for (row, e) in import.entries()?.enumerate() {
        let e = e?;
        if same(&e)? {
            rows.push(row as u64);
            first.get_or_insert(e);
        }
    }
    let Some(e) = first.filter(|_| rows.len() >= 2) else { return Ok(None) };
    let file = import.file().map_or_else(|| format!("state {:?}", import.state()), |p| p.display().to_string());
    let rows = match rows.len() {
        2 => format!("rows {} and {}", rows[0], rows[1]),
        n => format!("rows {} ({n} rows)", rows.iter().take(5).map(u64::to_string).collect::<Vec<_>>().join(", ") + if n > 5 { ", …" } else { "" }),
    };
    // Keyed: key, namespace (unless void), user key; broadcast: the user key only.
    let mut parts = Vec::new();
    if e.kind.is_keyed() {
        parts.push(format!("key {}", e.key.as_ref().map_or("null".to_owned(), |k| k.to_json().to_string())));
    }
    if let Some(ns) = e.namespace.as_ref().filter(|ns| !matches!(ns, crate::model::value::Value::Null)) {
        parts.push(format!("namespace {}", ns.to_json()));
    }
    if let Some(uk) = &e.user_key {
        parts.push(format!("user key {}", uk.to_json()));
    }
    let mut what = parts.join(", ");
    if e.kind == StateKind::Timer {
        what = format!("timer {} for {what}", e.value.to_json());
    }
    let list = if e.kind == StateKind::List { " (a list state's elements are the one row's `value` list: merge the lists into one row)" } else { "" };
    Ok(Some(Error::Invalid(format!(
        "{file}: {rows}: {what} twice in {} state {:?} of operator {operator}: Flink would keep only one of them on restore, so import refuses \
         repeated keys; remove or merge the repeated rows{list}",
        e.kind.as_str(),
        import.state(),
    ))))
}

/// Every edit, resolved against a snapshot; what the savepoint writer consults.
#[derive(Debug, Default)]
pub(crate) struct Edits {
    pub(crate) operators: HashMap<OperatorId, OperatorEdit>,
    pub(crate) key_groups: Option<KeyGroupRange>,
    /// Per operator (source id): states whose entries are replaced by imported ones.
    pub(crate) imports: HashMap<OperatorId, Vec<Arc<dyn ImportedState>>>,
    /// Operators the snapshot does not have, written after its own, with the states
    /// `imports` lists for them (each with its `new_registration`).
    pub(crate) new_operators: Vec<NewOperator>,
}

/// An operator new to the snapshot (`import` of state of an operator the snapshot lacks).
#[derive(Debug, Clone)]
pub(crate) struct NewOperator {
    pub(crate) operator_id: OperatorId,
    pub(crate) uid: Option<String>,
    pub(crate) parallelism: u32,
    pub(crate) max_parallelism: u32,
    /// The key serializer of its keyed state (read back, and in the proxy's form); `None`: no
    /// keyed state.
    pub(crate) key_serializer: Option<(crate::readers::serializers::TypeSerializer, Vec<u8>)>,
}

impl NewOperator {
    /// The operator as the metadata names it (no subtasks yet).
    pub(crate) fn operator_state(&self) -> OperatorState {
        OperatorState {
            operator_id: self.operator_id,
            name: self.uid.clone(),
            uid: self.uid.clone(),
            parallelism: self.parallelism,
            max_parallelism: self.max_parallelism,
            coordinator_state: None,
            fully_finished: false,
            subtasks: Vec::new(),
        }
    }
}

/// Counts of what [`Edits::keep`] left out.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// (operator, state) → (kind, forgotten, filtered).
    per_state: BTreeMap<(OperatorId, String), (StateKind, u64, u64)>,
    /// Per forgotten key (index into the report's list).
    per_key: HashMap<usize, u64>,
    /// (operator, state) → entries of the source replaced by an import.
    pub(crate) replaced: BTreeMap<(OperatorId, String), u64>,
    /// (operator, state) → imported entries written.
    pub(crate) imported: BTreeMap<(OperatorId, String), u64>,
}

impl Counts {
    /// Adds what another reader (of another piece of the snapshot) counted.
    pub(crate) fn merge(&mut self, o: Counts) {
        for (k, (kind, f, x)) in o.per_state {
            let e = self.per_state.entry(k).or_insert((kind, 0, 0));
            e.1 += f;
            e.2 += x;
        }
        for (k, n) in o.per_key {
            *self.per_key.entry(k).or_default() += n;
        }
        for (k, n) in o.replaced {
            *self.replaced.entry(k).or_default() += n;
        }
        for (k, n) in o.imported {
            *self.imported.entry(k).or_default() += n;
        }
    }
}

impl Edits {
    /// The edits of operator `id`, if any.
    pub(crate) fn operator(&self, id: &OperatorId) -> Option<&OperatorEdit> {
        self.operators.get(id)
    }

    /// Whether operator `id` is left out.
    pub(crate) fn drops_operator(&self, id: &OperatorId) -> bool {
        self.operator(id).is_some_and(|e| e.drop)
    }

    /// Whether state `name` of operator `id` is left out.
    pub(crate) fn drops_state(&self, id: &OperatorId, name: &str) -> bool {
        self.operator(id).is_some_and(|e| e.drop_states.contains(name))
    }

    /// The id (and uid) operator `op` is written under.
    pub(crate) fn target(&self, op: &OperatorState) -> (OperatorId, Option<String>) {
        match self.operator(&op.operator_id).and_then(|e| e.rename.clone()) {
            Some(r) => r,
            None => (op.operator_id, op.uid.clone()),
        }
    }

    /// The imports replacing states of operator `id`.
    pub(crate) fn imports(&self, id: &OperatorId) -> &[Arc<dyn ImportedState>] {
        self.imports.get(id).map_or(&[], Vec::as_slice)
    }

    /// Whether the state of entry `e` is replaced by an import (a keyed and an operator state
    /// may have the same name: separate namespaces in Flink).
    pub(crate) fn replaces(&self, e: &Entry) -> bool {
        self.imports(&e.operator_id).iter().any(|i| i.state() == &*e.state && i.kind().is_keyed() == e.kind.is_keyed())
    }

    /// Whether an entry goes into the savepoint; what is left out is counted.
    pub(crate) fn keep(&self, e: &Entry, counts: &mut Counts) -> bool {
        if self.replaces(e) {
            *counts.replaced.entry((e.operator_id, e.state.to_string())).or_default() += 1;
            return false;
        }
        if !e.kind.is_keyed() {
            return !self.drops_state(&e.operator_id, &e.state);
        }
        if self.drops_state(&e.operator_id, &e.state) {
            return false;
        }
        let Some(kg) = e.key_group else { return true };
        if self.key_groups.is_some_and(|r| !r.contains(kg)) {
            counts.per_state.entry((e.operator_id, e.state.to_string())).or_insert((e.kind, 0, 0)).2 += 1;
            return false;
        }
        let Some(op) = self.operator(&e.operator_id) else { return true };
        if !op.forget_key_groups.contains(&kg) {
            return true;
        }
        let forgets = match &e.raw.stored_key {
            None => op.forget.get(&(kg, e.raw.key.clone())),
            // Key, namespace (and user key) stored together, not split (a namespace serializer
            // flinksnap does not know): the stored key starts with the key's bytes. No key's
            // bytes are a prefix of another's (a serializer reads a key without its length), so
            // the prefix names the key exactly.
            Some(stored) => op.forget.iter().find(|((g, key), _)| *g == kg && stored.starts_with(key)).map(|(_, f)| f),
        };
        let Some(forgets) = forgets else { return true };
        let Some(f) = forgets.iter().find(|f| f.state.as_deref().is_none_or(|s| s == &*e.state)) else { return true };
        counts.per_state.entry((e.operator_id, e.state.to_string())).or_insert((e.kind, 0, 0)).1 += 1;
        *counts.per_key.entry(f.report).or_default() += 1;
        false
    }
}

/// `OPERATOR` (a uid or a 32-digit hex id) resolved against the snapshot: the operator's index.
pub(crate) fn find_operator(snapshot: &Snapshot, name: &str) -> Option<usize> {
    let ops = &snapshot.metadata.operators;
    if let Ok(id) = name.parse::<OperatorId>() {
        if let Some(i) = ops.iter().position(|o| o.operator_id == id) {
            return Some(i);
        }
    }
    let id = OperatorId::from_uid(name);
    ops.iter().position(|o| o.operator_id == id || o.uid.as_deref() == Some(name))
}

fn no_operator(snapshot: &Snapshot, name: &str) -> Error {
    let id = name.parse::<OperatorId>().unwrap_or_else(|_| OperatorId::from_uid(name));
    Error::Invalid(format!("{}: no operator {name} (id {id}) in this snapshot; `flinksnap inspect` lists them", snapshot.metadata_location))
}

/// `OPERATOR/STATE` (state names may hold `/`, as timers' `_timer_state/…` do; so may uids):
/// the first split whose operator part names an operator.
fn split_operator_state(snapshot: &Snapshot, spec: &str) -> Result<(usize, String)> {
    for (i, _) in spec.match_indices('/') {
        if let Some(op) = find_operator(snapshot, &spec[..i]) {
            return Ok((op, spec[i + 1..].to_owned()));
        }
    }
    Err(Error::Invalid(format!(
        "{}: {spec:?} is not OPERATOR/STATE of an operator of this snapshot (OPERATOR a uid or 32-digit hex id; `flinksnap inspect` lists them)",
        snapshot.metadata_location
    )))
}

/// The states each operator declares (from the serialization proxies): name → kind.
fn declared_states(snapshot: &Snapshot) -> Result<HashMap<usize, BTreeMap<String, StateKind>>> {
    let mut out: HashMap<usize, BTreeMap<String, StateKind>> = HashMap::new();
    for (sub, infos) in snapshot_states(snapshot, &Selection::default())? {
        let m = out.entry(sub.operator).or_default();
        for i in infos {
            m.insert(i.name().to_owned(), i.kind);
        }
    }
    Ok(out)
}

/// The key serializer of keyed operator `index` (from its first subtask's proxy).
fn key_serializer(snapshot: &Snapshot, index: usize) -> Result<Option<TypeSerializer>> {
    let op = &snapshot.metadata.operators[index];
    for j in 0..op.subtasks.len() {
        if let Some(source) = KeyedSource::open(snapshot, SubtaskRef { operator: index, subtask: j }, &Selection::default())? {
            return Ok(Some(source.key_serializer().clone()));
        }
    }
    Ok(None)
}

fn has_raw_keyed_state(op: &OperatorState) -> bool {
    op.subtasks.iter().any(|s| s.state.as_ref().is_some_and(|s| s.raw_keyed_state.is_some()))
}

/// Why a key was not resolved: whether it does not fit the key type (skipped for `*`), and why.
type KeyMiss = (bool, Box<Error>);

/// The bytes and key group of `key` for operator `op` with key serializer `ser`; `Err((true, e))`
/// when the key does not fit the key type (skipped for operator `*`), `Err((false, e))` for a
/// hard error.
fn resolve_key(snapshot: &Snapshot, op: &OperatorState, ser: &TypeSerializer, key: &KeyInput) -> std::result::Result<(Vec<u8>, u32, serde_json::Value), KeyMiss> {
    let what = || format!("{}: operator {}", snapshot.metadata_location, op.operator_id);
    let value = match key {
        KeyInput::Json(j) => ser.value_from_json(j),
        KeyInput::Text(t) => match serde_json::from_str::<serde_json::Value>(t) {
            Ok(j) => ser.value_from_json(&j).or_else(|e| if j.is_string() { Err(e) } else { ser.value_from_json(&serde_json::Value::String(t.clone())) }),
            Err(_) => ser.value_from_json(&serde_json::Value::String(t.clone())),
        },
    }
    .map_err(|e| (true, Box::new(Error::Invalid(format!("{}: key {} does not fit the key type ({}): {e}", what(), key.shown(), ser.class_name())))))?;
    if matches!(value, crate::model::value::Value::Null) {
        return Err((true, Box::new(Error::Invalid(format!("{}: a key cannot be null", what())))));
    }
    let bytes = ser.encode_to_vec(&value).map_err(|e| (false, Box::new(Error::Invalid(format!("{}: key {}: {e}", what(), key.shown())))))?;
    let hash = key_hash_code(ser, &value, &bytes).ok_or_else(|| {
        (
            false,
            Box::new(Error::unsupported(
                format!(
                    "{}: cannot forget key {}: the Java hashCode() of keys of {} is not defined by their value, so their key group is \
                     not known (flinksnap computes it for Long, Integer, Short, Byte, Boolean, Double, Float, Character, String, \
                     Tuple/Row of these and SQL's BinaryRowData)",
                    what(),
                    key.shown(),
                    ser.opaque_class()
                ),
                Some(ser.opaque_class()),
            )),
        )
    })?;
    Ok((bytes, key_group_for_hash(hash, op.max_parallelism), value.to_json()))
}

impl Edits {
    /// Resolves `opts` against `snapshot`: every operator and state named must exist, renames
    /// must not collide, keys must fit their operator's key type and have a computable hash.
    pub(crate) fn resolve(snapshot: &Snapshot, opts: &EditOptions, report: &mut EditReport) -> Result<Edits> {
        let mut edits = Edits { operators: HashMap::new(), key_groups: opts.key_groups, imports: HashMap::new(), new_operators: Vec::new() };
        let ops = &snapshot.metadata.operators;
        let where_ = snapshot.metadata_location.as_str();
        let declared = if opts.drop_states.is_empty() && opts.drop_operators.is_empty() { HashMap::new() } else { declared_states(snapshot)? };
        for name in &opts.drop_operators {
            let i = find_operator(snapshot, name).ok_or_else(|| no_operator(snapshot, name))?;
            let op = &ops[i];
            let e = edits.operators.entry(op.operator_id).or_default();
            if e.drop {
                return Err(Error::Invalid(format!("{where_}: operator {name} is dropped twice")));
            }
            e.drop = true;
            report.dropped_operators.push(DroppedOperator {
                operator_id: op.operator_id,
                operator_uid: op.uid.clone().filter(|u| !u.is_empty()).or_else(|| name.parse::<OperatorId>().is_err().then(|| name.clone())),
                states: declared.get(&i).map(|m| m.keys().cloned().collect()).unwrap_or_default(),
            });
        }
        for spec in &opts.drop_states {
            let (i, state) = split_operator_state(snapshot, spec)?;
            let op = &ops[i];
            let kind = declared.get(&i).and_then(|m| m.get(&state)).copied().ok_or_else(|| {
                let known: Vec<&String> = declared.get(&i).map(|m| m.keys().collect()).unwrap_or_default();
                Error::Invalid(format!("{where_}: operator {} has no state {state:?} (it has {known:?})", op.operator_id))
            })?;
            let e = edits.operators.entry(op.operator_id).or_default();
            if e.drop {
                return Err(Error::Invalid(format!("{where_}: state {spec:?} of an operator that is dropped as a whole")));
            }
            if kind == StateKind::Timer && has_raw_keyed_state(op) {
                return Err(Error::unsupported(format!("{where_}: operator {}: timers kept in raw keyed state cannot be dropped one queue at a time", op.operator_id), None));
            }
            if e.drop_states.insert(state.clone()) {
                report.dropped_states.push(DroppedState { operator_id: op.operator_id, state, kind: kind.as_str() });
            }
        }
        // Renames: every source id at most once, every target id once, no collision with an
        // operator that stays under its own id.
        let mut targets: BTreeMap<OperatorId, String> = BTreeMap::new();
        for (old, new) in &opts.renames {
            let i = find_operator(snapshot, old).ok_or_else(|| no_operator(snapshot, old))?;
            let op = &ops[i];
            let (to_id, to_uid) = match new.parse::<OperatorId>() {
                Ok(id) => (id, None),
                Err(_) if new.is_empty() => return Err(Error::Invalid(format!("--rename-operator {old}=: the new uid is empty"))),
                Err(_) => (OperatorId::from_uid(new), Some(new.clone())),
            };
            let e = edits.operators.entry(op.operator_id).or_default();
            if e.drop {
                return Err(Error::Invalid(format!("{where_}: operator {old} is both renamed and dropped")));
            }
            if e.rename.is_some() {
                return Err(Error::Invalid(format!("{where_}: operator {old} is renamed twice")));
            }
            e.rename = Some((to_id, to_uid.clone()));
            if let Some(prev) = targets.insert(to_id, old.clone()) {
                return Err(Error::Invalid(format!("{where_}: operators {prev} and {old} are both renamed to {new} (id {to_id})")));
            }
            let from_uid = op.uid.clone().filter(|u| !u.is_empty()).or_else(|| (OperatorId::from_uid(old) == op.operator_id).then(|| old.clone()));
            report.renamed.push(Renamed { from_id: op.operator_id, from_uid, to_id, to_uid });
        }
        for (to, old) in &targets {
            // The target id is taken by an operator that keeps its id.
            if let Some(other) = ops.iter().find(|o| o.operator_id == *to) {
                let stays = edits.operators.get(&other.operator_id).is_none_or(|e| !e.drop && e.rename.is_none());
                if stays {
                    return Err(Error::Invalid(format!(
                        "{where_}: renaming {old} to {to} would collide with the operator already there (drop or rename it too)"
                    )));
                }
            }
        }
        // Keys.
        let mut key_sers: HashMap<usize, Option<TypeSerializer>> = HashMap::new();
        let mut key_ser = |i: usize| -> Result<Option<TypeSerializer>> {
            if let Some(s) = key_sers.get(&i) {
                return Ok(s.clone());
            }
            let s = key_serializer(snapshot, i)?;
            key_sers.insert(i, s.clone());
            Ok(s)
        };
        for fk in &opts.forget_keys {
            let (targets, state): (Vec<usize>, Option<String>) = if fk.target == "*" {
                ((0..ops.len()).collect(), None)
            } else if let Some(i) = find_operator(snapshot, &fk.target) {
                (vec![i], None)
            } else if fk.target.contains('/') {
                let (i, s) = split_operator_state(snapshot, &fk.target)?;
                (vec![i], Some(s))
            } else {
                return Err(no_operator(snapshot, &fk.target));
            };
            let everywhere = fk.target == "*";
            let mut matched = 0;
            for i in targets {
                let op = &ops[i];
                if edits.drops_operator(&op.operator_id) {
                    continue;
                }
                let Some(ser) = key_ser(i)? else {
                    if everywhere {
                        continue;
                    }
                    return Err(Error::Invalid(format!("{where_}: operator {} holds no keyed state", fk.target)));
                };
                if let Some(u) = ser.unknown() {
                    // Its keys come out as opaque bytes: which of them is the key asked for
                    // cannot be told, so keeping one silently is the only other outcome.
                    return Err(Error::unsupported(
                        format!(
                            "{where_}: operator {}: keys cannot be told apart, its key serializer is unknown (snapshot class {}); \
                             key {} cannot be forgotten",
                            op.uid.clone().filter(|u| !u.is_empty()).unwrap_or_else(|| op.operator_id.to_hex()),
                            u.class_name(),
                            fk.key.shown()
                        ),
                        Some(u.class_name()),
                    ));
                }
                if has_raw_keyed_state(op) {
                    return Err(Error::unsupported(
                        format!(
                            "{where_}: operator {} keeps state in raw keyed state (e.g. timers of a heap timer service on RocksDB), \
                             whose entries flinksnap cannot remove a key from",
                            op.operator_id
                        ),
                        None,
                    ));
                }
                let (bytes, kg, shown) = match resolve_key(snapshot, op, &ser, &fk.key) {
                    Ok(r) => r,
                    Err((true, _)) if everywhere => {
                        report.skipped_operators.push(format!("{} (keys of {}): key {} does not fit", op.uid.clone().unwrap_or_else(|| op.operator_id.to_hex()), ser.class_name(), fk.key.shown()));
                        continue;
                    }
                    Err((_, e)) => return Err(*e),
                };
                if let Some(s) = &state {
                    let declared = declared_states(snapshot)?;
                    if !declared.get(&i).is_some_and(|m| m.get(s).is_some_and(|k| k.is_keyed())) {
                        return Err(Error::Invalid(format!("{where_}: operator {} has no keyed state {s:?}", op.operator_id)));
                    }
                }
                matched += 1;
                report.forgotten_keys.push(ForgottenKey { operator_id: op.operator_id, state: state.clone(), key: shown, key_group: kg, entries_removed: 0 });
                let e = edits.operators.entry(op.operator_id).or_default();
                e.forget_key_groups.insert(kg);
                e.forget.entry((kg, bytes)).or_default().push(Forget { report: report.forgotten_keys.len() - 1, state: state.clone() });
            }
            if everywhere && matched == 0 {
                return Err(Error::Invalid(format!("{where_}: key {} fits the key type of no keyed operator", fk.key.shown())));
            }
        }
        Ok(edits)
    }

    /// Fills the report's counts.
    pub(crate) fn finish_report(&self, counts: Counts, report: &mut EditReport) {
        for ((operator_id, state), (kind, forgotten, filtered)) in counts.per_state {
            report.removed.push(Removed { operator_id, state, kind: kind.as_str(), forgotten, filtered });
        }
        for (i, n) in counts.per_key {
            if let Some(k) = report.forgotten_keys.get_mut(i) {
                k.entries_removed = n;
            }
        }
    }

    /// Counts what [`Edits::keep`] would leave out, reading only the operators it concerns.
    pub(crate) fn dry_run(&self, snapshot: &Snapshot) -> Result<Counts> {
        let mut counts = Counts::default();
        let mut operators: Vec<OperatorId> = self.operators.iter().filter(|(_, e)| !e.drop && (!e.forget.is_empty() || !e.drop_states.is_empty())).map(|(id, _)| *id).collect();
        // New operators have no entries of the snapshot to count.
        let imported: Vec<OperatorId> =
            self.imports.keys().filter(|id| !self.drops_operator(id) && !operators.contains(id) && !self.new_operators.iter().any(|n| n.operator_id == **id)).copied().collect();
        operators.extend(imported);
        if self.key_groups.is_some() {
            operators = crate::writers::savepoint::keyed_operators(snapshot).into_iter().filter(|id| !self.drops_operator(id)).collect();
        }
        if operators.is_empty() {
            return Ok(counts);
        }
        // Operator state is read only when an import replaces some (a full key-group range
        // leaves it out).
        let operator_state = self.imports.values().flatten().any(|i| !i.kind().is_keyed());
        let key_groups = (!operator_state).then(|| KeyGroupRange::new(0, u32::MAX));
        // `keep` reads names, key groups and stored bytes: the decoded values are not built.
        let selection = Selection { operators, states: Vec::new(), key_groups, raw: RawParts::All, values: ValueParts::Key };
        for e in SnapshotEntries::new(snapshot, selection) {
            let _ = self.keep(&e?, &mut counts);
        }
        Ok(counts)
    }
}

/// Edits the snapshot at `src` into a canonical savepoint `dst` (in a dry run, only reports).
pub fn edit(storage: Arc<dyn Storage>, src: &str, dst: Option<&str>, opts: &EditOptions) -> Result<EditReport> {
    let snapshot = Snapshot::open(storage.clone(), src)?;
    let mut report = EditReport {
        dry_run: opts.dry_run,
        renamed: Vec::new(),
        dropped_operators: Vec::new(),
        dropped_states: Vec::new(),
        forgotten_keys: Vec::new(),
        skipped_operators: Vec::new(),
        key_groups: opts.key_groups,
        removed: Vec::new(),
        written: None,
    };
    let edits = Edits::resolve(&snapshot, opts, &mut report)?;
    if opts.dry_run {
        let counts = edits.dry_run(&snapshot)?;
        edits.finish_report(counts, &mut report);
        return Ok(report);
    }
    let dst = dst.ok_or_else(|| Error::Invalid("edit: a target directory is needed (or --dry-run)".into()))?;
    let (written, counts) = write_savepoint(&snapshot, storage, dst, &opts.convert, &edits)?;
    edits.finish_report(counts, &mut report);
    report.written = Some(written);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::value::Value;
    use crate::model::{Entry, Origin, RawEntry};

    const OP: OperatorId = OperatorId([7; 16]);

    fn entry(kg: u32, raw: RawEntry) -> Entry {
        Entry {
            operator_id: OP,
            state: "s".into(),
            kind: StateKind::Value,
            key_group: Some(kg),
            key: None,
            namespace: None,
            user_key: None,
            value: Value::Null,
            ttl_timestamp: None,
            raw,
            origin: Origin::default(),
        }
    }

    /// StringSerializer's bytes of an ASCII string: length + 1, then one byte per char.
    fn string(s: &str) -> Vec<u8> {
        let mut b = vec![s.len() as u8 + 1];
        b.extend_from_slice(s.as_bytes());
        b
    }

    #[test]
    fn forgotten_keys_match_entries_whose_key_was_not_split_from_the_namespace() {
        let mut op = OperatorEdit::default();
        op.forget_key_groups.insert(5);
        op.forget.entry((5, string("k03"))).or_default().push(Forget { report: 0, state: None });
        let edits = Edits { operators: HashMap::from([(OP, op)]), key_groups: None, imports: HashMap::new(), new_operators: Vec::new() };
        let mut counts = Counts::default();
        // A namespace of a serializer flinksnap does not know: key and namespace stay together in
        // `stored_key`, `key` is empty.
        let ns = [0xCA, 0xFE, 0x00, 0x01];
        let unsplit = |key: &str| RawEntry { stored_key: Some([string(key), ns.to_vec()].concat()), ..Default::default() };
        assert!(!edits.keep(&entry(5, unsplit("k03")), &mut counts), "the key asked for, not split, is kept");
        // Split as usual.
        assert!(!edits.keep(&entry(5, RawEntry { key: string("k03"), namespace: ns.to_vec(), ..Default::default() }), &mut counts));
        // Other keys of the key group stay, also ones whose characters start alike ("k0" then a
        // namespace starting with '3' is not "k03": the lengths differ).
        assert!(edits.keep(&entry(5, unsplit("k0")), &mut counts));
        assert!(edits.keep(&entry(5, RawEntry { stored_key: Some([string("k0"), b"3".to_vec(), ns.to_vec()].concat()), ..Default::default() }), &mut counts));
        assert!(edits.keep(&entry(5, unsplit("k031")), &mut counts));
        // The same bytes in another key group are another key.
        assert!(edits.keep(&entry(6, unsplit("k03")), &mut counts));
        assert_eq!(counts.per_key.get(&0), Some(&2));
        assert_eq!(counts.per_state.get(&(OP, "s".to_owned())).map(|c| c.1), Some(2));
    }
}
