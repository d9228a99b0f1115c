//! `cargo xtask bench --vs-flink` (issue 15): flinksnap against Flink itself, on the same
//! snapshots, in interleaved rounds.
//!
//! 1. Generates (once, cached) snapshots of the state-mix job with real Flink: `Bench --mix full`
//!    runs `BenchMixFn` (value, list, map, reducing, aggregating, POJO and TTL state, event- and
//!    processing-time timers) over N Long keys, takes a heap canonical savepoint (HashMap run) and a
//!    RocksDB native savepoint and an incremental RocksDB checkpoint (RocksDB run).
//!    `$FLINKSNAP_CACHE/bench-vs-flink/<flink version>/<keys>keys/{heap,rocksdb}/`.
//! 2. Per round, per snapshot: Flink's restore + read (`BenchRead`: the job restored in a
//!    MiniCluster, every key's states read through the state API, both timer queues walked,
//!    counting only; JVM wall time), then `flinksnap dump` (JSONL through a pipe, lines counted),
//!    `export --format parquet`, `verify --level full`, `convert`. Every process is reaped with
//!    `wait4(2)`: wall time, CPU time, peak RSS. The entries Flink read and the lines dump printed
//!    must equal what the generator wrote (else the bench fails); export's rows, verify's and
//!    convert's entry counts are reported beside them.
//! 3. Prints the medians, the ratio to Flink, peak RSS (max over rounds), the load average before
//!    and after, and writes `<target dir>/bench/vs-flink.json`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::bench::{self, mib, GenRun, Measure, Snapshot};
use super::bench_export::number_after;
use super::{cache_dir, compile, dir_size, ensure_dist, java_job, java_job_gc, repo_root, run_cmd, Result, Tools};

const DEFAULT_VERSION: &str = "1.20.5";
const DEFAULT_KEYS: &[u64] = &[1_000_000];
const MAX_PARALLELISM: u32 = 128;
const TOOLS: &[&str] = &["flink", "dump", "export", "verify", "convert"];

const GEN_RUNS: &[GenRun] = &[
    GenRun { dir: "heap", backend: "hashmap", snaps: &["canonical:heap-savepoint-canonical"] },
    GenRun {
        dir: "rocksdb",
        backend: "rocksdb",
        snaps: &["native:rocksdb-savepoint-native", "checkpoint:rocksdb-checkpoint-incremental"],
    },
];

fn usage() -> String {
    format!(
        "usage: cargo xtask bench --vs-flink [--flink VERSION] [--keys N,...] [--runs R] [--only flink,dump,export,verify,convert] [--regenerate] [--generate-only] [--no-build | --bin PATH]\n\
         \n\
         flinksnap against Flink's own restore + read, on the same snapshots (issue 15). Generates the\n\
         state-mix snapshots with real Flink (cached in $FLINKSNAP_CACHE/bench-vs-flink/), then, in R\n\
         interleaved rounds, times per snapshot: Flink restoring the job and reading every entry\n\
         through the state API (JVM wall time), flinksnap dump (JSONL), export (Parquet), verify\n\
         --level full and convert. Prints medians, ratios to Flink and peak RSS; writes\n\
         <target dir>/bench/vs-flink.json. --bin times that flinksnap binary (no build). Defaults: --flink {DEFAULT_VERSION} --keys {} --runs 3.\n",
        DEFAULT_KEYS.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
    )
}

struct Opts {
    version: String,
    keys: Vec<u64>,
    runs: u32,
    only: Vec<String>,
    regenerate: bool,
    generate_only: bool,
    build: bool,
    bin: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Option<Opts>> {
    let mut o = Opts {
        version: DEFAULT_VERSION.into(),
        keys: DEFAULT_KEYS.to_vec(),
        runs: 3,
        only: TOOLS.iter().map(|s| s.to_string()).collect(),
        regenerate: false,
        generate_only: false,
        build: true,
        bin: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--flink" => o.version = it.next().ok_or("--flink needs a version")?.clone(),
            "--keys" => o.keys = crate::bench::positive_list(it.next(), "--keys", "1000000,3000000")?,
            "--runs" => o.runs = crate::bench::positive(it.next(), "--runs")?,
            "--only" => {
                let s = it.next().ok_or("--only needs a list")?;
                o.only = s.split(',').map(|x| x.trim().to_string()).collect();
                if let Some(bad) = o.only.iter().find(|x| !TOOLS.contains(&x.as_str())) {
                    return Err(format!("--only: unknown {bad:?} (one of {})", TOOLS.join(", ")));
                }
            }
            "--regenerate" => o.regenerate = true,
            "--generate-only" => o.generate_only = true,
            "--no-build" => o.build = false,
            "--bin" => o.bin = Some(PathBuf::from(it.next().ok_or("--bin needs a path")?)),
            "-h" | "--help" => {
                print!("{}", usage());
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    super::generation(&o.version)?;
    if !super::has_native_savepoints(&o.version) {
        return Err(format!("--vs-flink needs Flink 1.15 or newer (native savepoints), not {}", o.version));
    }
    Ok(Some(o))
}

fn size_dir(base: &Path, keys: u64) -> PathBuf {
    base.join(format!("{keys}keys"))
}

/// Heap of a HashMap JVM holding every key's state as objects (~2.5 KiB a key of this mix).
fn heap_xmx_mib(backend: &str, keys: u64) -> u64 {
    if backend == "hashmap" {
        1024 + keys / 250
    } else {
        1024
    }
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_else(|_| "?".into())
}

pub fn run(args: &[String]) -> Result<()> {
    let Some(o) = parse(args)? else { return Ok(()) };
    let repo = repo_root();
    let cache = cache_dir()?;
    let base = cache.join("bench-vs-flink").join(&o.version);
    let tools = Tools::find()?;
    let dist = ensure_dist(&tools, &cache, &o.version)?;
    let classes = compile(&tools, &repo, &cache, &o.version, &dist)?;

    // ---- 1. snapshots ----
    for &k in &o.keys {
        if o.regenerate || !size_dir(&base, k).join(".complete").exists() {
            generate(&tools, &repo, &base, &o.version, &dist, &classes, k)?;
        }
    }
    let mut sizes = Vec::new();
    for &k in &o.keys {
        let mut snaps = bench::load_manifests_of(&size_dir(&base, k), GEN_RUNS)?;
        for sn in &mut snaps {
            // An incremental checkpoint's SSTs are in the job's shared/ directory.
            if let Some(shared) = sn.path.parent().map(|job| job.join("shared")).filter(|d| d.is_dir()) {
                sn.bytes += dir_size(&shared);
            }
        }
        println!("== {k} keys:");
        for sn in &snaps {
            println!("     {:<32} {:>9.1} MiB  {:>10} entries  {}", sn.name, mib(sn.bytes), sn.entries, sn.path.display());
        }
        sizes.push((k, snaps));
    }
    if o.generate_only {
        return Ok(());
    }

    // ---- 2. measure, interleaved ----
    let target = bench::target_dir(&repo)?;
    if o.build && o.bin.is_none() {
        println!("== cargo build --release --bin flinksnap");
        run_cmd(
            Command::new(bench::env_cargo()).current_dir(&repo).args(["build", "--release", "--quiet", "--package", "flinksnap", "--bin", "flinksnap"]),
            "cargo build --release",
        )?;
    }
    let bin = o.bin.clone().unwrap_or_else(|| target.join("release").join("flinksnap"));
    if !bin.exists() {
        return Err(format!("no binary at {}", bin.display()));
    }
    let scratch = target.join("bench-vs-flink");
    let load_before = loadavg();
    let started = Instant::now();
    let mut samples: BTreeMap<(u64, String, String), Vec<Sample>> = BTreeMap::new();
    for round in 1..=o.runs {
        for (keys, snaps) in &sizes {
            for sn in snaps {
                for tool in TOOLS.iter().filter(|t| o.only.iter().any(|x| x == *t)) {
                    let _ = fs::remove_dir_all(&scratch);
                    fs::create_dir_all(&scratch).map_err(|e| format!("create {}: {e}", scratch.display()))?;
                    let s = if *tool == "flink" {
                        flink_read(&tools, &repo, &o.version, &dist, &classes, sn, &scratch)?
                    } else {
                        flinksnap(&bin, tool, sn, &scratch)?
                    };
                    if matches!(*tool, "flink" | "dump") && s.count != Some(sn.entries) {
                        return Err(format!("{tool} of {} counted {:?} entries, the generator wrote {}", sn.path.display(), s.count, sn.entries));
                    }
                    println!(
                        "   round {round} {keys} keys {:<32} {:<8} {:>8.2} s  CPU {:>7.2} s  peak RSS {:>7.1} MiB  count {}",
                        sn.name,
                        tool,
                        s.m.wall_s,
                        s.m.user_s + s.m.sys_s,
                        s.m.max_rss_kib as f64 / 1024.0,
                        s.count.map_or("-".into(), |c| c.to_string())
                    );
                    samples.entry((*keys, sn.name.clone(), tool.to_string())).or_default().push(s);
                }
            }
        }
    }
    let _ = fs::remove_dir_all(&scratch);
    let load_after = loadavg();

    // ---- 3. report ----
    let mut rows = Vec::new();
    for (keys, snaps) in &sizes {
        for sn in snaps {
            let flink = samples.get(&(*keys, sn.name.clone(), "flink".into()));
            let flink_cpu = flink.map(|v| median(v.iter().map(|s| s.m.user_s + s.m.sys_s)));
            let flink = flink.map(|v| median(v.iter().map(|s| s.m.wall_s)));
            for tool in TOOLS {
                let Some(v) = samples.get(&(*keys, sn.name.clone(), tool.to_string())) else { continue };
                rows.push(Row {
                    keys: *keys,
                    snapshot: sn.clone(),
                    tool,
                    wall_s: median(v.iter().map(|s| s.m.wall_s)),
                    cpu_s: median(v.iter().map(|s| s.m.user_s + s.m.sys_s)),
                    flink_inner_s: if *tool == "flink" { Some(median(v.iter().filter_map(|s| s.flink_inner_s))) } else { None },
                    peak_rss_kib: v.iter().map(|s| s.m.max_rss_kib).max().unwrap_or(0),
                    count: v.last().and_then(|s| s.count),
                    runs: v.len(),
                    flink_s: flink,
                    flink_cpu_s: flink_cpu,
                });
            }
        }
    }
    println!();
    println!(
        "flinksnap {} on {} ({} cores); Flink {} snapshots (max parallelism {MAX_PARALLELISM}, p=1); medians of {} round(s), {:.0} s in all; load average before {load_before}, after {load_after}; {}",
        bench::git_rev(&repo),
        bench::cpu_model(),
        bench::cores(),
        o.version,
        o.runs,
        started.elapsed().as_secs_f64(),
        utc_now()
    );
    println!();
    print!("{}", table(&rows));
    let out = target.join("bench");
    fs::create_dir_all(&out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let json = out.join("vs-flink.json");
    fs::write(&json, results_json(&o, &repo, &load_before, &load_after, &rows)).map_err(|e| format!("write {}: {e}", json.display()))?;
    println!("\nwrote {}", json.display());
    Ok(())
}

fn utc_now() -> String {
    Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]).output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

fn median(v: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

// ---- generation ---------------------------------------------------------------------------

fn generate(tools: &Tools, repo: &Path, base: &Path, version: &str, dist: &super::Dist, classes: &Path, keys: u64) -> Result<()> {
    let dir = size_dir(base, keys);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| format!("remove {}: {e}", dir.display()))?;
    }
    let started = Instant::now();
    for r in GEN_RUNS {
        let out = dir.join(r.dir);
        let work = base.join(format!("work-{keys}-{}", r.dir));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(work.join("tmp")).map_err(|e| e.to_string())?;
        fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        let xmx = heap_xmx_mib(r.backend, keys);
        let mut cmd = java_job(tools, repo, version, xmx, &work.join("tmp"), classes, &dist.classpath, "flinksnap.fixtures.Bench");
        cmd.args(["--flink-version", version])
            .arg("--out")
            .arg(&out)
            .arg("--work")
            .arg(&work)
            .args(["--backend", r.backend])
            .args(["--keys", &keys.to_string()])
            .args(["--parallelism", "1"])
            .args(["--max-parallelism", &MAX_PARALLELISM.to_string()])
            .args(["--mix", "full"])
            .args(["--incremental", if r.backend == "rocksdb" { "true" } else { "false" }]);
        for s in r.snaps {
            cmd.arg("--snap").arg(s);
        }
        println!("== vs-flink {keys} keys: flink {version} {} run, -Xmx{xmx}m -> {}", r.backend, out.display());
        run_cmd(&mut cmd, &format!("flink {version} bench run {} ({keys} keys)", r.dir))?;
        let _ = fs::remove_dir_all(&work);
    }
    fs::write(dir.join("generation-seconds"), format!("{:.1}\n", started.elapsed().as_secs_f64())).map_err(|e| e.to_string())?;
    fs::write(dir.join(".complete"), b"").map_err(|e| e.to_string())?;
    println!("== vs-flink {keys} keys: generated in {:.0} s, {:.1} MiB on disk", started.elapsed().as_secs_f64(), mib(dir_size(&dir)));
    Ok(())
}

// ---- measuring ----------------------------------------------------------------------------

struct Sample {
    m: Measure,
    /// Entries (Flink: read; dump: lines; export: rows; verify: entries; convert: entries written).
    count: Option<u64>,
    /// Flink: restore + read inside the JVM (after the MiniCluster started).
    flink_inner_s: Option<f64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Out {
    Null,
    Count,
    Capture,
}

/// Runs `cmd`, reaps it with `wait4`: its wall time, CPU time and peak RSS; stdout to /dev/null,
/// line-counted, or captured.
fn measured(cmd: &mut Command, out: Out, what: &str) -> Result<(Measure, String)> {
    let t = Instant::now();
    let stdout = match out {
        Out::Null => Stdio::from(fs::OpenOptions::new().write(true).open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?),
        _ => Stdio::piped(),
    };
    let mut child = cmd.stdin(Stdio::null()).stdout(stdout).spawn().map_err(|e| format!("{what}: cannot start: {e}"))?;
    let (mut lines, mut bytes, mut text) = (0u64, 0u64, Vec::new());
    if let Some(mut s) = child.stdout.take() {
        let mut buf = vec![0u8; 1 << 18];
        loop {
            let n = s.read(&mut buf).map_err(|e| format!("{what}: reading stdout: {e}"))?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
            lines += bench::count_newlines(&buf[..n]);
            if out == Out::Capture {
                text.extend_from_slice(&buf[..n]);
            }
        }
    }
    let (status, ru) = bench::wait4(child.id())?;
    let wall_s = t.elapsed().as_secs_f64();
    if !bench::status_ok(status) {
        return Err(format!("{what} failed (wait status {status})"));
    }
    Ok((Measure { wall_s, user_s: ru.0, sys_s: ru.1, max_rss_kib: ru.2, lines, out_bytes: bytes }, String::from_utf8_lossy(&text).into_owned()))
}

fn flink_read(tools: &Tools, repo: &Path, version: &str, dist: &super::Dist, classes: &Path, sn: &Snapshot, scratch: &Path) -> Result<Sample> {
    let backend = if sn.name.starts_with("heap") { "hashmap" } else { "rocksdb" };
    let work = scratch.join("flink");
    fs::create_dir_all(work.join("tmp")).map_err(|e| e.to_string())?;
    // The JVM's default collector (G1), as a Flink deployment would run.
    let mut cmd = java_job_gc(tools, repo, version, heap_xmx_mib(backend, sn.keys), &work.join("tmp"), classes, &dist.classpath, "flinksnap.fixtures.BenchRead", None);
    cmd.arg("--from")
        .arg(&sn.path)
        .args(["--backend", backend])
        .args(["--keys", &sn.keys.to_string()])
        .args(["--max-parallelism", &MAX_PARALLELISM.to_string()])
        .arg("--work")
        .arg(&work);
    let log = fs::File::create(scratch.join("flink-read.log")).map_err(|e| e.to_string())?;
    cmd.stderr(Stdio::from(log));
    let (m, text) = measured(&mut cmd, Out::Capture, &format!("Flink restore + read of {}", sn.path.display()))?;
    let value = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)).map(str::trim);
    let count = value("[bench-read] entries ").and_then(|v| v.parse().ok());
    let inner = text.lines().find_map(|l| l.split("restore + read ").nth(1)).and_then(|r| r.split(' ').next()).and_then(|v| v.parse().ok());
    Ok(Sample { m, count, flink_inner_s: inner })
}

fn flinksnap(bin: &Path, tool: &str, sn: &Snapshot, scratch: &Path) -> Result<Sample> {
    let path = sn.path.display().to_string();
    let mut cmd = Command::new(bin);
    cmd.stderr(Stdio::inherit());
    let what = format!("flinksnap {tool} {path}");
    let (m, count) = match tool {
        "dump" => {
            cmd.args(["dump", &path]);
            let (m, _) = measured(&mut cmd, Out::Count, &what)?;
            (m, Some(m.lines))
        }
        "export" => {
            let to = scratch.join("export");
            cmd.args(["export", &path, "--format", "parquet", "--to"]).arg(&to);
            let (m, _) = measured(&mut cmd, Out::Null, &what)?;
            let manifest = fs::read_to_string(to.join("manifest.json")).map_err(|e| format!("{what}: manifest.json: {e}"))?;
            (m, number_after(&manifest, "\"totals\"", "rows").map(|r| r as u64))
        }
        "verify" => {
            cmd.args(["verify", &path, "--level", "full", "--format", "json"]);
            let (m, text) = measured(&mut cmd, Out::Capture, &what)?;
            (m, number_after(&text, "\"totals\"", "entries").map(|r| r as u64))
        }
        "convert" => {
            cmd.args(["convert", &path]).arg(scratch.join("converted")).args(["--format", "json"]);
            let (m, text) = measured(&mut cmd, Out::Capture, &what)?;
            let keyed = number_after(&text, "\"data\"", "keyed_entries");
            let op = number_after(&text, "\"data\"", "operator_entries");
            (m, keyed.map(|k| (k + op.unwrap_or(0.0)) as u64))
        }
        other => return Err(format!("unknown tool {other}")),
    };
    Ok(Sample { m, count, flink_inner_s: None })
}

// ---- reporting ----------------------------------------------------------------------------

struct Row {
    keys: u64,
    snapshot: Snapshot,
    tool: &'static str,
    wall_s: f64,
    cpu_s: f64,
    flink_inner_s: Option<f64>,
    peak_rss_kib: u64,
    count: Option<u64>,
    runs: usize,
    /// Flink's median wall time on the same snapshot.
    flink_s: Option<f64>,
    /// Flink's median CPU time on the same snapshot.
    flink_cpu_s: Option<f64>,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        match (self.tool, self.flink_s) {
            ("flink", _) | (_, None) => None,
            (_, Some(f)) => Some(f / self.wall_s.max(1e-9)),
        }
    }

    /// The same in CPU seconds (steadier on a shared machine).
    fn cpu_ratio(&self) -> Option<f64> {
        match (self.tool, self.flink_cpu_s) {
            ("flink", _) | (_, None) => None,
            (_, Some(f)) => Some(f / self.cpu_s.max(1e-9)),
        }
    }
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| keys | snapshot | size | entries | command | median s | CPU s | × Flink (wall) | × Flink (CPU) | entries/s | peak RSS | count |\n|--:|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for r in rows {
        let command = match (r.tool, r.flink_inner_s) {
            ("flink", Some(i)) => format!("Flink restore + read (in the job: {i:.2} s)"),
            ("flink", None) => "Flink restore + read".into(),
            ("dump", _) => "flinksnap dump (JSONL)".into(),
            ("export", _) => "flinksnap export (Parquet)".into(),
            ("verify", _) => "flinksnap verify --level full".into(),
            ("convert", _) => "flinksnap convert".into(),
            (t, _) => t.to_string(),
        };
        let count = match r.count {
            Some(c) if c == r.snapshot.entries => "=".to_string(),
            Some(c) => c.to_string(),
            None => "-".into(),
        };
        s.push_str(&format!(
            "| {} | {} | {:.0} MiB | {} | {command} | {:.2} | {:.2} | {} | {} | {:.0} | {:.0} MiB | {count} |\n",
            r.keys,
            r.snapshot.name,
            mib(r.snapshot.bytes),
            r.snapshot.entries,
            r.wall_s,
            r.cpu_s,
            r.ratio().map_or("-".into(), |x| format!("{x:.1}×")),
            r.cpu_ratio().map_or("-".into(), |x| format!("{x:.1}×")),
            r.snapshot.entries as f64 / r.wall_s.max(1e-9),
            r.peak_rss_kib as f64 / 1024.0,
        ));
    }
    s.push_str("\n(count: `=` when the command's own count equals the entries the generator wrote; export counts rows, convert the entries it wrote)\n");
    s
}

fn results_json(o: &Opts, repo: &Path, load_before: &str, load_after: &str, rows: &[Row]) -> String {
    let q = bench::json_str;
    let num = |x: Option<f64>| x.map_or("null".to_string(), |v| format!("{v:.3}"));
    let mut s = String::from("{\n");
    s.push_str(&format!("  \"flinksnap_rev\": {},\n  \"cpu\": {},\n  \"cores\": {},\n", q(&bench::git_rev(repo)), q(&bench::cpu_model()), bench::cores()));
    s.push_str(&format!("  \"date\": {},\n  \"flink_version\": {},\n  \"runs\": {},\n", q(&utc_now()), q(&o.version), o.runs));
    s.push_str(&format!("  \"loadavg_before\": {},\n  \"loadavg_after\": {},\n  \"results\": [\n", q(load_before), q(load_after)));
    for (i, r) in rows.iter().enumerate() {
        s.push_str(&format!(
            "    {{\"keys\": {}, \"snapshot\": {}, \"bytes\": {}, \"entries\": {}, \"command\": {}, \"runs\": {}, \"median_seconds\": {:.3}, \"median_cpu_seconds\": {:.3}, \"flink_inner_seconds\": {}, \"ratio_to_flink\": {}, \"cpu_ratio_to_flink\": {}, \"peak_rss_kib\": {}, \"count\": {}}}{}\n",
            r.keys,
            q(&r.snapshot.name),
            r.snapshot.bytes,
            r.snapshot.entries,
            q(r.tool),
            r.runs,
            r.wall_s,
            r.cpu_s,
            num(r.flink_inner_s),
            num(r.ratio()),
            num(r.cpu_ratio()),
            r.peak_rss_kib,
            r.count.map_or("null".to_string(), |c| c.to_string()),
            if i + 1 < rows.len() { "," } else { "" }
        ));
    }
    s.push_str("  ]\n}\n");
    s
}
