//! The serializers of Flink CEP's operator (`flink-cep`: `CepOperator`, which SQL's
//! `MATCH_RECOGNIZE` runs on): the NFA state, the shared buffer's nodes, edges and event ids,
//! the `Lockable` wrapper and Dewey numbers. Spec: `formats/sql-serializers.md` § "CEP".
//!
//! States of a `CepOperator`: `nfaStateName` (`NFAState`), `elementQueueState`
//! (`Map<Long, List<IN>>`), `sharedBuffer-entries` (`Map<NodeId, Lockable<SharedBufferNode>>`),
//! `sharedBuffer-events` (`Map<EventId, Lockable<IN>>`) and `sharedBuffer-events-count`
//! (`Map<Long, Integer>`).

use super::decode::Fail;
use super::TypeSerializer;
use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind};
use crate::model::value::Value;

const NFA: &str = "org.apache.flink.cep.nfa.";

/// A CEP serializer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CepSerializer {
    /// `NFAStateSerializer`: partial and completed matches, each `i32 n` computation states.
    NfaState {
        /// Whether each computation state carries its previous timestamp (outer snapshot
        /// version 2, Flink 1.16+).
        previous_timestamp: bool,
        /// `[DeweyNumber, NodeId, EventId]` serializers.
        nested: Vec<TypeSerializer>,
    },
    /// `DeweyNumberSerializer`: `i32 n`, `n × i32`.
    DeweyNumber,
    /// `EventIdSerializer`: `i32` id, `i64` timestamp.
    EventId,
    /// `NodeIdSerializer`: `u8` present, then the event id and the page name (`StringValue`).
    NodeId(Box<TypeSerializer>),
    /// `Lockable.LockableTypeSerializer`: `i32` reference count, the element.
    Lockable(Box<TypeSerializer>),
    /// `SharedBufferNodeSerializer`: `i32 n` edges, each a lockable edge (`i32` reference
    /// count, the edge).
    SharedBufferNode(Box<TypeSerializer>),
    /// `SharedBufferEdgeSerializer`: the target node id, the Dewey number.
    SharedBufferEdge(Box<TypeSerializer>, Box<TypeSerializer>),
}

/// Which CEP snapshot a class is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CepFamily {
    NfaState,
    DeweyNumber,
    EventId,
    NodeId,
    Lockable,
    SharedBufferNode,
    SharedBufferEdge,
}

/// The CEP family of a snapshot class, or `None`.
pub(crate) fn family(class: &str) -> Option<CepFamily> {
    use CepFamily as F;
    Some(match class.strip_prefix(NFA)? {
        "NFAStateSerializerSnapshot" => F::NfaState,
        "DeweyNumber$DeweyNumberSerializer$DeweyNumberSerializerSnapshot" => F::DeweyNumber,
        "sharedbuffer.EventId$EventIdSerializer$EventIdSerializerSnapshot" => F::EventId,
        "sharedbuffer.NodeId$NodeIdSerializer$NodeIdSerializerSnapshot" => F::NodeId,
        "sharedbuffer.LockableTypeSerializerSnapshot" => F::Lockable,
        "sharedbuffer.SharedBufferNodeSerializerSnapshotV2" => F::SharedBufferNode,
        "sharedbuffer.SharedBufferEdge$SharedBufferEdgeSerializer$SharedBufferEdgeSerializerSnapshot" => F::SharedBufferEdge,
        _ => return None,
    })
}

impl CepSerializer {
    /// Whether an outer payload precedes the nested snapshots, and how to read it: only the NFA
    /// state's (outer version ≥ 2: `bool supportsPreviousTimestamp`).
    pub(crate) fn from_composite(family: CepFamily, outer_version: i32, outer_flag: bool, mut nested: Vec<TypeSerializer>) -> Result<CepSerializer, String> {
        let want = match family {
            CepFamily::NfaState => 3,
            CepFamily::NodeId | CepFamily::Lockable | CepFamily::SharedBufferNode => 1,
            CepFamily::SharedBufferEdge => 2,
            CepFamily::DeweyNumber | CepFamily::EventId => 0,
        };
        if nested.len() != want {
            return Err(format!("{family:?} needs {want} nested serializers, the snapshot has {}", nested.len()));
        }
        let mut next = || Box::new(nested.remove(0));
        Ok(match family {
            CepFamily::NfaState => CepSerializer::NfaState { previous_timestamp: outer_version >= 2 && outer_flag, nested: std::mem::take(&mut nested) },
            CepFamily::NodeId => CepSerializer::NodeId(next()),
            CepFamily::Lockable => CepSerializer::Lockable(next()),
            CepFamily::SharedBufferNode => CepSerializer::SharedBufferNode(next()),
            CepFamily::SharedBufferEdge => {
                let a = next();
                CepSerializer::SharedBufferEdge(a, next())
            }
            CepFamily::DeweyNumber => CepSerializer::DeweyNumber,
            CepFamily::EventId => CepSerializer::EventId,
        })
    }

    pub(crate) fn nested(&self) -> Vec<&TypeSerializer> {
        match self {
            CepSerializer::NfaState { nested, .. } => nested.iter().collect(),
            CepSerializer::NodeId(s) | CepSerializer::Lockable(s) | CepSerializer::SharedBufferNode(s) => vec![s],
            CepSerializer::SharedBufferEdge(a, b) => vec![a, b],
            _ => Vec::new(),
        }
    }

    pub(crate) fn fixed_length(&self) -> Option<usize> {
        match self {
            CepSerializer::EventId => Some(12),
            _ => None,
        }
    }

    pub(crate) fn min_len(&self) -> usize {
        match self {
            CepSerializer::NfaState { .. } => 8,
            CepSerializer::DeweyNumber | CepSerializer::Lockable(_) | CepSerializer::SharedBufferNode(_) => 4,
            CepSerializer::EventId => 12,
            CepSerializer::NodeId(_) => 1,
            CepSerializer::SharedBufferEdge(a, b) => a.min_len().saturating_add(b.min_len()),
        }
    }

    pub(crate) fn decode(&self, c: &mut Cursor<'_>, depth: usize, tail: bool) -> Result<Value, Fail> {
        let d = depth + 1;
        let s = |fields: Vec<(&str, Value)>| Value::Struct { fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect() };
        Ok(match self {
            CepSerializer::DeweyNumber => {
                let n = c.count("dewey number length", 4)?;
                let mut parts = Vec::with_capacity(n);
                for _ in 0..n {
                    parts.push(c.i32("dewey number digit")?.to_string());
                }
                Value::String(parts.join("."))
            }
            CepSerializer::EventId => s(vec![("id", Value::Int(i64::from(c.i32("event id")?))), ("timestamp", Value::Int(c.i64("event timestamp")?))]),
            CepSerializer::NodeId(event) => match c.u8("node id presence")? {
                0 => Value::Null,
                1 => {
                    let e = event.decode_at(c, d, false)?;
                    let page = fstr(c)?;
                    s(vec![("eventId", e), ("pageName", page)])
                }
                b => {
                    let at = c.position() - 1;
                    return Err(Fail::Corrupt(c.error_at(DecodeErrorKind::Invalid(format!("node id presence byte {b}")), at)));
                }
            },
            CepSerializer::Lockable(inner) => {
                let refs = c.i32("lockable reference count")?;
                s(vec![("refCounter", Value::Int(i64::from(refs))), ("element", inner.decode_at(c, d, tail)?)])
            }
            CepSerializer::SharedBufferNode(edge) => {
                let n = c.count("shared buffer node edges", 4)?;
                let mut edges = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let refs = c.i32("edge reference count")?;
                    edges.push(s(vec![("refCounter", Value::Int(i64::from(refs))), ("element", edge.decode_at(c, d, false)?)]));
                }
                s(vec![("edges", Value::List(edges))])
            }
            CepSerializer::SharedBufferEdge(node, dewey) => {
                s(vec![("target", node.decode_at(c, d, false)?), ("version", dewey.decode_at(c, d, tail)?)])
            }
            CepSerializer::NfaState { previous_timestamp, nested } => {
                let (dewey, node, event) = (&nested[0], &nested[1], &nested[2]);
                let mut lists = Vec::new();
                for what in ["partialMatches", "completedMatches"] {
                    let n = c.count("computation states", 14)?;
                    let mut states = Vec::with_capacity(n.min(1024));
                    for _ in 0..n {
                        let name = fstr(c)?;
                        let prev = node.decode_at(c, d, false)?;
                        let version = dewey.decode_at(c, d, false)?;
                        let start = c.i64("computation state start timestamp")?;
                        let mut f = vec![("currentStateName", name), ("previousBufferEntry", prev), ("version", version), ("startTimestamp", Value::Int(start))];
                        if *previous_timestamp {
                            f.push(("previousTimestamp", Value::Int(c.i64("computation state previous timestamp")?)));
                        }
                        let start_event = match c.u8("start event presence")? {
                            1 => event.decode_at(c, d, false)?,
                            _ => Value::Null,
                        };
                        f.push(("startEventId", start_event));
                        states.push(s(f));
                    }
                    lists.push((what, Value::List(states)));
                }
                s(lists)
            }
        })
    }
}

/// `StringValue.writeString` (the `StringSerializer` encoding), `null` allowed.
fn fstr(c: &mut Cursor<'_>) -> Result<Value, Fail> {
    Ok(super::strings::read_fstr(c, "string")?.map_or(Value::Null, Value::String))
}

/// Reads the payload of a CEP snapshot.
pub(crate) fn read(c: &mut Cursor<'_>, class: String, version: i32, family: CepFamily, depth: usize) -> Result<TypeSerializer, DecodeError> {
    use super::table::snapshot_helpers as h;
    let at = c.position();
    let kind = match family {
        CepFamily::DeweyNumber | CepFamily::EventId => {
            h::simple(c, &class, version, at)?;
            CepSerializer::from_composite(family, 0, false, Vec::new())
        }
        _ => {
            let outer = h::composite_header(c, version)?;
            let flag = family == CepFamily::NfaState && outer >= 2 && c.bool("NFA state previous-timestamp flag")?;
            let short = class.rsplit('.').next().unwrap_or(&class).to_owned();
            let nested = h::nested(c, depth, None, &short)?;
            CepSerializer::from_composite(family, outer, flag, nested)
        }
    }
    .map_err(|m| c.error_at(DecodeErrorKind::Invalid(m), at))?;
    Ok(TypeSerializer::new(class, version, super::SerializerKind::Cep(Box::new(kind))))
}
