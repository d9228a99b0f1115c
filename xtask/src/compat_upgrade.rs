//! `compat --flink-version 2.x` against real upgrades (issue 18): Flink 1.x fixture snapshots
//! restored by Flink 2.x, state by state, and compat's upgrade findings compared with what
//! Flink did.
//!
//! - The serializers fixture (`testdata/serializers/flink-1.20.5/{heap,rocksdb}-savepoint-canonical`:
//!   Either, enum, Java serialization, Nullable, Value types, Kryo, Scala, a list, async I/O in
//!   flight) is restored whole, and once per keyed state of its `serializers` operator with every
//!   other keyed state dropped by `flinksnap edit --drop-state` (one failing state would hide the
//!   others: a serializer snapshot class that does not exist fails the whole operator), into
//!   the backend it was taken with (HashMap deserializes every state at restore, RocksDB only
//!   what the job registers and reads: the job registers and reads every state it restores,
//!   for every key, and compares the values with what the 1.x job wrote);
//! - the sources fixture (`heap-savepoint-sources`: a FileSource split in the middle of its
//!   file, the legacy FlinkKafkaConsumer's union state) whole and per operator;
//! - the DataStream fixture's canonical savepoints (heap and RocksDB) by the fixture job of the
//!   2.x release, into both backends, compared with the 1.x fixture's expected contents
//!   (`interop::restore_other_release`).
//!
//! Then `flinksnap compat SNAPSHOT --against <the 2.x fixture of the same job> --flink-version
//! 2.x` must flag exactly the states Flink rejected (an incompatible finding on that state, with
//! the reason Flink's error names: Scala, Kryo), and say "incompatible" for a whole snapshot
//! exactly when Flink refused it. `flinksnap` decides from the 1.x snapshot's serializer
//! snapshots alone; the restores are what it is checked against.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value as J;

use crate::{java_job, run_cmd, Dist, Result, Tools};

/// The 1.x release whose fixtures are upgraded, and the 2.x release that restores them.
pub(crate) const FROM: &str = "1.20.5";
pub(crate) const INTO: &str = "2.3.0";

/// The first `savepoint-*` directory in `dir`.
fn savepoint_in(dir: &Path) -> Result<PathBuf> {
    fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("savepoint-")))
        .ok_or_else(|| format!("no savepoint-* in {}", dir.display()))
}

fn read_json(p: &Path) -> Result<J> {
    serde_json::from_str(&fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?).map_err(|e| format!("{}: {e}", p.display()))
}

/// `--uid` arguments for every uid of a case (1.x snapshots store none).
fn uid_args(case: &J) -> Vec<String> {
    case["uids"].as_object().into_iter().flatten().flat_map(|(u, _)| ["--uid".to_owned(), u.clone()]).collect()
}

/// The states of the operator `uid` in the snapshot, with their kinds (`compat --describe`).
fn states_of(bin: &Path, sp: &Path, case: &J, uid: &str) -> Result<Vec<(String, String)>> {
    let out = Command::new(bin).arg("compat").arg("--describe").arg(sp).args(uid_args(case)).output().map_err(|e| format!("run flinksnap: {e}"))?;
    if !out.status.success() {
        return Err(format!("flinksnap compat --describe {}: {}", sp.display(), String::from_utf8_lossy(&out.stderr)));
    }
    let d: J = serde_json::from_slice(&out.stdout).map_err(|e| format!("compat --describe: {e}"))?;
    let id = case["uids"][uid].as_str().ok_or_else(|| format!("case.json has no uid {uid}"))?;
    let op = d["operators"].as_array().into_iter().flatten().find(|o| o["id"] == id).ok_or_else(|| format!("{}: no operator {uid} ({id})", sp.display()))?;
    Ok(op["states"].as_array().into_iter().flatten().filter_map(|s| Some((s["name"].as_str()?.to_owned(), s["kind"].as_str()?.to_owned()))).collect())
}

/// `flinksnap edit SRC DST ARGS...`.
fn edit(bin: &Path, src: &Path, dst: &Path, args: &[String]) -> Result<()> {
    let _ = fs::remove_dir_all(dst);
    let out = Command::new(bin).arg("edit").arg(src).arg(dst).args(args).output().map_err(|e| format!("run flinksnap: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("flinksnap edit {} {args:?}: {}", src.display(), String::from_utf8_lossy(&out.stderr)))
    }
}

/// What a 2.x restore did with one state (or a whole snapshot).
struct Restored {
    /// Flink restored it and every value read back equal.
    ok: bool,
    /// The result line (`ok …` or `failed <trace>`).
    text: String,
}

/// Why Flink refused, as compat names it: the words a finding's message must contain.
fn flink_reason(trace: &str) -> &'static str {
    let t = trace.to_ascii_lowercase();
    if t.contains("org.apache.flink.api.scala") || t.contains("scala.") {
        "scala"
    } else if t.contains("kryo") {
        "kryo"
    } else {
        "other"
    }
}

/// A finding of compat's report: (state, check, severity, message).
type Found = (String, String, String, String);

/// compat's JSON report: exit code, and the incompatible findings and the upgrade warnings.
fn compat(bin: &Path, sp: &Path, target: &Path, backend: &str, case: &J) -> Result<(i32, Vec<Found>)> {
    let out = Command::new(bin)
        .arg("compat")
        .arg(sp)
        .arg("--against")
        .arg(target)
        .args(["--flink-version", "2.x", "--backend", backend, "--format", "json"])
        .args(uid_args(case))
        .output()
        .map_err(|e| format!("run flinksnap: {e}"))?;
    let r: J = serde_json::from_slice(&out.stdout).map_err(|e| format!("compat {}: {e}: {}", sp.display(), String::from_utf8_lossy(&out.stderr)))?;
    let findings = r["data"]["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["severity"] == "incompatible" || (f["severity"] == "warning" && f["check"] == "upgrade"))
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or("").to_owned();
            (s("state"), s("check"), s("severity"), s("message"))
        })
        .collect();
    Ok((out.status.code().unwrap_or(-1), findings))
}

/// A file the fixture job read, put back where its restored state points (a FileSource split
/// records the path) while the restores run; removed afterwards with whatever was created.
struct PlacedFile(Option<PathBuf>);

impl PlacedFile {
    fn place(path: &Path, content: &str) -> Result<PlacedFile> {
        if path.exists() {
            return Ok(PlacedFile(None));
        }
        // The topmost directory that does not exist yet: removed afterwards.
        let mut top = path.to_path_buf();
        while let Some(p) = top.parent() {
            if p.exists() {
                break;
            }
            top = p.to_path_buf();
        }
        fs::create_dir_all(path.parent().unwrap_or(Path::new("/"))).map_err(|e| format!("create {}: {e}", path.display()))?;
        fs::write(path, content).map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(PlacedFile(Some(top)))
    }
}

impl Drop for PlacedFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = if p.is_dir() { fs::remove_dir_all(p) } else { fs::remove_file(p) };
        }
    }
}

/// A serializers fixture to judge: (case, backend, snapshot, case.json, [(state, task index)],
/// the whole snapshot's task index).
type Judged = (&'static str, &'static str, PathBuf, J, Vec<(String, usize)>, usize);

/// A DataStream restore: its name, and the entries equal or why not.
type DataStreamRestore = (String, std::result::Result<usize, String>);

/// One restore of the upgrade JVM (`UpgradeRestore`).
struct Task {
    name: String,
    job: &'static str,
    dir: PathBuf,
    backend: &'static str,
    states: Vec<String>,
}

/// Runs the upgrade check; mismatches go to `failures`, one line each. Returns the restores
/// checked.
pub(crate) fn check(tools: &Tools, repo: &Path, bin: &Path, dist: &Dist, classes: &Path, work: &Path, failures: &mut Vec<String>) -> Result<usize> {
    let t0 = Instant::now();
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work.join("tmp")).map_err(|e| e.to_string())?;
    let from_dir = repo.join("testdata").join("serializers").join(format!("flink-{FROM}"));
    let into_dir = repo.join("testdata").join("serializers").join(format!("flink-{INTO}"));
    let mut tasks: Vec<Task> = Vec::new();
    let mut judged: Vec<Judged> = Vec::new();
    for (case, backend) in [("heap-savepoint-canonical", "hashmap"), ("rocksdb-savepoint-canonical", "rocksdb")] {
        let sp = savepoint_in(&from_dir.join(case))?;
        let cj = read_json(&from_dir.join(case).join("case.json"))?;
        let keyed: Vec<String> = states_of(bin, &sp, &cj, "serializers")?.into_iter().filter(|(_, k)| !k.starts_with("operator_") && k != "broadcast" && k != "timer").map(|(n, _)| n).collect();
        if keyed.len() < 10 {
            return Err(format!("{}: only {} keyed states in `serializers`: {keyed:?}", sp.display(), keyed.len()));
        }
        let whole = work.join(case).join("whole").join(sp.file_name().unwrap_or_default());
        crate::copy_tree(&sp, &whole)?;
        let whole_i = tasks.len();
        tasks.push(Task { name: format!("{case} (whole)"), job: "serializers", dir: whole, backend, states: keyed.clone() });
        let mut per_state = Vec::new();
        for s in &keyed {
            let dst = work.join(case).join(format!("only-{s}"));
            let args: Vec<String> = keyed.iter().filter(|o| *o != s).flat_map(|o| ["--drop-state".to_owned(), format!("serializers/{o}")]).collect();
            edit(bin, &sp, &dst, &args)?;
            per_state.push((s.clone(), tasks.len()));
            tasks.push(Task { name: format!("{case} only {s}"), job: "serializers", dir: dst, backend, states: vec![s.clone()] });
        }
        judged.push((case, backend, sp, cj, per_state, whole_i));
    }
    // The sources fixture: whole, and each source's state alone.
    let case = "heap-savepoint-sources";
    let sp = savepoint_in(&from_dir.join(case))?;
    let cj = read_json(&from_dir.join(case).join("case.json"))?;
    let file = cj["file"].as_str().and_then(|f| f.strip_prefix("file:")).ok_or("heap-savepoint-sources/case.json: no `file`")?;
    let lines: String = (0..100_000).map(|i| format!("line{i:05}\n")).collect();
    // The same location for every run on the machine: runs take turns (released at the end).
    let _lock = crate::interop::lock(Path::new(file))?;
    let _placed = PlacedFile::place(Path::new(file), &lines)?;
    let whole = work.join(case).join("whole").join(sp.file_name().unwrap_or_default());
    crate::copy_tree(&sp, &whole)?;
    let sources_whole = tasks.len();
    let both = vec!["topic-partition-offset-states".to_owned(), "file-source".to_owned()];
    tasks.push(Task { name: format!("{case} (whole)"), job: "sources", dir: whole, backend: "hashmap", states: both });
    let mut source_states = Vec::new();
    for (state, operator, drop) in [("topic-partition-offset-states", "legacy-kafka", "file-source"), ("file-source", "file-source", "legacy-kafka")] {
        let dst = work.join(case).join(format!("only-{operator}"));
        edit(bin, &sp, &dst, &["--drop-operator".to_owned(), drop.to_owned()])?;
        source_states.push((state, operator, tasks.len()));
        tasks.push(Task { name: format!("{case} only {operator}"), job: "sources", dir: dst, backend: "hashmap", states: vec![state.to_owned()] });
    }
    // One JVM, one MiniCluster for every restore.
    let results: Vec<PathBuf> = (0..tasks.len()).map(|i| work.join(format!("task-{i}.result"))).collect();
    let lines: Vec<String> = tasks.iter().zip(&results).map(|(t, r)| format!("{}|{}|{}|{}|{}|{}", t.name, t.job, t.dir.display(), t.backend, if t.states.is_empty() { "-".to_owned() } else { t.states.join(",") }, r.display())).collect();
    let tasks_file = work.join("tasks.txt");
    fs::write(&tasks_file, lines.join("\n") + "\n").map_err(|e| e.to_string())?;
    let tj = Instant::now();
    let mut cmd = java_job(tools, repo, INTO, 1024, &work.join("tmp"), classes, &dist.classpath, "flinksnap.fixtures.UpgradeRestore");
    cmd.arg(work.join("jvm")).arg(&tasks_file);
    run_cmd(&mut cmd, "UpgradeRestore")?;
    drop(_placed);
    drop(_lock);
    let jvm_s = tj.elapsed().as_secs_f64();
    let restored: Vec<Restored> = results
        .iter()
        .map(|r| {
            let text = fs::read_to_string(r).unwrap_or_else(|e| format!("failed no result {}: {e}", r.display()));
            Restored { ok: text.starts_with("ok "), text }
        })
        .collect();
    let mut checked = 0;
    let mut table: Vec<String> = Vec::new();
    for (case, backend, sp, cj, per_state, whole_i) in &judged {
        let target = savepoint_in(&into_dir.join(case))?;
        let (code, findings) = compat(bin, sp, &target, backend, cj)?;
        for (s, i) in per_state {
            judge_state(&mut checked, format!("serializers {case} → {backend}: state {s}"), s, &restored[*i], &findings, &mut table, failures);
        }
        // The async operator's in-flight elements: restored in every run that restored at all.
        let async_ok = per_state.iter().any(|(_, i)| restored[*i].ok);
        let async_r = Restored { ok: async_ok, text: if async_ok { "ok 6 in-flight elements invoked again".into() } else { "failed no restore of the operator succeeded".into() } };
        judge_state(&mut checked, format!("serializers {case} → {backend}: async in-flight elements"), "_async_wait_operator_state_", &async_r, &findings, &mut table, failures);
        checked += 1;
        let whole = &restored[*whole_i];
        let r = match (whole.ok, code) {
            (true, 0) => Ok("Flink restored it; compat exit 0".to_owned()),
            (false, 1) => Ok(format!("Flink refused it ({}); compat exit 1", first_cause(&whole.text))),
            (ok, c) => Err(format!("Flink {} it ({}), compat exit {c}", if ok { "restored" } else { "refused" }, first_cause(&whole.text))),
        };
        verdict(format!("serializers {case} → {backend} (whole)"), r, failures);
    }
    {
        let target = savepoint_in(&into_dir.join(case))?;
        let (code, findings) = compat(bin, &sp, &target, "hashmap", &cj)?;
        for (state, operator, i) in &source_states {
            // The FileSource's state is its reader's `SourceReaderState`.
            let s = if *operator == "file-source" { "SourceReaderState" } else { state };
            judge_state(&mut checked, format!("sources {case} → hashmap: {operator} {s}"), s, &restored[*i], &findings, &mut table, failures);
        }
        checked += 1;
        let whole = &restored[sources_whole];
        let r = match (whole.ok, code) {
            (true, 0) => Ok("Flink restored it; compat exit 0".to_owned()),
            (false, 1) => Ok(format!("Flink refused it ({}); compat exit 1", first_cause(&whole.text))),
            (ok, c) => Err(format!("Flink {} it ({}), compat exit {c}", if ok { "restored" } else { "refused" }, first_cause(&whole.text))),
        };
        verdict(format!("sources {case} (whole)"), r, failures);
    }
    // The DataStream fixture job's canonical savepoints, by the fixture job of INTO.
    let cases = vec!["heap-savepoint-canonical".to_owned(), "rocksdb-savepoint-canonical".to_owned()];
    let ds = crate::interop::restore_other_release(tools, repo, FROM, INTO, &dist.classpath, classes, &work.join("datastream"), &cases)?;
    let mut by_case: BTreeMap<&str, Vec<&DataStreamRestore>> = BTreeMap::new();
    for r in &ds {
        let case = cases.iter().find(|c| r.0.contains(&format!("/{c}->"))).map(String::as_str).unwrap_or("?");
        by_case.entry(case).or_default().push(r);
    }
    for case in &cases {
        let d = repo.join("testdata").join(format!("flink-{FROM}")).join(case);
        let sp = savepoint_in(&d)?;
        let cj = read_json(&d.join("case.json"))?;
        let target = savepoint_in(&repo.join("testdata").join(format!("flink-{INTO}")).join(case))?;
        let restores = by_case.get(case.as_str()).cloned().unwrap_or_default();
        if restores.is_empty() {
            failures.push(format!("upgrade datastream {case}: no restore ran"));
            continue;
        }
        for backend in ["hashmap", "rocksdb"] {
            checked += 1;
            let Some((name, r)) = restores.iter().find(|r| r.0.contains(&format!("-{backend}-"))).map(|r| (&r.0, &r.1)) else {
                failures.push(format!("upgrade datastream {case} → {backend}: no restore ran"));
                continue;
            };
            let (code, findings) = compat(bin, &sp, &target, backend, &cj)?;
            let res = match (r, code) {
                (Ok(n), 0) => Ok(format!("Flink restored it, {n} entries equal to the 1.x job's; compat exit 0")),
                (Err(e), 1) => Ok(format!("Flink did not restore it ({e}); compat exit 1: {findings:?}")),
                (Ok(n), c) => Err(format!("Flink restored it ({n} entries equal), compat exit {c}: {findings:?}")),
                (Err(e), c) => Err(format!("Flink did not restore it ({e}), compat exit {c}")),
            };
            table.push(format!("datastream {case} → {backend}\t{}\t{}\t{}", if r.is_ok() { "restores" } else { "rejects" }, r.as_ref().map(|n| format!("{n} entries equal")).unwrap_or_else(|e| e.clone()), if code == 0 { "compatible" } else { "flagged" }));
            verdict(format!("datastream {name}"), res, failures);
        }
    }
    let table_file = work.join("upgrade-table.tsv");
    let _ = fs::write(&table_file, table.join("\n") + "\n");
    println!("compat-interop upgrade {FROM}→{INTO}: {checked} checks, {} restores in {:.0} s (JVM {jvm_s:.0} s); table: {}", tasks.len() + ds.len(), t0.elapsed().as_secs_f64(), table_file.display());
    Ok(checked)
}

fn verdict(what: String, r: std::result::Result<String, String>, failures: &mut Vec<String>) {
    match r {
        Ok(m) => println!("compat-interop upgrade {FROM}→{INTO} {what}: OK: {m}"),
        Err(m) => {
            println!("compat-interop upgrade {FROM}→{INTO} {what}: MISMATCH: {m}");
            failures.push(format!("upgrade {what}: {m}"));
        }
    }
}

/// One state: compat flags it exactly when Flink rejected it, for Flink's reason.
fn judge_state(checked: &mut usize, what: String, state: &str, flink: &Restored, findings: &[Found], table: &mut Vec<String>, failures: &mut Vec<String>) {
    *checked += 1;
    let flagged: Vec<&Found> = findings.iter().filter(|f| f.0 == state && f.2 == "incompatible").collect();
    let warned: Vec<&Found> = findings.iter().filter(|f| f.0 == state && f.2 == "warning").collect();
    let mut said = if flagged.is_empty() { "not flagged".to_owned() } else { flagged.iter().map(|f| format!("{} incompatible: {}", f.1, f.3)).collect::<Vec<_>>().join(" | ") };
    for w in warned {
        said.push_str(&format!(" | {} warning: {}", w.1, w.3));
    }
    let flink_said = if flink.ok { flink.text[3..].to_owned() } else { first_cause(&flink.text) };
    table.push(format!("{what}\t{}\t{}\t{said}", if flink.ok { "restores" } else { "rejects" }, flink_said));
    let r = if flink.ok {
        if flagged.is_empty() {
            Ok(format!("Flink {INTO} restored it, every value equal; compat: not flagged"))
        } else {
            Err(format!("Flink {INTO} restored it ({flink_said}), compat flags it: {said}"))
        }
    } else {
        let reason = flink_reason(&flink.text);
        let right = flagged.iter().any(|f| reason == "other" || f.3.to_ascii_lowercase().contains(reason));
        if right {
            Ok(format!("Flink {INTO} rejects it ({reason}: {flink_said}); compat: {said}"))
        } else {
            Err(format!("Flink {INTO} rejects it ({reason}: {flink_said}); compat: {said}"))
        }
    };
    verdict(what, r, failures);
}

/// The innermost `Caused by:` of a result line's trace (or its start).
fn first_cause(text: &str) -> String {
    let t = text.strip_prefix("failed ").unwrap_or(text);
    let c = t.rsplit("Caused by: ").next().unwrap_or(t);
    let c = c.split("\tat ").next().unwrap_or(c).trim();
    c.chars().take(240).collect()
}
