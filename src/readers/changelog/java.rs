//! Java object serialization (`ObjectOutputStream`), as far as the change log needs it: a
//! METADATA change holds the state's `StateTtlConfig` Java-serialized, and replaying the log only
//! needs to know where that object ends. Kept apart so that a general Java-serialization reader
//! can replace it.

use std::sync::Arc;

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind};

type R<T> = std::result::Result<T, DecodeError>;

/// Skips one Java-serialized object (`ObjectOutputStream`: stream header, then one object), as
/// the TTL config of a METADATA change holds: only its extent matters here. Follows the Java
/// Object Serialization Specification's grammar (chapter 6), with its class descriptors kept to
/// know the fields of later objects.
pub(super) fn skip_java_object(c: &mut Cursor<'_>) -> R<()> {
    let at = c.position();
    if c.u16("Java serialization magic")? != 0xACED || c.u16("Java serialization version")? != 5 {
        return Err(c.error_at(DecodeErrorKind::Invalid("not a Java serialization stream".into()), at));
    }
    JavaSkipper { c, handles: Vec::new() }.content(0)
}

mod tc {
    pub const NULL: u8 = 0x70;
    pub const REFERENCE: u8 = 0x71;
    pub const CLASSDESC: u8 = 0x72;
    pub const OBJECT: u8 = 0x73;
    pub const STRING: u8 = 0x74;
    pub const ARRAY: u8 = 0x75;
    pub const CLASS: u8 = 0x76;
    pub const BLOCKDATA: u8 = 0x77;
    pub const ENDBLOCKDATA: u8 = 0x78;
    pub const RESET: u8 = 0x79;
    pub const BLOCKDATALONG: u8 = 0x7A;
    pub const LONGSTRING: u8 = 0x7C;
    pub const PROXYCLASSDESC: u8 = 0x7D;
    pub const ENUM: u8 = 0x7E;
    pub const BASE_HANDLE: u32 = 0x7E_0000;
    pub const SC_WRITE_METHOD: u8 = 0x01;
    pub const SC_EXTERNALIZABLE: u8 = 0x04;
    pub const SC_BLOCK_DATA: u8 = 0x08;
}

/// A class descriptor: what reading an instance needs.
#[derive(Debug)]
struct JavaClass {
    flags: u8,
    /// Field type codes, in stream order.
    fields: Vec<u8>,
    /// Arrays: the element type code (second character of the class name).
    element: Option<u8>,
    super_class: Option<Arc<JavaClass>>,
}

struct JavaSkipper<'a, 'b> {
    c: &'b mut Cursor<'a>,
    /// Handles in assignment order; class descriptors are kept.
    handles: Vec<Option<Arc<JavaClass>>>,
}

const JAVA_MAX_DEPTH: u32 = 32;

impl JavaSkipper<'_, '_> {
    fn invalid(&self, msg: String) -> DecodeError {
        self.c.error(DecodeErrorKind::Invalid(msg))
    }

    fn reference(&mut self) -> R<Option<Arc<JavaClass>>> {
        let at = self.c.position();
        let h = self.c.u32("Java object handle")?;
        h.checked_sub(tc::BASE_HANDLE)
            .and_then(|i| self.handles.get(i as usize))
            .cloned()
            .ok_or_else(|| self.c.error_at(DecodeErrorKind::InvalidValue { what: "Java object handle", value: h.into() }, at))
    }

    fn skip_utf(&mut self) -> R<()> {
        let n = self.c.u16("Java string length")? as usize;
        self.c.skip(n, "Java string")
    }

    /// One content element: an object or a block of data.
    fn content(&mut self, depth: u32) -> R<()> {
        if depth > JAVA_MAX_DEPTH {
            return Err(self.invalid("Java object nested too deeply".into()));
        }
        let at = self.c.position();
        match self.c.u8("Java object tag")? {
            tc::NULL => {}
            tc::REFERENCE => {
                self.reference()?;
            }
            t @ (tc::CLASSDESC | tc::PROXYCLASSDESC) => {
                self.new_class(t, depth)?;
            }
            tc::OBJECT => {
                let class = self.class_desc(depth)?.ok_or_else(|| self.invalid("Java object without a class".into()))?;
                self.handles.push(None);
                self.object_data(&class, depth)?;
            }
            tc::CLASS => {
                self.class_desc(depth)?;
                self.handles.push(None);
            }
            tc::ARRAY => {
                let class = self.class_desc(depth)?.ok_or_else(|| self.invalid("Java array without a class".into()))?;
                self.handles.push(None);
                let code = class.element.unwrap_or(b'L');
                let n = self.c.count("Java array length", field_size(code).unwrap_or(1))?;
                for _ in 0..n {
                    self.field(code, depth)?;
                }
            }
            tc::STRING => {
                self.handles.push(None);
                self.skip_utf()?;
            }
            tc::LONGSTRING => {
                self.handles.push(None);
                let n = self.c.non_negative_i64("Java long string length")?;
                let n = usize::try_from(n).map_err(|_| self.invalid("Java long string too long".into()))?;
                self.c.skip(n, "Java long string")?;
            }
            tc::ENUM => {
                self.class_desc(depth)?;
                self.handles.push(None);
                self.content(depth + 1)?;
            }
            tc::BLOCKDATA => {
                let n = self.c.u8("Java block data length")? as usize;
                self.c.skip(n, "Java block data")?;
            }
            tc::BLOCKDATALONG => {
                let n = self.c.count("Java block data length", 1)?;
                self.c.skip(n, "Java block data")?;
            }
            tc::RESET => self.handles.clear(),
            t => return Err(self.c.error_at(DecodeErrorKind::InvalidValue { what: "Java object tag", value: t.into() }, at)),
        }
        Ok(())
    }

    /// A class descriptor: new, null or a reference.
    fn class_desc(&mut self, depth: u32) -> R<Option<Arc<JavaClass>>> {
        if depth > JAVA_MAX_DEPTH {
            return Err(self.invalid("Java class descriptors nested too deeply".into()));
        }
        let at = self.c.position();
        match self.c.u8("Java class descriptor tag")? {
            tc::NULL => Ok(None),
            tc::REFERENCE => match self.reference()? {
                Some(d) => Ok(Some(d)),
                None => Err(self.c.error_at(DecodeErrorKind::Invalid("Java reference is not a class descriptor".into()), at)),
            },
            t @ (tc::CLASSDESC | tc::PROXYCLASSDESC) => self.new_class(t, depth).map(Some),
            t => Err(self.c.error_at(DecodeErrorKind::InvalidValue { what: "Java class descriptor tag", value: t.into() }, at)),
        }
    }

    fn new_class(&mut self, tag: u8, depth: u32) -> R<Arc<JavaClass>> {
        let class = if tag == tc::CLASSDESC {
            let name_at = self.c.position();
            let name_len = self.c.u16("Java class name")? as usize;
            let name = self.c.bytes(name_len, "Java class name")?;
            let element = (name.first() == Some(&b'[')).then(|| name.get(1).copied()).flatten();
            if name.first() == Some(&b'[') && element.is_none() {
                return Err(self.c.error_at(DecodeErrorKind::Invalid("bad Java array class name".into()), name_at));
            }
            self.c.i64("serialVersionUID")?;
            let slot = self.handles.len();
            self.handles.push(None);
            let flags = self.c.u8("Java class flags")?;
            let n = self.c.u16("Java field count")? as usize;
            // A field is at least its type code and name length.
            self.c.check_fits("Java fields", n, 3, self.c.position())?;
            let mut fields = Vec::with_capacity(n);
            for _ in 0..n {
                let code_at = self.c.position();
                let code = self.c.u8("Java field type code")?;
                if field_size(code).is_none() && code != b'L' && code != b'[' {
                    return Err(self.c.error_at(DecodeErrorKind::InvalidValue { what: "Java field type code", value: code.into() }, code_at));
                }
                self.skip_utf()?;
                if code == b'L' || code == b'[' {
                    // the field's class name, a string object
                    self.content(depth + 1)?;
                }
                fields.push(code);
            }
            self.annotation(depth)?;
            let super_class = self.class_desc(depth + 1)?;
            let class = Arc::new(JavaClass { flags, fields, element, super_class });
            self.handles[slot] = Some(class.clone());
            class
        } else {
            let slot = self.handles.len();
            self.handles.push(None);
            let n = self.c.count("Java proxy interfaces", 2)?;
            for _ in 0..n {
                self.skip_utf()?;
            }
            self.annotation(depth)?;
            let super_class = self.class_desc(depth + 1)?;
            let class = Arc::new(JavaClass { flags: 0x02, fields: Vec::new(), element: None, super_class });
            self.handles[slot] = Some(class.clone());
            class
        };
        Ok(class)
    }

    /// Contents up to and including `TC_ENDBLOCKDATA`.
    fn annotation(&mut self, depth: u32) -> R<()> {
        loop {
            let mut peek = self.c.clone();
            if peek.u8("Java annotation")? == tc::ENDBLOCKDATA {
                self.c.u8("end of Java block data")?;
                return Ok(());
            }
            self.content(depth + 1)?;
        }
    }

    /// An instance's data, from the topmost superclass down.
    fn object_data(&mut self, class: &Arc<JavaClass>, depth: u32) -> R<()> {
        let mut chain = vec![class.clone()];
        while let Some(s) = chain.last().and_then(|c| c.super_class.clone()) {
            if chain.len() > JAVA_MAX_DEPTH as usize {
                return Err(self.invalid("Java class hierarchy too deep".into()));
            }
            chain.push(s);
        }
        for d in chain.iter().rev() {
            if d.flags & tc::SC_EXTERNALIZABLE != 0 {
                if d.flags & tc::SC_BLOCK_DATA == 0 {
                    return Err(self.invalid("Java externalizable data of protocol version 1 cannot be skipped".into()));
                }
                self.annotation(depth)?;
                continue;
            }
            for &code in &d.fields {
                self.field(code, depth)?;
            }
            if d.flags & tc::SC_WRITE_METHOD != 0 {
                self.annotation(depth)?;
            }
        }
        Ok(())
    }

    fn field(&mut self, code: u8, depth: u32) -> R<()> {
        match field_size(code) {
            Some(n) => self.c.skip(n, "Java field"),
            None => self.content(depth + 1),
        }
    }
}

/// Bytes of a primitive Java field; `None` for objects and arrays.
fn field_size(code: u8) -> Option<usize> {
    match code {
        b'B' | b'Z' => Some(1),
        b'C' | b'S' => Some(2),
        b'I' | b'F' => Some(4),
        b'J' | b'D' => Some(8),
        _ => None,
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    fn utf(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u16).to_be_bytes().to_vec();
        v.extend(s.as_bytes());
        v
    }

    /// A small `ObjectOutputStream` stream: an object with an int, a string field, an enum and
    /// a class with `writeObject` block data, then an externalizable one.
    fn java_stream() -> Vec<u8> {
        let mut v = vec![0xAC, 0xED, 0, 5, tc::OBJECT, tc::CLASSDESC];
        v.extend(utf("A"));
        v.extend(1i64.to_be_bytes());
        v.extend([0x02 | tc::SC_WRITE_METHOD]);
        v.extend(2u16.to_be_bytes());
        v.push(b'I');
        v.extend(utf("i"));
        v.push(b'L');
        v.extend(utf("s"));
        v.push(tc::STRING);
        v.extend(utf("Ljava/lang/String;"));
        v.push(tc::ENDBLOCKDATA);
        v.push(tc::NULL); // no superclass
        v.extend(7i32.to_be_bytes());
        v.push(tc::STRING);
        v.extend(utf("hello"));
        // writeObject data: a block and an externalizable object, then the end
        v.extend([tc::BLOCKDATA, 2, 0xAB, 0xCD]);
        v.extend([tc::OBJECT, tc::CLASSDESC]);
        v.extend(utf("E"));
        v.extend(2i64.to_be_bytes());
        v.extend([tc::SC_EXTERNALIZABLE | tc::SC_BLOCK_DATA, 0, 0, tc::ENDBLOCKDATA, tc::NULL]);
        v.extend([tc::BLOCKDATA, 1, 0xEE, tc::ENDBLOCKDATA]);
        v.push(tc::ENDBLOCKDATA);
        v
    }

    #[test]
    fn java_objects_are_skipped_exactly_and_truncation_is_an_error() {
        let mut stream = java_stream();
        stream.extend([0x55, 0x66]);
        let mut c = Cursor::with_base(&stream, 10);
        skip_java_object(&mut c).unwrap();
        assert_eq!(c.rest(), &[0x55, 0x66]);
        let full = java_stream();
        for cut in 0..full.len() {
            let mut c = Cursor::with_base(&full[..cut], 10);
            let e = skip_java_object(&mut c).unwrap_err();
            assert!(e.offset >= 10 && e.offset <= 10 + cut as u64, "cut {cut}: {e}");
        }
        // a bad reference is refused
        let bad = [0xAC, 0xED, 0, 5, tc::REFERENCE, 0, 0x7E, 0, 9];
        let e = skip_java_object(&mut Cursor::new(&bad)).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::InvalidValue { what: "Java object handle", .. }), "{e}");
        assert_eq!(e.offset, 5);
    }
}
