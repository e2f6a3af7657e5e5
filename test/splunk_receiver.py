#!/usr/bin/python3
"""A Splunk HTTP Event Collector (HEC) for the tests, with fault injection.

    from splunk_receiver import SplunkReceiver
    hec = SplunkReceiver()
    hec.add_token("11111111-2222-3333-4444-555555555555", ack=True)
    hec.start()                  # hec.url is "http://127.0.0.1:<port>", the HEC base
    ...
    hec.stop()

or, by hand:  /usr/bin/python3 test/splunk_receiver.py --port 8088 --token T [--ack]

Python standard library only; a threaded HTTP/1.1 server on 127.0.0.1 that
runs inside the test process.  It speaks HEC as Splunk documents it ("Format
events for HTTP Event Collector", "About HTTP Event Collector Indexer
Acknowledgment", "Troubleshoot HTTP Event Collector"):

Endpoints
---------
POST /services/collector, /services/collector/event[/1.0]
    The body is one or more JSON objects, concatenated (whitespace between them
    allowed, nothing else).  Each needs "event" (any JSON value but null or "");
    optional "time" (epoch seconds, a number or a numeric string), "host",
    "source", "sourcetype", "index" (strings) and "fields" (an object of strings,
    numbers or arrays of strings).  Unknown keys are ignored, as Splunk does.
    Events are checked in order; at the first bad one the answer is an error
    naming it ("invalid-event-number", counted from 0).  The events before it
    are indexed and the rest are not (what HEC is reported to do; Splunk's
    documentation does not say): SplunkReceiver(index_before_invalid=False)
    indexes none of them.
POST /services/collector/raw[/1.0]
    The body is raw text, broken into events at line breaks (Splunk's default
    LINE_BREAKER ([\\r\\n]+): empty lines make no event).  Metadata comes from the
    query string: host, source, sourcetype, index, time.
POST /services/collector/ack
    {"acks": [N, ...]} -> {"acks": {"N": true|false, ...}}.  An ackId is true
    once its data is indexed (ack_delay seconds after it was received); it is
    answered true once and then forgotten (a second query says false), as
    Splunk does.  Unknown ackIds are false.
GET  /services/collector/health[/1.0]   {"text": "HEC is healthy", "code": 17}

Authentication: "Authorization: Splunk <token>" (or HTTP Basic with the token
as the password).  No header: 401 code 2; a header of another form: 401
code 3; an unknown token: 403 code 4; a disabled token: 403 code 1.  A
?token= query string without a header: 400 code 16.

Channels: X-Splunk-Request-Channel or ?channel= (the header wins when both are
given).  A channel must be a GUID (else 400 code 11).  For a token with indexer
acknowledgement, data requests and /ack need one (else 400 code 10); then
successes carry "ackId", numbered per channel from 0.  /ack with a token
without acknowledgement: 400 code 14.

Indexes: an event's index must exist on the receiver (`indexes`, default
{"main"}) and, when the token has a list of allowed indexes, be in it;
otherwise 400 code 7.  Without one the token's default index is used.

Every response is JSON with Content-Type application/json.  Gzip request
bodies (Content-Encoding: gzip) and chunked uploads are accepted.

HEC codes (HEC_CODES below): 0 Success 200, 1 Token disabled 403, 2 Token is
required 401, 3 Invalid authorization 401, 4 Invalid token 403, 5 No data 400,
6 Invalid data format 400, 7 Incorrect index 400, 8 Internal server error
500, 9 Server is busy 503, 10 Data channel is missing 400, 11 Invalid data
channel 400, 12 Event field is required 400, 13 Event field cannot be blank
400, 14 ACK is disabled 400, 15 Error in handling indexed fields 400, 16 Query
string authorization is not enabled 400, 17 HEC is healthy 200.

What is recorded (read it with the methods; everything under one lock)
---------------------------------------------------------------------
requests()  every request, in arrival order: dict with n, time, method, path,
            query (dict of first values), headers (dict, lower-case names),
            header_list (pairs as sent), token, auth_scheme, channel,
            channel_header, channel_query, endpoint ('event' | 'raw' | 'ack' |
            'health' | None), body (bytes, gunzipped), status, response (the
            JSON answered, or None), code (the HEC code answered), ack_id,
            n_events (indexed by it), fault (the rule that applied, or None),
            outcome ('ok' | 'rejected' | 'fault' | 'dropped').
events(channel=None)
            every indexed event, arrival order, duplicates kept: dict with seq,
            request (its request's n), endpoint, channel, token, event (the JSON
            value; raw: the line as str), raw (raw: the line as bytes; event:
            the exact text of the JSON object as sent), time (float or None),
            time_text (the number exactly as sent, or None), host, source,
            sourcetype, index (as given, or None), effective_index, fields,
            ack_id (None without acknowledgement).
raw_lines(channel=None)    [e["raw"] for raw-endpoint events]
ack_queries()              every /ack request: channel, asked, answer.
acks_issued(channel=None)  [{channel, ack_id, request, ready_at, never, acked_at}]

Fault rules (faults([...]); the plan is walked in order for every request
that passed authentication and validation; the first rule that applies
decides).  "count": applies that many times, then is used up (no count:
forever).  "on": which requests the rule looks at: "data" (event and raw,
the default), "event", "raw", "ack", or "any".  "delay" (seconds) may go with
any action, or alone to delay a normal answer.  Actions:

  {"code": 9}               answer that HEC code (its status and text); nothing
                            indexed.  "status" overrides the HTTP status.
  {"status": 502}           answer that status with a non-HEC body (text/html,
                            as a proxy in front of Splunk would); nothing indexed.
                            "body" (str) replaces the body.
  {"never_ack": true}       index and answer success, but the ackId never
                            becomes true (to force an acknowledgement timeout).
  {"ack_delay": 2.5}        index and answer success; this ackId becomes true
                            after that many seconds instead of ack_delay.
  {"drop": true}            close the connection without answering, nothing
                            indexed ("reset": true sends a TCP RST).
  {"store_then_drop": true} index, then close without answering.
  {"store_then_code": 8}    index, then answer that HEC code.
  {"delay": 5.0}            sleep, then answer normally.

never_ack(ack_ids, channel) makes chosen ackIds never become true.
"""

import argparse
import base64
import binascii
import copy
import json
import re
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

from loopback_http import (BodyTooLarge, FaultRule, LoopbackHandler, LoopbackReceiver,
                           after_delay, first_applying, gunzip, make_log, wait_for)

HEC_CODES = {
    0: (200, "Success"),
    1: (403, "Token disabled"),
    2: (401, "Token is required"),
    3: (401, "Invalid authorization"),
    4: (403, "Invalid token"),
    5: (400, "No data"),
    6: (400, "Invalid data format"),
    7: (400, "Incorrect index"),
    8: (500, "Internal server error"),
    9: (503, "Server is busy"),
    10: (400, "Data channel is missing"),
    11: (400, "Invalid data channel"),
    12: (400, "Event field is required"),
    13: (400, "Event field cannot be blank"),
    14: (400, "ACK is disabled"),
    15: (400, "Error in handling indexed fields"),
    16: (400, "Query string authorization is not enabled"),
    17: (200, "HEC is healthy"),
}

EVENT_PATHS = ("/services/collector", "/services/collector/event",
               "/services/collector/event/1.0")
RAW_PATHS = ("/services/collector/raw", "/services/collector/raw/1.0")
ACK_PATHS = ("/services/collector/ack",)
HEALTH_PATHS = ("/services/collector/health", "/services/collector/health/1.0")

ACTION_KEYS = ("code", "status", "never_ack", "ack_delay", "drop", "store_then_drop",
               "store_then_code")
RULE_KEYS = set(ACTION_KEYS) | {"count", "on", "delay", "reset", "body"}
RULE_ON = ("data", "event", "raw", "ack", "any")
# actions that still index the events (and answer success unless said otherwise)
INDEXING_ACTIONS = (None, "delay", "never_ack", "ack_delay", "store_then_drop",
                    "store_then_code")

MAX_BODY = 800 * 1024 * 1024        # Splunk's default max_content_length
WS = b" \t\r\n"


log = make_log("splunk_receiver", pid=False)


class HecError(Exception):
    """Answer this HEC code (with "invalid-event-number" when n is given)."""

    def __init__(self, code, event_number=None):
        super().__init__(HEC_CODES[code][1])
        self.code = code
        self.event_number = event_number


def hec_body(code, event_number=None, ack_id=None):
    body = {"text": HEC_CODES[code][1], "code": code}
    if event_number is not None:
        body["invalid-event-number"] = event_number
    if ack_id is not None:
        body["ackId"] = ack_id
    return body


def is_guid(s):
    try:
        uuid.UUID(s)
    except (ValueError, TypeError, AttributeError):
        return False
    return bool(re.fullmatch(r"\{?[0-9A-Fa-f]{8}-?([0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}\}?", s))


class JsonNumber(float):
    """A JSON number that remembers how it was written (for "time")."""

    def __new__(cls, text):
        n = super().__new__(cls, float(text))
        n.text = text
        return n


_decoder = json.JSONDecoder(parse_float=JsonNumber)


def parse_events(body):
    """Split an /event body into [(object or HecError, exact text)], in order.

    Parsing stops at the first object that is not valid JSON (its entry is a
    HecError(6)); the objects before it are returned as parsed."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return [(HecError(6, 0), "")]
    out = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            return out
        try:
            obj, end = _decoder.raw_decode(text, i)
        except ValueError:
            out.append((HecError(6, len(out)), text[i:]))
            return out
        out.append((obj, text[i:end]))
        i = end


def check_time(v, event_number):
    """(float, exact text) of a "time" value; HecError(6) if it is not one."""
    if isinstance(v, bool):
        raise HecError(6, event_number)
    if isinstance(v, JsonNumber):
        return float(v), v.text
    if isinstance(v, int):
        return float(v), str(v)
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            raise HecError(6, event_number)
        if f != f or f in (float("inf"), float("-inf")):
            raise HecError(6, event_number)
        return f, v
    raise HecError(6, event_number)


def plain(v):
    """A parsed JSON value with JsonNumber turned back into float."""
    if isinstance(v, JsonNumber):
        return float(v)
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


class Token:
    def __init__(self, token, ack=False, disabled=False, indexes=None, default_index="main"):
        self.token = token
        self.ack = ack
        self.disabled = disabled
        self.indexes = None if indexes is None else set(indexes)
        self.default_index = default_index


class Rule(FaultRule):
    """One fault rule of the plan."""

    ACTIONS = ACTION_KEYS
    KEYS = RULE_KEYS

    def __init__(self, spec):
        super().__init__(spec)
        self.on = spec.get("on", "data")

    def actions_in(self, spec):
        actions = super().actions_in(spec)
        if "code" in actions and "status" in actions:
            actions.remove("status")        # "status" overrides the code's status
        return actions

    def check(self, spec):
        for k in ("code", "store_then_code"):
            if k in spec and spec[k] not in HEC_CODES:
                raise ValueError("%s must be a HEC code (0..17)" % k)
        self.check_status_codes(spec, ("status",))
        if spec.get("on", "data") not in RULE_ON:
            raise ValueError("on must be one of %s" % ", ".join(RULE_ON))
        self.check_numbers(spec, ("delay", "ack_delay"))

    def matches(self, endpoint):
        if self.on == "any":
            return True
        if self.on == "data":
            return endpoint in ("event", "raw")
        return self.on == endpoint

    def applies(self, endpoint):
        """Decide (and consume) whether this rule applies to the current request."""
        return self.matches(endpoint) and super().applies()


class Handler(LoopbackHandler):
    server_version = "Splunkd"          # keep-alive HTTP/1.1, as Splunk
    content_type = "application/json; charset=UTF-8"    # send_body's default

    # -- responses --------------------------------------------------------

    def answer(self, entry, code, event_number=None, ack_id=None, status=None):
        body = hec_body(code, event_number, ack_id)
        st = status or HEC_CODES[code][0]
        self.hec._note(entry, status=st, code=code, response=body, ack_id=ack_id)
        self.send_body(st, body)

    # -- request body -----------------------------------------------------

    def read_body(self):
        """The request body (de-chunked, gunzipped); HecError(6) if unreadable."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if te == "chunked":
            try:
                raw = self.read_chunked(MAX_BODY)
            except (ValueError, BodyTooLarge):
                raise HecError(6)
        else:
            n = self.headers.get("Content-Length")
            try:
                n = int(n) if n is not None else 0
            except ValueError:
                self.close_connection = True
                raise HecError(6)
            raw = self.rfile.read(n) if n > 0 else b""
        enc = (self.headers.get("Content-Encoding") or "").strip().lower()
        if enc == "gzip":
            try:
                raw = gunzip(raw, MAX_BODY)
            except (OSError, EOFError, ValueError):
                raise HecError(6)
        elif enc not in ("", "identity"):
            raise HecError(6)
        return raw

    # -- dispatch ---------------------------------------------------------

    def respond(self):
        self.hec = self.owner
        self.handle_hec()

    def handle_hec(self):
        hec = self.hec
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if path in EVENT_PATHS:
            endpoint = "event"
        elif path in RAW_PATHS:
            endpoint = "raw"
        elif path in ACK_PATHS:
            endpoint = "ack"
        elif path in HEALTH_PATHS:
            endpoint = "health"
        else:
            endpoint = None
        entry = hec._new_request(self, url.path, query, endpoint)

        try:
            body = self.read_body()
        except HecError as e:
            hec._note(entry, outcome="rejected")
            return self.answer(entry, e.code)
        hec._note(entry, body=body)

        if endpoint is None:
            hec._note(entry, outcome="rejected", status=404, code=404)
            body = {"text": "The requested URL was not found on this server.", "code": 404}
            hec._note(entry, response=body)
            return self.send_body(404, body)
        if endpoint == "health":
            hec._note(entry, outcome="ok")
            return self.answer(entry, 17)
        if self.command != "POST":
            hec._note(entry, outcome="rejected", status=405, code=None)
            body = {"text": "Method not allowed", "code": 405}
            hec._note(entry, response=body)
            return self.send_body(405, body)

        try:
            token = self.authenticate(entry, query)
            channel = self.check_channel(entry, token, query, endpoint)
            if endpoint == "ack":
                asked = self.parse_ack_body(body)
            else:
                parsed = self.parse_data(endpoint, body, query, token)
        except HecError as e:
            hec._note(entry, outcome="rejected")
            return self.answer(entry, e.code, e.event_number)

        if endpoint != "ack" and parsed[1] is not None:
            # a bad event: the ones before it are indexed (no ackId), as Splunk does;
            # rejected requests do not consume fault rules
            events, error = parsed
            if hec.index_before_invalid:
                hec._index(entry, token, channel, endpoint, events, {}, None, ack=False)
            hec._note(entry, outcome="rejected")
            return self.answer(entry, error.code, error.event_number)

        rule = hec._pick_rule(endpoint)
        if rule is not None:
            hec._note(entry, fault=rule.describe())
        spec, action = after_delay(rule)

        if endpoint == "ack":
            if action in ("code", "status"):
                return self.answer_fault(entry, spec, action)
            if action in ("drop", "store_then_drop"):
                hec._note(entry, outcome="dropped")
                return self.drop(rst=bool(spec.get("reset")))
            answer = hec._query_acks(channel, asked, entry["n"])
            hec._note(entry, outcome="ok" if rule is None or action == "delay" else "fault",
                      status=200, code=None, response={"acks": answer})
            return self.send_body(200, {"acks": answer})

        events = parsed[0]
        if action in ("code", "status", "drop"):
            if action == "drop":
                hec._note(entry, outcome="dropped")
                return self.drop(rst=bool(spec.get("reset")))
            return self.answer_fault(entry, spec, action)

        ack_id = hec._index(entry, token, channel, endpoint, events, spec, action,
                            ack=token.ack and action != "store_then_code")
        if action == "store_then_drop":
            hec._note(entry, outcome="dropped")
            return self.drop(rst=bool(spec.get("reset")))
        if action == "store_then_code":
            hec._note(entry, outcome="fault")
            return self.answer(entry, spec["store_then_code"], ack_id=None)
        hec._note(entry, outcome="ok" if action in (None, "delay") else "fault")
        return self.answer(entry, 0, ack_id=ack_id)

    def answer_fault(self, entry, spec, action):
        self.hec._note(entry, outcome="fault")
        if action == "code":
            return self.answer(entry, spec["code"], status=spec.get("status"))
        status = spec["status"]
        body = spec.get("body", "<html><body><h1>%d</h1>injected by the test</body></html>"
                        % status).encode()
        self.hec._note(entry, status=status, code=None, response=None)
        return self.send_body(status, body, content_type="text/html")

    # -- checks -------------------------------------------------------------

    def authenticate(self, entry, query):
        hec = self.hec
        auth = self.headers.get("Authorization")
        if auth is None:
            if "token" in query:
                raise HecError(16)
            raise HecError(2)
        scheme, _, cred = auth.strip().partition(" ")
        cred = cred.strip()
        if scheme.lower() == "splunk" and cred:
            value = cred
        elif scheme.lower() == "basic" and cred:
            try:
                value = base64.b64decode(cred, validate=True).decode("utf-8").partition(":")[2]
            except (binascii.Error, ValueError):
                raise HecError(3)
        else:
            raise HecError(3)
        hec._note(entry, token=value, auth_scheme=scheme)
        with hec.lock:
            token = hec.tokens.get(value)
        if token is None:
            raise HecError(4)
        if token.disabled:
            raise HecError(1)
        return token

    def check_channel(self, entry, token, query, endpoint):
        ch = entry["channel"]
        if ch is not None and not is_guid(ch):
            raise HecError(11)
        if endpoint == "ack" and not token.ack:
            raise HecError(14)
        if token.ack and ch is None:
            raise HecError(10)
        return ch

    def parse_ack_body(self, body):
        if not body.strip(WS):
            raise HecError(5)
        try:
            doc = json.loads(body)
        except ValueError:
            raise HecError(6)
        if not isinstance(doc, dict) or not isinstance(doc.get("acks"), list):
            raise HecError(6)
        ids = doc["acks"]
        if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
            raise HecError(6)
        return ids

    def parse_data(self, endpoint, body, query, token):
        """([event dict], HecError of the first bad event or None); HecError if none is good."""
        if not body.strip(WS):
            raise HecError(5)
        if endpoint == "raw":
            return self.parse_raw(body, query, token), None
        events, error = [], None
        for i, (obj, text) in enumerate(parse_events(body)):
            try:
                if isinstance(obj, HecError):
                    raise obj
                events.append(self.check_event(i, obj, text, token))
            except HecError as e:
                error = e
                break
        return events, error

    def check_event(self, i, obj, text, token):
        if not isinstance(obj, dict):
            raise HecError(6, i)
        if "event" not in obj or obj["event"] is None:
            raise HecError(12, i)
        if obj["event"] == "":
            raise HecError(13, i)
        t, t_text = (None, None)
        if "time" in obj and obj["time"] is not None:
            t, t_text = check_time(obj["time"], i)
        meta = {}
        for k in ("host", "source", "sourcetype", "index"):
            v = obj.get(k)
            if v is not None and not isinstance(v, str):
                raise HecError(6, i)
            meta[k] = v
        idx = self.resolve_index(meta["index"], token, i)
        fields = obj.get("fields")
        if fields is not None:
            if not isinstance(fields, dict):
                raise HecError(15, i)
            for v in fields.values():
                if isinstance(v, list):
                    if not all(isinstance(x, str) for x in v):
                        raise HecError(15, i)
                elif isinstance(v, bool) or not isinstance(v, (str, int, float)):
                    raise HecError(15, i)
            fields = plain(fields)
        return dict(event=plain(obj["event"]), raw=text, time=t, time_text=t_text,
                    fields=fields, effective_index=idx, **meta)

    def parse_raw(self, body, query, token):
        meta = {k: query.get(k) for k in ("host", "source", "sourcetype", "index")}
        idx = self.resolve_index(meta["index"], token, 0)
        t, t_text = (None, None)
        if query.get("time") is not None:
            t, t_text = check_time(query["time"], 0)
        events = []
        for line in re.split(rb"[\r\n]+", body):
            if line == b"":
                continue
            events.append(dict(event=line.decode("utf-8", "replace"), raw=line, time=t,
                               time_text=t_text, fields=None, effective_index=idx, **meta))
        return events

    def resolve_index(self, index, token, i):
        hec = self.hec
        idx = index if index is not None else token.default_index
        with hec.lock:
            exists = idx in hec.indexes
        if not exists or (token.indexes is not None and idx not in token.indexes):
            raise HecError(7, i)
        return idx


class SplunkReceiver(LoopbackReceiver):
    """A Splunk HEC on 127.0.0.1, in this process.  See the module docstring."""

    handler_class = Handler
    log = staticmethod(log)

    def __init__(self, indexes=("main",), ack_delay=0.0, first_ack_id=0,
                 index_before_invalid=True):
        super().__init__()
        self.lock = threading.Condition()
        self.index_before_invalid = index_before_invalid
        self.tokens = {}
        self.indexes = set(indexes)
        self.ack_delay = float(ack_delay)
        self.first_ack_id = first_ack_id
        self.url = None
        self.reset()

    # -- configuration -----------------------------------------------------

    def add_token(self, token, ack=False, disabled=False, indexes=None, default_index="main"):
        """Add (or replace) a HEC token.  indexes: the allowed ones (None: any that exists)."""
        with self.lock:
            self.tokens[token] = Token(token, ack, disabled, indexes, default_index)
        return token

    def set_token(self, token, **changes):
        """Change a token: ack=, disabled=, indexes=, default_index=."""
        with self.lock:
            t = self.tokens[token]
            for k, v in changes.items():
                if k not in ("ack", "disabled", "indexes", "default_index"):
                    raise ValueError("unknown token setting %s" % k)
                setattr(t, k, set(v) if k == "indexes" and v is not None else v)

    def add_index(self, *names):
        with self.lock:
            self.indexes.update(names)

    def set_ack_delay(self, seconds):
        """Seconds from receiving data until its ackId answers true (later requests)."""
        with self.lock:
            self.ack_delay = float(seconds)

    def faults(self, rules):
        """Replace the fault plan (see the module docstring)."""
        plan = [Rule(r) for r in rules]
        with self.lock:
            self._rules = plan

    def fault_plan(self):
        with self.lock:
            return [r.describe() for r in self._rules]

    def never_ack(self, ack_ids, channel):
        """These ackIds of this channel (issued already or later) never become true."""
        with self.lock:
            self._never.setdefault(channel, set()).update(ack_ids)
            for a in self._acks:
                if a["channel"] == channel and a["ack_id"] in ack_ids:
                    a["never"] = True

    # -- life cycle --------------------------------------------------------

    def start(self, port=0, ssl_context=None):
        """Listen on 127.0.0.1:port (0: any free port; the same port after stop()).
        stop() closes it and cuts every open connection."""
        self.listen(port, ssl_context)
        self.url = "%s://127.0.0.1:%d" % ("https" if ssl_context else "http", self.port)
        return self

    def reset(self):
        """Forget requests, events, acks and faults (tokens and indexes stay)."""
        with self.lock:
            self._requests = []
            self._events = []
            self._acks = []              # issued ackIds
            self._ack_queries = []
            self._next_ack = {}          # channel -> next ackId
            self._never = {}             # channel -> ackIds that never become true
            self._rules = []
            self.lock.notify_all()

    # -- what was received ---------------------------------------------------

    def requests(self, endpoint=None):
        with self.lock:
            return [copy.deepcopy(r) for r in self._requests
                    if endpoint is None or r["endpoint"] == endpoint]

    def events(self, channel=None, endpoint=None):
        with self.lock:
            return [dict(e) for e in self._events
                    if (channel is None or e["channel"] == channel)
                    and (endpoint is None or e["endpoint"] == endpoint)]

    def event_values(self, channel=None):
        """The "event" of every indexed event (raw: the line as str)."""
        return [e["event"] for e in self.events(channel)]

    def raw_lines(self, channel=None):
        return [e["raw"] for e in self.events(channel, endpoint="raw")]

    def ack_queries(self):
        with self.lock:
            return copy.deepcopy(self._ack_queries)

    def acks_issued(self, channel=None):
        with self.lock:
            return [dict(a) for a in self._acks if channel is None or a["channel"] == channel]

    def channels(self):
        """Every channel seen on a data request, in order of first use."""
        out = []
        for r in self.requests():
            if r["endpoint"] in ("event", "raw") and r["channel"] not in out:
                out.append(r["channel"])
        return out

    def wait(self, fn, timeout=30.0):
        """Wait until fn(self) is truthy (re-checked on every change); return it."""
        deadline = time.monotonic() + timeout
        with self.lock:
            v = wait_for(self.lock, lambda: fn(self), deadline, 0.2)
            if not v:
                raise TimeoutError("splunk receiver: condition not met within %ss" % timeout)
            return v

    def wait_events(self, n, timeout=30.0, channel=None):
        return self.wait(lambda h: len(h.events(channel)) >= n, timeout)

    def wait_requests(self, n, timeout=30.0, endpoint=None):
        return self.wait(lambda h: len(h.requests(endpoint)) >= n, timeout)

    # -- internals (called by Handler) ----------------------------------------

    def _new_request(self, handler, path, query, endpoint):
        hdrs = {}
        for k, v in handler.headers.items():
            hdrs[k.lower()] = v
        ch_h = handler.headers.get("X-Splunk-Request-Channel")
        ch_q = query.get("channel")
        entry = dict(time=time.time(), method=handler.command, path=path, query=query,
                     headers=hdrs, header_list=list(handler.headers.items()), token=None,
                     auth_scheme=None, channel=ch_h if ch_h is not None else ch_q,
                     channel_header=ch_h, channel_query=ch_q, endpoint=endpoint, body=b"",
                     status=None, response=None, code=None, ack_id=None, n_events=0,
                     fault=None, outcome=None)
        with self.lock:
            entry["n"] = len(self._requests)
            self._requests.append(entry)
            self.lock.notify_all()
        return entry

    def _note(self, entry, **kw):
        with self.lock:
            entry.update(kw)
            self.lock.notify_all()

    def _pick_rule(self, endpoint):
        with self.lock:
            return first_applying(self._rules, endpoint)

    def _index(self, entry, token, channel, endpoint, events, spec, action, ack):
        """Store the events; with ack, issue an ackId and return it."""
        now = time.monotonic()
        with self.lock:
            ack_id = None
            if ack:
                ack_id = self._next_ack.get(channel, self.first_ack_id)
                self._next_ack[channel] = ack_id + 1
                never = action == "never_ack" or ack_id in self._never.get(channel, ())
                delay = spec["ack_delay"] if action == "ack_delay" else self.ack_delay
                self._acks.append(dict(channel=channel, ack_id=ack_id, request=entry["n"],
                                       ready_at=now + delay, never=never, acked_at=None))
            for e in events:
                e.update(seq=len(self._events), request=entry["n"], endpoint=endpoint,
                         channel=channel, token=token.token, ack_id=ack_id)
                self._events.append(e)
            entry["n_events"] = len(events)
            self.lock.notify_all()
        return ack_id

    def _query_acks(self, channel, asked, request_n):
        now = time.monotonic()
        answer = {}
        with self.lock:
            for i in asked:
                done = False
                for a in self._acks:
                    if (a["channel"] == channel and a["ack_id"] == i and a["acked_at"] is None
                            and not a["never"] and now >= a["ready_at"]):
                        a["acked_at"] = time.time()   # true once, then forgotten
                        done = True
                        break
                answer[str(i)] = done
            self._ack_queries.append(dict(channel=channel, asked=list(asked),
                                          answer=dict(answer), request=request_n,
                                          time=time.time()))
            self.lock.notify_all()
        return answer


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8088)
    ap.add_argument("--token", action="append", default=[])
    ap.add_argument("--ack", action="store_true", help="indexer acknowledgement for the tokens")
    ap.add_argument("--ack-delay", type=float, default=0.0)
    ap.add_argument("--index", action="append", default=["main"])
    args = ap.parse_args(argv)
    hec = SplunkReceiver(indexes=args.index, ack_delay=args.ack_delay)
    for t in args.token:
        hec.add_token(t, ack=args.ack)
    hec.start(args.port).run_until_interrupted()


if __name__ == "__main__":
    main()
