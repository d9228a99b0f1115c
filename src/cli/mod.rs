//! Command-line interface: one module per subcommand under `cmd/`, shared output helpers in
//! `output`. Exit codes: 0 success, 1 the command ran and found problems, 2 usage, I/O or
//! format error.

mod cmd;
mod output;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Open Apache Flink checkpoints and savepoints without a JVM.
#[derive(Debug, Parser)]
#[command(
    name = "flinksnap",
    version,
    about,
    after_help = "EXIT STATUS:\n  0  success\n  1  the command ran and found problems\n  2  usage error, unreadable or corrupt input\n\nRun `flinksnap <command> --help` for examples."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Inspect(cmd::inspect::Args),
    Dump(cmd::dump::Args),
    Verify(cmd::verify::Args),
    Latest(cmd::latest::Args),
    Refs(cmd::refs::Args),
    Gc(cmd::gc::Args),
    Delete(cmd::delete::Args),
    Relocate(cmd::relocate::Args),
    Stats(cmd::stats::Args),
    Diff(cmd::diff::Args),
    Compat(cmd::compat::Args),
    Convert(cmd::convert::Args),
    Export(cmd::export::Args),
    Offsets(cmd::offsets::Args),
}

/// What a command found, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All good.
    Ok,
    /// Ran, and found problems.
    Problems,
    /// Ran, and could not decide (`compat`): exit 2.
    Undecided,
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = match &cli.command {
        Command::Inspect(args) => cmd::inspect::run(args, &mut out),
        Command::Dump(args) => cmd::dump::run(args, &mut out),
        Command::Verify(args) => cmd::verify::run(args, &mut out),
        Command::Latest(args) => cmd::latest::run(args, &mut out),
        Command::Refs(args) => cmd::refs::run(args, &mut out),
        Command::Gc(args) => cmd::gc::run(args, &mut out),
        Command::Delete(args) => cmd::delete::run(args, &mut out),
        Command::Relocate(args) => cmd::relocate::run(args, &mut out),
        Command::Stats(args) => cmd::stats::run(args, &mut out),
        Command::Diff(args) => cmd::diff::run(args, &mut out),
        Command::Compat(args) => cmd::compat::run(args, &mut out),
        Command::Convert(args) => cmd::convert::run(args, &mut out),
        Command::Export(args) => cmd::export::run(args, &mut out),
        Command::Offsets(args) => cmd::offsets::run(args, &mut out),
    };
    let result = result.and_then(|o| out.flush().map(|_| o).map_err(anyhow::Error::from));
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        Ok(Outcome::Undecided) => ExitCode::from(2),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flinksnap: {}", message(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes in one line, as `{:#}` prints them, leaving out a cause whose text
/// an error before it already says (flinksnap's errors name their file and include what their
/// `source()` says, so that a plain `to_string()` is complete).
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
