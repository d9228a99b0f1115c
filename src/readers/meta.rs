//! The serialization proxies that open every keyed and operator state file: which states there
//! are, with which serializers (`KeyedBackendSerializationProxy`,
//! `OperatorBackendSerializationProxy`, `StateMetaInfoSnapshotReadersWriters`).
//! Spec: `formats/state-meta.md`.

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind, Position, ResultExt};
use crate::model::StateKind;
use crate::readers::serializers::{read_proxy_snapshot, TypeSerializer};

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

/// Reads one `StateMetaInfoSnapshot` (meta-info versions 6 and 7 share the layout).
pub fn read_state_meta_info(c: &mut Cursor<'_>) -> R<StateMetaInfo> {
    let start = c.position();
    let name = c.utf("state name")?;
    let mut info = read_state_meta_body(c, name.clone()).context_with(|| format!("state {name:?}"))?;
    info.raw = c.consumed_since(start).to_vec();
    info.position = c.frame().position(start);
    Ok(info)
}

fn read_state_meta_body(c: &mut Cursor<'_>, name: String) -> R<StateMetaInfo> {
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
        let s = read_proxy_snapshot(c).context_with(|| format!("serializer {key}"))?;
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
}

/// Reads a `KeyedBackendSerializationProxy`.
pub fn read_keyed_backend_meta(c: &mut Cursor<'_>) -> R<KeyedBackendMeta> {
    let at = c.position();
    let start = at;
    let version = c.i32("keyed backend proxy version")?;
    // Versions 1-3 (Flink before 1.5) used other meta-info layouts that no release 1.13+ writes.
    if !(4..=6).contains(&version) {
        return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "keyed backend proxy version", value: version.into() }, at));
    }
    let compressed = c.bool("key-group compression flag")?;
    let key_at = c.position();
    let key_serializer = read_proxy_snapshot(c).context_with(|| "key serializer".into())?;
    let key_serializer_raw = c.consumed_since(key_at).to_vec();
    let n_at = c.position();
    let n = c.i16("number of states")?;
    if n < 0 {
        return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "number of states", value: n.into() }, n_at));
    }
    c.check_fits("states", n as usize, 10, n_at)?;
    let mut states = Vec::with_capacity(n as usize);
    for i in 0..n {
        states.push(read_state_meta_info(c).context_with(|| format!("state [{i}]"))?);
    }
    let raw = c.consumed_since(start).to_vec();
    Ok(KeyedBackendMeta { version, compressed, key_serializer, states, key_serializer_raw, raw })
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
}

/// Reads an `OperatorBackendSerializationProxy`.
pub fn read_operator_backend_meta(c: &mut Cursor<'_>) -> R<OperatorBackendMeta> {
    let at = c.position();
    let start = at;
    let version = c.i32("operator backend proxy version")?;
    if !(5..=6).contains(&version) {
        return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "operator backend proxy version", value: version.into() }, at));
    }
    let compressed = if version >= 6 { c.bool("operator state compression flag")? } else { false };
    let mut lists = Vec::new();
    for what in ["number of operator states", "number of broadcast states"] {
        let n_at = c.position();
        let n = c.i16(what)?;
        if n < 0 {
            return Err(c.error_at(DecodeErrorKind::InvalidValue { what, value: n.into() }, n_at));
        }
        c.check_fits(what, n as usize, 10, n_at)?;
        let mut v = Vec::with_capacity(n as usize);
        for i in 0..n {
            v.push(read_state_meta_info(c).context_with(|| format!("state [{i}]"))?);
        }
        lists.push(v);
    }
    let broadcast_states = lists.pop().unwrap_or_default();
    let operator_states = lists.pop().unwrap_or_default();
    let raw = c.consumed_since(start).to_vec();
    Ok(OperatorBackendMeta { version, compressed, operator_states, broadcast_states, raw })
}
