#!/usr/bin/python3
"""An OpenSearch _bulk endpoint for the firehose tests, with fault injection.

In-process use (what the tests do):

    from opensearch_receiver import OpenSearchReceiver
    os_ = OpenSearchReceiver(username="fh", password="pw").start()
    ... os_.url ... os_.docs() ... os_.requests() ...
    os_.stop()

Standalone (for poking at it by hand):

    /usr/bin/python3 test/opensearch_receiver.py [--port 0] [--portfile F]
                     [--username U --password P] [--sigv4 KEY:SECRET:REGION[:SERVICE]]

A real HTTP/1.1 server on 127.0.0.1 (stdlib http.server, one thread per
connection, keep-alive) answering the way an OpenSearch 2.x cluster does.

Endpoints
---------
POST|PUT [<prefix>]/_bulk, [<prefix>]/<index>/_bulk
        The bulk API.  Content-Type must be application/x-ndjson or
        application/json (charset allowed), else 406 {"error": "Content-Type
        header [..] is not supported", "status": 406}.  Query parameters
        pipeline, refresh, routing, timeout, wait_for_active_shards,
        require_alias, _source, _source_includes, _source_excludes, filter_path
        are known; others are 400 "request [..] contains unrecognized
        parameter".  The body is NDJSON: an action line
        {"index"|"create"|"update"|"delete": {metadata}} and, except for
        delete, a source line.  Metadata keys: _index, _id, routing, pipeline,
        version, version_type, if_seq_no, if_primary_term, retry_on_conflict,
        require_alias, op_type, _source, and _type (ES 6/7 style, accepted
        unless accept_type=False, as OpenSearch 2 does not).  The whole body is
        parsed before anything runs, as OpenSearch's BulkRequestParser does: a
        malformed action line, a missing final newline, an empty body, a
        missing index, an empty _id or one over 512 bytes are whole-request 400
        errors
        {"error": {"root_cause": [..], "type": .., "reason": ..}, "status": 400}
        and nothing is indexed.  Then every item runs in order: invalid index
        names, source lines that are not one JSON object (or have duplicate
        keys, or nest deeper than 1000 levels), unknown pipelines (when `pipelines` is given) and values that do
        not fit `mappings` fail that item only; create on an existing id is 409
        version_conflict_engine_exception; index stores (result created 201 /
        updated 200, _version + 1).  Documents are kept in memory by
        (index, _id); an item without _id gets a 20-character auto id.
        Answer: 200 {"took", "errors", "items": [{action: {...}}]} in request
        order, item shapes as OpenSearch 2.x writes them.
GET [<prefix>]/                      cluster info
GET [<prefix>]/<index>/_doc/<id>     one stored document (found true/false)

Authentication (checked before anything else)
----------------------------------------------
username/password  HTTP basic: a missing or wrong Authorization is 401
                   "Unauthorized" (text/plain) with
                   WWW-Authenticate: Basic realm="OpenSearch Security", as the
                   security plugin answers.
sigv4              {"access_key", "secret_key", "region", "service" ("es" or
                   "aoss"), "session_token" (optional)}: the Authorization
                   header is checked as Amazon OpenSearch Service does: scope
                   (key, date, region, service), X-Amz-Date within 5 minutes,
                   host signed, x-amz-content-sha256 equal to the body's
                   SHA-256 when present (required for aoss), the session token,
                   and the signature itself, recomputed with botocore's
                   SigV4Auth over exactly the SignedHeaders.  Failures are 403
                   with AWS's JSON bodies ({"message": "The request signature
                   we calculated does not match ..."} and so on).

Violations
----------
Besides answering as OpenSearch would, the receiver notes in .violations()
everything the firehose opensearch destination must never do (Content-Type
other than exactly application/x-ndjson, method other than POST, a
whole-request 400, an action other than index/create, metadata other than
_index/_id/_type/routing, a document line that is not a JSON object, ...), so
tests can assert there were none.

Request fault rules (.faults([...]))
------------------------------------
Every bulk request that passes authentication and parsing walks the plan in
order; the first rule that applies decides.  "count": applies that many
times, then used up; "probability" (+ "seed"): applies at random; "delay"
(seconds) alone delays a normal answer, or combines with an action.

  {"status": 503}            answer that status with OpenSearch's error body for
                             it (429 rejected_execution_exception, 500
                             exception, 503 cluster_block_exception, 401 as the
                             security plugin, 403 security_exception, 413 empty
                             body); nothing is indexed.  "type"/"reason" override.
  {"drop": true}             close the connection without answering; nothing
                             indexed ("reset": true sends a TCP RST)
  {"process_then_drop": true}    index the items, then close without answering
  {"process_then_status": 502}   index the items, then answer that status
  {"malformed": KIND}        200 with a broken answer, nothing indexed: badjson,
                             html, noitems, fewer_items, more_items, notjson_ct,
                             huge (a well-formed answer with "errors": true, every
                             item failed 400, padded with a "pad" member to
                             "size" bytes, 200 MB by default, streamed)
  {"delay": 5}               sleep, then answer normally (the items are indexed
                             even when the client has given up, as a real
                             cluster would)

Item fault rules (.item_faults([...]))
--------------------------------------
Applied to every item before it runs; the first rule that selects an item
and is still active for it decides the item's answer.

  selection:  "ids": [..] (document _ids) | "fraction": f with "seed": s
              (deterministic: pick(s, key, f), see below) | neither (all);
              optional "index": exact index name, "action".
  "status":   the item's status: 429 (rejected_execution_exception), 503
              (unavailable_shards_exception), 500, 400
              (mapper_parsing_exception, naming "field" of type "field_type"
              and the document's value there), 409
              (version_conflict_engine_exception), 403 (cluster_block_exception),
              404 (index_not_found_exception); "type"/"reason" override.
  "times":    fail only the first K times the item's key is seen (counted over
              every bulk item the receiver ran, across requests); without
              "times" it fails every time (a permanent failure).

An item's key is its _id, or "sha256:<hex of the source line>" without one.
pick(seed, key, fraction) is True for a stable pseudo-random `fraction` of
keys; tests compute the expected sets with the same function.
"""

import argparse
import base64
import calendar
import collections
import gzip
import hashlib
import hmac
import json
import os
import re
import threading
import time
import zlib
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from loopback_http import (BodyTooLarge, FaultRule, LoopbackHandler, LoopbackReceiver,
                           after_delay, first_applying, make_log, server_tls_context,
                           strict_json_loads, wait_for, write_portfile)

MAX_BODY = 100 * 1024 * 1024          # http.max_content_length default
MAX_ID_BYTES = 512
SIGV4_SKEW = 300                      # seconds either way

KNOWN_QUERY = {"pipeline", "refresh", "routing", "timeout", "wait_for_active_shards",
               "require_alias", "_source", "_source_includes", "_source_excludes",
               "filter_path", "pretty", "human", "error_trace"}
ACTIONS = ("create", "delete", "index", "update")
META_KEYS = {"_index", "_id", "routing", "pipeline", "version", "version_type",
             "if_seq_no", "if_primary_term", "retry_on_conflict", "require_alias",
             "op_type", "_source"}
SPEC_META_KEYS = {"_index", "_id", "_type", "routing"}
INVALID_INDEX_CHARS = set('\\/*?"<>| ,#:')

REQUEST_ACTIONS = ("status", "drop", "process_then_drop", "process_then_status", "malformed")
REQUEST_RULE_KEYS = set(REQUEST_ACTIONS) | {"count", "probability", "seed", "delay", "reset",
                                            "type", "reason", "size"}
MALFORMED_KINDS = ("badjson", "html", "noitems", "fewer_items", "more_items", "notjson_ct",
                   "huge")
ITEM_RULE_KEYS = {"ids", "fraction", "seed", "index", "action", "status", "times", "type",
                  "reason", "field", "field_type"}

SIGNATURE_MISMATCH = ("The request signature we calculated does not match the signature you "
                      "provided. Check your AWS Secret Access Key and signing method. Consult "
                      "the service documentation for details.")


log = make_log("opensearch-receiver")


def pick(seed, key, fraction):
    """Deterministic choice of a `fraction` of keys (the item rules' "fraction")."""
    h = hashlib.sha256(("%s\0%s" % (seed, key)).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") < fraction * 2.0 ** 64


def doc_key(doc_id, source):
    """The key item rules count by: the _id, else a hash of the source line."""
    if doc_id is not None:
        return doc_id
    return "sha256:" + hashlib.sha256(source or b"").hexdigest()


def token_name(v):
    """Jackson's token name for a parsed JSON value (used in error reasons)."""
    if isinstance(v, dict):
        return "START_OBJECT"
    if isinstance(v, list):
        return "START_ARRAY"
    if isinstance(v, str):
        return "VALUE_STRING"
    if v is True:
        return "VALUE_TRUE"
    if v is False:
        return "VALUE_FALSE"
    if v is None:
        return "VALUE_NULL"
    if isinstance(v, int):
        return "VALUE_NUMBER_INT"
    return "VALUE_NUMBER_FLOAT"


def auto_id():
    """An id like OpenSearch's time-based auto ids: 20 URL-safe base64 characters."""
    return base64.urlsafe_b64encode(os.urandom(15)).decode()


def index_uuid(index):
    return base64.urlsafe_b64encode(hashlib.sha256(index.encode()).digest()[:16]) \
        .decode().rstrip("=")


def error_body(status, etype, reason, extra=None):
    """OpenSearch's whole-request error shape."""
    cause = {"type": etype, "reason": reason}
    if extra:
        cause.update(extra)
    err = {"root_cause": [dict(cause)]}
    err.update(cause)
    return {"error": err, "status": status}


def invalid_index_reason(name):
    """None when `name` is a valid index name, else OpenSearch's reason."""
    if not name:
        return "Invalid index name [%s], must not be empty" % name
    if name != name.lower():
        return "Invalid index name [%s], must be lowercase" % name
    if name[0] in "_-+":
        return "Invalid index name [%s], must not start with '_', '-', or '+'" % name
    bad = sorted(INVALID_INDEX_CHARS & set(name))
    if bad:
        return ("Invalid index name [%s], must not contain the following characters "
                "[ , \", *, \\, <, |, ,, >, /, ?]" % name)
    if name in (".", ".."):
        return "Invalid index name [%s], must not be '.' or '..'" % name
    if len(name.encode()) > 255:
        return "Invalid index name [%s], index name is too long, (%d > 255)" \
            % (name, len(name.encode()))
    return None


class BulkError(Exception):
    """A whole-request error: answered with `status` and `body`."""

    def __init__(self, status, body, content_type="application/json; charset=UTF-8",
                 headers=()):
        super().__init__(body)
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = list(headers)


def bad_request(etype, reason):
    return BulkError(400, error_body(400, etype, reason))


class DuplicateKey(ValueError):
    pass


class TooDeep(ValueError):
    """Valid JSON nested deeper than OpenSearch parses: not the sender's fault."""


def parse_json(raw):
    """Parse one line as Jackson would (no NaN, no duplicate keys).  ValueError."""
    text = raw.decode("utf-8")          # UnicodeDecodeError is a ValueError
    try:
        return strict_json_loads(text, lambda k: DuplicateKey("Duplicate field '%s'" % k),
                                 lambda c: ValueError("Non-standard token '%s'" % c))
    except RecursionError:
        # Jackson's StreamReadConstraints: at most 1000 levels
        raise TooDeep("Document nesting depth exceeds the maximum allowed (1000)")


# -- fault rules ----------------------------------------------------------------

class RequestRule(FaultRule):
    ACTIONS = REQUEST_ACTIONS
    KEYS = REQUEST_RULE_KEYS

    def check(self, spec):
        if "malformed" in spec and spec["malformed"] not in MALFORMED_KINDS:
            raise ValueError("malformed must be one of %s" % ", ".join(MALFORMED_KINDS))
        self.check_status_codes(spec, ("status", "process_then_status"))


class ItemRule:
    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("an item fault rule must be a dict")
        unknown = set(spec) - ITEM_RULE_KEYS
        if unknown:
            raise ValueError("unknown item rule keys: %s" % ", ".join(sorted(unknown)))
        if "ids" in spec and "fraction" in spec:
            raise ValueError("ids and fraction exclude each other")
        st = spec.get("status")
        if not (isinstance(st, int) and 400 <= st <= 599):
            raise ValueError("status must be a 4xx or 5xx status code")
        if "times" in spec and not (isinstance(spec["times"], int) and spec["times"] >= 1):
            raise ValueError("times must be a positive integer")
        if "fraction" in spec and not (0 <= spec["fraction"] <= 1):
            raise ValueError("fraction must be between 0 and 1")
        self.spec = dict(spec)
        self.ids = {str(i) for i in spec["ids"]} if "ids" in spec else None
        self.fraction = spec.get("fraction")
        self.seed = spec.get("seed", 0)
        self.status = st
        self.times = spec.get("times")

    def selects(self, key, index, action):
        if "index" in self.spec and self.spec["index"] != index:
            return False
        if "action" in self.spec and self.spec["action"] != action:
            return False
        if self.ids is not None:
            return key in self.ids
        if self.fraction is not None:
            return pick(self.seed, key, self.fraction)
        return True

    def active(self, seen):
        """`seen`: how many times this key has been seen, this time included."""
        return self.times is None or seen <= self.times


# -- state ------------------------------------------------------------------------

class State:
    def __init__(self):
        self.lock = threading.Condition()
        self.clear()

    def clear(self):
        self.requests = []            # every request received
        self.docs = {}                # (index, id) -> stored document
        self.seq_no = collections.Counter()   # index -> last _seq_no
        self.seen = collections.Counter()     # item key -> times run
        self.ok = collections.Counter()       # (index, id) -> times indexed (200/201)
        self.items = []               # every item run: dict, arrival order
        self.violations = []
        self.rules = []
        self.item_rules = []


class Handler(LoopbackHandler):
    server_version = "opensearch-test-receiver/2.11"
    sys_version = ""
    # send_body (LoopbackHandler's) as OpenSearch answers
    content_type = "application/json; charset=UTF-8"
    json_separators = (",", ":")
    lowercase_headers = True

    def read_body(self):
        te = self.headers.get("Transfer-Encoding")
        if te is not None:
            if te.strip().lower() != "chunked":
                raise BulkError(501, {"error": "Transfer-Encoding %s not supported" % te,
                                      "status": 501})
            try:
                # a chunk size that is not hex: ValueError, unanswered
                raw = self.read_chunked(MAX_BODY, blank_size_ends=True)
            except BodyTooLarge:
                raise BulkError(413, b"", content_type=None)
        else:
            n = self.headers.get("Content-Length")
            if n is None:
                raw = b""
            else:
                n = int(n)
                if n > MAX_BODY:
                    self.close_connection = True
                    raise BulkError(413, b"", content_type=None)
                raw = self.rfile.read(n)
        enc = (self.headers.get("Content-Encoding") or "").strip().lower()
        self.raw_body = raw
        if enc in ("", "identity"):
            return raw
        try:
            if enc == "gzip":
                return gzip.decompress(raw)
            if enc == "deflate":
                return zlib.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise bad_request("illegal_argument_exception",
                              "failed to decompress the request body: %s" % e)
        raise BulkError(415, {"error": "Content-Encoding [%s] is not supported" % enc,
                              "status": 415})

    # -- dispatch -------------------------------------------------------------

    def respond(self):
        rcv = self.owner
        st = rcv.state
        started = time.monotonic()
        url = urlsplit(self.path)
        entry = {"method": self.command, "path": url.path, "raw_path": self.path,
                 "query": dict(parse_qsl(url.query, keep_blank_values=True)),
                 "headers": dict(self.headers.items()),
                 "header_list": list(self.headers.items()),
                 "time": time.time(), "status": None, "outcome": None, "body": b"",
                 "items": [], "fault": None, "error": None}
        with st.lock:
            entry["n"] = len(st.requests)
            st.requests.append(entry)
        try:
            body = self.read_body()
            entry["body"] = body
            self.route(entry, url, body, started)
        except BulkError as e:
            self.note(entry, status=e.status, outcome="error",
                      error=e.body if isinstance(e.body, (dict, str)) else None)
            if e.status in (400, 405, 406) and entry.get("bulk"):
                rcv.violation("whole-request %d: %s" % (e.status, json.dumps(e.body)))
            self.send_body(e.status, e.body, e.content_type, e.headers)

    def note(self, entry, **kw):
        with self.owner.state.lock:
            entry.update(kw)

    def route(self, entry, url, body, started):
        rcv = self.owner
        path = url.path
        if rcv.path_prefix:
            if not (path == rcv.path_prefix or path.startswith(rcv.path_prefix + "/")):
                raise BulkError(404, {"error": "no handler found for uri [%s] and method [%s]"
                                      % (self.path, self.command), "status": 404})
            path = path[len(rcv.path_prefix):] or "/"
        rcv.authenticate(self, url, self.raw_body)
        parts = [unquote(p) for p in path.split("/") if p]
        if parts and parts[-1] == "_bulk" and len(parts) <= 2:
            entry["bulk"] = True
            if self.command not in ("POST", "PUT"):
                raise BulkError(405, {"error": "Incorrect HTTP method for uri [%s] and method "
                                      "[%s], allowed: [POST, PUT]" % (self.path, self.command),
                                      "status": 405}, headers=[("Allow", "POST,PUT")])
            if self.command != "POST":
                rcv.violation("method %s, expected POST" % self.command)
            return self.bulk(entry, url, parts[0] if len(parts) == 2 else None, body, started)
        if self.command in ("GET", "HEAD") and not parts:
            return self.send_body(200, rcv.info())
        if self.command in ("GET", "HEAD") and len(parts) == 3 and parts[1] == "_doc":
            return self.get_doc(parts[0], parts[2])
        raise BulkError(400, {"error": "no handler found for uri [%s] and method [%s]"
                              % (self.path, self.command), "status": 400})

    def get_doc(self, index, doc_id):
        with self.owner.state.lock:
            d = self.owner.state.docs.get((index, doc_id))
            d = dict(d) if d else None
        if d is None:
            return self.send_body(404, {"_index": index, "_id": doc_id, "found": False})
        return self.send_body(200, {"_index": index, "_id": doc_id, "_version": d["version"],
                                    "_seq_no": d["seq_no"], "_primary_term": 1, "found": True,
                                    "_source": d["source"]})

    # -- the bulk API ---------------------------------------------------------

    def bulk(self, entry, url, url_index, body, started):
        rcv = self.owner
        ctypes = self.headers.get_all("Content-Type") or []
        if not ctypes:
            raise BulkError(406, {"error": "Content-Type header is missing", "status": 406})
        ctype = ctypes[0]
        mime = ctype.split(";")[0].strip().lower()
        if mime not in ("application/x-ndjson", "application/json"):
            raise BulkError(406, {"error": "Content-Type header [%s] is not supported"
                                  % ", ".join(ctypes), "status": 406})
        if ctype != "application/x-ndjson":
            rcv.violation("Content-Type %r, expected 'application/x-ndjson'" % ctype)
        query = parse_qsl(url.query, keep_blank_values=True)
        for k, _ in query:
            if k not in KNOWN_QUERY:
                raise bad_request("illegal_argument_exception",
                                  "request [%s] contains unrecognized parameter: [%s]"
                                  % (url.path, k))
        params = dict(query)
        ops = self.parse_bulk(body, url_index, params)
        self.note(entry, items=[{k: v for k, v in op.items() if k != "obj"} for op in ops])

        rule = rcv.pick_rule()
        spec, action = after_delay(rule)
        if action not in (None, "delay"):
            self.note(entry, fault=rule.describe())
        if action == "status":
            code = spec["status"]
            self.note(entry, status=code, outcome="fault")
            return self.fault_status(code, spec)
        if action == "drop":
            self.note(entry, outcome="dropped")
            return self.drop(rst=bool(spec.get("reset")))
        if action == "malformed":
            self.note(entry, status=200, outcome="malformed " + spec["malformed"])
            if spec["malformed"] == "huge":
                return self.huge_answer(ops, spec.get("size", 200 * 1024 * 1024))
            return self.malformed(spec["malformed"], ops, started)

        items = rcv.run_items(ops, entry)
        if action == "process_then_drop":
            self.note(entry, outcome="processed, dropped")
            return self.drop(rst=bool(spec.get("reset")))
        if action == "process_then_status":
            code = spec["process_then_status"]
            self.note(entry, status=code, outcome="processed, fault")
            return self.fault_status(code, spec)
        errors = any("error" in next(iter(i.values())) for i in items)
        resp = {"took": max(1, int((time.monotonic() - started) * 1000)), "errors": errors,
                "items": items}
        if params.get("pipeline") or any(op.get("pipeline") for op in ops):
            resp["ingest_took"] = 0
        self.note(entry, status=200, outcome="ok")
        return self.send_body(200, resp)

    def parse_bulk(self, body, url_index, params):
        """Every (action, source) pair of the body, or a BulkError, as
        BulkRequestParser: nothing runs unless the whole body parses."""
        rcv = self.owner
        if not body:
            raise bad_request("parse_exception", "request body is required")
        if not body.endswith(b"\n"):
            raise bad_request("illegal_argument_exception",
                              "The bulk request must be terminated by a newline [\\n]")
        lines = body.split(b"\n")[:-1]
        ops = []
        i = 0
        while i < len(lines):
            lineno = i + 1
            raw = lines[i]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if not raw.strip():
                raise bad_request("illegal_argument_exception",
                                  "Malformed action/metadata line [%d], expected START_OBJECT "
                                  "or END_OBJECT but found [null]" % lineno)
            try:
                a = parse_json(raw)
            except ValueError as e:
                raise bad_request("json_parse_exception",
                                  "%s in action/metadata line [%d]" % (e, lineno))
            if not isinstance(a, dict):
                raise bad_request("illegal_argument_exception",
                                  "Malformed action/metadata line [%d], expected START_OBJECT "
                                  "or END_OBJECT but found [%s]" % (lineno, token_name(a)))
            if not a:
                raise bad_request("illegal_argument_exception",
                                  "Malformed action/metadata line [%d], expected FIELD_NAME "
                                  "but found [END_OBJECT]" % lineno)
            keys = list(a)
            verb = keys[0]
            if verb not in ACTIONS:
                raise bad_request("illegal_argument_exception",
                                  "Malformed action/metadata line [%d], expected one of "
                                  "[create, delete, index, update] but found [%s]"
                                  % (lineno, verb))
            meta = a[verb]
            if not isinstance(meta, dict):
                raise bad_request("illegal_argument_exception",
                                  "Malformed action/metadata line [%d], expected START_OBJECT "
                                  "but found [%s]" % (lineno, token_name(meta)))
            if len(keys) > 1:
                raise bad_request("illegal_argument_exception",
                                  "Malformed action/metadata line [%d], expected END_OBJECT "
                                  "but found [FIELD_NAME]" % lineno)
            allowed = META_KEYS | ({"_type"} if rcv.accept_type else set())
            for k, v in meta.items():
                if k not in allowed:
                    raise bad_request("illegal_argument_exception",
                                      "Action/metadata line [%d] contains an unknown parameter "
                                      "[%s]" % (lineno, k))
                if isinstance(v, (dict, list)) and k != "_source":
                    raise bad_request("illegal_argument_exception",
                                      "Malformed action/metadata line [%d], expected a simple "
                                      "value for field [%s] but found [%s]"
                                      % (lineno, k, token_name(v)))
            extra = set(meta) - SPEC_META_KEYS
            if extra:
                rcv.violation("line %d: action metadata keys %s beyond _index/_id/_type/routing"
                              % (lineno, sorted(extra)))
            if verb not in ("index", "create"):
                rcv.violation("line %d: action %r, expected index or create" % (lineno, verb))
            for k in ("_id", "_index", "_type", "routing"):
                if k in meta and not isinstance(meta[k], str):
                    rcv.violation("line %d: %s is %s, not a string"
                                  % (lineno, k, token_name(meta[k])))

            def text(v):
                if v is None:
                    return None
                if isinstance(v, bool):
                    return "true" if v else "false"
                return str(v)

            op = {"line": lineno, "action": verb, "action_line": raw,
                  "index": text(meta.get("_index", url_index)),
                  "id": text(meta.get("_id")), "type": text(meta.get("_type")),
                  "routing": text(meta.get("routing", params.get("routing"))),
                  "pipeline": text(meta.get("pipeline", params.get("pipeline"))),
                  "meta": meta, "source": None}
            if op["id"] == "":
                raise bad_request("action_request_validation_exception",
                                  "Validation Failed: 1: if _id is specified it must not be "
                                  "empty;")
            if op["id"] is not None and len(op["id"].encode()) > MAX_ID_BYTES:
                raise bad_request("action_request_validation_exception",
                                  "Validation Failed: 1: id [%s] is too long, must be no longer "
                                  "than 512 bytes but was: %d;" % (op["id"], len(op["id"].encode())))
            if op["index"] is None:
                raise bad_request("action_request_validation_exception",
                                  "Validation Failed: 1: index is missing;")
            if verb != "delete":
                i += 1
                if i >= len(lines):
                    raise bad_request("illegal_argument_exception",
                                      "The bulk request must be terminated by a newline [\\n]")
                src = lines[i]
                if src.endswith(b"\r"):
                    src = src[:-1]
                op["source"] = src
                try:
                    obj = parse_json(src)
                except ValueError as e:
                    op["parse_error"] = e
                    if not isinstance(e, TooDeep):
                        rcv.violation("line %d: document is not valid JSON: %s" % (i + 1, e))
                else:
                    if not isinstance(obj, dict):
                        op["parse_error"] = ValueError("not an object")
                        rcv.violation("line %d: document is %s, not a JSON object"
                                      % (i + 1, token_name(obj)))
                    else:
                        op["obj"] = obj
                if verb == "update" and "obj" in op and "doc" not in op["obj"] \
                        and "script" not in op["obj"]:
                    raise bad_request("action_request_validation_exception",
                                      "Validation Failed: 1: script or doc is missing;")
            ops.append(op)
            i += 1
        if not ops:
            raise bad_request("action_request_validation_exception",
                              "Validation Failed: 1: no requests added;")
        return ops

    def fault_status(self, code, spec):
        if code == 401:
            return self.send_body(401, spec.get("reason", "Unauthorized"),
                                  "text/plain; charset=UTF-8",
                                  [("WWW-Authenticate", 'Basic realm="OpenSearch Security"')])
        if code == 413:
            return self.send_body(413, b"", None)
        defaults = {
            429: ("rejected_execution_exception",
                  "rejected execution of coordinating operation [coordinating_and_primary_bytes="
                  "104857600, replica_bytes=0, all_bytes=104857600, coordinating_operation_bytes="
                  "1048576, max_coordinating_and_primary_bytes=107374182]"),
            403: ("security_exception",
                  "no permissions for [indices:data/write/bulk] and User [name=firehose, "
                  "backend_roles=[], requestedTenant=null]"),
            500: ("exception", "java.lang.IllegalStateException: injected fault"),
            503: ("cluster_block_exception",
                  "blocked by: [SERVICE_UNAVAILABLE/2/no cluster-manager];"),
        }
        etype, reason = defaults.get(code, ("exception", "injected fault: status %d" % code))
        return self.send_body(code, error_body(code, spec.get("type", etype),
                                               spec.get("reason", reason)))

    def huge_answer(self, ops, size):
        """A bulk answer of size bytes (every item failed 400, then padding),
        written in 1 MiB pieces so that the receiver never holds it."""
        items = [{op["action"]: {"_index": op["index"], "_id": op["id"], "status": 400,
                                 "error": {"type": "mapper_parsing_exception",
                                           "reason": "failed to parse"}}} for op in ops]
        head = json.dumps({"took": 1, "errors": True, "items": items})[:-1].encode() + \
            b', "pad": "'
        tail = b'"}'
        pad = max(0, size - len(head) - len(tail))
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(head) + pad + len(tail)))
        self.end_headers()
        try:
            self.wfile.write(head)
            piece = b"x" * (1024 * 1024)
            while pad > 0:
                self.wfile.write(piece[:pad])
                pad -= min(pad, len(piece))
            self.wfile.write(tail)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def malformed(self, kind, ops, started):
        took = max(1, int((time.monotonic() - started) * 1000))

        def ok_items(n):
            return [{op["action"]: {"_index": op["index"], "_id": op["id"] or auto_id(),
                                    "_version": 1, "result": "created",
                                    "_shards": {"total": 2, "successful": 1, "failed": 0},
                                    "_seq_no": 0, "_primary_term": 1, "status": 201}}
                    for op in (ops * 2)[:n]]
        if kind == "badjson":
            return self.send_body(200, b'{"took":%d,"errors":false,"items":[{"index":' % took)
        if kind == "html":
            return self.send_body(200, b"<html><body><h1>It works!</h1></body></html>",
                                  "text/html")
        if kind == "noitems":
            return self.send_body(200, {"took": took, "errors": False})
        if kind == "fewer_items":
            return self.send_body(200, {"took": took, "errors": False,
                                        "items": ok_items(len(ops) - 1)})
        if kind == "more_items":
            return self.send_body(200, {"took": took, "errors": False,
                                        "items": ok_items(len(ops) + 1)})
        if kind == "notjson_ct":
            return self.send_body(200, json.dumps({"took": took, "errors": False,
                                                   "items": ok_items(len(ops))}).encode(),
                                  "text/plain")
        raise AssertionError(kind)


# -- SigV4 ---------------------------------------------------------------------------

def _aws_encode(s):
    return quote(s, safe="-_.~")


def sigv4_verifier_class():
    from botocore.auth import SigV4Auth
    from botocore.compat import HTTPHeaders

    class Verifier(SigV4Auth):
        """botocore's SigV4Auth over exactly the headers the client signed."""

        def __init__(self, credentials, service, region, signed):
            super().__init__(credentials, service, region)
            self._signed = signed

        def headers_to_sign(self, request):
            hm = HTTPHeaders()
            for name, value in request.headers.items():
                if name.lower() in self._signed:
                    hm[name.lower()] = value
            return hm

        def canonical_query_string(self, request):
            # AWS decodes the query it receives and encodes it canonically.
            query = urlsplit(request.url).query
            pairs = [(_aws_encode(k), _aws_encode(v))
                     for k, v in parse_qsl(query, keep_blank_values=True)]
            return "&".join("%s=%s" % kv for kv in sorted(pairs))

    return Verifier


# -- the receiver ----------------------------------------------------------------------

class OpenSearchReceiver(LoopbackReceiver):
    """An in-process OpenSearch _bulk endpoint on 127.0.0.1.

    OpenSearchReceiver(username=None, password=None, sigv4=None, path_prefix="",
                       accept_type=True, pipelines=None, mappings=None, tls=None,
                       port=0)
      sigv4        {"access_key", "secret_key", "region", "service": "es"|"aoss",
                    "session_token": optional}
      path_prefix  "/os": the API answers under /os/... only
      pipelines    iterable of known ingest pipeline names (None: any name)
      mappings     {field: "long"|"integer"|"double"|"float"|"boolean"|"keyword"|
                    "text"|"date"|"object"}: top-level (or dotted) fields whose values
                    must fit, else 400 mapper_parsing_exception
      tls          (certfile, keyfile): serve HTTPS

    .start() -> self, .stop(), .url (base URL incl. prefix), .port
    .faults(rules), .item_faults(rules), .reset(), .clear_faults()
    .requests() .bulk_requests() .items() .docs() .doc(index, id)
    .indexed_counts() (Counter (index, id) -> times indexed 200/201)
    .seen_counts() (Counter key -> times run), .violations()
    .wait_docs(n, timeout) .wait_requests(n, timeout)
    """

    handler_class = Handler
    log = staticmethod(log)

    def __init__(self, username=None, password=None, sigv4=None, path_prefix="",
                 accept_type=True, pipelines=None, mappings=None, tls=None, port=0):
        super().__init__()
        self.username = username
        self.password = password
        self.sigv4 = dict(sigv4) if sigv4 else None
        if self.sigv4:
            self.sigv4.setdefault("service", "es")
            missing = {"access_key", "secret_key", "region"} - set(self.sigv4)
            if missing:
                raise ValueError("sigv4 needs %s" % ", ".join(sorted(missing)))
            self._verifier = sigv4_verifier_class()
        self.path_prefix = path_prefix.rstrip("/")
        self.accept_type = accept_type
        self.pipelines = set(pipelines) if pipelines is not None else None
        self.mappings = dict(mappings or {})
        self.tls = tls
        self.port = port
        self.state = State()
        self.last_sigv4 = None          # {"canonical_request", "string_to_sign", ...}

    # -- lifecycle ----------------------------------------------------------------

    def start(self):
        """Listen (on `port`, 0: any free one); stop() closes it and cuts connections."""
        self.listen(self.port, server_tls_context(*self.tls) if self.tls else None,
                    retry=False)
        return self

    @property
    def base(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)

    @property
    def url(self):
        return self.base + self.path_prefix

    # -- faults ---------------------------------------------------------------------

    def faults(self, rules):
        """Replace the request fault plan (see the module docstring)."""
        parsed = [RequestRule(r) for r in rules]
        with self.state.lock:
            self.state.rules = parsed

    def item_faults(self, rules):
        """Replace the item fault plan (see the module docstring)."""
        parsed = [ItemRule(r) for r in rules]
        with self.state.lock:
            self.state.item_rules = parsed

    def clear_faults(self):
        self.faults([])
        self.item_faults([])

    def describe_faults(self):
        with self.state.lock:
            return [r.describe() for r in self.state.rules]

    def pick_rule(self):
        with self.state.lock:
            return first_applying(self.state.rules)

    # -- inspection -------------------------------------------------------------------

    def reset(self):
        """Forget requests, documents, counters, violations and faults."""
        with self.state.lock:
            self.state.clear()
            self.state.lock.notify_all()

    def requests(self):
        """Every request received, in arrival order (dicts, copies)."""
        with self.state.lock:
            return [dict(r) for r in self.state.requests]

    def bulk_requests(self):
        return [r for r in self.requests() if r.get("bulk")]

    def items(self):
        """Every bulk item run, in order: {"action", "index", "id", "key", "status",
        "error_type", "result", "type", "routing", "pipeline", "source", "request"}."""
        with self.state.lock:
            return [dict(i) for i in self.state.items]

    def docs(self):
        """(index, id) -> {"source" (parsed), "raw" (bytes), "version", "type",
        "routing", "pipeline", "seq_no"}."""
        with self.state.lock:
            return {k: dict(v) for k, v in self.state.docs.items()}

    def doc(self, index, doc_id):
        with self.state.lock:
            d = self.state.docs.get((index, doc_id))
            return dict(d) if d else None

    def indexed_counts(self):
        with self.state.lock:
            return collections.Counter(self.state.ok)

    def seen_counts(self):
        with self.state.lock:
            return collections.Counter(self.state.seen)

    def violations(self):
        with self.state.lock:
            return list(self.state.violations)

    def assert_no_violations(self):
        v = self.violations()
        assert not v, "the OpenSearch receiver saw violations: %r" % v[:20]

    def violation(self, msg):
        with self.state.lock:
            self.state.violations.append(msg)

    def wait_docs(self, n, timeout=30.0):
        st, deadline = self.state, time.monotonic() + timeout
        with st.lock:
            if not wait_for(st.lock, lambda: len(st.docs) >= n, deadline):
                raise TimeoutError("%d documents, waited for %d" % (len(st.docs), n))
            return len(st.docs)

    def wait_requests(self, n, timeout=30.0):
        st, deadline = self.state, time.monotonic() + timeout

        def answered():
            return sum(1 for r in st.requests
                       if r["status"] is not None or r["outcome"] is not None) >= n
        with st.lock:
            if not wait_for(st.lock, answered, deadline):
                raise TimeoutError("fewer than %d requests answered" % n)

    def info(self):
        return {"name": "node-1", "cluster_name": "firehose-test",
                "cluster_uuid": "2JnBvZsCTiS-Vn4cjVZ0kg",
                "version": {"distribution": "opensearch", "number": "2.11.0",
                            "build_type": "tar", "lucene_version": "9.7.0",
                            "minimum_wire_compatibility_version": "7.10.0",
                            "minimum_index_compatibility_version": "7.0.0"},
                "tagline": "The OpenSearch Project: https://opensearch.org/"}

    # -- authentication ------------------------------------------------------------------

    def authenticate(self, handler, url, raw_body):
        if self.username is not None:
            self._check_basic(handler)
        if self.sigv4 is not None:
            self._check_sigv4(handler, url, raw_body)

    def _check_basic(self, handler):
        got = handler.headers.get("Authorization") or ""
        ok = False
        if got[:6].lower() == "basic ":
            try:
                user, _, pw = base64.b64decode(got[6:].strip(), validate=True) \
                    .decode("utf-8").partition(":")
                ok = hmac.compare_digest(user.encode(), self.username.encode()) and \
                    hmac.compare_digest(pw.encode(), self.password.encode())
            except (ValueError, UnicodeDecodeError):
                ok = False
        if not ok:
            raise BulkError(401, "Unauthorized", "text/plain; charset=UTF-8",
                            [("WWW-Authenticate", 'Basic realm="OpenSearch Security"')])

    def _check_sigv4(self, handler, url, raw_body):
        cfg = self.sigv4
        h = handler.headers

        def deny(message, key="message"):
            raise BulkError(403, {key: message})
        auth = h.get("Authorization")
        if not auth:
            deny("User: anonymous is not authorized to perform: %s:ESHttp%s because no "
                 "resource-based policy allows the %s:ESHttp%s action"
                 % (cfg["service"], handler.command.capitalize(), cfg["service"],
                    handler.command.capitalize()), "Message")
        algo, _, rest = auth.strip().partition(" ")
        fields = {}
        for part in rest.split(","):
            k, _, v = part.strip().partition("=")
            if k:
                fields[k] = v
        if algo != "AWS4-HMAC-SHA256" or not {"Credential", "SignedHeaders",
                                               "Signature"} <= set(fields):
            msgs = ["Authorization header requires '%s' parameter." % p
                    for p in ("Credential", "Signature", "SignedHeaders") if p not in fields]
            if algo != "AWS4-HMAC-SHA256":
                msgs = ["Authorization header requires 'Credential' parameter.",
                        "Authorization header requires 'Signature' parameter.",
                        "Authorization header requires 'SignedHeaders' parameter."]
            deny(" ".join(msgs) + " Authorization=" + auth)
        amz_date = h.get("X-Amz-Date")
        if not amz_date:
            deny("Authorization header requires existence of either a 'X-Amz-Date' or a "
                 "'Date' header. Authorization=" + auth)
        cred = fields["Credential"].split("/")
        if len(cred) != 5 or cred[4] != "aws4_request":
            deny("Credential should be scoped to a valid region. ")
        key_id, date8, region, service, _ = cred
        if key_id != cfg["access_key"]:
            deny("The security token included in the request is invalid.")
        if not re.fullmatch(r"\d{8}T\d{6}Z", amz_date):
            deny("Invalid X-Amz-Date: %s" % amz_date)
        if date8 != amz_date[:8]:
            deny("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                 "date from HTTP: '%s' != '%s', from 'X-Amz-Date'." % (date8, amz_date[:8]))
        if region != cfg["region"]:
            deny("Credential should be scoped to a valid region. ")
        if service != cfg["service"]:
            deny("Credential should be scoped to correct service: '%s'. " % cfg["service"])
        t = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
        now = time.time()
        fmt = lambda x: time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(x))  # noqa: E731
        if t < now - SIGV4_SKEW:
            deny("Signature expired: %s is now earlier than %s (%s - 5 min.)"
                 % (amz_date, fmt(now - SIGV4_SKEW), fmt(now)))
        if t > now + SIGV4_SKEW:
            deny("Signature not yet current: %s is still later than %s (%s + 5 min.)"
                 % (amz_date, fmt(now + SIGV4_SKEW), fmt(now)))
        signed = [s for s in fields["SignedHeaders"].split(";") if s]
        if "host" not in signed:
            deny("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
        for name in signed:
            if h.get(name) is None:
                deny(SIGNATURE_MISMATCH)
        token = h.get("X-Amz-Security-Token")
        if (cfg.get("session_token") or None) != (token or None):
            deny("The security token included in the request is invalid.")
        sha = h.get("X-Amz-Content-SHA256")
        if sha is None and service == "aoss":
            deny("Missing required header: x-amz-content-sha256")
        if sha is not None and sha != "UNSIGNED-PAYLOAD" and \
                sha != hashlib.sha256(raw_body).hexdigest():
            deny("The provided 'x-amz-content-sha256' header does not match what was computed.")

        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        host = h.get("Host") or "127.0.0.1:%d" % self.port
        req = AWSRequest(method=handler.command,
                         url="%s://%s%s" % ("https" if self.tls else "http", host, handler.path),
                         data=raw_body)
        for name, value in h.items():           # repeated headers kept
            req.headers[name] = value
        req.context["timestamp"] = amz_date
        signer = self._verifier(Credentials(cfg["access_key"], cfg["secret_key"], token),
                                cfg["service"], cfg["region"], set(signed))
        creq = signer.canonical_request(req)
        sts = signer.string_to_sign(req, creq)
        sig = signer.signature(sts, req)
        self.last_sigv4 = {"canonical_request": creq, "string_to_sign": sts,
                           "expected": sig, "got": fields["Signature"]}
        if not hmac.compare_digest(sig, fields["Signature"]):
            deny("%s\n\nThe Canonical String for this request should have been\n'%s'\n\n"
                 "The String-to-Sign should have been\n'%s'\n" % (SIGNATURE_MISMATCH, creq, sts))

    # -- running items --------------------------------------------------------------------

    def run_items(self, ops, entry):
        """Run the parsed ops in order (under the lock); return the response items."""
        st = self.state
        out = []
        with st.lock:
            for op in ops:
                item = self._run_one(op)
                out.append({op["action"]: item})
                st.items.append({"action": op["action"], "index": op["index"],
                                 "id": item.get("_id"), "key": op["key"],
                                 "status": item["status"],
                                 "error_type": item.get("error", {}).get("type"),
                                 "result": item.get("result"), "type": op["type"],
                                 "routing": op["routing"], "pipeline": op["pipeline"],
                                 "source": op["source"], "request": entry.get("n"),
                                 "fault": op.get("fault", False)})
            entry["response_items"] = out
            st.lock.notify_all()
        return out

    def _item_error(self, op, doc_id, status, etype, reason, extra=None):
        err = {"type": etype, "reason": reason}
        if extra:
            err.update(extra)
        item = {"_index": op["index"], "_id": doc_id}
        if op["type"] is not None:
            item["_type"] = op["type"]
        item.update({"status": status, "error": err})
        return item

    def _injected(self, op, doc_id, rule):
        idx = op["index"]
        status = rule.status
        spec = rule.spec
        extra = None
        if status == 400:
            field = spec.get("field", "value")
            ftype = spec.get("field_type", "long")
            val = (op.get("obj") or {}).get(field, "")
            preview = val if isinstance(val, str) else json.dumps(val)
            etype = "mapper_parsing_exception"
            reason = ("failed to parse field [%s] of type [%s] in document with id '%s'. "
                      "Preview of field's value: '%s'" % (field, ftype, doc_id, preview))
            extra = {"caused_by": {"type": "illegal_argument_exception",
                                   "reason": "For input string: \"%s\"" % preview}}
        elif status == 409:
            etype = "version_conflict_engine_exception"
            reason = ("[%s]: version conflict, document already exists (current version [1])"
                      % doc_id)
            extra = {"index": idx, "shard": "0", "index_uuid": index_uuid(idx)}
        elif status == 429:
            etype = "rejected_execution_exception"
            reason = ("rejected execution of primary operation [shard_detail=[%s][0][P], "
                      "shard_coordinating_and_primary_bytes=0, shard_operation_bytes=1024, "
                      "shard_max_coordinating_and_primary_bytes=53687091] OR "
                      "[node_coordinating_and_primary_bytes=53687091, node_replica_bytes=0, "
                      "node_all_bytes=53687091, node_operation_bytes=1024, "
                      "node_max_coordinating_and_primary_bytes=53687091]" % idx)
        elif status == 503:
            etype = "unavailable_shards_exception"
            reason = ("[%s][0] primary shard is not active Timeout: [1m], request: "
                      "[BulkShardRequest [[%s][0]] containing [1] requests]" % (idx, idx))
        elif status == 403:
            etype = "cluster_block_exception"
            reason = "index [%s] blocked by: [FORBIDDEN/8/index write (api)];" % idx
        elif status == 404:
            etype = "index_not_found_exception"
            reason = "no such index [%s]" % idx
            extra = {"index": idx, "resource.type": "index_expression",
                     "resource.id": idx, "index_uuid": "_na_"}
        else:
            etype = "exception"
            reason = "java.lang.IllegalStateException: injected item fault"
        return self._item_error(op, doc_id, status, spec.get("type", etype),
                                spec.get("reason", reason), extra)

    def _mapping_error(self, obj):
        for field, ftype in self.mappings.items():
            v = obj
            for part in field.split("."):
                v = v.get(part) if isinstance(v, dict) else None
            if v is None:
                continue
            if isinstance(v, list):
                vals = v
            else:
                vals = [v]
            for x in vals:
                bad = None
                if ftype in ("long", "integer"):
                    if isinstance(x, bool) or isinstance(x, (dict, list)):
                        bad = "illegal"
                    elif isinstance(x, float):
                        bad = None if x == int(x) else "float"
                    elif isinstance(x, str):
                        try:
                            int(x.strip())
                        except ValueError:
                            bad = "For input string: \"%s\"" % x
                elif ftype in ("double", "float"):
                    if isinstance(x, (bool, dict, list)):
                        bad = "illegal"
                    elif isinstance(x, str):
                        try:
                            float(x)
                        except ValueError:
                            bad = "For input string: \"%s\"" % x
                elif ftype == "boolean":
                    if not (isinstance(x, bool) or x in ("true", "false", "")):
                        bad = "Failed to parse value [%s] as only [true] or [false] are " \
                              "allowed." % x
                elif ftype == "object":
                    if not isinstance(x, dict):
                        return ("object mapping for [%s] tried to parse field [%s] as object, "
                                "but found a concrete value" % (field, field), None)
                elif ftype == "date":
                    if isinstance(x, str) and not re.match(r"\d{4}-\d{2}-\d{2}", x):
                        bad = "failed to parse date field [%s] with format " \
                              "[strict_date_optional_time||epoch_millis]" % x
                if bad:
                    preview = x if isinstance(x, str) else json.dumps(x)
                    return (field, ftype, preview, bad)
        return None

    def _run_one(self, op):
        st = self.state
        doc_id = op["id"]
        op["key"] = key = doc_key(doc_id, op["source"])
        if doc_id is None and op["action"] in ("index", "create"):
            doc_id = auto_id()
        if doc_id is None:
            doc_id = ""
        st.seen[key] += 1
        seen = st.seen[key]
        for rule in st.item_rules:
            if rule.selects(key, op["index"], op["action"]) and rule.active(seen):
                op["fault"] = True
                return self._injected(op, doc_id, rule)
        idx = op["index"]
        bad = invalid_index_reason(idx)
        if bad:
            return self._item_error(op, doc_id, 400, "invalid_index_name_exception", bad,
                                    {"index": idx, "index_uuid": "_na_"})
        if "parse_error" in op:
            e = op["parse_error"]
            if isinstance(e, UnicodeDecodeError) or str(e) == "not an object":
                cause = {"type": "not_x_content_exception",
                         "reason": "Compressor detection can only be called on some xcontent "
                                   "bytes or compressed xcontent bytes"}
            else:
                cause = {"type": "json_parse_exception", "reason": str(e)}
            return self._item_error(op, doc_id, 400, "mapper_parsing_exception",
                                    "failed to parse", {"caused_by": cause})
        if self.pipelines is not None and op["pipeline"] and op["pipeline"] != "_none" \
                and op["pipeline"] not in self.pipelines:
            return self._item_error(op, doc_id, 400, "illegal_argument_exception",
                                    "pipeline with id [%s] does not exist" % op["pipeline"])
        existing = st.docs.get((idx, doc_id))
        if op["action"] == "delete":
            if existing is None:
                st.seq_no[idx] += 1
                return self._ok(op, doc_id, 1, "not_found", 404)
            del st.docs[(idx, doc_id)]
            st.seq_no[idx] += 1
            return self._ok(op, doc_id, existing["version"] + 1, "deleted", 200)
        obj = op["obj"]
        if op["action"] == "update":
            if existing is None:
                return self._item_error(op, doc_id, 404, "document_missing_exception",
                                        "[%s]: document missing" % doc_id,
                                        {"index": idx, "shard": "0",
                                         "index_uuid": index_uuid(idx)})
            merged = json.loads(json.dumps(existing["source"]))
            _merge(merged, obj.get("doc") or {})
            obj = merged
        m = self._mapping_error(obj)
        if m:
            if m[1] is None:
                return self._item_error(op, doc_id, 400, "mapper_parsing_exception", m[0])
            field, ftype, preview, cause = m
            return self._item_error(
                op, doc_id, 400, "mapper_parsing_exception",
                "failed to parse field [%s] of type [%s] in document with id '%s'. "
                "Preview of field's value: '%s'" % (field, ftype, doc_id, preview),
                {"caused_by": {"type": "illegal_argument_exception", "reason": cause}})
        if op["action"] == "create" and existing is not None:
            return self._item_error(
                op, doc_id, 409, "version_conflict_engine_exception",
                "[%s]: version conflict, document already exists (current version [%d])"
                % (doc_id, existing["version"]),
                {"index": idx, "shard": "0", "index_uuid": index_uuid(idx)})
        st.seq_no[idx] += 1
        version = existing["version"] + 1 if existing else 1
        raw = op["source"] if op["action"] != "update" else json.dumps(obj).encode()
        st.docs[(idx, doc_id)] = {"source": obj, "raw": raw, "version": version,
                                  "type": op["type"], "routing": op["routing"],
                                  "pipeline": op["pipeline"], "seq_no": st.seq_no[idx] - 1}
        st.ok[(idx, doc_id)] += 1
        if existing:
            return self._ok(op, doc_id, version, "updated", 200)
        return self._ok(op, doc_id, version, "created", 201)

    def _ok(self, op, doc_id, version, result, status):
        item = {"_index": op["index"], "_id": doc_id}
        if op["type"] is not None:
            item["_type"] = op["type"]
        item.update({"_version": version, "result": result,
                     "_shards": {"total": 2, "successful": 1, "failed": 0},
                     "_seq_no": self.state.seq_no[op["index"]] - 1, "_primary_term": 1,
                     "status": status})
        return item


def _merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--portfile")
    ap.add_argument("--username")
    ap.add_argument("--password")
    ap.add_argument("--sigv4", help="KEY:SECRET:REGION[:SERVICE]")
    ap.add_argument("--path-prefix", default="")
    args = ap.parse_args(argv)
    sig = None
    if args.sigv4:
        p = args.sigv4.split(":")
        sig = {"access_key": p[0], "secret_key": p[1], "region": p[2],
               "service": p[3] if len(p) > 3 else "es"}
    rcv = OpenSearchReceiver(args.username, args.password, sig, args.path_prefix,
                             port=args.port).start()
    if args.portfile:
        write_portfile(args.portfile, rcv.port)
    rcv.run_until_interrupted()


if __name__ == "__main__":
    main()
