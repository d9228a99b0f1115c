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
//! - **import**: `export` of three keyed states and op-state's list and union state, the keyed
//!   ones edited with pyarrow, `import`: restored with exactly the edited content; also from the
//!   2.3.0 savepoint at parallelism 2 (union elements once, not once per subtask); and into the
//!   savepoint with `keyed-long/v-long` dropped, where v-long is a new state registered without
//!   `--like` from its column types (the edit script leaves out the registration export records
//!   in v-long's file, as a file of another tool would).
//! - **new operators**: every state of keyed-long, op-state and broadcast exported; the
//!   savepoint without those operators (`--drop-operator`) gets them back from `import` (new
//!   operators under their uids' ids, registered from the files' column types: the record of
//!   the snapshot's registration is stripped from the files first) and restores
//!   with the fixture's content; a savepoint from the export alone (`import --new`) restores
//!   with those operators' content (keyed-string and window start empty); keyed-string's
//!   Tuple2 `aggregating` state, dropped, comes back registered from its struct column (record
//!   stripped likewise), and its POJO state `v-pojo` with `--type …=pojo:flinksnap.fixtures.Pojo`.
//! - **bootstrap of the whole job**: every state of every operator (POJO, TTL, window
//!   namespaces, timers, list/union/broadcast) exported and made into a new savepoint with
//!   `import --new` alone: the job restores exactly the fixture's content.

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
        expected: None,
        export_operators: Vec::new(),
        from_columns: false,
        refused: false,
        outcome: None,
    };
    let renames = |from_uid: bool| -> Vec<String> {
        ids.iter().flat_map(|(uid, id)| ["--rename-operator".to_owned(), if from_uid { format!("{uid}={id}") } else { format!("{id}={uid}") }]).collect()
    };
    for (fi, f) in fixtures.iter().enumerate() {
        match f.case.as_str() {
            // Operator state at parallelism 2 through export → import (the same edits of keyed
            // state, op-state's list and union state unchanged): every subtask's list elements
            // once, union elements once (Flink gives each subtask the union of all subtasks'), as
            // the fixture job checks on restore.
            "heap-savepoint-canonical-p2-maxp32768" => {
                let mut imported = new(fi, f, Kind::Import, "import-edited-parquet".into(), None, Vec::new(), "default");
                imported.expected = Some(work.join("edited").join(format!("{}~import-edited-parquet.expected.jsonl", f.case)));
                push(imported, &["hashmap", "rocksdb"], f.parallelism);
                // New operators at parallelism 2 (max parallelism 32768): keyed state split over
                // the subtasks' key-group ranges, list and union elements in the first subtask,
                // broadcast state in each; dropped and imported back, and bootstrapped.
                let gone = new(fi, f, Kind::Edit, "edit-without-keyed-long-op-state-broadcast".into(), None, NEW_OPERATORS.iter().flat_map(|o| ["--drop-operator".to_owned(), o.to_string()]).collect(), "default");
                let gone_dir = gone.dir.clone();
                push(gone, &[], f.parallelism);
                let mut back = new(fi, f, Kind::Import, "edit-without-keyed-long-op-state-broadcast~import-new-operators".into(), Some(gone_dir), Vec::new(), "default");
                back.export_operators = NEW_OPERATORS.to_vec();
                back.from_columns = true;
                push(back, &["hashmap", "rocksdb"], f.parallelism);
                let mut boot = new(fi, f, Kind::Import, "import-new-savepoint".into(), None, Vec::new(), "default");
                boot.export_operators = NEW_OPERATORS.to_vec();
                boot.removed = vec![Rows { uid: "keyed-string".into(), state: None, key: None }, Rows { uid: "window".into(), state: None, key: None }];
                push(boot, &["hashmap", "rocksdb"], f.parallelism);
            }
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
                // export → Parquet edited with pyarrow → import: restores with the edited content.
                let mut imported = new(fi, f, Kind::Import, "import-edited-parquet".into(), None, Vec::new(), "default");
                imported.expected = Some(work.join("edited").join(format!("{}~import-edited-parquet.expected.jsonl", f.case)));
                push(imported, &["hashmap", "rocksdb"], p);
                // A state the savepoint lacks (v-long dropped first, not restored itself),
                // imported without --like: registered from its column types (Long key, Long
                // value), restored into the job that declares it with the edited content.
                let without = new(fi, f, Kind::Edit, "edit-without-v-long".into(), None, vec!["--drop-state".into(), "keyed-long/v-long".into()], "default");
                let without_dir = without.dir.clone();
                push(without, &[], p);
                let mut reimported = new(fi, f, Kind::Import, "edit-without-v-long~import-edited-parquet".into(), Some(without_dir), Vec::new(), "default");
                reimported.expected = Some(work.join("edited").join(format!("{}~edit-without-v-long~import-edited-parquet.expected.jsonl", f.case)));
                push(reimported, &["hashmap", "rocksdb"], p);
                // Operators the savepoint lacks (dropped first, not restored itself), imported
                // from an export of all their states: created under their uids' ids, registered
                // from the files' column types (no --like: the operators are gone); restored with
                // the fixture's content.
                let gone = new(fi, f, Kind::Edit, "edit-without-keyed-long-op-state-broadcast".into(), None, NEW_OPERATORS.iter().flat_map(|o| ["--drop-operator".to_owned(), o.to_string()]).collect(), "default");
                let gone_dir = gone.dir.clone();
                push(gone, &[], p);
                let mut back = new(fi, f, Kind::Import, "edit-without-keyed-long-op-state-broadcast~import-new-operators".into(), Some(gone_dir), Vec::new(), "default");
                back.export_operators = NEW_OPERATORS.to_vec();
                back.from_columns = true;
                push(back, &["hashmap", "rocksdb"], p);
                // A Tuple2<Long, Long> state the savepoint lacks (keyed-string's aggregating
                // accumulator, dropped first): registered from its struct column of f0 and f1
                // without --like while keyed-string's other states are imported unchanged.
                let no_agg = new(fi, f, Kind::Edit, "edit-without-aggregating".into(), None, vec!["--drop-state".into(), "keyed-string/aggregating".into()], "default");
                let no_agg_dir = no_agg.dir.clone();
                push(no_agg, &[], p);
                let mut agg = new(fi, f, Kind::Import, "edit-without-aggregating~import-keyed-string".into(), Some(no_agg_dir), Vec::new(), "default");
                agg.export_operators = vec!["keyed-string"];
                agg.from_columns = true;
                push(agg, &["hashmap", "rocksdb"], p);
                // A POJO state the savepoint lacks (keyed-string's v-pojo, dropped first):
                // registered from its struct column with --type …=pojo:CLASS (record stripped
                // likewise), restored with the fixture's content.
                let no_pojo = new(fi, f, Kind::Edit, "edit-without-v-pojo".into(), None, vec!["--drop-state".into(), "keyed-string/v-pojo".into()], "default");
                let no_pojo_dir = no_pojo.dir.clone();
                push(no_pojo, &[], p);
                let typed = vec!["--type".to_owned(), "keyed-string/v-pojo=pojo:flinksnap.fixtures.Pojo".to_owned()];
                let mut pojo = new(fi, f, Kind::Import, "edit-without-v-pojo~import-keyed-string-typed".into(), Some(no_pojo_dir), typed, "default");
                pojo.export_operators = vec!["keyed-string"];
                pojo.from_columns = true;
                push(pojo, &["hashmap", "rocksdb"], p);
                // A savepoint from the export alone (`import --new`): the job restores those
                // operators' content, the others (keyed-string, window) start empty.
                let mut boot = new(fi, f, Kind::Import, "import-new-savepoint".into(), None, Vec::new(), "default");
                boot.export_operators = NEW_OPERATORS.to_vec();
                boot.removed = vec![Rows { uid: "keyed-string".into(), state: None, key: None }, Rows { uid: "window".into(), state: None, key: None }];
                push(boot, &["hashmap", "rocksdb"], p);
                // The whole job from its export alone: every state registered as the snapshot
                // registered it (export records it in each file), the fixture's content restored.
                let mut whole = new(fi, f, Kind::Import, "import-new-savepoint-whole-job".into(), None, Vec::new(), "default");
                whole.export_operators = STATEFUL_OPERATORS.to_vec();
                push(whole, &["hashmap", "rocksdb"], p);
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

/// Where the savepoint of the fixture job *without uids* lies: `testdata/no-uids/flink-V/`
/// (`heap-nouids` in `RUNS`; apart from the fixtures of the job with uids).
pub(super) const NO_UIDS_GROUP: &str = "no-uids";

/// Issue 19's "done when", on the savepoint real Flink wrote for the job without uids
/// (`fixtures[first..]`): `flinksnap inspect` lists the ids Flink generated, which are the ids
/// this Flink generates for that job (`printed`, `Restore --print-ids`); Flink refuses the
/// savepoint as written into the job with uids and restores it into the job without; after
/// `flinksnap edit --rename-operator GENERATED=UID` for every stateful operator it restores into
/// the job with uids on HashMap and RocksDB, content equal to what the job wrote. Returns the
/// inspect check (not a restore).
pub(super) fn plan_no_uids(
    bin: &Path,
    fixtures: &[Fixture],
    first: usize,
    work: &Path,
    printed: &BTreeMap<String, String>,
    conversions: &mut Vec<Conversion>,
    restores: &mut Vec<Restore>,
) -> Vec<(String, std::result::Result<String, String>)> {
    let mut checks = Vec::new();
    for (fi, f) in fixtures.iter().enumerate().skip(first) {
        let name = |what: &str| format!("{}~{what}", f.case);
        let prepared = no_uids_prepare(bin, f, work, printed);
        let (renames, expected) = match prepared {
            Ok((shown, renames, expected)) => {
                checks.push((name("inspect-generated-ids"), Ok(shown)));
                (renames, Some(expected))
            }
            Err(e) => {
                checks.push((name("inspect-generated-ids"), Err(e)));
                (Vec::new(), None)
            }
        };
        let mut push = |what: &str, kind: Kind, args: Vec<String>, topology: &'static str, refused: bool, backends: &[&'static str]| {
            let c = Conversion {
                fixture: fi,
                kind,
                name: name(what),
                args,
                max_parallelism: f.max_parallelism,
                dir: if kind == Kind::AsIs { f.path.clone() } else { work.join("edited").join(name(what)) },
                staging: PathBuf::new(),
                topology,
                edit_source: None,
                removed: Vec::new(),
                expected: expected.clone(),
                export_operators: Vec::new(),
                from_columns: false,
                refused,
                outcome: match (&expected, kind) {
                    (None, _) => Some(Err(Outcome::Failed("not prepared: the inspect check failed".into()))),
                    (Some(_), Kind::AsIs) => Some(Ok(())),
                    _ => None,
                },
            };
            for &backend in backends {
                let rname = format!("{}->{backend}-p{}", c.name, f.parallelism);
                restores.push(Restore { conversion: conversions.len(), backend, parallelism: f.parallelism, out: work.join("restored").join(format!("{rname}.jsonl")), name: rname });
            }
            conversions.push(c);
        };
        // As Flink wrote it: the job with uids cannot map its generated ids, the job without can.
        push("as-written-into-job-with-uids", Kind::AsIs, Vec::new(), "default", true, &["hashmap"]);
        push("as-written", Kind::AsIs, Vec::new(), "nouids", false, &["hashmap"]);
        // Renamed onto the uids: the job with uids restores every state of it.
        push("renamed-to-uids", Kind::Edit, renames, "default", false, &["hashmap", "rocksdb"]);
    }
    checks
}

/// For [`plan_no_uids`]: `flinksnap inspect --format json` of the savepoint lists exactly the
/// ids case.json recorded (what Flink generated when it wrote it), each stateful operator's
/// equal to this Flink's id of it; returns what was shown, the renames (`--rename-operator
/// GENERATED=UID` per stateful operator) and the expected contents of a restore (the job with
/// uids reports every operator under the id of its uid; written into `work`).
fn no_uids_prepare(bin: &Path, f: &Fixture, work: &Path, printed: &BTreeMap<String, String>) -> std::result::Result<(String, Vec<String>, PathBuf), String> {
    let case: J = serde_json::from_str(&crate::read_fixture_text(&f.case_dir.join("case.json"))?).map_err(|e| format!("{}: {e}", f.case_dir.display()))?;
    if case["no_uids"] != J::Bool(true) {
        return Err(format!("{}/case.json: not a job without uids (no \"no_uids\": true)", f.case_dir.display()));
    }
    let generated: BTreeMap<String, String> = case["uids"].as_object().map(|m| m.iter().filter_map(|(u, id)| Some((u.clone(), id.as_str()?.to_owned()))).collect()).unwrap_or_default();
    let out = Command::new(bin).arg("inspect").arg(&f.path).args(["--format", "json"]).output().map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!("flinksnap inspect failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    let doc: J = serde_json::from_slice(&out.stdout).map_err(|e| format!("inspect --format json: {e}"))?;
    let operators = doc["data"]["operators"].as_array().ok_or("inspect output without operators")?;
    let listed: std::collections::BTreeSet<&str> = operators.iter().filter_map(|o| o["operator_id"].as_str()).collect();
    let recorded: std::collections::BTreeSet<&str> = generated.values().map(String::as_str).collect();
    if listed != recorded || listed.len() < 5 {
        return Err(format!("inspect lists the operator ids {listed:?}, Flink generated {recorded:?}"));
    }
    // The stateful operators: those holding the job's expected rows.
    let text = crate::read_fixture_text(&f.expected)?;
    let mut stateful = std::collections::BTreeSet::new();
    let mut rows = String::new();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut j: J = serde_json::from_str(l).map_err(|e| format!("{}: bad JSON line {l}: {e}", f.expected.display()))?;
        let uid = j["operator_uid"].as_str().ok_or_else(|| format!("{}: a row without operator_uid: {l}", f.expected.display()))?.to_owned();
        if j["operator_id"].as_str() != generated.get(&uid).map(String::as_str) {
            return Err(format!("{}: {uid}'s rows are not under the id Flink generated for it ({:?})", f.expected.display(), generated.get(&uid)));
        }
        j["operator_id"] = J::from(flinksnap::model::OperatorId::from_uid(&uid).to_hex());
        rows.push_str(&j.to_string());
        rows.push('\n');
        stateful.insert(uid);
    }
    let mut renames = Vec::new();
    for uid in &stateful {
        let id = &generated[uid];
        let op = operators.iter().find(|o| o["operator_id"] == id.as_str()).ok_or_else(|| format!("inspect does not list {uid}'s generated id {id}"))?;
        if op["keyed_state"].as_array().is_none_or(Vec::is_empty) && op["operator_state"].as_array().is_none_or(Vec::is_empty) {
            return Err(format!("inspect shows no state for {id}, the generated id of stateful {uid}"));
        }
        if op["uid"].as_str().is_some_and(|u| !u.is_empty()) {
            return Err(format!("inspect shows the uid {} for {id}: the job had none", op["uid"]));
        }
        match printed.get(uid) {
            Some(p) if p == id => {}
            other => return Err(format!("{uid}: the savepoint holds {id}, this Flink generates {other:?} for the job without uids")),
        }
        renames.extend(["--rename-operator".to_owned(), format!("{id}={uid}")]);
    }
    let expected = work.join("edited").join(format!("{}~uid-ids.expected.jsonl", f.case));
    if let Some(p) = expected.parent() {
        fs::create_dir_all(p).map_err(|e| format!("create {}: {e}", p.display()))?;
    }
    fs::write(&expected, rows).map_err(|e| format!("write {}: {e}", expected.display()))?;
    let shown = format!(
        "inspect lists the {} generated ids; the {} stateful operators' ({}) are this Flink's for the job without uids",
        listed.len(),
        stateful.len(),
        stateful.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
    );
    Ok((shown, renames, expected))
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

/// The operators the new-operator checks export and import as new operators: every state of
/// built-in types (Long keys: value, list, timers; operator list and union; broadcast).
const NEW_OPERATORS: &[&str] = &["keyed-long", "op-state", "broadcast"];

/// Every operator of the fixture job that holds state.
const STATEFUL_OPERATORS: &[&str] = &["keyed-long", "keyed-string", "window", "op-state", "broadcast"];

/// The states the import check exports, edits and imports (`scripts/import_edit.py` edits the
/// keyed ones; op-state's list and union state go through Parquet unchanged).
const IMPORTED: &[&str] = &["v-long", "v-string", "map", "op-list", "op-union"];

/// `flinksnap export` of the fixture's edited states, the Parquet edited by
/// `xtask/scripts/import_edit.py` (pyarrow, which also writes the contents Flink must restore),
/// then `flinksnap import DIR --into FIXTURE DST --force`.
pub(super) fn import(bin: &Path, cache: &Path, f: &Fixture, c: &Conversion) -> std::result::Result<(), Outcome> {
    let failed = |m: String| Outcome::Failed(m);
    let export_dir = PathBuf::from(format!("{}.parquet", c.dir.display()));
    let _ = fs::remove_dir_all(&export_dir);
    if let Some(parent) = c.dir.parent() {
        fs::create_dir_all(parent).map_err(|e| failed(format!("create {}: {e}", parent.display())))?;
    }
    let run = |cmd: &mut Command, what: &str| -> std::result::Result<String, Outcome> {
        let out = cmd.output().map_err(|e| failed(format!("cannot run {what}: {e}")))?;
        if !out.status.success() {
            return Err(failed(format!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim())));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    if !c.export_operators.is_empty() {
        // Every state of the operators, unedited; imported into the savepoint without them, or
        // into a new savepoint of the fixture's parallelism and max parallelism.
        let mut export = Command::new(bin);
        export.arg("export").arg(&f.path).arg("--to").arg(&export_dir);
        for op in &c.export_operators {
            export.args(["--operator", op]);
        }
        run(&mut export, "flinksnap export")?;
        if c.from_columns {
            let python = cache.join("venv-pyarrow/bin/python");
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/strip_registration.py");
            run(Command::new(&python).arg(&script).arg(&export_dir), &format!("{} (pyarrow, installed by .ci/run)", script.display()))?;
        }
        let mut import = Command::new(bin);
        import.arg("import").arg(&export_dir);
        match &c.edit_source {
            // (The p2 fixture's source runs at parallelism 1: the operators disagree.)
            Some(into) => import.arg("--into").arg(into).args(["--parallelism", &f.parallelism.to_string()]),
            None => import.args(["--new", "--max-parallelism", &f.max_parallelism.to_string(), "--parallelism", &f.parallelism.to_string()]),
        };
        // (`--type` of structs registered from their columns.)
        run(import.args(&c.args).arg(&c.dir).arg("--force"), "flinksnap import")?;
        return Ok(());
    }
    let mut export = Command::new(bin);
    export.arg("export").arg(&f.path).arg("--to").arg(&export_dir).args(["--operator", "keyed-long", "--operator", "keyed-string", "--operator", "op-state"]);
    for s in IMPORTED {
        export.args(["--state", s]);
    }
    run(&mut export, "flinksnap export")?;
    let python = cache.join("venv-pyarrow/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/import_edit.py");
    let expected = c.expected.as_ref().ok_or_else(|| failed("no expected file for the import".into()))?;
    run(Command::new(&python).arg(&script).arg(&export_dir).arg(&f.expected).arg(expected), &format!("{} (pyarrow, installed by .ci/run)", script.display()))?;
    // Into the fixture, or into an earlier edit of it (a state dropped: the import adds it anew).
    let into = c.edit_source.as_ref().unwrap_or(&f.path);
    run(Command::new(bin).arg("import").arg(&export_dir).arg("--into").arg(into).arg(&c.dir).arg("--force"), "flinksnap import")?;
    Ok(())
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
