//! `flinksnap verify`: is a snapshot sound (restorable as far as its bytes go)?

use std::io::Write;

use anyhow::Result;
use flinksnap::manage::verify::{CheckStatus, Finding, Level, VerifyOutcome, VerifyReport};
use flinksnap::verify_on;

use crate::cli::output::{human_bytes, write_json};
use crate::cli::Outcome;

/// Output format of `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyFormat {
    /// Problems and a summary line.
    Text,
    /// One JSON document (formats/cli-json.md).
    Json,
    /// JUnit XML, one test case per check, for CI systems.
    Junit,
}

/// Check that a snapshot is sound. shallow: `_metadata` parses and every referenced file exists
/// with its recorded size. full: also every state handle, key group and entry decodes (opaque
/// values are counted, not failed), keys lie in the key group their hash maps to, and each keyed
/// operator's key-group ranges cover 0..max parallelism exactly once.
#[derive(Debug, clap::Args)]
#[command(after_help = "EXAMPLES:
  flinksnap verify /checkpoints/7f3c.../chk-42
  flinksnap verify savepoint-1a2b3c-4d5e6f7a8b9c --level full
  flinksnap verify chk-42 --level full --format junit > verify.xml
  flinksnap verify chk-42 --level full --threads 1   # one core; the same report as any N

Every problem names the operator, subtask, file and position where they are known: a byte
offset in the file, an offset in a decompressed Snappy stream, or an offset inside a stored
RocksDB key or value. State flinksnap cannot read in this build or yet (RocksDB native state
without the `rocksdb` feature, a serializer it cannot interpret) is reported as
\"not checked (unsupported)\", with the state and the serializer class: the snapshot is then
\"sound (partly undecodable)\", never unsound. An unknown serializer is never a corruption.

EXIT STATUS:
  0  sound, or sound but partly undecodable (without --strict)
  1  problems found (corruption, missing files); with --strict also partly undecodable
  2  could not run (no such path, no _metadata)")]
pub struct Args {
    /// A snapshot directory (holding `_metadata`) or a `_metadata` file.
    pub path: String,
    /// How much to check.
    #[arg(long, value_enum, default_value_t = LevelArg::Shallow)]
    pub level: LevelArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t = VerifyFormat::Text)]
    pub format: VerifyFormat,
    /// An operator uid of the job (repeatable): names operators in snapshots that store no uids
    /// (Flink before 2.0).
    #[arg(long = "uid", value_name = "NAME")]
    pub uids: Vec<String>,
    /// Exit 1 also when some state could not be checked (an unknown serializer, state this build
    /// cannot read): for gates that must see every entry.
    #[arg(long)]
    pub strict: bool,
    /// Threads decoding keyed state with --level full (default: one per CPU): key-group ranges
    /// of every keyed-state handle are read in parallel; the report is the same for any N.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// `--level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LevelArg {
    /// `_metadata` and files.
    Shallow,
    /// Everything down to the entries.
    Full,
}

/// Runs the command.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Outcome> {
    let level = match args.level {
        LevelArg::Shallow => Level::Shallow,
        LevelArg::Full => Level::Full,
    };
    let threads = args.threads.unwrap_or_else(flinksnap::readers::parallel::default_threads).max(1);
    let report = verify_on(crate::cli::storage(), &args.path, level, &args.uids, threads)?;
    match args.format {
        VerifyFormat::Json => write_json(out, "verify", &report)?,
        VerifyFormat::Text => write_text(&report, out)?,
        VerifyFormat::Junit => write_junit(&report, out)?,
    }
    Ok(match report.outcome {
        VerifyOutcome::Sound => Outcome::Ok,
        VerifyOutcome::SoundPartlyUndecodable if !args.strict => Outcome::Ok,
        VerifyOutcome::SoundPartlyUndecodable | VerifyOutcome::Problems => Outcome::Problems,
    })
}

fn status_word(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Passed => "ok",
        CheckStatus::Failed => "FAIL",
        CheckStatus::Warning => "WARN",
        CheckStatus::NotChecked => "NOT CHECKED",
    }
}

/// Where a finding is, in one line: the parts the message does not already say.
fn location(f: &Finding) -> String {
    let mut parts = Vec::new();
    match (&f.operator_uid, &f.operator_id) {
        (Some(u), Some(id)) => parts.push(format!("operator {u} ({id})")),
        (None, Some(id)) => parts.push(format!("operator {id}")),
        _ => {}
    }
    if let Some(s) = f.subtask {
        parts.push(format!("subtask {s}"));
    }
    if let Some(file) = &f.file {
        parts.push(format!("file {file}"));
    }
    match (&f.position, f.offset) {
        (Some(p), _) => parts.push(p.to_string()),
        (None, Some(o)) => parts.push(format!("byte offset {o}")),
        _ => {}
    }
    parts.join(", ")
}

fn write_text(r: &VerifyReport, out: &mut dyn Write) -> std::io::Result<()> {
    for c in r.checks.iter().filter(|c| c.status != CheckStatus::Passed) {
        writeln!(out, "{:<11}  {}: {}", status_word(c.status), c.suite, c.name)?;
        for f in &c.findings {
            writeln!(out, "    {}", f.message)?;
            let at = location(f);
            if !at.is_empty() {
                writeln!(out, "    at {at}")?;
            }
        }
    }
    let t = &r.totals;
    let level = match r.level {
        Level::Shallow => "shallow",
        Level::Full => "full",
    };
    let mut line = format!(
        "{}: {} ({level}): {} checks, {} passed, {} failed",
        r.path,
        match r.outcome {
            VerifyOutcome::Sound => "sound",
            VerifyOutcome::SoundPartlyUndecodable => "sound (partly undecodable)",
            VerifyOutcome::Problems => "NOT SOUND",
        },
        t.checks,
        t.passed,
        t.failed
    );
    if t.warnings > 0 {
        line.push_str(&format!(", {} with warnings", t.warnings));
    }
    if t.not_checked > 0 {
        line.push_str(&format!(", {} not checked", t.not_checked));
    }
    line.push_str(&format!("; {} files ({})", t.files, human_bytes(t.file_bytes)));
    if r.level == Level::Full {
        line.push_str(&format!("; {} key groups, {} entries decoded", t.key_groups, t.entries));
        if t.opaque_values > 0 {
            line.push_str(&format!(" ({} values opaque)", t.opaque_values));
        }
    }
    writeln!(out, "{line}")
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
            // XML 1.0 allows no other control characters, even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => o.push('?'),
            c => o.push(c),
        }
    }
    o
}

/// JUnit XML as Jenkins, GitLab and GitHub reporters read it: one `<testsuite>` per suite
/// (metadata, files, each operator), one `<testcase>` per check; failed checks carry a
/// `<failure>`, not-checked ones `<skipped>`, warnings `<system-out>`.
fn write_junit(r: &VerifyReport, out: &mut dyn Write) -> std::io::Result<()> {
    let mut suites: Vec<&str> = Vec::new();
    for c in &r.checks {
        if !suites.contains(&c.suite.as_str()) {
            suites.push(&c.suite);
        }
    }
    let t = &r.totals;
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="{}" tests="{}" failures="{}" errors="0" skipped="{}">"#,
        xml(&format!("flinksnap verify {}", r.path)),
        t.checks,
        t.failed,
        t.not_checked
    )?;
    for suite in suites {
        let cs: Vec<_> = r.checks.iter().filter(|c| c.suite == suite).collect();
        let failures = cs.iter().filter(|c| c.status == CheckStatus::Failed).count();
        let skipped = cs.iter().filter(|c| c.status == CheckStatus::NotChecked).count();
        writeln!(
            out,
            r#"  <testsuite name="{}" tests="{}" failures="{failures}" errors="0" skipped="{skipped}">"#,
            xml(suite),
            cs.len()
        )?;
        for c in cs {
            let open = format!(r#"    <testcase classname="{}" name="{}""#, xml(suite), xml(&c.name));
            if c.status == CheckStatus::Passed {
                writeln!(out, "{open}/>")?;
                continue;
            }
            writeln!(out, "{open}>")?;
            let text: Vec<String> = c.findings.iter().map(|f| format!("{}\nat {}", f.message, location(f))).collect();
            let first = c.findings.first().map_or(String::new(), |f| f.message.clone());
            match c.status {
                CheckStatus::Failed => {
                    let kind = c.findings.iter().find(|f| f.severity == flinksnap::manage::verify::Severity::Error).map(|f| f.kind);
                    let kind = kind.map(|k| serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default());
                    writeln!(
                        out,
                        r#"      <failure type="{}" message="{}">{}</failure>"#,
                        xml(&kind.unwrap_or_default()),
                        xml(&first),
                        xml(&text.join("\n\n"))
                    )?;
                }
                CheckStatus::NotChecked => writeln!(out, r#"      <skipped message="{}"/>"#, xml(&first))?,
                _ => writeln!(out, "      <system-out>{}</system-out>", xml(&text.join("\n\n")))?,
            }
            writeln!(out, "    </testcase>")?;
        }
        writeln!(out, "  </testsuite>")?;
    }
    writeln!(out, "</testsuites>")
}
