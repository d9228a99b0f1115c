//! `cargo xtask fixtures`: generates the real-Flink fixtures under `testdata/`.
//!
//! For each Flink version it downloads `apache-flink-libraries` from PyPI (once, into a
//! cache), compiles the Java job in `xtask/flink-job/` against that version's jars with
//! `javac`, and runs it in an in-process MiniCluster once per "run" (a job configuration).
//! Each run writes one or more cases into `testdata/flink-<version>/<case>/`.
//! See `xtask/README.md` and `testdata/README.md`.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

mod bench;
mod bench_vs_flink;
mod compat_interop;
mod compat_upgrade;
mod interop;
mod sql_interop;
mod oracle;

const DEFAULT_VERSIONS: &[&str] = &["1.13.6", "1.14.6", "1.15.4", "1.18.1", "1.20.5", "2.0.2", "2.3.0"];

/// A snapshot to take: after which phase, what kind, into which case.
#[derive(Clone, Copy)]
struct Snap {
    phase: u8,
    kind: &'static str, // checkpoint | canonical | native
    case: &'static str,
    /// Versions that keep this case, within the run's (empty: every version of the run); a run
    /// none of whose cases a version keeps is skipped there.
    only_versions: &'static [&'static str],
}

/// One job configuration = one JVM run.
struct Run {
    name: &'static str,
    backend: &'static str, // hashmap | rocksdb | forst
    parallelism: u32,
    max_parallelism: u32,
    compression: bool,
    incremental: bool,
    /// `None` keeps Flink's default inline threshold (20 KiB): small state lands inline in `_metadata`.
    inline_threshold: Option<u32>,
    snaps: &'static [Snap],
    /// Flink versions this run is limited to (empty: all). The p=2 / max-parallelism-32768 runs
    /// are the largest (32768 key-group offsets per keyed operator in `_metadata`, two RocksDB
    /// instances per operator), so only the oldest and newest versions carry them.
    only_versions: &'static [&'static str],
}

/// The max-parallelism-32768 cases (p=2: two RocksDB instances per operator, 2-byte key-group
/// prefixes; a 780 KiB heap `_metadata`), only in 2.3.0: what they add (the prefix width, 32768
/// key-group offsets, two subtasks' handles) is written the same way by every version, and the
/// handle types, metadata versions and FRocksDB generations of the others are in the cases at
/// max parallelism 128 (testdata/README.md, "Size rule").
const EXTREMES: &[&str] = &["2.3.0"];

/// The RocksDB incremental chain: one version per FRocksDB generation and keyed handle type:
/// 1.13.6 (FRocksDB 5.17, IncrementalRemoteKeyedStateHandle 5, V3), 1.15.4 (6.20, type 11, V3:
/// 1.14.6 to 1.20.5 write FRocksDB 6.20, 1.14.6 with type 5) and 2.3.0 (8.10, V6; 2.0.2 writes
/// the same but V5). Metadata V4 and V5 are in every other case of 1.18.1 to 2.0.2, and 1.20.5's
/// incremental checkpoints in its restore case.
const CHAIN_VERSIONS: &[&str] = &["1.13.6", "1.15.4", "2.3.0"];
/// The RocksDB native savepoint (every file relative, FLIP-203, 1.15+): 1.15.4 (FRocksDB 6.20,
/// V3) and 2.3.0 (8.10, V6); the handle layout is the same in between.
const NATIVE_VERSIONS: &[&str] = &["1.15.4", "2.3.0"];
/// The RocksDB full checkpoint: the canonical stream in a KeyGroupsStateHandle up to 1.15 (type 3
/// in 1.13.6 and 1.14.6, 12 in 1.15.4), native files in the private list from 1.16 (2.3.0 stands
/// for them: FRocksDB 6.20's files are in the 1.15.4 chain).
const FULL_VERSIONS: &[&str] = &["1.13.6", "1.14.6", "1.15.4", "2.3.0"];

const fn snap(phase: u8, kind: &'static str, case: &'static str) -> Snap {
    Snap { phase, kind, case, only_versions: &[] }
}

const fn snap_in(phase: u8, kind: &'static str, case: &'static str, only_versions: &'static [&'static str]) -> Snap {
    Snap { phase, kind, case, only_versions }
}

const RUNS: &[Run] = &[
    Run {
        name: "heap",
        backend: "hashmap",
        parallelism: 1,
        max_parallelism: 128,
        compression: false,
        incremental: false,
        inline_threshold: Some(0),
        snaps: &[
            snap(3, "checkpoint", "heap-checkpoint"),
            snap(3, "canonical", "heap-savepoint-canonical"),
            snap_in(3, "native", "heap-savepoint-native", HEAP_NATIVE_VERSIONS),
        ],
        only_versions: &[],
    },
    Run {
        name: "heap-compressed",
        backend: "hashmap",
        parallelism: 1,
        max_parallelism: 128,
        compression: true,
        incremental: false,
        inline_threshold: None,
        snaps: &[
            snap(3, "checkpoint", "heap-checkpoint-compressed"),
            snap(3, "canonical", "heap-savepoint-canonical-compressed"),
        ],
        only_versions: &[],
    },
    Run {
        name: "heap-p2",
        backend: "hashmap",
        parallelism: 2,
        max_parallelism: 32768,
        compression: false,
        incremental: false,
        inline_threshold: Some(0),
        snaps: &[snap(3, "canonical", "heap-savepoint-canonical-p2-maxp32768")],
        only_versions: EXTREMES,
    },
    Run {
        name: "rocksdb-full",
        backend: "rocksdb",
        parallelism: 1,
        max_parallelism: 128,
        compression: false,
        incremental: false,
        inline_threshold: Some(0),
        snaps: &[
            snap_in(3, "checkpoint", "rocksdb-checkpoint-full", FULL_VERSIONS),
            snap(3, "canonical", "rocksdb-savepoint-canonical"),
        ],
        only_versions: &[],
    },
    Run {
        name: "rocksdb-incremental",
        backend: "rocksdb",
        parallelism: 1,
        max_parallelism: 128,
        compression: false,
        incremental: true,
        inline_threshold: Some(0),
        snaps: &[
            snap_in(1, "checkpoint", "rocksdb-checkpoint-incremental", CHAIN_VERSIONS),
            snap_in(2, "checkpoint", "rocksdb-checkpoint-incremental", CHAIN_VERSIONS),
            snap_in(3, "checkpoint", "rocksdb-checkpoint-incremental", CHAIN_VERSIONS),
            snap_in(3, "native", "rocksdb-savepoint-native", NATIVE_VERSIONS),
        ],
        only_versions: &[],
    },
    Run {
        name: "rocksdb-incremental-p2",
        backend: "rocksdb",
        parallelism: 2,
        max_parallelism: 32768,
        compression: false,
        incremental: true,
        inline_threshold: Some(0),
        // a single checkpoint: a chain at p=2 would double the (already covered) chain's size
        snaps: &[snap(3, "checkpoint", "rocksdb-checkpoint-incremental-p2-maxp32768")],
        only_versions: EXTREMES,
    },
    // ForSt (Flink 2.x, in flink-dist since 2.0): the RocksDB fork of the disaggregated state
    // backend, with the same job and the chain of the RocksDB run. No ForSt native savepoint: it
    // is the RocksDB native savepoint's layout (IncrementalRemoteKeyedStateHandle, every file
    // relative) around files the chain has byte for byte (testdata/README.md, "Size rule" 3).
    Run {
        name: "forst-incremental",
        backend: "forst",
        parallelism: 1,
        max_parallelism: 128,
        compression: false,
        incremental: true,
        inline_threshold: Some(0),
        snaps: &[
            snap(1, "checkpoint", "forst-checkpoint-incremental"),
            snap(2, "checkpoint", "forst-checkpoint-incremental"),
            snap(3, "checkpoint", "forst-checkpoint-incremental"),
        ],
        only_versions: FORST_VERSIONS,
    },
    Run {
        name: "forst-in-place",
        backend: "forst",
        parallelism: 1,
        max_parallelism: 128,
        compression: false,
        incremental: true,
        inline_threshold: Some(0),
        snaps: &[
            snap(1, "checkpoint", "forst-checkpoint-in-place"),
            snap(2, "checkpoint", "forst-checkpoint-in-place"),
            snap(3, "checkpoint", "forst-checkpoint-in-place"),
        ],
        only_versions: FORST_VERSIONS,
    },
    // The runs below switch on a state-handle feature (see RUN_FEATURES): one retained
    // checkpoint each, in 2.3.0 (FEATURE_VERSIONS; the unaligned one in UNALIGNED_VERSIONS).
    Run {
        name: "heap-changelog",
        backend: "hashmap",
        parallelism: 1,
        max_parallelism: 128,
        compression: false,
        incremental: false,
        inline_threshold: Some(0),
        snaps: &[snap(3, "checkpoint", "heap-changelog-checkpoint")],
        only_versions: FEATURE_VERSIONS,
    },
    Run {
        name: "heap-changelog-memory",
        backend: "hashmap",
        parallelism: 1,
        max_parallelism: 128,
        compression: false,
        incremental: false,
        inline_threshold: Some(0),
        snaps: &[snap(3, "checkpoint", "heap-changelog-memory-checkpoint")],
        only_versions: FEATURE_VERSIONS,
    },
    Run {
        name: "rocksdb-changelog",
        backend: "rocksdb",
        parallelism: 1,
        max_parallelism: 128,
        compression: false,
        // materializations are RocksDB incremental snapshots (IncrementalRemoteKeyedStateHandle)
        incremental: true,
        inline_threshold: Some(0),
        snaps: &[snap(3, "checkpoint", "rocksdb-changelog-checkpoint")],
        only_versions: FEATURE_VERSIONS,
    },
    Run {
        name: "heap-file-merging",
        backend: "hashmap",
        parallelism: 1,
        max_parallelism: 128,
        compression: false,
        incremental: false,
        inline_threshold: Some(0),
        snaps: &[snap(3, "checkpoint", "heap-checkpoint-file-merging")],
        only_versions: FEATURE_VERSIONS,
    },
    Run {
        name: "rocksdb-file-merging",
        backend: "rocksdb",
        parallelism: 1,
        max_parallelism: 128,
        compression: false,
        incremental: true,
        inline_threshold: Some(0),
        snaps: &[snap(3, "checkpoint", "rocksdb-checkpoint-file-merging")],
        only_versions: FEATURE_VERSIONS,
    },
    // Restore runs (issue 20): after the three phases the job is cancelled and restored from its
    // last snapshot in CLAIM or LEGACY mode; the restored job takes a checkpoint in its own job
    // directory that references the first job's files (CLAIM_VERSIONS, LEGACY_VERSIONS and
    // SAVEPOINT_CLAIM_VERSIONS; the mode in RUN_FEATURES). Only the snapshot restored from and that checkpoint are kept: chains of one
    // job are `rocksdb-checkpoint-incremental`'s.
    Run {
        name: "rocksdb-incremental-claim",
        backend: "rocksdb",
        parallelism: 1,
        max_parallelism: 128,
        compression: false,
        incremental: true,
        inline_threshold: Some(0),
        snaps: &[
            snap(3, "checkpoint", "rocksdb-checkpoint-incremental-claim"),
            snap(1, "restored", "rocksdb-checkpoint-incremental-claim"),
        ],
        only_versions: CLAIM_VERSIONS,
    },
    Run {
        name: "rocksdb-incremental-legacy",
        backend: "rocksdb",
        parallelism: 1,
        max_parallelism: 128,
        compression: false,
        incremental: true,
        inline_threshold: Some(0),
        snaps: &[
            snap(3, "checkpoint", "rocksdb-checkpoint-incremental-legacy"),
            snap(1, "restored", "rocksdb-checkpoint-incremental-legacy"),
        ],
        only_versions: LEGACY_VERSIONS,
    },
    Run {
        name: "rocksdb-savepoint-native-claim",
        backend: "rocksdb",
        parallelism: 1,
        max_parallelism: 128,
        compression: false,
        incremental: true,
        inline_threshold: Some(0),
        snaps: &[snap(3, "native", "rocksdb-savepoint-native-claim"), snap(1, "restored", "rocksdb-savepoint-native-claim")],
        only_versions: SAVEPOINT_CLAIM_VERSIONS,
    },
    // A job without uids (issue 19): Flink generates every operator id from the stream graph.
    // Its canonical savepoint is what `flinksnap edit --rename-operator GENERATED=UID` starts
    // from; it goes to `testdata/no-uids/` (RUN_GROUPS), apart from the fixtures of the job with
    // uids that every reader test walks.
    Run {
        name: "heap-nouids",
        backend: "hashmap",
        parallelism: 1,
        max_parallelism: 128,
        compression: false,
        incremental: false,
        inline_threshold: Some(0),
        snaps: &[snap(3, "canonical", "heap-savepoint-canonical-nouids")],
        only_versions: NO_UIDS_VERSIONS,
    },
    Run {
        name: "heap-unaligned",
        backend: "hashmap",
        parallelism: 2,
        max_parallelism: 128,
        compression: false,
        incremental: false,
        inline_threshold: Some(0),
        snaps: &[snap(3, "checkpoint", "heap-checkpoint-unaligned")],
        only_versions: UNALIGNED_VERSIONS,
    },
];

/// A snapshot of the SQL jobs (`flink-job/src-sql/`), taken after phase 2 (the last phase the
/// fixtures feed; the third one is fed after a restore, by `interop`).
#[derive(Clone, Copy)]
struct SqlSnap {
    kind: &'static str, // checkpoint | canonical | native
    /// Case suffix: the cases are `<job>-<suffix>`.
    case: &'static str,
    /// The jobs snapshotted (`SqlJob.java` names them).
    jobs: &'static [&'static str],
    /// Versions that take it (empty: every SQL version).
    only_versions: &'static [&'static str],
}

/// One SQL configuration = one JVM run of both SQL jobs.
struct SqlRun {
    name: &'static str,
    backend: &'static str,
    incremental: bool,
    snaps: &'static [SqlSnap],
}

/// The SQL fixtures: the two read paths, key-grouped streams (a canonical savepoint) and RocksDB
/// tables (a retained incremental RocksDB checkpoint); the other kinds only change the files
/// around the same serialized state, which the DataStream cases cover. No SQL native savepoints,
/// heap checkpoints or RocksDB canonical savepoints: a native savepoint holds the files of the
/// checkpoint of the same state (a heap one is the heap checkpoint format, a RocksDB one names
/// byte-identical SSTs relatively), a heap checkpoint or RocksDB canonical savepoint the same
/// serializer snapshots and records as the heap canonical savepoint in other framing. SQL state
/// is large for its few keys (every state carries its Java-serialized row types, every RocksDB
/// instance its ~20 KB OPTIONS file), so this is the matrix testdata/ can carry.
///
/// The canonical savepoint, in the versions whose SQL serializer snapshots differ: 1.15.4 (the
/// oldest, CEP's NFA state snapshot version 1), 1.20.5 (1.16-1.20; 1.18.1 wrote the same classes
/// and fields), 2.0.2 (V5, whose stored uids name the operators of the plans) and 2.3.0 (2.1+
/// logical types).
const SQL_CANONICAL: &[&str] = &["1.15.4", "1.20.5", "2.0.2", "2.3.0"];
/// SQL state in RocksDB (the retained incremental checkpoint of both SQL jobs): only the newest
/// version. The RocksDB backend's files are covered by the DataStream fixtures, the SQL
/// serializers by the canonical savepoint; what is left, SQL state as RocksDB tables, reads the
/// same in every version, and these checkpoints are ~2 MB each (testdata/README.md, "Size rule").
const SQL_ROCKSDB: &[&str] = &["2.3.0"];

const SQL_RUNS: &[SqlRun] = &[
    SqlRun {
        name: "sql-heap",
        backend: "hashmap",
        incremental: false,
        snaps: &[
            SqlSnap { kind: "canonical", case: "heap-savepoint-canonical", jobs: SQL_JOBS, only_versions: SQL_CANONICAL },
            SqlSnap { kind: "canonical", case: "heap-savepoint-canonical", jobs: SQL_V2_JOBS, only_versions: SQL_V2 },
        ],
    },
    SqlRun {
        name: "sql-rocksdb",
        backend: "rocksdb",
        incremental: true,
        snaps: &[
            SqlSnap { kind: "checkpoint", case: "rocksdb-checkpoint-incremental", jobs: SQL_JOBS, only_versions: SQL_ROCKSDB },
        ],
    },
];

/// The SQL jobs, as `flink-job/.../SqlJob.java` names them.
const SQL_JOBS: &[&str] = &["sql", "sql-minibatch"];
/// The job of Flink 2.1+'s SQL operators: a multi-way join (`StreamingMultiJoinOperator`) and a
/// process table function with structured, ListView, MapView and TTL state and named timers
/// (`flink-job/src-sql-21/`). Only 2.3.0, as a heap canonical savepoint: the serializers are
/// the table runtime's of the other SQL fixtures, the operators and their states are new.
/// `sql-lookup`: a lookup join made stateful (`KeyedLookupJoinWrapper`) by
/// `TRY_RESOLVE`, which 2.3.0 refuses to plan beside a process table function.
const SQL_V2_JOBS: &[&str] = &["sql-v2", "sql-lookup"];
const SQL_V2: &[&str] = &["2.3.0"];

fn sql_cases(snap: &SqlSnap) -> Vec<String> {
    snap.jobs.iter().map(|j| format!("{j}-{}", snap.case)).collect()
}

/// The feature cases (changelog, file merging): 2.3.0. 1.20.5 (file merging is new in 1.20)
/// wrote the same handles (the metadata differing only in V4 against V6) and the same DSTL
/// bytes (`heap-changelog-checkpoint`'s state-change file was byte for byte 2.3.0's); its
/// file-merging checkpoints packed the segments into other physical files, the same layout.
const FEATURE_VERSIONS: &[&str] = &["2.3.0"];
/// The job without uids (`testdata/no-uids/`): 1.20.5 (V4, ids only) and 2.3.0 (V6, names too),
/// the edit interop's versions (`EDIT_VERSIONS` in `src/interop/edit.rs`).
const NO_UIDS_VERSIONS: &[&str] = &["1.20.5", "2.3.0"];
/// The heap native savepoint is the heap checkpoint format (its state files were byte for byte
/// the `heap-checkpoint`'s of the same version in 1.15.4 to 2.3.0, its handles the same): only
/// 2.3.0 keeps one, for the native-savepoint properties of `_metadata` (testdata/README.md,
/// "Size rule" 3).
const HEAP_NATIVE_VERSIONS: &[&str] = &["2.3.0"];
/// ForSt (in flink-dist from 2.0): 2.3.0 stands for 2.x (2.0.2 writes the same handles and files,
/// FRocksDB 8.10, under metadata V5).
const FORST_VERSIONS: &[&str] = &["2.3.0"];
/// Unaligned checkpoints exist in every version: 1.13.6 has the channel-state handles of metadata
/// V3 to V5 (one handle per channel; 1.14.6 and 1.20.5 write the same), 2.3.0 the merged, typed
/// ones of V6.
const UNALIGNED_VERSIONS: &[&str] = &["1.13.6", "2.3.0"];

/// Restore modes exist from 1.15 (FLIP-193); LEGACY is deprecated but still accepted in 2.3.0.
/// Each restore-mode enum Flink has had is used once, and each kind of restore case is there
/// once: CLAIM from a checkpoint in 1.15.4 (`runtime.jobgraph.RestoreMode`), LEGACY in 1.20.5
/// (`core.execution.RestoreMode`, 1.16-1.20), CLAIM from a native savepoint in 2.3.0
/// (`core.execution.RecoveryClaimMode`, 2.x). The mode only tells the generator what to do: the
/// restored job's checkpoint has the same layout in each (`cargo xtask interop` restores every
/// version live).
const CLAIM_VERSIONS: &[&str] = &["1.15.4"];
const LEGACY_VERSIONS: &[&str] = &["1.20.5"];
/// A CLAIM restore from a native savepoint: in 1.15.4, 1.20.5 and 2.3.0 alike the restored job's
/// first checkpoint reuses the savepoint's SSTs under their relative names, which Flink resolves
/// beside the checkpoint's own `_metadata`, where they are not (FLINK-39964, fixed after 2.3.0):
/// the checkpoint is marked unsound in case.json.
const SAVEPOINT_CLAIM_VERSIONS: &[&str] = &["2.3.0"];

/// Extra job arguments of the feature runs, by run name (`--changelog filesystem|memory`,
/// `--file-merging true`, `--unaligned true`; see `flink-job/.../Main.java`).
const RUN_FEATURES: &[(&str, &[&str])] = &[
    ("heap-changelog", &["--changelog", "filesystem"]),
    ("heap-changelog-memory", &["--changelog", "memory"]),
    ("rocksdb-changelog", &["--changelog", "filesystem"]),
    ("heap-file-merging", &["--file-merging", "true"]),
    ("rocksdb-file-merging", &["--file-merging", "true"]),
    ("heap-unaligned", &["--unaligned", "true"]),
    ("forst-in-place", &["--forst-in-place", "true"]),
    ("rocksdb-incremental-claim", &["--restore-mode", "CLAIM"]),
    ("rocksdb-incremental-legacy", &["--restore-mode", "LEGACY"]),
    ("rocksdb-savepoint-native-claim", &["--restore-mode", "CLAIM"]),
    ("heap-nouids", &["--no-uids", "true"]),
];

/// Runs whose cases go to `testdata/<group>/flink-<version>/` instead of `testdata/flink-<version>/`.
const RUN_GROUPS: &[(&str, &str)] = &[("heap-nouids", "no-uids")];

/// `testdata/flink-<version>`, or `testdata/<group>/flink-<version>` for a run of a group.
fn run_out(repo: &Path, run: &str, version: &str) -> PathBuf {
    let base = repo.join("testdata");
    let base = match RUN_GROUPS.iter().find(|(name, _)| *name == run) {
        Some((_, group)) => base.join(group),
        None => base,
    };
    base.join(format!("flink-{version}"))
}

fn run_features(run: &str) -> &'static [&'static str] {
    RUN_FEATURES.iter().find(|(name, _)| *name == run).map_or(&[], |(_, args)| args)
}

type Result<T> = std::result::Result<T, String>;

mod bench_export;
mod bench_stores;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let res = match args.first().map(String::as_str) {
        Some("fixtures") => fixtures(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("interop") => interop::interop(&args[1..]),
        Some("compat-interop") => compat_interop::compat_interop(&args[1..]),
        Some("oracle") => oracle::oracle(&args[1..]),
        Some("serializer-fixtures") => oracle::serializer_fixtures(&args[1..]),
        Some("bench-export") => cache_dir().and_then(|c| bench_export::bench_export(&args[1..], &repo_root(), &c)),
        Some("bench-stores") => cache_dir().and_then(|c| bench_stores::bench_stores(&args[1..], &repo_root(), &c)),
        _ => Err(usage()),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> String {
    let mut s = String::from(
        "usage: cargo xtask fixtures [--flink VERSION]... [--case NAME]... [--list]\n\
         \x20      cargo xtask interop [--flink VERSION]... [--case NAME]... [--full] (see --help)\n\
         \x20      cargo xtask oracle [--flink VERSION]... [--case NAME]... (real Flink's dump of the fixtures)\n\
         \n\
         Generates testdata/flink-VERSION/CASE/ with real Flink (downloaded from PyPI).\n\
         Default versions: ",
    );
    s.push_str(&DEFAULT_VERSIONS.join(", "));
    s.push_str("\nCases:\n");
    for case in all_cases() {
        s.push_str("  ");
        s.push_str(&case);
        s.push('\n');
    }
    s.push_str("\n       cargo xtask bench --help   (large-state snapshots: speed and peak RSS of flinksnap)\n");
    s.push('\n');
    s.push_str(bench_export::USAGE);
    s.push('\n');
    s.push('\n');
    s.push_str(bench_stores::USAGE);
    s.push('\n');
    s
}

fn all_cases() -> Vec<String> {
    let mut v: Vec<String> = RUNS.iter().flat_map(|r| r.snaps.iter().map(|s| s.case.to_string())).collect();
    v.dedup();
    for r in SQL_RUNS {
        for s in r.snaps {
            v.extend(sql_cases(s));
        }
    }
    v
}

fn fixtures(args: &[String]) -> Result<()> {
    let mut versions: Vec<String> = Vec::new();
    let mut cases: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--flink" => versions.push(it.next().ok_or("--flink needs a version")?.clone()),
            "--case" => cases.push(it.next().ok_or("--case needs a name")?.clone()),
            "--list" => {
                print!("{}", usage());
                return Ok(());
            }
            "-h" | "--help" => {
                print!("{}", usage());
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    if versions.is_empty() {
        versions = DEFAULT_VERSIONS.iter().map(|s| s.to_string()).collect();
    }
    let known = all_cases();
    for c in &cases {
        if !known.contains(c) {
            return Err(format!("unknown case {c:?}\n{}", usage()));
        }
    }
    for v in &versions {
        generation(v)?; // validates the version string early
    }

    let tools = Tools::find()?;
    let repo = repo_root();
    let cache = cache_dir()?;
    let started = Instant::now();
    for v in &versions {
        let t = Instant::now();
        let dist = ensure_dist(&tools, &cache, v)?;
        let classes = compile(&tools, &repo, &cache, v, &dist)?;
        let out = repo.join("testdata").join(format!("flink-{v}"));
        fs::create_dir_all(&out).map_err(|e| format!("create {}: {e}", out.display()))?;
        for run in RUNS {
            if !run.only_versions.is_empty() && !run.only_versions.contains(&v.as_str()) {
                continue;
            }
            let snaps: Vec<Snap> = run
                .snaps
                .iter()
                .copied()
                .filter(|s| s.kind != "native" || has_native_savepoints(v))
                .filter(|s| s.only_versions.is_empty() || s.only_versions.contains(&v.as_str()))
                .filter(|s| cases.is_empty() || cases.iter().any(|c| c == s.case))
                .collect();
            if snaps.is_empty() {
                continue;
            }
            let out = run_out(&repo, run.name, v);
            fs::create_dir_all(&out).map_err(|e| format!("create {}: {e}", out.display()))?;
            run_job(&tools, &repo, &cache, v, &dist, &classes, run, &snaps, &out)?;
        }
        if has_sql(v) {
            for run in SQL_RUNS {
                let snaps: Vec<SqlSnap> = run
                    .snaps
                    .iter()
                    .copied()
                    .filter(|s| s.only_versions.is_empty() || s.only_versions.contains(&v.as_str()))
                    .filter(|s| cases.is_empty() || sql_cases(s).iter().any(|c| cases.contains(c)))
                    .collect();
                if snaps.is_empty() {
                    continue;
                }
                run_sql_job(&tools, &repo, &cache, v, &dist, &classes, run, &snaps, &out)?;
            }
        }
        println!(
            "== flink {v}: done in {:.0} s, testdata/flink-{v} is {}",
            t.elapsed().as_secs_f64(),
            human(dir_size(&out))
        );
    }
    println!(
        "== all done in {:.0} s; testdata/ is {}",
        started.elapsed().as_secs_f64(),
        human(dir_size(&repo.join("testdata")))
    );
    Ok(())
}

// ---- tools and paths ------------------------------------------------------------------------

struct Tools {
    java: OsString,
    javac: OsString,
    /// pip invocation: program + leading args (e.g. `python3 -m pip`)
    pip: Vec<OsString>,
    python: OsString,
}

impl Tools {
    fn find() -> Result<Tools> {
        let java = require("java", &["-version"], "a JDK 17 (java) is required")?;
        let javac = require("javac", &["-version"], "a JDK 17 (javac) is required")?;
        let python = require("python3", &["--version"], "python3 is required (pip and unpacking)")?;
        let pip = if works("pip", &["--version"]) {
            vec![OsString::from("pip")]
        } else if works("python3", &["-m", "pip", "--version"]) {
            vec![python.clone(), "-m".into(), "pip".into()]
        } else {
            return Err("pip is required (neither `pip` nor `python3 -m pip` works)".into());
        };
        Ok(Tools { java, javac, pip, python })
    }
}

fn works(prog: &str, args: &[&str]) -> bool {
    Command::new(prog)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn require(prog: &str, args: &[&str], why: &str) -> Result<OsString> {
    if works(prog, args) {
        Ok(OsString::from(prog))
    } else {
        Err(format!("`{prog}` not found or not working: {why}"))
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the repository")
        .to_path_buf()
}

fn cache_dir() -> Result<PathBuf> {
    if let Some(c) = env::var_os("FLINKSNAP_CACHE") {
        return Ok(PathBuf::from(c));
    }
    let home = env::var_os("HOME").ok_or("neither FLINKSNAP_CACHE nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache").join("flinksnap"))
}

/// "1x" or "2x": which shim directory the Java job uses.
fn generation(version: &str) -> Result<&'static str> {
    let major = version.split('.').next().unwrap_or("");
    match major {
        "1" => {
            let minor: u32 = version.split('.').nth(1).and_then(|m| m.parse().ok()).unwrap_or(0);
            if minor < 13 {
                return Err(format!("Flink {version}: only 1.13 and newer are supported"));
            }
            Ok("1x")
        }
        "2" => Ok("2x"),
        _ => Err(format!("unsupported Flink version {version:?}")),
    }
}

/// Native savepoints (FLIP-203) and `MiniCluster.triggerCheckpoint` are 1.15+.
fn has_native_savepoints(version: &str) -> bool {
    let mut p = version.split('.');
    let major: u32 = p.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let minor: u32 = p.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    major > 1 || minor >= 15
}

/// The shim directories of the Java job besides `src-common`: the generation's (`src-1x`,
/// `src-2x`), and how snapshots are triggered: `src-native` (1.15+: checkpoints on demand,
/// savepoint format types) or `src-1old` (1.13, 1.14: periodic checkpoints, canonical savepoints).
fn shim_dirs(version: &str) -> Result<[String; 2]> {
    let trigger = if has_native_savepoints(version) { "src-native" } else { "src-1old" };
    Ok([format!("src-{}", generation(version)?), trigger.to_owned()])
}

/// Flink <= 1.17 needs the usual module opens on Java 17.
fn needs_add_opens(version: &str) -> bool {
    let mut p = version.split('.');
    let major: u32 = p.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let minor: u32 = p.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    // 1.18–1.20 run too, but their Kryo (chill's serializers, registered on first use) needs
    // java.util open as well: every 1.x gets the list.
    let _ = minor;
    major == 1
}

const ADD_OPENS: &[&str] = &[
    "java.base/java.lang",
    "java.base/java.lang.invoke",
    "java.base/java.lang.reflect",
    "java.base/java.io",
    "java.base/java.net",
    "java.base/java.nio",
    "java.base/sun.nio.ch",
    "java.base/java.text",
    "java.base/java.time",
    "java.base/java.util",
    "java.base/java.util.concurrent",
    "java.base/java.util.concurrent.atomic",
    "java.base/java.util.concurrent.locks",
    "java.base/java.security",
    "java.base/jdk.internal.misc",
    "java.management/sun.management",
    "jdk.management/com.sun.management.internal",
];

fn run_cmd(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().map_err(|e| format!("{what}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

// ---- distribution download and unpacking ----------------------------------------------------

struct Dist {
    lib: PathBuf,
    classpath: Vec<PathBuf>,
    /// The SQL jobs' extra jars (`lib/flink-table-*.jar`: API, planner loader, runtime): only the
    /// SQL fixture, restore and oracle JVMs load them.
    sql_jars: Vec<PathBuf>,
}

impl Dist {
    /// The classpath of the SQL jobs: the DataStream job's and the table planner, runtime and CEP.
    fn sql_classpath(&self) -> Vec<PathBuf> {
        let mut cp = self.classpath.clone();
        cp.extend(self.sql_jars.iter().cloned());
        cp
    }
}

fn ensure_dist(tools: &Tools, cache: &Path, version: &str) -> Result<Dist> {
    let vdir = cache.join("flink").join(version);
    let pkg = vdir.join("pkg");
    let lib = vdir.join("lib");
    let downloaded = pkg.join(".complete");
    if !downloaded.exists() {
        println!("== flink {version}: pip download apache-flink-libraries=={version} (~250-330 MB)");
        let _ = fs::remove_dir_all(&pkg);
        fs::create_dir_all(&pkg).map_err(|e| format!("create {}: {e}", pkg.display()))?;
        let mut cmd = Command::new(&tools.pip[0]);
        cmd.args(&tools.pip[1..])
            .args(["download", "--no-deps", "--quiet"])
            .arg(format!("apache-flink-libraries=={version}"))
            .arg("-d")
            .arg(&pkg);
        run_cmd(&mut cmd, &format!("pip download apache-flink-libraries=={version}"))?;
        fs::write(&downloaded, b"").map_err(|e| e.to_string())?;
    }
    let unpacked = lib.join(".complete");
    if !unpacked.exists() {
        let archive = fs::read_dir(&pkg)
            .map_err(|e| format!("read {}: {e}", pkg.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                let n = p.file_name().unwrap_or_default().to_string_lossy().to_string();
                n.ends_with(".whl") || n.ends_with(".tar.gz") || n.ends_with(".zip")
            })
            .ok_or_else(|| format!("no package archive in {}", pkg.display()))?;
        println!("== flink {version}: unpacking lib/*.jar from {}", archive.display());
        let _ = fs::remove_dir_all(&lib);
        fs::create_dir_all(&lib).map_err(|e| e.to_string())?;
        // Wheels are zips, sdists are tarballs; both carry the distribution's lib/ directory
        // (pyflink/lib/ or deps/lib/). python3 is there anyway because pip is.
        let script = r#"
import os, re, sys, tarfile, zipfile
archive, dest = sys.argv[1], sys.argv[2]
pat = re.compile(r'(^|/)lib/[^/]+\.jar$')
n = 0
def put(name, data):
    global n
    open(os.path.join(dest, os.path.basename(name)), 'wb').write(data)
    n += 1
if archive.endswith('.tar.gz'):
    with tarfile.open(archive) as t:
        for m in t:
            if m.isfile() and pat.search(m.name) and '/opt/' not in m.name:
                put(m.name, t.extractfile(m).read())
else:
    with zipfile.ZipFile(archive) as z:
        for name in z.namelist():
            if pat.search(name):
                put(name, z.read(name))
print('extracted %d jars' % n)
"#;
        let mut cmd = Command::new(&tools.python);
        cmd.arg("-c").arg(script).arg(&archive).arg(&lib);
        run_cmd(&mut cmd, "unpacking the Flink package")?;
        fs::write(&unpacked, b"").map_err(|e| e.to_string())?;
    }
    let mut classpath = Vec::new();
    let mut sql_jars = Vec::new();
    let mut has_dist = false;
    let mut entries: Vec<PathBuf> = fs::read_dir(&lib)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let n = p.file_name().unwrap_or_default().to_string_lossy().to_string();
        if n.starts_with("flink-dist") && n.ends_with(".jar") {
            has_dist = true;
            classpath.push(p);
        } else if (n.starts_with("log4j-") || n.starts_with("flink-shaded-zookeeper")) && n.ends_with(".jar") {
            // 1.15's flink-dist needs the shaded curator classes of flink-shaded-zookeeper
            classpath.push(p);
        } else if ["flink-cep", "flink-scala", "flink-connector-files"].iter().any(|j| n.starts_with(j)) && n.ends_with(".jar") {
            // Serializers of the distribution outside flink-dist (1.15+; 1.13 and 1.14 carry the
            // Scala API in flink-dist and have no CEP in lib/): CEP state, the Scala API (1.x;
            // 2.x's jar is only the Scala library), file source splits.
            classpath.push(p);
        } else if n.starts_with("flink-table-") && n.ends_with(".jar") {
            sql_jars.push(p);
        }
    }
    if !has_dist {
        return Err(format!("no flink-dist jar in {}", lib.display()));
    }
    Ok(Dist { lib, classpath, sql_jars })
}

/// A JVM for one of the Flink job's main classes: heap, serial GC, the `--add-opens` older Flink
/// needs on JDK 17, the job's log4j config, its own tmp dir, the job's classes before Flink's jars.
#[allow(clippy::too_many_arguments)]
fn java_job(tools: &Tools, repo: &Path, version: &str, xmx_mib: u64, tmp: &Path, classes: &Path, dist_cp: &[PathBuf], main_class: &str) -> Command {
    java_job_gc(tools, repo, version, xmx_mib, tmp, classes, dist_cp, main_class, Some("-XX:+UseSerialGC"))
}

/// [`java_job`] with the JVM's garbage collector chosen (`None`: the JVM's default, G1).
#[allow(clippy::too_many_arguments)]
fn java_job_gc(tools: &Tools, repo: &Path, version: &str, xmx_mib: u64, tmp: &Path, classes: &Path, dist_cp: &[PathBuf], main_class: &str, gc: Option<&str>) -> Command {
    let mut cp = vec![classes.to_path_buf()];
    cp.extend(dist_cp.iter().cloned());
    let mut cmd = Command::new(&tools.java);
    cmd.arg(format!("-Xmx{xmx_mib}m"));
    if let Some(gc) = gc {
        cmd.arg(gc);
    }
    if needs_add_opens(version) {
        for o in ADD_OPENS {
            cmd.arg(format!("--add-opens={o}=ALL-UNNAMED"));
        }
    }
    cmd.arg(format!("-Dlog4j.configurationFile={}", repo.join("xtask/flink-job/resources/log4j2.properties").display()))
        .arg(format!("-Djava.io.tmpdir={}", tmp.display()))
        .arg("-cp")
        .arg(join_cp(&cp))
        .arg(main_class);
    cmd
}

fn join_cp(parts: &[PathBuf]) -> OsString {
    env::join_paths(parts).expect("classpath entries contain no separator")
}

// ---- compile and run --------------------------------------------------------------------------

fn java_sources(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in fs::read_dir(dir).map_err(|e| format!("read {}: {e}", dir.display()))? {
        let p = e.map_err(|e| e.to_string())?.path();
        if p.is_dir() {
            java_sources(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "java") {
            out.push(p);
        }
    }
    Ok(())
}

fn compile(tools: &Tools, repo: &Path, cache: &Path, version: &str, dist: &Dist) -> Result<PathBuf> {
    let classes = cache.join("flink").join(version).join("build").join("classes");
    compile_into(tools, repo, version, dist, &classes)?;
    Ok(classes)
}

/// Compiles the Java job into `classes` (emptied first).
fn compile_into(tools: &Tools, repo: &Path, version: &str, dist: &Dist, classes: &Path) -> Result<()> {
    let job = repo.join("xtask").join("flink-job");
    let _ = fs::remove_dir_all(classes);
    fs::create_dir_all(classes).map_err(|e| e.to_string())?;
    let mut sources = Vec::new();
    java_sources(&job.join("src-common"), &mut sources)?;
    for dir in shim_dirs(version)? {
        java_sources(&job.join(dir), &mut sources)?;
    }
    let sql = has_sql(version);
    if sql {
        java_sources(&job.join("src-sql"), &mut sources)?;
        java_sources(&job.join(format!("src-sql-{}", generation(version)?)), &mut sources)?;
        if has_sql_v2_operators(version) {
            java_sources(&job.join("src-sql-21"), &mut sources)?;
        }
    }
    sources.sort();
    println!("== flink {version}: javac {} sources against {}", sources.len(), dist.lib.display());
    let mut cmd = Command::new(&tools.javac);
    cmd.args(["-nowarn", "-encoding", "UTF-8", "-source", "11", "-target", "11", "-d"])
        .arg(classes)
        .arg("-cp")
        .arg(join_cp(&if sql { dist.sql_classpath() } else { dist.classpath.clone() }))
        .args(&sources);
    run_cmd(&mut cmd, "javac")?;
    if sql {
        // the SQL connector's SPI registration (compiled plans name the connector)
        copy_tree(&job.join("resources-sql"), classes)?;
        if has_sql_v2_operators(version) {
            // and the 2.1+ lookup table's (the same services file, one factory more)
            copy_tree(&job.join("resources-sql-21"), classes)?;
        }
    }
    Ok(())
}

/// Process table functions with timers (`ProcessTableFunction.TimeContext`) and multi-way joins
/// are Flink 2.1+ (`flink-job/src-sql-21/`).
fn has_sql_v2_operators(version: &str) -> bool {
    let mut p = version.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
    let (major, minor) = (p.next().unwrap_or(0), p.next().unwrap_or(0));
    major > 2 || (major == 2 && minor >= 1)
}

/// The SQL fixtures need compiled plans (`COMPILE PLAN`, FLIP-190): Flink 1.15 and newer.
fn has_sql(version: &str) -> bool {
    has_native_savepoints(version)
}

#[allow(clippy::too_many_arguments)]
fn run_job(
    tools: &Tools,
    repo: &Path,
    cache: &Path,
    version: &str,
    dist: &Dist,
    classes: &Path,
    run: &Run,
    snaps: &[Snap],
    out: &Path,
) -> Result<()> {
    let work = cache.join("flink").join(version).join("work").join(run.name);
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(work.join("tmp")).map_err(|e| e.to_string())?;
    let staging = work.join("out");
    fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
    let mut cases: Vec<&str> = snaps.iter().map(|s| s.case).collect();
    cases.dedup();
    for c in &cases {
        let d = out.join(c);
        if d.exists() {
            fs::remove_dir_all(&d).map_err(|e| format!("remove {}: {e}", d.display()))?;
        }
    }
    let mut cmd = java_job(tools, repo, version, 1024, &work.join("tmp"), classes, &dist.classpath, "flinksnap.fixtures.Main");
    cmd.args(["--flink-version", version])
    // The job writes into a staging directory that is deleted afterwards, so the absolute paths
    // that retained checkpoints record exist nowhere: readers must re-base them, on every machine.
    .arg("--out")
    .arg(&staging)
    .arg("--work")
    .arg(&work)
    .args(["--backend", run.backend])
    .args(["--parallelism", &run.parallelism.to_string()])
    .args(["--max-parallelism", &run.max_parallelism.to_string()])
    .args(["--compression", &run.compression.to_string()])
    .args(["--incremental", &run.incremental.to_string()])
    .args([
        "--inline-threshold",
        &run.inline_threshold.map_or("default".to_string(), |t| t.to_string()),
    ]);
    cmd.args(run_features(run.name));
    for s in snaps {
        cmd.arg("--snap").arg(format!("{}:{}:{}", s.phase, s.kind, s.case));
    }
    println!("== flink {version}: run {} -> {}", run.name, cases.join(", "));
    let t = Instant::now();
    run_cmd(&mut cmd, &format!("flink {version} run {}", run.name))?;
    for c in &cases {
        copy_tree(&staging.join(c), &out.join(c))?;
    }
    println!("== flink {version}: run {} took {:.1} s", run.name, t.elapsed().as_secs_f64());
    let _ = fs::remove_dir_all(&work);
    Ok(())
}

/// Runs both SQL jobs of one configuration (`SqlMain`) and copies their cases and plans into
/// `out` (`testdata/flink-V/`).
#[allow(clippy::too_many_arguments)]
fn run_sql_job(
    tools: &Tools,
    repo: &Path,
    cache: &Path,
    version: &str,
    dist: &Dist,
    classes: &Path,
    run: &SqlRun,
    snaps: &[SqlSnap],
    out: &Path,
) -> Result<()> {
    let work = cache.join("flink").join(version).join("work").join(run.name);
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(work.join("tmp")).map_err(|e| e.to_string())?;
    let staging = work.join("out");
    fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
    let cases: Vec<String> = snaps.iter().flat_map(sql_cases).collect();
    for c in &cases {
        let d = out.join(c);
        if d.exists() {
            fs::remove_dir_all(&d).map_err(|e| format!("remove {}: {e}", d.display()))?;
        }
    }
    let mut jobs: Vec<&str> = Vec::new();
    for j in snaps.iter().flat_map(|s| s.jobs) {
        if !jobs.contains(j) {
            jobs.push(j);
        }
    }
    let cp = dist.sql_classpath();
    let mut cmd = java_job(tools, repo, version, 1536, &work.join("tmp"), classes, &cp, "flinksnap.fixtures.SqlMain");
    cmd.args(["--flink-version", version])
        .arg("--out")
        .arg(&staging)
        .arg("--work")
        .arg(&work)
        .args(["--backend", run.backend])
        .args(["--incremental", &run.incremental.to_string()])
        .args(["--jobs", &jobs.join(",")]);
    for s in snaps {
        let jobs = s.jobs.join(",");
        cmd.arg("--snap").arg(format!("2:{}:{}:{jobs}", s.kind, s.case));
    }
    println!("== flink {version}: sql run {} -> {}", run.name, cases.join(", "));
    let t = Instant::now();
    run_cmd(&mut cmd, &format!("flink {version} sql run {}", run.name))?;
    for c in &cases {
        copy_tree(&staging.join(c), &out.join(c))?;
    }
    // the plans are the same in every run of a version (same statements, same options)
    copy_tree(&staging.join("sql-plans"), &out.join("sql-plans"))?;
    println!("== flink {version}: sql run {} took {:.1} s", run.name, t.elapsed().as_secs_f64());
    let _ = fs::remove_dir_all(&work);
    Ok(())
}

/// The text of a fixture file that case.json names (`expected*.jsonl.gz`, `oracle*.jsonl.gz`,
/// `metadata*.json.gz`): gunzipped when its name ends in `.gz` (testdata/README.md, "Size rule").
fn read_fixture_text(p: &Path) -> Result<String> {
    let bytes = fs::read(p).map_err(|e| format!("read {}: {e}", p.display()))?;
    if p.extension().is_none_or(|e| e != "gz") {
        return String::from_utf8(bytes).map_err(|e| format!("{}: {e}", p.display()));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text).map_err(|e| format!("gunzip {}: {e}", p.display()))?;
    Ok(text)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(|e| format!("create {}: {e}", to.display()))?;
    for e in fs::read_dir(from).map_err(|e| format!("read {}: {e}", from.display()))? {
        let e = e.map_err(|e| e.to_string())?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().map_err(|e| e.to_string())?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            fs::copy(&src, &dst).map_err(|e| format!("copy {} to {}: {e}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

// ---- sizes ------------------------------------------------------------------------------------

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(p) else { return 0 };
    rd.filter_map(|e| e.ok())
        .map(|e| {
            let p = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => dir_size(&p),
                Ok(m) => m.len(),
                Err(_) => 0,
            }
        })
        .sum()
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{:.0} KiB", bytes as f64 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The case directories below `testdata/` (relative, `/`-separated): every directory with a
    /// `case.json`, and the `sql-plans/` directories.
    fn committed(dir: &Path, rel: &str, out: &mut BTreeSet<String>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let (p, name) = (e.path(), e.file_name().to_string_lossy().into_owned());
            if !p.is_dir() {
                continue;
            }
            let r = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            if p.join("case.json").is_file() || name == "sql-plans" {
                out.insert(r);
            } else {
                committed(&p, &r, out);
            }
        }
    }

    /// `cargo xtask fixtures` writes exactly the committed set (testdata/README.md, "Size rule"
    /// 2): every case the matrix (`RUNS`, `SQL_RUNS`) gives a version is in `testdata/`, and
    /// `testdata/flink-*/` and the run groups hold no other; `custom-serializer/` has the
    /// versions of `CUSTOM_VERSIONS`.
    #[test]
    fn the_fixture_matrix_is_the_committed_set() {
        let repo = repo_root();
        let rel = |p: PathBuf| p.strip_prefix(repo.join("testdata")).unwrap().to_string_lossy().replace('\\', "/");
        let mut want = BTreeSet::new();
        for &v in DEFAULT_VERSIONS {
            for run in RUNS.iter().filter(|r| r.only_versions.is_empty() || r.only_versions.contains(&v)) {
                for s in run.snaps {
                    if (s.kind != "native" || has_native_savepoints(v)) && (s.only_versions.is_empty() || s.only_versions.contains(&v)) {
                        want.insert(rel(run_out(&repo, run.name, v).join(s.case)));
                    }
                }
            }
            if has_sql(v) {
                let out = repo.join("testdata").join(format!("flink-{v}"));
                let snaps: Vec<&SqlSnap> = SQL_RUNS.iter().flat_map(|r| r.snaps).filter(|s| s.only_versions.is_empty() || s.only_versions.contains(&v)).collect();
                for s in &snaps {
                    want.extend(sql_cases(s).into_iter().map(|c| rel(out.join(c))));
                }
                if !snaps.is_empty() {
                    want.insert(rel(out.join("sql-plans")));
                }
            }
        }
        let mut have = BTreeSet::new();
        committed(&repo.join("testdata"), "", &mut have);
        // The serializer-fixtures groups (`cargo xtask serializer-fixtures`): their versions.
        let custom: BTreeSet<String> = have.iter().filter_map(|c| c.strip_prefix("custom-serializer/flink-")?.split('/').next().map(str::to_owned)).collect();
        assert_eq!(custom, oracle::CUSTOM_VERSIONS.iter().map(|v| v.to_string()).collect(), "testdata/custom-serializer/");
        have.retain(|c| !c.starts_with("custom-serializer/") && !c.starts_with("serializers/"));
        let missing: Vec<&String> = want.difference(&have).collect();
        let extra: Vec<&String> = have.difference(&want).collect();
        assert!(missing.is_empty() && extra.is_empty(), "the matrix names, testdata/ lacks: {missing:#?}\ntestdata/ has, the matrix does not name: {extra:#?}");
    }
}
