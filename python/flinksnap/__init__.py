"""Apache Flink checkpoints and savepoints as Arrow, without a JVM.

Open a snapshot, list its operators and states, and read a state as Arrow record batches: the
object :meth:`Snapshot.read` returns implements the Arrow PyCapsule interface
(``__arrow_c_stream__``), so pyarrow, polars, pandas, DuckDB and DataFusion read it without a
copy::

    import flinksnap, duckdb
    snap = flinksnap.open("/checkpoints/7f3c.../chk-42")
    snap.states()                                    # every registered state, its columns
    orders = snap.read(operator="orders-dedup", state="seen")
    duckdb.sql("select key, value from orders order by key").show()

One state read has that state's typed columns, as ``flinksnap export`` writes them to Parquet
(operator_id, operator_uid, state, kind, key_group, key, namespace, user_key, value,
ttl_timestamp, typed from the state's serializers). A read of several states, or of all, has one
schema for all of them: key, namespace, user_key and value as JSON text.

For state of many TB, :mod:`flinksnap.spark` reads a snapshot as a Spark data source, one
partition per state handle (or key-group range of a large one): :meth:`Snapshot.plan`.
"""

from __future__ import annotations

import datetime as _dt
import json as _json
import os as _os
import re as _re
import threading as _threading
from collections import OrderedDict as _OrderedDict
from typing import TYPE_CHECKING, Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import _flinksnap
from ._flinksnap import FlinkSnapError, __version__

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    import polars
    import pyarrow

__all__ = [
    "FlinkSnapError",
    "Partition",
    "Reader",
    "Snapshot",
    "__version__",
    "gc",
    "latest",
    "open",
    "refs",
    "verify",
]

#: Key groups to read: one key group, a ``range`` (step 1), or ``(start, stop)`` with ``stop``
#: exclusive, like ``range``.
KeyGroups = Union[int, range, Tuple[int, int]]
Names = Union[str, Sequence[str], None]
#: Object store options: the keys of the CLI's ``--storage-option KEY=VALUE``.
StorageOptions = Optional[Mapping[str, Any]]


def _storage_options(options: StorageOptions) -> List[Tuple[str, str]]:
    """``storage_options`` as (key, value) text pairs; booleans as ``true``/``false``."""
    if options is None:
        return []
    if not isinstance(options, Mapping):
        raise TypeError("storage_options: a dict of option names to values, e.g. {'endpoint': 'http://127.0.0.1:9000'}")
    out = []
    for k, v in options.items():
        if not isinstance(k, str) or not k.strip():
            raise TypeError(f"storage_options: option names are non-empty strings, not {k!r}")
        if v is None:
            continue
        out.append((k.strip(), ("true" if v else "false") if isinstance(v, bool) else str(v)))
    return out


def open(  # noqa: A001 - the module's verb
    location: str, *, uids: Iterable[str] = (), plan: Optional[str] = None, storage_options: StorageOptions = None
) -> "Snapshot":
    """Opens the checkpoint or savepoint at ``location``: a snapshot directory (holding
    ``_metadata``) or a ``_metadata`` file, a local path or an object store URL (``s3://``,
    ``gs://``, ``abfss://``, ...).

    ``uids`` are operator uids of the job: they name operators in snapshots that store no uids
    (Flink before 2.0), which Flink derives operator ids from.

    ``plan`` is the job's compiled SQL plan (``COMPILE PLAN`` JSON, or the JSON the REST API
    returns for a job's plan), a path or URL, as the CLI's ``--plan``: it names SQL operators by
    the planner uids it implies and RowData keys and rows by their SQL column names where the
    plan fixes their row type (``f0``…``fn`` otherwise). Partitions planned on such a snapshot
    carry the names to wherever they are read.

    ``storage_options`` configure the object stores, over each cloud's environment
    (``AWS_*``, ``AZURE_*``, ``GOOGLE_*``): the keys of the CLI's ``--storage-option KEY=VALUE``,
    e.g. ``{"endpoint": "http://127.0.0.1:9000", "allow_http": True, "access_key_id": ...,
    "secret_access_key": ..., "region": "us-east-1"}``. Secret values never appear in reprs or
    error messages.
    """
    opts = _storage_options(storage_options)
    native = _flinksnap.Snapshot(str(location), list(uids), opts, None if plan is None else _os.fspath(plan))
    return Snapshot(native, opts)


def _names(v: Names) -> list:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    return [str(x) for x in v]


def _key_groups(kg: Optional[KeyGroups]) -> Optional[Tuple[int, int]]:
    if kg is None:
        return None
    if isinstance(kg, bool):
        raise TypeError("key_groups: an int, a range or a (start, stop) tuple")
    if isinstance(kg, int):
        return (kg, kg + 1)
    if isinstance(kg, range):
        if kg.step != 1:
            raise ValueError("key_groups: a range with step 1")
        return (kg.start, kg.stop)
    start, stop = kg
    return (int(start), int(stop))


class Snapshot:
    """An opened checkpoint or savepoint (:func:`open`)."""

    def __init__(self, native: "_flinksnap.Snapshot", storage_options: Sequence[Tuple[str, str]] = ()) -> None:
        self._native = native
        self._operators: Optional[list] = None
        # Kept for partitions read elsewhere in this process; never shown.
        self._storage_options = list(storage_options)

    @property
    def location(self) -> str:
        """The location as given to :func:`open`."""
        return self._native.location

    @property
    def checkpoint_id(self) -> int:
        """The checkpoint id."""
        return self._native.checkpoint_id

    @property
    def operators(self) -> list:
        """Every operator, in metadata order: ``id``, ``uid``, ``name``, ``parallelism``,
        ``max_parallelism``, ``subtasks_with_state``, ``keyed_state``, ``operator_state``,
        ``state_bytes``."""
        if self._operators is None:
            self._operators = _json.loads(self._native.operators_json())
        return self._operators

    def states(self) -> list:
        """Every registered state, per operator, keyed state first: ``operator_id``,
        ``operator_uid``, ``name``, ``kind``, ``keyed``, ``subtasks``, ``serializers`` (snapshot
        class by role) and ``columns`` (name, Arrow type, nullable) of what :meth:`read` returns
        for it. Reads each subtask's serialization proxy, no entry."""
        return _json.loads(self._native.states_json())

    def summary(self) -> dict:
        """What ``flinksnap inspect --format json`` shows: kind, format, FLIP-47 properties,
        operators and their handles, files."""
        return _json.loads(self._native.summary_json())

    def _scan(
        self, operator: Names, state: Names, key_groups: Optional[KeyGroups], keyed: Optional[bool], batch_rows: int, typed: bool = True
    ):
        return self._native.scan(_names(operator), _names(state), _key_groups(key_groups), keyed, int(batch_rows), bool(typed))

    def read(
        self,
        operator: Names = None,
        state: Names = None,
        key_groups: Optional[KeyGroups] = None,
        *,
        keyed: Optional[bool] = None,
        batch_rows: int = 8192,
        typed: bool = True,
    ) -> "Reader":
        """Reads state as Arrow record batches, streamed.

        ``operator``: a uid or 32-digit hex id (or several); ``state``: a state name (or
        several). With exactly one state the batches have its typed columns; otherwise the
        JSON-text form of every selected state. ``key_groups`` narrows keyed state (operator
        state has no key group and is then left out). ``keyed`` picks keyed or operator state
        when an operator registered both under one name. ``typed=False`` keeps the JSON-text
        form for one state too.

        The result is read once, by any consumer of ``__arrow_c_stream__``:
        ``pyarrow.table(r)``, ``polars.DataFrame(r)``, ``pandas.DataFrame.from_arrow(r)``,
        ``duckdb.sql("select * from r")``, ``datafusion.SessionContext().from_arrow(r)``.
        """
        scan = self._scan(operator, state, key_groups, keyed, batch_rows, typed)
        return Reader(scan.batches())

    def schema(
        self, operator: Names = None, state: Names = None, *, keyed: Optional[bool] = None, typed: bool = True
    ) -> "pyarrow.Schema":
        """The Arrow schema :meth:`read` returns for this selection (needs pyarrow)."""
        import pyarrow as pa

        return pa.schema(self._scan(operator, state, None, keyed, 1, typed))

    def plan(
        self,
        operator: Names = None,
        state: Names = None,
        key_groups: Optional[KeyGroups] = None,
        *,
        keyed: Optional[bool] = None,
        max_partition_bytes: int = 128 * 1024 * 1024,
        split_unindexed: bool = False,
        batch_rows: int = 8192,
        typed: bool = True,
    ) -> list:
        """Splits a :meth:`read` into independent :class:`Partition` s: one per subtask's state
        handle, key-grouped handles larger than ``max_partition_bytes`` split into key-group
        ranges (RocksDB and changelog handles too with ``split_unindexed``). Reading every
        partition in order gives the rows of the whole read, in its order. Partitions pickle:
        send them to workers and :meth:`Partition.read` them there."""
        scan = self._scan(operator, state, key_groups, keyed, batch_rows, typed)
        return [Partition(p) for p in scan.plan(int(max_partition_bytes), bool(split_unindexed))]

    def read_partition(self, partition: "Partition") -> "Reader":
        """Reads a partition planned on this snapshot."""
        return Reader(self._native.read_partition(partition.json))

    def __repr__(self) -> str:
        return f"flinksnap.Snapshot({self.location!r}, checkpoint_id={self.checkpoint_id})"


class Reader:
    """Record batches of a read, streamed, read once (the Arrow PyCapsule interface)."""

    def __init__(self, stream: "_flinksnap.RecordBatchStream") -> None:
        self._stream = stream

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """The Arrow C stream (a PyCapsule), handed out once."""
        return self._stream.__arrow_c_stream__(requested_schema)

    def __arrow_c_schema__(self) -> Any:
        """The Arrow C schema (a PyCapsule)."""
        return self._stream.__arrow_c_schema__()

    @property
    def schema(self) -> "pyarrow.Schema":
        """The batches' Arrow schema (needs pyarrow)."""
        import pyarrow as pa

        return pa.schema(self._stream)

    @property
    def consumed(self) -> bool:
        """Whether the stream was read already."""
        return self._stream.consumed

    def to_batches(self) -> "pyarrow.RecordBatchReader":
        """A ``pyarrow.RecordBatchReader`` over the stream (zero-copy)."""
        import pyarrow as pa

        return pa.RecordBatchReader.from_stream(self)

    def to_pyarrow(self) -> "pyarrow.Table":
        """All batches as one ``pyarrow.Table`` (zero-copy)."""
        import pyarrow as pa

        return pa.table(self)

    def to_pandas(self, **kwargs: Any) -> "pandas.DataFrame":
        """All rows as a ``pandas.DataFrame`` (through pyarrow; ``kwargs`` go to
        ``pyarrow.Table.to_pandas``, e.g. ``types_mapper=pandas.ArrowDtype``)."""
        return self.to_pyarrow().to_pandas(**kwargs)

    def to_polars(self) -> "polars.DataFrame":
        """All rows as a ``polars.DataFrame`` (zero-copy)."""
        import polars as pl

        return pl.DataFrame(self)

    def __repr__(self) -> str:
        return f"flinksnap.Reader(consumed={self.consumed})"


# Opened snapshots by location, per process: a worker reading many partitions of one snapshot
# reads its _metadata once.
_OPENED: "_OrderedDict[Tuple[str, Tuple[str, ...], Tuple[Tuple[str, str], ...]], _flinksnap.Snapshot]" = _OrderedDict()
_OPENED_LOCK = _threading.Lock()
_OPENED_MAX = 4


def _opened(location: str, uids: Tuple[str, ...], storage_options: Sequence[Tuple[str, str]] = ()) -> "_flinksnap.Snapshot":
    key = (location, uids, tuple(storage_options))
    with _OPENED_LOCK:
        s = _OPENED.get(key)
        if s is not None:
            _OPENED.move_to_end(key)
            return s
    s = _flinksnap.Snapshot(location, list(uids), list(storage_options))
    with _OPENED_LOCK:
        _OPENED[key] = s
        while len(_OPENED) > _OPENED_MAX:
            _OPENED.popitem(last=False)
    return s


class Partition:
    """One independent piece of a read (:meth:`Snapshot.plan`): a subtask's state handle, or a
    key-group range of a large one. Plain data (``json``), picklable; storage credentials are
    not part of it: each worker has its own."""

    __slots__ = ("json", "_fields")

    def __init__(self, json_text: str) -> None:
        self.json = json_text
        self._fields = _json.loads(json_text)

    def __reduce__(self):
        return (Partition, (self.json,))

    @property
    def snapshot(self) -> str:
        """The snapshot's location."""
        return self._fields["snapshot"]

    @property
    def operator_id(self) -> str:
        """The operator (hex id)."""
        return self._fields["operator_id"]

    @property
    def operator_uid(self) -> Optional[str]:
        """The operator's uid, when known."""
        return self._fields.get("operator_uid")

    @property
    def subtask(self) -> int:
        """The subtask index."""
        return self._fields["subtask"]

    @property
    def part(self) -> dict:
        """Which part of the subtask's state: ``{"type": "subtask"}``,
        ``{"type": "operator_state"}`` or ``{"type": "key_groups", "start": a, "end": b}``
        (``end`` inclusive)."""
        return self._fields["part"]

    @property
    def key_groups(self) -> Optional[range]:
        """The key groups a key-group partition reads."""
        p = self.part
        return range(p["start"], p["end"] + 1) if p.get("type") == "key_groups" else None

    @property
    def bytes(self) -> int:
        """Stored bytes it reads, estimated from the handles."""
        return self._fields["bytes"]

    def read(self, snapshot: Optional[Snapshot] = None, *, storage_options: StorageOptions = None) -> Reader:
        """Reads the partition: from ``snapshot`` when given, else from its location (opened
        once per process and kept) with ``storage_options`` (as :func:`open` takes them)."""
        if snapshot is not None:
            return snapshot.read_partition(self)
        uids = tuple(u for _, u in self._fields.get("scan", {}).get("uids", []))
        return Reader(_opened(self.snapshot, uids, _storage_options(storage_options)).read_partition(self.json))

    def __repr__(self) -> str:
        return f"flinksnap.Partition(operator={self.operator_uid or self.operator_id!r}, subtask={self.subtask}, part={self.part}, bytes={self.bytes})"


def verify(location: str, level: str = "shallow", *, uids: Iterable[str] = (), storage_options: StorageOptions = None) -> dict:
    """Checks a snapshot (``flinksnap verify``). ``level="shallow"``: ``_metadata`` parses and
    every referenced file exists with its recorded size; ``"full"``: also every handle, key group
    and entry decodes. Returns the report (``sound``, ``checks`` with their findings)."""
    return _json.loads(_flinksnap.verify_json(str(location), level, list(uids), _storage_options(storage_options)))


def latest(dir: str, *, storage_options: StorageOptions = None) -> dict:  # noqa: A002 - the command's word
    """The newest complete snapshot under a checkpoint, job or savepoint directory that passes
    shallow verification (``flinksnap latest``): ``path`` (``None`` when there is none),
    ``checkpoint_id``, ``skipped`` newer ones and why."""
    return _json.loads(_flinksnap.latest_json(str(dir), _storage_options(storage_options)))


def refs(dir: str, *, also: Iterable[str] = (), storage_options: StorageOptions = None) -> dict:  # noqa: A002
    """Which files each snapshot under ``dir`` references, which snapshots reference each file,
    and which files nothing references (``flinksnap refs``)."""
    return _json.loads(_flinksnap.refs_json(str(dir), list(also), _storage_options(storage_options)))


_DURATION = _re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _seconds(v: Union[int, float, str, _dt.timedelta]) -> float:
    if isinstance(v, _dt.timedelta):
        return v.total_seconds()
    if isinstance(v, (int, float)):
        return float(v)
    text = v.strip()
    if text.isdigit():
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"older_than: a duration like '90m' or '1h30m', not {v!r}")
    return float(sum(int(n) * _UNITS[u] for n, u in parts))


def gc(
    dir: str,  # noqa: A002
    *,
    delete: bool = False,
    older_than: Union[int, float, str, _dt.timedelta] = "1h",
    keep: Iterable[str] = (),
    also: Iterable[str] = (),
    allow_unreadable: bool = False,
    allow_no_snapshots: bool = False,
    storage_options: StorageOptions = None,
) -> dict:
    """Removes what no complete snapshot references (``flinksnap gc``); a dry run unless
    ``delete``. Returns the plan: ``remove`` (files removed or that would be), ``kept`` and why,
    ``refused`` (nothing removed) and ``failures``."""
    return _json.loads(
        _flinksnap.gc_json(
            str(dir),
            bool(delete),
            _seconds(older_than),
            list(keep),
            list(also),
            bool(allow_unreadable),
            bool(allow_no_snapshots),
            _storage_options(storage_options),
        )
    )
