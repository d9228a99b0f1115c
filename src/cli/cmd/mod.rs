//! One module per subcommand.

pub mod dump;
pub mod export;
pub mod inspect;
