//! Issue 19 in the interop: real Flink restores what `flinksnap edit` writes, with the edited
//! content, into HashMap and RocksDB, with `allowNonRestoredState=false` throughout.
//!
//! For the versions in [`EDIT_VERSIONS`], in the same restore JVM as the conversions:
//!
//! - **rename**: the fixture job built *without uids* gets ids Flink generates from the topology
//!   (`Restore --print-ids`, StreamGraphHasherV2). The canonical savepoint is edited so every
//!   stateful operator carries its generated id (`--rename-operator UID=ID`): Flink restores it
//!   into the job without uids (proving the ids), and refuses it into the job with uids. That
//!   savepoint, now one of a job without uids, is edited back (`--rename-operator ID=UID`) and
//!   restores into the job with uids on HashMap and RocksDB, content equal to the fixture's.
//! - **drop**: `--drop-operator broadcast --drop-state keyed-long/v-long --drop-state
//!   op-state/op-union`; the job without its broadcast operator restores it (the unedited
//!   savepoint it refuses: it would need allowNonRestoredState), and the dropped states are empty.
//! - **forget**: a RocksDB native savepoint with a Long key forgotten in one operator and a
//!   String key in every operator whose key type is String (`*=KEY`): restored into both
//!   backends, the two keys' entries (every state, namespace, map entry and timer) are gone and
//!   every other entry is as the fixture's.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as J;

use super::{Conversion, Fixture, Kind, Outcome, Restore};
use crate::{java_job, Result, Tools};

/// The versions the edit interop runs on (issue 19: the oldest and newest 2.x-era formats).
pub(super) const EDIT_VERSIONS: &[&str] = &["1.20.5", "2.3.0"];

/// Fixture rows an edit removes: an operator's (by uid), optionally one state's, optionally one
/// key's.
#[derive(Clone, Debug)]
pub(super) struct Rows {
    pub uid: String,
    pub state: Option<String>,
    pub key: Option<J>,
}

impl Rows {
    fn matches(&self, j: &J) -> bool {
        j["operator_uid"] == *self.uid.as_str()
            && self.state.as_ref().is_none_or(|s| j["state"] == *s.as_str())
            && self.key.as_ref().is_none_or(|k| j["key"] == *k)
    }
}

/// The expected contents without the rows the edit removed; how many went.
pub(super) fn without(expected: &str, removed: &[Rows]) -> std::result::Result<(String, usize), String> {
    let mut out = String::new();
    let mut gone = 0;
    for l in expected.lines().filter(|l| !l.trim().is_empty()) {
        let j: J = serde_json::from_str(l).map_err(|e| format!("bad JSON line {l}: {e}"))?;
        if removed.iter().any(|r| r.matches(&j)) {
            gone += 1;
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok((out, gone))
}

/// Flink's generated ids of the job without uids, by the uid the operator has in the job with
/// them (the stateful operators, whose names are their uids).
#[allow(clippy::too_many_arguments)]
pub(super) fn generated_ids(tools: &Tools, repo: &Path, version: &str, classpath: &[PathBuf], classes: &Path, work: &Path, parallelism: u32, max_parallelism: u32) -> Result<BTreeMap<String, String>> {
    let tmp = work.join("tmp");
    fs::create_dir_all(&tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
    let mut cmd = java_job(tools, repo, version, 512, &tmp, classes, classpath, "flinksnap.fixtures.Restore");
    cmd.args(["--print-ids", &parallelism.to_string(), &max_parallelism.to_string()]);
    let out = cmd.output().map_err(|e| format!("java: cannot start: {e}"))?;
    if !out.status.success() {
        return Err(format!("Restore --print-ids failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    let mut ids = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((uid, id)) = l.split_once('\t') {
            if id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()) {
                ids.insert(uid.to_owned(), id.to_owned());
            }
        }
    }
    for uid in ["keyed-long", "keyed-string", "window", "op-state", "broadcast"] {
        if !ids.contains_key(uid) {
            return Err(format!("Restore --print-ids gave no generated id for {uid}: {ids:?}"));
        }
    }
    Ok(ids)
}

/// The most frequent key of `uids`' rows in the expected contents (present in all of them).
fn common_key(expected: &str, uids: &[&str]) -> Option<J> {
    let mut per: BTreeMap<String, (usize, usize, J)> = BTreeMap::new();
    for l in expected.lines() {
        let Ok(j) = serde_json::from_str::<J>(l) else { continue };
        let Some(i) = uids.iter().position(|u| j["operator_uid"] == *u) else { continue };
        if j["key"].is_null() {
            continue;
        }
        let e = per.entry(j["key"].to_string()).or_insert((0, 0, j["key"].clone()));
        e.0 += 1;
        e.1 |= 1 << i;
    }
    per.into_values().filter(|(_, m, _)| *m == (1 << uids.len()) - 1).max_by_key(|(n, _, _)| *n).map(|(_, _, k)| k)
}

/// Adds the edit checks of one version's fixtures to the plan.
pub(super) fn plan(fixtures: &[Fixture], work: &Path, ids: &BTreeMap<String, String>, conversions: &mut Vec<Conversion>, restores: &mut Vec<Restore>) {
    let mut push = |c: Conversion, rs: &[&'static str], p: u32| {
        for &backend in rs {
            let rname = format!("{}->{backend}-p{p}", c.name);
            restores.push(Restore { conversion: conversions.len(), backend, parallelism: p, out: work.join("restored").join(format!("{rname}.jsonl")), name: rname });
        }
        conversions.push(c);
    };
    let new = |fi: usize, f: &Fixture, kind: Kind, name: String, source: Option<PathBuf>, args: Vec<String>, topology: &'static str| Conversion {
        fixture: fi,
        kind,
        name: format!("{}~{name}", f.case),
        args,
        max_parallelism: f.max_parallelism,
        dir: work.join("edited").join(format!("{}~{name}", f.case)),
        staging: PathBuf::new(),
        topology,
        edit_source: source,
        removed: Vec::new(),
        refused: false,
        outcome: None,
    };
    let renames = |from_uid: bool| -> Vec<String> {
        ids.iter().flat_map(|(uid, id)| ["--rename-operator".to_owned(), if from_uid { format!("{uid}={id}") } else { format!("{id}={uid}") }]).collect()
    };
    for (fi, f) in fixtures.iter().enumerate() {
        match f.case.as_str() {
            "heap-savepoint-canonical" => {
                let p = f.parallelism;
                // A job without uids' savepoint: Flink restores it into the job without uids only.
                let to_ids = new(fi, f, Kind::Edit, "edit-to-generated-ids".into(), None, renames(true), "nouids");
                let generated = to_ids.dir.clone();
                push(to_ids, &["hashmap"], p);
                let mut into_uids = new(fi, f, Kind::Edit, "edit-to-generated-ids-unrenamed".into(), None, renames(true), "default");
                into_uids.refused = true;
                push(into_uids, &["hashmap"], p);
                // ... and after --rename-operator ID=UID into the job with uids.
                push(new(fi, f, Kind::Edit, "edit-to-generated-ids~renamed-to-uids".into(), Some(generated), renames(false), "default"), &["hashmap", "rocksdb"], p);
                // Dropped operator and states: the job without the operator restores it.
                let drop_args = ["--drop-operator", "broadcast", "--drop-state", "keyed-long/v-long", "--drop-state", "op-state/op-union"];
                let mut dropped = new(fi, f, Kind::Edit, "edit-dropped".into(), None, drop_args.iter().map(|s| s.to_string()).collect(), "nobroadcast");
                dropped.removed = vec![
                    Rows { uid: "broadcast".into(), state: None, key: None },
                    Rows { uid: "keyed-long".into(), state: Some("v-long".into()), key: None },
                    Rows { uid: "op-state".into(), state: Some("op-union".into()), key: None },
                ];
                push(dropped, &["hashmap", "rocksdb"], p);
                let mut undropped = new(fi, f, Kind::Convert, "converted-into-job-without-broadcast".into(), None, vec!["--compression".into(), "none".into()], "nobroadcast");
                undropped.refused = true;
                push(undropped, &["hashmap"], p);
            }
            "rocksdb-savepoint-native" => {
                let expected = crate::read_fixture_text(&f.expected).unwrap_or_default();
                let (Some(lk), Some(sk)) = (common_key(&expected, &["keyed-long"]), common_key(&expected, &["keyed-string", "window"])) else {
                    let mut c = new(fi, f, Kind::Edit, "edit-forgotten-keys".into(), None, Vec::new(), "default");
                    c.outcome = Some(Err(Outcome::Failed(format!("{}: no key in both keyed-string and window, or none in keyed-long", f.expected.display()))));
                    push(c, &["hashmap"], f.parallelism);
                    continue;
                };
                let plain = |k: &J| k.as_str().map(str::to_owned).unwrap_or_else(|| k.to_string());
                let args = vec!["--forget-key".into(), format!("keyed-long={}", plain(&lk)), "--forget-key".into(), format!("*={}", plain(&sk))];
                let mut c = new(fi, f, Kind::Edit, "edit-forgotten-keys".into(), None, args, "default");
                c.removed = vec![
                    Rows { uid: "keyed-long".into(), state: None, key: Some(lk) },
                    Rows { uid: "keyed-string".into(), state: None, key: Some(sk.clone()) },
                    Rows { uid: "window".into(), state: None, key: Some(sk) },
                ];
                push(c, &["hashmap", "rocksdb"], f.parallelism);
            }
            _ => {}
        }
    }
}

/// `flinksnap edit SRC DST --force ARGS`.
pub(super) fn edit(bin: &Path, f: &Fixture, c: &Conversion) -> std::result::Result<(), Outcome> {
    let src = c.edit_source.clone().unwrap_or_else(|| f.path.clone());
    if let Some(parent) = c.dir.parent() {
        fs::create_dir_all(parent).map_err(|e| Outcome::Failed(format!("create {}: {e}", parent.display())))?;
    }
    let out = Command::new(bin)
        .arg("edit")
        .arg(&src)
        .arg(&c.dir)
        .arg("--force")
        .args(&c.args)
        .output()
        .map_err(|e| Outcome::Failed(format!("cannot run {}: {e}", bin.display())))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Outcome::Failed(format!("flinksnap edit {} failed ({}): {}", c.args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim())))
}

/// A restore that must fail: Flink refused the savepoint for state it cannot map to the job.
pub(super) fn refusal(r: &Restore) -> std::result::Result<String, String> {
    let err_file = PathBuf::from(format!("{}.error", r.out.display()));
    match fs::read_to_string(&err_file) {
        Ok(e) if e.contains("allowNonRestoredState") || e.contains("Cannot map checkpoint/savepoint state") => {
            let from = e.find("Cannot map").unwrap_or(0);
            Ok(e[from..].lines().next().unwrap_or_default().trim().chars().take(140).collect())
        }
        Ok(e) => Err(format!("Flink failed, but not for state it cannot map: {}", e.lines().take(3).collect::<Vec<_>>().join(" | "))),
        Err(_) => Err("Flink restored it, but must have refused it (state of an operator the job does not have)".into()),
    }
}
