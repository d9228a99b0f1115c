"""Memory and speed of a Python read: every benchmark snapshot (`cargo xtask bench
--generate-only` writes them under $FLINKSNAP_CACHE/bench, default ~/.cache/flinksnap/bench)
streamed through `flinksnap.open(...).read()` batch by batch, in a fresh process each, with its
peak RSS, the rows read against the entries the generator wrote, and the time taken.

usage: python python/bench/read_rss.py [--json] [BENCH_DIR]

A streamed read keeps one batch (8192 rows, at most 8 MiB stored) and the reader's working set
in memory: the peak RSS should stay flat as the snapshot grows. Not a test (the guide keeps speed
and memory goals in benchmarks); exits non-zero only when a row count is wrong.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def child(path: str) -> None:
    import pyarrow as pa

    import flinksnap

    start = time.monotonic()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = 0
    for batch in pa.RecordBatchReader.from_stream(flinksnap.open(path).read()):
        rows += batch.num_rows
    secs = time.monotonic() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": rows, "seconds": round(secs, 2), "peak_rss_mib": round(peak / 1024, 1), "rss_after_import_mib": round(rss0 / 1024, 1)}))


def snapshots(bench: Path):
    for manifest in sorted(bench.glob("*/*/*/manifest.tsv")):
        for line in manifest.read_text().splitlines():
            f = line.split("\t")
            if len(f) >= 5:
                yield manifest.parent / f[3], int(f[4]), manifest.parent.parent.name, f[0]


def main(argv: list) -> int:
    if len(argv) > 1 and argv[1] == "--child":
        child(argv[2])
        return 0
    as_json = "--json" in argv
    rest = [a for a in argv[1:] if a != "--json"]
    cache = Path(os.environ.get("FLINKSNAP_CACHE", Path.home() / ".cache/flinksnap"))
    bench = Path(rest[0]) if rest else cache / "bench"
    bad = 0
    found = False
    for path, entries, size, case in snapshots(bench):
        found = True
        stored = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        out = subprocess.run([sys.executable, __file__, "--child", str(path)], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{path}: {out.stderr.strip()}", file=sys.stderr)
            bad += 1
            continue
        r = json.loads(out.stdout)
        r.update(snapshot=str(path), case=case, size=size, stored_mib=round(stored / 2**20, 1), expected_rows=entries)
        if r["rows"] != entries:
            bad += 1
        if as_json:
            print(json.dumps(r))
        else:
            print(
                f"{size:>6} {case:<28} stored {r['stored_mib']:>7} MiB  rows {r['rows']:>9}"
                f"{'' if r['rows'] == entries else ' (expected ' + str(entries) + ')'}  {r['seconds']:>7} s"
                f"  peak RSS {r['peak_rss_mib']:>6} MiB"
            )
    if not found:
        print(f"no benchmark snapshots under {bench}: cargo xtask bench --generate-only", file=sys.stderr)
        return 2
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
