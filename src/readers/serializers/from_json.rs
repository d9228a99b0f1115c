//! The dump's JSON form of a value back into a [`Value`], guided by the serializer that will write
//! it: the inverse of [`Value::to_json`] (`formats/serializers.md` § "Values and JSON"). What
//! `flinksnap edit --forget-key` reads keys with and `flinksnap import` reads JSON-encoded
//! columns with. The JSON does not say which of several Java types a number or a string is; the
//! serializer does.

use serde_json::Value as Json;

use super::consts;
use super::encode::EncodeError;
use super::{SerializerKind as K, SimpleType, TypeSerializer, MAX_DEPTH};
use crate::model::value::{RowKind, Value, ROW_KIND_KEY};

type E<T> = Result<T, EncodeError>;

pub(crate) fn bad(message: String) -> EncodeError {
    EncodeError { path: Vec::new(), message, unsupported: false }
}

pub(crate) fn within<T>(r: E<T>, what: impl FnOnce() -> String) -> E<T> {
    r.map_err(|mut e| {
        e.path.insert(0, what());
        e
    })
}

fn kind_of(j: &Json) -> &'static str {
    match j {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

pub(crate) fn expected(what: &str, j: &Json) -> EncodeError {
    bad(format!("expected {what}, found {}", kind_of(j)))
}

pub(crate) fn hex_bytes(s: &str) -> E<Vec<u8>> {
    if s.len() % 2 != 0 {
        return Err(bad(format!("hex {s:?} has an odd number of digits")));
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| bad(format!("{s:?} is not hex")))).collect()
}

/// `{"class", "hex"}`: opaque bytes, as the dump prints what it cannot decode.
pub(crate) fn opaque(j: &Json) -> Option<E<Value>> {
    let m = j.as_object()?;
    if m.len() != 2 {
        return None;
    }
    let (Some(Json::String(class)), Some(Json::String(hex))) = (m.get("class"), m.get("hex")) else { return None };
    Some(hex_bytes(hex).map(|bytes| Value::opaque(class.clone(), bytes)))
}

pub(crate) fn object<'a>(j: &'a Json, what: &str) -> E<&'a serde_json::Map<String, Json>> {
    j.as_object().ok_or_else(|| expected(what, j))
}

pub(crate) fn member<'a>(m: &'a serde_json::Map<String, Json>, name: &str) -> E<&'a Json> {
    m.get(name).ok_or_else(|| bad(format!("no field {name:?}")))
}

impl TypeSerializer {
    /// The value this serializer writes for `j`, the dump's JSON form of a value
    /// ([`Value::to_json`]). Where the dump prints opaque bytes (`{"class", "hex"}`), the bytes
    /// are taken as they are.
    pub fn value_from_json(&self, j: &Json) -> Result<Value, EncodeError> {
        self.value_from_json_at(j, 0)
    }

    pub(crate) fn value_from_json_at(&self, j: &Json, depth: usize) -> E<Value> {
        if depth > MAX_DEPTH {
            return Err(bad(format!("values nested deeper than {MAX_DEPTH} levels")));
        }
        if let Some(v) = opaque(j) {
            return v;
        }
        let d = depth + 1;
        let elements = |e: &TypeSerializer, j: &Json| -> E<Value> {
            let a = j.as_array().ok_or_else(|| expected("an array", j))?;
            a.iter().enumerate().map(|(i, x)| within(if x.is_null() { Ok(Value::Null) } else { e.value_from_json_at(x, d) }, || format!("element {i}"))).collect::<E<_>>().map(Value::List)
        };
        Ok(match &self.kind {
            K::Simple(t) => simple_from_json(*t, j)?,
            K::PrimitiveArray(SimpleType::Byte) => bytes_from_json(j)?,
            K::PrimitiveArray(t) => {
                let a = j.as_array().ok_or_else(|| expected("an array", j))?;
                Value::List(a.iter().enumerate().map(|(i, x)| within(simple_from_json(*t, x), || format!("element {i}"))).collect::<E<_>>()?)
            }
            K::Enum { class, constants } => {
                let s = j.as_str().ok_or_else(|| expected(&format!("a constant of {class}"), j))?;
                if !constants.iter().any(|c| c == s) {
                    return Err(bad(format!("{s:?} is not a constant of {class} ({})", constants.join(", "))));
                }
                Value::Enum(s.to_owned())
            }
            K::ScalaEnum { class, constants } => {
                let s = j.as_str().ok_or_else(|| expected(&format!("a value of {class}"), j))?;
                if !constants.iter().any(|(c, _)| c == s) {
                    return Err(bad(format!("{s:?} is not a value of {class}")));
                }
                Value::Enum(s.to_owned())
            }
            K::List(e) => {
                let a = j.as_array().ok_or_else(|| expected("an array", j))?;
                Value::List(a.iter().enumerate().map(|(i, x)| within(e.value_from_json_at(x, d), || format!("list element {i}"))).collect::<E<_>>()?)
            }
            K::Set(e) => elements(e, j)?,
            K::GenericArray { element, .. } | K::ScalaTraversable { element, .. } => elements(element, j)?,
            K::Map(k, v) => {
                let a = j.as_array().ok_or_else(|| expected("an array of {\"key\", \"value\"}", j))?;
                let mut entries = Vec::with_capacity(a.len());
                for (i, x) in a.iter().enumerate() {
                    let m = within(object(x, "{\"key\", \"value\"}"), || format!("map entry {i}"))?;
                    let key = within(member(m, "key").and_then(|x| k.value_from_json_at(x, d)), || format!("map key {i}"))?;
                    let value = match m.get("value") {
                        None | Some(Json::Null) => Value::Null,
                        Some(x) => within(v.value_from_json_at(x, d), || format!("map value {i}"))?,
                    };
                    entries.push((key, value));
                }
                Value::Map(entries)
            }
            K::Tuple { fields, class } => Value::Struct { fields: positional(fields, j, "f", 0, class, d)? },
            K::ScalaProduct { fields, class } => Value::Struct { fields: positional(fields, j, "_", 1, class, d)? },
            K::Row { fields, supports_row_kind } => {
                let m = object(j, "a row object {\"f0\", …}")?;
                let kind = row_kind(m)?;
                if kind != RowKind::Insert && !supports_row_kind {
                    return Err(bad(format!("row kind {} cannot be stored: this RowSerializer writes no row kinds", kind.short_string())));
                }
                check_names(m, (0..fields.len()).map(|i| format!("f{i}")).chain([ROW_KIND_KEY.to_owned()]), "the row")?;
                let mut out = Vec::with_capacity(fields.len());
                for (i, f) in fields.iter().enumerate() {
                    let name = format!("f{i}");
                    let v = match m.get(&name) {
                        None | Some(Json::Null) => Value::Null,
                        Some(x) => within(f.value_from_json_at(x, d), || format!("row field {name}"))?,
                    };
                    out.push((name, v));
                }
                Value::Row { kind, fields: out }
            }
            K::Pojo(p) => {
                if j.is_null() {
                    return Ok(Value::Null);
                }
                let m = object(j, &format!("a {} object", p.class))?;
                check_names(m, p.fields.iter().map(|(n, _)| n.clone()), &format!("POJO {}", p.class))?;
                let mut out = Vec::with_capacity(p.fields.len());
                for (name, ser) in &p.fields {
                    let v = match (m.get(name), ser) {
                        (None | Some(Json::Null), _) => Value::Null,
                        (Some(x), Some(s)) => within(s.value_from_json_at(x, d), || format!("field {name}"))?,
                        (Some(_), None) => {
                            return Err(EncodeError { path: vec![format!("field {name}")], message: format!("POJO {}: the snapshot has no serializer for this field", p.class), unsupported: true })
                        }
                    };
                    out.push((name.clone(), v));
                }
                Value::Struct { fields: out }
            }
            K::Nullable { inner, .. } | K::ScalaOption(inner) => {
                if j.is_null() {
                    Value::Null
                } else {
                    inner.value_from_json_at(j, d)?
                }
            }
            K::Either(l, r) | K::ScalaEither(l, r) => {
                let m = object(j, "{\"left\": …} or {\"right\": …}")?;
                match (m.get("left"), m.get("right"), m.len()) {
                    (Some(x), None, 1) => Value::Left(Box::new(within(l.value_from_json_at(x, d), || "left".into())?)),
                    (None, Some(x), 1) => Value::Right(Box::new(within(r.value_from_json_at(x, d), || "right".into())?)),
                    _ => return Err(bad("expected {\"left\": …} or {\"right\": …}".into())),
                }
            }
            K::GenericValue { class } => match consts::known_value_class(class) {
                Some(t) => simple_from_json(t, j)?,
                None => return Err(only_opaque(&format!("values of {class} (a user Value type)"), j)),
            },
            K::Kryo { type_class, .. } => match j {
                Json::Null => Value::Null,
                _ => return Err(only_opaque(&format!("Kryo values (type {type_class})"), j)),
            },
            K::Avro(a) => return Err(only_opaque(&format!("Avro values ({})", a.runtime_class), j)),
            K::JavaSerialized => return Err(only_opaque("values of a JavaSerializer", j)),
            K::Table(t) => super::table::value_from_json(t, j, depth)?,
            K::Cep(_) => return Err(only_opaque(&format!("values of {} (CEP state: read-only)", self.class_name), j)),
            K::Opaque { .. } => return Err(only_opaque(&format!("values of {}", self.class_name), j)),
            K::Ttl { timestamp, value } => {
                let m = object(j, "{\"lastAccessTimestamp\", \"userValue\"}")?;
                Value::Struct {
                    fields: vec![
                        ("lastAccessTimestamp".into(), within(member(m, "lastAccessTimestamp").and_then(|x| timestamp.value_from_json_at(x, d)), || "lastAccessTimestamp".into())?),
                        ("userValue".into(), within(member(m, "userValue").and_then(|x| value.value_from_json_at(x, d)), || "userValue".into())?),
                    ],
                }
            }
            K::Timer { key, namespace } => {
                let m = object(j, "{\"timestamp\", \"key\", \"namespace\"}")?;
                let ts = member(m, "timestamp")?.as_i64().ok_or_else(|| bad("timer timestamp: expected an integer".into()))?;
                Value::Struct {
                    fields: vec![
                        ("timestamp".into(), Value::Int(ts)),
                        ("key".into(), within(member(m, "key").and_then(|x| key.value_from_json_at(x, d)), || "timer key".into())?),
                        ("namespace".into(), within(member(m, "namespace").and_then(|x| namespace.value_from_json_at(x, d)), || "timer namespace".into())?),
                    ],
                }
            }
            K::ScalaTry { element, throwable } => {
                let m = object(j, "{\"success\": …} or {\"failure\": …}")?;
                match (m.get("success"), m.get("failure")) {
                    (Some(x), None) => Value::Struct { fields: vec![("success".into(), within(element.value_from_json_at(x, d), || "success".into())?)] },
                    (None, Some(x)) => Value::Struct { fields: vec![("failure".into(), within(throwable.value_from_json_at(x, d), || "failure".into())?)] },
                    _ => return Err(bad("expected {\"success\": …} or {\"failure\": …}".into())),
                }
            }
            K::StreamElement(inner) => stream_element_from_json(inner, j, d)?,
        })
    }
}

/// A row object's `"rowKind"` (`+I`, `-U`, `+U`, `-D`; absent: an insertion).
pub(crate) fn row_kind(m: &serde_json::Map<String, Json>) -> E<RowKind> {
    match m.get(ROW_KIND_KEY) {
        None => Ok(RowKind::Insert),
        Some(Json::String(k)) => [RowKind::Insert, RowKind::UpdateBefore, RowKind::UpdateAfter, RowKind::Delete]
            .into_iter()
            .find(|r| r.short_string() == k)
            .ok_or_else(|| bad(format!("row kind {k:?} is none of +I, -U, +U, -D"))),
        Some(other) => Err(expected("a row kind string", other)),
    }
}

pub(crate) fn only_opaque(what: &str, j: &Json) -> EncodeError {
    EncodeError { path: Vec::new(), message: format!("{what} can only be given as the opaque bytes the dump prints ({{\"class\", \"hex\"}}), found {}", kind_of(j)), unsupported: true }
}

pub(crate) fn check_names(m: &serde_json::Map<String, Json>, names: impl Iterator<Item = String>, what: &str) -> E<()> {
    let names: Vec<String> = names.collect();
    match m.keys().find(|k| !names.contains(k)) {
        Some(k) => Err(bad(format!("{k:?} is not a field of {what}"))),
        None => Ok(()),
    }
}

fn positional(fields: &[TypeSerializer], j: &Json, prefix: &str, first: usize, class: &str, d: usize) -> E<Vec<(String, Value)>> {
    let m = object(j, &format!("a {class} object"))?;
    let names: Vec<String> = (0..fields.len()).map(|i| format!("{prefix}{}", i + first)).collect();
    check_names(m, names.iter().cloned(), class)?;
    fields
        .iter()
        .zip(names)
        .map(|(f, name)| {
            let x = member(m, &name)?;
            let v = within(f.value_from_json_at(x, d), || format!("field {name}"))?;
            Ok((name, v))
        })
        .collect()
}

fn stream_element_from_json(inner: &TypeSerializer, j: &Json, d: usize) -> E<Value> {
    let m = object(j, "a stream element")?;
    let int = |x: &Json, what: &str| x.as_i64().map(Value::Int).ok_or_else(|| bad(format!("{what}: expected an integer")));
    let mut fields = Vec::new();
    for (k, x) in m {
        let v = match k.as_str() {
            "record" => within(inner.value_from_json_at(x, d), || "record".into())?,
            "timestamp" | "watermark" | "subpartition" | "watermarkStatus" => int(x, k)?,
            "latencyMarker" => {
                let lm = object(x, "a latency marker")?;
                Value::Struct {
                    fields: vec![
                        ("markedTime".into(), int(member(lm, "markedTime")?, "markedTime")?),
                        ("operatorId".into(), Value::String(member(lm, "operatorId")?.as_str().ok_or_else(|| bad("operatorId: expected a string".into()))?.to_owned())),
                        ("subtaskIndex".into(), int(member(lm, "subtaskIndex")?, "subtaskIndex")?),
                    ],
                }
            }
            "recordAttributes" => {
                let ra = object(x, "record attributes")?;
                Value::Struct { fields: vec![("backlog".into(), Value::Bool(member(ra, "backlog")?.as_bool().ok_or_else(|| bad("backlog: expected a boolean".into()))?))] }
            }
            other => return Err(bad(format!("{other:?} is not part of a stream element"))),
        };
        fields.push((k.clone(), v));
    }
    Ok(Value::Struct { fields })
}

pub(crate) fn bytes_from_json(j: &Json) -> E<Value> {
    let m = object(j, "{\"hex\": …}")?;
    match (m.get("hex"), m.len()) {
        (Some(Json::String(h)), 1) => Ok(Value::Bytes(hex_bytes(h)?)),
        _ => Err(bad("expected {\"hex\": …}".into())),
    }
}

pub(crate) fn integer(j: &Json, what: &str) -> E<i64> {
    match j {
        Json::Number(n) => n.as_i64().ok_or_else(|| bad(format!("{n} is not {what}"))),
        // A key given on the command line may come as text.
        Json::String(s) => s.trim().parse().map_err(|_| bad(format!("{s:?} is not {what}"))),
        other => Err(expected(what, other)),
    }
}

pub(crate) fn float(j: &Json) -> E<f64> {
    match j {
        Json::Number(n) => n.as_f64().ok_or_else(|| bad(format!("{n} is not a number"))),
        Json::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            s => s.trim().parse().map_err(|_| bad(format!("{s:?} is not a number"))),
        },
        other => Err(expected("a number", other)),
    }
}

pub(crate) fn text<'a>(j: &'a Json, what: &str) -> E<&'a str> {
    j.as_str().ok_or_else(|| expected(what, j))
}

fn temporal(j: &Json, what: &str, parse: fn(&str) -> Option<Value>) -> E<Value> {
    match j {
        Json::Null => Ok(Value::Null),
        Json::String(s) => parse(s).ok_or_else(|| bad(format!("{s:?} is not {what} (ISO-8601, as the dump prints it)"))),
        other => Err(expected(what, other)),
    }
}

/// A number as decimal text: the JSON number's own digits.
pub(crate) fn number_text(j: &Json, what: &str) -> E<String> {
    match j {
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) => Ok(n.to_string()),
        other => Err(expected(what, other)),
    }
}

pub(crate) fn simple_from_json(t: SimpleType, j: &Json) -> E<Value> {
    use SimpleType as S;
    Ok(match t {
        S::Boolean | S::BooleanValue => match j {
            Json::Bool(b) => Value::Bool(*b),
            Json::String(s) if s == "true" || s == "false" => Value::Bool(s == "true"),
            other => return Err(expected("a boolean", other)),
        },
        S::Byte | S::ByteValue | S::Short | S::ShortValue | S::Int | S::IntValue | S::Long | S::LongValue => Value::Int(integer(j, "an integer")?),
        S::Float | S::FloatValue | S::Double | S::DoubleValue => Value::Float(float(j)?),
        S::Char | S::CharValue => {
            let s = text(j, "a one-character string")?;
            let units: Vec<u16> = s.encode_utf16().collect();
            match units.as_slice() {
                [c] => Value::Char(*c),
                _ => return Err(bad(format!("{s:?} is not one UTF-16 character"))),
            }
        }
        S::String => match j {
            Json::Null => Value::Null,
            Json::String(s) => Value::String(s.clone()),
            other => return Err(expected("a string", other)),
        },
        S::StringValue => Value::String(text(j, "a string")?.to_owned()),
        S::BigInteger => match j {
            Json::Null => Value::Null,
            j => Value::BigInteger(number_text(j, "an integer")?),
        },
        S::BigDecimal => match j {
            Json::Null => Value::Null,
            j => Value::BigDecimal(number_text(j, "a decimal number")?),
        },
        S::Instant | S::Date | S::SqlDate | S::SqlTime | S::SqlTimestamp => temporal(j, "a point in time", Value::parse_instant)?,
        S::LocalDate => temporal(j, "a local date", Value::parse_local_date)?,
        S::LocalTime => temporal(j, "a local time", Value::parse_local_time)?,
        S::LocalDateTime => temporal(j, "a local date-time", Value::parse_local_date_time)?,
        S::Void | S::VoidNamespace | S::GlobalWindow | S::NullValue | S::ScalaUnit => match j {
            Json::Null => Value::Null,
            other => return Err(expected("null", other)),
        },
        S::Tuple0 => match j {
            Json::Object(m) if m.is_empty() => Value::Struct { fields: Vec::new() },
            other => return Err(expected("{}", other)),
        },
        S::TimeWindow => {
            let m = object(j, "a time window {\"start\", \"end\"}")?;
            let start = member(m, "start")?.as_i64().ok_or_else(|| bad("window start: expected an integer".into()))?;
            let end = member(m, "end")?.as_i64().ok_or_else(|| bad("window end: expected an integer".into()))?;
            Value::TimeWindow { start, end }
        }
        S::ScalaNothing => return Err(bad("Scala's NothingSerializer has no values".into())),
    })
}
