//! A job without uids (issue 19): the canonical savepoint real Flink wrote for the fixture job
//! built without any uid (`testdata/no-uids/flink-V/heap-savepoint-canonical-nouids`, 1.20.5 and
//! 2.3.0), whose operator ids Flink generated from the stream graph. `inspect` lists those ids,
//! `dump` reads what the job wrote under them, and `edit --rename-operator GENERATED=UID` puts
//! every stateful operator under the id Flink derives from its uid in the job with uids.
//! `cargo xtask interop` restores the renamed savepoint into that job (`xtask/src/interop/edit.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use flinksnap::model::OperatorId;
use serde_json::Value as J;

use crate::dump::normalise;
use crate::util::{flinksnap_ok, read_fixture_text, root};

const VERSIONS: &[&str] = &["1.20.5", "2.3.0"];

/// One version's fixture of the job without uids.
struct NoUids {
    version: &'static str,
    case_dir: PathBuf,
    case: J,
}

impl NoUids {
    /// Repository-relative path of the savepoint.
    fn path(&self) -> String {
        let rel = self.case_dir.strip_prefix(root()).unwrap().join(self.case["snapshots"][0]["path"].as_str().unwrap());
        rel.to_string_lossy().into_owned()
    }

    /// uid (in the job with uids) -> the id Flink generated without it.
    fn generated(&self) -> BTreeMap<String, String> {
        self.case["uids"].as_object().unwrap().iter().map(|(u, id)| (u.clone(), id.as_str().unwrap().to_owned())).collect()
    }

    /// What the job wrote, as rows naming the operators by uid and by their generated id.
    fn expected(&self) -> String {
        read_fixture_text(&self.case_dir.join(self.case["snapshots"][0]["expected"].as_str().unwrap())).unwrap()
    }

    /// The uids of the operators that hold state (those of the expected rows).
    fn stateful(&self) -> BTreeSet<String> {
        self.expected().lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str::<J>(l).unwrap()["operator_uid"].as_str().unwrap().to_owned()).collect()
    }

    /// The ids the job *with* uids has, as real Flink derived them when it wrote the version's
    /// `heap-savepoint-canonical` (checked there against Flink's JobGraph).
    fn flink_uid_ids(&self) -> BTreeMap<String, String> {
        let p = root().join(format!("testdata/flink-{}/heap-savepoint-canonical/case.json", self.version));
        let c: J = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        c["uids"].as_object().unwrap().iter().map(|(u, id)| (u.clone(), id.as_str().unwrap().to_owned())).collect()
    }
}

fn fixtures() -> Vec<NoUids> {
    VERSIONS
        .iter()
        .map(|v| {
            let case_dir = root().join(format!("testdata/no-uids/flink-{v}/heap-savepoint-canonical-nouids"));
            let case: J = serde_json::from_slice(&std::fs::read(case_dir.join("case.json")).unwrap_or_else(|e| panic!("{}: {e}", case_dir.display()))).unwrap();
            assert_eq!(case["no_uids"], true, "{}", case_dir.display());
            assert_eq!(case["flink_version"], *v);
            NoUids { version: v, case_dir, case }
        })
        .collect()
}

fn inspect(path: &str, uids: &[String]) -> J {
    let mut args = vec!["inspect", path, "--format", "json"];
    for u in uids {
        args.extend(["--uid", u]);
    }
    let doc: J = serde_json::from_str(&flinksnap_ok(&args)).unwrap();
    doc["data"].clone()
}

fn has_state(op: &J) -> bool {
    ["keyed_state", "operator_state"].iter().any(|k| op[k].as_array().is_some_and(|a| !a.is_empty()))
}

#[test]
fn inspect_lists_the_ids_flink_generated_for_the_job_without_uids() {
    for fx in fixtures() {
        let generated = fx.generated();
        let stateful = fx.stateful();
        assert_eq!(stateful, ["broadcast", "keyed-long", "keyed-string", "op-state", "window"].map(String::from).into(), "{}", fx.version);
        // Even given every uid of the job with uids, no operator is found by one: the ids are
        // not derived from uids.
        let uids: Vec<String> = generated.keys().cloned().collect();
        let d = inspect(&fx.path(), &uids);
        let ops = d["operators"].as_array().unwrap();
        let listed: BTreeSet<&str> = ops.iter().map(|o| o["operator_id"].as_str().unwrap()).collect();
        let recorded: BTreeSet<&str> = generated.values().map(String::as_str).collect();
        assert_eq!(listed, recorded, "{}: inspect lists the ids Flink generated", fx.version);
        let flink = fx.flink_uid_ids();
        for op in ops {
            let id = op["operator_id"].as_str().unwrap();
            assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
            assert!(op["uid"].as_str().is_none_or(str::is_empty), "{}: {id} has uid {}", fx.version, op["uid"]);
            let uid = generated.iter().find(|(_, g)| g.as_str() == id).unwrap().0;
            assert_ne!(id, flink[uid], "{}: {uid}'s generated id is its uid's", fx.version);
            assert_eq!(has_state(op), stateful.contains(uid), "{}: {uid} ({id}) state", fx.version);
        }
    }
}

#[test]
fn dump_reads_what_the_job_wrote_under_the_generated_ids() {
    for fx in fixtures() {
        let out = flinksnap_ok(&["dump", &fx.path()]);
        // Nothing names a uid: rows are the job's, under the generated ids, without uids.
        let want: String = fx
            .expected()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut j: J = serde_json::from_str(l).unwrap();
                j["operator_uid"] = J::Null;
                j.to_string() + "\n"
            })
            .collect();
        let (ours, ttl) = normalise(&out);
        let (theirs, theirs_ttl) = normalise(&want);
        assert_eq!(ours, theirs, "{}", fx.version);
        assert_eq!(ttl.len(), theirs_ttl.len());
        assert!(!ttl.is_empty(), "the job keeps TTL state");
        let w = &fx.case["ttl_window_ms"];
        assert!(ttl.iter().all(|t| (w[0].as_i64().unwrap()..=w[1].as_i64().unwrap()).contains(t)), "{}: {ttl:?}", fx.version);
    }
}

#[test]
fn renaming_the_generated_ids_to_uids_gives_the_ids_of_the_job_with_uids() {
    let tmp = tempfile::tempdir().unwrap();
    for fx in fixtures() {
        let generated = fx.generated();
        let flink = fx.flink_uid_ids();
        let stateful: Vec<String> = fx.stateful().into_iter().collect();
        let dst = tmp.path().join(fx.version);
        let mut args = vec!["edit".to_owned(), fx.path(), dst.to_str().unwrap().to_owned(), "--format".into(), "json".into()];
        for uid in &stateful {
            args.extend(["--rename-operator".to_owned(), format!("{}={uid}", generated[uid])]);
        }
        let report: J = serde_json::from_str(&flinksnap_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())).unwrap();
        let renamed = report["data"]["renamed"].as_array().unwrap();
        assert_eq!(renamed.len(), stateful.len(), "{}: {renamed:?}", fx.version);
        for r in renamed {
            let uid = r["to_uid"].as_str().unwrap_or_else(|| panic!("{r}"));
            assert_eq!(r["from_id"], generated[uid].as_str(), "{}: {r}", fx.version);
            // The id Flink gives the operator of that uid: murmur3_128 of the uid, as real Flink
            // derived it for the job with uids.
            assert_eq!(r["to_id"], flink[uid].as_str(), "{}: {r}", fx.version);
            assert_eq!(r["to_id"], OperatorId::from_uid(uid).to_hex());
        }
        // Read back with the uids: every row the job wrote, under its uid and the uid's id.
        let mut dump = vec!["dump".to_owned(), dst.to_str().unwrap().to_owned()];
        for uid in &stateful {
            dump.extend(["--uid".to_owned(), uid.clone()]);
        }
        let out = flinksnap_ok(&dump.iter().map(String::as_str).collect::<Vec<_>>());
        let want: String = fx
            .expected()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut j: J = serde_json::from_str(l).unwrap();
                j["operator_id"] = J::from(flink[j["operator_uid"].as_str().unwrap()].clone());
                j.to_string() + "\n"
            })
            .collect();
        let (ours, _) = normalise(&out);
        let (theirs, _) = normalise(&want);
        assert_eq!(ours, theirs, "{}", fx.version);
        // inspect of the edited savepoint: the stateful operators under their uids' ids.
        let d = inspect(dst.to_str().unwrap(), &stateful);
        for uid in &stateful {
            let op = d["operators"].as_array().unwrap().iter().find(|o| o["operator_id"] == flink[uid].as_str()).unwrap_or_else(|| panic!("{}: no {uid}", fx.version));
            assert_eq!(op["uid"], uid.as_str());
            assert!(has_state(op), "{}: {uid}", fx.version);
            assert!(d["operators"].as_array().unwrap().iter().all(|o| o["operator_id"] != generated[uid].as_str()), "{}: {uid}'s generated id is left", fx.version);
        }
    }
}
