//! `cargo xtask oracle`: what real Flink decodes from every fixture snapshot, in `flinksnap
//! dump`'s format, written next to the fixture's `expected*.jsonl` as `oracle*.jsonl`
//! (`xtask/ORACLE.md`). The Java side is `flink-job/.../DumpOracle.java`: Flink restores each
//! snapshot into stand-in operators (same operator ids) with serializers restored from the
//! snapshot's serializer snapshots, and they print every entry.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value as J;

use crate::interop::place_copy;
use crate::{cache_dir, compile_into, copy_tree, ensure_dist, generation, java_job, repo_root, run_cmd, Result, Tools, DEFAULT_VERSIONS};

pub const USAGE: &str = "usage: cargo xtask oracle [--flink VERSION]... [--case NAME]... [--work DIR]\n\
\n\
Runs the dump oracle (real Flink, xtask/ORACLE.md) on every fixture snapshot of testdata/flink-VERSION/\n\
(all default versions unless --flink is given; only the cases named with --case, NAME or\n\
serializers/NAME for testdata/serializers/flink-VERSION/NAME only) and writes\n\
oracle.jsonl.gz / oracle-chk-N.jsonl.gz beside each expected*.jsonl.gz. --work: where classes, copies and\n\
logs go (default: <cargo target dir>/xtask-oracle).";

/// One snapshot of a fixture case, planned for the oracle.
struct Planned {
    name: String,
    /// The copy the oracle restores from.
    snapshot: PathBuf,
    backend: String,
    out: PathBuf,
    uids: String,
}

pub fn oracle(args: &[String]) -> Result<()> {
    let mut versions: Vec<String> = Vec::new();
    let mut cases: Vec<String> = Vec::new();
    let mut work: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--flink" => versions.push(it.next().ok_or("--flink needs a version")?.clone()),
            "--case" => cases.push(it.next().ok_or("--case needs a name")?.clone()),
            "--work" => work = Some(PathBuf::from(it.next().ok_or("--work needs a directory")?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if versions.is_empty() {
        versions = DEFAULT_VERSIONS.iter().map(|s| s.to_string()).collect();
    }
    for v in &versions {
        generation(v)?;
    }
    let repo = repo_root();
    let work = match work {
        Some(w) => w,
        None => std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo.join("target")).join("xtask-oracle"),
    };
    let tools = Tools::find()?;
    let cache = cache_dir()?;
    let started = Instant::now();
    let mut failures = Vec::new();
    for v in &versions {
        if let Err(e) = version(&tools, &repo, &cache, &work.join(v), v, &cases) {
            eprintln!("xtask oracle: flink {v}: {e}");
            failures.push(v.clone());
        }
    }
    println!("== oracle: done in {:.0} s", started.elapsed().as_secs_f64());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("the oracle failed for Flink {}", failures.join(", ")))
    }
}

fn version(tools: &Tools, repo: &Path, cache: &Path, work: &Path, v: &str, cases: &[String]) -> Result<()> {
    let t = Instant::now();
    let dist = ensure_dist(tools, cache, v)?;
    let classes = work.join("classes");
    compile_into(tools, repo, v, &dist, &classes)?;
    let copies = work.join("snapshots");
    let _ = fs::remove_dir_all(&copies);
    fs::create_dir_all(&copies).map_err(|e| format!("create {}: {e}", copies.display()))?;
    // The main fixtures, and the serializers fixtures (`cargo xtask serializer-fixtures`).
    let testdata = repo.join("testdata").join(format!("flink-{v}"));
    let serializers = repo.join("testdata").join("serializers").join(format!("flink-{v}"));
    let mut case_dirs: Vec<PathBuf> = [&testdata, &serializers]
        .iter()
        .filter_map(|d| fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("case.json").is_file())
        .filter(|p| cases.is_empty() || cases.iter().any(|c| case_matches(repo, p, c)))
        .collect();
    case_dirs.sort();
    let mut plan = Vec::new();
    // Retained checkpoints record absolute paths into the generator's deleted staging area:
    // a copy of their job directory goes there for the run (and is removed afterwards).
    let mut placed = Vec::new();
    for dir in &case_dirs {
        let case: J = serde_json::from_str(&fs::read_to_string(dir.join("case.json")).map_err(|e| e.to_string())?)
            .map_err(|e| format!("{}: {e}", dir.join("case.json").display()))?;
        let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let backend = case["backend"].as_str().ok_or("case.json without backend")?.to_owned();
        let uids: Vec<String> = case["uids"].as_object().map(|m| m.iter().filter_map(|(u, id)| Some(format!("{u}={}", id.as_str()?))).collect()).unwrap_or_default();
        let uids = if uids.is_empty() { "-".to_owned() } else { uids.join(",") };
        let mut job_placed: Option<PathBuf> = None;
        // A restore case's savepoint is a fixture snapshot too; checkpoints Flink itself cannot
        // restore (`unsound`, FLINK-39964) have no oracle.
        let listed = case["snapshots"].as_array().ok_or("case.json without snapshots")?;
        let snapshots = listed.iter().filter(|s| s["unsound"].is_null()).chain(case["restore"].get("savepoint"));
        for s in snapshots {
            let rel = s["path"].as_str().ok_or("snapshot without path")?;
            let out = match (s["oracle"].as_str(), s["expected"].as_str()) {
                (Some(o), _) => dir.join(o),
                (None, Some(e)) => dir.join(e.replacen("expected", "oracle", 1)),
                _ => return Err(format!("{}: a snapshot with neither `oracle` nor `expected`", dir.display())),
            };
            let name = format!("{}/{name}", dir.parent().and_then(|p| p.file_name()).unwrap_or_default().to_string_lossy());
            let snapshot = match rel.split_once('/') {
                // <job id>/chk-N: the job directory at Flink's original location
                Some((job, chk)) => {
                    let generated = case["generated_case_dir"].as_str().ok_or("case.json without generated_case_dir")?;
                    let original = Path::new(generated).join(job);
                    if job_placed.as_deref() != Some(original.as_path()) {
                        placed.push(place_copy(&dir.join(job), &original)?);
                        job_placed = Some(original.clone());
                    }
                    original.join(chk)
                }
                None => {
                    let copy = copies.join(&name).join(rel);
                    copy_tree(&dir.join(rel), &copy)?;
                    copy
                }
            };
            plan.push(Planned { name: format!("{name}/{rel}"), snapshot, backend: backend.clone(), out, uids: uids.clone() });
        }
    }
    if plan.is_empty() {
        return Err(format!("no fixture case under {}", testdata.display()));
    }
    let lines: Vec<String> = plan
        .iter()
        .map(|p| format!("{}\t{}\t{}\t{}\t{}", p.name, p.snapshot.display(), p.backend, p.out.display(), p.uids))
        .collect();
    let plan_file = work.join("plan.tsv");
    fs::write(&plan_file, lines.join("\n") + "\n").map_err(|e| e.to_string())?;
    let tmp = work.join("tmp");
    fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    println!("== flink {v}: oracle on {} snapshots", plan.len());
    // The table jars for SQL state (RowDataSerializer & co. and their renderer, 1.15+); in 1.13
    // and 1.14 they hold FileSource (the sources fixture's split serializer).
    let cp = if crate::has_sql(v) {
        dist.sql_classpath()
    } else {
        let mut cp = dist.classpath.clone();
        cp.extend(table_jars(&dist)?);
        cp
    };
    let mut cmd = java_job(tools, repo, v, 1536, &tmp, &classes, &cp, "flinksnap.fixtures.DumpOracle");
    cmd.args(["--flink-version", v]).arg("--work").arg(work).arg("--plan").arg(&plan_file);
    let res = run_cmd(&mut cmd, &format!("flink {v} dump oracle"));
    drop(placed);
    let _ = fs::remove_dir_all(&copies);
    // DumpOracle writes OUT.error beside each output it could not write
    let failed: Vec<String> = plan.iter().filter(|p| PathBuf::from(format!("{}.error", p.out.display())).exists()).map(|p| p.name.clone()).collect();
    if !failed.is_empty() {
        return Err(format!("failed on {} (see the .error files beside their oracle*.jsonl.gz)", failed.join(", ")));
    }
    res?;
    println!("== flink {v}: oracle done in {:.0} s", t.elapsed().as_secs_f64());
    Ok(())
}

/// Whether case directory `dir` is the one `--case` names: `NAME` (in testdata/flink-VERSION/ or
/// testdata/serializers/flink-VERSION/) or `serializers/NAME` (only the latter).
fn case_matches(repo: &Path, dir: &Path, case: &str) -> bool {
    let (group, name) = match case.split_once('/') {
        Some((g, n)) => (Some(g), n),
        None => (None, case),
    };
    dir.file_name().is_some_and(|n| n == name) && group.is_none_or(|g| dir.starts_with(repo.join("testdata").join(g)))
}

pub const FIXTURES_USAGE: &str = "usage: cargo xtask serializer-fixtures [--flink VERSION]... [--case CASE]...\n\
\n\
Runs flink-job/.../SerializersJob (state under Either, enum, Java serialization, Nullable, Value,\n\
Kryo and Scala (1.x) serializers; async I/O elements in flight) on HashMap and RocksDB and writes one\n\
canonical savepoint each into testdata/serializers/flink-VERSION/{heap,rocksdb}-savepoint-canonical/;\n\
SourcesJob (connector splits) into heap-savepoint-sources/; CustomSerializerJob (a user-defined\n\
serializer with its own snapshot class as the first, a middle and the last state, in operator and\n\
broadcast state too: a checkpoint and a canonical savepoint each) into\n\
testdata/custom-serializer/flink-VERSION/{heap,rocksdb}-custom/, and its opaque variant (operator\n\
state registrations flinksnap cannot read past: a canonical savepoint) into heap-opaque-registration/.\n\
Versions: every default version, the custom cases 1.13.6, 1.15.4, 1.20.5 and 2.3.0 (1.13.6 checkpoints\n\
periodically: the custom job keeps the first checkpoint after its input and deletes the others; the\n\
Kafka connector's splits only on 2.x, the Scala API's state only on 1.x: case.json says why); default\n\
all of them; --case: only these\n\
cases. Run `cargo xtask oracle` afterwards (not for the custom cases: their contents are the job's,\n\
checked by tests/custom_serializer.rs).";

/// Versions the serializers and sources fixtures are generated for: every default version.
const SERIALIZER_VERSIONS: &[&str] = DEFAULT_VERSIONS;

/// Versions the custom-serializer cases (`testdata/custom-serializer/`) are generated for: one per
/// layout an unknown serializer snapshot must be read past in. 1.13.6: heap checkpoint handle 3,
/// RocksDB full checkpoint as a canonical stream, operator-state proxy 5, V3 (1.14.6 writes the
/// same); 1.15.4: handle 12, still the canonical stream; 1.20.5: RocksDB full checkpoints as
/// native files, proxy 6, V4 (1.18.1 writes the same); 2.3.0: FRocksDB 8.10, V6 (2.0.2 writes
/// the same under V5). The state files are the same bytes in more versions still
/// (testdata/README.md, `custom-serializer/`).
pub(crate) const CUSTOM_VERSIONS: &[&str] = &["1.13.6", "1.15.4", "1.20.5", "2.3.0"];

pub fn serializer_fixtures(args: &[String]) -> Result<()> {
    let mut versions: Vec<String> = Vec::new();
    let mut cases: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--flink" => versions.push(it.next().ok_or("--flink needs a version")?.clone()),
            "--case" => cases.push(it.next().ok_or("--case needs a case name")?.clone()),
            "-h" | "--help" => {
                println!("{FIXTURES_USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{FIXTURES_USAGE}")),
        }
    }
    let explicit = !versions.is_empty();
    if !explicit {
        versions = DEFAULT_VERSIONS.iter().map(|s| s.to_string()).collect();
    }
    let repo = repo_root();
    let tools = Tools::find()?;
    let cache = cache_dir()?;
    let work_root = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo.join("target")).join("xtask-serializer-fixtures");
    for v in &versions {
        generation(v)?;
        let dist = ensure_dist(&tools, &cache, v)?;
        let work = work_root.join(v);
        let classes = work.join("classes");
        compile_into(&tools, &repo, v, &dist, &classes)?;
        // The sources job: the Kafka connector's split and enumerator serializers run only on
        // 2.x (the one connector jar at hand is built for Flink 2.0).
        let mut sources_cp = dist.classpath.clone();
        let sources_wanted = cases.is_empty() || cases.iter().any(|c| c == "heap-savepoint-sources");
        if generation(v)? == "2x" && sources_wanted && SERIALIZER_VERSIONS.contains(&v.as_str()) {
            sources_cp.extend(kafka_connector_jars(&tools, &cache)?);
        }
        // FileSource: flink-connector-files is in flink-dist from 1.15; 1.13 and 1.14 ship it
        // inside their table jars.
        if !crate::has_sql(v) {
            sources_cp.extend(table_jars(&dist)?);
        }
        let runs = [
            ("hashmap", "heap-savepoint-canonical", "flinksnap.fixtures.SerializersJob", &dist.classpath),
            ("rocksdb", "rocksdb-savepoint-canonical", "flinksnap.fixtures.SerializersJob", &dist.classpath),
            ("hashmap", "heap-savepoint-sources", "flinksnap.fixtures.SourcesJob", &sources_cp),
            ("hashmap", "heap-custom", "flinksnap.fixtures.CustomSerializerJob", &dist.classpath),
            ("rocksdb", "rocksdb-custom", "flinksnap.fixtures.CustomSerializerJob", &dist.classpath),
            ("hashmap", "heap-opaque-registration", "flinksnap.fixtures.CustomSerializerJob", &dist.classpath),
        ];
        for (backend, case, main, cp) in runs {
            if !cases.is_empty() && !cases.iter().any(|c| c == case) {
                continue;
            }
            let custom = main.ends_with("CustomSerializerJob");
            let only = if custom { CUSTOM_VERSIONS } else { SERIALIZER_VERSIONS };
            if !only.contains(&v.as_str()) {
                if explicit && !cases.is_empty() {
                    return Err(format!("{case}: only for Flink {}", only.join(", ")));
                }
                continue;
            }
            // The custom cases have no oracle: beside the oracle-checked ones they would be
            // taken for such.
            let dir = if custom { "custom-serializer" } else { "serializers" };
            let out = repo.join("testdata").join(dir).join(format!("flink-{v}")).join(case);
            let _ = fs::remove_dir_all(&out);
            let run_work = work.join(case);
            let _ = fs::remove_dir_all(&run_work);
            let tmp = run_work.join("tmp");
            fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
            let mut cmd = java_job(&tools, &repo, v, 1024, &tmp, &classes, cp, main);
            cmd.args(["--flink-version", v]).arg("--out").arg(&out).arg("--work").arg(&run_work).args(["--backend", backend]);
            if case == "heap-opaque-registration" {
                cmd.args(["--variant", "opaque"]);
            }
            println!("== flink {v}: serializers fixture {case} ({main})");
            run_cmd(&mut cmd, &format!("flink {v} serializers fixture {case}"))?;
        }
    }
    Ok(())
}

/// `lib/flink-table*.jar` of 1.13 and 1.14: flink-connector-files (FileSource) is not in their
/// flink-dist but inside these.
fn table_jars(dist: &crate::Dist) -> Result<Vec<PathBuf>> {
    let mut jars: Vec<PathBuf> = fs::read_dir(&dist.lib)
        .map_err(|e| format!("{}: {e}", dist.lib.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("flink-table") && n.ends_with(".jar")))
        .collect();
    jars.sort();
    Ok(jars)
}

/// The Kafka connector for Flink 2.0 (`flink-connector-kafka` 4.0 and `kafka-clients`), from
/// PyPI's `shigawire-apache-flink-libraries` (a redistribution for PyFlink; Maven Central is not
/// reachable here), unpacked into the cache once.
fn kafka_connector_jars(tools: &Tools, cache: &Path) -> Result<Vec<PathBuf>> {
    const PACKAGE: &str = "shigawire-apache-flink-libraries==2.0.0.post1";
    let dir = cache.join("kafka-connector");
    let jars = ["flink-connector-kafka.jar", "kafka-clients.jar"].map(|j| dir.join(j));
    if jars.iter().all(|j| j.exists()) {
        return Ok(jars.to_vec());
    }
    let pkg = dir.join("pkg");
    fs::create_dir_all(&pkg).map_err(|e| e.to_string())?;
    println!("== pip download {PACKAGE} (~90 MB, for the Kafka connector's serializers)");
    let mut cmd = std::process::Command::new(&tools.pip[0]);
    cmd.args(&tools.pip[1..]).args(["download", "--no-deps", "--quiet", PACKAGE, "-d"]).arg(&pkg);
    run_cmd(&mut cmd, &format!("pip download {PACKAGE}"))?;
    let script = r#"
import glob, os, sys, zipfile
pkg, dest = sys.argv[1], sys.argv[2]
whl = glob.glob(os.path.join(pkg, '*.whl'))[0]
with zipfile.ZipFile(whl) as z:
    for name in ('flink-connector-kafka.jar', 'kafka-clients.jar'):
        open(os.path.join(dest, name), 'wb').write(z.read('pyflink/lib/' + name))
"#;
    let mut cmd = std::process::Command::new(&tools.python);
    cmd.arg("-c").arg(script).arg(&pkg).arg(&dir);
    run_cmd(&mut cmd, "unpacking the Kafka connector")?;
    let _ = fs::remove_dir_all(&pkg);
    Ok(jars.to_vec())
}
