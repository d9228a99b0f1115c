//! `diff`: entries added, removed and changed between two snapshots, per operator and state.
//!
//! Approach (memory): operators are compared one at a time. Keyed state — every handle kind,
//! through each subtask's [`KeyedSource`] — is compared **one key group at a time**: both sides
//! read key group `k` from whichever subtask holds it, whatever the parallelism, so memory holds
//! one key group of one operator per side. Each side opens a subtask's source when its key groups
//! come up and closes it once they are past, so one RocksDB database per side is open at a time.
//!
//! Flink puts a key in key group `murmur(hashCode) % max parallelism`. With another max
//! parallelism on the other side, a key's key groups agree modulo the greatest common divisor `g`
//! of the two: the unit compared is then the key groups `≡ r (mod g)` of each side, for each `r`
//! (for 128 and 256: one key group of A with two of B). Only coprime max parallelisms make that
//! the whole operator. Operator (non-keyed) state is small by design and compared per operator.
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
use crate::metadata::handles::DistributionMode;
use crate::model::{Entry, KeyGroupRange, OperatorId, StateKind, SubtaskRef};
use crate::readers::operator::read_operator_state;
use crate::readers::source::{KeyedSource, Selection};
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
        let (ia, ib) = (operator_index(&sa, &id), operator_index(&sb, &id));
        d.operator_state(&sa, ia, &sb, ib, uid.as_deref())?;
        d.keyed_state(&sa, ia, &sb, ib, uid.as_deref())?;
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

fn operator_index(s: &Snapshot, id: &OperatorId) -> Option<usize> {
    s.metadata.operators.iter().position(|o| &o.operator_id == id)
}

/// One side's keyed state of one operator, read key group by key group: each subtask's source
/// opened when one of its key groups is first read, closed once its key groups are past.
struct KeyedSide<'a> {
    snapshot: &'a Snapshot,
    max_parallelism: u32,
    /// The subtasks with managed keyed state: their key groups and where they are.
    subtasks: Vec<(KeyGroupRange, SubtaskRef)>,
    /// Open sources by index into `subtasks`, with the key groups that may hold entries.
    open: BTreeMap<usize, (KeyedSource<'a>, std::collections::BTreeSet<u32>)>,
}

impl<'a> KeyedSide<'a> {
    fn new(snapshot: &'a Snapshot, op: Option<usize>) -> KeyedSide<'a> {
        let mut subtasks = Vec::new();
        let mut max_parallelism = 0;
        if let Some(i) = op {
            let o = &snapshot.metadata.operators[i];
            max_parallelism = o.max_parallelism;
            for (j, st) in o.subtasks.iter().enumerate() {
                if let Some(h) = st.state.as_ref().and_then(|s| s.managed_keyed_state.as_ref()) {
                    subtasks.push((h.key_group_range(), SubtaskRef { operator: i, subtask: j }));
                }
            }
        }
        KeyedSide { snapshot, max_parallelism, subtasks, open: BTreeMap::new() }
    }

    fn is_empty(&self) -> bool {
        self.subtasks.is_empty()
    }

    /// The entries of key group `kg`, from every subtask whose range holds it.
    fn read(&mut self, kg: u32, out: &mut Vec<Entry>) -> Result<()> {
        for i in 0..self.subtasks.len() {
            let (range, sub) = self.subtasks[i];
            if !range.contains(kg) {
                continue;
            }
            if !self.open.contains_key(&i) {
                let Some(mut source) = KeyedSource::open(self.snapshot, sub, &Selection::default())? else { continue };
                let kgs = source.key_groups()?.into_iter().collect();
                self.open.insert(i, (source, kgs));
            }
            let Some((source, kgs)) = self.open.get_mut(&i) else { continue };
            if kgs.contains(&kg) {
                for e in source.read_key_group(kg)? {
                    out.push(e?);
                }
            }
        }
        Ok(())
    }

    /// The entries of key groups `r`, `r + g`, `r + 2g`, … (`g` divides the max parallelism).
    fn read_unit(&mut self, r: u32, g: u32) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        if self.is_empty() {
            return Ok(out);
        }
        let mut kg = r;
        while kg < self.max_parallelism {
            self.read(kg, &mut out)?;
            kg += g;
        }
        // One key group per unit: the units go up, what is past stays past.
        if self.max_parallelism == g {
            self.close_before(r + 1);
        }
        Ok(out)
    }

    /// Closes the sources whose key groups all lie before `kg`.
    fn close_before(&mut self, kg: u32) {
        let subtasks = &self.subtasks;
        self.open.retain(|&i, _| subtasks[i].0.end_inclusive().is_some_and(|end| end >= kg));
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn operator_entries(s: &Snapshot, op: Option<usize>) -> Result<Vec<Entry>> {
    let Some(i) = op else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    let mut broadcast_seen = std::collections::BTreeSet::new();
    for (j, st) in s.metadata.operators[i].subtasks.iter().enumerate() {
        let Some(h) = st.state.as_ref().and_then(|x| x.managed_operator_state.as_ref()) else { continue };
        // Every subtask stores its own copy of broadcast state; the first copy is the state.
        let first: std::collections::BTreeSet<&str> = h
            .states
            .iter()
            .filter(|m| m.mode == DistributionMode::Broadcast && broadcast_seen.insert(m.name.clone()))
            .map(|m| m.name.as_str())
            .collect();
        let entries = read_operator_state(s, SubtaskRef { operator: i, subtask: j }, h)?;
        out.extend(entries.into_iter().filter(|e| e.kind != StateKind::Broadcast || first.contains(&*e.state)));
    }
    Ok(out)
}

impl Differ<'_, '_> {
    fn operator_state(&mut self, sa: &Snapshot, oa: Option<usize>, sb: &Snapshot, ob: Option<usize>, uid: Option<&str>) -> Result<()> {
        let (ea, eb) = (operator_entries(sa, oa)?, operator_entries(sb, ob)?);
        self.compare(ea, eb, uid)
    }

    /// Keyed state, one unit of key groups at a time (module documentation).
    fn keyed_state(&mut self, sa: &Snapshot, oa: Option<usize>, sb: &Snapshot, ob: Option<usize>, uid: Option<&str>) -> Result<()> {
        let (a, b) = (KeyedSide::new(sa, oa), KeyedSide::new(sb, ob));
        if a.is_empty() && b.is_empty() {
            return Ok(());
        }
        // A side without keyed state has nothing in any key group: the other side decides.
        let (ma, mb) = (if a.is_empty() { 0 } else { a.max_parallelism }, if b.is_empty() { 0 } else { b.max_parallelism });
        let g = gcd(ma, mb);
        let (mut a, mut b) = (a, b);
        for r in 0..g {
            let ea = a.read_unit(r, g)?;
            let eb = b.read_unit(r, g)?;
            if !ea.is_empty() || !eb.is_empty() {
                self.compare(ea, eb, uid)?;
            }
        }
        Ok(())
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
        let key = (e.operator_id, e.state.to_string());
        if !self.states.contains_key(&key) {
            self.order.push(key.clone());
        }
        self.states.entry(key).or_insert_with(|| StateDiff {
            operator_id: e.operator_id,
            operator_uid: uid.map(str::to_owned),
            state: e.state.to_string(),
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
            state: e.state.to_string(),
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
                let slot = by_id.entry((e.state.to_string(), id)).or_default();
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
