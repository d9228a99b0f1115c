"""`flinksnap.open(...).read(...)` against what real Flink wrote: every fixture's rows equal its
expected contents (testdata/*/expected*.jsonl, what the Flink job put into its state), every
state's typed read equals `flinksnap export`'s Parquet file row for row, and the Arrow stream
reaches pyarrow, pandas, polars, DuckDB and DataFusion."""

from __future__ import annotations

import json
import pickle
import subprocess
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import flinksnap
from conftest import FIXTURES, TESTDATA, WITH_EXPECTED, Fixture, fixture_named

JSON_COLUMNS = ("key", "namespace", "user_key", "value")


def open_fixture(fx: Fixture) -> flinksnap.Snapshot:
    return flinksnap.open(fx.path, uids=fx.uids)


def entries_from_json_form(table: pa.Table) -> list:
    """Rows of the JSON-text form (a read of several states) as expected.jsonl lines
    (testdata/README.md, formats/dump.md): JSON columns parsed, user_key only for map entries,
    ttl_timestamp only where the state has TTL."""
    out = []
    for r in table.to_pylist():
        e = {k: r[k] for k in ("operator_id", "operator_uid", "state", "kind", "key_group")}
        for c in ("key", "namespace", "value"):
            e[c] = None if r[c] is None else json.loads(r[c])
        if r["user_key"] is not None:
            e["user_key"] = json.loads(r["user_key"])
        if r["ttl_timestamp"] is not None:
            e["ttl_timestamp"] = r["ttl_timestamp"]
        out.append(e)
    return out


def normalise(entries: list):
    """A multiset of canonical JSON texts, TTL timestamps taken out (they depend on when the job
    ran; the test checks them against the job's window), as tests/dump.rs does."""
    ttl = []
    bag = Counter()
    for e in entries:
        e = dict(e)
        if "ttl_timestamp" in e:
            ttl.append(e.pop("ttl_timestamp"))
            e["ttl_timestamp"] = True
        bag[json.dumps(e, sort_keys=True, ensure_ascii=False)] += 1
    return bag, ttl


def assert_same_entries(fx: Fixture, ours: list) -> None:
    got, got_ttl = normalise(ours)
    want, want_ttl = normalise(json.loads(l) for l in fx.expected_lines())
    missing = list((want - got).elements())[:5]
    extra = list((got - want).elements())[:5]
    assert not missing and not extra, f"{fx.name}:\nexpected, not read: {missing}\nread, not expected: {extra}"
    assert len(got_ttl) == len(want_ttl), fx.name
    lo, hi = fx.case["ttl_window_ms"]
    assert all(lo <= t <= hi for t in got_ttl), f"{fx.name}: TTL timestamps {got_ttl} outside {lo}..{hi}"


def canonical(v):
    """Object keys sorted, map values (`[{"key", "value"}, ...]`: stored order here, HashMap
    order in the oracle) sorted too, as tests/oracle.rs compares."""
    if isinstance(v, dict):
        return {k: canonical(v[k]) for k in sorted(v)}
    if isinstance(v, list):
        items = [canonical(x) for x in v]
        if items and all(isinstance(x, dict) and set(x) == {"key", "value"} for x in items):
            items.sort(key=lambda x: json.dumps(x, sort_keys=True))
        return items
    return v


def bag(entries) -> Counter:
    return Counter(json.dumps(canonical(e), sort_keys=True, ensure_ascii=False) for e in entries)


@pytest.mark.parametrize("fx", WITH_EXPECTED, ids=lambda f: f.name)
def test_read_equals_expected_contents(fx: Fixture):
    snap = open_fixture(fx)
    table = pa.table(snap.read())
    assert table.num_rows == len(fx.expected_lines()), fx.name
    assert_same_entries(fx, entries_from_json_form(table))


@pytest.mark.parametrize("fx", FIXTURES, ids=lambda f: f.name)
def test_read_equals_what_flink_decodes(fx: Fixture):
    """Entry for entry, TTL timestamps exact: what Flink's own serializers decode from the
    snapshot (the oracle), SQL state included."""
    assert fx.oracle_file.is_file(), f"{fx.name}: no oracle file {fx.oracle_file} (cargo xtask oracle)"
    table = pa.table(open_fixture(fx).read())
    ours = bag(entries_from_json_form(table))
    theirs = bag(json.loads(l) for l in fx.oracle_lines())
    missing = list((theirs - ours).elements())[:5]
    extra = list((ours - theirs).elements())[:5]
    assert not missing and not extra, f"{fx.name}:\nFlink decoded, not read: {missing}\nread, Flink did not decode: {extra}"
    assert len(theirs) > 0


@pytest.mark.parametrize("fx", FIXTURES, ids=lambda f: f.name)
def test_partitions_read_elsewhere_equal_the_read(fx: Fixture):
    """plan(): the pickled partitions, read in a fresh snapshot object (as a worker does), give
    the rows of the whole read, in its order; key-group partitions of small handles too."""
    snap = open_fixture(fx)
    whole = pa.table(snap.read())
    parts = snap.plan(max_partition_bytes=1)  # split every key-grouped handle
    assert parts, fx.name
    shipped = pickle.loads(pickle.dumps(parts))
    tables = [pa.table(p.read()) for p in shipped]
    assert pa.concat_tables(tables).to_pylist() == whole.to_pylist(), fx.name
    assert sum(p.bytes for p in parts) > 0


def rows_text(table: pa.Table) -> list:
    """Rows as sorted JSON texts (NaN equals NaN, decimals and times as text)."""
    return sorted(json.dumps(r, sort_keys=True, default=repr, ensure_ascii=False) for r in table.to_pylist())


def test_typed_read_equals_parquet_export(flinksnap_cli, tmp_path):
    """Every state of every fixture read alone (typed columns) equals the Parquet file
    `flinksnap export` writes for it, row for row and type for type."""
    checked = 0
    for i, fx in enumerate(FIXTURES):
        out = tmp_path / f"export-{i}"
        args = [flinksnap_cli, "export", fx.path, "--to", str(out)]
        for u in fx.uids:
            args += ["--uid", u]
        run = subprocess.run(args, capture_output=True, text=True)
        assert run.returncode == 0, f"{fx.name}: {run.stderr}"
        manifest = json.loads((out / "manifest.json").read_text())
        snap = open_fixture(fx)
        for s in manifest["states"]:
            theirs = pq.read_table(out / s["file"])
            keyed = s["kind"] not in ("operator_list", "operator_union", "broadcast")
            reader = snap.read(operator=s["operator_id"], state=s["state"], keyed=keyed)
            ours = pa.table(reader)
            assert ours.schema.remove_metadata() == theirs.schema.remove_metadata(), f"{fx.name} {s['state']}"
            # Subtasks are exported by parallel threads into one file: the same rows, each
            # subtask's in its order, interleaved differently.
            assert rows_text(ours) == rows_text(theirs), f"{fx.name} {s['state']}"
            assert ours.num_rows == s["rows"]
            checked += 1
    assert checked >= 60 * 10, checked


@pytest.mark.parametrize("version", ["1.20.5", "2.3.0"])
def test_a_plan_names_sql_columns_as_the_cli_does(flinksnap_cli, tmp_path, version):
    """open(plan=...): every state of the SQL fixture read alone equals what `flinksnap export
    --plan` writes, SQL column names included; partitions read elsewhere keep the names."""
    fx = fixture_named("sql-heap-savepoint-canonical", version)
    plan = TESTDATA / f"flink-{version}" / "sql-plans" / "sql.plan.json"
    out = tmp_path / "export"
    run = subprocess.run([flinksnap_cli, "export", fx.path, "--plan", str(plan), "--to", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    snap = flinksnap.open(fx.path, plan=plan)
    plain = flinksnap.open(fx.path)
    named = 0
    for s in manifest["states"]:
        keyed = s["kind"] not in ("operator_list", "operator_union", "broadcast")
        ours = pa.table(snap.read(operator=s["operator_id"], state=s["state"], keyed=keyed))
        theirs = pq.read_table(out / s["file"])
        assert ours.schema.remove_metadata() == theirs.schema.remove_metadata(), s["state"]
        assert rows_text(ours) == rows_text(theirs), s["state"]
        if ours.schema != pa.table(plain.read(operator=s["operator_id"], state=s["state"], keyed=keyed)).schema:
            named += 1
            parts = pickle.loads(pickle.dumps(snap.plan(operator=s["operator_id"], state=s["state"], keyed=keyed, max_partition_bytes=1)))
            read = pa.concat_tables([pa.table(p.read()) for p in parts])
            assert read.schema.remove_metadata() == ours.schema.remove_metadata(), s["state"]
            assert rows_text(read) == rows_text(ours), s["state"]
    # The group aggregate's key, the join's, dedup's and changelog normalize's keys and rows.
    assert named >= 5, named
    agg = [s for s in manifest["states"] if s["state"] == "accState"]
    assert agg and any(
        "user_name" in [f.name for f in pa.table(snap.read(operator=s["operator_id"], state="accState")).schema.field("key").type] for s in agg
    )


def test_key_groups_narrow_keyed_state():
    fx = fixture_named("heap-savepoint-canonical")
    snap = open_fixture(fx)
    whole = pa.table(snap.read(keyed=True))
    some = pa.table(snap.read(key_groups=range(0, 64), keyed=True))
    one = pa.table(snap.read(key_groups=(1, 2), keyed=True))
    kg = whole.column("key_group").to_pylist()
    assert some.num_rows == sum(1 for k in kg if k < 64) > 0
    assert one.num_rows == kg.count(1) > 0
    assert set(one.column("key_group").to_pylist()) == {1}


def test_typed_columns_of_one_state():
    """A POJO value state reads as a struct of Flink's field types, named by uid."""
    fx = fixture_named("rocksdb-savepoint-native")
    snap = open_fixture(fx)
    t = snap.read(operator="keyed-string", state="v-pojo").to_pyarrow()
    assert t.schema.field("value").type == pa.struct(
        [("count", pa.int32()), ("flag", pa.bool_()), ("id", pa.int64()), ("name", pa.string())]
    )
    rows = {r["key"]: r["value"] for r in t.to_pylist()}
    want = {}
    for l in fx.expected_lines():
        e = json.loads(l)
        if e["operator_uid"] == "keyed-string" and e["state"] == "v-pojo":
            want[e["key"]] = e["value"]
    assert rows == want and len(rows) >= 5
    schema = snap.schema(operator="keyed-string", state="v-pojo")
    assert schema.remove_metadata() == t.schema.remove_metadata()


def test_consumers_read_the_stream_zero_copy():
    fx = fixture_named("heap-savepoint-canonical")
    snap = open_fixture(fx)
    want = pa.table(snap.read(operator="keyed-long", state="v-long"))
    assert want.num_rows > 0 and want.schema.field("value").type == pa.int64()
    total = sum(want.column("value").to_pylist())

    import duckdb
    import pandas as pd
    import polars as pl
    import datafusion

    r = snap.read(operator="keyed-long", state="v-long")
    assert duckdb.sql("select count(*), sum(value) from r").fetchall() == [(want.num_rows, total)]

    df = pl.DataFrame(snap.read(operator="keyed-long", state="v-long"))
    assert df.height == want.num_rows and df["value"].sum() == total

    pdf = pd.DataFrame.from_arrow(snap.read(operator="keyed-long", state="v-long"))
    assert len(pdf) == want.num_rows and int(pdf["value"].sum()) == total
    pdf2 = snap.read(operator="keyed-long", state="v-long").to_pandas()
    assert pdf2["key"].tolist() == want.column("key").to_pylist()
    assert snap.read(operator="keyed-long", state="v-long").to_polars().height == want.num_rows

    ctx = datafusion.SessionContext()
    got = ctx.from_arrow(snap.read(operator="keyed-long", state="v-long")).to_arrow_table()
    assert got.to_pylist() == want.to_pylist()

    batches = snap.read(operator="keyed-long", state="v-long", batch_rows=2).to_batches()
    sizes = [b.num_rows for b in batches]
    assert max(sizes) <= 2 and sum(sizes) == want.num_rows


@pytest.mark.parametrize("case", ["heap-savepoint-canonical", "sql-heap-savepoint-canonical"])
def test_duckdb_reads_every_export_codec(flinksnap_cli, tmp_path, case):
    """`export --compression zstd|snappy|lz4|none`: DuckDB, a reader independent of arrow-rs,
    reads every file of every codec (LZ4 is written as LZ4_RAW) and finds the rows of the
    state's typed read, which the other tests hold to what Flink wrote."""
    import duckdb

    fx = fixture_named(case)
    snap = open_fixture(fx)
    names = {"zstd": "ZSTD", "snappy": "SNAPPY", "lz4": "LZ4_RAW", "none": "UNCOMPRESSED"}
    for codec, stored in names.items():
        out = tmp_path / codec
        args = [flinksnap_cli, "export", fx.path, "--to", str(out), "--compression", codec]
        for u in fx.uids:
            args += ["--uid", u]
        run = subprocess.run(args, capture_output=True, text=True)
        assert run.returncode == 0, f"{case} {codec}: {run.stderr}"
        manifest = json.loads((out / "manifest.json").read_text())
        rows = 0
        for s in manifest["states"]:
            path = str(out / s["file"])
            keyed = s["kind"] not in ("operator_list", "operator_union", "broadcast")
            ours = pa.table(snap.read(operator=s["operator_id"], state=s["state"], keyed=keyed))
            con = duckdb.connect()
            con.register("ours", ours)
            # Compared inside DuckDB, each side in DuckDB's types: rows of one that the other
            # lacks, both ways, counting repeats.
            file = f"read_parquet('{path}')"
            differ = con.sql(
                f"(select * from {file} except all select * from ours) union all "
                f"(select * from ours except all select * from {file})"
            ).fetchall()
            [(count,)] = con.sql(f"select count(*) from {file}").fetchall()
            assert count == ours.num_rows == s["rows"] and differ == [], f"{case} {codec} {s['state']}: {differ[:3]}"
            if s["rows"]:
                codecs = duckdb.sql(f"select distinct compression from parquet_metadata('{path}')").fetchall()
                assert codecs == [(stored,)], f"{case} {codec} {s['state']}: {codecs}"
            rows += s["rows"]
        assert rows > 100, (case, codec, rows)


def test_a_stream_is_read_once():
    snap = open_fixture(fixture_named("heap-savepoint-canonical"))
    r = snap.read()
    pa.table(r)
    assert r.consumed
    with pytest.raises(ValueError, match="read already"):
        pa.table(r)


def test_operators_and_states_name_what_flink_registered():
    fx = fixture_named("heap-savepoint-canonical")
    snap = open_fixture(fx)
    ops = {o["uid"]: o for o in snap.operators}
    assert {o: ops[o]["id"] for o in ops} == fx.case["uids"]
    assert ops["keyed-long"]["keyed_state"] and ops["op-state"]["operator_state"]
    assert snap.checkpoint_id == fx.snapshot["checkpoint_id"]
    states = {(s["operator_uid"], s["name"]): s for s in snap.states()}
    want = {(json.loads(l)["operator_uid"], json.loads(l)["state"]) for l in fx.expected_lines()}
    assert want <= set(states)
    assert states[("keyed-string", "map")]["kind"] == "map"
    assert states[("op-state", "op-union")]["kind"] == "operator_union"
    assert snap.summary()["checkpoint_id"] == fx.snapshot["checkpoint_id"]


def test_errors_are_flinksnap_errors(tmp_path):
    with pytest.raises(flinksnap.FlinkSnapError):
        flinksnap.open(str(tmp_path / "nothing-here"))
    bad = tmp_path / "chk-1"
    bad.mkdir()
    src = Path(fixture_named("heap-savepoint-canonical").path) / "_metadata"
    (bad / "_metadata").write_bytes(src.read_bytes()[:100])
    with pytest.raises(flinksnap.FlinkSnapError, match="_metadata"):
        flinksnap.open(str(bad))
    snap = open_fixture(fixture_named("heap-savepoint-canonical"))
    with pytest.raises(flinksnap.FlinkSnapError):
        snap.read(operator="no-such-operator")
