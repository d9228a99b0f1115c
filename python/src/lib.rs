//! `flinksnap._flinksnap`: the native half of the Python package. Snapshots, scans and their
//! record batches; batches leave through the Arrow C stream interface (`__arrow_c_stream__`,
//! zero-copy: the consumer reads buffers Rust allocated), so pyarrow, polars, pandas, DuckDB and
//! DataFusion read them without this package depending on any of them. Reports (verify, latest,
//! refs, gc, listings) cross as JSON text; the Python half turns them into dicts.

use std::sync::Mutex;

use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::RecordBatchReader;
use arrow_schema::ffi::FFI_ArrowSchema;
use arrow_schema::SchemaRef;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

create_exception!(_flinksnap, FlinkSnapError, PyException, "A snapshot could not be read: missing, corrupt, or not supported.");

fn err(e: flinksnap::Error) -> PyErr {
    FlinkSnapError::new_err(e.to_string())
}

/// Storage configured by `options` (the keys of the CLI's `--storage-option KEY=VALUE`) over
/// each cloud's environment; the environment alone without options. An error's message never
/// holds a secret option's value.
fn storage(options: &[(String, String)]) -> std::sync::Arc<dyn flinksnap::Storage> {
    if options.is_empty() {
        return flinksnap::api::default_storage();
    }
    let mut o = flinksnap::StorageOptions::new();
    for (k, v) in options {
        o.set(k, v);
    }
    flinksnap::api::storage_with(o)
}

/// `err`, with the values of secret options removed from the message too.
fn err_with(options: &[(String, String)]) -> impl Fn(flinksnap::Error) -> PyErr + '_ {
    move |e| {
        let secrets: Vec<String> =
            options.iter().filter(|(k, v)| flinksnap::storage::options::is_secret_key(k) && !v.is_empty()).map(|(_, v)| v.clone()).collect();
        FlinkSnapError::new_err(flinksnap::storage::options::redact(&e.to_string(), &secrets))
    }
}

fn json<T: serde::Serialize>(v: &T) -> PyResult<String> {
    serde_json::to_string(v).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// `__arrow_c_schema__` of a schema.
fn schema_capsule<'py>(py: Python<'py>, schema: &SchemaRef) -> PyResult<Bound<'py, PyCapsule>> {
    let ffi = FFI_ArrowSchema::try_from(schema.as_ref()).map_err(|e| PyValueError::new_err(e.to_string()))?;
    PyCapsule::new_with_value(py, ffi, c"arrow_schema")
}

/// An opened snapshot.
#[pyclass(frozen, module = "flinksnap._flinksnap")]
struct Snapshot {
    inner: flinksnap::Snapshot,
}

#[pymethods]
impl Snapshot {
    /// Opens the snapshot at `location` (a snapshot directory or its `_metadata`); `uids` name
    /// the operators of snapshots that store none (Flink before 2.0); `storage_options` are
    /// object store options (`--storage-option` keys), over the environment; `plan` is the
    /// location of the job's compiled plan (or REST job plan), which names SQL operators and
    /// columns (`Snapshot::with_plan`).
    #[new]
    #[pyo3(signature = (location, uids = Vec::new(), storage_options = Vec::new(), plan = None))]
    fn new(py: Python<'_>, location: String, uids: Vec<String>, storage_options: Vec<(String, String)>, plan: Option<String>) -> PyResult<Self> {
        let store = storage(&storage_options);
        let (inner, plan) = py
            .detach(|| -> flinksnap::Result<_> {
                let inner = flinksnap::Snapshot::open_with(store.clone(), &location)?;
                let plan = plan.as_deref().map(|p| flinksnap::plan::Plan::read(&*store, p)).transpose()?;
                Ok((inner, plan))
            })
            .map_err(err_with(&storage_options))?;
        let inner = inner.with_uids(uids);
        Ok(Snapshot { inner: match &plan { Some(p) => inner.with_plan(p), None => inner } })
    }

    #[getter]
    fn location(&self) -> &str {
        self.inner.location()
    }

    #[getter]
    fn checkpoint_id(&self) -> u64 {
        self.inner.checkpoint_id()
    }

    /// The operators, as JSON.
    fn operators_json(&self) -> PyResult<String> {
        json(&self.inner.operators())
    }

    /// The registered states, as JSON (with each state's Arrow columns summarised).
    fn states_json(&self, py: Python<'_>) -> PyResult<String> {
        let states = py.detach(|| self.inner.states()).map_err(err)?;
        let out: Vec<serde_json::Value> = states
            .iter()
            .map(|s| {
                serde_json::json!({
                    "operator_id": s.operator_id.to_hex(),
                    "operator_uid": s.operator_uid,
                    "name": s.name,
                    "kind": s.kind.as_str(),
                    "keyed": s.kind.is_keyed(),
                    "subtasks": s.subtasks,
                    "serializers": s.serializers.iter().map(|(r, c)| (r.clone(), serde_json::Value::from(c.clone()))).collect::<serde_json::Map<_, _>>(),
                    "columns": s.schema.fields().iter().map(|f| serde_json::json!({
                        "name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json(&out)
    }

    /// What `flinksnap inspect --format json` says about the snapshot, as JSON.
    fn summary_json(&self, py: Python<'_>) -> PyResult<String> {
        let s = py.detach(|| self.inner.summary()).map_err(err)?;
        json(&s)
    }

    /// A scan: `key_groups` is `(start, stop)`, stop exclusive; `typed = false` keeps the dump
    /// form for one state.
    #[pyo3(signature = (operators = Vec::new(), states = Vec::new(), key_groups = None, keyed = None, batch_rows = 8192, typed = true))]
    #[allow(clippy::too_many_arguments)]
    fn scan(
        &self,
        py: Python<'_>,
        operators: Vec<String>,
        states: Vec<String>,
        key_groups: Option<(u32, u32)>,
        keyed: Option<bool>,
        batch_rows: usize,
        typed: bool,
    ) -> PyResult<Scan> {
        let mut b = self.inner.scan().batch_rows(batch_rows).typed(typed);
        for o in operators {
            b = b.operator(o);
        }
        for s in states {
            b = b.state(s);
        }
        if let Some((start, stop)) = key_groups {
            if stop <= start {
                return Err(PyValueError::new_err(format!("empty key-group range {start}..{stop}")));
            }
            b = b.key_groups(start..stop);
        }
        if let Some(k) = keyed {
            b = b.keyed(k);
        }
        let scan = py.detach(|| b.build()).map_err(err)?;
        Ok(Scan { inner: scan })
    }

    /// Reads a partition (its JSON) planned on this snapshot.
    fn read_partition(&self, py: Python<'_>, partition: &str) -> PyResult<RecordBatchStream> {
        let p = flinksnap::Partition::from_json(partition).map_err(err)?;
        let batches = py.detach(|| self.inner.read_partition(&p)).map_err(err)?;
        Ok(RecordBatchStream::new(batches))
    }

    fn __repr__(&self) -> String {
        format!("flinksnap.Snapshot({:?}, checkpoint_id={})", self.inner.location(), self.inner.checkpoint_id())
    }
}

/// A scan: its schema, its batches, its partitions.
#[pyclass(frozen, module = "flinksnap._flinksnap")]
struct Scan {
    inner: flinksnap::Scan,
}

#[pymethods]
impl Scan {
    /// Whether batches have one state's typed columns (else the dump form).
    #[getter]
    fn is_typed(&self) -> bool {
        self.inner.is_typed()
    }

    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        schema_capsule(py, &self.inner.schema())
    }

    /// The batches, as a stream read once.
    fn batches(&self, py: Python<'_>) -> PyResult<RecordBatchStream> {
        let b = py.detach(|| self.inner.batches()).map_err(err)?;
        Ok(RecordBatchStream::new(b))
    }

    /// The partitions, each as JSON.
    #[pyo3(signature = (max_partition_bytes = 128 * 1024 * 1024, split_unindexed = false))]
    fn plan(&self, py: Python<'_>, max_partition_bytes: u64, split_unindexed: bool) -> PyResult<Vec<String>> {
        let opts = flinksnap::PlanOptions { max_partition_bytes, split_unindexed };
        let parts = py.detach(|| self.inner.plan(&opts)).map_err(err)?;
        Ok(parts.iter().map(flinksnap::Partition::to_json).collect())
    }
}

/// Record batches behind the Arrow PyCapsule interface: `__arrow_c_stream__` hands the stream
/// to its consumer once.
#[pyclass(frozen, module = "flinksnap._flinksnap")]
struct RecordBatchStream {
    schema: SchemaRef,
    batches: Mutex<Option<flinksnap::ScanBatches>>,
}

impl RecordBatchStream {
    fn new(batches: flinksnap::ScanBatches) -> Self {
        RecordBatchStream { schema: batches.schema(), batches: Mutex::new(Some(batches)) }
    }
}

#[pymethods]
impl RecordBatchStream {
    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        schema_capsule(py, &self.schema)
    }

    /// The stream (the protocol lets a producer ignore `requested_schema`; the schema is the
    /// state's own).
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__<'py>(&self, py: Python<'py>, requested_schema: Option<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let batches = self
            .batches
            .lock()
            .map_err(|_| PyValueError::new_err("the stream's lock is poisoned"))?
            .take()
            .ok_or_else(|| PyValueError::new_err("this stream was read already: read it again with snapshot.read(...)"))?;
        let stream = FFI_ArrowArrayStream::new(Box::new(batches) as Box<dyn RecordBatchReader + Send>);
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }

    /// Whether the stream was handed out already.
    #[getter]
    fn consumed(&self) -> bool {
        self.batches.lock().map(|b| b.is_none()).unwrap_or(true)
    }
}

/// `flinksnap verify` as JSON.
#[pyfunction]
#[pyo3(signature = (location, level = "shallow", uids = Vec::new(), storage_options = Vec::new()))]
fn verify_json(py: Python<'_>, location: String, level: &str, uids: Vec<String>, storage_options: Vec<(String, String)>) -> PyResult<String> {
    let level = match level {
        "shallow" => flinksnap::VerifyLevel::Shallow,
        "full" => flinksnap::VerifyLevel::Full,
        other => return Err(PyValueError::new_err(format!("level must be 'shallow' or 'full', not {other:?}"))),
    };
    let r = py.detach(|| flinksnap::verify_with(storage(&storage_options), &location, level, &uids)).map_err(err_with(&storage_options))?;
    json(&r)
}

/// `flinksnap latest` as JSON.
#[pyfunction]
#[pyo3(signature = (dir, storage_options = Vec::new()))]
fn latest_json(py: Python<'_>, dir: String, storage_options: Vec<(String, String)>) -> PyResult<String> {
    let r = py.detach(|| flinksnap::latest_with(storage(&storage_options), &dir)).map_err(err_with(&storage_options))?;
    json(&r)
}

/// `flinksnap refs` as JSON.
#[pyfunction]
#[pyo3(signature = (dir, also = Vec::new(), storage_options = Vec::new()))]
fn refs_json(py: Python<'_>, dir: String, also: Vec<String>, storage_options: Vec<(String, String)>) -> PyResult<String> {
    let r = py.detach(|| flinksnap::refs_with(storage(&storage_options), &dir, &also)).map_err(err_with(&storage_options))?;
    json(&r)
}

/// `flinksnap gc` as JSON: a dry run unless `delete`.
#[pyfunction]
#[pyo3(signature = (dir, delete = false, older_than_seconds = 3600.0, keep = Vec::new(), also = Vec::new(), allow_unreadable = false, allow_no_snapshots = false, storage_options = Vec::new()))]
#[allow(clippy::too_many_arguments)]
fn gc_json(
    py: Python<'_>,
    dir: String,
    delete: bool,
    older_than_seconds: f64,
    keep: Vec<String>,
    also: Vec<String>,
    allow_unreadable: bool,
    allow_no_snapshots: bool,
    storage_options: Vec<(String, String)>,
) -> PyResult<String> {
    if !(older_than_seconds >= 0.0 && older_than_seconds.is_finite()) {
        return Err(PyValueError::new_err("older_than must be a non-negative number of seconds"));
    }
    let opts = flinksnap::GcOptions {
        older_than: std::time::Duration::from_secs_f64(older_than_seconds),
        keep,
        also,
        allow_unreadable,
        allow_no_snapshots,
        now: std::time::SystemTime::now(),
    };
    let mut o = flinksnap::StorageOptions::new();
    for (k, v) in &storage_options {
        o.set(k, v);
    }
    let r = py.detach(|| flinksnap::gc_with(&flinksnap::Storages::new(o), &dir, &opts, delete)).map_err(err_with(&storage_options))?;
    json(&r)
}

#[pymodule]
fn _flinksnap(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Snapshot>()?;
    m.add_class::<Scan>()?;
    m.add_class::<RecordBatchStream>()?;
    m.add_function(wrap_pyfunction!(verify_json, m)?)?;
    m.add_function(wrap_pyfunction!(latest_json, m)?)?;
    m.add_function(wrap_pyfunction!(refs_json, m)?)?;
    m.add_function(wrap_pyfunction!(gc_json, m)?)?;
    m.add("FlinkSnapError", m.py().get_type::<FlinkSnapError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
