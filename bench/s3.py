#!/usr/bin/python3
"""firehose's s3 destination against a plain boto3 client doing the same job.

    /usr/bin/python3 bench/s3.py [--records N] [--rounds R] [--batch B]
                                 [--warmup N] [--compression none,gzip]

Starts its own throw-away cluster (test/pgcluster.py; as root the server runs
as user postgres) and its own signature-checking S3 server (OpenStack Swift
with s3api, test/s3server.py), both on loopback, and writes the same records
(default 200,000 JSON texts of ~200 bytes, fixed seed) to S3 four ways:

  firehose   one session puts them with put_batch() (B records per call,
             autocommit) into an s3 stream: buffer_size 5 MiB (5242880),
             buffer_interval 300 s (the S3 default: batches are cut by size
             while the puts go on, flush() cuts the rest), max_concurrency 4,
             durable false (the default).  Timed from the first put_batch()
             to the return of firehose.flush(stream, wait => true), which
             returns once every record committed before it is in S3.  A cut
             takes everything committed by then, a little over 5 MiB, which
             the last part of a batch may hold (up to buffer_size + 25%).
  fh-deliver the worker's part alone: the same stream, the records put while
             it is paused (not timed), then timed from firehose.resume() to
             the return of flush(wait => true): one cut, objects of 5 MiB as
             the plain client makes them.
  boto3 seq  this process, outside the database: cut the same records into
             objects the way the worker cuts parts (greedily, at most 5 MiB
             of record bytes each), join each object's records with "\\n"
             (one after every record, as the stream's delimiter), gzip it with
             Python's gzip at level 6 (zlib's default, the level the extension
             uses; Python's own default is 9) for the gzip case, and
             put_object() it, one object after the other.
  boto3 x4   the same, the objects joined, compressed and put by 4 threads
             (one shared client), as many as the stream's max_concurrency.

Both sides sign every request with SigV4 including the payload's SHA-256
(botocore does over plain http), against the same server, objects cut by
the same rule.  The S3 server and PostgreSQL run on the same machine as the
client, so everything shares the CPUs.

Rounds interleave: in every round each contender runs once for each
compression, the order rotating from round to round, so drift hits all
alike; an untimed warm-up (--warmup records) runs first.  Each contender
writes to a bucket of its own (both firehose ones to the stream's), emptied
(outside the timing) before each run.
Printed per run and as medians: records/s, objects and bytes stored, and CPU
seconds read from /proc: the firehose worker (its pid from pg_stat_activity,
backend_type 'firehose worker'), the backend running the put_batch() calls,
this Python process (psycopg2 for firehose; boto3, joining and gzip for the
plain client), and the four Swift processes.  Ratios firehose/boto3 are of
the medians.

Every run is checked: firehose.stream_status must show all records delivered
and none failed, and the bucket must hold objects whose sizes add up to the
expected bytes (exactly, without compression).  Once per contender and
compression (the first measured round) every object is read back,
decompressed and split, and its records must be exactly the records put.

A benchmark: it asserts nothing about the numbers and fails only when
something breaks (servers do not start, records are missing, ...).
"""

import argparse
import collections
import concurrent.futures
import gzip
import json
import os
import random
import signal
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")
BUFFER_SIZE = 5242880           # 5 MiB, the stream's default and the objects' size
GZIP_LEVEL = 6                  # zlib's Z_DEFAULT_COMPRESSION, as src/util.c
CONTENDERS = ("firehose", "fh-deliver", "boto3 seq", "boto3 x4")


# -- data ----------------------------------------------------------------------

EVENTS = ["page_view", "click", "add_to_cart", "checkout", "search", "login", "purchase"]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0",
          "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) Safari/605.1.15",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0",
          "okhttp/4.12.0"]


def make_records(n, seed=20261126):
    """n distinct JSON texts of ~200 bytes (an event log), deterministic."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ev = rng.choice(EVENTS)
        path = rng.choice(["/", "/products/%d" % rng.randrange(100000), "/cart",
                           "/search?q=%s" % rng.choice(["shoes", "lamp", "desk", "tea"]),
                           "/account", "/checkout/step-%d" % rng.randrange(1, 4)])
        out.append(json.dumps({
            "id": i,
            "ts": "2026-11-26T%02d:%02d:%02d.%03dZ" % (i // 36000 % 24, i // 600 % 60,
                                                       i // 10 % 60, rng.randrange(1000)),
            "event": ev, "user_id": rng.randrange(1, 10000000),
            "session": "%032x" % rng.getrandbits(128), "path": path,
            "ms": rng.randrange(1, 2000), "ua": rng.choice(AGENTS),
        }, separators=(",", ":")))
    return out


def cut_objects(records, limit=BUFFER_SIZE):
    """Slices of records as the worker cuts parts: greedily, at most `limit`
    bytes of record data each (delimiters not counted), a lone larger record
    alone."""
    out = []
    start, size = 0, 0
    for i, r in enumerate(records):
        if i > start and size + len(r) > limit:
            out.append(records[start:i])
            start, size = i, 0
        size += len(r)
    out.append(records[start:])
    return out


# -- measuring -----------------------------------------------------------------

def cpu_seconds(pids):
    """utime + stime of the processes (their own, not their children's)."""
    ticks = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / float(TICK)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


class Bench:
    def __init__(self, args, cluster, s3):
        self.args = args
        self.cluster = cluster
        self.s3 = s3
        self.client = s3.client(max_pool_connections=16)
        self.conn = cluster.connect()           # the producer session (autocommit)
        self.cur = self.conn.cursor()
        self.cur.execute("SELECT pg_backend_pid()")
        self.backend_pid = self.cur.fetchone()[0]
        self.s3_pids = sorted(s3.pids.values())
        self.buckets = {}
        self.verified = set()

    # S3 helpers ---------------------------------------------------------------

    def bucket(self, who, comp):
        key = (who, comp)
        if key not in self.buckets:
            name = "bench-%s-%s" % (who.replace(" ", "-"), comp)
            self.client.create_bucket(Bucket=name)
            self.buckets[key] = name
        return self.buckets[key]

    def listing(self, bucket):
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            out += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
        return out

    def empty(self, bucket):
        for key, _ in self.listing(bucket):
            self.client.delete_object(Bucket=bucket, Key=key)
        left = self.listing(bucket)
        if left:
            raise RuntimeError("bucket %s still holds %d objects" % (bucket, len(left)))

    def read_back(self, bucket, comp, expected_sorted):
        """Read every object, decompress, split; compare with the records put."""
        def fetch(key):
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
            return key, gzip.decompress(body) if comp == "gzip" else body

        lines = []
        nbytes = 0
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            for key, body in ex.map(fetch, [k for k, _ in self.listing(bucket)]):
                if not body.endswith(b"\n"):
                    raise RuntimeError("object %s does not end with the delimiter" % key)
                nbytes += len(body)
                lines += body[:-1].split(b"\n")
        if len(lines) != len(expected_sorted) or sorted(lines) != expected_sorted:
            c = collections.Counter(lines)
            want = collections.Counter(expected_sorted)
            raise RuntimeError("bucket %s: read back %d records, %d missing, %d unexpected"
                               % (bucket, len(lines), sum((want - c).values()),
                                  sum((c - want).values())))
        return len(lines), nbytes

    # PostgreSQL helpers ---------------------------------------------------------

    def q(self, sql, params=None):
        self.cur.execute(sql, params)
        return self.cur.fetchall()

    def worker_pid(self):
        for _ in range(200):
            rows = self.q("SELECT pid FROM pg_stat_activity WHERE backend_type = 'firehose worker' "
                          "AND datname = current_database()")
            if rows:
                return rows[0][0]
            time.sleep(0.05)
        raise RuntimeError("no firehose worker in pg_stat_activity")

    def status(self, stream):
        return self.q("SELECT delivered_records, failed_records, buffered_records, "
                      "in_flight_records FROM firehose.stream_status WHERE stream = %s",
                      (stream,))[0]

    def create_stream(self, comp):
        name = "s3_" + comp
        opts = {"bucket": self.bucket("firehose", comp), "endpoint": self.s3.endpoint,
                "path_style": True, "region": self.s3.region,
                "access_key_id": self.s3.access_key, "secret_access_key": self.s3.secret_key,
                "compression": comp, "buffer_size": BUFFER_SIZE,
                "buffer_interval": "300 seconds", "max_concurrency": 4}
        self.q("SELECT firehose.create_stream(%s, 's3', %s::jsonb)", (name, json.dumps(opts)))
        return name

    # the contenders -------------------------------------------------------------

    def put_and_flush(self, stream, texts, paused, other_pids):
        """put_batch() texts into stream (paused: while it is paused, then
        resume() it) and flush(wait => true): the timings and CPU seconds
        (other_cpu: of other_pids), after checking that every record was
        delivered and none failed."""
        if paused:
            self.q("SELECT firehose.pause(%s)", (stream,))
        d0, f0, _, _ = self.status(stream)
        last_delivery = self.q("SELECT coalesce(max(id), 0) FROM firehose.deliveries")[0][0]
        wpid = self.worker_pid()
        pids = [wpid, self.backend_pid] + list(other_pids)
        cpu0 = [cpu_seconds([p]) for p in pids]
        c0 = time.process_time()
        b = self.args.batch
        t0 = t_first = time.perf_counter()
        for i in range(0, len(texts), b):
            self.cur.execute("SELECT firehose.put_batch(%s, %s::text[])", (stream, texts[i:i + b]))
        t_put = time.perf_counter()
        if paused:
            if self.status(stream)[:2] != (d0, f0):
                raise RuntimeError("stream %s delivered while paused" % stream)
            t0 = time.perf_counter()            # delivery only: from resume()
            self.q("SELECT firehose.resume(%s)", (stream,))
        self.cur.execute("SELECT firehose.flush(%s, wait => true, timeout => '300s')", (stream,))
        ok = self.cur.fetchone()[0]
        t1 = time.perf_counter()
        client_cpu = time.process_time() - c0
        cpu1 = [cpu_seconds([p]) for p in pids]
        if not ok:
            raise RuntimeError("firehose.flush(%r, wait => true) timed out" % stream)
        if self.worker_pid() != wpid:
            raise RuntimeError("the firehose worker restarted during the run")
        d1, f1, buf, infl = self.status(stream)
        if (d1 - d0, f1 - f0, buf, infl) != (len(texts), 0, 0, 0):
            raise RuntimeError("stream %s: delivered %d, failed %d, buffered %d, in flight %d "
                               "of %d records" % (stream, d1 - d0, f1 - f0, buf, infl, len(texts)))
        return {"elapsed": t1 - t0, "put": t_put - t_first, "paused": paused,
                "last_delivery": last_delivery,
                "worker_cpu": cpu1[0] - cpu0[0], "backend_cpu": cpu1[1] - cpu0[1],
                "client_cpu": client_cpu, "other_cpu": sum(cpu1[2:]) - sum(cpu0[2:])}

    def run_firehose(self, comp, texts, paused=False):
        stream = "s3_" + comp
        bucket = self.bucket("firehose", comp)
        self.empty(bucket)
        r = self.put_and_flush(stream, texts, paused, self.s3_pids)
        parts = self.q("SELECT count(*) FROM firehose.deliveries WHERE id > %s AND stream = %s "
                       "AND outcome = 'delivered'", (r["last_delivery"], stream))[0][0]
        objs = self.listing(bucket)
        if len(objs) != parts:
            raise RuntimeError("stream %s: %d deliveries but %d objects in %s"
                               % (stream, parts, len(objs), bucket))
        r.update(bucket=bucket, objects=objs, s3_cpu=r.pop("other_cpu"))
        return r

    def run_boto3(self, who, comp, records, threads):
        bucket = self.bucket(who, comp)
        self.empty(bucket)
        client = self.client
        ext = ".gz" if comp == "gzip" else ""

        def upload(job):
            n, recs = job
            body = b"\n".join(recs) + b"\n"
            if comp == "gzip":
                body = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
            client.put_object(Bucket=bucket, Key="boto3/%05d%s" % (n, ext), Body=body)

        cpu0 = cpu_seconds(self.s3_pids)
        c0 = time.process_time()
        t0 = time.perf_counter()
        jobs = list(enumerate(cut_objects(records)))
        if threads == 1:
            for job in jobs:
                upload(job)
        else:
            with concurrent.futures.ThreadPoolExecutor(threads) as ex:
                list(ex.map(upload, jobs))
        t1 = time.perf_counter()
        client_cpu = time.process_time() - c0
        s3_cpu = cpu_seconds(self.s3_pids) - cpu0
        objs = self.listing(bucket)
        if len(objs) != len(jobs):
            raise RuntimeError("%s: %d objects put, %d in %s" % (who, len(jobs), len(objs), bucket))
        return {"elapsed": t1 - t0, "put": None, "paused": False, "bucket": bucket,
                "objects": objs, "worker_cpu": None,
                "backend_cpu": None, "client_cpu": client_cpu, "s3_cpu": s3_cpu}

    def run(self, who, comp, data):
        texts, records, _ = data
        if who in ("firehose", "fh-deliver"):
            r = self.run_firehose(comp, texts, paused=(who == "fh-deliver"))
        else:
            r = self.run_boto3(who, comp, records, 4 if who == "boto3 x4" else 1)
        stored = sum(s for _, s in r["objects"])
        if comp == "none" and stored != sum(len(x) for x in records) + len(records):
            raise RuntimeError("%s/%s: %d bytes stored, expected %d" % (
                who, comp, stored, sum(len(x) for x in records) + len(records)))
        r["stored"] = stored
        r["rps"] = len(records) / r["elapsed"]
        return r


# -- main ------------------------------------------------------------------------

def run_notes(r):
    """What a run's line says of CPU and of the put step: (cpu, extra)."""
    extra = ""
    if r["paused"]:
        extra = " (timed from resume(); put while paused in %.2f s)" % r["put"]
    elif r["put"] is not None:
        extra = " (puts %.2f s, then flush %.2f s)" % (r["put"], r["elapsed"] - r["put"])
    cpu = "client %.2f" % r["client_cpu"]
    if r["worker_cpu"] is not None:
        cpu = "worker %.2f, backend %.2f, %s" % (r["worker_cpu"], r["backend_cpu"], cpu)
    return cpu, extra


def fmt_run(label, who, r):
    cpu, extra = run_notes(r)
    sizes = [s for _, s in r["objects"]]
    return ("  %-8s %-10s %6.2f s %8.0f records/s  %3d objects (%.2f-%.2f MB) %5.1f MB  "
            "CPU s: %s, S3 server %.2f%s"
            % (label, who, r["elapsed"], r["rps"], len(sizes), min(sizes) / 1e6,
               max(sizes) / 1e6, r["stored"] / 1e6, cpu, r["s3_cpu"], extra))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200000, help="records per run (200000)")
    ap.add_argument("--rounds", type=int, default=3, help="measured rounds (3)")
    ap.add_argument("--batch", type=int, default=1000, help="records per put_batch() call (1000)")
    ap.add_argument("--warmup", type=int, default=20000, help="records of the warm-up run (20000)")
    ap.add_argument("--compression", default="none,gzip", help="comma-separated (none,gzip)")
    args = ap.parse_args()
    comps = [c.strip() for c in args.compression.split(",") if c.strip()]
    for c in comps:
        if c not in ("none", "gzip"):
            ap.error("compression must be none or gzip")

    sys.path.insert(0, os.path.join(REPO, "test"))
    os.environ.setdefault("FIREHOSE_PRELOAD", "1")
    import s3server
    from pgcluster import Cluster
    reason = s3server.swift_installed()
    if reason:
        print("bench/s3.py: %s (scripts/install-deps --tests)" % reason, file=sys.stderr)
        return 1
    try:
        import boto3  # noqa: F401
    except ImportError:
        print("bench/s3.py: python3-boto3 is not installed (scripts/install-deps --tests)",
              file=sys.stderr)
        return 1

    def on_term(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)

    t_start = time.monotonic()
    texts = make_records(args.records)
    records = [t.encode() for t in texts]
    data = (texts, records, sorted(records))
    warm = make_records(args.warmup, seed=1)
    warm_data = (warm, [t.encode() for t in warm], None)
    rec_bytes = sum(len(r) for r in records)

    cluster = s3 = None
    try:
        s3 = s3server.start()
        cluster = Cluster(conf={"shared_buffers": "256MB", "max_wal_size": "4GB",
                                "checkpoint_timeout": "1h"})
        cluster.start()
        cluster.psql("CREATE EXTENSION firehose")
        bench = Bench(args, cluster, s3)
        for comp in comps:
            bench.create_stream(comp)
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        print("s3: %d records of %.0f bytes on average (%.1f MB of JSON text); objects of at most "
              "%d bytes of records; %d CPUs, load average %s"
              % (len(records), rec_bytes / len(records), rec_bytes / 1e6, BUFFER_SIZE,
                 os.cpu_count(), load))
        print("  S3: OpenStack Swift + s3api (test/s3server.py) at %s, started in %.1f s"
              % (s3.endpoint, s3.start_seconds or 0))
        print("  firehose:   put_batch() of %d records per call from one session into a stream "
              "with buffer_size %d, buffer_interval 300 s, max_concurrency 4;"
              % (args.batch, BUFFER_SIZE))
        print("              timed from the first put_batch() until flush(wait => true) returns")
        print("  fh-deliver: the same stream and records, put while the stream is paused (not "
              "timed); timed from resume() until flush(wait => true) returns")
        print("  boto3 seq:  boto3 %s put_object() of the same records, joined with \\n "
              "(gzip level %d), one object after the other"
              % (__import__("boto3").__version__, GZIP_LEVEL))
        print("  boto3 x4:   the same, 4 threads")

        # warm-up: connections, the worker's first cuts, caches
        for comp in comps:
            for who in CONTENDERS:
                bench.run(who, comp, warm_data)
        print("  (warm-up of %d records per contender done, %.0f s since start)"
              % (len(warm), time.monotonic() - t_start))

        results = collections.defaultdict(list)
        nc = len(CONTENDERS)
        for rnd in range(args.rounds):
            print()
            order = CONTENDERS[rnd % nc:] + CONTENDERS[:rnd % nc]
            for comp in (comps if rnd % 2 == 0 else comps[::-1]):
                for who in order:
                    r = bench.run(who, comp, data)
                    results[(who, comp)].append(r)
                    print(fmt_run("round %d" % (rnd + 1), who, r) + "  [%s]" % comp)
                    if (who, comp) not in bench.verified:
                        n, nbytes = bench.read_back(r["bucket"], comp, data[2])
                        bench.verified.add((who, comp))
                        print("           read back: %d objects, %d records, %d bytes "
                              "decompressed: exactly the records put"
                              % (len(r["objects"]), n, nbytes))
                    sys.stdout.flush()

        print()
        summary = []
        n = len(records)
        for comp in comps:
            med = {}
            for who in CONTENDERS:
                rs = results[(who, comp)]
                med[who] = {k: median([r[k] for r in rs if r[k] is not None])
                            for k in ("rps", "elapsed", "put", "client_cpu", "s3_cpu",
                                      "worker_cpu", "backend_cpu", "stored")}
                med[who]["objects"] = median([len(r["objects"]) for r in rs])
            print("== compression %s, medians of %d rounds" % (comp, args.rounds))
            for who in CONTENDERS:
                m = med[who]
                if who in ("firehose", "fh-deliver"):
                    cpu = ("worker %.2f s (%.1f us/record), put_batch backend %.2f s, "
                           "client %.2f s" % (m["worker_cpu"], m["worker_cpu"] * 1e6 / n,
                                              m["backend_cpu"], m["client_cpu"]))
                else:
                    cpu = "client %.2f s (%.1f us/record)" % (m["client_cpu"],
                                                                m["client_cpu"] * 1e6 / n)
                print("  %-10s %8.0f records/s %6.2f s %3.0f objects %6.1f MB  CPU %s; "
                      "S3 server %.2f s" % (who, m["rps"], m["elapsed"], m["objects"],
                                            m["stored"] / 1e6, cpu, m["s3_cpu"]))
            fh, fd, seq, x4 = (med[w] for w in CONTENDERS)
            print("  ratio firehose/boto3, records/s: end to end %.2f (vs sequential), %.2f "
                  "(vs 4 threads); delivery only %.2f, %.2f"
                  % (fh["rps"] / seq["rps"], fh["rps"] / x4["rps"],
                     fd["rps"] / seq["rps"], fd["rps"] / x4["rps"]))
            print("  ratio CPU, firehose worker / boto3 client: %.2f (vs sequential), %.2f "
                  "(vs 4 threads)" % (fh["worker_cpu"] / seq["client_cpu"],
                                      fh["worker_cpu"] / x4["client_cpu"]))
            summary.append(
                "SUMMARY s3 compression=%s records=%d rounds=%d firehose_rps=%.0f "
                "deliver_rps=%.0f boto3_seq_rps=%.0f boto3_x4_rps=%.0f ratio_seq=%.2f "
                "ratio_x4=%.2f deliver_ratio_seq=%.2f deliver_ratio_x4=%.2f put_s=%.2f "
                "worker_cpu_s=%.2f worker_cpu_us=%.1f backend_cpu_s=%.2f boto3_seq_cpu_s=%.2f "
                "boto3_x4_cpu_s=%.2f cpu_ratio_seq=%.2f cpu_ratio_x4=%.2f firehose_objects=%.0f "
                "boto3_objects=%.0f stored_mb=%.1f verified=yes"
                % (comp, n, args.rounds, fh["rps"], fd["rps"], seq["rps"], x4["rps"],
                   fh["rps"] / seq["rps"], fh["rps"] / x4["rps"],
                   fd["rps"] / seq["rps"], fd["rps"] / x4["rps"], fh["put"],
                   fh["worker_cpu"], fh["worker_cpu"] * 1e6 / n, fh["backend_cpu"],
                   seq["client_cpu"], x4["client_cpu"],
                   fh["worker_cpu"] / seq["client_cpu"], fh["worker_cpu"] / x4["client_cpu"],
                   fh["objects"], seq["objects"], fh["stored"] / 1e6))
        print("  (ratio > 1: firehose delivered faster or used more CPU; CPU s are utime + stime "
              "from /proc; client = this Python process)")
        print("  total %.0f s" % (time.monotonic() - t_start))
        print()
        for s in summary:
            print(s)
    finally:
        if cluster is not None:
            cluster.destroy()
        if s3 is not None:
            s3.stop(remove=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
