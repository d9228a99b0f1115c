"""Flink snapshots as a Spark data source (PySpark >= 4.0, the Python Data Source API).

::

    import flinksnap.spark
    flinksnap.spark.register(spark)
    df = (spark.read.format("flinksnap")
            .option("operator", "orders-dedup")       # uid or hex id; several: comma-separated
            .option("state", "seen")                  # one state: its typed columns
            .load("s3://bucket/checkpoints/7f3c.../chk-42"))

The driver opens the snapshot's ``_metadata`` and plans the read (:meth:`flinksnap.Snapshot.plan`):
one Spark partition per subtask's state handle, key-grouped handles larger than
``maxPartitionBytes`` split into key-group ranges. Each task reads its partition with the
``flinksnap`` package on its executor and hands Arrow record batches to Spark without a row
conversion.

Options (all optional):

* ``operator``: operator uids or 32-digit hex ids, comma-separated.
* ``state``: state names, comma-separated. Exactly one state gives its typed columns (as
  ``flinksnap export`` writes to Parquet); otherwise every selected state in the JSON-text form
  (``operator_id, operator_uid, state, kind, key_group, key, namespace, user_key, value,
  ttl_timestamp``). ``typed=false`` keeps the JSON-text form for one state.
* ``keyGroups``: ``7`` or ``0:64`` (stop exclusive): keyed state in those key groups only.
* ``keyed``: ``true`` (keyed state only) or ``false`` (operator state only).
* ``uids``: comma-separated operator uids of the job, to name the operators of a snapshot that
  stores none (Flink before 2.0).
* ``plan``: the job's compiled SQL plan (path or URL, read on the driver), as
  :func:`flinksnap.open`'s ``plan``: SQL operators named by the uids it implies, RowData keys and
  rows by their SQL column names; the partitions carry the names to the executors.
* ``maxPartitionBytes`` (default 134217728), ``splitUnindexed`` (``false``): how the plan splits
  (see :meth:`flinksnap.Snapshot.plan`). ``batchRows`` (8192): rows per Arrow batch.
* ``storage.<key>``: an object store option, the keys of the CLI's ``--storage-option KEY=VALUE``
  and of :func:`flinksnap.open`'s ``storage_options`` (``storage.endpoint``,
  ``storage.allow_http``, ``storage.region``, ``storage.access_key_id``,
  ``storage.secret_access_key``, ...). They apply on the driver and, carried by the reader Spark
  sends to each task, on every executor; they win over the environment there.

TIME columns (Flink SQL ``TIME``, Java ``LocalTime``) are Spark ``TimeType`` (Spark >= 4.1, the
time of day to the microsecond, what Spark's own Arrow conversion makes of Arrow ``time64``). On
Spark 4.0, which has no time type, they are ``LongType``: microseconds since midnight, the column
(or nested field) marked in its metadata with ``{"flinksnap.type": "time",
"flinksnap.unit": "us"}``.

With Spark >= 4.1, filters on ``operator_id``, ``operator_uid``, ``state`` (equality, ``IN``) and
``key_group`` (comparisons, equality, ``IN``) are pushed down into the plan: the partitions of
other operators, states and key groups are never read. The schema does not change with them: a
query that filters ``state = 'x'`` on the JSON-text form keeps that form.

Sizing for TB-scale state: partitions follow the snapshot's own state handles, so a job of
parallelism *p* gives at least *p* partitions per stateful operator; canonical savepoints and heap
checkpoints split further by key group (``maxPartitionBytes``); RocksDB and ForSt native
snapshots split only with ``splitUnindexed=true`` (each part then opens the whole handle: more
parallelism for more reading). Every executor needs the ``flinksnap`` wheel (a venv in
``spark.archives``, or the cluster's library mechanism) and credentials for the snapshot's object
store: in its own environment (``AWS_*``, ``AZURE_*``, ``GOOGLE_*`` variables through
``spark.executorEnv.*``), or as ``storage.*`` options, which travel with the pickled reader of
the query (partitions themselves carry no secrets).
"""

from __future__ import annotations

from typing import Any, Iterator, List, Optional, Sequence

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition
from pyspark.sql.types import StructType

import flinksnap

__all__ = ["FlinkSnapDataSource", "register"]

NAME = "flinksnap"


PUSHDOWN_CONF = "spark.sql.python.filterPushdown.enabled"


def register(spark: Any, *, filter_pushdown: bool = True) -> None:
    """Registers the ``flinksnap`` format with a SparkSession.

    ``filter_pushdown`` (Spark >= 4.1) sets ``spark.sql.python.filterPushdown.enabled``, off by
    default in Spark, without which Spark refuses a Python data source that can take filters;
    ``False`` registers the source without push-down and leaves the setting alone."""
    if filter_pushdown:
        spark.conf.set(PUSHDOWN_CONF, "true")
        spark.dataSource.register(FlinkSnapDataSource)
    else:
        spark.dataSource.register(FlinkSnapDataSourceWithoutPushdown)


def _list(v: Optional[str]) -> List[str]:
    return [x.strip() for x in (v or "").split(",") if x.strip()]


def _bool(options: dict, name: str, default: Optional[bool]) -> Optional[bool]:
    v = options.get(name)
    if v is None:
        return default
    t = str(v).strip().lower()
    if t in ("true", "1", "yes"):
        return True
    if t in ("false", "0", "no"):
        return False
    raise ValueError(f"option {name}: true or false, not {v!r}")


def _key_groups(v: Optional[str]) -> Optional[tuple]:
    if v is None or not str(v).strip():
        return None
    text = str(v).strip()
    try:
        if ":" in text:
            a, b = text.split(":", 1)
            return (int(a), int(b))
        k = int(text)
        return (k, k + 1)
    except ValueError:
        raise ValueError(f"option keyGroups: a key group (7) or a range start:stop (0:64), not {v!r}") from None


class _Options:
    """The data source's options, parsed once."""

    def __init__(self, options: dict) -> None:
        o = {k.lower(): v for k, v in options.items()}
        self.path = o.get("path")
        if not self.path:
            raise ValueError("flinksnap: load(path) or option('path', ...): the snapshot directory or its _metadata")
        self.operators = _list(o.get("operator"))
        self.states = _list(o.get("state"))
        self.key_groups = _key_groups(o.get("keygroups"))
        self.keyed = _bool(o, "keyed", None)
        self.uids = _list(o.get("uids"))
        self.plan = o.get("plan") or None
        self.typed = bool(_bool(o, "typed", True)) and len(self.states) == 1
        self.max_partition_bytes = int(o.get("maxpartitionbytes", 128 * 1024 * 1024))
        self.split_unindexed = bool(_bool(o, "splitunindexed", False))
        self.batch_rows = int(o.get("batchrows", 8192))
        # `storage.<key>` options, the key as given (Spark's option map is case-insensitive;
        # object store option names are lower case).
        self.storage = {k[len("storage.") :]: v for k, v in o.items() if k.startswith("storage.") and len(k) > len("storage.")}

    def open(self) -> flinksnap.Snapshot:
        return flinksnap.open(self.path, uids=self.uids, plan=self.plan, storage_options=self.storage)

    def __repr__(self) -> str:
        # Never the storage options' values: they hold credentials.
        return f"flinksnap.spark options(path={self.path!r}, storage options {sorted(self.storage)})"


def _has_time_type() -> bool:
    try:
        from pyspark.sql.types import TimeType  # noqa: F401  (Spark >= 4.1)
    except ImportError:
        return False
    return True


#: Field metadata of a TIME column as ``LongType`` (Spark 4.0: no time type).
TIME_AS_LONG_METADATA = {"flinksnap.type": "time", "flinksnap.unit": "us"}


def _spark_arrow_type(t: pa.DataType, time_type: bool) -> pa.DataType:
    """The Arrow type Spark reads for ``t``: times of day as ``time64[ns]`` (``TimeType``, the
    only time Spark's Arrow conversion maps) or, without a time type, ``int64`` microseconds;
    nested types converted inside."""
    return _spark_arrow_type_with(t, lambda _: pa.time64("ns") if time_type else pa.int64())


def _mark_times(arrow_type: pa.DataType, spark_type: Any) -> Any:
    """Spark 4.0: the ``LongType`` fields that hold times get :data:`TIME_AS_LONG_METADATA`."""
    from pyspark.sql.types import ArrayType, MapType, StructField, StructType

    if isinstance(spark_type, StructType) and pa.types.is_struct(arrow_type):
        fields = []
        for af, sf in zip(arrow_type, spark_type.fields):
            meta = dict(sf.metadata or {})
            if pa.types.is_time(af.type):
                meta.update(TIME_AS_LONG_METADATA)
            fields.append(StructField(sf.name, _mark_times(af.type, sf.dataType), sf.nullable, meta))
        return StructType(fields)
    if isinstance(spark_type, ArrayType) and (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)):
        return ArrayType(_mark_times(arrow_type.value_type, spark_type.elementType), spark_type.containsNull)
    if isinstance(spark_type, MapType) and pa.types.is_map(arrow_type):
        return MapType(
            _mark_times(arrow_type.key_type, spark_type.keyType), _mark_times(arrow_type.item_type, spark_type.valueType), spark_type.valueContainsNull
        )
    return spark_type


def _to_spark_column(column: pa.Array, target: pa.DataType) -> pa.Array:
    """A column as Spark's declared type: the same buffers where the types agree, else a cast
    (timestamps to microseconds; times to ``time64[ns]``, or through ``time64[us]`` to
    microseconds as ``int64``)."""
    if column.type == target:
        return column
    # Not `safe`: nanoseconds truncate to Spark's microseconds (its timestamps and times have no
    # finer unit); the other differences are widenings.
    try:
        return column.cast(target, safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # time32/time64 to int64: through time64[us], whose integer is microseconds of the day.
        return column.cast(_spark_arrow_type_with(column.type, lambda _: pa.time64("us")), safe=False).cast(target, safe=False)


def _spark_arrow_type_with(t: pa.DataType, time: Any) -> pa.DataType:
    if pa.types.is_time(t):
        return time(t)
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_spark_arrow_type_with(f.type, time)) for f in t])
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_spark_arrow_type_with(t.value_type, time)))
    if pa.types.is_large_list(t):
        return pa.large_list(t.value_field.with_type(_spark_arrow_type_with(t.value_type, time)))
    if pa.types.is_map(t):
        return pa.map_(t.key_field.with_type(_spark_arrow_type_with(t.key_type, time)), t.item_field.with_type(_spark_arrow_type_with(t.item_type, time)))
    return t


def spark_schema(arrow_schema: pa.Schema) -> StructType:
    """The Spark schema of an Arrow schema, as Spark's own Arrow conversion maps types; times of
    day (which it maps from ``time64`` only) as ``TimeType``, or on Spark 4.0 as ``LongType``
    microseconds marked with :data:`TIME_AS_LONG_METADATA`."""
    from pyspark.sql.pandas.types import from_arrow_schema

    time_type = _has_time_type()
    converted = pa.schema([f.with_type(_spark_arrow_type(f.type, time_type)) for f in arrow_schema], metadata=arrow_schema.metadata)
    try:
        schema = from_arrow_schema(converted)
        if not time_type:
            schema = _mark_times(pa.struct(list(arrow_schema)), schema)
        return schema
    except Exception as e:  # a type this Spark has no counterpart of
        raise ValueError(
            f"flinksnap: this state's columns have no Spark type ({e}); option('typed', 'false') reads it in the JSON-text form"
        ) from e


def _arrow_schema(schema: StructType) -> pa.Schema:
    """The Arrow schema Spark checks record batches against (its data source worker's call)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    try:
        return to_arrow_schema(schema, timezone="UTC")
    except TypeError:  # Spark 4.0: no time zone argument
        return to_arrow_schema(schema)


class FlinkSnapDataSource(DataSource):
    """``spark.read.format("flinksnap")``: Flink state, one partition per state handle."""

    @classmethod
    def name(cls) -> str:
        return NAME

    def schema(self) -> StructType:
        o = _Options(self.options)
        arrow = o.open().schema(o.operators or None, o.states or None, keyed=o.keyed, typed=o.typed)
        return spark_schema(arrow)

    def reader(self, schema: StructType) -> "FlinkSnapReader":
        return FlinkSnapReader(_Options(self.options), schema)


class FlinkSnapDataSourceWithoutPushdown(FlinkSnapDataSource):
    """The source for sessions that keep Python filter push-down off."""

    def reader(self, schema: StructType) -> "FlinkSnapReader":
        return _ReaderWithoutPushdown(_Options(self.options), schema)


class _Part(InputPartition):
    """A planned :class:`flinksnap.Partition`, as its JSON text (picklable)."""

    def __init__(self, json_text: Optional[str]) -> None:
        super().__init__(json_text)


class FlinkSnapReader(DataSourceReader):
    def __init__(self, options: _Options, schema: StructType) -> None:
        self.options = options
        self.schema = schema
        # Narrowed by pushed filters: None = as the options say; an empty list = nothing.
        self.operators: Optional[List[str]] = None
        self.states: Optional[List[str]] = None
        self.key_groups = options.key_groups

    # Spark >= 4.1. `filters` are pyspark.sql.datasource filter objects; what is yielded back
    # Spark still evaluates.
    def pushFilters(self, filters: Sequence[Any]) -> Iterator[Any]:
        from pyspark.sql import datasource as ds

        snap = None
        for f in filters:
            col = ".".join(getattr(f, "attribute", ()) or ())
            if isinstance(f, (ds.EqualTo, ds.In)) and col in ("operator_id", "operator_uid", "state"):
                values = {f.value} if isinstance(f, ds.EqualTo) else set(f.value)
                snap = snap or self.options.open()
                if col == "state":
                    if self.options.typed:
                        # The schema is one state's; a filter on its name only keeps or drops it.
                        yield f
                        continue
                    known = {s["name"] for s in snap.states()}
                    chosen = sorted(v for v in values if isinstance(v, str) and v in known and (not self.options.states or v in self.options.states))
                    self.states = chosen if self.states is None else [s for s in self.states if s in chosen]
                else:
                    key = "id" if col == "operator_id" else "uid"
                    chosen = [o["id"] for o in snap.operators if o.get(key) in values]
                    if self.options.operators:
                        wanted = set(self.options.operators)
                        chosen = [i for i in chosen if i in wanted or any(o["id"] == i and o.get("uid") in wanted for o in snap.operators)]
                    self.operators = chosen if self.operators is None else [x for x in self.operators if x in chosen]
                continue  # exact: the plan reads only what matches
            if col == "key_group" and isinstance(f, (ds.EqualTo, ds.In, ds.GreaterThan, ds.GreaterThanOrEqual, ds.LessThan, ds.LessThanOrEqual)):
                lo, hi = self.key_groups or (0, 1 << 31)
                exact = True
                if isinstance(f, ds.EqualTo):
                    lo, hi = max(lo, int(f.value)), min(hi, int(f.value) + 1)
                elif isinstance(f, ds.In):
                    vs = [int(v) for v in f.value if v is not None]
                    lo, hi = (max(lo, min(vs)), min(hi, max(vs) + 1)) if vs else (0, 0)
                    exact = len(set(vs)) == (max(vs) - min(vs) + 1) if vs else True
                elif isinstance(f, ds.GreaterThan):
                    lo = max(lo, int(f.value) + 1)
                elif isinstance(f, ds.GreaterThanOrEqual):
                    lo = max(lo, int(f.value))
                elif isinstance(f, ds.LessThan):
                    hi = min(hi, int(f.value))
                else:
                    hi = min(hi, int(f.value) + 1)
                self.key_groups = (max(lo, 0), max(hi, max(lo, 0)))
                if not exact:
                    yield f
                continue
            yield f

    def partitions(self) -> Sequence[InputPartition]:
        o = self.options
        ops = o.operators if self.operators is None else self.operators
        states = o.states if self.states is None else self.states
        empty = (self.operators is not None and not ops) or (self.states is not None and not states)
        if self.key_groups is not None and self.key_groups[1] <= self.key_groups[0]:
            empty = True
        if empty:
            # One task that reads nothing.
            return [_Part(None)]
        parts = o.open().plan(
            ops or None,
            states or None,
            self.key_groups,
            keyed=o.keyed,
            max_partition_bytes=o.max_partition_bytes,
            split_unindexed=o.split_unindexed,
            batch_rows=o.batch_rows,
            typed=o.typed,
        )
        return [_Part(p.json) for p in parts] or [_Part(None)]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        target = _arrow_schema(self.schema)
        if partition.value is None:
            return
        reader = pa.RecordBatchReader.from_stream(flinksnap.Partition(partition.value).read(storage_options=self.options.storage))
        for batch in reader:
            # Spark wants exactly the declared types (and their nullability), no field metadata:
            # the same buffers under the declared schema, cast only where Spark's type differs
            # (it has microsecond timestamps only).
            columns = [_to_spark_column(c, f.type) for c, f in zip(batch.columns, target)]
            yield pa.RecordBatch.from_arrays(columns, schema=target)


class _ReaderWithoutPushdown(FlinkSnapReader):
    # Spark refuses a reader that has pushFilters while push-down is off: this one has none.
    pushFilters = DataSourceReader.pushFilters
