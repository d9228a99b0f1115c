//! The writing half of Java object serialization, for the few object graphs flinksnap writes
//! (the `LogicalType`s of SQL serializer snapshots): one stream of `java.io.ObjectOutputStream`
//! (protocol 2) with class descriptors, objects, enum constants and strings, and the handle
//! table that turns a repeated class descriptor, enum constant or field type string into a
//! back-reference, as the JDK does. Class data is written by the caller, superclass first.
//!
//! What the JDK writes is deterministic given the classes' descriptors (name, serialVersionUID,
//! flags, fields: primitives sorted by name, then objects sorted by name), so the bytes equal
//! Java's. Spec: `formats/java-serialization.md`.

use std::collections::HashMap;

use super::{BASE_HANDLE, STREAM_MAGIC, STREAM_VERSION, TC_BLOCKDATA, TC_CLASSDESC, TC_ENDBLOCKDATA, TC_ENUM, TC_NULL, TC_OBJECT, TC_REFERENCE, TC_STRING};
use crate::bytes::DataOutput;

/// `SC_SERIALIZABLE`.
pub const SC_SERIALIZABLE: u8 = 0x02;
/// `SC_SERIALIZABLE | SC_WRITE_METHOD`: a class with its own `writeObject`.
pub const SC_WRITE_METHOD: u8 = 0x03;
/// `SC_SERIALIZABLE | SC_ENUM`: every enum class.
pub const SC_ENUM: u8 = 0x12;

/// A field of a class descriptor: its type code (`I`, `Z`, `J`, `L`, ...), name and, for
/// object fields, the JVM type signature (`Ljava/lang/String;`).
#[derive(Debug, Clone, Copy)]
pub struct FieldDesc {
    /// The type code.
    pub code: u8,
    /// The field name.
    pub name: &'static str,
    /// The type signature of an object field.
    pub signature: Option<&'static str>,
}

/// A class descriptor (`ObjectStreamClass`), fields in the JDK's order.
#[derive(Debug, Clone, Copy)]
pub struct ClassDesc {
    /// The binary class name.
    pub name: &'static str,
    /// `serialVersionUID`.
    pub suid: i64,
    /// `SC_*` flags.
    pub flags: u8,
    /// Serializable fields: primitives sorted by name, then objects sorted by name.
    pub fields: &'static [FieldDesc],
    /// The serializable superclass, if any.
    pub superclass: Option<&'static ClassDesc>,
}

/// `java.lang.Enum`'s descriptor: the superclass of every enum's.
pub static ENUM: ClassDesc = ClassDesc { name: "java.lang.Enum", suid: 0, flags: SC_ENUM, fields: &[], superclass: None };

#[derive(Debug, Hash, PartialEq, Eq)]
enum Shared {
    Class(&'static str),
    Enum(&'static str, String),
    TypeString(&'static str),
}

/// One Java serialization stream being written.
#[derive(Debug)]
pub struct JavaWriter {
    out: Vec<u8>,
    handles: HashMap<Shared, u32>,
    next: u32,
}

impl Default for JavaWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl JavaWriter {
    /// A stream: its header written.
    pub fn new() -> Self {
        let mut out = Vec::new();
        out.extend_from_slice(&STREAM_MAGIC.to_be_bytes());
        out.extend_from_slice(&STREAM_VERSION.to_be_bytes());
        JavaWriter { out, handles: HashMap::new(), next: 0 }
    }

    /// The stream's bytes.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }

    fn assign(&mut self) -> u32 {
        let h = self.next;
        self.next += 1;
        h
    }

    fn reference(&mut self, key: &Shared) -> bool {
        match self.handles.get(key) {
            Some(h) => {
                self.out.put_u8(TC_REFERENCE);
                self.out.put_u32(BASE_HANDLE + h);
                true
            }
            None => false,
        }
    }

    fn utf(&mut self, s: &str) -> Result<(), String> {
        self.out.put_utf(s)
    }

    /// A class descriptor (`TC_CLASSDESC`, or a reference to one written before), its
    /// superclasses' after it.
    pub fn class_desc(&mut self, d: &'static ClassDesc) -> Result<(), String> {
        if self.reference(&Shared::Class(d.name)) {
            return Ok(());
        }
        self.out.put_u8(TC_CLASSDESC);
        self.utf(d.name)?;
        self.out.put_i64(d.suid);
        // The handle is assigned before the fields' type strings are written.
        let h = self.assign();
        self.handles.insert(Shared::Class(d.name), h);
        self.out.put_u8(d.flags);
        self.out.put_i16(d.fields.len() as i16);
        for f in d.fields {
            self.out.put_u8(f.code);
            self.utf(f.name)?;
            if let Some(sig) = f.signature {
                // Type strings are interned: a repeated one is a reference.
                if !self.reference(&Shared::TypeString(sig)) {
                    self.string_unshared(sig)?;
                    let h = self.next - 1;
                    self.handles.insert(Shared::TypeString(sig), h);
                }
            }
        }
        self.out.put_u8(TC_ENDBLOCKDATA);
        match d.superclass {
            Some(s) => self.class_desc(s),
            None => {
                self.out.put_u8(TC_NULL);
                Ok(())
            }
        }
    }

    /// A new object of class `d`: `TC_OBJECT`, its descriptor; returns its handle. Its class
    /// data (superclass first) is the caller's to write next.
    pub fn object(&mut self, d: &'static ClassDesc) -> Result<u32, String> {
        self.out.put_u8(TC_OBJECT);
        self.class_desc(d)?;
        Ok(self.assign())
    }

    /// A back-reference to the object of handle `h` ([`JavaWriter::object`]'s).
    pub fn reference_to(&mut self, h: u32) {
        self.out.put_u8(TC_REFERENCE);
        self.out.put_u32(BASE_HANDLE + h);
    }

    /// Block data a class's `writeObject` writes (`TC_BLOCKDATA`, at most 255 bytes here).
    pub fn block_data(&mut self, bytes: &[u8]) -> Result<(), String> {
        let n = u8::try_from(bytes.len()).map_err(|_| format!("block data of {} bytes", bytes.len()))?;
        self.out.put_u8(TC_BLOCKDATA);
        self.out.put_u8(n);
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    /// The end of a `writeObject` method's data (`TC_ENDBLOCKDATA`).
    pub fn end_block_data(&mut self) {
        self.out.put_u8(TC_ENDBLOCKDATA);
    }

    /// An enum constant of enum class `d` (a reference when written before).
    pub fn enum_constant(&mut self, d: &'static ClassDesc, name: &str) -> Result<(), String> {
        let key = Shared::Enum(d.name, name.to_owned());
        if self.reference(&key) {
            return Ok(());
        }
        self.out.put_u8(TC_ENUM);
        self.class_desc(d)?;
        let h = self.assign();
        self.handles.insert(key, h);
        self.string_unshared(name)
    }

    /// A new `String` object (`TC_STRING`).
    pub fn string_unshared(&mut self, s: &str) -> Result<(), String> {
        self.out.put_u8(TC_STRING);
        self.utf(s)?;
        self.assign();
        Ok(())
    }

    /// `null`.
    pub fn null(&mut self) {
        self.out.put_u8(TC_NULL);
    }

    /// A `boolean` field.
    pub fn bool(&mut self, v: bool) {
        self.out.put_bool(v);
    }

    /// An `int` field.
    pub fn int(&mut self, v: i32) {
        self.out.put_i32(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static ROOT: ClassDesc = ClassDesc { name: "x.Root", suid: 0, flags: SC_ENUM, fields: &[], superclass: Some(&ENUM) };
    static THING: ClassDesc = ClassDesc {
        name: "x.Thing",
        suid: 7,
        flags: SC_SERIALIZABLE,
        fields: &[FieldDesc { code: b'I', name: "n", signature: None }, FieldDesc { code: b'L', name: "root", signature: Some("Lx/Root;") }],
        superclass: None,
    };

    /// What the reader makes of the writer's stream: the same fields, enum constants and a
    /// repeated constant read through its back-reference.
    #[test]
    fn a_written_stream_reads_back() {
        let mut w = JavaWriter::new();
        w.object(&THING).unwrap();
        w.int(5);
        w.enum_constant(&ROOT, "A").unwrap();
        let bytes = w.finish();
        let g = crate::java_serialization::read_stream(&mut crate::bytes::Cursor::new(&bytes)).unwrap();
        assert_eq!(g.class_of(&g.root), Some("x.Thing"));
        assert_eq!(g.field(&g.root, "n"), Some(&crate::java_serialization::JavaValue::Int(5)));
        assert_eq!(g.field(&g.root, "root").and_then(|r| g.text(r)), Some("A"));
    }
}
