//! The serialization proxies that open every keyed and operator state file: which states there
//! are, with which serializers (`KeyedBackendSerializationProxy`,
//! `OperatorBackendSerializationProxy`, `StateMetaInfoSnapshotReadersWriters`).
//! Spec: `formats/state-meta.md`.

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind, Position, ResultExt};
use crate::model::StateKind;
use crate::readers::serializers::resync::{is_unknown, read_exact, Ctx, Follows, Skips};
use crate::readers::serializers::{read_proxy, TypeSerializer};

type R<T> = Result<T, DecodeError>;

/// `StateMetaInfoSnapshot.BackendStateType`, stored by ordinal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendStateType {
    /// Keyed key/value state.
    KeyValue,
    /// Operator list state.
    Operator,
    /// Broadcast state.
    Broadcast,
    /// A priority queue (timers).
    PriorityQueue,
    /// Keyed state of the 2.x async state API.
    KeyValueV2,
}

/// Option key naming the keyed state's type (`VALUE`, `LIST`, ...).
pub const KEYED_STATE_TYPE: &str = "KEYED_STATE_TYPE";
/// Option key naming an operator state's distribution mode.
pub const OPERATOR_STATE_DISTRIBUTION_MODE: &str = "OPERATOR_STATE_DISTRIBUTION_MODE";
/// Serializer key of the key (broadcast state) serializer.
pub const KEY_SERIALIZER: &str = "KEY_SERIALIZER";
/// Serializer key of the namespace serializer.
pub const NAMESPACE_SERIALIZER: &str = "NAMESPACE_SERIALIZER";
/// Serializer key of the value (or element) serializer.
pub const VALUE_SERIALIZER: &str = "VALUE_SERIALIZER";
/// Serializer key of the map user-key serializer (2.x async map state).
pub const USER_KEY_SERIALIZER: &str = "USER_KEY_SERIALIZER";

/// One registered state.
#[derive(Debug, Clone)]
pub struct StateMetaInfo {
    /// State name.
    pub name: String,
    /// Backend state type.
    pub backend_type: BackendStateType,
    /// Options, in stored order.
    pub options: Vec<(String, String)>,
    /// Serializers by role, in stored order.
    pub serializers: Vec<(String, TypeSerializer)>,
    /// The exact bytes of this `StateMetaInfoSnapshot` as stored (name to last serializer), so a
    /// writer can copy serializer snapshots it need not understand.
    pub raw: Vec<u8>,
    /// Where it is stored (errors about the state as a whole point here).
    pub position: Option<Position>,
}

impl StateMetaInfo {
    /// An option's value.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A serializer by role.
    pub fn serializer(&self, key: &str) -> Option<&TypeSerializer> {
        self.serializers.iter().find(|(k, _)| k == key).map(|(_, s)| s)
    }

    /// The serializers of this registration that hold a snapshot flinksnap does not know (directly
    /// or nested), in stored order: (role as stored, e.g. `VALUE_SERIALIZER`, the unknown one).
    pub fn unknown_serializers(&self) -> impl Iterator<Item = (&str, &TypeSerializer)> {
        self.serializers.iter().filter_map(|(role, s)| s.unknown().map(|u| (role.as_str(), u)))
    }

    /// The kind of state, as `flinksnap dump` names it.
    pub fn kind(&self) -> Option<StateKind> {
        match self.backend_type {
            BackendStateType::PriorityQueue => Some(StateKind::Timer),
            BackendStateType::Broadcast => Some(StateKind::Broadcast),
            BackendStateType::Operator => match self.option(OPERATOR_STATE_DISTRIBUTION_MODE) {
                Some("UNION") => Some(StateKind::OperatorUnion),
                Some("BROADCAST") => Some(StateKind::Broadcast),
                _ => Some(StateKind::OperatorList),
            },
            BackendStateType::KeyValue | BackendStateType::KeyValueV2 => match self.option(KEYED_STATE_TYPE)? {
                "VALUE" => Some(StateKind::Value),
                "LIST" => Some(StateKind::List),
                "MAP" => Some(StateKind::Map),
                "REDUCING" => Some(StateKind::Reducing),
                "AGGREGATING" => Some(StateKind::Aggregating),
                _ => None,
            },
        }
    }
}

/// Reads one `StateMetaInfoSnapshot` (meta-info versions 6 and 7 share the layout). An unknown
/// serializer snapshot in it is an error here; the serialization proxies read past them with
/// what follows ([`read_keyed_backend_meta`]).
pub fn read_state_meta_info(c: &mut Cursor<'_>) -> R<StateMetaInfo> {
    read_state_meta(c, Skips::none())
}

/// [`read_state_meta_info`] with assumed ends of unknown payloads.
pub(crate) fn read_state_meta(c: &mut Cursor<'_>, skips: &Skips) -> R<StateMetaInfo> {
    let start = c.position();
    let name = c.utf("state name")?;
    let mut info = read_state_meta_body(c, name.clone(), skips).context_with(|| format!("state {name:?}"))?;
    info.raw = c.consumed_since(start).to_vec();
    info.position = c.frame().position(start);
    Ok(info)
}

fn read_state_meta_body(c: &mut Cursor<'_>, name: String, skips: &Skips) -> R<StateMetaInfo> {
    let at = c.position();
    let backend_type = match c.i32("backend state type")? {
        0 => BackendStateType::KeyValue,
        1 => BackendStateType::Operator,
        2 => BackendStateType::Broadcast,
        3 => BackendStateType::PriorityQueue,
        4 => BackendStateType::KeyValueV2,
        v => return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "backend state type", value: v.into() }, at)),
    };
    // An option is two strings of at least their 2-byte lengths.
    let n = c.count("number of options", 4)?;
    let mut options = Vec::with_capacity(n);
    for _ in 0..n {
        options.push((c.utf("option key")?, c.utf("option value")?));
    }
    let n = c.count("number of serializers", 6)?;
    let mut serializers = Vec::with_capacity(n);
    for _ in 0..n {
        let key = c.utf("serializer key")?;
        let s = read_proxy(c, Ctx { depth: 0, skips }).context_with(|| format!("serializer {key}"))?;
        serializers.push((key, s));
    }
    Ok(StateMetaInfo { name, backend_type, options, serializers, raw: Vec::new(), position: None })
}

/// The `KeyedBackendSerializationProxy` at the start of every keyed state file.
#[derive(Debug, Clone)]
pub struct KeyedBackendMeta {
    /// Proxy version (6 for every release 1.13–2.3).
    pub version: i32,
    /// Whether key groups are Snappy-compressed.
    pub compressed: bool,
    /// The key serializer.
    pub key_serializer: TypeSerializer,
    /// The states; the index is the kv-state id the data sections use.
    pub states: Vec<StateMetaInfo>,
    /// The exact bytes of the key serializer snapshot (proxy form), as stored.
    pub key_serializer_raw: Vec<u8>,
    /// The exact bytes of the whole proxy, as stored.
    pub raw: Vec<u8>,
    /// States whose registration could not be read (after an unknown serializer snapshot whose
    /// end the bytes do not determine); `states` holds those before them.
    pub unreadable: Option<UnreadableStates>,
}

/// The states of a serialization proxy from an unknown serializer snapshot on, when flinksnap
/// cannot tell where that snapshot ends (`formats/serializers.md` § Unknown snapshots): nothing
/// after it can be read, not even the next states' names.
#[derive(Debug, Clone, PartialEq)]
pub struct UnreadableStates {
    /// The state index (kv-state id for keyed state) of the first state not read.
    pub first: usize,
    /// How many states are not read (of this list), when the count was read.
    pub count: Option<usize>,
    /// The name of the first of them, when it was read (it precedes its serializers).
    pub name: Option<String>,
    /// Operator state: which list of the proxy (`false`: operator states, `true`: broadcast).
    pub broadcast: bool,
    /// The error: the unknown serializer snapshot (its class, where it is, why its end is not known).
    pub error: DecodeError,
}

impl UnreadableStates {
    /// The class of the unknown serializer snapshot.
    pub fn class(&self) -> Option<&str> {
        match &self.error.kind {
            DecodeErrorKind::UnknownSerializer(u) => Some(&u.class),
            _ => None,
        }
    }
}

/// Reads a `KeyedBackendSerializationProxy` that ends exactly where `c` ends (the first key
/// group's offset, the end of a meta-data file). Unknown serializer snapshots are read past where
/// what follows them determines their end (`formats/serializers.md` § Unknown snapshots): their
/// serializers are opaque. Where it does not, the states from that one on are
/// [`KeyedBackendMeta::unreadable`].
pub fn read_keyed_backend_meta(c: &mut Cursor<'_>) -> R<KeyedBackendMeta> {
    let from = c.clone();
    match read_exact(c, Follows::Proxy, &|c, skips| keyed_proxy(c, skips, None)) {
        Err(e) if is_unknown(&e) => {
            // What can be read before the unknown snapshot.
            *c = from;
            keyed_proxy(c, Skips::none(), Some(e))
        }
        r => r,
    }
}

/// The proxy; with `unknown` (the error of an unknown snapshot whose end is not known), up to the
/// state that holds it.
fn keyed_proxy(c: &mut Cursor<'_>, skips: &Skips, unknown: Option<DecodeError>) -> R<KeyedBackendMeta> {
    let at = c.position();
    let start = at;
    let version = c.i32("keyed backend proxy version")?;
    // Versions 1-3 (Flink before 1.5) used other meta-info layouts that no release 1.13+ writes.
    if !(4..=6).contains(&version) {
        return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "keyed backend proxy version", value: version.into() }, at));
    }
    let compressed = c.bool("key-group compression flag")?;
    let key_at = c.position();
    let key_serializer = match read_proxy(c, Ctx { depth: 0, skips }).context_with(|| "key serializer".into()) {
        Ok(k) => k,
        Err(e) if unknown.is_some() && is_unknown(&e) => {
            // The key serializer itself: nothing after it can be read.
            let class = match &e.kind {
                DecodeErrorKind::UnknownSerializer(u) => u.class.clone(),
                _ => String::new(),
            };
            let reason = e.to_string();
            return Ok(KeyedBackendMeta {
                version,
                compressed,
                key_serializer: TypeSerializer::new(class, 0, crate::readers::serializers::SerializerKind::Opaque { reason }),
                states: Vec::new(),
                key_serializer_raw: Vec::new(),
                raw: Vec::new(),
                unreadable: Some(UnreadableStates { first: 0, count: None, name: None, broadcast: false, error: e }),
            });
        }
        Err(e) => return Err(e),
    };
    let key_serializer_raw = c.consumed_since(key_at).to_vec();
    let n_at = c.position();
    let n = c.i16("number of states")?;
    if n < 0 {
        return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "number of states", value: n.into() }, n_at));
    }
    c.check_fits("states", n as usize, 10, n_at)?;
    let (states, unreadable) = read_states(c, n as usize, skips, unknown, false)?;
    let raw = c.consumed_since(start).to_vec();
    Ok(KeyedBackendMeta { version, compressed, key_serializer, states, key_serializer_raw, raw, unreadable })
}

/// `n` state meta infos. With `unknown` (recovering what precedes an unknown snapshot whose end
/// is not known), the state holding it and all after it are returned as unreadable.
fn read_states(c: &mut Cursor<'_>, n: usize, skips: &Skips, unknown: Option<DecodeError>, broadcast: bool) -> R<(Vec<StateMetaInfo>, Option<UnreadableStates>)> {
    let mut states = Vec::with_capacity(n);
    for i in 0..n {
        let state_at = c.clone();
        match read_state_meta(c, skips).context_with(|| format!("state [{i}]")) {
            Ok(s) => states.push(s),
            Err(e) if unknown.is_some() && is_unknown(&e) => {
                let name = state_at.clone().utf("state name").ok();
                let error = unknown.unwrap_or(e);
                return Ok((states, Some(UnreadableStates { first: i, count: Some(n - i), name, broadcast, error })));
            }
            Err(e) => return Err(e),
        }
    }
    Ok((states, None))
}

/// The `OperatorBackendSerializationProxy` at the start of every operator state file.
#[derive(Debug, Clone)]
pub struct OperatorBackendMeta {
    /// Proxy version (5 up to 1.17, 6 from 1.18).
    pub version: i32,
    /// Whether the data section is Snappy-compressed (version 6).
    pub compressed: bool,
    /// Operator list states.
    pub operator_states: Vec<StateMetaInfo>,
    /// Broadcast states.
    pub broadcast_states: Vec<StateMetaInfo>,
    /// The exact bytes of the whole proxy, as stored.
    pub raw: Vec<u8>,
    /// States whose registration could not be read (see [`KeyedBackendMeta::unreadable`]); when
    /// the unknown snapshot is among the operator states, the broadcast states are not read
    /// either.
    pub unreadable: Option<UnreadableStates>,
}

/// Reads an `OperatorBackendSerializationProxy` that ends exactly where `c` ends (the first
/// state offset, or the file's end); unknown serializer snapshots as in
/// [`read_keyed_backend_meta`].
pub fn read_operator_backend_meta(c: &mut Cursor<'_>) -> R<OperatorBackendMeta> {
    let from = c.clone();
    match read_exact(c, Follows::Proxy, &|c, skips| operator_proxy(c, skips, None)) {
        Err(e) if is_unknown(&e) => {
            *c = from;
            operator_proxy(c, Skips::none(), Some(e))
        }
        r => r,
    }
}

fn operator_proxy(c: &mut Cursor<'_>, skips: &Skips, unknown: Option<DecodeError>) -> R<OperatorBackendMeta> {
    let at = c.position();
    let start = at;
    let version = c.i32("operator backend proxy version")?;
    if !(5..=6).contains(&version) {
        return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "operator backend proxy version", value: version.into() }, at));
    }
    let compressed = if version >= 6 { c.bool("operator state compression flag")? } else { false };
    let mut lists = Vec::new();
    let mut unreadable = None;
    for (what, broadcast) in [("number of operator states", false), ("number of broadcast states", true)] {
        let n_at = c.position();
        let n = c.i16(what)?;
        if n < 0 {
            return Err(c.error_at(DecodeErrorKind::InvalidValue { what, value: n.into() }, n_at));
        }
        c.check_fits(what, n as usize, 10, n_at)?;
        let (v, u) = read_states(c, n as usize, skips, unknown.clone(), broadcast)?;
        lists.push(v);
        if u.is_some() {
            unreadable = u;
            break;
        }
    }
    let broadcast_states = if lists.len() == 2 { lists.pop().unwrap_or_default() } else { Vec::new() };
    let operator_states = lists.pop().unwrap_or_default();
    let raw = c.consumed_since(start).to_vec();
    Ok(OperatorBackendMeta { version, compressed, operator_states, broadcast_states, raw, unreadable })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readers::serializers::testutil::Out;
    use crate::readers::serializers::SerializerKind;

    const LONG: &str = "org.apache.flink.api.common.typeutils.base.LongSerializer$LongSerializerSnapshot";
    const STRING: &str = "org.apache.flink.api.common.typeutils.base.StringSerializer$StringSerializerSnapshot";
    const VOID_NS: &str = "org.apache.flink.runtime.state.VoidNamespaceSerializer$VoidNamespaceSerializerSnapshot";
    const LIST: &str = "org.apache.flink.api.common.typeutils.base.ListSerializerSnapshot";
    const TTL: &str = "org.apache.flink.runtime.state.ttl.TtlStateFactory$TtlSerializerSnapshot";
    const CUSTOM: &str = "com.example.MyType$MySerializerSnapshot";

    /// A keyed value state: options, namespace and value serializer (proxy form).
    fn state(name: &str, value: Out) -> Out {
        Out::new()
            .utf(name)
            .i32(0)
            .i32(1)
            .utf(KEYED_STATE_TYPE)
            .utf("VALUE")
            .i32(2)
            .utf(NAMESPACE_SERIALIZER)
            .i32(2)
            .snap(VOID_NS, 3)
            .utf(VALUE_SERIALIZER)
            .i32(2)
            .raw(&value.0)
    }

    fn proxy(states: &[Out]) -> Vec<u8> {
        let mut p = Out::new().i32(6).bool(false).i32(2).snap(LONG, 3).raw(&(states.len() as i16).to_be_bytes());
        for s in states {
            p = p.raw(&s.0);
        }
        p.0
    }

    /// Payloads a user snapshot class may write: nothing, a few fields, strings that look like
    /// what follows a snapshot, a Java serialization stream, a composite with nested snapshots.
    fn payloads() -> Vec<Out> {
        vec![
            Out::new(),
            Out::new().i32(7).utf("hello").i64(-1),
            // a string that is a Java name, and a count of 0
            Out::new().utf("com.example.Other").i32(0).i32(3),
            // a Java serialization stream (a java.lang.Integer)
            Out::new().raw(&crate::readers::serializers::testutil::unhex(
                "aced0005737200116a6176612e6c616e672e496e746567657212e2a0a4f781873802000149000576616c7565787200106a6176612e6c616e672e4e756d62657286ac951d0b94e08b0200007870000000
                 2a",
            )),
            // CompositeTypeSerializerSnapshot: magic, outer version, outer payload, nested
            Out::new().i32(911_108).i32(1).utf("outer").i32(1_333_245).i32(1).i32(1).snap(STRING, 3),
        ]
    }

    #[test]
    fn unknown_snapshots_first_middle_and_last_are_read_past() {
        for (p, payload) in payloads().into_iter().enumerate() {
            let custom = || Out::new().snap(CUSTOM, 1).raw(&payload.0);
            for at in 0..3 {
                let mut states = vec![state("a", Out::new().snap(LONG, 3)), state("b", Out::new().snap(STRING, 3)), state("c", Out::new().snap(LONG, 3))];
                states[at] = state(["a", "b", "c"][at], custom());
                // and one wrapped: TTL over the custom serializer, in the next state
                let wrapped = (at + 1) % 3;
                states[wrapped] = state(
                    ["a", "b", "c"][wrapped],
                    Out::new().composite(TTL, 2, Out::new(), 2).snap(LONG, 3).raw(&custom().0),
                );
                let bytes = proxy(&states);
                let meta = read_keyed_backend_meta(&mut Cursor::new(&bytes)).unwrap_or_else(|e| panic!("payload {p}, at {at}: {e}"));
                assert!(meta.unreadable.is_none(), "payload {p}, at {at}: {:?}", meta.unreadable.as_ref().map(|u| u.error.to_string()));
                assert_eq!(meta.states.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
                let v = meta.states[at].serializer(VALUE_SERIALIZER).unwrap();
                assert_eq!(v.class_name(), CUSTOM);
                assert!(matches!(v.kind(), SerializerKind::Opaque { .. }));
                let ttl = meta.states[wrapped].serializer(VALUE_SERIALIZER).unwrap();
                assert_eq!(ttl.ttl_inner().unwrap().class_name(), CUSTOM, "payload {p}, at {at}");
                assert_eq!(ttl.unknown().unwrap().class_name(), CUSTOM);
                // The exact bytes of each state are kept.
                for (s, want) in meta.states.iter().zip(&states) {
                    assert_eq!(s.raw, want.0);
                }
                assert_eq!(meta.raw, bytes);
            }
        }
    }

    #[test]
    fn an_unknown_key_serializer_is_read_past() {
        let mut bytes = Out::new().i32(6).bool(false).i32(2).snap(CUSTOM, 2).i32(5).raw(&1i16.to_be_bytes()).0;
        bytes.extend(state("a", Out::new().snap(LONG, 3)).0);
        let meta = read_keyed_backend_meta(&mut Cursor::new(&bytes)).unwrap();
        assert_eq!(meta.key_serializer.class_name(), CUSTOM);
        assert_eq!(meta.states.len(), 1);
    }

    #[test]
    fn where_nothing_fits_the_states_from_the_unknown_one_on_are_unreadable() {
        // The state after the unknown one is damaged: no position works, nothing is assumed.
        let mut states = vec![state("a", Out::new().snap(LONG, 3)), state("b", Out::new().snap(CUSTOM, 1).i32(7)), state("c", Out::new().snap(LONG, 3))];
        states[2].0[3] = 0xff; // the backend state type of "c" (after its 3-byte name)
        let bytes = proxy(&states);
        let meta = read_keyed_backend_meta(&mut Cursor::with_base(&bytes, 100)).unwrap();
        assert_eq!(meta.states.len(), 1);
        let u = meta.unreadable.unwrap();
        assert_eq!((u.first, u.count, u.name.as_deref(), u.class()), (1, Some(2), Some("b"), Some(CUSTOM)));
        assert!(u.error.to_string().contains("where it ends cannot be determined"), "{}", u.error);
        // Where the unknown snapshot's class name is.
        let at = 100 + bytes.windows(CUSTOM.len()).position(|w| w == CUSTOM.as_bytes()).unwrap() as u64 - 2;
        assert_eq!(u.error.offset, at);
    }

    #[test]
    fn operator_proxies_read_past_unknown_snapshots_in_both_lists() {
        let op_state = |name: &str, value: Out| Out::new().utf(name).i32(1).i32(1).utf(OPERATOR_STATE_DISTRIBUTION_MODE).utf("SPLIT_DISTRIBUTE").i32(1).utf(VALUE_SERIALIZER).i32(2).raw(&value.0);
        let custom = Out::new().snap(CUSTOM, 1).utf("x");
        let bytes = Out::new()
            .i32(6)
            .bool(false)
            .raw(&2i16.to_be_bytes())
            .raw(&op_state("l1", custom.clone()).0)
            .raw(&op_state("l2", Out::new().snap(LIST, 1).i32(1_333_245).i32(1).i32(1).snap(LONG, 3)).0)
            .raw(&1i16.to_be_bytes())
            .raw(&op_state("b1", custom).0)
            .0;
        let meta = read_operator_backend_meta(&mut Cursor::new(&bytes)).unwrap();
        assert_eq!(meta.operator_states.len(), 2);
        assert_eq!(meta.broadcast_states.len(), 1);
        assert_eq!(meta.broadcast_states[0].serializer(VALUE_SERIALIZER).unwrap().class_name(), CUSTOM);
    }
}
