//! `cargo xtask bench`: how fast flinksnap reads large snapshots, and how much memory it takes.
//!
//! 1. Generates (once, cached outside the repository) snapshots of a large-state job with real
//!    Flink: `flink-job/.../Bench.java` writes one element per key into `BenchFn` (ValueState,
//!    MapState, ListState, timers), then takes a heap canonical savepoint, a heap retained
//!    checkpoint and (second run) a RocksDB canonical and a RocksDB native savepoint (`--librocksdb`
//!    also dumps the native one through librocksdb, to compare the readers). One cache directory per size:
//!    `$FLINKSNAP_CACHE/bench/<flink version>/<size>mb/{heap,rocksdb}/`.
//! 2. Builds flinksnap in release mode and runs `flinksnap inspect` and `flinksnap dump` on every
//!    snapshot with stdout to /dev/null, measuring wall time, CPU time and peak RSS
//!    (`ru_maxrss` from `wait4`). `--verify` first dumps through a pipe and checks the line
//!    count against the entries the generator wrote.
//! 3. Prints a table and writes `<target dir>/bench/results.json`.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{cache_dir, compile, dir_size, ensure_dist, java_job, repo_root, run_cmd, Result, Tools};

const DEFAULT_VERSION: &str = "2.3.0";
const DEFAULT_SIZES: &[u64] = &[25, 100, 250];
/// Keys per nominal MiB: a key is ~262 bytes of canonical savepoint (see `BenchFn.java`).
const KEYS_PER_MIB: u64 = 4000;
const MAX_PARALLELISM: u32 = 128;

fn usage() -> String {
    format!(
        "usage: cargo xtask bench [--flink VERSION] [--sizes MIB,...] [--regenerate] [--runs N] [--verify] [--generate-only] [--librocksdb]\n\
         \n\
         Generates large-state snapshots with real Flink (cached in $FLINKSNAP_CACHE/bench/, default\n\
         ~/.cache/flinksnap/bench/; --regenerate rebuilds them), then times `flinksnap inspect` and\n\
         `flinksnap dump` on each and records peak RSS. Defaults: --flink {DEFAULT_VERSION} --sizes {} --runs 1.\n\
         A size is the nominal canonical-savepoint size in MiB ({KEYS_PER_MIB} keys per MiB).\n\
         Timed runs write to /dev/null; --verify first dumps each snapshot through a pipe (untimed)\n\
         and checks the line count against the entries the generator wrote.\n\
         --librocksdb also dumps the RocksDB native snapshots with FLINKSNAP_ROCKSDB_READER=librocksdb\n\
         through a `--features rocksdb` release build (target dir $FLINKSNAP_ROCKSDB_TARGET_DIR, default\n\
         $FLINKSNAP_CACHE/target-rocksdb; RocksDB's C++ takes ~15 min cold): the Rust reader against\n\
         the RocksDB library, CPU seconds per run.\n\
         Results: a table on stdout and <target dir>/bench/results.json.\n",
        DEFAULT_SIZES.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
    )
}

struct Opts {
    version: String,
    sizes: Vec<u64>,
    regenerate: bool,
    runs: u32,
    generate_only: bool,
    verify: bool,
    /// Also dump RocksDB native snapshots through librocksdb (a `--features rocksdb` build).
    librocksdb: bool,
}

fn parse(args: &[String]) -> Result<Option<Opts>> {
    let mut o = Opts {
        version: DEFAULT_VERSION.to_string(),
        sizes: DEFAULT_SIZES.to_vec(),
        regenerate: false,
        runs: 1,
        generate_only: false,
        verify: false,
        librocksdb: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--flink" => o.version = it.next().ok_or("--flink needs a version")?.clone(),
            "--sizes" => o.sizes = positive_list(it.next(), "--sizes", "25,100,250")?,
            "--regenerate" => o.regenerate = true,
            "--generate-only" => o.generate_only = true,
            "--verify" => o.verify = true,
            "--librocksdb" => o.librocksdb = true,
            "--runs" => o.runs = positive(it.next(), "--runs")?,
            "-h" | "--help" => {
                print!("{}", usage());
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    super::generation(&o.version)?;
    Ok(Some(o))
}

/// The value of `flag`: a whole number above 0.
pub(crate) fn positive<T: std::str::FromStr + PartialOrd + Default>(value: Option<&String>, flag: &str) -> Result<T> {
    let v = value.ok_or(format!("{flag} needs a number"))?;
    v.trim().parse::<T>().ok().filter(|n| *n > T::default()).ok_or(format!("bad {flag} {v:?}: a whole number above 0"))
}

/// The value of `flag`: a comma-separated list of whole numbers above 0 (`example` in the error).
pub(crate) fn positive_list(value: Option<&String>, flag: &str, example: &str) -> Result<Vec<u64>> {
    let list = value.ok_or(format!("{flag} needs a list, e.g. {example}"))?;
    list.split(',').map(|x| positive(Some(&x.to_string()), flag)).collect()
}

/// One snapshot of the manifest a generator run writes.
#[derive(Clone)]
pub(crate) struct Snapshot {
    /// heap-savepoint-canonical, heap-checkpoint, rocksdb-savepoint-canonical
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) entries: u64,
    pub(crate) keys: u64,
    pub(crate) bytes: u64,
}

/// One generator run (one JVM): a backend and the snapshots it takes.
pub(crate) struct GenRun {
    pub(crate) dir: &'static str,
    pub(crate) backend: &'static str,
    pub(crate) snaps: &'static [&'static str],
}

const GEN_RUNS: &[GenRun] = &[
    GenRun {
        dir: "heap",
        backend: "hashmap",
        snaps: &["canonical:heap-savepoint-canonical", "checkpoint:heap-checkpoint"],
    },
    GenRun {
        dir: "rocksdb",
        backend: "rocksdb",
        snaps: &["canonical:rocksdb-savepoint-canonical", "native:rocksdb-savepoint-native"],
    },
];

pub fn run(args: &[String]) -> Result<()> {
    if args.iter().any(|a| a == "--vs-flink") {
        let rest: Vec<String> = args.iter().filter(|a| *a != "--vs-flink").cloned().collect();
        return super::bench_vs_flink::run(&rest);
    }
    let Some(o) = parse(args)? else { return Ok(()) };
    let repo = repo_root();
    let cache = cache_dir()?;
    let base = cache.join("bench").join(&o.version);

    // ---- 1. snapshots (generated only when missing) ----
    let missing: Vec<u64> = o.sizes.iter().copied().filter(|&s| o.regenerate || !size_dir(&base, s).join(".complete").exists()).collect();
    if !missing.is_empty() {
        let tools = Tools::find()?;
        let dist = ensure_dist(&tools, &cache, &o.version)?;
        let classes = compile(&tools, &repo, &cache, &o.version, &dist)?;
        for &s in &missing {
            generate(&tools, &repo, &base, &o.version, &dist, &classes, s)?;
        }
    }
    let mut sizes = Vec::new();
    for &s in &o.sizes {
        let dir = size_dir(&base, s);
        let gen_s = fs::read_to_string(dir.join("generation-seconds")).ok().and_then(|t| t.trim().parse::<f64>().ok());
        sizes.push((s, load_manifests(&dir)?, gen_s));
    }
    println!("== snapshots in {}", base.display());
    for (s, snaps, gen_s) in &sizes {
        let g = gen_s.map_or("?".to_string(), |g| format!("{g:.0} s"));
        println!("   {s} MiB nominal: {} keys, generated in {g}", snaps.first().map_or(0, |x| x.keys));
        for sn in snaps {
            println!("     {:<28} {:>9.1} MiB  {:>9} entries  {}", sn.name, mib(sn.bytes), sn.entries, sn.path.display());
        }
    }
    if o.generate_only {
        return Ok(());
    }

    // ---- 2. measure ----
    let target = target_dir(&repo)?;
    println!("== cargo build --release --bin flinksnap");
    run_cmd(
        Command::new(env_cargo()).current_dir(&repo).args(["build", "--release", "--quiet", "--package", "flinksnap", "--bin", "flinksnap"]),
        "cargo build --release",
    )?;
    let bin = target.join("release").join("flinksnap");
    if !bin.exists() {
        return Err(format!("no binary at {}", bin.display()));
    }
    let floor = measure(&bin, &["--version".to_string()], None, false, &[])?;
    let librocksdb_bin = if o.librocksdb {
        let dir = std::env::var_os("FLINKSNAP_ROCKSDB_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| cache.join("target-rocksdb"));
        println!("== cargo build --release --features rocksdb --bin flinksnap (target dir {})", dir.display());
        run_cmd(
            Command::new(env_cargo())
                .current_dir(&repo)
                .env("CARGO_TARGET_DIR", &dir)
                .args(["build", "--release", "--quiet", "--package", "flinksnap", "--bin", "flinksnap", "--features", "rocksdb"]),
            "cargo build --release --features rocksdb",
        )?;
        Some(dir.join("release").join("flinksnap"))
    } else {
        None
    };

    let mut rows = Vec::new();
    for (size, snaps, gen_s) in &sizes {
        for sn in snaps {
            let native = sn.name.starts_with("rocksdb-") && !sn.name.contains("canonical");
            let commands: &[&'static str] = if native && librocksdb_bin.is_some() { &["inspect", "dump", "dump-librocksdb"] } else { &["inspect", "dump"] };
            for &cmd in commands {
                let mut best: Option<Measure> = None;
                let (bin, env): (&Path, &[(&str, &str)]) = match (&librocksdb_bin, cmd) {
                    (Some(b), "dump-librocksdb") => (b.as_path(), &[("FLINKSNAP_ROCKSDB_READER", "librocksdb")]),
                    _ => (bin.as_path(), &[]),
                };
                let args = [if cmd == "inspect" { "inspect" } else { "dump" }.to_string(), sn.path.display().to_string()];
                let mut verified = None;
                if cmd.starts_with("dump") && o.verify {
                    // untimed: stdout through a pipe, every line counted
                    let m = measure(bin, &args, Some(sn), true, env)?;
                    if m.lines != sn.entries {
                        return Err(format!(
                            "flinksnap dump {} printed {} entries, the generator wrote {}",
                            sn.path.display(),
                            m.lines,
                            sn.entries
                        ));
                    }
                    println!("   verified: dump of {} printed {} entries ({:.1} MiB of JSON lines)", sn.name, m.lines, mib(m.out_bytes));
                    verified = Some((m.lines, m.out_bytes));
                }
                for _ in 0..o.runs {
                    // timed: stdout to /dev/null, as in `flinksnap dump PATH > /dev/null`
                    let m = measure(bin, &args, Some(sn), false, env)?;
                    best = Some(match best {
                        Some(b) if b.wall_s <= m.wall_s => Measure { max_rss_kib: b.max_rss_kib.max(m.max_rss_kib), ..b },
                        Some(b) => Measure { max_rss_kib: b.max_rss_kib.max(m.max_rss_kib), ..m },
                        None => m,
                    });
                }
                let m = best.expect("runs > 0");
                let row = Row { size_mib: *size, generation_s: *gen_s, snapshot: sn.clone(), command: cmd, m, verified };
                println!("{}", row.line());
                rows.push(row);
            }
        }
    }

    // ---- 3. report ----
    println!();
    println!("flinksnap {} on {} ({} cores); Flink {} snapshots, max parallelism {MAX_PARALLELISM}, p=1; best of {} run(s)", git_rev(&repo), cpu_model(), cores(), o.version, o.runs);
    println!("process floor (`flinksnap --version`): peak RSS {:.1} MiB", floor.max_rss_kib as f64 / 1024.0);
    println!();
    print!("{}", table(&rows));
    for r in rows.iter().filter(|r| r.command == "dump-librocksdb") {
        if let Some(rust) = rows.iter().find(|x| x.command == "dump" && x.size_mib == r.size_mib && x.snapshot.name == r.snapshot.name) {
            let (a, b) = (rust.m.user_s + rust.m.sys_s, r.m.user_s + r.m.sys_s);
            println!(
                "{} MiB {}: Rust reader {a:.2} CPU s, librocksdb {b:.2} CPU s ({:.2}x per core); peak RSS {:.1} vs {:.1} MiB",
                r.size_mib,
                r.snapshot.name,
                b / a.max(1e-9),
                rust.m.max_rss_kib as f64 / 1024.0,
                r.m.max_rss_kib as f64 / 1024.0
            );
        }
    }
    let out = target.join("bench");
    fs::create_dir_all(&out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let json = out.join("results.json");
    fs::write(&json, results_json(&o, &repo, &floor, &rows)).map_err(|e| format!("write {}: {e}", json.display()))?;
    println!("\nwrote {}", json.display());
    Ok(())
}

fn size_dir(base: &Path, size: u64) -> PathBuf {
    base.join(format!("{size}mb"))
}

pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

pub(crate) fn env_cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

// ---- generation ---------------------------------------------------------------------------

fn generate(tools: &Tools, repo: &Path, base: &Path, version: &str, dist: &super::Dist, classes: &Path, size: u64) -> Result<()> {
    let dir = size_dir(base, size);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| format!("remove {}: {e}", dir.display()))?;
    }
    let keys = size * KEYS_PER_MIB;
    let started = Instant::now();
    for r in GEN_RUNS {
        let out = dir.join(r.dir);
        let work = base.join(format!("work-{size}mb-{}", r.dir));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(work.join("tmp")).map_err(|e| e.to_string())?;
        fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        // The heap backend keeps every key's state as Java objects (~1 KB a key here).
        let xmx_mib = if r.backend == "hashmap" { 1024 + keys / 400 } else { 1024 };
        let mut cmd = java_job(tools, repo, version, xmx_mib, &work.join("tmp"), classes, &dist.classpath, "flinksnap.fixtures.Bench");
        cmd.args(["--flink-version", version])
            .arg("--out")
            .arg(&out)
            .arg("--work")
            .arg(&work)
            .args(["--backend", r.backend])
            .args(["--keys", &keys.to_string()])
            .args(["--parallelism", "1"])
            .args(["--max-parallelism", &MAX_PARALLELISM.to_string()]);
        for s in r.snaps {
            cmd.arg("--snap").arg(s);
        }
        println!("== bench {size} MiB: flink {version} {} run, {keys} keys, -Xmx{xmx_mib}m -> {}", r.backend, out.display());
        let t = Instant::now();
        run_cmd(&mut cmd, &format!("flink {version} bench run {} ({size} MiB)", r.dir))?;
        println!("== bench {size} MiB: {} run took {:.1} s", r.dir, t.elapsed().as_secs_f64());
        let _ = fs::remove_dir_all(&work);
    }
    let secs = started.elapsed().as_secs_f64();
    fs::write(dir.join("generation-seconds"), format!("{secs:.1}\n")).map_err(|e| e.to_string())?;
    fs::write(dir.join(".complete"), b"").map_err(|e| e.to_string())?;
    println!("== bench {size} MiB: generated in {secs:.0} s, {:.1} MiB on disk", mib(dir_size(&dir)));
    Ok(())
}

fn load_manifests(dir: &Path) -> Result<Vec<Snapshot>> {
    load_manifests_of(dir, GEN_RUNS)
}

pub(crate) fn load_manifests_of(dir: &Path, runs: &[GenRun]) -> Result<Vec<Snapshot>> {
    let mut out = Vec::new();
    for r in runs {
        let d = dir.join(r.dir);
        let m = d.join("manifest.tsv");
        let text = fs::read_to_string(&m).map_err(|e| format!("read {}: {e} (try --regenerate)", m.display()))?;
        for line in text.lines().filter(|l| !l.is_empty()) {
            let f: Vec<&str> = line.split('\t').collect();
            let bad = || format!("{}: bad line {line:?}", m.display());
            if f.len() != 6 {
                return Err(bad());
            }
            let path = d.join(f[3]);
            out.push(Snapshot {
                name: f[0].to_string(),
                entries: f[4].parse().map_err(|_| bad())?,
                keys: f[5].parse().map_err(|_| bad())?,
                bytes: dir_size(&path),
                path,
            });
        }
    }
    Ok(out)
}

// ---- measuring ----------------------------------------------------------------------------

#[derive(Clone, Copy)]
pub(crate) struct Measure {
    pub(crate) wall_s: f64,
    pub(crate) user_s: f64,
    pub(crate) sys_s: f64,
    pub(crate) max_rss_kib: u64,
    pub(crate) lines: u64,
    pub(crate) out_bytes: u64,
}

/// Runs `bin args` with stdout to /dev/null (or, with `count`, read and its lines counted),
/// and returns its wall time
/// and the kernel's resource usage of the child: `ru_maxrss` is the peak resident set size.
fn measure(bin: &Path, args: &[String], what: Option<&Snapshot>, count: bool, env: &[(&str, &str)]) -> Result<Measure> {
    let label = || format!("{} {}", bin.display(), args.join(" "));
    let t = Instant::now();
    let stdout = if count {
        Stdio::piped()
    } else {
        Stdio::from(fs::OpenOptions::new().write(true).open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?)
    };
    let mut child = Command::new(bin)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{}: cannot start: {e}", label()))?;
    let (mut lines, mut out_bytes) = (0u64, 0u64);
    if let Some(mut stdout) = child.stdout.take() {
        let mut buf = vec![0u8; 1 << 18];
        loop {
            let n = stdout.read(&mut buf).map_err(|e| format!("{}: reading stdout: {e}", label()))?;
            if n == 0 {
                break;
            }
            out_bytes += n as u64;
            lines += count_newlines(&buf[..n]);
        }
    }
    let (status, ru) = wait4(child.id())?;
    let wall_s = t.elapsed().as_secs_f64();
    if !status_ok(status) {
        let what = what.map_or(String::new(), |s| format!(" ({})", s.name));
        return Err(format!("{}{what} failed (wait status {status})", label()));
    }
    Ok(Measure {
        wall_s,
        user_s: ru.0,
        sys_s: ru.1,
        max_rss_kib: ru.2,
        lines,
        out_bytes,
    })
}

pub(crate) fn count_newlines(b: &[u8]) -> u64 {
    // word at a time: the dev profile (opt-level 1) does not vectorise a byte loop well
    let mut n = 0u64;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_ne_bytes(c.try_into().expect("8 bytes")) ^ 0x0a0a_0a0a_0a0a_0a0a;
        // a zero byte in w is a '\n' in c
        let z = (w.wrapping_sub(0x0101_0101_0101_0101)) & !w & 0x8080_8080_8080_8080;
        if z != 0 {
            n += c.iter().filter(|&&x| x == b'\n').count() as u64;
        }
    }
    n + chunks.remainder().iter().filter(|&&x| x == b'\n').count() as u64
}

/// (user s, system s, max RSS KiB) of a reaped child.
pub(crate) type Usage = (f64, f64, u64);

#[cfg(unix)]
pub(crate) fn wait4(pid: u32) -> Result<(i32, Usage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; wait4 fills it for the child we spawned (and still own).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut ru) };
    if r < 0 {
        return Err(format!("wait4({pid}): {}", std::io::Error::last_os_error()));
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    // Linux reports ru_maxrss in KiB (macOS in bytes).
    let rss = if cfg!(target_os = "macos") { ru.ru_maxrss as u64 / 1024 } else { ru.ru_maxrss as u64 };
    Ok((status, (secs(ru.ru_utime), secs(ru.ru_stime), rss)))
}

#[cfg(unix)]
pub(crate) fn status_ok(status: i32) -> bool {
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

#[cfg(not(unix))]
pub(crate) fn wait4(_pid: u32) -> Result<(i32, Usage)> {
    Err("cargo xtask bench measures peak RSS with wait4(2): Unix only".into())
}

#[cfg(not(unix))]
pub(crate) fn status_ok(_status: i32) -> bool {
    false
}

// ---- reporting ----------------------------------------------------------------------------

struct Row {
    size_mib: u64,
    generation_s: Option<f64>,
    snapshot: Snapshot,
    command: &'static str,
    m: Measure,
    /// `--verify`: (lines, bytes) the dump printed
    verified: Option<(u64, u64)>,
}

impl Row {
    /// Snapshot MiB per second (dump reads all of it; inspect only `_metadata`).
    fn mib_per_s(&self) -> f64 {
        mib(self.snapshot.bytes) / self.m.wall_s.max(1e-9)
    }

    fn mib_per_s_text(&self) -> String {
        if self.command.starts_with("dump") {
            format!("{:.1}", self.mib_per_s())
        } else {
            "-".into()
        }
    }

    fn line(&self) -> String {
        format!(
            "   {:>4} MiB {:<28} {:<7} {:>8.2} s  {:>7} MiB/s  peak RSS {:>7.1} MiB",
            self.size_mib,
            self.snapshot.name,
            self.command,
            self.m.wall_s,
            self.mib_per_s_text(),
            self.m.max_rss_kib as f64 / 1024.0
        )
    }
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| snapshot | size | keys | entries | command | seconds | CPU s | MiB/s | entries/s | peak RSS |\n|---|--:|--:|--:|---|--:|--:|--:|--:|--:|\n",
    );
    for r in rows {
        let entries = if r.command.starts_with("dump") { r.snapshot.entries.to_string() } else { "-".into() };
        let eps = if r.command.starts_with("dump") { format!("{:.0}", r.snapshot.entries as f64 / r.m.wall_s.max(1e-9)) } else { "-".into() };
        s.push_str(&format!(
            "| {} | {:.1} MiB | {} | {} | {} | {:.2} | {:.2} | {} | {} | {:.1} MiB |\n",
            r.snapshot.name,
            mib(r.snapshot.bytes),
            r.snapshot.keys,
            entries,
            r.command,
            r.m.wall_s,
            r.m.user_s + r.m.sys_s,
            r.mib_per_s_text(),
            eps,
            r.m.max_rss_kib as f64 / 1024.0
        ));
    }
    s
}

pub(crate) fn json_str(s: &str) -> String {
    let mut o = String::from('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn results_json(o: &Opts, repo: &Path, floor: &Measure, rows: &[Row]) -> String {
    let mut s = String::from("{\n");
    s.push_str(&format!("  \"flinksnap_rev\": {},\n", json_str(&git_rev(repo))));
    s.push_str(&format!("  \"cpu\": {},\n  \"cores\": {},\n", json_str(&cpu_model()), cores()));
    s.push_str(&format!("  \"flink_version\": {},\n  \"max_parallelism\": {MAX_PARALLELISM},\n  \"parallelism\": 1,\n", json_str(&o.version)));
    s.push_str(&format!("  \"runs\": {},\n  \"process_floor_rss_kib\": {},\n  \"results\": [\n", o.runs, floor.max_rss_kib));
    for (i, r) in rows.iter().enumerate() {
        s.push_str(&format!(
            "    {{\"size_mib_nominal\": {}, \"snapshot\": {}, \"path\": {}, \"bytes\": {}, \"keys\": {}, \"entries\": {}, \"generation_seconds\": {}, \"command\": {}, \"seconds\": {:.3}, \"user_seconds\": {:.3}, \"system_seconds\": {:.3}, \"mib_per_second\": {:.2}, \"peak_rss_kib\": {}, \"verified_lines\": {}, \"verified_output_bytes\": {}}}{}\n",
            r.size_mib,
            json_str(&r.snapshot.name),
            json_str(&r.snapshot.path.display().to_string()),
            r.snapshot.bytes,
            r.snapshot.keys,
            r.snapshot.entries,
            r.generation_s.map_or("null".to_string(), |g| format!("{g:.1}")),
            json_str(r.command),
            r.m.wall_s,
            r.m.user_s,
            r.m.sys_s,
            r.mib_per_s(),
            r.m.max_rss_kib,
            r.verified.map_or("null".to_string(), |v| v.0.to_string()),
            r.verified.map_or("null".to_string(), |v| v.1.to_string()),
            if i + 1 < rows.len() { "," } else { "" }
        ));
    }
    s.push_str("  ]\n}\n");
    s
}

pub(crate) fn git_rev(repo: &Path) -> String {
    let out = Command::new("git").current_dir(repo).args(["describe", "--always", "--dirty"]).output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => "unknown".into(),
    }
}

pub(crate) fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| t.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into())
}

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Cargo's target directory (honours CARGO_TARGET_DIR and config), from `cargo metadata`.
pub(crate) fn target_dir(repo: &Path) -> Result<PathBuf> {
    let out = Command::new(env_cargo())
        .current_dir(repo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let key = "\"target_directory\":\"";
    let start = text.find(key).ok_or("cargo metadata: no target_directory")? + key.len();
    let end = text[start..].find('"').ok_or("cargo metadata: bad target_directory")? + start;
    Ok(PathBuf::from(text[start..end].replace("\\\\", "\\")))
}
