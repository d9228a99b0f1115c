//! The `flinksnap` command: parse, dispatch, map errors to exit codes. The work is in the library.

mod cli;

use std::process::ExitCode;

// Why jemalloc: see its entry in Cargo.toml.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    cli::main()
}
