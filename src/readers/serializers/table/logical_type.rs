//! Flink SQL's logical types (`org.apache.flink.table.types.logical.*`) as the table runtime's
//! serializer snapshots store them: Java-serialized `LogicalType` objects (and `DataType`s,
//! whose logical type is what matters for the bytes). Spec: `formats/sql-serializers.md`
//! § "Logical types".
//!
//! The object graph comes from the one Java-serialization reader
//! ([`crate::java_serialization`]); this module only interprets it, by the type root every
//! `LogicalType` carries (`typeRoot`, a `LogicalTypeRoot` constant) and the fields of its class.

use crate::java_serialization::{Annotation, JavaGraph, JavaNode, JavaValue};

/// Deepest nesting of logical types accepted (Flink has no limit; real types nest a few levels).
pub const MAX_TYPE_DEPTH: usize = 64;

/// A logical type: its kind and whether it admits `NULL`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogicalType {
    /// `LogicalType.isNullable()`.
    pub nullable: bool,
    /// What the type is.
    pub kind: TypeKind,
}

/// A field of a `ROW` type or an attribute of a structured type.
#[derive(Debug, Clone, PartialEq)]
pub struct RowField {
    /// The field name.
    pub name: String,
    /// Its type.
    pub ty: LogicalType,
}

/// Whether a timestamp type is a time attribute (the planner's `TimestampKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampKind {
    /// An ordinary timestamp.
    Regular,
    /// An event-time attribute (`*ROWTIME*`).
    Rowtime,
    /// A processing-time attribute (`*PROCTIME*`).
    Proctime,
}

/// The kinds of logical types, one per `LogicalTypeRoot` (1.15–2.3) with its parameters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TypeKind {
    /// `CHAR(n)`.
    Char(u32),
    /// `VARCHAR(n)` (`STRING` is `VARCHAR(2147483647)`).
    VarChar(u32),
    /// `BOOLEAN`.
    Boolean,
    /// `BINARY(n)`.
    Binary(u32),
    /// `VARBINARY(n)` (`BYTES` is `VARBINARY(2147483647)`).
    VarBinary(u32),
    /// `DECIMAL(p, s)`.
    Decimal {
        /// Precision, 1..=38.
        precision: u32,
        /// Scale, 0..=precision.
        scale: u32,
    },
    /// `TINYINT`.
    TinyInt,
    /// `SMALLINT`.
    SmallInt,
    /// `INT`.
    Integer,
    /// `BIGINT`.
    BigInt,
    /// `FLOAT`.
    Float,
    /// `DOUBLE`.
    Double,
    /// `DATE`.
    Date,
    /// `TIME(p)`.
    Time(u32),
    /// `TIMESTAMP(p)` (without time zone).
    Timestamp {
        /// Fractional-second precision, 0..=9.
        precision: u32,
        /// Time attribute kind.
        kind: TimestampKind,
    },
    /// `TIMESTAMP_LTZ(p)` (`TIMESTAMP(p) WITH LOCAL TIME ZONE`).
    TimestampLtz {
        /// Fractional-second precision, 0..=9.
        precision: u32,
        /// Time attribute kind.
        kind: TimestampKind,
    },
    /// `TIMESTAMP(p) WITH TIME ZONE` (no runtime representation in Flink).
    TimestampTz(u32),
    /// `INTERVAL YEAR TO MONTH` and its resolutions: a number of months.
    IntervalYearMonth {
        /// The `YearMonthResolution` constant (`YEAR`, `YEAR_TO_MONTH`, `MONTH`).
        resolution: String,
        /// Year precision.
        year_precision: u32,
    },
    /// `INTERVAL DAY TO SECOND` and its resolutions: a number of milliseconds.
    IntervalDayTime {
        /// The `DayTimeResolution` constant (`DAY`, `DAY_TO_SECOND`, ...).
        resolution: String,
        /// Day precision.
        day_precision: u32,
        /// Fractional-second precision.
        fractional_precision: u32,
    },
    /// `ARRAY<t>`.
    Array(Box<LogicalType>),
    /// `MULTISET<t>`: a map from element to its count.
    Multiset(Box<LogicalType>),
    /// `MAP<k, v>`.
    Map(Box<LogicalType>, Box<LogicalType>),
    /// `ROW<...>`.
    Row(Vec<RowField>),
    /// A structured type (a user class or an inline `STRUCTURED`): stored as a row of its
    /// attributes.
    Structured {
        /// The implementation class or the registered name, when stored.
        name: Option<String>,
        /// Attributes, in declaration order.
        attributes: Vec<RowField>,
    },
    /// A distinct type: stored as its source type.
    Distinct {
        /// The registered name.
        name: Option<String>,
        /// The source type.
        source: Box<LogicalType>,
    },
    /// `NULL`: the type of an untyped `NULL` literal.
    Null,
    /// `RAW('class', ...)`: values the type's serializer wrote.
    Raw {
        /// The class of the values.
        class: String,
        /// The class of the serializer object the type stores (`RawType`), or of the
        /// `TypeInformation` (`TypeInformationRawType`).
        serializer_class: Option<String>,
        /// The serializer object's simple type, when it is one of Flink's base serializers
        /// (then nested raw values decode without the snapshot).
        serializer: Option<crate::readers::serializers::SimpleType>,
    },
    /// `SYMBOL` (planner-internal enum constants).
    Symbol,
    /// An unresolved user-defined type (never in a runtime snapshot).
    Unresolved,
    /// `DESCRIPTOR` (2.2+: column lists of process table functions).
    Descriptor,
    /// `VARIANT` (2.1+): semi-structured data in Flink's variant binary format.
    Variant,
    /// `BITMAP` (2.3+): a roaring bitmap.
    Bitmap,
}

impl LogicalType {
    fn of(nullable: bool, kind: TypeKind) -> Self {
        LogicalType { nullable, kind }
    }

    /// The type a distinct type stores its values as; every other type itself.
    pub fn storage(&self) -> &LogicalType {
        match &self.kind {
            TypeKind::Distinct { source, .. } => source.storage(),
            _ => self,
        }
    }

    /// The fields of a `ROW` or structured type (empty for every other type).
    pub fn fields(&self) -> &[RowField] {
        match &self.storage().kind {
            TypeKind::Row(f) => f,
            TypeKind::Structured { attributes, .. } => attributes,
            _ => &[],
        }
    }

    /// `BinaryRowData.isInFixedLengthPart`: whether a row stores the value in its 8-byte slot
    /// (otherwise the slot holds an offset and a length into the variable part, or, for strings
    /// and bytes of at most 7 bytes, the bytes themselves).
    pub fn fixed_in_row(&self) -> bool {
        match &self.storage().kind {
            TypeKind::Boolean
            | TypeKind::TinyInt
            | TypeKind::SmallInt
            | TypeKind::Integer
            | TypeKind::Date
            | TypeKind::Time(_)
            | TypeKind::IntervalYearMonth { .. }
            | TypeKind::BigInt
            | TypeKind::IntervalDayTime { .. }
            | TypeKind::Float
            | TypeKind::Double => true,
            TypeKind::Decimal { precision, .. } => decimal_is_compact(*precision),
            TypeKind::Timestamp { precision, .. } | TypeKind::TimestampLtz { precision, .. } => timestamp_is_compact(*precision),
            _ => false,
        }
    }

    /// `BinaryArrayData.calculateFixLengthPartSize`: the bytes one element takes in an array's
    /// fixed part. `None` for types an array cannot hold (`NULL`, `SYMBOL`, ...).
    pub fn array_element_size(&self) -> Option<usize> {
        Some(match &self.storage().kind {
            TypeKind::Boolean | TypeKind::TinyInt => 1,
            TypeKind::SmallInt => 2,
            TypeKind::Integer | TypeKind::Float | TypeKind::Date | TypeKind::Time(_) | TypeKind::IntervalYearMonth { .. } => 4,
            TypeKind::Char(_)
            | TypeKind::VarChar(_)
            | TypeKind::Binary(_)
            | TypeKind::VarBinary(_)
            | TypeKind::Decimal { .. }
            | TypeKind::BigInt
            | TypeKind::Double
            | TypeKind::Timestamp { .. }
            | TypeKind::TimestampLtz { .. }
            | TypeKind::IntervalDayTime { .. }
            | TypeKind::Array(_)
            | TypeKind::Multiset(_)
            | TypeKind::Map(..)
            | TypeKind::Row(_)
            | TypeKind::Structured { .. }
            | TypeKind::Raw { .. }
            | TypeKind::Variant
            | TypeKind::Bitmap => 8,
            _ => return None,
        })
    }

    /// The type in Flink's SQL syntax, as `LogicalType.asSummaryString()` prints it
    /// (`DECIMAL(10, 2)`, `ROW<`a` INT NOT NULL, `b` STRING>`, `TIMESTAMP(3) *ROWTIME*`).
    pub fn summary(&self) -> String {
        let nn = if self.nullable { "" } else { " NOT NULL" };
        let s = match &self.kind {
            TypeKind::Char(n) => format!("CHAR({n})"),
            TypeKind::VarChar(n) if *n == i32::MAX as u32 => "STRING".into(),
            TypeKind::VarChar(n) => format!("VARCHAR({n})"),
            TypeKind::Boolean => "BOOLEAN".into(),
            TypeKind::Binary(n) => format!("BINARY({n})"),
            TypeKind::VarBinary(n) if *n == i32::MAX as u32 => "BYTES".into(),
            TypeKind::VarBinary(n) => format!("VARBINARY({n})"),
            TypeKind::Decimal { precision, scale } => format!("DECIMAL({precision}, {scale})"),
            TypeKind::TinyInt => "TINYINT".into(),
            TypeKind::SmallInt => "SMALLINT".into(),
            TypeKind::Integer => "INT".into(),
            TypeKind::BigInt => "BIGINT".into(),
            TypeKind::Float => "FLOAT".into(),
            TypeKind::Double => "DOUBLE".into(),
            TypeKind::Date => "DATE".into(),
            TypeKind::Time(p) => format!("TIME({p})"),
            TypeKind::Timestamp { precision, kind } => format!("TIMESTAMP({precision}){}", attr(*kind)),
            TypeKind::TimestampLtz { precision, kind } => format!("TIMESTAMP_LTZ({precision}){}", attr(*kind)),
            TypeKind::TimestampTz(p) => format!("TIMESTAMP({p}) WITH TIME ZONE"),
            TypeKind::IntervalYearMonth { resolution, .. } => format!("INTERVAL {}", resolution.replace('_', " ")),
            TypeKind::IntervalDayTime { resolution, .. } => format!("INTERVAL {}", resolution.replace('_', " ")),
            TypeKind::Array(e) => format!("ARRAY<{}>", e.summary()),
            TypeKind::Multiset(e) => format!("MULTISET<{}>", e.summary()),
            TypeKind::Map(k, v) => format!("MAP<{}, {}>", k.summary(), v.summary()),
            TypeKind::Row(fields) => format!("ROW<{}>", fields_summary(fields)),
            TypeKind::Structured { name, attributes } => match name {
                Some(n) => n.clone(),
                None => format!("STRUCTURED<{}>", fields_summary(attributes)),
            },
            TypeKind::Distinct { name, source } => name.clone().unwrap_or_else(|| source.summary()),
            TypeKind::Null => return "NULL".into(),
            TypeKind::Raw { class, .. } => format!("RAW('{class}', ...)"),
            TypeKind::Symbol => "SYMBOL".into(),
            TypeKind::Unresolved => "UNRESOLVED".into(),
            TypeKind::Descriptor => "DESCRIPTOR".into(),
            TypeKind::Variant => "VARIANT".into(),
            TypeKind::Bitmap => "BITMAP".into(),
        };
        format!("{s}{nn}")
    }
}

fn attr(k: TimestampKind) -> &'static str {
    match k {
        TimestampKind::Regular => "",
        TimestampKind::Rowtime => " *ROWTIME*",
        TimestampKind::Proctime => " *PROCTIME*",
    }
}

fn fields_summary(fields: &[RowField]) -> String {
    fields.iter().map(|f| format!("`{}` {}", f.name, f.ty.summary())).collect::<Vec<_>>().join(", ")
}

/// `DecimalData.isCompact`: precision ≤ 18 is an unscaled `long`.
pub fn decimal_is_compact(precision: u32) -> bool {
    precision <= 18
}

/// `TimestampData.isCompact`: precision ≤ 3 is epoch milliseconds only.
pub fn timestamp_is_compact(precision: u32) -> bool {
    precision <= 3
}

/// Reads a `LogicalType` object of a Java serialization graph. The error says what is missing.
pub fn from_java(g: &JavaGraph, v: &JavaValue) -> Result<LogicalType, String> {
    read(g, v, 0)
}

/// Reads the logical type of a `DataType` object (`AtomicDataType`, `FieldsDataType`,
/// `CollectionDataType`, `KeyValueDataType`: each holds its `logicalType`), and the conversion
/// class it names.
pub fn from_java_data_type(g: &JavaGraph, v: &JavaValue) -> Result<(LogicalType, Option<String>), String> {
    let lt = g.field(v, "logicalType").ok_or_else(|| format!("{} has no logicalType", class(g, v)))?;
    let conversion = g.field(v, "conversionClass").and_then(|c| match g.node(c) {
        Some(JavaNode::Class(name)) => Some(name.clone()),
        _ => None,
    });
    Ok((read(g, lt, 0)?, conversion))
}

fn class(g: &JavaGraph, v: &JavaValue) -> String {
    g.class_of(v).unwrap_or("a non-object").to_owned()
}

fn int(g: &JavaGraph, v: &JavaValue, name: &str) -> Result<u32, String> {
    match g.field(v, name) {
        Some(JavaValue::Int(i)) if *i >= 0 => Ok(*i as u32),
        Some(other) => Err(format!("{}.{name} is {other:?}, not a non-negative int", class(g, v))),
        None => Err(format!("{} has no field {name}", class(g, v))),
    }
}

fn constant<'g>(g: &'g JavaGraph, v: &JavaValue, name: &str) -> Result<&'g str, String> {
    g.field(v, name).and_then(|c| g.text(c)).ok_or_else(|| format!("{} has no enum field {name}", class(g, v)))
}

fn child(g: &JavaGraph, v: &JavaValue, name: &str, depth: usize) -> Result<Box<LogicalType>, String> {
    let c = g.field(v, name).ok_or_else(|| format!("{} has no field {name}", class(g, v)))?;
    Ok(Box::new(read(g, c, depth + 1)?))
}

fn read(g: &JavaGraph, v: &JavaValue, depth: usize) -> Result<LogicalType, String> {
    if depth > MAX_TYPE_DEPTH {
        return Err(format!("logical types nested deeper than {MAX_TYPE_DEPTH} levels"));
    }
    let root = constant(g, v, "typeRoot")?;
    let nullable = match g.field(v, "isNullable") {
        Some(JavaValue::Bool(b)) => *b,
        _ => return Err(format!("{} has no isNullable", class(g, v))),
    };
    let kind = match root {
        "CHAR" => TypeKind::Char(int(g, v, "length")?),
        "VARCHAR" => TypeKind::VarChar(int(g, v, "length")?),
        "BOOLEAN" => TypeKind::Boolean,
        "BINARY" => TypeKind::Binary(int(g, v, "length")?),
        "VARBINARY" => TypeKind::VarBinary(int(g, v, "length")?),
        "DECIMAL" => TypeKind::Decimal { precision: int(g, v, "precision")?, scale: int(g, v, "scale")? },
        "TINYINT" => TypeKind::TinyInt,
        "SMALLINT" => TypeKind::SmallInt,
        "INTEGER" => TypeKind::Integer,
        "BIGINT" => TypeKind::BigInt,
        "FLOAT" => TypeKind::Float,
        "DOUBLE" => TypeKind::Double,
        "DATE" => TypeKind::Date,
        "TIME_WITHOUT_TIME_ZONE" => TypeKind::Time(int(g, v, "precision")?),
        "TIMESTAMP_WITHOUT_TIME_ZONE" => TypeKind::Timestamp { precision: int(g, v, "precision")?, kind: timestamp_kind(g, v)? },
        "TIMESTAMP_WITH_LOCAL_TIME_ZONE" => {
            TypeKind::TimestampLtz { precision: int(g, v, "precision")?, kind: timestamp_kind(g, v)? }
        }
        "TIMESTAMP_WITH_TIME_ZONE" => TypeKind::TimestampTz(int(g, v, "precision")?),
        "INTERVAL_YEAR_MONTH" => TypeKind::IntervalYearMonth {
            resolution: constant(g, v, "resolution")?.to_owned(),
            year_precision: int(g, v, "yearPrecision")?,
        },
        "INTERVAL_DAY_TIME" => TypeKind::IntervalDayTime {
            resolution: constant(g, v, "resolution")?.to_owned(),
            day_precision: int(g, v, "dayPrecision")?,
            fractional_precision: int(g, v, "fractionalPrecision")?,
        },
        "ARRAY" => TypeKind::Array(child(g, v, "elementType", depth)?),
        "MULTISET" => TypeKind::Multiset(child(g, v, "elementType", depth)?),
        "MAP" => TypeKind::Map(child(g, v, "keyType", depth)?, child(g, v, "valueType", depth)?),
        "ROW" => TypeKind::Row(fields(g, v, "fields", "type", depth)?),
        "STRUCTURED_TYPE" => TypeKind::Structured {
            name: structured_name(g, v),
            attributes: fields(g, v, "attributes", "type", depth)?,
        },
        "DISTINCT_TYPE" => TypeKind::Distinct { name: identifier(g, v), source: child(g, v, "sourceType", depth)? },
        "NULL" => TypeKind::Null,
        "RAW" => raw(g, v),
        "SYMBOL" => TypeKind::Symbol,
        "UNRESOLVED" => TypeKind::Unresolved,
        "DESCRIPTOR" => TypeKind::Descriptor,
        "VARIANT" => TypeKind::Variant,
        "BITMAP" => TypeKind::Bitmap,
        other => return Err(format!("unknown logical type root {other} ({})", class(g, v))),
    };
    Ok(LogicalType::of(nullable, kind))
}

fn timestamp_kind(g: &JavaGraph, v: &JavaValue) -> Result<TimestampKind, String> {
    Ok(match constant(g, v, "kind")? {
        "ROWTIME" => TimestampKind::Rowtime,
        "PROCTIME" => TimestampKind::Proctime,
        _ => TimestampKind::Regular,
    })
}

/// `RowType.fields` (`RowField`s) or `StructuredType.attributes` (`StructuredAttribute`s): a
/// list of objects with a `name` and a type field.
fn fields(g: &JavaGraph, v: &JavaValue, list: &str, type_field: &str, depth: usize) -> Result<Vec<RowField>, String> {
    let l = g.field(v, list).ok_or_else(|| format!("{} has no field {list}", class(g, v)))?;
    let items = list_items(g, l).ok_or_else(|| format!("{}.{list} is not a list ({})", class(g, v), class(g, l)))?;
    items
        .into_iter()
        .map(|f| {
            let name = g.field(f, "name").and_then(|n| g.text(n)).ok_or_else(|| format!("{} has no name", class(g, f)))?;
            Ok(RowField { name: name.to_owned(), ty: *child(g, f, type_field, depth)? })
        })
        .collect()
}

fn structured_name(g: &JavaGraph, v: &JavaValue) -> Option<String> {
    if let Some(c) = g.field(v, "implementationClass") {
        if let Some(JavaNode::Class(name)) = g.node(c) {
            return Some(name.clone());
        }
    }
    // 2.1+ stores the class name as text
    if let Some(n) = g.field(v, "className").and_then(|n| g.text(n)) {
        return Some(n.to_owned());
    }
    identifier(g, v)
}

/// `ObjectIdentifier` text of a user-defined type: `catalog.database.object`.
fn identifier(g: &JavaGraph, v: &JavaValue) -> Option<String> {
    let id = g.field(v, "objectIdentifier")?;
    let parts: Vec<&str> =
        ["catalogName", "databaseName", "objectName"].iter().filter_map(|p| g.field(id, p).and_then(|x| g.text(x))).collect();
    (!parts.is_empty()).then(|| parts.join("."))
}

fn raw(g: &JavaGraph, v: &JavaValue) -> TypeKind {
    let class_name = |x: Option<&JavaValue>| match x.and_then(|c| g.node(c)) {
        Some(JavaNode::Class(name)) => Some(name.clone()),
        _ => None,
    };
    // RawType: clazz + serializer; TypeInformationRawType: typeInfo
    let class = class_name(g.field(v, "clazz"))
        .or_else(|| g.field(v, "typeInfo").and_then(|t| class_name(g.field(t, "typeClass").or_else(|| g.field(t, "clazz")))))
        .unwrap_or_else(|| "java.lang.Object".into());
    let ser = g.field(v, "serializer").or_else(|| g.field(v, "typeInfo"));
    let serializer_class = ser.and_then(|s| g.class_of(s)).map(str::to_owned);
    let serializer = serializer_class.as_deref().and_then(super::java_objects::simple_serializer);
    TypeKind::Raw { class, serializer_class, serializer }
}

/// The elements of a serialized JDK list: `ArrayList` and `LinkedList` (their annotation),
/// `Arrays$ArrayList` (`a`), the `Collections` wrappers (`c` / `list`), singleton and empty
/// lists. `None` for anything else.
pub fn list_items<'g>(g: &'g JavaGraph, v: &'g JavaValue) -> Option<Vec<&'g JavaValue>> {
    list_items_at(g, v, 0)
}

fn list_items_at<'g>(g: &'g JavaGraph, v: &'g JavaValue, depth: usize) -> Option<Vec<&'g JavaValue>> {
    if depth > 8 {
        return None;
    }
    let JavaNode::Object { class, data } = g.node(v)? else {
        return match g.node(v)? {
            JavaNode::Array { items, .. } => Some(items.iter().collect()),
            _ => None,
        };
    };
    match class.as_str() {
        "java.util.ArrayList" | "java.util.LinkedList" | "java.util.Vector" => Some(
            data.iter()
                .flat_map(|c| c.annotation.iter())
                .filter_map(|a| match a {
                    Annotation::Value(x) => Some(x),
                    Annotation::Block(_) => None,
                })
                .collect(),
        ),
        "java.util.Arrays$ArrayList" => list_items_at(g, g.field(v, "a")?, depth + 1),
        "java.util.Collections$EmptyList" => Some(Vec::new()),
        "java.util.Collections$SingletonList" => Some(vec![g.field(v, "element")?]),
        c if c.starts_with("java.util.Collections$Unmodifiable") || c.starts_with("java.util.Collections$Synchronized") => {
            list_items_at(g, g.field(v, "list").or_else(|| g.field(v, "c"))?, depth + 1)
        }
        c if c.starts_with("java.util.ImmutableCollections$List") => {
            // List.of(...): ListN holds `elements`, List12 `e0`/`e1`; both are written through
            // CollSer (`array` in its annotation) by writeReplace.
            if let Some(e) = g.field(v, "elements") {
                return list_items_at(g, e, depth + 1);
            }
            Some(["e0", "e1"].iter().filter_map(|f| g.field(v, f)).filter(|x| !matches!(x, JavaValue::Null)).collect())
        }
        "java.util.CollSer" => {
            // ImmutableCollections serialization proxy: the elements follow in its annotation
            Some(
                data.iter()
                    .flat_map(|c| c.annotation.iter())
                    .filter_map(|a| match a {
                        Annotation::Value(x) => Some(x),
                        Annotation::Block(_) => None,
                    })
                    .collect(),
            )
        }
        _ => None,
    }
}
