//! The RocksDB key/value layout of keyed state, which both the canonical stream of savepoints and
//! RocksDB's column families store (`CompositeKeySerializationUtils`, `RocksDB*State`): key-group
//! prefix, key, namespace (with length suffixes when both are of variable length), map user key;
//! the value as the state's serializer writes it (lists joined by `,`, map values with a null
//! flag). Spec: `formats/canonical-stream.md`.

use std::collections::VecDeque;

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind, ResultExt, ValuePart};
use crate::model::value::Value;
use crate::model::{Entry, RawEntry, StateKind, ValueParts};
use crate::consts::LIST_DELIMITER;
use crate::readers::decode::{check, decode_rest, decode_slice, decode_timer, decode_value_rest, for_each_delimited};
use crate::readers::serializers::TypeSerializer;

use super::decoder::{KeyedDecoder, StateDecoder};

type R<T> = std::result::Result<T, DecodeError>;

impl KeyedDecoder {
    /// Decodes one key/value pair of state `state` (its index in the proxy) as read from RocksDB:
    /// one entry (a map state stores each user key as a pair of its own). Offsets in errors
    /// count from the start of the key or the value ([`crate::error::Position::WithinValue`]):
    /// where RocksDB keeps the pair in its files is RocksDB's business.
    pub fn decode_kv(&self, state: usize, key: &[u8], value: &[u8]) -> R<Entry> {
        let mut out = VecDeque::with_capacity(1);
        self.decode_kv_into(state, key, value, &mut out)?;
        // decode_kv_into appends exactly one entry when it succeeds.
        out.pop_back().ok_or_else(|| Cursor::within(key, ValuePart::Key).error_at(DecodeErrorKind::Invalid("the pair gave no entry".into()), 0))
    }

    /// [`KeyedDecoder::decode_kv`] appending the entry to `out`: built where it stays until read
    /// (an entry is ~400 bytes; each move of it is a copy).
    pub fn decode_kv_into(&self, state: usize, key: &[u8], value: &[u8], out: &mut VecDeque<Entry>) -> R<()> {
        let k = Cursor::within(key, ValuePart::Key);
        let v = Cursor::within(value, ValuePart::Value);
        let d = self
            .decoders
            .get(state)
            .ok_or_else(|| k.error_at(DecodeErrorKind::InvalidValue { what: "kv state id", value: state as i64 }, 0))?;
        let kg = self.key_group_of(key).ok_or_else(|| k.error_at(DecodeErrorKind::Invalid("key shorter than its key-group prefix".into()), 0))?;
        self.decode_pair(d, kg, k, v, out).context_with(|| format!("state {:?}", d.name))
    }

    /// Decodes one pair of key group `kg` from cursors over the key and the value (whose frames
    /// say what their offsets count): its one entry appended to `out` (no vector per pair: that
    /// was an allocation per entry), nothing on an error.
    pub(super) fn decode_pair(&self, d: &StateDecoder, kg: u32, mut k: Cursor<'_>, mut v: Cursor<'_>, out: &mut VecDeque<Entry>) -> R<()> {
        let key_at = k.position();
        let stored_kg = if self.key_group_prefix == 2 { k.u16("key-group prefix")? as u32 } else { k.u8("key-group prefix")? as u32 };
        if stored_kg != kg {
            return Err(k.error_at(DecodeErrorKind::Invalid(format!("entry of key group {stored_kg} inside key group {kg}")), key_at));
        }
        let value = {
            let mut all = v.clone();
            all.rest()
        };
        if self.values == ValueParts::Key {
            // Checked, not built; anything the check does not vouch for is decoded below.
            if self.checked_pair(d, kg, k.clone(), v.clone(), value, out).is_some() {
                return Ok(());
            }
        }
        if d.kind == StateKind::Timer {
            if d.value_opaque {
                out.push_back(self.untyped_timer(d, kg, k, value)?);
                return Ok(());
            }
            let (timestamp, tkey, tns, key_bytes, ns_bytes) = decode_timer(&d.value, &mut k)?;
            k.expect_end("timer key")?;
            let raw = RawEntry { key: self.key_bytes(key_bytes), namespace: self.other_bytes(ns_bytes), user_key: None, value: self.other_bytes(value), stored_key: None };
            out.push_back(self.entry(d, kg, tkey, tns, None, Value::Int(timestamp), None, raw));
            return Ok(());
        }
        let key_ser = &self.key_serializer;
        let ns_ser = d.namespace.as_ref().ok_or_else(|| k.error(DecodeErrorKind::Invalid("no namespace serializer".into())))?;
        if d.key_or_namespace_opaque {
            out.push_back(self.untyped_key(d, kg, k, v)?);
            return Ok(());
        }
        let ambiguous = d.ambiguous;
        let (key_value, key_bytes) = decode_slice(key_ser, &mut k)?;
        if ambiguous {
            skip_length_suffix(&mut k, key_bytes.len())?;
        }
        let (ns_value, ns_bytes) = decode_slice(ns_ser, &mut k)?;
        if ambiguous {
            skip_length_suffix(&mut k, ns_bytes.len())?;
        }
        let raw = |user_key: Option<&[u8]>| self.raw_entry(key_bytes, ns_bytes, user_key, value);
        match d.kind {
            StateKind::Map => {
                let (uk_ser, uv_ser) = d.value.map_key_value().ok_or_else(|| k.error(DecodeErrorKind::Invalid("map state without a map serializer".into())))?;
                let uk_bytes = k.clone().rest();
                let user_key = decode_rest(uk_ser, &mut k)?;
                let (value, ttl) = map_value(uv_ser, &mut v)?;
                out.push_back(self.entry(d, kg, key_value, ns_value, Some(user_key), value, ttl, raw(Some(uk_bytes))));
                Ok(())
            }
            StateKind::List => {
                k.expect_end("list state key")?;
                let (value, ttl) = list_value(d, &mut v)?;
                out.push_back(self.entry(d, kg, key_value, ns_value, None, value, ttl, raw(None)));
                Ok(())
            }
            _ => {
                k.expect_end("state key")?;
                let (value, ttl) = decode_value_rest(&d.value, &mut v)?;
                out.push_back(self.entry(d, kg, key_value, ns_value, None, value, ttl, raw(None)));
                Ok(())
            }
        }
    }

    /// [`KeyedDecoder::decode_pair`] after the key-group prefix with only the key built
    /// ([`ValueParts::Key`]): the same entries but for the placeholders, or `None` where the
    /// decode must tell (corrupt bytes, opaque parts).
    fn checked_pair(&self, d: &StateDecoder, kg: u32, mut k: Cursor<'_>, mut v: Cursor<'_>, value: &[u8], out: &mut VecDeque<Entry>) -> Option<()> {
        if d.kind == StateKind::Timer {
            if d.value_opaque {
                return None;
            }
            let (timestamp, tkey, key_bytes, ns_bytes) = check::timer(&d.value, &mut k)?;
            if !k.is_empty() {
                return None;
            }
            let raw = RawEntry { key: self.key_bytes(key_bytes), namespace: self.other_bytes(ns_bytes), user_key: None, value: self.other_bytes(value), stored_key: None };
            out.push_back(self.entry(d, kg, tkey, Value::Null, None, Value::Int(timestamp), None, raw));
            return Some(());
        }
        let key_ser = &self.key_serializer;
        let ns_ser = d.namespace.as_ref()?;
        if d.key_or_namespace_opaque {
            return None;
        }
        let ambiguous = d.ambiguous;
        let (key_value, key_bytes) = decode_slice(key_ser, &mut k).ok()?;
        if ambiguous {
            skip_length_suffix(&mut k, key_bytes.len()).ok()?;
        }
        let ns_bytes = check::slice(ns_ser, &mut k)?;
        if ambiguous {
            skip_length_suffix(&mut k, ns_bytes.len()).ok()?;
        }
        let raw = |user_key: Option<&[u8]>| self.raw_entry(key_bytes, ns_bytes, user_key, value);
        let (user_key, ttl, uk_bytes) = match d.kind {
            StateKind::Map => {
                let (uk_ser, uv_ser) = d.value.map_key_value()?;
                let uk_bytes = k.clone().rest();
                check::rest(uk_ser, &mut k)?;
                let ttl = if v.bool("").ok()? {
                    v.is_empty().then_some(None)?
                } else {
                    check::value_rest(uv_ser, &mut v)?
                };
                (Some(Value::Null), ttl, Some(uk_bytes))
            }
            StateKind::List => {
                let elem = d.value.list_element()?;
                if !k.is_empty() || d.element_opaque {
                    return None;
                }
                (None, check::delimited(elem, &mut v)?, None)
            }
            _ => {
                if !k.is_empty() {
                    return None;
                }
                (None, check::value_rest(&d.value, &mut v)?, None)
            }
        };
        out.push_back(self.entry(d, kg, key_value, Value::Null, user_key, Value::Null, ttl, raw(uk_bytes)));
        Some(())
    }

    /// A pair of a state whose key or namespace serializer flinksnap cannot interpret. Where the
    /// layout still says exactly where the parts are, they are split: a key before a fixed-length
    /// namespace (no length suffixes then), a namespace after a fixed-length key. Otherwise the
    /// key, namespace and user key stay together: `key` is the stored bytes after the key-group
    /// prefix, opaque, and [`RawEntry::stored_key`] keeps them for writers.
    fn untyped_key(&self, d: &StateDecoder, kg: u32, mut k: Cursor<'_>, mut v: Cursor<'_>) -> R<Entry> {
        let key_ser = &self.key_serializer;
        let ns_ser = d.namespace.as_ref().ok_or_else(|| k.error(DecodeErrorKind::Invalid("no namespace serializer".into())))?;
        let value = v.clone().rest().to_vec();
        let rest = k.clone().rest();
        let (value_value, ttl) = match d.kind {
            StateKind::Map => match d.value.map_key_value() {
                Some((_, uv)) => map_value(uv, &mut v)?,
                None => return Err(k.error(DecodeErrorKind::Invalid("map state without a map serializer".into()))),
            },
            StateKind::List => list_value(d, &mut v)?,
            _ => decode_value_rest(&d.value, &mut v)?,
        };
        if d.kind != StateKind::Map {
            // A fixed-length namespace after an unknown key: no suffixes, the namespace is the tail.
            if let (true, false, Some(ns_len)) = (key_ser.is_opaque(), ns_ser.is_opaque(), ns_ser.exact_len()) {
                if let Some(split) = rest.len().checked_sub(ns_len) {
                    let (kb, nb) = rest.split_at(split);
                    let mut nc = Cursor::in_frame(nb, k.frame(), k.position() + split as u64);
                    let ns_value = decode_rest(ns_ser, &mut nc)?;
                    let key_value = Value::opaque(key_ser.undecodable_class().to_owned(), kb.to_vec());
                    let raw = RawEntry { key: kb.to_vec(), namespace: nb.to_vec(), user_key: None, value, stored_key: None };
                    return Ok(self.entry(d, kg, key_value, ns_value, None, value_value, ttl, raw));
                }
            }
            // An unknown namespace after a fixed-length key: no suffixes, the namespace is the rest.
            if !key_ser.is_opaque() && key_ser.fixed_length().is_some() {
                let (key_value, key_bytes) = decode_slice(key_ser, &mut k)?;
                let nb = k.clone().rest().to_vec();
                let ns_value = decode_rest(ns_ser, &mut k)?;
                let raw = RawEntry { key: key_bytes.to_vec(), namespace: nb, user_key: None, value, stored_key: None };
                return Ok(self.entry(d, kg, key_value, ns_value, None, value_value, ttl, raw));
            }
        }
        let class = key_ser.unknown().or_else(|| ns_ser.unknown()).map_or_else(|| key_ser.undecodable_class(), |u| u.class_name());
        let key_value = Value::opaque(class.to_owned(), rest.to_vec());
        let raw = RawEntry { key: Vec::new(), namespace: Vec::new(), user_key: None, value, stored_key: Some(rest.to_vec()) };
        let mut e = self.entry(d, kg, key_value, Value::Null, None, value_value, ttl, raw);
        e.namespace = None;
        Ok(e)
    }

    /// A timer whose key or namespace serializer flinksnap cannot interpret: `i64` timestamp,
    /// then key and namespace together, opaque (split where the namespace has a fixed length).
    fn untyped_timer(&self, d: &StateDecoder, kg: u32, mut k: Cursor<'_>, value: &[u8]) -> R<Entry> {
        let timestamp = k.i64("timer timestamp")? ^ i64::MIN;
        let rest = k.clone().rest();
        let (key_ser, ns_ser) = d.value.timer_key_namespace().ok_or_else(|| k.error(DecodeErrorKind::Invalid(format!("timer state with serializer {}", d.value.class_name()))))?;
        let raw = |key: &[u8], ns: &[u8], stored: Option<Vec<u8>>| RawEntry { key: key.to_vec(), namespace: ns.to_vec(), user_key: None, value: value.to_vec(), stored_key: stored };
        if !ns_ser.is_opaque() {
            if let Some(split) = ns_ser.exact_len().and_then(|n| rest.len().checked_sub(n)) {
                let (kb, nb) = rest.split_at(split);
                let key = if key_ser.is_opaque() {
                    Value::opaque(key_ser.undecodable_class().to_owned(), kb.to_vec())
                } else {
                    decode_rest(key_ser, &mut Cursor::in_frame(kb, k.frame(), k.position()))?
                };
                let ns = decode_rest(ns_ser, &mut Cursor::in_frame(nb, k.frame(), k.position() + split as u64))?;
                return Ok(self.entry(d, kg, key, ns, None, Value::Int(timestamp), None, raw(kb, nb, None)));
            }
        }
        if !key_ser.is_opaque() {
            let (key, kb) = decode_slice(key_ser, &mut k)?;
            let nb = k.clone().rest().to_vec();
            let ns = decode_rest(ns_ser, &mut k)?;
            return Ok(self.entry(d, kg, key, ns, None, Value::Int(timestamp), None, raw(kb, &nb, None)));
        }
        let key = Value::opaque(key_ser.undecodable_class().to_owned(), rest.to_vec());
        let mut e = self.entry(d, kg, key, Value::Null, None, Value::Int(timestamp), None, raw(&[], &[], Some(rest.to_vec())));
        e.namespace = None;
        Ok(e)
    }
}

/// A map value: the null flag, then the value (opaque where its serializer cannot be read).
fn map_value(uv_ser: &TypeSerializer, v: &mut Cursor<'_>) -> R<(Value, Option<i64>)> {
    if v.bool("map value null flag")? {
        v.expect_end("map value")?;
        Ok((Value::Null, None))
    } else {
        decode_value_rest(uv_ser, v)
    }
}

/// A list value: elements joined by `,`. Elements of a serializer flinksnap cannot interpret have
/// no length: a value without the delimiter byte is one element, opaque; otherwise the elements
/// cannot be told apart and the whole value is opaque.
fn list_value(d: &StateDecoder, v: &mut Cursor<'_>) -> R<(Value, Option<i64>)> {
    let elem = d.value.list_element().ok_or_else(|| v.error(DecodeErrorKind::Invalid("list state without a list serializer".into())))?;
    if d.element_opaque {
        let bytes = v.clone().rest();
        if !bytes.contains(&LIST_DELIMITER) {
            let (item, ttl) = decode_value_rest(elem, v)?;
            return Ok((Value::List(vec![item]), ttl));
        }
        v.rest();
        let class = elem.undecodable_class().to_owned();
        return Ok((Value::opaque(class, bytes.to_vec()), None));
    }
    let mut items = Vec::new();
    let mut ttl = None;
    for_each_delimited(elem, v, |item, t, _| {
        items.push(item);
        ttl = ttl.max(t);
    })?;
    Ok((Value::List(items), ttl))
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
