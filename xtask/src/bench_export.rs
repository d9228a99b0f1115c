//! `cargo xtask bench-export`: times `flinksnap export` (release build) on large snapshots and
//! reports throughput (MB of snapshot state per second) and peak RSS.
//!
//! The numbers come from the export's own `manifest.json` (`run.seconds`, `run.peak_rss_bytes`
//! = the flinksnap process's `VmHWM`, `snapshot.state_bytes`), plus the wall clock around the
//! process. Meant to be called by `cargo xtask bench` too; `--json` prints one object per run.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::Result;

pub const USAGE: &str = "usage: cargo xtask bench-export [SNAPSHOT_DIR]... [--format parquet|csv|jsonl]... [--threads N] [--no-build] [--json]

Builds flinksnap in release mode, exports each snapshot into a scratch directory and prints
snapshot MB, rows, output MB, seconds, MB/s of snapshot and peak RSS. Without SNAPSHOT_DIRs:
every snapshot under $FLINKSNAP_CACHE/bench (default ~/.cache/flinksnap/bench, written by the
benchmark generator), else the Flink 2.3.0 heap canonical savepoint in testdata/.";

pub fn bench_export(args: &[String], root: &Path, cache: &Path) -> Result<()> {
    let mut snapshots: Vec<PathBuf> = Vec::new();
    let mut formats: Vec<String> = Vec::new();
    let mut threads: Option<String> = None;
    let mut build = true;
    let mut json = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--format" => formats.push(it.next().ok_or("--format needs a value")?.clone()),
            "--threads" => threads = Some(it.next().ok_or("--threads needs a value")?.clone()),
            "--no-build" => build = false,
            "--json" => json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n\n{USAGE}")),
            s => snapshots.push(PathBuf::from(s)),
        }
    }
    if formats.is_empty() {
        formats.push("parquet".into());
    }
    if snapshots.is_empty() {
        find_snapshots(&cache.join("bench"), 0, &mut snapshots);
        snapshots.sort();
        if snapshots.is_empty() {
            let fixture = root.join("testdata/flink-2.3.0/heap-savepoint-canonical");
            find_snapshots(&fixture, 0, &mut snapshots);
        }
    }
    if snapshots.is_empty() {
        return Err("no snapshots to export".into());
    }

    let target = env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    if build {
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "--bin", "flinksnap"])
            .current_dir(root)
            .status()
            .map_err(|e| format!("cargo build: {e}"))?;
        if !status.success() {
            return Err("cargo build --release failed".into());
        }
    }
    let bin = target.join("release/flinksnap");
    if !bin.exists() {
        return Err(format!("{} is missing (drop --no-build)", bin.display()));
    }
    let scratch = target.join("bench-export");

    if !json {
        println!("{:<60} {:>6} {:>9} {:>10} {:>8} {:>7} {:>7} {:>8}", "snapshot", "format", "state MB", "rows", "out MB", "s", "MB/s", "RSS MB");
    }
    for snap in &snapshots {
        for format in &formats {
            let _ = std::fs::remove_dir_all(&scratch);
            let mut cmd = Command::new(&bin);
            cmd.arg("export").arg(snap).arg("--to").arg(&scratch).args(["--format", format]);
            if let Some(t) = &threads {
                cmd.args(["--threads", t]);
            }
            let started = Instant::now();
            let out = cmd.output().map_err(|e| format!("{}: {e}", bin.display()))?;
            let wall = started.elapsed().as_secs_f64();
            if !out.status.success() {
                eprintln!("xtask: export of {} failed:\n{}", snap.display(), String::from_utf8_lossy(&out.stderr));
                continue;
            }
            let manifest = std::fs::read_to_string(scratch.join("manifest.json")).map_err(|e| format!("manifest.json: {e}"))?;
            let state_bytes = number_after(&manifest, "\"snapshot\"", "state_bytes").unwrap_or(0.0);
            let rows = number_after(&manifest, "\"totals\"", "rows").unwrap_or(0.0);
            let out_bytes = number_after(&manifest, "\"totals\"", "bytes").unwrap_or(0.0);
            let seconds = number_after(&manifest, "\"run\"", "seconds").unwrap_or(wall);
            let rss = number_after(&manifest, "\"run\"", "peak_rss_bytes");
            let mbps = state_bytes / 1e6 / seconds.max(1e-9);
            let name = snap.strip_prefix(cache).unwrap_or(snap).display().to_string();
            if json {
                println!(
                    "{{\"snapshot\":{:?},\"format\":{:?},\"state_bytes\":{},\"rows\":{},\"output_bytes\":{},\"seconds\":{:.3},\"wall_seconds\":{:.3},\"mb_per_second\":{:.2},\"peak_rss_bytes\":{}}}",
                    snap.display().to_string(),
                    format,
                    state_bytes,
                    rows,
                    out_bytes,
                    seconds,
                    wall,
                    mbps,
                    rss.map_or("null".into(), |r| r.to_string())
                );
            } else {
                println!(
                    "{:<60} {:>6} {:>9.1} {:>10} {:>8.1} {:>7.2} {:>7.1} {:>8}",
                    name,
                    format,
                    state_bytes / 1e6,
                    rows,
                    out_bytes / 1e6,
                    seconds,
                    mbps,
                    rss.map_or("-".into(), |r| format!("{:.0}", r / 1e6))
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

/// Snapshot directories (holding `_metadata`) below `dir`.
pub(crate) fn find_snapshots(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if dir.join("_metadata").is_file() {
        out.push(dir.to_path_buf());
        return;
    }
    if depth > 6 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        // Incremental chains and shared SST directories hold no `_metadata` of their own.
        if p.is_dir() && p.file_name().is_some_and(|n| n != "shared" && n != "taskowned") {
            find_snapshots(&p, depth + 1, out);
        }
    }
}

/// The number after `"key": ` that follows `section` in flinksnap's pretty-printed manifest
/// (xtask takes no JSON dependency; the manifest's layout is flinksnap's own).
pub(crate) fn number_after(text: &str, section: &str, key: &str) -> Option<f64> {
    let from = text.find(section)?;
    let rest = &text[from..];
    let at = rest.find(&format!("\"{key}\": "))? + key.len() + 4;
    let num: String = rest[at..].chars().take_while(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')).collect();
    num.parse().ok()
}
