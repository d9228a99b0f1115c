//! The decoders of one keyed backend's states, prepared once per handle from its serialization
//! proxy: what the per-format decoders ([`super::kv`], [`super::heap`]) share.

use std::sync::Arc;

use crate::consts::ONE_BYTE_KEY_GROUP_PREFIX_MAX;
use crate::error::DecodeError;
use crate::model::value::Value;
use crate::model::{Entry, OperatorId, Origin, RawEntry, RawParts, StateKind, ValueParts};
use crate::readers::decode::at_state;
use crate::readers::meta::{KeyedBackendMeta, StateMetaInfo, KEYED_STATE_TYPE, NAMESPACE_SERIALIZER, VALUE_SERIALIZER};
use crate::readers::serializers::TypeSerializer;

type R<T> = std::result::Result<T, DecodeError>;

/// How one state's entries are decoded.
#[derive(Debug, Clone)]
pub(super) struct StateDecoder {
    pub name: Arc<str>,
    pub kind: StateKind,
    pub namespace: Option<TypeSerializer>,
    pub value: TypeSerializer,
    /// Whether the key or namespace serializer cannot be interpreted (`is_opaque`, which walks
    /// the serializer tree: asked once, not per entry).
    pub key_or_namespace_opaque: bool,
    /// Whether the value serializer cannot be interpreted.
    pub value_opaque: bool,
    /// Whether the element serializer of a list state cannot be interpreted.
    pub element_opaque: bool,
    /// Whether key and namespace are both of variable length, so that the RocksDB layout writes
    /// length suffixes after them (asked once, not per entry).
    pub ambiguous: bool,
}

impl StateDecoder {
    fn new(meta: &StateMetaInfo) -> R<StateDecoder> {
        // Flink's state types are a closed set (`StateDescriptor.Type`): another name is damage.
        let kind = meta.kind().ok_or_else(|| {
            let ty = meta.option(KEYED_STATE_TYPE).unwrap_or("none");
            at_state(meta, format!("state {:?} has keyed state type {ty:?}, which Flink does not write", meta.name))
        })?;
        let value = meta.serializer(VALUE_SERIALIZER).cloned().ok_or_else(|| at_state(meta, format!("state {:?} has no value serializer", meta.name)))?;
        let namespace = meta.serializer(NAMESPACE_SERIALIZER).cloned();
        // Every key/value state has a namespace; timers carry theirs in the timer serializer.
        if namespace.is_none() && kind != StateKind::Timer {
            return Err(at_state(meta, format!("state {:?} has no namespace serializer", meta.name)));
        }
        let (value_opaque, element_opaque) = (value.is_opaque(), value.list_element().is_some_and(TypeSerializer::is_opaque));
        Ok(StateDecoder { name: meta.name.as_str().into(), kind, namespace, value, key_or_namespace_opaque: false, value_opaque, element_opaque, ambiguous: false })
    }
}

/// Decodes keyed-state entries of one backend's states: the RocksDB key/value layout (canonical
/// stream, RocksDB column families: [`KeyedDecoder::decode_kv`]) and the heap checkpoint's
/// triples.
#[derive(Debug, Clone)]
pub struct KeyedDecoder {
    pub(super) operator_id: OperatorId,
    pub(super) key_serializer: TypeSerializer,
    pub(super) decoders: Vec<StateDecoder>,
    pub(super) key_group_prefix: usize,
    pub(super) max_parallelism: u32,
    /// States from this index on could not be registered (`KeyedBackendMeta::unreadable`):
    /// (first index, count when known, name of the first, class of the unknown snapshot).
    pub(super) unreadable: Option<UnreadableFrom>,
    /// The stored bytes entries keep: the rest are never copied.
    pub(super) raw: RawParts,
    /// The decoded parts entries carry: with [`ValueParts::Key`] the others are checked only.
    pub(super) values: ValueParts,
}

/// The states a keyed decoder could not register: (first index, count when known, name of the
/// first, class of the unknown snapshot).
pub(super) type UnreadableFrom = (usize, Option<usize>, Option<String>, Option<String>);

impl KeyedDecoder {
    /// A decoder for the states of `meta`, for an operator with `max_parallelism` key groups.
    pub fn new(operator_id: OperatorId, max_parallelism: u32, meta: &KeyedBackendMeta) -> R<KeyedDecoder> {
        let key_opaque = meta.key_serializer.is_opaque();
        let mut decoders = meta.states.iter().map(StateDecoder::new).collect::<R<Vec<_>>>()?;
        let key_variable = meta.key_serializer.fixed_length().is_none();
        for d in &mut decoders {
            d.key_or_namespace_opaque = key_opaque || d.namespace.as_ref().is_some_and(TypeSerializer::is_opaque);
            d.ambiguous = key_variable && d.namespace.as_ref().is_some_and(|n| n.fixed_length().is_none());
        }
        Ok(KeyedDecoder {
            operator_id,
            key_serializer: meta.key_serializer.clone(),
            decoders,
            key_group_prefix: if max_parallelism > ONE_BYTE_KEY_GROUP_PREFIX_MAX { 2 } else { 1 },
            max_parallelism,
            unreadable: meta.unreadable.as_ref().map(|u| (u.first, u.count, u.name.clone(), u.class().map(str::to_owned))),
            raw: RawParts::All,
            values: ValueParts::All,
        })
    }

    /// Keeps only the stored bytes `raw` asks for in the entries it decodes (all by default).
    pub fn keep_raw(&mut self, raw: RawParts) {
        self.raw = crate::readers::serializers::raw_for_key_hash(raw, &self.key_serializer);
    }

    /// Builds only the decoded parts `values` asks for (all by default): with
    /// [`ValueParts::Key`] namespace, user key and value are checked and left placeholders.
    pub fn keep_values(&mut self, values: ValueParts) {
        self.values = values;
    }

    /// `bytes` copied when the key's bytes are kept, else empty (no allocation).
    #[inline]
    pub(super) fn key_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        if self.raw.key() { bytes.to_vec() } else { Vec::new() }
    }

    /// `bytes` copied when every stored part is kept, else empty (no allocation).
    #[inline]
    pub(super) fn other_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        if self.raw.all() { bytes.to_vec() } else { Vec::new() }
    }

    /// The stored bytes of a key/value entry, only the parts asked for copied (`RawParts`).
    #[inline]
    pub(super) fn raw_entry(&self, key: &[u8], namespace: &[u8], user_key: Option<&[u8]>, value: &[u8]) -> RawEntry {
        RawEntry {
            key: self.key_bytes(key),
            namespace: self.other_bytes(namespace),
            user_key: user_key.filter(|_| self.raw.all()).map(<[u8]>::to_vec),
            value: self.other_bytes(value),
            stored_key: None,
        }
    }

    /// Bytes of the key-group prefix of every key (1 up to max parallelism 128, else 2).
    pub fn key_group_prefix_len(&self) -> usize {
        self.key_group_prefix
    }

    /// The key group a RocksDB-layout key belongs to.
    pub fn key_group_of(&self, key: &[u8]) -> Option<u32> {
        match self.key_group_prefix {
            2 => key.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]) as u32),
            _ => key.first().map(|&b| b as u32),
        }
    }

    /// The states, in proxy order (those whose registration could not be read too).
    pub(super) fn states(&self) -> usize {
        match &self.unreadable {
            Some((first, Some(count), ..)) => first + count,
            _ => self.decoders.len(),
        }
    }

    /// The operator.
    pub(super) fn operator_id(&self) -> OperatorId {
        self.operator_id
    }

    /// For a state id whose registration could not be read: its name (only the first one's is
    /// known) and the class of the unknown serializer snapshot.
    pub(super) fn unreadable_state(&self, id: usize) -> Option<(Option<String>, Option<String>)> {
        let (first, count, name, class) = self.unreadable.as_ref()?;
        (id >= *first && count.is_none_or(|c| id < first + c)).then(|| (if id == *first { name.clone() } else { None }, class.clone()))
    }

    /// The class of the serializer that cannot be interpreted in the state at `index` (its
    /// value serializer's label), where there is one.
    pub(super) fn value_class(&self, index: usize) -> Option<String> {
        let d = self.decoders.get(index)?;
        d.value.is_opaque().then(|| d.value.undecodable_class().to_owned())
    }

    /// The state at `index`, by name.
    pub(super) fn state_name(&self, index: usize) -> Option<&str> {
        self.decoders.get(index).map(|d| &*d.name)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn entry(&self, d: &StateDecoder, kg: u32, key: Value, namespace: Value, user_key: Option<Value>, value: Value, ttl_timestamp: Option<i64>, raw: RawEntry) -> Entry {
        Entry {
            operator_id: self.operator_id,
            state: d.name.clone(),
            kind: d.kind,
            key_group: Some(kg),
            key: Some(key),
            namespace: Some(namespace),
            user_key,
            value,
            ttl_timestamp,
            raw,
            origin: Origin::default(),
        }
    }
}
