//! `--flink-version 2.x`: the states of a 1.x snapshot that Flink 2.x does not restore, and those
//! it restores with a caveat. Checked against real restores of the 1.20.5 fixtures by Flink
//! 2.3.0, state by state (`cargo xtask compat-interop`, `xtask/src/compat_upgrade.rs`; the
//! table is in `formats/compat-target.md`, "Upgrade").
//!
//! Incompatible (Flink 2.x refuses the restore):
//! - the Scala API's serializers (`org.apache.flink.api.scala.*`: case classes, `Option`,
//!   `Either`, `Try`, collections, `Enumeration`, Unit/Nothing): `flink-scala` was removed in 2.0,
//!   reading the snapshot fails with `ClassNotFoundException` for the serializer snapshot class
//!   (seen for case class/tuple, Option, Either and Unit). One such state fails its whole operator
//!   on either backend: the snapshot classes of every state are read at restore;
//! - legacy serializer snapshots (`TypeSerializerConfigSnapshot` subclasses, `*ConfigSnapshot`):
//!   removed in 2.0 (from Flink's source, not restored for real here);
//! - the serializer snapshots of legacy connectors' state (TwoPhaseCommitSinkFunction,
//!   FlinkKafkaProducer, ContinuousFileReaderOperator): those classes are gone or moved in 2.x
//!   (from Flink's source).
//!
//! Warnings (Flink 2.x restores it, with a caveat):
//! - Kryo-serialized values (`KryoSerializerSnapshot`, also nested): Flink 2.0 replaced Kryo 2.24
//!   with Kryo 5 (FLINK-3154), yet Flink 2.3.0 restored the fixtures' Kryo 2 state — a class by
//!   name through FieldSerializer, a registered class by id, a String, null — on HashMap and
//!   RocksDB, every value equal. Kryo 5 changed some of its serializers' formats, so other types
//!   are not proven: a warning, not a refusal;
//! - state of the legacy `SourceFunction`/`SinkFunction` connectors (FlinkKafkaConsumer's
//!   `topic-partition-offset-states`, FlinkKafkaProducer, StreamingFileSink, the file monitoring
//!   source, FlinkKinesisConsumer, ...): the connectors are gone in 2.x, but Flink refuses
//!   nothing: the 1.x fixture's union state restored into a 2.x operator that registers it. Their
//!   FLIP-27/Sink V2 replacements register other state, so under the same uid the old state is
//!   dropped without an error (the offsets are lost), under a new uid it needs
//!   `--allow-non-restored-state` (the operator checks say so).

use super::describe::{JobDescription, OperatorDesc, StateDesc, TypeDesc};
use super::{Check, Finding, FlinkVersion, Severity};

/// State names of the legacy source/sink functions, with the connector.
const LEGACY_STATE_NAMES: &[(&str, &str)] = &[
    ("topic-partition-offset-states", "FlinkKafkaConsumer (SourceFunction)"),
    ("next-transactional-id-hint", "FlinkKafkaProducer (SinkFunction)"),
    ("next-transactional-id-hint-v2", "FlinkKafkaProducer (SinkFunction)"),
    ("bucket-states", "StreamingFileSink / BucketingSink (SinkFunction)"),
    ("max-part-counter", "StreamingFileSink (SinkFunction)"),
    ("Kinesis-Stream-Shard-State", "FlinkKinesisConsumer (SourceFunction)"),
    ("file-monitoring-state", "ContinuousFileMonitoringFunction (readFile, SourceFunction)"),
    ("from-elements-state", "FromElementsFunction (fromElements/fromCollection, SourceFunction)"),
    ("stateful-sequence-source-state", "StatefulSequenceSource (generateSequence, SourceFunction)"),
    ("message-acknowledging-source-state", "MessageAcknowledgingSourceBase (RabbitMQ, SourceFunction)"),
];

/// Serializer snapshot classes of legacy connectors' state.
const LEGACY_SERIALIZER_CLASSES: &[(&str, &str)] = &[
    ("TwoPhaseCommitSinkFunction", "TwoPhaseCommitSinkFunction (exactly-once SinkFunction)"),
    ("FlinkKafkaProducer", "FlinkKafkaProducer (SinkFunction)"),
    ("ContinuousFileReaderOperator", "ContinuousFileReaderOperator (readFile)"),
    ("TimestampedFileInputSplit", "ContinuousFileReaderOperator (readFile)"),
];

pub(super) fn check(old: &JobDescription, target: FlinkVersion) -> Vec<Finding> {
    let from = old.flink_version.as_deref().and_then(|v| v.parse::<FlinkVersion>().ok());
    if target.major < 2 || from.is_none_or(|f| f.major >= target.major) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for o in &old.operators {
        for s in o.states.iter().flatten() {
            out.extend(state(o, s, target));
        }
    }
    if out.is_empty() {
        out.push(Finding {
            check: Check::Upgrade,
            severity: Severity::Ok,
            operator: "-".into(),
            state: None,
            compatibility: None,
            message: format!("no Scala, legacy-serializer, Kryo or legacy source/sink state: nothing Flink {target} is known to reject or drop"),
            remedy: None,
        });
    }
    out
}

fn state(o: &OperatorDesc, s: &StateDesc, target: FlinkVersion) -> Vec<Finding> {
    let mut out = Vec::new();
    let name = Some(s.name.as_str());
    if let Some((_, connector)) = LEGACY_STATE_NAMES.iter().find(|(n, _)| *n == s.name) {
        out.push(
            Finding::new(
                Check::Upgrade,
                Severity::Warning,
                o,
                name,
                format!("state of {connector}: the connector is gone in Flink {target}; Flink restores this state only into an operator that registers it, and its FLIP-27/Sink V2 replacement registers other state: under the same uid this state is dropped without an error (positions and offsets lost)"),
            )
            .remedy("on 1.x, switch to the new connector (new uid; e.g. KafkaSource starting from committed offsets), take a savepoint, then upgrade; or keep an operator under this uid that reads the state (the class of its elements included) and hands the positions over"),
        );
    }
    let mut kinds: Vec<(&str, String)> = Vec::new();
    for t in [&s.key, &s.namespace, &s.user_key, &s.value].into_iter().flatten() {
        walk(t, &mut kinds, 0);
    }
    kinds.sort();
    kinds.dedup();
    for (what, detail) in kinds {
        let (reason, remedy) = match what {
            "kryo" => (
                format!("Kryo-serialized ({detail}): Flink 2.0 reads Kryo 2 state with Kryo 5; plain classes by field, registered classes, strings and null restore (real restores into 2.3.0), but Kryo 5 changed some serializers' formats: other types are not proven"),
                "restore a savepoint in a {target} test run and read the state before upgrading; to be safe, give the type a Flink serializer (a POJO, Avro, or a registered TypeSerializer) and migrate the state on 1.x (State Processor API), then savepoint and upgrade",
            ),
            "scala" => (
                format!("Scala API serializer ({detail}): flink-scala was removed in Flink 2.0; reading its serializer snapshot fails (ClassNotFoundException), and with it the restore of the whole operator"),
                "migrate the state to Java-API types on 1.x with a State Processor API job (or a Scala serializer library that reads these snapshots), then savepoint and upgrade",
            ),
            "legacy" => (
                format!("legacy serializer snapshot {detail}: removed in Flink 2.0"),
                "restore once on the newest 1.x and take a new savepoint (it rewrites the snapshot with current serializer snapshots), then upgrade",
            ),
            _ => (
                format!("state of {detail}: the legacy source/sink API is gone in Flink {target}"),
                "on 1.x, switch to the new connector (new uid), take a savepoint, then upgrade; or drop this state with --allow-non-restored-state",
            ),
        };
        // Flink 2.x restores Kryo 2 state (compat-interop): a caveat, not a refusal.
        let severity = if what == "kryo" { Severity::Warning } else { Severity::Incompatible };
        out.push(Finding::new(Check::Upgrade, severity, o, name, reason).remedy(remedy.replace("{target}", &target.to_string())));
    }
    out
}

fn walk(t: &TypeDesc, out: &mut Vec<(&'static str, String)>, depth: usize) {
    if depth > 64 {
        return;
    }
    match t {
        TypeDesc::Kryo { class, .. } => out.push(("kryo", class.clone())),
        TypeDesc::Scala { what, class, .. } => out.push(("scala", class.clone().filter(|_| what != "traversable").unwrap_or_else(|| what.clone()))),
        TypeDesc::Either { scala: true, .. } => out.push(("scala", "Either".into())),
        TypeDesc::Simple { name } if name.starts_with("scala_") => out.push(("scala", name.clone())),
        TypeDesc::Other { class } | TypeDesc::Table { class, .. } => {
            if class.starts_with("org.apache.flink.api.scala.") || class.starts_with("org.apache.flink.streaming.api.scala.") {
                out.push(("scala", class.clone()));
            } else if class.ends_with("ConfigSnapshot") {
                out.push(("legacy", class.clone()));
            } else if let Some((_, c)) = LEGACY_SERIALIZER_CLASSES.iter().find(|(k, _)| class.contains(k)) {
                out.push(("source_sink", (*c).to_owned()));
            }
        }
        _ => {}
    }
    for n in t.nested() {
        walk(n, out, depth + 1);
    }
}
