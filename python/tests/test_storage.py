"""Object store options (``storage_options``, the CLI's ``--storage-option`` keys) against the S3
test server `.ci/run` starts (SeaweedFS on 127.0.0.1, `.ci/stores`): a fixture relocated into a
bucket by the CLI reads the same as the local fixture, with credentials given as options only
(the test environment has no AWS variables), and no secret appears in a repr or an error."""

from __future__ import annotations

import os
import subprocess
import uuid

import pyarrow as pa
import pytest

import flinksnap
import flinksnap.spark
from conftest import fixture_named


def s3_options() -> dict:
    endpoint = os.environ.get("FLINKSNAP_TEST_S3_ENDPOINT")
    # Missing, the tests fail: `.ci/run` (or `bash .ci/stores run ...`) starts the server.
    assert endpoint, "FLINKSNAP_TEST_S3_ENDPOINT is not set: run under `bash .ci/stores run ...` (.ci/run does)"
    return {
        "endpoint": endpoint,
        "allow_http": True,
        "access_key_id": os.environ["FLINKSNAP_TEST_S3_KEY"],
        "secret_access_key": os.environ["FLINKSNAP_TEST_S3_SECRET"],
        "region": "us-east-1",
    }


@pytest.fixture(scope="module")
def in_bucket(flinksnap_cli):
    """The 2.3.0 canonical heap savepoint, relocated into the bucket by `flinksnap relocate`."""
    for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT", "AWS_ENDPOINT_URL"):
        assert v not in os.environ, f"{v} is set: the test must get its credentials from options only"
    opts = s3_options()
    fx = fixture_named("heap-savepoint-canonical")
    url = f"s3://{os.environ.get('FLINKSNAP_TEST_S3_BUCKET', 'flink')}/python-{uuid.uuid4().hex[:12]}/savepoint"
    flags = [f"--storage-option={k}={'true' if v is True else v}" for k, v in opts.items()]
    r = subprocess.run([flinksnap_cli, *flags, "relocate", fx.path, url], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return url, opts, fx


def test_open_with_storage_options_reads_what_the_local_snapshot_holds(in_bucket):
    url, opts, fx = in_bucket
    remote = flinksnap.open(url, storage_options=opts)
    local = flinksnap.open(fx.path)
    assert remote.checkpoint_id == local.checkpoint_id
    assert [o["id"] for o in remote.operators] == [o["id"] for o in local.operators]
    assert [(s["operator_id"], s["name"], s["columns"]) for s in remote.states()] == [
        (s["operator_id"], s["name"], s["columns"]) for s in local.states()
    ]
    # One typed state, and everything in the JSON-text form: row for row.
    got = remote.read(operator="keyed-string", state="v-pojo").to_pyarrow()
    assert got.num_rows > 0
    assert got.to_pylist() == local.read(operator="keyed-string", state="v-pojo").to_pyarrow().to_pylist()
    assert pa.table(remote.read()).to_pylist() == pa.table(local.read()).to_pylist()
    # Partitions read elsewhere (a new process would do the same) with the options.
    parts = remote.plan(state="v-pojo", max_partition_bytes=64)
    rows = [r for p in parts for r in p.read(storage_options=opts).to_pyarrow().to_pylist()]
    assert rows == got.to_pylist()
    # The management functions take them too.
    assert flinksnap.verify(url, storage_options=opts)["sound"] is True
    assert flinksnap.latest(url, storage_options=opts)["path"] is not None


def test_secrets_never_shown(in_bucket):
    url, opts, _ = in_bucket
    snap = flinksnap.open(url, storage_options=opts)
    assert opts["secret_access_key"] not in repr(snap)
    assert opts["secret_access_key"] not in repr(snap.plan(state="v-pojo")[0])
    # A wrong secret: SeaweedFS refuses the signature; the message names neither secret.
    wrong = dict(opts, secret_access_key="not-the-secret-7f3c9a", max_retries="0")
    with pytest.raises(flinksnap.FlinkSnapError) as e:
        flinksnap.open(url, storage_options=wrong)
    assert "not-the-secret-7f3c9a" not in str(e.value) and opts["secret_access_key"] not in str(e.value)
    assert url in str(e.value) and "403" in str(e.value)


def test_storage_options_are_checked():
    with pytest.raises(TypeError):
        flinksnap.open("x", storage_options=[("endpoint", "y")])
    with pytest.raises(TypeError):
        flinksnap.open("x", storage_options={1: "y"})


def test_spark_reads_a_bucket_with_storage_options(in_bucket):
    """`.option("storage.<key>", ...)`: the driver plans and the executors read with them."""
    from test_spark import session

    url, opts, fx = in_bucket
    spark = session("local[2]")
    try:
        r = spark.read.format("flinksnap").option("operator", "keyed-string").option("state", "v-pojo").option("maxPartitionBytes", "64")
        for k, v in opts.items():
            r = r.option(f"storage.{k}", "true" if v is True else v)
        df = r.load(url)
        assert df.rdd.getNumPartitions() > 1
        local = flinksnap.open(fx.path).read(operator="keyed-string", state="v-pojo").to_pyarrow()
        assert [x.asDict(recursive=True) for x in df.collect()] == local.to_pylist()
    finally:
        spark.stop()
    o = flinksnap.spark._Options({"path": url, **{f"storage.{k}": str(v) for k, v in opts.items()}})
    assert o.storage["secret_access_key"] == opts["secret_access_key"]
    assert opts["secret_access_key"] not in repr(o)
