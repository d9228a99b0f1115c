"""flinksnap.verify / latest / refs / gc on the real-Flink fixtures: the dicts name what the
fixtures' case.json says Flink wrote, and gc removes only what no snapshot references."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pytest

import flinksnap
from conftest import FIXTURES, fixture_named
from test_read import assert_same_entries, entries_from_json_form


@pytest.mark.parametrize("fx", FIXTURES, ids=lambda f: f.name)
def test_verify_finds_every_fixture_sound(fx):
    r = flinksnap.verify(fx.path, uids=fx.uids)
    assert r["sound"] is True, [c for c in r["checks"] if c.get("findings")]
    assert r["checkpoint_id"] == fx.snapshot["checkpoint_id"]


def test_full_verify_finds_a_damaged_file(tmp_path):
    fx = fixture_named("heap-checkpoint")
    case = tmp_path / "case"
    shutil.copytree(fx.case_dir, case)
    snap = case / fx.snapshot["path"]
    assert flinksnap.verify(str(snap), "full", uids=fx.uids)["sound"] is True
    # The largest state file, its middle bytes flipped: the size still matches (a shallow
    # check passes), the entries do not decode.
    files = [p for p in snap.rglob("*") if p.is_file() and p.name != "_metadata"]
    victim = max(files, key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = bytes(b ^ 0xFF for b in data[mid : mid + 16])
    victim.write_bytes(bytes(data))
    assert flinksnap.verify(str(snap), "shallow", uids=fx.uids)["sound"] is True
    full = flinksnap.verify(str(snap), "full", uids=fx.uids)
    assert full["sound"] is False
    with pytest.raises(ValueError):
        flinksnap.verify(str(snap), "deep")


def test_latest_is_the_newest_sound_checkpoint(tmp_path):
    fx = fixture_named("rocksdb-checkpoint-incremental")
    ids = sorted(s["checkpoint_id"] for s in fx.case["snapshots"])
    assert len(ids) == 3
    r = flinksnap.latest(str(fx.case_dir))
    assert r["checkpoint_id"] == ids[-1]
    assert Path(r["path"]).name == f"chk-{ids[-1]}"
    # The newest one's _metadata cut short: latest passes over it, and says why.
    case = tmp_path / "case"
    shutil.copytree(fx.case_dir, case)
    newest = next(case.rglob(f"chk-{ids[-1]}"))
    meta = newest / "_metadata"
    meta.write_bytes(meta.read_bytes()[:64])
    r = flinksnap.latest(str(case))
    assert r["checkpoint_id"] == ids[-2]
    assert [Path(s["path"]).name for s in r["skipped"]] == [f"chk-{ids[-1]}"]


def test_refs_and_gc_remove_only_unreferenced_files(tmp_path):
    fx = fixture_named("rocksdb-checkpoint-incremental")
    case = tmp_path / "case"
    shutil.copytree(fx.case_dir, case)
    job = next(p.parent for p in case.rglob("chk-*") if p.is_dir())
    stray = job / "shared" / "orphan-sst-left-by-a-failed-checkpoint.sst"
    stray.write_bytes(b"x" * 1000)
    old = time.time() - 7200
    os.utime(stray, (old, old))
    before = sorted(str(p) for p in case.rglob("*") if p.is_file())

    refs = flinksnap.refs(str(job))
    assert len(refs["snapshots"]) == 3
    assert [Path(u["path"]).name for u in refs["unreferenced"]] == [stray.name]
    referenced = {f["path"] for s in refs["snapshots"] for f in s["files"]}
    assert any("shared" in p for p in referenced)

    plan = flinksnap.gc(str(job))  # a dry run
    assert plan["deleted"] is False and plan["refused"] is None
    assert [Path(r["path"]).name for r in plan["remove"]] == [stray.name]
    assert sorted(str(p) for p in case.rglob("*") if p.is_file()) == before

    # Too young to be an orphan (a checkpoint may be writing it): kept.
    young = flinksnap.gc(str(job), older_than="3h")
    assert young["remove"] == [] and len(young["kept"]) == 1

    done = flinksnap.gc(str(job), delete=True, older_than="1h")
    assert done["deleted"] is True and done["failures"] == []
    assert not stray.exists()
    after = sorted(str(p) for p in case.rglob("*") if p.is_file())
    assert after == [p for p in before if p != str(stray)]
    # Every checkpoint still reads what Flink wrote.
    newest = max(fx.case["snapshots"], key=lambda s: s["checkpoint_id"])
    snap = flinksnap.open(str(case / newest["path"]), uids=fx.uids)
    from conftest import Fixture

    assert_same_entries(Fixture(case, fx.case, newest), entries_from_json_form(pa.table(snap.read())))

    with pytest.raises(ValueError):
        flinksnap.gc(str(job), older_than="soon")
