"""Delivery from SQL to an HTTP endpoint: what arrives, how it is framed, batched and reported.

Every stream here uses a small retry_base/retry_max so a retry never slows a
test down, and buffer_interval 0 unless the test is about the interval.
Records are compared as bytes against what was put.
"""

import base64
import json
import random
import time
import uuid

import psycopg2
import pytest

from helpers import flush, make_stream, put_texts, setting






def header(req, name):
    """A request header by case-insensitive name (None when absent)."""
    for k, v in req["headers"].items():
        if k.lower() == name.lower():
            return v
    return None



# -- what arrives -------------------------------------------------------------

def test_text_bytea_jsonb_records_arrive_byte_exact(db, receiver):
    r = receiver()
    make_stream(db, "types", r.url)
    every_byte = bytes(range(256))
    jsonb_in = '{"b": 2, "a": [1, 2.50, "x\\u00e9"], "n": null}'
    ids = []
    ids.append(db.one("SELECT firehose.put('types', %s::text)", ("plain text",)))
    ids.append(db.one("SELECT firehose.put('types', %s::text)",
                      ("h\u00e9llo \u2713 \"quoted\" \\ back\nnew line\ttab",)))
    ids.append(db.one("SELECT firehose.put('types', %s::bytea)", (psycopg2.Binary(every_byte),)))
    ids.append(db.one("SELECT firehose.put('types', %s::bytea)", (psycopg2.Binary(b""),)))
    ids.append(db.one("SELECT firehose.put('types', %s::jsonb)", (jsonb_in,)))
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == 5
    flush(db, "types")

    jsonb_text = db.one("SELECT %s::jsonb::text", (jsonb_in,)).encode()
    expected = [b"plain text",
                "h\u00e9llo \u2713 \"quoted\" \\ back\nnew line\ttab".encode(),
                every_byte, b"", jsonb_text]
    assert r.records() == expected
    r.assert_no_violations()
    assert r.stats()["rejected"] == 0


def test_put_batch_of_each_type_arrives_byte_exact(db, receiver):
    r = receiver()
    make_stream(db, "batch", r.url)
    texts = ["t%d-\u00fc" % i for i in range(50)]
    blobs = [bytes([i, 0, 255 - i]) * (i + 1) for i in range(50)]
    docs = ['{"i": %d, "k": "v%d"}' % (i, i) for i in range(50)]
    assert db.one("SELECT firehose.put_batch('batch', %s::text[])", (texts,)) == 50
    assert db.one("SELECT firehose.put_batch('batch', %s::bytea[])",
                  ([psycopg2.Binary(b) for b in blobs],)) == 50
    assert db.one("SELECT firehose.put_batch('batch', %s::jsonb[])", (docs,)) == 50
    flush(db, "batch")

    docs_text = [d[0].encode() for d in db.q("SELECT d::jsonb::text FROM unnest(%s::text[]) d",
                                             (docs,))]
    assert r.records() == [t.encode() for t in texts] + blobs + docs_text
    r.assert_no_violations()


def test_rolled_back_transaction_delivers_nothing(db, receiver):
    r = receiver()
    make_stream(db, "tx", r.url)
    c = db.conn(autocommit=False)
    cur = c.cursor()
    cur.execute("SELECT firehose.put_batch('tx', %s::text[])", (["rb-1", "rb-2"],))
    c.rollback()
    cur.execute("SELECT firehose.put('tx', 'kept-1'::text)")
    cur.execute("SAVEPOINT s")
    cur.execute("SELECT firehose.put('tx', 'sub-rolled-back'::text)")
    cur.execute("ROLLBACK TO SAVEPOINT s")
    cur.execute("SAVEPOINT s2")
    cur.execute("SELECT firehose.put('tx', 'sub-released'::text)")
    cur.execute("RELEASE SAVEPOINT s2")
    c.commit()
    cur.execute("SELECT firehose.put('tx', 'rb-3'::text)")
    c.rollback()
    flush(db, "tx")
    assert r.records() == [b"kept-1", b"sub-released"]
    assert db.one("SELECT delivered_records FROM firehose.stream_status WHERE stream = 'tx'") == 2
    assert db.one("SELECT buffered_records + in_flight_records FROM firehose.stream_status "
                  "WHERE stream = 'tx'") == 0


def test_uncommitted_records_wait_for_commit(db, receiver):
    """Records of an open transaction are not delivered by a flush; they are after commit."""
    r = receiver()
    make_stream(db, "open", r.url)
    c = db.conn(autocommit=False)
    cur = c.cursor()
    cur.execute("SELECT firehose.put('open', 'late'::text)")
    put_texts(db, "open", ["early"])
    flush(db, "open")
    assert r.records() == [b"early"]
    c.commit()
    flush(db, "open")
    assert r.records() == [b"early", b"late"]


# -- headers and body ---------------------------------------------------------

def test_firehose_headers_access_key_common_attributes(db, receiver):
    r = receiver(access_key="k3y/+=.xyz")
    attrs = {"env": "test", "team": "data \u00e9", "empty": ""}
    make_stream(db, "hdr", r.url, access_key="k3y/+=.xyz", common_attributes=attrs)
    put_texts(db, "hdr", ["a", "b"])
    flush(db, "hdr")
    assert r.records() == [b"a", b"b"]
    (req,) = r.requests()
    assert req["status"] == 200 and req["outcome"] == "ok"
    assert header(req, "X-Amz-Firehose-Access-Key") == "k3y/+=.xyz"
    assert header(req, "X-Amz-Firehose-Protocol-Version") == "1.0"
    assert header(req, "Content-Type") == "application/json"
    assert header(req, "Content-Encoding") is None
    # http.server decodes header bytes as ISO-8859-1; the value was sent as UTF-8
    ca = header(req, "X-Amz-Firehose-Common-Attributes").encode("latin-1").decode("utf-8")
    assert json.loads(ca) == {"commonAttributes": attrs}
    rid = header(req, "X-Amz-Firehose-Request-Id")
    assert str(uuid.UUID(rid)) == rid
    assert db.one("SELECT request_id::text FROM firehose.deliveries WHERE stream = 'hdr'") == rid
    r.assert_no_violations()


def test_no_optional_headers_when_not_configured(db, receiver):
    r = receiver()
    make_stream(db, "bare", r.url)
    put_texts(db, "bare", ["x"])
    flush(db, "bare")
    (req,) = r.requests()
    for h in ("X-Amz-Firehose-Access-Key", "X-Amz-Firehose-Common-Attributes",
              "Content-Encoding"):
        assert header(req, h) is None, h


def test_gzip_content_encoding(db, receiver):
    r = receiver()
    make_stream(db, "gz", r.url, content_encoding="gzip")
    recs = ["gzip record %d " % i + "z" * i for i in range(300)]
    put_texts(db, "gz", recs)
    flush(db, "gz")
    assert r.records() == [x.encode() for x in recs]
    reqs = r.requests()
    assert reqs and all(header(q, "Content-Encoding") == "gzip" for q in reqs)
    # the body on the wire was compressed: far smaller than the JSON it holds
    assert sum(int(header(q, "Content-Length")) for q in reqs) < sum(map(len, recs)) / 2
    r.assert_no_violations()


def test_request_body_shape_and_request_id(db, receiver):
    """The exact body, captured by a raw-mode receiver (which then answers an
    invalid Firehose response, so the part fails at once with retry_duration 0)."""
    cap = receiver("raw")
    make_stream(db, "shape", cap.url, retry_duration=0, content_encoding="gzip")
    t0 = int(time.time() * 1000)
    put_texts(db, "shape", ["one", "two", ""])
    flush(db, "shape")
    t1 = int(time.time() * 1000)
    (req,) = cap.requests()
    rid = header(req, "X-Amz-Firehose-Request-Id")
    body = json.loads(base64.b64decode(req["body_b64"]))     # gunzipped by the receiver
    assert set(body) == {"requestId", "timestamp", "records"}
    assert body["requestId"] == rid
    assert isinstance(body["timestamp"], int) and t0 - 1000 <= body["timestamp"] <= t1 + 1000
    assert body["records"] == [{"data": base64.b64encode(x).decode()}
                               for x in (b"one", b"two", b"")]
    row = db.q("SELECT request_id::text, error_code FROM firehose.failed_records "
               "WHERE stream = 'shape' ORDER BY id")
    assert [x[0] for x in row] == [rid] * 3
    assert row[0][1] == "HttpEndpoint.InvalidResponseFromDestination"


# -- raw format ---------------------------------------------------------------

def test_raw_ndjson_with_custom_headers(db, receiver):
    r = receiver("raw")
    make_stream(db, "raw", r.url, format="raw",
                headers={"Authorization": "Bearer s3cr3t-token", "X-Custom": "yes"})
    docs = ['{"n": %d}' % i for i in range(5)]
    db.execute("SELECT firehose.put_batch('raw', %s::jsonb[])", (docs,))
    flush(db, "raw")
    (req,) = r.requests()
    assert header(req, "Authorization") == "Bearer s3cr3t-token"
    assert header(req, "X-Custom") == "yes"
    assert header(req, "Content-Type") == "application/x-ndjson"
    assert header(req, "X-Amz-Firehose-Request-Id") is None
    assert r.records() == [b"".join(b'{"n": %d}\n' % i for i in range(5))]
    assert db.one("SELECT outcome FROM firehose.deliveries WHERE stream = 'raw'") == "delivered"


def test_raw_custom_delimiter_and_content_type(db, receiver):
    r = receiver("raw")
    make_stream(db, "rawd", r.url, format="raw", delimiter="\r\n--\r\n",
                headers={"Content-Type": "text/plain; charset=utf-8"})
    recs = ["alpha", "b\u00e9ta", "", "gamma"]
    put_texts(db, "rawd", recs)
    flush(db, "rawd")
    (req,) = r.requests()
    assert header(req, "Content-Type") == "text/plain; charset=utf-8"
    assert r.records() == [b"".join(x.encode() + b"\r\n--\r\n" for x in recs)]


def test_raw_gzip(db, receiver):
    r = receiver("raw")
    make_stream(db, "rawgz", r.url, format="raw", content_encoding="gzip")
    put_texts(db, "rawgz", ["x" * 1000, "y"])
    flush(db, "rawgz")
    (req,) = r.requests()
    assert header(req, "Content-Encoding") == "gzip"
    assert r.records() == [b"x" * 1000 + b"\n" + b"y\n"]


def across_buffers_records(tiny, tiny_max):
    """Records of every size from empty to larger than curl's 512 kB upload
    buffer, then tiny ones (up to tiny_max bytes), so that the later buffer
    ends fall at every place of a record and of its delimiter: random
    bytes, the same each run."""
    rnd = random.Random(13)
    sizes = [0, 1, 2, 700 * 1024, 3, 524283, 0, 524288, 524290, 1]
    sizes += [rnd.randrange(0, 40000) for _ in range(100)]
    sizes += [rnd.randrange(0, tiny_max + 1) for _ in range(tiny)]
    return [rnd.randbytes(n) for n in sizes]


@pytest.mark.parametrize("fmt", ["raw", "firehose"])
def test_bodies_across_upload_buffers_arrive_byte_exact(db, receiver, fmt):
    """A body of many of curl's upload buffers is written into each buffer
    record by record while records fit whole, and a record (or delimiter)
    that does not is sent across buffers: every byte arrives, in order, for
    both formats, with a delimiter longer than one byte."""
    # the Firehose format takes at most 10,000 records a request
    recs = across_buffers_records(400000, 7) if fmt == "raw" else across_buffers_records(9800, 300)
    r = receiver("raw" if fmt == "raw" else "firehose")
    opts = {"buffer_size": 16 * 1024 * 1024}
    if fmt == "raw":
        opts.update(format="raw", delimiter="\r\n--\r\n")
    make_stream(db, "across", r.url, **opts)
    assert db.one("SELECT firehose.put_batch('across', %s::bytea[])",
                  ([psycopg2.Binary(b) for b in recs],)) == len(recs)
    flush(db, "across")
    assert len(r.requests()) == 1
    if fmt == "raw":
        assert r.records() == [b"".join(x + b"\r\n--\r\n" for x in recs)]
    else:
        assert r.records() == recs
        r.assert_no_violations()
    assert db.one("SELECT sum(bytes) FROM firehose.deliveries WHERE stream = 'across'") == \
        sum(map(len, recs))


# -- batching -----------------------------------------------------------------

def test_buffer_size_splits_a_flush_into_requests(db, receiver):
    r = receiver()
    make_stream(db, "bs", r.url, buffer_size=1000)
    recs = ["%03d" % i + "r" * 97 for i in range(50)]          # 100 bytes each
    put_texts(db, "bs", recs)
    flush(db, "bs")
    reqs = r.requests(records=True)
    assert r.records() == [x.encode() for x in recs]
    assert len(reqs) >= 5
    for q in reqs:
        assert q["records"] and sum(map(len, q["records"])) <= 1000, \
            "request of %d bytes, buffer_size 1000" % sum(map(len, q["records"]))
    rows = db.q("SELECT records, bytes FROM firehose.deliveries WHERE stream = 'bs'")
    assert sum(x[0] for x in rows) == 50 and sum(x[1] for x in rows) == 5000
    assert all(x[1] <= 1000 for x in rows)
    r.assert_no_violations()


def test_buffer_size_reached_cuts_without_flush(db, receiver):
    """Below buffer_size (and long before buffer_interval) nothing is sent; crossing it sends."""
    r = receiver()
    other = receiver()
    make_stream(db, "bs2", r.url, buffer_size=1000, buffer_interval=600000)
    make_stream(db, "barrier", other.url)
    flush(db, "bs2")                                          # the worker knows the stream
    put_texts(db, "bs2", ["a" * 100] * 5)                     # 500 bytes < 1000
    # barrier: the worker has had a pass over both streams once this is delivered
    put_texts(db, "barrier", ["b"])
    flush(db, "barrier")
    assert other.records() == [b"b"]
    assert r.stats()["received"] == 0
    assert db.one("SELECT buffered_records FROM firehose.stream_status WHERE stream = 'bs2'") == 5

    put_texts(db, "bs2", ["c" * 100] * 6)                     # now 1100 bytes
    r.wait_records(11, timeout=20)
    assert sorted(r.records()) == sorted([b"a" * 100] * 5 + [b"c" * 100] * 6)
    for q in r.requests(records=True):
        assert sum(map(len, q["records"])) <= 1000


def test_buffer_interval_sends_without_flush(db, receiver):
    r = receiver()
    make_stream(db, "bi", r.url, buffer_interval=1500)
    flush(db, "bi")     # a worker runs and knows the stream (a starting worker cuts at once)
    t0 = time.time()
    put_texts(db, "bi", ["i1", "i2", "i3"])
    t1 = time.time()
    r.wait_records(3, timeout=20)
    first = min(q["time"] for q in r.requests())
    assert first - t0 >= 1.4, "sent %.2fs after the commit, buffer_interval 1.5s" % (first - t0)
    assert first - t1 <= 1.5 + 3.0, "sent %.2fs after the commit" % (first - t1)
    assert r.records() == [b"i1", b"i2", b"i3"]


@pytest.fixture
def short_naptime(pg, wait_until):
    """firehose.naptime set to 200 ms for the test (the worker's probe of every
    stream then runs every 2 s)."""
    c = pg()
    cur = c.cursor()
    try:
        cur.execute("ALTER SYSTEM SET firehose.naptime = 200")
        cur.execute("SELECT pg_reload_conf()")
        wait_until(lambda: setting(pg, "firehose.naptime") == "200ms",
                   message="naptime not reloaded")
        yield
    finally:
        cur.execute("ALTER SYSTEM RESET firehose.naptime")
        cur.execute("SELECT pg_reload_conf()")
        c.close()


def test_buffer_interval_is_not_shortened_by_the_safety_pass(db, receiver, short_naptime):
    """The worker's periodic passes (firehose.naptime) must not cut a batch
    before buffer_interval: with naptime 200 ms and buffer_interval 3 s, records
    arrive about 3 s after their commit, not 0.2 s."""
    r = receiver()
    make_stream(db, "nap", r.url, buffer_interval=3000)
    flush(db, "nap")
    t0 = time.time()
    put_texts(db, "nap", ["n1", "n2"])
    r.wait_records(2, timeout=20)
    waited = r.requests()[0]["time"] - t0
    assert waited >= 2.9, "sent %.2fs after the commit, buffer_interval 3s" % waited
    assert r.records() == [b"n1", b"n2"]


def test_buffer_interval_accepts_interval_string(db, receiver):
    r = receiver()
    make_stream(db, "bis", r.url, buffer_interval="1 second")
    assert db.one("SELECT options->'buffer_interval' FROM firehose.streams "
                  "WHERE name = 'bis'") == 1000
    flush(db, "bis")
    t0 = time.time()
    put_texts(db, "bis", ["s"])
    r.wait_records(1, timeout=20)
    assert r.requests()[0]["time"] - t0 >= 0.9


def test_more_than_10000_records_split_into_requests(db, receiver):
    r = receiver()
    make_stream(db, "big", r.url)
    n = db.one("SELECT firehose.put_batch('big', array_agg('rec-' || g ORDER BY g)) "
               "FROM generate_series(1, 25000) g")
    assert n == 25000
    flush(db, "big")
    reqs = r.requests()
    assert len(reqs) >= 3
    assert max(q["n_records"] for q in reqs) <= 10000
    assert sum(q["n_records"] for q in reqs) == 25000
    assert r.records() == [b"rec-%d" % g for g in range(1, 25001)]
    assert db.one("SELECT sum(records) FROM firehose.deliveries WHERE stream = 'big'") == 25000
    r.assert_no_violations()


def max_overlap(reqs, hold):
    """Most requests in progress at once, each taking `hold` seconds from its arrival."""
    times = sorted(q["time"] for q in reqs)
    return max(sum(1 for u in times if u <= t < u + hold) for t in times)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_max_concurrency(db, receiver, concurrency):
    r = receiver()
    r.faults([{"delay": 1.0}])
    make_stream(db, "conc", r.url, buffer_size=200, max_concurrency=concurrency)
    recs = ["%02d" % i + "c" * 148 for i in range(8 if concurrency > 1 else 3)]  # 1 per request
    put_texts(db, "conc", recs)
    flush(db, "conc")
    reqs = r.requests()
    assert len(reqs) == len(recs)
    assert sorted(r.records()) == sorted(x.encode() for x in recs)
    overlap = max_overlap(reqs, 0.9)
    if concurrency == 1:
        assert overlap == 1
        assert r.records() == [x.encode() for x in recs]       # in order
    else:
        assert 2 <= overlap <= concurrency, "max %d requests at once" % overlap


# -- pause / resume -----------------------------------------------------------

def test_pause_keeps_records_and_resume_delivers(db, receiver):
    r = receiver()
    other = receiver()
    make_stream(db, "p", r.url)
    make_stream(db, "barrier", other.url)
    db.execute("SELECT firehose.pause('p')")
    assert db.one("SELECT status FROM firehose.streams WHERE name = 'p'") == "PAUSED"
    put_texts(db, "p", ["p1", "p2", "p3"])
    db.execute("SELECT firehose.put('p', 'p4'::text)")
    # flush of a paused stream answers at once, without delivering
    assert db.one("SELECT firehose.flush('p', true, '5s')") is False
    put_texts(db, "barrier", ["b"])
    flush(db, "barrier")
    assert other.records() == [b"b"]
    assert r.stats()["received"] == 0
    st = db.q("SELECT status, buffered_records, buffered_bytes, delivered_records "
              "FROM firehose.stream_status WHERE stream = 'p'")[0]
    assert st == ("PAUSED", 4, 8, 0)

    db.execute("SELECT firehose.resume('p')")
    assert db.one("SELECT status FROM firehose.streams WHERE name = 'p'") == "ACTIVE"
    flush(db, "p")
    assert r.records() == [b"p1", b"p2", b"p3", b"p4"]
    st = db.q("SELECT status, buffered_records, in_flight_records, delivered_records "
              "FROM firehose.stream_status WHERE stream = 'p'")[0]
    assert st == ("ACTIVE", 0, 0, 4)


# -- views ---------------------------------------------------------------------

def test_streams_view_hides_secrets(db, cluster, receiver):
    r = receiver(access_key="AKIA-very-secret-1")
    make_stream(db, "sec", r.url, access_key="AKIA-very-secret-1",
                headers={"Authorization": "Bearer very-secret-2"})
    raw = receiver("raw")
    make_stream(db, "sec_raw", raw.url, format="raw",
                headers={"Authorization": "Bearer very-secret-3"})
    rows = db.q("SELECT name, options, options::text FROM firehose.streams ORDER BY name")
    assert [x[0] for x in rows] == ["sec", "sec_raw"]
    for name, opts, text in rows:
        assert "very-secret" not in text, text
        assert opts["url"] in (r.url, raw.url)
    assert rows[0][1]["access_key"] == "********"
    # the stream still works with the real key
    put_texts(db, "sec", ["s"])
    flush(db, "sec")
    assert r.records() == [b"s"]
    assert "very-secret" not in cluster.log_text()


def test_deliveries_rows(db, receiver):
    r = receiver()
    make_stream(db, "dv", r.url, buffer_size=40)
    recs = ["d%03d" % i + "x" * 16 for i in range(6)]           # 20 bytes: 2 per request
    put_texts(db, "dv", recs)
    flush(db, "dv")
    rows = db.q("SELECT request_id::text, records, bytes, attempts, http_status, outcome, "
                "error, duration_ms, finished_at IS NOT NULL, part "
                "FROM firehose.deliveries WHERE stream = 'dv' ORDER BY id")
    reqs = r.requests()
    assert len(rows) == len(reqs) == 3
    assert [x[0] for x in rows] == [header(q, "X-Amz-Firehose-Request-Id") for q in reqs]
    for row in rows:
        assert row[1:7] == (2, 40, 1, 200, "delivered", None)
        assert row[7] >= 0 and row[8] is True
    assert len({x[0] for x in rows}) == 3
    st = db.q("SELECT delivered_records, delivered_bytes, failed_records, incoming_records, "
              "incoming_bytes, last_success_at IS NOT NULL, last_error "
              "FROM firehose.stream_status WHERE stream = 'dv'")[0]
    assert st == (6, 120, 0, 6, 120, True, None)
