"""Dynamic partitioning of the S3 destination (firehose.md 3.5).

Streams write to the real S3 server (test/s3server.py); every object is read
back with boto3 and compared with what was put.  The prefix names partition
keys: !{partitionKeyFromQuery:name} from option partition_keys (a jsonpath
per key, evaluated on each JSON record) and !{partitionKeyFromLambda:name}
from the partition_keys a processor function returns.  A part's records go
up as one object per evaluated prefix; records whose key is missing or not
a scalar, and records of prefixes beyond max_active_partitions, fail alone
(failed_records) and their error records go under the error prefix
(partitioning-failed, activePartitionExceeded).

Zero buffering is refused with dynamic partitioning, so the streams here
buffer for an hour and are delivered by flush().
"""

import base64
import collections
import datetime
import json
import re
import socket
import threading
import time

import pytest

from helpers import failed, flush, put_texts
from test_s3 import UUID_RE, s3  # noqa: F401  (the fixture)

UTC = datetime.timezone.utc
# dynamic partitioning needs buffering: flush() delivers
SLOW = {"buffer_interval": "1 hour"}
ERRORS = "errors/!{firehose:error-output-type}/"
BY_CUSTOMER = "data/customer=!{partitionKeyFromQuery:customer}/dt=!{timestamp:yyyy-MM-dd}/"


def lines(data):
    return [x for x in data.split(b"\n") if x]


def objects(s3, bucket, prefix=""):
    """{key: [record lines]} of every object under prefix."""
    return {k: lines(s3.get(bucket, k)) for k in s3.keys(bucket, prefix)}


def error_records(s3, bucket, prefix):
    out = []
    for k in s3.keys(bucket, prefix):
        out += [json.loads(x) for x in lines(s3.get(bucket, k))]
    return out


def today_range(before, after):
    return {before.strftime("%Y-%m-%d"), after.strftime("%Y-%m-%d")}


def test_hundred_thousand_records_by_customer_and_day(db, s3):
    """100,000 JSON records of 50 customers with a day field: every object lies
    under customer=<its records' customer>/dt=<arrival day>/, one object per
    prefix per part, and the union of all objects is exactly what was put."""
    b = s3.bucket()
    s3.stream("dp", b, prefix=BY_CUSTOMER, error_output_prefix=ERRORS,
              partition_keys={"customer": "$.customer"}, max_concurrency=4, **SLOW)
    before = datetime.datetime.now(UTC)
    put = []
    for chunk in range(10):
        texts = [json.dumps({"id": i, "customer": "c%02d" % (i % 50),
                             "day": "2024-01-%02d" % (1 + i % 28), "v": "x" * (i % 7)})
                 for i in range(chunk * 10000, (chunk + 1) * 10000)]
        put_texts(db, "dp", texts)
        put += texts
    flush(db, "dp", timeout="300s")
    after = datetime.datetime.now(UTC)

    objs = objects(s3, b)
    days = today_range(before, after)
    pattern = re.compile(r"data/customer=(c\d\d)/dt=(\d{4}-\d{2}-\d{2})/dp-1-"
                         r"(\d{4}-\d{2}-\d{2})-\d{2}-\d{2}-\d{2}-" + UUID_RE)
    seen = []
    per_prefix = collections.Counter()
    for key, recs in objs.items():
        m = pattern.fullmatch(key)
        assert m, "key %r is not under data/customer=../dt=../" % key
        assert m.group(2) in days and m.group(3) == m.group(2), key
        per_prefix[m.group(1)] += 1
        for r in recs:
            assert json.loads(r)["customer"] == m.group(1), (key, r)
        seen += recs
    # the union of all objects is the committed set, each record once
    assert sorted(seen) == sorted(t.encode() for t in put)
    assert set(per_prefix) == {"c%02d" % i for i in range(50)}

    # deliveries: one object per customer in each part
    rows = db.q("SELECT records, objects, outcome FROM firehose.deliveries "
                "WHERE stream = 'dp' ORDER BY id")
    assert sum(r[0] for r in rows) == 100000
    assert all(r[1] == 50 and r[2] == "delivered" for r in rows), rows
    assert sum(r[1] for r in rows) == len(objs)
    (st,) = db.q("SELECT delivered_records, failed_records, active_partitions, "
                "partitions_exceeded FROM firehose.stream_status WHERE stream = 'dp'")
    assert tuple(st) == (100000, 0, 0, False)
    assert failed(db, "dp") == []


def test_missing_keys_and_partitions_beyond_the_limit(db, s3):
    """Records without the key, with an object as key, not JSON, or with a value
    that may not go into a key fail alone under partitioning-failed; with
    max_active_partitions 3 the records of a fourth and fifth customer fail
    under activePartitionExceeded.  Both are in failed_records, and their
    error records (firehose.md 3.8) carry the original data."""
    b = s3.bucket()
    s3.stream("lim", b, prefix=BY_CUSTOMER, error_output_prefix=ERRORS,
              partition_keys={"customer": "$.who.name"}, max_active_partitions=3, **SLOW)

    def rec(i, name):
        return json.dumps({"id": i, "who": {"name": name}})
    good = [rec(i, "c%d" % (i % 3)) for i in range(30)]          # c0 c1 c2 first
    over = [rec(100 + i, "c%d" % (3 + i % 2)) for i in range(10)]  # c3 c4: beyond
    missing = [json.dumps({"id": 200}), json.dumps({"id": 201, "who": {"name": None}}),
               json.dumps({"id": 202, "who": {"name": {"x": 1}}}),
               json.dumps({"id": 203, "who": {"name": "a..b"}}), "not json"]
    put_texts(db, "lim", good + over + missing)
    flush(db, "lim")

    data = objects(s3, b, "data/")
    assert {re.match(r"data/customer=(c\d)/", k).group(1) for k in data} == {"c0", "c1", "c2"}
    assert sorted(r for recs in data.values() for r in recs) == sorted(t.encode() for t in good)

    exceeded = error_records(s3, b, "errors/activePartitionExceeded/")
    assert sorted(base64.b64decode(e["rawData"]) for e in exceeded) == \
        sorted(t.encode() for t in over)
    assert {e["errorCode"] for e in exceeded} == \
        {"DynamicPartitioning.ActivePartitionsLimitExceeded"}
    part_failed = error_records(s3, b, "errors/partitioning-failed/")
    assert sorted(base64.b64decode(e["rawData"]) for e in part_failed) == \
        sorted(t.encode() for t in missing)
    assert {e["errorCode"] for e in part_failed} == \
        {"DynamicPartitioning.MetadataExtractionFailed"}
    assert set(s3.keys(b)) == set(data) | set(s3.keys(b, "errors/"))

    rows = {bytes(r["data"]): r for r in failed(db, "lim")}
    assert sorted(rows) == sorted(t.encode() for t in over + missing)
    for t in over:
        assert rows[t.encode()]["error_code"] == \
            "DynamicPartitioning.ActivePartitionsLimitExceeded"
    msgs = {json.loads(t).get("id", "nj") if t != "not json" else "nj":
            rows[t.encode()]["error_message"] for t in missing}
    assert "has no value for partition key \"customer\"" in msgs[200]
    assert "has no value for partition key \"customer\"" in msgs[201]
    assert "is not a scalar" in msgs[202]
    assert "contains \"..\"" in msgs[203]
    assert "not JSON" in msgs["nj"]

    ((objs, outcome, nfailed),) = db.q(
        "SELECT objects, outcome, failed_records FROM firehose.deliveries WHERE stream = 'lim'")
    assert (objs, outcome, nfailed) == (3, "partial", len(over) + len(missing))
    assert [tuple(r) for r in db.q(
        "SELECT partitions_exceeded, failed_records FROM firehose.stream_status "
        "WHERE stream = 'lim'")] == [(True, len(over) + len(missing))]


def test_keys_from_a_processor_function(db, s3):
    """!{partitionKeyFromLambda:name} takes the partition_keys a processor
    function returns beside the record, next to a query key on the record
    the processor made; a record the processor gives no key fails alone."""
    db.execute("CREATE SCHEMA app")
    db.execute("""CREATE FUNCTION app.route(r firehose.record) RETURNS firehose.processed
        LANGUAGE sql AS $$
        SELECT ROW('Ok', convert_to((convert_from(r.data, 'UTF8')::jsonb
                                     || '{"seen": true}')::text, 'UTF8'),
                   CASE WHEN convert_from(r.data, 'UTF8')::jsonb ? 'region'
                        THEN jsonb_build_object('region',
                               upper(convert_from(r.data, 'UTF8')::jsonb->>'region'),
                               'n', (convert_from(r.data, 'UTF8')::jsonb->'id')::int % 2)
                   END)::firehose.processed $$""")
    b = s3.bucket()
    s3.stream("lam", b, error_output_prefix=ERRORS,
              prefix="r=!{partitionKeyFromLambda:region}/n=!{partitionKeyFromLambda:n}/"
                     "s=!{partitionKeyFromQuery:seen}/",
              partition_keys={"seen": "$.seen"},
              processors=[{"type": "function", "function": "app.route"}], **SLOW)
    recs = [{"id": i, "region": "eu" if i % 3 else "us"} for i in range(12)]
    recs.append({"id": 99})
    put_texts(db, "lam", [json.dumps(r) for r in recs])
    flush(db, "lam")

    data = objects(s3, b, "r=")
    got = collections.defaultdict(list)
    for k, rs in data.items():
        m = re.match(r"r=(EU|US)/n=([01])/s=true/\d{4}/\d{2}/\d{2}/\d{2}/lam-1-", k)
        assert m, k
        for r in rs:
            got[(m.group(1), m.group(2))].append(json.loads(r)["id"])
    expected = collections.defaultdict(list)
    for r in recs[:-1]:
        expected[(r["region"].upper(), str(r["id"] % 2))].append(r["id"])
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in expected.items()}
    (row,) = failed(db, "lam")
    assert row["data"] == b'{"id": 99}'
    assert row["error_code"] == "DynamicPartitioning.MetadataExtractionFailed"
    assert "processors gave no partition key \"region\"" in row["error_message"]
    (e,) = error_records(s3, b, "errors/partitioning-failed/")
    # the error record holds what the processor made of the record
    assert json.loads(base64.b64decode(e["rawData"])) == {"id": 99, "seen": True}


def test_parquet_one_file_per_prefix(db, s3, read_parquet, tmp_path):
    """With format parquet, each prefix of a part gets its own Parquet file,
    which DuckDB reads back with the records of that prefix alone."""
    db.execute("CREATE TABLE public.dp_events (id int8, customer text, amount numeric(10,2))")
    try:
        b = s3.bucket()
        s3.stream("dpq", b, prefix="pq/customer=!{partitionKeyFromQuery:c}/",
                  error_output_prefix=ERRORS, partition_keys={"c": "$.customer"},
                  format={"type": "parquet", "schema": "public.dp_events",
                          "block_size": "1MB"}, **SLOW)
        recs = [{"id": i, "customer": "k%d" % (i % 4), "amount": i / 4} for i in range(400)]
        recs.append({"id": 1000, "customer": "k0", "amount": "not a number"})
        put_texts(db, "dpq", [json.dumps(r) for r in recs])
        flush(db, "dpq")

        keys = s3.keys(b, "pq/")
        assert len(keys) == 4 and all(k.endswith(".parquet") for k in keys), keys
        for i, k in enumerate(keys):
            customer = re.match(r"pq/customer=(k\d)/", k).group(1)
            p = tmp_path / ("%d.parquet" % i)
            p.write_bytes(s3.get(b, k))
            rows = read_parquet(p, sql="SELECT id, customer, amount::VARCHAR AS amount "
                                       "FROM t ORDER BY id")[str(p)]["rows"]
            want = [r for r in recs[:-1] if r["customer"] == customer]
            assert [(r["id"], r["customer"], r["amount"]) for r in rows] == \
                [(str(r["id"]), r["customer"], "%.2f" % r["amount"]) for r in want]
        # the record that did not convert: under format-conversion-failed
        (row,) = failed(db, "dpq")
        assert row["error_code"] == "S3.FormatConversionFailed"
        (e,) = error_records(s3, b, "errors/format-conversion-failed/")
        assert json.loads(base64.b64decode(e["rawData"]))["id"] == 1000
        assert db.one("SELECT objects FROM firehose.deliveries WHERE stream = 'dpq'") == 4
    finally:
        s3.drop_all()
        db.execute("DROP TABLE public.dp_events")


class Hold:
    """A TCP server on loopback that accepts connections and never answers:
    requests to it stay in flight, so what the worker keeps open shows."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                pass

    def open_connections(self):
        n = 0
        for c in self.conns:
            try:
                c.setblocking(False)
                if c.recv(1, socket.MSG_PEEK) == b"":
                    continue    # closed by the worker
            except BlockingIOError:
                pass
            except OSError:
                continue
            n += 1
        return n

    def close(self):
        self.stop = True
        self.thread.join()
        for c in self.conns:
            c.close()
        self.sock.close()


def test_objects_in_flight_within_max_concurrency(db, s3, wait_until):
    """A part split into six objects sends them max_concurrency (2) at a time,
    and stream_status shows its six active partitions while they are out."""
    hold = Hold()
    try:
        db.execute("SELECT firehose.create_stream('held', 's3', %s::jsonb)", (json.dumps({
            "bucket": "held-bucket", "endpoint": "http://127.0.0.1:%d" % hold.port,
            "path_style": True, "access_key_id": "AKIDEXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "prefix": "c=!{partitionKeyFromQuery:c}/", "error_output_prefix": ERRORS,
            "partition_keys": {"c": "$.c"}, "max_concurrency": 2,
            "request_timeout": "5 minutes", "buffer_interval": "1 hour"}),))
        s3.names.append("held")
        put_texts(db, "held", [json.dumps({"c": i % 6}) for i in range(60)])
        db.execute("SELECT firehose.flush('held')")
        wait_until(lambda: db.one("SELECT active_partitions FROM firehose.stream_status "
                                  "WHERE stream = 'held'") == 6,
                   message="six active partitions")
        wait_until(lambda: hold.open_connections() == 2, message="two requests in flight")
        # a generous while later, still no third request
        time.sleep(2)
        assert hold.open_connections() == 2
        assert len(hold.conns) == 2
    finally:
        s3.drop_all()
        hold.close()
