"""The real-Flink fixtures under testdata/ (testdata/README.md), as the Rust tests see them
(tests/inspect.rs `fixtures()`): every snapshot of every case.json that Flink itself can restore,
and a restore case's savepoint."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / "testdata"


def read_fixture_text(path: Path) -> str:
    """The text of a fixture file that case.json names (`expected*.jsonl.gz`,
    `oracle*.jsonl.gz`, `metadata*.json.gz`), gunzipped when its name ends in `.gz`
    (testdata/README.md, "Size rule")."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8")


@dataclass(frozen=True)
class Fixture:
    case_dir: Path
    case: dict
    snapshot: dict

    @property
    def path(self) -> str:
        return str(self.case_dir / self.snapshot["path"])

    @property
    def name(self) -> str:
        return f"{self.case_dir.relative_to(TESTDATA)}/{self.snapshot['path']}"

    @property
    def uids(self) -> list:
        return sorted(self.case.get("uids", {}))

    @property
    def has_expected(self) -> bool:
        return "expected" in self.snapshot

    def expected_lines(self) -> list:
        """What the fixture job put into its state (DataStream fixtures only)."""
        text = read_fixture_text(self.case_dir / self.snapshot["expected"])
        return [l for l in text.splitlines() if l.strip()]

    @property
    def oracle_file(self) -> Path:
        """What Flink's own restored serializers decode from the snapshot (`cargo xtask
        oracle`): `oracle` in SQL cases, else beside `expected*.jsonl` (tests/oracle.rs)."""
        if "oracle" in self.snapshot:
            return self.case_dir / self.snapshot["oracle"]
        return self.case_dir / self.snapshot["expected"].replace("expected", "oracle", 1)

    def oracle_lines(self) -> list:
        return [l for l in read_fixture_text(self.oracle_file).splitlines() if l.strip()]


def fixtures() -> list:
    out = []
    for version in sorted(TESTDATA.glob("flink-*")):
        for case_dir in sorted(p for p in version.iterdir() if p.is_dir()):
            case_file = case_dir / "case.json"
            if not case_file.is_file():
                continue
            case = json.loads(case_file.read_text())
            for snap in case["snapshots"]:
                # Flink cannot restore it as it is (FLINK-39964); tests/cross_job.rs covers it.
                if isinstance(snap.get("unsound"), str):
                    continue
                out.append(Fixture(case_dir, case, snap))
            sp = (case.get("restore") or {}).get("savepoint")
            if isinstance(sp, dict):
                c = dict(case, kind="savepoint", format="native")
                out.append(Fixture(case_dir, c, sp))
    return out


FIXTURES = fixtures()
WITH_EXPECTED = [f for f in FIXTURES if f.has_expected]
# A fixture set that went missing must fail the suite, not shrink it.
assert len(WITH_EXPECTED) >= 60, f"only {len(WITH_EXPECTED)} fixtures with expected contents under {TESTDATA}"


def fixture_named(case: str, version: str = "2.3.0") -> Fixture:
    return next(f for f in FIXTURES if f.case["case"] == case and f.case["flink_version"] == version)


@pytest.fixture(scope="session")
def flinksnap_cli() -> str:
    """The `flinksnap` binary the export comparison runs (`.ci/run` passes it as FLINKSNAP_BIN).
    Missing, the tests fail: a comparison that does not run checks nothing."""
    exe = os.environ.get("FLINKSNAP_BIN") or shutil.which("flinksnap")
    assert exe and Path(exe).is_file(), "set FLINKSNAP_BIN to the flinksnap binary (cargo build --bin flinksnap)"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return exe
