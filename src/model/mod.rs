//! The backend-independent model: identifiers Flink uses for operators and key groups.
//! (Keyed-state entries and state descriptors join here as the readers grow.)

mod entry;
mod ids;
pub mod value;

pub use entry::{Entry, RawEntry, StateKind};
pub use ids::{KeyGroupRange, OperatorId};
