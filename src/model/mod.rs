//! The backend-independent model: identifiers Flink uses for operators and key groups, and the
//! [`Entry`] every reader produces and every writer consumes.

pub mod columns;
mod entry;
mod ids;
pub mod numbers;
pub mod value;

pub use entry::{Entry, Origin, RawEntry, RawParts, StateKind, SubtaskRef, ValueParts};
pub use ids::{KeyGroupRange, OperatorId};
