#!/usr/bin/python3
"""JSON to Parquet conversion throughput of the s3 destination, as a ratio to
the same stream writing JSON lines, with DuckDB's COPY ... TO 'x.parquet' of
the same JSON beside it (issue 11 §2).

    /usr/bin/python3 bench/parquet.py [--records N] [--rounds R]

Starts its own throw-away cluster (test/pgcluster.py) and S3 server (Swift,
test/s3server.py) on loopback.  Two s3 streams take the same records (N JSON
objects of ~120 bytes: id, customer, amount, ts, a tag), made inside the
database with generate_series and put with put_batch() while the stream is
paused (not timed):

  json      compression none, JSON lines (the delimiter "\\n");
  parquet   format {"type": "parquet", "schema": "public.bench_events",
            "compression": "snappy", "block_size": "64MB"}.

Both buffer 16 MiB parts, max_concurrency 2.  Each run is timed from
firehose.resume() to the return of firehose.flush(wait => true): the
worker's reading, conversion (or framing), upload and recording.  Rounds
alternate the two, the order rotating.  Printed: records/s and MB/s of JSON
in, per run and as medians, and parquet/json, the ratio of the medians (the
issue's goal: at least 0.5).

The outside anchor: the same records written to a JSON lines file, and
DuckDB (@duckdb/node-api of test/node) timing
COPY (SELECT * FROM read_json('x.jsonl', columns = {...})) TO 'x.parquet'
(FORMAT parquet, COMPRESSION snappy), the query alone (DuckDB started and
warmed up before), printed in the same units.  DuckDB reads and writes local
files, we read PostgreSQL's staging tables and upload to S3: the anchor says
what converting the same JSON costs a columnar engine, not a like-for-like
race.

A benchmark: it asserts nothing about the numbers; it fails only when
something breaks (a server does not start, records are missing).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
NODE_DIR = os.path.join(REPO, "test", "node")

RECORDS_SQL = """SELECT json_build_object('id', g, 'customer', 'customer-' || g %% 500,
                         'amount', round((g %% 100000) / 7.0, 2), 'ts',
                         to_timestamp(1700000000 + g), 'tag', md5(g::text))::text
                   FROM generate_series(%s, %s) g"""

DUCKDB_COPY = r"""
import { DuckDBInstance } from '@duckdb/node-api';
const [src, dst] = process.argv.slice(1);
const db = await (await DuckDBInstance.create(':memory:')).connect();
const cols = "{id: 'BIGINT', customer: 'VARCHAR', amount: 'DECIMAL(18,2)', " +
             "ts: 'TIMESTAMPTZ', tag: 'VARCHAR'}";
const sql = `COPY (SELECT * FROM read_json('${src}', format = 'newline_delimited', ` +
            `columns = ${cols})) TO '${dst}' (FORMAT parquet, COMPRESSION snappy)`;
await db.run(sql);                       // warm-up
const times = [];
for (let i = 0; i < 3; i++) {
  const t0 = performance.now();
  await db.run(sql);
  times.push((performance.now() - t0) / 1000);
}
times.sort((a, b) => a - b);
process.stdout.write(JSON.stringify({seconds: times[1]}) + '\n');
"""


def run_stream(conn, stream, n, batch=100000):
    """Put n records into stream while it is paused, then time its delivery."""
    cur = conn.cursor()
    cur.execute("SELECT firehose.pause(%s)", (stream,))
    for start in range(0, n, batch):
        cur.execute("SELECT firehose.put_batch(%s, array_agg(r)) FROM (" + RECORDS_SQL
                    + ") AS x(r)", (stream, start + 1, min(start + batch, n)))
    cur.execute("SELECT delivered_records FROM firehose.stream_status WHERE stream = %s",
                (stream,))
    before = cur.fetchone()[0]
    t0 = time.monotonic()
    cur.execute("SELECT firehose.resume(%s)", (stream,))
    cur.execute("SELECT firehose.flush(%s, wait => true, timeout => '30 minutes')", (stream,))
    secs = time.monotonic() - t0
    cur.execute("SELECT delivered_records, failed_records FROM firehose.stream_status "
                "WHERE stream = %s", (stream,))
    delivered, failed = cur.fetchone()
    if delivered - before != n or failed:
        raise SystemExit("bench/parquet.py: %s delivered %d of %d records, %d failed"
                         % (stream, delivered - before, n, failed))
    return secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=500000, help="records per run (500000)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (3)")
    args = ap.parse_args()

    sys.path.insert(0, os.path.join(REPO, "test"))
    os.environ.setdefault("FIREHOSE_PRELOAD", "1")
    import s3server
    from pgcluster import Cluster
    reason = s3server.swift_installed()
    if reason:
        print("bench/parquet.py: %s (scripts/install-deps --tests)" % reason, file=sys.stderr)
        return 1
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@duckdb", "node-api")):
        print("bench/parquet.py: DuckDB for Node is not installed in test/node "
              "(scripts/install-deps --tests)", file=sys.stderr)
        return 1

    cluster = s3 = None
    try:
        s3 = s3server.start()
        cluster = Cluster(conf={"shared_buffers": "256MB", "max_wal_size": "4GB",
                                "checkpoint_timeout": "1h"})
        cluster.start()
        cluster.psql("CREATE EXTENSION firehose")
        cluster.psql("CREATE TABLE public.bench_events (id int8, customer text, "
                     "amount numeric(18,2), ts timestamptz, tag text)")
        client = s3.client()
        common = {"endpoint": s3.endpoint, "path_style": True, "region": s3.region,
                  "access_key_id": s3.access_key, "secret_access_key": s3.secret_key,
                  "buffer_size": "16MB", "buffer_interval": "1 hour", "max_concurrency": 2,
                  "prefix": "b/", "error_output_prefix": "e/!{firehose:error-output-type}/"}
        streams = {
            "json": {},
            "parquet": {"format": {"type": "parquet", "schema": "public.bench_events",
                                   "compression": "snappy", "block_size": "64MB"}},
        }
        conn = cluster.connect()
        cur = conn.cursor()
        for name, extra in streams.items():
            client.create_bucket(Bucket="bench-" + name)
            o = dict(common, bucket="bench-" + name, **extra)
            cur.execute("SELECT firehose.create_stream(%s, 's3', %s::jsonb)",
                        (name, json.dumps(o)))
        cur.execute("SELECT sum(length(r)) FROM (" + RECORDS_SQL + ") AS x(r)",
                    (1, args.records))
        json_bytes = cur.fetchone()[0]
        print("parquet: %d records, %.1f MB of JSON text (%.0f bytes a record); "
              "%d CPUs, load average %s"
              % (args.records, json_bytes / 1e6, json_bytes / args.records, os.cpu_count(),
                 " ".join(open("/proc/loadavg").read().split()[:3])))

        for name in streams:                      # warm-up
            run_stream(conn, name, min(args.records, 20000))
        times = {name: [] for name in streams}
        order = list(streams)
        for rnd in range(args.rounds):
            for name in order[rnd % 2:] + order[:rnd % 2]:
                secs = run_stream(conn, name, args.records)
                times[name].append(secs)
                print("  round %d %-8s %6.2f s  %9.0f records/s  %6.1f MB/s of JSON"
                      % (rnd + 1, name, secs, args.records / secs, json_bytes / 1e6 / secs))
                sys.stdout.flush()

        med = {name: statistics.median(ts) for name, ts in times.items()}

        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "x.jsonl")
            with open(src, "w") as f:
                cur.copy_expert("COPY (" + cur.mogrify(RECORDS_SQL, (1, args.records)).decode()
                                + ") TO STDOUT", f)
            r = subprocess.run(["node", "--input-type=module", "-e", DUCKDB_COPY, src,
                                os.path.join(tmp, "x.parquet")],
                               cwd=NODE_DIR, capture_output=True, text=True, timeout=1800)
            if r.returncode != 0:
                raise SystemExit("bench/parquet.py: DuckDB failed:\n" + r.stderr[-2000:])
            duck = json.loads(r.stdout)["seconds"]

        print()
        for name in streams:
            print("  median   %-8s %6.2f s  %9.0f records/s  %6.1f MB/s of JSON"
                  % (name, med[name], args.records / med[name], json_bytes / 1e6 / med[name]))
        print("  DuckDB   COPY ... TO 'x.parquet' (snappy) from a JSON lines file: %.2f s  "
              "%9.0f records/s  %6.1f MB/s of JSON"
              % (duck, args.records / duck, json_bytes / 1e6 / duck))
        print("  parquet/json throughput: %.2f (goal >= 0.5)" % (med["json"] / med["parquet"]))
        return 0
    finally:
        if cluster:
            cluster.destroy()
        if s3:
            s3.stop(remove=True)


if __name__ == "__main__":
    sys.exit(main())
