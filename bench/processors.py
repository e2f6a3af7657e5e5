#!/usr/bin/python3
"""Delivery throughput of a stream with an identity SQL function processor,
and of one with json_to_csv, as a ratio to the same stream without
processors, in the same run.

    /usr/bin/python3 bench/processors.py [--records N] [--rounds R]

Starts its own throw-away cluster (test/pgcluster.py; as root the server runs
as user postgres) and bench/latency.py's minimal Firehose HTTP endpoint (it
answers every POST with the protocol's success response and counts the
distinct records it got).  Two http streams deliver to it:

  plain   no processors
  sqlfn   processors [{"type": "function", "function": "bench.identity"}],
          bench.identity(r) a LANGUAGE sql function returning
          ROW('Ok', r.data, NULL)
  plpgsql the same with bench.identity_pl, the same in LANGUAGE plpgsql
  csv     processors [{"type": "json_to_csv", "columns": ["s", "t", "i",
          "pad"]}]: every record, a JSON object, becomes a CSV line

Both with buffer_interval 1 hour, buffer_size 5 MiB, max_concurrency 1.  In
every round each stream (the order rotating from round to round) is
paused, gets N records of ~200 bytes put with put_batch() of 1,000 (not
timed), and is timed from firehose.resume() to the return of
firehose.flush(stream, wait => true): the worker's read, process, encode,
send and record, and nothing else.  Prints records/s and the worker's CPU
time per record (from /proc, steadier than wall time on a loaded machine) per
run, the medians and
the ratios sqlfn/plain, plpgsql/plain and csv/plain of the medians.

Every run is checked: the receiver must hold exactly N new distinct records
and stream_status must show them delivered, none failed.  A benchmark: it
asserts nothing about the numbers and fails only when something breaks.
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from latency import cluster_and_receiver, http  # noqa: E402  (the receiver and its control API)

PAD = "p" * 160


def worker_cpu(cluster):
    """CPU seconds (user + system) the database's firehose worker used so far."""
    # the worker may still be starting when the first round begins
    for _ in range(200):
        rows = cluster.psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'firehose worker' "
                            "AND datname = current_database()")
        if rows:
            break
        time.sleep(0.05)
    pid = rows[0][0]
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_one(cluster, rurl, stream, records, tag):
    """Put records into the paused stream, time resume..flush: records/s and
    the worker's CPU microseconds per record."""
    cluster.psql("SELECT firehose.pause(%s)", params=(stream,))
    before = http(rurl + "/_control/stats")["count"]
    for start in range(0, records, 1000):
        batch = ['{"s":"%s","t":"%s","i":%d,"pad":"%s"}' % (stream, tag, i, PAD)
                 for i in range(start, min(records, start + 1000))]
        cluster.psql("SELECT firehose.put_batch(%s, %s::text[])", params=(stream, batch))
    cpu0 = worker_cpu(cluster)
    t0 = time.monotonic()
    cluster.psql("SELECT firehose.resume(%s)", params=(stream,))
    ok = cluster.psql("SELECT firehose.flush(%s, wait => true, timeout => '600s')",
                      params=(stream,))[0][0]
    elapsed = time.monotonic() - t0
    cpu = worker_cpu(cluster) - cpu0
    got = http(rurl + "/_control/stats")["count"] - before
    failed = cluster.psql("SELECT failed_records FROM firehose.stream_status WHERE stream = %s",
                          params=(stream,))[0][0]
    if ok is not True or got != records or failed != 0:
        raise RuntimeError("%s: flush %r, %d of %d records arrived, %d failed"
                           % (stream, ok, got, records, failed))
    return records / elapsed, cpu * 1e6 / records


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100000, help="records per run (default 100000)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    args = ap.parse_args()

    with cluster_and_receiver("processors") as (cluster, rurl):
        cluster.psql("CREATE SCHEMA bench")
        cluster.psql("CREATE FUNCTION bench.identity(r firehose.record) "
                     "RETURNS firehose.processed LANGUAGE sql "
                     "AS $$ SELECT ROW('Ok', r.data, NULL)::firehose.processed $$")
        cluster.psql("CREATE FUNCTION bench.identity_pl(r firehose.record) "
                     "RETURNS firehose.processed LANGUAGE plpgsql "
                     "AS $$ BEGIN RETURN ROW('Ok', r.data, NULL)::firehose.processed; END $$")
        common = {"url": rurl + "/", "buffer_interval": "1 hour"}
        streams = {"plain": dict(common),
                   "sqlfn": dict(common, processors=[{"type": "function",
                                                      "function": "bench.identity"}]),
                   "plpgsql": dict(common, processors=[{"type": "function",
                                                        "function": "bench.identity_pl"}]),
                   "csv": dict(common, processors=[{"type": "json_to_csv",
                                                    "columns": ["s", "t", "i", "pad"]}])}
        for name, opts in streams.items():
            cluster.psql("SELECT firehose.create_stream(%s, 'http', %s)",
                         params=(name, json.dumps(opts)))
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        print("processors: %d records a run, %d rounds; %d CPUs, load average %s"
              % (args.records, args.rounds, os.cpu_count(), load))
        # warm-up: the worker's first cut, the curl connection, the function's plan
        for name in streams:
            run_one(cluster, rurl, name, 2000, "warm-up")
        results = {name: [] for name in streams}
        cpus = {name: [] for name in streams}
        order = list(streams)
        for rnd in range(args.rounds):
            for name in order[rnd % len(order):] + order[:rnd % len(order)]:
                rate, cpu = run_one(cluster, rurl, name, args.records, "r%d" % rnd)
                results[name].append(rate)
                cpus[name].append(cpu)
                print("  round %d  %-7s %9.0f records/s  worker CPU %.1f us/record"
                      % (rnd + 1, name, rate, cpu))
        med = {name: statistics.median(v) for name, v in results.items()}
        mcpu = {name: statistics.median(v) for name, v in cpus.items()}
        print("medians: " + ", ".join("%s %.0f records/s (%.1f us CPU/record)"
                                      % (n, med[n], mcpu[n]) for n in order))
        print("SUMMARY processors records=%d rounds=%d plain=%.0f sqlfn=%.0f plpgsql=%.0f "
              "csv=%.0f ratio_sqlfn=%.2f ratio_plpgsql=%.2f ratio_csv=%.2f (goals: sqlfn 0.7, "
              "csv 0.8)"
              % (args.records, args.rounds, med["plain"], med["sqlfn"], med["plpgsql"],
                 med["csv"], med["sqlfn"] / med["plain"], med["plpgsql"] / med["plain"],
                 med["csv"] / med["plain"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
