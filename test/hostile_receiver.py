#!/usr/bin/python3
"""A hostile HTTP endpoint for firehose tests: every request to it gets one
kind of bad answer.  In-process (threads), Python standard library only, on
the loopback server pieces of loopback_http.py.

    HostileReceiver(behaviour, **params).start() -> self; .stop(), .url, .port
      .connections     connections accepted so far
      .bytes_sent      bytes written to clients in all (the answer's body or
                       headers; kept small when the client hangs up early)
      .wait_connections(n, timeout)

Behaviours (the request itself is read normally, body included):

  garbage          bytes that are not HTTP, then close
  huge_body        200, Content-Type application/json, Content-Length of
                   `size` bytes (default 2 GiB), streamed from one reused
                   1 MiB buffer until the client hangs up: never held whole
  trickled_body    200 with a Content-Length of 1 MiB, one byte every
                   `interval` seconds (default 0.1): a body that never ends
  endless_headers  a status line, then header lines without end (as fast as
                   the client reads them), never the blank line
  tls_stall        for an https:// URL: accept the connection, read the
                   ClientHello and never answer, until the client hangs up
  reset_half_body  200 with a Content-Length, half the body, then a TCP RST
  bad_error_text   `status` (default 500) with a body of invalid UTF-8 and
                   NUL bytes (text/plain)
  wrong_request_id 200 application/json in the Firehose format, but with a
                   requestId that is not the request's
  redirect         `status` (302 or 307) with Location: `location`

    python3 test/hostile_receiver.py BEHAVIOUR [--port N]   serves until ^C
"""

import argparse
import json
import threading
import time
import uuid

from loopback_http import CLIENT_GONE, LoopbackHandler, LoopbackReceiver, make_log

BEHAVIOURS = ("garbage", "huge_body", "trickled_body", "endless_headers", "tls_stall",
              "reset_half_body", "bad_error_text", "wrong_request_id", "redirect")

GARBAGE = b"\x16\x03\x01\x00\xff garbage \x00\xff\xfe not HTTP at all \r\n\r\n" * 8
BAD_TEXT = b"bad \xff\xfe text \x00 after a NUL \xc3\x28 \xed\xa0\x80 end"
CHUNK = 1024 * 1024

log = make_log("hostile-receiver")


class Handler(LoopbackHandler):
    server_version = "firehose-hostile-receiver/1.0"

    def setup(self):
        super().setup()
        with self.owner.lock:
            self.owner.connections += 1
            self.owner.lock.notify_all()

    def handle(self):
        if self.owner.behaviour == "tls_stall":
            # no HTTP at all: swallow the ClientHello, say nothing
            try:
                while self.connection.recv(65536):
                    pass
            except OSError:
                pass
            return
        super().handle()

    def sent(self, data):
        self.wfile.write(data)
        self.wfile.flush()
        with self.owner.lock:
            self.owner.bytes_sent += len(data)

    def respond(self):
        n = self.headers.get("Content-Length")
        body = self.rfile.read(int(n)) if n else b""
        self.close_connection = True
        getattr(self, "answer_" + self.owner.behaviour)(body)

    def answer_garbage(self, body):
        self.sent(GARBAGE)

    def head(self, status, headers):
        lines = ["HTTP/1.1 %d Hostile" % status] + ["%s: %s" % kv for kv in headers]
        self.sent(("\r\n".join(lines) + "\r\n\r\n").encode())

    def answer_huge_body(self, body):
        size = self.owner.params.get("size", 2 * 1024 ** 3)
        self.head(200, [("Content-Type", "application/json"), ("Content-Length", size)])
        block = b" " * CHUNK
        left = size
        while left > 0:
            self.sent(block[:min(left, CHUNK)])
            left -= CHUNK

    def answer_trickled_body(self, body):
        interval = self.owner.params.get("interval", 0.1)
        self.head(200, [("Content-Type", "application/json"), ("Content-Length", CHUNK)])
        for _ in range(CHUNK):
            self.sent(b" ")
            time.sleep(interval)

    def answer_endless_headers(self, body):
        self.sent(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        line = b"X-Hostile-%d: " + b"h" * 1000 + b"\r\n"
        i = 0
        while True:
            self.sent(b"".join(line % (i + k) for k in range(64)))
            i += 64

    def answer_reset_half_body(self, body):
        size = 64 * 1024
        self.head(200, [("Content-Type", "application/json"), ("Content-Length", size)])
        self.sent(b"{" + b" " * (size // 2 - 1))
        self.drop(rst=True)

    def answer_bad_error_text(self, body):
        self.send_body(self.owner.params.get("status", 500), BAD_TEXT, content_type="text/plain")

    def answer_wrong_request_id(self, body):
        self.send_body(200, {"requestId": str(uuid.uuid4()),
                             "timestamp": int(time.time() * 1000)})

    def answer_redirect(self, body):
        self.send_body(self.owner.params.get("status", 302), b"",
                       extra=[("Location", self.owner.params["location"])])


class HostileReceiver(LoopbackReceiver):
    handler_class = Handler
    log = staticmethod(log)

    def __init__(self, behaviour, port=0, **params):
        if behaviour not in BEHAVIOURS:
            raise ValueError("behaviour must be one of %s" % ", ".join(BEHAVIOURS))
        super().__init__()
        self.behaviour = behaviour
        self.params = params
        self.port = port
        self.lock = threading.Condition()
        self.connections = 0
        self.bytes_sent = 0

    def start(self):
        self.listen(self.port, retry=False)
        return self

    @property
    def url(self):
        scheme = "https" if self.behaviour == "tls_stall" else "http"
        return "%s://127.0.0.1:%d/hostile" % (scheme, self.port)

    def wait_connections(self, n, timeout=30.0):
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.connections < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("%d of %d connections to the hostile receiver"
                                       % (self.connections, n))
                self.lock.wait(left)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("behaviour", choices=BEHAVIOURS)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--params", default="{}", help="JSON object of the behaviour's parameters")
    args = ap.parse_args(argv)
    HostileReceiver(args.behaviour, args.port, **json.loads(args.params)).start() \
        .run_until_interrupted()


if __name__ == "__main__":
    main()
