//! The states of one operator present in both jobs: names, kinds, distribution modes and
//! serializers.
//!
//! Flink's rules, applied when the new job registers a state under a restored name:
//! - keyed state: another kind fails (`RegisteredKeyValueStateBackendMetaInfo#checkStateMetaInfo`:
//!   "Incompatible key/value state types"); the key serializer must be compatible as is (the
//!   keyed backends do not migrate keys: "The new key serializer must be compatible"), and so
//!   must the namespace serializer; the value serializer may need migration (the state is
//!   rewritten on restore) but must not be incompatible; map state on RocksDB/ForSt migrates
//!   values only, not map keys;
//! - operator state: another distribution mode (split vs union) fails
//!   (`DefaultOperatorStateBackend`: "Incompatible assignment mode"); the element serializer
//!   (broadcast: key and value) must not be incompatible — operator state is deserialized on
//!   restore, so migration is free;
//! - list and broadcast operator states are separate namespaces: a state that moved between them
//!   is a new empty state, the old one is carried unused;
//! - a restored state the new job does not register is carried along unused (no failure).

use super::describe::{OperatorDesc, StateDesc, TypeDesc};
use super::serializers::{resolve, RuleContext};
use super::{Check, Finding, Resolution, SchemaCompat, Severity};

fn is_keyed(kind: &str) -> bool {
    matches!(kind, "value" | "list" | "map" | "reducing" | "aggregating" | "timer")
}

fn is_broadcast(s: &StateDesc) -> bool {
    s.kind == "broadcast" || s.distribution_mode.as_deref() == Some("BROADCAST")
}

/// Same namespace of states: keyed, operator list/union, broadcast.
fn same_namespace(a: &StateDesc, b: &StateDesc) -> bool {
    is_keyed(&a.kind) == is_keyed(&b.kind) && (is_keyed(&a.kind) || is_broadcast(a) == is_broadcast(b))
}

pub(super) fn check(o: &OperatorDesc, n: &OperatorDesc, ctx: &RuleContext) -> Vec<Finding> {
    let mut out = Vec::new();
    let (Some(old_states), Some(new_states)) = (&o.states, &n.states) else {
        if o.states.as_ref().is_some_and(|s| !s.is_empty()) && n.states.is_none() {
            out.push(
                Finding::new(Check::Coverage, Severity::Undecided, o, None, "the target does not describe this operator's states: their serializers are not checked".into())
                    .remedy("compare against a savepoint of the new job version"),
            );
        }
        return out;
    };
    // The keyed backend's key serializer, once per operator.
    let old_key = old_states.iter().find_map(|s| s.key.as_ref().filter(|_| is_keyed(&s.kind) && s.kind != "timer"));
    let new_key = new_states.iter().find_map(|s| s.key.as_ref().filter(|_| is_keyed(&s.kind) && s.kind != "timer"));
    if let (Some(a), Some(b)) = (old_key, new_key) {
        let r = resolve(a, b, ctx, "key");
        let f = match r.compat {
            SchemaCompat::AsIs | SchemaCompat::Reconfigured => Finding::new(Check::KeySerializer, Severity::Ok, o, None, format!("key serializer {}: {}", b.short(), r.compat.as_str())),
            SchemaCompat::Unknown => Finding::new(Check::KeySerializer, Severity::Undecided, o, None, format!("key serializer: {}", r.reasons.join("; "))),
            _ => Finding::new(
                Check::KeySerializer,
                Severity::Incompatible,
                o,
                None,
                format!("key serializer {} → {}: {} (Flink migrates no keys: \"The new key serializer must be compatible\"): {}", a.short(), b.short(), r.compat.as_str(), r.reasons.join("; ")),
            )
            .remedy("keep the key type (keyBy) unchanged; change it only by rewriting the state with a State Processor API job"),
        };
        out.push(with_compat(f, r.compat));
    }
    for s in old_states {
        let Some(t) = new_states.iter().find(|t| t.name == s.name && same_namespace(s, t)) else {
            let moved = new_states.iter().find(|t| t.name == s.name);
            let msg = match moved {
                Some(t) => format!("now {} state: Flink keeps {} and {} state apart, so the new state starts empty and the old one is carried unused", t.kind, s.kind, t.kind),
                None => "not registered by the new job: Flink restores it and carries it along unused".to_owned(),
            };
            out.push(Finding::new(Check::StateUnused, Severity::Warning, o, Some(&s.name), msg));
            continue;
        };
        if s.kind != t.kind {
            if is_keyed(&s.kind) {
                out.push(
                    Finding::new(
                        Check::StateKind,
                        Severity::Incompatible,
                        o,
                        Some(&s.name),
                        format!("{} state registered as {} state: \"Incompatible key/value state types\" (StateMigrationException)", s.kind, t.kind),
                    )
                    .remedy("keep the state kind, or register the new state under a new name (the old one is carried unused)"),
                );
            } else {
                out.push(
                    Finding::new(
                        Check::DistributionMode,
                        Severity::Incompatible,
                        o,
                        Some(&s.name),
                        format!(
                            "distribution mode {} → {}: \"Incompatible assignment mode\"",
                            s.distribution_mode.as_deref().unwrap_or(&s.kind),
                            t.distribution_mode.as_deref().unwrap_or(&t.kind)
                        ),
                    )
                    .remedy("keep getListState / getUnionListState as before, or use a new state name"),
                );
            }
            continue;
        }
        out.extend(serializers(o, s, t, ctx));
    }
    for t in new_states.iter().filter(|t| !old_states.iter().any(|s| s.name == t.name && same_namespace(s, t))) {
        out.push(Finding::new(Check::StateAdded, Severity::Info, o, Some(&t.name), format!("new {} state: starts empty", t.kind)));
    }
    out
}

fn with_compat(mut f: Finding, c: SchemaCompat) -> Finding {
    f.compatibility = Some(c);
    f
}

/// Namespace, user key and value serializers of a state present in both.
fn serializers(o: &OperatorDesc, s: &StateDesc, t: &StateDesc, ctx: &RuleContext) -> Vec<Finding> {
    let mut out = Vec::new();
    let keyed = is_keyed(&s.kind);
    let name = Some(s.name.as_str());
    if let (Some(a), Some(b)) = (&s.namespace, &t.namespace) {
        let r = resolve(a, b, ctx, "namespace");
        if r.compat > SchemaCompat::Reconfigured {
            let sev = if r.compat == SchemaCompat::Unknown { Severity::Undecided } else { Severity::Incompatible };
            out.push(with_compat(
                Finding::new(Check::NamespaceSerializer, sev, o, name, format!("namespace serializer {} → {}: {}", a.short(), b.short(), r.reasons.join("; ")))
                    .remedy("keep the window assigner / namespace type"),
                r.compat,
            ));
        }
    }
    // Broadcast state's map keys.
    if !keyed {
        if let (Some(a), Some(b)) = (&s.user_key, &t.user_key) {
            out.push(value_finding(o, s, resolve(a, b, ctx, "key"), a, b, false, "broadcast key serializer"));
        }
    }
    match (&s.value, &t.value) {
        (Some(a), Some(b)) => {
            let mut r = resolve(a, b, ctx, "");
            // RocksDB/ForSt migrate map values, not map keys.
            if s.kind == "map" && r.compat == SchemaCompat::AfterMigration {
                if let (Some(ka), Some(kb)) = (map_key(a), map_key(b)) {
                    if resolve(ka, kb, ctx, "").compat == SchemaCompat::AfterMigration {
                        r.reasons.push("map keys need migration, which RocksDB and ForSt do not do (\"migration for MapState currently only allows value schema evolutions\"); the heap backend does".into());
                        r.compat = SchemaCompat::Unknown;
                    }
                }
            }
            out.push(value_finding(o, s, r, a, b, keyed, "value serializer"));
        }
        (None, _) | (_, None) => {
            if let (Some(x), Some(y)) = (s.has_ttl(), t.has_ttl()) {
                if x != y {
                    let what = if y { "TTL turned on" } else { "TTL turned off" };
                    let (sev, c) = match ctx.ttl_migration {
                        Some(true) => (Severity::Info, SchemaCompat::AfterMigration),
                        Some(false) => (Severity::Incompatible, SchemaCompat::Incompatible),
                        None => (Severity::Undecided, SchemaCompat::Unknown),
                    };
                    out.push(with_compat(
                        Finding::new(Check::ValueSerializer, sev, o, name, format!("{what}: {} in the target release", c.as_str())),
                        c,
                    ));
                }
            }
        }
    }
    out
}

fn map_key(t: &TypeDesc) -> Option<&TypeDesc> {
    match t {
        TypeDesc::Map { key, .. } => Some(key),
        TypeDesc::Ttl { value } => map_key(value),
        _ => None,
    }
}

fn value_finding(o: &OperatorDesc, s: &StateDesc, r: Resolution, a: &TypeDesc, b: &TypeDesc, keyed: bool, what: &str) -> Finding {
    let name = Some(s.name.as_str());
    let why = if r.reasons.is_empty() { String::new() } else { format!(": {}", r.reasons.join("; ")) };
    let mut f = match r.compat {
        SchemaCompat::AsIs | SchemaCompat::Reconfigured => Finding::new(Check::ValueSerializer, Severity::Ok, o, name, format!("{what} {}: {}{why}", b.short(), r.compat.as_str())),
        SchemaCompat::AfterMigration => {
            let how = if keyed { "the state is rewritten with the new serializer on restore" } else { "operator state is read with the old serializer on restore" };
            Finding::new(Check::ValueSerializer, Severity::Info, o, name, format!("{what} {} → {}: compatible after migration ({how}){why}", a.short(), b.short()))
        }
        SchemaCompat::Unknown => Finding::new(Check::ValueSerializer, Severity::Undecided, o, name, format!("{what} {} → {}: could not decide{why}", a.short(), b.short())),
        SchemaCompat::Incompatible => Finding::new(
            Check::ValueSerializer,
            Severity::Incompatible,
            o,
            name,
            format!("{what} {} → {}: incompatible (StateMigrationException){why}", a.short(), b.short()),
        )
        .remedy("keep the type compatible (POJO: add/remove fields only; Avro: evolve with defaults), or register the new type under a new state name, or rewrite the state with a State Processor API job"),
    };
    f.compatibility = Some(r.compat);
    if !r.notes.is_empty() && f.severity == Severity::Ok {
        f.message.push_str(&format!(" (note: {})", r.notes.join("; ")));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(states: Vec<StateDesc>) -> OperatorDesc {
        OperatorDesc {
            id: None,
            uid: Some("u".into()),
            name: None,
            parallelism: Some(1),
            max_parallelism: Some(128),
            max_parallelism_explicit: None,
            has_state: Some(true),
            coordinator_state: false,
            states: Some(states),
        }
    }
    fn st(name: &str, kind: &str, value: TypeDesc) -> StateDesc {
        let keyed = is_keyed(kind);
        StateDesc {
            name: name.into(),
            kind: kind.into(),
            distribution_mode: match kind {
                "operator_list" => Some("SPLIT_DISTRIBUTE".into()),
                "operator_union" => Some("UNION".into()),
                _ => None,
            },
            key: keyed.then(|| TypeDesc::Simple { name: "long".into() }),
            namespace: keyed.then(|| TypeDesc::Simple { name: "void_namespace".into() }),
            user_key: None,
            value: Some(value),
            ttl: None,
        }
    }
    fn long() -> TypeDesc {
        TypeDesc::Simple { name: "long".into() }
    }
    fn worst(f: &[Finding]) -> Severity {
        f.iter().map(|f| f.severity).max().unwrap_or(Severity::Ok)
    }

    #[test]
    fn kind_change_is_incompatible() {
        let f = check(&op(vec![st("s", "value", long())]), &op(vec![st("s", "list", long())]), &RuleContext::default());
        assert_eq!(worst(&f), Severity::Incompatible);
        assert!(f.iter().any(|f| f.check == Check::StateKind));
    }

    #[test]
    fn distribution_mode_change_is_incompatible() {
        let f = check(&op(vec![st("s", "operator_list", long())]), &op(vec![st("s", "operator_union", long())]), &RuleContext::default());
        assert!(f.iter().any(|f| f.check == Check::DistributionMode && f.severity == Severity::Incompatible), "{f:?}");
    }

    #[test]
    fn key_serializer_change_is_incompatible() {
        let mut new = st("s", "value", long());
        new.key = Some(TypeDesc::Simple { name: "string".into() });
        let f = check(&op(vec![st("s", "value", long())]), &op(vec![new]), &RuleContext::default());
        assert!(f.iter().any(|f| f.check == Check::KeySerializer && f.severity == Severity::Incompatible), "{f:?}");
    }

    #[test]
    fn states_unused_and_added_are_not_failures() {
        let f = check(&op(vec![st("a", "value", long())]), &op(vec![st("b", "value", long())]), &RuleContext::default());
        assert_eq!(worst(&f), Severity::Warning);
        assert!(f.iter().any(|f| f.check == Check::StateUnused));
        assert!(f.iter().any(|f| f.check == Check::StateAdded));
    }

    #[test]
    fn value_type_change_in_operator_state_is_incompatible_but_migration_is_fine() {
        let f = check(&op(vec![st("s", "operator_list", long())]), &op(vec![st("s", "operator_list", TypeDesc::Simple { name: "int".into() })]), &RuleContext::default());
        assert_eq!(worst(&f), Severity::Incompatible);
    }
}
