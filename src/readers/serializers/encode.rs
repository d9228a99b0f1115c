//! Values back into bytes: one [`Value`] as its serializer's `serialize` writes it, the inverse of
//! `decode.rs` (`formats/serializers.md` § Value encodings). What `flinksnap import` and `edit`
//! (`--forget-key`) write.
//!
//! Every value a serializer decodes encodes back to the same bytes (checked against every value
//! of the real-Flink fixtures, `tests.rs`), with these exceptions, which decode to the same value
//! in Flink: a `BigInteger` 0, 1 or 10 is written with `BigIntSerializer`'s short codes (as Java
//! writes the `BigInteger.ZERO`/`ONE`/`TEN` instances), and a string with a lone UTF-16 surrogate
//! (decoded as U+FFFD) comes back as U+FFFD.
//!
//! [`Value::Opaque`] (bytes flinksnap cannot interpret: Kryo, user `Value` types, unknown
//! serializers) is written back as its bytes, whatever the serializer: the decoder only produces
//! one where the bytes are delimited (a framed value, or a part that runs to the end of one).
//! Values of serializers flinksnap cannot write — Avro records, Java serialization, anything
//! given as a value where only opaque bytes can be written — are refused with the class named.

use super::consts::{self, pojo_flags};
use super::{strings, PojoSerializer, SerializerKind as K, SimpleType, TypeSerializer, MAX_DEPTH};
use crate::bytes::DataOutput;
use crate::consts::LIST_DELIMITER;
use crate::model::value::{RowKind, Value};

/// Why a value could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    /// Where inside the value, outermost first (`field f1`, `list element 3`, …).
    pub path: Vec<String>,
    /// What is wrong.
    pub message: String,
    /// The serializer cannot write values at all (Avro, Java serialization): not the value's fault.
    pub unsupported: bool,
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path.join(" / "), self.message)
        }
    }
}

impl std::error::Error for EncodeError {}

type E<T> = Result<T, EncodeError>;

pub(crate) fn bad(message: String) -> EncodeError {
    EncodeError { path: Vec::new(), message, unsupported: false }
}

pub(crate) fn unsupported(message: String) -> EncodeError {
    EncodeError { path: Vec::new(), message, unsupported: true }
}

pub(crate) trait Within<T> {
    fn within(self, what: impl FnOnce() -> String) -> E<T>;
}

impl<T> Within<T> for E<T> {
    fn within(self, what: impl FnOnce() -> String) -> E<T> {
        self.map_err(|mut e| {
            e.path.insert(0, what());
            e
        })
    }
}


pub(crate) fn mismatch(expected: &str, v: &Value) -> EncodeError {
    bad(format!("expected {expected}, found {}", v.kind_name()))
}

impl TypeSerializer {
    /// Appends `v` as this serializer's `serialize` writes it.
    pub fn encode(&self, v: &Value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.encode_at(v, out, 0)
    }

    /// `v` as this serializer writes it.
    pub fn encode_to_vec(&self, v: &Value) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(v, &mut out)?;
        Ok(out)
    }

    pub(crate) fn encode_at(&self, v: &Value, out: &mut Vec<u8>, depth: usize) -> E<()> {
        if depth > MAX_DEPTH {
            return Err(bad(format!("values nested deeper than {MAX_DEPTH} levels")));
        }
        // Bytes flinksnap could not interpret go back as they came.
        if let Value::Opaque(o) = v {
            let bytes = &o.bytes;
            out.extend_from_slice(bytes);
            return Ok(());
        }
        let d = depth + 1;
        match &self.kind {
            K::Simple(t) => encode_simple(*t, v, out),
            K::PrimitiveArray(t) => encode_primitive_array(*t, v, out),
            K::Enum { class, constants } => {
                let Value::Enum(name) = v else { return Err(mismatch(&format!("a constant of {class}"), v)) };
                let i = constants.iter().position(|c| c == name).ok_or_else(|| bad(format!("{name:?} is not a constant of {class} ({})", constants.join(", "))))?;
                out.put_i32(i as i32);
                Ok(())
            }
            K::List(e) => {
                let Value::List(items) = v else { return Err(mismatch("a list", v)) };
                put_count(items.len(), out)?;
                for (i, item) in items.iter().enumerate() {
                    e.encode_at(item, out, d).within(|| format!("list element {i}"))?;
                }
                Ok(())
            }
            K::Map(k, val) => {
                let Value::Map(entries) = v else { return Err(mismatch("a map", v)) };
                put_count(entries.len(), out)?;
                for (i, (key, value)) in entries.iter().enumerate() {
                    k.encode_at(key, out, d).within(|| format!("map key {i}"))?;
                    match value {
                        Value::Null => out.put_bool(true),
                        value => {
                            out.put_bool(false);
                            val.encode_at(value, out, d).within(|| format!("map value {i}"))?;
                        }
                    }
                }
                Ok(())
            }
            K::Set(e) => flagged_elements(e, v, out, d, true),
            K::GenericArray { element, .. } | K::ScalaTraversable { element, .. } => flagged_elements(element, v, out, d, false),
            K::Tuple { fields, class } => {
                let Value::Struct { fields: values } = v else { return Err(mismatch(&format!("a {class}"), v)) };
                positional(fields, values, "f", 0, out, d)
            }
            K::ScalaProduct { fields, class } => {
                let Value::Struct { fields: values } = v else { return Err(mismatch(&format!("a {class}"), v)) };
                positional(fields, values, "_", 1, out, d)
            }
            K::Row { fields, supports_row_kind } => encode_row(fields, *supports_row_kind, v, out, d),
            K::Pojo(p) => encode_pojo(p, v, out, d),
            K::Nullable { padding, inner } => {
                if let Value::Null = v {
                    out.put_bool(true);
                    out.extend(std::iter::repeat_n(0u8, *padding as usize));
                    Ok(())
                } else {
                    out.put_bool(false);
                    inner.encode_at(v, out, d)
                }
            }
            K::Either(l, r) | K::ScalaEither(l, r) => match v {
                Value::Left(x) => {
                    out.put_bool(true);
                    l.encode_at(x, out, d).within(|| "left".into())
                }
                Value::Right(x) => {
                    out.put_bool(false);
                    r.encode_at(x, out, d).within(|| "right".into())
                }
                other => Err(mismatch("a left or right value", other)),
            },
            K::ScalaOption(e) => match v {
                Value::Null => {
                    out.put_bool(false);
                    Ok(())
                }
                v => {
                    out.put_bool(true);
                    e.encode_at(v, out, d)
                }
            },
            K::GenericValue { class } => match consts::known_value_class(class) {
                // NullValue.write writes `false`.
                Some(SimpleType::NullValue) => match v {
                    Value::Null => {
                        out.put_bool(false);
                        Ok(())
                    }
                    other => Err(mismatch("null (NullValue)", other)),
                },
                Some(t) => encode_simple(t, v, out),
                None => Err(unsupported(format!("values of {class} (a user Value type) can only be written as the opaque bytes they were read as"))),
            },
            K::Kryo { type_class, .. } => match v {
                // Kryo's class id 0: null.
                Value::Null => {
                    out.put_u8(0);
                    Ok(())
                }
                _ => Err(unsupported(format!("Kryo values (type {type_class}) can only be written as the opaque bytes they were read as"))),
            },
            K::Avro(a) => Err(unsupported(format!("Avro values ({}) cannot be written by flinksnap", a.runtime_class))),
            K::Ttl { timestamp, value } => {
                let Value::Struct { fields } = v else { return Err(mismatch("a TTL value {lastAccessTimestamp, userValue}", v)) };
                timestamp.encode_at(field(fields, "lastAccessTimestamp")?, out, d).within(|| "lastAccessTimestamp".into())?;
                value.encode_at(field(fields, "userValue")?, out, d).within(|| "userValue".into())
            }
            K::Timer { key, namespace } => {
                let Value::Struct { fields } = v else { return Err(mismatch("a timer {timestamp, key, namespace}", v)) };
                let Value::Int(ts) = field(fields, "timestamp")? else { return Err(bad("timer timestamp: expected an integer".into())) };
                out.put_i64(ts ^ i64::MIN);
                key.encode_at(field(fields, "key")?, out, d).within(|| "timer key".into())?;
                namespace.encode_at(field(fields, "namespace")?, out, d).within(|| "timer namespace".into())
            }
            K::ScalaTry { element, throwable } => {
                let Value::Struct { fields } = v else { return Err(mismatch("{success} or {failure}", v)) };
                match fields.as_slice() {
                    [(n, x)] if n == "success" => {
                        out.put_bool(true);
                        element.encode_at(x, out, d).within(|| "success".into())
                    }
                    [(n, x)] if n == "failure" => {
                        out.put_bool(false);
                        throwable.encode_at(x, out, d).within(|| "failure".into())
                    }
                    _ => Err(mismatch("{success} or {failure}", v)),
                }
            }
            K::ScalaEnum { class, constants } => {
                let Value::Enum(name) = v else { return Err(mismatch(&format!("a value of {class}"), v)) };
                let (_, id) = constants.iter().find(|(n, _)| n == name).ok_or_else(|| bad(format!("{name:?} is not a value of {class}")))?;
                out.put_i32(*id);
                Ok(())
            }
            K::JavaSerialized => Err(unsupported("values of a JavaSerializer cannot be written by flinksnap (Java object serialization)".into())),
            K::StreamElement(inner) => encode_stream_element(inner, v, out, d),
            K::Table(t) => super::table::encode_value(t, v, out, depth),
            // CEP's NFA state is read, not yet written.
            K::Cep(_) => Err(unsupported(format!("values of {} cannot be written by flinksnap yet (CEP state: read-only)", self.class_name))),
            K::Opaque { reason } => Err(unsupported(format!("serializer {} is not understood ({reason}): its values can only be written as the opaque bytes they were read as", self.class_name))),
        }
    }
}

pub(crate) fn field<'a>(fields: &'a [(String, Value)], name: &str) -> E<&'a Value> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v).ok_or_else(|| bad(format!("no field {name:?}")))
}

pub(crate) fn put_count(n: usize, out: &mut Vec<u8>) -> E<()> {
    let n = i32::try_from(n).map_err(|_| bad(format!("{n} elements do not fit an i32 count")))?;
    out.put_i32(n);
    Ok(())
}

/// `i32 n`, then per element a `bool` flag and the element when present (`true_is_null`: the
/// flag means "null", as `SetSerializer` writes it; else "present").
fn flagged_elements(e: &TypeSerializer, v: &Value, out: &mut Vec<u8>, d: usize, true_is_null: bool) -> E<()> {
    let Value::List(items) = v else { return Err(mismatch("a list", v)) };
    put_count(items.len(), out)?;
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::Null => out.put_bool(true_is_null),
            item => {
                out.put_bool(!true_is_null);
                e.encode_at(item, out, d).within(|| format!("element {i}"))?;
            }
        }
    }
    Ok(())
}

fn positional(fields: &[TypeSerializer], values: &[(String, Value)], prefix: &str, first: usize, out: &mut Vec<u8>, d: usize) -> E<()> {
    if values.len() != fields.len() {
        return Err(bad(format!("{} fields given, the serializer has {}", values.len(), fields.len())));
    }
    for (i, f) in fields.iter().enumerate() {
        let name = format!("{prefix}{}", i + first);
        let v = field(values, &name)?;
        f.encode_at(v, out, d).within(|| format!("field {name}"))?;
    }
    Ok(())
}

/// `RowSerializer`: the mask `[kind bits,] null flags…` packed MSB-first, then the non-null fields.
fn encode_row(fields: &[TypeSerializer], supports_row_kind: bool, v: &Value, out: &mut Vec<u8>, d: usize) -> E<()> {
    let Value::Row { kind, fields: values } = v else { return Err(mismatch("a row", v)) };
    if values.len() != fields.len() {
        return Err(bad(format!("a row of {} fields, the serializer has {}", values.len(), fields.len())));
    }
    if !supports_row_kind && *kind != RowKind::Insert {
        return Err(bad(format!("row kind {} cannot be stored: this RowSerializer writes no row kinds", kind.short_string())));
    }
    let offset = if supports_row_kind { 2 } else { 0 };
    let bits = fields.len() + offset;
    let mut mask = vec![0u8; bits.div_ceil(8)];
    let mut set = |i: usize| mask[i / 8] |= 0x80 >> (i % 8);
    if supports_row_kind {
        let k = kind.to_byte();
        if k & 1 != 0 {
            set(0);
        }
        if k & 2 != 0 {
            set(1);
        }
    }
    let named: Vec<&Value> = (0..fields.len()).map(|i| field(values, &format!("f{i}"))).collect::<E<_>>()?;
    for (i, value) in named.iter().enumerate() {
        if matches!(value, Value::Null) {
            set(offset + i);
        }
    }
    out.extend_from_slice(&mask);
    for (i, (f, value)) in fields.iter().zip(named).enumerate() {
        if !matches!(value, Value::Null) {
            f.encode_at(value, out, d).within(|| format!("row field f{i}"))?;
        }
    }
    Ok(())
}

/// `PojoSerializer`: flags, then every field with a null flag. Subclass values cannot be told
/// apart from the base class in a decoded value: only values of the POJO class itself are written.
fn encode_pojo(p: &PojoSerializer, v: &Value, out: &mut Vec<u8>, d: usize) -> E<()> {
    let fields = match v {
        Value::Null => {
            out.put_u8(pojo_flags::IS_NULL);
            return Ok(());
        }
        Value::Struct { fields } => fields,
        other => return Err(mismatch(&format!("a {}", p.class), other)),
    };
    if let Some((name, _)) = fields.iter().find(|(n, _)| !p.fields.iter().any(|(f, _)| f == n)) {
        return Err(bad(format!("{name:?} is not a field of POJO {} (values of subclasses cannot be written)", p.class)));
    }
    out.put_u8(pojo_flags::NO_SUBCLASS);
    for (name, ser) in &p.fields {
        let value = fields.iter().find(|(n, _)| n == name).map_or(&Value::Null, |(_, v)| v);
        match (value, ser) {
            (Value::Null, _) => out.put_bool(true),
            (value, Some(s)) => {
                out.put_bool(false);
                s.encode_at(value, out, d).within(|| format!("field {name}"))?;
            }
            (_, None) => return Err(unsupported(format!("POJO {}: the snapshot has no serializer for field {name}", p.class))),
        }
    }
    Ok(())
}

fn encode_stream_element(inner: &TypeSerializer, v: &Value, out: &mut Vec<u8>, d: usize) -> E<()> {
    let Value::Struct { fields } = v else { return Err(mismatch("a stream element", v)) };
    let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v);
    let int = |n: &str| match get(n) {
        Some(Value::Int(i)) => Ok(*i),
        _ => Err(bad(format!("stream element: {n} must be an integer"))),
    };
    match (get("record"), get("timestamp")) {
        (Some(r), Some(Value::Int(ts))) => {
            out.put_u8(0);
            out.put_i64(*ts);
            return inner.encode_at(r, out, d).within(|| "record".into());
        }
        (Some(r), None) => {
            out.put_u8(1);
            return inner.encode_at(r, out, d).within(|| "record".into());
        }
        _ => {}
    }
    if get("watermark").is_some() {
        if get("subpartition").is_some() {
            out.put_u8(6);
            out.put_i32(int("subpartition")? as i32);
        } else {
            out.put_u8(2);
        }
        out.put_i64(int("watermark")?);
        return Ok(());
    }
    if let Some(Value::Struct { fields: m }) = get("latencyMarker") {
        let at = |n: &str| m.iter().find(|(k, _)| k == n).map(|(_, v)| v);
        let (Some(Value::Int(marked)), Some(Value::String(id)), Some(Value::Int(sub))) = (at("markedTime"), at("operatorId"), at("subtaskIndex")) else {
            return Err(bad("latency marker needs markedTime, operatorId and subtaskIndex".into()));
        };
        let id: crate::model::OperatorId = id.parse().map_err(bad)?;
        out.put_u8(3);
        out.put_i64(*marked);
        out.extend_from_slice(&id.0);
        out.put_i32(*sub as i32);
        return Ok(());
    }
    if get("watermarkStatus").is_some() {
        out.put_u8(4);
        out.put_i32(int("watermarkStatus")? as i32);
        return Ok(());
    }
    if let Some(Value::Struct { fields: m }) = get("recordAttributes") {
        let Some((_, Value::Bool(b))) = m.iter().find(|(k, _)| k == "backlog") else { return Err(bad("record attributes need backlog".into())) };
        out.put_u8(5);
        out.put_bool(*b);
        return Ok(());
    }
    Err(bad("not a stream element (record, watermark, latencyMarker, watermarkStatus or recordAttributes)".into()))
}

fn encode_primitive_array(t: SimpleType, v: &Value, out: &mut Vec<u8>) -> E<()> {
    if t == SimpleType::Byte {
        let Value::Bytes(b) = v else { return Err(mismatch("bytes", v)) };
        put_count(b.len(), out)?;
        out.extend_from_slice(b);
        return Ok(());
    }
    let Value::List(items) = v else { return Err(mismatch("a list", v)) };
    put_count(items.len(), out)?;
    for (i, item) in items.iter().enumerate() {
        encode_simple(t, item, out).within(|| format!("element {i}"))?;
    }
    Ok(())
}

fn int_of(v: &Value, what: &str) -> E<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(mismatch(what, other)),
    }
}

fn narrow<T: TryFrom<i64>>(v: &Value, what: &str) -> E<T> {
    let i = int_of(v, what)?;
    T::try_from(i).map_err(|_| bad(format!("{i} does not fit {what}")))
}

/// Millis of a point in time that Java keeps in milliseconds (`java.util.Date`, `java.sql.*`).
fn millis_of(v: &Value) -> E<i64> {
    let Value::Instant { seconds, nanos } = v else { return Err(mismatch("a point in time", v)) };
    if nanos % 1_000_000 != 0 {
        return Err(bad(format!("{} has sub-millisecond digits, which this type does not keep", v.iso8601().unwrap_or_default())));
    }
    seconds.checked_mul(1000).and_then(|m| m.checked_add(i64::from(nanos / 1_000_000))).ok_or_else(|| bad("instant out of range".into()))
}

fn put_local_date(v: &Value, out: &mut Vec<u8>) -> E<()> {
    let Value::LocalDate { year, month, day } = v else { return Err(mismatch("a local date", v)) };
    out.put_i32(*year);
    out.put_u8(*month);
    out.put_u8(*day);
    Ok(())
}

fn put_local_time(v: &Value, out: &mut Vec<u8>) -> E<()> {
    let Value::LocalTime { hour, minute, second, nano } = v else { return Err(mismatch("a local time", v)) };
    out.put_u8(*hour);
    out.put_u8(*minute);
    out.put_u8(*second);
    out.put_i32(*nano as i32);
    Ok(())
}

pub(crate) fn encode_simple(t: SimpleType, v: &Value, out: &mut Vec<u8>) -> E<()> {
    use SimpleType as S;
    let null = matches!(v, Value::Null);
    match t {
        S::Boolean | S::BooleanValue => match v {
            Value::Bool(b) => out.put_bool(*b),
            other => return Err(mismatch("a boolean", other)),
        },
        S::Byte | S::ByteValue => out.put_u8(narrow::<i8>(v, "a byte")? as u8),
        S::Short | S::ShortValue => out.put_i16(narrow(v, "a short")?),
        S::Int | S::IntValue => out.put_i32(narrow(v, "an int")?),
        S::Long | S::LongValue => out.put_i64(int_of(v, "a long")?),
        S::Float | S::FloatValue => match v {
            // A widened Java float narrows back to itself.
            Value::Float(f) => out.extend_from_slice(&(*f as f32).to_bits().to_be_bytes()),
            other => return Err(mismatch("a float", other)),
        },
        S::Double | S::DoubleValue => match v {
            Value::Float(f) => out.extend_from_slice(&f.to_bits().to_be_bytes()),
            other => return Err(mismatch("a double", other)),
        },
        S::Char | S::CharValue => match v {
            Value::Char(c) => out.extend_from_slice(&c.to_be_bytes()),
            other => return Err(mismatch("a char", other)),
        },
        S::String => match v {
            Value::String(s) => strings::write_fstr(Some(s), out),
            Value::Null => strings::write_fstr(None, out),
            other => return Err(mismatch("a string", other)),
        },
        S::StringValue => match v {
            Value::String(s) => strings::write_string_value(s, out),
            other => return Err(mismatch("a string", other)),
        },
        S::NullValue => {
            if !null {
                return Err(mismatch("null", v));
            }
        }
        S::BigInteger => match v {
            Value::Null => out.put_i32(0),
            Value::BigInteger(s) => put_big_integer(&parse_big_integer(s)?, out)?,
            other => return Err(mismatch("a big integer", other)),
        },
        S::BigDecimal => match v {
            Value::Null => out.put_i32(0),
            Value::BigDecimal(s) => {
                let (unscaled, scale) = parse_big_decimal(s)?;
                put_big_integer(&unscaled, out)?;
                out.put_i32(scale);
            }
            other => return Err(mismatch("a big decimal", other)),
        },
        S::Instant => match v {
            Value::Null => {
                out.put_i64(i64::MIN);
                out.put_i32(i32::MIN);
            }
            Value::Instant { seconds, nanos } => {
                out.put_i64(*seconds);
                out.put_i32(*nanos as i32);
            }
            other => return Err(mismatch("an instant", other)),
        },
        S::LocalDate => {
            if null {
                out.put_i32(i32::MIN);
                out.put_i16(i16::MIN);
            } else {
                put_local_date(v, out)?;
            }
        }
        S::LocalTime => {
            if null {
                out.put_u8(0x80);
                out.put_i16(i16::MIN);
                out.put_i32(i32::MIN);
            } else {
                put_local_time(v, out)?;
            }
        }
        S::LocalDateTime => match v {
            Value::Null => {
                encode_simple(S::LocalDate, v, out)?;
                encode_simple(S::LocalTime, v, out)?;
            }
            Value::LocalDateTime { date, time } => {
                put_local_date(date, out)?;
                put_local_time(time, out)?;
            }
            other => return Err(mismatch("a local date-time", other)),
        },
        S::Date | S::SqlDate | S::SqlTime => {
            out.put_i64(if null { i64::MIN } else { millis_of(v)? });
        }
        S::SqlTimestamp => match v {
            Value::Null => {
                out.put_i64(i64::MIN);
                out.put_i32(0);
            }
            Value::Instant { seconds, nanos } => {
                let millis = seconds.checked_mul(1000).and_then(|m| m.checked_add(i64::from(nanos / 1_000_000))).ok_or_else(|| bad("timestamp out of range".into()))?;
                out.put_i64(millis);
                out.put_i32(*nanos as i32);
            }
            other => return Err(mismatch("a timestamp", other)),
        },
        S::ScalaNothing => return Err(bad("Scala's NothingSerializer has no values".into())),
        S::Void | S::VoidNamespace | S::GlobalWindow | S::ScalaUnit => {
            if !null {
                return Err(mismatch("null", v));
            }
            out.put_u8(0);
        }
        S::Tuple0 => match v {
            // Tuple0Serializer writes the byte 42.
            Value::Struct { fields } if fields.is_empty() => out.put_u8(42),
            other => return Err(mismatch("an empty tuple", other)),
        },
        S::TimeWindow => match v {
            Value::TimeWindow { start, end } => {
                out.put_i64(*start);
                out.put_i64(*end);
            }
            other => return Err(mismatch("a time window", other)),
        },
    }
    Ok(())
}

/// `BigIntSerializer.writeBigInteger`: 0, 1 and 10 by their codes 1–3 (Java writes the
/// `BigInteger.ZERO`/`ONE`/`TEN` instances so), else `i32 len + 4` and `toByteArray()`.
fn put_big_integer(bytes: &[u8], out: &mut Vec<u8>) -> E<()> {
    match bytes {
        [0] => out.put_i32(1),
        [1] => out.put_i32(2),
        [10] => out.put_i32(3),
        b => {
            let n = i32::try_from(b.len()).ok().and_then(|n| n.checked_add(4)).ok_or_else(|| bad("big integer too long".into()))?;
            out.put_i32(n);
            out.extend_from_slice(b);
        }
    }
    Ok(())
}

/// `BigInteger.toByteArray()` of decimal text (or the `0x…` hex form the decoder prints for huge
/// values): minimal two's-complement big-endian bytes.
pub(crate) fn parse_big_integer(text: &str) -> E<Vec<u8>> {
    let t = text.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let invalid = || bad(format!("{text:?} is not an integer"));
    // Magnitude, big-endian bytes.
    let mut mag: Vec<u8> = Vec::new();
    if let Some(hex) = digits.strip_prefix("0x") {
        if hex.is_empty() {
            return Err(invalid());
        }
        for d in hex.chars() {
            let v = d.to_digit(16).ok_or_else(invalid)?;
            mul_add(&mut mag, 16, v);
        }
    } else {
        if digits.is_empty() {
            return Err(invalid());
        }
        for d in digits.chars() {
            let v = d.to_digit(10).ok_or_else(invalid)?;
            mul_add(&mut mag, 10, v);
        }
    }
    let start = mag.iter().position(|&b| b != 0).unwrap_or(mag.len());
    let mut mag = mag[start..].to_vec();
    if mag.is_empty() {
        return Ok(vec![0]);
    }
    if !negative {
        if mag[0] & 0x80 != 0 {
            mag.insert(0, 0);
        }
        return Ok(mag);
    }
    // Two's complement: invert, add one; one more sign byte when needed.
    let mut b: Vec<u8> = mag.iter().map(|x| !x).collect();
    for x in b.iter_mut().rev() {
        let (v, carry) = x.overflowing_add(1);
        *x = v;
        if !carry {
            break;
        }
    }
    if b[0] & 0x80 == 0 {
        b.insert(0, 0xff);
    }
    // Minimal: drop leading 0xff bytes whose next byte keeps the sign.
    while b.len() > 1 && b[0] == 0xff && b[1] & 0x80 != 0 {
        b.remove(0);
    }
    Ok(b)
}

/// `mag = mag * base + digit` on a big-endian magnitude.
fn mul_add(mag: &mut Vec<u8>, base: u32, digit: u32) {
    let mut carry = digit;
    for b in mag.iter_mut().rev() {
        let v = u32::from(*b) * base + carry;
        *b = v as u8;
        carry = v >> 8;
    }
    while carry > 0 {
        mag.insert(0, carry as u8);
        carry >>= 8;
    }
}

/// `new BigDecimal(text)`: the unscaled value's bytes and the scale, so that `toString()` gives
/// the text back (`123.45` → 12345, 2; `1.23E+5` → 123, -3).
pub(crate) fn parse_big_decimal(text: &str) -> E<(Vec<u8>, i32)> {
    let t = text.trim();
    let invalid = || bad(format!("{text:?} is not a decimal number"));
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i64>().map_err(|_| invalid())?),
        None => (t, 0),
    };
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    if int.is_empty() && frac.is_empty() || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return Err(invalid());
    }
    let scale = i32::try_from(frac.len() as i64 - exp).map_err(|_| invalid())?;
    let unscaled = parse_big_integer(&format!("{sign}{int}{frac}"))?;
    Ok((unscaled, scale))
}

/// Appends a list state's value as RocksDB and the canonical stream store it: the elements,
/// each as the element serializer writes it, joined by `,`.
pub fn encode_delimited_list(element: &TypeSerializer, items: &[Value], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(LIST_DELIMITER);
        }
        element.encode(item, out).within(|| format!("list element {i}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod unit {
    use super::*;
    use crate::model::numbers::{big_decimal_text, big_integer_text};

    #[test]
    fn big_integers_round_trip_through_text() {
        for n in ["0", "1", "10", "127", "128", "-1", "-128", "-129", "255", "256", "-32768", "123456789012345678901234567890", "-98765432109876543210"] {
            let b = parse_big_integer(n).unwrap();
            assert_eq!(big_integer_text(&b), n, "{b:?}");
        }
        assert_eq!(parse_big_integer("-128").unwrap(), [0x80]);
        assert_eq!(parse_big_integer("128").unwrap(), [0x00, 0x80]);
        assert_eq!(parse_big_integer("0x0100").unwrap(), [0x01, 0x00]);
        assert!(parse_big_integer("12a").is_err());
        assert!(parse_big_integer("").is_err());
    }

    #[test]
    fn big_decimals_round_trip_through_text() {
        for t in ["0", "1.5", "-0.001", "123.45", "1.23E+5", "1E-7", "0.00", "-7.000E+10", "3E+10"] {
            let (u, s) = parse_big_decimal(t).unwrap();
            assert_eq!(big_decimal_text(&big_integer_text(&u), s), t);
        }
    }

    #[test]
    fn row_masks_and_kinds() {
        let int = TypeSerializer::new("IntSerializerSnapshot".into(), 3, K::Simple(SimpleType::Int));
        let row = TypeSerializer::new("RowSerializerSnapshot".into(), 3, K::Row { fields: vec![int.clone(), int], supports_row_kind: true });
        let v = Value::Row { kind: RowKind::Delete, fields: vec![("f0".into(), Value::Null), ("f1".into(), Value::Int(7))] };
        let b = row.encode_to_vec(&v).unwrap();
        // kind 3 = bits 0 and 1, f0 null = bit 2
        assert_eq!(b, [0b1110_0000, 0, 0, 0, 7]);
        assert_eq!(row.decode_framed(&b, 0).unwrap(), v);
    }

    #[test]
    fn mismatches_name_the_place() {
        let long = TypeSerializer::new("LongSerializerSnapshot".into(), 3, K::Simple(SimpleType::Long));
        let list = TypeSerializer::new("ListSerializerSnapshot".into(), 1, K::List(Box::new(long)));
        let e = list.encode_to_vec(&Value::List(vec![Value::Int(1), Value::String("x".into())])).unwrap_err();
        assert_eq!(e.to_string(), "list element 1: expected a long, found a string");
        let byte = TypeSerializer::new("ByteSerializerSnapshot".into(), 3, K::Simple(SimpleType::Byte));
        assert!(byte.encode_to_vec(&Value::Int(300)).unwrap_err().to_string().contains("does not fit"));
    }

    mod props {
        use super::super::super::{PojoSerializer, SerializerKind as K, SimpleType as S, TypeSerializer};
        use crate::model::value::{RowKind, Value};
        use proptest::prelude::*;

        fn ser(kind: K) -> TypeSerializer {
            TypeSerializer::new("TestSerializerSnapshot".into(), 1, kind)
        }

        fn simple(t: S) -> TypeSerializer {
            ser(K::Simple(t))
        }

        /// A serializer and a strategy for its values, nested up to `depth`.
        fn typed(depth: u32) -> BoxedStrategy<(TypeSerializer, BoxedStrategy<Value>)> {
            let leaf = prop_oneof![
                Just((simple(S::Long), any::<i64>().prop_map(Value::Int).boxed())),
                Just((simple(S::Int), any::<i32>().prop_map(|i| Value::Int(i.into())).boxed())),
                Just((simple(S::Byte), any::<i8>().prop_map(|i| Value::Int(i.into())).boxed())),
                Just((simple(S::Boolean), any::<bool>().prop_map(Value::Bool).boxed())),
                Just((simple(S::Double), any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan()).prop_map(Value::Float).boxed())),
                Just((simple(S::Float), any::<f32>().prop_filter("NaN != NaN", |f| !f.is_nan()).prop_map(|f| Value::Float(crate::model::numbers::widen(f))).boxed())),
                // Lone surrogates print as U+FFFD in JSON (the one lossy spot, see the module doc).
                Just((simple(S::Char), any::<u16>().prop_filter("no lone surrogate", |c| !(0xd800..0xe000).contains(c)).prop_map(Value::Char).boxed())),
                Just((simple(S::String), proptest::option::of(".{0,12}").prop_map(|s| s.map_or(Value::Null, Value::String)).boxed())),
                Just((simple(S::BigInteger), (any::<i64>(), any::<u32>()).prop_map(|(a, b)| Value::BigInteger(format!("{}{b}", a))).boxed())),
                Just((simple(S::BigDecimal), (any::<i32>(), 0u32..12).prop_map(|(a, s)| {
                    let (u, sc) = (a.to_string(), s as i32);
                    Value::BigDecimal(crate::model::numbers::big_decimal_text(&u, sc))
                }).boxed())),
                Just((simple(S::Instant), (-1_000_000_000_000i64..1_000_000_000_000, 0u32..1_000_000_000).prop_map(|(seconds, nanos)| Value::Instant { seconds, nanos }).boxed())),
                Just((simple(S::LocalDate), (-9999i32..99999, 1u8..=12, 1u8..=28).prop_map(|(year, month, day)| Value::LocalDate { year, month, day }).boxed())),
                Just((simple(S::TimeWindow), (any::<i64>(), any::<i64>()).prop_map(|(start, end)| Value::TimeWindow { start, end }).boxed())),
                Just((ser(K::PrimitiveArray(S::Byte)), proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes).boxed())),
            ];
            if depth == 0 {
                return leaf.boxed();
            }
            let inner = typed(depth - 1);
            prop_oneof![
                2 => leaf,
                1 => inner.clone().prop_map(|(e, vals)| {
                    let s = ser(K::List(Box::new(e)));
                    (s, proptest::collection::vec(vals, 0..4).prop_map(Value::List).boxed())
                }),
                1 => inner.clone().prop_map(|(v, vals)| {
                    let s = ser(K::Map(Box::new(simple(S::String)), Box::new(v)));
                    let entry = ("[a-z]{1,4}", proptest::option::of(vals)).prop_map(|(k, v)| (Value::String(k), v.unwrap_or(Value::Null)));
                    (s, proptest::collection::vec(entry, 0..4).prop_map(Value::Map).boxed())
                }),
                1 => (inner.clone(), inner.clone()).prop_map(|((a, va), (b, vb))| {
                    let s = ser(K::Tuple { class: "org.apache.flink.api.java.tuple.Tuple2".into(), fields: vec![a, b] });
                    (s, (va, vb).prop_map(|(x, y)| Value::Struct { fields: vec![("f0".into(), x), ("f1".into(), y)] }).boxed())
                }),
                1 => (inner.clone(), inner.clone(), any::<bool>()).prop_map(|((a, va), (b, vb), kinds)| {
                    let s = ser(K::Row { fields: vec![a, b], supports_row_kind: kinds });
                    let kind = if kinds { prop_oneof![Just(RowKind::Insert), Just(RowKind::UpdateBefore), Just(RowKind::UpdateAfter), Just(RowKind::Delete)].boxed() } else { Just(RowKind::Insert).boxed() };
                    let vals = (kind, proptest::option::of(va), proptest::option::of(vb)).prop_map(|(kind, x, y)| Value::Row {
                        kind,
                        fields: vec![("f0".into(), x.unwrap_or(Value::Null)), ("f1".into(), y.unwrap_or(Value::Null))],
                    });
                    (s, vals.boxed())
                }),
                1 => (inner.clone(), inner.clone()).prop_map(|((a, va), (b, vb))| {
                    let p = PojoSerializer { class: "com.example.P".into(), fields: vec![("a".into(), Some(a)), ("b".into(), Some(b))], registered_subclasses: vec![], non_registered_subclasses: vec![] };
                    let vals = proptest::option::of((proptest::option::of(va), proptest::option::of(vb))).prop_map(|o| match o {
                        None => Value::Null,
                        Some((x, y)) => Value::Struct { fields: vec![("a".into(), x.unwrap_or(Value::Null)), ("b".into(), y.unwrap_or(Value::Null))] },
                    });
                    (ser(K::Pojo(Box::new(p))), vals.boxed())
                }),
                1 => inner.clone().prop_map(|(e, vals)| {
                    (ser(K::Nullable { padding: 0, inner: Box::new(e) }), proptest::option::of(vals).prop_map(|v| v.unwrap_or(Value::Null)).boxed())
                }),
                1 => (inner.clone(), inner).prop_map(|((l, vl), (r, vr))| {
                    let vals = prop_oneof![vl.prop_map(|v| Value::Left(Box::new(v))), vr.prop_map(|v| Value::Right(Box::new(v)))];
                    (ser(K::Either(Box::new(l), Box::new(r))), vals.boxed())
                }),
            ]
            .boxed()
        }

        fn pairs() -> impl Strategy<Value = (TypeSerializer, Value)> {
            typed(2).prop_flat_map(|(s, vals)| (Just(s), vals))
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]
            #[test]
            fn encoded_values_decode_back((s, v) in pairs()) {
                let bytes = s.encode_to_vec(&v).unwrap();
                prop_assert_eq!(s.decode_framed(&bytes, 0).unwrap(), v.clone());
                // and the dump JSON reads back as the same value
                prop_assert_eq!(s.value_from_json(&v.to_json()).unwrap(), v);
            }
        }
    }
}
