//! Key → key group: the Java `hashCode()` of a decoded key, and Flink's murmur mix
//! (`KeyGroupRangeAssignment.assignToKeyGroup`, `MathUtils.murmurHash`).

use super::{SerializerKind as K, SimpleType as S, TypeSerializer};
use crate::model::value::Value;

/// The Java `hashCode()` of a key decoded by `ser`, for the key types whose hash is defined by
/// value: `Long`, `Integer`, `Short`, `Byte`, `Boolean`, `Double`, `Float`, `Character`,
/// `String`, Java tuples and `Row`s of these. `None` where Java's hash is not computable from the
/// value (POJOs, enums (identity hash), opaque values, other types).
///
/// Strings hash over UTF-16 code units; a Java string with a lone surrogate decodes to U+FFFD
/// and so hashes differently here.
pub fn java_hash_code(ser: &TypeSerializer, v: &Value) -> Option<i32> {
    match (&ser.kind, v) {
        (K::Simple(t), v) => simple_hash(*t, v),
        (K::Tuple { fields, .. }, Value::Struct { fields: values }) if fields.len() == values.len() => {
            // Tuple2.hashCode (and every TupleN): h = 31 * h + (f == null ? 0 : f.hashCode()),
            // from h = 0. Verified against Flink 2.3.0 for Tuple2; the other arities follow
            // the same generated pattern.
            let mut h: i32 = 0;
            for (s, (_, x)) in fields.iter().zip(values) {
                let fh = if *x == Value::Null { 0 } else { java_hash_code(s, x)? };
                h = h.wrapping_mul(31).wrapping_add(fh);
            }
            Some(h)
        }
        (K::Row { fields, .. }, Value::Row { kind, fields: values }) if fields.len() == values.len() => {
            // Row.hashCode = RowUtils.deepHashCodeRow(kind, fieldByPosition, …):
            // 31 * kind.toByteValue() + deepHashCodeArray(fields), where deepHashCodeArray
            // starts at 1 and adds, per field, 0 for null and otherwise
            // Arrays.deepHashCode(new Object[]{field}) = 31 + field.hashCode() (read from the
            // 1.15.4 and 2.3.0 jars). Holds for rows built by position; rows built with
            // Row.withNames() hash their name map instead.
            let mut h: i32 = 1;
            for (s, (_, x)) in fields.iter().zip(values) {
                let fh = if *x == Value::Null { 0 } else { 31i32.wrapping_add(java_hash_code(s, x)?) };
                h = h.wrapping_mul(31).wrapping_add(fh);
            }
            Some(31i32.wrapping_mul(i32::from(kind.to_byte())).wrapping_add(h))
        }
        _ => None,
    }
}

fn simple_hash(t: S, v: &Value) -> Option<i32> {
    Some(match (t, v) {
        // Long.hashCode: (int) (value ^ (value >>> 32)).
        (S::Long, Value::Int(x)) => (*x ^ ((*x as u64) >> 32) as i64) as i32,
        (S::Int | S::Short | S::Byte, Value::Int(x)) => *x as i32,
        (S::Boolean, Value::Bool(b)) => {
            if *b {
                1231
            } else {
                1237
            }
        }
        (S::Char, Value::Char(c)) => i32::from(*c),
        // Double.hashCode over doubleToLongBits (NaN canonical).
        (S::Double, Value::Float(f)) => {
            let bits = if f.is_nan() { 0x7ff8_0000_0000_0000u64 } else { f.to_bits() };
            (bits ^ (bits >> 32)) as i32
        }
        // Float.hashCode = floatToIntBits (NaN canonical).
        (S::Float, Value::Float(f)) => {
            let f = *f as f32;
            if f.is_nan() {
                0x7fc0_0000
            } else {
                f.to_bits() as i32
            }
        }
        (S::String, Value::String(s)) => s.encode_utf16().fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u))),
        _ => return None,
    })
}

/// The `hashCode()` of a key that `ser` decoded to `key` from the serialized bytes `raw`: for
/// SQL keys (`RowData`, `BinaryRowData`: always a `BinaryRowData` at runtime) the hash of the row
/// bytes that follow the serializer's length prefix (`table::binary_row_hash_code`), for every
/// other key [`java_hash_code`] of the value.
pub fn key_hash_code(ser: &TypeSerializer, key: &Value, raw: &[u8]) -> Option<i32> {
    use super::table::TableSerializer as T;
    match ser.table() {
        Some(T::RowData { .. } | T::BinaryRow { .. }) => {
            let (len, row) = raw.split_first_chunk::<4>()?;
            (i32::from_be_bytes(*len) as usize == row.len()).then(|| super::table::binary_row_hash_code(row))
        }
        Some(T::External { internal, .. }) => key_hash_code(internal, key, raw),
        _ => java_hash_code(ser, key),
    }
}

/// Whether [`key_hash_code`] reads the stored bytes of keys of `ser` (SQL row keys), not only
/// the decoded value.
pub fn key_hash_needs_bytes(ser: &TypeSerializer) -> bool {
    use super::table::TableSerializer as T;
    match ser.table() {
        Some(T::RowData { .. } | T::BinaryRow { .. }) => true,
        Some(T::External { internal, .. }) => key_hash_needs_bytes(internal),
        _ => false,
    }
}

/// [`RawParts::KeyForHash`](crate::model::RawParts::KeyForHash) resolved for keys of `ser`:
/// the key's bytes where [`key_hash_code`] needs them, else none; other parts as they are.
pub fn raw_for_key_hash(raw: crate::model::RawParts, ser: &TypeSerializer) -> crate::model::RawParts {
    use crate::model::RawParts;
    match raw {
        RawParts::KeyForHash if key_hash_needs_bytes(ser) => RawParts::Key,
        RawParts::KeyForHash => RawParts::None,
        raw => raw,
    }
}

/// `MathUtils.murmurHash(code)`: one murmur3 round and fmix32, made non-negative.
pub(crate) fn murmur_hash(code: i32) -> i32 {
    let mut c = code as u32;
    c = c.wrapping_mul(0xCC9E_2D51);
    c = c.rotate_left(15);
    c = c.wrapping_mul(0x1B87_3593);
    c = c.rotate_left(13);
    c = c.wrapping_mul(5).wrapping_add(0xE654_6B64);
    c ^= 4;
    c ^= c >> 16;
    c = c.wrapping_mul(0x85EB_CA6B);
    c ^= c >> 13;
    c = c.wrapping_mul(0xC2B2_AE35);
    c ^= c >> 16;
    let c = c as i32;
    if c >= 0 {
        c
    } else if c != i32::MIN {
        -c
    } else {
        0
    }
}

/// The key group of a key whose Java `hashCode()` is `hash`:
/// `murmurHash(hash) % maxParallelism` (`KeyGroupRangeAssignment.computeKeyGroupForKeyHash`).
/// A max parallelism of 0 (never valid in Flink) gives key group 0.
pub fn key_group_for_hash(hash: i32, max_parallelism: u32) -> u32 {
    (murmur_hash(hash) as u32).checked_rem(max_parallelism).unwrap_or(0)
}
