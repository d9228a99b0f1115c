//! Avro values as Flink's `AvroSerializer` writes them: the writer schema from the snapshot,
//! walked with Flink's own `DataOutputEncoder` layout (fixed-width big-endian numbers, `i32`
//! lengths, enum and union indexes, arrays and maps in varint-counted blocks ending with `0x00`),
//! which is not Avro's binary encoding.

use std::collections::HashMap;

use serde_json::Value as Json;

use crate::model::numbers::widen;
use super::MAX_DEPTH;
use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind};
use crate::model::value::Value;

type R<T> = Result<T, DecodeError>;

/// Deepest nesting of schema JSON accepted.
const MAX_SCHEMA_DEPTH: usize = 128;

/// A parsed Avro writer schema.
#[derive(Debug, Clone, PartialEq)]
pub struct AvroSchema {
    nodes: Vec<Node>,
    root: usize,
}

/// One schema node; named types are referenced by index, so recursive schemas are finite.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Record { name: String, fields: Vec<(String, usize)> },
    Enum { name: String, symbols: Vec<String> },
    Array(usize),
    Map(usize),
    Union(Vec<usize>),
    Fixed { name: String, size: usize },
    /// A named type whose definition is being parsed.
    Pending,
}

struct Parser {
    nodes: Vec<Node>,
    names: HashMap<String, usize>,
}

fn primitive(name: &str) -> Option<Node> {
    Some(match name {
        "null" => Node::Null,
        "boolean" => Node::Boolean,
        "int" => Node::Int,
        "long" => Node::Long,
        "float" => Node::Float,
        "double" => Node::Double,
        "bytes" => Node::Bytes,
        "string" => Node::String,
        _ => return None,
    })
}

impl Parser {
    fn push(&mut self, n: Node) -> usize {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    fn full_name(name: &str, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if !ns.is_empty() && !name.contains('.') => format!("{ns}.{name}"),
            _ => name.to_owned(),
        }
    }

    /// Registers a named type; its node is filled in by the caller.
    fn declare(&mut self, obj: &serde_json::Map<String, Json>, enclosing_ns: &str) -> Result<(usize, String, String), String> {
        let name = obj.get("name").and_then(Json::as_str).ok_or("named type without a name")?;
        let ns = obj.get("namespace").and_then(Json::as_str).unwrap_or(enclosing_ns);
        let full = Self::full_name(name, Some(ns));
        let own_ns = full.rsplit_once('.').map(|(ns, _)| ns.to_owned()).unwrap_or_default();
        let idx = self.push(Node::Pending);
        self.names.insert(full.clone(), idx);
        Ok((idx, full, own_ns))
    }

    fn parse(&mut self, j: &Json, ns: &str, depth: usize) -> Result<usize, String> {
        if depth > MAX_SCHEMA_DEPTH {
            return Err(format!("schema nested deeper than {MAX_SCHEMA_DEPTH} levels"));
        }
        match j {
            Json::String(s) => self.reference(s, ns),
            Json::Array(branches) => {
                let mut idx = Vec::with_capacity(branches.len());
                for b in branches {
                    idx.push(self.parse(b, ns, depth + 1)?);
                }
                Ok(self.push(Node::Union(idx)))
            }
            Json::Object(obj) => {
                let ty = obj.get("type").ok_or("schema object without a type")?;
                let Json::String(ty) = ty else {
                    // {"type": {...}} or {"type": [...]}: a wrapped schema.
                    return self.parse(ty, ns, depth + 1);
                };
                match ty.as_str() {
                    "record" | "error" => {
                        let (idx, full, own_ns) = self.declare(obj, ns)?;
                        let fields = obj.get("fields").and_then(Json::as_array).ok_or("record without fields")?;
                        let mut out = Vec::with_capacity(fields.len());
                        for f in fields {
                            let name = f.get("name").and_then(Json::as_str).ok_or("record field without a name")?;
                            let fty = f.get("type").ok_or("record field without a type")?;
                            out.push((name.to_owned(), self.parse(fty, &own_ns, depth + 1)?));
                        }
                        self.nodes[idx] = Node::Record { name: full, fields: out };
                        Ok(idx)
                    }
                    "enum" => {
                        let (idx, full, _) = self.declare(obj, ns)?;
                        let symbols = obj
                            .get("symbols")
                            .and_then(Json::as_array)
                            .ok_or("enum without symbols")?
                            .iter()
                            .map(|s| s.as_str().map(str::to_owned).ok_or("enum symbol that is not a string"))
                            .collect::<Result<Vec<_>, _>>()?;
                        self.nodes[idx] = Node::Enum { name: full, symbols };
                        Ok(idx)
                    }
                    "fixed" => {
                        let (idx, full, _) = self.declare(obj, ns)?;
                        let size = obj.get("size").and_then(Json::as_u64).ok_or("fixed without a size")?;
                        let size = usize::try_from(size).map_err(|_| "fixed size too large")?;
                        self.nodes[idx] = Node::Fixed { name: full, size };
                        Ok(idx)
                    }
                    "array" => {
                        let items = obj.get("items").ok_or("array without items")?;
                        let i = self.parse(items, ns, depth + 1)?;
                        Ok(self.push(Node::Array(i)))
                    }
                    "map" => {
                        let values = obj.get("values").ok_or("map without values")?;
                        let v = self.parse(values, ns, depth + 1)?;
                        Ok(self.push(Node::Map(v)))
                    }
                    // A primitive with attributes (logical types keep their base encoding), or a
                    // reference to a named type.
                    other => self.reference(other, ns),
                }
            }
            other => Err(format!("unexpected schema element {other}")),
        }
    }

    fn reference(&mut self, name: &str, ns: &str) -> Result<usize, String> {
        if let Some(p) = primitive(name) {
            return Ok(self.push(p));
        }
        let full = Self::full_name(name, Some(ns));
        self.names
            .get(&full)
            .or_else(|| self.names.get(name))
            .copied()
            .ok_or_else(|| format!("unknown avro type {name:?}"))
    }
}

impl AvroSchema {
    /// Parses an Avro schema (JSON). Errors are messages, kept by the serializer.
    pub fn parse(json: &str) -> Result<AvroSchema, String> {
        let j: Json = serde_json::from_str(json).map_err(|e| format!("invalid schema JSON: {e}"))?;
        let mut p = Parser { nodes: Vec::new(), names: HashMap::new() };
        let root = p.parse(&j, "", 0)?;
        Ok(AvroSchema { nodes: p.nodes, root })
    }

    /// The full name of a named root type (a record, enum or fixed).
    pub fn full_name(&self) -> Option<&str> {
        match self.nodes.get(self.root)? {
            Node::Record { name, .. } | Node::Enum { name, .. } | Node::Fixed { name, .. } => Some(name),
            _ => None,
        }
    }

    /// Decodes one value written with this schema.
    pub(crate) fn decode(&self, c: &mut Cursor<'_>, depth: usize) -> R<Value> {
        self.node(self.root, c, depth)
    }

    fn min_len(&self, idx: usize, depth: usize) -> usize {
        if depth > 8 {
            return 0;
        }
        match self.nodes.get(idx) {
            Some(Node::Boolean) => 1,
            Some(Node::Int | Node::Float | Node::Bytes | Node::String | Node::Enum { .. } | Node::Union(_)) => 4,
            Some(Node::Long | Node::Double) => 8,
            Some(Node::Array(_) | Node::Map(_)) => 1,
            Some(Node::Fixed { size, .. }) => *size,
            Some(Node::Record { fields, .. }) => {
                fields.iter().fold(0usize, |a, (_, f)| a.saturating_add(self.min_len(*f, depth + 1)))
            }
            _ => 0,
        }
    }

    fn node(&self, idx: usize, c: &mut Cursor<'_>, depth: usize) -> R<Value> {
        if depth > MAX_DEPTH {
            return Err(c.error(DecodeErrorKind::Invalid(format!("avro values nested deeper than {MAX_DEPTH} levels"))));
        }
        let Some(node) = self.nodes.get(idx) else {
            return Err(c.error(DecodeErrorKind::Invalid("avro schema node out of range".into())));
        };
        Ok(match node {
            Node::Null => Value::Null,
            Node::Boolean => Value::Bool(c.bool("avro boolean")?),
            Node::Int => Value::Int(i64::from(c.i32("avro int")?)),
            Node::Long => Value::Int(c.i64("avro long")?),
            Node::Float => Value::Float(widen(c.f32("avro float")?)),
            Node::Double => Value::Float(c.f64("avro double")?),
            Node::Bytes => Value::Bytes(c.len_prefixed("avro bytes")?.to_vec()),
            Node::String => Value::String(String::from_utf8_lossy(c.len_prefixed("avro string")?).into_owned()),
            Node::Fixed { size, .. } => Value::Bytes(c.bytes(*size, "avro fixed")?.to_vec()),
            Node::Enum { name, symbols } => {
                let at = c.position();
                let i = c.i32("avro enum index")?;
                match usize::try_from(i).ok().and_then(|i| symbols.get(i)) {
                    Some(s) => Value::Enum(s.clone()),
                    None => {
                        return Err(c.error_at(DecodeErrorKind::Invalid(format!("enum index {i} out of range for {name}")), at))
                    }
                }
            }
            Node::Union(branches) => {
                let at = c.position();
                let i = c.i32("avro union index")?;
                match usize::try_from(i).ok().and_then(|i| branches.get(i)) {
                    Some(b) => self.node(*b, c, depth + 1)?,
                    None => {
                        return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "avro union index", value: i.into() }, at))
                    }
                }
            }
            Node::Record { fields, .. } => {
                let mut out = Vec::with_capacity(fields.len());
                for (name, f) in fields {
                    out.push((name.clone(), self.node(*f, c, depth + 1)?));
                }
                Value::Struct { fields: out }
            }
            Node::Array(items) => {
                let min = self.min_len(*items, 0).max(1);
                let mut out = Vec::new();
                while let Some(n) = block(c, min)? {
                    for _ in 0..n {
                        out.push(self.node(*items, c, depth + 1)?);
                    }
                }
                Value::List(out)
            }
            Node::Map(values) => {
                let min = 4usize.saturating_add(self.min_len(*values, 0));
                let mut out = Vec::new();
                while let Some(n) = block(c, min)? {
                    for _ in 0..n {
                        let k = Value::String(String::from_utf8_lossy(c.len_prefixed("avro map key")?).into_owned());
                        out.push((k, self.node(*values, c, depth + 1)?));
                    }
                }
                Value::Map(out)
            }
            Node::Pending => return Err(c.error(DecodeErrorKind::Invalid("incomplete avro schema".into()))),
        })
    }
}

/// The item count of the next array or map block (`DataInputDecoder.readVarLongCount`), or
/// `None` at the terminating zero.
fn block(c: &mut Cursor<'_>, min_item: usize) -> R<Option<usize>> {
    let at = c.position();
    let mut value: u64 = 0;
    for i in 0..10 {
        let b = c.u8("avro block count")?;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if value == 0 {
                return Ok(None);
            }
            let n = usize::try_from(value).unwrap_or(usize::MAX);
            c.check_fits("avro block count", n, min_item, at)?;
            return Ok(Some(n));
        }
    }
    Err(c.error_at(DecodeErrorKind::Invalid("avro block count: varint longer than 10 bytes".into()), at))
}
