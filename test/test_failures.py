"""Failure handling: retries, permanent failures, failed_records, redrive, status counters.

The receiver's fault plan decides the answers.  Streams retry fast
(retry_base 50 ms, retry_max 300 ms); tests about running out of retries use a
retry_duration of 1 or 2 seconds.
"""

import time

import psycopg2
import pytest

from helpers import failed, flush, make_stream, put_texts, refused

import pgcluster


MALFORMED_KINDS = ("badjson", "wrongid", "notimestamp", "stringtimestamp",
                   "wrongcontenttype", "nocontenttype", "nobody", "toolarge")


def deliveries(db, stream):
    return db.q("SELECT request_id::text, records, bytes, attempts, http_status, outcome, "
                "error_code, error FROM firehose.deliveries WHERE stream = %s ORDER BY id",
                (stream,))


def status(db, stream):
    cur_cols = ["buffered_records", "in_flight_records", "delivered_records", "delivered_bytes",
                "failed_records", "failed_bytes", "incoming_records", "last_success_at",
                "last_error_code", "last_error", "last_error_at"]
    row = db.q("SELECT " + ", ".join(cur_cols) + " FROM firehose.stream_status "
               "WHERE stream = %s", (stream,))[0]
    return dict(zip(cur_cols, row))


def seen_counts(r):
    return sorted(r.stats()["request_ids_seen"].values())


# -- retried, then delivered -----------------------------------------------------

def test_500_twice_then_success(db, receiver):
    r = receiver()
    r.faults([{"status": 500, "count": 2}])
    make_stream(db, "s", r.url)
    put_texts(db, "s", ["a", "b", "c"])
    flush(db, "s")
    assert r.records() == [b"a", b"b", b"c"]
    seen = r.stats()["request_ids_seen"]
    assert list(seen.values()) == [3], "one request id, sent 3 times: %r" % seen
    (rid,) = seen
    (d,) = deliveries(db, "s")
    assert d[0] == rid
    # delivered, with the last error that was retried kept as a trace
    assert d[1:7] == (3, 3, 3, 200, "delivered", "HttpEndpoint.DestinationException")
    assert d[7].startswith("Delivered after retrying: ") and "500" in d[7]
    assert failed(db, "s") == []
    st = db.q("SELECT last_error_code, last_success_at >= last_error_at "
              "FROM firehose.stream_status WHERE stream = 's'")[0]
    assert st == ("HttpEndpoint.DestinationException", True)
    st = status(db, "s")
    assert (st["delivered_records"], st["failed_records"]) == (3, 0)


@pytest.mark.parametrize("code", [429, 503, 408, 502, 504])
def test_retryable_status_is_retried(db, receiver, code):
    r = receiver()
    r.faults([{"status": code, "count": 2}])
    make_stream(db, "s", r.url)
    put_texts(db, "s", ["x%d" % code])
    flush(db, "s")
    assert r.records() == [b"x%d" % code]
    assert seen_counts(r) == [3]
    assert [q["status"] for q in r.requests()] == [code, code, 200]
    (d,) = deliveries(db, "s")
    assert d[3:6] == (3, 200, "delivered")


def test_mixed_retryable_statuses_keep_one_request_id(db, receiver):
    r = receiver()
    r.faults([{"status": 429, "count": 1}, {"status": 503, "count": 1},
              {"status": 408, "count": 1}, {"status": 500, "count": 1}])
    make_stream(db, "s", r.url)
    put_texts(db, "s", ["m1", "m2"])
    flush(db, "s")
    assert r.records() == [b"m1", b"m2"]
    reqs = r.requests()
    assert [q["status"] for q in reqs] == [429, 503, 408, 500, 200]
    assert len({q["request_id"] for q in reqs}) == 1
    assert deliveries(db, "s")[0][3] == 5


# -- permanent failures ----------------------------------------------------------

def test_400_fails_at_once_into_failed_records(db, receiver):
    r = receiver()
    r.faults([{"status": 400, "error_message": "Schema mismatch: field zz is unknown"}])
    make_stream(db, "s", r.url)
    before = db.one("SELECT clock_timestamp()")
    # one transaction, so one batch: separate puts may be cut into two
    # (CI's sanitizer run saw two requests, each seen once)
    ids = [x[0] for x in db.q("SELECT firehose.put('s', u.x) FROM unnest(%s::bytea[]) "
                              "WITH ORDINALITY AS u(x, n) ORDER BY u.n",
                              ([psycopg2.Binary(x) for x in (b"bad-1", b"\x00\x01bin", b"")],))]
    after_put = db.one("SELECT clock_timestamp()")
    flush(db, "s")
    assert r.records() == []
    assert seen_counts(r) == [1], "400 must not be retried"

    rows = failed(db, "s")
    assert [x["data"] for x in rows] == [b"bad-1", b"\x00\x01bin", b""]
    assert [x["record_id"] for x in rows] == ids
    (rid,) = r.stats()["request_ids_seen"]
    for x in rows:
        assert x["error_code"] == "HttpEndpoint.DestinationException"
        assert "Schema mismatch: field zz is unknown" in x["error_message"]
        assert "400" in x["error_message"]
        assert x["attempts_made"] == 1
        assert x["request_id"] == rid
        assert before <= x["arrival_time"] <= after_put
        assert x["arrival_time"] <= x["failed_at"]
        assert x["first_attempt_at"] is None or x["first_attempt_at"] <= x["failed_at"]

    (d,) = deliveries(db, "s")
    assert d[1:7] == (3, 10, 1, 400, "failed", "HttpEndpoint.DestinationException")
    st = status(db, "s")
    assert (st["delivered_records"], st["failed_records"], st["failed_bytes"]) == (0, 3, 10)
    assert st["buffered_records"] == 0 and st["in_flight_records"] == 0
    assert st["incoming_records"] == 3
    assert st["last_error_code"] == "HttpEndpoint.DestinationException"
    assert "Schema mismatch" in st["last_error"]
    assert st["last_error_at"] is not None and st["last_success_at"] is None


@pytest.mark.parametrize("code", [413, 403, 404, 422])
def test_other_4xx_fail_at_once(db, receiver, code):
    r = receiver()
    r.faults([{"status": code}])
    make_stream(db, "s", r.url)
    put_texts(db, "s", ["f%d" % code])
    flush(db, "s")
    assert seen_counts(r) == [1]
    rows = failed(db, "s")
    assert [(x["data"], x["attempts_made"], x["error_code"]) for x in rows] == \
        [(b"f%d" % code, 1, "HttpEndpoint.DestinationException")]
    assert str(code) in rows[0]["error_message"]
    assert deliveries(db, "s")[0][4:6] == (code, "failed")


def test_wrong_access_key_401_fails(db, receiver):
    r = receiver(access_key="the-right-key")
    make_stream(db, "wrong", r.url, access_key="a-wrong-key")
    make_stream(db, "missing", r.url)
    make_stream(db, "right", r.url, access_key="the-right-key")
    put_texts(db, "wrong", ["w"])
    put_texts(db, "missing", ["m"])
    put_texts(db, "right", ["r"])
    for s in ("wrong", "missing", "right"):
        flush(db, s)
    assert r.records() == [b"r"]
    assert sorted(q["status"] for q in r.requests()) == [200, 401, 401]
    assert r.stats()["rejected"] == 2
    for s, data in (("wrong", b"w"), ("missing", b"m")):
        (row,) = failed(db, s)
        assert (row["data"], row["attempts_made"], row["error_code"]) == \
            (data, 1, "HttpEndpoint.DestinationException")
        assert "401" in row["error_message"]
        assert status(db, s)["failed_records"] == 1
    assert failed(db, "right") == []
    assert status(db, "right")["delivered_records"] == 1


def test_retry_duration_zero_means_no_retry(db, receiver):
    r = receiver()
    r.faults([{"status": 503, "count": 1}])
    make_stream(db, "s", r.url, retry_duration=0)
    put_texts(db, "s", ["once"])
    flush(db, "s")
    assert seen_counts(r) == [1]
    assert r.records() == []
    (row,) = failed(db, "s")
    assert (row["data"], row["attempts_made"], row["error_code"]) == \
        (b"once", 1, "HttpEndpoint.DestinationException")
    assert "503" in row["error_message"]


def test_retryable_status_fails_when_retry_duration_runs_out(db, receiver):
    r = receiver()
    r.faults([{"status": 503, "error_message": "still warming up"}])
    make_stream(db, "s", r.url, retry_duration=1)
    t0 = time.monotonic()
    put_texts(db, "s", ["late"])
    flush(db, "s")
    elapsed = time.monotonic() - t0
    assert 0.9 <= elapsed <= 15, elapsed
    (row,) = failed(db, "s")
    assert row["data"] == b"late"
    assert row["attempts_made"] >= 3
    assert row["error_code"] == "HttpEndpoint.DestinationException"
    assert "still warming up" in row["error_message"]
    assert seen_counts(r) == [row["attempts_made"]]


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_malformed_200_is_retried_then_fails(db, receiver, kind):
    r = receiver()
    r.faults([{"malformed": kind}])
    make_stream(db, "s", r.url, retry_duration=1)
    put_texts(db, "s", ["mal-" + kind])
    flush(db, "s")
    assert r.records() == []
    (row,) = failed(db, "s")
    assert row["data"] == ("mal-" + kind).encode()
    assert row["attempts_made"] >= 2, "a malformed 200 must be retried"
    assert seen_counts(r) == [row["attempts_made"]]
    expected = {"HttpEndpoint.InvalidResponseFromDestination"}
    if kind == "toolarge":      # a >1 MiB answer: Firehose's own code for it is accepted too
        expected.add("HttpEndpoint.ResponseTooLarge")
    assert row["error_code"] in expected
    (d,) = deliveries(db, "s")
    assert d[5] == "failed" and d[3] == row["attempts_made"]
    st = status(db, "s")
    assert (st["delivered_records"], st["failed_records"]) == (0, 1)
    assert st["last_error_code"] == row["error_code"]


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_malformed_200_once_then_delivered(db, receiver, kind):
    r = receiver()
    r.faults([{"malformed": kind, "count": 1}])
    make_stream(db, "s", r.url)
    put_texts(db, "s", ["ok-" + kind])
    flush(db, "s")
    assert r.records() == [("ok-" + kind).encode()]
    assert seen_counts(r) == [2]
    assert failed(db, "s") == []


# -- timeouts, dropped connections, outages -------------------------------------

def test_timeout_fails_with_request_timeout(db, receiver):
    r = receiver()
    r.faults([{"delay": 2.0, "status": 500}])
    make_stream(db, "s", r.url, request_timeout=300, retry_duration=1)
    put_texts(db, "s", ["slow"])
    flush(db, "s")
    (row,) = failed(db, "s")
    assert row["data"] == b"slow"
    assert row["error_code"] == "HttpEndpoint.RequestTimeout"
    assert row["attempts_made"] >= 2
    assert seen_counts(r) == [row["attempts_made"]]
    (d,) = deliveries(db, "s")
    assert d[4] is None and d[5] == "failed"
    assert status(db, "s")["last_error_code"] == "HttpEndpoint.RequestTimeout"


def test_timeout_then_retry_delivers_at_least_once(db, receiver):
    r = receiver()
    # the slow first answer still stores its records: a duplicate, by design
    r.faults([{"delay": 1.5, "count": 1}])
    make_stream(db, "s", r.url, request_timeout=400)
    put_texts(db, "s", ["t1", "t2"])
    flush(db, "s")
    r.wait_records(4, timeout=10)   # the late first attempt lands too
    recs = r.records()
    assert sorted(recs) == [b"t1", b"t1", b"t2", b"t2"]
    assert seen_counts(r) == [2], "the retry keeps the request id"
    (d,) = deliveries(db, "s")
    assert d[3:6] == (2, 200, "delivered")
    assert failed(db, "s") == []


@pytest.mark.parametrize("rst", [False, True], ids=["close", "reset"])
def test_dropped_connection_is_retried(db, receiver, rst):
    r = receiver()
    r.faults([{"drop": True, "reset": rst, "count": 2}])
    make_stream(db, "s", r.url)
    put_texts(db, "s", ["d1", "d2"])
    flush(db, "s")
    assert r.records() == [b"d1", b"d2"]
    assert seen_counts(r) == [3]
    (d,) = deliveries(db, "s")
    assert d[3:6] == (3, 200, "delivered")


def test_dropped_connection_fails_with_connection_error(db, receiver):
    r = receiver()
    r.faults([{"drop": True}])
    make_stream(db, "s", r.url, retry_duration=1)
    put_texts(db, "s", ["never"])
    flush(db, "s")
    (row,) = failed(db, "s")
    assert row["data"] == b"never" and row["attempts_made"] >= 2
    assert row["error_code"] in ("HttpEndpoint.ConnectionReset",
                                 "HttpEndpoint.ConnectionFailed")


def test_store_then_drop_duplicates_are_bounded(db, receiver):
    r = receiver()
    r.faults([{"store_then_drop": True, "count": 1}])
    make_stream(db, "s", r.url)
    put_texts(db, "s", ["dup1", "dup2"])
    flush(db, "s")
    assert r.records() == [b"dup1", b"dup2", b"dup1", b"dup2"]
    assert seen_counts(r) == [2]


def test_down_period_then_delivered(db, receiver, wait_until):
    r = receiver()
    make_stream(db, "s", r.url)
    put_texts(db, "s", ["warmup"])
    flush(db, "s")
    r.reset()
    t0 = time.time()
    r.faults([{"down_for": 2.0, "now": True}])
    wait_until(lambda: refused(r.port), timeout=5, message="receiver did not go down")
    put_texts(db, "s", ["during-1", "during-2"])
    flush(db, "s")
    assert r.records() == [b"during-1", b"during-2"]
    (ok,) = r.requests()
    assert ok["outcome"] == "ok" and ok["time"] - t0 >= 1.9
    d = [x for x in deliveries(db, "s") if x[1] == 2]
    assert len(d) == 1 and d[0][3] >= 2 and d[0][5] == "delivered", d
    assert failed(db, "s") == []


def test_down_triggered_by_a_request_then_delivered(db, receiver):
    r = receiver()
    r.faults([{"down_for": 1.5}])
    make_stream(db, "s", r.url)
    put_texts(db, "s", ["t-1", "t-2"])
    flush(db, "s")
    assert r.records() == [b"t-1", b"t-2"]
    reqs = r.requests()
    assert reqs[0].get("fault", {}).get("down_for") == 1.5
    assert len({q["request_id"] for q in reqs}) == 1
    assert failed(db, "s") == []


def test_unreachable_endpoint_fails_with_connection_failed(db):
    url = "http://127.0.0.1:%d/firehose" % pgcluster.free_port()   # nothing listens there
    make_stream(db, "s", url, retry_duration=1)
    put_texts(db, "s", ["nobody home"])
    flush(db, "s")
    (row,) = failed(db, "s")
    assert row["data"] == b"nobody home" and row["attempts_made"] >= 2
    assert row["error_code"] == "HttpEndpoint.ConnectionFailed"


# -- redrive ---------------------------------------------------------------------

def test_redrive_puts_failed_records_back(db, receiver):
    r = receiver()
    r.faults([{"status": 400}])
    make_stream(db, "s", r.url)
    recs = [b"r-%d" % i for i in range(5)] + [b"\xff\x00raw"]
    db.execute("SELECT firehose.put_batch('s', %s::bytea[])", ([psycopg2.Binary(x) for x in recs],))
    flush(db, "s")
    assert [x["data"] for x in failed(db, "s")] == recs
    assert status(db, "s")["failed_records"] == 6

    r.faults([])
    assert db.one("SELECT firehose.redrive('s')") == 6
    assert failed(db, "s") == []
    flush(db, "s")
    assert r.records() == recs
    assert failed(db, "s") == []
    st = status(db, "s")
    assert (st["delivered_records"], st["failed_records"]) == (6, 6)
    assert st["last_success_at"] is not None


def test_redrive_with_ids_only_redrives_those(db, receiver):
    r = receiver()
    r.faults([{"status": 400}])
    make_stream(db, "s", r.url)
    make_stream(db, "other", r.url)
    put_texts(db, "s", ["k0", "k1", "k2", "k3"])
    put_texts(db, "other", ["o0"])
    flush(db, "s")
    flush(db, "other")
    rows = failed(db, "s")
    assert [x["data"] for x in rows] == [b"k0", b"k1", b"k2", b"k3"]
    pick = [rows[1]["id"], rows[3]["id"], failed(db, "other")[0]["id"]]

    r.faults([])
    # ids of another stream's failed records are not touched
    assert db.one("SELECT firehose.redrive('s', %s::bigint[])", (pick,)) == 2
    assert [x["data"] for x in failed(db, "s")] == [b"k0", b"k2"]
    assert [x["data"] for x in failed(db, "other")] == [b"o0"]
    flush(db, "s")
    assert sorted(r.records()) == [b"k1", b"k3"]
    assert db.one("SELECT firehose.redrive('s', ARRAY[]::bigint[])") == 0
    assert len(failed(db, "s")) == 2


def test_redrive_is_transactional(db, receiver):
    r = receiver()
    r.faults([{"status": 400}])
    make_stream(db, "s", r.url)
    put_texts(db, "s", ["t0", "t1"])
    flush(db, "s")
    r.faults([])
    c = db.conn(autocommit=False)
    cur = c.cursor()
    cur.execute("SELECT firehose.redrive('s')")
    assert cur.fetchone()[0] == 2
    c.rollback()
    assert [x["data"] for x in failed(db, "s")] == [b"t0", b"t1"]
    flush(db, "s")
    assert r.records() == []
    cur.execute("SELECT firehose.redrive('s')")
    c.commit()
    flush(db, "s")
    assert r.records() == [b"t0", b"t1"]
    assert failed(db, "s") == []


def test_redrive_of_unknown_stream_errors(db):
    with pytest.raises(psycopg2.Error) as e:
        db.execute("SELECT firehose.redrive('no_such_stream')")
    assert "does not exist" in str(e.value)


# -- counters across outcomes -------------------------------------------------------

def test_stream_status_counts_delivered_and_failed(db, receiver):
    r = receiver()
    make_stream(db, "s", r.url)
    put_texts(db, "s", ["ok-1", "ok-22"])
    flush(db, "s")
    r.faults([{"status": 400, "error_message": "rejected by policy 7", "count": 1}])
    put_texts(db, "s", ["bad-333"])
    flush(db, "s")
    put_texts(db, "s", ["ok-4444"])
    flush(db, "s")
    st = status(db, "s")
    assert (st["delivered_records"], st["delivered_bytes"]) == (3, 4 + 5 + 7)
    assert (st["failed_records"], st["failed_bytes"]) == (1, 7)
    assert st["incoming_records"] == 4
    assert st["buffered_records"] == 0 and st["in_flight_records"] == 0
    assert st["last_error_code"] == "HttpEndpoint.DestinationException"
    assert "rejected by policy 7" in st["last_error"]
    assert st["last_error_at"] is not None
    assert st["last_success_at"] > st["last_error_at"]
    outcomes = [(d[1], d[5]) for d in deliveries(db, "s")]
    assert outcomes == [(2, "delivered"), (1, "failed"), (1, "delivered")]
