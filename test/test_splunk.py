"""Destination 'splunk': the HTTP Event Collector, against test/splunk_receiver.py.

The receiver is a faithful HEC (tokens, channels, indexes, indexer
acknowledgement, HEC error codes) running in this process; it records every
request and every indexed event, so the tests check exactly what Splunk
would have indexed.  Surface: /work/issue4-spec.md ("destination 'splunk'"),
Firehose's behaviour: ../shared/reference/firehose.md section 7.

Streams retry fast (retry_base 50 ms, retry_max 300 ms) and deliver at once
(buffer_interval 0).  The acknowledgement timeout cannot be shorter than
180 s (ack_timeout 180..600, as Firehose's HECAcknowledgmentTimeoutInSeconds),
so the two ack-timeout scenarios start in the background with the first test
of this file, in a database of their own, and are checked by the last one:
the file takes a little over three minutes, most of it spent in parallel.
"""

import json
import re
import time
import uuid

import psycopg2
import pytest

from conftest import Database, _drop_database
from helpers import FAST, failed, flush, put_texts
from splunk_receiver import HEC_CODES, SplunkReceiver

TOKEN = "8f0e5b7a-1c2d-4e3f-9a8b-7c6d5e4f3a21"
ACK_TOKEN = "8f0e5b7a-1c2d-4e3f-9a8b-7c6d5e4f3a22"
DISABLED_TOKEN = "8f0e5b7a-1c2d-4e3f-9a8b-7c6d5e4f3a23"
INDEX = "fh_events"
GUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
TIME_RE = r"\d{10}\.\d{3}"


def new_hec(**kw):
    h = SplunkReceiver(indexes=("main", INDEX), **kw)
    h.add_token(TOKEN)
    h.add_token(ACK_TOKEN, ack=True)
    h.add_token(DISABLED_TOKEN, disabled=True)
    return h.start()


@pytest.fixture
def hec():
    h = new_hec()
    yield h
    h.stop()


def make_splunk(db, name, hec, **opts):
    """create_stream(name, 'splunk', FAST + endpoint + token + opts)."""
    o = dict(FAST, endpoint=hec.url, token=TOKEN)
    o.update(opts)
    db.execute("SELECT firehose.create_stream(%s, 'splunk', %s::jsonb)", (name, json.dumps(o)))


def data_requests(hec, channel=None):
    return [r for r in hec.requests() if r["endpoint"] in ("event", "raw")
            and (channel is None or r["channel"] == channel)]


def deliveries(db, stream):
    cols = ["request_id", "records", "bytes", "attempts", "http_status", "outcome",
            "error_code", "error"]
    rows = db.q("SELECT request_id::text, records, bytes, attempts, http_status, outcome, "
                "error_code, error FROM firehose.deliveries WHERE stream = %s ORDER BY id",
                (stream,))
    return [dict(zip(cols, r)) for r in rows]


def status(db, stream):
    cols = ["delivered_records", "failed_records", "possible_duplicates", "buffered_records",
            "in_flight_records", "last_error_code", "last_error"]
    row = db.q("SELECT " + ", ".join(cols) + " FROM firehose.stream_status WHERE stream = %s",
               (stream,))[0]
    return dict(zip(cols, row))


def epoch(db):
    return float(db.one("SELECT extract(epoch FROM clock_timestamp())"))


def parse_body_events(body):
    """The JSON objects of an /event body, with the separators between them."""
    text = body.decode("utf-8")
    dec = json.JSONDecoder()
    objs, seps, i = [], [], 0
    while i < len(text):
        obj, end = dec.raw_decode(text, i)
        objs.append(obj)
        j = end
        while j < len(text) and text[j] in " \t\r\n":
            j += 1
        seps.append(text[end:j])
        i = j
    return objs, seps


# -- the acknowledgement timeouts, started first, checked last ------------------------

CH_RETRY = "5e1a6c0e-0000-4000-8000-00000000a001"
CH_FAIL = "5e1a6c0e-0000-4000-8000-00000000a002"
CH_WAIT = "5e1a6c0e-0000-4000-8000-00000000a003"
ACK_TIMEOUT = 180


class AckTimeoutScenario:
    pass


@pytest.fixture(scope="module")
def ack_timeouts(cluster):
    """Three ack streams whose ackIds time out, in their own database:
    'to_retry' (ackId 0 of its channel never acked: sent again after 180 s, then
    acked), 'to_fail' (nothing ever acked, retry_duration 0) and, on a receiver
    of its own, 'wait_excluded' (retry_duration 60: the first send answered 503,
    the second never acked, the third acked)."""
    name = "t_splunk_ackto_%d" % int(time.time())
    _drop_database(cluster, name)
    cluster.psql('CREATE DATABASE "%s"' % name)
    d = Database(cluster, name)
    h = new_hec()
    hw = new_hec()
    s = AckTimeoutScenario()
    s.db, s.hec, s.hec_wait = d, h, hw
    try:
        d.execute("CREATE EXTENSION firehose")
        h.never_ack([0], CH_RETRY)
        h.never_ack(range(1000), CH_FAIL)
        hw.faults([{"code": 9, "count": 1}, {"never_ack": True, "count": 1}])
        common = dict(FAST, endpoint=h.url, token=ACK_TOKEN, ack=True,
                      ack_timeout=ACK_TIMEOUT, ack_poll_interval=500)
        for stream, ch, extra in (("to_retry", CH_RETRY, {}),
                                  ("to_fail", CH_FAIL, {"retry_duration": 0}),
                                  ("wait_excluded", CH_WAIT,
                                   {"retry_duration": 60, "endpoint": hw.url})):
            o = dict(common, channel=ch)
            o.update(extra)
            d.execute("SELECT firehose.create_stream(%s, 'splunk', %s::jsonb)",
                      (stream, json.dumps(o)))
        s.records = {"to_retry": ["r-1", '{"r": 2}', "r-3"], "to_fail": ["f-1", "f-2"],
                     "wait_excluded": ["w-1", "w-2"]}
        for stream, recs in s.records.items():
            put_texts(d, stream, recs)
        s.started = time.monotonic()
        yield s
    finally:
        h.stop()
        hw.stop()
        d.close_all()
        _drop_database(cluster, name)


def test_ack_timeout_scenarios_start(ack_timeouts):
    """(Starts the background scenarios checked by the last test.)  The first
    requests arrive and get ackId 0 of their channels."""
    h = ack_timeouts.hec
    # A request is recorded when it arrives and its answer noted just before
    # it is sent: wait for the answers, not only the arrivals.
    def answered(x, ch):
        return [r for r in data_requests(x, ch) if r["status"] is not None]
    h.wait(lambda x: len(answered(x, CH_RETRY)) >= 1
           and len(answered(x, CH_FAIL)) >= 1, timeout=30)
    for ch in (CH_RETRY, CH_FAIL):
        r = data_requests(h, ch)[0]
        assert r["status"] == 200 and r["response"]["ackId"] == 0
    st = status(ack_timeouts.db, "to_retry")
    assert st["delivered_records"] == 0 and st["in_flight_records"] == 3


# -- event endpoint --------------------------------------------------------------------

def test_event_endpoint_wraps_records_with_metadata(db, hec):
    make_splunk(db, "ev", hec, endpoint_type="event", host="db-host-1", source="pg:orders",
                sourcetype="_json", index=INDEX)
    texts = ['{"order": 42, "items": [1, 2.5, null], "ok": true}',
             "plain text line",
             "h\u00e9llo \u2713 \"quoted\" \\ back\ttab",
             "42",
             '["a", {"b": "c"}]',
             '{"multi":\n  "line"}',
             "not json {"]
    t0 = epoch(db)
    put_texts(db, "ev", texts)
    db.execute("SELECT firehose.put('ev', %s::jsonb)", ('{"z": 1, "a": "x"}',))
    t1 = epoch(db)
    flush(db, "ev")

    (req,) = data_requests(hec)
    assert req["path"] == "/services/collector/event" and req["status"] == 200
    assert req["headers"]["content-type"].split(";")[0].strip() == "application/json"
    assert req["headers"]["authorization"] == "Splunk " + TOKEN
    assert re.fullmatch(GUID_RE, req["headers"]["x-splunk-request-channel"])

    events = hec.events()
    assert [e["event"] for e in events] == [
        {"order": 42, "items": [1, 2.5, None], "ok": True},
        "plain text line",
        "h\u00e9llo \u2713 \"quoted\" \\ back\ttab",
        42,
        ["a", {"b": "c"}],
        {"multi": "line"},
        "not json {",
        {"z": 1, "a": "x"}]
    for e in events:
        assert (e["host"], e["source"], e["sourcetype"], e["index"]) == \
            ("db-host-1", "pg:orders", "_json", INDEX)
        assert e["effective_index"] == INDEX
        assert re.fullmatch(TIME_RE, e["time_text"]), e["time_text"]
        assert t0 - 0.002 <= e["time"] <= t1 + 0.002
    objs, seps = parse_body_events(req["body"])
    assert len(objs) == len(texts) + 1
    assert seps[:-1] == ["\n"] * (len(objs) - 1), "events separated by one newline: %r" % seps
    for o in objs:
        assert set(o) == {"event", "time", "host", "source", "sourcetype", "index"}

    (d,) = deliveries(db, "ev")
    assert (d["records"], d["attempts"], d["http_status"], d["outcome"]) == \
        (8, 1, 200, "delivered")
    st = status(db, "ev")
    assert (st["delivered_records"], st["failed_records"], st["possible_duplicates"]) == \
        (8, 0, 0)


def test_event_endpoint_without_metadata_sends_event_and_time_only(db, hec):
    make_splunk(db, "bare", hec, endpoint_type="event")
    put_texts(db, "bare", ["one", '{"two": 2}'])
    flush(db, "bare")
    objs, _ = parse_body_events(data_requests(hec)[0]["body"])
    assert [set(o) for o in objs] == [{"event", "time"}] * 2
    assert [e["effective_index"] for e in hec.events()] == ["main", "main"]
    assert hec.event_values() == ["one", {"two": 2}]


def test_event_time_is_the_record_arrival_time(db, hec):
    """Read back through failed_records, whose arrival_time is the record's."""
    hec.faults([{"code": 6}])
    make_splunk(db, "evt", hec, endpoint_type="event")
    db.execute("SELECT firehose.pause('evt')")
    for t in ("t0", "t1", "t2"):
        put_texts(db, "evt", [t])
        time.sleep(0.15)
    db.execute("SELECT firehose.resume('evt')")
    flush(db, "evt")
    (req,) = data_requests(hec)
    objs, _ = parse_body_events(req["body"])
    sent = {o["event"]: o["time"] for o in objs}
    texts = {m.group(1): m.group(2) for m in
             re.finditer(r'"event":"(t\d)","time":([0-9.]+)', req["body"].decode())}
    rows = db.q("SELECT convert_from(data, 'UTF8'), "
                "floor(extract(epoch FROM arrival_time) * 1000)::bigint "
                "FROM firehose.failed_records WHERE stream = 'evt' ORDER BY id")
    assert [r[0] for r in rows] == ["t0", "t1", "t2"]
    for text, ms in rows:
        assert re.fullmatch(TIME_RE, texts[text]), texts[text]
        assert int(texts[text].replace(".", "")) == ms, (text, texts[text], ms)
        assert abs(sent[text] - ms / 1000.0) < 0.0011
    assert sent["t2"] - sent["t0"] >= 0.25


def test_ack_with_concurrent_requests(db, hec):
    hec.set_ack_delay(0.3)
    make_splunk(db, "ackc", hec, token=ACK_TOKEN, ack=True, ack_poll_interval=50,
                buffer_size=100, max_concurrency=4, endpoint_type="event")
    recs = ["rec-%03d-" % i + "x" * 12 for i in range(40)]      # 20 bytes each
    put_texts(db, "ackc", recs)
    flush(db, "ackc")
    reqs = data_requests(hec)
    assert len(reqs) >= 8
    assert sorted(r["response"]["ackId"] for r in reqs) == list(range(len(reqs)))
    assert sorted(hec.event_values()) == recs, "each record indexed once"
    assert all(a["acked_at"] is not None for a in hec.acks_issued())
    st = status(db, "ackc")
    assert (st["delivered_records"], st["possible_duplicates"], st["in_flight_records"]) == \
        (40, 0, 0)
    # requests overlapped: some data request was sent while another waited for its ack
    spans = [(r["time"], min((a["acked_at"] for a in hec.acks_issued()
                              if a["request"] == r["n"]))) for r in reqs]
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:])), "max_concurrency 4 unused"


def test_records_of_each_batch_arrive_once_in_order(db, hec):
    make_splunk(db, "order", hec, endpoint_type="event")
    for i in range(5):
        put_texts(db, "order", ["b%d-r%d" % (i, j) for j in range(20)])
        flush(db, "order")
    assert hec.event_values() == ["b%d-r%d" % (i, j) for i in range(5) for j in range(20)]
    assert status(db, "order")["delivered_records"] == 100


# -- raw endpoint ------------------------------------------------------------------------

def test_raw_endpoint_is_the_default(db, hec):
    make_splunk(db, "raw", hec)
    recs = ["line one", '{"json": "as is"}', "tab\there \u00e9"]
    put_texts(db, "raw", recs)
    flush(db, "raw")
    (req,) = data_requests(hec)
    assert req["path"] == "/services/collector/raw"
    ch = req["headers"]["x-splunk-request-channel"]
    assert re.fullmatch(GUID_RE, ch)
    assert req["query"] == {"channel": ch}
    assert req["headers"]["content-type"].split(";")[0].strip() == "text/plain"
    assert req["headers"]["authorization"] == "Splunk " + TOKEN
    assert req["body"] == b"".join(r.encode() + b"\n" for r in recs)
    assert hec.raw_lines() == [r.encode() for r in recs]
    assert status(db, "raw")["delivered_records"] == 3


def test_raw_endpoint_metadata_in_the_query_string(db, hec):
    make_splunk(db, "rawq", hec, endpoint_type="raw", host="h 1&x=y", source="src/a",
                sourcetype="access_combined", index=INDEX)
    put_texts(db, "rawq", ["GET /a 200", "GET /b 404"])
    flush(db, "rawq")
    (req,) = data_requests(hec)
    ch = req["headers"]["x-splunk-request-channel"]
    assert req["query"] == {"channel": ch, "host": "h 1&x=y", "source": "src/a",
                            "sourcetype": "access_combined", "index": INDEX}
    assert req["body"] == b"GET /a 200\nGET /b 404\n"
    for e in hec.events():
        assert (e["host"], e["source"], e["sourcetype"], e["effective_index"]) == \
            ("h 1&x=y", "src/a", "access_combined", INDEX)


# -- channel -----------------------------------------------------------------------------

def test_channel_is_stable_across_requests_and_retries(db, hec):
    hec.faults([{"code": 9, "count": 2}])
    make_splunk(db, "chan", hec, endpoint_type="event")
    make_splunk(db, "chan2", hec, endpoint_type="event")
    put_texts(db, "chan", ["a"])
    flush(db, "chan")
    put_texts(db, "chan", ["b"])
    flush(db, "chan")
    put_texts(db, "chan2", ["c"])
    flush(db, "chan2")
    reqs = data_requests(hec)
    assert [r["status"] for r in reqs] == [503, 503, 200, 200, 200]
    chans = [r["channel_header"] for r in reqs]
    assert len(set(chans[:4])) == 1 and re.fullmatch(GUID_RE, chans[0])
    assert chans[4] != chans[0], "each stream has its own channel"
    # derived from the stream name: the same after drop and create
    db.execute("SELECT firehose.drop_stream('chan')")
    make_splunk(db, "chan", hec, endpoint_type="raw")
    put_texts(db, "chan", ["d"])
    flush(db, "chan")
    last = data_requests(hec)[-1]
    assert last["channel_header"] == chans[0] and last["query"]["channel"] == chans[0]
    assert hec.event_values() == ["a", "b", "c", "d"]


def test_custom_channel(db, hec):
    ch = str(uuid.uuid4())
    make_splunk(db, "cust", hec, channel=ch)
    make_splunk(db, "custev", hec, channel=ch, endpoint_type="event")
    put_texts(db, "cust", ["x"])
    flush(db, "cust")
    put_texts(db, "custev", ["y"])
    flush(db, "custev")
    reqs = data_requests(hec)
    assert [(r["endpoint"], r["channel_header"]) for r in reqs] == [("raw", ch), ("event", ch)]
    assert reqs[0]["query"]["channel"] == ch
    assert hec.raw_lines(ch) == [b"x"] and hec.event_values(ch) == ["x", "y"]


# -- indexer acknowledgement -------------------------------------------------------------

def test_ack_delivered_only_after_the_ack(db, hec, wait_until):
    hec.set_ack_delay(1.5)
    make_splunk(db, "ack", hec, token=ACK_TOKEN, ack=True, ack_poll_interval=100,
                endpoint_type="event")
    put_texts(db, "ack", ["a1", "a2"])
    t0 = time.monotonic()
    db.execute("SELECT firehose.flush('ack')")
    hec.wait_requests(1, endpoint="event", timeout=30)
    # received, not yet acknowledged: still in flight
    time.sleep(0.5)
    st = status(db, "ack")
    assert (st["delivered_records"], st["in_flight_records"]) == (0, 2)
    flush(db, "ack")
    assert time.monotonic() - t0 >= 1.5
    st = status(db, "ack")
    assert (st["delivered_records"], st["in_flight_records"], st["possible_duplicates"]) == \
        (2, 0, 0)

    (req,) = data_requests(hec)
    ch = req["channel_header"]
    assert req["response"] == {"text": "Success", "code": 0, "ackId": 0}
    (issued,) = hec.acks_issued()
    assert issued["ack_id"] == 0 and issued["acked_at"] is not None
    acks = hec.requests(endpoint="ack")
    assert len(acks) >= 3, "polled until true"
    for a in acks:
        assert a["method"] == "POST" and a["path"] == "/services/collector/ack"
        assert a["query"].get("channel") == ch
        assert a["headers"]["authorization"] == "Splunk " + ACK_TOKEN
        assert a["headers"]["x-splunk-request-channel"] == ch
        assert json.loads(a["body"]) == {"acks": [0]}
        assert a["status"] == 200
    assert [q["answer"] for q in hec.ack_queries()][-1] == {"0": True}
    assert all(q["answer"] == {"0": False} for q in hec.ack_queries()[:-1])
    gaps = [b["time"] - a["time"] for a, b in zip(acks, acks[1:])]
    assert min(gaps) >= 0.08, "ack_poll_interval 100 ms: polls %r" % gaps
    assert len(acks) <= 40
    (d,) = deliveries(db, "ack")
    assert (d["records"], d["outcome"], d["attempts"]) == (2, "delivered", 1)
    assert hec.event_values() == ["a1", "a2"]


def test_ack_ids_follow_each_other_on_the_stream_channel(db, hec):
    make_splunk(db, "acks", hec, token=ACK_TOKEN, ack=True, ack_poll_interval=20)
    for i in range(4):
        put_texts(db, "acks", ["batch-%d" % i])
        flush(db, "acks")
    reqs = data_requests(hec)
    assert [r["response"]["ackId"] for r in reqs] == [0, 1, 2, 3]
    assert len({r["channel"] for r in reqs}) == 1
    assert [a["acked_at"] is not None for a in hec.acks_issued()] == [True] * 4
    asked = [q["asked"] for q in hec.ack_queries()]
    assert sorted({i for a in asked for i in a}) == [0, 1, 2, 3]
    assert hec.raw_lines() == [b"batch-%d" % i for i in range(4)]
    assert status(db, "acks")["delivered_records"] == 4


def test_ack_polls_survive_a_busy_ack_endpoint(db, hec):
    hec.set_ack_delay(0.3)
    hec.faults([{"on": "ack", "code": 9, "count": 2}])
    make_splunk(db, "ackbusy", hec, token=ACK_TOKEN, ack=True, ack_poll_interval=50)
    put_texts(db, "ackbusy", ["once"])
    flush(db, "ackbusy")
    assert hec.raw_lines() == [b"once"], "a failed ack poll must not resend the data"
    assert [r["status"] for r in hec.requests(endpoint="ack")][:2] == [503, 503]
    assert status(db, "ackbusy")["delivered_records"] == 1
    assert status(db, "ackbusy")["possible_duplicates"] == 0


def test_ack_required_by_the_token_but_off_in_the_stream(db, hec):
    make_splunk(db, "noch", hec, token=ACK_TOKEN)     # ack false: still sends a channel
    put_texts(db, "noch", ["n"])
    flush(db, "noch")
    assert hec.raw_lines() == [b"n"]
    assert status(db, "noch")["delivered_records"] == 1


def test_ack_on_for_a_token_without_ack_is_disabled_ack(db, hec):
    make_splunk(db, "noack", hec, token=TOKEN, ack=True, ack_poll_interval=20, retry_duration=1)
    put_texts(db, "noack", ["d"])
    flush(db, "noack")
    rows = failed(db, "noack")
    assert [(r["data"], r["error_code"]) for r in rows] == [(b"d", "Splunk.DisabledAck")]
    assert status(db, "noack")["last_error_code"] == "Splunk.DisabledAck"


# -- errors --------------------------------------------------------------------------------

def test_invalid_token_fails_at_once(db, hec):
    make_splunk(db, "badtok", hec, token="00000000-0000-0000-0000-000000000000")
    ids = [db.one("SELECT firehose.put('badtok', %s::text)", (t,)) for t in ("x", "y")]
    flush(db, "badtok")
    reqs = data_requests(hec)
    assert [(r["status"], r["code"]) for r in reqs] == [(403, 4)], "not retried"
    rows = failed(db, "badtok")
    assert [(r["record_id"], r["data"], r["attempts_made"], r["error_code"]) for r in rows] == \
        [(ids[0], b"x", 1, "Splunk.InvalidToken"), (ids[1], b"y", 1, "Splunk.InvalidToken")]
    assert "Invalid token" in rows[0]["error_message"]
    (d,) = deliveries(db, "badtok")
    assert (d["outcome"], d["http_status"], d["error_code"]) == \
        ("failed", 403, "Splunk.InvalidToken")
    st = status(db, "badtok")
    assert (st["delivered_records"], st["failed_records"]) == (0, 2)
    assert st["last_error_code"] == "Splunk.InvalidToken"
    assert hec.events() == []


def test_disabled_token_and_incorrect_index_fail_at_once(db, hec):
    make_splunk(db, "dis", hec, token=DISABLED_TOKEN)
    make_splunk(db, "idx", hec, index="no_such_index", endpoint_type="event")
    put_texts(db, "dis", ["d"])
    put_texts(db, "idx", ["i"])
    flush(db, "dis")
    flush(db, "idx")
    assert sorted((r["status"], r["code"]) for r in data_requests(hec)) == [(400, 7), (403, 1)]
    assert [(r["data"], r["attempts_made"], r["error_code"]) for r in failed(db, "dis")] == \
        [(b"d", 1, "Splunk.DisabledToken")]
    assert [(r["data"], r["attempts_made"], r["error_code"]) for r in failed(db, "idx")] == \
        [(b"i", 1, "Splunk.InvalidIndex")]


PERMANENT = {1: "Splunk.DisabledToken", 2: "Splunk.InvalidToken", 3: "Splunk.InvalidToken",
             4: "Splunk.InvalidToken", 5: "Splunk.InvalidDataFormat",
             6: "Splunk.InvalidDataFormat", 7: "Splunk.InvalidIndex",
             10: "Splunk.InvalidDataFormat", 11: "Splunk.InvalidDataFormat",
             12: "Splunk.InvalidDataFormat", 13: "Splunk.InvalidDataFormat",
             14: "Splunk.DisabledAck"}


@pytest.mark.parametrize("code", sorted(PERMANENT))
def test_hec_error_codes_fail_at_once(db, hec, code):
    hec.faults([{"code": code}])
    make_splunk(db, "perm", hec, endpoint_type="event")
    put_texts(db, "perm", ["p%d" % code])
    flush(db, "perm")
    assert len(data_requests(hec)) == 1, "HEC code %d must not be retried" % code
    (row,) = failed(db, "perm")
    assert (row["data"], row["attempts_made"], row["error_code"]) == \
        (b"p%d" % code, 1, PERMANENT[code])
    assert HEC_CODES[code][1] in row["error_message"]
    (d,) = deliveries(db, "perm")
    assert (d["outcome"], d["http_status"], d["error_code"]) == \
        ("failed", HEC_CODES[code][0], PERMANENT[code])


@pytest.mark.parametrize("rule", [{"code": 9}, {"code": 8}, {"status": 502}, {"status": 504},
                                  {"drop": True}, {"drop": True, "reset": True}],
                         ids=["busy", "internal", "502", "504", "drop", "reset"])
def test_transient_errors_are_retried(db, hec, rule):
    hec.faults([dict(rule, count=2)])
    make_splunk(db, "busy", hec, endpoint_type="event")
    put_texts(db, "busy", ["t1", "t2"])
    flush(db, "busy")
    assert hec.event_values() == ["t1", "t2"]
    reqs = data_requests(hec)
    assert len(reqs) == 3 and len({r["channel"] for r in reqs}) == 1
    (d,) = deliveries(db, "busy")
    assert (d["outcome"], d["attempts"], d["http_status"]) == ("delivered", 3, 200)
    assert failed(db, "busy") == []


@pytest.mark.parametrize("rule,code", [({"code": 9}, "Splunk.ServerError"),
                                       ({"status": 500}, "Splunk.ServerError"),
                                       ({"drop": True}, "Splunk.ConnectionClosed"),
                                       ({"delay": 1.0}, "Splunk.ConnectionTimeout")],
                         ids=["busy", "500", "drop", "timeout"])
def test_transient_errors_fail_when_retry_duration_runs_out(db, hec, rule, code):
    hec.faults([rule])
    make_splunk(db, "out", hec, retry_duration=1, request_timeout=300)
    put_texts(db, "out", ["late"])
    flush(db, "out")
    (row,) = failed(db, "out")
    assert row["data"] == b"late" and row["attempts_made"] >= 2
    assert row["error_code"] == code
    assert len(data_requests(hec)) == row["attempts_made"]
    assert status(db, "out")["last_error_code"] == code


# -- options -------------------------------------------------------------------------------

def create_error(db, opts):
    with pytest.raises(psycopg2.Error) as e:
        db.execute("SELECT firehose.create_stream('bad', 'splunk', %s::jsonb)",
                   (json.dumps(opts),))
    return str(e.value)


@pytest.mark.parametrize("change,name", [
    ({"ack_timeout": 179}, "ack_timeout"), ({"ack_timeout": 601}, "ack_timeout"),
    ({"ack_poll_interval": 9}, "ack_poll_interval"),
    ({"endpoint_type": "json"}, "endpoint_type"), ({"ack": "yes"}, "ack"),
    ({"channel": "stream-1"}, "channel"), ({"channel": "0123456789abcdef"}, "channel"),
    ({"endpoint": "ftp://x"}, "endpoint"), ({"token": None}, "token"),
    ({"endpoint": None}, "endpoint"), ({"access_key": "k"}, "access_key"),
    ({"url": "http://127.0.0.1:1/x"}, "url")])
def test_invalid_options_are_refused_naming_the_option(db, change, name):
    o = {"endpoint": "http://127.0.0.1:8088", "token": TOKEN}
    o.update(change)
    o = {k: v for k, v in o.items() if v is not None}
    assert name in create_error(db, o)


def test_defaults_and_secret_token_in_streams_view(db):
    db.execute("SELECT firehose.create_stream('defs', 'splunk', %s::jsonb)",
               (json.dumps({"endpoint": "http://127.0.0.1:8088", "token": TOKEN,
                            "ack_timeout": 180}),))
    db.execute("SELECT firehose.create_stream('limits', 'splunk', %s::jsonb)",
               (json.dumps({"endpoint": "http://127.0.0.1:8088", "token": TOKEN,
                            "ack_timeout": 600, "ack_poll_interval": 10}),))
    opts = db.one("SELECT options FROM firehose.streams WHERE name = 'defs'")
    assert TOKEN not in json.dumps(opts)
    assert opts["token"] == "********"
    assert opts["endpoint_type"] == "raw" and opts["ack"] is False
    assert opts["ack_timeout"] == 180 and opts["ack_poll_interval"] == 1000
    assert opts["buffer_size"] == 5 * 1024 * 1024 and opts["buffer_interval"] == 60000
    assert opts["retry_duration"] == 3600
    assert db.one("SELECT options->'ack_timeout' FROM firehose.streams "
                  "WHERE name = 'limits'") == 600


# -- the acknowledgement timeouts (started by the first test) ---------------------------------

def test_ack_timeout_resends_and_counts_possible_duplicates(ack_timeouts):
    s, h, d = ack_timeouts, ack_timeouts.hec, ack_timeouts.db
    left = ACK_TIMEOUT + 60 - (time.monotonic() - s.started)
    h.wait(lambda x: len(data_requests(x, CH_RETRY)) >= 2
           and all(a["acked_at"] for a in x.acks_issued(CH_RETRY) if a["ack_id"] == 1)
           and len(x.acks_issued(CH_RETRY)) >= 2, timeout=max(left, 5))
    d.wait_for("SELECT delivered_records FROM firehose.stream_status WHERE stream = 'to_retry'",
               3, timeout=30)

    first, second = data_requests(h, CH_RETRY)[:2]
    assert first["response"]["ackId"] == 0 and second["response"]["ackId"] == 1
    waited = second["time"] - first["time"]
    assert ACK_TIMEOUT - 1 <= waited <= ACK_TIMEOUT + 30, waited
    assert second["body"] == first["body"], "the same batch is sent again"
    # indexed twice: the ack timeout did not mean the data was lost
    assert h.raw_lines(CH_RETRY) == [r.encode() for r in s.records["to_retry"]] * 2
    polls0 = [q for q in h.ack_queries() if q["channel"] == CH_RETRY and 0 in q["asked"]]
    assert len(polls0) >= 100, "ackId 0 polled every 500 ms for 180 s"
    assert all(q["answer"]["0"] is False for q in polls0)

    st = status(d, "to_retry")
    assert (st["delivered_records"], st["failed_records"], st["possible_duplicates"]) == (3, 0, 3)
    assert failed(d, "to_retry") == []
    assert len(data_requests(h, CH_RETRY)) == 2
    (row,) = deliveries(d, "to_retry")
    assert (row["outcome"], row["records"], row["attempts"]) == ("delivered", 3, 2)
    # the ack timeout is recorded on the request's row, and as the stream's last error
    assert (row["error_code"], st["last_error_code"]) == \
        ("Splunk.AckTimeout", "Splunk.AckTimeout"), \
        "the ack timeout left no trace: deliveries error_code %r error %r, " \
        "stream_status last_error_code %r" % (row["error_code"], row["error"],
                                              st["last_error_code"])


def test_ack_timeout_without_retries_fails_the_records(ack_timeouts):
    s, h, d = ack_timeouts, ack_timeouts.hec, ack_timeouts.db
    left = ACK_TIMEOUT + 60 - (time.monotonic() - s.started)
    d.wait_for("SELECT failed_records FROM firehose.stream_status WHERE stream = 'to_fail'",
               2, timeout=max(left, 5))
    rows = failed(d, "to_fail")
    assert [(r["data"], r["attempts_made"], r["error_code"]) for r in rows] == \
        [(b"f-1", 1, "Splunk.AckTimeout"), (b"f-2", 1, "Splunk.AckTimeout")]
    (req,) = data_requests(h, CH_FAIL)
    failed_at = float(d.one("SELECT extract(epoch FROM max(failed_at)) "
                            "FROM firehose.failed_records WHERE stream = 'to_fail'"))
    assert ACK_TIMEOUT - 1 <= failed_at - req["time"] <= ACK_TIMEOUT + 30
    (row,) = deliveries(d, "to_fail")
    assert (row["outcome"], row["error_code"]) == ("failed", "Splunk.AckTimeout")
    # possible_duplicates counts the records sent again (README); these were sent once
    assert status(d, "to_fail")["possible_duplicates"] == 0, \
        "records sent once are counted as possible duplicates"


def test_ack_wait_is_left_out_of_retry_duration(ack_timeouts):
    """Firehose's retry duration "starts after the first error or ack timeout,
    and excludes ack waits": with retry_duration 60, a 503 starts the count,
    the resend waits 180 s for an ack that never comes, and the data is still
    sent a third time (and acked) instead of failing."""
    s, h, d = ack_timeouts, ack_timeouts.hec_wait, ack_timeouts.db
    left = ACK_TIMEOUT + 60 - (time.monotonic() - s.started)
    d.wait_for("SELECT delivered_records + failed_records FROM firehose.stream_status "
               "WHERE stream = 'wait_excluded'", 2, timeout=max(left, 5))
    st = status(d, "wait_excluded")
    assert (st["delivered_records"], st["failed_records"]) == (2, 0), \
        "the ack wait was counted in retry_duration: %r" % (failed(d, "wait_excluded"),)
    reqs = data_requests(h, CH_WAIT)
    assert [(r["status"], r["code"]) for r in reqs] == [(503, 9), (200, 0), (200, 0)]
    assert reqs[2]["time"] - reqs[0]["time"] >= ACK_TIMEOUT - 1
    assert h.raw_lines(CH_WAIT) == [b"w-1", b"w-2"] * 2
    (row,) = deliveries(d, "wait_excluded")
    assert (row["outcome"], row["attempts"], row["error_code"]) == \
        ("delivered", 3, "Splunk.AckTimeout")
    assert st["possible_duplicates"] == 2
