//! The `flinksnap` command: parse, dispatch, map errors to exit codes. The work is in the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
