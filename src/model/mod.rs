//! The backend-independent model: identifiers Flink uses for operators and key groups.
//! (Keyed-state entries and state descriptors join here as the readers grow.)

mod ids;
pub mod value;

pub use ids::{KeyGroupRange, OperatorId};
