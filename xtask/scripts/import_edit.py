"""`cargo xtask interop`'s import check (issue 19): edits the Parquet files `flinksnap export`
wrote for the fixture job's `keyed-long/v-long`, `keyed-long/v-string` and `keyed-string/map`
with pyarrow (a tool independent of flinksnap), and writes the contents Flink must restore:
the fixture's expected.jsonl with the same edits.

    python import_edit.py EXPORT_DIR EXPECTED_IN EXPECTED_OUT

Edits, deterministic: per state, one key's value changed, one key's row deleted, one key added
(a key the fixture job dumps, absent from that state; its key group taken from another state's
row of the same key in expected.jsonl, where Flink put it; in the Parquet it is set to 0: import
must recompute it). Prints what it changed; fails when an edit found nothing to change.
"""

import gzip
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq


# What export records of the snapshot's registration in each file (flinksnap's schema metadata).
REGISTRATION_KEYS = (b"flinksnap.registration", b"flinksnap.key_serializer")


def edit_file(path, edits, keep_registration=True):
    t = pq.read_table(path)
    rows = t.to_pylist()
    out = []
    for r in rows:
        r = edits["row"](r)
        if r is not None:
            out.append(r)
    for new in edits["add"]:
        out.append(dict(rows[0], **new, key_group=0))
    # The same schema (types and the field metadata export wrote); without the recorded
    # registration where asked, as a file another tool wrote: import then registers a state the
    # snapshot lacks from the columns' types.
    schema = t.schema
    if not keep_registration:
        schema = schema.with_metadata({k: v for k, v in (schema.metadata or {}).items() if k not in REGISTRATION_KEYS})
    pq.write_table(pa.Table.from_pylist(out, schema=schema), path)
    return len(rows), len(out)


def main():
    export_dir, expected_in, expected_out = sys.argv[1:4]
    manifest = json.load(open(f"{export_dir}/manifest.json"))
    files = {(s["operator_uid"], s["state"]): f"{export_dir}/{s['file']}" for s in manifest["states"]}
    opener = gzip.open if expected_in.endswith(".gz") else open  # fixtures' expected files are gzip
    lines = [json.loads(l) for l in opener(expected_in, "rt", encoding="utf-8") if l.strip()]
    kg = {}
    for j in lines:
        if j.get("key") is not None and j["operator_uid"] in ("keyed-long", "keyed-string"):
            kg[(j["operator_uid"], json.dumps(j["key"]))] = j["key_group"]

    # (operator, state) -> (match a row, replacement or None to delete), rows to add.
    def value_edit(change_key, new_value, delete_key):
        def row(r):
            if r["key"] == delete_key:
                return None
            if r["key"] == change_key:
                return dict(r, value=new_value)
            return r
        return row

    plan = {
        ("keyed-long", "v-long"): (value_edit(1, 1301, 4), [{"key": 5, "value": 5005}]),
        ("keyed-long", "v-string"): (value_edit(2, "imported-ü", -1), [{"key": 3, "value": "new-3 😀"}]),
    }

    def map_row(r):
        if r["key"] == "k04" and r["user_key"] == "a":
            return dict(r, value=4242)
        if r["key"] == "k05" and r["user_key"] == "c":
            return None
        return r

    plan[("keyed-string", "map")] = (map_row, [{"key": "k04", "user_key": "new-uk", "value": 7}])

    changed = {k: 0 for k in plan}
    expected = []
    for j in lines:
        k = (j["operator_uid"], j["state"])
        if k in plan:
            row, _ = plan[k]
            r = row(dict(j))
            if r != j:
                changed[k] += 1
            if r is None:
                continue
            j = r
        expected.append(j)
    for k, (_, adds) in plan.items():
        template = next(j for j in lines if (j["operator_uid"], j["state"]) == k)
        for a in adds:
            g = kg.get((k[0], json.dumps(a["key"])))
            if g is None:
                sys.exit(f"no key group known for key {a['key']} of {k[0]}")
            expected.append(dict(template, **a, key_group=g))
            changed[k] += 1
    for k, n in changed.items():
        if n < 3:
            sys.exit(f"{k}: only {n} edits applied to the expected contents (3 wanted)")
    with open(expected_out, "w", encoding="utf-8") as f:
        for j in expected:
            f.write(json.dumps(j, ensure_ascii=False, separators=(",", ":")) + "\n")
    for k, (row, adds) in plan.items():
        # v-long is also imported into the savepoint without it (a new state): registered from
        # its column types there, which this keeps proving against real Flink.
        before, after = edit_file(files[k], {"row": row, "add": adds}, keep_registration=k != ("keyed-long", "v-long"))
        print(f"{k[0]}/{k[1]}: {before} rows -> {after} (1 changed, 1 deleted, {len(adds)} added)")


if __name__ == "__main__":
    main()
