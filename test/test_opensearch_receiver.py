"""The OpenSearch test receiver alone (no PostgreSQL): it must answer as OpenSearch 2.x does.

Plain http.client requests against test/opensearch_receiver.py run in-process:
response and error shapes, per-item statuses and the errors flag, whole-request
parse errors, authentication (basic and SigV4, signed here with botocore), and
that every fault rule does what opensearch_receiver.py says, deterministically.
"""

import base64
import collections
import gzip
import hashlib
import http.client
import json
import socket
import threading
import time

import pytest

from opensearch_receiver import OpenSearchReceiver, doc_key, pick

KEY, SECRET, REGION = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "eu-west-1"


@pytest.fixture
def rcv():
    r = OpenSearchReceiver().start()
    yield r
    r.stop()


def ndjson(*pairs):
    """Body from (action dict, source) pairs; a source of None means no line;
    bytes are sent as they are."""
    out = []
    for action, source in pairs:
        out.append(json.dumps(action).encode() if isinstance(action, dict) else action)
        if source is not None:
            out.append(source if isinstance(source, bytes) else json.dumps(source).encode())
    return b"".join(x + b"\n" for x in out)


def index(doc_id=None, idx="logs", **meta):
    m = {"_index": idx}
    if doc_id is not None:
        m["_id"] = doc_id
    m.update(meta)
    return {"index": m}


def request(r, body, path="/_bulk", method="POST", headers=None, ctype="application/x-ndjson",
            timeout=30):
    """(status, headers (HTTPMessage), parsed JSON or raw bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=timeout)
    try:
        h = {}
        if ctype is not None:
            h["Content-Type"] = ctype
        h.update(headers or {})
        conn.request(method, r.path_prefix + path, body=body, headers=h)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw
        return resp.status, resp.headers, parsed
    finally:
        conn.close()


def bulk(r, *pairs, **kw):
    return request(r, ndjson(*pairs), **kw)


def only(item):
    (action, body), = item.items()
    return action, body


# -- successful requests ---------------------------------------------------------

def test_index_items_are_answered_in_order_with_opensearch_shapes(rcv):
    status, hdrs, resp = bulk(rcv, (index("a"), {"n": 1}), (index(None), {"n": 2}),
                              ({"create": {"_index": "logs", "_id": "c"}}, {"n": 3}))
    assert status == 200
    assert hdrs["content-type"] == "application/json; charset=UTF-8"
    assert set(resp) == {"took", "errors", "items"}
    assert resp["errors"] is False and isinstance(resp["took"], int)
    assert [only(i)[0] for i in resp["items"]] == ["index", "index", "create"]
    bodies = [only(i)[1] for i in resp["items"]]
    for b in bodies:
        assert list(b) == ["_index", "_id", "_version", "result", "_shards", "_seq_no",
                           "_primary_term", "status"]
        assert (b["_index"], b["_version"], b["result"], b["status"]) == ("logs", 1, "created",
                                                                          201)
        assert b["_shards"] == {"total": 2, "successful": 1, "failed": 0}
    assert bodies[0]["_id"] == "a" and bodies[2]["_id"] == "c"
    auto = bodies[1]["_id"]
    assert len(auto) == 20 and auto not in ("a", "c")
    assert [b["_seq_no"] for b in bodies] == [0, 1, 2]
    docs = rcv.docs()
    assert set(docs) == {("logs", "a"), ("logs", auto), ("logs", "c")}
    assert docs[("logs", "a")]["source"] == {"n": 1}
    assert docs[("logs", "a")]["raw"] == b'{"n": 1}'
    rcv.assert_no_violations()


def test_same_id_again_is_updated_with_next_version(rcv):
    bulk(rcv, (index("x"), {"v": 1}))
    status, _, resp = bulk(rcv, (index("x"), {"v": 2}))
    assert status == 200
    _, b = only(resp["items"][0])
    assert (b["result"], b["status"], b["_version"]) == ("updated", 200, 2)
    assert rcv.doc("logs", "x")["source"] == {"v": 2}
    assert rcv.indexed_counts()[("logs", "x")] == 2
    assert rcv.seen_counts()["x"] == 2


def test_create_on_an_existing_id_is_a_409_version_conflict(rcv):
    bulk(rcv, (index("x"), {"v": 1}))
    status, _, resp = bulk(rcv, ({"create": {"_index": "logs", "_id": "x"}}, {"v": 2}),
                           ({"create": {"_index": "logs", "_id": "y"}}, {"v": 3}))
    assert status == 200 and resp["errors"] is True
    action, b = only(resp["items"][0])
    assert action == "create"
    assert set(b) == {"_index", "_id", "status", "error"}
    assert b["status"] == 409
    err = b["error"]
    assert err["type"] == "version_conflict_engine_exception"
    assert err["reason"] == "[x]: version conflict, document already exists (current version [1])"
    assert err["index"] == "logs" and err["shard"] == "0" and err["index_uuid"]
    assert only(resp["items"][1])[1]["status"] == 201
    assert rcv.doc("logs", "x")["source"] == {"v": 1}
    assert rcv.indexed_counts()[("logs", "x")] == 1


def test_index_from_the_url_is_the_default(rcv):
    status, _, resp = bulk(rcv, ({"index": {"_id": "1"}}, {"a": 1}),
                           (index("2", idx="other"), {"a": 2}), path="/urlidx/_bulk")
    assert status == 200
    assert [only(i)[1]["_index"] for i in resp["items"]] == ["urlidx", "other"]
    assert set(rcv.docs()) == {("urlidx", "1"), ("other", "2")}


def test_type_routing_and_pipeline_are_recorded(rcv):
    status, _, resp = bulk(rcv, (index("1", _type="_doc", routing="r7"), {"a": 1}),
                           (index("2"), {"a": 2}), path="/_bulk?pipeline=enrich")
    assert status == 200
    b0 = only(resp["items"][0])[1]
    assert b0["_type"] == "_doc" and list(b0)[:3] == ["_index", "_id", "_type"]
    assert "_type" not in only(resp["items"][1])[1]
    assert resp["ingest_took"] == 0
    d = rcv.doc("logs", "1")
    assert (d["type"], d["routing"], d["pipeline"]) == ("_doc", "r7", "enrich")
    assert rcv.doc("logs", "2")["pipeline"] == "enrich"
    (req,) = rcv.bulk_requests()
    assert req["query"] == {"pipeline": "enrich"}
    rcv.assert_no_violations()


def test_type_is_refused_like_opensearch_2_when_accept_type_is_off():
    with OpenSearchReceiver(accept_type=False) as r:
        status, _, resp = bulk(r, (index("1", _type="_doc"), {"a": 1}))
        assert status == 400
        assert resp["error"]["reason"] == \
            "Action/metadata line [1] contains an unknown parameter [_type]"
        assert r.docs() == {}


def test_delete_and_update_actions(rcv):
    bulk(rcv, (index("1"), {"a": 1, "o": {"x": 1}}))
    status, _, resp = bulk(rcv, ({"update": {"_index": "logs", "_id": "1"}},
                                 {"doc": {"b": 2, "o": {"y": 2}}}),
                           ({"delete": {"_index": "logs", "_id": "nope"}}, None))
    assert status == 200
    assert only(resp["items"][0])[1]["result"] == "updated"
    assert rcv.doc("logs", "1")["source"] == {"a": 1, "b": 2, "o": {"x": 1, "y": 2}}
    assert only(resp["items"][1])[1]["status"] == 404
    assert only(resp["items"][1])[1]["result"] == "not_found"
    status, _, resp = bulk(rcv, ({"delete": {"_index": "logs", "_id": "1"}}, None))
    assert only(resp["items"][0])[1]["result"] == "deleted"
    assert rcv.docs() == {}
    # not what the firehose destination may send
    assert any("expected index or create" in v for v in rcv.violations())


def test_keep_alive_serves_many_requests_on_one_connection(rcv):
    conn = http.client.HTTPConnection("127.0.0.1", rcv.port, timeout=10)
    for i in range(5):
        conn.request("POST", "/_bulk", body=ndjson((index(str(i)), {"i": i})),
                     headers={"Content-Type": "application/x-ndjson"})
        resp = conn.getresponse()
        assert resp.status == 200
        json.loads(resp.read())
    conn.close()
    assert len(rcv.docs()) == 5


def test_expect_100_continue_like_libcurl(rcv):
    body = ndjson(*[(index(str(i)), {"pad": "x" * 1000}) for i in range(1200)])
    s = socket.create_connection(("127.0.0.1", rcv.port), timeout=10)
    s.sendall(b"POST /_bulk HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-ndjson\r\n"
              b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body))
    first = s.recv(100)
    assert first.startswith(b"HTTP/1.1 100 Continue")
    s.sendall(body)
    resp = http.client.HTTPResponse(s)
    resp.begin()
    assert resp.status == 200
    assert len(json.loads(resp.read())["items"]) == 1200
    s.close()


def test_chunked_and_gzip_bodies_are_read(rcv):
    body = ndjson((index("g"), {"z": 1}))
    status, _, _ = request(rcv, gzip.compress(body), headers={"Content-Encoding": "gzip"})
    assert status == 200
    conn = http.client.HTTPConnection("127.0.0.1", rcv.port, timeout=10)
    conn.request("POST", "/_bulk", body=iter([body[:5], body[5:]]),
                 headers={"Content-Type": "application/x-ndjson"}, encode_chunked=True)
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["errors"] is False
    conn.close()
    assert set(rcv.docs()) == {("logs", "g")}
    assert rcv.bulk_requests()[1]["headers"].get("Transfer-Encoding") == "chunked"


def test_concurrent_requests_are_all_indexed(rcv):
    errors = []

    def worker(t):
        for j in range(10):
            st, _, resp = bulk(rcv, *[(index("%d-%d-%d" % (t, j, k)), {"k": k})
                                      for k in range(20)])
            if st != 200 or resp["errors"]:
                errors.append((st, resp))
    ts = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    assert len(rcv.docs()) == 800
    assert set(rcv.indexed_counts().values()) == {1}


def test_cluster_info_and_get_document(rcv):
    status, _, info = request(rcv, None, path="/", method="GET", ctype=None)
    assert status == 200 and info["version"]["distribution"] == "opensearch"
    bulk(rcv, (index("d1"), {"q": 1}))
    status, _, got = request(rcv, None, path="/logs/_doc/d1", method="GET", ctype=None)
    assert status == 200 and got["found"] is True and got["_source"] == {"q": 1}
    status, _, got = request(rcv, None, path="/logs/_doc/none", method="GET", ctype=None)
    assert status == 404 and got["found"] is False


def test_path_prefix():
    with OpenSearchReceiver(path_prefix="/os/") as r:
        assert r.url.endswith("/os")
        status, _, _ = bulk(r, (index("1"), {"a": 1}))            # /os/_bulk
        assert status == 200
        conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
        conn.request("POST", "/_bulk", body=ndjson((index("2"), {"a": 2})),
                     headers={"Content-Type": "application/x-ndjson"})
        resp = conn.getresponse()
        assert resp.status == 404
        resp.read()
        conn.close()
        assert set(r.docs()) == {("logs", "1")}


# -- whole-request errors ------------------------------------------------------------

def test_content_type_json_is_accepted_but_noted(rcv):
    status, _, resp = bulk(rcv, (index("1"), {"a": 1}), ctype="application/json")
    assert status == 200 and resp["errors"] is False
    assert rcv.violations() == ["Content-Type 'application/json', expected "
                                "'application/x-ndjson'"]


@pytest.mark.parametrize("ctype,reason", [
    ("text/plain", "Content-Type header [text/plain] is not supported"),
    (None, "Content-Type header is missing")])
def test_other_content_type_is_406(rcv, ctype, reason):
    status, _, resp = bulk(rcv, (index("1"), {"a": 1}), ctype=ctype)
    assert (status, resp) == (406, {"error": reason, "status": 406})
    assert rcv.docs() == {}


def test_get_on_bulk_is_405(rcv):
    status, hdrs, resp = request(rcv, None, method="GET")
    assert status == 405
    assert resp["error"] == ("Incorrect HTTP method for uri [/_bulk] and method [GET], "
                             "allowed: [POST, PUT]")


MALFORMED = [
    (b'{"index":{"_index":"a"}}\n{"x":1}', "illegal_argument_exception",
     "The bulk request must be terminated by a newline [\\n]"),
    (b"", "parse_exception", "request body is required"),
    (b'{"index":{"_index":"a"}}\n', "illegal_argument_exception",
     "The bulk request must be terminated by a newline [\\n]"),
    (b'{"upsert":{"_index":"a"}}\n{"x":1}\n', "illegal_argument_exception",
     "Malformed action/metadata line [1], expected one of [create, delete, index, update] "
     "but found [upsert]"),
    (b'{"index":{"_index":"a"}}\n{"x":1}\n["index"]\n{"x":2}\n', "illegal_argument_exception",
     "Malformed action/metadata line [3], expected START_OBJECT or END_OBJECT but found "
     "[START_ARRAY]"),
    (b'{"index":"a"}\n{"x":1}\n', "illegal_argument_exception",
     "Malformed action/metadata line [1], expected START_OBJECT but found [VALUE_STRING]"),
    (b'{"index":{"_index":"a","colour":"red"}}\n{"x":1}\n', "illegal_argument_exception",
     "Action/metadata line [1] contains an unknown parameter [colour]"),
    (b'{"index":{"_index":{"a":1}}}\n{"x":1}\n', "illegal_argument_exception",
     "Malformed action/metadata line [1], expected a simple value for field [_index] but "
     "found [START_OBJECT]"),
    (b'{"index":{"_index":"a"},"create":{}}\n{"x":1}\n', "illegal_argument_exception",
     "Malformed action/metadata line [1], expected END_OBJECT but found [FIELD_NAME]"),
    (b'{"index":{"_id":"1"}}\n{"x":1}\n', "action_request_validation_exception",
     "Validation Failed: 1: index is missing;"),
    (b'{"index":{"_index":"a","_id":"' + b"i" * 513 + b'"}}\n{"x":1}\n',
     "action_request_validation_exception",
     "Validation Failed: 1: id [" + "i" * 513 + "] is too long, must be no longer than 512 "
     "bytes but was: 513;"),
    (b'{"index":{"_index":"a","_id":""}}\n{"x":1}\n', "action_request_validation_exception",
     "Validation Failed: 1: if _id is specified it must not be empty;"),
    (b'\n', "illegal_argument_exception",
     "Malformed action/metadata line [1], expected START_OBJECT or END_OBJECT but found [null]"),
]


@pytest.mark.parametrize("body,etype,reason", MALFORMED,
                         ids=["no-final-newline", "empty", "missing-source", "unknown-action",
                              "array-action", "string-meta", "unknown-param", "object-param",
                              "two-actions", "no-index", "long-id", "empty-id", "blank-line"])
def test_malformed_bulk_is_a_whole_request_400_and_nothing_is_indexed(rcv, body, etype, reason):
    status, _, resp = request(rcv, body)
    assert status == 400
    assert resp == {"error": {"root_cause": [{"type": etype, "reason": reason}],
                              "type": etype, "reason": reason}, "status": 400}
    assert rcv.docs() == {} and rcv.items() == []
    assert rcv.violations(), "a whole-request 400 is a violation"


def test_action_line_that_is_not_json_is_400(rcv):
    status, _, resp = request(rcv, b'{"index":{"_index":"a"}}\n{"x":1}\n{"index":\n{"x":2}\n')
    assert status == 400
    assert resp["error"]["type"] == "json_parse_exception"
    assert "action/metadata line [3]" in resp["error"]["reason"]
    assert rcv.docs() == {}


def test_unknown_query_parameter_is_400(rcv):
    status, _, resp = bulk(rcv, (index("1"), {"a": 1}), path="/_bulk?pipline=x")
    assert status == 400
    assert resp["error"]["reason"] == \
        "request [/_bulk] contains unrecognized parameter: [pipline]"


def test_unknown_path_is_400_no_handler(rcv):
    status, _, resp = request(rcv, b"{}", path="/a/b/c/d")
    assert status == 400
    assert resp["error"] == "no handler found for uri [/a/b/c/d] and method [POST]"


# -- per-item failures -------------------------------------------------------------

def test_documents_that_are_not_json_objects_fail_alone(rcv):
    status, _, resp = request(rcv, ndjson((index("ok1"), {"a": 1}), (index("arr"), b"[1,2]"),
                                          (index("txt"), b"plain text"),
                                          (index("dup"), b'{"a":1,"a":2}'),
                                          (index("ok2"), {"a": 2})))
    assert status == 200 and resp["errors"] is True
    st = [only(i)[1]["status"] for i in resp["items"]]
    assert st == [201, 400, 400, 400, 201]
    for i in (1, 2, 3):
        b = only(resp["items"][i])[1]
        assert set(b) == {"_index", "_id", "status", "error"}
        assert b["error"]["type"] == "mapper_parsing_exception"
        assert b["error"]["reason"] == "failed to parse"
    assert only(resp["items"][1])[1]["error"]["caused_by"]["type"] == "not_x_content_exception"
    assert only(resp["items"][3])[1]["error"]["caused_by"] == {
        "type": "json_parse_exception", "reason": "Duplicate field 'a'"}
    assert set(rcv.docs()) == {("logs", "ok1"), ("logs", "ok2")}
    assert len(rcv.violations()) == 3


def test_too_deeply_nested_documents_fail_alone(rcv):
    deep = b'{"a":' + b"[" * 3000 + b"]" * 3000 + b"}"
    status, _, resp = request(rcv, ndjson((index("deep"), deep), (index("ok"), {"a": 1})))
    assert status == 200
    deep_item, ok_item = (only(i)[1] for i in resp["items"])
    assert deep_item["status"] == 400
    assert deep_item["error"]["type"] == "mapper_parsing_exception"
    assert "nesting depth" in deep_item["error"]["caused_by"]["reason"]
    assert ok_item["status"] == 201
    assert rcv.violations() == [], "valid JSON, only too deep for OpenSearch"


def test_invalid_index_name_fails_the_item(rcv):
    status, _, resp = bulk(rcv, (index("1", idx="Logs"), {"a": 1}),
                           (index("2", idx="_x"), {"a": 1}), (index("3"), {"a": 1}))
    a, b, c = (only(i)[1] for i in resp["items"])
    assert a["status"] == 400 and a["error"]["type"] == "invalid_index_name_exception"
    assert a["error"]["reason"] == "Invalid index name [Logs], must be lowercase"
    assert b["error"]["reason"] == "Invalid index name [_x], must not start with '_', '-', or '+'"
    assert c["status"] == 201


def test_mapping_conflicts_are_mapper_parsing_exceptions():
    with OpenSearchReceiver(mappings={"n": "long", "flag": "boolean"}) as r:
        status, _, resp = bulk(r, (index("good"), {"n": 5, "flag": True}),
                               (index("bad"), {"n": "abc"}), (index("b2"), {"flag": "yes"}))
        assert status == 200 and resp["errors"] is True
        good, bad, b2 = (only(i)[1] for i in resp["items"])
        assert good["status"] == 201
        assert bad["status"] == 400
        assert bad["error"] == {
            "type": "mapper_parsing_exception",
            "reason": "failed to parse field [n] of type [long] in document with id 'bad'. "
                      "Preview of field's value: 'abc'",
            "caused_by": {"type": "illegal_argument_exception",
                          "reason": "For input string: \"abc\""}}
        assert b2["error"]["type"] == "mapper_parsing_exception"
        assert set(r.docs()) == {("logs", "good")}


def test_unknown_pipeline_fails_items_when_pipelines_are_known():
    with OpenSearchReceiver(pipelines=["p1"]) as r:
        _, _, ok = bulk(r, (index("1"), {"a": 1}), path="/_bulk?pipeline=p1")
        assert ok["errors"] is False
        _, _, resp = bulk(r, (index("2"), {"a": 1}), path="/_bulk?pipeline=p2")
        b = only(resp["items"][0])[1]
        assert b["status"] == 400
        assert b["error"] == {"type": "illegal_argument_exception",
                              "reason": "pipeline with id [p2] does not exist"}


# -- item fault rules -----------------------------------------------------------------

def test_transient_item_fault_fails_the_first_k_times_only(rcv):
    rcv.item_faults([{"ids": ["b"], "status": 429, "times": 2}])
    pairs = [(index("a"), {"i": 1}), (index("b"), {"i": 2}), (index("c"), {"i": 3})]
    _, _, r1 = bulk(rcv, *pairs)
    assert r1["errors"] is True
    assert [only(i)[1]["status"] for i in r1["items"]] == [201, 429, 201]
    b = only(r1["items"][1])[1]
    assert set(b) == {"_index", "_id", "status", "error"}
    assert b["_id"] == "b"
    assert b["error"]["type"] == "rejected_execution_exception"
    assert b["error"]["reason"].startswith("rejected execution of primary operation")
    _, _, r2 = bulk(rcv, pairs[1])
    assert only(r2["items"][0])[1]["status"] == 429
    _, _, r3 = bulk(rcv, pairs[1])
    assert r3["errors"] is False and only(r3["items"][0])[1]["status"] == 201
    _, _, r4 = bulk(rcv, pairs[1])
    assert only(r4["items"][0])[1]["status"] == 200         # the rule is used up for b
    assert rcv.seen_counts() == collections.Counter({"a": 1, "b": 4, "c": 1})
    assert rcv.indexed_counts() == collections.Counter({("logs", "a"): 1, ("logs", "b"): 2,
                                                        ("logs", "c"): 1})


def test_503_item_fault_shape(rcv):
    rcv.item_faults([{"ids": ["x"], "status": 503, "times": 1}])
    _, _, resp = bulk(rcv, (index("x"), {"a": 1}))
    b = only(resp["items"][0])[1]
    assert b["status"] == 503
    assert b["error"]["type"] == "unavailable_shards_exception"
    assert b["error"]["reason"].startswith("[logs][0] primary shard is not active")
    assert rcv.docs() == {}


def test_permanent_item_fault_by_fraction_is_deterministic(rcv):
    ids = ["doc-%d" % i for i in range(1000)]
    rule = {"fraction": 0.1, "seed": "perm", "status": 400, "field": "amount"}
    rcv.item_faults([rule])
    expected = {i for i in ids if pick("perm", i, 0.1)}
    assert 60 < len(expected) < 140
    for attempt in range(2):
        _, _, resp = bulk(rcv, *[(index(i), {"amount": "n/a", "i": i}) for i in ids])
        failed = {only(it)[1]["_id"] for it in resp["items"] if only(it)[1]["status"] == 400}
        assert failed == expected, "attempt %d" % attempt
    it = next(only(x)[1] for x in resp["items"] if only(x)[1]["status"] == 400)
    assert it["error"]["type"] == "mapper_parsing_exception"
    assert it["error"]["reason"] == ("failed to parse field [amount] of type [long] in document "
                                     "with id '%s'. Preview of field's value: 'n/a'" % it["_id"])
    assert it["error"]["caused_by"]["type"] == "illegal_argument_exception"
    # the same choice on another receiver: it depends on seed and id only
    with OpenSearchReceiver() as other:
        other.item_faults([rule])
        _, _, resp2 = bulk(other, *[(index(i), {"amount": 1}) for i in ids])
        failed2 = {only(it)[1]["_id"] for it in resp2["items"] if only(it)[1]["status"] == 400}
    assert failed2 == expected
    assert set(k[1] for k in rcv.docs()) == set(ids) - expected


def test_transient_fraction_then_permanent_rule_order(rcv):
    ids = ["k%d" % i for i in range(500)]
    rcv.item_faults([{"fraction": 0.05, "seed": "p", "status": 400},
                     {"fraction": 0.2, "seed": "t", "status": 503, "times": 1}])
    perm = {i for i in ids if pick("p", i, 0.05)}
    trans = {i for i in ids if pick("t", i, 0.2)} - perm
    _, _, r1 = bulk(rcv, *[(index(i), {"a": 1}) for i in ids])
    by = collections.defaultdict(set)
    for it in r1["items"]:
        b = only(it)[1]
        by[b["status"]].add(b["_id"])
    assert by[400] == perm and by[503] == trans
    assert by[201] == set(ids) - perm - trans
    _, _, r2 = bulk(rcv, *[(index(i), {"a": 1}) for i in sorted(perm | trans)])
    by2 = collections.defaultdict(set)
    for it in r2["items"]:
        b = only(it)[1]
        by2[b["status"]].add(b["_id"])
    assert by2[400] == perm and by2[201] == trans


def test_item_fault_409_and_key_without_id(rcv):
    src = b'{"no":"id"}'
    rcv.item_faults([{"ids": [doc_key(None, src)], "status": 409, "times": 1}])
    _, _, r1 = request(rcv, ndjson(({"index": {"_index": "logs"}}, src)))
    b = only(r1["items"][0])[1]
    assert b["status"] == 409 and b["error"]["type"] == "version_conflict_engine_exception"
    _, _, r2 = request(rcv, ndjson(({"index": {"_index": "logs"}}, src)))
    assert only(r2["items"][0])[1]["status"] == 201
    assert doc_key(None, src) == "sha256:" + hashlib.sha256(src).hexdigest()


def test_item_rule_validation():
    r = OpenSearchReceiver()
    with pytest.raises(ValueError):
        r.item_faults([{"status": 200}])
    with pytest.raises(ValueError):
        r.item_faults([{"ids": ["a"], "fraction": 0.5, "status": 429}])
    with pytest.raises(ValueError):
        r.item_faults([{"status": 429, "tims": 1}])
    with pytest.raises(ValueError):
        r.faults([{"status": 503, "cuont": 1}])
    with pytest.raises(ValueError):
        r.faults([{"malformed": "weird"}])


# -- request fault rules -----------------------------------------------------------------

@pytest.mark.parametrize("code,etype", [(429, "rejected_execution_exception"),
                                        (503, "cluster_block_exception"),
                                        (500, "exception"),
                                        (403, "security_exception")])
def test_request_status_fault_for_the_next_n_requests(rcv, code, etype):
    rcv.faults([{"status": code, "count": 2}])
    pairs = [(index("a"), {"a": 1})]
    for _ in range(2):
        status, _, resp = bulk(rcv, *pairs)
        assert status == code
        assert resp["status"] == code
        assert resp["error"]["type"] == etype
        assert resp["error"]["root_cause"] == [{"type": etype, "reason": resp["error"]["reason"]}]
        assert rcv.docs() == {}
    status, _, resp = bulk(rcv, *pairs)
    assert status == 200 and resp["errors"] is False
    assert [r["status"] for r in rcv.bulk_requests()] == [code, code, 200]
    assert rcv.bulk_requests()[0]["fault"]["status"] == code


def test_request_fault_401_and_413(rcv):
    rcv.faults([{"status": 401, "count": 1}, {"status": 413, "count": 1}])
    status, hdrs, body = bulk(rcv, (index("a"), {"a": 1}))
    assert (status, body) == (401, b"Unauthorized")
    assert hdrs["WWW-Authenticate"] == 'Basic realm="OpenSearch Security"'
    status, _, body = bulk(rcv, (index("a"), {"a": 1}))
    assert (status, body) == (413, b"")


def test_delay_past_the_client_timeout_still_indexes(rcv):
    rcv.faults([{"delay": 1.0, "count": 1}])
    with pytest.raises(socket.timeout):
        bulk(rcv, (index("slow"), {"a": 1}), timeout=0.3)
    assert rcv.docs() == {}
    deadline = time.monotonic() + 5
    while not rcv.docs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(rcv.docs()) == {("logs", "slow")}
    status, _, _ = bulk(rcv, (index("fast"), {"a": 1}), timeout=10)
    assert status == 200


DISCONNECTED = (http.client.RemoteDisconnected, ConnectionError)


@pytest.mark.parametrize("reset", [False, True])
def test_drop_answers_nothing_and_indexes_nothing(rcv, reset):
    rcv.faults([{"drop": True, "reset": reset, "count": 1}])
    with pytest.raises(DISCONNECTED):
        bulk(rcv, (index("d"), {"a": 1}))
    assert rcv.docs() == {}
    assert rcv.bulk_requests()[0]["outcome"] == "dropped"
    assert bulk(rcv, (index("d"), {"a": 1}))[0] == 200


def test_process_then_drop_indexes_but_does_not_answer(rcv):
    rcv.faults([{"process_then_drop": True, "count": 1}])
    with pytest.raises(DISCONNECTED):
        bulk(rcv, (index("p"), {"a": 1}))
    assert set(rcv.docs()) == {("logs", "p")}
    _, _, resp = bulk(rcv, (index("p"), {"a": 1}))
    assert only(resp["items"][0])[1]["result"] == "updated"


def test_process_then_status(rcv):
    rcv.faults([{"process_then_status": 502, "count": 1}])
    status, _, _ = bulk(rcv, (index("p"), {"a": 1}))
    assert status == 502
    assert set(rcv.docs()) == {("logs", "p")}


def test_malformed_answers(rcv):
    pairs = [(index("a"), {"a": 1}), (index("b"), {"a": 1})]
    rcv.faults([{"malformed": k, "count": 1} for k in
                ("badjson", "html", "noitems", "fewer_items", "more_items", "notjson_ct")])
    status, _, body = bulk(rcv, *pairs)
    assert status == 200 and isinstance(body, bytes)           # not JSON
    status, hdrs, body = bulk(rcv, *pairs)
    assert hdrs["content-type"] == "text/html" and body.startswith(b"<html>")
    status, _, body = bulk(rcv, *pairs)
    assert body == {"took": body["took"], "errors": False}
    status, _, body = bulk(rcv, *pairs)
    assert len(body["items"]) == 1
    status, _, body = bulk(rcv, *pairs)
    assert len(body["items"]) == 3
    status, hdrs, body = bulk(rcv, *pairs)
    assert hdrs["content-type"] == "text/plain" and len(body["items"]) == 2
    assert rcv.docs() == {}
    status, _, body = bulk(rcv, *pairs)
    assert status == 200 and len(body["items"]) == 2 and rcv.docs()


def test_probability_rule_with_seed_is_reproducible():
    outcomes = []
    for _ in range(2):
        with OpenSearchReceiver() as r:
            r.faults([{"status": 503, "probability": 0.5, "seed": 42}])
            outcomes.append([bulk(r, (index(str(i)), {"a": 1}))[0] for i in range(20)])
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {200, 503}


def test_reset_forgets_everything(rcv):
    rcv.faults([{"status": 503}])
    rcv.item_faults([{"status": 429}])
    bulk(rcv, (index("a"), {"a": 1}), ctype="application/json")
    rcv.reset()
    assert rcv.requests() == [] and rcv.violations() == [] and rcv.describe_faults() == []
    status, _, resp = bulk(rcv, (index("a"), {"a": 1}))
    assert status == 200 and resp["errors"] is False
    assert rcv.seen_counts() == collections.Counter({"a": 1})


def test_violations_for_what_the_destination_must_not_send(rcv):
    bulk(rcv, (index("1", version=3, version_type="external"), {"a": 1}))
    request(rcv, ndjson((index("2"), {"a": 1})), method="PUT")
    bulk(rcv, (index(7), {"a": 1}))                     # a numeric _id
    v = rcv.violations()
    assert any("['version', 'version_type']" in x for x in v), v
    assert "method PUT, expected POST" in v
    assert any("_id is VALUE_NUMBER_INT" in x for x in v), v
    assert rcv.doc("logs", "7") is not None


# -- authentication ----------------------------------------------------------------------

def basic(user, pw):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode())
            .decode()}


def test_basic_auth():
    with OpenSearchReceiver(username="fh", password="p@ss:wörd") as r:
        pairs = [(index("1"), {"a": 1})]
        status, _, resp = bulk(r, *pairs, headers=basic("fh", "p@ss:wörd"))
        assert status == 200 and resp["errors"] is False
        for h in (basic("fh", "wrong"), basic("other", "p@ss:wörd"), {},
                  {"Authorization": "Bearer xyz"}, {"Authorization": "Basic !!!"}):
            status, hdrs, body = bulk(r, (index("2"), {"a": 1}), headers=h)
            assert status == 401, h
            assert body == b"Unauthorized"
            assert hdrs["WWW-Authenticate"] == 'Basic realm="OpenSearch Security"'
        assert set(r.docs()) == {("logs", "1")}


def sigv4_headers(r, body, path="/_bulk", secret=SECRET, key=KEY, region=REGION, service="es",
                  token=None, content_sha=False, when=None, extra=None):
    """Headers for a request signed by botocore's SigV4Auth."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    url = "http://127.0.0.1:%d%s%s" % (r.port, r.path_prefix, path)
    headers = {"Content-Type": "application/x-ndjson", "Host": "127.0.0.1:%d" % r.port}
    headers.update(extra or {})
    if content_sha:
        headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    req = AWSRequest(method="POST", url=url, data=body, headers=headers)
    signer = SigV4Auth(Credentials(key, secret, token), service, region)
    if when is not None:
        import datetime
        import unittest.mock
        fake = datetime.datetime.utcfromtimestamp(when)
        with unittest.mock.patch("botocore.auth.datetime") as dt:
            dt.datetime.utcnow.return_value = fake
            signer.add_auth(req)
    else:
        signer.add_auth(req)
    return dict(req.headers.items())


def post_signed(r, body, headers, path="/_bulk"):
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    try:
        conn.putrequest("POST", r.path_prefix + path, skip_host=True,
                        skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw
    finally:
        conn.close()


@pytest.fixture
def es_rcv():
    r = OpenSearchReceiver(sigv4={"access_key": KEY, "secret_key": SECRET,
                                  "region": REGION}).start()
    yield r
    r.stop()


def test_sigv4_accepts_a_botocore_signature(es_rcv):
    body = ndjson((index("s1"), {"a": 1}))
    status, resp = post_signed(es_rcv, body, sigv4_headers(es_rcv, body))
    assert status == 200 and resp["errors"] is False
    body2 = ndjson((index("s2"), {"a": 2}))
    status, resp = post_signed(es_rcv, body2,
                               sigv4_headers(es_rcv, body2, path="/_bulk?pipeline=p-1",
                                             content_sha=True),
                               path="/_bulk?pipeline=p-1")
    assert status == 200, resp
    assert set(es_rcv.docs()) == {("logs", "s1"), ("logs", "s2")}
    assert es_rcv.doc("logs", "s2")["pipeline"] == "p-1"
    assert es_rcv.last_sigv4["expected"] == es_rcv.last_sigv4["got"]
    assert "pipeline=p-1" in es_rcv.last_sigv4["canonical_request"]


def test_sigv4_wrong_secret_is_403_signature_mismatch(es_rcv):
    body = ndjson((index("s1"), {"a": 1}))
    status, resp = post_signed(es_rcv, body, sigv4_headers(es_rcv, body, secret="wrong"))
    assert status == 403
    assert resp["message"].startswith(
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method.")
    assert "The Canonical String for this request should have been" in resp["message"]
    assert es_rcv.docs() == {}


def test_sigv4_body_changed_after_signing_is_403(es_rcv):
    body = ndjson((index("s1"), {"a": 1}))
    h = sigv4_headers(es_rcv, body)
    status, resp = post_signed(es_rcv, body.replace(b"1", b"2"), h)
    assert status == 403 and resp["message"].startswith("The request signature we calculated")
    h = sigv4_headers(es_rcv, body, content_sha=True)
    status, resp = post_signed(es_rcv, body.replace(b"1", b"2"), h)
    assert status == 403
    assert resp["message"] == ("The provided 'x-amz-content-sha256' header does not match "
                               "what was computed.")


def test_sigv4_unsigned_header_change_is_403(es_rcv):
    body = ndjson((index("s1"), {"a": 1}))
    h = sigv4_headers(es_rcv, body)
    assert "content-type" in h["Authorization"]
    h["Content-Type"] = "application/json"
    status, resp = post_signed(es_rcv, body, h)
    assert status == 403 and resp["message"].startswith("The request signature we calculated")


@pytest.mark.parametrize("change,message", [
    ({"key": "AKIDOTHER"}, "The security token included in the request is invalid."),
    ({"region": "us-east-1"}, "Credential should be scoped to a valid region. "),
    ({"service": "aoss"}, "Credential should be scoped to correct service: 'es'. "),
    ({"token": "tok"}, "The security token included in the request is invalid."),
])
def test_sigv4_wrong_scope_or_token(es_rcv, change, message):
    body = ndjson((index("s1"), {"a": 1}))
    status, resp = post_signed(es_rcv, body, sigv4_headers(es_rcv, body, **change))
    assert (status, resp) == (403, {"message": message})


def test_sigv4_missing_authorization_and_basic_auth(es_rcv):
    body = ndjson((index("s1"), {"a": 1}))
    status, resp = post_signed(es_rcv, body, {"Content-Type": "application/x-ndjson",
                                              "Host": "127.0.0.1"})
    assert status == 403 and resp["Message"].startswith("User: anonymous is not authorized")
    status, resp = post_signed(es_rcv, body, dict(basic("a", "b"), Host="x"))
    assert status == 403
    assert resp["message"].startswith("Authorization header requires 'Credential' parameter.")


def test_sigv4_old_or_future_date_is_403(es_rcv):
    body = ndjson((index("s1"), {"a": 1}))
    status, resp = post_signed(es_rcv, body, sigv4_headers(es_rcv, body,
                                                           when=time.time() - 900))
    assert status == 403 and resp["message"].startswith("Signature expired: ")
    status, resp = post_signed(es_rcv, body, sigv4_headers(es_rcv, body,
                                                           when=time.time() + 900))
    assert status == 403 and resp["message"].startswith("Signature not yet current: ")
    status, resp = post_signed(es_rcv, body, sigv4_headers(es_rcv, body,
                                                           when=time.time() - 60))
    assert status == 200


def test_sigv4_session_token_and_aoss():
    cfg = {"access_key": KEY, "secret_key": SECRET, "region": REGION, "service": "aoss",
           "session_token": "FQoGZXIvYXdzE//token+/="}
    with OpenSearchReceiver(sigv4=cfg, path_prefix="/p") as r:
        body = ndjson((index("t1"), {"a": 1}))
        ok = sigv4_headers(r, body, service="aoss", token=cfg["session_token"],
                           content_sha=True)
        assert "X-Amz-Security-Token" in ok
        status, resp = post_signed(r, body, ok)
        assert status == 200, resp
        status, resp = post_signed(r, body, sigv4_headers(r, body, service="aoss",
                                                          content_sha=True))
        assert status == 403 and "security token" in resp["message"]
        status, resp = post_signed(r, body, sigv4_headers(r, body, service="aoss",
                                                          token=cfg["session_token"]))
        assert (status, resp) == (403, {"message": "Missing required header: "
                                                   "x-amz-content-sha256"})
        assert set(r.docs()) == {("logs", "t1")}
