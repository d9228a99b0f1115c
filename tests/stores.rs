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
    let mut files = Vec::new();
    walk(&root().join("testdata"), &mut files);
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

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
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
    let want = stdout(&crate::util::flinksnap(&a), code, &format!("{a:?} (local)"));
    let mut b: Vec<&str> = args_before.to_vec();
    b.push(&url);
    b.extend(args_after);
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
        same_output(store, case, &["latest"], &[], 0);
        same_output(store, case, &["refs"], &["--format", "json"], 0);
    }
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
