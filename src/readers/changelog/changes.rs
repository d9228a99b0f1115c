//! Decoding one logged state change (`AbstractStateChangeLogger.serialize`, `logMetaIfNeeded`):
//! METADATA changes register states (and assign their short ids), timer changes decide each
//! timer's fate, data changes of keyed state are kept as stored, indexed by key group, until
//! their key group is replayed ([`super::replay`]).

use std::collections::{BTreeMap, HashMap};

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind, Frame, ResultExt};
use crate::model::{KeyGroupRange, StateKind};
use crate::readers::decode::{at_state, decode_timer};
use crate::readers::meta::{read_state_meta_info, BackendStateType, StateMetaInfo, NAMESPACE_SERIALIZER, VALUE_SERIALIZER};
use crate::readers::serializers::TypeSerializer;

use super::java::skip_java_object;

type R<T> = std::result::Result<T, DecodeError>;

/// `StateChangeOperation` codes (`flink-statebackend-changelog/.../StateChangeOperation.java`,
/// 1.15 and later).
pub(super) mod op {
    pub const CLEAR: u8 = 0;
    pub const SET: u8 = 1;
    pub const SET_INTERNAL: u8 = 2;
    pub const ADD: u8 = 3;
    pub const MERGE_NS: u8 = 4;
    pub const ADD_ELEMENT: u8 = 5;
    pub const ADD_OR_UPDATE_ELEMENT: u8 = 6;
    pub const REMOVE_ELEMENT: u8 = 7;
    pub const METADATA: u8 = 8;

    pub fn name(op: u8) -> &'static str {
        match op {
            CLEAR => "CLEAR",
            SET => "SET",
            SET_INTERNAL => "SET_INTERNAL",
            ADD => "ADD",
            MERGE_NS => "MERGE_NS",
            ADD_ELEMENT => "ADD_ELEMENT",
            ADD_OR_UPDATE_ELEMENT => "ADD_OR_UPDATE_ELEMENT",
            REMOVE_ELEMENT => "REMOVE_ELEMENT",
            METADATA => "METADATA",
            _ => "unknown",
        }
    }
}

/// The key group of meta-data changes (`AbstractStateChangeLogger.COMMON_KEY_GROUP`).
pub(super) const COMMON_KEY_GROUP: i32 = -1;

/// A registered state: from the materialized part's proxy or a METADATA change.
#[derive(Debug, Clone)]
pub(super) struct LoggedState {
    pub meta: StateMetaInfo,
}

impl LoggedState {
    pub fn kind(&self) -> R<StateKind> {
        self.meta.kind().ok_or_else(|| at_state(&self.meta, format!("state {:?}: a keyed state type Flink does not write", self.meta.name)))
    }

    pub fn value(&self) -> R<&TypeSerializer> {
        self.meta.serializer(VALUE_SERIALIZER).ok_or_else(|| at_state(&self.meta, format!("state {:?} has no value serializer", self.meta.name)))
    }

    pub fn namespace(&self) -> R<&TypeSerializer> {
        self.meta.serializer(NAMESPACE_SERIALIZER).ok_or_else(|| at_state(&self.meta, format!("state {:?} has no namespace serializer", self.meta.name)))
    }
}

/// Where changes were read: a DSTL file (or its decompressed stream) or `_metadata`.
#[derive(Debug, Clone)]
pub(super) struct ChangeSource {
    /// What messages call it.
    pub name: String,
    /// Its index among the streams of the subtask's keyed handle (entry origins).
    pub stream: Option<u16>,
    /// What the offsets of its changes count.
    pub frame: Frame,
}

/// One data change of keyed (not timer) state, kept as stored until its key group is read.
#[derive(Debug)]
pub(super) struct Change {
    pub state: usize,
    pub op: u8,
    /// The bytes after the operation and state id: scope (key, namespace), then the payload.
    pub data: Vec<u8>,
    /// Offset of `data` in its source (counted in the source's frame).
    pub at: u64,
    /// Index into [`Log::sources`].
    pub source: usize,
}

/// What the changes did to one timer: set (in this key group) or removed.
pub(super) type TimerFates = HashMap<(usize, Vec<u8>), Option<u32>>;

/// Everything the change log says, read and indexed.
#[derive(Debug, Default)]
pub(super) struct Log {
    pub states: Vec<LoggedState>,
    pub by_name: HashMap<String, usize>,
    /// State short id (`AbstractStateChangeLogger.stateShortId`) to state, as METADATA changes
    /// assigned them so far.
    pub ids: HashMap<i16, usize>,
    pub sources: Vec<ChangeSource>,
    pub changes: BTreeMap<u32, Vec<Change>>,
    pub timers: TimerFates,
}

impl Log {
    /// Registers a state (a later registration of the same name replaces the earlier one).
    pub fn register(&mut self, meta: StateMetaInfo) -> usize {
        match self.by_name.get(&meta.name) {
            Some(&i) => {
                self.states[i] = LoggedState { meta };
                i
            }
            None => {
                self.by_name.insert(meta.name.clone(), self.states.len());
                self.states.push(LoggedState { meta });
                self.states.len() - 1
            }
        }
    }

    /// One change of key group `kg` (`COMMON_KEY_GROUP` for meta data), read by `c` (which
    /// holds exactly its bytes), from source `source`.
    pub fn record(&mut self, kg: i32, c: &mut Cursor<'_>, source: usize, range: KeyGroupRange) -> R<()> {
        let op_at = c.position();
        let op = c.u8("state change operation")?;
        if op == op::METADATA {
            return self.metadata(c).context_with(|| "METADATA change".into());
        }
        if op > op::REMOVE_ELEMENT {
            return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "state change operation", value: op.into() }, op_at));
        }
        let id_at = c.position();
        let id = c.i16("state id")?;
        let state = *self
            .ids
            .get(&id)
            .ok_or_else(|| c.error_at(DecodeErrorKind::Invalid(format!("state id {id} was not registered by a METADATA change before")), id_at))?;
        if kg == COMMON_KEY_GROUP {
            return Err(c.error_at(DecodeErrorKind::Invalid(format!("a {} data change in the meta-data key group", op::name(op))), op_at));
        }
        let kg = u32::try_from(kg).map_err(|_| c.error_at(DecodeErrorKind::InvalidValue { what: "key group of a data change", value: kg.into() }, op_at))?;
        // Flink applies only changes of the handle's key groups (`ChangelogBackendLogApplier`).
        if !range.contains(kg) {
            return Ok(());
        }
        let s = &self.states[state];
        let name = s.meta.name.clone();
        if s.kind()? == StateKind::Timer {
            let ser = s.value()?.clone();
            return self.timer_change(op, kg, state, &ser, c).context_with(|| format!("{} of timer {name:?}", op::name(op)));
        }
        let at = c.position();
        self.changes.entry(kg).or_default().push(Change { state, op, data: c.rest().to_vec(), at, source });
        Ok(())
    }

    /// `PriorityQueueStateChangeLoggerImpl` (no scope) and `ChangelogKeyGroupedPriorityQueue`:
    /// ADD_ELEMENT holds `i32 n` elements, REMOVE_ELEMENT one. A timer queue is a set, so each
    /// timer's last change decides.
    fn timer_change(&mut self, op: u8, kg: u32, state: usize, ser: &TypeSerializer, c: &mut Cursor<'_>) -> R<()> {
        match op {
            op::ADD_ELEMENT => {
                // A timer is at least its 8-byte timestamp.
                let n = c.count("number of timers", 8)?;
                for _ in 0..n {
                    let at = c.position();
                    decode_timer(ser, c)?;
                    self.timers.insert((state, c.consumed_since(at).to_vec()), Some(kg));
                }
            }
            op::REMOVE_ELEMENT => {
                let at = c.position();
                decode_timer(ser, c)?;
                self.timers.insert((state, c.consumed_since(at).to_vec()), None);
            }
            other => return Err(c.error(DecodeErrorKind::InvalidValue { what: "operation on a timer queue", value: other.into() })),
        }
        c.expect_end("timer change")
    }

    /// A METADATA change: meta-info version, `StateMetaInfoSnapshot`, for key/value state the TTL
    /// config (a Java-serialized `StateTtlConfig`) and default value, then the state's short id
    /// and backend state type code.
    fn metadata(&mut self, c: &mut Cursor<'_>) -> R<()> {
        let v_at = c.position();
        let version = c.i32("meta info version")?;
        if !(6..=7).contains(&version) {
            return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "meta info version", value: version.into() }, v_at));
        }
        let meta = read_state_meta_info(c)?;
        match meta.backend_type {
            BackendStateType::KeyValue => {
                if c.bool("TTL enabled flag")? {
                    skip_java_object(c).context_with(|| "Java-serialized StateTtlConfig".into())?;
                }
                if c.bool("default value flag")? {
                    let ser = meta
                        .serializer(VALUE_SERIALIZER)
                        .ok_or_else(|| c.error(DecodeErrorKind::Invalid(format!("state {:?} has no value serializer", meta.name))))?;
                    ser.decode(c).context_with(|| "default value".into())?;
                }
            }
            BackendStateType::PriorityQueue => {}
            other => return Err(c.error(DecodeErrorKind::Invalid(format!("state {:?}: a {other:?} state in the change log", meta.name)))),
        }
        let id = c.i16("state id")?;
        let code_at = c.position();
        let code = c.u8("backend state type code")?;
        let want = if meta.backend_type == BackendStateType::KeyValue { 0 } else { 3 };
        if code != want {
            return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "backend state type code", value: code.into() }, code_at));
        }
        c.expect_end("METADATA change")?;
        let i = self.register(meta);
        self.ids.insert(id, i);
        Ok(())
    }
}
