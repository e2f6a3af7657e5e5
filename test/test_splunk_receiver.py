"""The Splunk HEC test receiver alone (no PostgreSQL): it must answer as Splunk does.

Every response shape the receiver documents is shown here, with what it
records, and every fault rule behaves as documented in splunk_receiver.py.
"""

import base64
import gzip
import http.client
import json
import socket
import threading
import time
import uuid

import pytest

from splunk_receiver import HEC_CODES, SplunkReceiver

TOKEN = "11111111-aaaa-bbbb-cccc-000000000001"
ACK_TOKEN = "11111111-aaaa-bbbb-cccc-000000000002"
DISABLED_TOKEN = "11111111-aaaa-bbbb-cccc-000000000003"
RESTRICTED_TOKEN = "11111111-aaaa-bbbb-cccc-000000000004"
CH1 = "0b3c2d5e-1111-4222-8333-444455556666"
CH2 = "0b3c2d5e-1111-4222-8333-777788889999"

DISCONNECTED = (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine)


@pytest.fixture
def hec():
    h = SplunkReceiver(indexes=("main", "allowed", "other"))
    h.add_token(TOKEN)
    h.add_token(ACK_TOKEN, ack=True)
    h.add_token(DISABLED_TOKEN, disabled=True)
    h.add_token(RESTRICTED_TOKEN, indexes=["allowed"], default_index="allowed")
    h.start()
    yield h
    h.stop()


def post(hec, path, body, token=TOKEN, channel=None, headers=None, auth=None,
         method="POST", conn=None):
    """Send one request with http.client; return (status, parsed JSON or bytes, headers)."""
    h = {}
    if auth is not None:
        h["Authorization"] = auth
    elif token is not None:
        h["Authorization"] = "Splunk " + token
    if channel is not None:
        h["X-Splunk-Request-Channel"] = channel
    h.update(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", hec.port, timeout=30)
    try:
        c.request(method, path, body=body, headers=h)
        resp = c.getresponse()
        status, raw, hdrs = resp.status, resp.read(), resp.headers
    finally:
        if own:
            c.close()
    try:
        return status, json.loads(raw), hdrs
    except ValueError:
        return status, raw, hdrs


def ev(event, **meta):
    d = {"event": event}
    d.update(meta)
    return json.dumps(d)


def ack(hec, ids, channel=CH1, token=ACK_TOKEN, **kw):
    return post(hec, "/services/collector/ack?channel=%s" % channel if channel else
                "/services/collector/ack", {"acks": ids}, token=token, **kw)


# -- /event ---------------------------------------------------------------------

def test_one_event_success_and_record(hec):
    status, body, hdrs = post(hec, "/services/collector/event", ev({"a": 1, "b": [1.5, "x"]}))
    assert status == 200
    assert body == {"text": "Success", "code": 0}
    assert hdrs["Content-Type"].startswith("application/json")
    (e,) = hec.events()
    assert e["event"] == {"a": 1, "b": [1.5, "x"]}
    assert e["endpoint"] == "event" and e["token"] == TOKEN and e["channel"] is None
    assert (e["host"], e["source"], e["sourcetype"], e["index"]) == (None,) * 4
    assert e["effective_index"] == "main" and e["ack_id"] is None
    assert e["time"] is None and e["time_text"] is None
    (r,) = hec.requests()
    assert r["status"] == 200 and r["code"] == 0 and r["outcome"] == "ok"
    assert r["n_events"] == 1 and r["auth_scheme"] == "Splunk"


def test_concatenated_events_with_metadata_are_each_recorded(hec):
    body = (ev("first line", time=1700000000.125, host="h1", source="s1", sourcetype="st1",
               index="other")
            + "\n" + '{"event": {"n": 2}, "time": 1700000001.100}'
            + '{"event": 3, "time": "1700000002.5", "fields": {"k": "v", "l": ["a", "b"]}}'
            + "  \r\n\t" + ev([1, None, True]) + "\n")
    status, resp, _ = post(hec, "/services/collector/event", body)
    assert (status, resp) == (200, {"text": "Success", "code": 0})
    e = hec.events()
    assert [x["event"] for x in e] == ["first line", {"n": 2}, 3, [1, None, True]]
    assert (e[0]["host"], e[0]["source"], e[0]["sourcetype"], e[0]["index"],
            e[0]["effective_index"]) == ("h1", "s1", "st1", "other", "other")
    assert e[0]["time"] == 1700000000.125 and e[0]["time_text"] == "1700000000.125"
    # the number exactly as written: trailing zeros kept
    assert e[1]["time_text"] == "1700000001.100" and e[1]["time"] == 1700000001.1
    assert e[2]["time_text"] == "1700000002.5" and e[2]["time"] == 1700000002.5
    assert e[2]["fields"] == {"k": "v", "l": ["a", "b"]}
    assert e[1]["raw"] == '{"event": {"n": 2}, "time": 1700000001.100}'
    assert [x["seq"] for x in e] == [0, 1, 2, 3] and {x["request"] for x in e} == {0}
    assert hec.requests()[0]["n_events"] == 4


@pytest.mark.parametrize("path", ["/services/collector", "/services/collector/event/1.0",
                                  "/services/collector/event/"])
def test_event_endpoint_aliases(hec, path):
    status, resp, _ = post(hec, path, ev("x"))
    assert (status, resp["code"]) == (200, 0)
    assert hec.event_values() == ["x"] and hec.requests()[0]["endpoint"] == "event"


def test_invalid_json_answers_code_6_with_the_event_number(hec):
    body = ev("ok-0") + '{"event": "broken' + ev("never")
    status, resp, _ = post(hec, "/services/collector/event", body)
    assert status == 400
    assert resp == {"text": "Invalid data format", "code": 6, "invalid-event-number": 1}
    # as Splunk: the events before the bad one are indexed, none after
    assert hec.event_values() == ["ok-0"]
    assert hec.requests()[0]["outcome"] == "rejected"


def test_index_before_invalid_can_be_turned_off():
    h = SplunkReceiver(index_before_invalid=False)
    h.add_token(TOKEN)
    with h.start():
        status, resp, _ = post(h, "/services/collector/event", ev("a") + ev("b") + ev(""))
        assert (status, resp["code"], resp["invalid-event-number"]) == (400, 13, 2)
        assert h.events() == [] and h.requests()[0]["n_events"] == 0


@pytest.mark.parametrize("body,code,n", [
    (ev("a") + json.dumps({"time": 1, "host": "h"}), 12, 1),
    (json.dumps({"event": None}), 12, 0),
    (ev("a") + ev("b") + ev(""), 13, 2),
    (json.dumps(["not", "an", "object"]), 6, 0),
    (json.dumps("a string"), 6, 0),
    (ev("a", time="soon"), 6, 0),
    (ev("a", time=True), 6, 0),
    (ev("a", host=5), 6, 0),
    (ev("a", index=["main"]), 6, 0),
    (ev("a") + ", " + ev("b"), 6, 1),
    (ev("a", fields=["k"]), 15, 0),
    (ev("a", fields={"k": {"nested": 1}}), 15, 0),
    (b'{"event": "\xff\xfe"}', 6, 0),
])
def test_bad_events_answer_their_code_and_number(hec, body, code, n):
    status, resp, _ = post(hec, "/services/collector/event", body)
    assert status == 400
    assert resp == {"text": HEC_CODES[code][1], "code": code, "invalid-event-number": n}
    assert len(hec.events()) == n


@pytest.mark.parametrize("path", ["/services/collector/event", "/services/collector/raw"])
@pytest.mark.parametrize("body", [b"", b" \r\n\t "])
def test_no_data(hec, path, body):
    status, resp, _ = post(hec, path, body, channel=CH1)
    assert (status, resp) == (400, {"text": "No data", "code": 5})
    assert hec.events() == []


def test_gzip_and_chunked_bodies_are_accepted(hec):
    status, resp, _ = post(hec, "/services/collector/event", gzip.compress(ev("zipped").encode()),
                           headers={"Content-Encoding": "gzip"})
    assert (status, resp["code"]) == (200, 0)
    c = http.client.HTTPConnection("127.0.0.1", hec.port, timeout=10)
    c.request("POST", "/services/collector/event", body=iter([ev("chunk").encode()[:5],
                                                             ev("chunk").encode()[5:]]),
              headers={"Authorization": "Splunk " + TOKEN}, encode_chunked=True)
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read())["code"] == 0
    c.close()
    assert hec.event_values() == ["zipped", "chunk"]
    status, resp, _ = post(hec, "/services/collector/event", b"not gzip",
                           headers={"Content-Encoding": "gzip"})
    assert (status, resp["code"]) == (400, 6)


# -- /raw -----------------------------------------------------------------------

def test_raw_lines_and_query_metadata(hec):
    q = "channel=%s&host=h%%201&source=src&sourcetype=st&index=other&time=1700000000.250" % CH1
    body = b"line one\nline \xc3\xa9 two\r\n\n\nthree\n"
    status, resp, _ = post(hec, "/services/collector/raw?" + q, body)
    assert (status, resp) == (200, {"text": "Success", "code": 0})
    assert hec.raw_lines() == [b"line one", "line \u00e9 two".encode(), b"three"]
    e = hec.events()
    assert [x["event"] for x in e] == ["line one", "line \u00e9 two", "three"]
    for x in e:
        assert (x["host"], x["source"], x["sourcetype"], x["index"], x["effective_index"]) == \
            ("h 1", "src", "st", "other", "other")
        assert x["channel"] == CH1 and x["endpoint"] == "raw"
        assert x["time_text"] == "1700000000.250"
    (r,) = hec.requests()
    assert r["endpoint"] == "raw" and r["body"] == body
    assert r["channel_query"] == CH1 and r["channel_header"] is None
    assert r["query"]["sourcetype"] == "st"


def test_raw_channel_header_wins_over_query(hec):
    post(hec, "/services/collector/raw?channel=%s" % CH2, b"x\n", channel=CH1)
    (r,) = hec.requests()
    assert (r["channel"], r["channel_header"], r["channel_query"]) == (CH1, CH1, CH2)
    assert hec.raw_lines(CH1) == [b"x"] and hec.raw_lines(CH2) == []


def test_raw_defaults_without_metadata(hec):
    post(hec, "/services/collector/raw/1.0", b"only")
    (e,) = hec.events()
    assert e["raw"] == b"only" and e["effective_index"] == "main" and e["channel"] is None
    assert (e["host"], e["source"], e["sourcetype"], e["index"]) == (None,) * 4


def test_raw_bad_time_and_bad_index(hec):
    assert post(hec, "/services/collector/raw?time=later", b"x")[:2] == \
        (400, {"text": "Invalid data format", "code": 6, "invalid-event-number": 0})
    assert post(hec, "/services/collector/raw?index=nope", b"x")[:2] == \
        (400, {"text": "Incorrect index", "code": 7, "invalid-event-number": 0})
    assert hec.events() == []


# -- authentication -------------------------------------------------------------

@pytest.mark.parametrize("path", ["/services/collector/event", "/services/collector/raw"])
def test_authentication_answers(hec, path):
    cases = [
        (dict(token=None), 401, {"text": "Token is required", "code": 2}),
        (dict(auth="Bearer " + TOKEN), 401, {"text": "Invalid authorization", "code": 3}),
        (dict(auth="Splunk"), 401, {"text": "Invalid authorization", "code": 3}),
        (dict(token="22222222-0000-0000-0000-000000000000"), 403,
         {"text": "Invalid token", "code": 4}),
        (dict(token=TOKEN.upper()), 403, {"text": "Invalid token", "code": 4}),
        (dict(token=DISABLED_TOKEN), 403, {"text": "Token disabled", "code": 1}),
    ]
    for kw, st, resp in cases:
        assert post(hec, path, ev("x"), **kw)[:2] == (st, resp), kw
    assert hec.events() == []
    assert [r["status"] for r in hec.requests()] == [c[1] for c in cases]
    assert hec.requests()[3]["token"] == "22222222-0000-0000-0000-000000000000"


def test_basic_auth_with_the_token_as_password_is_accepted(hec):
    cred = base64.b64encode(("x:" + TOKEN).encode()).decode()
    status, resp, _ = post(hec, "/services/collector/event", ev("b"), auth="Basic " + cred)
    assert (status, resp["code"]) == (200, 0)
    assert hec.requests()[0]["auth_scheme"] == "Basic" and hec.events()[0]["token"] == TOKEN


def test_query_string_token_is_not_enabled(hec):
    status, resp, _ = post(hec, "/services/collector/event?token=" + TOKEN, ev("q"), token=None)
    assert (status, resp) == (400, {"text": "Query string authorization is not enabled",
                                     "code": 16})


def test_token_can_be_disabled_later(hec):
    assert post(hec, "/services/collector/event", ev("1"))[0] == 200
    hec.set_token(TOKEN, disabled=True)
    assert post(hec, "/services/collector/event", ev("2"))[:2] == \
        (403, {"text": "Token disabled", "code": 1})
    assert hec.event_values() == ["1"]


# -- indexes ----------------------------------------------------------------------

def test_incorrect_index(hec):
    body = ev("a", index="main") + ev("b", index="missing")
    status, resp, _ = post(hec, "/services/collector/event", body)
    assert (status, resp) == (400, {"text": "Incorrect index", "code": 7,
                                     "invalid-event-number": 1})
    assert hec.event_values() == ["a"]


def test_token_allowed_indexes_and_default_index(hec):
    assert post(hec, "/services/collector/event", ev("x", index="main"),
                token=RESTRICTED_TOKEN)[:2] == \
        (400, {"text": "Incorrect index", "code": 7, "invalid-event-number": 0})
    assert post(hec, "/services/collector/event", ev("y", index="allowed"),
                token=RESTRICTED_TOKEN)[0] == 200
    assert post(hec, "/services/collector/event", ev("z"), token=RESTRICTED_TOKEN)[0] == 200
    assert [(e["event"], e["index"], e["effective_index"]) for e in hec.events()] == \
        [("y", "allowed", "allowed"), ("z", None, "allowed")]


# -- channels and indexer acknowledgement -------------------------------------------

@pytest.mark.parametrize("path", ["/services/collector/event", "/services/collector/raw",
                                  "/services/collector/ack"])
def test_invalid_channel(hec, path):
    status, resp, _ = post(hec, path, ev("x") if "ack" not in path else {"acks": [0]},
                           token=ACK_TOKEN, channel="not-a-guid")
    assert (status, resp) == (400, {"text": "Invalid data channel", "code": 11})
    status, resp, _ = post(hec, path.replace("ack", "event"), ev("x"), channel="stream-1")
    assert (status, resp["code"]) == (400, 11)
    assert hec.events() == []


@pytest.mark.parametrize("path", ["/services/collector/event", "/services/collector/raw",
                                  "/services/collector/ack"])
def test_ack_token_needs_a_channel(hec, path):
    status, resp, _ = post(hec, path, ev("x") if "ack" not in path else {"acks": [0]},
                           token=ACK_TOKEN)
    assert (status, resp) == (400, {"text": "Data channel is missing", "code": 10})
    assert hec.events() == [] and hec.acks_issued() == []


def test_channel_is_optional_without_ack(hec):
    assert post(hec, "/services/collector/event", ev("x"))[:2] == \
        (200, {"text": "Success", "code": 0})
    assert post(hec, "/services/collector/event", ev("y"), channel=CH1)[:2] == \
        (200, {"text": "Success", "code": 0})
    assert [e["channel"] for e in hec.events()] == [None, CH1]


def test_ack_ids_count_per_channel_from_zero(hec):
    got = []
    for ch, path in [(CH1, "/services/collector/event"), (CH1, "/services/collector/raw"),
                     (CH2, "/services/collector/event"), (CH1, "/services/collector/event"),
                     (CH2, "/services/collector/raw")]:
        status, resp, _ = post(hec, path, ev("e"), token=ACK_TOKEN, channel=ch)
        assert status == 200 and resp["text"] == "Success" and resp["code"] == 0
        got.append((ch, resp["ackId"]))
    assert got == [(CH1, 0), (CH1, 1), (CH2, 0), (CH1, 2), (CH2, 1)]
    assert [e["ack_id"] for e in hec.events(CH1)] == [0, 1, 2]
    # the ?channel= query parameter is a channel too
    status, resp, _ = post(hec, "/services/collector/raw?channel=" + CH2, b"q", token=ACK_TOKEN)
    assert (status, resp["ackId"]) == (200, 2)


def test_ack_true_after_the_delay_then_forgotten(hec):
    hec.set_ack_delay(2.0)                  # room for a loaded machine before the first query
    _, resp, _ = post(hec, "/services/collector/event", ev("a"), token=ACK_TOKEN, channel=CH1)
    # the receiver took the event before its answer came back: the delay
    # counts from then, so it is over 2 s after this at the latest
    answered = time.monotonic()
    assert resp["ackId"] == 0
    status, body, hdrs = ack(hec, [0, 7])
    assert status == 200 and hdrs["Content-Type"].startswith("application/json")
    assert body == {"acks": {"0": False, "7": False}}
    while time.monotonic() - answered < 2.05:
        time.sleep(0.05)
    assert ack(hec, [0, 7])[1] == {"acks": {"0": True, "7": False}}
    # answered true once: then forgotten, as Splunk does
    assert ack(hec, [0])[1] == {"acks": {"0": False}}
    (a,) = hec.acks_issued()
    assert a["channel"] == CH1 and a["ack_id"] == 0 and a["acked_at"] is not None
    assert [q["answer"] for q in hec.ack_queries()] == \
        [{"0": False, "7": False}, {"0": True, "7": False}, {"0": False}]


def test_ack_is_per_channel(hec):
    post(hec, "/services/collector/event", ev("a"), token=ACK_TOKEN, channel=CH1)
    assert ack(hec, [0], channel=CH2)[1] == {"acks": {"0": False}}
    assert ack(hec, [0], channel=CH1)[1] == {"acks": {"0": True}}
    # the ack request's channel may come from the header too
    post(hec, "/services/collector/event", ev("b"), token=ACK_TOKEN, channel=CH2)
    assert post(hec, "/services/collector/ack", {"acks": [0]}, token=ACK_TOKEN,
                channel=CH2)[1] == {"acks": {"0": True}}


def test_ack_disabled_for_the_token(hec):
    post(hec, "/services/collector/event", ev("a"), channel=CH1)
    assert ack(hec, [0], token=TOKEN)[:2] == (400, {"text": "ACK is disabled", "code": 14})


def test_ack_authentication_and_body_errors(hec):
    assert ack(hec, [0], token=None)[:2] == (401, {"text": "Token is required", "code": 2})
    assert ack(hec, [0], token="33333333-0000-0000-0000-000000000000")[:2] == \
        (403, {"text": "Invalid token", "code": 4})
    for body in ('{"acks": "0"}', '{"ack": [0]}', '[0]', '{"acks": [-1]}', '{"acks": ["0"]}',
                 "{nope"):
        assert post(hec, "/services/collector/ack?channel=" + CH1, body,
                    token=ACK_TOKEN)[:2] == (400, {"text": "Invalid data format", "code": 6}), body
    assert post(hec, "/services/collector/ack?channel=" + CH1, b"", token=ACK_TOKEN)[:2] == \
        (400, {"text": "No data", "code": 5})


def test_no_ack_id_without_ack(hec):
    _, resp, _ = post(hec, "/services/collector/event", ev("a"), channel=CH1)
    assert "ackId" not in resp and hec.acks_issued() == []


def test_never_ack_rule_for_the_next_requests(hec):
    hec.faults([{"never_ack": True, "count": 2}])
    ids = [post(hec, "/services/collector/event", ev(i), token=ACK_TOKEN,
                channel=CH1)[1]["ackId"] for i in range(3)]
    assert ids == [0, 1, 2]
    assert hec.event_values() == [0, 1, 2]          # indexed all the same
    time.sleep(0.05)
    assert ack(hec, [0, 1, 2])[1] == {"acks": {"0": False, "1": False, "2": True}}
    assert ack(hec, [0, 1])[1] == {"acks": {"0": False, "1": False}}
    assert [r["fault"] is not None for r in hec.requests("event")] == [True, True, False]


def test_never_ack_chosen_ids(hec):
    hec.never_ack([1], CH1)
    for i in range(3):
        post(hec, "/services/collector/raw", b"r%d" % i, token=ACK_TOKEN, channel=CH1)
    hec.never_ack([2], CH1)                          # already issued: applies too
    post(hec, "/services/collector/raw", b"other", token=ACK_TOKEN, channel=CH2)
    assert ack(hec, [0, 1, 2])[1] == {"acks": {"0": True, "1": False, "2": False}}
    assert ack(hec, [0], channel=CH2)[1] == {"acks": {"0": True}}


def test_ack_delay_rule(hec):
    hec.faults([{"ack_delay": 60, "count": 1}])
    post(hec, "/services/collector/event", ev("slow"), token=ACK_TOKEN, channel=CH1)
    post(hec, "/services/collector/event", ev("fast"), token=ACK_TOKEN, channel=CH1)
    assert ack(hec, [0, 1])[1] == {"acks": {"0": False, "1": True}}


# -- fault injection --------------------------------------------------------------------

def test_server_busy_for_the_next_requests(hec):
    hec.faults([{"code": 9, "count": 2}])
    answers = [post(hec, "/services/collector/event", ev(i))[:2] for i in range(3)]
    assert answers == [(503, {"text": "Server is busy", "code": 9})] * 2 + \
        [(200, {"text": "Success", "code": 0})]
    assert hec.event_values() == [2]
    assert [r["outcome"] for r in hec.requests()] == ["fault", "fault", "ok"]
    assert hec.fault_plan() == [{"code": 9, "count": 2, "remaining": 0}]


@pytest.mark.parametrize("code", sorted(c for c in HEC_CODES if c not in (0, 17)))
def test_any_hec_code_can_be_injected(hec, code):
    hec.faults([{"code": code, "count": 1}])
    status, resp, _ = post(hec, "/services/collector/raw", b"x", token=ACK_TOKEN, channel=CH1)
    assert (status, resp) == (HEC_CODES[code][0], {"text": HEC_CODES[code][1], "code": code})
    assert hec.events() == [] and hec.acks_issued() == []


def test_code_with_status_override_and_plain_status(hec):
    hec.faults([{"code": 8, "status": 502, "count": 1}, {"status": 504, "count": 1}])
    assert post(hec, "/services/collector/event", ev(1))[:2] == \
        (502, {"text": "Internal server error", "code": 8})
    status, body, hdrs = post(hec, "/services/collector/event", ev(2))
    assert status == 504 and isinstance(body, bytes) and b"504" in body
    assert hdrs["Content-Type"] == "text/html"
    assert hec.events() == []


def test_faults_only_consume_valid_requests(hec):
    hec.faults([{"code": 9, "count": 1}])
    assert post(hec, "/services/collector/event", ev("x"), token=None)[0] == 401
    assert post(hec, "/services/collector/event", b"{bad")[0] == 400
    assert post(hec, "/services/collector/event", ev("x"))[0] == 503
    assert post(hec, "/services/collector/event", ev("y"))[0] == 200


def test_fault_on_ack_requests_only(hec):
    hec.faults([{"on": "ack", "code": 9, "count": 1}])
    assert post(hec, "/services/collector/event", ev(1), token=ACK_TOKEN,
                channel=CH1)[1]["ackId"] == 0
    assert ack(hec, [0])[:2] == (503, {"text": "Server is busy", "code": 9})
    assert ack(hec, [0])[1] == {"acks": {"0": True}}


@pytest.mark.parametrize("on,path,hit", [("event", "/services/collector/raw", False),
                                         ("raw", "/services/collector/raw", True),
                                         ("data", "/services/collector/ack", False),
                                         (None, "/services/collector/ack", False),
                                         (None, "/services/collector/event", True),
                                         ("any", "/services/collector/ack", True)])
def test_fault_rule_on_selects_requests(hec, on, path, hit):
    hec.faults([{"code": 9} if on is None else {"on": on, "code": 9}])
    body = {"acks": []} if path.endswith("ack") else ev("x")
    status = post(hec, path + "?channel=" + CH1, body, token=ACK_TOKEN)[0]
    assert status == (503 if hit else 200)


@pytest.mark.parametrize("rst", [False, True])
def test_drop_closes_without_answer_and_indexes_nothing(hec, rst):
    hec.faults([{"drop": True, "reset": rst, "count": 1}])
    with pytest.raises(DISCONNECTED):
        post(hec, "/services/collector/event", ev("lost"))
    assert post(hec, "/services/collector/event", ev("kept"))[0] == 200
    assert hec.event_values() == ["kept"]
    assert hec.requests()[0]["outcome"] == "dropped"


def test_store_then_drop_indexes_then_closes(hec):
    hec.faults([{"store_then_drop": True, "count": 1}])
    with pytest.raises(DISCONNECTED):
        post(hec, "/services/collector/event", ev("dup"), token=ACK_TOKEN, channel=CH1)
    _, resp, _ = post(hec, "/services/collector/event", ev("dup"), token=ACK_TOKEN, channel=CH1)
    assert resp["ackId"] == 1                       # the lost answer had ackId 0
    assert hec.event_values() == ["dup", "dup"]


def test_store_then_code_indexes_then_answers_the_error(hec):
    hec.faults([{"store_then_code": 8, "count": 1}])
    assert post(hec, "/services/collector/event", ev("s"))[:2] == \
        (500, {"text": "Internal server error", "code": 8})
    assert hec.event_values() == ["s"]


def test_delay(hec):
    hec.faults([{"delay": 1.0, "count": 1}])
    t0 = time.monotonic()
    assert post(hec, "/services/collector/event", ev("d"))[0] == 200
    assert time.monotonic() - t0 >= 1.0
    t1 = time.monotonic()
    post(hec, "/services/collector/event", ev("e"))
    assert time.monotonic() - t1 < 0.9       # the rule is used up: no delay


@pytest.mark.parametrize("rule", [{"code": 99}, {"status": 42}, {"count": 1},
                                  {"drop": True, "never_ack": True}, {"on": "nowhere", "code": 9},
                                  {"code": 9, "colour": "red"}, {"delay": "1"}])
def test_bad_fault_rules_are_refused(hec, rule):
    with pytest.raises(ValueError):
        hec.faults([rule])


# -- HTTP details, records, life cycle ---------------------------------------------------

def test_keep_alive_and_request_record(hec):
    c = http.client.HTTPConnection("127.0.0.1", hec.port, timeout=10)
    for i in range(3):
        status, _, hdrs = post(hec, "/services/collector/event?x=%d" % i, ev(i), channel=CH1,
                               headers={"X-Extra": "e%d" % i}, conn=c)
        assert status == 200 and hdrs.get("Connection") != "close"
    c.close()
    reqs = hec.requests()
    assert [r["n"] for r in reqs] == [0, 1, 2]
    r = reqs[1]
    assert r["method"] == "POST" and r["path"] == "/services/collector/event"
    assert r["query"] == {"x": "1"}
    assert r["headers"]["authorization"] == "Splunk " + TOKEN
    assert r["headers"]["x-splunk-request-channel"] == CH1
    assert ("X-Extra", "e1") in r["header_list"]
    assert r["token"] == TOKEN and r["channel"] == CH1
    assert r["body"] == ev(1).encode() and r["response"] == {"text": "Success", "code": 0}
    assert hec.channels() == [CH1]


def test_health_unknown_path_and_method(hec):
    assert post(hec, "/services/collector/health", b"", method="GET")[:2] == \
        (200, {"text": "HEC is healthy", "code": 17})
    status, body, _ = post(hec, "/services/other", ev("x"))
    assert status == 404 and body["code"] == 404
    assert post(hec, "/services/collector/event", b"", method="GET")[0] == 405
    assert hec.events() == []


def test_stop_and_start_on_the_same_port(hec):
    post(hec, "/services/collector/event", ev("before"))
    port = hec.port
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/services/collector/event", body=ev("ka"),
              headers={"Authorization": "Splunk " + TOKEN})
    c.getresponse().read()
    hec.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    with pytest.raises(DISCONNECTED + (OSError,)):     # the kept-alive connection was cut
        c.request("POST", "/services/collector/event", body=ev("x"),
                  headers={"Authorization": "Splunk " + TOKEN})
        c.getresponse()
    hec.start(port)
    assert hec.port == port
    post(hec, "/services/collector/event", ev("after"))
    assert hec.event_values() == ["before", "ka", "after"]


def test_reset_forgets_everything_but_tokens(hec):
    hec.faults([{"code": 9}])
    post(hec, "/services/collector/event", ev("x"), token=ACK_TOKEN, channel=CH1)
    hec.faults([])
    post(hec, "/services/collector/event", ev("y"), token=ACK_TOKEN, channel=CH1)
    hec.faults([{"code": 9}])
    hec.reset()
    assert hec.requests() == [] and hec.events() == [] and hec.acks_issued() == []
    assert hec.fault_plan() == []
    _, resp, _ = post(hec, "/services/collector/event", ev("z"), token=ACK_TOKEN, channel=CH1)
    assert resp["ackId"] == 0                        # ackIds start again


def test_wait_events(hec):
    with pytest.raises(TimeoutError):
        hec.wait_events(1, timeout=0.3)

    def later():
        time.sleep(0.3)
        post(hec, "/services/collector/event", ev("a") + ev("b"))
    t = threading.Thread(target=later)
    t.start()
    t0 = time.monotonic()
    hec.wait_events(2, timeout=10)
    assert time.monotonic() - t0 < 5
    t.join()
    hec.wait_requests(1, endpoint="event", timeout=1)


def test_guid_channels_in_any_case_are_valid(hec):
    ch = str(uuid.uuid4()).upper()
    assert post(hec, "/services/collector/event", ev("x"), token=ACK_TOKEN, channel=ch)[0] == 200
    assert hec.events(ch)[0]["ack_id"] == 0
