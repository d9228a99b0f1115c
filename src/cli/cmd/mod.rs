//! One module per subcommand, plus `operators`: the `--operator` / `--uid` lookup that `dump`
//! and `export` share.

pub mod compat;
pub mod diff;
pub mod convert;
pub mod delete;
pub mod dump;
pub mod edit;
pub mod gc;
pub mod export;
pub mod inspect;
pub mod latest;
pub mod offsets;
mod operators;
pub mod refs;
pub mod relocate;
pub mod stats;
pub mod verify;
