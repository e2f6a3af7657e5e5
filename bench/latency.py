#!/usr/bin/python3
"""Commit-to-receipt latency of a firehose stream with buffer_interval 0.

    /usr/bin/python3 bench/latency.py [--records N] [--rate R] [--writers 2,10]

Starts its own throw-away cluster (test/pgcluster.py; as root the server runs
as user postgres) and a minimal Firehose HTTP endpoint (this file run with
--receiver: it answers every POST with the protocol's success response,
validates nothing, and notes for every record the time.time() at which its
request body had been read).  One stream, buffer_interval 0, delivers to it.

For each writer count (default 2 and 10) the writers, one connection each,
put --records records in total at a steady --rate per second (spread evenly
over the writers), one record per transaction:
    BEGIN; SELECT firehose.put('lat', <record>); COMMIT
and take time.time() right after COMMIT returns.  Every record is unique text
(case, writer, sequence number), so the receiver's time for it can be matched
with its commit time.  Latency = receipt time - commit time, in milliseconds;
prints p50, p90, p99 and max, and how many records each request carried.
Client and receiver run on the same machine, so they share one clock.

A benchmark: it asserts nothing about the numbers and fails only when
something breaks (records never arrive, the server will not start, ...).
"""

import argparse
import base64
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PY = "/usr/bin/python3"


# -- the receiver (a separate process: --receiver) ---------------------------

class Receipts:
    lock = threading.Lock()
    times = {}          # record text -> first receipt time (epoch seconds)
    duplicates = 0
    requests = 0


class ReceiverHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive, as the worker expects
    # TCP_NODELAY, and each response in one write: otherwise the body, sent
    # after the headers, waits for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.wfile.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s"
                         % (status, b"OK" if status == 200 else b"Error", len(body), body))

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        t = time.time()                 # the whole request is here
        if self.path.startswith("/_control/reset"):
            with Receipts.lock:
                Receipts.times = {}
                Receipts.duplicates = 0
                Receipts.requests = 0
            return self.reply(200, {"ok": True})
        doc = json.loads(body)
        recs = [base64.b64decode(r["data"]).decode("utf-8", "replace")
                for r in doc.get("records", [])]
        with Receipts.lock:
            Receipts.requests += 1
            for r in recs:
                if r in Receipts.times:
                    Receipts.duplicates += 1
                else:
                    Receipts.times[r] = t
        self.reply(200, {"requestId": doc.get("requestId"),
                         "timestamp": int(time.time() * 1000)})

    def do_GET(self):
        with Receipts.lock:
            if self.path.startswith("/_control/times"):
                out = {"times": dict(Receipts.times)}
            else:
                out = {}
            out.update(count=len(Receipts.times), duplicates=Receipts.duplicates,
                       requests=Receipts.requests)
        self.reply(200, out)


def run_receiver(portfile):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), ReceiverHandler)
    srv.daemon_threads = True
    with open(portfile + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(portfile + ".tmp", portfile)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


# -- the client ----------------------------------------------------------------

def http(url, data=None):
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@contextlib.contextmanager
def cluster_and_receiver(name):
    """A throw-away cluster with the extension created, and this file's receiver
    running beside it; yields (cluster, receiver URL) and removes both after."""
    sys.path.insert(0, os.path.join(REPO, "test"))
    os.environ.setdefault("FIREHOSE_PRELOAD", "1")
    from pgcluster import Cluster

    tmp = tempfile.mkdtemp(prefix="firehose-%s-" % name)
    portfile = os.path.join(tmp, "receiver.port")
    recv = subprocess.Popen([PY, os.path.abspath(__file__), "--receiver", "--portfile", portfile])
    cluster = None
    try:
        cluster = Cluster().start()
        for _ in range(200):
            if os.path.exists(portfile):
                break
            time.sleep(0.05)
        with open(portfile) as f:
            rurl = "http://127.0.0.1:%d" % int(f.read())
        cluster.psql("CREATE EXTENSION firehose")
        yield cluster, rurl
    finally:
        recv.terminate()
        recv.wait()
        if cluster is not None:
            cluster.destroy()
        try:
            os.remove(portfile)
        except OSError:
            pass
        os.rmdir(tmp)


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    k = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[k - 1]


PAD = "x" * 48


def writer(cluster, case, w, n, interval, start, commits, rtts, errors):
    try:
        conn = cluster.connect(autocommit=False)
        cur = conn.cursor()
        cur.execute("SELECT 1")        # connection warm, outside the timing
        conn.commit()
        for i in range(n):
            due = start + i * interval
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            rec = '{"case":"%s","w":%d,"i":%d,"pad":"%s"}' % (case, w, i, PAD)
            cur.execute("SELECT firehose.put('lat', %s)", (rec,))
            before = time.time()
            conn.commit()
            commits[rec] = time.time()
            rtts.append(commits[rec] - before)
        conn.close()
    except Exception as e:             # reported by the main thread
        errors.append("writer %d: %r" % (w, e))


def run_case(cluster, rurl, writers, records, rate, label):
    http(rurl + "/_control/reset", b"")
    first_delivery = cluster.psql("SELECT coalesce(max(id), 0) FROM firehose.deliveries")[0][0]
    per_writer = [records // writers + (1 if w < records % writers else 0) for w in range(writers)]
    interval = writers / float(rate)    # each writer's pace; together `rate`
    commits = {}
    rtts = []
    errors = []
    t0 = time.time() + 0.5
    threads = [threading.Thread(target=writer,
                                args=(cluster, label, w, per_writer[w], interval,
                                      t0 + w / float(rate), commits, rtts, errors))
               for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - t0
    if errors:
        raise RuntimeError("; ".join(errors))

    deadline = time.time() + 60
    while True:
        st = http(rurl + "/_control/stats")
        if st["count"] >= len(commits) or time.time() > deadline:
            break
        time.sleep(0.05)
    got = http(rurl + "/_control/times")
    times = got["times"]
    lat = sorted((times[r] - c) * 1000.0 for r, c in commits.items() if r in times)
    missing = len(commits) - len(lat)
    nreq, nrec = cluster.psql(
        "SELECT count(*), coalesce(sum(records), 0) FROM firehose.deliveries "
        "WHERE id > %s AND outcome = 'delivered'", params=(first_delivery,))[0]

    print("== %d writer%s: %d records at %g/s, one put per transaction (achieved %.0f/s)"
          % (writers, "s" if writers > 1 else "", len(commits), rate, len(commits) / elapsed))
    print("  received %d of %d in %d requests (%.1f records per request)%s%s"
          % (len(lat), len(commits), got["requests"], len(lat) / max(1, got["requests"]),
             ", %d MISSING" % missing if missing else "",
             ", %d duplicates" % got["duplicates"] if got["duplicates"] else ""))
    print("  firehose.deliveries: %d delivered requests, %d records" % (nreq, nrec))
    if not lat:
        raise RuntimeError("no record arrived")
    res = {"p50": percentile(lat, 50), "p90": percentile(lat, 90),
           "p99": percentile(lat, 99), "max": lat[-1], "min": lat[0],
           "mean": sum(lat) / len(lat), "missing": missing}
    print("  commit-to-receipt latency: p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms"
          "  (min %.1f, mean %.1f)"
          % (res["p50"], res["p90"], res["p99"], res["max"], res["min"], res["mean"]))
    rtts.sort()
    early = sum(1 for x in lat if x < 0)
    print("  for scale: COMMIT round trip seen by the client p50 %.2f ms, p99 %.2f ms, max %.1f ms;"
          % (percentile(rtts, 50) * 1000, percentile(rtts, 99) * 1000, rtts[-1] * 1000))
    print("  %d record%s arrived before the writer saw its COMMIT return (client-side delay)"
          % (early, "" if early == 1 else "s"))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--portfile", help=argparse.SUPPRESS)
    ap.add_argument("--records", type=int, default=2000, help="records per case (default 2000)")
    ap.add_argument("--rate", type=float, default=200.0,
                    help="records per second, all writers together (default 200)")
    ap.add_argument("--writers", default="2,10",
                    help="comma-separated writer counts, one case each (default 2,10)")
    args = ap.parse_args()
    if args.receiver:
        return run_receiver(args.portfile)

    summary = []
    with cluster_and_receiver("latency") as (cluster, rurl):
        cluster.psql("SELECT firehose.create_stream('lat', 'http', %s)",
                     params=(json.dumps({"url": rurl + "/", "buffer_interval": 0}),))
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        print("latency: stream 'lat' with buffer_interval 0 (max_concurrency 1) -> %s "
              "(bench/latency.py --receiver); %d CPUs, load average %s"
              % (rurl, os.cpu_count(), load))
        # warm-up: the worker's first cut, the curl connection
        for i in range(20):
            cluster.psql("SELECT firehose.put('lat', %s)", params=("warm-up %d" % i,))
        cluster.psql("SELECT firehose.flush('lat', wait => true)")

        for writers in [int(x) for x in args.writers.split(",") if x.strip()]:
            print()
            r = run_case(cluster, rurl, writers, args.records, args.rate, "w%d" % writers)
            summary.append("SUMMARY latency writers=%d records=%d rate=%g p50_ms=%.1f p90_ms=%.1f "
                           "p99_ms=%.1f max_ms=%.1f missing=%d"
                           % (writers, args.records, args.rate, r["p50"], r["p90"], r["p99"],
                              r["max"], r["missing"]))
        print()
        for s in summary:
            print(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
