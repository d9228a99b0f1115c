//! `cargo xtask bench-stores`: `flinksnap dump` and `export` of a snapshot in an S3 bucket
//! (SeaweedFS on loopback, started by `.ci/stores`) against the same commands on the local copy.
//! The goal (issue 13): within 1.5× of the local figures.
//!
//! Run as `bash .ci/stores run cargo xtask bench-stores [SNAPSHOT_DIR]...`. The snapshot is
//! uploaded with `flinksnap relocate` (for a canonical savepoint: the same files), then each
//! command runs once on each side; wall seconds and the ratio are printed.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::Result;

pub const USAGE: &str = "usage: bash .ci/stores run cargo xtask bench-stores [SNAPSHOT_DIR]... [--bin FLINKSNAP] [--features LIST] [--no-default-features]

Builds flinksnap in release mode (or takes --bin), uploads each snapshot to the S3 test server
(FLINKSNAP_TEST_S3_* from .ci/stores), and times `dump` (to /dev/null) and `export --to` a local
directory, on the bucket and on the local copy. Without SNAPSHOT_DIRs: every snapshot under
$FLINKSNAP_CACHE/bench (the benchmark generator's), else the Flink 2.3.0 heap canonical savepoint
in testdata/.";

fn var(name: &str) -> Result<String> {
    env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| format!("{name} is not set: run under `bash .ci/stores run ...`"))
}

pub fn bench_stores(args: &[String], root: &Path, cache: &Path) -> Result<()> {
    let mut snapshots: Vec<PathBuf> = Vec::new();
    let mut bin: Option<PathBuf> = None;
    let mut build_args: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bin" => bin = Some(PathBuf::from(it.next().ok_or("--bin needs a path")?)),
            "--features" => build_args.extend(["--features".to_owned(), it.next().ok_or("--features needs a list")?.clone()]),
            "--no-default-features" => build_args.push(a.clone()),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n\n{USAGE}")),
            s => snapshots.push(PathBuf::from(s)),
        }
    }
    let endpoint = var("FLINKSNAP_TEST_S3_ENDPOINT")?;
    let env_vars = [
        ("AWS_ENDPOINT", endpoint),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
        ("AWS_ACCESS_KEY_ID", var("FLINKSNAP_TEST_S3_KEY")?),
        ("AWS_SECRET_ACCESS_KEY", var("FLINKSNAP_TEST_S3_SECRET")?),
        ("AWS_REGION", "us-east-1".to_owned()),
    ];
    if snapshots.is_empty() {
        super::bench_export::find_snapshots(&cache.join("bench"), 0, &mut snapshots);
        snapshots.sort();
        if snapshots.is_empty() {
            super::bench_export::find_snapshots(&root.join("testdata/flink-2.3.0/heap-savepoint-canonical"), 0, &mut snapshots);
        }
    }
    if snapshots.is_empty() {
        return Err("no snapshots".into());
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
    let run = |args: &[&str], out: Stdio| -> Result<f64> {
        let t = Instant::now();
        let o = Command::new(&bin).args(args).envs(env_vars.iter().map(|(k, v)| (k, v))).stdout(out).stderr(Stdio::piped()).output().map_err(|e| format!("{}: {e}", bin.display()))?;
        if !o.status.success() {
            return Err(format!("flinksnap {args:?} failed: {}", String::from_utf8_lossy(&o.stderr)));
        }
        Ok(t.elapsed().as_secs_f64())
    };
    let scratch = tempfile_dir()?;
    let prefix = format!("s3://{}/bench-stores-{}", env::var("FLINKSNAP_TEST_S3_BUCKET").unwrap_or_else(|_| "flink".into()), std::process::id());
    println!("{:<60} {:>8} {:>9} {:>9} {:>7}", "snapshot", "command", "local s", "S3 s", "ratio");
    let mut worst: f64 = 0.0;
    for (i, snap) in snapshots.iter().enumerate() {
        let local = snap.display().to_string();
        let url = format!("{prefix}/{i}");
        run(&["relocate", &local, &url], Stdio::null())?;
        for command in ["dump", "export"] {
            let (l, r) = if command == "dump" {
                (run(&["dump", &local], Stdio::null())?, run(&["dump", &url], Stdio::null())?)
            } else {
                let a = scratch.join(format!("{i}-local"));
                let b = scratch.join(format!("{i}-s3"));
                (run(&["export", &local, "--to", a.to_str().unwrap_or_default(), "--force"], Stdio::null())?, run(&["export", &url, "--to", b.to_str().unwrap_or_default(), "--force"], Stdio::null())?)
            };
            let ratio = r / l.max(1e-6);
            worst = worst.max(ratio);
            let name = snap.strip_prefix(cache).or_else(|_| snap.strip_prefix(root)).unwrap_or(snap).display().to_string();
            println!("{:<60} {:>8} {:>9.2} {:>9.2} {:>6.2}x", name, command, l, r, ratio);
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    println!("worst ratio {worst:.2}x (goal: within 1.5x)");
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf> {
    let d = env::temp_dir().join(format!("flinksnap-bench-stores-{}", std::process::id()));
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    Ok(d)
}
