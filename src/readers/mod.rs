//! Readers: turn a snapshot's state files into the backend-independent model.
//!
//! - [`serializers`]: Flink's `TypeSerializerSnapshot`s and the value encodings they describe;
//! - [`meta`]: the serialization proxies opening every state file (states and serializers);
//! - [`stream`]: a stream handle's bytes, inline or from a file, and Snappy framing;
//! - [`keyed`]: key-grouped keyed state (canonical stream, heap checkpoint format);
//! - [`operator`]: operator list, union and broadcast state;
//! - [`changelog`]: keyed state of the changelog backend (materialized state plus logged changes);
//! - [`rocksdb`]: keyed state of RocksDB native snapshots (SST files, cargo feature `rocksdb`);
//! - [`entries`]: every entry of a snapshot, streamed;
//! - [`states`]: which states a snapshot holds, with their serializers, without reading entries.

pub mod changelog;
pub mod connectors;
pub mod entries;
pub mod keyed;
pub mod meta;
pub mod operator;
pub mod rocksdb;
pub mod serializers;
pub mod states;
pub mod stream;
