//! Operator states and their subtask states (`MetadataV2V3SerializerBase`, `MetadataV3Serializer`,
//! `MetadataV5Serializer`, `MetadataV7Serializer`).

use serde::Serialize;

use super::handles::{
    read_channel_handle, read_keyed_handle, read_operator_handle, read_stream_handle, ChannelStateHandle,
    KeyedStateHandle, OperatorStateHandle, StreamStateHandle,
};
use crate::bytes::Cursor;
use crate::error::{DecodeError, DecodeErrorKind, ResultExt};
use crate::model::OperatorId;

type R<T> = Result<T, DecodeError>;

/// The state of one operator over all its subtasks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorState {
    /// The operator id.
    pub operator_id: OperatorId,
    /// Operator name (metadata V5+; `None` when absent).
    pub name: Option<String>,
    /// Operator uid (metadata V5+; `None` when absent).
    pub uid: Option<String>,
    /// Parallelism when the snapshot was taken.
    pub parallelism: u32,
    /// Max parallelism (number of key groups).
    pub max_parallelism: u32,
    /// Operator-coordinator state (e.g. a FLIP-27 source enumerator).
    pub coordinator_state: Option<StreamStateHandle>,
    /// True when every subtask had finished (1.14+ marker); then `subtasks` is empty.
    pub fully_finished: bool,
    /// Subtask states, in file order.
    pub subtasks: Vec<SubtaskState>,
}

/// One subtask entry of an operator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubtaskState {
    /// Subtask index.
    pub index: u32,
    /// True for a finished subtask (no state follows).
    pub finished: bool,
    /// The state; `None` for finished subtasks.
    pub state: Option<OperatorSubtaskState>,
}

/// The handles of one subtask.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct OperatorSubtaskState {
    /// Managed operator state.
    pub managed_operator_state: Option<OperatorStateHandle>,
    /// Raw operator state.
    pub raw_operator_state: Option<OperatorStateHandle>,
    /// Managed keyed state.
    pub managed_keyed_state: Option<KeyedStateHandle>,
    /// Raw keyed state (e.g. legacy heap timers).
    pub raw_keyed_state: Option<KeyedStateHandle>,
    /// In-flight input data (unaligned checkpoints).
    pub input_channel_state: Vec<ChannelStateHandle>,
    /// In-flight output data (unaligned checkpoints).
    pub result_subpartition_state: Vec<ChannelStateHandle>,
    /// Checkpoint this subtask state refers to (metadata V7).
    pub ref_checkpoint_id: Option<u64>,
}

impl OperatorState {
    /// How messages name the operator: its id, and its uid when the metadata has one
    /// (`0123… (uid orders)`).
    pub fn label(&self) -> String {
        match self.uid.as_deref().filter(|u| !u.is_empty()) {
            Some(u) => format!("{} (uid {u})", self.operator_id),
            None => self.operator_id.to_string(),
        }
    }
}

impl OperatorSubtaskState {
    /// Whether the subtask holds no state at all.
    pub fn is_empty(&self) -> bool {
        self.managed_operator_state.is_none()
            && self.raw_operator_state.is_none()
            && self.managed_keyed_state.is_none()
            && self.raw_keyed_state.is_none()
            && self.input_channel_state.is_empty()
            && self.result_subpartition_state.is_empty()
    }
}

/// Reads one `OperatorState` of metadata `version`.
pub(super) fn read_operator_state(c: &mut Cursor<'_>, version: i32) -> R<OperatorState> {
    let (name, uid) = if version >= 5 {
        let name = c.utf("operator name")?;
        let uid = c.utf("operator uid")?;
        (Some(name).filter(|s| !s.is_empty()), Some(uid).filter(|s| !s.is_empty()))
    } else {
        (None, None)
    };
    let lower = c.i64("operator id")?;
    let upper = c.i64("operator id")?;
    let operator_id = OperatorId::from_parts(lower, upper);
    let parallelism = c.non_negative_i32("parallelism")?;
    let max_parallelism = c.non_negative_i32("max parallelism")?;
    read_operator_body(c, version, operator_id, name, uid, parallelism, max_parallelism)
        .context_with(|| format!("operator {operator_id}"))
}

fn read_operator_body(
    c: &mut Cursor<'_>,
    version: i32,
    operator_id: OperatorId,
    name: Option<String>,
    uid: Option<String>,
    parallelism: u32,
    max_parallelism: u32,
) -> R<OperatorState> {
    let coordinator_state = if version >= 3 {
        let at = c.position();
        let h = read_stream_handle(c).context_with(|| "coordinator state".into())?;
        if let Some(h) = &h {
            if !matches!(h, StreamStateHandle::ByteStream { .. }) {
                return Err(c.error_at(
                    DecodeErrorKind::Invalid(format!("coordinator state must be inline, found {}", h.class_name())),
                    at,
                ));
            }
        }
        h
    } else {
        // V2: an unused "chain length" field.
        c.i32("chain length")?;
        None
    };
    let count_at = c.position();
    let count = c.i32("number of subtask states")?;
    let mut op = OperatorState {
        operator_id,
        name,
        uid,
        parallelism,
        max_parallelism,
        coordinator_state,
        fully_finished: false,
        subtasks: Vec::new(),
    };
    if count == -1 && version >= 3 {
        op.fully_finished = true;
        return Ok(op);
    }
    if count < 0 {
        return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "number of subtask states", value: count.into() }, count_at));
    }
    // Each subtask entry is at least its 4-byte index.
    c.check_fits("subtask states", count as usize, 4, count_at)?;
    op.subtasks.reserve(count as usize);
    for _ in 0..count {
        let idx_at = c.position();
        let stored = c.i32("subtask index")?;
        if stored < 0 {
            if version < 3 {
                return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "subtask index", value: stored.into() }, idx_at));
            }
            // A finished subtask is stored as -index-1 with nothing following.
            let index = (-(stored as i64) - 1) as u32;
            op.subtasks.push(SubtaskState { index, finished: true, state: None });
            continue;
        }
        let index = stored as u32;
        let state = read_subtask_state(c, version).context_with(|| format!("subtask {index}"))?;
        op.subtasks.push(SubtaskState { index, finished: false, state: Some(state) });
    }
    Ok(op)
}

fn flag(c: &mut Cursor<'_>, what: &'static str) -> R<bool> {
    let at = c.position();
    match c.i32(what)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(c.error_at(DecodeErrorKind::InvalidValue { what, value: v.into() }, at)),
    }
}

fn read_subtask_state(c: &mut Cursor<'_>, version: i32) -> R<OperatorSubtaskState> {
    if version == 2 {
        c.i64("duration")?;
        let at = c.position();
        let legacy = c.i32("number of legacy states")?;
        if legacy != 0 {
            return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "number of legacy states", value: legacy.into() }, at));
        }
    }
    let mut s = OperatorSubtaskState::default();
    if flag(c, "has managed operator state")? {
        s.managed_operator_state = read_operator_handle(c).context_with(|| "managed operator state".into())?;
    }
    if flag(c, "has raw operator state")? {
        s.raw_operator_state = read_operator_handle(c).context_with(|| "raw operator state".into())?;
    }
    s.managed_keyed_state = read_keyed_handle(c).context_with(|| "managed keyed state".into())?;
    s.raw_keyed_state = read_keyed_handle(c).context_with(|| "raw keyed state".into())?;
    if version >= 3 {
        let typed = version >= 6;
        // A channel handle is at least a subtask index, two ints and a size.
        let n = c.count("input channel state handles", 4)?;
        for i in 0..n {
            let h = read_channel_handle(c, typed, true).context_with(|| format!("input channel state [{i}]"))?;
            s.input_channel_state.push(h);
        }
        let n = c.count("result subpartition state handles", 4)?;
        for i in 0..n {
            let h = read_channel_handle(c, typed, false).context_with(|| format!("result subpartition state [{i}]"))?;
            s.result_subpartition_state.push(h);
        }
    }
    if version >= 7 {
        let at = c.position();
        s.ref_checkpoint_id = match c.u8("has reference checkpoint")? {
            0 => None,
            1 => Some(c.non_negative_i64("reference checkpoint id")?),
            v => return Err(c.error_at(DecodeErrorKind::InvalidValue { what: "has reference checkpoint", value: v.into() }, at)),
        };
    }
    Ok(s)
}
