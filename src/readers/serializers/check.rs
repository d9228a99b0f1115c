//! The checking walk: whether the bytes at the cursor hold one value [`TypeSerializer::decode_at`]
//! decodes completely (no part opaque or undecodable), and where it ends — without building the
//! value. Readers that only need to know that a value is sound and where it ends (`verify`,
//! `convert`: [`crate::model::ValueParts::Key`]) walk with it and fall back to the full decode
//! whenever it says no, so errors and opaque values stay what the decode makes of them
//! (`formats/serializers.md` § "Checking without decoding").
//!
//! Contract: `check_at` returns `Some(())` only where `decode_at` returns a value without opaque
//! parts, and then leaves the cursor where `decode_at` leaves it. `None` says nothing more (the
//! bytes may be corrupt, opaque, or just of a kind the walk does not know): the caller decodes.

use super::consts::{self, pojo_flags};
use super::decode::decode_simple;
use super::table::TableSerializer as T;
use super::{strings, PojoSerializer, SerializerKind as K, SimpleType, TypeSerializer, MAX_DEPTH};
use crate::bytes::Cursor;

/// `Some(())`: the value is sound; `None`: decode it to learn what it is.
type C = Option<()>;

impl TypeSerializer {
    /// Checks one value at the cursor without building it (see the module doc): `Some(())` only
    /// where [`TypeSerializer::decode_at`] gives a value with no opaque part, the cursor then
    /// where the decode leaves it.
    pub(crate) fn check_at(&self, c: &mut Cursor<'_>, depth: usize, tail: bool) -> C {
        if depth > MAX_DEPTH {
            return None;
        }
        let d = depth + 1;
        match &self.kind {
            K::Simple(t) => check_simple(*t, c),
            K::PrimitiveArray(t) => {
                let min = match t {
                    SimpleType::String => 1,
                    other => other.min_len().max(1),
                };
                let n = c.count("", min).ok()?;
                match plain_len(*t) {
                    Some(len) => c.skip(n.saturating_mul(len), "").ok(),
                    None => (0..n).try_for_each(|_| check_simple(*t, c)),
                }
            }
            K::Enum { constants, .. } => {
                let i = c.i32("").ok()?;
                usize::try_from(i).ok().filter(|&i| i < constants.len()).map(drop)
            }
            K::List(e) => {
                let n = c.count("", e.min_len().max(1)).ok()?;
                (0..n).try_for_each(|_| e.check_at(c, d, false))
            }
            K::Map(k, v) => {
                let n = c.count("", k.min_len().max(1).saturating_add(1)).ok()?;
                (0..n).try_for_each(|_| {
                    k.check_at(c, d, false)?;
                    if c.bool("").ok()? {
                        Some(())
                    } else {
                        v.check_at(c, d, false)
                    }
                })
            }
            K::Set(e) => flagged_elements(c, e, d, true),
            K::GenericArray { element, .. } | K::ScalaTraversable { element, .. } => flagged_elements(c, element, d, false),
            K::Tuple { fields, .. } | K::ScalaProduct { fields, .. } => {
                let n = fields.len();
                fields.iter().enumerate().try_for_each(|(i, f)| {
                    let last = i + 1 == n;
                    // `positional` gives an undecodable field in a frame its own sub-frame: leave
                    // that to the decode.
                    if tail && !last && f.is_opaque() {
                        return None;
                    }
                    f.check_at(c, d, tail && last)
                })
            }
            K::Row { fields, supports_row_kind } => {
                let offset = if *supports_row_kind { 2 } else { 0 };
                let mask = c.bytes((fields.len() + offset).div_ceil(8), "").ok()?;
                let bit = |i: usize| mask[i / 8] & (0x80 >> (i % 8)) != 0;
                let last_present = (0..fields.len()).rev().find(|&i| !bit(offset + i));
                fields.iter().enumerate().try_for_each(|(i, f)| if bit(offset + i) { Some(()) } else { f.check_at(c, d, tail && Some(i) == last_present) })
            }
            K::Pojo(p) => check_pojo(self, c, p, depth, d, tail),
            K::Nullable { padding, inner } => {
                if c.bool("").ok()? {
                    c.skip(*padding as usize, "").ok()
                } else {
                    inner.check_at(c, d, tail)
                }
            }
            K::Either(l, r) | K::ScalaEither(l, r) => {
                if c.bool("").ok()? {
                    l.check_at(c, d, tail)
                } else {
                    r.check_at(c, d, tail)
                }
            }
            K::ScalaOption(e) => {
                if c.bool("").ok()? {
                    e.check_at(c, d, tail)
                } else {
                    Some(())
                }
            }
            K::GenericValue { class } => match consts::known_value_class(class) {
                Some(SimpleType::NullValue) => c.u8("").ok().map(drop),
                Some(t) => check_simple(t, c),
                None => None,
            },
            K::Ttl { timestamp, value } => {
                timestamp.check_at(c, d, false)?;
                value.check_at(c, d, tail)
            }
            K::Timer { key, namespace } => {
                c.i64("").ok()?;
                key.check_at(c, d, false)?;
                namespace.check_at(c, d, tail)
            }
            K::Table(t) => check_table(self, t, c, depth, d, tail),
            K::Opaque { .. } | K::Kryo { .. } => None,
            // Rare or intricate: the decode, its value dropped.
            K::Avro(_) | K::ScalaTry { .. } | K::ScalaEnum { .. } | K::JavaSerialized | K::StreamElement(_) | K::Cep(_) => decoded(self, c, depth, tail),
        }
    }
}

/// The fallback: decodes the value and drops it; `None` where the decode fails or the value has
/// an opaque part.
fn decoded(ser: &TypeSerializer, c: &mut Cursor<'_>, depth: usize, tail: bool) -> C {
    let v = ser.decode_at(c, depth, tail).ok()?;
    (v.opaque_count() == 0).then_some(())
}

/// `decode.rs`' `flagged_elements`: `i32 n`, per element a `bool` flag and the element.
fn flagged_elements(c: &mut Cursor<'_>, e: &TypeSerializer, d: usize, true_is_null: bool) -> C {
    let n = c.count("", 1).ok()?;
    (0..n).try_for_each(|_| if c.bool("").ok()? == true_is_null { Some(()) } else { e.check_at(c, d, false) })
}

/// `decode.rs`' `decode_pojo`, the common case (no subclass) walked, subclasses decoded.
fn check_pojo(ser: &TypeSerializer, c: &mut Cursor<'_>, p: &PojoSerializer, depth: usize, d: usize, tail: bool) -> C {
    let flags = *c.peek(1)?.first()?;
    if flags & pojo_flags::IS_NULL != 0 {
        return c.skip(1, "").ok();
    }
    if flags & (pojo_flags::IS_SUBCLASS | pojo_flags::IS_TAGGED_SUBCLASS) != 0 {
        return decoded(ser, c, depth, tail);
    }
    if flags & pojo_flags::NO_SUBCLASS == 0 {
        return None;
    }
    c.skip(1, "").ok()?;
    let last_index = p.fields.len().saturating_sub(1);
    p.fields.iter().enumerate().try_for_each(|(i, (_, s))| {
        // A field without a serializer is undecodable (`is_self_opaque`): the decode says so.
        check_unless_null(s.as_ref()?, c, d, tail && i == last_index)
    })
}

/// A null flag (`true`: null, nothing follows), then the value: how POJO fields and the values
/// (and null-aware keys) of the table runtime's maps are written.
fn check_unless_null(s: &TypeSerializer, c: &mut Cursor<'_>, d: usize, tail: bool) -> C {
    if c.bool("").ok()? {
        Some(())
    } else {
        s.check_at(c, d, tail)
    }
}

/// The table runtime's serializers: `RowData` and the other binary formats walked in
/// `table/decode.rs`, the nested ones here, fixed-size ones skipped; binary arrays, maps and raw
/// values decoded.
fn check_table(ser: &TypeSerializer, t: &T, c: &mut Cursor<'_>, depth: usize, d: usize, tail: bool) -> C {
    if let Some(r) = super::table::check_value(t, c, d) {
        return r;
    }
    match t {
        T::External { internal, .. } | T::ListView(internal) | T::MapView(internal) | T::RowDataKey(internal) => internal.check_at(c, d, tail),
        T::WindowKey(key) => {
            c.i64("").ok()?;
            key.check_at(c, d, tail)
        }
        T::TimeWindow => c.skip(16, "").ok(),
        T::CountWindow | T::SortedLong => c.skip(8, "").ok(),
        T::GlobalWindow | T::Null => c.skip(1, "").ok(),
        T::SortedMap { key, value, .. } => {
            let n = c.count("", key.min_len().max(1).saturating_add(1)).ok()?;
            (0..n).try_for_each(|_| {
                key.check_at(c, d, false)?;
                check_unless_null(value, c, d, false)
            })
        }
        T::LinkedList { element, null_mask } => {
            let n = c.count("", if *null_mask { 0 } else { element.min_len().max(1) }).ok()?;
            let mask = if *null_mask { Some(c.bytes(n.div_ceil(8), "").ok()?) } else { None };
            (0..n).try_for_each(|i| if mask.is_some_and(|m| m[i / 8] & (0x80 >> (i % 8)) != 0) { Some(()) } else { element.check_at(c, d, false) })
        }
        T::NullAwareMap(key, value) => {
            let n = c.count("", 2).ok()?;
            (0..n).try_for_each(|_| {
                check_unless_null(key, c, d, false)?;
                check_unless_null(value, c, d, false)
            })
        }
        T::Fields { names, fields } => {
            // As the decode: the fields that have a name.
            let n = fields.len();
            names.iter().zip(fields).enumerate().try_for_each(|(i, (_, f))| f.check_at(c, d, tail && i + 1 == n))
        }
        _ => decoded(ser, c, depth, tail),
    }
}

/// `decode_simple` without the value: fixed sizes skipped, strings walked, the few types the
/// decode validates (dates, times, big numbers) decoded.
fn check_simple(t: SimpleType, c: &mut Cursor<'_>) -> C {
    use SimpleType as S;
    if let Some(len) = plain_len(t) {
        return c.skip(len, "").ok();
    }
    match t {
        S::String => strings::check_fstr(c),
        S::StringValue => strings::check_string_value(c),
        S::NullValue => Some(()),
        S::ScalaNothing => None,
        _ => decode_simple(t, c).ok().map(drop),
    }
}

/// The bytes of a simple type whose every bit pattern the decode accepts (a `bool` is any byte
/// but 0 for true); `None` for the others.
fn plain_len(t: SimpleType) -> Option<usize> {
    use SimpleType as S;
    match t {
        S::Boolean
        | S::BooleanValue
        | S::Byte
        | S::ByteValue
        | S::Short
        | S::ShortValue
        | S::Int
        | S::IntValue
        | S::Long
        | S::LongValue
        | S::Float
        | S::FloatValue
        | S::Double
        | S::DoubleValue
        | S::Char
        | S::CharValue
        | S::Date
        | S::SqlDate
        | S::SqlTime
        | S::Void
        | S::VoidNamespace
        | S::GlobalWindow
        | S::ScalaUnit
        | S::Tuple0 => Some(t.min_len()),
        S::TimeWindow => Some(16),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::super::TypeSerializer;
    use crate::bytes::Cursor;
    use crate::model::StateKind;
    use crate::readers::entries::tests::every_fixture;
    use crate::readers::entries::{Selection, SnapshotEntries};
    use crate::readers::meta::{NAMESPACE_SERIALIZER, VALUE_SERIALIZER};
    use crate::readers::source::KeyedSource;
    use crate::snapshot::Snapshot;

    /// Stored parts of the fixtures' keyed entries with their serializers and whether they fill
    /// their frame (`tail`): keys, namespaces, timers, values, user keys, map values, first list
    /// elements; a few entries of each state of each fixture.
    fn samples() -> Vec<(TypeSerializer, Vec<u8>, bool)> {
        let mut out = Vec::new();
        for m in every_fixture() {
            let Ok(s) = Snapshot::open(Arc::new(crate::storage::LocalStorage), m.to_str().unwrap()) else { continue };
            let selection = Selection::default();
            for sub in SnapshotEntries::subtasks(&s, &selection) {
                let Ok(Some(mut source)) = KeyedSource::open(&s, sub, &selection) else { continue };
                let meta = source.meta().clone();
                let key_ser = source.key_serializer().clone();
                let mut per_state: HashMap<String, usize> = HashMap::new();
                for kg in source.key_groups().unwrap_or_default() {
                    let Ok(entries) = source.read_key_group(kg) else { break };
                    for e in entries {
                        let Ok(e) = e else { break };
                        let seen = per_state.entry(e.state.to_string()).or_default();
                        *seen += 1;
                        if *seen > 3 || e.raw.stored_key.is_some() {
                            continue;
                        }
                        let Some(st) = meta.states.iter().find(|x| *x.name == *e.state) else { continue };
                        let Some(value) = st.serializer(VALUE_SERIALIZER) else { continue };
                        let r = &e.raw;
                        out.push((key_ser.clone(), r.key.clone(), false));
                        if e.kind == StateKind::Timer {
                            let crate::model::value::Value::Int(ts) = e.value else { continue };
                            let mut b = (ts ^ i64::MIN).to_be_bytes().to_vec();
                            b.extend_from_slice(&r.key);
                            b.extend_from_slice(&r.namespace);
                            out.push((value.clone(), b, false));
                            continue;
                        }
                        if let Some(ns) = st.serializer(NAMESPACE_SERIALIZER) {
                            out.push((ns.clone(), r.namespace.clone(), false));
                        }
                        match e.kind {
                            StateKind::Map => {
                                let Some((uk, uv)) = value.map_key_value() else { continue };
                                out.push((uk.clone(), r.user_key.clone().unwrap_or_default(), true));
                                if r.value.first() == Some(&0) {
                                    out.push((uv.clone(), r.value[1..].to_vec(), true));
                                }
                            }
                            StateKind::List => {
                                if let Some(elem) = value.list_element() {
                                    out.push((elem.clone(), r.value.clone(), false));
                                }
                            }
                            _ => out.push((value.clone(), r.value.clone(), true)),
                        }
                    }
                }
            }
        }
        out
    }

    /// The stored bytes, every truncation, single bytes changed (to 0, 0x80, flipped, plus 1)
    /// in the first 64 positions, a byte appended, and the stored bytes followed by or with
    /// their tail replaced by pseudo-random bytes (xorshift, seeded by the bytes).
    fn mutations(b: &[u8]) -> Vec<Vec<u8>> {
        let mut x = b.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &v| (h ^ u64::from(v)).wrapping_mul(0x100_0000_01b3)) | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        };
        let mut random = Vec::new();
        for cut in [0, b.len() / 4, b.len() / 2, b.len()] {
            let mut m = b[..cut].to_vec();
            let len = usize::from(next() % 48);
            m.extend((0..len).map(|_| next()));
            random.push(m);
        }
        let mut out = vec![b.to_vec()];
        out.extend((0..b.len()).map(|i| b[..i].to_vec()));
        for p in 0..b.len().min(64) {
            for f in [|_: u8| 0u8, |_| 0x80, |x: u8| x ^ 0xff, |x: u8| x.wrapping_add(1)] {
                let mut m = b.to_vec();
                m[p] = f(m[p]);
                out.push(m);
            }
        }
        let mut longer = b.to_vec();
        longer.push(b',');
        out.push(longer);
        out.extend(random);
        out
    }

    /// Over the fixtures' stored bytes and their mutations: `check_at` accepts only where
    /// `decode_at` gives a value without an opaque part, and then ends where the decode ends;
    /// and for serializers without an opaque part it accepts wherever the decode succeeds.
    #[test]
    fn check_accepts_what_decode_decodes_and_ends_where_it_ends() {
        let samples = samples();
        assert!(samples.len() > 1000, "{} samples", samples.len());
        let (mut accepted, mut rejected) = (0usize, 0usize);
        for (ser, bytes, tail) in &samples {
            for m in mutations(bytes) {
                let mut dc = Cursor::new(&m);
                let decoded = ser.decode_at(&mut dc, 0, *tail);
                let mut cc = Cursor::new(&m);
                let checked = ser.check_at(&mut cc, 0, *tail);
                let clean = matches!(&decoded, Ok(v) if v.opaque_count() == 0);
                if checked.is_some() {
                    assert!(clean, "{} {m:x?} tail {tail}: checked, decode gives {decoded:?}", ser.class_name());
                    assert_eq!(cc.position(), dc.position(), "{} {m:x?} tail {tail}", ser.class_name());
                    accepted += 1;
                } else {
                    assert!(!clean || ser.is_opaque(), "{} {m:x?} tail {tail}: decoded {decoded:?}, not checked", ser.class_name());
                    rejected += 1;
                }
            }
        }
        assert!(accepted > 10_000 && rejected > 10_000, "{accepted} accepted, {rejected} rejected");
    }
}
