//! Decoded state values, independent of the backend and of the serializer that wrote them.
//!
//! [`Value`] is what `readers::serializers` produces; [`Value::to_json`] is the one JSON form
//! every output uses. The mapping is specified in `formats/serializers.md` § "Values and JSON".

use serde_json::{json, Map as JsonMap, Value as Json};

/// A decoded value.
///
/// Field names of [`Value::Struct`] and [`Value::Row`] are the POJO field names, `f0`, `f1` … for
/// Java tuples and rows, `_1`, `_2` … for Scala products, and the record field names for Avro.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Java `null`, `Void`, `NullValue`, `VoidNamespace` and `GlobalWindow`.
    Null,
    /// `boolean` / `Boolean` / `BooleanValue`.
    Bool(bool),
    /// Every integer type (`byte` … `long`, their boxed and `*Value` forms, Avro int and long).
    Int(i64),
    /// `float` and `double`. A `float` is widened through its shortest decimal form, so `0.1f`
    /// becomes `0.1` (and narrows back to the same `float`).
    Float(f64),
    /// A Java `char`: one UTF-16 code unit (possibly a lone surrogate).
    Char(u16),
    /// A string. Lone UTF-16 surrogates in Java strings become U+FFFD.
    String(String),
    /// `byte[]`, Avro `bytes` and `fixed`.
    Bytes(Vec<u8>),
    /// `java.math.BigInteger`, as a decimal string.
    BigInteger(String),
    /// `java.math.BigDecimal`, as `BigDecimal.toString()` prints it.
    BigDecimal(String),
    /// A point in time: `java.time.Instant`, `java.util.Date`, `java.sql.{Date, Time, Timestamp}`.
    Instant {
        /// Seconds since 1970-01-01T00:00:00Z.
        seconds: i64,
        /// Nanoseconds within the second, 0..=999_999_999.
        nanos: u32,
    },
    /// `java.time.LocalDate`.
    LocalDate {
        /// Proleptic year.
        year: i32,
        /// 1..=12.
        month: u8,
        /// 1..=31.
        day: u8,
    },
    /// `java.time.LocalTime`.
    LocalTime {
        /// 0..=23.
        hour: u8,
        /// 0..=59.
        minute: u8,
        /// 0..=59.
        second: u8,
        /// 0..=999_999_999.
        nano: u32,
    },
    /// `java.time.LocalDateTime`: a [`Value::LocalDate`] and a [`Value::LocalTime`].
    LocalDateTime {
        /// The date, a [`Value::LocalDate`].
        date: Box<Value>,
        /// The time, a [`Value::LocalTime`].
        time: Box<Value>,
    },
    /// Lists, sets, object and primitive arrays (except `byte[]`), Scala collections, Avro arrays.
    List(Vec<Value>),
    /// Maps, in stored order.
    Map(Vec<(Value, Value)>),
    /// POJOs, Java and Scala tuples, Avro records, timers and TTL wrappers: fields by name.
    Struct {
        /// Fields in serialization order.
        fields: Vec<(String, Value)>,
    },
    /// A `org.apache.flink.types.Row`: fields `f0` … plus its change kind.
    Row {
        /// The row kind (`INSERT` when the serializer does not store one).
        kind: RowKind,
        /// Fields `f0` … in order; a null field is [`Value::Null`].
        fields: Vec<(String, Value)>,
    },
    /// An enum constant by name (Java enums, Avro enums).
    Enum(String),
    /// The left side of a Java or Scala `Either`.
    Left(Box<Value>),
    /// The right side of a Java or Scala `Either`.
    Right(Box<Value>),
    /// A `TimeWindow` namespace.
    TimeWindow {
        /// Inclusive start, epoch milliseconds.
        start: i64,
        /// Exclusive end, epoch milliseconds.
        end: i64,
    },
    /// Bytes that cannot be decoded without the JVM (Kryo, unknown or custom serializers).
    /// Boxed: rare, and inline it made every value (and every entry, which holds four) 16
    /// bytes larger to move.
    Opaque(Box<OpaqueValue>),
}

/// A [`Value::Opaque`]: bytes that cannot be decoded without the JVM.
#[derive(Debug, Clone, PartialEq)]
pub struct OpaqueValue {
    /// The serializer snapshot class, or the type class when known (Kryo, POJO, `Value`).
    pub class: String,
    /// The serialized bytes.
    pub bytes: Vec<u8>,
}

impl Value {
    /// A [`Value::Opaque`] of `class` holding `bytes`.
    pub fn opaque(class: String, bytes: Vec<u8>) -> Value {
        Value::Opaque(Box::new(OpaqueValue { class, bytes }))
    }
}

/// Flink's `org.apache.flink.types.RowKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RowKind {
    /// `+I`, byte value 0.
    #[default]
    Insert,
    /// `-U`, byte value 1.
    UpdateBefore,
    /// `+U`, byte value 2.
    UpdateAfter,
    /// `-D`, byte value 3.
    Delete,
}

impl RowKind {
    /// From `RowKind.toByteValue()` (0..=3).
    pub fn from_byte(b: u8) -> Option<RowKind> {
        Some(match b {
            0 => RowKind::Insert,
            1 => RowKind::UpdateBefore,
            2 => RowKind::UpdateAfter,
            3 => RowKind::Delete,
            _ => return None,
        })
    }

    /// `RowKind.toByteValue()`.
    pub fn to_byte(self) -> u8 {
        match self {
            RowKind::Insert => 0,
            RowKind::UpdateBefore => 1,
            RowKind::UpdateAfter => 2,
            RowKind::Delete => 3,
        }
    }

    /// `RowKind.shortString()`: `+I`, `-U`, `+U`, `-D`.
    pub fn short_string(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }
}

/// The JSON key that carries a non-`INSERT` [`RowKind`] next to a row's `f0` … fields.
pub const ROW_KIND_KEY: &str = "rowKind";

impl Value {
    /// What kind of value this is, for messages ("a string", "a map").
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Char(_) => "a char",
            Value::String(_) => "a string",
            Value::Bytes(_) => "bytes",
            Value::BigInteger(_) => "a big integer",
            Value::BigDecimal(_) => "a big decimal",
            Value::Instant { .. } => "an instant",
            Value::LocalDate { .. } => "a local date",
            Value::LocalTime { .. } => "a local time",
            Value::LocalDateTime { .. } => "a local date-time",
            Value::List(_) => "a list",
            Value::Map(_) => "a map",
            Value::Struct { .. } => "a struct",
            Value::Row { .. } => "a row",
            Value::Enum(_) => "an enum constant",
            Value::Left(_) | Value::Right(_) => "an either",
            Value::TimeWindow { .. } => "a time window",
            Value::Opaque(_) => "opaque bytes",
        }
    }

    /// True for [`Value::Opaque`].
    pub fn is_opaque(&self) -> bool {
        matches!(self, Value::Opaque(_))
    }

    /// About the bytes the value takes serialized: 8 per number, strings and bytes their
    /// length plus a 4-byte length, containers the sum of their parts. A size for batching
    /// entries whose stored bytes were not kept (see [`crate::model::RawParts`]), not exact.
    pub fn size_hint(&self) -> usize {
        match self {
            Value::Null | Value::Bool(_) => 1,
            Value::Char(_) => 2,
            Value::Int(_) | Value::Float(_) | Value::LocalDate { .. } | Value::LocalTime { .. } => 8,
            Value::Instant { .. } => 12,
            Value::TimeWindow { .. } => 16,
            Value::String(s) | Value::BigInteger(s) | Value::BigDecimal(s) | Value::Enum(s) => 4 + s.len(),
            Value::Bytes(b) => 4 + b.len(),
            Value::Opaque(o) => 4 + o.bytes.len(),
            Value::List(items) => 4 + items.iter().map(Value::size_hint).sum::<usize>(),
            Value::Map(entries) => 4 + entries.iter().map(|(k, v)| k.size_hint() + v.size_hint()).sum::<usize>(),
            Value::Struct { fields } | Value::Row { fields, .. } => 1 + fields.iter().map(|(_, v)| v.size_hint()).sum::<usize>(),
            Value::Left(v) | Value::Right(v) => 1 + v.size_hint(),
            Value::LocalDateTime { date, time } => date.size_hint() + time.size_hint(),
        }
    }

    /// The number of [`Value::Opaque`] values in this value, itself included.
    #[inline]
    pub fn opaque_count(&self) -> usize {
        // Inlined for the leaves (`verify` asks of every part of every entry, most of them
        // scalars or placeholders); the containers are walked out of line.
        match self {
            Value::Opaque(_) => 1,
            Value::List(_) | Value::Map(_) | Value::Struct { .. } | Value::Row { .. } | Value::Left(_) | Value::Right(_) | Value::LocalDateTime { .. } => self.nested_opaque_count(),
            _ => 0,
        }
    }

    /// [`Value::opaque_count`] of a container.
    #[inline(never)]
    fn nested_opaque_count(&self) -> usize {
        match self {
            Value::List(items) => items.iter().map(Value::opaque_count).sum(),
            Value::Map(entries) => entries.iter().map(|(k, v)| k.opaque_count() + v.opaque_count()).sum(),
            Value::Struct { fields } | Value::Row { fields, .. } => fields.iter().map(|(_, v)| v.opaque_count()).sum(),
            Value::Left(v) | Value::Right(v) => v.opaque_count(),
            Value::LocalDateTime { date, time } => date.opaque_count() + time.opaque_count(),
            _ => 0,
        }
    }

    /// The JSON form of this value (`formats/serializers.md` § "Values and JSON"):
    /// numbers for integers and floats (`"NaN"`, `"Infinity"`, `"-Infinity"` as strings),
    /// `{"hex": …}` for bytes, objects for POJOs, tuples and rows (a row of a kind other than
    /// `INSERT` gets an extra `"rowKind"` key holding `-U`, `+U` or `-D`), arrays for lists,
    /// `[{"key", "value"}]` for maps, ISO-8601 strings for temporal values, `{"left": …}` /
    /// `{"right": …}` for `Either`, `{"start", "end"}` for time windows, and
    /// `{"class", "hex"}` for opaque values.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => json!(i),
            Value::Float(f) => float_json(*f),
            Value::Char(c) => Json::String(String::from_utf16_lossy(&[*c])),
            Value::String(s) | Value::BigInteger(s) | Value::BigDecimal(s) | Value::Enum(s) => {
                Json::String(s.clone())
            }
            Value::Bytes(b) => json!({ "hex": hex(b) }),
            Value::Instant { .. } | Value::LocalDate { .. } | Value::LocalTime { .. } | Value::LocalDateTime { .. } => {
                Json::String(self.iso8601().unwrap_or_default())
            }
            Value::List(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            Value::Map(entries) => Json::Array(
                entries.iter().map(|(k, v)| json!({ "key": k.to_json(), "value": v.to_json() })).collect(),
            ),
            Value::Struct { fields } => Json::Object(fields_json(fields)),
            Value::Row { kind, fields } => {
                let mut m = fields_json(fields);
                if *kind != RowKind::Insert {
                    m.insert(ROW_KIND_KEY.into(), Json::String(kind.short_string().into()));
                }
                Json::Object(m)
            }
            Value::Left(v) => json!({ "left": v.to_json() }),
            Value::Right(v) => json!({ "right": v.to_json() }),
            Value::TimeWindow { start, end } => json!({ "start": start, "end": end }),
            Value::Opaque(o) => json!({ "class": o.class, "hex": hex(&o.bytes) }),
        }
    }

    /// Writes [`Value::to_json`] as `serde_json::to_writer` prints it (compact), byte for byte,
    /// without building the JSON tree: `dump` writes every entry this way.
    pub fn write_json<W: std::io::Write + ?Sized>(&self, out: &mut W) -> std::io::Result<()> {
        match self {
            Value::Null => out.write_all(b"null"),
            Value::Bool(b) => out.write_all(if *b { b"true" } else { b"false" }),
            Value::Int(i) => write_scalar(out, i),
            Value::Float(f) => write_scalar(out, &float_json(*f)),
            Value::Char(c) => write_scalar(out, &String::from_utf16_lossy(&[*c])),
            Value::String(s) | Value::BigInteger(s) | Value::BigDecimal(s) | Value::Enum(s) => write_scalar(out, s.as_str()),
            Value::Bytes(b) => {
                out.write_all(b"{\"hex\":\"")?;
                write_hex(out, b)?;
                out.write_all(b"\"}")
            }
            Value::Instant { .. } | Value::LocalDate { .. } | Value::LocalTime { .. } | Value::LocalDateTime { .. } => {
                write_scalar(out, self.iso8601().unwrap_or_default().as_str())
            }
            Value::List(items) => {
                out.write_all(b"[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    v.write_json(out)?;
                }
                out.write_all(b"]")
            }
            Value::Map(entries) => {
                out.write_all(b"[")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    out.write_all(if i > 0 { b",{\"key\":" } else { b"{\"key\":" })?;
                    k.write_json(out)?;
                    out.write_all(b",\"value\":")?;
                    v.write_json(out)?;
                    out.write_all(b"}")?;
                }
                out.write_all(b"]")
            }
            // A repeated field name (or a field named like the row kind) collapses into one JSON
            // key, the first's place with the last's value: the tree does that, so it writes them.
            Value::Struct { fields } if !has_duplicate(fields, None) => write_fields(out, fields, None),
            Value::Row { kind, fields } if !has_duplicate(fields, (*kind != RowKind::Insert).then_some(ROW_KIND_KEY)) => {
                write_fields(out, fields, (*kind != RowKind::Insert).then(|| kind.short_string()))
            }
            Value::Struct { .. } | Value::Row { .. } => write_scalar(out, &self.to_json()),
            Value::Left(v) => {
                out.write_all(b"{\"left\":")?;
                v.write_json(out)?;
                out.write_all(b"}")
            }
            Value::Right(v) => {
                out.write_all(b"{\"right\":")?;
                v.write_json(out)?;
                out.write_all(b"}")
            }
            Value::TimeWindow { start, end } => {
                out.write_all(b"{\"start\":")?;
                write_scalar(out, start)?;
                out.write_all(b",\"end\":")?;
                write_scalar(out, end)?;
                out.write_all(b"}")
            }
            Value::Opaque(o) => {
                let (class, bytes) = (&o.class, &o.bytes);
                out.write_all(b"{\"class\":")?;
                write_scalar(out, class.as_str())?;
                out.write_all(b",\"hex\":\"")?;
                write_hex(out, bytes)?;
                out.write_all(b"\"}")
            }
        }
    }

    /// The ISO-8601 text of a temporal value (`None` for other values):
    /// `Instant` as `2024-01-31T12:00:00Z` (UTC, fraction only when non-zero, in groups of 3
    /// digits as `java.time` prints it), `LocalDate` as `2024-01-31` (years beyond 9999 get a `+`,
    /// negative years a `-`), `LocalTime` as `12:00:00` (seconds always printed), `LocalDateTime`
    /// as date `T` time.
    pub fn iso8601(&self) -> Option<String> {
        Some(match self {
            Value::Instant { seconds, nanos } => {
                let days = seconds.div_euclid(86_400);
                let secs = seconds.rem_euclid(86_400);
                let (y, m, d) = civil_from_days(days);
                format!(
                    "{}T{}Z",
                    date_text(y, m, d),
                    time_text((secs / 3600) as u8, (secs / 60 % 60) as u8, (secs % 60) as u8, *nanos)
                )
            }
            Value::LocalDate { year, month, day } => date_text(i64::from(*year), *month, *day),
            Value::LocalTime { hour, minute, second, nano } => time_text(*hour, *minute, *second, *nano),
            Value::LocalDateTime { date, time } => format!("{}T{}", date.iso8601()?, time.iso8601()?),
            _ => return None,
        })
    }
}

/// One JSON scalar (or a whole tree) through serde_json: its number formatting and string escapes.
pub(crate) fn write_scalar<W: std::io::Write + ?Sized, T: serde::Serialize + ?Sized>(out: &mut W, v: &T) -> std::io::Result<()> {
    let mut ser = serde_json::Serializer::new(out);
    v.serialize(&mut ser).map_err(std::io::Error::other)
}

/// Lowercase hex, written straight out.
pub(crate) fn write_hex<W: std::io::Write + ?Sized>(out: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 128];
    for chunk in bytes.chunks(64) {
        for (i, b) in chunk.iter().enumerate() {
            buf[2 * i] = DIGITS[usize::from(b >> 4)];
            buf[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
        }
        out.write_all(&buf[..2 * chunk.len()])?;
    }
    Ok(())
}

/// Whether a field name repeats (or equals `extra`): such objects are written through the tree.
fn has_duplicate(fields: &[(String, Value)], extra: Option<&str>) -> bool {
    if extra.is_some_and(|x| fields.iter().any(|(k, _)| k == x)) {
        return true;
    }
    if fields.len() <= 16 {
        return fields.iter().enumerate().any(|(i, (k, _))| fields[..i].iter().any(|(p, _)| p == k));
    }
    let mut names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    names.windows(2).any(|w| w[0] == w[1])
}

fn write_fields<W: std::io::Write + ?Sized>(out: &mut W, fields: &[(String, Value)], row_kind: Option<&str>) -> std::io::Result<()> {
    out.write_all(b"{")?;
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write_scalar(out, k.as_str())?;
        out.write_all(b":")?;
        v.write_json(out)?;
    }
    if let Some(kind) = row_kind {
        out.write_all(if fields.is_empty() { b"\"" } else { b",\"" })?;
        out.write_all(ROW_KIND_KEY.as_bytes())?;
        out.write_all(b"\":")?;
        write_scalar(out, kind)?;
    }
    out.write_all(b"}")
}

fn fields_json(fields: &[(String, Value)]) -> JsonMap<String, Json> {
    fields.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()
}

fn float_json(f: f64) -> Json {
    if f.is_nan() {
        Json::String("NaN".into())
    } else if f == f64::INFINITY {
        Json::String("Infinity".into())
    } else if f == f64::NEG_INFINITY {
        Json::String("-Infinity".into())
    } else {
        serde_json::Number::from_f64(f).map(Json::Number).unwrap_or(Json::Null)
    }
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `java.time` year formatting: 4 digits, `+` beyond 9999, `-` for negative years.
fn date_text(y: i64, m: u8, d: u8) -> String {
    let year = if y > 9999 {
        format!("+{y}")
    } else if y < 0 {
        format!("-{:04}", y.unsigned_abs())
    } else {
        format!("{y:04}")
    };
    format!("{year}-{m:02}-{d:02}")
}

fn time_text(h: u8, m: u8, s: u8, nano: u32) -> String {
    let mut out = format!("{h:02}:{m:02}:{s:02}");
    if nano != 0 {
        if nano % 1_000_000 == 0 {
            out.push_str(&format!(".{:03}", nano / 1_000_000));
        } else if nano % 1000 == 0 {
            out.push_str(&format!(".{:06}", nano / 1000));
        } else {
            out.push_str(&format!(".{nano:09}"));
        }
    }
    out
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm, the inverse of
/// `civil_from_days`).
pub(crate) fn days_from_civil(y: i64, m: u8, d: u8) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// `java.time` date text (`2024-01-31`, `+12345-01-01`, `-0005-01-01`): year, month, day.
fn parse_date(s: &str) -> Option<(i64, u8, u8)> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => (1, s),
    };
    let mut parts = rest.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() < 4 || m.len() != 2 || d.len() != 2 || !y.bytes().chain(m.bytes()).chain(d.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year = sign * y.parse::<i64>().ok()?;
    let (month, day): (u8, u8) = (m.parse().ok()?, d.parse().ok()?);
    let days_in_month = match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    (1..=days_in_month).contains(&day).then_some((year, month, day))
}

/// `HH:MM[:SS[.fraction]]`: hour, minute, second, nanoseconds.
fn parse_time(s: &str) -> Option<(u8, u8, u8, u32)> {
    let (hms, frac) = match s.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (s, None),
    };
    let mut parts = hms.split(':');
    let h: u8 = parts.next().filter(|p| p.len() == 2)?.parse().ok()?;
    let m: u8 = parts.next().filter(|p| p.len() == 2)?.parse().ok()?;
    let sec: u8 = match parts.next() {
        Some(p) if p.len() == 2 => p.parse().ok()?,
        None if frac.is_none() => 0,
        _ => return None,
    };
    if parts.next().is_some() || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let nano = match frac {
        None => 0,
        Some(f) if (1..=9).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => f.parse::<u32>().ok()? * 10u32.pow(9 - f.len() as u32),
        Some(_) => return None,
    };
    Some((h, m, sec, nano))
}

impl Value {
    /// Parses what [`Value::iso8601`] prints for a point in time (`2024-01-31T12:00:00.5Z`):
    /// a [`Value::Instant`].
    pub fn parse_instant(s: &str) -> Option<Value> {
        let body = s.strip_suffix('Z')?;
        let (date, time) = body.split_once('T')?;
        let (y, m, d) = parse_date(date)?;
        let (h, mi, sec, nanos) = parse_time(time)?;
        let days = days_from_civil(y, m, d);
        let seconds = days.checked_mul(86_400)?.checked_add(i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(sec))?;
        Some(Value::Instant { seconds, nanos })
    }

    /// Parses a `java.time.LocalDate` text: a [`Value::LocalDate`].
    pub fn parse_local_date(s: &str) -> Option<Value> {
        let (y, month, day) = parse_date(s)?;
        Some(Value::LocalDate { year: i32::try_from(y).ok()?, month, day })
    }

    /// Parses a `java.time.LocalTime` text: a [`Value::LocalTime`].
    pub fn parse_local_time(s: &str) -> Option<Value> {
        let (hour, minute, second, nano) = parse_time(s)?;
        Some(Value::LocalTime { hour, minute, second, nano })
    }

    /// Parses a `java.time.LocalDateTime` text: a [`Value::LocalDateTime`].
    pub fn parse_local_date_time(s: &str) -> Option<Value> {
        let (date, time) = s.split_once('T')?;
        Some(Value::LocalDateTime { date: Box::new(Value::parse_local_date(date)?), time: Box::new(Value::parse_local_time(time)?) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_mapping() {
        let v = Value::Struct {
            fields: vec![
                ("a".into(), Value::Int(-3)),
                ("b".into(), Value::Float(f64::NAN)),
                ("c".into(), Value::Bytes(vec![0xab, 0x01])),
                ("d".into(), Value::Map(vec![(Value::String("k".into()), Value::Null)])),
                ("e".into(), Value::Left(Box::new(Value::Char(0x41)))),
                ("f".into(), Value::TimeWindow { start: 0, end: 10 }),
                ("g".into(), Value::opaque("X".into(), vec![1])),
                ("h".into(), Value::Float(f64::NEG_INFINITY)),
                ("i".into(), Value::List(vec![Value::Bool(true), Value::Enum("RED".into())])),
            ],
        };
        assert_eq!(
            v.to_json(),
            json!({
                "a": -3, "b": "NaN", "c": {"hex": "ab01"},
                "d": [{"key": "k", "value": null}], "e": {"left": "A"},
                "f": {"start": 0, "end": 10}, "g": {"class": "X", "hex": "01"},
                "h": "-Infinity", "i": [true, "RED"]
            })
        );
        assert_eq!(v.opaque_count(), 1);
        assert!(!v.is_opaque());
    }

    /// `write_json` is the tree, printed: every variant, escapes, non-finite floats, repeated
    /// field names (the tree keeps one key), a field named like the row kind.
    #[test]
    fn write_json_prints_the_tree() {
        let s = |x: &str| Value::String(x.into());
        let f = |k: &str, v: Value| (k.to_string(), v);
        let wide: Vec<(String, Value)> = (0..20).map(|i| (format!("c{}", i % 19), Value::Int(i))).collect();
        let values = vec![
            Value::Null,
            Value::Bool(false),
            Value::Int(i64::MIN),
            Value::Float(0.1),
            Value::Float(-0.0),
            Value::Float(1e300),
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
            Value::Char(0xd800),
            Value::Char(u16::from(b'"')),
            s("quote \" backslash \\ newline \n ctrl \u{1} é 😀"),
            Value::BigInteger("-123".into()),
            Value::BigDecimal("1.50".into()),
            Value::Enum("RED".into()),
            Value::Bytes(vec![]),
            Value::Bytes((0..=200).collect()),
            Value::Instant { seconds: 1_700_000_000, nanos: 5_000_000 },
            Value::LocalDate { year: -5, month: 1, day: 1 },
            Value::LocalTime { hour: 7, minute: 8, second: 9, nano: 1 },
            Value::LocalDateTime {
                date: Box::new(Value::LocalDate { year: 2024, month: 1, day: 5 }),
                time: Box::new(Value::LocalTime { hour: 0, minute: 0, second: 0, nano: 0 }),
            },
            Value::List(vec![]),
            Value::List(vec![Value::Int(1), s("x"), Value::Null]),
            Value::Map(vec![]),
            Value::Map(vec![(s("k"), Value::List(vec![Value::Bool(true)])), (Value::Int(2), Value::Null)]),
            Value::Struct { fields: vec![] },
            Value::Struct { fields: vec![f("a", Value::Int(1)), f("we\"ird", s("v"))] },
            Value::Struct { fields: vec![f("a", Value::Int(1)), f("b", Value::Int(2)), f("a", Value::Int(3))] },
            Value::Struct { fields: wide.clone() },
            Value::Struct { fields: wide[..19].to_vec() },
            Value::Row { kind: RowKind::Insert, fields: vec![f("f0", Value::Int(1))] },
            Value::Row { kind: RowKind::Delete, fields: vec![] },
            Value::Row { kind: RowKind::UpdateAfter, fields: vec![f("f0", Value::Int(1)), f("f1", Value::Null)] },
            Value::Row { kind: RowKind::UpdateBefore, fields: vec![f(ROW_KIND_KEY, s("mine")), f("f1", Value::Null)] },
            Value::Row { kind: RowKind::Insert, fields: vec![f(ROW_KIND_KEY, s("mine"))] },
            Value::Left(Box::new(Value::Null)),
            Value::Right(Box::new(Value::TimeWindow { start: -10, end: i64::MAX })),
            Value::opaque("com.example.\"X\"".into(), vec![0xff, 0]),
        ];
        for v in &values {
            let mut out = Vec::new();
            v.write_json(&mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&v.to_json()).unwrap(), "{v:?}");
        }
        // All of them nested in one list, once more.
        let all = Value::List(values);
        let mut out = Vec::new();
        all.write_json(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&all.to_json()).unwrap());
    }

    #[test]
    fn row_kind_only_when_not_insert() {
        let f = vec![("f0".to_string(), Value::Int(1))];
        assert_eq!(Value::Row { kind: RowKind::Insert, fields: f.clone() }.to_json(), json!({"f0": 1}));
        assert_eq!(
            Value::Row { kind: RowKind::UpdateBefore, fields: f }.to_json(),
            json!({"f0": 1, "rowKind": "-U"})
        );
    }

    #[test]
    fn temporal_iso8601() {
        assert_eq!(Value::Instant { seconds: 0, nanos: 0 }.to_json(), json!("1970-01-01T00:00:00Z"));
        assert_eq!(
            Value::Instant { seconds: 1_700_000_000, nanos: 5_000_000 }.to_json(),
            json!("2023-11-14T22:13:20.005Z")
        );
        assert_eq!(Value::Instant { seconds: -1, nanos: 1000 }.to_json(), json!("1969-12-31T23:59:59.000001Z"));
        assert_eq!(Value::LocalDate { year: 2024, month: 2, day: 29 }.to_json(), json!("2024-02-29"));
        assert_eq!(Value::LocalDate { year: -5, month: 1, day: 1 }.to_json(), json!("-0005-01-01"));
        assert_eq!(Value::LocalDate { year: 12345, month: 1, day: 1 }.to_json(), json!("+12345-01-01"));
        let dt = Value::LocalDateTime {
            date: Box::new(Value::LocalDate { year: 2024, month: 1, day: 5 }),
            time: Box::new(Value::LocalTime { hour: 7, minute: 8, second: 9, nano: 123_456_789 }),
        };
        assert_eq!(dt.to_json(), json!("2024-01-05T07:08:09.123456789"));
        // Extreme values render without overflow.
        assert!(Value::Instant { seconds: i64::MAX, nanos: 0 }.iso8601().is_some());
        assert!(Value::Instant { seconds: i64::MIN, nanos: 0 }.iso8601().is_some());
    }

    #[test]
    fn iso8601_parses_back() {
        let values = [
            Value::Instant { seconds: 0, nanos: 0 },
            Value::Instant { seconds: 1_700_000_000, nanos: 5_000_000 },
            Value::Instant { seconds: -1, nanos: 1000 },
            Value::Instant { seconds: -62_135_596_800 - 86_400 * 400, nanos: 123_456_789 },
            Value::Instant { seconds: 400_000_000_000, nanos: 0 },
        ];
        for v in values {
            assert_eq!(Value::parse_instant(&v.iso8601().unwrap()), Some(v.clone()), "{v:?}");
        }
        for v in [Value::LocalDate { year: 2024, month: 2, day: 29 }, Value::LocalDate { year: -5, month: 1, day: 1 }, Value::LocalDate { year: 12345, month: 12, day: 31 }] {
            assert_eq!(Value::parse_local_date(&v.iso8601().unwrap()), Some(v.clone()));
        }
        let t = Value::LocalTime { hour: 7, minute: 8, second: 9, nano: 120_000_000 };
        assert_eq!(Value::parse_local_time(&t.iso8601().unwrap()), Some(t));
        assert_eq!(Value::parse_local_time("07:08"), Some(Value::LocalTime { hour: 7, minute: 8, second: 0, nano: 0 }));
        assert_eq!(Value::parse_local_date("2023-02-29"), None);
        assert_eq!(Value::parse_instant("2024-01-01T00:00:00"), None);
    }
}
