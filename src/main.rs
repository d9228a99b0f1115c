//! The `flinksnap` command: parse, dispatch, map errors to exit codes. The work is in the library.

mod cli;

// Not glibc's malloc: see the `mimalloc` dependency in Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
