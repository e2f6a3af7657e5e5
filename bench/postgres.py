#!/usr/bin/python3
"""Delivery throughput of destination postgres as a ratio to psql's
COPY ... FROM STDIN of the same rows, in the same run.

    /usr/bin/python3 bench/postgres.py [--records N] [--rounds R]

Starts two throw-away clusters (test/pgcluster.py): the source, with the
extension, and the target, without it.  The target has a 10-column table of
mixed types (bigint, int, text, numeric, double, boolean, timestamptz, date,
uuid, jsonb), the test's table.  In every round, alternating which goes
first:

  firehose  a stream (buffer_interval 1 hour, buffer_size 8 MiB), paused,
            gets N JSON records put with put_batch() of 1,000 (not timed);
            timed from firehose.resume() to the return of firehose.flush(
            stream, wait => true) (read, encode, COPY, commit, record);
  psql      the same N rows as COPY text (made before, not timed) loaded by
            `psql -c "COPY events FROM STDIN"` into a second table of the
            same definition; timed around psql.

Both tables are truncated before each round.  Prints records/s of each run,
the medians and the ratio firehose/psql of the medians.  Every run is
checked (the target table holds exactly N rows); a benchmark: it asserts
nothing about the numbers.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "test"))

import pgcluster  # noqa: E402

TABLE = """CREATE TABLE public.%s (id bigint PRIMARY KEY, session int NOT NULL, name text,
    amount numeric(12,2), ratio double precision, ok boolean, at timestamptz, day date,
    tag uuid, doc jsonb)"""


def record(i):
    return {"id": i, "session": i % 4, "name": "name %d" % i, "amount": "%d.25" % (i % 1000),
            "ratio": i / 7.0, "ok": i % 2 == 0, "at": "2026-01-01T00:00:00Z",
            "day": "2026-02-03", "tag": "00000000-0000-0000-0000-%012d" % i,
            "doc": {"k": i, "s": "x"}}


def copy_line(r):
    vals = [r["id"], r["session"], r["name"], r["amount"], repr(r["ratio"]),
            "true" if r["ok"] else "false", r["at"], r["day"], r["tag"], json.dumps(r["doc"])]
    return "\t".join(str(v) for v in vals)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    n = args.records

    src = pgcluster.Cluster(conf={"firehose.naptime": 100})
    tgt = pgcluster.Cluster(conf={"shared_preload_libraries": ""})
    src.start()
    tgt.start()
    try:
        tgt.psql(TABLE % "events")
        tgt.psql(TABLE % "events_psql")
        src.psql("CREATE EXTENSION firehose")
        opts = {"conninfo": "host=127.0.0.1 port=%d user=%s dbname=postgres" % (tgt.port, tgt.user),
                "table": "public.events", "buffer_interval": 3600000, "buffer_size": "8MB"}
        src.psql("SELECT firehose.create_stream('b', 'postgres', %s::jsonb)",
                 params=(json.dumps(opts),))
        recs = [json.dumps(record(i)) for i in range(1, n + 1)]
        copy_text = ("\n".join(copy_line(record(i)) for i in range(1, n + 1)) + "\n").encode()
        psql = os.path.join(pgcluster.PGBIN, "psql")
        fh, ps = [], []
        for rnd in range(args.rounds):
            tgt.psql("TRUNCATE public.events, public.events_psql")
            order = ["firehose", "psql"] if rnd % 2 == 0 else ["psql", "firehose"]
            for what in order:
                if what == "firehose":
                    src.psql("SELECT firehose.pause('b')")
                    for k in range(0, n, 1000):
                        src.psql("SELECT firehose.put_batch('b', %s::text[])",
                                 params=(recs[k:k + 1000],))
                    t0 = time.monotonic()
                    src.psql("SELECT firehose.resume('b')")
                    ok = src.psql("SELECT firehose.flush('b', true, '600s')")
                    dt = time.monotonic() - t0
                    assert ok == [(True,)], ok
                    got = tgt.psql("SELECT count(*) FROM public.events")[0][0]
                    assert got == n, (got, n)
                    fh.append(n / dt)
                else:
                    t0 = time.monotonic()
                    subprocess.run([psql, "-X", "-q", "-h", "127.0.0.1", "-p", str(tgt.port),
                                    "-U", tgt.user, "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                                    "-c", "COPY public.events_psql FROM STDIN"],
                                   input=copy_text, check=True)
                    dt = time.monotonic() - t0
                    got = tgt.psql("SELECT count(*) FROM public.events_psql")[0][0]
                    assert got == n, (got, n)
                    ps.append(n / dt)
                print("round %d %-8s %10.0f records/s" % (rnd + 1, what,
                                                          (fh if what == "firehose" else ps)[-1]),
                      flush=True)
        mf, mp = statistics.median(fh), statistics.median(ps)
        print("postgres: %d records x %d rounds: firehose %.0f records/s, psql COPY %.0f "
              "records/s, ratio %.2f (goal >= 0.7)" % (n, args.rounds, mf, mp, mf / mp))
    finally:
        src.destroy()
        tgt.destroy()


if __name__ == "__main__":
    main()
