//! Readers: turn a snapshot's state files into the backend-independent model.
//!
//! - [`serializers`]: Flink's `TypeSerializerSnapshot`s and the value encodings they describe;
//! - [`meta`]: the serialization proxies opening every state file (states and serializers);
//! - [`stream`]: a stream handle's bytes, inline or from a file, and Snappy framing;
//! - [`decode`]: value-level decoding every reader shares (spans, TTL, lists, timers);
//! - [`encode`]: its inverse: an entry's values back into the bytes its state stores;
//! - [`source`]: [`KeyedSource`](source::KeyedSource), one way to open a subtask's keyed state
//!   whatever wrote it, and the one dispatch from state-handle kind to reader;
//! - [`keyed`]: key-grouped keyed state (canonical stream, heap checkpoint format);
//! - [`rocksdb`]: keyed state of RocksDB native snapshots (SST files, cargo feature `rocksdb`);
//! - [`changelog`]: keyed state of the changelog backend (materialized state plus logged changes);
//! - [`operator`]: operator list, union and broadcast state;
//! - [`connectors`]: source state in operator and coordinator state (Kafka and file splits, enumerators);
//! - [`entries`]: every entry of a snapshot, streamed;
//! - [`states`]: which states a snapshot holds, with their serializers, without reading entries;
//! - [`raw`]: the decoders from plain bytes, without a snapshot (fuzzing, tools);
//! - [`undecodable`]: what a read could not decode (an unknown serializer costs at most its state).

pub mod changelog;
pub mod columns;
pub mod connectors;
pub mod decode;
pub mod encode;
pub mod entries;
pub mod keyed;
pub mod meta;
pub mod operator;
pub mod parallel;
pub mod raw;
pub mod rocksdb;
pub mod serializers;
pub mod source;
pub mod states;
pub mod stream;
pub mod undecodable;
