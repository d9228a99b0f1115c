//! Issue 20 in the interop: `gc` and `delete` on the restore cases (a job restored in CLAIM or
//! LEGACY mode from a retained checkpoint, or in CLAIM mode from a native savepoint) must remove
//! nothing the restored job's checkpoints reference, which then restore in real Flink.
//!
//! On a copy of the whole case placed where Flink wrote it (`generated_case_dir`, so the absolute
//! paths in `_metadata` resolve as recorded), one command after the other; after each, the files
//! that disappeared must be exactly the expected ones, computed from Flink's own view of every
//! `_metadata` (the `metadata*.json` oracles), never from flinksnap's:
//!
//! - `gc DIR --delete --older-than 0s`: the files under DIR that no remaining snapshot references
//!   (none: the fixtures hold no garbage), for the old job directory and the checkpoint
//!   directory (or the savepoint directory `--also` the checkpoint directory);
//! - `delete SNAPSHOT`: its files that no remaining snapshot references, and its directory. The
//!   snapshot restored from is the last restorable one of its job once the older one is gone:
//!   without `--force` the delete must be refused (exit 2) and remove nothing.
//!
//! A checkpoint a restore from a native savepoint wrote names the savepoint's files by relative
//! names that Flink resolves beside its own `_metadata`, where they are not (FLINK-39964): those
//! references count as the savepoint's files of that name, and before the checkpoint is restored
//! they are copied beside it from the savepoint directory — proving the bytes gc and delete kept
//! are the ones Flink needs.
//!
//! A scratch copy (not at Flink's location: re-based paths) then has every snapshot deleted, the
//! last one by then referenced by no other: everything it referenced goes.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as J;

use super::{listing, lock, read_json, Fixture, Placed};

/// A snapshot of the case: where it is (relative to the case directory) and what Flink's view of
/// its `_metadata` says it references.
#[derive(Clone)]
struct Snap {
    rel: String,
    /// What it needs: its files, a FLINK-39964 name standing for the savepoint's file.
    files: BTreeSet<String>,
    /// Of those, the files its `_metadata` names where they are (what deleting it can remove).
    resolvable: BTreeSet<String>,
}

/// Result of the checks of one case: the placed copy (kept for the restores) and one line per
/// check.
pub(super) type CaseChecks = (Option<Placed>, Vec<(String, std::result::Result<String, String>)>);

/// Files (relative to the case directory) that a `_metadata` references as Flink read it, the
/// `_metadata` itself included, and of those the ones where it names them. A relative name that
/// is not beside `_metadata` but is a file of the directory restored from (FLINK-39964) stands
/// for that file.
fn oracle_files(case_dir: &Path, generated: &str, snap_rel: &str, oracle: &J, restored_from: Option<&str>) -> std::result::Result<(BTreeSet<String>, BTreeSet<String>), String> {
    fn walk(j: &J, out: &mut Vec<(bool, String)>) {
        match j {
            J::Object(m) => {
                match m.get("class").and_then(J::as_str) {
                    Some("RelativeFileStateHandle") => out.extend(m.get("relative_path").and_then(J::as_str).map(|p| (true, p.to_owned()))),
                    Some("FileStateHandle") | Some("SegmentFileStateHandle") => out.extend(m.get("path").and_then(J::as_str).map(|p| (false, p.to_owned()))),
                    _ => {}
                }
                m.values().for_each(|v| walk(v, out));
            }
            J::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut raw = Vec::new();
    walk(oracle, &mut raw);
    let mut out = BTreeSet::from([format!("{snap_rel}/_metadata")]);
    let mut resolvable = out.clone();
    for (relative, p) in raw {
        let rel = if relative {
            format!("{snap_rel}/{p}")
        } else {
            let local = p.strip_prefix("file://").or_else(|| p.strip_prefix("file:")).unwrap_or(&p);
            local.strip_prefix(generated).map(|r| r.trim_start_matches('/').to_owned()).ok_or_else(|| format!("{p} lies outside the case's staging directory {generated}"))?
        };
        if !case_dir.join(&rel).is_file() {
            let name = Path::new(&rel).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            match restored_from.map(|f| format!("{f}/{name}")) {
                Some(moved) if case_dir.join(&moved).is_file() => {
                    out.insert(moved);
                    continue;
                }
                _ => return Err(format!("{snap_rel} references {rel}, which is not in the fixture")),
            }
        }
        resolvable.insert(rel.clone());
        out.insert(rel);
    }
    Ok((out, resolvable))
}

/// Every file below `dir`, relative to it.
fn files(dir: &Path) -> std::result::Result<BTreeSet<String>, String> {
    Ok(listing(dir)?.into_keys().collect())
}

/// The state of one copy of a case while snapshots are deleted from it.
struct Copy<'a> {
    bin: &'a Path,
    dir: PathBuf,
    snaps: Vec<Snap>,
    /// Indices of the snapshots still complete.
    alive: Vec<usize>,
}

impl Copy<'_> {
    fn referenced(&self) -> BTreeSet<String> {
        self.alive.iter().flat_map(|&i| self.snaps[i].files.iter().cloned()).collect()
    }

    fn run(&self, args: &[String]) -> std::result::Result<(i32, J, String), String> {
        let out = Command::new(self.bin).args(args).args(["--format", "json"]).output().map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        let code = out.status.code().unwrap_or(-1);
        let j: J = serde_json::from_slice(&out.stdout).unwrap_or(J::Null);
        Ok((code, j, String::from_utf8_lossy(&out.stderr).trim().to_owned()))
    }

    /// Checks what a command removed: exactly `want` (relative to the copy); every file a
    /// remaining snapshot references must still be there.
    fn removed(&self, what: &str, before: &BTreeSet<String>, want: &BTreeSet<String>) -> std::result::Result<usize, String> {
        let after = files(&self.dir)?;
        let gone: BTreeSet<String> = before.difference(&after).cloned().collect();
        if &gone != want {
            let extra: Vec<&String> = gone.difference(want).take(5).collect();
            let kept: Vec<&String> = want.difference(&gone).take(5).collect();
            return Err(format!("{what}: removed other files than expected: removed, not expected: {extra:?}; expected, still there: {kept:?}"));
        }
        if let Some(p) = self.referenced().iter().find(|p| !after.contains(*p)) {
            return Err(format!("{what}: {p}, referenced by a remaining snapshot, is gone"));
        }
        Ok(gone.len())
    }

    /// `gc DIR --delete --older-than 0s [--also …]`: it must remove exactly the files below DIR
    /// that no remaining snapshot references (fixture files at the case level are not Flink's
    /// layout and stay).
    fn gc(&self, dir: &str, also: &[&str]) -> std::result::Result<String, String> {
        self.gc_with(dir, also, &[])
    }

    fn gc_with(&self, dir: &str, also: &[&str], extra: &[&str]) -> std::result::Result<String, String> {
        let before = files(&self.dir)?;
        let referenced = self.referenced();
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        let want: BTreeSet<String> = before
            .iter()
            .filter(|f| f.starts_with(&prefix) && f.contains('/') && !f.ends_with("/_metadata") && !referenced.contains(*f))
            .cloned()
            .collect();
        let mut args = vec!["gc".to_owned(), self.dir.join(dir).to_string_lossy().into_owned(), "--delete".into(), "--older-than".into(), "0s".into()];
        for a in also {
            args.extend(["--also".to_owned(), self.dir.join(a).to_string_lossy().into_owned()]);
        }
        args.extend(extra.iter().map(|e| e.to_string()));
        let (code, j, err) = self.run(&args)?;
        if code != 0 || j["data"]["deleted"] != J::Bool(true) {
            return Err(format!("gc {dir} failed ({code}): {err}"));
        }
        let n = self.removed(&format!("gc {dir}"), &before, &want)?;
        let outside = j["data"]["totals"]["referenced_from_outside_files"].as_u64().unwrap_or(0);
        Ok(format!("gc {} removed {n}, kept {outside} referenced from outside", if dir.is_empty() { "." } else { dir }))
    }

    /// `delete SNAPSHOT`: refused without `--force` when `needs_force`; then it must remove
    /// exactly the snapshot's files that no other remaining snapshot references, and its
    /// directory's other files.
    fn delete(&mut self, i: usize, also: &[&str], needs_force: bool) -> std::result::Result<String, String> {
        let rel = self.snaps[i].rel.clone();
        let before = files(&self.dir)?;
        let mut args = vec!["delete".to_owned(), self.dir.join(&rel).to_string_lossy().into_owned()];
        for a in also {
            args.extend(["--also".to_owned(), self.dir.join(a).to_string_lossy().into_owned()]);
        }
        let mut refused = String::new();
        if needs_force {
            let (code, _, err) = self.run(&args)?;
            if code != 2 {
                return Err(format!("delete {rel} without --force: exit {code}, expected a refusal (2): the last restorable snapshot of its job"));
            }
            if files(&self.dir)? != before {
                return Err(format!("delete {rel} was refused but removed files"));
            }
            if !err.contains("--force") {
                return Err(format!("delete {rel} refused without saying why: {err}"));
            }
            refused = " (refused without --force first)".into();
            args.push("--force".into());
        }
        self.alive.retain(|&a| a != i);
        let referenced = self.referenced();
        let want: BTreeSet<String> = self.snaps[i]
            .resolvable
            .iter()
            .cloned()
            .chain(before.iter().filter(|f| f.starts_with(&format!("{rel}/"))).cloned())
            .filter(|f| !referenced.contains(f))
            .collect();
        let (code, j, err) = self.run(&args)?;
        // Exit 1: deleted, but referenced files were missing already (a FLINK-39964 checkpoint).
        let missing = j["data"]["missing"].as_array().map_or(0, Vec::len);
        if !(code == 0 || code == 1 && missing > 0) || j["data"]["deleted"] != J::Bool(true) {
            return Err(format!("delete {rel} failed ({code}): {err}"));
        }
        let n = self.removed(&format!("delete {rel}"), &before, &want)?;
        let kept = self.snaps[i].files.iter().filter(|f| referenced.contains(*f)).count();
        Ok(format!("delete {rel}{refused} removed {n}, kept {kept} another snapshot references"))
    }
}

/// The checks of one restore case (`idx`: its fixtures). Returns the copy placed where Flink
/// wrote the case, for the restores of the restored job's checkpoints.
pub(super) fn check_case(bin: &Path, fixtures: &[Fixture], idx: &[usize], work: &Path) -> CaseChecks {
    let first = &fixtures[idx[0]];
    let name = first.case.clone();
    let mut lines = Vec::new();
    let case: J = match read_json(&first.case_dir.join("case.json")) {
        Ok(j) => j,
        Err(e) => return (None, vec![(format!("{name}~cross-job"), Err(e))]),
    };
    let Some(generated) = case["generated_case_dir"].as_str().map(str::to_owned) else {
        return (None, vec![(format!("{name}~cross-job"), Err("case.json has no generated_case_dir".into()))]);
    };
    let r = &case["restore"];
    let from = r["from"].as_str().unwrap_or_default().to_owned();
    let job = r["job"].as_str().unwrap_or_default().to_owned();
    let savepoint = r["savepoint"].is_object();
    // The snapshots: the case's, plus the savepoint restored from.
    let mut entries: Vec<J> = case["snapshots"].as_array().cloned().unwrap_or_default();
    if savepoint {
        entries.insert(0, r["savepoint"].clone());
    }
    let snaps: std::result::Result<Vec<Snap>, String> = entries
        .iter()
        .map(|e| {
            let rel = e["path"].as_str().unwrap_or_default().to_owned();
            let oracle = read_json(&first.case_dir.join(e["metadata"].as_str().unwrap_or_default()))?;
            let restored_from = savepoint.then_some(from.as_str());
            let (files, resolvable) = oracle_files(&first.case_dir, &generated, &rel, &oracle, restored_from)?;
            Ok(Snap { files, resolvable, rel })
        })
        .collect();
    let snaps = match snaps {
        Ok(s) => s,
        Err(e) => return (None, vec![(format!("{name}~cross-job"), Err(e))]),
    };
    let restored: Vec<usize> = (0..snaps.len()).filter(|&i| snaps[i].rel.starts_with(&format!("{job}/"))).collect();
    let old: Vec<usize> = (0..snaps.len()).filter(|i| !restored.contains(i)).collect();

    let sp_root = Path::new(&from).parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let ck_root = Path::new(&job).parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let old_job = sp_root.clone();

    // Flink's location is the same for every interop run on the machine: held from here on.
    let target = PathBuf::from(&generated);
    let l = match lock(&target) {
        Ok(l) => l,
        Err(e) => return (None, vec![(format!("{name}~cross-job"), Err(e))]),
    };
    // Whatever is there is a leftover of an interrupted run; while nothing is, the absolute
    // paths in the fixture resolve nowhere, and the scratch copy below is read re-based.
    let _ = fs::remove_dir_all(&target);

    // 1. A scratch copy: every snapshot deleted, the restored job's last; by then nothing else
    // references it and all its files go.
    let scratch = work.join("cross-job").join(&name);
    let everything = || -> std::result::Result<String, String> {
        let _ = fs::remove_dir_all(&scratch);
        crate::copy_tree(&first.case_dir, &scratch)?;
        let mut c = Copy { bin, dir: scratch.clone(), snaps: snaps.clone(), alive: (0..snaps.len()).collect() };
        let mut done = Vec::new();
        if savepoint {
            done.push(c.delete(old[0], &[&ck_root], true)?);
            for &i in &restored {
                done.push(c.delete(i, &[&sp_root], true)?);
            }
            // The savepoint's files the checkpoint named stayed in a savepoint directory without
            // _metadata: now nothing references them, gc takes them (there is no snapshot left
            // at all, which gc refuses unless told).
            done.push(c.gc_with(&sp_root, &[&ck_root], &["--allow-no-snapshots"])?);
        } else {
            for (n, &i) in old.iter().enumerate() {
                done.push(c.delete(i, &[], n + 1 == old.len())?);
            }
            for (n, &i) in restored.iter().enumerate() {
                done.push(c.delete(i, &[], n + 1 == restored.len())?);
            }
        }
        let left: Vec<String> = files(&scratch)?.into_iter().filter(|f| f.contains('/')).collect();
        if !left.is_empty() {
            return Err(format!("after deleting every snapshot, files of Flink's layout are left: {:?}", &left[..left.len().min(5)]));
        }
        Ok(format!("{}; nothing left", done.join("; ")))
    };
    lines.push((format!("{name}~delete-every-snapshot"), everything()));
    let _ = fs::remove_dir_all(&scratch);

    // 2. At Flink's location: gc and delete, then the restored job's checkpoints stay complete.
    let place = || -> std::result::Result<Option<PathBuf>, String> {
        let parent = target.parent().ok_or("case directory without a parent")?;
        let created = parent.ancestors().take_while(|d| !d.exists()).last().map(Path::to_path_buf);
        fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
        crate::copy_tree(&first.case_dir, &target)?;
        Ok(created)
    };
    let placed = match place() {
        Ok(created) => Placed { dir: target.clone(), created, _lock: l },
        Err(e) => {
            lines.push((format!("{name}~cross-job"), Err(e)));
            return (None, lines);
        }
    };
    let mut copy = Copy { bin, dir: target.clone(), snaps, alive: Vec::new() };
    copy.alive = (0..copy.snaps.len()).collect();
    let steps = |c: &mut Copy| -> std::result::Result<String, String> {
        let mut done = Vec::new();
        if savepoint {
            // savepoints/ and checkpoints/ are two directories: the savepoint's root does not
            // hold the restored job, which --also names.
            done.push(c.gc(&sp_root, &[&ck_root])?);
            done.push(c.gc(&ck_root, &[])?);
            done.push(c.delete(old[0], &[&ck_root], true)?);
            done.push(c.gc(&sp_root, &[&ck_root])?);
            done.push(c.gc(&job, &[])?);
        } else {
            done.push(c.gc(&old_job, &[])?);
            done.push(c.gc("", &[])?);
            // The older checkpoint of the old job, then the one restored from: by then the last
            // restorable snapshot of its job.
            for (n, &i) in old.iter().enumerate() {
                done.push(c.delete(i, &[], n + 1 == old.len())?);
            }
            done.push(c.gc(&old_job, &[])?);
            done.push(c.gc("", &[])?);
        }
        Ok(done.join("; "))
    };
    lines.push((format!("{name}~gc-and-delete-at-flink-location"), steps(&mut copy)));
    // FLINK-39964: the restored job's checkpoint names the savepoint's files beside its own
    // `_metadata`. Copied there from the savepoint directory (where gc and delete had to keep
    // them), it restores.
    if savepoint {
        let repair = || -> std::result::Result<String, String> {
            let mut n = 0;
            for &i in &restored {
                let snap = &copy.snaps[i];
                for f in snap.files.iter().filter(|f| f.starts_with(&format!("{from}/"))) {
                    let name = Path::new(f).file_name().ok_or("no file name")?;
                    fs::copy(target.join(f), target.join(&snap.rel).join(name)).map_err(|e| format!("copy {f} beside {}: {e}", snap.rel))?;
                    n += 1;
                }
            }
            Ok(format!("copied the {n} savepoint files the restored checkpoint names beside its _metadata (FLINK-39964)"))
        };
        lines.push((format!("{name}~repair-flink-39964"), repair()));
    }
    (Some(placed), lines)
}
