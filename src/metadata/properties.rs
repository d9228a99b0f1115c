//! The Java-serialized `CheckpointProperties` that metadata V4+ appends after the operator states.
//!
//! The object graph is fixed and small (one `CheckpointProperties` with seven booleans and a
//! `CheckpointType` or `SavepointType` holding a string and enums), so this is a minimal reader of
//! the Java serialization protocol for exactly what it contains: class descriptors, objects,
//! strings, enums, null and back-references. It never fails the metadata: the caller keeps the
//! error as a note.

use serde::Serialize;

use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind};

type R<T> = Result<T, DecodeError>;

const STREAM_MAGIC: u16 = 0xACED;
const STREAM_VERSION: u16 = 5;
const TC_NULL: u8 = 0x70;
const TC_REFERENCE: u8 = 0x71;
const TC_CLASSDESC: u8 = 0x72;
const TC_OBJECT: u8 = 0x73;
const TC_STRING: u8 = 0x74;
const TC_ENDBLOCKDATA: u8 = 0x78;
const TC_ENUM: u8 = 0x7E;
const BASE_HANDLE: u32 = 0x7E_0000;
const SC_WRITE_METHOD: u8 = 0x01;
const MAX_DEPTH: u32 = 16;

/// What Flink recorded about the snapshot it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointProperties {
    /// `SavepointType` (true) or `CheckpointType` (false).
    pub is_savepoint: bool,
    /// `SnapshotType.getName()`: "Checkpoint", "Full Checkpoint", "Savepoint", ...
    pub type_name: String,
    /// `FORWARD_BACKWARD`, `FORWARD` or `NO_SHARING`. What the checkpoint *type* allows, not
    /// what the backend did: RocksDB full checkpoints record `FORWARD_BACKWARD` too. Savepoints
    /// do not store it; Flink's `SavepointType` always answers `NO_SHARING`, and so does this.
    pub sharing_files_strategy: Option<String>,
    /// Savepoints: `CANONICAL` or `NATIVE`.
    pub format_type: Option<String>,
    /// Savepoints: `NONE`, `SUSPEND` or `TERMINATE`.
    pub post_checkpoint_action: Option<String>,
    /// Triggered by a user rather than by the checkpoint timer.
    pub forced: bool,
    /// The snapshot is not owned by Flink (savepoints and retained checkpoints after restore).
    pub unclaimed: bool,
    /// Deleted when a later checkpoint subsumes it.
    pub discard_subsumed: bool,
    /// Deleted when the job finishes.
    pub discard_finished: bool,
    /// Deleted when the job is cancelled (false = retained on cancellation).
    pub discard_cancelled: bool,
    /// Deleted when the job fails.
    pub discard_failed: bool,
    /// Deleted when the job is suspended.
    pub discard_suspended: bool,
}

#[derive(Debug, Clone)]
struct ClassDesc {
    name: String,
    flags: u8,
    fields: Vec<(u8, String)>,
    super_class: Option<Box<ClassDesc>>,
}

#[derive(Debug, Clone)]
enum Value {
    Null,
    Bool(bool),
    Number(#[allow(dead_code)] i64),
    Str(String),
    Enum(String),
    Object { class: String, fields: Vec<(String, Value)> },
}

#[derive(Debug, Clone)]
enum Handle {
    Class(ClassDesc),
    Value(Value),
}

struct Parser<'a, 'b> {
    c: &'b mut Cursor<'a>,
    handles: Vec<Handle>,
}

impl Parser<'_, '_> {
    fn invalid(&self, msg: &str) -> DecodeError {
        self.c.error(DecodeErrorKind::Invalid(format!("checkpoint properties: {msg}")))
    }

    fn reference(&mut self) -> R<Handle> {
        let at = self.c.position();
        let h = self.c.u32("handle")?;
        h.checked_sub(BASE_HANDLE)
            .and_then(|i| self.handles.get(i as usize))
            .cloned()
            .ok_or_else(|| self.c.error_at(DecodeErrorKind::InvalidValue { what: "java serialization handle", value: h.into() }, at))
    }

    fn class_desc(&mut self, depth: u32) -> R<Option<ClassDesc>> {
        if depth > MAX_DEPTH {
            return Err(self.invalid("nested too deeply"));
        }
        match self.c.u8("class descriptor tag")? {
            TC_NULL => Ok(None),
            TC_REFERENCE => match self.reference()? {
                Handle::Class(d) => Ok(Some(d)),
                Handle::Value(_) => Err(self.invalid("reference is not a class descriptor")),
            },
            TC_CLASSDESC => {
                let name = self.c.utf("class name")?;
                self.c.i64("serialVersionUID")?;
                let slot = self.handles.len();
                self.handles.push(Handle::Value(Value::Null));
                let flags = self.c.u8("class flags")?;
                let n = self.c.u16("field count")? as usize;
                let mut fields = Vec::new();
                for _ in 0..n {
                    let code = self.c.u8("field type code")?;
                    let fname = self.c.utf("field name")?;
                    if code == b'L' || code == b'[' {
                        // The field's class name, itself a string object.
                        self.content(depth + 1)?;
                    }
                    fields.push((code, fname));
                }
                if self.c.u8("class annotation end")? != TC_ENDBLOCKDATA {
                    return Err(self.invalid("class annotations are not supported"));
                }
                let super_class = self.class_desc(depth + 1)?.map(Box::new);
                let d = ClassDesc { name, flags, fields, super_class };
                self.handles[slot] = Handle::Class(d.clone());
                Ok(Some(d))
            }
            t => Err(self.invalid(&format!("unexpected class descriptor tag 0x{t:02x}"))),
        }
    }

    fn content(&mut self, depth: u32) -> R<Value> {
        if depth > MAX_DEPTH {
            return Err(self.invalid("nested too deeply"));
        }
        match self.c.u8("object tag")? {
            TC_NULL => Ok(Value::Null),
            TC_REFERENCE => match self.reference()? {
                Handle::Value(v) => Ok(v),
                Handle::Class(_) => Err(self.invalid("reference is not an object")),
            },
            TC_STRING => {
                let s = self.c.utf("string")?;
                self.handles.push(Handle::Value(Value::Str(s.clone())));
                Ok(Value::Str(s))
            }
            TC_ENUM => {
                self.class_desc(depth + 1)?;
                let slot = self.handles.len();
                self.handles.push(Handle::Value(Value::Null));
                let constant = match self.content(depth + 1)? {
                    Value::Str(s) => s,
                    _ => return Err(self.invalid("enum constant is not a string")),
                };
                let v = Value::Enum(constant);
                self.handles[slot] = Handle::Value(v.clone());
                Ok(v)
            }
            TC_OBJECT => {
                let desc = self.class_desc(depth + 1)?.ok_or_else(|| self.invalid("object without class"))?;
                let slot = self.handles.len();
                self.handles.push(Handle::Value(Value::Null));
                // Class data goes from the topmost superclass down.
                let mut chain = vec![&desc];
                while let Some(s) = &chain[chain.len() - 1].super_class {
                    chain.push(s);
                }
                let mut fields = Vec::new();
                for d in chain.iter().rev() {
                    if d.flags & SC_WRITE_METHOD != 0 {
                        return Err(self.invalid("custom writeObject data is not supported"));
                    }
                    for (code, name) in &d.fields {
                        let v = match code {
                            b'Z' => Value::Bool(self.c.bool("boolean field")?),
                            b'B' => Value::Number(self.c.u8("byte field")? as i8 as i64),
                            b'C' | b'S' => Value::Number(self.c.i16("short field")? as i64),
                            b'I' => Value::Number(self.c.i32("int field")? as i64),
                            b'F' => Value::Number(self.c.i32("float field")? as i64),
                            b'J' | b'D' => Value::Number(self.c.i64("long field")?),
                            b'L' | b'[' => self.content(depth + 1)?,
                            _ => return Err(self.invalid("unknown field type code")),
                        };
                        fields.push((name.clone(), v));
                    }
                }
                let v = Value::Object { class: desc.name.clone(), fields };
                self.handles[slot] = Handle::Value(v.clone());
                Ok(v)
            }
            t => Err(self.invalid(&format!("unsupported object tag 0x{t:02x}"))),
        }
    }
}

fn field<'v>(fields: &'v [(String, Value)], name: &str) -> Option<&'v Value> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn flag(fields: &[(String, Value)], name: &str) -> bool {
    matches!(field(fields, name), Some(Value::Bool(true)))
}

fn text(fields: &[(String, Value)], name: &str) -> Option<String> {
    match field(fields, name) {
        Some(Value::Str(s)) | Some(Value::Enum(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Reads the properties stream; `Ok(None)` when Flink wrote a null object.
pub fn read_properties(c: &mut Cursor<'_>) -> R<Option<CheckpointProperties>> {
    let at = c.position();
    if c.u16("java serialization magic")? != STREAM_MAGIC || c.u16("java serialization version")? != STREAM_VERSION {
        return Err(c.error_at(DecodeErrorKind::Invalid("checkpoint properties: not a Java serialization stream".into()), at));
    }
    let mut p = Parser { c, handles: Vec::new() };
    let (class, fields) = match p.content(0)? {
        Value::Null => return Ok(None),
        Value::Object { class, fields } => (class, fields),
        _ => return Err(p.invalid("not an object")),
    };
    if !class.ends_with(".CheckpointProperties") {
        return Err(p.invalid(&format!("unexpected class {class}")));
    }
    let (ty_class, ty_fields) = match field(&fields, "checkpointType") {
        Some(Value::Object { class, fields }) => (class.clone(), fields.clone()),
        _ => return Err(p.invalid("no checkpointType")),
    };
    let is_savepoint = ty_class.ends_with(".SavepointType");
    let sharing_files_strategy =
        text(&ty_fields, "sharingFilesStrategy").or_else(|| is_savepoint.then(|| "NO_SHARING".to_owned()));
    Ok(Some(CheckpointProperties {
        is_savepoint,
        type_name: text(&ty_fields, "name").unwrap_or_default(),
        sharing_files_strategy,
        format_type: text(&ty_fields, "formatType"),
        post_checkpoint_action: text(&ty_fields, "postCheckpointAction"),
        forced: flag(&fields, "forced"),
        unclaimed: flag(&fields, "unclaimed"),
        discard_subsumed: flag(&fields, "discardSubsumed"),
        discard_finished: flag(&fields, "discardFinished"),
        discard_cancelled: flag(&fields, "discardCancelled"),
        discard_failed: flag(&fields, "discardFailed"),
        discard_suspended: flag(&fields, "discardSuspended"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::metadata::tests::hex;

    /// Appendix A.3 of the formats reference: a retained-never checkpoint, generated by Flink 2.3.0.
    const CHECKPOINT: &str = "aced0005737200386f72672e6170616368652e666c696e6b2e72756e74696d652e636865636b706f696e742e43686563
6b706f696e7450726f7065727469657300000000000000020200085a00106469736361726443616e63656c6c65645a00
0d646973636172644661696c65645a000f6469736361726446696e69736865645a000f6469736361726453756273756d
65645a00106469736361726453757370656e6465645a0006666f726365645a0009756e636c61696d65644c000e636865
636b706f696e74547970657400324c6f72672f6170616368652f666c696e6b2f72756e74696d652f636865636b706f69
6e742f536e617073686f74547970653b787001010101010000737200326f72672e6170616368652e666c696e6b2e7275
6e74696d652e636865636b706f696e742e436865636b706f696e7454797065d6de4f0305ae1d3a0200024c00046e616d
657400124c6a6176612f6c616e672f537472696e673b4c001473686172696e6746696c65735374726174656779740047
4c6f72672f6170616368652f666c696e6b2f72756e74696d652f636865636b706f696e742f536e617073686f74547970
652453686172696e6746696c657353747261746567793b787074000a436865636b706f696e747e7200456f72672e6170
616368652e666c696e6b2e72756e74696d652e636865636b706f696e742e536e617073686f7454797065245368617269
6e6746696c6573537472617465677900000000000000001200007872000e6a6176612e6c616e672e456e756d00000000
000000001200007870740010464f52574152445f4241434b57415244";

    #[test]
    fn reads_flinks_checkpoint_properties() {
        let bytes = hex(CHECKPOINT);
        let mut c = Cursor::new(&bytes);
        let p = read_properties(&mut c).unwrap().unwrap();
        assert!(c.is_empty());
        assert!(!p.is_savepoint);
        assert_eq!(p.type_name, "Checkpoint");
        assert_eq!(p.sharing_files_strategy.as_deref(), Some("FORWARD_BACKWARD"));
        assert!(p.discard_cancelled && p.discard_failed && p.discard_subsumed && !p.forced && !p.unclaimed);
    }

    #[test]
    fn null_properties_and_truncations_never_panic() {
        assert_eq!(read_properties(&mut Cursor::new(&hex("aced000570"))).unwrap(), None);
        let bytes = hex(CHECKPOINT);
        for n in 0..bytes.len() {
            assert!(read_properties(&mut Cursor::new(&bytes[..n])).is_err(), "prefix {n}");
        }
    }
}
