"""JSON to Parquet conversion of the S3 destination (option "format").

Streams write to the real S3 server (test/s3server.py); every Parquet object
is fetched and read back by DuckDB (the read_parquet fixture), and its values
compared type by type with what was put: NULLs, unicode, big numerics,
timestamps with zones and as epoch numbers, arrays with NULL elements, empty
strings, keys in other cases, column_to_json_key_mappings, dots in keys.
Records that do not convert are in failed_records with
S3.FormatConversionFailed, and their error records (firehose.md 3.8) under
the error prefix, error output type format-conversion-failed.
"""

import base64
import json
import time

import pytest

from helpers import failed, flush, put_texts
from test_s3 import s3  # noqa: F401  (the fixture)

SCHEMA = """CREATE TABLE public.pq_all (
    id int4, b boolean, i2 int2, i8 int8, f4 float4, f8 float8,
    d numeric(38,10), d2 numeric(9,2), dn numeric, s text, vc varchar(5),
    j jsonb, by bytea, dt date, ts timestamptz, tsl timestamp, u uuid,
    li int8[], ls text[], "Mixed" text, ev text, dotted_key text)"""

# the query: every value as text DuckDB gives back exactly
QUERY = """SELECT id, b, i2, i8::VARCHAR AS i8, f4::VARCHAR AS f4, f8::VARCHAR AS f8,
    d::VARCHAR AS d, d2::VARCHAR AS d2, dn::VARCHAR AS dn, s, vc, j::VARCHAR AS j,
    hex("by") AS "by", dt::VARCHAR AS dt, epoch_us(ts)::VARCHAR AS ts,
    epoch_us(tsl)::VARCHAR AS tsl, u::VARCHAR AS u, li::VARCHAR[] AS li, ls,
    "Mixed", ev, dotted_key FROM t ORDER BY id"""

FORMAT = {"type": "parquet", "schema": "public.pq_all",
          "convert_dots_in_json_keys_to_underscores": True,
          "column_to_json_key_mappings": {"ev": "event type"}}

# (record, the row DuckDB must give back: only the columns that are not NULL)
GOOD = [
    ({"id": 1, "b": True, "i2": -32768, "i8": 9223372036854775807, "f4": 1.5,
      "f8": -2.25, "d": "1234567890123456789012345678.0123456789",
      "d2": 12.345, "dn": 3.14159265358979,
      "s": "h\u00e9llo \u65e5\u672c \U0001f986", "vc": "abcde",
      "j": {"a": [1, "x", None]}, "by": "\\x00ff10", "dt": "2024-02-29",
      "ts": "2024-03-01T12:34:56.789+09:00", "tsl": "2024-1-5 3:04:05.1",
      "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "li": [1, None, -3],
      "ls": ["", "\u00fc", None], "mixed": "lower key", "event type": "mapped",
      "dotted.key": "dots"},
     {"b": True, "i2": -32768, "i8": "9223372036854775807", "f4": "1.5",
      "f8": "-2.25", "d": "1234567890123456789012345678.0123456789",
      "d2": "12.35", "dn": "3.141592654", "s": "h\u00e9llo \u65e5\u672c \U0001f986",
      "vc": "abcde", "j": '{"a": [1, "x", null]}', "by": "00FF10", "dt": "2024-02-29",
      "ts": str(1709264096789000), "tsl": str(1704423845100000),
      "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "li": ["1", None, "-3"],
      "ls": ["", "\u00fc", None], "Mixed": "lower key", "ev": "mapped",
      "dotted_key": "dots"}),
    # empty strings, NULLs, case-insensitive keys, epoch seconds and ms
    ({"ID": 2, "S": "", "B": False, "Ts": 1700000000, "TSL": 1700000000123,
      "d": -0.0000000001, "li": [], "j": "text", "f8": None},
     {"s": "", "b": False, "ts": "1700000000000000", "tsl": "1700000000123000",
      "d": "-0.0000000001", "li": [], "j": '"text"'}),
    # numbers and booleans into text, a string into an integer, a zone name
    ({"id": 3, "s": 42, "i8": "-17", "ts": "2024-06-01 00:00:00 Europe/Paris",
      "dt": "1969-12-31", "ls": [1, True]},
     {"s": "42", "i8": "-17", "ts": str(1717192800000000), "dt": "1969-12-31",
      "ls": ["1", "true"]}),
]

BAD = [
    ('{"id": 10, "i2": 70000}', "smallint"),
    ('{"id": 11, "vc": "too long"}', "character varying(5)"),
    ('{"id": 12, "u": "not-a-uuid"}', "uuid"),
    ('not json at all', "invalid input syntax for type json"),
    ('[1, 2]', "not a JSON object"),
    ('{"id": 13, "li": 5}', "array"),
    ('{"id": 14, "d2": 12345678.9}', "numeric field overflow"),
    ('{"id": 15, "ts": "infinity"}', "out of range"),
    ('{"id": 16, "i8": {"x": 1}}', "object"),
]

COLUMNS = ["b", "i2", "i8", "f4", "f8", "d", "d2", "dn", "s", "vc", "j", "by", "dt", "ts",
           "tsl", "u", "li", "ls", "Mixed", "ev", "dotted_key"]


@pytest.fixture
def pq_schema(db):
    db.execute(SCHEMA)
    yield
    db.execute("DROP TABLE IF EXISTS public.pq_all")


def fetch(s3, bucket, keys, tmp_path):
    files = []
    for i, k in enumerate(keys):
        p = tmp_path / ("%d.parquet" % i)
        p.write_bytes(s3.get(bucket, k))
        files.append(p)
    return files


def wait_keys(s3, bucket, n, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        keys = s3.keys(bucket)
        if len(keys) >= n or time.monotonic() > deadline:
            return keys
        time.sleep(0.1)


def test_values_failures_and_error_records(db, s3, pq_schema, read_parquet, tmp_path):
    b = s3.bucket()
    s3.stream("pq", b, prefix="data/", format=FORMAT,
              error_output_prefix="errors/!{firehose:error-output-type}/")
    texts = [json.dumps(r) for r, _ in GOOD] + [t for t, _ in BAD]
    put_texts(db, "pq", texts)
    flush(db, "pq")

    keys = wait_keys(s3, b, 2)
    data = [k for k in keys if k.startswith("data/")]
    errors = [k for k in keys if k.startswith("errors/")]
    assert len(data) == 1 and data[0].endswith(".parquet"), keys
    assert len(errors) == 1 and errors[0].startswith("errors/format-conversion-failed/"), keys
    assert not errors[0].endswith(".parquet")

    (f,) = fetch(s3, b, data, tmp_path)
    out = read_parquet(f, sql=QUERY)[str(f)]
    rows = out["rows"]
    assert [r["id"] for r in rows] == [1, 2, 3]
    for (_, expected), row in zip(GOOD, rows):
        for c in COLUMNS:
            assert row[c] == expected.get(c), (row["id"], c, row[c], expected.get(c))
    types = {t["column_name"]: t["column_type"] for t in out["types"]}
    assert types["d"] == "DECIMAL(38,10)" and types["d2"] == "DECIMAL(9,2)"
    assert types["dn"] == "DECIMAL(38,9)"
    assert types["ts"] == types["tsl"] == "TIMESTAMP WITH TIME ZONE"
    assert types["li"] == "BIGINT[]" and types["u"] == "UUID" and types["j"] == "JSON"
    assert {m["compression"] for m in out["metadata"]} == {"SNAPPY"}

    # the records that did not convert, alone, each with why
    fr = failed(db, "pq")
    assert sorted(x["data"].decode() for x in fr) == sorted(t for t, _ in BAD)
    why = {x["data"].decode(): x for x in fr}
    for t, word in BAD:
        assert why[t]["error_code"] == "S3.FormatConversionFailed"
        assert word in why[t]["error_message"], (t, why[t]["error_message"])
    assert db.q("SELECT outcome, failed_records, error_code FROM firehose.deliveries "
                "WHERE stream = 'pq'") == [("partial", len(BAD), "S3.FormatConversionFailed")]

    docs = [json.loads(x) for x in s3.get(b, errors[0]).decode().splitlines()]
    assert sorted(base64.b64decode(x["rawData"]).decode() for x in docs) == \
        sorted(t for t, _ in BAD)
    for x in docs:
        assert x["errorCode"] == "S3.FormatConversionFailed"
        assert x["dataCatalogTable"] == {"databaseName": "public", "tableName": "pq_all"}
        assert x["attemptsMade"] == 1 and isinstance(x["arrivalTimestamp"], int)


@pytest.mark.parametrize("opts,codec", [
    ({"compression": "gzip", "writer_version": "v2",
      "enable_dictionary_compression": False}, "GZIP"),
    ({"compression": "zstd", "page_size": "64kB", "block_size": "64kB"}, "ZSTD"),
    ({"compression": "none", "case_insensitive": False}, "UNCOMPRESSED"),
])
def test_codecs_pages_and_row_groups(db, s3, pq_schema, read_parquet, tmp_path, opts, codec):
    """Each codec and page version, several pages and row groups: every record
    back, in order, with its values."""
    b = s3.bucket()
    fmt = dict(FORMAT, **opts)
    s3.stream("pqc", b, format=fmt, buffer_size="8MB",
              error_output_prefix="e/!{firehose:error-output-type}/")
    n = 3000
    recs = [{"id": i, "s": "value %d \u00e9" % (i % 50), "i8": i * 1000003,
             "ls": ["x%d" % (i % 7)] * (i % 4), "d2": "%d.%02d" % (i, i % 100),
             "ts": 1700000000 + i} for i in range(n)]
    # an upper-case key names column s unless case_insensitive is false
    recs[5]["S"] = recs[5].pop("s")
    want_s = [r.get("s", r.get("S")) for r in recs]
    if opts.get("case_insensitive") is False:
        want_s[5] = None
    put_texts(db, "pqc", [json.dumps(r) for r in recs])
    flush(db, "pqc")
    keys = wait_keys(s3, b, 1)
    assert all(k.endswith(".parquet") for k in keys), keys
    files = fetch(s3, b, keys, tmp_path)
    got = read_parquet(*files, sql="SELECT id, s, i8::VARCHAR AS i8, ls, d2::VARCHAR AS d2, "
                       "epoch(ts)::BIGINT AS ts FROM t ORDER BY id")
    rows = [r for f in files for r in got[str(f)]["rows"]]
    assert len(rows) == n
    for r, rec, s in zip(sorted(rows, key=lambda r: r["id"]), recs, want_s):
        assert r["id"] == rec["id"]
        assert r["s"] == s
        assert r["i8"] == str(rec["i8"]) and r["ls"] == rec["ls"]
        assert r["d2"] == rec["d2"] and r["ts"] == str(rec["ts"])
    meta = [m for f in files for m in got[str(f)]["metadata"]]
    assert {m["compression"] for m in meta} == {codec}
    if "block_size" in opts:
        assert len({(f, m["row_group_id"]) for f in files
                    for m in got[str(f)]["metadata"]}) > 1
    if opts.get("enable_dictionary_compression") is False:
        assert not any("DICTIONARY" in m["encodings"] for m in meta)
    assert failed(db, "pqc") == []
