"""What the loopback HTTP test receivers share (receiver.py, opensearch_receiver.py,
splunk_receiver.py).  Python standard library only; no protocol in here.

LoopbackReceiver   owns a threaded HTTP/1.1 server on 127.0.0.1 and the connections
                   it has open: listen() (again on the same port after stop()),
                   stop() (closes the listener and cuts every open connection, so
                   an outage is an outage), serve() for a further listener (TLS)
                   whose connections count as the receiver's.
LoopbackHandler    the request handler base: keep-alive HTTP/1.1, no Nagle, the
                   connection bookkeeping, quiet logging, every method routed to
                   respond() (a client hanging up is not an error), send_body(),
                   drop() (close without answering, optionally with a TCP RST),
                   read_chunked().
FaultRule          a fault rule's validation and its "count" / "probability" +
                   "seed" bookkeeping; first_applying() walks a plan, after_delay()
                   sleeps the picked rule's "delay".
gunzip(), strict_json_loads(), wait_for(), make_log(), server_tls_context(),
write_portfile().
"""

import gzip
import io
import json
import os
import random
import socket
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"
BIND_RETRY_SECONDS = 10          # a port just given up may take a moment to be free again
POLL_INTERVAL = 0.05             # serve_forever's: how fast shutdown() returns

# exceptions that only mean the client went away while we answered
CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)

_DEFAULT = object()


class BodyTooLarge(Exception):
    """A chunked body adds up to more than the limit (the chunk crossing it was not read)."""


def make_log(name, pid=True):
    """A log(msg) writing "name[pid]: msg" (or "name: msg") to stderr."""
    def log(msg):
        if pid:
            sys.stderr.write("%s[%d]: %s\n" % (name, os.getpid(), msg))
        else:
            sys.stderr.write("%s: %s\n" % (name, msg))
        sys.stderr.flush()
    return log


def server_tls_context(certfile, keyfile):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


def write_portfile(path, port):
    """Write "port\\n" to path atomically (readers never see a partial file)."""
    with open(path + ".tmp", "w") as f:
        f.write("%d\n" % port)
    os.replace(path + ".tmp", path)


def gunzip(raw, limit):
    """Decompress a gzip body, at most limit + 1 bytes of it (so that "more than
    limit" shows).  Raises OSError, EOFError or ValueError on a broken stream."""
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
        return f.read(limit + 1)


def strict_json_loads(text, duplicate, constant):
    """json.loads refusing what JSON parsers disagree on: an object key given
    twice (raises duplicate(key)) and NaN/Infinity (raises constant(name))."""
    def no_duplicates(pairs):
        obj = {}
        for k, v in pairs:
            if k in obj:
                raise duplicate(k)
            obj[k] = v
        return obj

    def no_constant(name):
        raise constant(name)
    return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constant)


def wait_for(cond, predicate, deadline, step=None):
    """With `cond` (a threading.Condition) held: wait until predicate() is truthy
    or time.monotonic() passes `deadline`, waking at least every `step` seconds.
    Returns predicate()'s last value."""
    while True:
        v = predicate()
        if v:
            return v
        left = deadline - time.monotonic()
        if left <= 0:
            return v
        cond.wait(left if step is None else min(left, step))


# -- fault rules ---------------------------------------------------------------------

class FaultRule:
    """One rule of a fault plan.  Subclasses name their ACTIONS (at most one per
    rule; a rule without one needs a "delay") and KEYS (everything allowed), and
    check() their own values.  "count": applies that many times, then used up
    (without it: forever); "probability" (+ "seed"): applies at random."""

    ACTIONS = ()
    KEYS = frozenset()
    NOT_A_DICT = "a fault rule must be a dict"

    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise ValueError(self.NOT_A_DICT)
        unknown = set(spec) - set(self.KEYS)
        if unknown:
            raise ValueError("unknown fault rule keys: %s" % ", ".join(sorted(unknown)))
        actions = self.actions_in(spec)
        if len(actions) > 1:
            raise ValueError("one action per rule, got %s" % ", ".join(actions))
        if not actions and "delay" not in spec:
            raise ValueError("a rule needs an action (%s) or a delay" % ", ".join(self.ACTIONS))
        self.check(spec)
        if "count" in spec and not (isinstance(spec["count"], int) and spec["count"] >= 0):
            raise ValueError("count must be a non-negative integer")
        self.spec = dict(spec)
        self.action = actions[0] if actions else "delay"
        self.remaining = spec.get("count")
        self.rng = random.Random(spec["seed"]) if "seed" in spec else random

    def actions_in(self, spec):
        return [k for k in self.ACTIONS if k in spec]

    def check(self, spec):
        """Raise ValueError for a value this kind of rule does not take."""

    @staticmethod
    def check_status_codes(spec, keys):
        for k in keys:
            if k in spec and not (isinstance(spec[k], int) and 100 <= spec[k] <= 599):
                raise ValueError("%s must be an HTTP status code" % k)

    @staticmethod
    def check_numbers(spec, keys):
        for k in keys:
            if k in spec and not isinstance(spec[k], (int, float)):
                raise ValueError("%s must be a number" % k)

    def applies(self):
        """Decide (and consume) whether this rule applies to the current request."""
        if self.remaining is not None and self.remaining <= 0:
            return False
        p = self.spec.get("probability")
        if p is not None and self.rng.random() >= p:
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True

    def describe(self):
        d = dict(self.spec)
        if self.remaining is not None:
            d["remaining"] = self.remaining
        return d


def first_applying(rules, *args):
    """The first rule of the plan that applies (consuming it), or None."""
    for r in rules:
        if r.applies(*args):
            return r
    return None


def after_delay(rule):
    """Sleep the "delay" of the rule picked for a request (None: no rule), which
    goes with any action; return the rule's (spec, action), ({}, None) without one."""
    spec = rule.spec if rule else {}
    if "delay" in spec:
        time.sleep(spec["delay"])
    return spec, (rule.action if rule else None)


# -- server side ----------------------------------------------------------------------

class LoopbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, handler_class, owner):
        self.owner = owner
        super().__init__(address, handler_class)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        self.owner.log("error handling request from %s: %r" % (client_address, exc))
        traceback.print_exc()


class LoopbackHandler(BaseHTTPRequestHandler):
    """Handlers of a LoopbackReceiver: self.owner is the receiver."""

    # headers and body go out in two writes: without this the body waits
    # for the client's delayed ACK, about 40 ms per keep-alive request
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"       # keep-alive
    content_type = "application/json"   # send_body's default
    json_separators = None              # json.dumps's default
    lowercase_headers = False           # send_body's own header names

    # -- connection bookkeeping (so an outage can cut open connections) ----

    def setup(self):
        super().setup()
        self.owner = self.server.owner
        with self.owner._conns_lock:
            self.owner._conns.add(self.connection)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        with self.owner._conns_lock:
            self.owner._conns.discard(self.connection)

    def log_message(self, fmt, *args):
        pass                            # quiet unless something is wrong

    def log_error(self, fmt, *args):
        self.owner.log("%s: %s" % (self.address_string(), fmt % args))

    # -- dispatch ---------------------------------------------------------

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def dispatch(self):
        try:
            self.respond()
        except CLIENT_GONE:
            self.close_connection = True

    def respond(self):
        raise NotImplementedError

    # -- answers ----------------------------------------------------------

    def send_body(self, status, body, content_type=_DEFAULT, extra=()):
        """Answer status with body (bytes, str, or a dict/list sent as JSON), a
        Content-Type (None: none), Content-Length and the `extra` headers."""
        if content_type is _DEFAULT:
            content_type = self.content_type
        if isinstance(body, (dict, list)):
            body = json.dumps(body, separators=self.json_separators).encode()
        elif isinstance(body, str):
            body = body.encode()
        names = ("Content-Type", "Content-Length", "Connection")
        if self.lowercase_headers:
            names = tuple(n.lower() for n in names)
        self.send_response(status)
        if content_type is not None:
            self.send_header(names[0], content_type)
        self.send_header(names[1], str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        if self.close_connection:
            self.send_header(names[2], "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def drop(self, rst=False):
        """Close the connection without sending anything (rst: with a TCP RST)."""
        self.close_connection = True
        if rst:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- request bodies ---------------------------------------------------

    def read_chunked(self, limit, blank_size_ends=False):
        """The body of a Transfer-Encoding: chunked request, trailers skipped.
        BodyTooLarge before reading a chunk that would take it over `limit`
        bytes; ValueError for a chunk size that is not hex (blank_size_ends: a
        blank size line, or the end of the stream, ends the body).  Either way
        close_connection is set."""
        chunks = []
        total = 0
        while True:
            line = self.rfile.readline(65537)
            field = line.split(b";")[0].strip()
            try:
                size = int(field or (b"0" if blank_size_ends else field), 16)
            except ValueError:
                self.close_connection = True
                raise
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > limit:
                self.close_connection = True
                raise BodyTooLarge("more than %d bytes" % limit)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(3)


class LoopbackReceiver:
    """Owns a LoopbackHTTPServer on 127.0.0.1 (handler_class answers) and the
    connections open to it.  Subclasses call super().__init__(); `with` and
    run_until_interrupted() use their start() and url."""

    handler_class = LoopbackHandler
    log = staticmethod(make_log("loopback-receiver"))

    def __init__(self):
        self.port = None
        self._server = None
        self._thread = None
        self._conns = set()
        self._conns_lock = threading.Lock()

    def serve(self, port=0, ssl_context=None, retry=True):
        """A started server on 127.0.0.1:port (0: any free port) and its thread.
        With retry a port that is still taken is tried again for a while (the
        same port after stop())."""
        deadline = time.monotonic() + BIND_RETRY_SECONDS
        while True:
            try:
                server = LoopbackHTTPServer((HOST, port), self.handler_class, self)
                break
            except OSError:
                if not retry or port == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if ssl_context is not None:
            server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever,
                                  kwargs={"poll_interval": POLL_INTERVAL}, daemon=True)
        thread.start()
        return server, thread

    def listen(self, port=0, ssl_context=None, retry=True):
        """Start the receiver's server (see serve()); sets self.port."""
        self._server, self._thread = self.serve(port, ssl_context, retry)
        self.port = self._server.server_address[1]
        return self._server

    def stop(self):
        """Stop listening and cut every open connection."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self.cut_connections()
        self._thread.join(5)
        self._server = None

    def cut_connections(self):
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def run_until_interrupted(self):
        """Standalone use: say where it listens, serve until ^C, then stop()."""
        print("listening on %s" % self.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            self.stop()

    def __enter__(self):
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
