"""`cargo xtask interop`'s import checks of built-in registrations: removes from every Parquet file
under EXPORT_DIR the registration `flinksnap export` records in its schema metadata
(`flinksnap.registration`, `flinksnap.key_serializer`), as a file written by another tool lacks
it, so `flinksnap import` registers the states from the columns' types. Rows, types and the
other metadata stay.

    python strip_registration.py EXPORT_DIR
"""

import pathlib
import sys

import pyarrow.parquet as pq

REGISTRATION_KEYS = (b"flinksnap.registration", b"flinksnap.key_serializer")


def main():
    n = 0
    for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.parquet")):
        t = pq.read_table(path)
        meta = t.schema.metadata or {}
        if any(k in meta for k in REGISTRATION_KEYS):
            n += 1
        t = t.replace_schema_metadata({k: v for k, v in meta.items() if k not in REGISTRATION_KEYS})
        pq.write_table(t, path)
    if n == 0:
        sys.exit(f"{sys.argv[1]}: no file records a registration")
    print(f"{n} files without their recorded registration")


if __name__ == "__main__":
    main()
