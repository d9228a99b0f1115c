"""A streamed read keeps memory bounded: the peak RSS of a Python process reading a state of
~100 MiB batch by batch grows by a fraction of the state, and by no more than when it reads a
state ten times smaller.

The snapshots are written here by flinksnap's own writer, from a real-Flink fixture: the
`keyed-long/v-string` state (Long key, String value) of the 2.3.0 heap savepoint is exported to
Parquet, the file replaced by one of N generated rows (pyarrow), and `flinksnap import` writes
the canonical savepoint with those rows as the state (key groups computed from the keys, as
Flink assigns them). Each snapshot is then read in a fresh process.

Peak RSS is the process's VmHWM (/proc/self/status), not `ru_maxrss`: Linux carries a parent's
peak RSS into `ru_maxrss` across fork and exec, so a child of this (large) test process would
start with the parent's peak. The growth measured is VmHWM after the read minus VmHWM after
`flinksnap.open` (imports, the opened snapshot): what the read itself needed. This is a bound on
memory, not a timing: `python/bench/read_rss.py` measures the benchmark snapshots.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from conftest import fixture_named

OPERATOR, STATE = "keyed-long", "v-string"
# ~520 bytes a value: 200,000 rows are ~100 MiB of state, 20,000 rows ~10 MiB; each read spans
# many 8192-row batches, so both reach the steady state of a streamed read.
PAD = "x" * 500
BIG, SMALL = 200_000, 20_000
# Keys of the fixture's state that the generated keys (0..N) contain: their key groups must be
# the ones Flink gave them in the fixture.
SAMPLE_KEYS = (1, 2, 4)

CHILD = r"""
import json, sys
import pyarrow as pa, pyarrow.compute as pc
import flinksnap

def hwm_kib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))

path, warm_up, pad, sample = sys.argv[1], sys.argv[2], sys.argv[3], pa.array(json.loads(sys.argv[4]), pa.int64())
totals = {"rows": 0, "batches": 0, "key_sum": 0, "bad_values": 0, "key_groups": {}}

def check(b, t):
    # Every value is the one written for its key ("v" + key + pad); nothing of the batch kept.
    t["batches"] += 1
    t["rows"] += b.num_rows
    key = b.column("key")
    t["key_sum"] += pc.sum(key).as_py() or 0
    want = pc.binary_join_element_wise("v", pc.cast(key, pa.string()), pad, "")
    t["bad_values"] += b.num_rows - pc.sum(pc.cast(pc.equal(b.column("value"), want), pa.int64())).as_py()
    hit = b.filter(pc.is_in(key, sample))
    for k, g in zip(hit.column("key").to_pylist(), hit.column("key_group").to_pylist()):
        t["key_groups"][str(k)] = g

# The code of the read and of the checks loaded (the same state of the small fixture read and
# checked), and batch-sized temporaries of the checks made, before the baseline: what grows after
# it is the read's own memory.
scratch = {"rows": 0, "batches": 0, "key_sum": 0, "bad_values": 0, "key_groups": {}}
for b in pa.RecordBatchReader.from_stream(flinksnap.open(warm_up).read(operator="keyed-long", state="v-string")):
    check(b, scratch)
keys = pa.array(range(8192), pa.int64())
check(pa.record_batch({"key": keys, "key_group": pa.array([0] * 8192, pa.int32()),
                       "value": pc.binary_join_element_wise("v", pc.cast(keys, pa.string()), pad, "")}), scratch)
snap = flinksnap.open(path)
before = hwm_kib()
for b in pa.RecordBatchReader.from_stream(snap.read(operator="keyed-long", state="v-string")):
    check(b, totals)
after = hwm_kib()
print(json.dumps(dict(totals, hwm_before_kib=before, hwm_after_kib=after)))
"""


def write_snapshot(cli: str, tmp: Path, rows: int) -> tuple:
    """A canonical savepoint whose `keyed-long/v-string` holds keys 0..rows with value
    "v<key><PAD>", written by `flinksnap import`; with the state's bytes on disk and the key
    groups of the sample keys in the fixture."""
    src = fixture_named("heap-savepoint-canonical").path
    export = tmp / f"export-{rows}"
    subprocess.run([cli, "export", src, "--to", str(export), "--operator", OPERATOR, "--state", STATE], check=True, capture_output=True)
    manifest = json.loads((export / "manifest.json").read_text())
    assert [(s["operator_uid"], s["state"]) for s in manifest["states"]] == [(OPERATOR, STATE)]
    file = export / manifest["states"][0]["file"]
    fixture_rows = pq.read_table(file)
    in_fixture = {k: g for k, g in zip(fixture_rows.column("key").to_pylist(), fixture_rows.column("key_group").to_pylist())}
    assert all(k in in_fixture for k in SAMPLE_KEYS), in_fixture

    schema = fixture_rows.schema
    keys = pa.array(np.arange(rows, dtype=np.int64))
    columns = []
    for field in schema:
        if field.name == "key":
            columns.append(keys)
        elif field.name == "value":
            columns.append(pc.binary_join_element_wise("v", pc.cast(keys, pa.string()), PAD, ""))
        elif field.name == "key_group":
            # Ignored by import, which computes each key's group.
            columns.append(pa.repeat(pa.scalar(0, pa.int32()), rows))
        elif field.name == "namespace":
            columns.append(pa.nulls(rows))
        else:
            columns.append(pa.repeat(pa.scalar(fixture_rows.column(field.name)[0].as_py(), field.type), rows))
    pq.write_table(pa.table(columns, schema=schema), file, row_group_size=64 * 1024)

    dst = tmp / f"savepoint-{rows}"
    out = subprocess.run([cli, "import", str(export), "--into", src, str(dst), "--format", "json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)["data"]
    assert [(s["state"], s["rows"]) for s in report["states"]] == [(STATE, rows)]
    state_bytes = sum(p.stat().st_size for p in dst.rglob("*") if p.is_file())
    return dst, state_bytes, {str(k): in_fixture[k] for k in SAMPLE_KEYS}


def read_in_fresh_process(path: Path) -> dict:
    warm_up = fixture_named("heap-savepoint-canonical").path
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), warm_up, PAD, json.dumps(list(SAMPLE_KEYS))], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_streamed_read_keeps_memory_bounded_as_the_state_grows(flinksnap_cli, tmp_path):
    measured = {}
    for rows in (SMALL, BIG):
        path, state_bytes, key_groups = write_snapshot(flinksnap_cli, tmp_path, rows)
        r = read_in_fresh_process(path)
        # (a) every row, each value the one written for its key, keys in Flink's key groups
        assert r["rows"] == rows, r
        assert r["key_sum"] == rows * (rows - 1) // 2, r
        assert r["bad_values"] == 0, r
        assert r["key_groups"] == key_groups, r
        assert r["batches"] >= rows // 8192, r
        growth = (r["hwm_after_kib"] - r["hwm_before_kib"]) * 1024
        measured[rows] = (state_bytes, growth)
        print(f"{rows} rows: state {state_bytes / 2**20:.1f} MiB, peak RSS {r['hwm_after_kib'] / 1024:.1f} MiB, grew {growth / 2**20:.1f} MiB during the read")

    (small_state, small_growth), (big_state, big_growth) = measured[SMALL], measured[BIG]
    assert big_state >= 8 * small_state and big_state >= 80 * 2**20, measured
    # (b) the read of ~100 MiB of state needs a fraction of it (measured: ~25 MiB, most of it
    # one batch and the Arrow stream's buffers) ...
    assert big_growth < 0.4 * big_state, measured
    # ... and no more than the read of a state ten times smaller: a read whose memory followed
    # the state would need ~90 MiB more.
    assert big_growth - small_growth < 16 * 2**20, measured
