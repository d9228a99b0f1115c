//! Command-line interface: one module per subcommand under `cmd/`, shared output helpers in
//! `output`. Exit codes: 0 success, 1 the command ran and found problems, 2 usage, I/O or
//! format error.

mod cmd;
mod output;

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use clap::{Parser, Subcommand};
use flinksnap::storage::{Storage, StorageOptions, Storages};

/// Open Apache Flink checkpoints and savepoints without a JVM.
#[derive(Debug, Parser)]
#[command(
    name = "flinksnap",
    version,
    about,
    after_help = STORAGE_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// An object store option, KEY=VALUE (repeatable; for every store, over the config file):
    /// endpoint, region, allow_http, access_key_id, max_retries, retry_timeout, ...
    #[arg(long = "storage-option", value_name = "KEY=VALUE", global = true)]
    storage_options: Vec<String>,
    /// Object store options per URL prefix (default: $FLINKSNAP_STORAGE_CONFIG, else
    /// ~/.config/flinksnap/storage.conf when it exists).
    #[arg(long = "storage-config", value_name = "FILE", global = true)]
    storage_config: Option<std::path::PathBuf>,
}

const STORAGE_HELP: &str = "\
EXIT STATUS:
  0  success
  1  the command ran and found problems
  2  usage error, unreadable or corrupt input, a storage request that failed

WHERE SNAPSHOTS MAY BE:
  local paths, and URLs as Flink writes them: s3:// s3a:// s3n:// s3p:// (S3), gs:// (GCS),
  abfs:// abfss:// wasb:// wasbs:// az:// (Azure Blob / ADLS Gen2), oss:// cos:// obs://
  (S3-compatible, with an endpoint), hdfs:// viewfs:// (with the `hdfs` build feature).

  Credentials and endpoints are found as each cloud's tools find them: AWS_ACCESS_KEY_ID,
  AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT, AWS_PROFILE (~/.aws),
  instance/container/web identity; AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY,
  AZURE_STORAGE_SAS_TOKEN, AZURE_CLIENT_ID/SECRET/TENANT_ID, managed and workload identity;
  GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_SERVICE_ACCOUNT, application default credentials;
  HADOOP_CONF_DIR for HDFS. --storage-option KEY=VALUE and the config file override them.
  Secrets are never printed.

  flinksnap latest s3://flink/checkpoints/7f3c...
  flinksnap --storage-option endpoint=http://127.0.0.1:9000 --storage-option allow_http=true \\
      dump s3://flink/checkpoints/7f3c.../chk-42

Run `flinksnap <command> --help` for examples.";

static STORAGE: OnceLock<Storages> = OnceLock::new();

/// Where every command reads and writes: local files and object stores.
pub fn storage() -> Arc<dyn Storage> {
    Arc::new(storages())
}

/// The same, as the concrete type (gc and delete remove files through it).
pub fn storages() -> Storages {
    STORAGE.get_or_init(|| Storages::new(StorageOptions::new())).clone()
}

fn init_storage(cli: &Cli) -> anyhow::Result<()> {
    let mut options = StorageOptions::new();
    match &cli.storage_config {
        Some(f) => options.load_file(f)?,
        None => options.load_default_file()?,
    }
    for kv in &cli.storage_options {
        options.push_option(kv)?;
    }
    let _ = STORAGE.set(Storages::new(options));
    Ok(())
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
    Edit(cmd::edit::Args),
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
    if let Err(e) = init_storage(&cli) {
        eprintln!("flinksnap: {e:#}");
        return ExitCode::from(2);
    }
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
        Command::Edit(args) => cmd::edit::run(args, &mut out),
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
