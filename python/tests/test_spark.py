"""The Spark data source (flinksnap.spark, PySpark's Python Data Source API) in local[2] and on
a standalone master + worker on 127.0.0.1: Spark returns the rows the local read returns, which
are the rows real Flink wrote (test_read.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pytest

import flinksnap
from conftest import fixture_named
from test_read import assert_same_entries, entries_from_json_form

import pyspark  # noqa: E402  (missing pyspark fails the module: `.ci/run` installs it)
from pyspark.sql import SparkSession

import flinksnap.spark

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
# Executors run this interpreter, which has flinksnap installed.
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable

SPARK_HOME = os.path.dirname(pyspark.__file__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session(master: str) -> SparkSession:
    s = (
        SparkSession.builder.master(master)
        .appName("flinksnap-test")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.executor.memory", "1g")
        .getOrCreate()
    )
    flinksnap.spark.register(s)
    return s


def read_checks(spark: SparkSession, everything: bool = True) -> None:
    # Every state of a p=2 canonical savepoint (the JSON-text form), split into key-group
    # partitions: Spark's rows equal the local read's and what Flink wrote.
    fx = fixture_named("heap-savepoint-canonical-p2-maxp32768")
    df = spark.read.format("flinksnap").option("uids", ",".join(fx.uids)).option("maxPartitionBytes", "200").load(fx.path)
    local = pa.table(flinksnap.open(fx.path, uids=fx.uids).read())
    assert df.rdd.getNumPartitions() > 4
    got = df.toArrow()
    assert got.to_pylist() == local.to_pylist()
    assert_same_entries(fx, entries_from_json_form(got))

    # One state: its typed columns (a POJO as a struct), from a RocksDB native savepoint.
    fx = fixture_named("rocksdb-savepoint-native")
    df = spark.read.format("flinksnap").option("operator", "keyed-string").option("state", "v-pojo").load(fx.path)
    assert [f.name for f in df.schema["value"].dataType.fields] == ["count", "flag", "id", "name"]
    local = flinksnap.open(fx.path).read(operator="keyed-string", state="v-pojo").to_pyarrow()
    assert [r.asDict(recursive=True) for r in df.collect()] == local.to_pylist()
    if not everything:
        return

    # SQL state (RowData keys and rows) in the JSON-text form: what Flink's serializers decode.
    fx = fixture_named("sql-heap-savepoint-canonical")
    got = spark.read.format("flinksnap").load(fx.path).toArrow()
    assert got.to_pylist() == pa.table(flinksnap.open(fx.path).read()).to_pylist()
    from test_read import bag

    assert bag(entries_from_json_form(got)) == bag(json.loads(l) for l in fx.oracle_lines())

    # With the job's compiled plan (option "plan"): the group aggregate's key by its SQL column,
    # on the executors too (the partitions carry the names).
    plan = str(fx.case_dir.parent / "sql-plans" / "sql.plan.json")
    df = spark.read.format("flinksnap").option("plan", plan).option("operator", "4_group-aggregate").option("state", "accState").load(fx.path)
    assert [f.name for f in df.schema["key"].dataType.fields] == ["user_name", "rowKind"]
    local = flinksnap.open(fx.path, plan=plan).read(operator="4_group-aggregate", state="accState").to_pyarrow()
    assert sorted(repr(r["key"]["user_name"]) for r in df.collect()) == sorted(repr(k["user_name"]) for k in local.column("key").to_pylist())
    assert local.num_rows > 0

    # SQL over the source, with filters Spark pushes down (4.1+) or evaluates itself.
    fx = fixture_named("rocksdb-savepoint-native")
    df = spark.read.format("flinksnap").load(fx.path)
    df.createOrReplaceTempView("state")
    rows = spark.sql(
        "select state, count(*) as n from state where operator_uid = 'keyed-string' and key_group < 64 group by state order by state"
    ).collect()
    want = {}
    for e in (json.loads(l) for l in fx.expected_lines()):
        if e["operator_uid"] == "keyed-string" and e["key_group"] is not None and e["key_group"] < 64:
            want[e["state"]] = want.get(e["state"], 0) + 1
    assert {r["state"]: r["n"] for r in rows} == want and want
    v_long = [e for e in (json.loads(l) for l in fx.expected_lines()) if e["state"] == "v-long"]
    kg = v_long[0]["key_group"]
    one = spark.sql(f"select * from state where state = 'v-long' and key_group = {kg}").toArrow()
    want = [e for e in v_long if e["key_group"] == kg]
    assert len(want) == one.num_rows > 0
    assert spark.sql("select count(*) from state where operator_uid = 'no-such-operator'").collect()[0][0] == 0


def test_filters_narrow_the_plan():
    """Pushed filters (Spark >= 4.1) leave out the partitions of other operators, states and
    key groups; what a filter cannot decide exactly goes back to Spark."""
    from pyspark.sql.datasource import EqualTo, GreaterThanOrEqual, In, LessThan

    fx = fixture_named("heap-savepoint-canonical-p2-maxp32768")
    source = flinksnap.spark.FlinkSnapDataSource({"path": fx.path, "uids": ",".join(fx.uids), "maxPartitionBytes": "1"})
    schema = source.schema()
    assert [f.name for f in schema.fields][:4] == ["operator_id", "operator_uid", "state", "kind"]
    everything = len(source.reader(schema).partitions())

    r = source.reader(schema)
    back = list(r.pushFilters([EqualTo(("operator_uid",), "keyed-long"), GreaterThanOrEqual(("key_group",), 16384), LessThan(("key_group",), 20000)]))
    assert back == []
    parts = r.partitions()
    assert 0 < len(parts) < everything
    rows = [row for p in parts for b in r.read(p) for row in b.to_pylist()]
    want = [json.loads(l) for l in fx.expected_lines()]
    want = [e for e in want if e["operator_uid"] == "keyed-long" and e["key_group"] is not None and 16384 <= e["key_group"] < 20000]
    assert len(rows) == len(want) > 0
    assert {r["operator_uid"] for r in rows} == {"keyed-long"}

    r = source.reader(schema)
    gaps = In(("key_group",), (3, 30000))
    assert list(r.pushFilters([EqualTo(("state",), "map"), gaps])) == [gaps]
    rows = [row for p in r.partitions() for b in r.read(p) for row in b.to_pylist()]
    assert {x["state"] for x in rows} == {"map"} and all(3 <= x["key_group"] <= 30000 for x in rows)

    r = source.reader(schema)
    assert list(r.pushFilters([EqualTo(("operator_uid",), "no-such-operator")])) == []
    assert [b for p in r.partitions() for b in r.read(p)] == []


def test_time_columns_are_spark_time():
    """SQL TIME (and LocalTime) columns, Arrow time32[ms]/time64[ns], are Spark TimeType (4.1+)
    with the same times of day as the local read; Spark 4.0's representation (LongType
    microseconds, marked in the field metadata) from the same conversion."""
    from pyspark.sql.types import LongType, StructType, TimeType

    fx = fixture_named("sql-heap-savepoint-canonical")
    local = flinksnap.open(fx.path).read(operator="108_deduplicate", state="deduplicate-state").to_pyarrow()
    value = local.schema.field("value").type
    times = [f.name for f in value if pa.types.is_time(f.type)]
    assert times, f"no TIME field in {value}"
    spark = session("local[2]")
    try:
        df = spark.read.format("flinksnap").option("operator", "108_deduplicate").option("state", "deduplicate-state").load(fx.path)
        fields = {f.name: f.dataType for f in df.schema["value"].dataType.fields}
        assert all(isinstance(fields[t], TimeType) for t in times), fields
        got = [r.asDict(recursive=True) for r in df.collect()]
        assert len(got) == local.num_rows > 0
        want = local.to_pylist()
        assert [[g["value"][t] for t in times] for g in got] == [[w["value"][t] for t in times] for w in want]
        assert any(w["value"][t] is not None for w in want for t in times)
    finally:
        spark.stop()

    # Without a time type (Spark 4.0): int64 microseconds since midnight, marked.
    from flinksnap import spark as fs

    arrow = pa.schema([pa.field("value", value)])
    converted = pa.schema([f.with_type(fs._spark_arrow_type(f.type, False)) for f in arrow])
    from pyspark.sql.pandas.types import from_arrow_schema

    st = fs._mark_times(pa.struct(list(arrow)), from_arrow_schema(converted))
    inner = {f.name: f for f in st["value"].dataType.fields}
    assert all(isinstance(inner[t].dataType, LongType) and inner[t].metadata == fs.TIME_AS_LONG_METADATA for t in times)
    column = local.column("value").combine_chunks()
    as_long = fs._to_spark_column(column, converted.field("value").type)
    for w, g in zip(column.to_pylist(), as_long.to_pylist()):
        for t in times:
            v = w[t]
            want_us = None if v is None else ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond
            assert g[t] == want_us
    assert isinstance(st, StructType)


def test_spark_local():
    spark = session("local[2]")
    try:
        read_checks(spark)
    finally:
        spark.stop()


@pytest.fixture()
def standalone():
    """A master and a worker on 127.0.0.1 (ports chosen free), stopped by PID."""
    env = dict(os.environ, SPARK_HOME=SPARK_HOME, SPARK_LOCAL_IP="127.0.0.1", SPARK_NO_DAEMONIZE="1")
    port, ui, wui = free_port(), free_port(), free_port()
    cls = os.path.join(SPARK_HOME, "bin", "spark-class")
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"flinksnap-spark-{os.getpid()}"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    try:
        procs.append(
            subprocess.Popen(
                [cls, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui)],
                env=env, stdout=open(logs / "master.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True,
            )
        )
        procs.append(
            subprocess.Popen(
                [cls, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "2", "--memory", "2g",
                 "--webui-port", str(wui), f"spark://127.0.0.1:{port}"],
                env=env, stdout=open(logs / "worker.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True,
            )
        )
        deadline = time.time() + 120
        while True:
            try:
                state = json.load(urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2))
                if any(w.get("state") == "ALIVE" for w in state.get("workers", [])):
                    break
            except OSError:
                pass
            for p in procs:
                assert p.poll() is None, f"a Spark process exited ({p.args[1]}): see {logs}"
            assert time.time() < deadline, f"no worker registered with the master in 120 s: see {logs}"
            time.sleep(1)
        yield f"spark://127.0.0.1:{port}"
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, 15)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait()


def test_spark_standalone_cluster(standalone):
    spark = session(standalone)
    try:
        # Partitions planned on the driver, read by the worker's executor: the reads that
        # cross processes (the rest is the same code as in local mode).
        read_checks(spark, everything=False)
    finally:
        spark.stop()
