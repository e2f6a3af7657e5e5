"""Destination 'opensearch': _bulk requests to an OpenSearch cluster, checked
against test/opensearch_receiver.py (an in-process OpenSearch 2.x _bulk endpoint
with authentication, per-item faults and request faults).

What is checked here: the request (method, path, query, Content-Type, action
and document lines, escaping, documents sent as given or on one line), index
names with their rotation suffix for the records' arrival time, document ids,
type, routing, pipeline, endpoint path prefixes, basic auth, SigV4 (static,
session token, aoss, credentials from the environment), TLS, per-item outcomes
(only failed documents are retried, 409 counts as delivered, permanent
failures land in firehose.failed_records with OpenSearch's error), records that
are not JSON objects, whole-request retries and failures, invalid responses,
the 10,000-document cap, a worker restart during item retries, redrive, the S3
backup of failed documents (reference section 3.8), and the acceptance run of
issue 4 (50,000 documents, 10 % failing transiently, 1 % permanently: exact id
sets at the end).

Every receiver started here fails the test at teardown if it saw anything the
destination must never send (see "Violations" in opensearch_receiver.py).
"""

import base64
import collections
import datetime
import json
import time

import psycopg2
import pytest

import helpers
from helpers import FAST, flush
from opensearch_receiver import OpenSearchReceiver, pick

KEY, SECRET, REGION = "AKIDFIREHOSETEST", "c2VjcmV0/Key+for/tests0123456789abcdefgh", "eu-west-1"


@pytest.fixture
def opensearch():
    """Factory: opensearch(strict=True, **OpenSearchReceiver options) -> a started
    receiver, stopped at teardown; with strict the test fails if it saw violations."""
    started = []

    def start(strict=True, **kw):
        r = OpenSearchReceiver(**kw).start()
        started.append((r, strict))
        return r

    yield start
    problems = []
    for r, strict in started:
        v = r.violations()
        r.stop()
        if v and strict:
            problems.append("OpenSearch receiver %s saw violations: %r" % (r.url, v[:10]))
    if problems:
        pytest.fail("\n".join(problems))


def make_os_stream(db, name, endpoint, **opts):
    """create_stream(name, 'opensearch', FAST + endpoint + index 'logs' + opts)."""
    o = dict(FAST, endpoint=endpoint, index="logs", index_rotation="none")
    o.update(opts)
    o = {k: v for k, v in o.items() if v is not None}
    db.execute("SELECT firehose.create_stream(%s, 'opensearch', %s::jsonb)",
               (name, json.dumps(o)))


def put(db, stream, data):
    """firehose.put of one record; str -> text, bytes -> bytea, else jsonb."""
    if isinstance(data, bytes):
        return db.one("SELECT firehose.put(%s, %s::bytea)", (stream, psycopg2.Binary(data)))
    if isinstance(data, str):
        return db.one("SELECT firehose.put(%s, %s::text)", (stream, data))
    return db.one("SELECT firehose.put(%s, %s::jsonb)", (stream, json.dumps(data)))


def pause(db, stream):
    db.execute("SELECT firehose.pause(%s)", (stream,))


def resume(db, stream):
    db.execute("SELECT firehose.resume(%s)", (stream,))


def jsonb_text(db, doc):
    """The bytes PostgreSQL sends for a jsonb value."""
    return db.one("SELECT %s::jsonb::text", (json.dumps(doc),)).encode()


def lines(req):
    """(action dict, document bytes) pairs of a recorded bulk request."""
    body = req["body"]
    assert body.endswith(b"\n")
    ls = body.split(b"\n")[:-1]
    assert len(ls) % 2 == 0, body[:500]
    return [(json.loads(ls[i]), ls[i + 1]) for i in range(0, len(ls), 2)]


def header(req, name):
    for k, v in req["header_list"]:
        if k.lower() == name.lower():
            return v
    return None


def failed(db, stream):
    return helpers.failed(db, stream, order_by="record_id")


def status(db, stream):
    cols = ["buffered_records", "in_flight_records", "delivered_records", "failed_records",
            "last_error_code"]
    row = db.q("SELECT " + ", ".join(cols) + " FROM firehose.stream_status WHERE stream = %s",
               (stream,))[0]
    return dict(zip(cols, row))


def deliveries(db, stream):
    cols = ["records", "attempts", "http_status", "outcome", "failed_records", "error_code",
            "error"]
    return [dict(zip(cols, r)) for r in
            db.q("SELECT " + ", ".join(cols) + " FROM firehose.deliveries WHERE stream = %s "
                 "ORDER BY id", (stream,))]


def db_now(db):
    """The server's clock, UTC."""
    return datetime.datetime.fromtimestamp(
        float(db.one("SELECT extract(epoch FROM clock_timestamp())")), datetime.timezone.utc)


def week_suffix(t):
    """-yyyy-wNN: weeks start on Sunday, week 1 is the first full Sunday-Saturday
    week of the year, days before it are in the previous year's last week."""
    d = t.date()
    sunday = d - datetime.timedelta(days=(d.weekday() + 1) % 7)
    jan1 = datetime.date(sunday.year, 1, 1)
    first = jan1 + datetime.timedelta(days=(6 - jan1.weekday()) % 7)
    return "-%04d-w%02d" % (sunday.year, (sunday - first).days // 7 + 1)


def suffix(rotation, t):
    if rotation == "none":
        return ""
    if rotation == "hour":
        return t.strftime("-%Y-%m-%d-%H")
    if rotation == "day":
        return t.strftime("-%Y-%m-%d")
    if rotation == "month":
        return t.strftime("-%Y-%m")
    if rotation == "week":
        return week_suffix(t)
    raise AssertionError(rotation)


def test_week_suffix_examples_of_the_spec():
    # the helper itself, on the examples of the issue
    assert week_suffix(datetime.datetime(2016, 2, 25, 13)) == "-2016-w08"
    assert week_suffix(datetime.datetime(2016, 1, 1)) == "-2015-w52"
    assert week_suffix(datetime.datetime(2017, 1, 1)) == "-2017-w01"


# -- the request -----------------------------------------------------------------

def test_bulk_request_format(db, opensearch):
    r = opensearch()
    make_os_stream(db, "fmt", r.url)
    pause(db, "fmt")
    docs = [{"id": 1, "msg": "hello"}, {"id": 2, "nested": {"a": [1, 2.5, None]}},
            {"id": 3, "text": "caf\u00e9 \u2713 \"q\" \\"}]
    rids = [put(db, "fmt", d) for d in docs]
    resume(db, "fmt")
    flush(db, "fmt")
    (req,) = r.bulk_requests()
    assert req["method"] == "POST"
    assert req["path"] == "/_bulk" and req["query"] == {}
    assert header(req, "Content-Type") == "application/x-ndjson"
    assert header(req, "Authorization") is None
    pairs = lines(req)
    assert [a for a, _ in pairs] == [{"index": {"_index": "logs", "_id": "fmt-%d" % rid}}
                                     for rid in rids]
    assert [d for _, d in pairs] == [jsonb_text(db, d) for d in docs]
    assert req["status"] == 200
    for rid, d in zip(rids, docs):
        assert r.doc("logs", "fmt-%d" % rid)["source"] == d
    st = status(db, "fmt")
    assert (st["delivered_records"], st["failed_records"]) == (3, 0)
    (dl,) = deliveries(db, "fmt")
    assert (dl["records"], dl["outcome"], dl["http_status"]) == (3, "delivered", 200)
    assert failed(db, "fmt") == []


def test_documents_are_sent_as_given_and_newlines_removed(db, opensearch):
    r = opensearch()
    make_os_stream(db, "asis", r.url)
    pause(db, "asis")
    spaced = '{"b" : 1,   "a":[1 ,2],"u":"\\u00e9t\u00e9"}'
    multiline = '{\n  "x": 1,\n  "y": "two\\nlines"\n}'
    as_bytes = b'{"raw": "bytes", "n": 1.50}'
    ids = [put(db, "asis", spaced), put(db, "asis", multiline), put(db, "asis", as_bytes)]
    resume(db, "asis")
    flush(db, "asis")
    (req,) = r.bulk_requests()
    sent = [d for _, d in lines(req)]
    assert sent[0] == spaced.encode()
    assert sent[2] == as_bytes
    assert b"\n" not in sent[1]
    assert json.loads(sent[1]) == {"x": 1, "y": "two\nlines"}
    assert [a["index"]["_id"] for a, _ in lines(req)] == ["asis-%d" % i for i in ids]
    assert status(db, "asis")["delivered_records"] == 3


@pytest.mark.parametrize("doc", [
    '{"a": "x\\u0000y",\n "b": 1}',
    '{"a": "\\ud800",\n "b": 1}',
    '{"a": 1e1000000,\n "b": 1}',
], ids=["escaped-nul", "lone-surrogate", "huge-number"])
def test_multiline_json_that_jsonb_cannot_hold_does_not_stop_delivery(db, opensearch, doc):
    """Valid JSON objects with a newline, which PostgreSQL's jsonb refuses: the
    record is sent on one line or fails alone; the other records of its batch
    and of other streams are delivered."""
    r = opensearch()
    make_os_stream(db, "odd", r.url)
    make_os_stream(db, "other", r.url, index="other")
    pause(db, "odd")
    before = put(db, "odd", {"n": 1})
    odd = put(db, "odd", doc)
    after = put(db, "odd", {"n": 2})
    resume(db, "odd")
    other = put(db, "other", {"o": 1})
    assert db.flush("other", "15s") is True, "another stream of the database is stuck"
    assert db.flush("odd", "15s") is True, "the stream is stuck"
    assert ("other", "other-%d" % other) in r.docs()
    got = {k[1] for k in r.docs() if k[0] == "logs"}
    assert {"odd-%d" % before, "odd-%d" % after} <= got
    rows = failed(db, "odd")
    if "odd-%d" % odd in got:
        assert rows == []
        sent = [d for q in r.bulk_requests() for a, d in lines(q)
                if a["index"]["_id"] == "odd-%d" % odd]
        assert sent and b"\n" not in sent[0]
    else:
        assert [(x["record_id"], x["error_code"]) for x in rows] == \
            [(odd, "OpenSearch.InvalidDocument")]


@pytest.mark.parametrize("rotation", ["none", "hour", "day", "week", "month", None])
def test_index_rotation_suffix_of_the_arrival_time(db, opensearch, rotation):
    r = opensearch()
    make_os_stream(db, "rot", r.url, index="web-logs", index_rotation=rotation)
    t0 = db_now(db)
    rid = put(db, "rot", {"k": 1})
    t1 = db_now(db)
    flush(db, "rot")
    effective = rotation or "day"                  # the default
    allowed = {"web-logs" + suffix(effective, t) for t in (t0, t1)}
    (req,) = r.bulk_requests()
    ((action, _),) = lines(req)
    assert action["index"]["_index"] in allowed, (action, allowed)
    assert set(r.docs()) == {(action["index"]["_index"], "rot-%d" % rid)}


def test_document_id_none_lets_the_cluster_assign_ids(db, opensearch):
    r = opensearch()
    make_os_stream(db, "noid", r.url, document_id="none")
    pause(db, "noid")
    for i in range(3):
        put(db, "noid", {"i": i})
    resume(db, "noid")
    flush(db, "noid")
    (req,) = r.bulk_requests()
    assert [a for a, _ in lines(req)] == [{"index": {"_index": "logs"}}] * 3
    docs = r.docs()
    assert len(docs) == 3
    assert sorted(d["source"]["i"] for d in docs.values()) == [0, 1, 2]
    assert all(len(k[1]) == 20 for k in docs)
    assert status(db, "noid")["delivered_records"] == 3


def test_document_id_from_a_json_path(db, opensearch):
    r = opensearch()
    make_os_stream(db, "path", r.url, document_id="$.order_id")
    pause(db, "path")
    put(db, "path", {"order_id": "A-1", "v": 1})
    put(db, "path", {"order_id": 42, "v": 2})
    missing = put(db, "path", {"v": 3})
    put(db, "path", {"order_id": "A-4", "v": 4})
    resume(db, "path")
    flush(db, "path")
    (req,) = r.bulk_requests()
    assert [a["index"]["_id"] for a, _ in lines(req)] == ["A-1", "42", "A-4"]
    assert set(r.docs()) == {("logs", "A-1"), ("logs", "42"), ("logs", "A-4")}
    (row,) = failed(db, "path")
    assert row["record_id"] == missing
    assert row["error_code"] == "OpenSearch.MissingDocumentId"
    assert json.loads(row["data"]) == {"v": 3}
    st = status(db, "path")
    assert (st["delivered_records"], st["failed_records"]) == (3, 1)


def test_same_document_id_twice_updates_the_document(db, opensearch):
    r = opensearch()
    make_os_stream(db, "upd", r.url, document_id="$.k")
    put(db, "upd", {"k": "same", "v": 1})
    flush(db, "upd")
    put(db, "upd", {"k": "same", "v": 2})
    flush(db, "upd")
    d = r.doc("logs", "same")
    assert (d["source"], d["version"]) == ({"k": "same", "v": 2}, 2)
    assert status(db, "upd")["delivered_records"] == 2


def test_type_name_routing_and_pipeline(db, opensearch):
    r = opensearch()
    make_os_stream(db, "meta", r.url, type_name="_doc", routing="$.customer",
                   pipeline="enrich-v2")
    rid = put(db, "meta", {"customer": "c-17", "amount": 3})
    flush(db, "meta")
    (req,) = r.bulk_requests()
    assert req["path"] == "/_bulk"
    assert req["query"] == {"pipeline": "enrich-v2"}
    ((action, _),) = lines(req)
    assert action == {"index": {"_index": "logs", "_id": "meta-%d" % rid, "_type": "_doc",
                                "routing": "c-17"}}
    d = r.doc("logs", "meta-%d" % rid)
    assert (d["type"], d["routing"], d["pipeline"]) == ("_doc", "c-17", "enrich-v2")


def test_endpoint_with_a_path_prefix(db, opensearch):
    r = opensearch(path_prefix="/search/os")
    make_os_stream(db, "pfx", r.url, pipeline="p")
    put(db, "pfx", {"a": 1})
    flush(db, "pfx")
    (req,) = r.bulk_requests()
    assert req["path"] == "/search/os/_bulk"
    assert req["raw_path"] == "/search/os/_bulk?pipeline=p"
    assert len(r.docs()) == 1


def test_action_create_and_409_counts_as_delivered(db, opensearch):
    r = opensearch()
    make_os_stream(db, "cr", r.url, action="create", document_id="$.k")
    # "dup" exists already: create answers 409, which counts as delivered
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    c.request("POST", "/_bulk", body=b'{"index":{"_index":"logs","_id":"dup"}}\n{"k":"dup"}\n',
              headers={"Content-Type": "application/x-ndjson"})
    assert c.getresponse().status == 200
    c.close()
    pause(db, "cr")
    put(db, "cr", {"k": "dup", "v": 2})
    put(db, "cr", {"k": "new", "v": 1})
    resume(db, "cr")
    flush(db, "cr")
    req = r.bulk_requests()[-1]
    assert [list(a) for a, _ in lines(req)] == [["create"], ["create"]]
    assert [i["create"]["status"] for i in req["response_items"]] == [409, 201]
    assert r.doc("logs", "dup")["source"] == {"k": "dup"}          # unchanged
    assert r.doc("logs", "new")["source"] == {"k": "new", "v": 1}
    assert failed(db, "cr") == []
    st = status(db, "cr")
    assert (st["delivered_records"], st["failed_records"]) == (2, 0)
    assert len(r.bulk_requests()) == 2, "a 409 must not be retried"


def test_409_item_on_index_counts_as_delivered(db, opensearch):
    r = opensearch()
    make_os_stream(db, "c409", r.url)
    pause(db, "c409")
    a = put(db, "c409", {"a": 1})
    put(db, "c409", {"a": 2})
    r.item_faults([{"ids": ["c409-%d" % a], "status": 409}])
    resume(db, "c409")
    flush(db, "c409")
    assert len(r.bulk_requests()) == 1
    assert failed(db, "c409") == []
    assert status(db, "c409")["delivered_records"] == 2


# -- authentication ---------------------------------------------------------------

def test_basic_auth(db, opensearch):
    r = opensearch(username="firehose", password="s3cr\u00e9t:pw")
    make_os_stream(db, "good", r.url, username="firehose", password="s3cr\u00e9t:pw")
    put(db, "good", {"ok": True})
    flush(db, "good")
    (req,) = r.bulk_requests()
    assert req["status"] == 200
    got = header(req, "Authorization")
    assert got.startswith("Basic ")
    assert base64.b64decode(got[6:]).decode("utf-8") == "firehose:s3cr\u00e9t:pw"
    assert len(r.docs()) == 1
    opts = db.one("SELECT options FROM firehose.streams WHERE name = 'good'")
    assert opts["password"] != "s3cr\u00e9t:pw"                     # redacted


def test_wrong_password_fails_with_http401(db, opensearch):
    r = opensearch(username="firehose", password="right")
    make_os_stream(db, "bad", r.url, username="firehose", password="wrong", retry_duration=2)
    rid = put(db, "bad", {"x": 1})
    flush(db, "bad")
    assert r.docs() == {}
    assert {q["status"] for q in r.requests()} == {401}
    (row,) = failed(db, "bad")
    assert row["record_id"] == rid
    assert row["error_code"] == "OpenSearch.HTTP401"
    assert row["attempts_made"] == 1, "401 is not retried"
    assert len(r.requests()) == 1
    assert status(db, "bad")["failed_records"] == 1


def sigv4_receiver(opensearch, **kw):
    cfg = {"access_key": KEY, "secret_key": SECRET, "region": REGION, "service": "es"}
    cfg.update(kw)
    return opensearch(sigv4=cfg)


def test_sigv4_signed_requests_are_accepted(db, opensearch):
    r = sigv4_receiver(opensearch)
    make_os_stream(db, "sig", r.url, aws_region=REGION, access_key_id=KEY,
                   secret_access_key=SECRET, pipeline="p1")
    pause(db, "sig")
    for i in range(5):
        put(db, "sig", {"i": i})
    resume(db, "sig")
    flush(db, "sig")
    (req,) = r.bulk_requests()
    assert req["status"] == 200, req["error"]
    auth = header(req, "Authorization")
    date8 = header(req, "X-Amz-Date")[:8]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=%s/%s/%s/es/aws4_request, "
                           % (KEY, date8, REGION))
    assert "host" in auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert len(r.docs()) == 5
    assert r.last_sigv4["expected"] == r.last_sigv4["got"]
    opts = db.one("SELECT options FROM firehose.streams WHERE name = 'sig'")
    assert SECRET not in json.dumps(opts)


def test_sigv4_session_token_and_aoss(db, opensearch):
    token = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+test/token=="
    r = sigv4_receiver(opensearch, service="aoss", session_token=token)
    make_os_stream(db, "aoss", r.url, aws_region=REGION, aws_service="aoss",
                   access_key_id=KEY, secret_access_key=SECRET, session_token=token)
    put(db, "aoss", {"a": 1})
    flush(db, "aoss")
    (req,) = r.bulk_requests()
    assert req["status"] == 200, req["error"]
    assert header(req, "X-Amz-Security-Token") == token
    assert len(r.docs()) == 1


def test_sigv4_wrong_secret_fails_the_records(db, opensearch):
    r = sigv4_receiver(opensearch)
    make_os_stream(db, "badsig", r.url, aws_region=REGION, access_key_id=KEY,
                   secret_access_key="not-the-secret", retry_duration=2)
    ids = [put(db, "badsig", {"i": i}) for i in range(3)]
    flush(db, "badsig")
    assert r.docs() == {}
    assert {q["status"] for q in r.requests()} == {403}
    rows = failed(db, "badsig")
    assert [x["record_id"] for x in rows] == ids
    assert {x["error_code"] for x in rows} == {"OpenSearch.HTTP403"}
    assert "signature we calculated does not match" in rows[0]["error_message"]
    st = status(db, "badsig")
    assert (st["delivered_records"], st["failed_records"]) == (0, 3)


def test_sigv4_wrong_region_fails(db, opensearch):
    r = sigv4_receiver(opensearch)
    make_os_stream(db, "badreg", r.url, aws_region="us-west-2", access_key_id=KEY,
                   secret_access_key=SECRET, retry_duration=2)
    put(db, "badreg", {"i": 1})
    flush(db, "badreg")
    (row,) = failed(db, "badreg")
    assert row["error_code"] == "OpenSearch.HTTP403"
    assert r.docs() == {}


def _server_environ(db):
    """The postmaster's environment (as test_s3.py reads it)."""
    stat = bytes(db.one("SELECT pg_read_binary_file('/proc/self/stat')")).decode()
    ppid = int(stat.rsplit(")", 1)[1].split()[1])
    raw = bytes(db.one("SELECT pg_read_binary_file(%s)", ("/proc/%d/environ" % ppid,)))
    return dict(kv.split("=", 1) for kv in raw.decode(errors="replace").split("\0") if "=" in kv)


def test_sigv4_credentials_from_the_environment(db, opensearch):
    """credentials 'environment': the worker signs with the server's AWS_* keys.
    The receiver is given those keys when the server has them; without them
    nothing can be signed and the records fail."""
    env = _server_environ(db)
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    cfg = {"access_key": key or KEY, "secret_key": secret or SECRET, "region": REGION,
           "service": "es"}
    if env.get("AWS_SESSION_TOKEN"):
        cfg["session_token"] = env["AWS_SESSION_TOKEN"]
    r = opensearch(sigv4=cfg)
    plain = opensearch()
    make_os_stream(db, "envc", r.url, aws_region=REGION, credentials="environment",
                   retry_duration=1)
    make_os_stream(db, "plain", plain.url)
    rid = put(db, "envc", {"e": 1})
    put(db, "plain", {"p": 1})
    assert db.flush("plain", "15s") is True, "another stream of the database is stuck"
    assert db.flush("envc", "15s") is True, "the record is neither delivered nor failed"
    assert len(plain.docs()) == 1
    if key and secret:
        assert len(r.docs()) == 1, [q["error"] for q in r.requests()]
        assert failed(db, "envc") == []
        (req,) = r.bulk_requests()
        assert header(req, "Authorization").startswith(
            "AWS4-HMAC-SHA256 Credential=%s/" % key)
    else:
        assert r.docs() == {}
        (row,) = failed(db, "envc")
        assert row["record_id"] == rid and row["error_code"] and row["error_message"]


# -- per-item outcomes -------------------------------------------------------------

@pytest.mark.parametrize("code", [429, 503, 500])
def test_partial_failure_retries_only_the_failed_documents(db, opensearch, code):
    r = opensearch()
    make_os_stream(db, "part", r.url)
    pause(db, "part")
    docs = [{"n": i, "s": "v%d" % i} for i in range(6)]
    rids = [put(db, "part", d) for d in docs]
    ids = ["part-%d" % x for x in rids]
    bad = {ids[1], ids[4]}
    r.item_faults([{"ids": sorted(bad), "status": code, "times": 2}])
    resume(db, "part")
    flush(db, "part")
    reqs = r.bulk_requests()
    assert len(reqs) == 3
    first = lines(reqs[0])
    assert [a["index"]["_id"] for a, _ in first] == ids
    for q in reqs[1:]:
        again = lines(q)
        assert [a["index"]["_id"] for a, _ in again] == [ids[1], ids[4]]
        # the same action and document lines as the first time
        assert again == [first[1], first[4]]
    seen = r.seen_counts()
    assert {k: seen[k] for k in ids} == {i: (3 if i in bad else 1) for i in ids}
    assert r.indexed_counts() == collections.Counter({("logs", i): 1 for i in ids})
    assert failed(db, "part") == []
    st = status(db, "part")
    assert (st["delivered_records"], st["failed_records"]) == (6, 0)


def test_permanent_item_failure_goes_to_failed_records(db, opensearch):
    r = opensearch(mappings={"amount": "long"})
    make_os_stream(db, "perm", r.url)
    pause(db, "perm")
    ok1 = put(db, "perm", {"amount": 5})
    bad = put(db, "perm", '{"amount": "twelve"}')
    ok2 = put(db, "perm", {"amount": 7})
    resume(db, "perm")
    flush(db, "perm")
    assert len(r.bulk_requests()) == 1, "a 400 item is not retried"
    assert set(r.docs()) == {("logs", "perm-%d" % ok1), ("logs", "perm-%d" % ok2)}
    (row,) = failed(db, "perm")
    assert row["record_id"] == bad
    assert row["data"] == b'{"amount": "twelve"}'
    assert row["error_code"] == "OpenSearch.mapper_parsing_exception"
    assert row["error_message"] == (
        "400 mapper_parsing_exception: failed to parse field [amount] of type [long] in "
        "document with id 'perm-%d'. Preview of field's value: 'twelve'" % bad)
    assert row["attempts_made"] == 1
    st = status(db, "perm")
    assert (st["delivered_records"], st["failed_records"]) == (2, 1)
    (dl,) = deliveries(db, "perm")
    assert (dl["outcome"], dl["failed_records"]) == ("partial", 1)


def test_injected_permanent_failures_and_transient_ones_in_one_batch(db, opensearch):
    r = opensearch()
    make_os_stream(db, "mix", r.url)
    pause(db, "mix")
    rids = [put(db, "mix", {"i": i, "kind": "k%d" % i}) for i in range(8)]
    ids = ["mix-%d" % x for x in rids]
    r.item_faults([{"ids": [ids[2]], "status": 400, "field": "kind"},
                   {"ids": [ids[5]], "status": 403},
                   {"ids": [ids[7]], "status": 404},
                   {"ids": [ids[3], ids[6]], "status": 503, "times": 1}])
    resume(db, "mix")
    flush(db, "mix")
    rows = failed(db, "mix")
    assert [x["record_id"] for x in rows] == [rids[2], rids[5], rids[7]]
    assert rows[0]["error_code"] == "OpenSearch.mapper_parsing_exception"
    assert rows[0]["error_message"] == (
        "400 mapper_parsing_exception: failed to parse field [kind] of type [long] in document "
        "with id '%s'. Preview of field's value: 'k2'" % ids[2])
    assert rows[1]["error_code"] == "OpenSearch.cluster_block_exception"
    assert rows[1]["error_message"].startswith("403 cluster_block_exception: index [logs]")
    assert rows[2]["error_code"] == "OpenSearch.index_not_found_exception"
    assert rows[2]["error_message"] == "404 index_not_found_exception: no such index [logs]"
    assert set(k[1] for k in r.docs()) == set(ids) - {ids[2], ids[5], ids[7]}
    assert set(r.indexed_counts().values()) == {1}
    seen = r.seen_counts()
    assert [seen[i] for i in ids] == [1, 1, 1, 2, 1, 1, 2, 1]


def test_records_that_are_not_json_objects_fail_as_invalid_document(db, opensearch):
    r = opensearch()
    make_os_stream(db, "inv", r.url)
    good1 = put(db, "inv", {"a": 1})
    bad = [put(db, "inv", "plain text"), put(db, "inv", [1, 2]), put(db, "inv", 42),
           put(db, "inv", b"\xff\xfe{}"), put(db, "inv", '{"a": 1'), put(db, "inv", b""),
           put(db, "inv", '"just a string"')]
    good2 = put(db, "inv", {"b": 2})
    flush(db, "inv")
    sent = [a["index"]["_id"] for q in r.bulk_requests() for a, _ in lines(q)]
    assert sent == ["inv-%d" % good1, "inv-%d" % good2]
    rows = failed(db, "inv")
    assert [x["record_id"] for x in rows] == bad
    assert {x["error_code"] for x in rows} == {"OpenSearch.InvalidDocument"}
    assert rows[0]["data"] == b"plain text"
    st = status(db, "inv")
    assert (st["delivered_records"], st["failed_records"]) == (2, len(bad))


def test_batch_of_only_invalid_documents_sends_nothing(db, opensearch):
    r = opensearch()
    make_os_stream(db, "allbad", r.url)
    put(db, "allbad", "nope")
    put(db, "allbad", "[]")
    flush(db, "allbad")
    assert r.requests() == []
    assert {x["error_code"] for x in failed(db, "allbad")} == {"OpenSearch.InvalidDocument"}


def test_transient_item_failures_until_retry_duration_runs_out(db, opensearch):
    r = opensearch()
    make_os_stream(db, "exh", r.url, retry_duration=1)
    pause(db, "exh")
    ok = put(db, "exh", {"a": 1})
    stuck = put(db, "exh", {"a": 2})
    r.item_faults([{"ids": ["exh-%d" % stuck], "status": 429}])
    resume(db, "exh")
    flush(db, "exh")
    (row,) = failed(db, "exh")
    assert row["record_id"] == stuck
    assert row["attempts_made"] >= 2
    assert row["error_code"].startswith("OpenSearch.")
    assert "429" in row["error_message"]
    assert r.seen_counts()["exh-%d" % ok] == 1
    assert r.seen_counts()["exh-%d" % stuck] == row["attempts_made"]
    assert status(db, "exh")["delivered_records"] == 1


def test_whole_request_retry_after_a_partial_failure_sends_only_the_rest(db, opensearch):
    r = opensearch()
    make_os_stream(db, "pw", r.url)
    pause(db, "pw")
    rids = [put(db, "pw", {"i": i}) for i in range(5)]
    ids = ["pw-%d" % x for x in rids]
    r.item_faults([{"ids": [ids[3]], "status": 429, "times": 1}])
    # the first request is answered; the next two (the retry of ids[3]) get 503
    r.faults([{"delay": 0, "count": 1}, {"status": 503, "count": 2}])
    resume(db, "pw")
    flush(db, "pw")
    reqs = r.bulk_requests()
    assert [q["status"] for q in reqs] == [200, 503, 503, 200]
    assert [a["index"]["_id"] for a, _ in lines(reqs[0])] == ids
    for q in reqs[1:]:
        assert [a["index"]["_id"] for a, _ in lines(q)] == [ids[3]]
    assert r.indexed_counts() == collections.Counter({("logs", i): 1 for i in ids})
    st = status(db, "pw")
    assert (st["delivered_records"], st["failed_records"]) == (5, 0)


def test_worker_restart_during_item_retries(db, pg, opensearch, wait_until):
    """The worker is terminated while one document of a batch is being retried:
    the next worker finishes the batch, every document is indexed under its id,
    and stream_status counts each record once."""
    r = opensearch()
    make_os_stream(db, "wr", r.url, retry_duration=600)
    pause(db, "wr")
    rids = [put(db, "wr", {"i": i}) for i in range(6)]
    ids = ["wr-%d" % x for x in rids]
    r.item_faults([{"ids": [ids[2]], "status": 503}])            # until cleared
    resume(db, "wr")
    wait_until(lambda: r.seen_counts()[ids[2]] >= 3, timeout=20)

    def worker_pid():
        rows = db.q("SELECT pid FROM pg_stat_activity WHERE backend_type = 'firehose worker' "
                    "AND datname = current_database()")
        return rows[0][0] if len(rows) == 1 else None
    pid = wait_until(worker_pid, timeout=20)
    assert db.one("SELECT pg_terminate_backend(%s)", (pid,)) is True
    r.item_faults([])
    wait_until(lambda: worker_pid() not in (None, pid), timeout=30)
    flush(db, "wr")
    assert set(r.docs()) == {("logs", i) for i in ids}
    assert failed(db, "wr") == []
    st = db.q("SELECT incoming_records, delivered_records, buffered_records, "
              "in_flight_records, failed_records FROM firehose.stream_status "
              "WHERE stream = 'wr'")[0]
    assert st == (6, 6, 0, 0, 0), st


# -- whole-request failures -----------------------------------------------------------

@pytest.mark.parametrize("code", [503, 429, 500, 502, 408])
def test_whole_request_retryable_status_is_retried(db, opensearch, code):
    r = opensearch()
    r.faults([{"status": code, "count": 2}])
    make_os_stream(db, "whole", r.url)
    pause(db, "whole")
    ids = [put(db, "whole", {"i": i}) for i in range(4)]
    resume(db, "whole")
    flush(db, "whole")
    reqs = r.bulk_requests()
    assert [q["status"] for q in reqs] == [code, code, 200]
    assert reqs[0]["body"] == reqs[1]["body"] == reqs[2]["body"]
    assert r.indexed_counts() == collections.Counter({("logs", "whole-%d" % i): 1 for i in ids})
    assert failed(db, "whole") == []
    (dl,) = deliveries(db, "whole")
    assert (dl["attempts"], dl["http_status"], dl["outcome"]) == (3, 200, "delivered")


def test_whole_request_503_until_retry_duration_runs_out(db, opensearch):
    r = opensearch()
    r.faults([{"status": 503}])
    make_os_stream(db, "down", r.url, retry_duration=1)
    put(db, "down", {"i": 1})
    flush(db, "down")
    (row,) = failed(db, "down")
    assert row["attempts_made"] >= 2
    assert row["attempts_made"] == len(r.bulk_requests())
    assert "503" in row["error_message"]
    assert r.docs() == {}


@pytest.mark.parametrize("kind", ["badjson", "html", "noitems", "fewer_items", "more_items"])
def test_invalid_response_is_retried(db, opensearch, kind):
    r = opensearch()
    r.faults([{"malformed": kind, "count": 1}])
    make_os_stream(db, "ir", r.url)
    pause(db, "ir")
    ids = [put(db, "ir", {"i": i}) for i in range(3)]
    resume(db, "ir")
    flush(db, "ir")
    assert [q["status"] for q in r.bulk_requests()] == [200, 200]
    assert set(r.docs()) == {("logs", "ir-%d" % i) for i in ids}
    assert failed(db, "ir") == []


def test_invalid_response_until_retry_duration_fails_with_invalid_response(db, opensearch):
    r = opensearch()
    r.faults([{"malformed": "fewer_items"}])
    make_os_stream(db, "irf", r.url, retry_duration=1)
    pause(db, "irf")
    put(db, "irf", {"i": 1})
    put(db, "irf", {"i": 2})
    resume(db, "irf")
    flush(db, "irf")
    rows = failed(db, "irf")
    assert len(rows) == 2
    assert {x["error_code"] for x in rows} == {"OpenSearch.InvalidResponse"}
    assert rows[0]["attempts_made"] >= 2


def test_timeout_then_retry(db, opensearch):
    r = opensearch()
    r.faults([{"delay": 1.5, "count": 1}])
    make_os_stream(db, "slow", r.url, request_timeout=400)
    rid = put(db, "slow", {"i": 1})
    flush(db, "slow")
    assert len(r.bulk_requests()) == 2
    # the slow attempt was indexed too (the cluster did the work): same id, updated
    assert r.doc("logs", "slow-%d" % rid)["version"] >= 1
    assert set(r.docs()) == {("logs", "slow-%d" % rid)}
    assert failed(db, "slow") == []
    assert status(db, "slow")["delivered_records"] == 1


@pytest.mark.parametrize("rule", [{"drop": True, "count": 1},
                                  {"drop": True, "reset": True, "count": 1},
                                  {"process_then_drop": True, "count": 1}])
def test_dropped_connection_is_retried(db, opensearch, rule):
    r = opensearch()
    r.faults([rule])
    make_os_stream(db, "drop", r.url)
    pause(db, "drop")
    ids = [put(db, "drop", {"i": i}) for i in range(3)]
    resume(db, "drop")
    flush(db, "drop")
    assert len(r.bulk_requests()) == 2
    assert set(r.docs()) == {("logs", "drop-%d" % i) for i in ids}
    assert failed(db, "drop") == []


def test_failed_documents_can_be_redriven(db, opensearch):
    r = opensearch(mappings={"amount": "long"})
    make_os_stream(db, "rd", r.url)
    put(db, "rd", {"amount": 1})
    put(db, "rd", '{"amount": "x1"}')
    flush(db, "rd")
    assert len(failed(db, "rd")) == 1
    r.mappings = {}                     # the mapping is fixed
    assert db.one("SELECT firehose.redrive('rd')") == 1
    flush(db, "rd")
    assert failed(db, "rd") == []
    assert sorted(json.dumps(d["source"]) for d in r.docs().values()) == \
        ['{"amount": "x1"}', '{"amount": 1}']
    assert status(db, "rd")["delivered_records"] == 2


def test_at_most_10000_documents_per_request(db, opensearch):
    r = opensearch()
    make_os_stream(db, "cap", r.url, buffer_size="5MB")
    pause(db, "cap")
    n = db.one("SELECT count(firehose.put('cap', '{}'::jsonb)) FROM generate_series(1, 12345)")
    assert n == 12345
    resume(db, "cap")
    flush(db, "cap")
    sizes = [len(q["items"]) for q in r.bulk_requests()]
    assert sum(sizes) == 12345 and max(sizes) <= 10000, sizes
    assert len(r.docs()) == 12345
    assert status(db, "cap")["delivered_records"] == 12345


# -- TLS ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certificate():
    import os
    import subprocess
    import tempfile
    d = tempfile.mkdtemp(prefix="firehose-os-tls-")
    os.chmod(d, 0o755)                     # the server (user postgres) reads ca_file
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    os.chmod(cert, 0o644)
    yield cert, key
    for f in (cert, key):
        os.unlink(f)
    os.rmdir(d)


def test_tls_verification(db, opensearch, certificate):
    cert, key = certificate
    r = opensearch(tls=(cert, key))
    assert r.url.startswith("https://")
    make_os_stream(db, "tdefault", r.url, retry_duration=1)
    make_os_stream(db, "tca", r.url, ca_file=cert)
    make_os_stream(db, "toff", r.url, tls_verify=False)
    refused = put(db, "tdefault", {"t": "default"})
    ok1 = put(db, "tca", {"t": "ca"})
    ok2 = put(db, "toff", {"t": "off"})
    for s_ in ("tdefault", "tca", "toff"):
        flush(db, s_)
    assert set(r.docs()) == {("logs", "tca-%d" % ok1), ("logs", "toff-%d" % ok2)}
    (row,) = failed(db, "tdefault")
    assert row["record_id"] == refused and row["error_code"].startswith("OpenSearch.")


# -- S3 backup (reference section 3.8) -------------------------------------------------

OS_ERROR_RECORD_FIELDS = {"attemptsMade", "arrivalTimestamp", "errorCode", "errorMessage",
                          "attemptEndingTimestamp", "esDocumentId", "esIndexName",
                          "esTypeName", "rawData"}


def test_backup_of_failed_documents_to_s3(db, opensearch, s3_server):
    import uuid
    client = s3_server.client()
    bucket = "fh-os-" + uuid.uuid4().hex[:20]
    client.create_bucket(Bucket=bucket)
    target = {"bucket": bucket, "endpoint": s3_server.endpoint, "path_style": True,
              "region": s3_server.region, "access_key_id": s3_server.access_key,
              "secret_access_key": s3_server.secret_key}
    r = opensearch(mappings={"amount": "long"})
    make_os_stream(db, "bk", r.url, type_name="_doc", backup={"mode": "failed", "s3": target})
    pause(db, "bk")
    t0 = time.time()
    ok = put(db, "bk", {"amount": 1})
    bad = put(db, "bk", '{"amount": "lots"}')
    invalid = put(db, "bk", "not json")
    resume(db, "bk")
    flush(db, "bk")
    t1 = time.time()
    assert set(r.docs()) == {("logs", "bk-%d" % ok)}
    rows = {x["record_id"]: x for x in failed(db, "bk")}
    assert set(rows) == {bad, invalid}

    deadline = time.monotonic() + 30
    keys = []
    while time.monotonic() < deadline:
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
        if keys:
            break
        time.sleep(0.1)
    assert keys and all(k.startswith("AmazonOpenSearchService-failed/") for k in keys), keys
    docs = []
    for k in keys:
        body = client.get_object(Bucket=bucket, Key=k)["Body"].read()
        docs += [json.loads(x) for x in body.split(b"\n") if x]
    assert len(docs) == 2
    by_raw = {base64.b64decode(d["rawData"]): d for d in docs}
    assert set(by_raw) == {b'{"amount": "lots"}', b"not json"}
    for raw, rid in ((b'{"amount": "lots"}', bad), (b"not json", invalid)):
        d = by_raw[raw]
        row = rows[rid]
        assert set(d) == OS_ERROR_RECORD_FIELDS, d
        assert d["esDocumentId"] == "bk-%d" % rid
        assert d["esIndexName"] == "logs"
        assert d["esTypeName"] == "_doc"
        assert d["attemptsMade"] == row["attempts_made"]
        assert d["errorCode"] in (row["error_code"], "400"), d
        assert t0 * 1000 - 1000 <= d["arrivalTimestamp"] <= d["attemptEndingTimestamp"] \
            <= t1 * 1000 + 1000
    assert "failed to parse field [amount]" in by_raw[b'{"amount": "lots"}']["errorMessage"]
    assert by_raw[b"not json"]["errorCode"] == "OpenSearch.InvalidDocument"


def test_multiline_documents_keep_their_numbers_exactly(db, opensearch):
    import decimal
    r = opensearch()
    make_os_stream(db, "num", r.url)
    text = ('{"big": 123456789012345678901234567890,\n "dec": 1.10,\n'
            ' "tiny": 0.1000000000000000055511151231257827, "neg": -0.0, "e": 1e400}\n')
    put(db, "num", text)
    flush(db, "num")
    ((_, sent),) = lines(r.bulk_requests()[0])
    assert b"\n" not in sent
    parse = lambda b: json.loads(b, parse_float=decimal.Decimal,  # noqa: E731
                                 parse_int=decimal.Decimal)
    got, want = parse(sent), parse(text)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == want[k], (k, got[k], want[k])
    assert status(db, "num")["delivered_records"] == 1


def test_ids_and_routing_values_are_json_escaped(db, opensearch):
    r = opensearch()
    make_os_stream(db, "esc", r.url, document_id="$.k", routing="$.r")
    pause(db, "esc")
    weird = ['q"uote', "back\\slash", "tab\tnl\nx", "caf\u00e9 \u2603", "sl/ash", "\u0001ctl"]
    for i, k in enumerate(weird):
        put(db, "esc", {"k": k, "r": k + "-r", "i": i})
    resume(db, "esc")
    flush(db, "esc")
    sent = [a["index"] for q in r.bulk_requests() for a, _ in lines(q)]
    assert [(a["_id"], a["routing"]) for a in sent] == [(k, k + "-r") for k in weird]
    assert set(r.docs()) == {("logs", k) for k in weird}
    assert failed(db, "esc") == []


def test_document_id_and_routing_paths_in_parts_one_after_another(db, opensearch):
    """Every part reads its ids and routing values with the same path
    machinery; the empty vars object it passes must outlive the part that
    first built it (it once lived in that part's memory, freed with it)."""
    r = opensearch()
    make_os_stream(db, "seq", r.url, document_id="$.k", routing="$.r")
    expect = []
    for part in range(6):
        for i in range(3):
            k = "p%d-%d" % (part, i)
            put(db, "seq", {"k": k, "r": "route-" + k, "pad": "x" * (50 * part)})
            expect.append((k, "route-" + k))
        flush(db, "seq")
    requests = r.bulk_requests()
    assert len(requests) >= 6
    sent = [a["index"] for q in requests for a, _ in lines(q)]
    assert [(a["_id"], a["routing"]) for a in sent] == expect
    assert set(r.docs()) == {("logs", k) for k, _ in expect}
    assert failed(db, "seq") == []
    assert status(db, "seq")["delivered_records"] == len(expect)


@pytest.mark.parametrize("suffix_", ["/", "/os/"])
def test_endpoint_with_a_trailing_slash(db, opensearch, suffix_):
    r = opensearch(path_prefix=suffix_.rstrip("/"))
    make_os_stream(db, "slash", r.base + suffix_)
    put(db, "slash", {"a": 1})
    flush(db, "slash")
    (req,) = r.bulk_requests()
    assert req["raw_path"] == suffix_.rstrip("/") + "/_bulk"
    assert len(r.docs()) == 1


def test_pipeline_name_is_url_encoded(db, opensearch):
    r = opensearch()
    name = "geo+ip enrich&v=2"
    make_os_stream(db, "pq", r.url, pipeline=name)
    put(db, "pq", {"a": 1})
    flush(db, "pq")
    (req,) = r.bulk_requests()
    assert req["query"] == {"pipeline": name}, req["raw_path"]
    assert list(r.docs().values())[0]["pipeline"] == name


def test_sigv4_with_path_prefix_and_encoded_pipeline(db, opensearch):
    cfg = {"access_key": KEY, "secret_key": SECRET, "region": REGION, "service": "es"}
    r = opensearch(sigv4=cfg, path_prefix="/domain")
    make_os_stream(db, "sigp", r.url, aws_region=REGION, access_key_id=KEY,
                   secret_access_key=SECRET, pipeline="p:1 2")
    put(db, "sigp", {"a": 1})
    flush(db, "sigp")
    (req,) = r.bulk_requests()
    assert req["status"] == 200, req["error"]
    assert req["query"] == {"pipeline": "p:1 2"}


@pytest.mark.parametrize("bad_id", ["L" * 600, ""], ids=["600-bytes", "empty"])
def test_document_id_that_opensearch_refuses_fails_alone(db, opensearch, bad_id):
    """OpenSearch refuses a whole _bulk request with an _id over 512 bytes or an
    empty one; only that record should fail, not the others of its batch (as
    for a missing id)."""
    r = opensearch(strict=False)
    make_os_stream(db, "longid", r.url, document_id="$.k")
    pause(db, "longid")
    put(db, "longid", {"k": "short-1"})
    long_rid = put(db, "longid", {"k": bad_id})
    put(db, "longid", {"k": "short-2"})
    resume(db, "longid")
    flush(db, "longid")
    assert set(r.docs()) == {("logs", "short-1"), ("logs", "short-2")}
    assert [x["record_id"] for x in failed(db, "longid")] == [long_rid]
    assert failed(db, "longid")[0]["error_code"] == "OpenSearch.InvalidDocumentId"


@pytest.mark.parametrize("code", [400, 404, 413])
def test_whole_request_other_4xx_fails_at_once(db, opensearch, code):
    r = opensearch()
    r.faults([{"status": code}])
    make_os_stream(db, "w4", r.url)
    rid = put(db, "w4", {"a": 1})
    flush(db, "w4")
    (row,) = failed(db, "w4")
    assert row["record_id"] == rid
    assert row["error_code"] == "OpenSearch.HTTP%d" % code
    assert row["attempts_made"] == 1
    assert len(r.bulk_requests()) == 1


def test_backup_all_documents_to_s3(db, opensearch, s3_server):
    import uuid
    client = s3_server.client()
    bucket = "fh-os-" + uuid.uuid4().hex[:20]
    client.create_bucket(Bucket=bucket)
    target = {"bucket": bucket, "endpoint": s3_server.endpoint, "path_style": True,
              "region": s3_server.region, "access_key_id": s3_server.access_key,
              "secret_access_key": s3_server.secret_key}
    r = opensearch()
    make_os_stream(db, "bka", r.url, backup={"mode": "all", "s3": target})
    pause(db, "bka")
    docs = ['{"n": %d}' % i for i in range(4)]
    for d in docs:
        put(db, "bka", d)
    resume(db, "bka")
    flush(db, "bka")
    assert len(r.docs()) == 4
    deadline = time.monotonic() + 30
    keys = []
    while time.monotonic() < deadline and not keys:
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
        time.sleep(0.1)
    (key,) = keys
    assert not key.startswith("AmazonOpenSearchService-failed/")
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == b"".join(d.encode() + b"\n" for d in docs)


# -- the acceptance run of issue 4 -------------------------------------------------------

def test_acceptance_50000_documents_with_transient_and_permanent_failures(db, opensearch):
    n = 50000
    r = opensearch()
    rules = [{"fraction": 0.01, "seed": "perm", "status": 400, "field": "kind"},
             {"fraction": 0.06, "seed": "once", "status": 429, "times": 1},
             {"fraction": 0.04, "seed": "few", "status": 503, "times": 3}]
    r.item_faults(rules)
    make_os_stream(db, "acc", r.url, index="acc", buffer_size="1MB", max_concurrency=3,
                   retry_base=20, retry_max=200)
    t0 = time.monotonic()
    rows = db.q("SELECT i, firehose.put('acc', jsonb_build_object('i', i, 'kind', 'web', "
                "'pad', repeat('x', 80))) FROM generate_series(1, %s) i", (n,))
    rid_of = dict(rows)
    assert len(set(rid_of.values())) == n
    assert db.flush("acc", "120s") is True
    elapsed = time.monotonic() - t0

    ids = {"acc-%d" % rid for rid in rid_of.values()}
    perm = {i for i in ids if pick("perm", i, 0.01)}
    # the first rule still active for an item decides: a document picked by
    # "few" fails its first three attempts even when "once" picked it too
    few = {i for i in ids if pick("few", i, 0.04)} - perm
    once = {i for i in ids if pick("once", i, 0.06)} - perm - few
    assert 300 < len(perm) < 700 and 4000 < len(once | few) < 6000

    # every document not failed permanently is indexed, exactly once, by id
    indexed = r.indexed_counts()
    assert set(indexed) == {("acc", i) for i in ids - perm}
    twice = {k: c for k, c in indexed.items() if c != 1}
    assert not twice, "indexed more than once: %r" % list(twice.items())[:10]
    seen = r.seen_counts()
    assert {i for i in once if seen[i] != 2} == set()
    assert {i for i in few if seen[i] != 4} == set()
    assert {i for i in ids - once - few if seen[i] != 1} == set()
    assert set(seen) == ids

    # every permanently failed one is in failed_records with its OpenSearch error
    fr = db.q("SELECT record_id, error_code, error_message FROM firehose.failed_records "
              "WHERE stream = 'acc'")
    assert {"acc-%d" % x[0] for x in fr} == perm
    assert len(fr) == len(perm)
    for rid, code, msg in fr:
        assert code == "OpenSearch.mapper_parsing_exception"
        assert msg == ("400 mapper_parsing_exception: failed to parse field [kind] of type "
                       "[long] in document with id 'acc-%d'. Preview of field's value: 'web'"
                       % rid)
    st = status(db, "acc")
    assert (st["delivered_records"], st["failed_records"]) == (n - len(perm), len(perm))
    assert (st["buffered_records"], st["in_flight_records"]) == (0, 0)
    print("acceptance: %d documents, %d permanent, %d transient, %d bulk requests, %.1f s"
          % (n, len(perm), len(once | few), len(r.bulk_requests()), elapsed))
    assert elapsed < 60, "took %.1f s" % elapsed
