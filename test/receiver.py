#!/usr/bin/python3
"""Test receiver for firehose HTTP deliveries, with fault injection.

    /usr/bin/python3 test/receiver.py --port 0 --portfile F [--mode firehose|raw]
                                      [--access-key K] [--max-record-size N]

Writes its port to F once it listens.  Python standard library only.

Modes
-----
firehose  The receiving side of the Amazon Data Firehose HTTP endpoint delivery
          protocol v1.0, checked strictly.  Any violation is answered 400 with a
          Firehose-shaped JSON body ({"requestId", "timestamp", "errorMessage"})
          and recorded in the "violations" list, so tests can assert there were
          none.  With --access-key, a missing or different
          X-Amz-Firehose-Access-Key is answered 401 (counted as rejected, not a
          violation).  Success is 200, Content-Type application/json,
          {"requestId": <the request's>, "timestamp": <epoch ms>}.  A
          connection that ends before the body is complete (the sender gave
          up, or down_for cut it) is not answered; its request's outcome is
          "aborted" (neither stored nor a violation).
raw       A plain webhook: any POST with a non-empty body is answered 200 "{}"
          and the body is stored (gunzipped when Content-Encoding: gzip).

Control API (same port, no protocol checks)
-------------------------------------------
GET  /_control/stats     {"requests": accepted, "rejected", "faulted", "received",
                          "records", "violations": [...], "request_ids_seen": {id: n}}
GET  /_control/records   {"records": [base64, ...]}  every stored record (firehose
                          mode) or body (raw mode), arrival order, duplicates kept
GET  /_control/requests[?records=1]
                         [{request_id, method, path, headers, n_records, body_b64 (raw
                          mode), status, outcome, time, client_port (the sender's
                          port: one per connection), stored, fault, error}, ...]
                          for every request received, rejected and faulted ones
                          included; with records=1 also records_b64 (stored records)
GET  /_control/faults    the current fault plan
GET  /_control/wait?records=N&requests=N&timeout=S
                         long-poll until at least N records/accepted requests were
                         stored; 200 with the stats, or 408 with them on timeout
POST /_control/reset     forget everything (requests, records, faults)
POST /_control/faults    replace the fault plan with a JSON list of rules

Fault rules
-----------
Every protocol request that passes validation (and authentication) walks the
plan in order; the first rule that applies decides the answer.  A rule with
"count" applies that many times and is then used up; a rule without "count"
stays.  "probability" (with optional "seed") makes a rule apply at random.
"delay" (seconds) may be combined with any action; alone it delays a normal
answer.  Actions:

  {"status": 500}               answer that status, Firehose-shaped error body;
                                records are not stored ("error_message" optional;
                                "error_body_b64": these bytes as the whole body
                                instead, not JSON, e.g. invalid UTF-8)
  {"malformed": KIND}           answer 200 with a broken response, records not
                                stored.  KIND: badjson, wrongid, notimestamp,
                                stringtimestamp, wrongcontenttype, nocontenttype,
                                nobody, toolarge
  {"drop": true}                close the connection without answering, records
                                not stored ("reset": true sends a TCP RST)
  {"store_then_drop": true}     store the records, then close without answering
  {"store_then_status": 500}    store the records, then answer that status
  {"delay": 5.0}                sleep, then handle the request normally
  {"down_for": 2.0}             drop this request, close the listening socket and
                                every open connection, re-open the same port
                                after that many seconds.  Used up once applied
                                even without "count".  With "now": true the
                                outage starts as soon as the plan is installed.
"""

import argparse
import base64
import binascii
import json
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

from loopback_http import (CLIENT_GONE, FaultRule, LoopbackHandler, LoopbackReceiver, after_delay,
                           first_applying, gunzip, make_log, server_tls_context,
                           strict_json_loads, wait_for, write_portfile)

MAX_BODY = 64 * 1024 * 1024          # uncompressed request body limit
MAX_RECORDS = 10000
MAX_RECORD_SIZE = 1024000            # decoded bytes per record
MAX_COMMON_ATTRIBUTES = 50
MAX_ATTR_KEY = 256
MAX_ATTR_VALUE = 1024
MAX_ACCESS_KEY = 4096
# A request timestamp must be epoch milliseconds near "now".
TIMESTAMP_PAST_MS = 24 * 3600 * 1000
TIMESTAMP_FUTURE_MS = 60 * 1000

MALFORMED_KINDS = ("badjson", "wrongid", "notimestamp", "stringtimestamp",
                   "wrongcontenttype", "nocontenttype", "nobody", "toolarge")
ACTION_KEYS = ("status", "malformed", "drop", "store_then_drop", "store_then_status",
               "down_for")
RULE_KEYS = set(ACTION_KEYS) | {"count", "probability", "seed", "delay", "reset",
                                "now", "error_message", "error_body_b64"}


def now_ms():
    return int(time.time() * 1000)


log = make_log("receiver")


class Violation(Exception):
    """A protocol violation by the sender: answered 400, recorded."""


class Unauthorized(Exception):
    """Wrong or missing access key: answered 401."""


class Aborted(Exception):
    """The connection ended before the whole body came: the sender gave up
    (a request timeout, a killed worker) or down_for cut it.  Not answered,
    nothing stored, not a violation."""


def strict_json(raw, what):
    """Parse UTF-8 JSON text strictly (no NaN/Infinity, no duplicate keys)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return strict_json_loads(text, lambda k: ValueError("duplicate JSON key %r" % k),
                                 lambda c: ValueError("non-standard JSON constant %s" % c))
    except (UnicodeDecodeError, ValueError) as e:
        raise Violation("%s is not valid JSON: %s" % (what, e))


def decode_b64(s, i, max_size):
    if not isinstance(s, str):
        raise Violation("records[%d].data is not a string" % i)
    try:
        data = base64.b64decode(s.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as e:
        raise Violation("records[%d].data is not valid base64: %s" % (i, e))
    if base64.b64encode(data).decode("ascii") != s:
        raise Violation("records[%d].data is not canonical standard base64" % i)
    if len(data) > max_size:
        raise Violation("records[%d] is %d bytes, more than %d" % (i, len(data), max_size))
    return data


class Rule(FaultRule):
    """One fault rule of the plan."""

    ACTIONS = ACTION_KEYS
    KEYS = RULE_KEYS
    NOT_A_DICT = "a fault rule must be a JSON object"

    def __init__(self, spec):
        super().__init__(spec)
        if self.action == "down_for" and self.remaining is None:
            self.remaining = 1

    def check(self, spec):
        if spec.get("malformed") is not None and spec["malformed"] not in MALFORMED_KINDS:
            raise ValueError("malformed must be one of %s" % ", ".join(MALFORMED_KINDS))
        self.check_status_codes(spec, ("status", "store_then_status"))
        self.check_numbers(spec, ("delay", "down_for", "probability"))


class State:
    """Everything the receiver remembers; all access under self.lock."""

    def __init__(self):
        self.lock = threading.Condition()
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = []        # every request received (protocol side)
            self.records = []         # stored records (bytes), arrival order
            self.accepted = 0         # requests whose records were stored
            self.rejected = 0         # 400/401/405/411 answers
            self.faulted = 0          # answers decided by a fault rule
            self.violations = []
            self.seen = {}            # request id -> times received
            self.rules = []
            self.lock.notify_all()

    def stats(self):
        with self.lock:
            return {"requests": self.accepted, "rejected": self.rejected,
                    "faulted": self.faulted, "received": len(self.requests),
                    "records": len(self.records), "violations": list(self.violations),
                    "request_ids_seen": dict(self.seen)}

    def pick_rule(self):
        with self.lock:
            return first_applying(self.rules)


class Handler(LoopbackHandler):
    server_version = "firehose-test-receiver/1.0"
    # send_body (LoopbackHandler's): Content-Type application/json by default

    def respond(self):
        self.state = self.owner.state
        if urlsplit(self.path).path.startswith("/_control/"):
            self.control()
        else:
            self.delivery()

    def firehose_error(self, status, rid, message):
        self.send_body(status, {"requestId": rid or "", "timestamp": now_ms(),
                                "errorMessage": message})

    # -- control API ------------------------------------------------------

    def read_raw_body(self):
        n = self.headers.get("Content-Length")
        return self.rfile.read(int(n)) if n else b""

    def control(self):
        url = urlsplit(self.path)
        what = url.path[len("/_control/"):].strip("/")
        st = self.state
        if self.command == "GET" and what == "stats":
            return self.send_body(200, st.stats())
        if self.command == "GET" and what == "records":
            with st.lock:
                recs = [base64.b64encode(r).decode() for r in st.records]
            return self.send_body(200, {"records": recs})
        if self.command == "GET" and what == "requests":
            with_records = parse_qs(url.query).get("records", ["0"])[0] == "1"
            with st.lock:
                reqs = [dict(r) for r in st.requests]
            for r in reqs:
                recs = r.pop("records", None)
                if with_records:
                    r["records_b64"] = [base64.b64encode(x).decode() for x in recs or []]
            return self.send_body(200, reqs)
        if self.command == "GET" and what == "faults":
            with st.lock:
                rules = [r.describe() for r in st.rules]
            return self.send_body(200, rules)
        if self.command == "GET" and what == "wait":
            return self.control_wait(parse_qs(url.query))
        if self.command == "GET" and what == "health":
            return self.send_body(200, {"ok": True, "mode": self.owner.mode})
        if self.command == "POST" and what == "reset":
            self.read_raw_body()
            st.reset()
            return self.send_body(200, {"ok": True})
        if self.command == "POST" and what == "faults":
            try:
                plan = json.loads(self.read_raw_body() or b"[]")
                if not isinstance(plan, list):
                    raise ValueError("the fault plan must be a JSON list of rules")
                rules = [Rule(r) for r in plan]
            except ValueError as e:
                return self.send_body(400, {"error": str(e)})
            with st.lock:
                st.rules = rules
            now = [r for r in rules if r.action == "down_for" and r.spec.get("now")]
            if now:
                with st.lock:
                    st.rules = [r for r in rules if r not in now]
                self.close_connection = True
            self.send_body(200, {"ok": True, "rules": len(rules)})
            if now:
                self.owner.go_down(now[0].spec["down_for"])
            return
        self.send_body(404, {"error": "unknown control request %s %s" % (self.command, url.path)})

    def control_wait(self, q):
        st = self.state
        want_records = int(q.get("records", ["0"])[0])
        want_requests = int(q.get("requests", ["0"])[0])
        deadline = time.monotonic() + float(q.get("timeout", ["30"])[0])
        with st.lock:
            ok = wait_for(st.lock, lambda: (len(st.records) >= want_records
                                            and st.accepted >= want_requests), deadline, 0.5)
        return self.send_body(200 if ok else 408, self.state.stats())

    # -- the protocol side ------------------------------------------------

    def delivery(self):
        st = self.state
        ctl = self.owner
        entry = {"request_id": self.headers.get("X-Amz-Firehose-Request-Id"),
                 "method": self.command, "path": self.path,
                 "headers": dict(self.headers.items()), "n_records": 0,
                 "body_b64": None, "status": None, "outcome": None,
                 "time": time.time(), "client_port": self.client_address[1]}
        with st.lock:
            st.requests.append(entry)
            if entry["request_id"] is not None:
                st.seen[entry["request_id"]] = st.seen.get(entry["request_id"], 0) + 1

        try:
            body = self.read_body()
            if ctl.mode == "firehose":
                rid, records = self.check_firehose(body)
            else:
                rid, records = entry["request_id"], [body]
                if self.command != "POST":
                    raise Violation("method %s, expected POST" % self.command)
                if not body:
                    raise Violation("empty body")
        except Violation as e:
            with st.lock:
                st.rejected += 1
                st.violations.append(str(e))
                entry.update(status=400, outcome="violation", error=str(e))
            log("protocol violation: %s" % e)
            self.close_connection = self.close_connection or not self.body_consumed
            return self.firehose_error(400, entry["request_id"], str(e))
        except Unauthorized as e:
            with st.lock:
                st.rejected += 1
                entry.update(status=401, outcome="unauthorized", error=str(e))
            return self.firehose_error(401, entry["request_id"], str(e))
        except (Aborted,) + CLIENT_GONE as e:
            # every request gets an outcome: tests wait until all have one
            self.note(entry, outcome="aborted", error=str(e) or type(e).__name__)
            self.close_connection = True
            return None

        self.note(entry, n_records=len(records))
        if ctl.mode == "raw":
            self.note(entry, body_b64=base64.b64encode(body).decode())

        rule = st.pick_rule()
        spec, action = after_delay(rule)
        if action not in (None, "delay"):
            with st.lock:
                st.faulted += 1
                entry["fault"] = rule.describe()

        if action in (None, "delay", "store_then_drop", "store_then_status"):
            with st.lock:
                st.records.extend(records)
                st.accepted += 1
                entry["stored"] = True
                entry["records"] = records
                st.lock.notify_all()

        if action == "status" or action == "store_then_status":
            code = spec[action]
            self.note(entry, status=code, outcome="fault")
            if "error_body_b64" in spec:
                return self.send_body(code, base64.b64decode(spec["error_body_b64"]),
                                      content_type="text/plain")
            msg = spec.get("error_message", "injected fault: status %d" % code)
            return self.firehose_error(code, rid, msg)
        if action in ("drop", "store_then_drop"):
            self.note(entry, outcome="dropped")
            return self.drop(rst=bool(spec.get("reset")))
        if action == "down_for":
            self.note(entry, outcome="dropped; down for %ss" % spec["down_for"])
            self.drop()
            return ctl.go_down(spec["down_for"])
        if action == "malformed":
            self.note(entry, status=200, outcome="malformed " + spec["malformed"])
            return self.malformed(spec["malformed"], rid)

        self.note(entry, status=200, outcome="ok")
        if ctl.mode == "raw":
            return self.send_body(200, b"{}")
        return self.send_body(200, {"requestId": rid, "timestamp": now_ms()})

    def note(self, entry, **kw):
        with self.state.lock:
            entry.update(kw)

    def malformed(self, kind, rid):
        ts = now_ms()
        if kind == "badjson":
            return self.send_body(200, b'{"requestId": "' + (rid or "").encode() + b'", "timestamp": ')
        if kind == "wrongid":
            return self.send_body(200, {"requestId": str(uuid.uuid4()), "timestamp": ts})
        if kind == "notimestamp":
            return self.send_body(200, {"requestId": rid})
        if kind == "stringtimestamp":
            return self.send_body(200, {"requestId": rid, "timestamp": str(ts)})
        if kind == "wrongcontenttype":
            return self.send_body(200, json.dumps({"requestId": rid, "timestamp": ts}).encode(),
                                  content_type="text/plain")
        if kind == "nocontenttype":
            return self.send_body(200, json.dumps({"requestId": rid, "timestamp": ts}).encode(),
                                  content_type=None)
        if kind == "nobody":
            return self.send_body(200, b"")
        if kind == "toolarge":      # responses must stay under 1 MiB
            return self.send_body(200, {"requestId": rid, "timestamp": ts,
                                        "errorMessage": "x" * (1024 * 1024 + 1)})
        raise AssertionError(kind)

    def read_body(self):
        """Read (and gunzip) the request body; Violation when it cannot be."""
        self.body_consumed = False
        if self.headers.get("Transfer-Encoding") is not None:
            raise Violation("Transfer-Encoding %r: Content-Length is required"
                            % self.headers["Transfer-Encoding"])
        lengths = self.headers.get_all("Content-Length") or []
        if len(lengths) != 1:
            if not lengths and self.command in ("GET", "HEAD", "DELETE", "OPTIONS"):
                self.body_consumed = True
                if self.owner.mode == "firehose":
                    raise Violation("method %s, expected POST" % self.command)
                return b""
            raise Violation("Content-Length header missing" if not lengths
                            else "Content-Length header repeated")
        try:
            n = int(lengths[0])
            if n < 0 or not lengths[0].strip().isdigit():
                raise ValueError
        except ValueError:
            raise Violation("Content-Length %r is not a length" % lengths[0])
        if n > MAX_BODY + 1024 * 1024:
            raise Violation("Content-Length %d exceeds the 64 MiB request limit" % n)
        raw = self.rfile.read(n)
        if len(raw) != n:
            raise Aborted("the connection ended after %d of %d bytes of body" % (len(raw), n))
        self.body_consumed = True
        if self.owner.mode == "firehose" and self.command != "POST":
            raise Violation("method %s, expected POST" % self.command)

        encodings = self.headers.get_all("Content-Encoding") or []
        if not encodings:
            body = raw
        elif len(encodings) == 1 and encodings[0] == "gzip":
            try:
                body = gunzip(raw, MAX_BODY)
            except (OSError, EOFError, ValueError) as e:
                raise Violation("Content-Encoding gzip but the body is not valid gzip: %s" % e)
        else:
            raise Violation("Content-Encoding %r, only absent or gzip allowed"
                            % ", ".join(encodings))
        if len(body) > MAX_BODY:
            raise Violation("body larger than 64 MiB uncompressed")
        return body

    def single_header(self, name, required=True):
        values = self.headers.get_all(name) or []
        if len(values) > 1:
            raise Violation("header %s repeated" % name)
        if not values:
            if required:
                raise Violation("header %s missing" % name)
            return None
        return values[0]

    def check_firehose(self, body):
        """Check one Firehose request; return (request id, [record bytes])."""
        version = self.single_header("X-Amz-Firehose-Protocol-Version")
        if version != "1.0":
            raise Violation("X-Amz-Firehose-Protocol-Version %r, expected '1.0'" % version)
        rid = self.single_header("X-Amz-Firehose-Request-Id")
        if not rid:
            raise Violation("X-Amz-Firehose-Request-Id is empty")
        try:
            canonical = str(uuid.UUID(rid)) == rid.lower()
        except ValueError:
            canonical = False
        if not canonical:
            raise Violation("X-Amz-Firehose-Request-Id %r is not a GUID "
                            "(8-4-4-4-12 hex digits)" % rid)
        ctype = self.single_header("Content-Type")
        if ctype != "application/json":
            raise Violation("Content-Type %r, expected exactly 'application/json'" % ctype)

        attrs = self.single_header("X-Amz-Firehose-Common-Attributes", required=False)
        if attrs is not None:
            self.check_common_attributes(attrs)

        doc = strict_json(body, "request body")
        if not isinstance(doc, dict):
            raise Violation("request body is not a JSON object")
        extra = set(doc) - {"requestId", "timestamp", "records"}
        if extra:
            raise Violation("unexpected body fields: %s" % ", ".join(sorted(extra)))
        if "requestId" not in doc:
            raise Violation("body field requestId missing")
        if not isinstance(doc["requestId"], str):
            raise Violation("body requestId is not a string")
        if doc["requestId"] != rid:
            raise Violation("body requestId %r differs from header %r" % (doc["requestId"], rid))
        if "timestamp" not in doc:
            raise Violation("body field timestamp missing")
        ts = doc["timestamp"]
        if isinstance(ts, bool) or not isinstance(ts, int):
            raise Violation("body timestamp %r is not an integer (epoch ms)" % (ts,))
        now = now_ms()
        if not now - TIMESTAMP_PAST_MS <= ts <= now + TIMESTAMP_FUTURE_MS:
            raise Violation("body timestamp %d is not epoch milliseconds near now (%d)"
                            % (ts, now))
        if "records" not in doc:
            raise Violation("body field records missing")
        recs = doc["records"]
        if not isinstance(recs, list):
            raise Violation("body records is not a list")
        if not 1 <= len(recs) <= MAX_RECORDS:
            raise Violation("%d records in one request, allowed 1..%d" % (len(recs), MAX_RECORDS))
        out = []
        for i, r in enumerate(recs):
            if not isinstance(r, dict):
                raise Violation("records[%d] is not an object" % i)
            if set(r) != {"data"}:
                raise Violation("records[%d] has keys %s, expected only 'data'"
                                % (i, sorted(r)))
            out.append(decode_b64(r["data"], i, self.owner.max_record_size))

        # Authentication after the protocol checks, so violations always show.
        want = self.owner.access_key
        got = self.single_header("X-Amz-Firehose-Access-Key", required=False)
        if got is not None and len(got.encode()) > MAX_ACCESS_KEY:
            raise Violation("X-Amz-Firehose-Access-Key longer than %d bytes" % MAX_ACCESS_KEY)
        if want is not None and got != want:
            raise Unauthorized("access key missing" if got is None else "access key invalid")
        return rid, out

    def check_common_attributes(self, text):
        doc = strict_json(text, "X-Amz-Firehose-Common-Attributes")
        if not isinstance(doc, dict) or set(doc) != {"commonAttributes"}:
            raise Violation("X-Amz-Firehose-Common-Attributes must be "
                            "{\"commonAttributes\": {...}}")
        ca = doc["commonAttributes"]
        if not isinstance(ca, dict):
            raise Violation("commonAttributes is not an object")
        if len(ca) > MAX_COMMON_ATTRIBUTES:
            raise Violation("%d common attributes, at most %d" % (len(ca), MAX_COMMON_ATTRIBUTES))
        for k, v in ca.items():
            if not isinstance(v, str):
                raise Violation("common attribute %r is not a string" % k)
            if not 1 <= len(k) <= MAX_ATTR_KEY or len(v) > MAX_ATTR_VALUE:
                raise Violation("common attribute %r: key 1..%d, value 0..%d characters"
                                % (k, MAX_ATTR_KEY, MAX_ATTR_VALUE))


class Controller(LoopbackReceiver):
    """Owns the listening server; can take it down and bring it back up."""

    handler_class = Handler
    log = staticmethod(log)

    def __init__(self, port, mode, access_key, max_record_size):
        super().__init__()
        self.port = port
        self.mode = mode
        self.access_key = access_key
        self.max_record_size = max_record_size
        self.state = State()
        self.down_request = threading.Event()
        self.down_seconds = 0.0

    def go_down(self, seconds):
        """Ask the main thread to close the listener for `seconds` (non-blocking)."""
        self.down_seconds = float(seconds)
        self.down_request.set()

    def listen_tls(self, cert, key, portfile):
        """A second listener speaking TLS, sharing state with the first (the
        control API stays on the plain one)."""
        server, _ = self.serve(0, server_tls_context(cert, key), retry=False)
        write_portfile(portfile, server.server_address[1])

    def run(self, portfile, tls=None):
        if tls:
            self.listen_tls(*tls)
        self.listen(self.port)
        if portfile:
            write_portfile(portfile, self.port)
        while True:
            self.down_request.wait()
            self.down_request.clear()
            self.stop()                 # closes the listener, cuts open connections
            time.sleep(self.down_seconds)
            self.listen(self.port)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--portfile")
    ap.add_argument("--mode", choices=["firehose", "raw"], default="firehose")
    ap.add_argument("--access-key")
    ap.add_argument("--max-record-size", type=int, default=MAX_RECORD_SIZE,
                    help="largest decoded record accepted (default %(default)s)")
    ap.add_argument("--tls-cert", help="also serve the protocol over TLS with this PEM certificate")
    ap.add_argument("--tls-key", help="its PEM private key")
    ap.add_argument("--tls-portfile", help="where to write the TLS listener's port")
    args = ap.parse_args(argv)
    ctl = Controller(args.port, args.mode, args.access_key, args.max_record_size)
    tls = (args.tls_cert, args.tls_key, args.tls_portfile) if args.tls_cert else None
    try:
        ctl.run(args.portfile, tls)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
