//! Every command on object-store URLs, against test servers on 127.0.0.1 started by `.ci/stores`
//! (`.ci/run` starts them): SeaweedFS for S3 (checks SigV4 signatures), Azurite for Azure Blob,
//! fake-gcs-server for GCS (reads only: it does not serve object_store's XML writes). The
//! fixtures are uploaded and every command's output on the URL must equal its output on the
//! local copy.
//!
//! Without the servers (a plain `cargo test`) these tests say so and pass; in CI (`CI` set)
//! a missing server fails them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use flinksnap::storage::{Location, PutMode, Storage, StorageOptions, Storages};

use crate::util::{metadata_files, root};

/// One store to test against.
pub struct Store {
    /// `s3`, `azure` or `gcs`.
    pub name: &'static str,
    /// Where the uploaded `testdata/` is: `<url_root>/testdata/...`.
    pub url_root: String,
    /// Environment of the flinksnap processes.
    pub env: Vec<(String, String)>,
    /// Options for the library's own client.
    pub options: Vec<(String, String)>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Whether the servers are required: in CI they are, and a missing one fails the test.
fn require<T>(what: &str) -> Option<T> {
    if std::env::var_os("CI").is_some() || var("FLINKSNAP_TEST_STORES").is_some() {
        panic!("{what}: the test server is not running (.ci/run starts it with .ci/stores)");
    }
    eprintln!("{what}: skipped, no test server (run `bash .ci/stores run cargo test --test integration stores`)");
    None
}

impl Store {
    /// A flinksnap run with this store's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_flinksnap"));
        c.args(args).current_dir(root());
        // Nothing of the developer's own cloud setup leaks in.
        for k in ["AWS_PROFILE", "AWS_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS"] {
            c.env_remove(k);
        }
        c.env("AWS_CONFIG_FILE", "/nonexistent").env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run flinksnap")
    }

    /// The library's client for this store.
    pub fn storage(&self) -> Storages {
        let mut o = StorageOptions::new();
        for (k, v) in &self.options {
            o.set(k, v);
        }
        Storages::new(o)
    }

    /// The URL of a repository-relative path in the uploaded copy.
    pub fn url(&self, rel: &Path) -> String {
        format!("{}/{}", self.url_root, rel.display())
    }
}

static S3: OnceLock<Option<Store>> = OnceLock::new();
static AZURE: OnceLock<Option<Store>> = OnceLock::new();
static GCS: OnceLock<Option<Store>> = OnceLock::new();

/// A prefix no other test run uses.
fn run_prefix() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!("it-{}-{t}", std::process::id())
}

/// SeaweedFS, with `testdata/` uploaded.
pub fn s3() -> Option<&'static Store> {
    S3.get_or_init(|| {
        let Some(endpoint) = var("FLINKSNAP_TEST_S3_ENDPOINT") else { return require("S3 (SeaweedFS)") };
        let key = var("FLINKSNAP_TEST_S3_KEY").expect("FLINKSNAP_TEST_S3_KEY");
        let secret = var("FLINKSNAP_TEST_S3_SECRET").expect("FLINKSNAP_TEST_S3_SECRET");
        let bucket = var("FLINKSNAP_TEST_S3_BUCKET").unwrap_or_else(|| "flink".into());
        let store = Store {
            name: "s3",
            url_root: format!("s3://{bucket}/{}", run_prefix()),
            // The way users set it: the AWS variables.
            env: vec![
                ("AWS_ENDPOINT".into(), endpoint.clone()),
                ("AWS_ALLOW_HTTP".into(), "true".into()),
                ("AWS_ACCESS_KEY_ID".into(), key.clone()),
                ("AWS_SECRET_ACCESS_KEY".into(), secret.clone()),
                ("AWS_REGION".into(), "us-east-1".into()),
            ],
            options: vec![
                ("endpoint".into(), endpoint),
                ("allow_http".into(), "true".into()),
                ("access_key_id".into(), key),
                ("secret_access_key".into(), secret),
                ("region".into(), "us-east-1".into()),
            ],
        };
        upload_testdata(&store);
        Some(store)
    })
    .as_ref()
}

/// Azurite, with `testdata/` uploaded.
pub fn azure() -> Option<&'static Store> {
    AZURE
        .get_or_init(|| {
            let Some(url) = var("FLINKSNAP_TEST_AZURE_URL") else { return require("Azure (Azurite)") };
            // The library reads the emulator's address from the environment, as the CLI does.
            std::env::set_var("AZURITE_BLOB_STORAGE_URL", &url);
            let store = Store {
                name: "azure",
                // Flink's own form of an Azure Blob URL; the account is Azurite's.
                url_root: format!("wasbs://flink@devstoreaccount1.blob.core.windows.net/{}", run_prefix()),
                env: vec![("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()), ("AZURITE_BLOB_STORAGE_URL".into(), url)],
                options: vec![("use_emulator".into(), "true".into())],
            };
            upload_testdata(&store);
            Some(store)
        })
        .as_ref()
}

/// fake-gcs-server, where `.ci/stores` uploaded `testdata/` (its XML API takes no writes).
pub fn gcs() -> Option<&'static Store> {
    GCS.get_or_init(|| {
        let Some(url) = var("FLINKSNAP_TEST_GCS_URL") else { return require("GCS (fake-gcs-server)") };
        let account = format!(r#"{{"gcs_base_url":"{url}","disable_oauth":true,"client_email":"","private_key":"","private_key_id":""}}"#);
        Some(Store {
            name: "gcs",
            url_root: "gs://flink".into(),
            env: vec![("GOOGLE_SERVICE_ACCOUNT_KEY".into(), account.clone())],
            options: vec![("service_account_key".into(), account)],
        })
    })
    .as_ref()
}

/// Uploads every file of `testdata/` below the store's root, eight at a time.
fn upload_testdata(store: &Store) {
    let storage = store.storage();
    let files = crate::util::files_under(&root().join("testdata"));
    let chunks: Vec<Vec<PathBuf>> = files.chunks(files.len().div_ceil(8).max(1)).map(<[PathBuf]>::to_vec).collect();
    std::thread::scope(|s| {
        for chunk in &chunks {
            let storage = &storage;
            s.spawn(move || {
                for f in chunk {
                    let rel = f.strip_prefix(root()).unwrap();
                    let bytes = std::fs::read(f).unwrap();
                    storage.put(&Location::new(&store.url(rel)), &bytes, PutMode::Overwrite).unwrap_or_else(|e| panic!("upload {}: {e}", rel.display()));
                }
            });
        }
    });
}


/// stdout of a run that must exit with `code`.
fn stdout(out: &Output, code: i32, what: &str) -> String {
    assert_eq!(out.status.code(), Some(code), "{what}: exit {:?}\n{}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The same command on the local copy and on the URL: same exit code, same output once the
/// URL's prefix is replaced by the local one.
fn same_output(store: &Store, local: &Path, args_before: &[&str], args_after: &[&str], code: i32) {
    let local_arg = local.display().to_string();
    let url = store.url(local);
    let mut a: Vec<&str> = args_before.to_vec();
    a.push(&local_arg);
    a.extend(args_after);
    let mut b: Vec<&str> = args_before.to_vec();
    b.push(&url);
    b.extend(args_after);
    let local_out = crate::util::flinksnap(&a);
    if local_out.status.code() != Some(code) {
        // A fixture the local copy cannot read either (e.g. a CLAIM-mode checkpoint whose
        // files Flink deleted): the URL must fail the same way.
        let remote = store.run(&b);
        assert_eq!(remote.status.code(), local_out.status.code(), "{b:?}: {}", String::from_utf8_lossy(&remote.stderr));
        return;
    }
    // Local directories may be shown absolute (refs and gc canonicalise their roots).
    let want = stdout(&local_out, code, &format!("{a:?} (local)")).replace(&format!("{}/", root().display()), "");
    let got = stdout(&store.run(&b), code, &format!("{b:?} ({})", store.name));
    let got = got.replace(&format!("{}/", store.url_root), "");
    if got == want {
        return;
    }
    // JSON output names resolved files. On a machine where the fixtures were made, the
    // absolute paths their `_metadata` records still exist, and the local copy reads them there
    // (rule 2 of formats/layout.md) while the bucket copy reads its own; compared by their place
    // in the job's layout, and with `rebased` and the notes about it left out.
    let (Ok(mut g), Ok(mut w)) = (serde_json::from_str::<serde_json::Value>(&got), serde_json::from_str::<serde_json::Value>(&want)) else {
        panic!("{} {b:?}: output differs from the local copy's\n--- local\n{want}\n--- {}\n{got}", store.name, store.name);
    };
    normalise(&mut g);
    normalise(&mut w);
    if let Some(d) = first_difference(&w, &g, String::new()) {
        panic!("{} {b:?}: output differs from the local copy's at {d}", store.name);
    }
}

fn normalise(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            m.remove("rebased");
            m.remove("notes");
            // The directory as given: a local one is shown absolute.
            m.remove("root");
            // An upload is a new object: its time is the upload's.
            m.remove("modified_ms");
            m.values_mut().for_each(normalise);
        }
        Value::Array(a) => a.iter_mut().for_each(normalise),
        Value::String(s) if s.contains('/') => {
            let comps: Vec<&str> = s.split('/').collect();
            let anchor = comps.iter().rposition(|c| matches!(*c, "shared" | "taskowned" | "dstl") || c.starts_with("chk-") || c.starts_with("savepoint-"));
            if let Some(i) = anchor {
                *s = comps[i..].join("/");
            }
        }
        _ => {}
    }
}

fn first_difference(a: &serde_json::Value, b: &serde_json::Value, at: String) -> Option<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => {
                        if let Some(d) = first_difference(v, w, format!("{at}/{k}")) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{at}/{k}: only in the local output")),
                }
            }
            y.keys().find(|k| !x.contains_key(*k)).map(|k| format!("{at}/{k}: only in the URL's output"))
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x.iter().zip(y).enumerate().find_map(|(i, (v, w))| first_difference(v, w, format!("{at}/{i}"))),
        _ if a == b => None,
        _ => Some(format!("{at}: local {a}, URL {b}")),
    }
}

/// Snapshots the store tests read: every fixture of the oldest and newest Flink, plus every
/// other version's incremental RocksDB checkpoint (shared files recorded as absolute paths).
fn chosen_snapshots(all: bool) -> Vec<PathBuf> {
    metadata_files()
        .into_iter()
        .filter(|m| {
            let s = m.display().to_string();
            all || s.contains("flink-2.3.0/") || s.contains("flink-1.13.6/") || s.contains("rocksdb-checkpoint-incremental/")
        })
        .map(|m| m.parent().unwrap().to_path_buf())
        .collect()
}

fn read_commands_equal_local(store: &Store, snapshots: &[PathBuf]) {
    for dir in snapshots {
        same_output(store, dir, &["dump"], &[], 0);
        same_output(store, dir, &["inspect"], &["--format", "json"], 0);
        same_output(store, dir, &["verify"], &["--level", "full", "--format", "json"], 0);
        same_output(store, dir, &["stats"], &["--format", "json"], 0);
    }
    // Directory commands on every job and savepoint directory of the chosen cases.
    let mut cases: BTreeMap<PathBuf, ()> = BTreeMap::new();
    for dir in snapshots {
        // testdata/flink-V/<case>/...: the case directory holds the job directory.
        let case: PathBuf = dir.components().take(3).collect();
        cases.insert(case, ());
    }
    for case in cases.keys() {
        // Across several jobs `latest` goes by the newest `_metadata` time, which an upload
        // changes (local checkout order vs upload order): compared where one job decides.
        let jobs = std::fs::read_dir(root().join(case)).unwrap().flatten().filter(|e| e.path().is_dir()).count();
        if jobs <= 1 {
            same_output(store, case, &["latest"], &[], 0);
        }
        same_output(store, case, &["refs"], &["--format", "json"], 0);
    }
}

/// `--plan` read from a bucket (`Plan::read` through the storage layer) names SQL state as the
/// same plan read from a local file: `inspect` (state per SQL node) and `dump` (column names).
#[test]
fn s3_a_plan_on_the_bucket_names_sql_state_as_the_local_plan() {
    let Some(store) = s3() else { return };
    let case = Path::new("testdata/flink-2.3.0/sql-heap-savepoint-canonical");
    let sp = std::fs::read_dir(root().join(case)).unwrap().flatten().map(|e| e.path()).find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("savepoint-")).unwrap();
    let sp = sp.strip_prefix(root()).unwrap().to_path_buf();
    let plan = Path::new("testdata/flink-2.3.0/sql-plans/sql.plan.json");
    for (cmd, extra) in [("inspect", &["--format", "json"][..]), ("dump", &[][..])] {
        let mut local = vec![cmd, sp.to_str().unwrap(), "--plan", plan.to_str().unwrap()];
        local.extend(extra);
        let want = crate::util::flinksnap_ok(&local);
        assert!(cmd != "dump" || want.contains("user_name"), "dump: the plan names SQL columns");
        let (sp_url, plan_url) = (store.url(&sp), store.url(plan));
        let mut remote = vec![cmd, sp_url.as_str(), "--plan", plan_url.as_str()];
        remote.extend(extra);
        let got = ok(store.run(&remote), cmd).replace(&format!("{}/", store.url_root), "");
        let want = want.replace(&format!("{}/", root().display()), "");
        if cmd == "dump" {
            assert_eq!(sorted_lines(&got), sorted_lines(&want), "dump --plan from the bucket");
        } else {
            let (mut g, mut w): (serde_json::Value, serde_json::Value) = (serde_json::from_str(&got).unwrap(), serde_json::from_str(&want).unwrap());
            normalise(&mut g);
            normalise(&mut w);
            assert_eq!(first_difference(&w, &g, String::new()), None, "inspect --plan from the bucket");
        }
    }
    // A plan URL that does not exist is named.
    let missing = store.run(&["inspect", &store.url(&sp), "--plan", &format!("{}/no-such.plan.json", store.url_root)]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such.plan.json"), "{}", String::from_utf8_lossy(&missing.stderr));
}

#[test]
fn s3_every_read_command_equals_local() {
    let Some(store) = s3() else { return };
    read_commands_equal_local(store, &chosen_snapshots(false));
}

#[test]
fn azure_every_read_command_equals_local() {
    let Some(store) = azure() else { return };
    let snapshots: Vec<PathBuf> = chosen_snapshots(false).into_iter().filter(|d| d.display().to_string().contains("flink-2.3.0/")).collect();
    read_commands_equal_local(store, &snapshots);
}

#[test]
fn gcs_every_read_command_equals_local() {
    let Some(store) = gcs() else { return };
    let snapshots: Vec<PathBuf> = chosen_snapshots(false).into_iter().filter(|d| d.display().to_string().contains("flink-2.3.0/")).collect();
    read_commands_equal_local(store, &snapshots);
}

#[test]
fn s3_diff_between_a_bucket_and_a_local_copy() {
    let Some(store) = s3() else { return };
    let a = Path::new("testdata/flink-2.3.0/rocksdb-checkpoint-incremental");
    let chks: Vec<PathBuf> = chosen_snapshots(false).into_iter().filter(|d| d.starts_with(a)).collect();
    assert!(chks.len() >= 2);
    let (x, y) = (&chks[0], &chks[1]);
    let want = crate::util::flinksnap(&["diff", x.to_str().unwrap(), y.to_str().unwrap(), "--format", "json"]);
    let got = store.run(&["diff", &store.url(x), y.to_str().unwrap(), "--format", "json"]);
    assert_eq!(got.status.code(), want.status.code(), "{}", String::from_utf8_lossy(&got.stderr));
    let got = String::from_utf8_lossy(&got.stdout).replace(&format!("{}/", store.url_root), "");
    assert_eq!(got, String::from_utf8_lossy(&want.stdout));
}

#[test]
fn wrong_credentials_fail_clearly_without_the_secret() {
    let Some(store) = s3() else { return };
    let secret = "wrong-secret-Zq81x";
    let dir = store.url(Path::new("testdata/flink-2.3.0/heap-savepoint-canonical"));
    let out = store.command(&["latest", &dir]).env("AWS_SECRET_ACCESS_KEY", secret).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&dir) && err.contains("failed with HTTP status 403"), "{err}");
    assert!(!err.contains(secret) && !String::from_utf8_lossy(&out.stdout).contains(secret), "{err}");
    // The same through --storage-option.
    let out = store.run(&["--storage-option", &format!("secret_access_key={secret}"), "inspect", &dir]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains(secret), "{err}");
}

/// The entries of a dump as a sorted list of lines (converted state may come in another order),
/// without operator uids (a converted savepoint is metadata V3, which stores none).
fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .lines()
        .map(|l| {
            let mut j: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            j.as_object_mut().unwrap().remove("operator_uid");
            j.to_string()
        })
        .collect();
    v.sort();
    v
}

fn ok(out: Output, what: &str) -> String {
    stdout(&out, 0, what)
}

/// The incremental RocksDB checkpoint of Flink 2.3.0 (shared SSTs recorded as absolute paths),
/// repository-relative.
fn incremental_checkpoint() -> PathBuf {
    chosen_snapshots(false)
        .into_iter()
        .rfind(|d| d.starts_with("testdata/flink-2.3.0/rocksdb-checkpoint-incremental"))
        .expect("the 2.3.0 incremental checkpoint")
}

fn writers_on(store: &Store) {
    let storage = store.storage();
    let src_rel = incremental_checkpoint();
    let src = store.url(&src_rel);
    let want = sorted_lines(&crate::util::flinksnap_ok(&["dump", src_rel.to_str().unwrap()]));
    assert!(want.len() > 10);
    let out = format!("{}/out", store.url_root);

    // convert: bucket → bucket; the savepoint reads back as the source, and is relocatable.
    let converted = format!("{out}/converted");
    ok(store.run(&["convert", &src, &converted, "--inline-threshold", "0"]), "convert to the bucket");
    assert_eq!(sorted_lines(&ok(store.run(&["dump", &converted]), "dump converted")), want);
    let inspect = ok(store.run(&["inspect", &converted, "--format", "json"]), "inspect converted");
    assert!(inspect.contains("\"relocatable\": true") && inspect.contains("\"self_contained\": true"), "{inspect}");
    // An existing savepoint is never replaced without --force; with it, it is.
    let again = store.run(&["convert", &src, &converted]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists (use --force"), "{}", String::from_utf8_lossy(&again.stderr));
    ok(store.run(&["convert", &src, &converted, "--force", "--compression", "snappy"]), "convert --force");
    assert_eq!(sorted_lines(&ok(store.run(&["dump", &converted]), "dump converted again")), want);
    // The target may not lie inside the source.
    let inside = store.run(&["convert", &src, &format!("{src}/x")]);
    assert_eq!(inside.status.code(), Some(2));

    // relocate: within the bucket (server-side copies), to a local directory, and back up.
    let relocated = format!("{out}/relocated");
    ok(store.run(&["relocate", &src, &relocated]), "relocate within the bucket");
    assert_eq!(sorted_lines(&ok(store.run(&["dump", &relocated]), "dump relocated")), want);
    let inspect = ok(store.run(&["inspect", &relocated, "--format", "json"]), "inspect relocated");
    assert!(inspect.contains("\"relocatable\": true"), "{inspect}");
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("down");
    ok(store.run(&["relocate", &relocated, local.to_str().unwrap()]), "relocate to a local directory");
    assert_eq!(sorted_lines(&crate::util::flinksnap_ok(&["dump", local.to_str().unwrap()])), want);
    let up = format!("{out}/up");
    ok(store.run(&["relocate", local.to_str().unwrap(), &up]), "relocate a local directory to the bucket");
    assert_eq!(sorted_lines(&ok(store.run(&["dump", &up]), "dump uploaded")), want);

    // export: to the bucket, the same rows as a local export; the manifest comes last.
    for format in ["parquet", "jsonl"] {
        let local_dir = tmp.path().join(format!("export-{format}"));
        crate::util::flinksnap_ok(&["export", src_rel.to_str().unwrap(), "--to", local_dir.to_str().unwrap(), "--format", format]);
        let local_manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(local_dir.join("manifest.json")).unwrap()).unwrap();
        let remote = format!("{out}/export-{format}");
        ok(store.run(&["export", &src, "--to", &remote, "--format", format]), "export to the bucket");
        let m: serde_json::Value = serde_json::from_slice(&storage.read(&Location::new(&format!("{remote}/manifest.json"))).unwrap()).unwrap();
        let rows = |m: &serde_json::Value| -> Vec<(String, u64)> {
            m["states"].as_array().unwrap().iter().map(|s| (s["file"].as_str().unwrap().to_owned(), s["rows"].as_u64().unwrap())).collect()
        };
        assert_eq!(rows(&m), rows(&local_manifest), "{format}");
        for s in m["states"].as_array().unwrap() {
            let f = Location::new(&format!("{remote}/{}", s["file"].as_str().unwrap()));
            assert_eq!(storage.head(&f).unwrap().size, s["bytes"].as_u64().unwrap(), "{f}");
        }
        if format == "jsonl" {
            // Byte for byte what the local export wrote.
            for s in m["states"].as_array().unwrap() {
                let file = s["file"].as_str().unwrap();
                assert_eq!(storage.read(&Location::new(&format!("{remote}/{file}"))).unwrap(), std::fs::read(local_dir.join(file)).unwrap(), "{file}");
            }
        }
        // Again without --force: refused; with it: fine.
        assert_eq!(store.run(&["export", &src, "--to", &remote, "--format", format]).status.code(), Some(2));
        ok(store.run(&["export", &src, "--to", &remote, "--format", format, "--force"]), "export --force");
    }

    // import: an export on the bucket (read with ranged reads) into the bucket's snapshot,
    // written to the bucket, holds exactly the source's entries (each state replaced by its own
    // rows); a dry run reads it too; a directory without a manifest is named.
    let remote = format!("{out}/export-parquet");
    let imported = format!("{out}/imported");
    let dry = ok(store.run(&["import", &remote, "--into", &src, "--dry-run", "--format", "json"]), "import --dry-run from the bucket");
    let dry: serde_json::Value = serde_json::from_str(&dry).unwrap();
    let states = dry["data"]["states"].as_array().unwrap();
    assert!(states.len() > 5 && states.iter().all(|s| s["rows"] == s["replaced"]), "each state's rows replace as many entries: {dry}");
    ok(store.run(&["import", &remote, "--into", &src, &imported]), "import from the bucket to the bucket");
    assert_eq!(sorted_lines(&ok(store.run(&["dump", &imported]), "dump imported")), want);
    let missing = store.run(&["import", &format!("{out}/no-export"), "--into", &src, "--dry-run"]);
    assert_eq!(missing.status.code(), Some(2));
    let e = String::from_utf8_lossy(&missing.stderr);
    assert!(e.contains(&format!("{out}/no-export/manifest.json: not found")), "{e}");
}

#[test]
fn s3_convert_relocate_export_write_to_buckets() {
    let Some(store) = s3() else { return };
    writers_on(store);
}

#[test]
fn azure_convert_relocate_export_write_to_containers() {
    let Some(store) = azure() else { return };
    writers_on(store);
}

/// A copy of the S3 store seen through a fault-injecting proxy, with short retries.
fn through(store: &Store, proxy: &crate::util::proxy::Proxy, retries: &[(&str, &str)]) -> Store {
    let mut env = store.env.clone();
    env.retain(|(k, _)| k != "AWS_ENDPOINT");
    env.push(("AWS_ENDPOINT".into(), proxy.url()));
    let mut options = store.options.clone();
    options.retain(|(k, _)| k != "endpoint");
    options.push(("endpoint".into(), proxy.url()));
    let mut s = Store { name: "s3 via proxy", url_root: store.url_root.clone(), env, options };
    for (k, v) in retries {
        s.options.push(((*k).into(), (*v).into()));
    }
    s
}

fn with_options(store: &Store, args: &[&str]) -> Vec<String> {
    let mut v = Vec::new();
    for (k, val) in &store.options {
        if ["max_retries", "retry_timeout", "backoff_initial", "backoff_max"].contains(&k.as_str()) {
            v.extend(["--storage-option".to_owned(), format!("{k}={val}")]);
        }
    }
    v.extend(args.iter().map(|s| (*s).to_owned()));
    v
}

#[test]
fn throttling_is_retried_and_the_command_succeeds() {
    let Some(store) = s3() else { return };
    let proxy = crate::util::proxy::Proxy::start(&var("FLINKSNAP_TEST_S3_ENDPOINT").unwrap());
    let s = through(store, &proxy, &[("backoff_initial", "10ms"), ("backoff_max", "200ms")]);
    // The first three requests and every fourth after that: 503 Slow Down.
    proxy.faults.throttle_next.store(3, std::sync::atomic::Ordering::SeqCst);
    proxy.faults.throttle_every.store(4, std::sync::atomic::Ordering::SeqCst);
    let src_rel = incremental_checkpoint();
    let want = crate::util::flinksnap_ok(&["dump", src_rel.to_str().unwrap()]);
    let args = with_options(&s, &["dump", &s.url(&src_rel)]);
    let got = ok(s.command(&args.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap(), "dump through throttling");
    assert_eq!(got, want);
    let throttled = proxy.faults.throttled.load(std::sync::atomic::Ordering::SeqCst);
    assert!(throttled >= 5, "only {throttled} requests were throttled");
    // A write path too: convert into the bucket through the throttling proxy.
    let dst = format!("{}/out/throttled-convert", s.url_root);
    let args = with_options(&s, &["convert", &s.url(&src_rel), &dst, "--inline-threshold", "0"]);
    ok(s.command(&args.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap(), "convert through throttling");
    assert_eq!(sorted_lines(&ok(store.run(&["dump", &dst]), "dump")), sorted_lines(&want));
}

#[test]
fn a_server_that_goes_away_gives_a_clear_error_and_no_partial_metadata() {
    let Some(store) = s3() else { return };
    let src_rel = incremental_checkpoint();
    let short = [("max_retries", "2"), ("retry_timeout", "3s"), ("backoff_initial", "10ms"), ("backoff_max", "100ms")];

    // dump: the server stops after a few requests.
    let proxy = crate::util::proxy::Proxy::start(&var("FLINKSNAP_TEST_S3_ENDPOINT").unwrap());
    proxy.faults.stop_after.store(12, std::sync::atomic::Ordering::SeqCst);
    let s = through(store, &proxy, &short);
    let args = with_options(&s, &["dump", &s.url(&src_rel)]);
    let out = s.command(&args.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&s.url_root) && err.contains("failed"), "{err}");
    assert!(err.lines().count() <= 3, "one clear message, not a flood: {err}");

    // convert into the bucket: the server stops while state files are uploaded.
    for stop_after in [25, 40] {
        let proxy = crate::util::proxy::Proxy::start(&var("FLINKSNAP_TEST_S3_ENDPOINT").unwrap());
        proxy.faults.stop_after.store(stop_after, std::sync::atomic::Ordering::SeqCst);
        let s = through(store, &proxy, &short);
        let dst = format!("{}/out/interrupted-{stop_after}", s.url_root);
        let args = with_options(&s, &["convert", &s.url(&src_rel), &dst, "--inline-threshold", "0"]);
        let out = s.command(&args.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "stop after {stop_after}: {err}");
        assert!(err.contains("failed"), "{err}");
        // Seen directly: no _metadata, so no snapshot.
        let direct = store.storage();
        assert!(!direct.exists(&Location::new(&format!("{dst}/_metadata"))).unwrap(), "a _metadata was left at {dst}");
        let latest = store.run(&["latest", &dst]);
        assert_ne!(latest.status.code(), Some(0), "latest found a snapshot in an interrupted convert");
    }
}

#[test]
fn gc_on_a_bucket_plans_and_removes_what_it_does_locally() {
    let Some(store) = s3() else { return };
    // A job directory of an incremental chain: shared SSTs referenced across checkpoints.
    for case in ["testdata/flink-2.3.0/rocksdb-checkpoint-incremental", "testdata/flink-2.3.0/heap-checkpoint-file-merging"] {
        let dir = std::fs::read_dir(root().join(case)).unwrap().flatten().map(|e| e.path()).find(|p| p.is_dir()).unwrap();
        let rel = dir.strip_prefix(root()).unwrap().to_path_buf();
        same_output(store, &rel, &["gc"], &["--older-than", "0s", "--format", "json"], 0);

        // --delete on copies of their own: the bucket's and a local one lose the same files.
        let tmp = tempfile::tempdir().unwrap();
        let local = tmp.path().join(dir.file_name().unwrap());
        let files = crate::util::files_under(&dir);
        let storage = store.storage();
        let url = format!("{}/gc/{}", store.url_root, rel.display());
        for f in &files {
            let r = f.strip_prefix(&dir).unwrap();
            std::fs::create_dir_all(local.join(r).parent().unwrap()).unwrap();
            std::fs::copy(f, local.join(r)).unwrap();
            storage.put(&Location::new(&format!("{url}/{}", r.display())), &std::fs::read(f).unwrap(), PutMode::Overwrite).unwrap();
        }
        let args = ["--older-than", "0s", "--delete", "--format", "json"];
        let mut a = vec!["gc", local.to_str().unwrap()];
        a.extend(args);
        let want: serde_json::Value = serde_json::from_str(&crate::util::flinksnap_ok(&a)).unwrap();
        let mut b = vec!["gc", url.as_str()];
        b.extend(args);
        let got: serde_json::Value = serde_json::from_str(&ok(store.run(&b), "gc --delete on the bucket")).unwrap();
        let removed = |j: &serde_json::Value| -> Vec<String> {
            let mut v: Vec<String> = j["data"]["remove"].as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap().to_owned()).collect();
            v.sort();
            v
        };
        assert_eq!(removed(&got), removed(&want), "{case}: gc --delete removed other files from the bucket");
        assert!(got["data"]["failures"].as_array().is_none_or(|f| f.is_empty()), "{got}");
        // What is left is the same, and every remaining checkpoint still reads the same.
        let left_local = crate::util::files_under(&local);
        let mut left_local: Vec<String> = left_local.iter().map(|f| f.strip_prefix(&local).unwrap().display().to_string()).collect();
        left_local.sort();
        let mut left_bucket = Vec::new();
        storage
            .list_files(&Location::new(&url), &mut |p| {
                left_bucket.extend(p.into_iter().map(|m| m.location.strip_prefix(&Location::new(&url)).unwrap().to_owned()));
                Ok(())
            })
            .unwrap();
        left_bucket.sort();
        assert_eq!(left_bucket, left_local, "{case}");
        for chk in left_local.iter().filter(|f| f.ends_with("/_metadata")) {
            let d = chk.trim_end_matches("/_metadata");
            let want = crate::util::flinksnap_ok(&["dump", local.join(d).to_str().unwrap()]);
            assert_eq!(ok(store.run(&["dump", &format!("{url}/{d}")]), "dump after gc"), want, "{case} {d}");
        }
    }
}

/// Uploads the files of local directory `dir` to `url` (same relative names).
fn upload_dir(storage: &Storages, dir: &Path, url: &str) {
    let files = crate::util::files_under(dir);
    for f in &files {
        let r = f.strip_prefix(dir).unwrap();
        storage.put(&Location::new(&format!("{url}/{}", r.display())), &std::fs::read(f).unwrap(), PutMode::Overwrite).unwrap();
    }
}

fn listed(storage: &Storages, url: &str) -> Vec<String> {
    let mut v = Vec::new();
    storage
        .list_files(&Location::new(url), &mut |p| {
            v.extend(p.into_iter().map(|m| m.location.strip_prefix(&Location::new(url)).unwrap().to_owned()));
            Ok(())
        })
        .unwrap();
    v.sort();
    v
}

#[test]
fn gc_interrupted_by_a_server_that_goes_away_deletes_nothing_it_must_keep() {
    let Some(store) = s3() else { return };
    let case = "testdata/flink-2.3.0/rocksdb-checkpoint-incremental";
    let job = std::fs::read_dir(root().join(case)).unwrap().flatten().map(|e| e.path()).find(|p| p.is_dir()).unwrap();
    let args = ["--older-than", "0s", "--delete", "--format", "json"];

    // The job directory with what Flink leaves behind: shared SSTs no checkpoint references
    // (FLINK-24852) and an abandoned checkpoint without `_metadata`.
    let staged = tempfile::tempdir().unwrap();
    let dir = staged.path().join(job.file_name().unwrap());
    let files = crate::util::files_under(&job);
    for f in &files {
        let r = f.strip_prefix(&job).unwrap();
        std::fs::create_dir_all(dir.join(r).parent().unwrap()).unwrap();
        std::fs::copy(f, dir.join(r)).unwrap();
    }
    let sst = files.iter().find(|f| f.parent().is_some_and(|p| p.ends_with("shared"))).unwrap();
    for orphan in ["shared/5f1c7a8e-0d3b-4c2a-9e61-7b2f4d8a9c01", "shared/a93e04b2-6c71-4f8d-b5e0-2d1c9f7e3a45", "chk-1/c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f"] {
        std::fs::create_dir_all(dir.join(orphan).parent().unwrap()).unwrap();
        std::fs::copy(sst, dir.join(orphan)).unwrap();
    }

    // What gc keeps on a local copy: every file of it must survive an interrupted gc.
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join(dir.file_name().unwrap());
    let files = crate::util::files_under(&dir);
    for f in &files {
        let r = f.strip_prefix(&dir).unwrap();
        std::fs::create_dir_all(local.join(r).parent().unwrap()).unwrap();
        std::fs::copy(f, local.join(r)).unwrap();
    }
    let mut a = vec!["gc", local.to_str().unwrap()];
    a.extend(args);
    crate::util::flinksnap_ok(&a);
    let keep = crate::util::files_under(&local);
    let mut keep: Vec<String> = keep.iter().map(|f| f.strip_prefix(&local).unwrap().display().to_string()).collect();
    keep.sort();
    assert!(keep.len() < files.len(), "{case}: the local gc removed nothing, so the test could not fail");

    // How many requests a whole gc --delete makes through the proxy.
    let storage = store.storage();
    let short = [("max_retries", "1"), ("retry_timeout", "2s"), ("backoff_initial", "10ms"), ("backoff_max", "50ms")];
    let proxy = crate::util::proxy::Proxy::start(&var("FLINKSNAP_TEST_S3_ENDPOINT").unwrap());
    let s = through(store, &proxy, &short);
    let url = format!("{}/gc-fault/all", store.url_root);
    upload_dir(&storage, &dir, &url);
    let mut b = vec!["gc".to_owned(), url.clone()];
    b.extend(args.iter().map(|s| (*s).to_owned()));
    let b = with_options(&s, &b.iter().map(String::as_str).collect::<Vec<_>>());
    let before = proxy.faults.requests.load(std::sync::atomic::Ordering::SeqCst);
    ok(s.command(&b.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap(), "gc --delete through the proxy");
    let total = proxy.faults.requests.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert_eq!(listed(&storage, &url), keep, "an uninterrupted gc --delete keeps what it keeps locally");
    assert!(total >= 4, "{total} requests");

    // The server stops after a quarter, half, three quarters of them, and before the last.
    for stop_after in [total / 4, total / 2, total * 3 / 4, total - 1] {
        let url = format!("{}/gc-fault/stop-{stop_after}", store.url_root);
        upload_dir(&storage, &dir, &url);
        let proxy = crate::util::proxy::Proxy::start(&var("FLINKSNAP_TEST_S3_ENDPOINT").unwrap());
        proxy.faults.stop_after.store(stop_after, std::sync::atomic::Ordering::SeqCst);
        let s = through(store, &proxy, &short);
        let mut b = vec!["gc".to_owned(), url.clone()];
        b.extend(args.iter().map(|s| (*s).to_owned()));
        let b = with_options(&s, &b.iter().map(String::as_str).collect::<Vec<_>>());
        let out = s.command(&b.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "stop after {stop_after} of {total} requests: {err}");
        assert!(err.contains(&store.url_root), "the error names the URL: {err}");
        // Seen directly: every file the complete gc keeps is still there, and reads the same.
        let left = listed(&storage, &url);
        let lost: Vec<&String> = keep.iter().filter(|k| !left.contains(k)).collect();
        assert!(lost.is_empty(), "stop after {stop_after}: an interrupted gc deleted files it must keep: {lost:?}");
        for chk in keep.iter().filter(|f| f.ends_with("/_metadata")) {
            let d = chk.trim_end_matches("/_metadata");
            let want = crate::util::flinksnap_ok(&["dump", local.join(d).to_str().unwrap()]);
            assert_eq!(ok(store.run(&["dump", &format!("{url}/{d}")]), "dump after an interrupted gc"), want, "stop after {stop_after}: {d}");
        }
    }
}

/// A name in the form Flink gives state files (a UUID), unique for `(kind, i)`.
fn uuid_name(kind: u32, i: usize) -> String {
    format!("{kind:08x}-5c1e-4a7b-9d2f-{i:012x}")
}

/// Puts a tiny object at each of `urls`, `threads` at a time.
fn seed(storage: &Storages, urls: &[String], threads: usize) {
    let chunks: Vec<&[String]> = urls.chunks(urls.len().div_ceil(threads).max(1)).collect();
    std::thread::scope(|s| {
        for chunk in chunks {
            s.spawn(move || {
                for u in chunk {
                    storage.put(&Location::new(u), b"orphaned state", PutMode::Overwrite).unwrap_or_else(|e| panic!("seed {u}: {e}"));
                }
            });
        }
    });
}

/// How `gc_at_scale` sees a store's requests in the proxy's log.
struct Requests {
    /// A page of a listing.
    list: &'static str,
    /// Objects a listing page holds at most.
    list_page: usize,
    /// A bulk delete.
    bulk_delete: &'static str,
    /// Keys a bulk delete takes at most.
    bulk_size: usize,
}

/// gc of a job directory of thousands of objects: the incremental chain of the Flink 2.3.0
/// fixture plus `shared_orphans` orphans in `shared/` and `abandoned` checkpoint directories
/// (`chk-N` without `_metadata`) of `per_dir` files each. The dry run lists exactly the orphans;
/// the directory is listed in pages; `--delete` looks at the files again with a listing (not a
/// HEAD each), deletes them in bulk requests of the store's size and keeps every file the
/// checkpoints reference: they still dump as the local copy. (100,000 objects: `cargo xtask
/// bench-stores --gc-objects 100000`.)
fn gc_at_scale(store: &Store, proxied: Option<(&Store, &crate::util::proxy::Proxy)>, shared_orphans: usize, abandoned: usize, per_dir: usize, req: &Requests) {
    let case = "testdata/flink-2.3.0/rocksdb-checkpoint-incremental";
    let job = std::fs::read_dir(root().join(case)).unwrap().flatten().map(|e| e.path()).find(|p| p.is_dir()).unwrap();
    let storage = store.storage();
    let url = format!("{}/gc-scale/{}", store.url_root, job.file_name().unwrap().to_str().unwrap());
    upload_dir(&storage, &job, &url);
    let fixture = crate::util::files_under(&job);

    // What gc removes from the fixture itself (a local dry run), and the orphans added to it.
    let args = ["--older-than", "0s", "--format", "json"];
    let removed = |j: &serde_json::Value| -> Vec<String> {
        let mut v: Vec<String> = j["data"]["remove"].as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap().to_owned()).collect();
        v.sort();
        v
    };
    let mut a = vec!["gc", job.to_str().unwrap()];
    a.extend(args);
    let baseline = removed(&serde_json::from_str(&crate::util::flinksnap_ok(&a)).unwrap());
    let mut orphans: Vec<String> = (0..shared_orphans).map(|i| format!("shared/{}", uuid_name(0x5a, i))).collect();
    for d in 0..abandoned {
        orphans.extend((0..per_dir).map(|i| format!("chk-{}/{}", 1000 + d, uuid_name(0xab, d * per_dir + i))));
    }
    let t = std::time::Instant::now();
    seed(&storage, &orphans.iter().map(|o| format!("{url}/{o}")).collect::<Vec<_>>(), 32);
    eprintln!("{}: {} orphans seeded in {:.1} s", store.name, orphans.len(), t.elapsed().as_secs_f64());
    let mut expected: Vec<String> = baseline.iter().cloned().chain(orphans.iter().cloned()).collect();
    expected.sort();
    let objects = fixture.len() + orphans.len();

    let run = |extra: &[&str]| -> serde_json::Value {
        let mut b = vec!["gc", url.as_str()];
        b.extend(args);
        b.extend(extra);
        let mut command = match proxied {
            Some((s, proxy)) => {
                proxy.faults.log.lock().unwrap().clear();
                s.command(&b)
            }
            None => store.command(&b),
        };
        let t = std::time::Instant::now();
        let out = ok(command.output().unwrap(), &format!("gc {extra:?} of {objects} objects"));
        eprintln!("{}: gc {extra:?} of {objects} objects in {:.1} s", store.name, t.elapsed().as_secs_f64());
        serde_json::from_str(&out).unwrap()
    };
    // Requests seen by the proxy whose request line contains `what` (none without a proxy).
    let count = |what: &str| proxied.map_or(0, |(_, p)| p.faults.log.lock().unwrap().iter().filter(|l| l.contains(what)).count());

    // Dry run: exactly the orphans (and what the fixture has to remove), nothing deleted.
    let plan = run(&[]);
    assert_eq!(removed(&plan), expected, "{}: the dry run lists other files than the orphans", store.name);
    assert_eq!(plan["data"]["totals"]["remove_files"].as_u64(), Some(expected.len() as u64));
    assert_eq!(count(req.bulk_delete), 0, "a dry run deleted");
    // shared/ alone needs this many pages.
    let pages = (shared_orphans + fixture.iter().filter(|f| f.parent().is_some_and(|p| p.ends_with("shared"))).count()).div_ceil(req.list_page);
    if proxied.is_some() {
        assert!(count(req.list) >= pages, "{}: {} listing requests for a shared/ of {pages} pages", store.name, count(req.list));
    }
    assert_eq!(listed(&storage, &url).len(), objects, "the dry run changed the bucket");

    // --delete: a listing to look again, then bulk deletes of the store's size.
    let done = run(&["--delete"]);
    assert!(done["data"]["failures"].as_array().is_none_or(|f| f.is_empty()), "{done}");
    assert_eq!(removed(&done), expected, "{}: gc --delete removed other files", store.name);
    if proxied.is_some() {
        let heads = count("HEAD ");
        assert!(heads < 50, "{}: {heads} HEAD requests: the re-check before deleting must not ask per file", store.name);
        assert!(count(req.list) >= 2 * pages, "{}: the re-check before deleting listed in {} requests", store.name, count(req.list));
        assert_eq!(count(req.bulk_delete), expected.len().div_ceil(req.bulk_size), "{}: bulk delete requests for {} files", store.name, expected.len());
    }
    // Left: the fixture without what its own gc removes; every checkpoint still dumps the same.
    let mut want: Vec<String> = fixture.iter().map(|f| f.strip_prefix(&job).unwrap().display().to_string()).filter(|f| !baseline.contains(f)).collect();
    want.sort();
    assert_eq!(listed(&storage, &url), want, "{}", store.name);
    for chk in want.iter().filter(|f| f.ends_with("/_metadata")) {
        let d = chk.trim_end_matches("/_metadata");
        let local = crate::util::flinksnap_ok(&["dump", job.join(d).to_str().unwrap()]);
        assert_eq!(ok(store.run(&["dump", &format!("{url}/{d}")]), "dump after gc"), local, "{} {d}", store.name);
    }
}

#[test]
fn s3_gc_of_thousands_of_objects_lists_in_pages_and_deletes_in_bulk() {
    let Some(store) = s3() else { return };
    let proxy = crate::util::proxy::Proxy::start(&var("FLINKSNAP_TEST_S3_ENDPOINT").unwrap());
    let proxied = through(store, &proxy, &[]);
    // S3: ListObjectsV2 pages of 1,000, DeleteObjects of 1,000 keys.
    let req = Requests { list: "list-type=2", list_page: 1000, bulk_delete: "?delete", bulk_size: 1000 };
    gc_at_scale(store, Some((&proxied, &proxy)), 4000, 20, 50, &req);
}

#[test]
fn azure_gc_of_hundreds_of_blobs_deletes_in_batches_and_retries_a_failed_one() {
    let Some(store) = azure() else { return };
    // Azure: List Blobs pages of 5,000; blob batches of 256 deletes (requests are not counted:
    // the test proxy cannot forward a batch body). Azurite closes connections idle for 5 s, so
    // one batch of the gc fails on a stale pooled connection: deleted only through the retry.
    let req = Requests { list: "comp=list", list_page: 5000, bulk_delete: "comp=batch", bulk_size: 256 };
    gc_at_scale(store, None, 600, 4, 25, &req);
}
