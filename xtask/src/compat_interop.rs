//! `cargo xtask compat-interop`: `flinksnap compat`'s verdicts against what real Flink does.
//!
//! Per Flink version, the job `flink-job/src-compat` (`CompatJob`) runs in versions: the base
//! (v1) writes a savepoint; each v2 variant — an operator added, one removed, a uid renamed, TTL
//! turned on, max parallelism set to 256, the POJO value state by Kryo, a POJO field added, a
//! POJO field's type changed (int → long) — writes its own savepoint from a fresh run (what a CI
//! pipeline has of the new version) and is restored from v1's savepoint
//! (`allowNonRestoredState = false`). Then `flinksnap compat V1 --against V2 --flink-version V`
//! must say what Flink did: exit 0 where Flink restored, exit 1 where it refused, with an
//! incompatible finding of the check Flink's error names (operator mapping, max parallelism,
//! serializer / StateMigrationException).
//!
//! The POJO variants need other `CompatPojo` classes under the same name: one JVM per POJO
//! version (`compat-pojo-v1` … `v3`), each with one MiniCluster for all its jobs.
//!
//! SQL (`flink-job/src-sql/…/CompatSqlJob`, run from compiled plans like the SQL fixtures): a
//! group aggregate v1, and as v2 the same query (a control that must restore), a changed query
//! (a filter before the aggregate) and a changed column type (INT → BIGINT). Each v2 is judged
//! twice: against its savepoint (exactly as above) and against its compiled plan, which cannot
//! tell serializers, so "could not decide" (exit 2) is right there too, but never "compatible"
//! where Flink refused nor "incompatible" where it restored.
//!
//! With 2.3.0, the upgrade check (`compat_upgrade.rs`): 1.20.5's fixtures restored by 2.3.0
//! state by state against `compat --flink-version 2.x`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value as J;

use crate::{cache_dir, compile_into, ensure_dist, java_job, java_sources, join_cp, repo_root, run_cmd, Result, Tools};

const VERSIONS: &[&str] = &["1.20.5", "2.3.0"];

/// (variant, POJO classes) of each v2.
const PAIRS: &[(&str, &str)] = &[
    ("added", "v1"),
    ("removed", "v1"),
    ("renamed", "v1"),
    ("ttl", "v1"),
    ("maxpar", "v1"),
    ("kryo", "v1"),
    ("pojo-added", "v2"),
    ("pojo-changed", "v3"),
];

/// The operator ids (32 hex digits after "operator ") a Flink failure message names.
fn named_operators(message: &str) -> Vec<String> {
    message
        .match_indices("operator ")
        .filter_map(|(i, m)| {
            let id: String = message[i + m.len()..].chars().take_while(|c| c.is_ascii_hexdigit()).collect();
            (id.len() == 32).then_some(id)
        })
        .collect()
}

/// The check a Flink restore failure names.
fn flink_failure_check(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.contains("max parallelism mismatch") || m.contains("maximum parallelism") {
        "max_parallelism"
    } else if m.contains("allownonrestoredstate") || m.contains("cannot map checkpoint/savepoint state") {
        "operator_dropped"
    } else if m.contains("statemigrationexception") || m.contains("serializer") || m.contains("incompatible") {
        "value_serializer"
    } else {
        "unknown"
    }
}

fn javac(tools: &Tools, cp: &[PathBuf], out: &Path, sources: &[PathBuf]) -> Result<()> {
    let _ = fs::remove_dir_all(out);
    fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&tools.javac);
    cmd.args(["-nowarn", "-encoding", "UTF-8", "-source", "11", "-target", "11", "-d"]).arg(out).arg("-cp").arg(join_cp(cp)).args(sources);
    run_cmd(&mut cmd, "javac (compat job)")
}

/// The SQL job's v2 variants (`CompatSqlJob`): the same query (a control), a changed query, a
/// changed column type.
const SQL_PAIRS: &[&str] = &["sql-same", "sql-query", "sql-type"];

/// How strictly compat's exit code must follow what Flink did.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 0 where Flink restored; 1 naming Flink's check where it refused.
    Exact,
    /// As `Exact`, but 2 (could not decide) is also right: a target that cannot tell everything.
    MayBeUndecided,
}

fn report(v: &str, variant: &str, verdict: std::result::Result<String, String>, failures: &mut Vec<String>) {
    match verdict {
        Ok(m) => println!("compat-interop {v} {variant}: OK: {m}"),
        Err(m) => {
            println!("compat-interop {v} {variant}: MISMATCH: {m}");
            failures.push(format!("{v} {variant}: {m}"));
        }
    }
}

/// Runs `flinksnap compat BASE --against TARGET` and compares its verdict with the v2 job's own
/// run and its restore from BASE (`result` reads a task's result file by name).
#[allow(clippy::too_many_arguments)]
fn judge(bin: &Path, v: &str, variant: &str, result: &dyn Fn(&str) -> String, base: &Path, target: &Path, extra: &[&str], expect: Expect) -> std::result::Result<String, String> {
    let fresh = result(&format!("v2-{variant}"));
    if !fresh.starts_with("ok ") {
        return Err(format!("the v2 job's own run failed: {}", &fresh[..fresh.len().min(400)]));
    }
    let restored = result(&format!("restore-{variant}"));
    let flink_ok = restored.starts_with("ok ");
    let out = Command::new(bin)
        .arg("compat")
        .arg(base)
        .arg("--against")
        .arg(target)
        .args(["--flink-version", v, "--backend", "hashmap", "--format", "json"])
        // 1.x snapshots store no uids: name the job's operators
        .args(extra)
        .output()
        .map_err(|e| format!("run flinksnap: {e}"))?;
    let code = out.status.code().unwrap_or(-1);
    let report: J = serde_json::from_slice(&out.stdout).unwrap_or(J::Null);
    let incompatible: Vec<String> = report["data"]["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["severity"] == "incompatible")
        .map(|f| format!("{}: {} {}", f["check"].as_str().unwrap_or("?"), f["operator"].as_str().unwrap_or(""), f["message"].as_str().unwrap_or("")))
        .collect();
    let undecided_ok = expect == Expect::MayBeUndecided && code == 2;
    if flink_ok {
        return if code == 0 || undecided_ok {
            Ok(format!("Flink restored; compat exit {code}"))
        } else {
            Err(format!("Flink restored, compat exit {code}: {incompatible:?}"))
        };
    }
    let want = flink_failure_check(&restored);
    // The operator Flink names must be one compat names for that check.
    let named = named_operators(&restored);
    let same_operator = named.iter().all(|id| incompatible.iter().any(|f| f.starts_with(want) && f.contains(id.as_str())));
    if code == 1 && same_operator && incompatible.iter().any(|f| f.starts_with(want)) {
        Ok(format!("Flink refused ({want}); compat: {}", incompatible.join(" | ")))
    } else if undecided_ok && incompatible.is_empty() {
        Ok(format!("Flink refused ({want}); compat: could not decide (the target cannot tell)"))
    } else {
        Err(format!("Flink refused ({want}: {}), compat exit {code}: {incompatible:?}", &restored[..restored.len().min(300)]))
    }
}

pub fn compat_interop(args: &[String]) -> Result<()> {
    let mut versions: Vec<String> = Vec::new();
    // The upgrade check (`compat_upgrade.rs`) runs with the 2.x release's pairs.
    let mut upgrade = true;
    let mut upgrade_only = false;
    // Own work directory (`DIR/<version>/compat-interop`), as `interop --work`.
    let mut work_root: Option<PathBuf> = std::env::var_os("FLINKSNAP_INTEROP_WORK").filter(|w| !w.is_empty()).map(PathBuf::from);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--flink" => versions.push(it.next().ok_or("--flink needs a version")?.clone()),
            "--no-upgrade" => upgrade = false,
            "--upgrade-only" => upgrade_only = true,
            "--work" => work_root = Some(PathBuf::from(it.next().ok_or("--work needs a directory")?)),
            "--help" | "-h" => {
                println!(
                    "usage: cargo xtask compat-interop [--flink VERSION]... [--no-upgrade | --upgrade-only] [--work DIR]  (default: {})\n\n\
                     With {}: also the upgrade check, {}'s fixtures restored by Flink {} state by state against\n\
                     `compat --flink-version 2.x` (--upgrade-only: only that).",
                    VERSIONS.join(" "),
                    crate::compat_upgrade::INTO,
                    crate::compat_upgrade::FROM,
                    crate::compat_upgrade::INTO
                );
                return Ok(());
            }
            other => return Err(format!("compat-interop: unknown argument {other:?}")),
        }
    }
    if versions.is_empty() {
        versions = if upgrade_only { vec![crate::compat_upgrade::INTO.to_owned()] } else { VERSIONS.iter().map(|v| v.to_string()).collect() };
    }
    let started = Instant::now();
    let tools = Tools::find()?;
    let repo = repo_root();
    let cache = cache_dir()?;
    let bin = crate::interop::build_flinksnap(&repo, false, None)?;
    let mut failures = Vec::new();
    let mut checked = 0;
    for v in &versions {
        let t0 = Instant::now();
        let work = match &work_root {
            Some(w) => w.join(v).join("compat-interop"),
            None => cache.join("flink").join(v).join("work").join("compat-interop"),
        };
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work).map_err(|e| e.to_string())?;
        let dist = ensure_dist(&tools, &cache, v)?;
        let job = repo.join("xtask").join("flink-job");
        // The fixture job's classes (DataStream and SQL, one javac): CompatJob uses its source,
        // commands and shims, CompatSqlJob its SQL connector.
        let main_classes = work.join("classes");
        let tc = Instant::now();
        compile_into(&tools, &repo, v, &dist, &main_classes)?;
        if (upgrade || upgrade_only) && v == crate::compat_upgrade::INTO {
            checked += crate::compat_upgrade::check(&tools, &repo, &bin, &dist, &main_classes, &work.join("upgrade"), &mut failures)?;
        }
        if upgrade_only {
            continue;
        }
        let base = work.join("v1-base");
        // One JVM per POJO version.
        for pojo in ["v1", "v2", "v3"] {
            let classes = work.join(format!("classes-compat-{pojo}"));
            let mut sources = Vec::new();
            java_sources(&job.join("src-compat"), &mut sources)?;
            java_sources(&job.join(format!("compat-pojo-{pojo}")), &mut sources)?;
            let mut cp = vec![main_classes.clone()];
            cp.extend(dist.classpath.iter().cloned());
            javac(&tools, &cp, &classes, &sources)?;
            let mut tasks = String::new();
            if pojo == "v1" {
                tasks.push_str(&format!("fresh|base|{}|{}\n", base.display(), work.join("v1-base.result").display()));
            }
            for (variant, p) in PAIRS.iter().filter(|(_, p)| *p == pojo) {
                let _ = p;
                let java_variant = if variant.starts_with("pojo-") { "base" } else { variant };
                let target = work.join(format!("v2-{variant}"));
                tasks.push_str(&format!("fresh|{java_variant}|{}|{}\n", target.display(), work.join(format!("v2-{variant}.result")).display()));
                tasks.push_str(&format!("restore|{java_variant}|{}|{}\n", base.display(), work.join(format!("restore-{variant}.result")).display()));
            }
            let tasks_file = work.join(format!("tasks-{pojo}.txt"));
            fs::write(&tasks_file, tasks).map_err(|e| e.to_string())?;
            let tmp = work.join("tmp");
            fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
            let mut cp = vec![classes.clone(), main_classes.clone()];
            cp.extend(dist.classpath.iter().cloned());
            let mut cmd = java_job(&tools, &repo, v, 1024, &tmp, &classes, &cp[1..], "flinksnap.fixtures.CompatJob");
            cmd.arg(&work).arg(&tasks_file);
            run_cmd(&mut cmd, &format!("CompatJob ({pojo})"))?;
        }
        let compile_s = tc.elapsed().as_secs_f64();
        let result = |name: &str| fs::read_to_string(work.join(format!("{name}.result"))).unwrap_or_else(|e| format!("failed no result: {e}"));
        let base_result = result("v1-base");
        if !base_result.starts_with("ok ") {
            return Err(format!("flink {v}: the v1 job failed: {base_result}"));
        }
        let sp = |d: &Path| -> PathBuf {
            fs::read_dir(d).ok().into_iter().flatten().flatten().map(|e| e.path()).find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("savepoint-"))).unwrap_or_else(|| d.to_path_buf())
        };
        let uids: Vec<&str> = ["src", "counter", "counter-v2", "second", "extra", "drop"].iter().flat_map(|u| ["--uid", u]).collect();
        for (variant, _) in PAIRS {
            checked += 1;
            let target = sp(&work.join(format!("v2-{variant}")));
            let r = judge(&bin, v, variant, &result, &sp(&base), &target, &uids, Expect::Exact);
            report(v, variant, r, &mut failures);
        }
        // SQL: the same, from compiled plans; each v2 is also checked against its compiled plan
        // (which cannot decide serializers: it may say "undecided", never "compatible" where
        // Flink refused, nor "incompatible" where Flink restored).
        let sql_base = work.join("sql-v1-base");
        let mut tasks = format!("fresh|sql-base|{}|{}\n", sql_base.display(), work.join("sql-v1-base.result").display());
        for variant in SQL_PAIRS {
            tasks.push_str(&format!("fresh|{variant}|{}|{}\n", work.join(format!("v2-{variant}")).display(), work.join(format!("v2-{variant}.result")).display()));
            tasks.push_str(&format!("restore|{variant}|{}|{}\n", sql_base.display(), work.join(format!("restore-{variant}.result")).display()));
        }
        let tasks_file = work.join("tasks-sql.txt");
        fs::write(&tasks_file, tasks).map_err(|e| e.to_string())?;
        let tmp = work.join("tmp");
        let mut cmd = java_job(&tools, &repo, v, 1024, &tmp, &main_classes, &dist.sql_classpath(), "flinksnap.fixtures.CompatSqlJob");
        cmd.arg(work.join("sql-jvm")).arg(&tasks_file);
        run_cmd(&mut cmd, "CompatSqlJob")?;
        let sql_base_result = result("sql-v1-base");
        if !sql_base_result.starts_with("ok ") {
            return Err(format!("flink {v}: the SQL v1 job failed: {sql_base_result}"));
        }
        for variant in SQL_PAIRS {
            checked += 1;
            let dir = work.join(format!("v2-{variant}"));
            let r = judge(&bin, v, variant, &result, &sp(&sql_base), &sp(&dir), &[], Expect::Exact);
            report(v, variant, r, &mut failures);
            checked += 1;
            let r = judge(&bin, v, variant, &result, &sp(&sql_base), &dir.join("plan.json"), &[], Expect::MayBeUndecided);
            report(v, &format!("{variant} (compiled plan)"), r, &mut failures);
        }
        println!("compat-interop {v}: {:.0} s (javac and jobs {compile_s:.0} s)", t0.elapsed().as_secs_f64());
    }
    println!("compat-interop: {checked} pairs, {} mismatches, {:.0} s", failures.len(), started.elapsed().as_secs_f64());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("compat verdicts differ from real Flink:\n  {}", failures.join("\n  ")))
    }
}
