//! `TypeSerializerSnapshot` framing (`TypeSerializerSnapshotSerializationUtil`,
//! `TypeSerializerSnapshot.readVersionedSnapshot`, `CompositeTypeSerializerSnapshot`,
//! `NestedSerializersSnapshotDelegate`, `SimpleTypeSerializerSnapshot`) and the payload of every
//! snapshot class flinksnap knows. Layouts: `formats/serializers.md` § Snapshots.
//!
//! A snapshot flinksnap cannot interpret (an unknown class, an unknown version of a known class,
//! a legacy configuration snapshot) has a payload of unknown length: it is skipped only to an end
//! the caller established ([`super::resync`]), and is otherwise an error of kind
//! [`DecodeErrorKind::UnknownSerializer`] saying where its payload starts.

use super::consts::{self, Family};
use super::resync::{is_java_name, read_exact, Ctx, Follows};
use super::{avro, pojo, strings, AvroSerializer, SerializerKind as K, TypeSerializer, MAX_DEPTH};
use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind, ResultExt};

type R<T> = Result<T, DecodeError>;

/// Reads a snapshot in proxy form (the top-level form of the keyed and operator backend
/// proxies): `i32` proxy version 2 (or 1, written before Flink 1.7 and read by 1.13–1.16), then
/// the versioned form. An unknown snapshot is an error (a serialization proxy reads past one
/// with what follows it: `readers::meta`).
pub fn read_proxy_snapshot(c: &mut Cursor<'_>) -> Result<TypeSerializer, DecodeError> {
    read_proxy(c, Ctx::top())
}

/// [`read_proxy_snapshot`] with the parse context of a serialization proxy.
pub(crate) fn read_proxy(c: &mut Cursor<'_>, cx: Ctx<'_>) -> R<TypeSerializer> {
    let at = c.position();
    match c.i32("serializer snapshot proxy version")? {
        consts::PROXY_VERSION => read_versioned(c, cx),
        consts::PROXY_VERSION_LEGACY => read_proxy_v1(c, cx),
        v => Err(c.error_at(DecodeErrorKind::InvalidValue { what: "serializer snapshot proxy version", value: v.into() }, at)),
    }
}

/// Reads a snapshot in versioned form (nested snapshots, timer snapshots): `utf` snapshot class
/// name, `i32` snapshot version, class-specific payload.
///
/// A class flinksnap does not know is an error naming the class: its payload has no length, so
/// nothing after it could be read on its own. (Inside length-framed blobs, such as POJO field
/// snapshots, the frame bounds it and it is kept as an opaque serializer instead.)
pub fn read_versioned_snapshot(c: &mut Cursor<'_>) -> Result<TypeSerializer, DecodeError> {
    read_versioned(c, Ctx::top())
}

/// A snapshot inside a length frame (POJO field and subclass snapshots): read to the frame's
/// end, past unknown snapshots inside it where the frame's end allows exactly one way.
pub(crate) fn read_framed(frame: &mut Cursor<'_>, depth: usize) -> R<TypeSerializer> {
    read_exact(frame, Follows::Anything, &|c, skips| {
        let s = read_versioned(c, Ctx { depth, skips })?;
        c.expect_end("framed serializer snapshot")?;
        Ok(s)
    })
}

/// Proxy version 1 (Flink 1.4–1.6): `utf` class, then `i32` version and payload for a
/// `TypeSerializerSnapshot` class; a `TypeSerializerConfigSnapshot` would follow with its own
/// unframed configuration, which needs the JVM.
fn read_proxy_v1(c: &mut Cursor<'_>, cx: Ctx<'_>) -> R<TypeSerializer> {
    let at = c.position();
    let class = c.utf("serializer snapshot class")?;
    let version = c.i32("serializer snapshot version")?;
    match consts::family(&class).filter(|&f| version_known(f, version)) {
        Some(family) => read_payload(c, class, version, family, cx),
        None => unknown(c, cx, class, version, at, "(proxy version 1)"),
    }
}

pub(crate) fn read_versioned(c: &mut Cursor<'_>, cx: Ctx<'_>) -> R<TypeSerializer> {
    let at = c.position();
    if cx.depth > MAX_DEPTH {
        return Err(c.error(DecodeErrorKind::Invalid(format!(
            "serializer snapshots nested deeper than {MAX_DEPTH} levels"
        ))));
    }
    let class = c.utf("serializer snapshot class")?;
    let mut version = c.i32("serializer snapshot version")?;
    let family = consts::family(&class);
    if version == consts::ADAPTER_VERSION {
        // TypeSerializerSerializationUtil: the Java-serialized serializer, skippable by length.
        c.i32("java-serialized serializer proxy version")?;
        let len = c.count("java-serialized serializer length", 1)?;
        c.skip(len, "java-serialized serializer")?;
        // Then the snapshot's own version: a class flinksnap knows continues as usual; a legacy
        // TypeSerializerConfigSnapshot writes its configuration, of unknown length.
        version = c.i32("serializer snapshot version after adapter")?;
        if family.is_none() {
            return unknown(c, cx, class, version, at, "(a legacy TypeSerializerConfigSnapshot, Flink ≤ 1.16)");
        }
    }
    match family.filter(|&f| version_known(f, version)) {
        Some(family) => {
            let short = short_name(&class).to_owned();
            read_payload(c, class, version, family, cx).context_with(|| short)
        }
        None => unknown(c, cx, class, version, at, ""),
    }
}

/// A snapshot flinksnap cannot interpret, whose payload starts at the cursor: skipped to the end
/// `cx` assumes for it (an opaque serializer), else an [`DecodeErrorKind::UnknownSerializer`]
/// error at `at` (its class name).
fn unknown(c: &mut Cursor<'_>, cx: Ctx<'_>, class: String, version: i32, at: u64, note: &str) -> R<TypeSerializer> {
    let payload = c.position();
    if !is_java_name(&class) {
        // Not a class Flink could have written: damage, not an unknown serializer.
        return Err(c.error_at(DecodeErrorKind::Invalid(format!("serializer snapshot class {class:?} is not a Java class name")), at));
    }
    let known = consts::family(&class).is_some();
    if !known {
        if let Some(near) = one_byte_from_known(&class) {
            // A byte changed in the name of a class flinksnap knows: damage. No two serializer
            // snapshot classes of Flink 1.13–2.3 differ in one byte (checked against every
            // `*Serializer*`/`*Snapshot*` class of their jars), so reading past it as an
            // unknown serializer would only hide the damage.
            return Err(c.error_at(
                DecodeErrorKind::Invalid(format!(
                    "serializer snapshot class {class} is not one Flink ships: it differs in one byte from {near} (a damaged class name)"
                )),
                at,
            ));
        }
    }
    let what = if known { format!("version {version} of serializer snapshot {class}") } else { format!("serializer snapshot class {class}") };
    match cx.skips.end_of(payload) {
        Some(end) => {
            let len = usize::try_from(end.saturating_sub(payload)).unwrap_or(usize::MAX);
            c.skip(len, "unknown serializer snapshot payload")?;
            let reason = format!("flinksnap does not know {what}{}{note}", if note.is_empty() { "" } else { " " });
            Ok(TypeSerializer::new(class, version, K::Opaque { reason }))
        }
        None => Err(c.error_at(
            DecodeErrorKind::UnknownSerializer(Box::new(crate::error::UnknownSerializer {
                what: format!("flinksnap does not know {what}{}{note}: its payload has no length", if note.is_empty() { "" } else { " " }),
                class,
                payload,
            })),
            at,
        )),
    }
}

/// The class flinksnap knows whose name differs from `class` in exactly one byte (same length),
/// if there is one. Remembered per class: the resync search meets the same unknown class many
/// times.
fn one_byte_from_known(class: &str) -> Option<String> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static SEEN: RefCell<HashMap<String, Option<String>>> = RefCell::new(HashMap::new());
    }
    if let Some(hit) = SEEN.with(|m| m.borrow().get(class).cloned()) {
        return hit;
    }
    let mut bytes = class.as_bytes().to_vec();
    let mut found = None;
    'search: for i in 0..bytes.len() {
        let orig = bytes[i];
        // Java names of Flink's classes are ASCII.
        for b in 0x20u8..0x7f {
            if b == orig {
                continue;
            }
            bytes[i] = b;
            if let Ok(name) = std::str::from_utf8(&bytes) {
                if consts::family(name).is_some() {
                    found = Some(name.to_owned());
                    break 'search;
                }
            }
        }
        bytes[i] = orig;
    }
    SEEN.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() > 4096 {
            m.clear();
        }
        m.insert(class.to_owned(), found.clone());
    });
    found
}

/// Whether flinksnap reads `version` of a snapshot of `family` (other versions are unknown
/// snapshots: their payload may differ).
fn version_known(family: Family, version: i32) -> bool {
    match family {
        Family::Simple(_) | Family::PrimitiveArray(_) | Family::JavaSerialized => matches!(version, 2 | 3),
        Family::Pojo | Family::Kryo => version == 2,
        Family::Avro => (1..=3).contains(&version),
        // No version changed these layouts.
        Family::Enum | Family::GenericValue | Family::ScalaEnum => version >= 1,
        // The table runtime's and CEP's readers check their versions themselves (some are 0).
        Family::Table(_) | Family::Cep(_) => true,
        // Composite snapshots: legacy (no magic) up to 2, composite from 3.
        _ => version >= 1,
    }
}

/// The simple name of a class, for error paths.
fn short_name(class: &str) -> &str {
    class.rsplit('.').next().unwrap_or(class)
}

fn unsupported_version(c: &Cursor<'_>, at: u64, class: &str, version: i32) -> DecodeError {
    c.error_at(DecodeErrorKind::Invalid(format!("unsupported version {version} of serializer snapshot {class}")), at)
}

fn read_payload(c: &mut Cursor<'_>, class: String, version: i32, family: Family, cx: Ctx<'_>) -> R<TypeSerializer> {
    let at = c.position();
    let kind = match family {
        Family::Simple(t) => {
            simple_payload(c, &class, version, at)?;
            K::Simple(t)
        }
        Family::PrimitiveArray(t) => {
            simple_payload(c, &class, version, at)?;
            K::PrimitiveArray(t)
        }
        Family::Enum => {
            let enum_class = c.utf("enum class")?;
            let n = c.count("number of enum constants", 2)?;
            let mut constants = Vec::with_capacity(n);
            for _ in 0..n {
                constants.push(c.utf("enum constant")?);
            }
            K::Enum { class: enum_class, constants }
        }
        Family::Pojo => {
            if version != 2 {
                return Err(unsupported_version(c, at, &class, version));
            }
            K::Pojo(Box::new(pojo::read_pojo_snapshot(c, cx.depth)?))
        }
        Family::GenericValue => K::GenericValue { class: c.utf("value class")? },
        Family::JavaSerialized => {
            simple_payload(c, &class, version, at)?;
            K::JavaSerialized
        }
        Family::ScalaEnum => {
            // ScalaEnumSerializerSnapshot: utf Enumeration class, i32 n, n × (utf name, i32 id).
            let enum_class = c.utf("scala enumeration class")?;
            let n = c.count("number of scala enumeration values", 6)?;
            let mut constants = Vec::with_capacity(n);
            for _ in 0..n {
                constants.push((c.utf("scala enumeration value name")?, c.i32("scala enumeration value id")?));
            }
            K::ScalaEnum { class: enum_class, constants }
        }
        Family::Kryo => {
            if version != 2 {
                return Err(unsupported_version(c, at, &class, version));
            }
            read_kryo(c)?
        }
        Family::Avro => read_avro(c, &class, version, at)?,
        // The table runtime's and CEP's snapshots nest others below this depth.
        Family::Table(t) => return super::table::read_snapshot(c, class, version, t, cx.depth),
        Family::Cep(t) => return super::cep::read(c, class, version, t, cx.depth),
        _ => return read_composite(c, class, version, family, cx),
    };
    Ok(TypeSerializer::new(class, version, kind))
}

/// `SimpleTypeSerializerSnapshot`: version 3 has no payload, version 2 a discarded `utf`
/// serializer class name.
fn simple_payload(c: &mut Cursor<'_>, class: &str, version: i32, at: u64) -> R<()> {
    match version {
        3 => Ok(()),
        2 => c.utf("serializer class name").map(drop),
        v => Err(unsupported_version(c, at, class, v)),
    }
}

/// Outer payloads of composite snapshots.
enum Outer {
    None,
    Class(String),
    RowKind(bool),
    Padding(u32),
}

/// `CompositeTypeSerializerSnapshot`: version ≥ 3 is magic, outer version, outer payload;
/// version ≤ 2 (legacy) is the outer payload read with the snapshot version. Then the nested
/// snapshots (`NestedSerializersSnapshotDelegate`).
fn read_composite(c: &mut Cursor<'_>, class: String, version: i32, family: Family, cx: Ctx<'_>) -> R<TypeSerializer> {
    let outer_version = if version > consts::HIGHEST_LEGACY_COMPOSITE_VERSION {
        magic(c, consts::COMPOSITE_MAGIC, "composite serializer snapshot magic")?;
        c.i32("outer snapshot version")?
    } else {
        version
    };
    let outer = match family {
        Family::GenericArray => Outer::Class(c.utf("array component class")?),
        Family::Tuple | Family::ScalaProduct => Outer::Class(c.utf("tuple class")?),
        Family::ScalaTraversable => Outer::Class(c.utf("collection builder code")?),
        Family::Row => Outer::RowKind(match outer_version {
            v if v < 3 => false,
            3 => true,
            _ => c.bool("row kind support flag")?,
        }),
        Family::Nullable => Outer::Padding(c.non_negative_i32("null padding length")?),
        _ => Outer::None,
    };
    let nat = c.position() + 8;
    let nested = read_nested(c, cx)?;
    let n = nested.len();
    let expect = |want: usize, c: &Cursor<'_>| -> R<()> {
        if n == want {
            Ok(())
        } else {
            Err(c.error_at(
                DecodeErrorKind::Invalid(format!("{} needs {want} nested serializers, the snapshot has {n}", short_name(&class))),
                nat,
            ))
        }
    };
    let mut it = nested.into_iter().map(Box::new);
    let mut next = || it.next().ok_or_else(|| c.error_at(DecodeErrorKind::Invalid("missing nested serializer".into()), nat));
    let kind = match (family, outer) {
        (Family::List, _) => {
            expect(1, c)?;
            K::List(next()?)
        }
        (Family::Set, _) => {
            expect(1, c)?;
            K::Set(next()?)
        }
        (Family::ScalaOption, _) => {
            expect(1, c)?;
            K::ScalaOption(next()?)
        }
        (Family::Map, _) => {
            expect(2, c)?;
            K::Map(next()?, next()?)
        }
        (Family::Either, _) => {
            expect(2, c)?;
            K::Either(next()?, next()?)
        }
        (Family::ScalaEither, _) => {
            expect(2, c)?;
            K::ScalaEither(next()?, next()?)
        }
        (Family::Ttl, _) => {
            expect(2, c)?;
            K::Ttl { timestamp: next()?, value: next()? }
        }
        (Family::ScalaTry, _) => {
            expect(2, c)?;
            K::ScalaTry { element: next()?, throwable: next()? }
        }
        (Family::StreamElement, _) => {
            expect(1, c)?;
            K::StreamElement(next()?)
        }
        (Family::Timer, _) => {
            expect(2, c)?;
            K::Timer { key: next()?, namespace: next()? }
        }
        (Family::Nullable, Outer::Padding(padding)) => {
            expect(1, c)?;
            K::Nullable { padding, inner: next()? }
        }
        (Family::GenericArray, Outer::Class(component_class)) => {
            expect(1, c)?;
            K::GenericArray { component_class, element: next()? }
        }
        (Family::ScalaTraversable, Outer::Class(builder_code)) => {
            expect(1, c)?;
            K::ScalaTraversable { builder_code, element: next()? }
        }
        (Family::Tuple, Outer::Class(tuple_class)) => K::Tuple { class: tuple_class, fields: it.map(|b| *b).collect() },
        (Family::ScalaProduct, Outer::Class(product_class)) => {
            K::ScalaProduct { class: product_class, fields: it.map(|b| *b).collect() }
        }
        (Family::Row, Outer::RowKind(supports_row_kind)) => K::Row { fields: it.map(|b| *b).collect(), supports_row_kind },
        _ => {
            return Err(c.error_at(DecodeErrorKind::Invalid(format!("{class} is not a composite snapshot")), nat));
        }
    };
    Ok(TypeSerializer::new(class, version, kind))
}

/// `NestedSerializersSnapshotDelegate`: magic, version 1, `i32 n`, n snapshots in versioned form.
fn read_nested(c: &mut Cursor<'_>, cx: Ctx<'_>) -> R<Vec<TypeSerializer>> {
    magic(c, consts::NESTED_MAGIC, "nested serializer snapshots magic")?;
    let vat = c.position();
    let nested_version = c.i32("nested serializer snapshots version")?;
    if nested_version != consts::NESTED_VERSION {
        return Err(c.error_at(
            DecodeErrorKind::InvalidValue { what: "nested serializer snapshots version", value: nested_version.into() },
            vat,
        ));
    }
    // Each nested snapshot is at least a utf length and a version.
    let n = c.count("number of nested serializer snapshots", 6)?;
    let mut nested = Vec::with_capacity(n);
    for i in 0..n {
        nested.push(read_versioned(c, cx.nested()).context_with(|| format!("nested serializer {i}"))?);
    }
    Ok(nested)
}

/// A `NestedSerializersSnapshotDelegate` of known snapshots only (how [`super::resync`] finds
/// where an unknown composite snapshot ends).
pub(crate) fn read_nested_delegate(c: &mut Cursor<'_>) -> R<Vec<TypeSerializer>> {
    read_nested(c, Ctx::top())
}

fn magic(c: &mut Cursor<'_>, expected: u32, what: &'static str) -> R<()> {
    let at = c.position();
    let found = c.u32(what)?;
    if found != expected {
        return Err(c.error_at(DecodeErrorKind::BadMagic { what, expected, found }, at));
    }
    Ok(())
}

/// `KryoSerializerSnapshot` v2: `utf` type class, then three optional maps (registrations,
/// default serializer instances, default serializer classes) whose frames are skipped.
fn read_kryo(c: &mut Cursor<'_>) -> R<K> {
    let type_class = c.utf("kryo type class")?;
    let registrations = pojo::read_optional_map(c, "kryo registrations")?.into_iter().map(|e| e.name).collect();
    for what in ["kryo default serializers", "kryo default serializer classes"] {
        pojo::read_optional_map(c, what)?;
    }
    Ok(K::Kryo { type_class, registrations })
}

/// `AvroSerializerSnapshot`: v1 `utf` schema; v2 `utf` runtime class, `utf` schema; v3 the same
/// as `fstr` (FLINK-19491, schemas over 64 KiB).
fn read_avro(c: &mut Cursor<'_>, class: &str, version: i32, at: u64) -> R<K> {
    let (runtime_class, schema_json) = match version {
        1 => {
            let schema = c.utf("avro schema")?;
            // Flink falls back to GenericRecord when the schema's full name is not a class.
            (String::new(), schema)
        }
        2 => (c.utf("avro runtime class")?, c.utf("avro schema")?),
        3 => {
            let rat = c.position();
            let runtime = strings::read_fstr(c, "avro runtime class")?
                .ok_or_else(|| c.error_at(DecodeErrorKind::Invalid("null avro runtime class".into()), rat))?;
            let sat = c.position();
            let schema = strings::read_fstr(c, "avro schema")?
                .ok_or_else(|| c.error_at(DecodeErrorKind::Invalid("null avro schema".into()), sat))?;
            (runtime, schema)
        }
        v => return Err(unsupported_version(c, at, class, v)),
    };
    let schema = avro::AvroSchema::parse(&schema_json);
    let runtime_class = if runtime_class.is_empty() {
        schema.as_ref().ok().and_then(|s| s.full_name()).unwrap_or("org.apache.avro.generic.GenericRecord").to_owned()
    } else {
        runtime_class
    };
    Ok(K::Avro(Box::new(AvroSerializer { runtime_class, schema_json, schema })))
}
