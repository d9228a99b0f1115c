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
        let s = s.as_ref()?;
        if c.bool("").ok()? {
            Some(())
        } else {
            s.check_at(c, d, tail && i == last_index)
        }
    })
}

/// The table runtime's serializers: the nested ones walked, fixed-size ones skipped, binary
/// rows, arrays and maps (whose fields the decode checks one by one) decoded.
fn check_table(ser: &TypeSerializer, t: &T, c: &mut Cursor<'_>, depth: usize, d: usize, tail: bool) -> C {
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
                if c.bool("").ok()? {
                    Some(())
                } else {
                    value.check_at(c, d, false)
                }
            })
        }
        T::NullAwareMap(key, value) => {
            let n = c.count("", 2).ok()?;
            (0..n).try_for_each(|_| {
                if !c.bool("").ok()? {
                    key.check_at(c, d, false)?;
                }
                if c.bool("").ok()? {
                    Some(())
                } else {
                    value.check_at(c, d, false)
                }
            })
        }
        T::Fields { fields, .. } => {
            let n = fields.len();
            fields.iter().enumerate().try_for_each(|(i, f)| f.check_at(c, d, tail && i + 1 == n))
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
