//! Shared test helpers: fixture discovery and running the real binary.

#![allow(dead_code)]

pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `_metadata` below `testdata/`, sorted, as paths relative to the repository root.
pub fn metadata_files() -> Vec<PathBuf> {
    let mut out = files_under(&root().join("testdata"));
    out.retain(|p| p.file_name().is_some_and(|n| n == "_metadata"));
    out.sort();
    out.into_iter().map(|p| p.strip_prefix(root()).unwrap().to_path_buf()).collect()
}

/// The largest file of a snapshot directory other than its `_metadata`: the state file a
/// corruption test damages.
pub fn largest_state_file(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap() != "_metadata")
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
}

/// Every file below `dir`, recursively (none when it does not exist), in directory order.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The Flink versions fixtures are written for: those of `testdata/flink-VERSION/` (the main
/// fixtures, generated for every default version of `cargo xtask`), sorted.
pub fn fixture_versions() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root().join("testdata"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("flink-").map(str::to_owned))
        .collect();
    out.sort();
    assert!(out.len() >= 7, "fixture versions under testdata/: {out:?}");
    out
}

/// The versions of `testdata/custom-serializer/` (`CUSTOM_VERSIONS` of `xtask/src/oracle.rs`):
/// one per layout an unknown serializer snapshot must be read past in (testdata/README.md,
/// `custom-serializer/`).
pub const CUSTOM_SERIALIZER_VERSIONS: &[&str] = &["1.13.6", "1.15.4", "1.20.5", "2.3.0"];

/// The versions with SQL fixtures (`SQL_CANONICAL` of `xtask/src/main.rs`: those whose SQL
/// serializer snapshots differ; testdata/README.md, "SQL cases").
pub const SQL_VERSIONS: &[&str] = &["1.15.4", "1.20.5", "2.0.2", "2.3.0"];

/// `testdata/GROUP/flink-VERSION/CASE` for every fixture version and each of `cases`, in that
/// order: a version or case missing fails (a fixture that was never generated must not pass
/// by not being looked at), and so does a version directory of no fixture version.
pub fn versioned_cases(group: &str, cases: &[&str]) -> Vec<(String, PathBuf)> {
    versioned_cases_of(group, &fixture_versions(), cases)
}

/// `testdata/GROUP/flink-VERSION/CASE` for each of `versions` (fixture versions, sorted) and
/// each of `cases`, in that order: a version or case missing fails, and so does a version
/// directory of another version.
pub fn versioned_cases_of(group: &str, versions: &[impl AsRef<str>], cases: &[&str]) -> Vec<(String, PathBuf)> {
    let base = root().join("testdata").join(group);
    let versions: Vec<String> = versions.iter().map(|v| v.as_ref().to_owned()).collect();
    let all = fixture_versions();
    assert!(versions.iter().all(|v| all.contains(v)), "testdata/{group}: {versions:?} are not all fixture versions ({all:?})");
    let mut present: Vec<String> =
        std::fs::read_dir(&base).unwrap().flatten().filter_map(|e| e.file_name().to_str()?.strip_prefix("flink-").map(str::to_owned)).collect();
    present.sort();
    assert_eq!(present, versions, "testdata/{group}: the versions are not the expected ones");
    let mut out = Vec::new();
    for v in &versions {
        for c in cases {
            let dir = base.join(format!("flink-{v}")).join(c);
            assert!(dir.join("case.json").is_file(), "{}: no case.json", dir.display());
            out.push((v.clone(), dir));
        }
    }
    out
}

/// The text of a fixture file that case.json names (`expected*.jsonl.gz`, `oracle*.jsonl.gz`,
/// `metadata*.json.gz`), gunzipped when its name ends in `.gz` (testdata/README.md, "Size
/// rule"). Errors name the file.
pub fn read_fixture_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let named = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let bytes = std::fs::read(path).map_err(named)?;
    if path.extension().is_none_or(|e| e != "gz") {
        return String::from_utf8(bytes).map_err(|e| named(std::io::Error::new(std::io::ErrorKind::InvalidData, e)));
    }
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut text).map_err(named)?;
    Ok(text)
}

/// Runs `flinksnap ARGS` in the repository root.
pub fn flinksnap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flinksnap")).args(args).current_dir(root()).output().expect("run flinksnap")
}

/// Runs `flinksnap ARGS`, asserts the exit code and returns stdout.
pub fn flinksnap_ok(args: &[&str]) -> String {
    let out = flinksnap(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "flinksnap {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A tiny deterministic PRNG (xorshift64*), so corruption tests are reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
