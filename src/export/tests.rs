//! Every serializer kind: its Arrow column, values into arrays, and a Parquet round trip through
//! arrow-rs's own reader (write, read back, compare), as arrow-rs tests its writer.

use std::sync::Arc;

use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::arrays::array;
use super::schema::{column, type_summary, Shape, META_ENCODING, META_OPAQUE_CLASS, META_SERIALIZER};
use crate::model::value::{RowKind, Value};
use crate::readers::serializers::{AvroSchema, AvroSerializer, PojoSerializer, SerializerKind as K, SimpleType as S, TypeSerializer};

fn ser(kind: K) -> TypeSerializer {
    TypeSerializer::new("test.SerializerSnapshot".into(), 1, kind)
}

fn simple(t: S) -> TypeSerializer {
    ser(K::Simple(t))
}

fn s(text: &str) -> Value {
    Value::String(text.into())
}

fn fields(f: &[(&str, Value)]) -> Value {
    Value::Struct { fields: f.iter().map(|(n, v)| (n.to_string(), v.clone())).collect() }
}

/// Writes one column to Parquet (zstd) and reads it back with arrow-rs.
fn round_trip(batch: &RecordBatch) -> RecordBatch {
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap())).build();
    let file = tempfile::tempfile().unwrap();
    let mut w = ArrowWriter::try_new(file.try_clone().unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
    let mut r = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    r.next().unwrap().unwrap()
}

/// Builds the column of `ser`, checks its type, fills it with `vals` and round-trips it.
fn check(ser: &TypeSerializer, expected_type: &str, vals: &[Value]) -> RecordBatch {
    let col = column("v", ser, false);
    assert_eq!(type_summary(col.field.data_type()), expected_type, "{ser:?}");
    assert_eq!(col.field.metadata().get(META_SERIALIZER).map(String::as_str), Some(ser.class_name()));
    let refs: Vec<Option<&Value>> = vals.iter().map(Some).collect();
    let a = array(&col, &refs).unwrap_or_else(|e| panic!("{expected_type}: {e}"));
    assert_eq!(a.data_type(), col.field.data_type());
    assert_eq!(a.len(), vals.len());
    let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![col.field.clone()])), vec![a]).unwrap();
    let back = round_trip(&batch);
    assert_eq!(back.column(0).as_ref(), batch.column(0).as_ref(), "{expected_type}");
    // The embedded Arrow schema brings the field metadata back.
    assert_eq!(back.schema().field(0).metadata(), col.field.metadata());
    batch
}

#[test]
fn simple_types() {
    check(&simple(S::Boolean), "Boolean", &[Value::Bool(true), Value::Bool(false)]);
    check(&simple(S::Byte), "Int8", &[Value::Int(-128), Value::Int(127)]);
    check(&simple(S::Short), "Int16", &[Value::Int(-32768)]);
    check(&simple(S::Int), "Int32", &[Value::Int(i64::from(i32::MIN))]);
    check(&simple(S::Long), "Int64", &[Value::Int(i64::MIN), Value::Int(i64::MAX)]);
    let b = check(&simple(S::Float), "Float32", &[Value::Float(0.1), Value::Float(f64::NAN)]);
    let f = b.column(0).as_any().downcast_ref::<arrow_array::Float32Array>().unwrap();
    assert_eq!(f.value(0), 0.1f32);
    check(&simple(S::Double), "Float64", &[Value::Float(-0.0), Value::Float(f64::INFINITY)]);
    check(&simple(S::Char), "Utf8", &[Value::Char(0x41), Value::Char(0xd800)]);
    check(&simple(S::String), "Utf8", &[s("日本語"), Value::Null, s("")]);
    check(&simple(S::BigDecimal), "Utf8", &[Value::BigDecimal("1.50".into())]);
    check(&simple(S::IntValue), "Int32", &[Value::Int(7)]);
    check(&simple(S::StringValue), "Utf8", &[s("x")]);
}

#[test]
fn temporal_types() {
    let b = check(&simple(S::Date), "Timestamp(ms, UTC)", &[Value::Instant { seconds: -1, nanos: 5_000_000 }, Value::Null]);
    let t = b.column(0).as_any().downcast_ref::<arrow_array::TimestampMillisecondArray>().unwrap();
    assert_eq!(t.value(0), -995);
    assert!(t.is_null(1));
    let b = check(&simple(S::LocalTime), "Time64(ns)", &[Value::LocalTime { hour: 23, minute: 59, second: 59, nano: 999_999_999 }]);
    let t = b.column(0).as_any().downcast_ref::<arrow_array::Time64NanosecondArray>().unwrap();
    assert_eq!(t.value(0), 86_399_999_999_999);
    // No Arrow type holds Instant's whole range: ISO-8601 text, as `dump` prints it.
    let b = check(&simple(S::Instant), "Utf8", &[Value::Instant { seconds: i64::MAX, nanos: 0 }, Value::Instant { seconds: 0, nanos: 1 }]);
    let t = b.column(0).as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
    assert_eq!(t.value(1), "1970-01-01T00:00:00.000000001Z");
    check(&simple(S::LocalDate), "Utf8", &[Value::LocalDate { year: -999_999_999, month: 1, day: 1 }]);
}

#[test]
fn flink_types() {
    check(&simple(S::VoidNamespace), "Null", &[Value::Null, Value::Null]);
    check(&simple(S::TimeWindow), "Struct<start: Int64, end: Int64>", &[Value::TimeWindow { start: -10_000, end: 0 }]);
    let ttl = ser(K::Ttl { timestamp: Box::new(simple(S::Long)), value: Box::new(simple(S::String)) });
    check(&ttl, "Struct<lastAccessTimestamp: Int64, userValue: Utf8>", &[fields(&[("lastAccessTimestamp", Value::Int(5)), ("userValue", s("v"))])]);
}

#[test]
fn collections() {
    check(&ser(K::PrimitiveArray(S::Byte)), "Binary", &[Value::Bytes(vec![]), Value::Bytes(vec![0xff])]);
    check(&ser(K::PrimitiveArray(S::Int)), "List<Int32>", &[Value::List(vec![Value::Int(1), Value::Int(2)]), Value::List(vec![])]);
    check(&ser(K::PrimitiveArray(S::String)), "List<Utf8>", &[Value::List(vec![s("a"), Value::Null])]);
    check(&ser(K::List(Box::new(simple(S::Long)))), "List<Int64>", &[Value::List(vec![Value::Int(1)]), Value::List(vec![])]);
    check(&ser(K::Set(Box::new(simple(S::Long)))), "List<Int64>", &[Value::List(vec![Value::Null, Value::Int(3)])]);
    let map = ser(K::Map(Box::new(simple(S::String)), Box::new(simple(S::Long))));
    check(
        &map,
        "Map<Utf8, Int64>",
        &[Value::Map(vec![(s("a"), Value::Int(1)), (s("b"), Value::Null)]), Value::Map(vec![])],
    );
    // A null map key fits neither Flink nor Arrow: an error, not a panic.
    let col = column("v", &map, false);
    let bad = Value::Map(vec![(Value::Null, Value::Int(1))]);
    assert!(array(&col, &[Some(&bad)]).is_err());
}

#[test]
fn structs() {
    let tuple = ser(K::Tuple { class: "org.apache.flink.api.java.tuple.Tuple2".into(), fields: vec![simple(S::Long), simple(S::String)] });
    check(&tuple, "Struct<f0: Int64, f1: Utf8>", &[fields(&[("f0", Value::Int(1)), ("f1", Value::Null)])]);
    // Nullability follows the serializers: a Long field writes no null, a String field may.
    let DataType::Struct(fs) = column("v", &tuple, false).field.data_type().clone() else { panic!("not a struct") };
    assert!(!fs[0].is_nullable() && fs[1].is_nullable());
    let pojo = ser(K::Pojo(Box::new(PojoSerializer {
        class: "com.example.Pojo".into(),
        fields: vec![("count".into(), Some(simple(S::Int))), ("name".into(), Some(simple(S::String)))],
        registered_subclasses: vec![],
        non_registered_subclasses: vec![],
    })));
    check(
        &pojo,
        "Struct<count: Int32, name: Utf8>",
        &[fields(&[("count", Value::Int(3)), ("name", s("n"))]), Value::Null, fields(&[("count", Value::Null), ("name", Value::Null)])],
    );
    let row = ser(K::Row { fields: vec![simple(S::Int), simple(S::String)], supports_row_kind: true });
    let b = check(
        &row,
        "Struct<f0: Int32, f1: Utf8, rowKind: Utf8>",
        &[Value::Row { kind: RowKind::UpdateBefore, fields: vec![("f0".into(), Value::Int(1)), ("f1".into(), Value::Null)] }],
    );
    assert_eq!(b.schema().field(0).metadata().get(META_ENCODING).map(String::as_str), Some("row"));
    let either = ser(K::Either(Box::new(simple(S::Long)), Box::new(simple(S::String))));
    check(
        &either,
        "Struct<is_left: Boolean, left: Int64, right: Utf8>",
        &[Value::Left(Box::new(Value::Int(1))), Value::Right(Box::new(Value::Null))],
    );
    check(&ser(K::Nullable { padding: 0, inner: Box::new(simple(S::Int)) }), "Int32", &[Value::Null, Value::Int(1)]);
    check(&ser(K::ScalaOption(Box::new(simple(S::Int)))), "Int32", &[Value::Null, Value::Int(1)]);
    let e = ser(K::Enum { class: "com.example.Color".into(), constants: vec!["RED".into(), "GREEN".into()] });
    check(&e, "Utf8", &[Value::Enum("GREEN".into())]);
}

#[test]
fn opaque_and_json() {
    let kryo = ser(K::Kryo { type_class: "com.example.Blob".into(), registrations: Vec::new() });
    let b = check(&kryo, "Binary", &[Value::opaque("com.example.Blob".into(), vec![1, 2]), Value::Null]);
    let m = b.schema().field(0).metadata().clone();
    assert_eq!(m.get(META_OPAQUE_CLASS).map(String::as_str), Some("com.example.Blob"));
    assert_eq!(m.get(META_ENCODING).map(String::as_str), Some("opaque"));
    // A composite holding an undecodable part: the dump JSON keeps whichever form a value took.
    let tuple = ser(K::Tuple { class: "Tuple2".into(), fields: vec![simple(S::Long), kryo.clone()] });
    let partly = fields(&[("f0", Value::Int(1)), ("f1", Value::opaque("com.example.Blob".into(), vec![9]))]);
    let whole = Value::opaque("Tuple2".into(), vec![0, 1]);
    let b = check(&tuple, "Utf8", &[partly.clone(), whole.clone()]);
    let t = b.column(0).as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
    assert_eq!(t.value(0), partly.to_json().to_string());
    assert_eq!(t.value(1), whole.to_json().to_string());
    check(&simple(S::Tuple0), "Utf8", &[Value::Struct { fields: vec![] }]);
    let avro = ser(K::Avro(Box::new(AvroSerializer {
        runtime_class: "org.apache.avro.generic.GenericRecord".into(),
        schema_json: r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#.into(),
        schema: AvroSchema::parse(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#),
    })));
    check(&avro, "Utf8", &[fields(&[("a", Value::Int(1))])]);
    // A POJO with subclasses may hold fields its own struct cannot: JSON.
    let pojo = ser(K::Pojo(Box::new(PojoSerializer {
        class: "com.example.Base".into(),
        fields: vec![("id".into(), Some(simple(S::Long)))],
        registered_subclasses: vec![("com.example.Sub".into(), None)],
        non_registered_subclasses: vec![],
    })));
    assert!(matches!(column("v", &pojo, false).shape, Shape::Json));
}

#[test]
fn values_that_do_not_fit_are_errors() {
    let col = column("v", &simple(S::Int), false);
    assert!(array(&col, &[Some(&Value::Int(i64::MAX))]).unwrap_err().contains("does not fit"));
    assert!(array(&col, &[Some(&s("x"))]).unwrap_err().contains("expected"));
    let col = column("v", &simple(S::VoidNamespace), false);
    assert!(array(&col, &[Some(&Value::Int(1))]).is_err());
    // A null in a non-nullable column is caught when the batch is made.
    let col = column("v", &simple(S::Long), false);
    assert_eq!(col.field.data_type(), &DataType::Int64);
    let a = array(&col, &[Some(&Value::Null)]).unwrap();
    assert!(RecordBatch::try_new(Arc::new(Schema::new(vec![col.field.clone()])), vec![a]).is_err());
}

#[test]
fn path_segments_are_safe_and_distinct() {
    use super::path_segment;
    assert_eq!(path_segment("keyed-string"), "keyed-string");
    assert_eq!(path_segment("_timer_state/event_user-timers"), "_timer_state%2Fevent_user-timers");
    assert_eq!(path_segment(".."), "%2E.");
    assert_eq!(path_segment("a b%"), "a%20b%25");
    assert_eq!(path_segment("é"), "%C3%A9");
    assert_eq!(path_segment(""), "@empty");
    assert_ne!(path_segment("a/b"), path_segment("a%2Fb"));
}

/// The columns every row of a state repeats (operator id, uid, state, kind) are built once per
/// state and sliced for each batch (`StateLayout::constants`): batches of every length, longer
/// and shorter than the last one, in any order, carry the state's own texts in each row, and
/// arrow-rs writes them dictionary-encoded and reads them back equal, with the Utf8 type they
/// had when built row by row.
#[test]
fn constant_columns_fit_batches_of_every_length() {
    use arrow_array::StringArray;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::state::StateLayout;
    use crate::readers::entries::{Selection, SnapshotEntries};
    use crate::readers::states::snapshot_states;

    let sp = format!("{}/testdata/flink-2.3.0/heap-savepoint-canonical/savepoint-ae4c95-ff41c5f424ab", env!("CARGO_MANIFEST_DIR"));
    let snapshot = crate::snapshot::Snapshot::open(Arc::new(crate::storage::LocalStorage), &sp).unwrap();
    let states: Vec<_> = snapshot_states(&snapshot, &Selection::default()).unwrap().into_iter().flat_map(|(_, s)| s).collect();
    let info = states.iter().find(|s| s.name() == "v-pojo").unwrap();
    let entries: Vec<_> =
        SnapshotEntries::new(&snapshot, Selection::default()).map(Result::unwrap).filter(|e| &*e.state == "v-pojo" && e.kind.is_keyed()).collect();
    assert!(entries.len() >= 8, "{} entries", entries.len());
    for uid in [Some("keyed-string"), None] {
        let layout = StateLayout::new(info, uid, &[]).unwrap();
        let expected = [info.operator_id.to_hex(), uid.unwrap_or_default().to_owned(), "v-pojo".to_owned(), info.kind.as_str().to_owned()];
        // Full length first (built), then a little shorter (sliced), much shorter (built apart),
        // longer again (built anew), and one row.
        let n = entries.len();
        for len in [n - 2, n - 3, 1.max(n / 4), n, 1] {
            let batch = layout.batch(&entries[..len]).unwrap();
            assert_eq!(batch.num_rows(), len);
            for (c, text) in expected.iter().enumerate() {
                let col = batch.column(c).as_any().downcast_ref::<StringArray>().unwrap();
                assert_eq!(col.len(), len);
                if c == 1 && uid.is_none() {
                    assert_eq!(col.null_count(), len, "operator_uid without a uid is null");
                    continue;
                }
                assert_eq!(col.null_count(), 0);
                assert!(col.iter().all(|v| v == Some(text.as_str())), "column {c} of a {len}-row batch");
            }
            // Through arrow-rs and back: the same columns, types and field metadata, and the
            // constant columns as one-value dictionaries in the column chunks.
            let file = tempfile::tempfile().unwrap();
            let props = WriterProperties::builder().set_dictionary_enabled(true).build();
            let mut w = ArrowWriter::try_new(file.try_clone().unwrap(), layout.schema.clone(), Some(props)).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
            let back = ParquetRecordBatchReaderBuilder::try_new(file.try_clone().unwrap()).unwrap().build().unwrap().next().unwrap().unwrap();
            assert_eq!(back.schema().fields(), batch.schema().fields());
            for (c, (a, b)) in back.columns().iter().zip(batch.columns()).enumerate() {
                assert_eq!(a.as_ref(), b.as_ref(), "column {c} of a {len}-row batch");
            }
            let reader = SerializedFileReader::new(file).unwrap();
            for c in &reader.metadata().row_group(0).columns()[..4] {
                assert!(c.dictionary_page_offset().is_some(), "{}", c.column_path());
            }
        }
    }
}
