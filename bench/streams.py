#!/usr/bin/python3
"""Many streams in one database: the worker's CPU and the delivery latency.

    /usr/bin/python3 bench/streams.py [--seconds S] [--idle-seconds S]
                                      [--cases 10,100,1000,1000:10] [--perf]

Starts its own throw-away cluster (test/pgcluster.py) and bench/latency.py's
receiver (a Firehose HTTP endpoint noting when each record arrived).  Streams
s1, s2, ... (http, buffer_interval 1 s, one request at a time each) deliver
to it.  Each case "N" or "N:A" has N streams of which A (default N) receive
records: pgbench puts A records a second in total for --seconds, each into
one of the A active streams picked at random, one record per transaction,
so that each active stream gets a record a second on average.  Streams are
created as the cases need them and kept, so run the cases in growing N.

Printed for each case: the worker's CPU (utime + stime of /proc/<pid>/stat)
over the put phase as a share of one CPU and in microseconds per record,
the time it was runnable but waited for a CPU (/proc/<pid>/schedstat, the
machine's load), and the put-to-receipt latency p50 / p99 / max; and the
worker's CPU over --idle-seconds with all N streams idle.  The summary line
puts CPU per record of each case next to that of the first: a worker whose
cost per pass does not depend on idle streams keeps that ratio near 1 (and
the N:A case near the A case).  --perf records `perf record -g` of the
worker during the largest case into bench/out/streams.perf.data.

A benchmark: it asserts nothing about the numbers and fails only when
something cannot run (a record never arrives, the server will not start).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from latency import cluster_and_receiver, http, percentile  # noqa: E402

PGBIN = os.environ.get("FIREHOSE_PGBIN", "/usr/lib/postgresql/15/bin")
HZ = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(HZ)


def runqueue_seconds(pid):
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[1]) / 1e9


def worker_pid(cluster):
    for _ in range(400):
        rows = cluster.psql("SELECT pid FROM pg_stat_activity "
                            "WHERE backend_type = 'firehose worker' "
                            "AND datname = current_database()")
        if rows:
            return rows[0][0]
        time.sleep(0.05)
    raise RuntimeError("no firehose worker")


def create_streams(cluster, rurl, have, want):
    opts = json.dumps({"url": rurl + "/", "buffer_interval": 1000})
    for k in range(have + 1, want + 1, 100):
        cluster.psql("SELECT firehose.create_stream('s' || g, 'http', %s) "
                     "FROM pg_catalog.generate_series(%s, %s) g",
                     params=(opts, k, min(k + 99, want)))


def run_case(cluster, rurl, tmp, nstreams, active, seconds, idle_seconds, perf):
    pid = worker_pid(cluster)
    # settle: the reload of the new streams, their first (empty) cuts
    cluster.psql("SELECT firehose.flush(wait => true, timeout => '120s')")
    time.sleep(2)
    c0, t0 = cpu_seconds(pid), time.time()
    time.sleep(idle_seconds)
    idle = 100.0 * (cpu_seconds(pid) - c0) / (time.time() - t0)

    http(rurl + "/_control/reset", b"")
    script = os.path.join(tmp, "put.sql")
    with open(script, "w") as f:
        f.write("\\set k random(1, %d)\n"
                "SELECT firehose.put('s' || :k, '{\"t\":' || "
                "extract(epoch FROM pg_catalog.clock_timestamp()) || ',\"k\":' || :k || "
                "',\"r\":' || pg_catalog.random() || '}');\n" % active)
    prof = None
    if perf:
        prof = subprocess.Popen(["perf", "record", "-g", "-o",
                                 os.path.join(REPO, "bench", "out", "streams.perf.data"),
                                 "-p", str(pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c0, q0, t0 = cpu_seconds(pid), runqueue_seconds(pid), time.time()
    pgb = subprocess.run([os.path.join(PGBIN, "pgbench"), "-h", cluster.host,
                          "-p", str(cluster.port), "-U", cluster.user, "-n",
                          "-M", "prepared", "-c", "2", "-j", "2", "-R", str(active),
                          "-T", str(seconds), "-f", script, "postgres"],
                         capture_output=True, text=True)
    if pgb.returncode != 0:
        raise RuntimeError("pgbench failed: %s%s" % (pgb.stdout, pgb.stderr))
    # the last records' buffer interval: what they cost belongs to the case
    cluster.psql("SELECT firehose.flush(wait => true, timeout => '120s')")
    c1, q1, t1 = cpu_seconds(pid), runqueue_seconds(pid), time.time()
    if prof is not None:
        prof.send_signal(2)
        prof.wait()
    put = int(re.search(r"number of transactions actually processed: (\d+)", pgb.stdout).group(1))
    times = http(rurl + "/_control/times")
    lat = sorted((v - json.loads(k)["t"]) * 1000.0 for k, v in times["times"].items())
    if not lat:
        raise RuntimeError("no record arrived")
    cpu = c1 - c0
    return {"streams": nstreams, "active": active, "records": len(lat),
            "duplicates": times["duplicates"], "requests": times["requests"],
            "cpu_pct": 100.0 * cpu / (t1 - t0), "cpu_us": 1e6 * cpu / len(lat),
            "rq_s": q1 - q0, "secs": t1 - t0, "idle_pct": idle,
            "p50": percentile(lat, 50), "p99": percentile(lat, 99), "max": lat[-1],
            "missing": put - len(lat)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=20, help="put phase of each case (20)")
    ap.add_argument("--idle-seconds", type=int, default=5,
                    help="idle measurement of each case (5)")
    ap.add_argument("--cases", default="10,100,1000:10,1000",
                    help="N or N:A (N streams, A of them active), growing N "
                         "(default 10,100,1000:10,1000)")
    ap.add_argument("--perf", action="store_true",
                    help="perf record -g of the worker during the largest case")
    args = ap.parse_args()

    cases = []
    for c in args.cases.split(","):
        n, _, a = c.strip().partition(":")
        cases.append((int(n), int(a or n)))
    if args.perf and shutil.which("perf") is None:
        raise SystemExit("streams.py: --perf needs perf (scripts/install-deps --bench)")
    os.makedirs(os.path.join(REPO, "bench", "out"), exist_ok=True)
    largest = max(range(len(cases)), key=lambda i: (cases[i][1], cases[i][0]))

    results = []
    tmp = tempfile.mkdtemp(prefix="firehose-streams-")
    os.chmod(tmp, 0o755)
    try:
        with cluster_and_receiver("streams") as (cluster, rurl):
            with open("/proc/loadavg") as f:
                load = " ".join(f.read().split()[:3])
            print("streams: http streams, buffer_interval 1 s, a record a second per active "
                  "stream, %d s per case -> %s; %d CPUs, load average %s"
                  % (args.seconds, rurl, os.cpu_count(), load))
            have = 0
            for i, (n, a) in enumerate(cases):
                if n > have:
                    create_streams(cluster, rurl, have, n)
                    have = n
                r = run_case(cluster, rurl, tmp, n, a, args.seconds, args.idle_seconds,
                             args.perf and i == largest)
                results.append(r)
                print("  %4d streams, %4d active: %5d records (%d requests%s%s) in %.1f s: "
                      "worker CPU %5.1f%% = %6.1f us/record (%.2f s waiting for a CPU); "
                      "latency p50 %5.0f ms, p99 %5.0f ms, max %5.0f ms; all idle: CPU %.2f%%"
                      % (n, a, r["records"], r["requests"],
                         ", %d duplicates" % r["duplicates"] if r["duplicates"] else "",
                         ", %d MISSING" % r["missing"] if r["missing"] else "",
                         r["secs"], r["cpu_pct"], r["cpu_us"], r["rq_s"],
                         r["p50"], r["p99"], r["max"], r["idle_pct"]))
                sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base = results[0]
    print()
    for r in results:
        print("SUMMARY streams streams=%d active=%d records=%d cpu_pct=%.1f cpu_us=%.1f "
              "cpu_us_ratio=%.2f p50_ms=%.0f p99_ms=%.0f max_ms=%.0f idle_cpu_pct=%.2f missing=%d"
              % (r["streams"], r["active"], r["records"], r["cpu_pct"], r["cpu_us"],
                 r["cpu_us"] / base["cpu_us"], r["p50"], r["p99"], r["max"], r["idle_pct"], r["missing"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
