//! `flinksnap compat`: will this snapshot restore into that job?

use std::io::Write;
use anyhow::Result;
use flinksnap::{compat_with, describe_job_with, CompatOptions, CompatReport, CompatSeverity as Severity, CompatVerdict as Verdict, FlinkVersion};

use crate::cli::output::write_json;
use crate::cli::Outcome;

/// Output format of `compat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompatFormat {
    /// Findings, worst first, with remedies.
    Text,
    /// One JSON document (`formats/cli-json.md`).
    Json,
    /// JUnit XML: one test case per check, for CI test reports.
    Junit,
}

/// Check whether a snapshot restores into a new version of its job (or a newer Flink), with the
/// rules Flink applies at restore: operators dropped or new, state kinds, key/namespace/value
/// serializer compatibility (POJO, Avro, tuples, rows, SQL row types, collections, TTL, Kryo),
/// max parallelism, operator-state distribution modes.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
  # against a savepoint of the new job version (e.g. from its test run)
  flinksnap compat savepoint-prod --against savepoint-ci-v2
  # against the new SQL job's compiled plan (COMPILE PLAN ... ; EXECUTE PLAN)
  flinksnap compat savepoint-prod --against new-job.plan.json
  # against a description, written once from a snapshot and edited by hand
  flinksnap compat --describe savepoint-ci-v2 > v2.compat.json
  flinksnap compat savepoint-prod --against v2.compat.json --format junit > compat.xml
  # before upgrading Flink 1.x to 2.x
  flinksnap compat savepoint-prod --flink-version 2.x

TARGET is a snapshot directory (or its _metadata), a compiled SQL plan (JSON with \"nodes\"), or a
description file (\"format\": \"flinksnap-compat-target\", formats/compat-target.md). Without
--against, only the --flink-version upgrade check runs.

EXIT STATUS:
  0  compatible: Flink restores it (possibly migrating state)
  1  incompatible: Flink refuses the restore (what and why listed)
  2  could not decide (or an error)")]
pub struct Args {
    /// The snapshot to restore (directory or `_metadata`).
    pub snapshot: String,
    /// The new job version: a snapshot of it, its compiled SQL plan, or a description file.
    #[arg(long, value_name = "TARGET", required_unless_present_any = ["describe", "flink_version"])]
    pub against: Option<String>,
    /// Print the snapshot's description (the TARGET file format) instead of checking.
    #[arg(long, conflicts_with_all = ["against", "flink_version"])]
    pub describe: bool,
    /// The Flink release that will restore (`1.20`, `2.3`, `2.x`). From a 1.x snapshot to 2.x:
    /// also lists every state 2.x cannot restore (Scala API, legacy serializer snapshots) and,
    /// as warnings, what it restores with a caveat (Kryo, legacy sources and sinks).
    #[arg(long, value_name = "VERSION")]
    pub flink_version: Option<FlinkVersion>,
    /// The state backend of the new job (`hashmap`, `rocksdb`, `forst`): decides TTL and map-key
    /// migration where the release leaves it to the backend.
    #[arg(long, value_name = "BACKEND")]
    pub backend: Option<String>,
    /// The restore will pass --allow-non-restored-state: dropped state is a warning.
    #[arg(long)]
    pub allow_non_restored_state: bool,
    /// An operator uid of the job (repeatable), for snapshots that store no uids (before 2.0).
    #[arg(long = "uid", value_name = "NAME")]
    pub uids: Vec<String>,
    /// Also list the checks that passed (text).
    #[arg(long)]
    pub all: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = CompatFormat::Text)]
    pub format: CompatFormat,
}

/// Runs the command.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Outcome> {
    let storage = crate::cli::storage();
    if args.describe {
        let old = describe_job_with(storage, &args.snapshot, &args.uids)?;
        serde_json::to_writer_pretty(&mut *out, &old)?;
        writeln!(out)?;
        return Ok(Outcome::Ok);
    }
    let opts = CompatOptions { allow_non_restored_state: args.allow_non_restored_state, flink_version: args.flink_version, backend: args.backend.clone() };
    let report = compat_with(storage, &args.snapshot, args.against.as_deref(), &args.uids, &opts)?;
    match args.format {
        CompatFormat::Json => write_json(out, "compat", &report)?,
        CompatFormat::Junit => write_junit(&report, out)?,
        CompatFormat::Text => write_text(&report, args.all, out)?,
    }
    Ok(match report.verdict {
        Verdict::Compatible => Outcome::Ok,
        Verdict::Incompatible => Outcome::Problems,
        Verdict::Undecided => Outcome::Undecided,
    })
}

fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Ok => "ok",
        Severity::Info => "info",
        Severity::Warning => "WARNING",
        Severity::Undecided => "UNDECIDED",
        Severity::Incompatible => "INCOMPATIBLE",
    }
}

fn write_text(r: &CompatReport, all: bool, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "snapshot  {}", r.snapshot)?;
    writeln!(out, "target    {} ({})", r.target, serde_json::to_value(r.target_kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())?;
    if let Some(v) = &r.flink_version {
        writeln!(out, "rules of  Flink {v}")?;
    }
    let mut findings: Vec<_> = r.findings.iter().filter(|f| all || f.severity != Severity::Ok).collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    if !findings.is_empty() {
        writeln!(out)?;
    }
    for f in findings {
        let state = f.state.as_deref().map(|s| format!(" state {s:?}")).unwrap_or_default();
        let operator = if f.operator == "-" { String::new() } else { format!(" operator {}", f.operator) };
        writeln!(out, "{:<12} {}{operator}{state}: {}", severity_label(f.severity), f.check.as_str(), f.message)?;
        if let Some(rem) = &f.remedy {
            writeln!(out, "{:<12} fix: {rem}", "")?;
        }
    }
    let c = &r.counts;
    writeln!(out)?;
    writeln!(
        out,
        "{}: {} incompatible, {} undecided, {} warnings, {} infos, {} checks passed",
        match r.verdict {
            Verdict::Compatible => "compatible",
            Verdict::Incompatible => "INCOMPATIBLE",
            Verdict::Undecided => "UNDECIDED",
        },
        c.incompatible,
        c.undecided,
        c.warning,
        c.info,
        c.ok
    )
}

fn xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// One `<testsuite>` of one `<testcase>` per finding: incompatible is a `<failure>`, undecided an
/// `<error>` (the pipeline must look), the rest pass (warnings in `<system-out>`).
fn write_junit(r: &CompatReport, out: &mut dyn Write) -> std::io::Result<()> {
    let c = &r.counts;
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(out, r#"<testsuites name="flinksnap compat" tests="{}" failures="{}" errors="{}">"#, r.findings.len(), c.incompatible, c.undecided)?;
    writeln!(
        out,
        r#"  <testsuite name="{}" tests="{}" failures="{}" errors="{}" skipped="0">"#,
        xml(&format!("compat {} against {}", r.snapshot, r.target)),
        r.findings.len(),
        c.incompatible,
        c.undecided
    )?;
    for f in &r.findings {
        let name = match &f.state {
            Some(s) => format!("{} {} {}", f.check.as_str(), f.operator, s),
            None => format!("{} {}", f.check.as_str(), f.operator),
        };
        let text = match &f.remedy {
            Some(rem) => format!("{}\nfix: {rem}", f.message),
            None => f.message.clone(),
        };
        write!(out, r#"    <testcase classname="{}" name="{}""#, xml(&format!("compat.{}", f.check.as_str())), xml(&name))?;
        match f.severity {
            Severity::Incompatible => {
                writeln!(out, ">")?;
                writeln!(out, r#"      <failure type="incompatible" message="{}">{}</failure>"#, xml(&f.message), xml(&text))?;
                writeln!(out, "    </testcase>")?;
            }
            Severity::Undecided => {
                writeln!(out, ">")?;
                writeln!(out, r#"      <error type="undecided" message="{}">{}</error>"#, xml(&f.message), xml(&text))?;
                writeln!(out, "    </testcase>")?;
            }
            _ => {
                writeln!(out, ">")?;
                writeln!(out, "      <system-out>{}: {}</system-out>", severity_label(f.severity), xml(&text))?;
                writeln!(out, "    </testcase>")?;
            }
        }
    }
    writeln!(out, "  </testsuite>")?;
    writeln!(out, "</testsuites>")
}
