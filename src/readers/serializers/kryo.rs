//! Kryo's own framing, as far as flinksnap reads it (`formats/serializers.md` § Kryo values):
//! the class header `Kryo.writeClassAndObject` puts before every value of Flink's
//! `KryoSerializer` (Kryo 2.24 in Flink 1.x, Kryo 5 in 2.x: the same header), enough to name the
//! class of each value. The values themselves stay opaque.

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind};

type R<T> = Result<T, DecodeError>;

/// Classes Flink's `KryoSerializer` registers before the snapshot's own registrations, by
/// registration id (checked against `Kryo.getRegistration(id)` of the 1.13.6 … 2.3.0 jars).
/// 0–9: Kryo's primitives (2.x has no `void` at 9); 10–72: chill's Scala registrations (1.x,
/// when `flink-scala` is on the classpath, as in the distribution's `lib/`); 73–84: chill's Java
/// registrations (`FlinkChillPackageRegistrar` from 1.15, the same ids before).
pub(crate) const DEFAULT_REGISTRATIONS: [&str; 85] = [
    "int",
    "java.lang.String",
    "float",
    "boolean",
    "byte",
    "char",
    "short",
    "long",
    "double",
    "void",
    "scala.collection.convert.Wrappers$SeqWrapper",
    "scala.collection.convert.Wrappers$IteratorWrapper",
    "scala.collection.convert.Wrappers$MapWrapper",
    "scala.collection.convert.Wrappers$JListWrapper",
    "scala.collection.convert.Wrappers$JMapWrapper",
    "scala.Some",
    "scala.util.Left",
    "scala.util.Right",
    "scala.collection.immutable.Vector",
    "scala.collection.immutable.Set$Set1",
    "scala.collection.immutable.Set$Set2",
    "scala.collection.immutable.Set$Set3",
    "scala.collection.immutable.Set$Set4",
    "scala.collection.immutable.HashSet$HashTrieSet",
    "scala.collection.immutable.Map$Map1",
    "scala.collection.immutable.Map$Map2",
    "scala.collection.immutable.Map$Map3",
    "scala.collection.immutable.Map$Map4",
    "scala.collection.immutable.HashMap$HashTrieMap",
    "scala.collection.immutable.Range$Inclusive",
    "scala.collection.immutable.NumericRange$Inclusive",
    "scala.collection.immutable.NumericRange$Exclusive",
    "scala.collection.mutable.BitSet",
    "scala.collection.mutable.HashMap",
    "scala.collection.mutable.HashSet",
    "scala.collection.convert.Wrappers$IterableWrapper",
    "scala.Tuple1",
    "scala.Tuple2",
    "scala.Tuple3",
    "scala.Tuple4",
    "scala.Tuple5",
    "scala.Tuple6",
    "scala.Tuple7",
    "scala.Tuple8",
    "scala.Tuple9",
    "scala.Tuple10",
    "scala.Tuple11",
    "scala.Tuple12",
    "scala.Tuple13",
    "scala.Tuple14",
    "scala.Tuple15",
    "scala.Tuple16",
    "scala.Tuple17",
    "scala.Tuple18",
    "scala.Tuple19",
    "scala.Tuple20",
    "scala.Tuple21",
    "scala.Tuple22",
    "scala.Tuple1$mcJ$sp",
    "scala.Tuple1$mcI$sp",
    "scala.Tuple1$mcD$sp",
    "scala.Tuple2$mcJJ$sp",
    "scala.Tuple2$mcJI$sp",
    "scala.Tuple2$mcJD$sp",
    "scala.Tuple2$mcIJ$sp",
    "scala.Tuple2$mcII$sp",
    "scala.Tuple2$mcID$sp",
    "scala.Tuple2$mcDJ$sp",
    "scala.Tuple2$mcDI$sp",
    "scala.Tuple2$mcDD$sp",
    "scala.Symbol",
    "scala.reflect.ClassTag",
    "scala.runtime.BoxedUnit",
    "java.util.Arrays$ArrayList",
    "java.util.BitSet",
    "java.util.PriorityQueue",
    "java.util.regex.Pattern",
    "java.sql.Date",
    "java.sql.Time",
    "java.sql.Timestamp",
    "java.net.URI",
    "java.net.InetSocketAddress",
    "java.util.UUID",
    "java.util.Locale",
    "java.text.SimpleDateFormat",
];

/// The registration id of the first entry of a `KryoSerializerSnapshot`'s registration map (the
/// serializer's type class, then `registerKryoType` types, types with serializers, Avro's
/// `GenericData.Array` dummy): they follow the defaults in map order.
pub(crate) const FIRST_SNAPSHOT_REGISTRATION: u32 = 85;

/// `Kryo.NULL`: a null object.
const NULL: u32 = 0;
/// `DefaultClassResolver.NAME + 2`: an unregistered class, written by name.
const BY_NAME: u32 = 1;

/// The class of the value a `writeClassAndObject` wrote at `c`: `Ok(None)` for null; the class
/// name for a registered id (defaults, then `registrations`) or a class written by name.
pub(crate) fn value_class(c: &mut Cursor<'_>, registrations: &[String]) -> R<Option<String>> {
    let at = c.position();
    let id = varint(c, "kryo class id")?;
    match id {
        NULL => Ok(None),
        BY_NAME => {
            let name_at = c.position();
            let name_id = varint(c, "kryo class name id")?;
            if name_id != 0 {
                // A name written earlier in the same object graph: never the case for the first
                // class of a value (Kryo resets its name ids after every top-level object).
                return Err(c.error_at(DecodeErrorKind::Invalid(format!("kryo class name id {name_id} refers to a name before the value")), name_at));
            }
            Ok(Some(read_string(c, "kryo class name")?.ok_or_else(|| c.error_at(DecodeErrorKind::Invalid("null kryo class name".into()), name_at))?))
        }
        id => {
            let reg = id - 2;
            let name = match reg.checked_sub(FIRST_SNAPSHOT_REGISTRATION) {
                None => DEFAULT_REGISTRATIONS.get(reg as usize).map(|s| (*s).to_owned()),
                Some(i) => registrations.get(i as usize).cloned(),
            };
            name.map(Some).ok_or_else(|| {
                c.error_at(
                    DecodeErrorKind::Invalid(format!(
                        "kryo registration id {reg} is neither one of Flink's defaults nor among the snapshot's {} registrations",
                        registrations.len()
                    )),
                    at,
                )
            })
        }
    }
}

/// Kryo's unsigned varint (`Output.writeVarInt(v, true)`): 7 bits a byte, low bits first, at
/// most 5 bytes.
pub(crate) fn varint(c: &mut Cursor<'_>, what: &'static str) -> R<u32> {
    let at = c.position();
    let mut v: u32 = 0;
    for i in 0..5 {
        let b = c.u8(what)?;
        v |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(c.error_at(DecodeErrorKind::Invalid(format!("{what}: varint longer than 5 bytes")), at))
}

/// Kryo's zig-zag decoding of a varint written with `optimizePositive = false` (int fields).
pub(crate) fn zigzag(v: u32) -> i32 {
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

/// `Output.writeString` / `Input.readString`: an ASCII string of 2–64 characters with the high
/// bit set on its last byte; else a length (UTF-16 units + 1, 0 = null) in the "UTF-8 length"
/// form (first byte: bit 7 set, bit 6 = more, 6 bits; then 7 bits a byte, bit 7 = more), then
/// each unit in 1–3 bytes as in modified UTF-8.
pub(crate) fn read_string(c: &mut Cursor<'_>, what: &'static str) -> R<Option<String>> {
    let at = c.position();
    let first = c.u8(what)?;
    if first & 0x80 == 0 {
        let mut s = String::new();
        let mut b = first;
        loop {
            s.push(char::from(b & 0x7f));
            if b & 0x80 != 0 {
                return Ok(Some(s));
            }
            b = c.u8(what)?;
        }
    }
    let mut len = u32::from(first & 0x3f);
    if first & 0x40 != 0 {
        let mut shift = 6;
        loop {
            let b = c.u8(what)?;
            len |= u32::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
            if shift > 27 {
                return Err(c.error_at(DecodeErrorKind::Invalid(format!("{what}: string length longer than 5 bytes")), at));
            }
        }
    }
    if len == 0 {
        return Ok(None);
    }
    let n = (len - 1) as usize;
    c.check_fits(what, n, 1, at)?;
    let mut units = Vec::with_capacity(n);
    for _ in 0..n {
        let b = u16::from(c.u8(what)?);
        let unit = match b >> 4 {
            0..=7 => b,
            12 | 13 => ((b & 0x1f) << 6) | u16::from(c.u8(what)? & 0x3f),
            14 => {
                let b2 = u16::from(c.u8(what)? & 0x3f);
                let b3 = u16::from(c.u8(what)? & 0x3f);
                ((b & 0x0f) << 12) | (b2 << 6) | b3
            }
            _ => return Err(c.error_at(DecodeErrorKind::Invalid(format!("{what}: bad UTF-8 lead byte 0x{b:02x}")), at)),
        };
        units.push(unit);
    }
    Ok(Some(String::from_utf16_lossy(&units)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(bytes: &[u8], regs: &[&str]) -> R<Option<String>> {
        let regs: Vec<String> = regs.iter().map(|s| (*s).to_owned()).collect();
        value_class(&mut Cursor::new(bytes), &regs)
    }

    #[test]
    fn class_headers() {
        // Written by the 1.20.5 and 2.3.0 jars: a registered type class (id 85 + 2), java.lang.String
        // (1 + 2), an IllegalStateException by name, null.
        let regs = ["flinksnap.fixtures.SerializersJob$KryoThing", "org.apache.flink.api.java.typeutils.runtime.kryo.Serializers$DummyAvroRegisteredClass"];
        assert_eq!(class(&[0x57, 0x01, 0x06], &regs).unwrap().as_deref(), Some(regs[0]));
        assert_eq!(class(&[0x58], &regs).unwrap().as_deref(), Some(regs[1]));
        assert_eq!(class(&[0x03, 0x01, 0x68, 0xe9], &regs).unwrap().as_deref(), Some("java.lang.String"));
        assert_eq!(class(&[0x54], &[]).unwrap().as_deref(), Some("java.util.UUID"));
        let mut by_name = vec![0x01, 0x00];
        let name = b"java.lang.IllegalStateException";
        by_name.extend_from_slice(&name[..name.len() - 1]);
        by_name.push(name[name.len() - 1] | 0x80);
        assert_eq!(class(&by_name, &[]).unwrap().as_deref(), Some("java.lang.IllegalStateException"));
        assert_eq!(class(&[0x00], &[]).unwrap(), None);
        // beyond the snapshot's registrations, a later name id, a cut name
        assert!(class(&[0x59], &regs).unwrap_err().to_string().contains("2 registrations"));
        assert!(class(&[0x01, 0x01], &[]).is_err());
        assert!(class(&[0x01, 0x00, 0x61], &[]).is_err());
    }

    #[test]
    fn strings() {
        let s = |b: &[u8]| read_string(&mut Cursor::new(b), "s").unwrap();
        assert_eq!(s(&[0x80]), None);
        assert_eq!(s(&[0x81]).as_deref(), Some(""));
        assert_eq!(s(&[0x82, b'x']).as_deref(), Some("x"));
        assert_eq!(s(&[b'a', b'b' | 0x80]).as_deref(), Some("ab"));
        // "é€" (2 units + 1), two- and three-byte units
        assert_eq!(s(&[0x83, 0xc3, 0xa9, 0xe2, 0x82, 0xac]).as_deref(), Some("é€"));
        // a length over 6 bits: 70 units + 1 = 71 = 0b1_000111 → 0xC7, 0x01
        let mut long = vec![0xc7, 0x01];
        long.extend(std::iter::repeat_n(b'z', 70));
        assert_eq!(s(&long).unwrap().len(), 70);
        assert!(read_string(&mut Cursor::new(&[0x85, b'a']), "s").is_err());
    }
}

#[cfg(test)]
mod framing_tests {
    use crate::readers::serializers::{SerializerKind as K, SimpleType, TypeSerializer};
    use serde_json::json;

    /// `Tuple2<KafkaTopicPartition (Kryo), Long>`: the Kryo field is not last, but the field after
    /// it has a fixed size, so it ends 8 bytes before the frame does (bytes of the legacy Kafka
    /// consumer's state written by 2.3.0: `testdata/serializers/flink-2.3.0/heap-savepoint-sources`).
    #[test]
    fn an_undecodable_field_before_fixed_size_fields_takes_the_frame_but_them() {
        let kryo = TypeSerializer::new(
            "org.apache.flink.api.java.typeutils.runtime.kryo.KryoSerializerSnapshot".into(),
            2,
            K::Kryo { type_class: "org.apache.flink.streaming.connectors.kafka.internals.KafkaTopicPartition".into(), registrations: vec!["org.apache.flink.streaming.connectors.kafka.internals.KafkaTopicPartition".into()] },
        );
        let long = TypeSerializer::new("LongSerializerSnapshot".into(), 3, K::Simple(SimpleType::Long));
        let tuple = TypeSerializer::new(
            "org.apache.flink.api.java.typeutils.runtime.TupleSerializerSnapshot".into(),
            3,
            K::Tuple { class: "org.apache.flink.api.java.tuple.Tuple2".into(), fields: vec![kryo, long.clone()] },
        );
        let mut bytes = vec![0x57, 0x01, 0x02, 0x04, 0x01, b'a', b'b' | 0x80];
        bytes.extend_from_slice(&500i64.to_be_bytes());
        let v = tuple.decode_framed(&bytes, 0).unwrap().to_json();
        assert_eq!(v, json!({"f0": {"class": "org.apache.flink.streaming.connectors.kafka.internals.KafkaTopicPartition", "hex": "570102040161e2"}, "f1": 500}));
        // a variable-size field after it: the whole frame stays opaque, labelled by the tuple
        let string = TypeSerializer::new("StringSerializerSnapshot".into(), 3, K::Simple(SimpleType::String));
        let K::Tuple { fields, class } = tuple.kind().clone() else { unreachable!() };
        let tuple3 = TypeSerializer::new(tuple.class_name().into(), 3, K::Tuple { class, fields: vec![fields[0].clone(), string, long] });
        assert!(tuple3.decode_framed(&bytes, 0).unwrap().is_opaque());
    }
}
