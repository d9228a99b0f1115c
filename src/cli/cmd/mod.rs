//! One module per subcommand.

pub mod dump;
pub mod inspect;
pub mod latest;
pub mod refs;
pub mod verify;
