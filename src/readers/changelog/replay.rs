//! Replaying the logged changes of one key group on top of its materialized entries, as Flink's
//! restore does (`ChangelogBackendLogApplier`, the `*StateChangeApplier` classes): entries no
//! change touches pass straight through, the few that are touched are held, the key group's
//! changes applied to them in log order, and the results emitted, with the timers the changes
//! set.

use std::collections::{BTreeMap, HashSet, VecDeque};

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind, Error, Frame, Result, ResultExt, ValuePart};
use crate::model::value::Value;
use crate::model::{Entry, KeyGroupRange, OperatorId, Origin, RawEntry, StateKind};
use crate::readers::decode::{decode_exact, decode_span, decode_timer, decode_value, for_each_delimited, at_state};
use crate::readers::serializers::TypeSerializer;
use crate::readers::source::KeyGroupReader;

use super::changes::{op, Change, Log, LoggedState};

type R<T> = std::result::Result<T, DecodeError>;

/// A (state, key, namespace) as their serializers wrote them.
type Slot = (usize, Vec<u8>, Vec<u8>);

/// What a held slot holds, as stored bytes (decoded when emitted), with where each part was read
/// last (a materialized entry's origin, or the last change applied to it).
#[derive(Debug)]
enum Held {
    /// Value, reducing and aggregating state: the value serializer's bytes (TTL wrapper included).
    Single(Vec<u8>, Origin),
    /// List state: each element's bytes.
    List(Vec<Vec<u8>>, Origin),
    /// Map state: user-key bytes to the null flag followed by the value bytes.
    Map(BTreeMap<Vec<u8>, (Vec<u8>, Origin)>),
}

/// A change with its scope decoded.
#[derive(Debug)]
struct Scoped {
    slot: Slot,
    op: u8,
    /// The payload after the scope.
    payload: Vec<u8>,
    at: u64,
    /// What `at` counts.
    frame: Frame,
    source: usize,
    /// Where the change is, as entries changed by it record it.
    origin: Origin,
    /// MERGE_NS: the source namespaces.
    merge_sources: Vec<Vec<u8>>,
}

/// A materialized handle of the changelog handle: its key groups and its reader.
pub(super) type Materialized<'a> = (KeyGroupRange, Box<dyn KeyGroupReader + 'a>);

/// What the replay reads besides the materialized entries.
pub(super) struct Context<'r> {
    pub operator_id: OperatorId,
    pub key_serializer: &'r TypeSerializer,
    pub log: &'r Log,
    /// The subtask, for the origin of entries the log made.
    pub origin: Origin,
}

/// The replay of one key group ([`super::ChangelogReader`] drives it). Stops after an error.
#[derive(Debug)]
pub(super) struct Replay {
    kg: u32,
    /// The materialized readers started on this key group that still have entries.
    materialized: VecDeque<usize>,
    /// Timers the log set in this key group.
    new_timers: Vec<(usize, Vec<u8>)>,
    scoped: Vec<Scoped>,
    touched: HashSet<Slot>,
    held: BTreeMap<Slot, Held>,
    out: Option<std::vec::IntoIter<Entry>>,
    done: bool,
}

impl Replay {
    /// The replay of key group `kg`: `changes` are its data changes in log order, `new_timers`
    /// the timers set in it, `materialized` the readers already started on it.
    pub fn new(cx: &Context<'_>, kg: u32, changes: Vec<Change>, new_timers: Vec<(usize, Vec<u8>)>, materialized: VecDeque<usize>) -> Result<Replay> {
        let mut r = Replay {
            kg,
            materialized,
            new_timers,
            scoped: Vec::with_capacity(changes.len()),
            touched: HashSet::new(),
            held: BTreeMap::new(),
            out: None,
            done: false,
        };
        // Decode the scope (key, namespace) of every change and note the slots they touch.
        for ch in changes {
            let scoped = scope(cx, &ch).map_err(|e| change_error(cx, kg, ch.source, e))?;
            r.touched.insert(scoped.slot.clone());
            for ns in &scoped.merge_sources {
                r.touched.insert((scoped.slot.0, scoped.slot.1.clone(), ns.clone()));
            }
            r.scoped.push(scoped);
        }
        Ok(r)
    }

    /// The next entry of the key group: materialized entries no change touches, then the
    /// changed ones and the timers the log set.
    pub fn next(&mut self, cx: &Context<'_>, materialized: &mut [Materialized<'_>]) -> Option<Result<Entry>> {
        if self.done {
            return None;
        }
        match self.step(cx, materialized) {
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

    fn step(&mut self, cx: &Context<'_>, materialized: &mut [Materialized<'_>]) -> Result<Option<Entry>> {
        loop {
            if let Some(out) = &mut self.out {
                return Ok(out.next());
            }
            let next = self.materialized.front().map(|&i| materialized[i].1.next_entry());
            match next {
                Some(Some(e)) => {
                    let kg = self.kg;
                    let e = e?;
                    if let Some(err) = self.unsplittable(cx, &e) {
                        return Err(err);
                    }
                    let file = cx.log.sources.first().map_or("change log", |s| s.name.as_str()).to_owned();
                    let absorbed = self.absorb(cx, e).map_err(|e| Error::decode(format!("{file} (replaying on the materialized state)"), e.context(format!("materialized entry of key group {kg}"))))?;
                    if let Some(e) = absorbed {
                        return Ok(Some(e));
                    }
                }
                Some(None) => {
                    self.materialized.pop_front();
                }
                None => {
                    self.apply(cx)?;
                    let results = self.results(cx).map_err(|e| {
                        let source = cx.log.sources.first().map_or("change log", |s| s.name.as_str());
                        Error::decode(source, e.context(format!("changed entries of key group {}", self.kg)))
                    })?;
                    self.out = Some(results.into_iter());
                }
            }
        }
    }

    /// A materialized entry whose key and namespace are not split (the materialization's key or
    /// namespace serializer is one flinksnap cannot interpret) cannot be matched to the changes
    /// the log records for its state: the replay is refused, placed at the first such
    /// state-change record (its file and offset; RocksDB entries have no position of their own).
    fn unsplittable(&self, cx: &Context<'_>, e: &Entry) -> Option<Error> {
        if e.raw.stored_key.is_none() || e.kind == StateKind::Timer {
            return None;
        }
        let &state = cx.log.by_name.get(&*e.state)?;
        let ch = self.scoped.iter().find(|c| c.slot.0 == state)?;
        let kind = DecodeErrorKind::Unsupported {
            what: format!(
                "{} on state {:?} cannot be applied: the materialized state's key or namespace serializer is one flinksnap cannot interpret, so its entries cannot be matched to the change",
                op::name(ch.op),
                e.state
            ),
            class: None,
        };
        let err = match ch.origin.position {
            Some(p) => DecodeError::at(kind, p),
            None => DecodeError::unplaced(kind),
        };
        Some(change_error(cx, self.kg, ch.source, err))
    }

    /// Takes a materialized entry into the held slots when a change touches it; gives it back
    /// when it passes through unchanged, `None` when the changes decide about it.
    fn absorb(&mut self, cx: &Context<'_>, e: Entry) -> R<Option<Entry>> {
        let Some(&state) = cx.log.by_name.get(&*e.state) else { return Ok(Some(e)) };
        if e.kind == StateKind::Timer {
            let Value::Int(ts) = e.value else { return Ok(Some(e)) };
            let mut element = (ts ^ i64::MIN).to_be_bytes().to_vec();
            element.extend_from_slice(&e.raw.key);
            element.extend_from_slice(&e.raw.namespace);
            return Ok(if cx.log.timers.contains_key(&(state, element)) { None } else { Some(e) });
        }
        if e.raw.stored_key.is_some() {
            // Key and namespace not split; `unsplittable` refused the changes to such a state.
            return Ok(Some(e));
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
                        m.insert(uk, (e.raw.value, e.origin));
                    }
                    _ => return Err(at_state(&cx.log.states[state].meta, format!("map state {:?} held as another kind", e.state))),
                }
            }
            StateKind::List => {
                let elem = cx.log.states[state].value()?.list_element().ok_or_else(|| at_state(&cx.log.states[state].meta, format!("list state {:?} without a list serializer", e.state)))?;
                let mut items = Vec::new();
                for_each_delimited(elem, &mut Cursor::within(&e.raw.value, ValuePart::Value), |_, _, bytes| items.push(bytes.to_vec()))?;
                self.held.insert(slot, Held::List(items, e.origin));
            }
            _ => {
                self.held.insert(slot, Held::Single(e.raw.value, e.origin));
            }
        }
        Ok(None)
    }

    /// Applies the changes in log order (the `*StateChangeApplier` classes).
    fn apply(&mut self, cx: &Context<'_>) -> Result<()> {
        for ch in std::mem::take(&mut self.scoped) {
            let s = &cx.log.states[ch.slot.0];
            let what = format!("{} on state {:?}", op::name(ch.op), s.meta.name);
            apply_one(&cx.log.states, &mut self.held, &ch).context_with(|| what).map_err(|e| change_error(cx, self.kg, ch.source, e))?;
        }
        Ok(())
    }

    /// The held slots and the new timers, as entries.
    fn results(&mut self, cx: &Context<'_>) -> R<Vec<Entry>> {
        let mut out = Vec::new();
        let held = std::mem::take(&mut self.held);
        for ((state, key, ns), h) in held {
            let s = &cx.log.states[state];
            let kind = s.kind()?;
            let key_value = decode_exact(cx.key_serializer, &mut Cursor::within(&key, ValuePart::Key), "key")?;
            let ns_value = decode_exact(s.namespace()?, &mut Cursor::within(&ns, ValuePart::Key), "namespace")?;
            let entry = |user_key: Option<Value>, value: Value, ttl: Option<i64>, raw: RawEntry, origin: Origin| Entry {
                operator_id: cx.operator_id,
                state: s.meta.name.as_str().into(),
                kind,
                key_group: Some(self.kg),
                key: Some(key_value.clone()),
                namespace: Some(ns_value.clone()),
                user_key,
                value,
                ttl_timestamp: ttl,
                raw,
                origin,
            };
            match h {
                Held::Single(v, origin) => {
                    let mut c = Cursor::within(&v, ValuePart::Value);
                    let (value, ttl) = decode_value(s.value()?, &mut c)?;
                    c.expect_end("value")?;
                    out.push(entry(None, value, ttl, RawEntry { key: key.clone(), namespace: ns.clone(), user_key: None, value: v, stored_key: None }, origin));
                }
                Held::List(items, origin) => {
                    if items.is_empty() {
                        continue;
                    }
                    let elem = s.value()?.list_element().ok_or_else(|| at_state(&s.meta, "list state without a list serializer".into()))?;
                    let mut values = Vec::with_capacity(items.len());
                    let mut raw = Vec::new();
                    let mut ttl = None;
                    for (i, item) in items.iter().enumerate() {
                        let mut c = Cursor::within(item, ValuePart::Value);
                        let (v, t) = decode_value(elem, &mut c)?;
                        c.expect_end("list element")?;
                        values.push(v);
                        ttl = ttl.max(t);
                        if i > 0 {
                            raw.push(crate::consts::LIST_DELIMITER);
                        }
                        raw.extend_from_slice(item);
                    }
                    out.push(entry(None, Value::List(values), ttl, RawEntry { key: key.clone(), namespace: ns.clone(), user_key: None, value: raw, stored_key: None }, origin));
                }
                Held::Map(m) => {
                    let (uk_ser, uv_ser) = s.value()?.map_key_value().ok_or_else(|| at_state(&s.meta, "map state without a map serializer".into()))?;
                    for (uk, (v, origin)) in m {
                        let user_key = decode_exact(uk_ser, &mut Cursor::within(&uk, ValuePart::Key), "user key")?;
                        let mut c = Cursor::within(&v, ValuePart::Value);
                        let (value, ttl) = if c.bool("map value null flag")? { (Value::Null, None) } else { decode_value(uv_ser, &mut c)? };
                        c.expect_end("map value")?;
                        out.push(entry(Some(user_key), value, ttl, RawEntry { key: key.clone(), namespace: ns.clone(), user_key: Some(uk), value: v, stored_key: None }, origin));
                    }
                }
            }
        }
        for (state, element) in std::mem::take(&mut self.new_timers) {
            let s = &cx.log.states[state];
            let mut c = Cursor::within(&element, ValuePart::Change);
            let (timestamp, key, namespace, key_bytes, ns_bytes) = decode_timer(s.value()?, &mut c)?;
            out.push(Entry {
                operator_id: cx.operator_id,
                state: s.meta.name.as_str().into(),
                kind: StateKind::Timer,
                key_group: Some(self.kg),
                key: Some(key),
                namespace: Some(namespace),
                user_key: None,
                value: Value::Int(timestamp),
                ttl_timestamp: None,
                raw: RawEntry { key: key_bytes.to_vec(), namespace: ns_bytes.to_vec(), user_key: None, value: Vec::new(), stored_key: None },
                origin: cx.origin,
            });
        }
        Ok(out)
    }
}

fn change_error(cx: &Context<'_>, kg: u32, source: usize, e: DecodeError) -> Error {
    Error::decode(&cx.log.sources[source].name, e.context(format!("state change of key group {kg}")))
}

/// Decodes the scope (key, namespace; the merged namespaces of MERGE_NS) of a change.
fn scope(cx: &Context<'_>, ch: &Change) -> R<Scoped> {
    let s = &cx.log.states[ch.state];
    let source = &cx.log.sources[ch.source];
    let mut c = Cursor::in_frame(&ch.data, source.frame, ch.at);
    let (_, key) = decode_span(cx.key_serializer, &mut c).context_with(|| format!("key of {} on state {:?}", op::name(ch.op), s.meta.name))?;
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
    // The change (its operation byte and state id precede `data`) as entries record it.
    let origin = Origin { stream: source.stream, position: source.frame.position(ch.at.saturating_sub(3)), ..cx.origin };
    Ok(Scoped { slot: (ch.state, key, ns), op: ch.op, payload: c.rest().to_vec(), at, frame: source.frame, source: ch.source, origin, merge_sources })
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
    let mut c = Cursor::in_frame(&ch.payload, ch.frame, ch.at);
    let unsupported = |c: &Cursor<'_>| c.error_at(DecodeErrorKind::Invalid(format!("operation {} on {} state", op::name(ch.op), kind.as_str())), ch.at);
    let origin = ch.origin;
    if ch.op == op::CLEAR {
        held.remove(&ch.slot);
        return c.expect_end("CLEAR change");
    }
    match kind {
        StateKind::Value | StateKind::Reducing | StateKind::Aggregating => match ch.op {
            op::SET | op::SET_INTERNAL => {
                let at = c.position();
                decode_value(s.value()?, &mut c)?;
                held.insert(ch.slot.clone(), Held::Single(c.consumed_since(at).to_vec(), origin));
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
                        DecodeErrorKind::Unsupported {
                            what: format!(
                                "merging {} namespaces of {} state needs the job's {} function",
                                values.len(),
                                kind.as_str(),
                                if kind == StateKind::Reducing { "reduce" } else { "aggregate" }
                            ),
                            class: None,
                        },
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
                        held.insert(ch.slot.clone(), Held::List(items, origin));
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
                        match held.entry(ch.slot.clone()).or_insert_with(|| Held::List(Vec::new(), origin)) {
                            Held::List(l, o) => {
                                l.extend(items);
                                *o = origin;
                            }
                            _ => return Err(unsupported(&c)),
                        }
                    }
                }
                op::MERGE_NS => {
                    // `AbstractHeapMergingState.mergeNamespaces`: the target's list, then each
                    // source's in order.
                    let mut merged: Vec<Vec<u8>> = Vec::new();
                    for ns in &ch.merge_sources {
                        if let Some(Held::List(l, _)) = held.remove(&(ch.slot.0, ch.slot.1.clone(), ns.clone())) {
                            merged.extend(l);
                        }
                    }
                    if !merged.is_empty() {
                        match held.entry(ch.slot.clone()).or_insert_with(|| Held::List(Vec::new(), origin)) {
                            Held::List(l, o) => {
                                l.extend(merged);
                                *o = origin;
                            }
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
                        map.insert(uk, (c.consumed_since(at).to_vec(), origin));
                    }
                }
                // key, then value (never null: a null value is logged as ADD)
                op::ADD_ELEMENT | op::ADD_OR_UPDATE_ELEMENT => {
                    let (_, uk) = decode_span(uk_ser, &mut c)?;
                    let at = c.position();
                    decode_value(uv_ser, &mut c)?;
                    let mut v = vec![0u8];
                    v.extend_from_slice(c.consumed_since(at));
                    map.insert(uk, (v, origin));
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
