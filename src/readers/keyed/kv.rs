//! The RocksDB key/value layout of keyed state, which both the canonical stream of savepoints and
//! RocksDB's column families store (`CompositeKeySerializationUtils`, `RocksDB*State`): key-group
//! prefix, key, namespace (with length suffixes when both are of variable length), map user key;
//! the value as the state's serializer writes it (lists joined by `,`, map values with a null
//! flag). Spec: `formats/canonical-stream.md`.

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind, ResultExt, ValuePart};
use crate::model::value::Value;
use crate::model::{Entry, RawEntry, StateKind};
use crate::readers::decode::{decode_rest, decode_span, decode_timer, decode_value_rest, for_each_delimited};

use super::decoder::{KeyedDecoder, StateDecoder};

type R<T> = std::result::Result<T, DecodeError>;

impl KeyedDecoder {
    /// Decodes one key/value pair of state `state` (its index in the proxy) as read from RocksDB:
    /// one entry, or one per map user key. Offsets in errors count from the start of the key or
    /// the value ([`crate::error::Position::WithinValue`]): where RocksDB keeps the pair in its
    /// files is RocksDB's business.
    pub fn decode_kv(&self, state: usize, key: &[u8], value: &[u8]) -> R<Vec<Entry>> {
        let k = Cursor::within(key, ValuePart::Key);
        let v = Cursor::within(value, ValuePart::Value);
        let d = self
            .decoders
            .get(state)
            .ok_or_else(|| k.error_at(DecodeErrorKind::InvalidValue { what: "kv state id", value: state as i64 }, 0))?;
        let kg = self.key_group_of(key).ok_or_else(|| k.error_at(DecodeErrorKind::Invalid("key shorter than its key-group prefix".into()), 0))?;
        self.decode_pair(d, kg, k, v).context_with(|| format!("state {:?}", d.name))
    }

    /// Decodes one pair of key group `kg` from cursors over the key and the value (whose frames
    /// say what their offsets count).
    pub(super) fn decode_pair(&self, d: &StateDecoder, kg: u32, mut k: Cursor<'_>, mut v: Cursor<'_>) -> R<Vec<Entry>> {
        let key_at = k.position();
        let stored_kg = if self.key_group_prefix == 2 { k.u16("key-group prefix")? as u32 } else { k.u8("key-group prefix")? as u32 };
        if stored_kg != kg {
            return Err(k.error_at(DecodeErrorKind::Invalid(format!("entry of key group {stored_kg} inside key group {kg}")), key_at));
        }
        let value = {
            let mut all = v.clone();
            all.rest()
        };
        if d.kind == StateKind::Timer {
            let (timestamp, tkey, tns, key_bytes, ns_bytes) = decode_timer(&d.value, &mut k)?;
            k.expect_end("timer key")?;
            return Ok(vec![self.entry(d, kg, tkey, tns, None, Value::Int(timestamp), None, RawEntry { key: key_bytes, namespace: ns_bytes, user_key: None, value: value.to_vec() })]);
        }
        let key_ser = &self.key_serializer;
        let ns_ser = d.namespace.as_ref().ok_or_else(|| k.error(DecodeErrorKind::Invalid("no namespace serializer".into())))?;
        let ambiguous = key_ser.fixed_length().is_none() && ns_ser.fixed_length().is_none();
        let (key_value, key_bytes) = decode_span(key_ser, &mut k)?;
        if ambiguous {
            skip_length_suffix(&mut k, key_bytes.len())?;
        }
        let (ns_value, ns_bytes) = decode_span(ns_ser, &mut k)?;
        if ambiguous {
            skip_length_suffix(&mut k, ns_bytes.len())?;
        }
        let raw = |user_key: Option<Vec<u8>>| RawEntry { key: key_bytes.clone(), namespace: ns_bytes.clone(), user_key, value: value.to_vec() };
        match d.kind {
            StateKind::Map => {
                let (uk_ser, uv_ser) = d.value.map_key_value().ok_or_else(|| k.error(DecodeErrorKind::Invalid("map state without a map serializer".into())))?;
                let uk_bytes = k.clone().rest();
                let user_key = decode_rest(uk_ser, &mut k)?;
                let is_null = v.bool("map value null flag")?;
                let (value, ttl) = if is_null { (Value::Null, None) } else { decode_value_rest(uv_ser, &mut v)? };
                Ok(vec![self.entry(d, kg, key_value, ns_value, Some(user_key), value, ttl, raw(Some(uk_bytes.to_vec())))])
            }
            StateKind::List => {
                k.expect_end("list state key")?;
                let elem = d.value.list_element().ok_or_else(|| k.error(DecodeErrorKind::Invalid("list state without a list serializer".into())))?;
                let mut items = Vec::new();
                let mut ttl = None;
                for_each_delimited(elem, &mut v, |item, t, _| {
                    items.push(item);
                    ttl = ttl.max(t);
                })?;
                Ok(vec![self.entry(d, kg, key_value, ns_value, None, Value::List(items), ttl, raw(None))])
            }
            _ => {
                k.expect_end("state key")?;
                let (value, ttl) = decode_value_rest(&d.value, &mut v)?;
                Ok(vec![self.entry(d, kg, key_value, ns_value, None, value, ttl, raw(None))])
            }
        }
    }
}

/// Skips the minimum-width little-endian length suffix the RocksDB layout writes after a key
/// (or namespace) when both key and namespace serializers are variable-length
/// (`CompositeKeySerializationUtils.writeLengthFrom`), and checks it.
fn skip_length_suffix(c: &mut Cursor<'_>, len: usize) -> R<()> {
    let at = c.position();
    let mut n = len;
    let mut stored: u64 = 0;
    let mut i = 0;
    loop {
        stored |= (c.u8("length suffix")? as u64) << (8 * i);
        i += 1;
        n >>= 8;
        if n == 0 {
            break;
        }
    }
    if stored != len as u64 {
        return Err(c.error_at(DecodeErrorKind::Invalid(format!("length suffix says {stored}, the value took {len} bytes")), at));
    }
    Ok(())
}
