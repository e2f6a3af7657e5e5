"""Processor json_to_csv: JSON objects to CSV lines, read back by Python's csv module.

Each record, a JSON object, becomes one line of the values at the
processor's columns (JSON paths); fields are quoted as RFC 4180 says.  The
strict receiver checks the Firehose HTTP protocol of every request; the S3
tests use the real S3 server (test/s3server.py).
"""

import base64
import csv
import io
import json

import psycopg2
import pytest

from helpers import failed, flush, make_stream
from test_s3 import s3, wait_for_keys  # noqa: F401  (s3 is a fixture)

COLUMNS = ["id", "customer.name", "customer.address.city", "note", "amount", "ok",
           "missing", "items.1.sku", "meta"]

# every kind of field: quotes, commas, CR/LF, unicode, null, nested values
DOCS = [
    {"id": 1, "customer": {"name": "Ada", "address": {"city": "London"}}, "note": "plain",
     "amount": 12.50, "ok": True, "items": [{"sku": "a"}, {"sku": "b-1"}], "meta": None},
    {"id": 2, "customer": {"name": "O'Brien, \"Bob\""}, "note": "line one\nline two",
     "amount": -3, "ok": False, "meta": {"k": "v", "n": [1, 2]}},
    {"id": 3, "customer": {"name": "Zo\u00eb \u2603 \U0001F600"}, "note": "cr\r\nlf",
     "amount": 1e3, "items": [{"sku": "x"}]},
    {"id": 4, "customer": {"name": ""}, "note": "\"\"", "ok": None, "meta": [1, "a,b"]},
    {"id": 5, "customer": "not an object", "note": "tab\there; semi"},
]


def json_text(v):
    """The text jsonb gives a nested value (its JSON, jsonb's spacing)."""
    return json.dumps(v, separators=(", ", ": "), ensure_ascii=False)


def expected_fields(doc, null=""):
    """What each column of doc reads back as."""
    out = []
    for path in COLUMNS:
        v = doc
        for key in path.split("."):
            if isinstance(v, dict) and key in v:
                v = v[key]
            elif isinstance(v, list) and key.isdigit() and int(key) < len(v):
                v = v[int(key)]
            else:
                v = None
                break
        if v is None:
            out.append(null)
        elif v is True or v is False:
            out.append("true" if v else "false")
        elif isinstance(v, str):
            out.append(v)
        elif isinstance(v, (dict, list)):
            out.append(json_text(v))
        else:
            out.append(None)    # a number: as the record wrote it, below
    return out


def put_docs(db, stream, texts):
    return [db.one("SELECT firehose.put(%s, %s::text)", (stream, t)) for t in texts]


def csv_processor(**opts):
    p = {"type": "json_to_csv", "columns": COLUMNS}
    p.update(opts)
    return [p]


def test_json_to_csv_lines_read_back_by_the_csv_module(db, receiver):
    r = receiver()
    make_stream(db, "csv", r.url, processors=csv_processor())
    # numbers as jsonb writes them: 12.50 keeps its scale, 1e3 is 1000
    texts = [json.dumps(d, ensure_ascii=False).replace("12.5,", "12.50,").replace("1000.0", "1e3")
             for d in DOCS]
    put_docs(db, "csv", texts)
    flush(db, "csv")
    r.assert_no_violations()

    lines = r.records()
    assert len(lines) == len(DOCS)
    # one record, one line: the destination's delimiter ends it
    rows = list(csv.reader(io.StringIO(b"\n".join(lines).decode() + "\n", newline="")))
    amounts = {1: "12.50", 2: "-3", 3: "1000", 4: "", 5: ""}
    for doc, row in zip(DOCS, rows):
        want = expected_fields(doc)
        want[COLUMNS.index("amount")] = amounts[doc["id"]]
        want[COLUMNS.index("id")] = str(doc["id"])
        assert row == want
    # nested values read back as the JSON they were
    assert json.loads(rows[1][COLUMNS.index("meta")]) == DOCS[1]["meta"]

    # byte for byte: what Python's csv writer makes of the same fields, but
    # that an empty text is quoted (to tell it from a null, as COPY does)
    for row, line in zip(rows, lines):
        buf = io.StringIO(newline="")
        csv.writer(buf, lineterminator="\r\n").writerow(row)
        written = buf.getvalue()[:-2].encode()
        if row[0] == "4":
            # name "" (a text) is quoted, ok null is not
            assert line == b'4,"",,"""""",,,,,"[1, ""a,b""]"'
        else:
            assert line == written


def test_records_that_are_not_objects_fail_alone(db, receiver):
    r = receiver()
    make_stream(db, "csvbad", r.url,
                processors=[{"type": "json_to_csv", "columns": ["a", "b"]}])
    good = ['{"a": 1, "b": "x"}', '{"b": "y,z"}']
    bad = ['[1, 2]', '42', '"text"', 'not json', '{"a": ', '{"a": 1} trailing']
    put_docs(db, "csvbad", good[:1] + bad + good[1:])
    # invalid UTF-8, and a NUL byte: not JSON either
    db.execute("SELECT firehose.put('csvbad', '\\x7b2261223a2022ff227d'::bytea)")
    db.execute("SELECT firehose.put('csvbad', '\\x7b2261223a2000227d'::bytea)")
    flush(db, "csvbad")
    assert r.records() == [b"1,x", b',"y,z"']
    rows = failed(db, "csvbad", order_by="record_id")
    assert [x["data"] for x in rows] == [t.encode() for t in bad] + \
        [b'{"a": "\xff"}', b'{"a": \x00"}']
    assert {x["error_code"] for x in rows} == {"Processor.ProcessingFailed"}
    assert all(x["error_message"].startswith("The record is not a JSON object")
               for x in rows)
    msgs = [x["error_message"] for x in rows]
    assert "JSON array" in msgs[0] and "JSON scalar" in msgs[1]


def test_options_are_checked_and_normalized(db, receiver):
    r = receiver()

    def error(procs):
        with pytest.raises(psycopg2.Error) as e:
            make_stream(db, "bad", r.url, processors=procs)
        assert e.value.pgcode == "22023"
        return e.value.diag.message_detail

    assert "non-empty array" in error([{"type": "json_to_csv"}])
    assert "non-empty array" in error([{"type": "json_to_csv", "columns": []}])
    assert "column 2 must be a JSON path" in error(
        [{"type": "json_to_csv", "columns": ["a", "b..c"]}])
    assert "column 1 must be a JSON path" in error([{"type": "json_to_csv", "columns": [1]}])
    assert '"delimiter" must be one ASCII character' in error(
        [{"type": "json_to_csv", "columns": ["a"], "delimiter": ";;"}])
    assert '"delimiter" must be one ASCII character' in error(
        [{"type": "json_to_csv", "columns": ["a"], "delimiter": "\n"}])
    assert "must differ" in error(
        [{"type": "json_to_csv", "columns": ["a"], "quote": ","}])
    assert '"null" must not hold' in error(
        [{"type": "json_to_csv", "columns": ["a"], "null": "a,b"}])
    assert '"header" must be true or false' in error(
        [{"type": "json_to_csv", "columns": ["a"], "header": "yes"}])
    assert 'unknown key "quoting"' in error(
        [{"type": "json_to_csv", "columns": ["a"], "quoting": "all"}])

    make_stream(db, "good", r.url, processors=[{"type": "json_to_csv", "columns": ["a.b", "c"]}])
    assert db.one("SELECT options->'processors' FROM firehose.streams WHERE name = 'good'") == \
        [{"type": "json_to_csv", "columns": ["a.b", "c"], "delimiter": ",", "quote": '"',
          "null": "", "header": False}]


def test_s3_objects_start_with_the_header(db, s3):
    """With header, every object starts with the header line; delimiter,
    quote and null are the processor's.  The object reads back with the csv
    module, a string equal to the null text quoted."""
    b = s3.bucket()
    proc = [{"type": "json_to_csv", "columns": ["id", "who;name", "v"], "delimiter": ";",
             "quote": "'", "null": "NULL", "header": True}]
    # a small buffer: three objects, each with its header
    s3.stream("csvs3", b, processors=proc, buffer_size=60, buffer_interval=60000)
    docs = [{"id": i, "who;name": "it's %d; ok" % i, "v": "NULL" if i % 2 else None}
            for i in range(6)]
    db.execute("SELECT firehose.put_batch('csvs3', %s::text[])",
               ([json.dumps(d) for d in docs],))
    flush(db, "csvs3")
    keys = wait_for_keys(s3, b, 1)
    assert len(keys) > 1
    got = []
    for key in keys:
        body = s3.get(b, key)
        assert body.startswith(b"id;'who;name';v\n")
        rows = list(csv.reader(io.StringIO(body.decode(), newline=""), delimiter=";",
                               quotechar="'"))
        assert rows[0] == ["id", "who;name", "v"]
        got += rows[1:]
        # the text "NULL" is quoted, the null is not
        for line in body.split(b"\n")[1:-1]:
            assert line.endswith(b";'NULL'") or line.endswith(b";NULL")
    want = [[str(d["id"]), d["who;name"], "NULL"] for d in docs]
    assert sorted(got) == sorted(want)
    quoted = [line for key in keys for line in s3.get(b, key).split(b"\n")
              if line.endswith(b";'NULL'")]
    assert len(quoted) == 3


def test_each_partitioned_object_starts_with_the_header(db, s3):
    """A part split into objects by dynamic partitioning: every object starts
    with the header line, not only the one holding the part's first record
    (the others had none: fails on the old code for the g=b and g=c
    objects).  The keys come from a processor function before json_to_csv."""
    db.execute("CREATE SCHEMA app")
    db.execute("""CREATE FUNCTION app.route(r firehose.record) RETURNS firehose.processed
        LANGUAGE sql AS $$
        SELECT ROW('Ok', r.data,
                   jsonb_build_object('g', convert_from(r.data, 'UTF8')::jsonb->>'g'))
               ::firehose.processed $$""")
    b = s3.bucket()
    proc = [{"type": "function", "function": "app.route"},
            {"type": "json_to_csv", "columns": ["id", "g"], "header": True}]
    s3.stream("csvp", b, processors=proc, prefix="g=!{partitionKeyFromLambda:g}/",
              error_output_prefix="err/!{firehose:error-output-type}/", buffer_interval=60000)
    docs = [{"id": i, "g": "abc"[i % 3]} for i in range(9)]
    db.execute("SELECT firehose.put_batch('csvp', %s::text[])",
               ([json.dumps(d) for d in docs],))
    flush(db, "csvp")
    keys = wait_for_keys(s3, b, 3, prefix="g=")
    assert sorted({k.split("/")[0] for k in keys}) == ["g=a", "g=b", "g=c"]
    assert len(keys) == 3, keys     # one part: one object per prefix
    got = []
    for key in keys:
        body = s3.get(b, key)
        assert body.startswith(b"id,g\n"), (key, body)
        rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
        assert rows[0] == ["id", "g"]
        assert {r[1] for r in rows[1:]} == {key.split("/")[0][2:]}
        got += rows[1:]
    assert sorted(got) == sorted([str(d["id"]), d["g"]] for d in docs)


def test_s3_destination_writes_processing_failures_under_its_error_prefix(db, s3):
    """An S3 destination (no backup store) writes the error records of the
    records the processor failed under its own error prefix, type
    processing-failed, as Firehose does; the CSV object holds the others."""
    b = s3.bucket()
    s3.stream("csverr", b, processors=[{"type": "json_to_csv", "columns": ["a"]}],
              buffer_interval=60000)
    db.execute("SELECT firehose.put_batch('csverr', %s::text[])",
               (['{"a": "x"}', '[1]', '{"a": "y"}', 'nope'],))
    flush(db, "csverr")
    keys = wait_for_keys(s3, b, 2)
    (err_key,) = [k for k in keys if k.startswith("processing-failed/")]
    (data_key,) = [k for k in keys if k != err_key]
    assert s3.get(b, data_key) == b"x\ny\n"
    docs = [json.loads(x) for x in s3.get(b, err_key).decode().splitlines()]
    assert [base64.b64decode(d["rawData"]) for d in docs] == [b"[1]", b"nope"]
    assert {d["errorCode"] for d in docs} == {"Processor.ProcessingFailed"}
    assert sorted(x["data"] for x in failed(db, "csverr")) == [b"[1]", b"nope"]
