//! One module per subcommand.

pub mod diff;
pub mod convert;
pub mod dump;
pub mod gc;
pub mod export;
pub mod inspect;
pub mod latest;
pub mod refs;
pub mod relocate;
pub mod stats;
pub mod verify;
