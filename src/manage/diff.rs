//! `diff`: entries added, removed and changed between two snapshots, per operator and state.
//!
//! Approach (memory): operators are compared one at a time. Keyed state of key-grouped handles
//! (heap checkpoints, canonical savepoints) is compared **one key group at a time**: both sides
//! open their handles' readers and read key group `k` from whichever subtask holds it, whatever
//! the parallelism, so memory holds one key group of one operator per side. This needs the same
//! max parallelism on both sides (otherwise a key lies in different key groups); when it differs,
//! or for handles read through the snapshot-wide entry iterator (RocksDB native, once its reader
//! lands), the operator's keyed entries are compared as one unit held in memory. Operator
//! (non-keyed) state is small by design and compared per operator.
//!
//! Entries match on their identity, by decoded value so that snapshots of different formats
//! (heap, canonical, RocksDB) compare equal when their contents are:
//! - keyed value, list, reducing, aggregating state: (key, namespace);
//! - map and broadcast state: (key, namespace, map key);
//! - timers: (key, namespace, timestamp): a moved timer is one removed and one added;
//! - operator list and union state: the element (a multiset).
//!
//! A matched entry whose value (or TTL timestamp, unless ignored) differs is *changed*.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value as Json};

use crate::error::Result;
use crate::metadata::handles::{DistributionMode, KeyedStateHandle};
use crate::metadata::OperatorState;
use crate::model::{Entry, KeyGroupRange, OperatorId, StateKind};
use crate::readers::entries::{Selection, SnapshotEntries};
use crate::readers::keyed::KeyedHandleReader;
use crate::readers::operator::read_operator_state;
use crate::snapshot::Snapshot;
use crate::storage::Storage;

/// How to compare.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// Ignore TTL last-access timestamps (they change on every access).
    pub ignore_ttl: bool,
    /// Differing entries kept as examples per state.
    pub examples: usize,
    /// Operator uids of the job, for snapshots that store none (before 2.0).
    pub uids: Vec<String>,
}

/// What happened to an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Only in B.
    Added,
    /// Only in A.
    Removed,
    /// In both, with another value.
    Changed,
}

/// One differing entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryDiff {
    /// What happened.
    pub change: Change,
    /// Operator id.
    pub operator_id: OperatorId,
    /// Its uid, where known.
    pub operator_uid: Option<String>,
    /// State name.
    pub state: String,
    /// Kind.
    pub kind: StateKind,
    /// Key group.
    pub key_group: Option<u32>,
    /// Key.
    pub key: Json,
    /// Namespace.
    pub namespace: Json,
    /// Map key (map and broadcast state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_key: Option<Json>,
    /// The entry in A: `{"value", "ttl_timestamp"}`; null when added.
    pub a: Json,
    /// The entry in B; null when removed.
    pub b: Json,
}

/// Counts for one state of one operator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateDiff {
    /// Operator id.
    pub operator_id: OperatorId,
    /// Its uid, where known.
    pub operator_uid: Option<String>,
    /// State name.
    pub state: String,
    /// Kind.
    pub kind: StateKind,
    /// Entries only in B.
    pub added: u64,
    /// Entries only in A.
    pub removed: u64,
    /// Entries in both with another value.
    pub changed: u64,
    /// Entries equal in both.
    pub unchanged: u64,
    /// Some differing entries.
    pub examples: Vec<EntryDiff>,
}

/// An operator in only one of the snapshots, or with another parallelism.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorDiff {
    /// Operator id.
    pub operator_id: OperatorId,
    /// Its uid, where known.
    pub operator_uid: Option<String>,
    /// `a` or `b` when only there; `null` when in both.
    pub only_in: Option<&'static str>,
    /// Parallelism in A and B.
    pub parallelism: (Option<u32>, Option<u32>),
    /// Max parallelism in A and B.
    pub max_parallelism: (Option<u32>, Option<u32>),
}

/// Totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiffTotals {
    /// Entries only in B.
    pub added: u64,
    /// Entries only in A.
    pub removed: u64,
    /// Entries in both with another value.
    pub changed: u64,
    /// Entries equal in both.
    pub unchanged: u64,
}

/// The result of `diff`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffReport {
    /// Snapshot A.
    pub a: String,
    /// Snapshot B.
    pub b: String,
    /// Whether they differ: an entry added, removed or changed, or an operator in only one.
    pub different: bool,
    /// Operators in only one snapshot, or with another (max) parallelism.
    pub operators: Vec<OperatorDiff>,
    /// Per operator and state, in A's operator order then B's, states by name.
    pub states: Vec<StateDiff>,
    /// Totals.
    pub totals: DiffTotals,
}

/// Compares snapshots `a` and `b`; every differing entry is also handed to `sink` as found
/// (for streaming output).
pub fn diff(
    storage: Arc<dyn Storage>,
    a: &str,
    b: &str,
    opts: &DiffOptions,
    sink: &mut dyn FnMut(&EntryDiff) -> Result<()>,
) -> Result<DiffReport> {
    let sa = Snapshot::open(storage.clone(), a)?;
    let sb = Snapshot::open(storage, b)?;
    let mut ids: Vec<OperatorId> = sa.metadata.operators.iter().map(|o| o.operator_id).collect();
    for o in &sb.metadata.operators {
        if !ids.contains(&o.operator_id) {
            ids.push(o.operator_id);
        }
    }
    let mut d = Differ { opts, states: BTreeMap::new(), order: Vec::new(), sink };
    let mut operators = Vec::new();
    for &id in &ids {
        let (oa, ob) = (sa.operator(&id), sb.operator(&id));
        let uid = super::operator_uid(&sa, &id, &opts.uids).or_else(|| super::operator_uid(&sb, &id, &opts.uids));
        let od = OperatorDiff {
            operator_id: id,
            operator_uid: uid.clone(),
            only_in: match (oa, ob) {
                (Some(_), None) => Some("a"),
                (None, Some(_)) => Some("b"),
                _ => None,
            },
            parallelism: (oa.map(|o| o.parallelism), ob.map(|o| o.parallelism)),
            max_parallelism: (oa.map(|o| o.max_parallelism), ob.map(|o| o.max_parallelism)),
        };
        if od.only_in.is_some() || od.parallelism.0 != od.parallelism.1 || od.max_parallelism.0 != od.max_parallelism.1 {
            operators.push(od);
        }
        d.operator_state(&sa, oa, &sb, ob, uid.as_deref())?;
        d.keyed_state(&sa, oa, &sb, ob, uid.as_deref())?;
    }
    let mut totals = DiffTotals::default();
    let mut states = Vec::new();
    // Operators in the order compared, states by name within each.
    let position: BTreeMap<OperatorId, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    d.order.sort_by(|x, y| (position.get(&x.0), &x.1).cmp(&(position.get(&y.0), &y.1)));
    for key in &d.order {
        if let Some(s) = d.states.remove(key) {
            totals.added += s.added;
            totals.removed += s.removed;
            totals.changed += s.changed;
            totals.unchanged += s.unchanged;
            states.push(s);
        }
    }
    let different = totals.added + totals.removed + totals.changed > 0 || operators.iter().any(|o| o.only_in.is_some());
    Ok(DiffReport { a: sa.dir.to_string(), b: sb.dir.to_string(), different, operators, states, totals })
}

struct Differ<'o, 's> {
    opts: &'o DiffOptions,
    states: BTreeMap<(OperatorId, String), StateDiff>,
    order: Vec<(OperatorId, String)>,
    sink: &'s mut dyn FnMut(&EntryDiff) -> Result<()>,
}

/// Every managed keyed handle of an operator, by subtask.
fn keyed_handles(op: Option<&OperatorState>) -> Vec<&KeyedStateHandle> {
    op.map(|o| o.subtasks.iter().filter_map(|st| st.state.as_ref()?.managed_keyed_state.as_ref()).collect()).unwrap_or_default()
}

fn opened(s: &Snapshot, op: Option<&OperatorState>) -> Result<Vec<(KeyGroupRange, KeyedHandleReader)>> {
    let Some(op) = op else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for h in keyed_handles(Some(op)) {
        if let KeyedStateHandle::KeyGroups(k) = h {
            out.push((k.key_group_range, KeyedHandleReader::open(s, op.operator_id, op.max_parallelism, k)?));
        }
    }
    Ok(out)
}

fn read_kg(readers: &[(KeyGroupRange, KeyedHandleReader)], kg: u32) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for (r, reader) in readers {
        if r.contains(kg) {
            out.extend(reader.read_key_group(kg)?);
        }
    }
    Ok(out)
}

fn all_keyed(s: &Snapshot, op: Option<&OperatorState>) -> Result<Vec<Entry>> {
    let Some(op) = op else { return Ok(Vec::new()) };
    if keyed_handles(Some(op)).is_empty() {
        return Ok(Vec::new());
    }
    let sel = Selection { operators: vec![op.operator_id], states: Vec::new(), key_groups: Some(KeyGroupRange::new(0, op.max_parallelism)) };
    SnapshotEntries::new(s, sel).collect()
}

fn operator_entries(s: &Snapshot, op: Option<&OperatorState>) -> Result<Vec<Entry>> {
    let Some(op) = op else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    let mut broadcast_seen = std::collections::BTreeSet::new();
    for st in &op.subtasks {
        let Some(h) = st.state.as_ref().and_then(|x| x.managed_operator_state.as_ref()) else { continue };
        // Every subtask stores its own copy of broadcast state; the first copy is the state.
        let first: std::collections::BTreeSet<&str> = h
            .states
            .iter()
            .filter(|m| m.mode == DistributionMode::Broadcast && broadcast_seen.insert(m.name.clone()))
            .map(|m| m.name.as_str())
            .collect();
        out.extend(read_operator_state(s, op.operator_id, h)?.into_iter().filter(|e| e.kind != StateKind::Broadcast || first.contains(e.state.as_str())));
    }
    Ok(out)
}

impl Differ<'_, '_> {
    fn operator_state(&mut self, sa: &Snapshot, oa: Option<&OperatorState>, sb: &Snapshot, ob: Option<&OperatorState>, uid: Option<&str>) -> Result<()> {
        let (ea, eb) = (operator_entries(sa, oa)?, operator_entries(sb, ob)?);
        self.compare(ea, eb, uid)
    }

    fn keyed_state(&mut self, sa: &Snapshot, oa: Option<&OperatorState>, sb: &Snapshot, ob: Option<&OperatorState>, uid: Option<&str>) -> Result<()> {
        let (ha, hb) = (keyed_handles(oa), keyed_handles(ob));
        if ha.is_empty() && hb.is_empty() {
            return Ok(());
        }
        let key_grouped = ha.iter().chain(&hb).all(|h| matches!(h, KeyedStateHandle::KeyGroups(_)));
        let max = |o: Option<&OperatorState>| o.map(|o| o.max_parallelism);
        let same_max = match (max(oa), max(ob)) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        };
        if key_grouped && same_max {
            let (ra, rb) = (opened(sa, oa)?, opened(sb, ob)?);
            let max_parallelism = max(oa).or(max(ob)).unwrap_or(0);
            for kg in 0..max_parallelism {
                let (ea, eb) = (read_kg(&ra, kg)?, read_kg(&rb, kg)?);
                if !ea.is_empty() || !eb.is_empty() {
                    self.compare(ea, eb, uid)?;
                }
            }
            return Ok(());
        }
        let (ea, eb) = (all_keyed(sa, oa)?, all_keyed(sb, ob)?);
        self.compare(ea, eb, uid)
    }

    /// (identity, value) of an entry, as compact JSON strings.
    fn identity(&self, e: &Entry) -> (String, String) {
        let j = |v: &Option<crate::model::value::Value>| v.as_ref().map_or(Json::Null, |v| v.to_json());
        let value = || {
            let ttl = if self.opts.ignore_ttl { None } else { e.ttl_timestamp };
            json!([e.value.to_json(), ttl]).to_string()
        };
        match e.kind {
            StateKind::Timer => (json!([j(&e.key), j(&e.namespace), e.value.to_json()]).to_string(), String::new()),
            StateKind::OperatorList | StateKind::OperatorUnion => (e.value.to_json().to_string(), String::new()),
            StateKind::Map | StateKind::Broadcast => (json!([j(&e.key), j(&e.namespace), j(&e.user_key)]).to_string(), value()),
            _ => (json!([j(&e.key), j(&e.namespace)]).to_string(), value()),
        }
    }

    fn state(&mut self, e: &Entry, uid: Option<&str>) -> &mut StateDiff {
        let key = (e.operator_id, e.state.clone());
        if !self.states.contains_key(&key) {
            self.order.push(key.clone());
        }
        self.states.entry(key).or_insert_with(|| StateDiff {
            operator_id: e.operator_id,
            operator_uid: uid.map(str::to_owned),
            state: e.state.clone(),
            kind: e.kind,
            added: 0,
            removed: 0,
            changed: 0,
            unchanged: 0,
            examples: Vec::new(),
        })
    }

    fn report(&mut self, change: Change, a: Option<&Entry>, b: Option<&Entry>, uid: Option<&str>) -> Result<()> {
        let Some(e) = a.or(b) else { return Ok(()) };
        let side = |x: Option<&Entry>| x.map_or(Json::Null, |x| json!({ "value": x.value.to_json(), "ttl_timestamp": x.ttl_timestamp }));
        let d = EntryDiff {
            change,
            operator_id: e.operator_id,
            operator_uid: uid.map(str::to_owned),
            state: e.state.clone(),
            kind: e.kind,
            key_group: e.key_group,
            key: e.key.as_ref().map_or(Json::Null, |k| k.to_json()),
            namespace: e.namespace.as_ref().map_or(Json::Null, |k| k.to_json()),
            user_key: matches!(e.kind, StateKind::Map | StateKind::Broadcast).then(|| e.user_key.as_ref().map_or(Json::Null, |k| k.to_json())),
            a: side(a),
            b: side(b),
        };
        (self.sink)(&d)?;
        let examples = self.opts.examples;
        let s = self.state(e, uid);
        match change {
            Change::Added => s.added += 1,
            Change::Removed => s.removed += 1,
            Change::Changed => s.changed += 1,
        }
        if s.examples.len() < examples {
            s.examples.push(d);
        }
        Ok(())
    }

    /// Compares one unit (a key group, or an operator's state) of both sides.
    fn compare(&mut self, a: Vec<Entry>, b: Vec<Entry>, uid: Option<&str>) -> Result<()> {
        type Side = Vec<(String, Entry)>;
        let mut by_id: BTreeMap<(String, String), (Side, Side)> = BTreeMap::new();
        for (side, list) in [(0, a), (1, b)] {
            for e in list {
                let (id, value) = self.identity(&e);
                let slot = by_id.entry((e.state.clone(), id)).or_default();
                if side == 0 {
                    slot.0.push((value, e));
                } else {
                    slot.1.push((value, e));
                }
            }
        }
        for (_, (mut xs, mut ys)) in by_id {
            // Equal values pair up first (multisets); what remains pairs as changed, the rest
            // was added or removed.
            let mut i = 0;
            while i < xs.len() {
                if let Some(j) = ys.iter().position(|y| y.0 == xs[i].0) {
                    let (_, e) = xs.swap_remove(i);
                    ys.swap_remove(j);
                    self.state(&e, uid).unchanged += 1;
                } else {
                    i += 1;
                }
            }
            let paired = xs.len().min(ys.len());
            for k in 0..paired {
                self.report(Change::Changed, Some(&xs[k].1), Some(&ys[k].1), uid)?;
            }
            for x in &xs[paired..] {
                self.report(Change::Removed, Some(&x.1), None, uid)?;
            }
            for y in &ys[paired..] {
                self.report(Change::Added, None, Some(&y.1), uid)?;
            }
        }
        Ok(())
    }
}
