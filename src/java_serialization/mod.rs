//! Java object serialization streams (`java.io.ObjectOutputStream`, protocol version 2, the
//! *Java Object Serialization Specification* §6.4), read without a JVM: class descriptors
//! (plain and proxy), objects and their class data up the hierarchy, strings (short and long),
//! enums, arrays of every component type, class objects, block data, back-references and resets.
//! Spec: `formats/java-serialization.md`.
//!
//! Flink Java-serializes in many places: `CheckpointProperties` in `_metadata` (V4+), the
//! `StateTtlConfig` of a changelog METADATA record, values of `JavaSerializer` state, legacy
//! serializer configs. [`read_stream`] reads one stream (header and one object) into a
//! [`JavaGraph`]; [`JavaGraph::to_value`] is the value `flinksnap dump` prints (as JSON).
//!
//! Class data written by a class's own `writeObject` is read as the spec lays it out: the
//! default fields first (as `defaultWriteObject` writes them, which every JDK class and nearly
//! every user class calls first), then the annotation (block data and objects) up to
//! `TC_ENDBLOCKDATA`. `Externalizable` objects need block-data mode (protocol 2, the default since
//! JDK 1.2); protocol-1 externalizable data has no delimiter and is an error.

mod json;
pub mod write;

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind};

type R<T> = Result<T, DecodeError>;

/// `STREAM_MAGIC`.
pub const STREAM_MAGIC: u16 = 0xACED;
/// `STREAM_VERSION`.
pub const STREAM_VERSION: u16 = 5;

pub(crate) const TC_NULL: u8 = 0x70;
pub(crate) const TC_REFERENCE: u8 = 0x71;
pub(crate) const TC_CLASSDESC: u8 = 0x72;
pub(crate) const TC_OBJECT: u8 = 0x73;
pub(crate) const TC_STRING: u8 = 0x74;
const TC_ARRAY: u8 = 0x75;
const TC_CLASS: u8 = 0x76;
pub(crate) const TC_BLOCKDATA: u8 = 0x77;
pub(crate) const TC_ENDBLOCKDATA: u8 = 0x78;
const TC_RESET: u8 = 0x79;
const TC_BLOCKDATALONG: u8 = 0x7A;
const TC_EXCEPTION: u8 = 0x7B;
const TC_LONGSTRING: u8 = 0x7C;
const TC_PROXYCLASSDESC: u8 = 0x7D;
pub(crate) const TC_ENUM: u8 = 0x7E;
pub(crate) const BASE_HANDLE: u32 = 0x7E_0000;

const SC_WRITE_METHOD: u8 = 0x01;
const SC_BLOCK_DATA: u8 = 0x08;
const SC_SERIALIZABLE: u8 = 0x02;
const SC_EXTERNALIZABLE: u8 = 0x04;

/// Deepest nesting of objects accepted (deeper input is an error, never a stack overflow).
pub const MAX_DEPTH: usize = 64;

/// A value in a Java serialization stream: a primitive (in class data or arrays), a string, or a
/// reference to an object, array, enum constant or class in the graph.
#[derive(Debug, Clone, PartialEq)]
pub enum JavaValue {
    /// `null`.
    Null,
    /// `boolean`.
    Bool(bool),
    /// `byte`.
    Byte(i8),
    /// `char` (one UTF-16 unit).
    Char(u16),
    /// `short`.
    Short(i16),
    /// `int`.
    Int(i32),
    /// `long`.
    Long(i64),
    /// `float`.
    Float(f32),
    /// `double`.
    Double(f64),
    /// A `String` (lone surrogates of the modified UTF-8 become U+FFFD).
    String(String),
    /// An object, array, enum constant or class: an index into [`JavaGraph::nodes`].
    Node(usize),
}

/// An object, array, enum constant or class of a stream.
#[derive(Debug, Clone, PartialEq)]
pub enum JavaNode {
    /// An object: its class data per class of its hierarchy, topmost superclass first.
    Object {
        /// The object's class.
        class: String,
        /// Class data, superclass first.
        data: Vec<ClassData>,
    },
    /// An array.
    Array {
        /// The array class (`[I`, `[Ljava.lang.String;`, ...).
        class: String,
        /// The elements.
        items: Vec<JavaValue>,
    },
    /// An enum constant.
    Enum {
        /// The enum class.
        class: String,
        /// The constant name.
        constant: String,
    },
    /// A `java.lang.Class` object.
    Class(String),
    /// An object still being read (a back-reference from inside itself, a cycle).
    Pending,
}

/// The class data one class of an object's hierarchy wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassData {
    /// The class.
    pub class: String,
    /// Its serializable fields, in descriptor order (primitives first, as Java sorts them).
    pub fields: Vec<(String, JavaValue)>,
    /// What its `writeObject` / `writeExternal` wrote beyond the default fields.
    pub annotation: Vec<Annotation>,
}

/// One item of an object annotation.
#[derive(Debug, Clone, PartialEq)]
pub enum Annotation {
    /// Primitive data (`writeInt` ...), as written.
    Block(Vec<u8>),
    /// An object (`writeObject`).
    Value(JavaValue),
}

/// A class descriptor.
#[derive(Debug, Clone, PartialEq)]
struct ClassDesc {
    name: String,
    flags: u8,
    fields: Vec<(u8, String)>,
    super_class: Option<Box<ClassDesc>>,
}

#[derive(Debug, Clone)]
enum Slot {
    Class(ClassDesc),
    String(String),
    Node(usize),
}

/// One stream read: the root value and every object, array, enum constant and class in it.
#[derive(Debug, Clone, PartialEq)]
pub struct JavaGraph {
    /// The object the stream holds.
    pub root: JavaValue,
    /// The nodes [`JavaValue::Node`] points at.
    pub nodes: Vec<JavaNode>,
}

impl JavaGraph {
    /// The node a value points at.
    pub fn node(&self, v: &JavaValue) -> Option<&JavaNode> {
        match v {
            JavaValue::Node(i) => self.nodes.get(*i),
            _ => None,
        }
    }

    /// An object's class and a field by name (searched from the object's own class upwards).
    pub fn field<'g>(&'g self, v: &JavaValue, name: &str) -> Option<&'g JavaValue> {
        match self.node(v)? {
            JavaNode::Object { data, .. } => data.iter().rev().flat_map(|d| d.fields.iter()).find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The class of an object, array, enum constant or class value.
    pub fn class_of(&self, v: &JavaValue) -> Option<&str> {
        match self.node(v)? {
            JavaNode::Object { class, .. } | JavaNode::Array { class, .. } | JavaNode::Enum { class, .. } => Some(class),
            JavaNode::Class(_) => Some("java.lang.Class"),
            JavaNode::Pending => None,
        }
    }

    /// A string or enum constant's text.
    pub fn text<'g>(&'g self, v: &'g JavaValue) -> Option<&'g str> {
        match v {
            JavaValue::String(s) => Some(s),
            _ => match self.node(v)? {
                JavaNode::Enum { constant, .. } => Some(constant),
                _ => None,
            },
        }
    }
}

/// Reads one Java serialization stream: the `0xACED 0005` header and one object (what
/// `ObjectOutputStream.writeObject` writes once), leaving the cursor after it.
pub fn read_stream(c: &mut Cursor<'_>) -> R<JavaGraph> {
    let at = c.position();
    let magic = c.u16("Java serialization magic")?;
    let version = c.u16("Java serialization version")?;
    if magic != STREAM_MAGIC || version != STREAM_VERSION {
        return Err(c.error_at(
            DecodeErrorKind::Invalid(format!("not a Java serialization stream (header {magic:04x} {version:04x}, expected aced 0005)")),
            at,
        ));
    }
    let mut p = Parser { c, slots: Vec::new(), nodes: Vec::new() };
    let root = p.content(0)?;
    Ok(JavaGraph { root, nodes: p.nodes })
}

/// Skips one Java serialization stream (header and one object): its extent, checked as
/// [`read_stream`] checks it.
pub fn skip_stream(c: &mut Cursor<'_>) -> R<()> {
    read_stream(c).map(drop)
}

struct Parser<'a, 'b> {
    c: &'b mut Cursor<'a>,
    slots: Vec<Slot>,
    nodes: Vec<JavaNode>,
}

/// Size of a primitive by type code; `None` for objects and arrays.
fn primitive_size(code: u8) -> Option<usize> {
    Some(match code {
        b'B' | b'Z' => 1,
        b'C' | b'S' => 2,
        b'I' | b'F' => 4,
        b'J' | b'D' => 8,
        _ => return None,
    })
}

impl Parser<'_, '_> {
    fn invalid(&self, msg: String, at: u64) -> DecodeError {
        self.c.error_at(DecodeErrorKind::Invalid(format!("Java serialization: {msg}")), at)
    }

    fn depth(&self, depth: usize) -> R<()> {
        if depth > MAX_DEPTH {
            return Err(self.invalid(format!("objects nested deeper than {MAX_DEPTH} levels"), self.c.position()));
        }
        Ok(())
    }

    fn new_slot(&mut self, s: Slot) -> usize {
        self.slots.push(s);
        self.slots.len() - 1
    }

    fn new_node(&mut self, n: JavaNode) -> usize {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    fn reference(&mut self) -> R<&Slot> {
        let at = self.c.position();
        let h = self.c.u32("Java object handle")?;
        match h.checked_sub(BASE_HANDLE).and_then(|i| self.slots.get(i as usize)) {
            Some(s) => Ok(s),
            None => Err(self.c.error_at(DecodeErrorKind::InvalidValue { what: "Java object handle", value: h.into() }, at)),
        }
    }

    fn string(&mut self, long: bool) -> R<String> {
        let at = self.c.position();
        let raw = if long {
            let n = self.c.non_negative_i64("Java long string length")?;
            let n = usize::try_from(n).map_err(|_| self.invalid("long string too long".into(), at))?;
            self.c.bytes(n, "Java long string")?
        } else {
            let n = self.c.u16("Java string length")? as usize;
            self.c.bytes(n, "Java string")?
        };
        let s = crate::bytes::decode_modified_utf8(raw).ok_or_else(|| self.invalid("string is not modified UTF-8".into(), at))?;
        self.new_slot(Slot::String(s.clone()));
        Ok(s)
    }

    /// `content`: an object, or block data where the grammar allows it (annotations).
    fn content(&mut self, depth: usize) -> R<JavaValue> {
        self.depth(depth)?;
        let at = self.c.position();
        let tag = self.c.u8("Java object tag")?;
        self.object(tag, at, depth)
    }

    fn object(&mut self, tag: u8, at: u64, depth: usize) -> R<JavaValue> {
        match tag {
            TC_NULL => Ok(JavaValue::Null),
            TC_REFERENCE => match self.reference()?.clone() {
                Slot::String(s) => Ok(JavaValue::String(s)),
                Slot::Node(n) => Ok(JavaValue::Node(n)),
                Slot::Class(_) => Err(self.invalid("a reference to a class descriptor where an object belongs".into(), at)),
            },
            TC_STRING => Ok(JavaValue::String(self.string(false)?)),
            TC_LONGSTRING => Ok(JavaValue::String(self.string(true)?)),
            TC_CLASS => {
                let desc = self.class_desc(depth + 1)?.ok_or_else(|| self.invalid("class object without a descriptor".into(), at))?;
                let n = self.new_node(JavaNode::Class(desc.name));
                self.new_slot(Slot::Node(n));
                Ok(JavaValue::Node(n))
            }
            TC_ENUM => {
                let desc = self.class_desc(depth + 1)?.ok_or_else(|| self.invalid("enum without a class".into(), at))?;
                let n = self.new_node(JavaNode::Pending);
                self.new_slot(Slot::Node(n));
                let cat = self.c.position();
                let constant = match self.content(depth + 1)? {
                    JavaValue::String(s) => s,
                    _ => return Err(self.invalid("enum constant name is not a string".into(), cat)),
                };
                // The descriptor of an enum constant names the constant's class, which is the enum
                // itself or (constants with bodies) an anonymous subclass of it.
                let class = match &desc.super_class {
                    Some(s) if s.name != "java.lang.Enum" && desc.name.contains('$') => s.name.clone(),
                    _ => desc.name,
                };
                self.nodes[n] = JavaNode::Enum { class, constant };
                Ok(JavaValue::Node(n))
            }
            TC_ARRAY => {
                let desc = self.class_desc(depth + 1)?.ok_or_else(|| self.invalid("array without a class".into(), at))?;
                let n = self.new_node(JavaNode::Pending);
                self.new_slot(Slot::Node(n));
                let code = desc.name.as_bytes().get(1).copied().unwrap_or(0);
                if !desc.name.starts_with('[') {
                    return Err(self.invalid(format!("array class {} is not an array", desc.name), at));
                }
                let len = self.c.non_negative_i32("Java array length")? as usize;
                self.c.check_fits("Java array length", len, primitive_size(code).unwrap_or(1), at)?;
                let mut items = Vec::with_capacity(len.min(4096));
                for _ in 0..len {
                    items.push(self.value(code, depth + 1)?);
                }
                self.nodes[n] = JavaNode::Array { class: desc.name, items };
                Ok(JavaValue::Node(n))
            }
            TC_OBJECT => {
                let desc = self.class_desc(depth + 1)?.ok_or_else(|| self.invalid("object without a class".into(), at))?;
                let n = self.new_node(JavaNode::Pending);
                self.new_slot(Slot::Node(n));
                let mut chain = vec![&desc];
                while let Some(s) = &chain[chain.len() - 1].super_class {
                    chain.push(s);
                }
                let mut data = Vec::with_capacity(chain.len());
                for d in chain.iter().rev() {
                    data.push(self.class_data(d, depth + 1)?);
                }
                self.nodes[n] = JavaNode::Object { class: desc.name.clone(), data };
                Ok(JavaValue::Node(n))
            }
            TC_RESET => {
                // As `ObjectInputStream.handleReset`: a reset stands between top-level objects
                // only. Inside an object it would drop the handles of descriptors and objects
                // still being read (a corrupt stream; Java refuses it too).
                if depth > 0 {
                    return Err(self.invalid("a reset (TC_RESET) inside an object; Java allows one only between top-level objects".into(), at));
                }
                self.slots.clear();
                let mut at = self.c.position();
                let mut tag = self.c.u8("Java object tag")?;
                while tag == TC_RESET {
                    at = self.c.position();
                    tag = self.c.u8("Java object tag")?;
                }
                self.object(tag, at, depth)
            }
            TC_EXCEPTION => Err(self.invalid("the writer failed while writing (TC_EXCEPTION)".into(), at)),
            TC_CLASSDESC | TC_PROXYCLASSDESC => {
                // A class descriptor as an object of its own (ObjectStreamClass written directly).
                self.class_desc_tagged(tag, at, depth + 1)?;
                Ok(JavaValue::Null)
            }
            t => Err(self.c.error_at(DecodeErrorKind::InvalidValue { what: "Java object tag", value: t.into() }, at)),
        }
    }

    /// One value of a field or array element by type code.
    fn value(&mut self, code: u8, depth: usize) -> R<JavaValue> {
        Ok(match code {
            b'Z' => JavaValue::Bool(self.c.bool("Java boolean")?),
            b'B' => JavaValue::Byte(self.c.u8("Java byte")? as i8),
            b'C' => JavaValue::Char(self.c.u16("Java char")?),
            b'S' => JavaValue::Short(self.c.i16("Java short")?),
            b'I' => JavaValue::Int(self.c.i32("Java int")?),
            b'J' => JavaValue::Long(self.c.i64("Java long")?),
            b'F' => JavaValue::Float(self.c.f32("Java float")?),
            b'D' => JavaValue::Double(self.c.f64("Java double")?),
            b'L' | b'[' => self.content(depth)?,
            t => return Err(self.invalid(format!("unknown field type code 0x{t:02x}"), self.c.position())),
        })
    }

    fn class_data(&mut self, d: &ClassDesc, depth: usize) -> R<ClassData> {
        let mut out = ClassData { class: d.name.clone(), fields: Vec::with_capacity(d.fields.len()), annotation: Vec::new() };
        if d.flags & SC_EXTERNALIZABLE != 0 {
            if d.flags & SC_BLOCK_DATA == 0 {
                return Err(self.invalid(format!("{}: externalizable data of protocol version 1 has no delimiter", d.name), self.c.position()));
            }
            out.annotation = self.annotation(depth)?;
            return Ok(out);
        }
        if d.flags & SC_SERIALIZABLE == 0 {
            return Ok(out);
        }
        for (code, name) in &d.fields {
            let v = self.value(*code, depth)?;
            out.fields.push((name.clone(), v));
        }
        if d.flags & SC_WRITE_METHOD != 0 {
            out.annotation = self.annotation(depth)?;
        }
        Ok(out)
    }

    /// Block data and objects up to `TC_ENDBLOCKDATA`.
    fn annotation(&mut self, depth: usize) -> R<Vec<Annotation>> {
        self.depth(depth)?;
        let mut out = Vec::new();
        loop {
            let at = self.c.position();
            match self.c.u8("Java annotation tag")? {
                TC_ENDBLOCKDATA => return Ok(out),
                TC_BLOCKDATA => {
                    let n = self.c.u8("Java block data length")? as usize;
                    out.push(Annotation::Block(self.c.bytes(n, "Java block data")?.to_vec()));
                }
                TC_BLOCKDATALONG => {
                    let n = self.c.count("Java block data length", 1)?;
                    out.push(Annotation::Block(self.c.bytes(n, "Java block data")?.to_vec()));
                }
                tag => out.push(Annotation::Value(self.object(tag, at, depth + 1)?)),
            }
        }
    }

    fn class_desc(&mut self, depth: usize) -> R<Option<ClassDesc>> {
        self.depth(depth)?;
        let at = self.c.position();
        match self.c.u8("Java class descriptor tag")? {
            TC_NULL => Ok(None),
            TC_REFERENCE => match self.reference()?.clone() {
                Slot::Class(d) => Ok(Some(d)),
                _ => Err(self.invalid("a reference to an object where a class descriptor belongs".into(), at)),
            },
            t @ (TC_CLASSDESC | TC_PROXYCLASSDESC) => self.class_desc_tagged(t, at, depth).map(Some),
            t => Err(self.c.error_at(DecodeErrorKind::InvalidValue { what: "Java class descriptor tag", value: t.into() }, at)),
        }
    }

    fn class_desc_tagged(&mut self, tag: u8, at: u64, depth: usize) -> R<ClassDesc> {
        if tag == TC_PROXYCLASSDESC {
            let slot = self.new_slot(Slot::Class(ClassDesc { name: String::new(), flags: 0, fields: Vec::new(), super_class: None }));
            let n = self.c.count("Java proxy interface count", 2)?;
            let mut names = Vec::with_capacity(n);
            for _ in 0..n {
                names.push(self.c.utf("Java proxy interface")?);
            }
            self.annotation(depth + 1)?;
            let super_class = self.class_desc(depth + 1)?.map(Box::new);
            let d = ClassDesc { name: format!("$Proxy({})", names.join(",")), flags: SC_SERIALIZABLE, fields: Vec::new(), super_class };
            self.slots[slot] = Slot::Class(d.clone());
            return Ok(d);
        }
        let name = self.c.utf("Java class name")?;
        self.c.i64("Java serialVersionUID")?;
        let slot = self.new_slot(Slot::Class(ClassDesc { name: name.clone(), flags: 0, fields: Vec::new(), super_class: None }));
        let flags = self.c.u8("Java class flags")?;
        let n = self.c.u16("Java field count")? as usize;
        self.c.check_fits("Java field count", n, 3, at)?;
        let mut fields = Vec::with_capacity(n);
        for _ in 0..n {
            let fat = self.c.position();
            let code = self.c.u8("Java field type code")?;
            let fname = self.c.utf("Java field name")?;
            match code {
                b'L' | b'[' => {
                    // The field's type name, a string object.
                    match self.content(depth + 1)? {
                        JavaValue::String(_) => {}
                        _ => return Err(self.invalid("field type name is not a string".into(), fat)),
                    }
                }
                c if primitive_size(c).is_some() => {}
                c => return Err(self.invalid(format!("unknown field type code 0x{c:02x}"), fat)),
            }
            fields.push((code, fname));
        }
        self.annotation(depth + 1)?;
        let super_class = self.class_desc(depth + 1)?.map(Box::new);
        let d = ClassDesc { name, flags, fields, super_class };
        self.slots[slot] = Slot::Class(d.clone());
        Ok(d)
    }
}

#[cfg(test)]
mod tests;
