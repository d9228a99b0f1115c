//! `cargo xtask interop`: real Flink restores what `flinksnap convert` writes.
//!
//! For every fixture snapshot under `testdata/` (every version, both backends, every format the
//! readers of this build understand) it converts the snapshot with the flinksnap binary into a
//! canonical savepoint, restores that savepoint in the real Flink of the fixture's version into
//! the HashMap and into the RocksDB backend (the fixture job in restore mode: same operators and
//! uids, see `flink-job/.../Restore.java`), reads every state back through Flink, and compares
//! it with the fixture's `expected.jsonl`. A few variants also change the max parallelism
//! (128 -> 256, 128 -> 32768, 32768 -> 128) and restore with another parallelism.
//!
//! Fixtures whose format the readers of this build do not understand yet (convert reports "not
//! readable yet") are listed as skipped, not failed: they join as readers arrive.
//!
//! One JVM per Flink version runs all of that version's restores (a MiniCluster each), which is
//! what keeps the whole run within CI's budget.
//!
//! Two more checks use the same JVM run:
//!
//! * **gc, then restore** (issue 7), on every checkpoint chain (`rocksdb-checkpoint-incremental`):
//!   a copy of the chain's job directory is put where Flink wrote it (`generated_case_dir`, so
//!   the absolute paths in `_metadata` resolve), the oldest checkpoint is deleted, and
//!   `flinksnap gc --delete --older-than 0s` must remove exactly the files only that checkpoint
//!   referenced, as computed from Flink's own view of each `_metadata` (the `metadata-chk-N.json`
//!   oracles); every file of the remaining checkpoints must still exist, and each remaining
//!   checkpoint is restored as it is (no conversion) into RocksDB and compared.
//! * **relocate, then restore**: every fixture snapshot is copied with `flinksnap relocate`, the
//!   copy is renamed (so any absolute path left in it would dangle), restored into the backend
//!   it was taken with (canonical savepoints into both) and
//!   compared; the fixture must be unchanged afterwards. Changelog checkpoints restore through
//!   Flink's changelog migration path (the job does not enable the changelog backend).
//!   Unaligned checkpoints restore into the unaligned run's job, and their in-flight records must
//!   be replayed (counted by the job).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value as J;

use crate::{cache_dir, compile_into, ensure_dist, generation, java_job, repo_root, Result, Tools, DEFAULT_VERSIONS};

mod cross_job;
mod edit;

/// Extra conversions and restores beyond "every snapshot into both backends at its own
/// parallelism": changed max parallelism (keys move to new key groups) restored at another
/// parallelism, and compression.
struct Variant {
    case: &'static str,
    /// `--max-parallelism` for convert (`None`: unchanged).
    max_parallelism: Option<u32>,
    compression: &'static str,
    /// (backend, parallelism) restores.
    restores: &'static [(&'static str, u32)],
    /// Only in `--full` runs.
    full_only: bool,
}

const VARIANTS: &[Variant] = &[
    Variant { case: "heap-savepoint-canonical", max_parallelism: Some(256), compression: "snappy", restores: &[("hashmap", 2), ("rocksdb", 1)], full_only: false },
    Variant { case: "heap-checkpoint", max_parallelism: Some(32768), compression: "none", restores: &[("rocksdb", 2), ("hashmap", 1)], full_only: false },
    Variant { case: "heap-savepoint-canonical-p2-maxp32768", max_parallelism: Some(128), compression: "none", restores: &[("hashmap", 1), ("rocksdb", 2)], full_only: false },
    Variant { case: "rocksdb-savepoint-canonical", max_parallelism: None, compression: "snappy", restores: &[("hashmap", 2)], full_only: true },
    // The headline case once the RocksDB reader is in: an incremental RocksDB checkpoint into a
    // job on HashMap, with more key groups and another parallelism.
    Variant { case: "rocksdb-checkpoint-incremental", max_parallelism: Some(256), compression: "none", restores: &[("hashmap", 2)], full_only: false },
    Variant { case: "rocksdb-checkpoint-incremental-p2-maxp32768", max_parallelism: Some(1024), compression: "snappy", restores: &[("hashmap", 1)], full_only: false },
];

/// One fixture snapshot.
struct Fixture {
    case: String,
    /// Absolute snapshot directory.
    path: PathBuf,
    /// `chk-N` of a chain, else empty.
    label: String,
    expected: PathBuf,
    parallelism: u32,
    max_parallelism: u32,
    compressed: bool,
    ttl_window: (i64, i64),
    /// The last snapshot of its case (chains have several).
    last_of_case: bool,
    /// The directory holding case.json.
    case_dir: PathBuf,
    /// Flink's own view of the snapshot's `_metadata` (`metadata*.json`, written by `Oracle`).
    oracle: PathBuf,
    /// Where the fixture job wrote the case (absolute paths in `_metadata` point there).
    generated_case_dir: Option<PathBuf>,
    /// How many snapshots its case has (more than one: a checkpoint chain).
    chain_len: usize,
    /// Its place in the case's snapshots (0: the oldest).
    chain_pos: usize,
    /// Its case is a restore case (issue 20: a job restored from the case's first job, `restore`
    /// in case.json).
    restore_case: bool,
    /// It is a checkpoint of the restored job.
    restored_job: bool,
    /// Flink cannot restore it as it is (`unsound` in case.json: FLINK-39964).
    unsound: bool,
}

impl Fixture {
    /// Where Flink wrote the snapshot's job directory (`generated_case_dir/<job id>`).
    fn original_job_dir(&self) -> Option<PathBuf> {
        let job = self.path.parent()?.file_name()?;
        Some(self.generated_case_dir.as_ref()?.join(job))
    }
}

/// How a snapshot was prepared for restoring.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `flinksnap convert` into a canonical savepoint.
    Convert,
    /// `flinksnap relocate`, then the copy renamed.
    Relocate,
    /// A checkpoint of a chain, restored as it is after the oldest one was deleted and
    /// `flinksnap gc --delete` ran; or of a restore case's restored job, after gc and delete
    /// on the job it was restored from.
    AfterGc,
    /// `flinksnap edit` (`edit.rs`).
    Edit,
    /// `flinksnap export`, the Parquet edited with pyarrow, `flinksnap import` (`edit.rs`).
    Import,
    /// The fixture restored as Flink wrote it (the savepoint of the job without uids, `edit.rs`).
    AsIs,
}

/// One snapshot prepared for restoring (shared by the restores of it).
struct Conversion {
    fixture: usize,
    kind: Kind,
    name: String,
    /// Extra `convert` arguments.
    args: Vec<String>,
    max_parallelism: u32,
    /// What is restored.
    dir: PathBuf,
    /// Relocate only: where `relocate` writes, before the rename to `dir`.
    staging: PathBuf,
    /// The restore job's topology (`Restore.java`): `default`; `unaligned`, the unaligned run's
    /// extra branch (`filter-filler` → `slow`), whose channels the in-flight data of an unaligned
    /// checkpoint belongs to; `nouids`, the job without uids; `nobroadcast`, without its
    /// broadcast operator (the last two for `edit.rs`).
    topology: &'static str,
    /// Edit only: what is edited (`None`: the fixture; else an earlier edit's output).
    edit_source: Option<PathBuf>,
    /// Rows of the fixture's expected contents the edit removed.
    removed: Vec<edit::Rows>,
    /// Flink must refuse to restore it (state it cannot map, allowNonRestoredState=false).
    refused: bool,
    /// Import only: the contents Flink must restore instead of the fixture's (written when the
    /// Parquet is edited).
    expected: Option<PathBuf>,
    /// Import only: export every state of these operators unedited and import them into
    /// `edit_source` (which dropped them, or some of their states: created anew), or with none
    /// into a new savepoint (`import --new`). Empty: the edited-Parquet import.
    export_operators: Vec<&'static str>,
    /// Import only, with `export_operators`: the exported files lose the registration export
    /// records (as files another tool wrote), so import registers their states from the
    /// columns' built-in types.
    from_columns: bool,
    /// `None` until run; `Some(Err)` when preparing failed or is unsupported.
    outcome: Option<std::result::Result<(), Outcome>>,
}

/// One restore into real Flink.
struct Restore {
    conversion: usize,
    backend: &'static str,
    parallelism: u32,
    name: String,
    out: PathBuf,
}

#[derive(Clone)]
enum Outcome {
    /// The readers of this build cannot read the source yet.
    Unsupported(String),
    Failed(String),
}

struct Options {
    jobs: usize,
    versions: Vec<String>,
    full: bool,
    release: bool,
    features: Option<String>,
    cases: Vec<String>,
    /// Work directory root (`<root>/<version>`); default `$FLINKSNAP_CACHE/flink/<version>/work/interop`.
    work: Option<PathBuf>,
    /// Convert and relocate from and into the S3 test server, restore what is downloaded.
    via_s3: bool,
}

fn usage() -> String {
    format!(
        "usage: cargo xtask interop [--flink VERSION]... [--case NAME]... [--full] [--release] [--features LIST]\n\
         \n\
         Converts every fixture snapshot with flinksnap, restores it in the real Flink of its version\n\
         into HashMap and RocksDB (plus max-parallelism and parallelism variants) and compares what\n\
         Flink reads back with the fixture's expected contents. Also relocates every fixture\n\
         (flinksnap relocate, then renamed) and restores that, and on each checkpoint chain deletes\n\
         the oldest checkpoint, checks what flinksnap gc --delete removes and restores the rest.\n\
         \n\
         --full      also the slower variants (see xtask/README.md)\n\
         --release   use a release build of flinksnap (default: the debug build `cargo test` made)\n\
         --features  cargo features for the flinksnap build (e.g. a RocksDB reader feature)\n\
         --jobs N    Flink versions restoring at the same time (default 2; one JVM each)\n\
         --work DIR  work directory, one subdirectory per version (default: env FLINKSNAP_INTEROP_WORK,\n\
         \x20           else $FLINKSNAP_CACHE/flink/VERSION/work/interop); emptied first\n\
         Default versions: {}\n",
        DEFAULT_VERSIONS.join(", ")
    )
}

pub fn interop(args: &[String]) -> Result<()> {
    let mut o = Options {
        jobs: 2,
        versions: Vec::new(),
        full: false,
        release: false,
        features: None,
        cases: Vec::new(),
        work: std::env::var_os("FLINKSNAP_INTEROP_WORK").filter(|w| !w.is_empty()).map(PathBuf::from),
        via_s3: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--flink" => o.versions.push(it.next().ok_or("--flink needs a version")?.clone()),
            "--case" => o.cases.push(it.next().ok_or("--case needs a name")?.clone()),
            "--full" => o.full = true,
            "--jobs" => o.jobs = it.next().and_then(|j| j.parse().ok()).ok_or("--jobs needs a number")?,
            "--release" => o.release = true,
            "--features" => o.features = Some(it.next().ok_or("--features needs a list")?.clone()),
            "--work" => o.work = Some(PathBuf::from(it.next().ok_or("--work needs a directory")?)),
            "--via-s3" => o.via_s3 = true,
            "-h" | "--help" => {
                print!("{}", usage());
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    if o.versions.is_empty() {
        o.versions = DEFAULT_VERSIONS.iter().map(|s| s.to_string()).collect();
    }
    for v in &o.versions {
        generation(v)?;
    }
    let started = Instant::now();
    let repo = repo_root();
    let tools = Tools::find()?;
    let bin = build_flinksnap(&repo, o.release, o.features.as_deref())?;
    let cache = cache_dir()?;
    let s3 = if o.via_s3 { Some(S3::from_env()?) } else { None };

    // Converting is quick and downloads (pip) are best one at a time: done first, in order.
    let mut runs = Vec::new();
    for v in &o.versions {
        let mut fixtures = discover(&repo, v, &o.cases)?;
        // The job without uids' savepoint (issue 19): only the edit checks restore it.
        let no_uids = if s3.is_none() && edit::EDIT_VERSIONS.contains(&v.as_str()) {
            discover_in(&repo.join("testdata").join(edit::NO_UIDS_GROUP).join(format!("flink-{v}")), &o.cases)?
        } else {
            Vec::new()
        };
        if fixtures.is_empty() && no_uids.is_empty() {
            println!("== interop {v}: no DataStream fixtures");
            continue;
        }
        let work = match &o.work {
            Some(w) => std::path::absolute(w).map_err(|e| format!("--work {}: {e}", w.display()))?.join(v),
            None => cache.join("flink").join(v).join("work").join("interop"),
        };
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(work.join("savepoints")).map_err(|e| format!("create {}: {e}", work.display()))?;
        let (mut conversions, mut restores) = plan(&fixtures, &work, o.full);
        let first_no_uids = fixtures.len();
        fixtures.extend(no_uids);
        let mut checks = Vec::new();
        if s3.is_some() {
            // Through the bucket: convert and relocate only (gc on object stores is tested in
            // tests/stores.rs).
            let keep: Vec<bool> = conversions.iter().map(|c| c.kind != Kind::AfterGc).collect();
            restores.retain(|r| keep[r.conversion]);
        }
        // The edit checks (issue 19) need the ids Flink generates for the job without uids: the
        // job is compiled first. (Not through the bucket: edit writes as convert does.)
        let classes = work.join("classes");
        let mut classpath = Vec::new();
        let mut compiled = false;
        let mut edit_seconds = 0.0;
        if s3.is_none() && edit::EDIT_VERSIONS.contains(&v.as_str()) {
            let canonical = fixtures[..first_no_uids].iter().find(|f| f.case == "heap-savepoint-canonical");
            if let Some(f) = canonical.or(fixtures.get(first_no_uids)) {
                let dist = ensure_dist(&tools, &cache, v)?;
                compile_into(&tools, &repo, v, &dist, &classes)?;
                classpath = dist.classpath;
                compiled = true;
                let t = Instant::now();
                let ids = edit::generated_ids(&tools, &repo, v, &classpath, &classes, &work, f.parallelism, f.max_parallelism)?;
                if canonical.is_some() {
                    edit::plan(&fixtures, &work, &ids, &mut conversions, &mut restores);
                }
                checks.extend(edit::plan_no_uids(&bin, &fixtures, first_no_uids, &work, &ids, &mut conversions, &mut restores));
                edit_seconds += t.elapsed().as_secs_f64();
            }
        }
        // Before any chain copy is placed where Flink wrote it: convert and relocate read the
        // fixtures only (absolute paths re-based onto testdata/).
        for c in conversions.iter_mut().filter(|c| c.kind != Kind::AfterGc && c.outcome.is_none()) {
            let f = &fixtures[c.fixture];
            let t = Instant::now();
            c.outcome = Some(match (c.kind, &s3) {
                (Kind::Convert, None) => convert(&bin, f, c),
                (Kind::Relocate, None) => relocate(&bin, f, c),
                (Kind::Edit, None) => edit::edit(&bin, f, c),
                (Kind::Import, None) => edit::import(&bin, &cache, f, c),
                (_, Some(s3)) => via_s3(&bin, s3, &repo, v, f, c),
                (Kind::AfterGc, None) => unreachable!("filtered out"),
                (Kind::AsIs, None) => Ok(()),
            });
            if matches!(c.kind, Kind::Edit | Kind::Import) || !c.removed.is_empty() || c.refused {
                edit_seconds += t.elapsed().as_secs_f64();
            }
        }
        if conversions.iter().any(|c| c.kind == Kind::Edit) {
            println!("== interop {v}: edit checks prepared (generated ids, edits, export + edited Parquet + import) in {edit_seconds:.1} s");
        }
        if s3.is_some() {
            for c in conversions.iter_mut().filter(|c| c.kind == Kind::AfterGc) {
                c.outcome = Some(Err(Outcome::Unsupported("gc is not checked through the bucket".into())));
            }
        }
        // Checkpoint chains: place a copy where Flink wrote it, delete the oldest checkpoint, gc.
        let mut placed = Vec::new();
        for (case, idxs) in chains(&fixtures, false).into_iter().filter(|_| s3.is_none()) {
            let (p, check) = gc_chain(&bin, &fixtures, &idxs);
            let name = format!("{case}~gc-after-deleting-{}", fixtures[idxs[0]].label);
            for c in conversions.iter_mut().filter(|c| c.kind == Kind::AfterGc && idxs.contains(&c.fixture)) {
                c.outcome = Some(match (&p, &check) {
                    (Some(_), _) => Ok(()),
                    (None, Err(e)) => Err(Outcome::Failed(format!("no copy of the chain to restore: {e}"))),
                    (None, Ok(_)) => unreachable!("gc_chain reports success only with a placed copy"),
                });
            }
            checks.push((name, check));
            placed.extend(p);
        }
        // Restore cases (issue 20): gc and delete across job directories, at Flink's location.
        for (_, idxs) in chains(&fixtures, true) {
            let (p, lines) = cross_job::check_case(&bin, &fixtures, &idxs, &work);
            // The scratch copy's checks do not touch what is restored.
            let failed = lines.iter().filter(|(n, _)| !n.ends_with("~delete-every-snapshot")).find_map(|(_, r)| r.as_ref().err().cloned());
            for c in conversions.iter_mut().filter(|c| c.kind == Kind::AfterGc && idxs.contains(&c.fixture)) {
                c.outcome = Some(match (&p, &failed) {
                    (Some(_), None) => Ok(()),
                    (_, Some(e)) => Err(Outcome::Failed(format!("not restored, a gc/delete check failed: {e}"))),
                    (None, None) => Err(Outcome::Failed("no copy of the case to restore".into())),
                });
            }
            checks.extend(lines);
            placed.extend(p);
        }
        let runnable: Vec<usize> = (0..restores.len()).filter(|&i| matches!(conversions[restores[i].conversion].outcome, Some(Ok(())))).collect();
        // Inside the work directory: neither `cargo xtask fixtures` nor another interop run (own
        // --work) can recompile it under this run's JVM.
        if !runnable.is_empty() && !compiled {
            let dist = ensure_dist(&tools, &cache, v)?;
            compile_into(&tools, &repo, v, &dist, &classes)?;
            classpath = dist.classpath;
        }
        runs.push(VersionRun { version: v.clone(), fixtures, conversions, restores, runnable, checks, placed, work, classes, classpath, result: None, seconds: 0.0 });
    }

    // One JVM per version; two at a time keep both cores of a CI machine busy (a single restore
    // JVM waits on its MiniCluster much of the time).
    let queue = std::sync::Mutex::new(runs.iter_mut().collect::<Vec<_>>());
    std::thread::scope(|s| {
        for _ in 0..o.jobs.max(1) {
            s.spawn(|| {
                while let Some(run) = queue.lock().ok().and_then(|mut q| q.pop()) {
                    if !run.runnable.is_empty() {
                        let t = Instant::now();
                        let rs: Vec<&Restore> = run.runnable.iter().map(|&i| &run.restores[i]).collect();
                        run.result = Some(run_restores(&tools, &repo, &run.version, &run.classpath, &run.classes, &run.work, &run.conversions, &rs));
                        run.seconds = t.elapsed().as_secs_f64();
                    }
                    // The chain copies at Flink's original location go (and their locks with them).
                    run.placed.clear();
                }
            });
        }
    });

    let mut totals = Totals::default();
    let mut jvm_errors = Vec::new();
    // SQL: the SQL fixtures, converted, restored by the same SQL job from its compiled plan
    // (`sql_interop.rs`), one JVM per version after the others.
    for v in o.versions.iter().filter(|v| crate::has_sql(v)) {
        let work = match &o.work {
            Some(w) => std::path::absolute(w).map_err(|e| format!("--work {}: {e}", w.display()))?.join(v),
            None => cache.join("flink").join(v).join("work").join("interop"),
        };
        match crate::sql_interop::run(&tools, &repo, &cache, &bin, v, &work, &o.cases) {
            Ok(t) => {
                totals.ok += t.ok;
                totals.failed += t.failed;
                totals.skipped += t.skipped;
            }
            Err(e) => jvm_errors.push(format!("flink {v} SQL interop: {e}")),
        }
    }
    for run in &runs {
        println!("== interop {}: results (restores took {:.0} s)", run.version, run.seconds);
        if let Some(Err(e)) = &run.result {
            jvm_errors.push(e.clone());
        }
        report(&run.version, &run.fixtures, &run.conversions, &run.restores, &mut totals);
        report_checks(&run.version, &run.checks, &mut totals);
    }
    println!(
        "== interop: {} checks ok (restores equal to the expected contents, gc), {} failed, {} skipped (formats this build cannot read, convert or relocate; restores skipped by design); {:.0} s in all",
        totals.ok,
        totals.failed,
        totals.skipped,
        started.elapsed().as_secs_f64()
    );
    if !jvm_errors.is_empty() {
        return Err(jvm_errors.join("\n"));
    }
    if totals.failed > 0 {
        let logs: Vec<String> = runs.iter().map(|r| r.work.display().to_string()).collect();
        return Err(format!("{} interop checks failed (details above; Flink logs and .error traces under {})", totals.failed, logs.join(", ")));
    }
    Ok(())
}

/// Everything about one Flink version's run.
struct VersionRun {
    version: String,
    fixtures: Vec<Fixture>,
    conversions: Vec<Conversion>,
    restores: Vec<Restore>,
    /// Restores whose conversion succeeded.
    runnable: Vec<usize>,
    /// Checks that are not restores (gc on a chain): name, what was shown or what failed.
    checks: Vec<(String, std::result::Result<String, String>)>,
    /// Chain copies placed where Flink wrote them, removed after the restores.
    placed: Vec<Placed>,
    work: PathBuf,
    classes: PathBuf,
    classpath: Vec<PathBuf>,
    result: Option<Result<()>>,
    seconds: f64,
}

#[derive(Default)]
struct Totals {
    ok: usize,
    failed: usize,
    skipped: usize,
}

/// Builds flinksnap (a no-op after `cargo test` built it) and returns the binary's path.
pub(crate) fn build_flinksnap(repo: &Path, release: bool, features: Option<&str>) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo).args(["build", "--quiet", "--locked", "--package", "flinksnap", "--bin", "flinksnap", "--message-format=json-render-diagnostics"]);
    if release {
        cmd.arg("--release");
    }
    if let Some(f) = features {
        cmd.args(["--features", f]);
    }
    let out = cmd.stderr(Stdio::inherit()).output().map_err(|e| format!("cargo build: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo build of flinksnap failed ({})", out.status));
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(j) = serde_json::from_str::<J>(line) else { continue };
        if j["reason"] == "compiler-artifact" && j["target"]["name"] == "flinksnap" {
            if let Some(exe) = j["executable"].as_str() {
                return Ok(PathBuf::from(exe));
            }
        }
    }
    Err("cargo build did not report the flinksnap executable".into())
}

fn read_json(p: &Path) -> Result<J> {
    let text = crate::read_fixture_text(p)?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
}

/// Every snapshot of every case of `version` (optionally only the named cases).
fn discover(repo: &Path, version: &str, only: &[String]) -> Result<Vec<Fixture>> {
    discover_in(&repo.join("testdata").join(format!("flink-{version}")), only)
}

/// Every snapshot of every case in `dir` (a `flink-VERSION` directory).
fn discover_in(dir: &Path, only: &[String]) -> Result<Vec<Fixture>> {
    let mut cases: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("case.json").exists()).collect(),
        Err(_) => return Ok(Vec::new()),
    };
    cases.sort();
    let mut out = Vec::new();
    for case_dir in cases {
        let case = read_json(&case_dir.join("case.json"))?;
        // the SQL fixtures restore into their own job (`sql_interop.rs`)
        if case.get("job").is_some() {
            continue;
        }
        let name = case["case"].as_str().unwrap_or_default().to_owned();
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        let snaps = case["snapshots"].as_array().cloned().unwrap_or_default();
        let window = &case["ttl_window_ms"];
        let restored_job = case["restore"]["job"].as_str().map(|j| format!("{j}/"));
        for (i, s) in snaps.iter().enumerate() {
            let rel = s["path"].as_str().ok_or_else(|| format!("{}: snapshot without a path", case_dir.display()))?;
            let path = case_dir.join(rel);
            out.push(Fixture {
                case: name.clone(),
                label: if snaps.len() > 1 || case["restore"].is_object() { path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default() } else { String::new() },
                path,
                expected: case_dir.join(s["expected"].as_str().unwrap_or("expected.jsonl.gz")),
                parallelism: case["parallelism"].as_u64().unwrap_or(1) as u32,
                max_parallelism: case["max_parallelism"].as_u64().unwrap_or(128) as u32,
                compressed: case["compression"].as_bool().unwrap_or(false),
                ttl_window: (window[0].as_i64().unwrap_or(i64::MIN), window[1].as_i64().unwrap_or(i64::MAX)),
                last_of_case: i + 1 == snaps.len(),
                case_dir: case_dir.clone(),
                oracle: case_dir.join(s["metadata"].as_str().unwrap_or("metadata.json.gz")),
                generated_case_dir: case["generated_case_dir"].as_str().map(PathBuf::from),
                chain_len: snaps.len(),
                chain_pos: i,
                restore_case: case["restore"].is_object(),
                restored_job: restored_job.as_ref().is_some_and(|j| rel.starts_with(j.as_str())),
                unsound: s["unsound"].is_string(),
            });
        }
    }
    Ok(out)
}

/// Backends a relocated snapshot is restored into: the one it was taken with, canonical
/// savepoints (backend-independent by definition) into both. Heap checkpoints and native heap
/// savepoints are not in the canonical format: RocksDB fails on them in every version (tried:
/// EOFException or ArrayIndexOutOfBoundsException in RocksDBFullRestoreOperation.restoreKVStateData).
fn relocated_backends(case: &str) -> &'static [&'static str] {
    if case.contains("savepoint-canonical") {
        &["hashmap", "rocksdb"]
    } else if case.starts_with("heap-") {
        &["hashmap"]
    } else if case.starts_with("forst-") {
        &["forst"]
    } else {
        &["rocksdb"]
    }
}

fn plan(fixtures: &[Fixture], work: &Path, full: bool) -> (Vec<Conversion>, Vec<Restore>) {
    let mut conversions = Vec::new();
    let mut restores = Vec::new();
    let mut push = |c: Conversion, rs: &[(&'static str, u32)]| {
        for &(backend, p) in rs {
            let rname = format!("{}->{backend}-p{p}", c.name);
            restores.push(Restore { conversion: conversions.len(), backend, parallelism: p, out: work.join("restored").join(format!("{rname}.jsonl")), name: rname });
        }
        conversions.push(c);
    };
    let new = |fi: usize, kind: Kind, name: String, max_parallelism: u32, dir: PathBuf| Conversion {
        fixture: fi,
        kind,
        name,
        args: Vec::new(),
        max_parallelism,
        dir,
        staging: PathBuf::new(),
        topology: "default",
        edit_source: None,
        removed: Vec::new(),
        expected: None,
        export_operators: Vec::new(),
        from_columns: false,
        refused: false,
        outcome: None,
    };
    for (fi, f) in fixtures.iter().enumerate() {
        let mut base = f.case.clone();
        if !f.label.is_empty() {
            base.push('@');
            base.push_str(&f.label);
        }
        if f.restore_case {
            // The restored job's checkpoints, restored as they are after gc and delete ran on
            // the job they were restored from (`cross_job`), from where Flink wrote them.
            if f.restored_job {
                let dir = f.generated_case_dir.as_ref().map(|g| g.join(f.path.strip_prefix(&f.case_dir).unwrap_or(&f.path))).unwrap_or_default();
                push(new(fi, Kind::AfterGc, format!("{base}~after-gc-and-delete"), f.max_parallelism, dir), &[("rocksdb", f.parallelism)]);
            }
            // Converted and relocated: only what the other cases do not cover, the restored
            // job's checkpoints (references into another job directory), when Flink can read them.
            if !f.restored_job || f.unsound {
                continue;
            }
        }
        // Every snapshot converted, into both backends at its own parallelism, compressed like
        // the source; variants on the last snapshot of some cases.
        let compression = if f.compressed { "snappy" } else { "none" };
        let own = [("hashmap", f.parallelism), ("rocksdb", f.parallelism)];
        let mut variants = vec![(None, compression, &own[..])];
        for v in VARIANTS.iter().filter(|v| v.case == f.case && f.last_of_case && (full || !v.full_only)) {
            variants.push((v.max_parallelism, v.compression, v.restores));
        }
        for (max_p, compression, rs) in variants {
            let mut name = base.clone();
            let mut args = vec!["--compression".to_owned(), compression.to_owned()];
            if let Some(n) = max_p {
                name.push_str(&format!("~maxp{n}"));
                args.extend(["--max-parallelism".to_owned(), n.to_string()]);
            }
            name.push_str(&format!("~{compression}"));
            let mut c = new(fi, Kind::Convert, name.clone(), max_p.unwrap_or(f.max_parallelism), work.join("savepoints").join(&name));
            c.args = args;
            push(c, rs);
        }
        // Relocated into `relocated/`, then moved to another name in another directory.
        let mut c = new(fi, Kind::Relocate, format!("{base}~relocated"), f.max_parallelism, work.join("moved").join(format!("{base}.moved")));
        c.staging = work.join("relocated").join(&base);
        if f.case.ends_with("-unaligned") {
            c.topology = "unaligned";
        }
        let rs: Vec<(&'static str, u32)> = relocated_backends(&f.case).iter().map(|&b| (b, f.parallelism)).collect();
        push(c, &rs);
        // A chain's checkpoints after the oldest, restored as they are once gc ran, from where
        // Flink wrote them (the chain's copy is placed there), into the RocksDB backend that
        // wrote them.
        if f.chain_len > 1 && f.chain_pos > 0 && !f.restore_case {
            let dir = f.original_job_dir().map(|j| j.join(&f.label)).unwrap_or_default();
            let c = new(fi, Kind::AfterGc, format!("{base}~after-gc"), f.max_parallelism, dir);
            let backend = if f.case.starts_with("forst-") { "forst" } else { "rocksdb" };
            push(c, &[(backend, f.parallelism)]);
        }
    }
    (conversions, restores)
}

fn convert(bin: &Path, f: &Fixture, c: &Conversion) -> std::result::Result<(), Outcome> {
    let out = Command::new(bin)
        .arg("convert")
        .arg(&f.path)
        .arg(&c.dir)
        .arg("--force")
        .args(&c.args)
        .output()
        .map_err(|e| Outcome::Failed(format!("cannot run {}: {e}", bin.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    // The readers of this build do not understand the source's keyed state (e.g. RocksDB native
    // snapshots before the RocksDB reader is merged, or a build without its cargo feature), or
    // convert refuses the source by design (in-flight data of an unaligned checkpoint, which no
    // savepoint can carry; tested in tests/convert.rs): skipped, not failed.
    if stderr.contains("is not readable yet")
        || stderr.contains("without RocksDB support")
        || stderr.contains("in-flight channel data of an unaligned checkpoint")
    {
        return Err(Outcome::Unsupported(stderr));
    }
    Err(Outcome::Failed(format!("flinksnap convert failed ({}): {stderr}", out.status)))
}

/// The S3 test server of `.ci/stores`, through flinksnap's own storage layer.
struct S3 {
    storage: flinksnap::storage::Storages,
    env: Vec<(&'static str, String)>,
    root: String,
}

impl S3 {
    fn from_env() -> Result<S3> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty()).ok_or_else(|| format!("--via-s3: {n} is not set (run under `bash .ci/stores run ...`)"));
        let endpoint = var("FLINKSNAP_TEST_S3_ENDPOINT")?;
        let (key, secret) = (var("FLINKSNAP_TEST_S3_KEY")?, var("FLINKSNAP_TEST_S3_SECRET")?);
        let mut o = flinksnap::storage::StorageOptions::new();
        for (k, v) in [("endpoint", &endpoint), ("allow_http", &"true".to_owned()), ("access_key_id", &key), ("secret_access_key", &secret), ("region", &"us-east-1".to_owned())] {
            o.set(k, v);
        }
        let bucket = std::env::var("FLINKSNAP_TEST_S3_BUCKET").unwrap_or_else(|_| "flink".into());
        Ok(S3 {
            storage: flinksnap::storage::Storages::new(o),
            env: vec![("AWS_ENDPOINT", endpoint), ("AWS_ALLOW_HTTP", "true".into()), ("AWS_ACCESS_KEY_ID", key), ("AWS_SECRET_ACCESS_KEY", secret), ("AWS_REGION", "us-east-1".into())],
            root: format!("s3://{bucket}/interop-{}", std::process::id()),
        })
    }

    /// Uploads every file under `dir` to `url`.
    fn upload(&self, dir: &Path, url: &str) -> std::result::Result<(), String> {
        use flinksnap::storage::{Location, PutMode, Storage};
        for (rel, _) in listing(dir)? {
            let bytes = fs::read(dir.join(&rel)).map_err(|e| format!("read {rel}: {e}"))?;
            self.storage.put(&Location::new(&format!("{url}/{rel}")), &bytes, PutMode::Overwrite).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Downloads every object under `url` into `dir`, byte for byte.
    fn download(&self, url: &str, dir: &Path) -> std::result::Result<(), String> {
        use flinksnap::storage::{Location, Storage};
        let base = Location::new(url);
        let mut files = Vec::new();
        self.storage.list_files(&base, &mut |page| {
            files.extend(page);
            Ok(())
        }).map_err(|e| e.to_string())?;
        if files.is_empty() {
            return Err(format!("nothing under {url}"));
        }
        for f in files {
            let rel = f.location.strip_prefix(&base).ok_or_else(|| format!("{} is not under {url}", f.location))?.to_owned();
            let to = dir.join(&rel);
            if let Some(p) = to.parent() {
                fs::create_dir_all(p).map_err(|e| format!("create {}: {e}", p.display()))?;
            }
            fs::write(&to, self.storage.read(&f.location).map_err(|e| e.to_string())?).map_err(|e| format!("write {}: {e}", to.display()))?;
        }
        Ok(())
    }
}

/// The fixture uploaded to the bucket (its whole case directory, so shared files are there
/// too), converted or relocated bucket to bucket by flinksnap, and the result downloaded to
/// where the local run would have written it: Flink restores what the bucket holds.
fn via_s3(bin: &Path, s3: &S3, repo: &Path, version: &str, f: &Fixture, c: &Conversion) -> std::result::Result<(), Outcome> {
    let failed = Outcome::Failed;
    let case_rel = f.case_dir.strip_prefix(repo).unwrap_or(&f.case_dir).to_string_lossy().into_owned();
    let case_url = format!("{}/{version}/src/{case_rel}", s3.root);
    let uploaded = format!("{case_url}/_uploaded");
    {
        use flinksnap::storage::{Location, PutMode, Storage};
        if !s3.storage.exists(&Location::new(&uploaded)).map_err(|e| failed(e.to_string()))? {
            s3.upload(&f.case_dir, &case_url).map_err(failed)?;
            s3.storage.put(&Location::new(&uploaded), b"", PutMode::Overwrite).map_err(|e| failed(e.to_string()))?;
        }
    }
    let snap_rel = f.path.strip_prefix(&f.case_dir).map_err(|_| failed(format!("{} is not in its case directory", f.path.display())))?;
    let src = format!("{case_url}/{}", snap_rel.display());
    let out_url = format!("{}/{version}/out/{}", s3.root, c.name.replace(['@', '~'], "_"));
    let mut cmd = Command::new(bin);
    cmd.envs(s3.env.iter().map(|(k, v)| (k, v)));
    match c.kind {
        Kind::Convert => cmd.arg("convert").arg(&src).arg(&out_url).arg("--force").args(&c.args),
        _ => cmd.arg("relocate").arg(&src).arg(&out_url).arg("--force"),
    };
    let out = cmd.output().map_err(|e| failed(format!("cannot run {}: {e}", bin.display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if c.kind == Kind::Convert && (stderr.contains("is not readable yet") || stderr.contains("in-flight channel data of an unaligned checkpoint")) {
            return Err(Outcome::Unsupported(stderr));
        }
        return Err(failed(format!("flinksnap {} via S3 failed ({}): {stderr}", if c.kind == Kind::Convert { "convert" } else { "relocate" }, out.status)));
    }
    let _ = fs::remove_dir_all(&c.dir);
    s3.download(&out_url, &c.dir).map_err(|e| failed(format!("download {out_url}: {e}")))?;
    Ok(())
}

/// Every file under `dir`: relative path -> (size, modification time).
fn listing(dir: &Path) -> std::result::Result<BTreeMap<String, (u64, std::time::SystemTime)>, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u64, std::time::SystemTime)>) -> std::result::Result<(), String> {
        for e in fs::read_dir(dir).map_err(|e| format!("read {}: {e}", dir.display()))? {
            let e = e.map_err(|e| e.to_string())?;
            let m = e.metadata().map_err(|err| format!("{}: {err}", e.path().display()))?;
            if m.is_dir() {
                walk(root, &e.path(), out)?;
            } else {
                let rel = e.path().strip_prefix(root).unwrap_or(&e.path()).to_string_lossy().into_owned();
                out.insert(rel, (m.len(), m.modified().map_err(|e| e.to_string())?));
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

/// `flinksnap relocate SNAPSHOT <staging> --force`, then the copy renamed to `c.dir`: a restore
/// from there proves nothing in it points to where it was written (or to the fixture).
fn relocate(bin: &Path, f: &Fixture, c: &Conversion) -> std::result::Result<(), Outcome> {
    let failed = |m: String| Outcome::Failed(m);
    let before = listing(&f.case_dir).map_err(failed)?;
    let _ = fs::remove_dir_all(&c.dir);
    for d in [c.staging.parent(), c.dir.parent()].into_iter().flatten() {
        fs::create_dir_all(d).map_err(|e| Outcome::Failed(format!("create {}: {e}", d.display())))?;
    }
    let out = Command::new(bin)
        .arg("relocate")
        .arg(&f.path)
        .arg(&c.staging)
        .arg("--force")
        .output()
        .map_err(|e| Outcome::Failed(format!("cannot run {}: {e}", bin.display())))?;
    // Whatever relocate did, the source must be as it was (it only reads).
    let after = listing(&f.case_dir).map_err(failed)?;
    if before != after {
        let changed: Vec<&String> = before.keys().chain(after.keys()).filter(|k| before.get(*k) != after.get(*k)).take(5).collect();
        return Err(Outcome::Failed(format!("relocate changed the fixture {} (size or mtime): {changed:?}", f.case_dir.display())));
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if !out.status.success() {
        if stderr.contains("unrecognized subcommand") {
            return Err(Outcome::Failed(format!("this flinksnap has no `relocate` subcommand (branch `relocate` not merged yet): {}", stderr.lines().next().unwrap_or_default())));
        }
        // Relocate handles every snapshot kind: a refusal is a failure.
        return Err(Outcome::Failed(format!("flinksnap relocate failed ({}): {stderr}", out.status)));
    }
    fs::rename(&c.staging, &c.dir).map_err(|e| Outcome::Failed(format!("rename {} to {}: {e}", c.staging.display(), c.dir.display())))?;
    // Flink would not re-base absolute paths as flinksnap does, and an absolute path left in a
    // chain member could resolve into the chain copy the gc check places where Flink wrote it:
    // the `_metadata` of a relocatable snapshot names no file by an absolute path. Inline state
    // (ByteStreamStateHandle) keeps the name of the file it would have been, which is no
    // reference: those names (from Flink's view of the source, the oracle) are cut out first.
    let meta_path = c.dir.join("_metadata");
    let mut meta = fs::read(&meta_path).map_err(|e| Outcome::Failed(format!("relocate wrote no {}: {e}", meta_path.display())))?;
    for name in inline_handle_names(&read_json(&f.oracle).map_err(Outcome::Failed)?) {
        while let Some(i) = meta.windows(name.len()).position(|w| w == name.as_bytes()) {
            meta.drain(i..i + name.len());
        }
    }
    let mut absolute = vec!["file:/".to_owned(), c.staging.to_string_lossy().into_owned(), f.case_dir.to_string_lossy().into_owned()];
    absolute.extend(f.generated_case_dir.iter().map(|g| g.to_string_lossy().into_owned()));
    if let Some(a) = absolute.iter().find(|a| meta.windows(a.len()).any(|w| w == a.as_bytes())) {
        return Err(Outcome::Failed(format!("the relocated _metadata still holds the absolute path {a:?}")));
    }
    Ok(())
}

/// The names of the inline state handles (`ByteStreamStateHandle.handle_name`) in an oracle.
fn inline_handle_names(j: &J) -> Vec<String> {
    let mut out = Vec::new();
    match j {
        J::Object(m) => {
            if m.get("class").and_then(J::as_str) == Some("ByteStreamStateHandle") {
                out.extend(m.get("handle_name").and_then(J::as_str).filter(|n| !n.is_empty()).map(str::to_owned));
            }
            m.values().for_each(|v| out.extend(inline_handle_names(v)));
        }
        J::Array(a) => a.iter().for_each(|v| out.extend(inline_handle_names(v))),
        _ => {}
    }
    out
}

/// The checkpoint chains (cases with several snapshots): case name and its fixtures, oldest first.
/// With `restore`, the restore cases instead (their snapshots span two jobs).
fn chains(fixtures: &[Fixture], restore: bool) -> Vec<(String, Vec<usize>)> {
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, f) in fixtures.iter().enumerate().filter(|(_, f)| if restore { f.restore_case } else { f.chain_len > 1 && !f.restore_case }) {
        match out.iter_mut().find(|(c, _)| *c == f.case) {
            Some((_, v)) => v.push(i),
            None => out.push((f.case.clone(), vec![i])),
        }
    }
    for (_, v) in &mut out {
        v.sort_by_key(|&i| fixtures[i].chain_pos);
    }
    out
}

/// A copy of a chain's job directory where Flink wrote it; removed when dropped, with the
/// directories above it that were created for it (before the lock, a field, is released).
pub(crate) struct Placed {
    dir: PathBuf,
    /// The topmost directory created for the copy.
    created: Option<PathBuf>,
    _lock: fs::File,
}

impl Drop for Placed {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(top) = &self.created {
            // Empty ones only: a concurrent fixture generator may be filling its staging area.
            for d in self.dir.ancestors().skip(1) {
                if fs::remove_dir(d).is_err() || d == top {
                    break;
                }
            }
        }
    }
}

/// A copy of the job directory `src` at `job`, Flink's original location of it (under the fixture
/// generator's deleted staging area), so the absolute paths its `_metadata` records resolve.
/// Locked against other runs that place a copy there; removed when dropped.
pub(crate) fn place_copy(src: &Path, job: &Path) -> std::result::Result<Placed, String> {
    let parent = job.parent().ok_or("job directory without a parent")?;
    let l = lock(job)?;
    let created = parent.ancestors().take_while(|d| !d.exists()).last().map(Path::to_path_buf);
    fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    // The fixture generator's staging area, deleted after generation: whatever is there is
    // a leftover (of an interrupted run).
    let _ = fs::remove_dir_all(job);
    crate::copy_tree(src, job)?;
    Ok(Placed { dir: job.to_path_buf(), created, _lock: l })
}

/// An exclusive lock for a chain's original location, which is the same for every interop run on
/// the machine (whatever its --work): two runs take turns there. The lock file lives in the
/// temporary directory, not at the location, which is left as it was found.
pub(crate) fn lock(location: &Path) -> std::result::Result<fs::File, String> {
    let name: String = location.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    let path = std::env::temp_dir().join(format!("flinksnap-interop{name}.lock"));
    let path = path.as_path();
    let f = fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            println!("== interop: waiting for another interop run holding {}", path.display());
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(format!("lock {}: {}", path.display(), std::io::Error::last_os_error()));
            }
        }
    }
    Ok(f)
}

/// The files one checkpoint's `_metadata` references as Flink loads it (the fixture's oracle
/// file), relative to the job directory `job` where the chain is placed.
fn oracle_files(f: &Fixture, job: &Path) -> std::result::Result<BTreeSet<String>, String> {
    fn walk(j: &J, chk: &str, job: &Path, oracle: &Path, out: &mut BTreeSet<String>) -> std::result::Result<(), String> {
        match j {
            J::Object(m) => {
                // RelativeFileStateHandle: relative to the checkpoint directory.
                if let Some(rel) = m.get("relative_path").and_then(J::as_str) {
                    out.insert(format!("{chk}/{rel}"));
                } else if let (Some(p), true) = (m.get("path").and_then(J::as_str), m.get("class").and_then(J::as_str).is_some_and(|c| c.ends_with("FileStateHandle"))) {
                    let local = p.strip_prefix("file://").or_else(|| p.strip_prefix("file:")).unwrap_or(p);
                    let rel = Path::new(local).strip_prefix(job).map_err(|_| format!("{}: {p} lies outside the job directory {}", oracle.display(), job.display()))?;
                    out.insert(rel.to_string_lossy().into_owned());
                }
                m.values().try_for_each(|v| walk(v, chk, job, oracle, out))
            }
            J::Array(a) => a.iter().try_for_each(|v| walk(v, chk, job, oracle, out)),
            _ => Ok(()),
        }
    }
    let mut out = BTreeSet::new();
    walk(&read_json(&f.oracle)?, &f.label, job, &f.oracle, &mut out)?;
    if out.is_empty() {
        return Err(format!("{}: no file referenced", f.oracle.display()));
    }
    Ok(out)
}

/// Issue 7 on one chain: a copy of the job directory where Flink wrote it, the oldest checkpoint
/// deleted, `flinksnap gc --delete --older-than 0s`; it must remove exactly the files only the
/// deleted checkpoint referenced (per Flink's oracle) and leave every file of the others. The
/// copy (if placed) stays for the restores of the remaining checkpoints.
fn gc_chain(bin: &Path, fixtures: &[Fixture], chain: &[usize]) -> (Option<Placed>, std::result::Result<String, String>) {
    let first = &fixtures[chain[0]];
    let Some(job) = first.original_job_dir() else {
        return (None, Err(format!("{}: case.json has no generated_case_dir", first.case_dir.display())));
    };
    let src = first.path.parent().unwrap_or(&first.path).to_path_buf();
    let placed = match place_copy(&src, &job) {
        Ok(p) => p,
        Err(e) => return (None, Err(e)),
    };
    let check = || -> std::result::Result<String, String> {
        let files: Vec<BTreeSet<String>> = chain.iter().map(|&i| oracle_files(&fixtures[i], &job)).collect::<std::result::Result<_, _>>()?;
        let remaining: BTreeSet<&String> = files[1..].iter().flatten().collect();
        let oldest = &first.label;
        fs::remove_dir_all(job.join(oldest)).map_err(|e| format!("delete {oldest}: {e}"))?;
        // Files of the deleted checkpoint directory went with it; gc is left the rest.
        let want: BTreeSet<&String> = files[0].iter().filter(|p| !remaining.contains(p) && !p.starts_with(&format!("{oldest}/"))).collect();
        if want.is_empty() {
            return Err(format!("the oracles name no file outside {oldest}/ that only {oldest} references: nothing for gc to show"));
        }
        let out = Command::new(bin)
            .arg("gc")
            .arg(&job)
            .args(["--delete", "--older-than", "0s", "--format", "json"])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        if !out.status.success() {
            return Err(format!("flinksnap gc failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
        }
        let j: J = serde_json::from_slice(&out.stdout).map_err(|e| format!("gc --format json: {e}"))?;
        let d = &j["data"];
        if d["deleted"] != J::Bool(true) || d["failures"].as_array().is_none_or(|a| !a.is_empty()) {
            return Err(format!("gc did not delete cleanly: deleted={}, failures={}", d["deleted"], d["failures"]));
        }
        let removed: BTreeSet<String> = d["remove"].as_array().ok_or("gc output without `remove`")?.iter().filter_map(|r| r["path"].as_str().map(str::to_owned)).collect();
        let removed_refs: BTreeSet<&String> = removed.iter().collect();
        if removed_refs != want {
            let extra: Vec<&&String> = removed_refs.difference(&want).take(5).collect();
            let missing: Vec<&&String> = want.difference(&removed_refs).take(5).collect();
            return Err(format!("gc removed other files than those only {oldest} referenced: removed, not only {oldest}'s: {extra:?}; only {oldest}'s, not removed: {missing:?}"));
        }
        if let Some(p) = want.iter().find(|p| job.join(p.as_str()).exists()) {
            return Err(format!("gc reported {p} removed, but it is still there"));
        }
        if let Some(p) = remaining.iter().find(|p| !job.join(p.as_str()).is_file()) {
            return Err(format!("{p}, referenced by a remaining checkpoint, is gone after gc"));
        }
        let rest: Vec<&str> = chain[1..].iter().map(|&i| fixtures[i].label.as_str()).collect();
        Ok(format!("deleted {oldest}; gc removed exactly the {} files only it referenced; all {} files of {} remain", want.len(), remaining.len(), rest.join(", ")))
    };
    let result = check();
    (Some(placed), result)
}

#[allow(clippy::too_many_arguments)]
fn run_restores(
    tools: &Tools,
    repo: &Path,
    version: &str,
    dist_cp: &[PathBuf],
    classes: &Path,
    work: &Path,
    conversions: &[Conversion],
    restores: &[&Restore],
) -> Result<()> {
    fs::create_dir_all(work.join("restored")).map_err(|e| e.to_string())?;
    fs::create_dir_all(work.join("tmp")).map_err(|e| e.to_string())?;
    let plan_file = work.join("plan.tsv");
    let mut plan = String::new();
    for r in restores {
        let c = &conversions[r.conversion];
        plan.push_str(&format!("{}\t{}\t{}\t{}\t{}\t{}\t{}\n", r.name, c.dir.display(), r.backend, r.parallelism, c.max_parallelism, r.out.display(), c.topology));
    }
    fs::write(&plan_file, plan).map_err(|e| format!("write {}: {e}", plan_file.display()))?;
    let log_path = work.join("restore.log");
    let log = fs::File::create(&log_path).map_err(|e| format!("create {}: {e}", log_path.display()))?;
    let mut cmd = java_job(tools, repo, version, 1024, &work.join("tmp"), classes, dist_cp, "flinksnap.fixtures.Restore");
    cmd.args(["--flink-version", version])
        .arg("--work")
        .arg(work)
        .arg("--plan")
        .arg(&plan_file)
        .stdout(Stdio::piped())
        .stderr(log.try_clone().map_err(|e| e.to_string())?);
    println!("== interop {version}: {} restores in real Flink, one JVM (log: {})", restores.len(), log_path.display());
    let mut child = cmd.spawn().map_err(|e| format!("java: cannot start: {e}"))?;
    let mut log = log;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| e.to_string())?;
            let _ = writeln!(log, "{line}");
            if let Some(rest) = line.strip_prefix("[restore] ") {
                println!("   [{version}] {rest}");
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("flink {version}: the restore JVM failed ({status}); see {}", log_path.display()));
    }
    Ok(())
}

/// Expected lines as a multiset of canonical JSON strings; TTL timestamps taken out (returned
/// separately), and key groups too when the max parallelism changed (Flink's assignment for the
/// new max parallelism is what the restored job reports).
fn normalise(text: &str, drop_key_group: bool) -> std::result::Result<(BTreeMap<String, usize>, Vec<i64>), String> {
    let mut set = BTreeMap::new();
    let mut ttl = Vec::new();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut j: J = serde_json::from_str(l).map_err(|e| format!("bad JSON line {l}: {e}"))?;
        let obj = j.as_object_mut().ok_or_else(|| format!("not an object: {l}"))?;
        if let Some(t) = obj.remove("ttl_timestamp") {
            ttl.push(t.as_i64().ok_or_else(|| format!("bad ttl_timestamp in {l}"))?);
            obj.insert("ttl_timestamp".into(), J::Bool(true));
        }
        if drop_key_group {
            obj.remove("key_group");
        }
        *set.entry(canonical(&j).to_string()).or_default() += 1;
    }
    Ok((set, ttl))
}

/// A dump line's JSON in one form: object keys sorted, and the entries of a map value
/// (`[{"key", "value"}]`, whose order is the map's own) sorted.
pub(crate) fn canonical(j: &J) -> J {
    match j {
        J::Object(m) => {
            let mut v: Vec<_> = m.iter().collect();
            v.sort_by(|a, b| a.0.cmp(b.0));
            J::Object(v.into_iter().map(|(k, v)| (k.clone(), canonical(v))).collect())
        }
        J::Array(a) => {
            let mut items: Vec<J> = a.iter().map(canonical).collect();
            if !items.is_empty() && items.iter().all(|e| e.as_object().is_some_and(|o| o.len() == 2 && o.contains_key("key") && o.contains_key("value"))) {
                items.sort_by_key(|e| e.to_string());
            }
            J::Array(items)
        }
        other => other.clone(),
    }
}

/// Compares a restore with the expected contents: (entries equal, in-flight records replayed —
/// `Some` for unaligned checkpoints, which must have replayed some).
fn compare(f: &Fixture, r: &Restore, c: &Conversion) -> std::result::Result<(usize, Option<u64>), String> {
    let drop_key_group = c.max_parallelism != f.max_parallelism;
    let err_file = PathBuf::from(format!("{}.error", r.out.display()));
    if let Ok(e) = fs::read_to_string(&err_file) {
        let first: Vec<&str> = e.lines().take(3).collect();
        return Err(format!("Flink failed to restore: {} (full trace: {})", first.join(" | "), err_file.display()));
    }
    // The backend is a job-level setting in a shared MiniCluster: check each keyed operator really
    // ran on the one asked for.
    let backends_file = PathBuf::from(format!("{}.backends", r.out.display()));
    let backends = fs::read_to_string(&backends_file).map_err(|e| format!("no {}: {e}", backends_file.display()))?;
    let want_class = match r.backend {
        "rocksdb" => "RocksDBKeyedStateBackend",
        "forst" => "ForStSyncKeyedStateBackend",
        _ => "HeapKeyedStateBackend",
    };
    let lines: Vec<&str> = backends.lines().filter(|l| !l.trim().is_empty()).collect();
    // A changelog checkpoint restored as it is (relocated, not converted) into a job without the
    // changelog backend goes through Flink's migration path (FLINK-23252): the operator gets
    // ChangelogMigrationRestoreTarget's backend, which wraps the configured one.
    let migrated = |l: &&str| f.case.contains("-changelog-") && l.contains("ChangelogMigrationRestoreTarget");
    // A savepoint bootstrapped from an export holds only some operators: an operator that starts
    // empty may report no backend (it saw no key), but every keyed operator it holds must.
    let bootstrapped = !c.export_operators.is_empty() && c.edit_source.is_none();
    let min = if bootstrapped { 1 } else { 3 };
    if lines.len() < min || lines.iter().any(|l| !l.contains(want_class) && !migrated(l)) {
        return Err(format!("expected every keyed operator on {want_class}, the job reported: {lines:?}"));
    }
    if let Some(op) = c.export_operators.iter().find(|op| op.starts_with("keyed-") && !lines.iter().any(|l| l.starts_with(&format!("{op}:")))) {
        return Err(format!("the savepoint's keyed operator {op} reported no keyed backend: {lines:?}"));
    }
    let got = fs::read_to_string(&r.out).map_err(|e| format!("no restored output {}: {e}", r.out.display()))?;
    let expected = c.expected.as_ref().unwrap_or(&f.expected);
    let mut want = crate::read_fixture_text(expected)?;
    // An edit: the expected contents without what it removed (which must be something).
    if !c.removed.is_empty() {
        let (kept, gone) = edit::without(&want, &c.removed)?;
        if gone == 0 {
            return Err(format!("the edited rows {:?} are not in {}: the check would prove nothing", c.removed, f.expected.display()));
        }
        want = kept;
    }
    let (got_set, got_ttl) = normalise(&got, drop_key_group)?;
    let (want_set, want_ttl) = normalise(&want, drop_key_group)?;
    if got_set != want_set {
        let missing: Vec<&String> = want_set.keys().filter(|k| got_set.get(*k) != want_set.get(*k)).take(4).collect();
        let extra: Vec<&String> = got_set.keys().filter(|k| got_set.get(*k) != want_set.get(*k)).take(4).collect();
        return Err(format!("restored state differs from {}:\n      expected, not restored: {missing:?}\n      restored, not expected: {extra:?}", expected.display()));
    }
    if got_ttl.len() != want_ttl.len() {
        return Err(format!("{} TTL timestamps restored, {} expected", got_ttl.len(), want_ttl.len()));
    }
    let (lo, hi) = f.ttl_window;
    if let Some(t) = got_ttl.iter().find(|t| !(lo..=hi).contains(*t)) {
        return Err(format!("restored TTL timestamp {t} outside the job's window {lo}..={hi}"));
    }
    // An unaligned checkpoint's in-flight filler records are replayed into the `slow` operator
    // (they reach no state): none arriving would mean the channel state was not restored.
    let inflight = if c.topology == "unaligned" {
        let p = PathBuf::from(format!("{}.inflight", r.out.display()));
        let n: u64 = fs::read_to_string(&p).map_err(|e| format!("no {}: {e}", p.display()))?.trim().parse().map_err(|e| format!("{}: {e}", p.display()))?;
        if n == 0 {
            return Err("no in-flight record was replayed: the channel state did not come back".into());
        }
        // The run sent 600 fillers (Main.FILLERS), some processed before the checkpoint.
        if n > 600 {
            return Err(format!("{n} in-flight records replayed, but the run only sent 600"));
        }
        Some(n)
    } else {
        None
    };
    Ok((got_set.values().sum(), inflight))
}

fn report(version: &str, fixtures: &[Fixture], conversions: &[Conversion], restores: &[Restore], totals: &mut Totals) {
    for r in restores {
        let c = &conversions[r.conversion];
        let f = &fixtures[c.fixture];
        let what = format!("{version} {:<62} {:<8} p={} maxp={}", c.name, r.backend, r.parallelism, c.max_parallelism);
        match &c.outcome {
            Some(Err(Outcome::Unsupported(_))) => {
                totals.skipped += 1;
                let Some(Err(Outcome::Unsupported(why))) = &c.outcome else { continue };
                // The message ends with what cannot be read, e.g. "IncrementalRemoteKeyedStateHandle
                // state is not readable yet (...)".
                let why = why.lines().next().unwrap_or_default().rsplit(": ").next().unwrap_or_default();
                println!("   skip {what}  ({why})");
            }
            Some(Err(Outcome::Failed(e))) => {
                totals.failed += 1;
                println!("   FAIL {what}\n      {e}");
            }
            _ if c.refused => match edit::refusal(r) {
                Ok(m) => {
                    totals.ok += 1;
                    println!("   ok   {what}  refused as it must be: {m}");
                }
                Err(e) => {
                    totals.failed += 1;
                    println!("   FAIL {what}\n      {e}");
                }
            },
            _ => match compare(f, r, c) {
                Ok((n, inflight)) => {
                    totals.ok += 1;
                    let replayed = inflight.map(|m| format!(", {m} in-flight records replayed")).unwrap_or_default();
                    println!("   ok   {what}  {n} entries equal{replayed}");
                }
                Err(e) => {
                    totals.failed += 1;
                    println!("   FAIL {what}\n      {e}");
                }
            },
        }
    }
}

/// Lines that are not restores: gc on the chains.
fn report_checks(version: &str, checks: &[(String, std::result::Result<String, String>)], totals: &mut Totals) {
    for (name, r) in checks {
        let what = format!("{version} {name:<62} check");
        match r {
            Ok(m) => {
                totals.ok += 1;
                println!("   ok   {what}  {m}");
            }
            Err(e) => {
                totals.failed += 1;
                println!("   FAIL {what}\n      {e}");
            }
        }
    }
}

/// Snapshots of release `from`'s fixture `cases`, restored as they are (a copy in `work`, the
/// fixture's own parallelism and max parallelism) by release `into`'s fixture job — `classes`
/// compiled for `into` — into the backends a relocated copy goes to (canonical savepoints: both),
/// and compared with the `from` fixture's expected contents. One line per restore: its name and
/// the entries that are equal, or why not (Flink's refusal, other contents). For `compat
/// --flink-version 2.x`'s check against real upgrades (`compat_upgrade.rs`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn restore_other_release(
    tools: &Tools,
    repo: &Path,
    from: &str,
    into: &str,
    dist_cp: &[PathBuf],
    classes: &Path,
    work: &Path,
    cases: &[String],
) -> Result<Vec<(String, std::result::Result<usize, String>)>> {
    let fixtures = discover(repo, from, cases)?;
    if fixtures.len() != cases.len() {
        return Err(format!("flink {from}: {} of the fixture cases {cases:?} found", fixtures.len()));
    }
    let _ = fs::remove_dir_all(work);
    let mut conversions = Vec::new();
    let mut restores = Vec::new();
    for (fi, f) in fixtures.iter().enumerate() {
        let name = format!("{from}/{}", f.case);
        let dir = work.join("snapshots").join(&f.case).join(f.path.file_name().unwrap_or_default());
        crate::copy_tree(&f.path, &dir)?;
        for &backend in relocated_backends(&f.case) {
            let rname = format!("{name}->{into}-{backend}-p{}", f.parallelism);
            restores.push(Restore { conversion: conversions.len(), backend, parallelism: f.parallelism, out: work.join("restored").join(format!("{}.jsonl", rname.replace('/', "_"))), name: rname });
        }
        conversions.push(Conversion {
            fixture: fi,
            kind: Kind::Relocate,
            name,
            args: Vec::new(),
            max_parallelism: f.max_parallelism,
            dir,
            staging: PathBuf::new(),
            topology: "default",
            edit_source: None,
            removed: Vec::new(),
            expected: None,
            export_operators: Vec::new(),
            from_columns: false,
            refused: false,
            outcome: Some(Ok(())),
        });
    }
    let rs: Vec<&Restore> = restores.iter().collect();
    run_restores(tools, repo, into, dist_cp, classes, work, &conversions, &rs)?;
    Ok(restores
        .iter()
        .map(|r| {
            let c = &conversions[r.conversion];
            (r.name.clone(), compare(&fixtures[c.fixture], r, c).map(|(n, _)| n))
        })
        .collect())
}
