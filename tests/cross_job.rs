//! Issue 20: references cross job directories. `refs`, `gc` and `delete` read every complete
//! snapshot of the checkpoint directory around a job directory (plus `--also` roots), so a job
//! restored in CLAIM or LEGACY mode — whose checkpoints live in a new job directory but reference
//! the old job's `shared/` — never loses a file; `delete` is FLIP-47's DELETE.
//!
//! The oracle of what a snapshot references is Flink's own reading of its `_metadata` (the
//! fixture's `metadata*.json`). Restoring in real Flink after gc and delete is the interop's
//! (`cargo xtask interop`, `xtask/src/interop/cross_job.rs`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value as J;

use crate::inspect::copy_dir;
use crate::util::{flinksnap, flinksnap_ok, root};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file below `dir`, relative to it.
fn files_below(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

fn json(args: &[&str]) -> J {
    let mut a = args.to_vec();
    a.extend(["--format", "json"]);
    serde_json::from_str(&flinksnap_ok(&a)).unwrap()
}

/// Files (relative to the case directory) one `_metadata` references as Flink read it, the
/// `_metadata` included: (what it needs, where it names them). A relative name that is not
/// beside `_metadata` but names a file of the savepoint restored from stands for that file
/// (FLINK-39964).
fn oracle_files(case_dir: &Path, case: &J, snap: &J, restored_from: Option<&str>) -> (BTreeSet<String>, BTreeSet<String>) {
    let oracle: J = serde_json::from_str(&crate::util::read_fixture_text(&case_dir.join(snap["metadata"].as_str().unwrap())).unwrap()).unwrap();
    let dir = snap["path"].as_str().unwrap();
    let staging = case["generated_case_dir"].as_str().unwrap();
    fn walk(j: &J, out: &mut Vec<(bool, String)>) {
        match j {
            J::Object(m) => {
                match m.get("class").and_then(J::as_str) {
                    Some("RelativeFileStateHandle") => out.push((true, m["relative_path"].as_str().unwrap().to_owned())),
                    Some("FileStateHandle") | Some("SegmentFileStateHandle") => out.push((false, m["path"].as_str().unwrap().to_owned())),
                    _ => {}
                }
                m.values().for_each(|v| walk(v, out));
            }
            J::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut raw = Vec::new();
    walk(&oracle, &mut raw);
    let mut needs = BTreeSet::from([format!("{dir}/_metadata")]);
    let mut named = needs.clone();
    for (relative, p) in raw {
        let rel = if relative {
            format!("{dir}/{p}")
        } else {
            let p = p.trim_start_matches("file:").trim_start_matches("//");
            p.strip_prefix(staging).unwrap_or_else(|| panic!("{p} outside {staging}")).trim_start_matches('/').to_owned()
        };
        if !case_dir.join(&rel).is_file() {
            let from = restored_from.unwrap_or_else(|| panic!("{rel} is not in the fixture"));
            let moved = format!("{from}/{}", Path::new(&rel).file_name().unwrap().to_string_lossy());
            assert!(case_dir.join(&moved).is_file(), "{rel} is neither beside _metadata nor in {from}");
            needs.insert(moved);
            continue;
        }
        named.insert(rel.clone());
        needs.insert(rel);
    }
    (needs, named)
}

/// A restore case copied into a temporary directory under its own name (paths recorded where
/// Flink wrote it re-base onto the copy).
struct Case {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    case: J,
    /// Snapshots: path, what it needs, where it names it; the savepoint restored from first.
    snaps: Vec<(String, BTreeSet<String>, BTreeSet<String>)>,
    alive: Vec<usize>,
}

impl Case {
    fn new(src: &Path) -> Case {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(src.file_name().unwrap());
        copy_dir(src, &dir);
        let case: J = serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
        let mut entries: Vec<J> = case["snapshots"].as_array().unwrap().clone();
        let from = case["restore"]["from"].as_str().map(str::to_owned);
        let savepoint = case["restore"]["savepoint"].is_object();
        if savepoint {
            entries.insert(0, case["restore"]["savepoint"].clone());
        }
        let snaps: Vec<_> = entries
            .iter()
            .map(|e| {
                let (needs, named) = oracle_files(&dir, &case, e, if savepoint { from.as_deref() } else { None });
                (e["path"].as_str().unwrap().to_owned(), needs, named)
            })
            .collect();
        let alive = (0..snaps.len()).collect();
        Case { _tmp: tmp, dir, case, snaps, alive }
    }

    fn restore(&self, key: &str) -> String {
        self.case["restore"][key].as_str().unwrap().to_owned()
    }

    fn referenced(&self) -> BTreeSet<String> {
        self.alive.iter().flat_map(|&i| self.snaps[i].1.iter().cloned()).collect()
    }

    fn index(&self, rel: &str) -> usize {
        self.snaps.iter().position(|s| s.0 == rel).unwrap()
    }

    /// Runs gc; it must remove exactly the files below `dir` no remaining snapshot references.
    fn gc(&self, dir: &str, also: &[&str]) -> J {
        let before = files_below(&self.dir);
        let referenced = self.referenced();
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        let want: BTreeSet<String> =
            before.iter().filter(|f| f.starts_with(&prefix) && f.contains('/') && !f.ends_with("/_metadata") && !referenced.contains(*f)).cloned().collect();
        let path = self.dir.join(dir);
        let mut args = vec!["gc", s(&path), "--delete", "--older-than", "0s"];
        let also: Vec<PathBuf> = also.iter().map(|a| self.dir.join(a)).collect();
        for a in &also {
            args.extend(["--also", s(a)]);
        }
        let j = json(&args);
        let after = files_below(&self.dir);
        let gone: BTreeSet<String> = before.difference(&after).cloned().collect();
        assert_eq!(gone, want, "gc {dir} in {}", self.dir.display());
        assert!(referenced.is_subset(&after), "gc {dir}: a referenced file is gone");
        j
    }

    /// Deletes snapshot `i`: refused without --force when `needs_force`; then it must remove
    /// exactly its files no remaining snapshot references and the rest of its directory.
    fn delete(&mut self, i: usize, also: &[&str], needs_force: bool) -> J {
        let rel = self.snaps[i].0.clone();
        let path = self.dir.join(&rel);
        let also: Vec<PathBuf> = also.iter().map(|a| self.dir.join(a)).collect();
        let mut args = vec!["delete", s(&path)];
        for a in &also {
            args.extend(["--also", s(a)]);
        }
        let before = files_below(&self.dir);
        if needs_force {
            let out = flinksnap(&args);
            assert_eq!(out.status.code(), Some(2), "delete {rel} without --force: {}", String::from_utf8_lossy(&out.stdout));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("only restorable snapshot") && err.contains("--force"), "{err}");
            assert_eq!(files_below(&self.dir), before, "a refused delete removed files");
            args.push("--force");
        }
        // A dry run first: it removes nothing and lists what the real one removes.
        let mut dry = args.clone();
        dry.push("--dry-run");
        let planned = json(&dry);
        assert_eq!(files_below(&self.dir), before, "--dry-run removed files");
        self.alive.retain(|&a| a != i);
        let referenced = self.referenced();
        let want: BTreeSet<String> =
            self.snaps[i].2.iter().cloned().chain(before.iter().filter(|f| f.starts_with(&format!("{rel}/"))).cloned()).filter(|f| !referenced.contains(f)).collect();
        let j = json(&args);
        let d = &j["data"];
        assert_eq!(d["deleted"], true);
        assert_eq!(d["remove"][0]["reason"], "metadata", "the _metadata goes first");
        assert_eq!(d["remove"][0]["path"].as_str().unwrap().rsplit('/').next(), Some("_metadata"));
        assert_eq!(planned["data"]["remove"], d["remove"], "the dry run listed other files");
        let after = files_below(&self.dir);
        let gone: BTreeSet<String> = before.difference(&after).cloned().collect();
        assert_eq!(gone, want, "delete {rel}");
        assert!(referenced.is_subset(&after), "delete {rel}: a referenced file is gone");
        if !after.iter().any(|f| f.starts_with(&format!("{rel}/"))) {
            assert!(!path.exists(), "delete {rel}: its emptied directory stays");
        }
        // What another snapshot references is listed as kept, with who references it.
        for k in d["kept"].as_array().unwrap() {
            assert_eq!(k["kept"], "referenced_elsewhere", "{k}");
            assert!(!k["referenced_by"].as_array().unwrap().is_empty(), "{k}");
        }
        j
    }
}

/// The restore cases of the fixtures (issue 20).
fn restore_cases() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for v in std::fs::read_dir(root().join("testdata")).unwrap().flatten() {
        for c in std::fs::read_dir(v.path()).into_iter().flatten().flatten() {
            let Ok(text) = std::fs::read(c.path().join("case.json")) else { continue };
            let case: J = serde_json::from_slice(&text).unwrap();
            if case["restore"].is_object() {
                out.push(c.path());
            }
        }
    }
    out.sort();
    out
}

/// Dumps a snapshot and compares its entries with the case's expected file (RocksDB native
/// state needs the `rocksdb` feature, which the default build has).
fn assert_dumps_expected(dir: &Path, snapshot: &J, case_dir: &Path, case: &J) {
    let path = dir.join(snapshot["path"].as_str().unwrap());
    // Flink 1.x stores no uids: name the operators as the job did.
    let mut args = vec!["dump".to_owned(), s(&path).to_owned()];
    for u in case["uids"].as_object().unwrap().keys() {
        args.extend(["--uid".to_owned(), u.clone()]);
    }
    let out = flinksnap_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let expected = crate::util::read_fixture_text(&case_dir.join(snapshot["expected"].as_str().unwrap())).unwrap();
    let set = |t: &str| {
        let mut v: Vec<J> = t.lines().filter(|l| !l.is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect();
        for j in &mut v {
            if let Some(o) = j.as_object_mut() {
                o.remove("ttl_timestamp");
            }
        }
        let mut v: Vec<String> = v.iter().map(J::to_string).collect();
        v.sort();
        v
    };
    let (ours, theirs) = (set(&out), set(&expected));
    let differ: Vec<&String> = ours.iter().filter(|l| !theirs.contains(l)).chain(theirs.iter().filter(|l| !ours.contains(l))).take(4).collect();
    assert!(differ.is_empty(), "{}: dump differs from the job's expected contents, e.g. {differ:#?}", path.display());
    assert_eq!(ours.len(), theirs.len());
}

/// Every restore-mode enum Flink has had (`runtime.jobgraph.RestoreMode` in 1.15,
/// `core.execution.RestoreMode` in 1.16-1.20, `core.execution.RecoveryClaimMode` in 2.x) has a
/// restore case, and so has every kind of restore case, each in the mode its name says
/// (testdata/README.md, "Restore cases": one case per enum and kind keeps testdata/ small).
#[test]
fn fixtures_of_every_restore_mode_enum_and_case_kind_exist() {
    let enum_of = |v: &str| {
        let mut p = v.split('.').map(|n| n.parse::<u32>().unwrap());
        match (p.next().unwrap(), p.next().unwrap()) {
            (1, 15) => "runtime.jobgraph.RestoreMode",
            (1, 16..=20) => "core.execution.RestoreMode",
            (2, _) => "core.execution.RecoveryClaimMode",
            _ => panic!("Flink {v} has no restore modes"),
        }
    };
    let (mut enums, mut kinds) = (BTreeSet::new(), BTreeSet::new());
    for c in restore_cases() {
        let case: J = serde_json::from_slice(&std::fs::read(c.join("case.json")).unwrap()).unwrap();
        let (version, name, mode) = (case["flink_version"].as_str().unwrap(), case["case"].as_str().unwrap(), case["restore"]["mode"].as_str().unwrap());
        assert_eq!(c.parent().unwrap().file_name().unwrap().to_string_lossy(), format!("flink-{version}"));
        assert!(name.ends_with(&format!("-{}", mode.to_lowercase())), "{version}/{name}: restored in {mode}");
        enums.insert(enum_of(version));
        kinds.insert(name.to_owned());
    }
    assert_eq!(enums, BTreeSet::from(["runtime.jobgraph.RestoreMode", "core.execution.RestoreMode", "core.execution.RecoveryClaimMode"]));
    assert_eq!(kinds, BTreeSet::from(["rocksdb-checkpoint-incremental-claim", "rocksdb-checkpoint-incremental-legacy", "rocksdb-savepoint-native-claim"].map(String::from)));
}

/// The layout a CLAIM or LEGACY restore leaves: the old job's checkpoints and, beside them, the
/// new job's, which reference the old job's shared/. gc of the old job directory, of the
/// checkpoint directory, and delete of the old checkpoints remove nothing the new job needs; the
/// new job's checkpoint still verifies and dumps the restored state; deleting it last removes
/// every file.
#[test]
fn restored_checkpoints_keep_the_old_jobs_files() {
    for src in restore_cases().into_iter().filter(|c| !c.ends_with("rocksdb-savepoint-native-claim")) {
        let mut c = Case::new(&src);
        let from = c.restore("from");
        let job = c.restore("job");
        let old_job = Path::new(&from).parent().unwrap().to_string_lossy().into_owned();
        let restored: Vec<usize> = (0..c.snaps.len()).filter(|&i| c.snaps[i].0.starts_with(&format!("{job}/"))).collect();
        let old: Vec<usize> = (0..c.snaps.len()).filter(|i| !restored.contains(i)).collect();
        assert!(!old.is_empty() && !restored.is_empty(), "{}", src.display());
        // The restored job references the old job's files.
        let new_chk = c.dir.join(&c.snaps[restored[0]].0);
        let into_old = c.snaps[restored[0]].1.iter().filter(|f| f.starts_with(&format!("{old_job}/"))).count();
        assert!(into_old > 0, "{}: the restored checkpoint references nothing of the old job", src.display());
        // refs of the old job directory: the new job's checkpoint is an external referrer, and
        // the files it shares are flagged.
        let r = json(&["refs", s(&c.dir.join(&old_job))]);
        let d = &r["data"];
        assert_eq!(d["roots"][0]["path"], s(&c.dir), "the checkpoint directory is scanned");
        assert_eq!(d["roots"][0]["reason"], "checkpoint_root");
        let ext: Vec<&J> = d["external"].as_array().unwrap().iter().filter(|e| e["path"] == s(&new_chk)).collect();
        assert_eq!(ext.len(), 1, "{d:#}");
        assert_eq!(ext[0]["files"].as_array().unwrap().len(), into_old, "{}", src.display());
        assert!(d["snapshots"].as_array().unwrap().iter().flat_map(|s| s["files"].as_array().unwrap()).any(|f| f["cross_job"] == true));
        assert_eq!(d["totals"]["unreferenced_files"], 0);
        // inspect says where the new checkpoint's files are.
        let i = json(&["inspect", s(&new_chk)]);
        let outside = i["data"]["external_references"].as_array().unwrap();
        assert_eq!(outside.len(), 1, "{i:#}");
        assert_eq!(outside[0]["directory"], s(&c.dir.join(&old_job)));
        assert_eq!(outside[0]["files"].as_u64().unwrap() as usize, into_old);
        let table = flinksnap_ok(&["inspect", s(&new_chk)]);
        assert!(table.contains("outside its job directory") && table.contains(&old_job), "{table}");

        c.gc(&old_job, &[]);
        c.gc("", &[]);
        for (n, &o) in old.iter().enumerate() {
            c.delete(o, &[], n + 1 == old.len());
        }
        // The old job directory now has no snapshot at all; its files the new job uses stay.
        let j = c.gc(&old_job, &[]);
        assert_eq!(j["data"]["totals"]["own_snapshots"], 0);
        assert!(j["data"]["totals"]["referenced_from_outside_files"].as_u64().unwrap() > 0);
        c.gc("", &[]);
        for &i in &restored {
            let snap = c.case["snapshots"].as_array().unwrap().iter().find(|s| s["path"] == c.snaps[i].0.as_str()).unwrap().clone();
            flinksnap_ok(&["verify", s(&c.dir.join(&c.snaps[i].0)), "--level", "full"]);
            assert_dumps_expected(&c.dir, &snap, &c.dir, &c.case);
        }
        // Deleting the restored job's checkpoints too: the last one is referenced by nothing
        // else, and everything it referenced goes, the old job's files included.
        for (n, &i) in restored.iter().enumerate() {
            c.delete(i, &[], n + 1 == restored.len());
        }
        let left: Vec<String> = files_below(&c.dir).into_iter().filter(|f| f.contains('/')).collect();
        assert!(left.is_empty(), "{}: left {left:?}", src.display());
    }
}

/// A job restored from a native savepoint in CLAIM mode: its first checkpoint names the
/// savepoint's files by relative names that Flink resolves beside its own `_metadata`, where they
/// are not (FLINK-39964; 1.15.4, 1.20.5 and 2.3.0 alike). gc and delete of the savepoint keep
/// those files when the checkpoint directory is scanned (`--also`); copied beside the checkpoint,
/// it is sound and holds the restored state.
#[test]
fn a_checkpoint_restored_from_a_native_savepoint_keeps_the_savepoint_files_it_names() {
    for src in restore_cases().into_iter().filter(|c| c.ends_with("rocksdb-savepoint-native-claim")) {
        let mut c = Case::new(&src);
        let from = c.restore("from");
        let job = c.restore("job");
        let sp_root = Path::new(&from).parent().unwrap().to_string_lossy().into_owned();
        let ck_root = Path::new(&job).parent().unwrap().to_string_lossy().into_owned();
        let chk = c.case["snapshots"][0].clone();
        let chk_rel = chk["path"].as_str().unwrap().to_owned();
        assert!(chk["unsound"].as_str().unwrap().contains("FLINK-39964"));
        let named: Vec<String> = c.snaps[c.index(&chk_rel)].1.iter().filter(|f| f.starts_with(&format!("{from}/"))).cloned().collect();
        assert!(!named.is_empty());
        // As Flink wrote it, the checkpoint is not sound: the files are not beside _metadata.
        let v = flinksnap(&["verify", s(&c.dir.join(&chk_rel))]);
        assert_eq!(v.status.code(), Some(1));
        // The savepoint's root alone does not hold the checkpoint: refs says what it scanned,
        // and with --also the checkpoint is an external referrer of exactly those files.
        let alone = json(&["refs", s(&c.dir.join(&sp_root))]);
        assert_eq!(alone["data"]["roots"].as_array().unwrap().len(), 1);
        assert_eq!(alone["data"]["external"].as_array().unwrap().len(), 0);
        let with = json(&["refs", s(&c.dir.join(&sp_root)), "--also", s(&c.dir.join(&ck_root))]);
        let ext = with["data"]["external"].as_array().unwrap();
        assert_eq!(ext.len(), 1, "{with:#}");
        let ext_files: BTreeSet<String> = ext[0]["files"].as_array().unwrap().iter().map(|f| format!("{sp_root}/{}", f.as_str().unwrap())).collect();
        assert_eq!(ext_files, named.iter().cloned().collect(), "{}", src.display());

        c.gc(&sp_root, &[&ck_root]);
        c.gc(&ck_root, &[]);
        let sp = c.index(&from);
        let j = c.delete(sp, &[&ck_root], true);
        assert_eq!(j["data"]["kept"].as_array().unwrap().len(), named.len());
        c.gc(&sp_root, &[&ck_root]);
        c.gc(&job, &[]);
        // Copied beside the checkpoint's _metadata (what a repair does), it is sound and holds
        // the restored state.
        for f in &named {
            std::fs::copy(c.dir.join(f), c.dir.join(&chk_rel).join(Path::new(f).file_name().unwrap())).unwrap();
        }
        flinksnap_ok(&["verify", s(&c.dir.join(&chk_rel)), "--level", "full"]);
        assert_dumps_expected(&c.dir, &chk, &c.dir, &c.case);
    }
}

/// The reproduction on a fixture chain: the newest checkpoint moved into a sibling job
/// directory (the layout a CLAIM restore leaves); `gc <old job> --delete --older-than 0s` used to
/// remove every file only it referenced and leave it NOT SOUND.
#[test]
fn gc_of_a_job_directory_keeps_what_a_sibling_job_references() {
    // every version with the chain (testdata/README.md: one per FRocksDB generation)
    for version in ["1.13.6", "1.15.4", "2.3.0"] {
        let src = root().join("testdata").join(format!("flink-{version}")).join("rocksdb-checkpoint-incremental");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("rocksdb-checkpoint-incremental");
        copy_dir(&src, &dir);
        let case: J = serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
        let snaps = case["snapshots"].as_array().unwrap();
        let newest = snaps.last().unwrap();
        let newest_rel = newest["path"].as_str().unwrap();
        let old_job = dir.join(newest_rel).parent().unwrap().to_path_buf();
        let new_job = dir.join("0123456789abcdef0123456789abcdef");
        let (needs, _) = oracle_files(&dir, &case, newest, None);
        std::fs::create_dir_all(&new_job).unwrap();
        let moved = new_job.join(Path::new(newest_rel).file_name().unwrap());
        std::fs::rename(dir.join(newest_rel), &moved).unwrap();
        let moved_rel = moved.strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
        let needs: BTreeSet<String> = needs.into_iter().map(|f| f.replace(newest_rel, &moved_rel)).collect();
        let before = files_below(&dir);
        assert!(needs.is_subset(&before), "{version}: the moved checkpoint is complete");
        // What a gc that read only the old job directory's snapshots would have removed.
        let others: BTreeSet<String> = snaps[..snaps.len() - 1].iter().flat_map(|o| oracle_files(&dir, &case, o, None).0).collect();
        let only_moved = needs.iter().filter(|f| !others.contains(*f) && !f.starts_with(&moved_rel)).count();
        assert!(only_moved > 0, "{version}: the moved checkpoint shares nothing of its own with the old job");
        let out = flinksnap_ok(&["gc", s(&old_job), "--delete", "--older-than", "0s"]);
        assert!(out.contains(&format!("scanned {}", dir.display())), "{out}");
        assert!(out.contains("referenced by 1 snapshots outside"), "{out}");
        let after = files_below(&dir);
        let lost: Vec<&String> = needs.difference(&after).collect();
        assert!(lost.is_empty(), "{version}: gc of the old job directory removed {lost:?}");
        assert_eq!(after, before, "{version}: nothing was unreferenced");
        flinksnap_ok(&["verify", s(&moved), "--level", "full"]);
        // The roots are named in the output; an --also root inside one is not scanned twice.
        let j = json(&["gc", s(&old_job), "--also", s(&new_job)]);
        let roots: Vec<&str> = j["data"]["roots"].as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect();
        assert_eq!(roots, [s(&dir)]);
    }
}

/// gc --delete refuses when a snapshot of the checkpoint directory around the job directory does
/// not parse (its references are unknown), as it does for the job directory's own; delete too.
#[test]
fn an_unreadable_snapshot_of_a_sibling_job_makes_gc_and_delete_refuse() {
    let src = restore_cases().into_iter().find(|c| c.ends_with("rocksdb-checkpoint-incremental-claim")).unwrap();
    let c = Case::new(&src);
    let job = c.restore("job");
    let from = c.restore("from");
    let old_job = c.dir.join(Path::new(&from).parent().unwrap());
    let chk = c.dir.join(&c.snaps.iter().find(|s| s.0.starts_with(&job)).unwrap().0);
    std::fs::write(chk.join("_metadata"), b"not a metadata file").unwrap();
    let before = files_below(&c.dir);
    let out = flinksnap(&["gc", s(&old_job), "--delete", "--older-than", "0s"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not parse") && err.contains("in other directories of the scanned roots"), "{err}");
    let out = flinksnap(&["delete", s(&c.dir.join(&from)), "--force"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not parse"));
    assert_eq!(files_below(&c.dir), before, "nothing removed");
    // Told otherwise, delete goes on (gc too), leaving the unreadable snapshot's directory alone.
    flinksnap_ok(&["delete", s(&c.dir.join(&from)), "--force", "--allow-unreadable"]);
    assert!(chk.join("_metadata").exists());
    assert!(!c.dir.join(&from).join("_metadata").exists());
}

/// delete's other refusals and outputs: a running job (a chk-N being written), a snapshot that
/// is not one, exit 1 when a referenced file was already missing, a savepoint whose job still has
/// a restorable checkpoint.
#[test]
fn delete_refuses_a_running_jobs_checkpoint_and_reports_missing_files() {
    let src = root().join("testdata/flink-2.3.0/rocksdb-checkpoint-incremental");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rocksdb-checkpoint-incremental");
    copy_dir(&src, &dir);
    let case: J = serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
    let snaps: Vec<PathBuf> = case["snapshots"].as_array().unwrap().iter().map(|s| dir.join(s["path"].as_str().unwrap())).collect();
    let job = snaps[0].parent().unwrap().to_path_buf();
    // A checkpoint in flight: chk-99 without _metadata, just written.
    std::fs::create_dir_all(job.join("chk-99")).unwrap();
    std::fs::write(job.join("chk-99/aaaaaaaa-0000-0000-0000-000000000000"), b"x").unwrap();
    let out = flinksnap(&["delete", s(&snaps[0])]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("looks running") && err.contains("chk-99"), "{err}");
    std::fs::remove_dir_all(job.join("chk-99")).unwrap();
    // Not a snapshot.
    let out = flinksnap(&["delete", s(&job)]);
    assert_eq!(out.status.code(), Some(2));
    // A referenced file missing already: deleted all the same, exit 1, the file named.
    let (_, named) = oracle_files(&dir, &case, &case["snapshots"][0], None);
    let own = named.iter().find(|f| f.starts_with(case["snapshots"][0]["path"].as_str().unwrap()) && !f.ends_with("_metadata")).unwrap();
    std::fs::remove_file(dir.join(own)).unwrap();
    let out = flinksnap(&["delete", s(&snaps[0])]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("missing") && text.contains("restorable snapshot of the same job left"), "{text}");
    assert!(!snaps[0].exists());
    // The later checkpoints are untouched and sound.
    for snap in &snaps[1..] {
        flinksnap_ok(&["verify", s(snap)]);
    }
}

/// A savepoint that nothing else references: delete removes all its files and its directory.
#[test]
fn deleting_a_savepoint_nothing_references_removes_all_of_it() {
    for case in ["rocksdb-savepoint-native", "heap-savepoint-canonical"] {
        let src = root().join("testdata/flink-2.3.0").join(case);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(case);
        copy_dir(&src, &dir);
        let c: J = serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
        let sp = dir.join(c["snapshots"][0]["path"].as_str().unwrap());
        let n = files_below(&sp).len();
        // The only savepoint of its job: refused without --force.
        assert_eq!(flinksnap(&["delete", s(&sp)]).status.code(), Some(2));
        let j = json(&["delete", s(&sp), "--force"]);
        assert_eq!(j["data"]["totals"]["remove_files"].as_u64().unwrap() as usize, n);
        assert_eq!(j["data"]["totals"]["kept_files"], 0);
        assert!(!sp.exists(), "{case}: the savepoint directory is gone");
        assert!(dir.join("case.json").exists());
    }
}

// ---------------------------------------------------------------------------------------------
// property: random multi-job layouts, checkpoints referencing each other's shared files

mod property {
    use flinksnap::manage::delete::{self, DeleteOptions};
    use flinksnap::manage::gc::{self, GcOptions};
    use flinksnap::metadata::handles::{HandleAndLocalPath, IncrementalRemoteKeyedStateHandle, KeyedStateHandle, StreamStateHandle};
    use flinksnap::metadata::{OperatorState, OperatorSubtaskState, SubtaskState};
    use flinksnap::metadata::CheckpointMetadata;
    use flinksnap::model::{KeyGroupRange, OperatorId};
    use flinksnap::storage::LocalStorage;
    use proptest::prelude::*;

    use super::*;

    /// One checkpoint: its job, its id, the shared files it references (job, file) and whether
    /// one of its files is a relative name of a savepoint file (FLINK-39964).
    #[derive(Debug, Clone)]
    struct Chk {
        job: usize,
        id: u64,
        shared: Vec<(usize, usize)>,
        savepoint_files: Vec<usize>,
    }

    /// A layout: `jobs` job directories with `files` shared files each, a savepoint directory
    /// beside the checkpoint directory with `files` files, checkpoints referencing any job's
    /// shared files and the savepoint's.
    #[derive(Debug, Clone)]
    struct Layout {
        jobs: usize,
        files: usize,
        chks: Vec<Chk>,
        savepoint: bool,
    }

    fn layout() -> impl Strategy<Value = Layout> {
        (1usize..4, 1usize..6, any::<bool>()).prop_flat_map(|(jobs, files, savepoint)| {
            let chk = (0..jobs, proptest::collection::vec((0..jobs, 0..files), 0..6), proptest::collection::vec(0..files, 0..3));
            proptest::collection::vec(chk, 1..6).prop_map(move |v| Layout {
                jobs,
                files,
                savepoint,
                chks: v
                    .into_iter()
                    .enumerate()
                    .map(|(i, (job, shared, sp))| Chk { job, id: i as u64 + 1, shared, savepoint_files: if savepoint { sp } else { Vec::new() } })
                    .collect(),
            })
        })
    }

    #[derive(Debug, Clone)]
    enum Op {
        Gc(usize),
        GcRoot,
        Delete(usize),
        GcSavepoints,
        DeleteSavepoint,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![(0usize..4).prop_map(Op::Gc), Just(Op::GcRoot), (0usize..6).prop_map(Op::Delete), Just(Op::GcSavepoints), Just(Op::DeleteSavepoint)]
    }

    fn job_name(j: usize) -> String {
        format!("{j:032x}")
    }

    fn uuid(kind: u32, a: usize, b: usize) -> String {
        format!("{kind:08x}-{a:04x}-{b:04x}-0000-000000000000")
    }

    /// Writes the layout below `base/ckpts` (checkpoints) and `base/sp` (one savepoint), with
    /// absolute shared paths as Flink records them, and returns per checkpoint the files it
    /// needs (relative to `base`).
    /// A snapshot written: its directory (relative to the base) and the files it needs.
    type Written = (String, BTreeSet<String>);

    fn write(base: &Path, l: &Layout) -> (Vec<Written>, Option<Written>) {
        let ck = base.join("ckpts");
        for j in 0..l.jobs {
            let shared = ck.join(job_name(j)).join("shared");
            std::fs::create_dir_all(&shared).unwrap();
            for f in 0..l.files {
                std::fs::write(shared.join(uuid(1, j, f)), [j as u8, f as u8]).unwrap();
            }
        }
        let sp_dir = base.join("sp").join("savepoint-abcdef-0123456789ab");
        let mut savepoint = None;
        if l.savepoint {
            std::fs::create_dir_all(&sp_dir).unwrap();
            let mut need = BTreeSet::from(["sp/savepoint-abcdef-0123456789ab/_metadata".to_owned()]);
            let mut handles = Vec::new();
            for f in 0..l.files {
                std::fs::write(sp_dir.join(uuid(2, 0, f)), [f as u8]).unwrap();
                need.insert(format!("sp/savepoint-abcdef-0123456789ab/{}", uuid(2, 0, f)));
                handles.push(HandleAndLocalPath { local_path: format!("{f:06}.sst"), handle: Some(StreamStateHandle::RelativeFile { relative_path: uuid(2, 0, f), size: 1 }) });
            }
            std::fs::write(sp_dir.join("_metadata"), metadata(0, handles)).unwrap();
            savepoint = Some(("sp/savepoint-abcdef-0123456789ab".to_owned(), need));
        }
        let mut out = Vec::new();
        for c in &l.chks {
            let rel = format!("ckpts/{}/chk-{}", job_name(c.job), c.id);
            let dir = base.join(&rel);
            std::fs::create_dir_all(&dir).unwrap();
            let mut need = BTreeSet::from([format!("{rel}/_metadata")]);
            let own = uuid(3, c.job, c.id as usize);
            std::fs::write(dir.join(&own), b"meta").unwrap();
            need.insert(format!("{rel}/{own}"));
            let mut handles = vec![HandleAndLocalPath { local_path: "MANIFEST".into(), handle: Some(StreamStateHandle::RelativeFile { relative_path: own, size: 4 }) }];
            for &(j, f) in &c.shared {
                let p = ck.join(job_name(j)).join("shared").join(uuid(1, j, f));
                need.insert(format!("ckpts/{}/shared/{}", job_name(j), uuid(1, j, f)));
                handles.push(HandleAndLocalPath { local_path: format!("{j}-{f}.sst"), handle: Some(StreamStateHandle::File { path: format!("file:{}", p.display()), size: 2 }) });
            }
            // FLINK-39964: a savepoint file named relative to the checkpoint's own directory.
            for &f in &c.savepoint_files {
                need.insert(format!("sp/savepoint-abcdef-0123456789ab/{}", uuid(2, 0, f)));
                handles.push(HandleAndLocalPath { local_path: format!("sp-{f}.sst"), handle: Some(StreamStateHandle::RelativeFile { relative_path: uuid(2, 0, f), size: 1 }) });
            }
            std::fs::write(dir.join("_metadata"), metadata(c.id, handles)).unwrap();
            out.push((rel, need));
        }
        (out, savepoint)
    }

    fn metadata(id: u64, shared: Vec<HandleAndLocalPath>) -> Vec<u8> {
        let h = IncrementalRemoteKeyedStateHandle {
            type_byte: 11,
            checkpoint_id: id,
            backend_identifier: "00000000-0000-0000-0000-000000000000".into(),
            key_group_range: KeyGroupRange { start: 0, len: 128 },
            checkpointed_size: Some(0),
            meta_state_handle: None,
            shared_state: shared,
            private_state: Vec::new(),
            state_handle_id: Some("x".into()),
        };
        let m = CheckpointMetadata {
            version: 3,
            checkpoint_id: id,
            master_states: Vec::new(),
            operators: vec![OperatorState {
                operator_id: OperatorId::from_uid("keyed"),
                name: None,
                uid: None,
                parallelism: 1,
                max_parallelism: 128,
                coordinator_state: None,
                fully_finished: false,
                subtasks: vec![SubtaskState {
                    index: 0,
                    finished: false,
                    state: Some(OperatorSubtaskState { managed_keyed_state: Some(KeyedStateHandle::IncrementalRemote(h)), ..Default::default() }),
                }],
            }],
            properties: None,
            properties_note: None,
            properties_raw: Vec::new(),
        };
        flinksnap::writers::metadata::write_metadata(&m, 3).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]
        /// Whatever is collected or deleted in whatever order, no file a remaining complete
        /// snapshot references is ever removed (the savepoint's root is scanned with --also
        /// the checkpoint directory, and the other way round).
        #[test]
        fn random_multi_job_layouts_never_lose_a_referenced_file(l in layout(), ops in proptest::collection::vec(op(), 1..8)) {
            let tmp = tempfile::tempdir().unwrap();
            let base = tmp.path();
            let (chks, savepoint) = write(base, &l);
            let ck = base.join("ckpts");
            let sp_root = base.join("sp");
            let mut alive: Vec<bool> = vec![true; chks.len()];
            let mut sp_alive = savepoint.is_some();
            let storage = Arc::new(LocalStorage);
            let sp_also = if l.savepoint { vec![s(&sp_root).to_owned()] } else { Vec::new() };
            let gc_opts = |also: Vec<String>| GcOptions { older_than: std::time::Duration::ZERO, allow_no_snapshots: true, also, ..GcOptions::default() };
            let del_opts = |also: Vec<String>| DeleteOptions { force: true, also, ..DeleteOptions::default() };
            let all: Vec<Op> = ops.iter().cloned().chain([Op::GcRoot, Op::GcSavepoints]).collect();
            for (n, op) in all.iter().enumerate() {
                match op {
                    Op::Gc(j) => {
                        let dir = ck.join(job_name(j % l.jobs));
                        let o = gc_opts(sp_also.clone());
                        let mut p = gc::plan(storage.clone(), s(&dir), &o).unwrap();
                        prop_assert!(p.refused.is_none(), "{:?}", p.refused);
                        gc::execute(&LocalStorage, &mut p, &o).unwrap();
                    }
                    Op::GcRoot => {
                        let o = gc_opts(sp_also.clone());
                        let mut p = gc::plan(storage.clone(), s(&ck), &o).unwrap();
                        gc::execute(&LocalStorage, &mut p, &o).unwrap();
                    }
                    Op::GcSavepoints if l.savepoint => {
                        let o = gc_opts(vec![s(&ck).to_owned()]);
                        let mut p = gc::plan(storage.clone(), s(&sp_root), &o).unwrap();
                        gc::execute(&LocalStorage, &mut p, &o).unwrap();
                    }
                    Op::Delete(i) => {
                        let i = i % chks.len();
                        if !alive[i] {
                            continue;
                        }
                        let o = del_opts(sp_also.clone());
                        let mut p = delete::plan(storage.clone(), s(&base.join(&chks[i].0)), &o).unwrap();
                        prop_assert!(p.refused.is_none(), "{:?}", p.refused);
                        delete::execute(&LocalStorage, &mut p).unwrap();
                        alive[i] = false;
                        prop_assert!(!base.join(&chks[i].0).join("_metadata").exists());
                    }
                    Op::DeleteSavepoint if sp_alive => {
                        let (rel, _) = savepoint.as_ref().unwrap();
                        let o = del_opts(vec![s(&ck).to_owned()]);
                        let mut p = delete::plan(storage.clone(), s(&base.join(rel)), &o).unwrap();
                        delete::execute(&LocalStorage, &mut p).unwrap();
                        sp_alive = false;
                    }
                    _ => {}
                }
                let left = files_below(base);
                let mut referenced: BTreeSet<String> = chks.iter().zip(&alive).filter(|(_, a)| **a).flat_map(|(c, _)| c.1.iter().cloned()).collect();
                if sp_alive {
                    referenced.extend(savepoint.as_ref().unwrap().1.iter().cloned());
                }
                let lost: Vec<&String> = referenced.difference(&left).collect();
                prop_assert!(lost.is_empty(), "after {op:?} of {ops:?}: lost {lost:?} ({l:?})");
                // After the final collections, nothing unreferenced is left.
                if n + 1 == all.len() {
                    let extra: Vec<&String> = left.difference(&referenced).collect();
                    prop_assert!(extra.is_empty(), "after {ops:?}: left {extra:?} ({l:?})");
                }
            }
        }
    }
}
