//! Heap checkpoint key groups with values of a serializer flinksnap cannot interpret (an unknown
//! snapshot class, Kryo, a user `Value` type…). The heap format stores no lengths: a key group is
//! per state `i16` state id, `i32` count and that many (namespace, key, value) entries, back to
//! back. Where such a value ends is not written, but everything around it is known: the next
//! entry's namespace and key (whose Java hash must map to this key group), the next state's
//! section header, the key group's end (its offset is in the handle).
//!
//! So the rest of the key group is parsed every way the bytes allow — each undecodable part may
//! end at any position where what follows it parses — and the complete parses (to the key
//! group's exact end) are counted. The true layout is always among them. A stored entry that
//! every complete parse reads with the same extent is a fact, and comes out (the undecodable
//! parts opaque, `{"class", "hex"}`); one that different parses read differently is not read,
//! and reported. With no complete parse, or past the search's budget, nothing is assumed: the
//! rest of the key group is reported as not decoded. Spec: `formats/heap-checkpoint.md` §
//! Values without a length.

use std::collections::HashMap;

use crate::bytes::Cursor;
use crate::consts::LIST_DELIMITER;
use crate::error::Frame;
use crate::model::value::Value;
use crate::model::{Entry, RawEntry, StateKind};
use crate::readers::serializers::{key_group_for_hash, key_hash_code, SerializerKind, SimpleType, TypeSerializer};

use super::decoder::KeyedDecoder;
use super::stream::Progress;

/// Work per key group at most, in steps: a parse state visited; an end tried for an undecodable
/// part (one step, and one more per 64 bytes the part would hold where what follows the end
/// parses, as those bytes are then decoded and copied); a way of reading
/// an entry's map entries or list elements extended (one step per element, as it is copied). A
/// bound on parse states alone let the ways of reading one entry multiply inside a single parse
/// state, and let a large key group re-decode its tail for every end tried (quadratic in its
/// size). The real fixtures' key groups take at most ~25,000 steps.
const MAX_WORK: usize = 2_000_000;

/// Steps to try `pos..end` as one undecodable part ([`MAX_WORK`]).
fn part_cost(pos: usize, end: usize) -> usize {
    1 + (end - pos) / 64
}
/// Ways one stored entry may be read, at most, before the key group is given up.
const MAX_ALTERNATIVES: usize = 256;

/// Where the parse of a key group stands (a stored-entry boundary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Node {
    /// The next state section's header, `left` sections to go.
    Header { left: usize, seen: u64 },
    /// Entry `i` of `n` of state `state`'s section.
    Entries { state: usize, i: usize, n: usize, left: usize, seen: u64 },
}

/// One way to read a stored entry: where it ends and its entries (positions relative to the
/// data).
#[derive(Debug, Clone)]
struct Alt {
    end: usize,
    entries: Vec<(usize, Entry)>,
}

/// The outcome of [`resync`].
#[derive(Debug)]
pub(super) enum Resynced {
    /// The entries every layout the bytes allow reads alike, with where each starts (relative to
    /// the data); `uncertain`: the state of each stored entry the layouts read differently (not
    /// returned).
    Entries { entries: Vec<(usize, Entry)>, uncertain: Vec<usize> },
    /// No layout is certain. `state`: the state whose section the first undecodable value is in
    /// (with its entry count, when its header was read).
    Unknown { state: Option<usize>, entries: Option<u64>, why: &'static str },
}

/// Reads the rest of a heap key group, `data` (from where `start` stands to the key group's end),
/// as the one layout the bytes allow, if there is one.
pub(super) fn resync(dec: &KeyedDecoder, kg: u32, data: &[u8], start: Progress) -> Resynced {
    let root = match start {
        Progress::Heap { states_left } => Node::Header { left: states_left, seen: 0 },
        Progress::HeapEntries { state, i, n, states_left } => Node::Entries { state, i, n, left: states_left, seen: bit(state) },
        _ => return Resynced::Unknown { state: None, entries: None, why: "not in a heap checkpoint key group" },
    };
    let mut p = Parser { dec, kg, data, starts: HashMap::new(), start_lists: HashMap::new(), headers: None, work: 0 };
    // The state whose value could not be delimited: the section being read, or the one whose
    // header is next.
    // A section read to its end (the step failed on the next section's first value) is not it:
    // the next header names the state.
    let first_state = match root {
        Node::Entries { state, i, n, .. } if i < n => Some((state, Some(n as u64))),
        Node::Entries { .. } | Node::Header { .. } => p.header_at(0).map(|(s, n)| (s, Some(n as u64))),
    };
    let unknown = |why| Resynced::Unknown { state: first_state.map(|s| s.0), entries: first_state.and_then(|s| s.1), why };
    match p.solve(root) {
        Err(()) => unknown("the bytes allow too many ways to read it"),
        Ok(None) => unknown("the bytes allow no way to read it to the key group's end"),
        Ok(Some(Solved { certain, uncertain })) => Resynced::Entries { entries: certain, uncertain },
    }
}

struct Parser<'a> {
    dec: &'a KeyedDecoder,
    kg: u32,
    data: &'a [u8],
    /// Whether an entry of a state may start at a position (memo).
    starts: HashMap<(usize, usize), bool>,
    /// Every position an entry of a state may start at, ascending (computed on first need).
    start_lists: HashMap<usize, Vec<usize>>,
    /// Every position a section header may be at, ascending (computed on first need).
    headers: Option<Vec<usize>>,
    /// Work done so far ([`MAX_WORK`]).
    work: usize,
}

/// One way on from a parse state: where it ends, the state there, the entries read on the way
/// (with where each starts), and the number of complete parses from there.
type Step = (usize, Node, Vec<(usize, Entry)>, u64);

/// A way on from a parse state: where it ends, the next state, the entries it reads.
type Way = (usize, Node, Vec<(usize, Entry)>);

/// A frame of the depth-first count.
struct Frame_ {
    pos: usize,
    node: Node,
    alts: Vec<Way>,
    k: usize,
    /// Complete parses from here (saturating).
    total: u64,
    /// The alternatives that lead to a complete parse, with their counts.
    live: Vec<Step>,
}

/// Per parse state reached: complete parses from it, and its ways on that lead to one.
type Memo = HashMap<(usize, Node), (u64, Vec<Step>)>;

/// What [`Parser::solve`] found: the entries every complete parse reads the same way (with where
/// each starts), and per stored entry read differently by different parses its state.
struct Solved {
    certain: Vec<(usize, Entry)>,
    uncertain: Vec<usize>,
}

impl<'a> Parser<'a> {
    /// Counts `steps` of work; `Err` past [`MAX_WORK`].
    fn spend(&mut self, steps: usize) -> Result<(), ()> {
        self.work = self.work.saturating_add(steps);
        if self.work > MAX_WORK {
            return Err(());
        }
        Ok(())
    }

    fn cursor(&self, pos: usize) -> Cursor<'a> {
        Cursor::in_frame(&self.data[pos..], Frame::Unplaced, pos as u64)
    }

    /// Counts the complete parses from the root, depth first with an explicit stack (memoised
    /// per parse state), then keeps what they agree on: a stored entry is certain when every
    /// complete parse reads it with the same extent (the parses through its step are all of
    /// them). `None` without any complete parse.
    fn solve(&mut self, root: Node) -> Result<Option<Solved>, ()> {
        let mut memo: Memo = HashMap::new();
        let mut stack = vec![self.frame(0, root)?];
        while let Some(top) = stack.last_mut() {
            if top.k < top.alts.len() {
                let (end, next) = (top.alts[top.k].0, top.alts[top.k].1);
                if let Some((c, _)) = memo.get(&(end, next)) {
                    let c = *c;
                    if let Some(top) = stack.last_mut() {
                        add(top, c);
                    }
                    continue;
                }
                let f = self.frame(end, next)?;
                stack.push(f);
                continue;
            }
            let Some(done) = stack.pop() else { break };
            let total = done.total;
            memo.insert((done.pos, done.node), (total, done.live));
            if let Some(parent) = stack.last_mut() {
                add(parent, total);
            }
        }
        let total = memo.get(&(0, root)).map_or(0, |m| m.0);
        if total == 0 {
            return Ok(None);
        }
        // Parses from the root to each state (steps only lengthen the parse or move from a
        // section's last entry to the next header at the same place: (position, entries
        // before headers) is an order in which every step goes forward).
        let mut order: Vec<(usize, Node)> = memo.iter().filter(|(_, m)| m.0 > 0).map(|(k, _)| *k).collect();
        order.sort_by_key(|&(pos, node)| (pos, matches!(node, Node::Header { .. })));
        let mut prefix: HashMap<(usize, Node), u64> = HashMap::new();
        prefix.insert((0, root), 1);
        for at in &order {
            let Some(&p) = prefix.get(at) else { continue };
            for (end, next, _, _) in &memo[at].1 {
                let e = prefix.entry((*end, *next)).or_insert(0);
                *e = e.saturating_add(p);
            }
        }
        // Walk one complete parse (the first way at each state): its steps through which every
        // parse goes give their entries; the others are uncertain.
        let mut out = Solved { certain: Vec::new(), uncertain: Vec::new() };
        let (mut pos, mut node) = (0, root);
        while let Some((_, live)) = memo.get(&(pos, node)) {
            let Some((end, next, entries, c)) = live.first() else { break };
            let through = prefix.get(&(pos, node)).copied().unwrap_or(0).checked_mul(*c);
            let certain = total != u64::MAX && through == Some(total);
            if let Node::Entries { state, i, n, .. } = node {
                if i < n {
                    if certain {
                        out.certain.extend(entries.iter().cloned());
                    } else {
                        out.uncertain.push(state);
                    }
                }
            }
            (pos, node) = (*end, *next);
        }
        Ok(Some(out))
    }

    /// A frame for `node` at `pos`: its base count and its alternatives.
    fn frame(&mut self, pos: usize, node: Node) -> Result<Frame_, ()> {
        self.spend(1)?;
        let mut f = Frame_ { pos, node, alts: Vec::new(), k: 0, total: 0, live: Vec::new() };
        match node {
            Node::Header { left: 0, .. } => f.total = u64::from(pos == self.data.len()),
            Node::Header { left, seen } => {
                if let Some((state, n)) = self.header_at(pos) {
                    // Each state's section comes once per key group.
                    if seen & bit(state) == 0 {
                        f.alts.push((pos + 6, Node::Entries { state, i: 0, n, left: left - 1, seen: seen | bit(state) }, Vec::new()));
                    }
                }
            }
            Node::Entries { i, n, left, seen, .. } if i == n => f.alts.push((pos, Node::Header { left, seen }, Vec::new())),
            Node::Entries { state, i, n, left, seen } => {
                let next = Node::Entries { state, i: i + 1, n, left, seen };
                for alt in self.entry_alts(pos, state, i, n, left)? {
                    f.alts.push((alt.end, next, alt.entries));
                }
            }
        }
        // Alternatives are consumed in order; `add` records the first that completes.
        Ok(f)
    }

    /// A section header at `pos`: a state id of the backend, a count that fits, and (with
    /// entries) a first entry of that state able to start after it. Flink writes every state's
    /// section in every key group, but in the order of a `HashMap` over the states
    /// (`HeapSnapshotResources`), so the id is not known in advance.
    fn header_at(&mut self, pos: usize) -> Option<(usize, usize)> {
        let mut c = self.cursor(pos);
        let id = usize::try_from(c.i16("kv state id").ok()?).ok()?;
        let n = usize::try_from(c.i32("number of entries").ok()?).ok()?;
        (id < self.dec.decoders.len() && n <= c.remaining() && (n == 0 || self.start_ok(id, pos + 6))).then_some((id, n))
    }

    fn header_list(&mut self) -> Vec<usize> {
        if let Some(v) = &self.headers {
            return v.clone();
        }
        let v: Vec<usize> = (0..self.data.len()).filter(|&p| self.header_at(p).is_some()).collect();
        self.headers = Some(v.clone());
        v
    }

    /// Whether an entry of `state` may start at `pos`: its namespace and key decode (a void
    /// namespace is the byte 0 Flink writes), and the key's hash maps to this key group where it
    /// can be computed.
    fn start_ok(&mut self, state: usize, pos: usize) -> bool {
        if let Some(&b) = self.starts.get(&(state, pos)) {
            return b;
        }
        let ok = self.check_start(state, pos);
        self.starts.insert((state, pos), ok);
        ok
    }

    fn check_start(&self, state: usize, pos: usize) -> bool {
        let d = &self.dec.decoders[state];
        let mut c = self.cursor(pos);
        let (key_ser, ns_ser) = if d.kind == StateKind::Timer {
            if c.skip(8, "timer timestamp").is_err() {
                return false;
            }
            match d.value.timer_key_namespace() {
                Some((k, n)) => (k, Some(n)),
                None => return false,
            }
        } else {
            (&self.dec.key_serializer, d.namespace.as_ref())
        };
        let check_ns = |c: &mut Cursor<'_>| -> bool {
            match ns_ser {
                Some(ns) if !ns.is_opaque() => {
                    if matches!(ns.kind(), SerializerKind::Simple(SimpleType::VoidNamespace)) {
                        return c.u8("void namespace").is_ok_and(|b| b == 0);
                    }
                    ns.decode(c).is_ok()
                }
                _ => true,
            }
        };
        if d.kind != StateKind::Timer && !check_ns(&mut c) {
            return false;
        }
        if !key_ser.is_opaque() {
            let key_at = c.position() as usize;
            let Ok(key) = key_ser.decode(&mut c) else { return false };
            let raw = &self.data[key_at..c.position() as usize];
            if let Some(h) = key_hash_code(key_ser, &key, raw) {
                if key_group_for_hash(h, self.dec.max_parallelism) != self.kg {
                    return false;
                }
            }
        }
        d.kind != StateKind::Timer || check_ns(&mut c)
    }

    fn start_list(&mut self, state: usize) -> Vec<usize> {
        if let Some(v) = self.start_lists.get(&state) {
            return v.clone();
        }
        let v: Vec<usize> = (0..self.data.len()).filter(|&p| self.start_ok(state, p)).collect();
        self.start_lists.insert(state, v.clone());
        v
    }

    /// Positions the last part of entry `i` of `n` (of `state`, `left` sections after it) may
    /// end at, from `from` on: where the next entry may start, or the next section header, or
    /// the key group's end.
    fn ends_after_entry(&mut self, state: usize, i: usize, n: usize, left: usize, from: usize) -> Vec<usize> {
        if i + 1 < n {
            // The entries still to come need as many starts: the next one is at most the
            // (n - i - 1)-th last.
            let starts = self.start_list(state);
            let need = n - i - 1;
            let lo = starts.partition_point(|&p| p < from);
            if starts.len() < need || lo > starts.len() - need {
                return Vec::new();
            }
            starts[lo..=starts.len() - need].to_vec()
        } else if left == 0 {
            if from <= self.data.len() {
                vec![self.data.len()]
            } else {
                Vec::new()
            }
        } else {
            let h = self.header_list();
            h[h.partition_point(|&p| p < from)..].to_vec()
        }
    }

    /// Every way to read entry `i` of `n` of `state` at `pos`.
    fn entry_alts(&mut self, pos: usize, state: usize, i: usize, n: usize, left: usize) -> Result<Vec<Alt>, ()> {
        let d = self.dec.decoders[state].clone();
        let mut out = Vec::new();
        if d.kind == StateKind::Timer {
            let Some((key_ser, ns_ser)) = d.value.timer_key_namespace() else { return Ok(out) };
            let mut c = self.cursor(pos);
            let Ok(ts) = c.i64("timer timestamp") else { return Ok(out) };
            let ts = ts ^ i64::MIN;
            for (kend, key, kb) in self.parts(pos + 8, key_ser, &mut |_, _| true)? {
                if !self.key_in_group(&key, &kb) {
                    continue;
                }
                let ends = |p: &mut Self, from: usize| p.ends_after_entry(state, i, n, left, from);
                for (end, ns, nb) in self.last_part(kend, ns_ser, ends)? {
                    let raw = RawEntry { key: kb.clone(), namespace: nb, user_key: None, value: Vec::new(), stored_key: None };
                    let e = self.dec.entry(&d, self.kg, key.clone(), ns, None, Value::Int(ts), None, raw);
                    out.push(Alt { end, entries: vec![(pos, e)] });
                }
            }
            return cap(out);
        }
        let Some(ns_ser) = d.namespace.clone() else { return Ok(out) };
        let key_ser = self.dec.key_serializer.clone();
        let key_may_follow = |p: &mut Self, e: usize| key_ser.is_opaque() || key_ser.decode(&mut p.cursor(e)).is_ok();
        for (nend, ns, nb) in self.parts(pos, &ns_ser, &mut { key_may_follow })? {
            for (kend, key, kb) in self.parts(nend, &key_ser, &mut |_, _| true)? {
                if !self.key_in_group(&key, &kb) {
                    continue;
                }
                match d.kind {
                    StateKind::Map => {
                        let Some((uk_ser, uv_ser)) = d.value.map_key_value() else { return Ok(out) };
                        let mut c = self.cursor(kend);
                        let Ok(m) = c.count("map size", 1) else { continue };
                        for (end, pairs) in self.map_pairs(kend + 4, m, uk_ser, uv_ser, state, i, n, left)? {
                            let entries = pairs
                                .into_iter()
                                .map(|(at, uk, ukb, v, ttl, vb)| {
                                    let raw = RawEntry { key: kb.clone(), namespace: nb.clone(), user_key: Some(ukb), value: vb, stored_key: None };
                                    (at, self.dec.entry(&d, self.kg, key.clone(), ns.clone(), Some(uk), v, ttl, raw))
                                })
                                .collect();
                            out.push(Alt { end, entries });
                        }
                    }
                    StateKind::List => {
                        let Some(elem) = d.value.list_element() else { return Ok(out) };
                        let mut c = self.cursor(kend);
                        let Ok(m) = c.count("list size", 1) else { continue };
                        for (end, items) in self.list_items(kend + 4, m, elem, state, i, n, left)? {
                            let mut raw = Vec::new();
                            let mut ttl = None;
                            let mut values = Vec::with_capacity(items.len());
                            for (j, (v, t, b)) in items.into_iter().enumerate() {
                                if j > 0 {
                                    raw.push(LIST_DELIMITER);
                                }
                                raw.extend_from_slice(&b);
                                ttl = ttl.max(t);
                                values.push(v);
                            }
                            let r = RawEntry { key: kb.clone(), namespace: nb.clone(), user_key: None, value: raw, stored_key: None };
                            out.push(Alt { end, entries: vec![(pos, self.dec.entry(&d, self.kg, key.clone(), ns.clone(), None, Value::List(values), ttl, r))] });
                        }
                    }
                    _ => {
                        let ends = |p: &mut Self, from: usize| p.ends_after_entry(state, i, n, left, from);
                        for (end, (v, ttl), vb) in self.last_value(kend, &d.value, ends)? {
                            let raw = RawEntry { key: kb.clone(), namespace: nb.clone(), user_key: None, value: vb, stored_key: None };
                            out.push(Alt { end, entries: vec![(pos, self.dec.entry(&d, self.kg, key.clone(), ns.clone(), None, v, ttl, raw))] });
                        }
                    }
                }
                if out.len() > MAX_ALTERNATIVES {
                    return Err(());
                }
            }
        }
        cap(out)
    }

    fn key_in_group(&self, key: &Value, raw: &[u8]) -> bool {
        key_hash_code(&self.dec.key_serializer, key, raw).is_none_or(|h| key_group_for_hash(h, self.dec.max_parallelism) == self.kg)
    }

    /// `m` map entries (user key, null flag, value) from `pos`, the last ending where the entry
    /// may end.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn map_pairs(
        &mut self,
        pos: usize,
        m: usize,
        uk_ser: &TypeSerializer,
        uv_ser: &TypeSerializer,
        state: usize,
        i: usize,
        n: usize,
        left: usize,
    ) -> Result<Vec<(usize, Vec<(usize, Value, Vec<u8>, Value, Option<i64>, Vec<u8>)>)>, ()> {
        let mut ways: Vec<(usize, Vec<(usize, Value, Vec<u8>, Value, Option<i64>, Vec<u8>)>)> = vec![(pos, Vec::new())];
        for j in 0..m {
            let last = j + 1 == m;
            let mut next = Vec::new();
            for (at, acc) in ways {
                // A user key, then the null flag (a boolean: 0 or 1 as Flink writes it).
                for (ukend, uk, ukb) in self.parts(at, uk_ser, &mut |p, e| p.data.get(e).is_some_and(|&b| b <= 1))? {
                    let null = self.data[ukend] == 1;
                    let vat = ukend + 1;
                    let values = if null {
                        let ok = if last { self.ends_after_entry(state, i, n, left, vat).contains(&vat) } else { true };
                        if ok {
                            vec![(vat, (Value::Null, None), Vec::new())]
                        } else {
                            Vec::new()
                        }
                    } else if last {
                        let ends = |p: &mut Self, from: usize| p.ends_after_entry(state, i, n, left, from);
                        self.last_value(vat, uv_ser, ends)?
                    } else {
                        let uk_may_follow = |p: &mut Self, e: usize| uk_ser.is_opaque() || uk_ser.decode(&mut p.cursor(e)).is_ok();
                        self.values(vat, uv_ser, &mut { uk_may_follow })?
                    };
                    for (vend, (v, ttl), vb) in values {
                        self.spend(1 + acc.len())?;
                        let mut flagged = vec![u8::from(null)];
                        flagged.extend_from_slice(&vb);
                        let mut acc = acc.clone();
                        acc.push((at, uk.clone(), ukb.clone(), v, ttl, flagged));
                        next.push((vend, acc));
                    }
                }
            }
            if next.len() > MAX_ALTERNATIVES {
                return Err(());
            }
            ways = next;
        }
        if m == 0 {
            ways.retain(|(at, _)| self.ends_after_entry(state, i, n, left, *at).contains(at));
        }
        Ok(ways)
    }

    /// `m` list elements from `pos`, the last ending where the entry may end.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn list_items(&mut self, pos: usize, m: usize, elem: &TypeSerializer, state: usize, i: usize, n: usize, left: usize) -> Result<Vec<(usize, Vec<(Value, Option<i64>, Vec<u8>)>)>, ()> {
        let mut ways: Vec<(usize, Vec<(Value, Option<i64>, Vec<u8>)>)> = vec![(pos, Vec::new())];
        for j in 0..m {
            let mut next = Vec::new();
            for (at, acc) in ways {
                let values = if j + 1 == m {
                    let ends = |p: &mut Self, from: usize| p.ends_after_entry(state, i, n, left, from);
                    self.last_value(at, elem, ends)?
                } else {
                    let elem_may_follow = |p: &mut Self, e: usize| elem.is_opaque() || elem.decode(&mut p.cursor(e)).is_ok();
                    self.values(at, elem, &mut { elem_may_follow })?
                };
                for (end, (v, t), b) in values {
                    self.spend(1 + acc.len())?;
                    let mut acc = acc.clone();
                    acc.push((v, t, b));
                    next.push((end, acc));
                }
            }
            if next.len() > MAX_ALTERNATIVES {
                return Err(());
            }
            ways = next;
        }
        if m == 0 {
            ways.retain(|(at, _)| self.ends_after_entry(state, i, n, left, *at).contains(at));
        }
        Ok(ways)
    }

    /// Ways to read one value of `ser` (a TTL wrapper unwrapped) at `pos` followed by something
    /// `follows` accepts: exactly one when the serializer can be read; otherwise every end
    /// `follows` accepts, the value decoded as far as the bytes up to it allow.
    #[allow(clippy::type_complexity)]
    fn values(&mut self, pos: usize, ser: &TypeSerializer, follows: &mut dyn FnMut(&mut Self, usize) -> bool) -> Result<Vec<(usize, (Value, Option<i64>), Vec<u8>)>, ()> {
        if !ser.is_opaque() {
            let mut c = self.cursor(pos);
            return Ok(match crate::readers::decode::decode_value(ser, &mut c) {
                Ok(v) => {
                    let end = c.position() as usize;
                    if follows(self, end) {
                        vec![(end, v, self.data[pos..end].to_vec())]
                    } else {
                        Vec::new()
                    }
                }
                Err(_) => Vec::new(),
            });
        }
        let mut out = Vec::new();
        for end in pos..=self.data.len() {
            self.spend(1)?;
            if follows(self, end) {
                self.spend(part_cost(pos, end))?;
                if let Some(v) = self.framed(pos, end, ser) {
                    out.push((end, v, self.data[pos..end].to_vec()));
                    if out.len() > MAX_ALTERNATIVES {
                        return Err(());
                    }
                }
            }
        }
        Ok(out)
    }

    /// Like [`Parser::values`] for the last part of an entry, whose possible ends `ends` lists.
    #[allow(clippy::type_complexity)]
    fn last_value(&mut self, pos: usize, ser: &TypeSerializer, ends: impl Fn(&mut Self, usize) -> Vec<usize>) -> Result<Vec<(usize, (Value, Option<i64>), Vec<u8>)>, ()> {
        if !ser.is_opaque() {
            let allowed = ends(self, pos);
            return self.values(pos, ser, &mut |_, e| allowed.binary_search(&e).is_ok());
        }
        let mut out = Vec::new();
        for end in ends(self, pos) {
            self.spend(part_cost(pos, end))?;
            if let Some(v) = self.framed(pos, end, ser) {
                out.push((end, v, self.data[pos..end].to_vec()));
            }
        }
        Ok(out)
    }

    /// A namespace, key or user key (no TTL wrapper) at `pos`.
    fn parts(&mut self, pos: usize, ser: &TypeSerializer, follows: &mut dyn FnMut(&mut Self, usize) -> bool) -> Result<Vec<(usize, Value, Vec<u8>)>, ()> {
        if !ser.is_opaque() {
            let mut c = self.cursor(pos);
            return Ok(match ser.decode(&mut c) {
                Ok(v) => {
                    let end = c.position() as usize;
                    if follows(self, end) {
                        vec![(end, v, self.data[pos..end].to_vec())]
                    } else {
                        Vec::new()
                    }
                }
                Err(_) => Vec::new(),
            });
        }
        let mut out = Vec::new();
        for end in pos..=self.data.len() {
            self.spend(1)?;
            if follows(self, end) {
                self.spend(part_cost(pos, end))?;
                let mut c = Cursor::in_frame(&self.data[pos..end], Frame::Unplaced, pos as u64);
                if let Ok(v) = ser.decode_rest(&mut c) {
                    out.push((end, v, self.data[pos..end].to_vec()));
                    if out.len() > MAX_ALTERNATIVES {
                        return Err(());
                    }
                }
            }
        }
        Ok(out)
    }

    /// Like [`Parser::parts`] for the last part of an entry (a timer's namespace).
    fn last_part(&mut self, pos: usize, ser: &TypeSerializer, ends: impl Fn(&mut Self, usize) -> Vec<usize>) -> Result<Vec<(usize, Value, Vec<u8>)>, ()> {
        let allowed = ends(self, pos);
        self.parts(pos, ser, &mut |_, e| allowed.binary_search(&e).is_ok())
    }

    /// The value of `ser` (TTL wrapper unwrapped) that fills `pos..end`, undecodable parts
    /// opaque; `None` when those bytes cannot be it.
    fn framed(&self, pos: usize, end: usize, ser: &TypeSerializer) -> Option<(Value, Option<i64>)> {
        let mut c = Cursor::in_frame(&self.data[pos..end], Frame::Unplaced, pos as u64);
        crate::readers::decode::decode_value_rest(ser, &mut c).ok()
    }
}

/// The bit of a state in a [`Node`]'s `seen` set: the states whose section this parse has read
/// in the key group (states past 64 are not tracked).
fn bit(state: usize) -> u64 {
    if state < 64 {
        1 << state
    } else {
        0
    }
}

/// Adds a child's count to its frame (keeping the alternative if it leads anywhere), and moves
/// to the next alternative.
fn add(f: &mut Frame_, c: u64) {
    if c > 0 {
        let alt = &f.alts[f.k];
        f.live.push((alt.0, alt.1, alt.2.clone(), c));
    }
    f.total = f.total.saturating_add(c);
    f.k += 1;
}

fn cap(v: Vec<Alt>) -> Result<Vec<Alt>, ()> {
    if v.len() > MAX_ALTERNATIVES {
        Err(())
    } else {
        Ok(v)
    }
}
