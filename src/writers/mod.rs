//! Writers: the model back into Flink's formats, as a canonical savepoint directory that every
//! state backend of Flink 1.13–2.3 restores (spec: `formats/canonical-savepoint-writer.md`).
//!
//! - [`savepoint`]: [`convert`] — any readable snapshot into a canonical savepoint, optionally for
//!   another max parallelism (the orchestration);
//! - [`edit`](mod@edit): [`edit()`] — the same with operators renamed or dropped, states dropped, keys
//!   forgotten, key groups filtered on the way;
//! - `keys`: keyed entries encoded as the canonical stream's key/value pairs, the written proxy,
//!   and moving keys to their key groups for another max parallelism;
//! - [`relocate`](mod@relocate): a snapshot and every file it references copied into one self-contained,
//!   relocatable directory with a rewritten `_metadata`;
//! - [`metadata`]: `_metadata` in versions 3–7, the mirror of [`crate::metadata`];
//! - [`canonical`]: the canonical key-grouped stream of keyed state (type 7 handles);
//! - `key_group_batcher`: a reading thread's records gathered and encoded key group by key
//!   group (in parts when large), for the writer to append;
//! - [`operator`]: operator list, union and broadcast state files;
//! - [`spill`]: regrouping keyed records beyond memory (sorted runs on disk);
//! - `state_runs`: a large key group whose states come out of order, gathered state by state in
//!   bounded memory;
//! - [`stream`]: state streams inline or in files (Flink's inline threshold), Snappy framing.

pub mod canonical;
pub mod edit;
mod key_group_batcher;
mod keys;
pub mod metadata;
pub mod operator;
pub mod relocate;
pub mod savepoint;
pub mod spill;
mod state_runs;
pub mod stream;
mod target;

pub use edit::{edit, EditOptions, EditReport, ForgetKey, ImportedState, KeyInput};
pub use relocate::{relocate, RelocateOptions, RelocateReport, Relocation};
pub use savepoint::{convert, Compression, ConvertOptions, ConvertReport};
