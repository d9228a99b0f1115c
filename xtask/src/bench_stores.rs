//! `cargo xtask bench-stores`: `flinksnap dump` and `export` of snapshots in an S3 bucket
//! (SeaweedFS on loopback, started by `.ci/stores`) against the same commands on the local copy,
//! and `gc` of a job directory of 100,000+ objects in the bucket. The goal (issue 13): within
//! 1.5× of the local figures.
//!
//! Run as `bash .ci/stores run cargo xtask bench-stores [SNAPSHOT_DIR]... [--gc-objects N]`.
//! A snapshot is uploaded with `flinksnap relocate` (for a canonical savepoint: the same files);
//! then each command runs `--runs` times on each side, a local run and a bucket run in turn (the
//! machine is shared: interleaving spreads other load over both), and the medians of wall and
//! CPU seconds (user + system, of the flinksnap process) and the peak RSS are printed.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use flinksnap::storage::{Location, PutMode, Storage, StorageOptions, Storages};

use crate::Result;

pub const USAGE: &str = "usage: bash .ci/stores run cargo xtask bench-stores [SNAPSHOT_DIR]... [--runs N] [--gc-objects N] [--bin FLINKSNAP] [--features LIST] [--no-default-features]

Builds flinksnap in release mode (or takes --bin), uploads each snapshot to the S3 test server
(FLINKSNAP_TEST_S3_* from .ci/stores), and times `dump` (to /dev/null) and `export --to` a local
directory, on the bucket and on the local copy, --runs times each (default 3), interleaved;
prints medians of wall and CPU seconds and the peak RSS. Without SNAPSHOT_DIRs: the 100 MiB
snapshots of $FLINKSNAP_CACHE/bench/2.3.0/100mb (`cargo xtask bench --size 100mb` makes them),
else every snapshot under $FLINKSNAP_CACHE/bench, else the Flink 2.3.0 heap canonical
savepoint in testdata/; with only --gc-objects, no snapshots.

--gc-objects N: also a job directory in the bucket of the Flink 2.3.0 incremental RocksDB
checkpoint chain (testdata/) plus N orphans (tiny objects: 90% in shared/, the rest in
abandoned chk-N/ directories of 100 files), uploaded 64 at a time; then `gc` (dry run) and
`gc --delete` are timed once each and checked: exactly the orphans listed and removed, the
checkpoints' files left.";

fn var(name: &str) -> Result<String> {
    env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| format!("{name} is not set: run under `bash .ci/stores run ...`"))
}

/// One timed flinksnap run.
#[derive(Clone, Copy)]
struct Run {
    wall_s: f64,
    cpu_s: f64,
    rss_mib: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Bench {
    bin: PathBuf,
    env: Vec<(String, String)>,
    scratch: PathBuf,
}

impl Bench {
    /// Runs flinksnap with `args`, stdout into `stdout` (or /dev/null); wall, CPU and peak RSS
    /// from wait4(2).
    fn run(&self, args: &[&str], stdout: Option<&Path>) -> Result<Run> {
        let err_file = self.scratch.join("stderr");
        let err = fs::File::create(&err_file).map_err(|e| format!("{}: {e}", err_file.display()))?;
        let out = match stdout {
            Some(p) => Stdio::from(fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?),
            None => Stdio::null(),
        };
        let t = Instant::now();
        let child = Command::new(&self.bin)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("{}: {e}", self.bin.display()))?;
        let (status, (user, sys, rss_kib)) = super::bench::wait4(child.id())?;
        let wall_s = t.elapsed().as_secs_f64();
        if !super::bench::status_ok(status) {
            return Err(format!("flinksnap {args:?} failed: {}", fs::read_to_string(&err_file).unwrap_or_default()));
        }
        Ok(Run { wall_s, cpu_s: user + sys, rss_mib: rss_kib as f64 / 1024.0 })
    }
}

fn load() -> String {
    fs::read_to_string("/proc/loadavg").map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_else(|_| "?".into())
}

pub fn bench_stores(args: &[String], root: &Path, cache: &Path) -> Result<()> {
    let mut snapshots: Vec<PathBuf> = Vec::new();
    let mut bin: Option<PathBuf> = None;
    let mut build_args: Vec<String> = Vec::new();
    let mut runs = 3usize;
    let mut gc_objects = 0usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bin" => bin = Some(PathBuf::from(it.next().ok_or("--bin needs a path")?)),
            "--features" => build_args.extend(["--features".to_owned(), it.next().ok_or("--features needs a list")?.clone()]),
            "--no-default-features" => build_args.push(a.clone()),
            "--runs" => runs = it.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0).ok_or("--runs needs a number > 0")?,
            "--gc-objects" => gc_objects = it.next().and_then(|n| n.parse().ok()).ok_or("--gc-objects needs a number")?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n\n{USAGE}")),
            s => snapshots.push(PathBuf::from(s)),
        }
    }
    let endpoint = var("FLINKSNAP_TEST_S3_ENDPOINT")?;
    let (key, secret) = (var("FLINKSNAP_TEST_S3_KEY")?, var("FLINKSNAP_TEST_S3_SECRET")?);
    let env_vars: Vec<(String, String)> = [
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ("AWS_REGION", "us-east-1"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    if snapshots.is_empty() && gc_objects == 0 {
        let large = cache.join("bench/2.3.0/100mb");
        let dir = if large.is_dir() { large } else { cache.join("bench") };
        super::bench_export::find_snapshots(&dir, 0, &mut snapshots);
        snapshots.sort();
        if snapshots.is_empty() {
            super::bench_export::find_snapshots(&root.join("testdata/flink-2.3.0/heap-savepoint-canonical"), 0, &mut snapshots);
        }
        if snapshots.is_empty() {
            return Err("no snapshots".into());
        }
    }
    let bin = match bin {
        Some(b) => b,
        None => {
            let target = env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
            let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--release", "--bin", "flinksnap"])
                .args(&build_args)
                .current_dir(root)
                .status()
                .map_err(|e| format!("cargo build: {e}"))?;
            if !status.success() {
                return Err("cargo build --release failed".into());
            }
            target.join("release/flinksnap")
        }
    };
    let scratch = env::temp_dir().join(format!("flinksnap-bench-stores-{}", std::process::id()));
    fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let b = Bench { bin, env: env_vars, scratch: scratch.clone() };
    let prefix = format!("s3://{}/bench-stores-{}", env::var("FLINKSNAP_TEST_S3_BUCKET").unwrap_or_else(|_| "flink".into()), std::process::id());
    println!(
        "flinksnap bench-stores on {} ({} cores), load average {} at the start; SeaweedFS on 127.0.0.1; {runs} run(s) each, local and bucket in turn, medians",
        super::bench::cpu_model(),
        super::bench::cores(),
        load()
    );
    let result = snapshots_bench(&b, &snapshots, &prefix, runs, root, cache).and_then(|()| if gc_objects > 0 { gc_bench(&b, &prefix, gc_objects, root, &endpoint, &key, &secret) } else { Ok(()) });
    println!("load average {} at the end", load());
    let _ = fs::remove_dir_all(&scratch);
    result
}

fn snapshots_bench(b: &Bench, snapshots: &[PathBuf], prefix: &str, runs: usize, root: &Path, cache: &Path) -> Result<()> {
    if snapshots.is_empty() {
        return Ok(());
    }
    println!(
        "{:<48} {:>7} {:>8} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "snapshot", "command", "local s", "S3 s", "ratio", "local CPU", "S3 CPU", "local RSS", "S3 RSS"
    );
    let mut worst: f64 = 0.0;
    for (i, snap) in snapshots.iter().enumerate() {
        let local = snap.display().to_string();
        let url = format!("{prefix}/{i}");
        let up = b.run(&["relocate", &local, &url], None)?;
        let name = snap.strip_prefix(cache.join("bench")).or_else(|_| snap.strip_prefix(root)).unwrap_or(snap).display().to_string();
        let name: String = if name.len() > 48 { format!("…{}", &name[name.len() - 47..]) } else { name };
        eprintln!("{name}: uploaded in {:.1} s", up.wall_s);
        for command in ["dump", "export"] {
            let (mut l, mut r): (Vec<Run>, Vec<Run>) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                for (src, side, out) in [(&local, "local", &mut l), (&url, "s3", &mut r)] {
                    let m = if command == "dump" {
                        b.run(&["dump", src], None)?
                    } else {
                        let to = b.scratch.join(format!("{i}-{side}"));
                        b.run(&["export", src, "--to", to.to_str().unwrap_or_default(), "--force"], None)?
                    };
                    out.push(m);
                }
            }
            let med = |v: &[Run], f: fn(&Run) -> f64| median(v.iter().map(f).collect());
            let (lw, rw) = (med(&l, |m| m.wall_s), med(&r, |m| m.wall_s));
            let ratio = rw / lw.max(1e-6);
            worst = worst.max(ratio);
            println!(
                "{:<48} {:>7} {:>8.2} {:>8.2} {:>5.2}x {:>9.2} {:>9.2} {:>6.0} MiB {:>5.0} MiB",
                name,
                command,
                lw,
                rw,
                ratio,
                med(&l, |m| m.cpu_s),
                med(&r, |m| m.cpu_s),
                med(&l, |m| m.rss_mib),
                med(&r, |m| m.rss_mib)
            );
        }
    }
    println!("worst ratio {worst:.2}x (goal: within 1.5x)");
    Ok(())
}

/// A name of the form Flink gives state files (a UUID).
fn uuid_name(kind: u32, i: usize) -> String {
    format!("{kind:08x}-5c1e-4a7b-9d2f-{i:012x}")
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Paths of the `remove` list of a `gc --format json` report.
fn removed(json: &str) -> Result<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("gc --format json: {e}"))?;
    let mut out: Vec<String> = v["data"]["remove"].as_array().ok_or("gc --format json: no data.remove")?.iter().filter_map(|r| r["path"].as_str().map(str::to_owned)).collect();
    if v["data"]["failures"].as_array().is_some_and(|f| !f.is_empty()) {
        return Err(format!("gc reported failures: {}", v["data"]["failures"]));
    }
    out.sort();
    Ok(out)
}

fn gc_bench(b: &Bench, prefix: &str, orphans: usize, root: &Path, endpoint: &str, key: &str, secret: &str) -> Result<()> {
    let mut o = StorageOptions::new();
    for (k, v) in [("endpoint", endpoint), ("allow_http", "true"), ("access_key_id", key), ("secret_access_key", secret), ("region", "us-east-1")] {
        o.set(k, v);
    }
    let storage = Storages::new(o);
    let case = root.join("testdata/flink-2.3.0/rocksdb-checkpoint-incremental");
    let job = fs::read_dir(&case).map_err(|e| format!("{}: {e}", case.display()))?.flatten().map(|e| e.path()).find(|p| p.is_dir()).ok_or("no job directory in the fixture")?;
    let mut fixture = Vec::new();
    files_under(&job, &mut fixture)?;
    let url = format!("{prefix}/gc/{}", job.file_name().and_then(|n| n.to_str()).unwrap_or("job"));

    // What gc removes from the fixture itself (a local dry run).
    let out = b.scratch.join("gc.json");
    b.run(&["gc", job.to_str().unwrap_or_default(), "--older-than", "0s", "--format", "json"], Some(&out))?;
    let baseline = removed(&fs::read_to_string(&out).map_err(|e| e.to_string())?)?;

    let mut names: Vec<String> = fixture.iter().filter_map(|f| f.strip_prefix(&job).ok()).map(|r| r.display().to_string()).collect();
    let shared = orphans * 9 / 10;
    let mut orphan_names: Vec<String> = (0..shared).map(|i| format!("shared/{}", uuid_name(0x5a, i))).collect();
    orphan_names.extend((shared..orphans).map(|i| format!("chk-{}/{}", 1000 + (i - shared) / 100, uuid_name(0xab, i))));
    names.extend(orphan_names.iter().cloned());
    let t = Instant::now();
    let threads = 64;
    let chunks: Vec<&[String]> = names.chunks(names.len().div_ceil(threads).max(1)).collect();
    let seeded: Result<()> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let (storage, job, url) = (&storage, &job, &url);
                s.spawn(move || -> Result<()> {
                    for n in chunk {
                        let local = job.join(n);
                        let bytes = if local.is_file() { fs::read(&local).map_err(|e| format!("{}: {e}", local.display()))? } else { b"orphaned state".to_vec() };
                        storage.put(&Location::new(&format!("{url}/{n}")), &bytes, PutMode::Overwrite).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().map_err(|_| "an upload thread panicked".to_owned())?)
    });
    seeded?;
    let seed_s = t.elapsed().as_secs_f64();
    let objects = names.len();
    println!("gc: {objects} objects ({} of the checkpoint chain, {orphans} orphans) uploaded in {seed_s:.1} s ({:.0} objects/s, 64 in flight)", fixture.len(), objects as f64 / seed_s);

    let mut expected: Vec<String> = baseline.iter().cloned().chain(orphan_names).collect();
    expected.sort();
    println!("{:<32} {:>8} {:>8} {:>9}", "gc of the bucket job directory", "wall s", "CPU s", "peak RSS");
    for (what, extra) in [("dry run", None), ("--delete", Some("--delete"))] {
        let mut args = vec!["gc", url.as_str(), "--older-than", "0s", "--format", "json"];
        args.extend(extra);
        let m = b.run(&args, Some(&out))?;
        let got = removed(&fs::read_to_string(&out).map_err(|e| e.to_string())?)?;
        if got != expected {
            return Err(format!("gc {what}: {} files to remove, expected the {} orphans", got.len(), expected.len()));
        }
        println!("{:<32} {:>8.2} {:>8.2} {:>5.0} MiB   ({} files removed{})", format!("gc {what}"), m.wall_s, m.cpu_s, m.rss_mib, got.len(), if extra.is_some() { "" } else { " in the plan" });
    }
    let mut left = 0usize;
    storage
        .list_files(&Location::new(&url), &mut |page| {
            left += page.len();
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    if left != fixture.len() - baseline.len() {
        return Err(format!("after gc --delete {left} objects are left, expected {}", fixture.len() - baseline.len()));
    }
    let chk = fixture.iter().filter_map(|f| f.strip_prefix(&job).ok()).map(|r| r.display().to_string()).filter(|n| n.ends_with("/_metadata")).max();
    if let Some(chk) = chk {
        let d = chk.trim_end_matches("/_metadata");
        let a = b.scratch.join("dump-local");
        let c = b.scratch.join("dump-s3");
        b.run(&["dump", job.join(d).to_str().unwrap_or_default()], Some(&a))?;
        b.run(&["dump", &format!("{url}/{d}")], Some(&c))?;
        if fs::read(&a).map_err(|e| e.to_string())? != fs::read(&c).map_err(|e| e.to_string())? {
            return Err(format!("{d}: the bucket's dump after gc differs from the local one"));
        }
        println!("gc: {left} objects left (the checkpoints' files); {d} dumps as the local copy");
    }
    Ok(())
}
