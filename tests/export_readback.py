"""Reads a `flinksnap export` back with pyarrow, independently of flinksnap, and prints every
row in the `flinksnap dump` JSON form (formats/dump.md), using only the Parquet files, their
Arrow schemas and field metadata, and the mapping in formats/parquet-export.md.

usage: python export_readback.py EXPORT_DIR OUT.jsonl [EXPORT_DIR OUT.jsonl ...]

Used by tests/export.rs; any mismatch with the fixtures' expected.jsonl fails that test.
"""

import json
import math
import struct
import sys

import pyarrow as pa
import pyarrow.parquet as pq

ENC = b"flinksnap.encoding"
OPAQUE_CLASS = b"flinksnap.opaque_class"


def float32_json(x):
    """A float32 as the shortest decimal that reads back as the same float32 (Java's
    Float.toString, and what flinksnap's dump prints)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    bits = struct.pack("<f", x)
    for digits in range(1, 18):
        s = "%.*g" % (digits, x)
        if struct.pack("<f", float(s)) == bits:
            return float(s)
    return x


def float64_json(x):
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def civil_from_days(z):
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if m <= 2 else 0), m, d


def date_text(y, m, d):
    if y > 9999:
        year = "+%d" % y
    elif y < 0:
        year = "-%04d" % -y
    else:
        year = "%04d" % y
    return "%s-%02d-%02d" % (year, m, d)


def time_text(h, mi, s, nano):
    out = "%02d:%02d:%02d" % (h, mi, s)
    if nano:
        if nano % 1_000_000 == 0:
            out += ".%03d" % (nano // 1_000_000)
        elif nano % 1000 == 0:
            out += ".%06d" % (nano // 1000)
        else:
            out += ".%09d" % nano
    return out


def instant_text(millis):
    seconds, ms = divmod(millis, 1000)
    days, secs = divmod(seconds, 86400)
    return "%sT%sZ" % (date_text(*civil_from_days(days)), time_text(secs // 3600, secs // 60 % 60, secs % 60, ms * 1_000_000))


def local_time_text(nanos):
    secs, nano = divmod(nanos, 1_000_000_000)
    return time_text(secs // 3600, secs // 60 % 60, secs % 60, nano)


def to_json(arr, field):
    """The dump JSON of every value of `arr` (a pyarrow Array of `field`'s type)."""
    meta = field.metadata or {}
    enc = meta.get(ENC)
    t = field.type
    valid = arr.is_valid().to_pylist() if arr.null_count else [True] * len(arr)
    if enc == b"json":
        return [json.loads(v) if v is not None else None for v in arr.to_pylist()]
    if enc == b"opaque":
        cls = meta[OPAQUE_CLASS].decode()
        return [{"class": cls, "hex": v.hex()} if v is not None else None for v in arr.to_pylist()]
    if pa.types.is_null(t):
        return [None] * len(arr)
    if pa.types.is_float32(t):
        return [float32_json(v) if v is not None else None for v in arr.to_pylist()]
    if pa.types.is_float64(t):
        return [float64_json(v) if v is not None else None for v in arr.to_pylist()]
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_string(t):
        return arr.to_pylist()
    if pa.types.is_binary(t):
        return [{"hex": v.hex()} if v is not None else None for v in arr.to_pylist()]
    if pa.types.is_timestamp(t):
        # Through int64: Python's datetime covers years 1-9999 only.
        return [instant_text(v) if v is not None else None for v in arr.cast(pa.int64()).to_pylist()]
    if pa.types.is_time64(t):
        return [local_time_text(v) if v is not None else None for v in arr.cast(pa.int64()).to_pylist()]
    if pa.types.is_map(t):
        keys = to_json(arr.keys, t.key_field)
        items = to_json(arr.items, t.item_field)
        offsets = arr.offsets.to_pylist()
        base = offsets[0]
        return [
            [{"key": keys[i - base], "value": items[i - base]} for i in range(offsets[j], offsets[j + 1])] if valid[j] else None
            for j in range(len(arr))
        ]
    if pa.types.is_list(t):
        values = to_json(arr.values, t.value_field)
        offsets = arr.offsets.to_pylist()
        return [values[offsets[j] : offsets[j + 1]] if valid[j] else None for j in range(len(arr))]
    if pa.types.is_struct(t):
        children = {t.field(i).name: to_json(child, t.field(i)) for i, child in enumerate(arr.flatten())}
        out = []
        for j in range(len(arr)):
            if not valid[j]:
                out.append(None)
            elif enc == b"either":
                side = "left" if children["is_left"][j] else "right"
                out.append({side: children[side][j]})
            else:
                obj = {name: col[j] for name, col in children.items()}
                if enc == b"row" and obj.get("rowKind") == "+I":
                    del obj["rowKind"]
                out.append(obj)
        return out
    raise SystemExit("unexpected Arrow type %s in column %s" % (t, field.name))


def rows(path):
    table = pq.read_table(path)
    cols = {}
    for i, field in enumerate(table.schema):
        col = table.column(i)
        chunk = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        cols[field.name] = to_json(chunk, field)
    for j in range(table.num_rows):
        e = {}
        for name in ("operator_id", "operator_uid", "state", "kind", "key_group", "key", "namespace"):
            e[name] = cols[name][j] if name in cols else None
        if "user_key" in cols:
            e["user_key"] = cols["user_key"][j]
        e["value"] = cols["value"][j]
        if "ttl_timestamp" in cols and cols["ttl_timestamp"][j] is not None:
            e["ttl_timestamp"] = cols["ttl_timestamp"][j]
        yield e


def main(argv):
    if len(argv) % 2:
        raise SystemExit(__doc__)
    for export_dir, out_path in zip(argv[0::2], argv[1::2]):
        with open("%s/manifest.json" % export_dir) as f:
            manifest = json.load(f)
        with open(out_path, "w") as out:
            for state in manifest["states"]:
                path = "%s/%s" % (export_dir, state["file"])
                n = 0
                for e in rows(path):
                    out.write(json.dumps(e, separators=(",", ":"), ensure_ascii=False) + "\n")
                    n += 1
                if n != state["rows"] or pq.ParquetFile(path).metadata.num_rows != n:
                    raise SystemExit("%s: %d rows read, the manifest says %d" % (path, n, state["rows"]))


if __name__ == "__main__":
    main(sys.argv[1:])
