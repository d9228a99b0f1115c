//! Values: one value as its serializer wrote it, into a [`Value`] (`formats/serializers.md`
//! § Value encodings).

use super::consts::{self, pojo_flags};
use crate::model::numbers::{big_decimal_text, big_integer_text, widen};
use super::{strings, PojoSerializer, SerializerKind as K, SimpleType, TypeSerializer, MAX_DEPTH};
use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind};
use crate::model::value::{RowKind, Value};

/// Why decoding stopped: the bytes are not what the serializer writes (`Corrupt`), or the
/// serializer cannot be interpreted without the JVM (`Undecodable`, e.g. Kryo). Only the second
/// becomes [`Value::Opaque`], and only where a length frame delimits the value.
#[derive(Debug)]
pub(crate) enum Fail {
    Corrupt(DecodeError),
    Undecodable(DecodeError),
}

impl From<DecodeError> for Fail {
    fn from(e: DecodeError) -> Self {
        Fail::Corrupt(e)
    }
}

impl Fail {
    pub(crate) fn into_error(self) -> DecodeError {
        match self {
            Fail::Corrupt(e) | Fail::Undecodable(e) => e,
        }
    }

    pub(crate) fn context(self, what: impl FnOnce() -> String) -> Self {
        match self {
            Fail::Corrupt(e) => Fail::Corrupt(e.context(what())),
            Fail::Undecodable(e) => Fail::Undecodable(e.context(what())),
        }
    }
}

type F<T> = Result<T, Fail>;

fn corrupt(c: &Cursor<'_>, at: u64, msg: String) -> Fail {
    Fail::Corrupt(c.error_at(DecodeErrorKind::Invalid(msg), at))
}

/// A value flinksnap cannot decode: not corruption ([`DecodeErrorKind::Unsupported`]), and, where a
/// length frame delimits it, opaque bytes instead.
fn undecodable(c: &Cursor<'_>, msg: String) -> Fail {
    Fail::Undecodable(c.error(DecodeErrorKind::Unsupported { what: msg, class: None }))
}

impl TypeSerializer {
    /// Decodes exactly one value at the cursor, as Flink's `deserialize` reads it. Serializers
    /// that cannot be interpreted (see [`TypeSerializer::is_opaque`]) give an error naming the
    /// class: their values have no length, so nothing after them could be read.
    pub fn decode(&self, c: &mut Cursor<'_>) -> Result<Value, DecodeError> {
        self.decode_at(c, 0, false).map_err(|f| match f {
            Fail::Undecodable(mut e) => {
                if let DecodeErrorKind::Unsupported { class: class @ None, .. } = &mut e.kind {
                    *class = Some(self.undecodable_class().to_owned());
                }
                e
            }
            Fail::Corrupt(e) => e,
        })
    }

    /// Decodes a value that fills `bytes` exactly (a RocksDB value, a map value, a length-framed
    /// blob); `base` is the absolute offset of `bytes[0]`, for errors. Where a serializer cannot
    /// be interpreted, the bytes it owns become [`Value::Opaque`]: the whole frame, or, when the
    /// undecodable part is the last part of the value (the user value of a TTL wrapper, the last
    /// field of a tuple or POJO), just the rest of the frame. Corrupt bytes are an error, and so
    /// are bytes left over after a decoded value.
    pub fn decode_framed(&self, bytes: &[u8], base: u64) -> Result<Value, DecodeError> {
        self.decode_rest(&mut Cursor::with_base(bytes, base))
    }

    /// [`TypeSerializer::decode_framed`] over everything left in `c` (whose frame says what its
    /// offsets count).
    pub fn decode_rest(&self, c: &mut Cursor<'_>) -> Result<Value, DecodeError> {
        let v = self.decode_at(c, 0, true).map_err(Fail::into_error)?;
        c.expect_end("value")?;
        Ok(v)
    }

    /// `tail`: this value extends to the end of the cursor, so an undecodable value can take
    /// all that is left.
    pub(crate) fn decode_at(&self, c: &mut Cursor<'_>, depth: usize, tail: bool) -> F<Value> {
        if depth > MAX_DEPTH {
            return Err(corrupt(c, c.position(), format!("values nested deeper than {MAX_DEPTH} levels")));
        }
        let start = c.clone();
        match self.decode_kind(c, depth, tail) {
            Err(Fail::Undecodable(_)) if tail => {
                let mut rest = start;
                let bytes = rest.rest().to_vec();
                *c = rest;
                Ok(Value::opaque(self.opaque_class().to_owned(), bytes))
            }
            r => r,
        }
    }

    fn decode_kind(&self, c: &mut Cursor<'_>, depth: usize, tail: bool) -> F<Value> {
        let d = depth + 1;
        Ok(match &self.kind {
            K::Simple(t) => decode_simple(*t, c)?,
            K::PrimitiveArray(t) => decode_primitive_array(*t, c)?,
            K::Enum { class, constants } => {
                let at = c.position();
                let i = c.i32("enum index")?;
                let name = usize::try_from(i).ok().and_then(|i| constants.get(i));
                match name {
                    Some(n) => Value::Enum(n.clone()),
                    None => return Err(corrupt(c, at, format!("enum index {i} out of range for {class} ({} constants)", constants.len()))),
                }
            }
            K::List(e) => {
                let n = c.count("list size", e.min_len().max(1))?;
                let mut items = Vec::with_capacity(n.min(1024));
                for i in 0..n {
                    items.push(e.decode_at(c, d, false).map_err(|f| f.context(|| format!("list element {i}")))?);
                }
                Value::List(items)
            }
            K::Map(k, v) => {
                let n = c.count("map size", k.min_len().max(1).saturating_add(1))?;
                let mut entries = Vec::with_capacity(n.min(1024));
                for i in 0..n {
                    let key = k.decode_at(c, d, false).map_err(|f| f.context(|| format!("map key {i}")))?;
                    let value = if c.bool("map value null flag")? {
                        Value::Null
                    } else {
                        v.decode_at(c, d, false).map_err(|f| f.context(|| format!("map value {i}")))?
                    };
                    entries.push((key, value));
                }
                Value::Map(entries)
            }
            K::Set(e) => Value::List(flagged_elements(c, e, d, "set size", true)?),
            K::GenericArray { element, .. } => Value::List(flagged_elements(c, element, d, "array length", false)?),
            K::ScalaTraversable { element, .. } => {
                Value::List(flagged_elements(c, element, d, "collection size", false)?)
            }
            K::Tuple { fields, .. } => Value::Struct { fields: positional(c, fields, d, tail, "f", 0)? },
            K::ScalaProduct { fields, .. } => Value::Struct { fields: positional(c, fields, d, tail, "_", 1)? },
            K::Row { fields, supports_row_kind } => decode_row(c, fields, *supports_row_kind, d, tail)?,
            K::Pojo(p) => decode_pojo(c, p, d, tail)?,
            K::Nullable { padding, inner } => {
                if c.bool("nullable null flag")? {
                    c.skip(*padding as usize, "null padding")?;
                    Value::Null
                } else {
                    inner.decode_at(c, d, tail)?
                }
            }
            K::Either(l, r) | K::ScalaEither(l, r) => {
                if c.bool("either is-left flag")? {
                    Value::Left(Box::new(l.decode_at(c, d, tail)?))
                } else {
                    Value::Right(Box::new(r.decode_at(c, d, tail)?))
                }
            }
            K::ScalaOption(e) => {
                if c.bool("option is-defined flag")? {
                    e.decode_at(c, d, tail)?
                } else {
                    Value::Null
                }
            }
            K::GenericValue { class } => match consts::known_value_class(class) {
                // NullValue.write writes a boolean (NullValueSerializer writes nothing).
                Some(SimpleType::NullValue) => {
                    c.u8("null value")?;
                    Value::Null
                }
                Some(t) => decode_simple(t, c)?,
                None => return Err(undecodable(c, format!("values of {class} (a user Value type) cannot be decoded without the JVM"))),
            },
            K::Kryo { type_class, registrations } => {
                if tail {
                    // A framed value: opaque, named by the class in its Kryo header.
                    let bytes = c.rest().to_vec();
                    let mut h = Cursor::with_base(&bytes, 0);
                    return Ok(match super::kryo::value_class(&mut h, registrations) {
                        Ok(None) if bytes.len() == 1 => Value::Null,
                        Ok(Some(class)) => Value::opaque(class, bytes),
                        // an id outside the known registrations: the declared type names it
                        _ => Value::opaque(type_class.clone(), bytes),
                    });
                }
                return Err(undecodable(c, format!("Kryo values (type {type_class}) cannot be decoded without the JVM")));
            }
            K::Avro(a) => match &a.schema {
                Ok(schema) => schema.decode(c, d)?,
                Err(e) => return Err(undecodable(c, format!("avro schema of {} not understood: {e}", a.runtime_class))),
            },
            K::Ttl { timestamp, value } => {
                let ts = timestamp.decode_at(c, d, false).map_err(|f| f.context(|| "TTL timestamp".into()))?;
                let v = value.decode_at(c, d, tail).map_err(|f| f.context(|| "TTL user value".into()))?;
                Value::Struct { fields: vec![("lastAccessTimestamp".into(), ts), ("userValue".into(), v)] }
            }
            K::Timer { key, namespace } => {
                let ts = c.i64("timer timestamp")? ^ i64::MIN;
                let k = key.decode_at(c, d, false).map_err(|f| f.context(|| "timer key".into()))?;
                let n = namespace.decode_at(c, d, tail).map_err(|f| f.context(|| "timer namespace".into()))?;
                Value::Struct { fields: vec![("timestamp".into(), Value::Int(ts)), ("key".into(), k), ("namespace".into(), n)] }
            }
            K::ScalaTry { element, throwable } => {
                // TrySerializer: true = Success(element), false = Failure(throwable).
                if c.bool("try is-success flag")? {
                    Value::Struct { fields: vec![("success".into(), element.decode_at(c, d, tail)?)] }
                } else {
                    Value::Struct { fields: vec![("failure".into(), throwable.decode_at(c, d, tail)?)] }
                }
            }
            K::ScalaEnum { class, constants } => {
                let at = c.position();
                let id = c.i32("scala enumeration value id")?;
                match constants.iter().find(|(_, i)| *i == id) {
                    Some((name, _)) => Value::Enum(name.clone()),
                    None => return Err(corrupt(c, at, format!("scala enumeration id {id} is not a value of {class}"))),
                }
            }
            K::JavaSerialized => crate::java_serialization::read_stream(c).map_err(Fail::Corrupt)?.to_value(),
            K::StreamElement(inner) => decode_stream_element(c, inner, d, tail)?,
            K::Table(t) => super::table::decode_value(t, c, depth, tail)?,
            K::Cep(t) => t.decode(c, depth, tail)?,
            K::Opaque { reason } => {
                return Err(undecodable(c, format!("serializer {} is not understood ({reason})", self.class_name)))
            }
        })
    }

    /// The bytes every value takes, when that is the same for all values (what is actually
    /// written: `VoidNamespace` 1 although it reports 0).
    pub(crate) fn exact_len(&self) -> Option<usize> {
        match &self.kind {
            K::Simple(t) => t.fixed_length().map(|_| t.min_len()),
            K::Enum { .. } | K::ScalaEnum { .. } => Some(4),
            K::Tuple { fields, .. } | K::ScalaProduct { fields, .. } => fields.iter().map(TypeSerializer::exact_len).sum(),
            _ => None,
        }
    }

    /// Fewest bytes one value takes (for checking counts before allocating).
    pub(crate) fn min_len(&self) -> usize {
        match &self.kind {
            K::Simple(t) => t.min_len(),
            K::PrimitiveArray(_) | K::Enum { .. } | K::List(_) | K::Map(..) | K::Set(_) => 4,
            K::GenericArray { .. } | K::ScalaTraversable { .. } => 4,
            K::Tuple { fields, .. } | K::ScalaProduct { fields, .. } => {
                fields.iter().fold(0usize, |a, f| a.saturating_add(f.min_len()))
            }
            K::Row { fields, supports_row_kind } => (fields.len() + if *supports_row_kind { 2 } else { 0 }).div_ceil(8),
            K::Pojo(_) | K::Nullable { .. } | K::Either(..) | K::ScalaEither(..) | K::ScalaOption(_) => 1,
            K::Kryo { .. } | K::ScalaTry { .. } | K::StreamElement(_) => 1,
            K::ScalaEnum { .. } => 4,
            // aced 0005 and one tag
            K::JavaSerialized => 5,
            K::GenericValue { class } => match consts::known_value_class(class) {
                Some(SimpleType::NullValue) => 1,
                t => t.map_or(0, SimpleType::min_len),
            },
            K::Ttl { timestamp, value } => timestamp.min_len().saturating_add(value.min_len()),
            K::Timer { key, namespace } => 8usize.saturating_add(key.min_len()).saturating_add(namespace.min_len()),
            K::Table(t) => super::table::min_len(t),
            K::Cep(t) => t.min_len(),
            K::Avro(_) | K::Opaque { .. } => 0,
        }
    }
}

/// `StreamElementSerializer`: tag 0 record with `i64` timestamp, 1 record without, 2 watermark
/// (`i64`), 6 watermark of one subpartition (2.x: `i32` subpartition, `i64`), 3 latency marker
/// (`i64` marked time, operator id as `i64` lower and upper part, `i32` subtask), 4 watermark
/// status (`i32`), 5 record attributes (`bool` backlog).
fn decode_stream_element(c: &mut Cursor<'_>, inner: &TypeSerializer, d: usize, tail: bool) -> F<Value> {
    let at = c.position();
    let tag = c.u8("stream element tag")?;
    let one = |k: &str, v: Value| Value::Struct { fields: vec![(k.to_owned(), v)] };
    Ok(match tag {
        0 => {
            let ts = c.i64("record timestamp")?;
            let v = inner.decode_at(c, d, tail).map_err(|f| f.context(|| "record".into()))?;
            Value::Struct { fields: vec![("record".into(), v), ("timestamp".into(), Value::Int(ts))] }
        }
        1 => one("record", inner.decode_at(c, d, tail).map_err(|f| f.context(|| "record".into()))?),
        2 => one("watermark", Value::Int(c.i64("watermark")?)),
        6 => {
            let sub = c.i32("watermark subpartition")?;
            Value::Struct { fields: vec![("watermark".into(), Value::Int(c.i64("watermark")?)), ("subpartition".into(), Value::Int(i64::from(sub)))] }
        }
        3 => {
            let marked = c.i64("latency marker time")?;
            let lower = c.i64("latency marker operator id (lower)")?;
            let upper = c.i64("latency marker operator id (upper)")?;
            let subtask = c.i32("latency marker subtask")?;
            let mut id = lower.to_be_bytes().to_vec();
            id.extend_from_slice(&upper.to_be_bytes());
            one(
                "latencyMarker",
                Value::Struct {
                    fields: vec![
                        ("markedTime".into(), Value::Int(marked)),
                        ("operatorId".into(), Value::String(crate::model::value::hex(&id))),
                        ("subtaskIndex".into(), Value::Int(i64::from(subtask))),
                    ],
                },
            )
        }
        4 => one("watermarkStatus", Value::Int(i64::from(c.i32("watermark status")?))),
        5 => one("recordAttributes", Value::Struct { fields: vec![("backlog".into(), Value::Bool(c.bool("backlog flag")?))] }),
        t => return Err(corrupt(c, at, format!("unknown stream element tag {t}"))),
    })
}

/// `i32 n`, then per element a `bool` flag and the element when present. `true_is_null`: the
/// flag means "null" (Set), else "present" (GenericArray, Scala collections).
fn flagged_elements(c: &mut Cursor<'_>, e: &TypeSerializer, d: usize, what: &'static str, true_is_null: bool) -> F<Vec<Value>> {
    let n = c.count(what, 1)?;
    let mut items = Vec::with_capacity(n.min(1024));
    for i in 0..n {
        let flag = c.bool("element null flag")?;
        if flag == true_is_null {
            items.push(Value::Null);
        } else {
            items.push(e.decode_at(c, d, false).map_err(|f| f.context(|| format!("element {i}")))?);
        }
    }
    Ok(items)
}

/// Fields in order, named `{prefix}{first}`, `{prefix}{first + 1}` …; the last one may take the
/// rest of a frame.
fn positional(c: &mut Cursor<'_>, fields: &[TypeSerializer], d: usize, tail: bool, prefix: &str, first: usize) -> F<Vec<(String, Value)>> {
    let mut out = Vec::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        let name = field_name(prefix, i + first);
        let last = i + 1 == fields.len();
        // An undecodable field followed only by fixed-size fields (`Tuple2<Kryo, Long>`, the
        // legacy Kafka consumer's state) ends where their bytes begin: it takes the frame but them.
        let fixed_tail = if tail && !last && f.is_opaque() { fields[i + 1..].iter().map(TypeSerializer::exact_len).sum::<Option<usize>>() } else { None };
        let v = match fixed_tail {
            Some(rest) if c.remaining() >= rest => {
                let mut own = c.sub(c.remaining() - rest, "field")?;
                f.decode_at(&mut own, d, true).and_then(|v| {
                    own.expect_end("field")?;
                    Ok(v)
                })
            }
            _ => f.decode_at(c, d, tail && last),
        }
        .map_err(|e| e.context(|| format!("field {name}")))?;
        out.push((name, v));
    }
    Ok(out)
}

/// `{prefix}{i}` without the formatting machinery (it runs for every field of every tuple).
fn field_name(prefix: &str, i: usize) -> String {
    let mut s = String::with_capacity(prefix.len() + 2);
    s.push_str(prefix);
    if i < 10 {
        s.push(char::from(b'0' + i as u8));
    } else {
        use std::fmt::Write;
        let _ = write!(s, "{i}");
    }
    s
}

/// `RowSerializer`: a mask of `[kind bit 0, kind bit 1,] null flags…` packed MSB-first
/// (`MaskUtils`), then the non-null fields.
fn decode_row(c: &mut Cursor<'_>, fields: &[TypeSerializer], supports_row_kind: bool, d: usize, tail: bool) -> F<Value> {
    let offset = if supports_row_kind { 2 } else { 0 };
    let bits = fields.len() + offset;
    let mask = c.bytes(bits.div_ceil(8), "row null mask")?;
    let bit = |i: usize| mask[i / 8] & (0x80 >> (i % 8)) != 0;
    let kind = if supports_row_kind {
        // RowKind.fromByteValue((mask[0] ? 1 : 0) + (mask[1] ? 2 : 0)): always 0..=3.
        RowKind::from_byte(u8::from(bit(0)) + 2 * u8::from(bit(1))).unwrap_or_default()
    } else {
        RowKind::Insert
    };
    let last_present = (0..fields.len()).rev().find(|&i| !bit(offset + i));
    let mut out = Vec::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        let name = format!("f{i}");
        let v = if bit(offset + i) {
            Value::Null
        } else {
            f.decode_at(c, d, tail && Some(i) == last_present).map_err(|e| e.context(|| format!("row field {name}")))?
        };
        out.push((name, v));
    }
    Ok(Value::Row { kind, fields: out })
}

/// `PojoSerializer`: `u8` flags, then null / a subclass by name / a registered subclass by tag /
/// the fields, each with a `bool isNull` flag.
fn decode_pojo(c: &mut Cursor<'_>, p: &PojoSerializer, d: usize, tail: bool) -> F<Value> {
    let at = c.position();
    let flags = c.u8("pojo flags")?;
    if flags & pojo_flags::IS_NULL != 0 {
        return Ok(Value::Null);
    }
    if flags & pojo_flags::IS_SUBCLASS != 0 {
        let name = c.utf("pojo subclass name")?;
        let ser = p.non_registered_subclasses.iter().find(|(n, _)| *n == name).and_then(|(_, s)| s.as_ref());
        return match ser {
            Some(s) => s.decode_at(c, d, tail).map_err(|e| e.context(|| format!("subclass {name}"))),
            None => Err(undecodable(c, format!("cannot delimit a {name} value: the snapshot of POJO {} has no serializer for this subclass", p.class))),
        };
    }
    if flags & pojo_flags::IS_TAGGED_SUBCLASS != 0 {
        let tag = c.u8("pojo subclass tag")?;
        let entry = p.registered_subclasses.get(usize::from(tag));
        return match entry {
            Some((name, Some(s))) => s.decode_at(c, d, tail).map_err(|e| e.context(|| format!("subclass {name}"))),
            Some((name, None)) => Err(undecodable(c, format!("cannot delimit a {name} value: no serializer snapshot for this registered subclass"))),
            None => Err(corrupt(c, at, format!("pojo subclass tag {tag} out of range ({} registered)", p.registered_subclasses.len()))),
        };
    }
    if flags & pojo_flags::NO_SUBCLASS == 0 {
        return Err(corrupt(c, at, format!("unknown pojo flags 0x{flags:02x}")));
    }
    if let Some((name, _)) = p.fields.iter().find(|(_, s)| s.is_none()) {
        return Err(undecodable(c, format!("POJO {}: the snapshot has no serializer for field {name}", p.class)));
    }
    let last_index = p.fields.len().saturating_sub(1);
    let mut out = Vec::with_capacity(p.fields.len());
    for (i, (name, ser)) in p.fields.iter().enumerate() {
        let v = if c.bool("pojo field null flag")? {
            Value::Null
        } else {
            match ser {
                Some(s) => s.decode_at(c, d, tail && i == last_index).map_err(|e| e.context(|| format!("field {name}")))?,
                None => Value::Null,
            }
        };
        out.push((name.clone(), v));
    }
    Ok(Value::Struct { fields: out })
}

fn decode_primitive_array(t: SimpleType, c: &mut Cursor<'_>) -> Result<Value, DecodeError> {
    use SimpleType as S;
    let min = match t {
        S::String => 1,
        other => other.min_len().max(1),
    };
    let n = c.count("array length", min)?;
    if t == S::Byte {
        return Ok(Value::Bytes(c.bytes(n, "byte array")?.to_vec()));
    }
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        items.push(decode_simple(t, c)?);
    }
    Ok(Value::List(items))
}

/// `BigIntSerializer.readBigInteger`: `i32` code 0 = null, 1/2/3 = 0/1/10, else `code - 4`
/// two's-complement bytes.
fn read_big_integer(c: &mut Cursor<'_>) -> Result<Option<String>, DecodeError> {
    let at = c.position();
    let code = c.i32("big integer length code")?;
    Ok(Some(match code {
        0 => return Ok(None),
        1 => "0".into(),
        2 => "1".into(),
        3 => "10".into(),
        n if n > 4 => {
            let len = (n - 4) as usize;
            let bytes = c.bytes(len, "big integer bytes")?;
            big_integer_text(bytes)
        }
        n => return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "big integer length code", value: n.into() }, at)),
    }))
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 => {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            if leap {
                29
            } else {
                28
            }
        }
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn local_date(c: &mut Cursor<'_>) -> Result<Option<Value>, DecodeError> {
    let at = c.position();
    let year = c.i32("local date year")?;
    if year == i32::MIN {
        c.skip(2, "null local date")?;
        return Ok(None);
    }
    let month = c.u8("local date month")?;
    let day = c.u8("local date day")?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || !(-999_999_999..=999_999_999).contains(&year) {
        return Err(c.error_at(DecodeErrorKind::Invalid(format!("invalid local date {year}-{month}-{day}")), at));
    }
    Ok(Some(Value::LocalDate { year, month, day }))
}

fn local_time(c: &mut Cursor<'_>) -> Result<Option<Value>, DecodeError> {
    let at = c.position();
    let hour = c.u8("local time hour")?;
    if hour == 0x80 {
        c.skip(6, "null local time")?;
        return Ok(None);
    }
    let minute = c.u8("local time minute")?;
    let second = c.u8("local time second")?;
    let nano = c.i32("local time nano")?;
    if hour > 23 || minute > 59 || second > 59 || !(0..=999_999_999).contains(&nano) {
        return Err(c.error_at(DecodeErrorKind::Invalid(format!("invalid local time {hour}:{minute}:{second}.{nano}")), at));
    }
    Ok(Some(Value::LocalTime { hour, minute, second, nano: nano as u32 }))
}

fn millis_instant(millis: i64) -> Value {
    Value::Instant { seconds: millis.div_euclid(1000), nanos: (millis.rem_euclid(1000) * 1_000_000) as u32 }
}

pub(crate) fn decode_simple(t: SimpleType, c: &mut Cursor<'_>) -> Result<Value, DecodeError> {
    use SimpleType as S;
    Ok(match t {
        S::Boolean | S::BooleanValue => Value::Bool(c.bool("boolean")?),
        S::Byte | S::ByteValue => Value::Int(i64::from(c.u8("byte")? as i8)),
        S::Short | S::ShortValue => Value::Int(i64::from(c.i16("short")?)),
        S::Int | S::IntValue => Value::Int(i64::from(c.i32("int")?)),
        S::Long | S::LongValue => Value::Int(c.i64("long")?),
        S::Float | S::FloatValue => Value::Float(widen(c.f32("float")?)),
        S::Double | S::DoubleValue => Value::Float(c.f64("double")?),
        S::Char | S::CharValue => Value::Char(c.u16("char")?),
        S::String => strings::read_fstr(c, "string")?.map_or(Value::Null, Value::String),
        S::StringValue => Value::String(strings::read_string_value(c, "string value")?),
        S::NullValue => Value::Null,
        S::BigInteger => read_big_integer(c)?.map_or(Value::Null, Value::BigInteger),
        S::BigDecimal => match read_big_integer(c)? {
            None => Value::Null,
            Some(unscaled) => Value::BigDecimal(big_decimal_text(&unscaled, c.i32("big decimal scale")?)),
        },
        S::Instant => {
            let at = c.position();
            let seconds = c.i64("instant seconds")?;
            let nanos = c.i32("instant nanos")?;
            if seconds == i64::MIN && nanos == i32::MIN {
                return Ok(Value::Null);
            }
            // Instant.ofEpochSecond(seconds, nanos) normalises the nanos.
            let seconds = seconds
                .checked_add(i64::from(nanos).div_euclid(1_000_000_000))
                .ok_or_else(|| c.error_at(DecodeErrorKind::Invalid("instant out of range".into()), at))?;
            Value::Instant { seconds, nanos: i64::from(nanos).rem_euclid(1_000_000_000) as u32 }
        }
        S::LocalDate => local_date(c)?.unwrap_or(Value::Null),
        S::LocalTime => local_time(c)?.unwrap_or(Value::Null),
        S::LocalDateTime => {
            let at = c.position();
            match (local_date(c)?, local_time(c)?) {
                (None, None) => Value::Null,
                (Some(date), Some(time)) => Value::LocalDateTime { date: Box::new(date), time: Box::new(time) },
                _ => {
                    return Err(c.error_at(DecodeErrorKind::Invalid("local date-time with only one of date and time null".into()), at))
                }
            }
        }
        S::Date | S::SqlDate | S::SqlTime => {
            let millis = c.i64("date millis")?;
            if millis == i64::MIN {
                Value::Null
            } else {
                millis_instant(millis)
            }
        }
        S::SqlTimestamp => {
            let millis = c.i64("timestamp millis")?;
            let at = c.position();
            let nanos = c.i32("timestamp nanos")?;
            if millis == i64::MIN {
                Value::Null
            } else {
                if !(0..=999_999_999).contains(&nanos) {
                    return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "timestamp nanos", value: nanos.into() }, at));
                }
                Value::Instant { seconds: millis.div_euclid(1000), nanos: nanos as u32 }
            }
        }
        S::ScalaNothing => {
            return Err(c.error(DecodeErrorKind::Invalid("Scala's NothingSerializer has no values".into())));
        }
        S::Void | S::VoidNamespace | S::GlobalWindow | S::ScalaUnit => {
            c.u8("placeholder byte")?;
            Value::Null
        }
        S::Tuple0 => {
            c.u8("tuple0 byte")?;
            Value::Struct { fields: Vec::new() }
        }
        S::TimeWindow => Value::TimeWindow { start: c.i64("window start")?, end: c.i64("window end")? },
    })
}
