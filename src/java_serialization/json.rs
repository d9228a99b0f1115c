//! A Java object graph as a [`Value`] (and so as `flinksnap dump`'s JSON): the mapping of
//! `formats/java-serialization.md` § "Values". The dump oracle's renderer
//! (`xtask/flink-job/.../RenderJava.java`) maps the live Java objects the same way.

use super::{Annotation, JavaGraph, JavaNode, JavaValue};
use crate::model::value::Value;
use crate::model::numbers::{big_decimal_text, big_integer_text, widen};

/// Deepest nesting rendered; deeper parts (and cycles) become a `{"@ref": n}` marker.
const MAX_RENDER_DEPTH: usize = 64;

const BOXED: &[&str] = &[
    "java.lang.Integer",
    "java.lang.Long",
    "java.lang.Short",
    "java.lang.Byte",
    "java.lang.Double",
    "java.lang.Float",
    "java.lang.Boolean",
    "java.lang.Character",
];
/// Collections whose elements are their annotation's objects.
const LISTS: &[&str] = &["java.util.ArrayList", "java.util.LinkedList", "java.util.HashSet", "java.util.LinkedHashSet", "java.util.TreeSet"];
/// Maps whose entries are their annotation's objects, key then value.
const MAPS: &[&str] = &["java.util.HashMap", "java.util.LinkedHashMap", "java.util.TreeMap", "java.util.Hashtable"];

impl JavaGraph {
    /// The root object as a [`Value`]: primitives and boxed numbers as numbers, strings, enum
    /// constants by name, `byte[]` as bytes, other arrays and the JDK's lists and sets as lists,
    /// its maps as maps, `BigInteger` / `BigDecimal` as their decimal text, `Date` as an
    /// instant, class objects by name, and any other object as a struct of `"@class"` and its
    /// fields (superclass fields first; what a `writeObject` wrote beyond them under
    /// `"@annotation"`).
    pub fn to_value(&self) -> Value {
        self.value(&self.root, 0, &mut Vec::new())
    }

    fn value(&self, v: &JavaValue, depth: usize, path: &mut Vec<usize>) -> Value {
        match v {
            JavaValue::Null => Value::Null,
            JavaValue::Bool(b) => Value::Bool(*b),
            JavaValue::Byte(x) => Value::Int(i64::from(*x)),
            JavaValue::Short(x) => Value::Int(i64::from(*x)),
            JavaValue::Int(x) => Value::Int(i64::from(*x)),
            JavaValue::Long(x) => Value::Int(*x),
            JavaValue::Char(c) => Value::Char(*c),
            JavaValue::Float(f) => Value::Float(widen(*f)),
            JavaValue::Double(d) => Value::Float(*d),
            JavaValue::String(s) => Value::String(s.clone()),
            JavaValue::Node(i) => {
                if depth > MAX_RENDER_DEPTH || path.contains(i) {
                    return Value::Struct { fields: vec![("@ref".into(), Value::Int(*i as i64))] };
                }
                path.push(*i);
                let out = self.node_value(*i, depth, path);
                path.pop();
                out
            }
        }
    }

    fn node_value(&self, i: usize, depth: usize, path: &mut Vec<usize>) -> Value {
        let d = depth + 1;
        match &self.nodes[i] {
            JavaNode::Pending => Value::Null,
            JavaNode::Class(name) => Value::String(name.clone()),
            JavaNode::Enum { constant, .. } => Value::Enum(constant.clone()),
            JavaNode::Array { class, items } => {
                if class == "[B" {
                    Value::Bytes(items.iter().map(|b| if let JavaValue::Byte(x) = b { *x as u8 } else { 0 }).collect())
                } else {
                    Value::List(items.iter().map(|x| self.value(x, d, path)).collect())
                }
            }
            JavaNode::Object { class, data } => {
                let objects = || data.iter().flat_map(|c| c.annotation.iter()).filter_map(|a| match a {
                    Annotation::Value(v) => Some(v),
                    Annotation::Block(_) => None,
                });
                let field = |name: &str| data.iter().rev().flat_map(|c| c.fields.iter()).find(|(n, _)| n == name).map(|(_, v)| v);
                if BOXED.contains(&class.as_str()) {
                    if let Some(v) = field("value") {
                        return self.value(v, d, path);
                    }
                }
                if class == "java.util.Arrays$ArrayList" {
                    if let Some(a) = field("a") {
                        return self.value(a, d, path);
                    }
                }
                if LISTS.contains(&class.as_str()) {
                    return Value::List(objects().map(|v| self.value(v, d, path)).collect());
                }
                if MAPS.contains(&class.as_str()) {
                    let items: Vec<&JavaValue> = objects().collect();
                    return Value::Map(items.chunks(2).map(|kv| (self.value(kv[0], d, path), kv.get(1).map_or(Value::Null, |v| self.value(v, d, path)))).collect());
                }
                match class.as_str() {
                    "java.math.BigInteger" => {
                        if let Some(text) = self.big_integer(&JavaValue::Node(i)) {
                            return Value::BigInteger(text);
                        }
                    }
                    "java.math.BigDecimal" => {
                        if let (Some(unscaled), Some(JavaValue::Int(scale))) = (field("intVal").and_then(|v| self.big_integer(v)), field("scale")) {
                            return Value::BigDecimal(big_decimal_text(&unscaled, *scale));
                        }
                    }
                    "java.util.Date" => {
                        let block = data.iter().flat_map(|c| c.annotation.iter()).find_map(|a| match a {
                            Annotation::Block(b) if b.len() >= 8 => Some(b),
                            _ => None,
                        });
                        if let Some(b) = block {
                            let millis = i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                            return Value::Instant { seconds: millis.div_euclid(1000), nanos: (millis.rem_euclid(1000) * 1_000_000) as u32 };
                        }
                    }
                    _ => {}
                }
                let mut fields: Vec<(String, Value)> = vec![("@class".into(), Value::String(class.clone()))];
                let mut annotation = Vec::new();
                for c in data {
                    for (name, v) in &c.fields {
                        let v = self.value(v, d, path);
                        match fields.iter_mut().find(|(n, _)| n == name) {
                            Some(slot) => slot.1 = v,
                            None => fields.push((name.clone(), v)),
                        }
                    }
                    for a in &c.annotation {
                        annotation.push(match a {
                            Annotation::Block(b) => Value::Bytes(b.clone()),
                            Annotation::Value(v) => self.value(v, d, path),
                        });
                    }
                }
                if !annotation.is_empty() {
                    fields.push(("@annotation".into(), Value::List(annotation)));
                }
                Value::Struct { fields }
            }
        }
    }

    /// A `java.math.BigInteger` object (fields `signum`, `magnitude`) as decimal text.
    fn big_integer(&self, v: &JavaValue) -> Option<String> {
        let signum = match self.field(v, "signum")? {
            JavaValue::Int(s) => *s,
            _ => return None,
        };
        let mag = match self.node(self.field(v, "magnitude")?)? {
            JavaNode::Array { items, .. } => items.iter().map(|b| if let JavaValue::Byte(x) = b { *x as u8 } else { 0 }).collect::<Vec<u8>>(),
            _ => return None,
        };
        // Two's complement of a non-negative magnitude: a leading zero byte.
        let mut twos = Vec::with_capacity(mag.len() + 1);
        twos.push(0);
        twos.extend_from_slice(&mag);
        let text = big_integer_text(&twos);
        Some(if signum < 0 && text != "0" { format!("-{text}") } else { text })
    }
}
