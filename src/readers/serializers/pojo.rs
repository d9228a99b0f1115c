//! `PojoSerializerSnapshot` v2 (`PojoSerializerSnapshotData`) and the `LinkedOptionalMap` framing
//! (`LinkedOptionalMapSerializer`) that POJO and Kryo snapshots share.

use super::consts;
use super::snapshot::read_framed;
use super::{PojoSerializer, SerializerKind, TypeSerializer};
use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind};

type R<T> = Result<T, DecodeError>;

/// One entry of a `LinkedOptionalMap`: a name, and the key and value frames when present.
#[derive(Debug)]
pub(crate) struct OptionalEntry<'a> {
    pub name: String,
    #[allow(dead_code)]
    pub key: Option<Cursor<'a>>,
    pub value: Option<Cursor<'a>>,
}

/// `i64` header `0x4F2C69A3D70`, `i32 n`, then per entry `utf name`, `bool hasKey` [`i32 len`,
/// frame], `bool hasValue` [`i32 len`, frame].
pub(crate) fn read_optional_map<'a>(c: &mut Cursor<'a>, what: &'static str) -> R<Vec<OptionalEntry<'a>>> {
    let at = c.position();
    let header = c.i64("optional map header")?;
    if header != consts::OPTIONAL_MAP_HEADER {
        return Err(c.error_at(
            DecodeErrorKind::Invalid(format!("{what}: bad optional map header 0x{header:x}, expected 0x4f2c69a3d70")),
            at,
        ));
    }
    // utf length (2) + two flags.
    let n = c.count("optional map size", 4)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let name = c.utf("optional map entry name")?;
        let key = frame(c, "optional map key flag", "optional map key frame")?;
        let value = frame(c, "optional map value flag", "optional map value frame")?;
        out.push(OptionalEntry { name, key, value });
    }
    Ok(out)
}

fn frame<'a>(c: &mut Cursor<'a>, flag: &'static str, what: &'static str) -> R<Option<Cursor<'a>>> {
    if !c.bool(flag)? {
        return Ok(None);
    }
    let len = c.count(what, 1)?;
    c.sub(len, what).map(Some)
}

/// `utf` POJO class, then optional maps of field snapshots (key: `utf` declaring class, `utf`
/// field name), registered subclass snapshots and non-registered subclass snapshots (empty key
/// frames). Every value frame holds one snapshot in versioned form.
pub(crate) fn read_pojo_snapshot(c: &mut Cursor<'_>, depth: usize) -> R<PojoSerializer> {
    let class = c.utf("pojo class")?;
    let mut maps = Vec::with_capacity(3);
    for what in ["pojo field serializers", "pojo registered subclass serializers", "pojo subclass serializers"] {
        let entries = read_optional_map(c, what)?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let ser = e.value.map(|frame| framed_snapshot(frame, depth));
            out.push((e.name, ser));
        }
        maps.push(out);
    }
    let non_registered_subclasses = maps.pop().unwrap_or_default();
    let registered_subclasses = maps.pop().unwrap_or_default();
    let fields = maps.pop().unwrap_or_default();
    Ok(PojoSerializer { class, fields, registered_subclasses, non_registered_subclasses })
}

/// A nested snapshot in its own length frame. Flink reads it tolerantly (a failure leaves the
/// entry without a snapshot); flinksnap reads past unknown snapshots nested in it where the
/// frame's end allows exactly one way (`resync.rs`), and keeps what it cannot read (an unknown
/// class, a legacy config snapshot, bytes left in the frame) as an opaque serializer named by the
/// class.
fn framed_snapshot(mut frame: Cursor<'_>, depth: usize) -> TypeSerializer {
    let class = frame.clone().utf("serializer snapshot class").unwrap_or_default();
    let result = read_framed(&mut frame, depth + 1);
    match result {
        Ok(s) => s,
        Err(e) => TypeSerializer::new(class, 0, SerializerKind::Opaque { reason: e.to_string() }),
    }
}
