#!/usr/bin/python3
"""firehose's opensearch destination against a plain http.client bulk client.

    /usr/bin/python3 bench/opensearch.py [--records N] [--rounds R] [--batch B]
                                         [--warmup N]

Starts its own throw-away cluster (test/pgcluster.py; as root the server runs
as user postgres) and the OpenSearch _bulk receiver of the tests
(test/opensearch_receiver.py) in a process of its own, both on loopback, and
indexes the same records (default 200,000 JSON objects of ~200 bytes, fixed
seed, bench/s3.py's make_records) four ways:

  firehose   one session puts them with put_batch() (B records per call,
             autocommit) into an opensearch stream: index_rotation none,
             document_id firehose (the default: "<stream>-<record id>"),
             buffer_size 5 MiB (5242880, the default), buffer_interval 300 s
             (batches are cut by size while the puts go on, flush() cuts the
             rest), max_concurrency 4.  Timed from the first put_batch() to
             the return of firehose.flush(stream, wait => true), which returns
             once every record committed before it is indexed.  A _bulk
             request carries at most 10,000 documents and 50 MiB of records
             (src/sink_opensearch.c, os_limits) and at most buffer_size bytes
             of records, so one carries 10,000 of these records (~2 MB) and a
             5 MiB cut while the puts go on makes requests of 10,000, 10,000
             and ~5,000.
  fh-deliver the worker's part alone: the same stream, the records put while
             it is paused (not timed), then timed from firehose.resume() to
             the return of flush(wait => true): one cut, requests of 10,000
             documents as the plain client makes them.
  plain seq  this process, outside the database: cut the same records into
             _bulk requests the way the worker cuts parts (greedily, at most
             10,000 records and 5 MiB of record bytes each: 10,000), build the
             NDJSON (an {"index":{"_index":..,"_id":..}} line, ids "<name>-<n>"
             like the stream's, then the record, each line ending in "\\n"),
             POST it to /_bulk over one keep-alive http.client connection
             (Content-Type: application/x-ndjson), parse the JSON answer and
             check that "errors" is false and every item's status is 2xx; one
             request after the other.
  plain x4   the same, 4 threads with a connection each, as many as the
             stream's max_concurrency.

The receiver is the tests' pure-Python one: it parses every action and
document line with json and keeps every request, item and document in memory,
so it is the slowest part of the pipeline and bounds every contender's
records/s; its CPU is printed apart.  To count and read the documents it holds
and to empty it between runs it needs a control API, which its command line
(test/opensearch_receiver.py --port N) does not have: this script runs it in a
child process of its own (bench/opensearch.py --serve-receiver, the unchanged
OpenSearchReceiver and its _bulk handler, plus GET /_bench/state and POST
/_bench/reset), so it has its own CPUs and GIL and its CPU time is its own.
PostgreSQL, the receiver and the client run on the same machine, so
everything shares the CPUs.

Rounds interleave: in every round each contender runs once, the order rotating
from round to round, so drift hits all alike; an untimed warm-up (--warmup
records) runs first.  Each contender indexes into an index of its own (both
firehose ones into the stream's); the receiver is emptied (outside the timing)
before each run.
Printed per run and as medians: records/s, _bulk requests, and CPU seconds
read from /proc: the firehose worker (its pid from pg_stat_activity,
backend_type 'firehose worker'), the backend running the put_batch() calls,
this Python process (psycopg2 for firehose; building, sending and checking
the requests for the plain client) and the receiver process.  Ratios
firehose/plain are of the medians.

Every run is checked: firehose.stream_status must show all records delivered
and none failed, as many _bulk requests reached the receiver as deliveries
were recorded, the receiver must have noted no violation (test/
opensearch_receiver.py: anything the destination must never send) and no
failed item, and it must hold exactly the expected set of document ids in the
run's index and nothing else: for firehose "<stream>-<id>" for each record id
the run took from firehose.record_id_seq, for the plain client the ids it
sent.  Once per contender (the first measured round) every document is read
back and must be exactly the record put under its id.

A benchmark: it asserts nothing about the numbers and fails only when
something breaks (servers do not start, documents are missing, ...).
"""

import argparse
import collections
import http.client
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from s3 import Bench as S3Bench, cpu_seconds, make_records, median, run_notes  # noqa: E402

BUFFER_SIZE = 5242880           # 5 MiB, the stream's default
MAX_DOCS = 10000                # OS_MAX_RECORDS: documents per _bulk request
MAX_BYTES = 100 * 1024 * 1024 // 2   # OS_MAX_BODY / 2: record bytes per request
STREAM = "os_bench"
CONTENDERS = ("firehose", "fh-deliver", "plain seq", "plain x4")
INDEX = {"firehose": "bench-firehose", "fh-deliver": "bench-firehose",
         "plain seq": "bench-plain-seq", "plain x4": "bench-plain-x4"}
ID_PREFIX = {"plain seq": "plain_seq", "plain x4": "plain_x4"}


# -- the receiver, in a process of its own -------------------------------------

def serve_receiver(portfile, parent):
    """The tests' OpenSearchReceiver with a control API, until SIGTERM or the
    parent is gone.  GET /_bench/state?index=I[&sources=1] -> {"index_ids" |
    "index_docs" ([id, source] pairs), "total_docs", "bulk_requests",
    "failed_items", "violations"}; POST /_bench/reset forgets everything."""
    sys.path.insert(0, os.path.join(REPO, "test"))
    import opensearch_receiver as osr
    from loopback_http import write_portfile
    from urllib.parse import parse_qs

    class BenchHandler(osr.Handler):
        def route(self, entry, url, body, started):
            if not url.path.startswith("/_bench/"):
                return super().route(entry, url, body, started)
            rcv = self.owner
            if url.path == "/_bench/reset" and self.command == "POST":
                rcv.reset()
                return self.send_body(200, {"reset": True})
            if url.path == "/_bench/state" and self.command == "GET":
                q = parse_qs(url.query)
                index = q.get("index", [""])[0]
                sources = q.get("sources", ["0"])[0] == "1"
                st = rcv.state
                with st.lock:
                    out = {"total_docs": len(st.docs),
                           "bulk_requests": sum(1 for r in st.requests if r.get("bulk")),
                           "failed_items": sum(1 for i in st.items
                                               if not 200 <= i["status"] < 300),
                           "violations": st.violations[:20]}
                    if sources:
                        out["index_docs"] = [[i, d["raw"].decode()]
                                             for (x, i), d in st.docs.items() if x == index]
                    else:
                        out["index_ids"] = [i for (x, i) in st.docs if x == index]
                return self.send_body(200, out)
            return self.send_body(404, {"error": "no such control endpoint"})

    class BenchReceiver(osr.OpenSearchReceiver):
        handler_class = BenchHandler

    rcv = BenchReceiver().start()
    write_portfile(portfile, rcv.port)
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(0))
    while os.getppid() == parent:
        time.sleep(0.5)
    rcv.stop()
    return 0


class Receiver:
    """The receiver's process: start(), url, pid, state(index), reset(), stop()."""

    def __init__(self):
        self.proc = None
        self.tmp = tempfile.mkdtemp(prefix="bench-os-")
        self.portfile = os.path.join(self.tmp, "port")

    def start(self, timeout=15.0):
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve-receiver", self.portfile,
             "--parent", str(os.getpid())], stdin=subprocess.DEVNULL)
        while not os.path.exists(self.portfile):
            if self.proc.poll() is not None:
                raise RuntimeError("the receiver exited with status %d" % self.proc.returncode)
            if time.monotonic() - t0 > timeout:
                raise RuntimeError("the receiver did not start within %.0f s" % timeout)
            time.sleep(0.05)
        with open(self.portfile) as f:
            self.port = int(f.read())
        self.url = "http://127.0.0.1:%d" % self.port
        self.pid = self.proc.pid
        self.start_seconds = time.monotonic() - t0
        self.ctl = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        return self

    def call(self, method, path):
        self.ctl.request(method, path)
        resp = self.ctl.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError("receiver %s %s: %d %s" % (method, path, resp.status, data[:200]))
        return json.loads(data)

    def reset(self):
        self.call("POST", "/_bench/reset")
        st = self.state("-")
        if st["total_docs"] or st["bulk_requests"]:
            raise RuntimeError("the receiver still holds %d documents after a reset"
                               % st["total_docs"])

    def state(self, index, sources=False):
        return self.call("GET", "/_bench/state?index=%s&sources=%d" % (index, int(sources)))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for name in os.listdir(self.tmp):
            os.unlink(os.path.join(self.tmp, name))
        os.rmdir(self.tmp)


# -- the plain client ------------------------------------------------------------

def cut_requests(records, max_docs=MAX_DOCS, max_bytes=min(MAX_BYTES, BUFFER_SIZE)):
    """Slices of records as the worker cuts parts: greedily, at most max_docs
    records and max_bytes bytes of record data each, a lone larger record
    alone."""
    out = []
    start, size = 0, 0
    for i, r in enumerate(records):
        if i > start and (i - start == max_docs or size + len(r) > max_bytes):
            out.append((start, records[start:i]))
            start, size = i, 0
        size += len(r)
    out.append((start, records[start:]))
    return out


def post_bulk(conn, index, prefix, first, recs):
    """One _bulk request of recs (ids prefix-first, prefix-first+1, ...),
    its answer checked."""
    head = b'{"index":{"_index":"%s","_id":"%s-' % (index.encode(), prefix.encode())
    body = b"".join(b"%s%d\"}}\n%s\n" % (head, first + k, r) for k, r in enumerate(recs))
    conn.request("POST", "/_bulk", body, {"Content-Type": "application/x-ndjson"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError("_bulk: HTTP %d %s" % (resp.status, data[:300]))
    answer = json.loads(data)
    items = answer["items"]
    bad = [i for i in items if not 200 <= next(iter(i.values()))["status"] < 300]
    if answer["errors"] or bad or len(items) != len(recs):
        raise RuntimeError("_bulk: errors %s, %d failed items of %d, %d documents sent"
                           % (answer["errors"], len(bad), len(items), len(recs)))


# -- the benchmark ----------------------------------------------------------------

class Bench(S3Bench):
    """bench/s3.py's Bench for its PostgreSQL helpers (q, worker_pid, status)."""

    def __init__(self, args, cluster, receiver):
        self.args = args
        self.cluster = cluster
        self.rcv = receiver
        self.conn = cluster.connect()           # the producer session (autocommit)
        self.cur = self.conn.cursor()
        self.cur.execute("SELECT pg_backend_pid()")
        self.backend_pid = self.cur.fetchone()[0]
        self.http = [http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=300)
                     for _ in range(4)]
        self.next_id = collections.Counter()    # plain client: next document number
        self.verified = set()

    def create_stream(self):
        opts = {"endpoint": self.rcv.url, "index": INDEX["firehose"], "index_rotation": "none",
                "buffer_size": BUFFER_SIZE, "buffer_interval": "300 seconds",
                "max_concurrency": 4}
        self.q("SELECT firehose.create_stream(%s, 'opensearch', %s::jsonb)",
               (STREAM, json.dumps(opts)))

    def last_record_id(self):
        return self.q("SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END "
                      "FROM firehose.record_id_seq")[0][0]

    def run_firehose(self, texts, paused):
        self.rcv.reset()
        id0 = self.last_record_id()
        r = self.put_and_flush(STREAM, texts, paused, [self.rcv.pid])
        last_delivery = r["last_delivery"]
        id1 = self.last_record_id()
        if id1 - id0 != len(texts):
            raise RuntimeError("record ids %d..%d for %d records" % (id0 + 1, id1, len(texts)))
        outcomes = dict(self.q("SELECT outcome, count(*) FROM firehose.deliveries "
                               "WHERE id > %s AND stream = %s GROUP BY outcome",
                               (last_delivery, STREAM)))
        requests = outcomes.pop("delivered", 0)
        if outcomes:
            raise RuntimeError("stream %s: deliveries other than delivered: %r"
                               % (STREAM, outcomes))
        r.update(requests=requests, ids=("%s-" % STREAM, id0 + 1),
                 receiver_cpu=r.pop("other_cpu"))
        return r

    def run_plain(self, who, records, threads):
        self.rcv.reset()
        index, prefix = INDEX[who], ID_PREFIX[who]
        first = self.next_id[who]
        self.next_id[who] += len(records)
        cpu0 = cpu_seconds([self.rcv.pid])
        c0 = time.process_time()
        t0 = time.perf_counter()
        jobs = cut_requests(records)
        if threads == 1:
            for start, recs in jobs:
                post_bulk(self.http[0], index, prefix, first + start, recs)
        else:
            todo = queue.SimpleQueue()
            for job in jobs:
                todo.put(job)
            errors = []

            def sender(conn):
                try:
                    while not errors:
                        try:
                            start, recs = todo.get_nowait()
                        except queue.Empty:
                            return
                        post_bulk(conn, index, prefix, first + start, recs)
                except Exception as e:      # handed to the main thread
                    errors.append(e)
            ts = [threading.Thread(target=sender, args=(c,)) for c in self.http[:threads]]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            if errors:
                raise errors[0]
        t1 = time.perf_counter()
        client_cpu = time.process_time() - c0
        return {"elapsed": t1 - t0, "put": None, "paused": False, "requests": len(jobs),
                "ids": ("%s-" % prefix, first), "worker_cpu": None, "backend_cpu": None,
                "client_cpu": client_cpu, "receiver_cpu": cpu_seconds([self.rcv.pid]) - cpu0}

    def check(self, who, r, records, read_back):
        """The receiver holds exactly the run's documents (and, with read_back,
        each is the record put under its id)."""
        index = INDEX[who]
        prefix, first = r["ids"]
        want = {"%s%d" % (prefix, first + k) for k in range(len(records))}
        st = self.rcv.state(index, sources=read_back)
        if st["violations"]:
            raise RuntimeError("%s: the receiver noted violations: %r" % (who, st["violations"]))
        if st["failed_items"]:
            raise RuntimeError("%s: %d items failed at the receiver" % (who, st["failed_items"]))
        if st["bulk_requests"] != r["requests"]:
            raise RuntimeError("%s: %d _bulk requests reached the receiver, %d expected"
                               % (who, st["bulk_requests"], r["requests"]))
        docs = st["index_docs"] if read_back else None
        ids = [d[0] for d in docs] if read_back else st["index_ids"]
        got = set(ids)
        if len(ids) != len(records) or got != want or st["total_docs"] != len(ids):
            raise RuntimeError("%s: the receiver holds %d documents (%d in %s): %d missing, %d "
                               "unexpected" % (who, st["total_docs"], len(ids), index,
                                               len(want - got), len(got - want)))
        if read_back:
            n = len(prefix)
            wrong = sum(1 for i, src in docs
                        if src.encode() != records[int(i[n:]) - first])
            if wrong:
                raise RuntimeError("%s: %d documents differ from the records put" % (who, wrong))
        return len(ids)

    def run(self, who, data, read_back=False):
        texts, records = data
        if who in ("firehose", "fh-deliver"):
            r = self.run_firehose(texts, paused=(who == "fh-deliver"))
        else:
            r = self.run_plain(who, records, 4 if who == "plain x4" else 1)
        r["docs"] = self.check(who, r, records, read_back)
        r["rps"] = len(records) / r["elapsed"]
        return r


# -- main ------------------------------------------------------------------------

def fmt_run(label, who, r):
    cpu, extra = run_notes(r)
    return ("  %-8s %-10s %6.2f s %8.0f records/s  %3d requests  CPU s: %s, receiver %.2f%s"
            % (label, who, r["elapsed"], r["rps"], r["requests"], cpu, r["receiver_cpu"], extra))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200000, help="records per run (200000)")
    ap.add_argument("--rounds", type=int, default=3, help="measured rounds (3)")
    ap.add_argument("--batch", type=int, default=1000, help="records per put_batch() call (1000)")
    ap.add_argument("--warmup", type=int, default=20000, help="records of the warm-up run (20000)")
    ap.add_argument("--serve-receiver", metavar="PORTFILE", help=argparse.SUPPRESS)
    ap.add_argument("--parent", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_receiver:
        return serve_receiver(args.serve_receiver, args.parent or os.getppid())
    if args.records < 1 or args.rounds < 1 or args.batch < 1 or args.warmup < 1:
        ap.error("--records, --rounds, --batch and --warmup must be positive")

    sys.path.insert(0, os.path.join(REPO, "test"))
    os.environ.setdefault("FIREHOSE_PRELOAD", "1")
    from pgcluster import Cluster

    def on_term(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)

    t_start = time.monotonic()
    texts = make_records(args.records)
    data = (texts, [t.encode() for t in texts])
    warm = make_records(args.warmup, seed=1)
    warm_data = (warm, [t.encode() for t in warm])
    rec_bytes = sum(len(r) for r in data[1])

    cluster = rcv = None
    try:
        rcv = Receiver()
        rcv.start()
        cluster = Cluster(conf={"shared_buffers": "256MB", "max_wal_size": "4GB",
                                "checkpoint_timeout": "1h"})
        cluster.start()
        cluster.psql("CREATE EXTENSION firehose")
        bench = Bench(args, cluster, rcv)
        bench.create_stream()
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        print("opensearch: %d records of %.0f bytes on average (%.1f MB of JSON text); _bulk "
              "requests of at most %d documents and %d bytes of records; %d CPUs, load "
              "average %s" % (len(texts), rec_bytes / len(texts), rec_bytes / 1e6, MAX_DOCS,
                              BUFFER_SIZE, os.cpu_count(), load))
        print("  receiver: test/opensearch_receiver.py (Python, in its own process, pid %d) at "
              "%s, started in %.1f s" % (rcv.pid, rcv.url, rcv.start_seconds))
        print("  firehose:   put_batch() of %d records per call from one session into a stream "
              "with buffer_size %d, buffer_interval 300 s, max_concurrency 4;"
              % (args.batch, BUFFER_SIZE))
        print("              timed from the first put_batch() until flush(wait => true) returns")
        print("  fh-deliver: the same stream and records, put while the stream is paused (not "
              "timed); timed from resume() until flush(wait => true) returns")
        print("  plain seq:  http.client POST /_bulk of the same records (NDJSON, answers "
              "parsed and checked), one request after the other on one keep-alive connection")
        print("  plain x4:   the same, 4 threads with a connection each")

        # warm-up: connections, the worker's first cuts, caches
        for who in CONTENDERS:
            bench.run(who, warm_data)
        print("  (warm-up of %d records per contender done, %.0f s since start)"
              % (len(warm), time.monotonic() - t_start))

        results = collections.defaultdict(list)
        nc = len(CONTENDERS)
        for rnd in range(args.rounds):
            print()
            order = CONTENDERS[rnd % nc:] + CONTENDERS[:rnd % nc]
            for who in order:
                read_back = who not in bench.verified
                r = bench.run(who, data, read_back)
                results[who].append(r)
                print(fmt_run("round %d" % (rnd + 1), who, r))
                if read_back:
                    bench.verified.add(who)
                    print("           read back: %d documents, exactly the records put under "
                          "the expected ids" % r["docs"])
                sys.stdout.flush()

        print()
        n = len(texts)
        med = {}
        for who in CONTENDERS:
            rs = results[who]
            med[who] = {k: median([r[k] for r in rs if r[k] is not None])
                        for k in ("rps", "elapsed", "put", "client_cpu", "receiver_cpu",
                                  "worker_cpu", "backend_cpu", "requests")}
        print("== medians of %d rounds" % args.rounds)
        for who in CONTENDERS:
            m = med[who]
            if who in ("firehose", "fh-deliver"):
                cpu = ("worker %.2f s (%.1f us/record), put_batch backend %.2f s, client %.2f s"
                       % (m["worker_cpu"], m["worker_cpu"] * 1e6 / n, m["backend_cpu"],
                          m["client_cpu"]))
            else:
                cpu = "client %.2f s (%.1f us/record)" % (m["client_cpu"],
                                                          m["client_cpu"] * 1e6 / n)
            print("  %-10s %8.0f records/s %6.2f s %3.0f requests  CPU %s; receiver %.2f s"
                  % (who, m["rps"], m["elapsed"], m["requests"], cpu, m["receiver_cpu"]))
        fh, fd, seq, x4 = (med[w] for w in CONTENDERS)
        print("  ratio firehose/plain, records/s: end to end %.2f (vs sequential), %.2f "
              "(vs 4 threads); delivery only %.2f, %.2f"
              % (fh["rps"] / seq["rps"], fh["rps"] / x4["rps"],
                 fd["rps"] / seq["rps"], fd["rps"] / x4["rps"]))
        print("  ratio CPU, firehose worker / plain client: %.2f (vs sequential), %.2f "
              "(vs 4 threads)" % (fh["worker_cpu"] / seq["client_cpu"],
                                  fh["worker_cpu"] / x4["client_cpu"]))
        print("  (ratio > 1: firehose delivered faster or used more CPU; CPU s are utime + stime "
              "from /proc; client = this Python process)")
        print("  total %.0f s" % (time.monotonic() - t_start))
        print()
        print("SUMMARY opensearch records=%d rounds=%d firehose_rps=%.0f deliver_rps=%.0f "
              "plain_seq_rps=%.0f plain_x4_rps=%.0f ratio_seq=%.2f ratio_x4=%.2f "
              "deliver_ratio_seq=%.2f deliver_ratio_x4=%.2f put_s=%.2f worker_cpu_s=%.2f "
              "worker_cpu_us=%.1f backend_cpu_s=%.2f plain_seq_cpu_s=%.2f plain_x4_cpu_s=%.2f "
              "cpu_ratio_seq=%.2f cpu_ratio_x4=%.2f receiver_cpu_s=%.2f firehose_requests=%.0f "
              "plain_requests=%.0f verified=yes"
              % (n, args.rounds, fh["rps"], fd["rps"], seq["rps"], x4["rps"],
                 fh["rps"] / seq["rps"], fh["rps"] / x4["rps"],
                 fd["rps"] / seq["rps"], fd["rps"] / x4["rps"], fh["put"],
                 fh["worker_cpu"], fh["worker_cpu"] * 1e6 / n, fh["backend_cpu"],
                 seq["client_cpu"], x4["client_cpu"],
                 fh["worker_cpu"] / seq["client_cpu"], fh["worker_cpu"] / x4["client_cpu"],
                 fh["receiver_cpu"], fh["requests"], seq["requests"]))
    finally:
        if cluster is not None:
            cluster.destroy()
        if rcv is not None:
            rcv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
