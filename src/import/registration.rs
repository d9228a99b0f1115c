//! Registrations of keyed states new to a snapshot, for built-in types: what `import` adds to
//! an operator's serialization proxy for a state the snapshot lacks when no `--like` is given.
//! The types come from the file's Arrow column types (`value`, and `user_key` of map state);
//! the bytes are those Flink writes for a state of those types (a `StateMetaInfoSnapshot`:
//! name, backend type, the `KEYED_STATE_TYPE` option, the value and namespace serializer
//! snapshots in versioned form). Spec: `formats/import.md` § "New states".

use arrow_schema::{DataType, Field, Schema};

use crate::bytes::{Cursor, DataOutput};
use crate::error::{Error, Result};
use crate::model::StateKind;
use crate::readers::meta::{read_state_meta_info, StateMetaInfo};
use crate::readers::serializers::table::LogicalType;
use crate::readers::serializers::SimpleType;
use crate::readers::serializers::consts::{simple_snapshot_class, COMPOSITE_MAGIC, NESTED_MAGIC, NESTED_VERSION, OPTIONAL_MAP_HEADER, PROXY_VERSION};

const BASE: &str = "org.apache.flink.api.common.typeutils.base.";

/// `SimpleTypeSerializerSnapshot`s have version 3 and no payload; so do the composite
/// snapshots' own versions here (`CompositeTypeSerializerSnapshot`, outer version 1).
const SNAPSHOT_VERSION: i32 = 3;
const OUTER_VERSION: i32 = 1;
/// `TimerSerializerSnapshot`'s outer version (the composite of the key and namespace snapshots).
const TIMER_OUTER_VERSION: i32 = 2;
const TUPLE_OUTER_VERSION: i32 = 2;
const TUPLE_SNAPSHOT: &str = "org.apache.flink.api.java.typeutils.runtime.TupleSerializerSnapshot";
/// Flink's largest tuple (`Tuple25`).
const MAX_TUPLE_ARITY: usize = 25;
const ROW_SNAPSHOT: &str = "org.apache.flink.api.java.typeutils.runtime.RowSerializer$RowSerializerSnapshot";
const ROW_OUTER_VERSION: i32 = 3;
const POJO_SNAPSHOT: &str = "org.apache.flink.api.java.typeutils.runtime.PojoSerializerSnapshot";
const POJO_VERSION: i32 = 2;
const TIMER_SNAPSHOT: &str = "org.apache.flink.streaming.api.operators.TimerSerializerSnapshot";
const VOID_NAMESPACE: &str = "org.apache.flink.runtime.state.VoidNamespaceSerializer$VoidNamespaceSerializerSnapshot";

/// A type whose serializer snapshot flinksnap writes for a new state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BuiltinType {
    /// A `SimpleTypeSerializerSnapshot` of a type (`consts::simple_snapshot_class` names it).
    Simple(SimpleType),
    /// A primitive array (`byte[]`: `BytePrimitiveArraySerializer`), by element type.
    Array(SimpleType),
    /// `List<T>` (`ListSerializer`), the value serializer of list state.
    List(Box<BuiltinType>),
    /// `Map<K, V>` (`MapSerializer`), the value serializer of map state.
    Map(Box<BuiltinType>, Box<BuiltinType>),
    /// `VoidNamespaceSerializer` (the namespace of state declared outside windows).
    VoidNamespace,
    /// `TupleN` of the fields (`TupleSerializer`), 1 to 25 fields.
    Tuple(Vec<BuiltinType>),
    /// A SQL row of these field types (`RowDataSerializer`).
    RowData(Vec<LogicalType>),
    /// A SQL value of this type outside a row (`StringDataSerializer`, `DecimalDataSerializer`,
    /// `TimestampDataSerializer`, ...: what `InternalSerializers` makes for it).
    SqlField(LogicalType),
    /// `org.apache.flink.types.Row` of the fields (`RowSerializer`, with row kinds).
    Row(Vec<BuiltinType>),
    /// A POJO of class `class` and these fields, sorted by name as `PojoTypeInfo` sorts them
    /// (`PojoSerializer`).
    Pojo {
        /// The class.
        class: String,
        /// Name and type of each field.
        fields: Vec<(String, BuiltinType)>,
    },
}

/// What a struct column holds, as `--type OPERATOR/STATE=...` says (without it: a `TupleN`, or
/// what the field's recorded serializer class says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StructType {
    /// `TupleN` (fields `f0`, `f1`, ...).
    Tuple,
    /// SQL `RowData`.
    RowData,
    /// `org.apache.flink.types.Row` (fields `f0`, `f1`, ...).
    Row,
    /// A POJO of this class (fields by name).
    Pojo(String),
}

impl std::str::FromStr for StructType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "tuple" => Ok(StructType::Tuple),
            "rowdata" => Ok(StructType::RowData),
            "row" => Ok(StructType::Row),
            _ => match s.strip_prefix("pojo:") {
                Some(class) if is_class_name(class) => Ok(StructType::Pojo(class.to_owned())),
                Some(class) => Err(format!("{class:?} is not a Java class name (package.Class, nested classes with $)")),
                None => Err(format!("unknown struct type {s:?}: one of tuple, rowdata, row, pojo:CLASS")),
            },
        }
    }
}

/// A binary Java class name: dot-separated identifiers.
fn is_class_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c.is_alphabetic() || c == '_' || c == '$') && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        })
}

impl BuiltinType {
    /// The Java type a column of `t` holds, as `export` writes it (the first of several Java
    /// types an Arrow type could hold: `Utf8` is a `String`, `Binary` a `byte[]`).
    pub(crate) fn of_column(t: &DataType) -> Option<BuiltinType> {
        Some(BuiltinType::Simple(match t {
            DataType::Int64 => SimpleType::Long,
            DataType::Int32 => SimpleType::Int,
            DataType::Int16 => SimpleType::Short,
            DataType::Int8 => SimpleType::Byte,
            DataType::Boolean => SimpleType::Boolean,
            DataType::Float64 => SimpleType::Double,
            DataType::Float32 => SimpleType::Float,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => SimpleType::String,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => return Some(BuiltinType::Array(SimpleType::Byte)),
            _ => return None,
        }))
    }

    /// The snapshot in versioned form: `utf` class, `i32` version, payload.
    fn write(&self, out: &mut Vec<u8>) -> std::result::Result<(), String> {
        match self {
            BuiltinType::Simple(t) | BuiltinType::Array(t) => {
                let class = simple_snapshot_class(*t, matches!(self, BuiltinType::Array(_))).ok_or_else(|| format!("no snapshot class for {t:?}"))?;
                out.put_utf(&class)?;
                out.put_i32(SNAPSHOT_VERSION);
                Ok(())
            }
            BuiltinType::List(e) => composite(out, "ListSerializerSnapshot", &[e]),
            BuiltinType::Map(k, v) => composite(out, "MapSerializerSnapshot", &[k, v]),
            BuiltinType::VoidNamespace => {
                out.put_utf(VOID_NAMESPACE)?;
                out.put_i32(SNAPSHOT_VERSION);
                Ok(())
            }
            // `TupleSerializerSnapshot`: outer version 2, the tuple class as outer payload.
            BuiltinType::Tuple(fields) => {
                let nested: Vec<&BuiltinType> = fields.iter().collect();
                composite_with(out, TUPLE_SNAPSHOT, TUPLE_OUTER_VERSION, &format!("org.apache.flink.api.java.tuple.Tuple{}", fields.len()), &nested)
            }
            BuiltinType::RowData(types) => super::sql::write_row_data(out, types),
            BuiltinType::SqlField(t) => super::sql::write_field_serializer(out, t),
            // Outer version 3: row kinds, no flag (as 1.13 writes it; 1.14+ write 4 with a
            // `supportsRowKind` flag and read 3 as a row serializer with row kinds, compatible
            // as is: every release 1.13-2.3 restores it).
            BuiltinType::Row(fields) => {
                let nested: Vec<&BuiltinType> = fields.iter().collect();
                composite_of(out, ROW_SNAPSHOT, ROW_OUTER_VERSION, &nested)
            }
            BuiltinType::Pojo { class, fields } => write_pojo(out, class, fields),
        }
    }
}

/// `PojoSerializerSnapshot` version 2: the class, then `LinkedOptionalMap`s of the field
/// snapshots (key frame: declaring class and field name; value frame: the versioned snapshot),
/// of registered subclasses and of other subclasses (both empty). Every field is taken as
/// declared by `class` itself (a field a superclass declares names that class in Flink's).
fn write_pojo(out: &mut Vec<u8>, class: &str, fields: &[(String, BuiltinType)]) -> std::result::Result<(), String> {
    out.put_utf(POJO_SNAPSHOT)?;
    out.put_i32(POJO_VERSION);
    out.put_utf(class)?;
    out.put_i64(OPTIONAL_MAP_HEADER);
    out.put_i32(fields.len() as i32);
    for (name, t) in fields {
        out.put_utf(name)?;
        let mut key = Vec::new();
        key.put_utf(class)?;
        key.put_utf(name)?;
        out.put_bool(true);
        out.put_len_prefixed(&key)?;
        let mut value = Vec::new();
        t.write(&mut value)?;
        out.put_bool(true);
        out.put_len_prefixed(&value)?;
    }
    for _subclasses in 0..2 {
        out.put_i64(OPTIONAL_MAP_HEADER);
        out.put_i32(0);
    }
    Ok(())
}

/// The key serializer of a new keyed operator as its serialization proxy stores it (the
/// `TypeSerializerSnapshotSerializationProxy` form: proxy version, then the versioned snapshot),
/// with the serializer read back from those bytes.
pub(crate) fn key_serializer(key: &BuiltinType) -> Result<(crate::readers::serializers::TypeSerializer, Vec<u8>)> {
    let mut out = Vec::new();
    out.put_i32(PROXY_VERSION);
    key.write(&mut out).map_err(|e| Error::Invalid(format!("key serializer: {e}")))?;
    let ser = crate::readers::serializers::read_proxy_snapshot(&mut Cursor::new(&out))
        .map_err(|e| Error::Invalid(format!("the key serializer written does not read back: {e}")))?;
    Ok((ser, out))
}

/// A `CompositeTypeSerializerSnapshot` without outer payload: magic, outer version, then the
/// nested snapshots (`NestedSerializersSnapshotDelegate`: magic, version, count, each snapshot).
fn composite(out: &mut Vec<u8>, class: &str, nested: &[&BuiltinType]) -> std::result::Result<(), String> {
    composite_of(out, &format!("{BASE}{class}"), OUTER_VERSION, nested)
}

fn composite_of(out: &mut Vec<u8>, class: &str, outer_version: i32, nested: &[&BuiltinType]) -> std::result::Result<(), String> {
    composite_with(out, class, outer_version, "", nested)
}

/// [`composite_of`] with an outer payload of one `writeUTF` string (none when empty).
fn composite_with(out: &mut Vec<u8>, class: &str, outer_version: i32, payload: &str, nested: &[&BuiltinType]) -> std::result::Result<(), String> {
    out.put_utf(class)?;
    out.put_i32(SNAPSHOT_VERSION);
    out.put_i32(COMPOSITE_MAGIC as i32);
    out.put_i32(outer_version);
    if !payload.is_empty() {
        out.put_utf(payload)?;
    }
    out.put_i32(NESTED_MAGIC as i32);
    out.put_i32(NESTED_VERSION);
    out.put_i32(nested.len() as i32);
    for n in nested {
        n.write(out)?;
    }
    Ok(())
}

/// The registration Flink writes for keyed state `name` of `kind` whose values (list state: its
/// elements; map state: with user keys of `user_key`) are of `value`, in namespace
/// `VoidNamespace` (a state a job declares without windows).
pub(crate) fn registration(name: &str, kind: StateKind, value: BuiltinType, user_key: Option<BuiltinType>) -> Result<StateMetaInfo> {
    let (type_name, serializer) = match (kind, user_key) {
        (StateKind::Value, None) => ("VALUE", value),
        (StateKind::Reducing, None) => ("REDUCING", value),
        (StateKind::Aggregating, None) => ("AGGREGATING", value),
        (StateKind::List, None) => ("LIST", BuiltinType::List(Box::new(value))),
        (StateKind::Map, Some(k)) => ("MAP", BuiltinType::Map(Box::new(k), Box::new(value))),
        (StateKind::Timer, None) => return timer_registration(name, &value),
        (k, _) => return Err(Error::unsupported(format!("state {name:?}: new {} state cannot be registered from column types", k.as_str()), None)),
    };
    let io = |e: String| Error::Invalid(format!("state {name:?}: {e}"));
    let mut out = Vec::new();
    out.put_utf(name).map_err(io)?;
    out.put_i32(0); // BackendStateType.KEY_VALUE
    out.put_i32(1);
    out.put_utf("KEYED_STATE_TYPE").map_err(io)?;
    out.put_utf(type_name).map_err(io)?;
    // Flink's order (a HashMap's iteration order of the two keys): value, then namespace.
    out.put_i32(2);
    out.put_utf("VALUE_SERIALIZER").map_err(io)?;
    out.put_i32(PROXY_VERSION);
    serializer.write(&mut out).map_err(io)?;
    out.put_utf("NAMESPACE_SERIALIZER").map_err(io)?;
    out.put_i32(PROXY_VERSION);
    BuiltinType::VoidNamespace.write(&mut out).map_err(io)?;
    read_back(name, &out)
}

fn read_back(name: &str, raw: &[u8]) -> Result<StateMetaInfo> {
    read_state_meta_info(&mut Cursor::new(raw)).map_err(|e| Error::Invalid(format!("state {name:?}: the registration written does not read back: {e}")))
}

/// The registration of a timer queue (`_timer_state/…`, backend type `PRIORITY_QUEUE`, no
/// options) of timers keyed by `key` in `VoidNamespace` (a `KeyedProcessFunction`'s timers):
/// a `TimerSerializerSnapshot` of the key and namespace snapshots.
fn timer_registration(name: &str, key: &BuiltinType) -> Result<StateMetaInfo> {
    let io = |e: String| Error::Invalid(format!("state {name:?}: {e}"));
    let mut out = Vec::new();
    out.put_utf(name).map_err(io)?;
    out.put_i32(3); // BackendStateType.PRIORITY_QUEUE
    out.put_i32(0);
    out.put_i32(1);
    out.put_utf("VALUE_SERIALIZER").map_err(io)?;
    out.put_i32(PROXY_VERSION);
    composite_of(&mut out, TIMER_SNAPSHOT, TIMER_OUTER_VERSION, &[key, &BuiltinType::VoidNamespace]).map_err(io)?;
    read_back(name, &out)
}

/// The registration of operator state `name` (operator list, union or broadcast state) of
/// built-in types, as Flink writes it: backend type `OPERATOR` (`BROADCAST`), the option
/// `OPERATOR_STATE_DISTRIBUTION_MODE`, then `VALUE_SERIALIZER` (broadcast: then `KEY_SERIALIZER`,
/// the order of Flink's `HashMap`).
pub(crate) fn operator_registration(name: &str, kind: StateKind, value: BuiltinType, user_key: Option<BuiltinType>) -> Result<StateMetaInfo> {
    let (backend, mode) = match kind {
        StateKind::OperatorList => (1, "SPLIT_DISTRIBUTE"),
        StateKind::OperatorUnion => (1, "UNION"),
        StateKind::Broadcast => (2, "BROADCAST"),
        k => return Err(Error::Invalid(format!("state {name:?}: {} state is not operator state", k.as_str()))),
    };
    let io = |e: String| Error::Invalid(format!("state {name:?}: {e}"));
    let mut out = Vec::new();
    out.put_utf(name).map_err(io)?;
    out.put_i32(backend);
    out.put_i32(1);
    out.put_utf("OPERATOR_STATE_DISTRIBUTION_MODE").map_err(io)?;
    out.put_utf(mode).map_err(io)?;
    let serializers: Vec<(&str, BuiltinType)> = match (kind, user_key) {
        (StateKind::Broadcast, Some(k)) => vec![("VALUE_SERIALIZER", value), ("KEY_SERIALIZER", k)],
        (StateKind::Broadcast, None) => return Err(Error::Invalid(format!("state {name:?}: broadcast state needs a user key type"))),
        _ => vec![("VALUE_SERIALIZER", value)],
    };
    out.put_i32(serializers.len() as i32);
    for (role, t) in serializers {
        out.put_utf(role).map_err(io)?;
        out.put_i32(PROXY_VERSION);
        t.write(&mut out).map_err(io)?;
    }
    read_back(name, &out)
}

/// The built-in type of column `c` of `schema`; `Err` names the column and its type.
pub(crate) fn column_type(schema: &Schema, c: &str, hint: Option<&StructType>) -> Result<BuiltinType> {
    let f = schema.field_with_name(c).map_err(|_| Error::Invalid(format!("no column {c:?}")))?;
    builtin(c, f, hint)
}

/// The built-in type a field holds: a simple type, a list or map of built-in types, or a struct:
/// as the serializer class the export recorded in its field metadata says (`TupleSerializer`,
/// `RowDataSerializer`; a POJO or `Row` struct needs `--like`), else as `hint` says (`--type`),
/// else of fields `f0`…`fN` of built-in types (a Flink `TupleN`).
fn builtin(c: &str, f: &Field, hint: Option<&StructType>) -> Result<BuiltinType> {
    let unsupported = |why: String| {
        Error::unsupported(
            format!(
                "column {c:?} is {why}: a new state is registered from Int8/16/32/64, Float32/64, Boolean, Utf8 and Binary \
                 columns (Byte, Short, Integer, Long, Float, Double, Boolean, String, byte[]), lists and maps of them, structs of them \
                 with fields f0, f1, ... (TupleN) and, with --type OPERATOR/STATE=rowdata|row|pojo:CLASS, SQL rows, Rows and POJOs; \
                 for other types give --like OPERATOR/STATE"
            ),
            None,
        )
    };
    let serializer = f.metadata().get(crate::export::schema::META_SERIALIZER).map(String::as_str).unwrap_or_default();
    // A SQL value outside a row (a SQL operator's map of StringData keys, a DECIMAL or
    // TIMESTAMP value): as the recorded serializer says; DECIMAL and TIMESTAMP columns, which no
    // DataStream built-in type has, also as --type rowdata says.
    let table = ["StringDataSerializer", "DecimalDataSerializer", "TimestampDataSerializer"].iter().any(|x| serializer.contains(x));
    let sql_only = matches!(f.data_type(), DataType::Decimal128(..) | DataType::Timestamp(..)) && hint == Some(&StructType::RowData);
    if table || sql_only {
        return super::sql::field_type(c, f).map(BuiltinType::SqlField).map_err(|e| Error::unsupported(format!("{e}; for other types give --like OPERATOR/STATE"), None));
    }
    if let DataType::Struct(fields) = f.data_type() {
        // The serializer the export recorded decides (a tool kept the field metadata); --type
        // decides for structs without it (and names a POJO's class).
        let recorded = match serializer {
            "" => None,
            s if s.contains("RowDataSerializer") => Some(StructType::RowData),
            s if s.contains("TupleSerializer") => Some(StructType::Tuple),
            s if s.contains("RowSerializer") => Some(StructType::Row),
            s if s.contains("PojoSerializer") => match hint {
                Some(StructType::Pojo(class)) => Some(StructType::Pojo(class.clone())),
                _ => return Err(unsupported(format!("a POJO (serializer {s}), whose class the file does not hold: give --type OPERATOR/STATE=pojo:CLASS"))),
            },
            s => return Err(unsupported(format!("a struct of serializer {s}, whose serializer snapshot the file does not hold"))),
        };
        let fields_f = |what: &str| -> Result<Vec<&Field>> {
            let n = fields.len();
            // The trailing row kind of an exported Row is not a field.
            let own: Vec<&Field> = fields.iter().enumerate().filter(|(i, x)| !(*i + 1 == n && x.name() == crate::export::schema::ROW_KIND_FIELD && what == "Row")).map(|(_, x)| x.as_ref()).collect();
            if own.is_empty() || own.len() > MAX_TUPLE_ARITY && what != "Row" || own.iter().enumerate().any(|(i, x)| x.name() != &format!("f{i}")) {
                return Err(unsupported(format!("{} (not a {what}: fields must be f0, f1, ...{})", f.data_type(), if what == "Row" { "" } else { ", at most 25" })));
            }
            Ok(own)
        };
        match recorded.as_ref().or(hint) {
            Some(StructType::RowData) => {
                return super::sql::row_types(c, fields).map(BuiltinType::RowData).map_err(|e| Error::unsupported(format!("{e}; for other types give --like OPERATOR/STATE"), None));
            }
            Some(StructType::Row) => {
                let own = fields_f("Row")?;
                return Ok(BuiltinType::Row(own.iter().map(|x| builtin(&format!("{c}.{}", x.name()), x, None)).collect::<Result<_>>()?));
            }
            Some(StructType::Pojo(class)) => {
                if fields.is_empty() {
                    return Err(unsupported(format!("{} (a POJO of no fields)", f.data_type())));
                }
                let mut own: Vec<(String, BuiltinType)> =
                    fields.iter().map(|x| Ok((x.name().clone(), builtin(&format!("{c}.{}", x.name()), x, None)?))).collect::<Result<_>>()?;
                // PojoTypeInfo orders the fields by name.
                own.sort_by(|a, b| a.0.cmp(&b.0));
                return Ok(BuiltinType::Pojo { class: class.clone(), fields: own });
            }
            Some(StructType::Tuple) | None => {}
        }
        fields_f("TupleN")?;
        let nested = fields.iter().map(|x| builtin(&format!("{c}.{}", x.name()), x, hint)).collect::<Result<Vec<_>>>()?;
        return Ok(BuiltinType::Tuple(nested));
    }
    match f.data_type() {
        DataType::List(e) | DataType::LargeList(e) => return Ok(BuiltinType::List(Box::new(builtin(&format!("{c}.{}", e.name()), e, hint)?))),
        DataType::Map(entries, _) => {
            if let DataType::Struct(kv) = entries.data_type() {
                if kv.len() == 2 {
                    let k = builtin(&format!("{c}.{}", kv[0].name()), &kv[0], hint)?;
                    let v = builtin(&format!("{c}.{}", kv[1].name()), &kv[1], hint)?;
                    return Ok(BuiltinType::Map(Box::new(k), Box::new(v)));
                }
            }
        }
        _ => {}
    }
    BuiltinType::of_column(f.data_type()).ok_or_else(|| unsupported(f.data_type().to_string()))
}

/// The registration of a new state of `kind` from the types of its file's columns (`value`;
/// list state: a list column, its elements' type; map and broadcast state: `user_key` and
/// `value`; timers: `key`). Keyed state must be in `VoidNamespace` (a `namespace` column of
/// nulls). `Err` names the column whose type has no built-in serializer here.
/// The bytes of hex digits (either case), as `export` records registrations; `None` for
/// anything else.
fn unhex(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    b.chunks(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

/// The registration `export` recorded in a file's metadata (`flinksnap.registration`), named
/// `name`; `None` when the file has none (an export of an older flinksnap, a file written by
/// another tool). Its state type must be `kind`.
pub(crate) fn embedded_registration(schema: &Schema, name: &str, kind: StateKind) -> Result<Option<StateMetaInfo>> {
    let Some(text) = schema.metadata().get(crate::export::state::keys::REGISTRATION) else { return Ok(None) };
    let bytes = unhex(text).ok_or_else(|| Error::Invalid(format!("metadata {}: not hex", crate::export::state::keys::REGISTRATION)))?;
    let meta = read_state_meta_info(&mut Cursor::new(&bytes)).map_err(|e| Error::Invalid(format!("metadata {}: not a state registration: {e}", crate::export::state::keys::REGISTRATION)))?;
    if meta.kind() != Some(kind) {
        return Err(Error::Invalid(format!(
            "metadata {}: registers {:?} as {} state, the manifest says {}",
            crate::export::state::keys::REGISTRATION,
            meta.name,
            meta.kind().map_or("unknown", |k| k.as_str()),
            kind.as_str()
        )));
    }
    if meta.name == name {
        return Ok(Some(meta));
    }
    super::renamed(&meta, name).map(Some)
}

/// The key serializer `export` recorded in a keyed state's file (`flinksnap.key_serializer`).
pub(crate) fn embedded_key_serializer(schema: &Schema) -> Result<Option<(crate::readers::serializers::TypeSerializer, Vec<u8>)>> {
    let Some(text) = schema.metadata().get(crate::export::state::keys::KEY_SERIALIZER) else { return Ok(None) };
    let bytes = unhex(text).ok_or_else(|| Error::Invalid(format!("metadata {}: not hex", crate::export::state::keys::KEY_SERIALIZER)))?;
    let ser = crate::readers::serializers::read_proxy_snapshot(&mut Cursor::new(&bytes))
        .map_err(|e| Error::Invalid(format!("metadata {}: not a key serializer snapshot: {e}", crate::export::state::keys::KEY_SERIALIZER)))?;
    Ok(Some((ser, bytes)))
}

pub(crate) fn registration_from_columns(name: &str, kind: StateKind, schema: &Schema, hint: Option<&StructType>) -> Result<StateMetaInfo> {
    let column = |c: &str| schema.field_with_name(c).map_err(|_| Error::Invalid(format!("no column {c:?}")));
    if kind.is_keyed() {
        if let Ok(t) = column("namespace").map(|f| f.data_type().clone()) {
            if t != DataType::Null {
                return Err(Error::unsupported(
                    format!("column \"namespace\" is {t}: a new state is registered in VoidNamespace only (a namespace column of nulls); for windowed state give --like OPERATOR/STATE"),
                    None,
                ));
            }
        }
    }
    if kind == StateKind::Timer {
        return registration(name, kind, column_type(schema, "key", hint)?, None);
    }
    let value = column("value")?;
    let value = match (kind, value.data_type()) {
        (StateKind::List, DataType::List(f) | DataType::LargeList(f)) => builtin("value", f, hint)?,
        (StateKind::List, t) => return Err(Error::Invalid(format!("column \"value\" of list state is {t}, not a list"))),
        _ => builtin("value", value, hint)?,
    };
    let user_key = match kind {
        StateKind::Map | StateKind::Broadcast => Some(column_type(schema, "user_key", hint)?),
        _ => None,
    };
    if kind.is_keyed() {
        registration(name, kind, value, user_key)
    } else {
        operator_registration(name, kind, value, user_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::Fields;

    /// The registrations Flink wrote in a canonical savepoint (value, list and map states of
    /// built-in types), in the oldest and newest release: written again from their types,
    /// byte for byte.
    #[test]
    fn registrations_are_the_bytes_flink_writes() {
        let cases: [(&str, StateKind, BuiltinType, Option<BuiltinType>); 7] = [
            ("v-long", StateKind::Value, BuiltinType::of_column(&DataType::Int64).unwrap(), None),
            ("v-int", StateKind::Value, BuiltinType::of_column(&DataType::Int32).unwrap(), None),
            ("v-string", StateKind::Value, BuiltinType::of_column(&DataType::Utf8).unwrap(), None),
            ("v-double", StateKind::Value, BuiltinType::of_column(&DataType::Float64).unwrap(), None),
            ("v-bool", StateKind::Value, BuiltinType::of_column(&DataType::Boolean).unwrap(), None),
            ("v-bytes", StateKind::Value, BuiltinType::of_column(&DataType::Binary).unwrap(), None),
            ("list", StateKind::List, BuiltinType::of_column(&DataType::Int64).unwrap(), None),
        ];
        let map = ("map", StateKind::Map, BuiltinType::of_column(&DataType::Int64).unwrap(), BuiltinType::of_column(&DataType::Utf8));
        for version in ["1.13.6", "2.3.0"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("testdata/flink-{version}/heap-savepoint-canonical"));
            let sp = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("savepoint-")).unwrap();
            let snapshot = crate::snapshot::Snapshot::open(std::sync::Arc::new(crate::storage::LocalStorage), sp.to_str().unwrap()).unwrap();
            let states: Vec<StateMetaInfo> = crate::readers::states::snapshot_states(&snapshot, &Default::default()).unwrap().into_iter().flat_map(|(_, s)| s).map(|s| s.meta).collect();
            let mut checked = 0;
            for (name, kind, value, user_key) in cases.iter().cloned().chain([map.clone()]) {
                let flink = states.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{version}: {name}"));
                let ours = registration(name, kind, value, user_key).unwrap();
                assert_eq!(ours.raw, flink.raw, "{version}: {name}");
                checked += 1;
            }
            assert_eq!(checked, 8);
        }
    }

    /// Timer queues (keyed-long's, Long keys in VoidNamespace), a Tuple2 value and operator list,
    /// union and broadcast states of built-in types: the bytes Flink 1.13.6 and 2.3.0 wrote.
    #[test]
    fn timer_and_operator_registrations_are_the_bytes_flink_writes() {
        use crate::model::OperatorId;
        let long = || BuiltinType::of_column(&DataType::Int64).unwrap();
        let string = || BuiltinType::of_column(&DataType::Utf8).unwrap();
        let int = || BuiltinType::of_column(&DataType::Int32).unwrap();
        for version in ["1.13.6", "2.3.0"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("testdata/flink-{version}/heap-savepoint-canonical"));
            let sp = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("savepoint-")).unwrap();
            let snapshot = crate::snapshot::Snapshot::open(std::sync::Arc::new(crate::storage::LocalStorage), sp.to_str().unwrap()).unwrap();
            let states: Vec<crate::readers::states::StateInfo> = crate::readers::states::snapshot_states(&snapshot, &Default::default()).unwrap().into_iter().flat_map(|(_, s)| s).collect();
            let flink = |uid: &str, name: &str| states.iter().find(|s| s.operator_id == OperatorId::from_uid(uid) && s.name() == name).unwrap_or_else(|| panic!("{version}: {uid}/{name}")).meta.raw.clone();
            for timers in ["_timer_state/event_user-timers", "_timer_state/processing_user-timers"] {
                assert_eq!(registration(timers, StateKind::Timer, long(), None).unwrap().raw, flink("keyed-long", timers), "{version}: {timers}");
            }
            assert_eq!(operator_registration("op-list", StateKind::OperatorList, string(), None).unwrap().raw, flink("op-state", "op-list"), "{version}");
            // keyed-string's aggregating state: a Tuple2<Long, Long> accumulator.
            assert_eq!(registration("aggregating", StateKind::Aggregating, BuiltinType::Tuple(vec![long(), long()]), None).unwrap().raw, flink("keyed-string", "aggregating"), "{version}");
            assert_eq!(operator_registration("op-union", StateKind::OperatorUnion, long(), None).unwrap().raw, flink("op-state", "op-union"), "{version}");
            assert_eq!(operator_registration("rules", StateKind::Broadcast, int(), Some(string())).unwrap().raw, flink("broadcast", "rules"), "{version}");
            let (_, key) = key_serializer(&long()).unwrap();
            let keyed = crate::readers::source::KeyedSource::open(&snapshot, crate::model::SubtaskRef { operator: snapshot.metadata.operators.iter().position(|o| o.operator_id == OperatorId::from_uid("keyed-long")).unwrap(), subtask: 0 }, &Default::default()).unwrap().unwrap();
            assert_eq!(key, keyed.meta().key_serializer_raw, "{version}: key serializer");
        }
    }

    /// keyed-string's `v-pojo` (`flinksnap.fixtures.Pojo`: count, flag, id, name) from its
    /// exported columns with `--type …=pojo:flinksnap.fixtures.Pojo`: the registration Flink
    /// 1.13.6 and 2.3.0 wrote, byte for byte. Without the class it is refused, naming --type.
    #[test]
    fn pojo_registrations_are_the_bytes_flink_writes() {
        for version in ["1.13.6", "2.3.0"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("testdata/flink-{version}/heap-savepoint-canonical"));
            let sp = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).find(|p| p.join("_metadata").exists()).unwrap();
            let snapshot = crate::snapshot::Snapshot::open(std::sync::Arc::new(crate::storage::LocalStorage), sp.to_str().unwrap()).unwrap();
            let states: Vec<crate::readers::states::StateInfo> = crate::readers::states::snapshot_states(&snapshot, &Default::default()).unwrap().into_iter().flat_map(|(_, s)| s).collect();
            let flink = states.iter().find(|s| s.name() == "v-pojo").unwrap();
            let layout = crate::export::state::StateLayout::new(flink, None, &[]).unwrap();
            let pojo = StructType::Pojo("flinksnap.fixtures.Pojo".into());
            let ours = registration_from_columns("v-pojo", StateKind::Value, &layout.schema, Some(&pojo)).unwrap();
            assert_eq!(ours.raw, flink.meta.raw, "{version}");
            // Another tool's file: fields in any order, no metadata.
            let value = layout.schema.field_with_name("value").unwrap();
            let DataType::Struct(fs) = value.data_type() else { panic!() };
            let mut bare: Vec<Field> = fs.iter().map(|f| Field::new(f.name(), f.data_type().clone(), true)).collect();
            bare.reverse();
            let schema = Schema::new(vec![Field::new("value", DataType::Struct(bare.into()), true)]);
            assert_eq!(registration_from_columns("v-pojo", StateKind::Value, &schema, Some(&pojo)).unwrap().raw, flink.meta.raw, "{version}: bare");
            let e = registration_from_columns("v-pojo", StateKind::Value, &layout.schema, None).unwrap_err().to_string();
            assert!(e.contains("a POJO") && e.contains("pojo:CLASS"), "{e}");
        }
    }

    /// A `Row` of Long and String: the snapshot Flink 1.13.6's `RowSerializer` writes (outer
    /// version 3; `RowSnap.java`: `TypeSerializerSnapshot.writeVersionedSnapshot` of
    /// `new RowSerializer(LongSerializer, StringSerializer).snapshotConfiguration()`), which
    /// Flink 2.3.0 resolves as compatible as is with its own `RowSerializer` (checked with its
    /// jars); read back as a row serializer with row kinds.
    #[test]
    fn row_snapshots_are_the_bytes_flink_writes() {
        const FLINK_1_13_6: &str = "004f6f72672e6170616368652e666c696e6b2e6170692e6a6176612e747970657574696c732e72756e74696d652e526f7753657269616c697a657224526f7753657269616c697a6572536e617073686f7400000003000de70400000003001457fd000000010000000200506f72672e6170616368652e666c696e6b2e6170692e636f6d6d6f6e2e747970657574696c732e626173652e4c6f6e6753657269616c697a6572244c6f6e6753657269616c697a6572536e617073686f740000000300546f72672e6170616368652e666c696e6b2e6170692e636f6d6d6f6e2e747970657574696c732e626173652e537472696e6753657269616c697a657224537472696e6753657269616c697a6572536e617073686f7400000003";
        let fields = Fields::from(vec![Field::new("f0", DataType::Int64, true), Field::new("f1", DataType::Utf8, true), Field::new("rowKind", DataType::Utf8, false)]);
        let schema = Schema::new(vec![Field::new("value", DataType::Struct(fields), true)]);
        let t = column_type(&schema, "value", Some(&StructType::Row)).unwrap();
        let mut out = Vec::new();
        t.write(&mut out).unwrap();
        assert_eq!(out, unhex(FLINK_1_13_6).unwrap());
        let (ser, _) = key_serializer(&t).unwrap();
        assert!(matches!(ser.kind(), crate::readers::serializers::SerializerKind::Row { supports_row_kind: true, fields } if fields.len() == 2), "{ser:?}");
        // Fields not named f0, f1, ...: refused.
        let other = Schema::new(vec![Field::new("value", DataType::Struct(vec![Field::new("a", DataType::Int64, true)].into()), true)]);
        let e = column_type(&other, "value", Some(&StructType::Row)).unwrap_err().to_string();
        assert!(e.contains("not a Row"), "{e}");
        assert!("pojo:".parse::<StructType>().is_err() && "pojo:a..b".parse::<StructType>().is_err() && "x".parse::<StructType>().is_err());
        assert_eq!("pojo:com.example.Order$Line".parse::<StructType>(), Ok(StructType::Pojo("com.example.Order$Line".into())));
    }

    #[test]
    fn columns_without_a_builtin_serializer_are_named() {
        let schema = Schema::new(vec![arrow_schema::Field::new("value", DataType::Date32, true)]);
        let e = registration_from_columns("s", StateKind::Value, &schema, None).unwrap_err().to_string();
        assert!(e.contains("column \"value\" is Date32") && e.contains("--like"), "{e}");
        // A struct the export took from a POJO serializer: named, with --like.
        let pojo = Field::new("value", DataType::Struct(vec![Field::new("name", DataType::Utf8, true)].into()), true)
            .with_metadata([(crate::export::schema::META_SERIALIZER.to_owned(), "org.apache.flink.api.java.typeutils.runtime.PojoSerializerSnapshot".to_owned())].into());
        let e = registration_from_columns("s", StateKind::Value, &Schema::new(vec![pojo]), None).unwrap_err().to_string();
        assert!(e.contains("column \"value\" is a POJO") && e.contains("--like") && e.contains("pojo:CLASS"), "{e}");
        // A struct of other field names (no metadata): not a tuple.
        let other = Field::new("value", DataType::Struct(vec![Field::new("a", DataType::Int64, true)].into()), true);
        let e = registration_from_columns("s", StateKind::Value, &Schema::new(vec![other]), None).unwrap_err().to_string();
        assert!(e.contains("not a TupleN") && e.contains("--like"), "{e}");
    }
}

