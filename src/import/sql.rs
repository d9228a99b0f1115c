//! SQL `RowData` serializer snapshots from Arrow column types: what `import` registers for a
//! new state whose struct columns are SQL rows (`--type OPERATOR/STATE=rowdata`). The logical
//! type of each field comes from its column: the SQL type `export` recorded in the field's
//! metadata (`flinksnap.sql_type`: `CHAR(3)`, `BIGINT NOT NULL`, `TIMESTAMP(3) *ROWTIME*`) when
//! it maps to the column's Arrow type, else the Arrow type's own SQL type (`Utf8` → `STRING`,
//! `Decimal128(p, s)` → `DECIMAL(p, s)`, `Timestamp(ms)` → `TIMESTAMP(3)`, ...). The snapshot is
//! `RowDataSerializerSnapshot` version 3: the field count, each field's `LogicalType`
//! Java-serialized (one stream each, as `InstantiationUtil.serializeObject` writes it), then the
//! field serializers' snapshots (`InternalSerializers.create` of each type). Spec:
//! `formats/import.md` § "New states".

use arrow_schema::{DataType, Field, Fields, TimeUnit};

use crate::bytes::DataOutput;
use crate::java_serialization::write::{ClassDesc, FieldDesc, JavaWriter, ENUM, SC_ENUM, SC_SERIALIZABLE, SC_WRITE_METHOD};
use crate::readers::serializers::consts::{simple_snapshot_class, NESTED_MAGIC, NESTED_VERSION};
use crate::readers::serializers::table::{LogicalType, RowField, TimestampKind, TypeKind};
use crate::readers::serializers::SimpleType;

const RUNTIME: &str = "org.apache.flink.table.runtime.typeutils.";
/// `RowDataSerializerSnapshot`'s version (1.15–2.3).
const ROW_DATA_VERSION: i32 = 3;
/// `StringDataSerializerSnapshot`, `DecimalSerializerSnapshot`: version 3;
/// `TimestampDataSerializerSnapshot`: version 1 (as Flink 1.15–2.3 write them).
const TABLE_SIMPLE_VERSION: i32 = 3;
const TIMESTAMP_VERSION: i32 = 1;
/// The longest `CHAR`, `VARCHAR`, `BINARY`, `VARBINARY` (`STRING` and `BYTES` are these).
const MAX_LENGTH: u32 = i32::MAX as u32;
/// The name of the field `export` adds to a SQL row for its `RowKind` (not a field of the row).
const ROW_KIND_FIELD: &str = crate::export::schema::ROW_KIND_FIELD;

macro_rules! logical_class {
    ($static:ident, $name:literal, $fields:expr) => {
        static $static: ClassDesc =
            ClassDesc { name: concat!("org.apache.flink.table.types.logical.", $name), suid: 1, flags: SC_SERIALIZABLE, fields: $fields, superclass: Some(&LOGICAL_TYPE) };
    };
}

const fn int(name: &'static str) -> FieldDesc {
    FieldDesc { code: b'I', name, signature: None }
}
const fn object(name: &'static str, signature: &'static str) -> FieldDesc {
    FieldDesc { code: b'L', name, signature: Some(signature) }
}

// The descriptors of Flink's logical type classes: the same in 1.15.4, 1.20.5 and 2.3.0
// (`ObjectStreamClass.lookup` of each: serialVersionUID 1, these fields).
static LOGICAL_TYPE: ClassDesc = ClassDesc {
    name: "org.apache.flink.table.types.logical.LogicalType",
    suid: 1,
    flags: SC_SERIALIZABLE,
    fields: &[FieldDesc { code: b'Z', name: "isNullable", signature: None }, object("typeRoot", "Lorg/apache/flink/table/types/logical/LogicalTypeRoot;")],
    superclass: None,
};
static TYPE_ROOT: ClassDesc = ClassDesc { name: "org.apache.flink.table.types.logical.LogicalTypeRoot", suid: 0, flags: SC_ENUM, fields: &[], superclass: Some(&ENUM) };
static TIMESTAMP_KIND: ClassDesc = ClassDesc { name: "org.apache.flink.table.types.logical.TimestampKind", suid: 0, flags: SC_ENUM, fields: &[], superclass: Some(&ENUM) };
const LENGTH: &[FieldDesc] = &[int("length")];
const TIMESTAMP_FIELDS: &[FieldDesc] = &[int("precision"), object("kind", "Lorg/apache/flink/table/types/logical/TimestampKind;")];
logical_class!(CHAR, "CharType", LENGTH);
logical_class!(VARCHAR, "VarCharType", LENGTH);
logical_class!(BINARY, "BinaryType", LENGTH);
logical_class!(VARBINARY, "VarBinaryType", LENGTH);
logical_class!(BOOLEAN, "BooleanType", &[]);
logical_class!(DECIMAL, "DecimalType", &[int("precision"), int("scale")]);
logical_class!(TINYINT, "TinyIntType", &[]);
logical_class!(SMALLINT, "SmallIntType", &[]);
logical_class!(INT, "IntType", &[]);
logical_class!(BIGINT, "BigIntType", &[]);
logical_class!(FLOAT, "FloatType", &[]);
logical_class!(DOUBLE, "DoubleType", &[]);
logical_class!(DATE, "DateType", &[]);
logical_class!(TIME, "TimeType", &[int("precision")]);
logical_class!(TIMESTAMP, "TimestampType", TIMESTAMP_FIELDS);
logical_class!(TIMESTAMP_LTZ, "LocalZonedTimestampType", TIMESTAMP_FIELDS);
logical_class!(ROW, "RowType", &[object("fields", "Ljava/util/List;")]);
static ROW_FIELD: ClassDesc = ClassDesc {
    name: "org.apache.flink.table.types.logical.RowType$RowField",
    suid: 1,
    flags: SC_SERIALIZABLE,
    fields: &[
        object("description", "Ljava/lang/String;"),
        object("name", "Ljava/lang/String;"),
        object("type", "Lorg/apache/flink/table/types/logical/LogicalType;"),
    ],
    superclass: None,
};
// `RowType.fields` is `Collections.unmodifiableList(new ArrayList<>(fields))` (JDK classes).
static UNMODIFIABLE_COLLECTION: ClassDesc = ClassDesc {
    name: "java.util.Collections$UnmodifiableCollection",
    suid: 1820017752578914078,
    flags: SC_SERIALIZABLE,
    fields: &[object("c", "Ljava/util/Collection;")],
    superclass: None,
};
static UNMODIFIABLE_LIST: ClassDesc = ClassDesc {
    name: "java.util.Collections$UnmodifiableList",
    suid: -283967356065247728,
    flags: SC_SERIALIZABLE,
    fields: &[object("list", "Ljava/util/List;")],
    superclass: Some(&UNMODIFIABLE_COLLECTION),
};
static ARRAY_LIST: ClassDesc = ClassDesc { name: "java.util.ArrayList", suid: 8683452581122892189, flags: SC_WRITE_METHOD, fields: &[int("size")], superclass: None };

/// The class descriptor and `LogicalTypeRoot` constant of a type flinksnap writes; `None` for
/// the others.
fn class_of(kind: &TypeKind) -> Option<(&'static ClassDesc, &'static str)> {
    Some(match kind {
        TypeKind::Char(_) => (&CHAR, "CHAR"),
        TypeKind::VarChar(_) => (&VARCHAR, "VARCHAR"),
        TypeKind::Boolean => (&BOOLEAN, "BOOLEAN"),
        TypeKind::Binary(_) => (&BINARY, "BINARY"),
        TypeKind::VarBinary(_) => (&VARBINARY, "VARBINARY"),
        TypeKind::Decimal { .. } => (&DECIMAL, "DECIMAL"),
        TypeKind::TinyInt => (&TINYINT, "TINYINT"),
        TypeKind::SmallInt => (&SMALLINT, "SMALLINT"),
        TypeKind::Integer => (&INT, "INTEGER"),
        TypeKind::BigInt => (&BIGINT, "BIGINT"),
        TypeKind::Float => (&FLOAT, "FLOAT"),
        TypeKind::Double => (&DOUBLE, "DOUBLE"),
        TypeKind::Date => (&DATE, "DATE"),
        TypeKind::Time(_) => (&TIME, "TIME_WITHOUT_TIME_ZONE"),
        TypeKind::Timestamp { .. } => (&TIMESTAMP, "TIMESTAMP_WITHOUT_TIME_ZONE"),
        TypeKind::TimestampLtz { .. } => (&TIMESTAMP_LTZ, "TIMESTAMP_WITH_LOCAL_TIME_ZONE"),
        TypeKind::Row(_) => (&ROW, "ROW"),
        _ => return None,
    })
}

fn timestamp_kind(k: TimestampKind) -> &'static str {
    match k {
        TimestampKind::Regular => "REGULAR",
        TimestampKind::Rowtime => "ROWTIME",
        TimestampKind::Proctime => "PROCTIME",
    }
}

/// `t` as one Java serialization stream (`InstantiationUtil.serializeObject`).
pub(crate) fn logical_type_bytes(t: &LogicalType) -> Result<Vec<u8>, String> {
    let mut w = JavaWriter::new();
    write_logical_type(&mut w, t, 0)?;
    Ok(w.finish())
}

fn write_logical_type(w: &mut JavaWriter, t: &LogicalType, depth: usize) -> Result<(), String> {
    if depth > crate::readers::serializers::table::logical_type::MAX_TYPE_DEPTH {
        return Err("logical types nested too deep".into());
    }
    let (class, root) = class_of(&t.kind).ok_or_else(|| format!("no serializer snapshot is written for SQL type {}", t.summary()))?;
    w.object(class)?;
    // LogicalType's fields, then the subclass's.
    w.bool(t.nullable);
    w.enum_constant(&TYPE_ROOT, root)?;
    let length = |n: u32| i32::try_from(n).map_err(|_| format!("{}: length out of range", t.summary()));
    match &t.kind {
        TypeKind::Char(n) | TypeKind::VarChar(n) | TypeKind::Binary(n) | TypeKind::VarBinary(n) => w.int(length(*n)?),
        TypeKind::Decimal { precision, scale } => {
            w.int(*precision as i32);
            w.int(*scale as i32);
        }
        TypeKind::Time(p) => w.int(*p as i32),
        TypeKind::Timestamp { precision, kind } | TypeKind::TimestampLtz { precision, kind } => {
            w.int(*precision as i32);
            w.enum_constant(&TIMESTAMP_KIND, timestamp_kind(*kind))?;
        }
        TypeKind::Row(fields) => {
            w.object(&UNMODIFIABLE_LIST)?;
            // UnmodifiableCollection.c: the ArrayList; UnmodifiableList.list: the same object.
            let list = w.object(&ARRAY_LIST)?;
            w.int(fields.len() as i32);
            w.block_data(&(fields.len() as i32).to_be_bytes())?;
            for f in fields {
                w.object(&ROW_FIELD)?;
                w.null(); // description
                w.string_unshared(&f.name)?;
                write_logical_type(w, &f.ty, depth + 1)?;
            }
            w.end_block_data();
            w.reference_to(list);
        }
        _ => {}
    }
    Ok(())
}

/// The snapshot (versioned form: class, version, payload) of the serializer Flink's
/// `InternalSerializers.create` makes for a field of type `t`.
pub(crate) fn write_field_serializer(out: &mut Vec<u8>, t: &LogicalType) -> Result<(), String> {
    let simple = |out: &mut Vec<u8>, s: SimpleType, array: bool| -> Result<(), String> {
        out.put_utf(&simple_snapshot_class(s, array).ok_or_else(|| format!("no snapshot class for {s:?}"))?)?;
        out.put_i32(3);
        Ok(())
    };
    match &t.kind {
        TypeKind::Boolean => simple(out, SimpleType::Boolean, false),
        TypeKind::TinyInt => simple(out, SimpleType::Byte, false),
        TypeKind::SmallInt => simple(out, SimpleType::Short, false),
        TypeKind::Integer | TypeKind::Date | TypeKind::Time(_) => simple(out, SimpleType::Int, false),
        TypeKind::BigInt => simple(out, SimpleType::Long, false),
        TypeKind::Float => simple(out, SimpleType::Float, false),
        TypeKind::Double => simple(out, SimpleType::Double, false),
        TypeKind::Binary(_) | TypeKind::VarBinary(_) => simple(out, SimpleType::Byte, true),
        TypeKind::Char(_) | TypeKind::VarChar(_) => {
            out.put_utf(&format!("{RUNTIME}StringDataSerializer$StringDataSerializerSnapshot"))?;
            out.put_i32(TABLE_SIMPLE_VERSION);
            Ok(())
        }
        TypeKind::Decimal { precision, scale } => {
            out.put_utf(&format!("{RUNTIME}DecimalDataSerializer$DecimalSerializerSnapshot"))?;
            out.put_i32(TABLE_SIMPLE_VERSION);
            out.put_i32(*precision as i32);
            out.put_i32(*scale as i32);
            Ok(())
        }
        TypeKind::Timestamp { precision, .. } | TypeKind::TimestampLtz { precision, .. } => {
            out.put_utf(&format!("{RUNTIME}TimestampDataSerializer$TimestampDataSerializerSnapshot"))?;
            out.put_i32(TIMESTAMP_VERSION);
            out.put_i32(*precision as i32);
            Ok(())
        }
        TypeKind::Row(fields) => write_row_data(out, &fields.iter().map(|f| f.ty.clone()).collect::<Vec<_>>()),
        _ => Err(format!("no serializer snapshot is written for SQL type {}", t.summary())),
    }
}

/// `RowDataSerializerSnapshot` of a row of `types`, in versioned form.
pub(crate) fn write_row_data(out: &mut Vec<u8>, types: &[LogicalType]) -> Result<(), String> {
    out.put_utf(&format!("{RUNTIME}RowDataSerializer$RowDataSerializerSnapshot"))?;
    out.put_i32(ROW_DATA_VERSION);
    out.put_i32(types.len() as i32);
    for t in types {
        out.extend_from_slice(&logical_type_bytes(t)?);
    }
    out.put_i32(NESTED_MAGIC as i32);
    out.put_i32(NESTED_VERSION);
    out.put_i32(types.len() as i32);
    for t in types {
        write_field_serializer(out, t)?;
    }
    Ok(())
}

/// The field types of a SQL row held in struct column `c` (its `rowKind` field left out; a
/// global aggregation's key is a row of no fields).
pub(crate) fn row_types(c: &str, fields: &Fields) -> Result<Vec<LogicalType>, String> {
    let n = fields.len();
    let fields: Vec<&Field> = fields.iter().enumerate().filter(|(i, f)| !(*i + 1 == n && f.name() == ROW_KIND_FIELD && matches!(f.data_type(), DataType::Utf8))).map(|(_, f)| f.as_ref()).collect();
    fields.iter().map(|f| logical_type_at(&format!("{c}.{}", f.name()), f, 0)).collect()
}

/// The SQL type of column `c`, a SQL value outside a row.
pub(crate) fn field_type(c: &str, f: &Field) -> Result<LogicalType, String> {
    logical_type_at(c, f, 0)
}

/// The SQL type of column `c` (a row field, `depth` rows deep): its recorded SQL type when that
/// maps to its Arrow type, else the Arrow type's.
fn logical_type_at(c: &str, f: &Field, depth: usize) -> Result<LogicalType, String> {
    if depth > crate::readers::serializers::table::logical_type::MAX_TYPE_DEPTH {
        return Err(format!("column {c:?}: rows nested deeper than {} levels", crate::readers::serializers::table::logical_type::MAX_TYPE_DEPTH));
    }
    if let Some(t) = f.metadata().get(crate::export::sql::META_SQL_TYPE).and_then(|s| parse_sql_type(s)) {
        let fits = crate::export::sql::logical_column("x", &t, None, true).field.data_type() == f.data_type();
        if fits {
            return Ok(t);
        }
    }
    let kind = match f.data_type() {
        DataType::Boolean => TypeKind::Boolean,
        DataType::Int8 => TypeKind::TinyInt,
        DataType::Int16 => TypeKind::SmallInt,
        DataType::Int32 => TypeKind::Integer,
        DataType::Int64 => TypeKind::BigInt,
        DataType::Float32 => TypeKind::Float,
        DataType::Float64 => TypeKind::Double,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => TypeKind::VarChar(MAX_LENGTH),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => TypeKind::VarBinary(MAX_LENGTH),
        DataType::Decimal128(p, s) if (1..=38).contains(p) && *s >= 0 && (*s as u8) <= *p => TypeKind::Decimal { precision: u32::from(*p), scale: *s as u32 },
        DataType::Date32 => TypeKind::Date,
        DataType::Time32(u) => TypeKind::Time(precision(u)),
        DataType::Timestamp(u, None) => TypeKind::Timestamp { precision: precision(u), kind: TimestampKind::Regular },
        DataType::Timestamp(u, Some(_)) => TypeKind::TimestampLtz { precision: precision(u), kind: TimestampKind::Regular },
        DataType::Struct(children) => {
            TypeKind::Row(children.iter().map(|x| Ok(RowField { name: x.name().clone(), ty: logical_type_at(&format!("{c}.{}", x.name()), x, depth + 1)? })).collect::<Result<_, String>>()?)
        }
        t => {
            return Err(format!(
                "column {c:?} is {t}: a SQL row field is written for Boolean, Int8/16/32/64, Float32/64, Utf8, Binary, Decimal128, \
                 Date32, Time32, Timestamp and Struct columns (BOOLEAN, TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, STRING, BYTES, \
                 DECIMAL, DATE, TIME, TIMESTAMP, TIMESTAMP_LTZ, ROW)"
            ))
        }
    };
    Ok(LogicalType { nullable: f.is_nullable(), kind })
}

/// The fractional-second precision of an Arrow time unit.
fn precision(u: &TimeUnit) -> u32 {
    match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

/// A SQL type as `LogicalType.asSummaryString()` prints it (what `export` records), for the
/// types written here; `None` for anything else.
pub(crate) fn parse_sql_type(s: &str) -> Option<LogicalType> {
    let (s, nullable) = match s.strip_suffix(" NOT NULL") {
        Some(rest) => (rest, false),
        None => (s, true),
    };
    let (s, attr) = if let Some(rest) = s.strip_suffix(" *ROWTIME*") {
        (rest, TimestampKind::Rowtime)
    } else if let Some(rest) = s.strip_suffix(" *PROCTIME*") {
        (rest, TimestampKind::Proctime)
    } else {
        (s, TimestampKind::Regular)
    };
    let (name, args) = match s.split_once('(') {
        Some((name, rest)) => (name, rest.strip_suffix(')')?.split(',').map(|a| a.trim().parse::<u32>().ok()).collect::<Option<Vec<u32>>>()?),
        None => (s, Vec::new()),
    };
    let kind = match (name, args.as_slice()) {
        ("CHAR", [n]) => TypeKind::Char(*n),
        ("VARCHAR", [n]) => TypeKind::VarChar(*n),
        ("STRING", []) => TypeKind::VarChar(MAX_LENGTH),
        ("BOOLEAN", []) => TypeKind::Boolean,
        ("BINARY", [n]) => TypeKind::Binary(*n),
        ("VARBINARY", [n]) => TypeKind::VarBinary(*n),
        ("BYTES", []) => TypeKind::VarBinary(MAX_LENGTH),
        ("DECIMAL", [p, s]) if (1..=38).contains(p) && s <= p => TypeKind::Decimal { precision: *p, scale: *s },
        ("TINYINT", []) => TypeKind::TinyInt,
        ("SMALLINT", []) => TypeKind::SmallInt,
        ("INT", []) => TypeKind::Integer,
        ("BIGINT", []) => TypeKind::BigInt,
        ("FLOAT", []) => TypeKind::Float,
        ("DOUBLE", []) => TypeKind::Double,
        ("DATE", []) => TypeKind::Date,
        ("TIME", [p]) if *p <= 9 => TypeKind::Time(*p),
        ("TIMESTAMP", [p]) if *p <= 9 => TypeKind::Timestamp { precision: *p, kind: attr },
        ("TIMESTAMP_LTZ", [p]) if *p <= 9 => TypeKind::TimestampLtz { precision: *p, kind: attr },
        _ => return None,
    };
    if attr != TimestampKind::Regular && !matches!(kind, TypeKind::Timestamp { .. } | TypeKind::TimestampLtz { .. }) {
        return None;
    }
    Some(LogicalType { nullable, kind })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::registration::{key_serializer, registration_from_columns, StructType};
    use crate::readers::states::StateInfo;

    /// The serializer snapshot classes a registration from column types writes: a registration
    /// of Flink's made only of these is one flinksnap must write byte for byte.
    const WRITTEN: &[&str] = &[
        "RowDataSerializer$RowDataSerializerSnapshot",
        "StringDataSerializer$StringDataSerializerSnapshot",
        "DecimalDataSerializer$DecimalSerializerSnapshot",
        "TimestampDataSerializer$TimestampDataSerializerSnapshot",
        "org.apache.flink.api.common.typeutils.base.",
        "VoidNamespaceSerializer$VoidNamespaceSerializerSnapshot",
        "TimerSerializerSnapshot",
    ];

    fn classes(debug: &str) -> Vec<&str> {
        debug.split("class_name: \"").skip(1).filter_map(|s| s.split('"').next()).collect()
    }

    fn writable(debug: &str) -> bool {
        classes(debug).iter().all(|c| WRITTEN.iter().any(|w| c.contains(w)))
    }

    fn states(dir: &str) -> Vec<StateInfo> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let snap = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).find(|p| p.join("_metadata").exists()).unwrap_or_else(|| panic!("{dir}: no savepoint"));
        let snapshot = crate::snapshot::Snapshot::open(std::sync::Arc::new(crate::storage::LocalStorage), snap.to_str().unwrap()).unwrap();
        crate::readers::states::snapshot_states(&snapshot, &Default::default()).unwrap().into_iter().flat_map(|(_, s)| s).collect()
    }

    /// Every state of the SQL fixtures (1.15.4 … 2.3.0) whose registration and key serializer
    /// are made of serializers flinksnap writes (`RowData` of atomic types, `List`/`Map` of
    /// them, timers, `VoidNamespace`): exported (its Arrow schema, field metadata kept, no
    /// recorded registration), registered from its column types with `--type …=rowdata`, and
    /// compared with what real Flink wrote, byte for byte. The registration covers the value,
    /// user key and list columns, and the key column gives the key serializer of a new operator.
    #[test]
    fn sql_registrations_from_columns_are_the_bytes_flink_writes() {
        let dirs = [
            "testdata/flink-1.15.4/sql-heap-savepoint-canonical",
            "testdata/flink-1.20.5/sql-heap-savepoint-canonical",
            "testdata/flink-2.0.2/sql-heap-savepoint-canonical",
            "testdata/flink-2.3.0/sql-heap-savepoint-canonical",
            "testdata/flink-2.3.0/sql-minibatch-heap-savepoint-canonical",
            "testdata/flink-2.3.0/sql-v2-heap-savepoint-canonical",
            "testdata/flink-2.3.0/sql-lookup-heap-savepoint-canonical",
        ];
        for dir in dirs {
            let mut covered = std::collections::BTreeSet::new();
            let mut keys = 0;
            let mut registrations = 0;
            let mut bare_equal = 0;
            for s in states(dir) {
                if !s.kind.is_keyed() {
                    continue;
                }
                let layout = crate::export::state::StateLayout::new(&s, None, &[]).unwrap();
                let schema = layout.schema.as_ref();
                // The key serializer of a new operator, from the key column.
                let key_debug = format!("{:?}", s.key_serializer);
                if !s.key_serializer_raw.is_empty() && writable(&key_debug) {
                    let t = crate::import::registration::column_type(schema, "key", Some(&StructType::RowData)).unwrap();
                    assert_eq!(key_serializer(&t).unwrap().1, s.key_serializer_raw, "{dir}: key of {}", s.name());
                    keys += 1;
                }
                let debug = format!("{:?}", s.meta.serializers);
                // New states are registered in VoidNamespace only (a window's need --like).
                let void = schema.field_with_name("namespace").map_or(true, |f| f.data_type() == &DataType::Null);
                if !(writable(&debug) && void) {
                    continue;
                }
                let ours = registration_from_columns(s.name(), s.kind, schema, Some(&StructType::RowData)).unwrap_or_else(|e| panic!("{dir}: {}: {e}", s.name()));
                assert_eq!(ours.raw, s.meta.raw, "{dir}: {} ({:?}): {}", s.name(), s.kind, debug);
                covered.insert(format!("{}:{}", s.kind.as_str(), s.name()));
                registrations += 1;
                // Another tool's file: no field metadata; `--type rowdata` makes its structs rows
                // of the Arrow types' SQL types (nullable, STRING, ...): Flink's bytes where those
                // are the state's types. Without --type such a struct is taken for a tuple.
                let bare = arrow_schema::Schema::new(schema.fields().iter().map(|f| bare(f)).collect::<Vec<_>>());
                if let Ok(r) = registration_from_columns(s.name(), s.kind, &bare, Some(&StructType::RowData)) {
                    bare_equal += usize::from(r.raw == s.meta.raw);
                }
            }
            eprintln!("{dir}: {registrations} registrations ({} names; {bare_equal} also from bare Arrow types), {keys} key serializers: {covered:?}", covered.len());
            // Value, map (RowData user keys, List<RowData> values), list and timer states of
            // RowData keys are among them in every version (the mini-batch job has fewer states).
            let must: &[&str] = if dir.contains("minibatch") {
                &["value:deduplicate-state", "value:accState"]
            } else if dir.contains("sql-v2") || dir.contains("sql-lookup") {
                &[]
            } else {
                &["value:deduplicate-state", "map:data-state-with-append", "timer:_timer_state/processing_user-timers", "value:accState", "map:inputState"]
            };
            for m in must {
                assert!(covered.contains(*m), "{dir}: {m} not covered: {covered:?}");
            }
            if dir.contains("2.3.0/sql-heap") {
                assert!(covered.contains("value:waiting-to-emit-on-timer"), "{dir}: a TIMESTAMP(3) *ROWTIME* field");
            }
            let few = dir.contains("sql-v2") || dir.contains("sql-lookup");
            assert!(few || keys > 10 && registrations > 3 && bare_equal >= 2, "{dir}: {registrations} registrations ({bare_equal} from bare types), {keys} key serializers");
        }
    }

    fn bare(f: &Field) -> Field {
        let t = match f.data_type() {
            DataType::Struct(children) => DataType::Struct(children.iter().map(|c| bare(c)).collect()),
            DataType::List(e) => DataType::List(std::sync::Arc::new(bare(e))),
            DataType::Map(e, sorted) => DataType::Map(std::sync::Arc::new(bare(e)), *sorted),
            t => t.clone(),
        };
        Field::new(f.name(), t, f.is_nullable())
    }

    /// Bad input is refused with the column named, never a panic or a stack overflow.
    #[test]
    fn bad_columns_are_refused() {
        let mut f = Field::new("x", DataType::Int64, true);
        for _ in 0..1000 {
            f = Field::new("x", DataType::Struct(vec![f].into()), true);
        }
        let e = row_types("value", &Fields::from(vec![f])).unwrap_err();
        assert!(e.contains("nested deeper"), "{e}");
        let e = row_types("value", &Fields::from(vec![Field::new("a", DataType::Time64(TimeUnit::Microsecond), true)])).unwrap_err();
        assert!(e.contains("column \"value.a\" is Time64"), "{e}");
        // A recorded SQL type that is not the column's: the column's own type wins.
        let f = Field::new("a", DataType::Int32, false).with_metadata([(crate::export::sql::META_SQL_TYPE.to_owned(), "BIGINT".to_owned())].into());
        assert_eq!(logical_type_at("a", &f, 0).unwrap(), LogicalType { nullable: false, kind: TypeKind::Integer });
        for bad in ["DECIMAL(39, 2)", "TIMESTAMP(10)", "INT *ROWTIME*", "VARCHAR(x)", "CHAR(1"] {
            assert_eq!(parse_sql_type(bad), None, "{bad}");
        }
    }

    /// The logical types written read back as the same types (all atomic kinds, nested rows).
    #[test]
    fn logical_types_read_back() {
        let ty = |kind| LogicalType { nullable: true, kind };
        let row = TypeKind::Row(vec![
            RowField { name: "a".into(), ty: LogicalType { nullable: false, kind: TypeKind::BigInt } },
            RowField { name: "é".into(), ty: ty(TypeKind::Row(vec![RowField { name: "x".into(), ty: ty(TypeKind::VarChar(MAX_LENGTH)) }])) },
        ]);
        let kinds = vec![
            TypeKind::Char(3),
            TypeKind::VarChar(10),
            TypeKind::Boolean,
            TypeKind::Binary(4),
            TypeKind::VarBinary(MAX_LENGTH),
            TypeKind::Decimal { precision: 38, scale: 10 },
            TypeKind::TinyInt,
            TypeKind::SmallInt,
            TypeKind::Integer,
            TypeKind::BigInt,
            TypeKind::Float,
            TypeKind::Double,
            TypeKind::Date,
            TypeKind::Time(0),
            TypeKind::Timestamp { precision: 9, kind: TimestampKind::Regular },
            TypeKind::TimestampLtz { precision: 3, kind: TimestampKind::Proctime },
            row,
        ];
        for k in kinds {
            let t = LogicalType { nullable: false, kind: k };
            let bytes = logical_type_bytes(&t).unwrap();
            let g = crate::java_serialization::read_stream(&mut crate::bytes::Cursor::new(&bytes)).unwrap();
            assert_eq!(crate::readers::serializers::table::logical_type::from_java(&g, &g.root).unwrap(), t);
            assert_eq!(parse_sql_type(&t.summary()).filter(|_| !matches!(t.kind, TypeKind::Row(_))), (!matches!(t.kind, TypeKind::Row(_))).then(|| t.clone()));
        }
    }
}
