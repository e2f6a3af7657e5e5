"""The test receiver alone (no PostgreSQL): it must be a strict Firehose endpoint.

Every protocol rule the receiver enforces is shown here to reject a request
that breaks it, and every fault rule to behave as documented in receiver.py.
"""

import base64
import gzip
import http.client
import json
import time
import urllib.error
import urllib.request
import uuid

import pytest

from helpers import refused


# What a client sees when the server closes the connection without answering.
DISCONNECTED = (urllib.error.URLError, http.client.RemoteDisconnected, ConnectionError)


def now_ms():
    return int(time.time() * 1000)


def b64(b):
    return base64.b64encode(b).decode()


def firehose_request(records=(b"hello", b"hello world"), rid=None, body=None,
                     headers=None, drop_headers=()):
    """A valid Firehose request (headers, body bytes), optionally altered."""
    rid = rid or str(uuid.uuid4())
    if body is None:
        body = {"requestId": rid, "timestamp": now_ms(),
                "records": [{"data": b64(r)} for r in records]}
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    h = {"X-Amz-Firehose-Protocol-Version": "1.0",
         "X-Amz-Firehose-Request-Id": rid,
         "Content-Type": "application/json"}
    h.update(headers or {})
    for k in drop_headers:
        h.pop(k, None)
    return rid, h, body


def send(url, headers, body, method="POST", timeout=30):
    """POST with urllib; return (status, headers, parsed JSON body or raw bytes)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, hdrs, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, e.headers, e.read()
    try:
        return status, hdrs, json.loads(raw)
    except ValueError:
        return status, hdrs, raw


def send_exact(port, headers, body, method="POST"):
    """Like send(), but with http.client: exactly these headers (urllib adds a
    default Content-Type), plus Host, Accept-Encoding and Content-Length."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, "/firehose", body=body, headers=headers)
        resp = conn.getresponse()
        status, hdrs, raw = resp.status, resp.headers, resp.read()
    finally:
        conn.close()
    try:
        return status, hdrs, json.loads(raw)
    except ValueError:
        return status, hdrs, raw


def post(r, **kw):
    rid, h, body = firehose_request(**kw)
    return (rid,) + send(r.url, h, body)


@pytest.fixture
def rcv(module_receiver):
    """A firehose-mode receiver with nothing recorded and no faults planned."""
    module_receiver.reset()
    return module_receiver


# -- accepted requests --------------------------------------------------------

def test_valid_request_is_accepted_and_echoed(rcv):
    rid, status, hdrs, body = post(rcv, records=[b"hello", b"", b"\x00\xffbin"])
    assert status == 200
    assert hdrs["Content-Type"] == "application/json"
    assert body["requestId"] == rid
    assert isinstance(body["timestamp"], int) and abs(body["timestamp"] - now_ms()) < 60000
    assert set(body) == {"requestId", "timestamp"}
    assert rcv.records() == [b"hello", b"", b"\x00\xffbin"]
    s = rcv.stats()
    assert (s["requests"], s["rejected"], s["records"], s["violations"]) == (1, 0, 3, [])
    assert s["request_ids_seen"] == {rid: 1}
    (req,) = rcv.requests()
    assert req["request_id"] == rid and req["status"] == 200 and req["n_records"] == 3
    assert req["headers"]["X-Amz-Firehose-Protocol-Version"] == "1.0"


def test_keep_alive_serves_several_requests_on_one_connection(rcv):
    conn = http.client.HTTPConnection("127.0.0.1", rcv.port, timeout=10)
    for i in range(3):
        rid, h, body = firehose_request(records=[b"r%d" % i])
        conn.request("POST", "/firehose", body=body, headers=h)
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["requestId"] == rid
        assert resp.getheader("Connection") != "close"
    conn.close()
    assert rcv.records() == [b"r0", b"r1", b"r2"]
    assert [q["records"] for q in rcv.requests(records=True)] == [[b"r0"], [b"r1"], [b"r2"]]


def test_gzip_body_is_accepted(rcv):
    rid, h, body = firehose_request(records=[b"x" * 100000, b"y"])
    h["Content-Encoding"] = "gzip"
    status, _, resp = send(rcv.url, h, gzip.compress(body))
    assert status == 200 and resp["requestId"] == rid
    assert rcv.records() == [b"x" * 100000, b"y"]


def test_common_attributes_and_source_arn_are_accepted(rcv):
    attrs = json.dumps({"commonAttributes": {"env": "test", "empty": ""}})
    rid, status, _, _ = post(rcv, headers={"X-Amz-Firehose-Common-Attributes": attrs,
                                           "X-Amz-Firehose-Source-Arn": "arn:x"})
    assert status == 200
    assert rcv.requests()[0]["headers"]["X-Amz-Firehose-Common-Attributes"] == attrs


def test_ten_thousand_records_are_accepted(rcv):
    _, status, _, _ = post(rcv, records=[b"%d" % i for i in range(10000)])
    assert status == 200 and rcv.stats()["records"] == 10000


# -- protocol violations ------------------------------------------------------

def mutate_body(**changes):
    """A body transform: apply changes to the valid body dict (None deletes)."""
    def f(rid, d):
        for k, v in changes.items():
            if v is None:
                d.pop(k, None)
            else:
                d[k] = v(rid, d) if callable(v) else v
        return d
    return f


VIOLATIONS = {
    "protocol version missing": dict(drop_headers=["X-Amz-Firehose-Protocol-Version"]),
    "protocol version 2.0": dict(headers={"X-Amz-Firehose-Protocol-Version": "2.0"}),
    "request id missing": dict(drop_headers=["X-Amz-Firehose-Request-Id"]),
    "request id not a GUID": dict(rid="batch-1"),
    "content type missing": dict(drop_headers=["Content-Type"]),
    "content type with charset": dict(headers={"Content-Type": "application/json; charset=utf-8"}),
    "content type text/plain": dict(headers={"Content-Type": "text/plain"}),
    "content encoding deflate": dict(headers={"Content-Encoding": "deflate"}),
    "gzip declared, body plain": dict(headers={"Content-Encoding": "gzip"}),
    "body not JSON": dict(raw=b"{not json"),
    "body a JSON array": dict(raw=b"[]"),
    "body with NaN": dict(body=mutate_body(timestamp=None), raw_suffix=True),
    "body with duplicate keys": dict(dupkey=True),
    "requestId missing": dict(body=mutate_body(requestId=None)),
    "requestId not a string": dict(body=mutate_body(requestId=42)),
    "requestId differs from header": dict(body=mutate_body(requestId=lambda r, d: str(uuid.uuid4()))),
    "timestamp missing": dict(body=mutate_body(timestamp=None)),
    "timestamp a string": dict(body=mutate_body(timestamp=lambda r, d: str(d["timestamp"]))),
    "timestamp a float": dict(body=mutate_body(timestamp=lambda r, d: d["timestamp"] + 0.5)),
    "timestamp in seconds": dict(body=mutate_body(timestamp=lambda r, d: d["timestamp"] // 1000)),
    "records missing": dict(body=mutate_body(records=None)),
    "records not a list": dict(body=mutate_body(records={"data": "aGk="})),
    "records empty": dict(body=mutate_body(records=[])),
    "10001 records": dict(body=mutate_body(records=[{"data": "aGk="}] * 10001)),
    "record not an object": dict(body=mutate_body(records=["aGk="])),
    "record with extra key": dict(body=mutate_body(records=[{"data": "aGk=", "id": 1}])),
    "record without data": dict(body=mutate_body(records=[{}])),
    "record data not a string": dict(body=mutate_body(records=[{"data": 5}])),
    "record data bad base64 chars": dict(body=mutate_body(records=[{"data": "aGk*"}])),
    "record data url-safe base64": dict(body=mutate_body(records=[{"data": "-_-_"}])),
    "record data missing padding": dict(body=mutate_body(records=[{"data": "aGk"}])),
    "record larger than 1000 KiB": dict(
        body=mutate_body(records=[{"data": b64(b"x" * 1024001)}])),
    "unexpected body field": dict(body=mutate_body(extra=1)),
    "common attributes not JSON": dict(headers={"X-Amz-Firehose-Common-Attributes": "env=x"}),
    "common attributes unwrapped": dict(
        headers={"X-Amz-Firehose-Common-Attributes": '{"env": "x"}'}),
    "common attribute not a string": dict(
        headers={"X-Amz-Firehose-Common-Attributes": '{"commonAttributes": {"n": 1}}'}),
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_protocol_violation_is_rejected_and_recorded(rcv, case):
    spec = VIOLATIONS[case]
    rid = spec.get("rid") or str(uuid.uuid4())
    d = {"requestId": rid, "timestamp": now_ms(), "records": [{"data": "aGk="}]}
    if "body" in spec:
        d = spec["body"](rid, d)
    body = json.dumps(d).encode()
    if spec.get("raw_suffix"):
        body = body[:-1] + b', "timestamp": NaN}'
    if spec.get("dupkey"):
        body = body[:-1] + b', "requestId": "%s"}' % rid.encode()
    if "raw" in spec:
        body = spec["raw"]
    _, h, body = firehose_request(rid=rid, body=body, headers=spec.get("headers"),
                                  drop_headers=spec.get("drop_headers", ()))
    status, hdrs, resp = send_exact(rcv.port, h, body)
    assert status == 400, resp
    assert hdrs["Content-Type"] == "application/json"
    assert isinstance(resp["errorMessage"], str) and resp["errorMessage"]
    assert isinstance(resp["timestamp"], int)
    s = rcv.stats()
    assert s["violations"] == [resp["errorMessage"]]
    assert (s["requests"], s["rejected"], s["records"]) == (0, 1, 0)
    assert rcv.requests()[0]["status"] == 400


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_methods_other_than_post_are_violations(rcv, method):
    _, h, body = firehose_request()
    status, _, resp = send(rcv.url, h, body if method != "GET" else None, method=method)
    assert status == 400 and "POST" in resp["errorMessage"]
    assert len(rcv.stats()["violations"]) == 1


def test_missing_content_length_is_a_violation(rcv):
    _, h, body = firehose_request()
    conn = http.client.HTTPConnection("127.0.0.1", rcv.port, timeout=10)
    conn.request("POST", "/firehose", body=iter([body]), headers=h, encode_chunked=True)
    resp = conn.getresponse()
    assert resp.status == 400
    assert "Content-Length" in json.loads(resp.read())["errorMessage"]
    conn.close()
    assert len(rcv.stats()["violations"]) == 1


def test_repeated_header_is_a_violation(rcv):
    _, h, body = firehose_request()
    conn = http.client.HTTPConnection("127.0.0.1", rcv.port, timeout=10)
    conn.putrequest("POST", "/firehose")
    for k, v in h.items():
        conn.putheader(k, v)
    conn.putheader("X-Amz-Firehose-Protocol-Version", "1.0")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    assert resp.status == 400 and "repeated" in json.loads(resp.read())["errorMessage"]
    conn.close()


def test_body_over_64_mib_uncompressed_is_a_violation(rcv):
    rid, h, body = firehose_request(body=b"")
    big = (b'{"requestId": "%s", "timestamp": %d, "records": [{"data": "aGk="}]'
           % (rid.encode(), now_ms())) + b" " * (64 * 1024 * 1024) + b"}"
    h["Content-Encoding"] = "gzip"
    status, _, resp = send(rcv.url, h, gzip.compress(big, compresslevel=1))
    assert status == 400 and "64 MiB" in resp["errorMessage"]


def test_a_body_cut_short_is_an_aborted_request(rcv, wait_until):
    """A sender that gives up in the middle of a body (a request timeout, a
    killed worker) closes the connection: nothing to answer, nothing stored,
    no violation, and the request still gets an outcome."""
    rid, h, body = firehose_request()
    conn = http.client.HTTPConnection("127.0.0.1", rcv.port, timeout=30)
    conn.putrequest("POST", "/firehose")
    for k, v in h.items():
        conn.putheader(k, v)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body[:10])
    conn.close()
    reqs = wait_until(lambda: [q for q in rcv.requests() if q["outcome"]], timeout=10)
    assert [(q["request_id"], q["outcome"], q["status"]) for q in reqs] == \
        [(rid, "aborted", None)], reqs
    assert "10 of %d bytes" % len(body) in reqs[0]["error"]
    st = rcv.stats()
    assert (st["violations"], st["records"], st["requests"]) == ([], 0, 0), st


# -- access key -----------------------------------------------------------------

@pytest.mark.parametrize("key,expected", [(None, 401), ("wrong", 401), ("s3cret", 200)])
def test_access_key(receiver, key, expected):
    r = receiver(access_key="s3cret", strict=False)
    headers = {"X-Amz-Firehose-Access-Key": key} if key else {}
    rid, status, _, resp = post(r, headers=headers)
    assert status == expected
    assert resp["requestId"] == rid and isinstance(resp["timestamp"], int)
    s = r.stats()
    assert s["violations"] == []
    assert s["records"] == (2 if expected == 200 else 0)
    if expected == 401:
        assert "access key" in resp["errorMessage"] and s["rejected"] == 1


# -- raw mode -------------------------------------------------------------------

def test_raw_mode_stores_bodies(receiver):
    r = receiver(mode="raw", strict=False)
    status, hdrs, resp = send(r.url, {"Content-Type": "application/x-ndjson"}, b'{"a":1}\n')
    assert (status, resp) == (200, {})
    assert hdrs["Content-Type"] == "application/json"
    status, _, _ = send(r.url, {"Content-Encoding": "gzip"}, gzip.compress(b"zipped\n"))
    assert status == 200
    assert r.records() == [b'{"a":1}\n', b"zipped\n"]
    reqs = r.requests()
    assert reqs[0]["headers"]["Content-Type"] == "application/x-ndjson"
    assert base64.b64decode(reqs[1]["body_b64"]) == b"zipped\n"
    status, _, _ = send(r.url, {}, None, method="GET")
    assert status == 400 and len(r.stats()["violations"]) == 1


# -- control API ----------------------------------------------------------------

def test_reset_clears_everything(rcv):
    post(rcv)
    rcv.faults([{"status": 500}])
    rcv.reset()
    s = rcv.stats()
    assert (s["requests"], s["records"], s["request_ids_seen"]) == (0, 0, {})
    assert post(rcv)[1] == 200


def test_invalid_fault_plan_is_refused(rcv):
    for plan in ([{"status": "x"}], [{"bogus": 1}], [{"malformed": "nope"}],
                 [{"status": 500, "drop": True}], {"status": 500}):
        with pytest.raises(RuntimeError, match="400"):
            rcv.faults(plan)


def test_wait_returns_when_records_arrive_and_times_out_otherwise(rcv):
    with pytest.raises(TimeoutError):
        rcv.wait_records(1, timeout=0.3)
    post(rcv)
    assert rcv.wait_records(2, timeout=5)["records"] == 2


# -- fault rules ----------------------------------------------------------------

def test_status_fault_with_count_then_success_same_request_id(rcv):
    rcv.faults([{"status": 500, "count": 3}])
    rid, h, body = firehose_request(records=[b"one"])
    codes = []
    for _ in range(4):
        status, hdrs, resp = send(rcv.url, h, body)
        codes.append(status)
        assert resp["requestId"] == rid and hdrs["Content-Type"] == "application/json"
    assert codes == [500, 500, 500, 200]
    assert rcv.records() == [b"one"]
    s = rcv.stats()
    assert s["request_ids_seen"] == {rid: 4} and s["faulted"] == 3 and s["requests"] == 1
    assert [q["status"] for q in rcv.requests()] == [500, 500, 500, 200]


def test_rule_without_count_stays_and_rules_apply_in_order(rcv):
    rcv.faults([{"status": 500, "count": 1}, {"status": 413, "count": 1}, {"status": 503}])
    assert [post(rcv)[1] for _ in range(4)] == [500, 413, 503, 503]
    rcv.faults([])
    assert post(rcv)[1] == 200


def test_probability_rule_is_random_and_seedable(rcv):
    def run():
        rcv.reset()
        rcv.faults([{"status": 503, "probability": 0.5, "seed": 7}])
        return [post(rcv)[1] for _ in range(30)]
    first = run()
    assert set(first) == {200, 503}
    assert run() == first
    rcv.faults([{"status": 503, "probability": 0.0}])
    assert post(rcv)[1] == 200


def test_delay_then_normal_answer(rcv):
    rcv.faults([{"delay": 1.0, "count": 1}])
    t = time.monotonic()
    assert post(rcv)[1] == 200
    assert time.monotonic() - t >= 1.0
    t = time.monotonic()
    assert post(rcv)[1] == 200
    assert time.monotonic() - t < 0.9        # the rule is used up: no delay
    assert rcv.stats()["records"] == 4


@pytest.mark.parametrize("kind", ["badjson", "wrongid", "notimestamp", "stringtimestamp",
                                  "wrongcontenttype", "nocontenttype", "nobody", "toolarge"])
def test_malformed_responses(rcv, kind):
    rcv.faults([{"malformed": kind, "count": 1}])
    rid, h, body = firehose_request()
    conn = http.client.HTTPConnection("127.0.0.1", rcv.port, timeout=10)
    conn.request("POST", "/firehose", body=body, headers=h)
    resp = conn.getresponse()
    raw = resp.read()
    assert resp.status == 200
    ctype = resp.getheader("Content-Type")
    if kind == "badjson":
        with pytest.raises(ValueError):
            json.loads(raw)
    elif kind == "wrongid":
        assert json.loads(raw)["requestId"] != rid
    elif kind == "notimestamp":
        assert "timestamp" not in json.loads(raw)
    elif kind == "stringtimestamp":
        assert isinstance(json.loads(raw)["timestamp"], str)
    elif kind == "wrongcontenttype":
        assert ctype == "text/plain"
    elif kind == "nocontenttype":
        assert ctype is None
    elif kind == "nobody":
        assert raw == b""
    elif kind == "toolarge":
        assert len(raw) > 1024 * 1024
    conn.close()
    assert rcv.stats()["records"] == 0
    assert post(rcv)[1] == 200


def test_drop_closes_without_answer_and_stores_nothing(rcv):
    rcv.faults([{"drop": True, "count": 1}, {"drop": True, "reset": True, "count": 1}])
    for _ in range(2):
        rid, h, body = firehose_request()
        conn = http.client.HTTPConnection("127.0.0.1", rcv.port, timeout=10)
        with pytest.raises(DISCONNECTED):
            conn.request("POST", "/firehose", body=body, headers=h)
            conn.getresponse()
        conn.close()
    assert rcv.stats()["records"] == 0
    assert post(rcv)[1] == 200


def test_store_then_drop_makes_a_duplicate_on_retry(rcv):
    rcv.faults([{"store_then_drop": True, "count": 1}])
    rid, h, body = firehose_request(records=[b"dup"])
    with pytest.raises(DISCONNECTED):
        send(rcv.url, h, body)
    status, _, _ = send(rcv.url, h, body)
    assert status == 200
    assert rcv.records() == [b"dup", b"dup"]
    assert rcv.stats()["request_ids_seen"] == {rid: 2}


def test_store_then_status(rcv):
    rcv.faults([{"store_then_status": 500, "count": 1}])
    rid, status, _, resp = post(rcv, records=[b"kept"])
    assert status == 500 and resp["requestId"] == rid
    assert rcv.records() == [b"kept"]



def test_down_for_refuses_connections_then_comes_back(rcv):
    rcv.faults([{"down_for": 1.5}])
    keep = http.client.HTTPConnection("127.0.0.1", rcv.port, timeout=10)
    keep.request("GET", "/_control/health")
    assert keep.getresponse().read()
    t = time.monotonic()
    with pytest.raises(DISCONNECTED):
        post(rcv)                       # this request triggers the outage
    deadline = time.monotonic() + 5
    while not refused(rcv.port):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # the kept-alive connection was cut too
    with pytest.raises(DISCONNECTED):
        keep.request("GET", "/_control/health")
        keep.getresponse()
    while refused(rcv.port):
        assert time.monotonic() - t < 10
        time.sleep(0.05)
    assert time.monotonic() - t >= 1.4
    assert post(rcv)[1] == 200          # same port, rule used up
    assert rcv.stats()["records"] == 2


def test_down_for_now_starts_at_once(rcv):
    rcv.faults([{"down_for": 2.0, "now": True}])
    deadline = time.monotonic() + 1.5       # well inside the outage
    while not refused(rcv.port):
        assert time.monotonic() < deadline, "the receiver did not go down"
        time.sleep(0.02)
    assert rcv.stats()["requests"] == 0     # the control client waits out the outage
    assert post(rcv)[1] == 200
