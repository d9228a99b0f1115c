//! `flinksnap edit` on real-Flink fixtures: what the edited savepoint holds, read back through
//! flinksnap's readers, is exactly the source's entries with the edit applied (renamed operators
//! under their new ids, dropped operators and states gone, forgotten keys gone and every other
//! entry unchanged, key groups filtered); the report counts what was removed, and a dry run
//! counts the same without writing. `cargo xtask interop` restores the same edits in real Flink.

use std::collections::BTreeMap;

use flinksnap::model::OperatorId;
use serde_json::Value as J;

use crate::inspect::{fixtures, Fixture};
use crate::util::{flinksnap, flinksnap_ok};

/// The fixtures edited: every format and backend of the DataStream fixture job, at two versions.
fn edited_fixtures() -> Vec<Fixture> {
    fixtures()
        .into_iter()
        .filter(|f| ["1.20.5", "2.3.0"].iter().any(|v| f.case["flink_version"] == *v))
        .filter(|f| f.case["unaligned"] != true && f.case["restore"].is_null())
        .collect()
}

/// The dump of `path` (the fixture's uids given), one JSON value per entry.
pub(crate) fn dump(fx: &Fixture, path: &str) -> Vec<J> {
    let mut args = vec!["dump".to_owned(), path.to_owned()];
    for u in fx.uids() {
        args.extend(["--uid".to_owned(), u]);
    }
    flinksnap_ok(&args.iter().map(String::as_str).collect::<Vec<_>>()).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Entries counted by their JSON text.
pub(crate) fn multiset(entries: impl IntoIterator<Item = J>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in entries {
        *m.entry(e.to_string()).or_default() += 1;
    }
    m
}

fn assert_same(name: &str, want: &BTreeMap<String, usize>, got: &BTreeMap<String, usize>) {
    let missing: Vec<_> = want.keys().filter(|k| want.get(*k) != got.get(*k)).take(5).collect();
    let extra: Vec<_> = got.keys().filter(|k| want.get(*k) != got.get(*k)).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{name}:\nexpected, not in the edited savepoint: {missing:#?}\nin the edited savepoint, not expected: {extra:#?}");
}

fn edit(args: &[&str]) -> J {
    let mut a = vec!["edit"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--format", "json"]);
    let out: J = serde_json::from_str(&flinksnap_ok(&a)).unwrap();
    assert_eq!(out["type"], "edit");
    out["data"].clone()
}

fn id(uid: &str) -> String {
    OperatorId::from_uid(uid).to_hex()
}

#[test]
fn renamed_operators_hold_the_same_entries_under_their_new_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (i, fx) in edited_fixtures().iter().enumerate() {
        let src = dump(fx, &fx.path());
        let dst = tmp.path().join(format!("renamed-{i}"));
        // By uid and by id, to a uid and to an id.
        let d = edit(&[
            &fx.path(),
            dst.to_str().unwrap(),
            "--rename-operator",
            "keyed-long=keyed-long-v2",
            "--rename-operator",
            &format!("{}=keyed-string-v2", id("keyed-string")),
            "--rename-operator",
            &format!("window={}", "0123456789abcdef0123456789abcdef"),
        ]);
        assert_eq!(d["renamed"].as_array().unwrap().len(), 3);
        assert_eq!(d["renamed"][0]["to_id"], id("keyed-long-v2"));
        let map = [(id("keyed-long"), id("keyed-long-v2")), (id("keyed-string"), id("keyed-string-v2")), (id("window"), "0123456789abcdef0123456789abcdef".to_owned())];
        let want = multiset(src.into_iter().map(|mut e| {
            if let Some((_, to)) = map.iter().find(|(from, _)| e["operator_id"] == *from.as_str()) {
                e["operator_id"] = J::String(to.clone());
                // The written _metadata (V3) stores no uids: the renamed ones are unknown.
                e["operator_uid"] = J::Null;
            }
            e
        }));
        let got = multiset(dump(fx, dst.to_str().unwrap()));
        assert_same(&format!("{} renamed", fx.name()), &want, &got);
        // The old ids are gone.
        let inspect: J = serde_json::from_str(&flinksnap_ok(&["inspect", dst.to_str().unwrap(), "--format", "json"])).unwrap();
        let ids: Vec<String> = inspect["data"]["operators"].as_array().unwrap().iter().map(|o| o["operator_id"].as_str().unwrap().to_owned()).collect();
        assert!(!ids.contains(&id("keyed-long")) && ids.contains(&id("keyed-long-v2")), "{ids:?}");
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} fixtures");
}

#[test]
fn dropped_operators_and_states_are_gone_and_nothing_else_is() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, fx) in edited_fixtures().iter().enumerate() {
        let src = dump(fx, &fx.path());
        let dst = tmp.path().join(format!("dropped-{i}"));
        let d = edit(&[
            &fx.path(),
            dst.to_str().unwrap(),
            "--drop-operator",
            "broadcast",
            "--drop-state",
            "keyed-long/v-long",
            "--drop-state",
            "keyed-string/_timer_state/event_user-timers",
            "--drop-state",
            "op-state/op-union",
        ]);
        assert_eq!(d["dropped_operators"][0]["states"], serde_json::json!(["rules"]), "{}", fx.name());
        assert_eq!(d["dropped_states"].as_array().unwrap().len(), 3);
        let gone = |e: &J| {
            e["operator_id"] == *id("broadcast").as_str()
                || (e["operator_id"] == *id("keyed-long").as_str() && e["state"] == "v-long")
                || (e["operator_id"] == *id("keyed-string").as_str() && e["state"] == "_timer_state/event_user-timers")
                || (e["operator_id"] == *id("op-state").as_str() && e["state"] == "op-union")
        };
        let removed = src.iter().filter(|e| gone(e)).count();
        assert!(removed > 10, "{}: only {removed} entries in the dropped states", fx.name());
        let want = multiset(src.into_iter().filter(|e| !gone(e)));
        assert_same(&format!("{} dropped", fx.name()), &want, &multiset(dump(fx, dst.to_str().unwrap())));
        let inspect: J = serde_json::from_str(&flinksnap_ok(&["inspect", dst.to_str().unwrap(), "--format", "json"])).unwrap();
        assert!(!inspect["data"]["operators"].as_array().unwrap().iter().any(|o| o["operator_id"] == *id("broadcast").as_str()));
    }
}

#[test]
fn forgotten_keys_are_gone_everywhere_and_every_other_key_is_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys.jsonl");
    // A dump line (as `flinksnap dump | grep` gives), a record and a plain key.
    std::fs::write(&keys, format!("{{\"operator_uid\":\"keyed-long\",\"key\":3}}\n{{\"operator\":\"{}\",\"state\":\"v-pojo\",\"key\":\"k02\"}}\n\"k06\"\n", id("keyed-string"))).unwrap();
    let mut removed_total = 0;
    for (i, fx) in edited_fixtures().iter().enumerate() {
        let src = dump(fx, &fx.path());
        let dst = tmp.path().join(format!("forgot-{i}"));
        let args = [&fx.path(), dst.to_str().unwrap(), "--forget-key", "keyed-string=k03", "--forget-key", "*=5", "--forget-keys-from", keys.to_str().unwrap()];
        let dry = edit(&[&args[..1], &args[2..], &["--dry-run"]].concat());
        assert_eq!(dry["written"], J::Null);
        assert!(!dst.exists(), "a dry run wrote {}", dst.display());
        let d = edit(&args);
        // `*=5`: the Long key 5 of keyed-long, the String "5" of keyed-string and window.
        let star: Vec<&J> = d["forgotten_keys"].as_array().unwrap().iter().filter(|k| k["key"] == 5 || k["key"] == "5").collect();
        assert_eq!(star.len(), 3, "{}: {star:?}", fx.name());
        let forgotten = |e: &J| {
            let (op, k, st) = (e["operator_id"].as_str().unwrap(), &e["key"], e["state"].as_str().unwrap_or(""));
            (op == id("keyed-string") && (k == "k03" || k == "5" || k == "k06" || (k == "k02" && st == "v-pojo")))
                || (op == id("keyed-long") && (k == 5 || k == 3))
                || (op == id("window") && (k == "5" || k == "k06"))
        };
        let removed: Vec<&J> = src.iter().filter(|e| forgotten(e)).collect();
        assert!(removed.len() > 10, "{}: only {} entries of the forgotten keys", fx.name(), removed.len());
        let want = multiset(src.iter().filter(|e| !forgotten(e)).cloned());
        assert_same(&format!("{} forgotten", fx.name()), &want, &multiset(dump(fx, dst.to_str().unwrap())));
        // The report counts exactly what went, per state and per key; the dry run the same.
        let counted: u64 = d["removed"].as_array().unwrap().iter().map(|r| r["forgotten"].as_u64().unwrap()).sum();
        assert_eq!(counted as usize, removed.len(), "{}", fx.name());
        let per_key: u64 = d["forgotten_keys"].as_array().unwrap().iter().map(|k| k["entries_removed"].as_u64().unwrap()).sum();
        assert_eq!(per_key, counted);
        assert_eq!(dry["removed"], d["removed"], "{}: the dry run counts differently", fx.name());
        removed_total += removed.len();
    }
    assert!(removed_total > 200);
}

#[test]
fn key_groups_outside_the_filter_are_gone() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, fx) in edited_fixtures().iter().enumerate().filter(|(_, f)| f.case["max_parallelism"] == 128) {
        let src = dump(fx, &fx.path());
        let dst = tmp.path().join(format!("kg-{i}"));
        let d = edit(&[&fx.path(), dst.to_str().unwrap(), "--filter-key-groups", "0..64"]);
        let keep = |e: &J| e["key_group"].as_u64().is_none_or(|kg| kg < 64);
        let filtered: u64 = d["removed"].as_array().unwrap().iter().map(|r| r["filtered"].as_u64().unwrap()).sum();
        assert_eq!(filtered as usize, src.iter().filter(|e| !keep(e)).count());
        assert_same(&format!("{} filtered", fx.name()), &multiset(src.iter().filter(|e| keep(e)).cloned()), &multiset(dump(fx, dst.to_str().unwrap())));
    }
}

#[test]
fn mistakes_are_refused_with_what_is_wrong() {
    let fx = edited_fixtures().into_iter().find(|f| f.case["case"] == "heap-savepoint-canonical" && f.case["flink_version"] == "2.3.0").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("x");
    let p = fx.path();
    let fails = |args: &[&str], want: &[&str]| {
        let mut a = vec!["edit", p.as_str(), dst.to_str().unwrap()];
        a.extend_from_slice(args);
        let out = flinksnap(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for w in want {
            assert!(err.contains(w), "{args:?}: {err} lacks {w:?}");
        }
        assert!(!dst.exists());
    };
    fails(&["--drop-operator", "no-such-op"], &["no operator no-such-op", &id("no-such-op")]);
    fails(&["--drop-state", "keyed-long/nope"], &["no state \"nope\"", "v-long"]);
    fails(&["--rename-operator", "keyed-long=keyed-string"], &["collide"]);
    fails(&["--rename-operator", "keyed-long=x", "--rename-operator", "window=x"], &["both renamed to x"]);
    fails(&["--rename-operator", "keyed-long=x", "--drop-operator", "keyed-long"], &["renamed and dropped"]);
    fails(&["--forget-key", "keyed-long=not-a-number"], &["does not fit the key type", "LongSerializer"]);
    fails(&["--forget-key", "op-state=1"], &["holds no keyed state"]);
    // Renaming onto an id that is free again (its operator renamed away) is fine.
    flinksnap_ok(&["edit", &p, dst.to_str().unwrap(), "--rename-operator", "keyed-long=keyed-string", "--rename-operator", "keyed-string=keyed-long"]);
}

/// A copy of savepoint `fx` with every serializer snapshot class `class` renamed to a class
/// flinksnap does not know (same length, so every `utf` length stays): the snapshot a job with a
/// user serializer of that role writes, as far as flinksnap can tell. (The custom-serializer
/// fixtures have user value serializers only; no fixture job has an unknown key or namespace
/// serializer.)
fn with_unknown_serializer(fx: &Fixture, class: &str, dir: &std::path::Path) -> String {
    let unknown = format!("com.example.User{}", "X".repeat(class.len() - "com.example.User".len()));
    let src = crate::util::root().join(fx.path());
    std::fs::create_dir_all(dir).unwrap();
    let mut renamed = 0;
    for f in std::fs::read_dir(&src).unwrap().flatten() {
        let mut bytes = std::fs::read(f.path()).unwrap();
        let mut at = 0;
        while let Some(i) = bytes[at..].windows(class.len()).position(|w| w == class.as_bytes()) {
            bytes[at + i..at + i + class.len()].copy_from_slice(unknown.as_bytes());
            at += i + class.len();
            renamed += 1;
        }
        std::fs::write(dir.join(f.file_name()), bytes).unwrap();
    }
    assert!(renamed > 0, "{class} is not in {}", fx.name());
    dir.to_str().unwrap().to_owned()
}

#[test]
fn forgotten_keys_go_where_an_unknown_namespace_serializer_keeps_keys_unsplit() {
    let fx = edited_fixtures().into_iter().find(|f| f.case["case"] == "heap-savepoint-canonical" && f.case["flink_version"] == "2.3.0").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = with_unknown_serializer(&fx, "org.apache.flink.runtime.state.VoidNamespaceSerializer$VoidNamespaceSerializerSnapshot", &tmp.path().join("src"));
    // String keys before a namespace of unknown length: key and namespace come out together,
    // `{"class", "hex"}`, the key's bytes first (StringSerializer: length + 1, then the chars).
    let k03 = "046b3033";
    let before = dump(&fx, &src);
    let untyped_k03 = |e: &J| e["operator_id"] == *id("keyed-string").as_str() && e["key"]["hex"].as_str().is_some_and(|h| h.starts_with(k03));
    // (Timers split: their key comes first and has a known serializer.)
    let of_k03 = |e: &J| untyped_k03(e) || (e["operator_id"] == *id("keyed-string").as_str() && e["key"] == "k03");
    assert!(before.iter().filter(|e| untyped_k03(e)).count() >= 2, "entries of key k03 with an untyped key");
    let removed = before.iter().filter(|e| of_k03(e)).count();
    let dst = tmp.path().join("dst");
    let d = edit(&[&src, dst.to_str().unwrap(), "--forget-key", "keyed-string=k03"]);
    let counted: u64 = d["removed"].as_array().unwrap().iter().map(|r| r["forgotten"].as_u64().unwrap()).sum();
    assert_eq!(counted as usize, removed, "{d}");
    let want = multiset(before.iter().filter(|e| !of_k03(e)).cloned());
    assert_same("unknown namespace serializer, k03 forgotten", &want, &multiset(dump(&fx, dst.to_str().unwrap())));
}

#[test]
fn forgetting_a_key_of_an_unknown_key_serializer_is_refused_by_name() {
    let fx = edited_fixtures().into_iter().find(|f| f.case["case"] == "heap-savepoint-canonical" && f.case["flink_version"] == "2.3.0").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = with_unknown_serializer(&fx, "org.apache.flink.api.common.typeutils.base.StringSerializer$StringSerializerSnapshot", &tmp.path().join("src"));
    let dst = tmp.path().join("dst");
    for target in ["keyed-string", "*"] {
        let out = flinksnap(&["edit", &src, dst.to_str().unwrap(), "--forget-key", &format!("{target}=k03")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{target}: {err}");
        assert!(err.contains("keys cannot be told apart, its key serializer is unknown") && err.contains("com.example.User"), "{target}: {err}");
        assert!(!dst.exists());
    }
}
