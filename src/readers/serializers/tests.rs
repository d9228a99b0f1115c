//! Unit tests: golden vectors from the real Flink jars (`golden.rs`), the Appendix A.2 proxy,
//! and hand-built vectors (`testutil.rs`) for what the jars at hand cannot produce.

use serde_json::{json, Value as Json};

use super::golden::{Golden, FLINK_1_20_5, FLINK_2_3_0, ISSUE11_1_20_5, POJO_2_3_0, SCALA_1_20_5};
use super::testutil::{unhex, Out};
use super::*;
use crate::bytes::Cursor;
use crate::error::DecodeErrorKind;
use crate::model::value::{RowKind, Value};

const BASE: &str = "org.apache.flink.api.common.typeutils.base.";
const LONG: &str = "org.apache.flink.api.common.typeutils.base.LongSerializer$LongSerializerSnapshot";
const STRING: &str = "org.apache.flink.api.common.typeutils.base.StringSerializer$StringSerializerSnapshot";
const INT: &str = "org.apache.flink.api.common.typeutils.base.IntSerializer$IntSerializerSnapshot";
const POJO: &str = "org.apache.flink.api.java.typeutils.runtime.PojoSerializerSnapshot";
const KRYO: &str = "org.apache.flink.api.java.typeutils.runtime.kryo.KryoSerializerSnapshot";
const TTL: &str = "org.apache.flink.runtime.state.ttl.TtlStateFactory$TtlSerializerSnapshot";
const AVRO: &str = "org.apache.flink.formats.avro.typeutils.AvroSerializerSnapshot";
const LIST: &str = "org.apache.flink.api.common.typeutils.base.ListSerializerSnapshot";

fn snapshot(bytes: &[u8]) -> TypeSerializer {
    let mut c = Cursor::new(bytes);
    let s = read_versioned_snapshot(&mut c).unwrap();
    assert!(c.is_empty(), "{} bytes left after {}", c.remaining(), s.class_name());
    s
}

fn decode(ser: &TypeSerializer, bytes: &[u8]) -> Json {
    let mut c = Cursor::new(bytes);
    let v = ser.decode(&mut c).unwrap_or_else(|e| panic!("{}: {e}", ser.class_name()));
    assert!(c.is_empty(), "{} bytes left after a {} value", c.remaining(), ser.class_name());
    // A framed decode of the same bytes agrees.
    assert_eq!(ser.decode_framed(bytes, 0).unwrap().to_json(), v.to_json());
    v.to_json()
}

/// What the golden values decode to (from the values the harness serialized).
fn expected(name: &str) -> Option<Vec<Json>> {
    Some(match name {
        "long" => vec![json!(42), json!(-1)],
        "int" => vec![json!(7)],
        "string" => vec![json!("k"), json!(null), json!("héllo😀")],
        "char" => vec![json!("é")],
        "float" => vec![json!(0.1)],
        "double" => vec![json!("NaN"), json!(-2.5)],
        "bool" => vec![json!(true)],
        "bigdec" => vec![json!("-123.4500"), json!(null), json!("0"), json!("1E+5")],
        "bigint" => vec![json!("-98765432109876543210"), json!("10"), json!(null)],
        "instant" => vec![json!("2023-11-14T22:13:20.005Z"), json!(null)],
        "localdate" => vec![json!("2024-02-29"), json!(null)],
        "localtime" => vec![json!("07:08:09.123456789"), json!(null)],
        "localdatetime" => vec![json!("2024-01-05T07:08:09"), json!(null)],
        "sqltimestamp" => vec![json!("2023-11-14T22:13:20.123456789Z"), json!(null)],
        "date" => vec![json!("1969-12-31T23:59:59.999Z"), json!(null)],
        "void" | "voidns" | "globalwindow" | "nullvalue" => vec![json!(null)],
        "timewindow" => vec![json!({"start": 0, "end": 1000})],
        "tuple0" => vec![json!({})],
        "stringvalue" => vec![json!("abc")],
        "longvalue" => vec![json!(5)],
        "intarray" => vec![json!([1, 2])],
        "bytearray" => vec![json!({"hex": "010203"})],
        "stringarray" | "list" | "genericarray" | "set" | "scalalist" => vec![json!(["a", null])],
        "map" => vec![json!([{"key": "a", "value": 1}, {"key": "b", "value": null}])],
        "tuple2" => vec![json!({"f0": "k", "f1": 7})],
        "tuple2fixed" => vec![json!({"f0": 1, "f1": 2})],
        "row" => vec![json!({"f0": 5, "f1": null, "rowKind": "-U"}), json!({"f0": 1, "f1": "a"})],
        "row9" => vec![json!({
            "f0": 1, "f1": null, "f2": 3, "f3": 4, "f4": 5, "f5": 6, "f6": 7, "f7": 8, "f8": null, "rowKind": "-D"
        })],
        "rowlegacy" => vec![json!({"f0": 3})],
        "pojo" => vec![json!({"count": 3, "maybe": null, "name": "n"}), json!(null)],
        "nullable" => vec![json!(null), json!(5)],
        "nullablenopad" => vec![json!(null), json!("x")],
        "either" | "scalaeither" => vec![json!({"left": "x"}), json!({"right": 3})],
        "enum" => vec![json!("SECONDS")],
        "ttl" => vec![json!({"lastAccessTimestamp": 1234, "userValue": "v"})],
        "timer" => vec![
            json!({"timestamp": 100, "key": "k", "namespace": null}),
            json!({"timestamp": -5, "key": "k", "namespace": null}),
        ],
        "timerwindow" => vec![json!({"timestamp": 999, "key": 7, "namespace": {"start": 0, "end": 1000}})],
        "valueserlong" => vec![json!(9)],
        "scalaoption" => vec![json!(5), json!(null)],
        "scalatuple2" => vec![json!({"_1": "k", "_2": 7})],
        "java-serialized" => vec![json!([1, "two"]), json!([{"key": "k", "value": 1}]), json!("plain")],
        "stream-element" => vec![
            json!({"record": 42, "timestamp": 1000}),
            json!({"record": 7}),
            json!({"watermark": 5000}),
            json!({"latencyMarker": {"markedTime": 123, "operatorId": "00000000000000010000000000000002", "subtaskIndex": 3}}),
        ],
        "scala-unit" => vec![json!(null)],
        "pojosub" => vec![json!({"a": 1, "b": "s"}), json!({"a": 2, "c": 3})],
        // Opaque: checked separately.
        "kryo" | "valueser" | "pojogeneric" => return None,
        other => panic!("no expectation for golden vector {other}"),
    })
}

fn check_golden(set: &[Golden]) {
    for g in set {
        let ser = snapshot(&unhex(g.snap));
        let want_len = usize::try_from(g.len).ok();
        assert_eq!(ser.fixed_length(), want_len, "getLength() of {}", g.name);
        match expected(g.name) {
            Some(want) => {
                assert_eq!(want.len(), g.values.len(), "{}", g.name);
                assert!(!ser.is_opaque(), "{}", g.name);
                for (hex, want) in g.values.iter().zip(want) {
                    assert_eq!(decode(&ser, &unhex(hex)), want, "{} value {hex}", g.name);
                }
            }
            None => {
                assert!(ser.is_opaque(), "{}", g.name);
                for hex in g.values {
                    let bytes = unhex(hex);
                    let e = ser.decode(&mut Cursor::new(&bytes)).unwrap_err();
                    assert!(e.to_string().contains("cannot be decoded"), "{e}");
                    let v = ser.decode_framed(&bytes, 0).unwrap();
                    assert_eq!(v, Value::opaque(ser.opaque_class().into(), bytes.clone()));
                    assert!(v.to_json()["class"].as_str().unwrap().starts_with("Gen$"), "{}", v.to_json());
                }
            }
        }
    }
}

#[test]
fn golden_vectors_flink_2_3_0() {
    check_golden(FLINK_2_3_0);
}

#[test]
fn golden_vectors_flink_1_20_5() {
    check_golden(FLINK_1_20_5);
    check_golden(SCALA_1_20_5);
}

#[test]
fn golden_vectors_of_issue_11() {
    let (try_, rest): (Vec<&Golden>, Vec<&Golden>) = ISSUE11_1_20_5.iter().partition(|g| g.name == "scala-try");
    check_golden(&rest.into_iter().map(|g| Golden { name: g.name, len: g.len, snap: g.snap, values: g.values }).collect::<Vec<_>>());
    // Try[String]: Success decodes; Failure's throwable is Kryo, opaque at the end of a frame.
    let g = try_[0];
    let ser = snapshot(&unhex(g.snap));
    assert_eq!(ser.fixed_length(), None);
    assert_eq!(decode(&ser, &unhex(g.values[0])), json!({"success": "ok"}));
    let failure = unhex(g.values[1]);
    let v = ser.decode_framed(&failure, 0).unwrap().to_json();
    // the Kryo header names the throwable's class (written by name: not registered)
    assert_eq!(v["failure"]["class"], "java.lang.IllegalStateException");
    assert_eq!(v["failure"]["hex"].as_str().unwrap().len(), 2 * (failure.len() - 1));
}

#[test]
fn legacy_either_snapshot_and_scala_enumeration() {
    // EitherSerializerSnapshot v2 (pre-1.8 class, still readable by 1.x): the nested
    // serializers with no outer part.
    let string = unhex(FLINK_2_3_0.iter().find(|g| g.name == "string").unwrap().snap);
    let int = unhex(FLINK_2_3_0.iter().find(|g| g.name == "int").unwrap().snap);
    let o = Out::new().utf("org.apache.flink.api.java.typeutils.runtime.EitherSerializerSnapshot").i32(2).i32(1_333_245).i32(1).i32(2).raw(&string).raw(&int);
    let ser = snapshot(&o.0);
    assert_eq!(decode(&ser, &unhex("01026b")), json!({"left": "k"}));
    assert_eq!(decode(&ser, &unhex("0000000007")), json!({"right": 7}));
    // ScalaEnumSerializerSnapshot: utf class, i32 n, n × (utf name, i32 id); values by id.
    let o = Out::new().utf("org.apache.flink.api.scala.typeutils.ScalaEnumSerializerSnapshot").i32(3).utf("Colors$").i32(2).utf("Red").i32(0).utf("Blue").i32(5);
    let ser = snapshot(&o.0);
    assert_eq!(decode(&ser, &unhex("00000005")), json!("Blue"));
    assert!(ser.decode(&mut Cursor::new(&unhex("00000001"))).unwrap_err().to_string().contains("not a value of Colors$"));
}

#[test]
fn golden_pojo_subclasses_and_generic_fields() {
    let sub = &POJO_2_3_0[0];
    check_golden(std::slice::from_ref(sub));
    let s = snapshot(&unhex(sub.snap));
    let SerializerKind::Pojo(p) = s.kind() else { panic!() };
    assert_eq!(p.registered_subclasses[0].0, "GenSub$Reg");
    assert_eq!(p.non_registered_subclasses[0].0, "GenSub$Sub");
    // A generic field (Kryo for java.lang.Object) as the last field: framed, it becomes opaque
    // and the other fields stay decoded.
    let g = &POJO_2_3_0[1];
    let s = snapshot(&unhex(g.snap));
    assert!(s.is_opaque());
    let v = unhex(g.values[0]);
    assert!(s.decode(&mut Cursor::new(&v)).is_err());
    assert_eq!(
        s.decode_framed(&v, 0).unwrap().to_json(),
        // a field of type Object holding a String: Kryo registration 1 names it
        json!({"id": 5, "zzz": {"class": "java.lang.String", "hex": "030168e9"}})
    );
}

#[test]
fn golden_snapshot_details() {
    let find = |n: &str| snapshot(&unhex(FLINK_2_3_0.iter().find(|g| g.name == n).unwrap().snap));
    let pojo = find("pojo");
    let SerializerKind::Pojo(p) = pojo.kind() else { panic!() };
    assert_eq!(p.class, "Gen$MyPojo");
    let names: Vec<_> = p.fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["count", "maybe", "name"]);
    assert_eq!(pojo.version(), 2);
    let kryo = find("kryo");
    assert!(matches!(kryo.kind(), SerializerKind::Kryo { type_class, .. } if type_class == "Gen$Opaque"));
    let en = find("enum");
    let SerializerKind::Enum { class, constants } = en.kind() else { panic!() };
    assert_eq!(class, "java.util.concurrent.TimeUnit");
    assert_eq!(constants.len(), 7);
    let ttl = find("ttl");
    assert!(ttl.is_ttl());
    assert_eq!(ttl.ttl_inner().unwrap().class_name(), STRING);
    let timer = find("timer");
    let (k, n) = timer.timer_key_namespace().unwrap();
    assert_eq!(k.class_name(), STRING);
    assert!(n.class_name().ends_with("VoidNamespaceSerializerSnapshot"));
    let map = find("map");
    let (k, v) = map.map_key_value().unwrap();
    assert_eq!((k.class_name(), v.class_name()), (STRING, LONG));
    assert_eq!(find("list").list_element().unwrap().class_name(), STRING);
    assert!(matches!(find("row").kind(), SerializerKind::Row { supports_row_kind: true, .. }));
    assert!(matches!(find("nullable").kind(), SerializerKind::Nullable { padding: 8, .. }));
}

/// Appendix A.2: KeyedBackendSerializationProxy of a String key with a VALUE state (Long,
/// VoidNamespace) and a LIST state (List<String>, VoidNamespace); identical 1.13.6 … 2.3.0.
#[test]
fn appendix_a2_proxy_snapshots() {
    let hex = "00000006000000000200546f72672e6170616368652e666c696e6b2e6170692e636f6d6d6f6e2e747970657574696c73\
2e626173652e537472696e6753657269616c697a657224537472696e6753657269616c697a6572536e617073686f7400\
00000300020005636f756e74000000000000000100104b455945445f53544154455f54595045000556414c5545000000\
02001056414c55455f53455249414c495a45520000000200506f72672e6170616368652e666c696e6b2e6170692e636f\
6d6d6f6e2e747970657574696c732e626173652e4c6f6e6753657269616c697a6572244c6f6e6753657269616c697a65\
72536e617073686f740000000300144e414d4553504143455f53455249414c495a45520000000200566f72672e617061\
6368652e666c696e6b2e72756e74696d652e73746174652e566f69644e616d65737061636553657269616c697a657224\
566f69644e616d65737061636553657269616c697a6572536e617073686f740000000300056974656d73000000000000\
000100104b455945445f53544154455f5459504500044c49535400000002001056414c55455f53455249414c495a4552\
0000000200416f72672e6170616368652e666c696e6b2e6170692e636f6d6d6f6e2e747970657574696c732e62617365\
2e4c69737453657269616c697a6572536e617073686f7400000003000de70400000001001457fd000000010000000100\
546f72672e6170616368652e666c696e6b2e6170692e636f6d6d6f6e2e747970657574696c732e626173652e53747269\
6e6753657269616c697a657224537472696e6753657269616c697a6572536e617073686f740000000300144e414d4553\
504143455f53455249414c495a45520000000200566f72672e6170616368652e666c696e6b2e72756e74696d652e7374\
6174652e566f69644e616d65737061636553657269616c697a657224566f69644e616d65737061636553657269616c69\
7a6572536e617073686f7400000003";
    let bytes = unhex(hex);
    assert_eq!(bytes.len(), 735);
    let mut c = Cursor::new(&bytes);
    assert_eq!(c.i32("v").unwrap(), 6);
    assert!(!c.bool("compressed").unwrap());
    let key = read_proxy_snapshot(&mut c).unwrap();
    assert_eq!(key.kind(), &SerializerKind::Simple(SimpleType::String));
    assert_eq!(key.fixed_length(), None);
    let n = c.i16("n").unwrap();
    let mut states = Vec::new();
    for _ in 0..n {
        let name = c.utf("name").unwrap();
        c.i32("type").unwrap();
        for _ in 0..c.i32("options").unwrap() {
            c.utf("k").unwrap();
            c.utf("v").unwrap();
        }
        let mut sers = Vec::new();
        for _ in 0..c.i32("serializers").unwrap() {
            let k = c.utf("k").unwrap();
            sers.push((k, read_proxy_snapshot(&mut c).unwrap()));
        }
        states.push((name, sers));
    }
    assert!(c.is_empty());
    assert_eq!(states[0].0, "count");
    assert_eq!(states[0].1[0].1.kind(), &SerializerKind::Simple(SimpleType::Long));
    assert_eq!(states[0].1[1].1.kind(), &SerializerKind::Simple(SimpleType::VoidNamespace));
    assert_eq!(states[0].1[1].1.fixed_length(), Some(0));
    assert_eq!(states[1].0, "items");
    let list = &states[1].1[0].1;
    assert_eq!(list.class_name(), LIST);
    assert_eq!(list.list_element().unwrap().kind(), &SerializerKind::Simple(SimpleType::String));

    // The proxy reader keeps the exact bytes (the savepoint writer copies them): the whole proxy,
    // the key serializer snapshot, and each state's meta info, which together rebuild it.
    let meta = crate::readers::meta::read_keyed_backend_meta(&mut Cursor::new(&bytes)).unwrap();
    assert_eq!(meta.raw, bytes);
    let mut rebuilt = bytes[..5].to_vec();
    rebuilt.extend(&meta.key_serializer_raw);
    rebuilt.extend(2i16.to_be_bytes());
    for s in &meta.states {
        rebuilt.extend(&s.raw);
    }
    assert_eq!(rebuilt, bytes);
    assert_eq!(&meta.states[1].raw[..7], b"\x00\x05items");
}

#[test]
fn proxy_versions() {
    let v2 = Out::new().i32(2).snap(LONG, 3);
    assert_eq!(read_proxy_snapshot(&mut Cursor::new(v2.bytes())).unwrap().kind(), &SerializerKind::Simple(SimpleType::Long));
    // Proxy version 1 (Flink ≤ 1.6) with a TypeSerializerSnapshot class: class, version, payload.
    let v1 = Out::new().i32(1).utf(LONG).i32(3);
    assert_eq!(read_proxy_snapshot(&mut Cursor::new(v1.bytes())).unwrap().kind(), &SerializerKind::Simple(SimpleType::Long));
    let bad = Out::new().i32(7);
    let e = read_proxy_snapshot(&mut Cursor::new(bad.bytes())).unwrap_err();
    assert!(matches!(e.kind, DecodeErrorKind::InvalidValue { value: 7, .. }), "{e}");
}

#[test]
fn simple_snapshot_version_2_carries_a_class_name() {
    let b = Out::new().snap(LONG, 2).utf("org.apache.flink.api.common.typeutils.base.LongSerializer");
    assert_eq!(snapshot(b.bytes()).kind(), &SerializerKind::Simple(SimpleType::Long));
    let e = read_versioned_snapshot(&mut Cursor::new(Out::new().snap(LONG, 4).bytes())).unwrap_err();
    assert!(e.to_string().contains("does not know version 4"), "{e}");
}

#[test]
fn legacy_composite_snapshots_have_no_magic() {
    // ListSerializerSnapshot version 1: no composite magic or outer version.
    let b = Out::new().snap(LIST, 1).i32(1_333_245).i32(1).i32(1).snap(INT, 3);
    let s = snapshot(b.bytes());
    assert_eq!(s.list_element().unwrap().kind(), &SerializerKind::Simple(SimpleType::Int));
    // Row version 2: legacy, no row kind.
    let row = "org.apache.flink.api.java.typeutils.runtime.RowSerializer$RowSerializerSnapshot";
    let b = Out::new().snap(row, 2).i32(1_333_245).i32(1).i32(1).snap(INT, 3);
    let s = snapshot(b.bytes());
    assert!(matches!(s.kind(), SerializerKind::Row { supports_row_kind: false, .. }));
    assert_eq!(decode(&s, Out::new().u8(0x00).i32(4).bytes()), json!({"f0": 4}));
    assert_eq!(decode(&s, Out::new().u8(0x80).bytes()), json!({"f0": null}));
    // Row outer version 3: row kind, no flag.
    let b = Out::new().composite(row, 3, Out::new(), 1).snap(INT, 3);
    assert!(matches!(snapshot(b.bytes()).kind(), SerializerKind::Row { supports_row_kind: true, .. }));
}

#[test]
fn composite_magic_and_nested_count_are_checked() {
    let b = Out::new().snap(LIST, 3).i32(1234).i32(1);
    let e = read_versioned_snapshot(&mut Cursor::new(b.bytes())).unwrap_err();
    assert!(matches!(e.kind, DecodeErrorKind::BadMagic { found: 1234, .. }), "{e}");
    assert_eq!(e.offset, 2 + LIST.len() as u64 + 4);
    let b = Out::new().composite(LIST, 1, Out::new(), 2).snap(INT, 3).snap(INT, 3);
    let e = read_versioned_snapshot(&mut Cursor::new(b.bytes())).unwrap_err();
    assert!(e.to_string().contains("needs 1 nested serializers"), "{e}");
}

#[test]
fn unknown_classes_are_errors_naming_the_class() {
    let b = Out::new().i32(2).snap("com.example.MySerializerSnapshot", 1).i32(99);
    let e = read_proxy_snapshot(&mut Cursor::with_base(b.bytes(), 1000)).unwrap_err();
    assert!(e.to_string().contains("com.example.MySerializerSnapshot"), "{e}");
    assert_eq!(e.offset, 1004);
}

/// A `TypeSerializerConfigSnapshot` (ADAPTER_VERSION) written by Flink 1.15.4 through
/// `TypeSerializerSnapshotSerializationUtil.writeSerializerSnapshot` for a user serializer whose
/// snapshot is a `ParameterlessTypeSerializerConfig("my-format")`.
const ADAPTER_PROXY_1_15_4: &str = "0000000200476f72672e6170616368652e666c696e6b2e6170692e636f6d6d6f6e2e747970657574696c732e506172616d657465726c6573735479706553657269616c697a6572436f6e6669677a53c4f000000001000000b5aced00057372000c47656e313135244d79536572b5fbc3e866558c89020000787200426f72672e6170616368652e666c696e6b2e6170692e636f6d6d6f6e2e747970657574696c732e626173652e5479706553657269616c697a657253696e676c65746f6e79a987aac72e7745020000787200346f72672e6170616368652e666c696e6b2e6170692e636f6d6d6f6e2e747970657574696c732e5479706553657269616c697a6572000000000000000102000078700000000100096d792d666f726d6174";

#[test]
fn legacy_adapter_snapshots() {
    let bytes = unhex(ADAPTER_PROXY_1_15_4);
    let e = read_proxy_snapshot(&mut Cursor::new(&bytes)).unwrap_err();
    assert!(e.to_string().contains("ParameterlessTypeSerializerConfig"), "{e}");
    assert_eq!(e.offset, 4);
    // A known (new-style) class read with ADAPTER_VERSION: the Java blob is skipped, then the
    // real version follows.
    let b = Out::new().snap(LONG, 0x7A53_C4F0).i32(1).i32(3).raw(&[0xac, 0xed, 0x00]).i32(3);
    assert_eq!(snapshot(b.bytes()).kind(), &SerializerKind::Simple(SimpleType::Long));
    // Inside a POJO field frame the unknown config snapshot is kept as an opaque serializer.
    let versioned = &bytes[4..];
    let pojo = pojo_snapshot("com.example.P", &[("a", Some(Out::new().raw(versioned))), ("b", Some(Out::new().snap(INT, 3)))]);
    let s = snapshot(pojo.bytes());
    let SerializerKind::Pojo(p) = s.kind() else { panic!() };
    let a = p.fields[0].1.as_ref().unwrap();
    assert!(matches!(a.kind(), SerializerKind::Opaque { .. }));
    assert!(a.class_name().ends_with("ParameterlessTypeSerializerConfig"));
    assert!(s.is_opaque());
    let value = Out::new().u8(2).bool(false).i64(5).bool(false).i32(1);
    let v = s.decode_framed(value.bytes(), 0).unwrap();
    assert_eq!(v.to_json(), json!({"class": "com.example.P", "hex": "020000000000000000050000000001"}));
}

/// A PojoSerializerSnapshot: class, field map, empty subclass maps.
fn pojo_snapshot(class: &str, fields: &[(&str, Option<Out>)]) -> Out {
    pojo_snapshot_with(class, fields, &[], &[])
}

fn optional_map(mut o: Out, entries: &[(&str, Option<Out>)], key: impl Fn(&str) -> Out) -> Out {
    o = o.i64(0x4F2_C69A_3D70).i32(entries.len() as i32);
    for (name, value) in entries {
        o = o.utf(name).bool(true).framed(key(name));
        o = match value {
            Some(v) => o.bool(true).framed(v.clone()),
            None => o.bool(false),
        };
    }
    o
}

fn pojo_snapshot_with(class: &str, fields: &[(&str, Option<Out>)], registered: &[(&str, Option<Out>)], others: &[(&str, Option<Out>)]) -> Out {
    let mut o = Out::new().snap(POJO, 2).utf(class);
    o = optional_map(o, fields, |n| Out::new().utf(class).utf(n));
    o = optional_map(o, registered, |_| Out::new());
    optional_map(o, others, |_| Out::new())
}

#[test]
fn pojo_values_nulls_subclasses_and_missing_fields() {
    let s = snapshot(
        pojo_snapshot_with(
            "com.example.P",
            &[("id", Some(Out::new().snap(LONG, 3))), ("name", Some(Out::new().snap(STRING, 3)))],
            &[("com.example.Q", Some(pojo_snapshot("com.example.Q", &[("x", Some(Out::new().snap(INT, 3)))])))],
            &[("com.example.R", Some(Out::new().snap(INT, 3))), ("com.example.S", None)],
        )
        .bytes(),
    );
    assert!(!s.is_opaque());
    assert_eq!(decode(&s, Out::new().u8(2).bool(false).i64(7).bool(true).bytes()), json!({"id": 7, "name": null}));
    assert_eq!(decode(&s, Out::new().u8(1).bytes()), json!(null));
    // Registered subclass by tag, with its own POJO serializer.
    assert_eq!(decode(&s, Out::new().u8(8).u8(0).u8(2).bool(false).i32(3).bytes()), json!({"x": 3}));
    // Subclass by name with a snapshot.
    assert_eq!(decode(&s, Out::new().u8(4).utf("com.example.R").i32(9).bytes()), json!(9));
    // Subclass without a snapshot: cannot delimit, but a frame keeps it.
    let b = Out::new().u8(4).utf("com.example.S").i32(9);
    let e = s.decode(&mut Cursor::new(b.bytes())).unwrap_err();
    assert!(e.to_string().contains("cannot delimit"), "{e}");
    assert!(s.decode_framed(b.bytes(), 0).unwrap().is_opaque());
    let b = Out::new().u8(4).utf("com.example.Unknown").i32(9);
    assert!(s.decode(&mut Cursor::new(b.bytes())).unwrap_err().to_string().contains("cannot delimit"));
    // Bad flags and tags are corrupt data.
    assert!(s.decode_framed(Out::new().u8(0).bytes(), 0).is_err());
    assert!(s.decode_framed(Out::new().u8(8).u8(5).bytes(), 0).is_err());

    // A field without a snapshot (hasValue = false): the POJO cannot be decoded.
    let s = snapshot(pojo_snapshot("com.example.P", &[("a", Some(Out::new().snap(INT, 3))), ("b", None)]).bytes());
    assert!(s.is_opaque());
    let b = Out::new().u8(2).bool(false).i32(1).bool(false).i32(2);
    assert!(s.decode(&mut Cursor::new(b.bytes())).is_err());
    assert_eq!(s.decode_framed(b.bytes(), 0).unwrap(), Value::opaque("com.example.P".into(), b.0.clone()));
    assert_eq!(decode(&s, Out::new().u8(1).bytes()), json!(null));
}

#[test]
fn pojo_optional_map_header_is_checked() {
    let b = Out::new().snap(POJO, 2).utf("P").i64(1).i32(0);
    let e = read_versioned_snapshot(&mut Cursor::new(b.bytes())).unwrap_err();
    assert!(e.to_string().contains("optional map header"), "{e}");
    // An unknown version is an unknown snapshot (its payload may differ), not damage.
    let e = read_versioned_snapshot(&mut Cursor::new(Out::new().snap(POJO, 1).bytes())).unwrap_err();
    assert!(e.to_string().contains("does not know version 1 of serializer snapshot"), "{e}");
    assert!(matches!(e.kind, DecodeErrorKind::UnknownSerializer(ref u) if u.payload as usize == 2 + POJO.len() + 4), "{e:?}");
}

fn kryo_snapshot(type_class: &str) -> Out {
    let mut o = Out::new().snap(KRYO, 2).utf(type_class);
    o = optional_map(o, &[(type_class, Some(Out::new().utf(type_class).i32(0)))], |n| Out::new().utf(n));
    o = optional_map(o, &[], |_| Out::new());
    optional_map(o, &[], |_| Out::new())
}

#[test]
fn ttl_over_kryo_keeps_the_timestamp() {
    let b = Out::new().composite(TTL, 2, Out::new(), 2).snap(LONG, 3).raw(kryo_snapshot("com.example.K").bytes());
    let s = snapshot(b.bytes());
    assert!(s.is_ttl() && s.is_opaque());
    let v = Out::new().i64(1234).raw(&[0x01, 0x02, 0x03]);
    assert!(s.decode(&mut Cursor::new(v.bytes())).is_err());
    assert_eq!(
        s.decode_framed(v.bytes(), 0).unwrap().to_json(),
        json!({"lastAccessTimestamp": 1234, "userValue": {"class": "com.example.K", "hex": "010203"}})
    );
    // Only the last part of a value can take the rest of a frame: a Kryo field first makes the
    // whole tuple opaque.
    let tuple = "org.apache.flink.api.java.typeutils.runtime.TupleSerializerSnapshot";
    let b = Out::new()
        .composite(tuple, 2, Out::new().utf("org.apache.flink.api.java.tuple.Tuple2"), 2)
        .raw(kryo_snapshot("com.example.K").bytes())
        .snap(LONG, 3);
    let s = snapshot(b.bytes());
    let v = s.decode_framed(&[9, 9, 9], 0).unwrap();
    assert_eq!(v.to_json(), json!({"class": tuple, "hex": "090909"}));
    assert_eq!(v.opaque_count(), 1);
}

#[test]
fn map_list_and_set_with_nulls() {
    let map = Out::new().composite(&format!("{BASE}MapSerializerSnapshot"), 1, Out::new(), 2).snap(INT, 3).snap(STRING, 3);
    let s = snapshot(map.bytes());
    let v = Out::new().i32(2).i32(1).bool(true).i32(2).bool(false).fstr(Some("b"));
    assert_eq!(decode(&s, v.bytes()), json!([{"key": 1, "value": null}, {"key": 2, "value": "b"}]));
    // A count larger than the remaining bytes is refused before allocating.
    let e = s.decode(&mut Cursor::new(Out::new().i32(i32::MAX).bytes())).unwrap_err();
    assert!(matches!(e.kind, DecodeErrorKind::LengthTooLarge { .. }), "{e}");
}

#[test]
fn row_mask_with_kind_spans_bytes() {
    let row = "org.apache.flink.api.java.typeutils.runtime.RowSerializer$RowSerializerSnapshot";
    // 7 fields + 2 kind bits = 9 bits = 2 mask bytes. Kind +U (2): bit 1. Null: f6 (bit 8).
    let mut b = Out::new().composite(row, 4, Out::new().bool(true), 7);
    for _ in 0..7 {
        b = b.snap(INT, 3);
    }
    let s = snapshot(b.bytes());
    let mut v = Out::new().u8(0b0100_0000).u8(0b1000_0000);
    for i in 0..6 {
        v = v.i32(i);
    }
    let j = decode(&s, v.bytes());
    assert_eq!(j, json!({"f0": 0, "f1": 1, "f2": 2, "f3": 3, "f4": 4, "f5": 5, "f6": null, "rowKind": "+U"}));
}

#[test]
fn timer_timestamps_are_sign_flipped() {
    let find = |n: &str| snapshot(&unhex(FLINK_2_3_0.iter().find(|g| g.name == n).unwrap().snap));
    let timer = find("timer");
    let mut c = Cursor::new(&[0x00, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x6b, 0x00]);
    assert_eq!(timer.decode(&mut c).unwrap().to_json(), json!({"timestamp": i64::MIN, "key": "k", "namespace": null}));
}

fn avro_record_schema() -> &'static str {
    r#"{"type":"record","name":"User","namespace":"com.example","fields":[
        {"name":"name","type":"string"},
        {"name":"age","type":"int"},
        {"name":"score","type":"double"},
        {"name":"ratio","type":"float"},
        {"name":"active","type":"boolean"},
        {"name":"id","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"tags","type":{"type":"array","items":"string"}},
        {"name":"props","type":{"type":"map","values":"long"}},
        {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B","C"]}},
        {"name":"nick","type":["null","string"],"default":null},
        {"name":"hash","type":{"type":"fixed","name":"Hash","size":2}},
        {"name":"raw","type":"bytes"},
        {"name":"next","type":["null","User"]},
        {"name":"again","type":"Kind"}
    ]}"#
}

/// Flink's `DataOutputEncoder`: fixed-width numbers, `i32` lengths and indexes, blocks.
fn avro_string(o: Out, s: &str) -> Out {
    o.i32(s.len() as i32).raw(s.as_bytes())
}

fn avro_user(o: Out, name: &str, next: Option<&str>) -> Out {
    let mut o = avro_string(o, name).i32(42).f64(1.5).f32(0.25).bool(true).i64(-7);
    o = avro_string(avro_string(o.u8(2), "x"), "y").u8(0); // tags: one block of 2, end
    o = o.u8(0); // props: empty
    o = o.i32(2); // kind C
    o = o.i32(0); // nick: null branch
    o = o.raw(&[0xab, 0xcd]); // hash
    o = o.i32(1).u8(0xff); // raw
    o = match next {
        None => o.i32(0),
        Some(n) => avro_user(o.i32(1), n, None),
    };
    o.i32(1) // again: B
}

#[test]
fn avro_records_follow_flinks_encoder() {
    for version in [2, 3] {
        let mut b = Out::new().snap(AVRO, version);
        b = if version == 3 {
            b.fstr(Some("org.apache.avro.generic.GenericRecord")).fstr(Some(avro_record_schema()))
        } else {
            b.utf("org.apache.avro.generic.GenericRecord").utf(avro_record_schema())
        };
        let s = snapshot(b.bytes());
        assert!(!s.is_opaque());
        let v = avro_user(Out::new(), "ann", Some("bob"));
        let j = decode(&s, v.bytes());
        assert_eq!(j["name"], json!("ann"));
        assert_eq!(j["ratio"], json!(0.25));
        assert_eq!(j["tags"], json!(["x", "y"]));
        assert_eq!(j["props"], json!([]));
        assert_eq!(j["kind"], json!("C"));
        assert_eq!(j["nick"], json!(null));
        assert_eq!(j["hash"], json!({"hex": "abcd"}));
        assert_eq!(j["raw"], json!({"hex": "ff"}));
        assert_eq!(j["next"]["name"], json!("bob"));
        assert_eq!(j["next"]["next"], json!(null));
        assert_eq!(j["again"], json!("B"));
        assert_eq!(j["id"], json!(-7));
    }
    // Version 1: schema only; the runtime class is the schema's full name.
    let s = snapshot(Out::new().snap(AVRO, 1).utf(avro_record_schema()).bytes());
    assert_eq!(s.opaque_class(), "com.example.User");
    // A map with two blocks.
    let s = snapshot(Out::new().snap(AVRO, 2).utf("X").utf(r#"{"type":"map","values":"int"}"#).bytes());
    let v = avro_string(avro_string(Out::new().u8(1), "a").i32(1).u8(1), "b").i32(2).u8(0);
    assert_eq!(decode(&s, v.bytes()), json!([{"key": "a", "value": 1}, {"key": "b", "value": 2}]));
    // An unparsable schema keeps the serializer, opaque.
    let s = snapshot(Out::new().snap(AVRO, 2).utf("X").utf("{not json").bytes());
    assert!(s.is_opaque());
    assert!(s.decode_framed(&[1, 2], 0).unwrap().is_opaque());
    // A union index out of range is corrupt data.
    let s = snapshot(Out::new().snap(AVRO, 2).utf("X").utf(r#"["null","int"]"#).bytes());
    assert!(s.decode_framed(Out::new().i32(2).bytes(), 0).is_err());
}

#[test]
fn generic_value_types() {
    let value = "org.apache.flink.api.java.typeutils.runtime.ValueSerializer$ValueSerializerSnapshot";
    let s = snapshot(Out::new().snap(value, 2).utf("org.apache.flink.types.StringValue").bytes());
    let mut sv = Vec::new();
    strings::write_string_value("hé", &mut sv);
    assert_eq!(decode(&s, &sv), json!("hé"));
    let copyable = "org.apache.flink.api.java.typeutils.runtime.CopyableValueSerializer$CopyableValueSerializerSnapshot";
    let s = snapshot(Out::new().snap(copyable, 2).utf("org.apache.flink.types.IntValue").bytes());
    assert_eq!(decode(&s, Out::new().i32(-3).bytes()), json!(-3));
    // CopyableValueSerializer.getLength() is the class's binary length; ValueSerializer's is -1.
    assert_eq!(s.fixed_length(), Some(4));
    // NullValue.write writes a boolean, unlike NullValueSerializer.
    let s = snapshot(Out::new().snap(value, 2).utf("org.apache.flink.types.NullValue").bytes());
    assert_eq!(decode(&s, &[0]), json!(null));
    assert_eq!(s.fixed_length(), None);
}

#[test]
fn depth_is_limited() {
    let mut b = Out::new();
    for _ in 0..200 {
        b = b.composite(LIST, 1, Out::new(), 1);
    }
    b = b.snap(INT, 3);
    let e = read_versioned_snapshot(&mut Cursor::new(b.bytes())).unwrap_err();
    assert!(e.to_string().contains("deeper than"), "{e}");
    // 60 levels are fine, and so are their values.
    let mut b = Out::new();
    for _ in 0..60 {
        b = b.composite(LIST, 1, Out::new(), 1);
    }
    let s = snapshot(b.snap(INT, 3).bytes());
    let mut v = Out::new();
    for _ in 0..60 {
        v = v.i32(1);
    }
    let j = decode(&s, v.i32(5).bytes());
    assert!(j.to_string().contains("[[[[5]]]]"));
    // A recursive Avro schema cannot recurse forever either.
    let s = snapshot(Out::new().snap(AVRO, 2).utf("X").utf(r#"{"type":"record","name":"N","fields":[{"name":"n","type":["null","N"]}]}"#).bytes());
    let mut v = Out::new();
    for _ in 0..1000 {
        v = v.i32(1);
    }
    let e = s.decode_framed(v.i32(0).bytes(), 0).unwrap_err();
    assert!(e.to_string().contains("deeper than"), "{e}");
}

/// Every proper prefix of a composite snapshot or value is an error with an offset inside the
/// input, never a panic.
#[test]
fn truncations_error_with_offsets() {
    let names = ["pojo", "row9", "map", "ttl", "timerwindow", "either", "genericarray", "enum", "tuple2", "kryo"];
    for g in FLINK_2_3_0.iter().filter(|g| names.contains(&g.name)) {
        let snap = unhex(g.snap);
        for cut in 0..snap.len() {
            let e = read_versioned_snapshot(&mut Cursor::with_base(&snap[..cut], 100))
                .expect_err(&format!("{} snapshot cut at {cut}", g.name));
            assert!(e.offset >= 100 && e.offset <= 100 + cut as u64, "{} cut {cut}: {e}", g.name);
        }
        let ser = snapshot(&snap);
        for hex in g.values {
            let v = unhex(hex);
            for cut in 0..v.len() {
                let r = ser.decode(&mut Cursor::with_base(&v[..cut], 7));
                let e = r.expect_err(&format!("{} value cut at {cut}", g.name));
                assert!(e.offset >= 7 && e.offset <= 7 + cut as u64, "{} cut {cut}: {e}", g.name);
            }
        }
    }
}

/// Random and mutated inputs never panic.
#[test]
fn garbage_never_panics() {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let sers: Vec<TypeSerializer> = FLINK_2_3_0.iter().chain(SCALA_1_20_5).map(|g| snapshot(&unhex(g.snap))).collect();
    for g in FLINK_2_3_0 {
        let snap = unhex(g.snap);
        for i in 0..snap.len() {
            let mut m = snap.clone();
            m[i] ^= (next() as u8) | 1;
            let _ = read_versioned_snapshot(&mut Cursor::new(&m));
        }
    }
    for _ in 0..3000 {
        let len = (next() % 40) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = read_proxy_snapshot(&mut Cursor::new(&bytes));
        for s in &sers {
            let _ = s.decode(&mut Cursor::new(&bytes));
            if let Ok(v) = s.decode_framed(&bytes, 0) {
                let _ = v.to_json();
            }
        }
    }
}

#[test]
fn key_groups_match_flink() {
    // The verified examples of the reference (§7.9).
    let long = snapshot(Out::new().snap(LONG, 3).bytes());
    let int = snapshot(Out::new().snap(INT, 3).bytes());
    let string = snapshot(Out::new().snap(STRING, 3).bytes());
    assert_eq!(java_hash_code(&string, &Value::String("k".into())), Some(107));
    assert_eq!(key_group_for_hash(107, 128), 21);
    assert_eq!(key_group_for_hash(java_hash_code(&long, &Value::Int(42)).unwrap(), 128), 29);
    assert_eq!(key_group_for_hash(java_hash_code(&int, &Value::Int(7)).unwrap(), 32768), 4337);
    assert_eq!(key_group_for_hash(1, 0), 0);

    // Everything else from the harness (hashCode() and assignToKeyGroup in Flink 2.3.0).
    let simple = |c: &str| snapshot(Out::new().snap(&format!("{BASE}{c}Serializer${c}SerializerSnapshot"), 3).bytes());
    let find = |n: &str| snapshot(&unhex(FLINK_2_3_0.iter().find(|g| g.name == n).unwrap().snap));
    let tuple3 = snapshot(
        Out::new()
            .composite("org.apache.flink.api.java.typeutils.runtime.TupleSerializerSnapshot", 2, Out::new().utf("org.apache.flink.api.java.tuple.Tuple3"), 3)
            .snap(LONG, 3)
            .snap(STRING, 3)
            .raw(Out::new().snap(&format!("{BASE}BooleanSerializer$BooleanSerializerSnapshot"), 3).bytes())
            .bytes(),
    );
    let row = |kind, f1: Value| Value::Row { kind, fields: vec![("f0".into(), Value::Int(1)), ("f1".into(), f1)] };
    let cases: Vec<(TypeSerializer, Value)> = vec![
        (string.clone(), Value::String("k".into())),
        (long.clone(), Value::Int(42)),
        (int.clone(), Value::Int(7)),
        (find("tuple2"), Value::Struct { fields: vec![("f0".into(), Value::String("k".into())), ("f1".into(), Value::Int(7))] }),
        (find("row"), row(RowKind::Insert, Value::String("a".into()))),
        (find("row"), row(RowKind::Delete, Value::Null)),
        (simple("Short"), Value::Int(3)),
        (simple("Byte"), Value::Int(-2)),
        (simple("Boolean"), Value::Bool(true)),
        (simple("Char"), Value::Char(u16::from(b'x'))),
        (simple("Double"), Value::Float(1.5)),
        (simple("Float"), Value::Float(0.1)),
        (simple("Double"), Value::Float(f64::NAN)),
        (
            tuple3,
            Value::Struct {
                fields: vec![("f0".into(), Value::Int(1)), ("f1".into(), Value::String("x".into())), ("f2".into(), Value::Bool(true))],
            },
        ),
        (string, Value::String("héllo😀".into())),
    ];
    assert_eq!(cases.len(), super::golden::KEY_GROUPS.len());
    for ((ser, v), (class, key, hash, kg128, kg32768)) in cases.iter().zip(super::golden::KEY_GROUPS) {
        let h = java_hash_code(ser, v).unwrap_or_else(|| panic!("no hash for {class} {key}"));
        assert_eq!(h, *hash, "{class} {key}");
        assert_eq!(key_group_for_hash(h, 128), *kg128, "{class} {key}");
        assert_eq!(key_group_for_hash(h, 32768), *kg32768, "{class} {key}");
    }
    // Undefined hashes.
    assert_eq!(java_hash_code(&find("pojo"), &Value::Struct { fields: vec![] }), None);
    assert_eq!(java_hash_code(&find("enum"), &Value::Enum("SECONDS".into())), None);
}

#[test]
fn values_are_checked_like_java_does() {
    let local_date = snapshot(Out::new().snap(&format!("{BASE}LocalDateSerializer$LocalDateSerializerSnapshot"), 3).bytes());
    let e = local_date.decode_framed(Out::new().i32(2023).u8(2).u8(29).bytes(), 0).unwrap_err();
    assert!(e.to_string().contains("invalid local date"), "{e}");
    let big = snapshot(Out::new().snap(&format!("{BASE}BigIntSerializer$BigIntSerializerSnapshot"), 3).bytes());
    assert!(big.decode_framed(Out::new().i32(-1).bytes(), 0).is_err());
    assert!(big.decode_framed(Out::new().i32(4).bytes(), 0).is_err());
    let e = big.decode_framed(Out::new().i32(0x7fff_ffff).bytes(), 0).unwrap_err();
    assert!(matches!(e.kind, DecodeErrorKind::Truncated { .. }), "{e}");
    let en = snapshot(&unhex(FLINK_2_3_0.iter().find(|g| g.name == "enum").unwrap().snap));
    assert!(en.decode_framed(Out::new().i32(7).bytes(), 0).unwrap_err().to_string().contains("out of range"));
    // Trailing bytes after a framed value are an error.
    assert!(big.decode_framed(Out::new().i32(1).u8(0).bytes(), 0).is_err());
}
