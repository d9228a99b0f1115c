//! `cargo xtask interop`, SQL part: every SQL fixture snapshot (`testdata/flink-V/sql-*`) is
//! converted with flinksnap and restored by the same SQL job (from its compiled plan,
//! `SqlRestore`) into HashMap and RocksDB; the incremental RocksDB checkpoint also with max
//! parallelism 128 → 256. Each restored job is fed the third input phase and the end of input,
//! and what its sinks then hold must equal what the job holds when restored from the unconverted
//! canonical HashMap savepoint (the reference), and the job must have run on the backend asked for.
//!
//! Two more savepoints per snapshot test flinksnap's SQL writers (issue 19): `~imported`, the
//! snapshot exported to Parquet and imported into itself (every state but CEP's, which flinksnap
//! cannot write yet: every SQL value re-encoded by flinksnap), must give the reference's output
//! too; `~forgot`, one key per keyed operator forgotten with `edit --forget-key` (the key's bytes
//! and key group computed from its dump JSON), must restore and run on the backend asked for
//! (its output differs from the reference's where the forgotten keys had state, which is not
//! predicted here). `~typed` (the `sql` job's canonical savepoints): SQL operators dropped and
//! imported back from Parquet files without their recorded registrations, registered from the
//! columns' types with `import --type '*/*=rowdata'`, must give the reference's output.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as J;

use crate::{compile_into, ensure_dist, java_job, run_cmd, Result, Tools};

/// One restore: a snapshot (unconverted or converted) into a backend at a max parallelism.
struct Task {
    name: String,
    snapshot: PathBuf,
    backend: &'static str,
    max_parallelism: u32,
    job: String,
    plan: PathBuf,
    out: PathBuf,
    /// Whether the output must equal the reference's (not for `~forgot`).
    same_output: bool,
}

/// Outcome counts for the interop summary.
#[derive(Default)]
pub struct SqlTotals {
    pub ok: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// The SQL cases under `dir` (a version's testdata/, or `sql-matrix`'s generated cases):
/// (case dir, case.json), sorted.
pub fn sql_cases(dir: &Path) -> Vec<(PathBuf, J)> {
    let mut out: Vec<(PathBuf, J)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter_map(|p| {
            let case: J = serde_json::from_str(&fs::read_to_string(p.join("case.json")).ok()?).ok()?;
            case["job"].as_str().is_some_and(|j| j.starts_with("sql")).then_some((p, case))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `flinksnap export --format parquet` of `src`, the manifest cut to the states flinksnap can
/// write (CEP's are read-only), then `flinksnap import` of it into `src`: `dst`.
fn export_import(bin: &Path, src: &Path, export: &Path, dst: &Path) -> std::result::Result<(), String> {
    let run = |args: &[&std::ffi::OsStr]| -> std::result::Result<(), String> {
        let out = Command::new(bin).args(args).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("flinksnap {:?} failed: {}", args.first(), String::from_utf8_lossy(&out.stderr).trim()))
        }
    };
    let _ = fs::remove_dir_all(export);
    let _ = fs::remove_dir_all(dst);
    run(&["export".as_ref(), src.as_os_str(), "--to".as_ref(), export.as_os_str(), "--format".as_ref(), "parquet".as_ref()])?;
    let path = export.join("manifest.json");
    let mut m: J = serde_json::from_str(&fs::read_to_string(&path).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    if let Some(states) = m["states"].as_array_mut() {
        states.retain(|s| !s["columns"].as_array().into_iter().flatten().any(|c| c["serializer"].as_str().is_some_and(|x| x.starts_with("org.apache.flink.cep."))));
    }
    fs::write(&path, serde_json::to_vec(&m).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    run(&["import".as_ref(), export.as_os_str(), "--into".as_ref(), src.as_os_str(), dst.as_os_str()])
}

/// SQL operators whose every state is registered from its Parquet columns (`import --type
/// '*/*=rowdata'`): deduplication (CHAR(3) keys), rank (DECIMAL row user keys, lists of rows),
/// changelog normalisation, interval join (Tuple2<RowData, Boolean> lists), 2.x's deduplication
/// keeping rows with a TIMESTAMP(3) *ROWTIME* field. By plan uid.
const TYPED_OPERATORS: &[&str] = &["113_deduplicate", "116_rank", "8_changelog-normalize", "42_interval-join", "105_deduplicate"];

/// `~typed`: [`TYPED_OPERATORS`] exported, the registrations `export` records stripped from
/// their files (`scripts/strip_registration.py`, as another tool's files lack them), the
/// operators dropped from `src` (`edit --drop-operator`), then imported back into it as new
/// operators with `--type '*/*=rowdata'`: every serializer snapshot written from the columns'
/// types. How many operators.
fn typed_import(bin: &Path, cache: &Path, src: &Path, export: &Path, dst: &Path) -> std::result::Result<usize, String> {
    let run = |cmd: &mut Command, what: &str| -> std::result::Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    };
    let dropped = PathBuf::from(format!("{}.dropped", dst.display()));
    for d in [export, dst, dropped.as_path()] {
        let _ = fs::remove_dir_all(d);
    }
    let ids: Vec<String> = TYPED_OPERATORS.iter().map(|u| flinksnap::model::OperatorId::from_uid(u).to_hex()).collect();
    run(Command::new(bin).arg("export").arg(src).arg("--to").arg(export), "flinksnap export")?;
    let path = export.join("manifest.json");
    let mut m: J = serde_json::from_str(&fs::read_to_string(&path).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let mut present: Vec<String> = Vec::new();
    if let Some(states) = m["states"].as_array_mut() {
        states.retain(|s| ids.iter().any(|id| s["operator_id"] == *id.as_str()));
        for s in states.iter() {
            let id = s["operator_id"].as_str().unwrap_or_default().to_owned();
            if !present.contains(&id) {
                present.push(id);
            }
        }
    }
    if present.is_empty() {
        return Err(format!("none of {TYPED_OPERATORS:?} in {}", src.display()));
    }
    fs::write(&path, serde_json::to_vec(&m).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/strip_registration.py");
    run(Command::new(cache.join("venv-pyarrow/bin/python")).arg(&script).arg(export), &format!("{} (pyarrow, installed by .ci/run)", script.display()))?;
    let mut edit = Command::new(bin);
    edit.arg("edit").arg(src).arg(&dropped);
    for id in &present {
        edit.args(["--drop-operator", id]);
    }
    run(&mut edit, "flinksnap edit --drop-operator")?;
    run(Command::new(bin).arg("import").arg(export).arg("--into").arg(&dropped).arg(dst).args(["--type", "*/*=rowdata"]), "flinksnap import --type '*/*=rowdata'")?;
    Ok(present.len())
}

/// `flinksnap edit src dst --forget-key OP=KEY` for the key of the first entry of every keyed
/// operator, as `dump` prints it: how many keys.
fn forget_keys(bin: &Path, src: &Path, dst: &Path) -> std::result::Result<usize, String> {
    let out = Command::new(bin).arg("dump").arg(src).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("flinksnap dump {} failed: {}", src.display(), String::from_utf8_lossy(&out.stderr).trim()));
    }
    let mut keys: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(e) = serde_json::from_str::<J>(line) else { continue };
        if let (Some(op), false) = (e["operator_id"].as_str(), e["key"].is_null()) {
            keys.entry(op.to_owned()).or_insert_with(|| e["key"].to_string());
        }
    }
    let _ = fs::remove_dir_all(dst);
    let mut cmd = Command::new(bin);
    cmd.arg("edit").arg(src).arg(dst);
    for (op, k) in &keys {
        cmd.arg("--forget-key").arg(format!("{op}={k}"));
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(keys.len())
    } else {
        Err(format!("flinksnap edit --forget-key {} failed: {}", src.display(), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn convert(bin: &Path, src: &Path, dst: &Path, extra: &[&str]) -> std::result::Result<(), String> {
    let out = Command::new(bin).arg("convert").arg(src).arg(dst).arg("--force").args(extra).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("flinksnap convert {} failed: {}", src.display(), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Runs the SQL interop of one version; `work` is the version's interop work directory.
pub fn run(tools: &Tools, repo: &Path, cache: &Path, bin: &Path, v: &str, work: &Path, only: &[String]) -> Result<SqlTotals> {
    let cases: Vec<(PathBuf, J)> = sql_cases(&repo.join("testdata").join(format!("flink-{v}"))).into_iter().filter(|(_, c)| only.is_empty() || only.iter().any(|o| c["case"] == *o.as_str())).collect();
    run_cases(tools, repo, cache, bin, v, work, &cases)
}

/// [`run`] on these cases (`sql-matrix` gives generated ones).
pub fn run_cases(tools: &Tools, repo: &Path, cache: &Path, bin: &Path, v: &str, work: &Path, cases: &[(PathBuf, J)]) -> Result<SqlTotals> {
    let mut totals = SqlTotals::default();
    if cases.is_empty() {
        return Ok(totals);
    }
    let work = work.join("sql");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let mut tasks = Vec::new();
    let mut failures = Vec::new();
    for (dir, case) in cases {
        let name = case["case"].as_str().unwrap_or_default().to_owned();
        let job = case["job"].as_str().unwrap_or_default().to_owned();
        let plan = dir.join(case["plan"].as_str().unwrap_or_default());
        let snap = dir.join(case["snapshots"][0]["path"].as_str().unwrap_or_default());
        let reference = case["backend"] == "hashmap" && case["format"] == "canonical";
        if reference {
            tasks.push(Task { name: format!("{name}~reference"), snapshot: snap.clone(), backend: "hashmap", max_parallelism: 128, job: job.clone(), plan: plan.clone(), out: work.join(format!("{job}.reference.txt")), same_output: true });
        }
        let mut variants: Vec<(String, Vec<&str>, u32)> = vec![(String::new(), vec![], 128)];
        if case["format"] == "incremental" {
            variants.push(("~maxp256".into(), vec!["--max-parallelism", "256"], 256));
        }
        let mut written: Vec<(String, PathBuf, u32, bool)> = Vec::new();
        for (suffix, args, maxp) in variants {
            let conv = work.join("savepoints").join(format!("{name}{suffix}"));
            if let Err(e) = convert(bin, &snap, &conv, &args) {
                failures.push(format!("{name}{suffix}: {e}"));
                continue;
            }
            written.push((suffix, conv, maxp, true));
        }
        let imported = work.join("savepoints").join(format!("{name}~imported"));
        match export_import(bin, &snap, &work.join("exports").join(&name), &imported) {
            Ok(()) => written.push(("~imported".into(), imported, 128, true)),
            Err(e) => failures.push(format!("{name}~imported: {e}")),
        }
        // 1.15 sets no uids (operator ids hash the graph): the operators cannot be named by
        // their plan uids there, and 1.18+ covers the same registrations.
        if reference && job == "sql" && v.starts_with("1.15.") {
            println!("skipped {v} {name}~typed: 1.15's operators have no plan uids (by design)");
            totals.skipped += 1;
        }
        if reference && job == "sql" && !v.starts_with("1.15.") {
            let typed = work.join("savepoints").join(format!("{name}~typed"));
            match typed_import(bin, cache, &snap, &work.join("exports").join(format!("{name}~typed")), &typed) {
                Ok(_) => written.push(("~typed".into(), typed, 128, true)),
                Err(e) => failures.push(format!("{name}~typed: {e}")),
            }
        }
        let forgot = work.join("savepoints").join(format!("{name}~forgot"));
        match forget_keys(bin, &snap, &forgot) {
            Ok(_) => written.push(("~forgot".into(), forgot, 128, false)),
            Err(e) => failures.push(format!("{name}~forgot: {e}")),
        }
        for (suffix, conv, maxp, same_output) in written {
            for backend in ["hashmap", "rocksdb"] {
                tasks.push(Task {
                    name: format!("{name}{suffix}~{backend}"),
                    snapshot: conv.clone(),
                    backend,
                    max_parallelism: maxp,
                    job: job.clone(),
                    plan: plan.clone(),
                    out: work.join(format!("{name}{suffix}~{backend}.txt")),
                    same_output,
                });
            }
        }
    }
    let lines: Vec<String> = tasks
        .iter()
        .map(|t| format!("{}\t{}\t{}\t{}\t{}\t{}\t{}", t.name, t.snapshot.display(), t.backend, t.max_parallelism, t.job, t.plan.display(), t.out.display()))
        .collect();
    let tasks_file = work.join("tasks.tsv");
    fs::write(&tasks_file, lines.join("\n") + "\n").map_err(|e| e.to_string())?;
    let dist = ensure_dist(tools, cache, v)?;
    let classes = work.join("classes");
    compile_into(tools, repo, v, &dist, &classes)?;
    let tmp = work.join("tmp");
    fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    println!("== interop {v}: SQL, {} restores of {} SQL snapshots", tasks.len(), cases.len());
    let mut cmd = java_job(tools, repo, v, 1536, &tmp, &classes, &dist.sql_classpath(), "flinksnap.fixtures.SqlRestore");
    cmd.args(["--flink-version", v]).arg("--work").arg(work.join("jvm")).arg("--tasks").arg(&tasks_file);
    run_cmd(&mut cmd, &format!("flink {v} SQL restores"))?;
    let want_backend = |b: &str| if b == "hashmap" { "HashMapStateBackend" } else { "EmbeddedRocksDBStateBackend" };
    for t in tasks.iter().filter(|t| !t.name.ends_with("~reference")) {
        let reference = work.join(format!("{}.reference.txt", t.job));
        let verdict = (|| -> std::result::Result<(), String> {
            let got = fs::read_to_string(&t.out).map_err(|_| {
                fs::read_to_string(t.out.with_extension("txt.error")).unwrap_or_else(|_| "no output".into()).lines().take(3).collect::<Vec<_>>().join(" / ")
            })?;
            let want = fs::read_to_string(&reference).map_err(|_| format!("no reference output {}", reference.display()))?;
            let (first, body) = got.split_once('\n').unwrap_or((&got, ""));
            if first != format!("# backend: {}", want_backend(t.backend)) {
                return Err(format!("ran on {first:?}, not {}", t.backend));
            }
            let want_body = want.split_once('\n').map_or("", |(_, b)| b);
            if t.same_output && body != want_body {
                let diff: Vec<&str> = body.lines().filter(|l| !want_body.lines().any(|w| w == *l)).take(3).collect();
                return Err(format!("the job's output differs from the unconverted restore's, e.g. {diff:?}"));
            }
            Ok(())
        })();
        match verdict {
            Ok(()) => {
                totals.ok += 1;
                println!("ok      {v} {}", t.name);
            }
            Err(e) => {
                totals.failed += 1;
                println!("FAILED  {v} {}: {e}", t.name);
            }
        }
    }
    for f in failures {
        totals.failed += 1;
        println!("FAILED  {v} {f}");
    }
    Ok(totals)
}
