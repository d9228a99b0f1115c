//! Readers: turn a snapshot's state files into the backend-independent model.
//!
//! - [`serializers`]: Flink's `TypeSerializerSnapshot`s and the value encodings they describe.

pub mod serializers;
