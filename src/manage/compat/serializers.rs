//! Value, key and namespace serializer compatibility, as each `TypeSerializerSnapshot`'s
//! `resolveSchemaCompatibility(newSerializer)` decides it: the old snapshot (from the snapshot
//! being restored) against the new job's serializer (described by its own snapshot).
//!
//! Rules by snapshot family (Flink 1.13–2.3):
//! - simple serializers (`SimpleTypeSerializerSnapshot`): the same serializer class, else
//!   incompatible;
//! - composite snapshots (`CompositeTypeSerializerSnapshot`: List, Map, Set, arrays, Either,
//!   Nullable, tuples, `Row`, TTL, timers, Scala products): the outer snapshot first (same class,
//!   same arity: else incompatible), then the nested results combined: any incompatible →
//!   incompatible, any after migration → after migration;
//! - POJO (`PojoSerializerSnapshot`): another class → incompatible; a field added or removed →
//!   after migration; a field whose serializer is incompatible (a changed field type) →
//!   incompatible; a changed subclass registration order → reconfigured (compatible);
//! - Avro (`AvroSerializerSnapshot`): Avro's reader/writer schema resolution (`avro.rs`): new
//!   schema as reader, old as writer: compatible and equal → as is, compatible → after
//!   migration, else incompatible;
//! - Kryo (`KryoSerializerSnapshot`): another type class → incompatible; changed registrations
//!   → reconfigured. Kryo's own field layout is not part of the snapshot: Flink cannot check it;
//! - enums (`EnumSerializerSnapshot`): a constant removed → incompatible; reordered or added →
//!   reconfigured;
//! - SQL's `RowDataSerializerSnapshot`: the field logical types must be equal
//!   (`Arrays.equals(previousTypes, newTypes)`, nullability and lengths included), else
//!   incompatible; other table runtime serializers compare their parameters (precision, scale,
//!   element types) for equality;
//! - TTL on or off (state `TtlSerializer` against a plain one): incompatible before Flink 2.1;
//!   2.1 migrates on RocksDB/ForSt only, 2.2+ on every backend (`TtlAwareSerializer`,
//!   FLINK-32955).

use super::describe::TypeDesc;
use super::{Resolution, SchemaCompat};

/// What the rules need to know about the restore.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleContext {
    /// Whether the restoring Flink migrates TTL on/off: `Some(true)` 2.2+ (or 2.1 on
    /// RocksDB/ForSt), `Some(false)` before, `None` not known.
    pub ttl_migration: Option<bool>,
}

/// Resolves the old serializer `old` against the new one `new`, at `path` (for messages).
pub fn resolve(old: &TypeDesc, new: &TypeDesc, ctx: &RuleContext, path: &str) -> Resolution {
    let mut r = Resolution::default();
    walk(old, new, ctx, path, &mut r, 0);
    r
}

fn walk(old: &TypeDesc, new: &TypeDesc, ctx: &RuleContext, path: &str, r: &mut Resolution, depth: usize) {
    use TypeDesc as T;
    if depth > 64 {
        r.add(SchemaCompat::Unknown, path, "types nest too deep to compare".into());
        return;
    }
    let nested = |o: &TypeDesc, n: &TypeDesc, sub: &str, r: &mut Resolution| {
        let p = if path.is_empty() { sub.to_owned() } else if sub.is_empty() { path.to_owned() } else { format!("{path}.{sub}") };
        walk(o, n, ctx, &p, r, depth + 1)
    };
    let incompatible = |r: &mut Resolution, why: String| r.add(SchemaCompat::Incompatible, path, why);
    match (old, new) {
        (T::Ttl { value: o }, T::Ttl { value: n }) => nested(o, n, "", r),
        (T::Ttl { value: o }, n) => ttl_changed(o, n, false, ctx, path, r, depth),
        (o, T::Ttl { value: n }) => ttl_changed(o, n, true, ctx, path, r, depth),
        (T::Simple { name: a }, T::Simple { name: b }) => {
            if a != b {
                incompatible(r, format!("serializer {a} replaced by {b}"));
            }
        }
        (T::PrimitiveArray { element: a }, T::PrimitiveArray { element: b }) => {
            if a != b {
                incompatible(r, format!("{a}[] replaced by {b}[]"));
            }
        }
        (T::Enum { class: ca, constants: a }, T::Enum { class: cb, constants: b }) => {
            if ca != cb {
                incompatible(r, format!("enum {ca} replaced by {cb}"));
            } else if let Some(gone) = a.iter().find(|c| !b.contains(c)) {
                incompatible(r, format!("enum {ca}: constant {gone} removed"));
            } else if a.len() != b.len() || a != &b[..a.len()] {
                r.add(SchemaCompat::Reconfigured, path, format!("enum {ca}: constants added or reordered"));
            }
        }
        (T::List { element: a }, T::List { element: b }) | (T::Set { element: a }, T::Set { element: b }) => nested(a, b, "element", r),
        (T::Map { key: ka, value: va }, T::Map { key: kb, value: vb }) => {
            nested(ka, kb, "key", r);
            nested(va, vb, "value", r);
        }
        (T::Array { component_class: ca, element: a }, T::Array { component_class: cb, element: b }) => {
            if ca != cb {
                incompatible(r, format!("array of {ca} replaced by array of {cb}"));
            }
            nested(a, b, "element", r);
        }
        (T::Tuple { class: ca, fields: a }, T::Tuple { class: cb, fields: b }) => {
            if ca != cb || a.len() != b.len() {
                incompatible(r, format!("{} ({} fields) replaced by {} ({} fields)", old.short(), a.len(), new.short(), b.len()));
            } else {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    nested(x, y, &format!("f{i}"), r);
                }
            }
        }
        (T::Row { fields: a }, T::Row { fields: b }) => {
            if a.len() != b.len() {
                incompatible(r, format!("Row arity {} changed to {}", a.len(), b.len()));
            } else {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    nested(x, y, &format!("f{i}"), r);
                }
            }
        }
        (T::Pojo { class: ca, fields: fa, registered_subclasses: sa }, T::Pojo { class: cb, fields: fb, registered_subclasses: sb }) => {
            if ca != cb {
                incompatible(r, format!("POJO class {ca} replaced by {cb}"));
                return;
            }
            for f in fa {
                match fb.iter().find(|g| g.name == f.name) {
                    None => r.add(SchemaCompat::AfterMigration, path, format!("POJO {}: field {} removed", simple(ca), f.name)),
                    Some(g) => match (&f.ty, &g.ty) {
                        (Some(x), Some(y)) => nested(x, y, &f.name, r),
                        _ => r.add(SchemaCompat::Unknown, path, format!("POJO {}: field {} has no serializer in the snapshot", simple(ca), f.name)),
                    },
                }
            }
            for g in fb.iter().filter(|g| !fa.iter().any(|f| f.name == g.name)) {
                r.add(SchemaCompat::AfterMigration, path, format!("POJO {}: field {} added", simple(ca), g.name));
            }
            if sa != sb {
                r.add(SchemaCompat::Reconfigured, path, format!("POJO {}: registered subclasses changed", simple(ca)));
            }
        }
        (T::Nullable { padded: pa, inner: a }, T::Nullable { padded: pb, inner: b }) => {
            if pa != pb {
                r.add(SchemaCompat::AfterMigration, path, "NullableSerializer padding changed".into());
            }
            nested(a, b, "", r);
        }
        (T::Either { left: la, right: ra, scala: sa }, T::Either { left: lb, right: rb, scala: sb }) => {
            if sa != sb {
                incompatible(r, format!("{} replaced by {}", old.short(), new.short()));
                return;
            }
            nested(la, lb, "left", r);
            nested(ra, rb, "right", r);
        }
        (T::Value { class: a }, T::Value { class: b }) => {
            if a != b {
                incompatible(r, format!("Value type {a} replaced by {b}"));
            }
        }
        (T::Kryo { class: a, registrations: ra }, T::Kryo { class: b, registrations: rb }) => {
            if a != b {
                incompatible(r, format!("Kryo type {a} replaced by {b}"));
            } else {
                if ra != rb {
                    r.add(SchemaCompat::Reconfigured, path, format!("Kryo type {a}: registrations changed"));
                }
                r.note(path, format!("Kryo type {a}: Flink does not check Kryo's own field layout; a changed class fails only when its values are read"));
            }
        }
        (T::Avro { class: ca, schema: sa }, T::Avro { class: cb, schema: sb }) => {
            if ca != cb {
                incompatible(r, format!("Avro type {ca} replaced by {cb}"));
                return;
            }
            match super::avro::reader_writer(sb, sa) {
                Ok(()) if sa == sb => {}
                Ok(()) => r.add(SchemaCompat::AfterMigration, path, format!("Avro {}: schema evolved (new schema reads the old data)", simple(ca))),
                Err(why) => incompatible(r, format!("Avro {}: the new schema cannot read data of the old one: {why}", simple(ca))),
            }
        }
        (T::Timer { key: ka, namespace: na }, T::Timer { key: kb, namespace: nb }) => {
            nested(ka, kb, "key", r);
            nested(na, nb, "namespace", r);
        }
        (T::Scala { what: wa, class: ca, nested: na }, T::Scala { what: wb, class: cb, nested: nb }) => {
            if wa != wb || ca != cb {
                incompatible(r, format!("{} replaced by {}", old.short(), new.short()));
            } else if wa == "enumeration" {
                if let Some(gone) = na.iter().find(|c| !nb.contains(c)) {
                    incompatible(r, format!("{}: value {} removed or renumbered", old.short(), gone.short()));
                }
            } else if na.len() != nb.len() {
                incompatible(r, format!("{}: arity {} changed to {}", old.short(), na.len(), nb.len()));
            } else {
                for (i, (x, y)) in na.iter().zip(nb).enumerate() {
                    nested(x, y, &format!("_{}", i + 1), r);
                }
            }
        }
        (T::JavaSerialized, T::JavaSerialized) => {
            r.note(path, "Java serialization: Flink does not check the class (serialVersionUID, fields); a changed class fails when read".into())
        }
        (T::StreamElement { inner: a }, T::StreamElement { inner: b }) => nested(a, b, "", r),
        (T::RowData { fields: a }, T::RowData { fields: b }) => {
            if a != b {
                incompatible(r, format!("SQL row type ({}) changed to ({}): RowDataSerializer requires equal field types", a.join(", "), b.join(", ")));
            }
        }
        (T::Table { class: ca, params: pa, nested: na }, T::Table { class: cb, params: pb, nested: nb }) => {
            if ca != cb {
                incompatible(r, format!("{} replaced by {}", old.short(), new.short()));
            } else if pa != pb {
                incompatible(r, format!("{}: {pa} changed to {pb}", super::describe::simple_class(ca)));
            } else if na.len() != nb.len() {
                incompatible(r, format!("{}: {} nested serializers changed to {}", super::describe::simple_class(ca), na.len(), nb.len()));
            } else {
                for (i, (x, y)) in na.iter().zip(nb).enumerate() {
                    nested(x, y, &i.to_string(), r);
                }
            }
        }
        (T::Other { class: a }, T::Other { class: b }) if a == b => {
            r.add(SchemaCompat::Unknown, path, format!("serializer {} is not one flinksnap knows: Flink's result depends on its snapshot's code", super::describe::simple_class(a)))
        }
        _ => incompatible(r, format!("{} replaced by {}: another serializer snapshot class", old.short(), new.short())),
    }
}

/// TTL turned on (`on`) or off: the TTL wrapper against a plain serializer.
fn ttl_changed(o: &TypeDesc, n: &TypeDesc, on: bool, ctx: &RuleContext, path: &str, r: &mut Resolution, depth: usize) {
    let what = if on { "TTL turned on" } else { "TTL turned off" };
    match ctx.ttl_migration {
        Some(true) => r.add(SchemaCompat::AfterMigration, path, format!("{what}: migrated on restore (Flink 2.2+, or 2.1 on RocksDB/ForSt)")),
        Some(false) => r.add(
            SchemaCompat::Incompatible,
            path,
            format!("{what}: before Flink 2.1 (2.2 for the heap backend) the TTL serializer and the plain one are incompatible (StateMigrationException)"),
        ),
        None => r.add(
            SchemaCompat::Unknown,
            path,
            format!("{what}: Flink 2.1 migrates it on RocksDB/ForSt, 2.2+ everywhere, earlier releases refuse it; the target release or backend is not known"),
        ),
    }
    walk(o, n, ctx, path, r, depth + 1);
}

fn simple(class: &str) -> &str {
    super::describe::simple_class(class)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manage::compat::describe::PojoField;

    fn s(n: &str) -> TypeDesc {
        TypeDesc::Simple { name: n.into() }
    }
    fn pojo(fields: &[(&str, TypeDesc)]) -> TypeDesc {
        TypeDesc::Pojo {
            class: "com.example.Order".into(),
            fields: fields.iter().map(|(n, t)| PojoField { name: (*n).into(), ty: Some(t.clone()) }).collect(),
            registered_subclasses: vec![],
        }
    }
    fn res(a: &TypeDesc, b: &TypeDesc) -> SchemaCompat {
        resolve(a, b, &RuleContext::default(), "").compat
    }

    #[test]
    fn simple_serializers_must_be_equal() {
        assert_eq!(res(&s("long"), &s("long")), SchemaCompat::AsIs);
        assert_eq!(res(&s("int"), &s("long")), SchemaCompat::Incompatible);
    }

    #[test]
    fn pojo_fields_added_or_removed_migrate_and_changed_types_are_incompatible() {
        let v1 = pojo(&[("id", s("long")), ("name", s("string"))]);
        assert_eq!(res(&v1, &v1), SchemaCompat::AsIs);
        let added = pojo(&[("id", s("long")), ("name", s("string")), ("email", s("string"))]);
        assert_eq!(res(&v1, &added), SchemaCompat::AfterMigration);
        let removed = pojo(&[("id", s("long"))]);
        assert_eq!(res(&v1, &removed), SchemaCompat::AfterMigration);
        let changed = pojo(&[("id", s("int")), ("name", s("string"))]);
        let r = resolve(&v1, &changed, &RuleContext::default(), "v");
        assert_eq!(r.compat, SchemaCompat::Incompatible);
        assert!(r.reasons.iter().any(|x| x.contains("v.id") && x.contains("long replaced by int")), "{:?}", r.reasons);
        let other = TypeDesc::Pojo { class: "com.example.Other".into(), fields: vec![], registered_subclasses: vec![] };
        assert_eq!(res(&v1, &other), SchemaCompat::Incompatible);
    }

    #[test]
    fn pojo_to_kryo_is_incompatible() {
        let v1 = pojo(&[("id", s("long"))]);
        let kryo = TypeDesc::Kryo { class: "com.example.Order".into(), registrations: vec![] };
        assert_eq!(res(&v1, &kryo), SchemaCompat::Incompatible);
        assert_eq!(res(&kryo, &kryo), SchemaCompat::AsIs);
    }

    #[test]
    fn tuple_and_row_arity() {
        let t2 = TypeDesc::Tuple { class: "org.apache.flink.api.java.tuple.Tuple2".into(), fields: vec![s("string"), s("long")] };
        let t3 = TypeDesc::Tuple { class: "org.apache.flink.api.java.tuple.Tuple3".into(), fields: vec![s("string"), s("long"), s("int")] };
        assert_eq!(res(&t2, &t2), SchemaCompat::AsIs);
        assert_eq!(res(&t2, &t3), SchemaCompat::Incompatible);
        let r2 = TypeDesc::Row { fields: vec![s("string"), s("long")] };
        let r3 = TypeDesc::Row { fields: vec![s("string"), s("long"), s("int")] };
        assert_eq!(res(&r2, &r3), SchemaCompat::Incompatible);
        let t2b = TypeDesc::Tuple { class: "org.apache.flink.api.java.tuple.Tuple2".into(), fields: vec![s("string"), s("int")] };
        assert_eq!(res(&t2, &t2b), SchemaCompat::Incompatible);
    }

    #[test]
    fn list_and_map_resolve_their_elements() {
        let l = |e| TypeDesc::List { element: Box::new(e) };
        assert_eq!(res(&l(s("long")), &l(s("long"))), SchemaCompat::AsIs);
        assert_eq!(res(&l(s("long")), &l(s("string"))), SchemaCompat::Incompatible);
        let v1 = pojo(&[("id", s("long"))]);
        let v2 = pojo(&[("id", s("long")), ("x", s("int"))]);
        let m = |v| TypeDesc::Map { key: Box::new(s("string")), value: Box::new(v) };
        assert_eq!(res(&m(v1), &m(v2)), SchemaCompat::AfterMigration);
    }

    #[test]
    fn row_data_types_must_be_equal() {
        let a = TypeDesc::RowData { fields: vec!["STRING".into(), "BIGINT NOT NULL".into()] };
        let b = TypeDesc::RowData { fields: vec!["STRING".into(), "INT NOT NULL".into()] };
        let c = TypeDesc::RowData { fields: vec!["STRING".into(), "BIGINT".into()] };
        assert_eq!(res(&a, &a), SchemaCompat::AsIs);
        assert_eq!(res(&a, &b), SchemaCompat::Incompatible);
        assert_eq!(res(&a, &c), SchemaCompat::Incompatible, "nullability is part of the type");
    }

    #[test]
    fn ttl_on_depends_on_the_release() {
        let plain = s("long");
        let ttl = TypeDesc::Ttl { value: Box::new(s("long")) };
        let at = |m| resolve(&plain, &ttl, &RuleContext { ttl_migration: m }, "").compat;
        assert_eq!(at(Some(false)), SchemaCompat::Incompatible);
        assert_eq!(at(Some(true)), SchemaCompat::AfterMigration);
        assert_eq!(at(None), SchemaCompat::Unknown);
        assert_eq!(resolve(&ttl, &plain, &RuleContext { ttl_migration: Some(false) }, "").compat, SchemaCompat::Incompatible);
        assert_eq!(res(&ttl, &ttl), SchemaCompat::AsIs);
    }

    #[test]
    fn enums() {
        let e = |c: &[&str]| TypeDesc::Enum { class: "E".into(), constants: c.iter().map(|x| x.to_string()).collect() };
        assert_eq!(res(&e(&["A", "B"]), &e(&["A", "B"])), SchemaCompat::AsIs);
        assert_eq!(res(&e(&["A", "B"]), &e(&["B", "A", "C"])), SchemaCompat::Reconfigured);
        assert_eq!(res(&e(&["A", "B"]), &e(&["A"])), SchemaCompat::Incompatible);
    }

    #[test]
    fn unknown_serializers_are_undecided() {
        let o = TypeDesc::Other { class: "com.example.MySerializerSnapshot".into() };
        assert_eq!(res(&o, &o), SchemaCompat::Unknown);
    }
}
