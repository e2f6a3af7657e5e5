"""A test Lambda transformation endpoint on 127.0.0.1: Firehose's Lambda event
in, its answer out (firehose.md 4), checked strictly.

LambdaReceiver(header=None, sigv4=None).start() -> a started receiver (in
this process); .url, .stop().

The function it runs, by each record's decoded text:
    "drop..."  -> Dropped
    "fail..."  -> ProcessingFailed
    otherwise  -> Ok with the text uppercased, and partition key
                  {"first": <its first character>}

Each request is checked against the protocol; what breaks it is kept in
.violations() (the test fails on any): POST with Content-Type
application/json, a body of at most 6 MB that is one JSON object with
exactly invocationId (a UUID), deliveryStreamArn (arn:aws:firehose:..),
region and records, each record exactly recordId (a string unique in the
request), approximateArrivalTimestamp (integer epoch ms) and data (strict
base64).  With header=(name, value) a request without that header is
refused with 401; with sigv4={"access_key", "secret_key", "region"} the
request must carry a valid AWS SigV4 signature for service "lambda"
(botocore's signer recomputes it), else 403.

.script(actions): answers to give, one per request, before the normal ones:
    {"status": 500}       answer that status (a Lambda error)
    {"mismatch": k}       the answer gives k records the id "bogus-<n>" instead
                          of theirs (missing ids, and unknown ones)
    {"duplicate": true}   the first record appears twice in the answer
    {"omit": true}        the last record is left out of the answer
    {"huge": n}           a valid answer padded with n bytes of whitespace
    {"not_json": true}    an answer that is not JSON
.requests(): every request's event (parsed), .invocations(): their
invocationIds in order.
"""

import base64
import binascii
import json
import re
import threading

from loopback_http import LoopbackHandler, LoopbackReceiver, make_log
from opensearch_receiver import sigv4_verifier_class

MAX_REQUEST = 6 * 1024 * 1024
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
log = make_log("lambda-receiver")


def transform(text):
    """What the test function makes of a record's text."""
    if text.startswith("drop"):
        return {"result": "Dropped"}
    if text.startswith("fail"):
        return {"result": "ProcessingFailed"}
    return {"result": "Ok",
            "data": base64.b64encode(text.upper().encode()).decode(),
            "metadata": {"partitionKeys": {"first": text[:1]}}}


class Handler(LoopbackHandler):
    def respond(self):
        owner = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.command != "POST":
            owner.violation("method %s" % self.command)
            return self.send_body(405, {"Message": "POST only"})
        if owner.header:
            name, value = owner.header
            if self.headers.get(name) != value:
                owner.note_refused("header")
                return self.send_body(401, {"Message": "missing or wrong %s" % name})
        if owner.sigv4:
            why = owner.check_sigv4(self, raw)
            if why:
                owner.note_refused(why)
                return self.send_body(403, {"Message": why})
        event = owner.check_event(self, raw)
        if event is None:
            return self.send_body(400, {"Message": "not a Firehose Lambda event"})
        action = owner.next_action(event)
        recs = event["records"]
        if "status" in action:
            return self.send_body(action["status"], {"errorMessage": "function failed"})
        if action.get("not_json"):
            return self.send_body(200, b"<html>oops</html>", "text/html")
        out = []
        for r in recs:
            item = {"recordId": r["recordId"]}
            item.update(transform(base64.b64decode(r["data"]).decode("utf-8", "replace")))
            out.append(item)
        for n in range(action.get("mismatch", 0)):
            out[n]["recordId"] = "bogus-%d" % n
        if action.get("duplicate"):
            out.append(dict(out[0]))
        if action.get("omit"):
            out.pop()
        body = json.dumps({"records": out}).encode()
        if action.get("huge"):
            body = body[:-1] + b" " * action["huge"] + b"}"
        self.send_body(200, body)


class LambdaReceiver(LoopbackReceiver):
    handler_class = Handler
    log = staticmethod(log)

    def __init__(self, header=None, sigv4=None):
        super().__init__()
        self.header = header
        self.sigv4 = sigv4
        self._lock = threading.Lock()
        self._requests = []
        self._violations = []
        self._script = []
        self.refused = []
        if sigv4:
            self._verifier = sigv4_verifier_class()

    def start(self):
        self.listen(0)
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d/2015-03-31/functions/transform/invocations" % self.port

    def script(self, actions):
        with self._lock:
            self._script.extend(actions)

    def next_action(self, event):
        with self._lock:
            self._requests.append(event)
            return self._script.pop(0) if self._script else {}

    def requests(self):
        with self._lock:
            return list(self._requests)

    def invocations(self):
        return [e["invocationId"] for e in self.requests()]

    def violations(self):
        with self._lock:
            return list(self._violations)

    def violation(self, what):
        with self._lock:
            self._violations.append(what)

    def note_refused(self, why):
        with self._lock:
            self.refused.append(why)

    def check_event(self, handler, raw):
        """The event of a request, or None (and a violation) if it breaks the
        protocol."""
        def bad(what):
            self.violation(what)
            return None
        ctype = handler.headers.get("Content-Type", "")
        if ctype.split(";")[0].strip() != "application/json":
            return bad("Content-Type %r" % ctype)
        if len(raw) > MAX_REQUEST:
            return bad("request of %d bytes" % len(raw))
        try:
            event = json.loads(raw)
        except ValueError as e:
            return bad("body is not JSON: %s" % e)
        if not isinstance(event, dict) or set(event) != {
                "invocationId", "deliveryStreamArn", "region", "records"}:
            return bad("event members %r" % (sorted(event) if isinstance(event, dict)
                                             else type(event)))
        if not isinstance(event["invocationId"], str) or not UUID.fullmatch(event["invocationId"]):
            return bad("invocationId %r" % event["invocationId"])
        if not re.fullmatch(r"arn:aws:firehose:[a-z0-9-]+:\d{12}:deliverystream/.+",
                            str(event["deliveryStreamArn"])):
            return bad("deliveryStreamArn %r" % event["deliveryStreamArn"])
        if not isinstance(event["region"], str) or not event["region"]:
            return bad("region %r" % event["region"])
        recs = event["records"]
        if not isinstance(recs, list) or not recs:
            return bad("records %r" % recs)
        ids = set()
        for r in recs:
            if not isinstance(r, dict) or set(r) != {"recordId", "approximateArrivalTimestamp",
                                                     "data"}:
                return bad("record %r" % r)
            if not isinstance(r["recordId"], str) or not r["recordId"] or r["recordId"] in ids:
                return bad("recordId %r" % r["recordId"])
            ids.add(r["recordId"])
            ts = r["approximateArrivalTimestamp"]
            if not isinstance(ts, int) or isinstance(ts, bool) or ts < 1500000000000:
                return bad("approximateArrivalTimestamp %r" % ts)
            try:
                base64.b64decode(r["data"], validate=True)
            except (binascii.Error, TypeError):
                return bad("data %r is not base64" % r["data"][:40])
        return event

    def check_sigv4(self, handler, raw):
        """None if the request is signed for service lambda with our keys, else why not."""
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        cfg = self.sigv4
        auth = handler.headers.get("Authorization", "")
        m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^,]+), ?SignedHeaders=([^,]+), ?"
                         r"Signature=([0-9a-f]{64})", auth.strip())
        if not m:
            return "no SigV4 Authorization"
        cred = m.group(1).split("/")
        if len(cred) != 5 or cred[0] != cfg["access_key"] or cred[2] != cfg["region"] \
                or cred[3] != "lambda" or cred[4] != "aws4_request":
            return "credential scope %s" % m.group(1)
        signed = set(m.group(2).split(";"))
        if "host" not in signed or "x-amz-date" not in signed:
            return "signed headers %s" % m.group(2)
        amz_date = handler.headers.get("X-Amz-Date")
        req = AWSRequest(method=handler.command,
                         url="http://%s%s" % (handler.headers.get("Host"), handler.path),
                         data=raw)
        for name, value in handler.headers.items():
            req.headers[name] = value
        req.context["timestamp"] = amz_date
        signer = self._verifier(Credentials(cfg["access_key"], cfg["secret_key"]),
                                "lambda", cfg["region"], signed)
        sig = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
        if sig != m.group(3):
            return "signature mismatch"
        return None
