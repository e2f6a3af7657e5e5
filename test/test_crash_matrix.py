"""Crash matrix (issue 9): the worker killed at each of its steps.

Each database of the matrix has its worker stop at one fault point
(firehose.test_fault = 'wait:<point>', see README "Configuration") while
records of several sessions, some rolled back, go to a durable stream and an
unlogged one.  Once every worker waits at its point, one kind of kill hits
them all at once:

  server  pg_ctl stop -m immediate, then start (crash recovery)
  worker  SIGKILL of each waiting worker: the postmaster then restarts every
          process of the cluster (crash recovery), as for any server process
          that dies of a signal
  term    pg_terminate_backend of each waiting worker (SIGTERM): no crash

The fault is cleared before the kill, so the workers that start afterwards
deliver what is left.  Then, per stream, round, point and kind, with C the
committed records, D the records the strict receiver stored (a multiset),
F the stream's failed_records, and "at the stop" what the receiver had stored
and the database had recorded while the worker waited:

  durable, every kind, and unlogged after "term": D and F are disjoint,
      D + F = C (nothing lost, nothing foreign), and every record stored
      twice belongs to a request that was answered but not recorded at the
      stop, of which a stream has at most max_concurrency; stream_status
      counts each record of the round once, as delivered or failed (|C| -
      |F| and |F|), however often it was sent.
  unlogged after "server" and "worker" (README, "Delivery semantics": crash
      recovery empties unlogged staging): the stream keeps what was recorded
      (F) and what was stored at the stop (D), gets nothing more, and
      loses exactly the rest of C.

FIREHOSE_CRASH_ROUNDS (default 10) sets the rounds per kind; each round tests
every point.  The counts are printed as a table.
"""

import os
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import make_stream

POINTS = ["after_cut", "after_send", "after_answer", "in_recording", "after_record_commit",
          "after_truncate"]
KINDS = ["server", "worker", "term"]
STREAMS = ["dur", "unl"]
MAX_CONCURRENCY = 2
WAITING = "firehose: waiting at fault point "


class Site:
    """One database of the matrix: its fault point, a durable and an
    unlogged stream, one receiver for both, and a connection (opened again
    after each restart)."""

    def __init__(self, cluster, point, receiver, wait_until):
        self.cluster = cluster
        self.point = point
        self.wait_until = wait_until
        self.dbname = "crash_%d_%s" % (os.getpid(), point)
        self.conn = None
        self.sessions = []
        cluster.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.dbname)
        cluster.psql('CREATE DATABASE "%s"' % self.dbname)
        self.receiver = receiver()
        self.reconnect()
        self.execute("CREATE EXTENSION firehose")
        self.make_streams()

    def make_streams(self):
        for stream in STREAMS:
            # parts of about four records, two in flight, cut at once
            make_stream(self, stream, self.url(stream), durable=(stream == "dur"),
                        buffer_size=60, buffer_interval=20,
                        max_concurrency=MAX_CONCURRENCY, retry_duration=60)

    def renew_streams(self):
        """New streams, whose staging tables are all empty: the worker then
        truncates none before the round's batches complete."""
        for stream in STREAMS:
            self.q("SELECT firehose.drop_stream(%s)", (stream,))
        self.make_streams()

    def connect(self, autocommit=True):
        return self.cluster.connect(self.dbname, autocommit=autocommit)

    def reconnect(self):
        """New connections (after a restart): the main one and three
        producer sessions."""
        for conn in [self.conn] + self.sessions:
            if conn is not None:
                conn.close()
        self.conn = self.connect()
        self.sessions = [self.connect(autocommit=False) for _ in range(3)]

    def q(self, sql, params=None):
        if self.conn is None or self.conn.closed:
            self.conn = self.connect()
        cur = self.conn.cursor()
        cur.execute(sql, params)
        return cur.fetchall() if cur.description is not None else []

    execute = q

    def worker(self):
        """(pid, query) of the database's worker, or None."""
        rows = self.q("SELECT pid, query FROM pg_stat_activity "
                      "WHERE backend_type = 'firehose worker' AND datname = current_database()")
        return rows[0] if len(rows) == 1 else None

    def parked(self):
        w = self.worker()
        return w is not None and w[1] == WAITING + self.point

    def failed(self, stream, tag):
        return {bytes(x).decode() for (x,) in self.q(
            "SELECT data FROM firehose.failed_records WHERE stream = %s "
            "AND starts_with(convert_from(data, 'UTF8'), %s)", (stream, tag))}

    def put_wave(self, tag, hold=False):
        """Records of several sessions into both streams: (committed, held),
        committed = {stream: records}.  With hold, one session's transaction
        is left open: held, to be committed by the caller (its records are
        in committed)."""
        a, b, c = self.sessions
        ca, cb, cc = a.cursor(), b.cursor(), c.cursor()
        committed = {}
        for stream in STREAMS:
            def rec(session, i):
                return "%s-%s-%s-%d" % (stream, tag, session, i)
            put_batch = "SELECT firehose.put_batch(%s, %s::text[])"
            put = "SELECT firehose.put(%s, %s::text)"
            # interleaved open transactions: a commits (last), b rolls
            # back, c commits but what it put under a rolled-back
            # savepoint
            ca.execute(put_batch, (stream, [rec("a", i) for i in range(3)]))
            cb.execute(put, (stream, rec("b", 0)))
            cc.execute(put, (stream, rec("c", 0)))
            cc.execute("SAVEPOINT s")
            cc.execute(put_batch, (stream, [rec("c", i) for i in (1, 2)]))
            cb.execute(put, (stream, rec("b", 1)))
            cc.execute("ROLLBACK TO SAVEPOINT s")
            ca.execute(put, (stream, rec("a", 3)))
            cc.execute(put_batch, (stream, [rec("c", i) for i in (3, 4)]))
            self.q(put_batch, (stream, [rec("x", i) for i in range(3)]))
            committed[stream] = ({rec("a", i) for i in range(4)} |
                                 {rec("c", i) for i in (0, 3, 4)} |
                                 {rec("x", i) for i in range(3)})
        b.rollback()
        c.commit()
        if not hold:
            a.commit()
        return committed, a if hold else None

    def counted(self):
        """{stream: (delivered_records, failed_records)} of stream_status."""
        return {s: (d, f) for s, d, f in self.q(
            "SELECT stream, delivered_records, failed_records FROM firehose.stream_status")}

    def play(self, seq):
        """A round up to the stop: arm the receiver, put two waves, wait
        for the worker at its point, note what was stored and recorded."""
        counted = self.counted()
        # a part of each stream fails for good (answered 400) ...
        fail = [{"status": 400, "count": len(STREAMS)}]
        self.receiver.reset()
        if self.point != "after_truncate":
            self.receiver.faults(fail)
        committed, held = self.put_wave("r%d-a" % seq, hold=True)
        # ... and after_truncate's are those of the held transaction.  Its
        # rows lie in a staging table that the producers leave when the
        # batch of the others completes; so the table is truncated right
        # after the failed records of its last batch are recorded, and a
        # truncation done before their recording commits would lose them.
        self.wait_until(lambda: self.parked() or self.q(
            "SELECT sum(buffered_records + in_flight_records) FROM firehose.stream_status")
            == [(0,)], timeout=60,
            message="%s: the first wave was neither delivered nor stopped" % self.point)
        if self.point == "after_truncate":
            self.receiver.faults(fail)
        held.commit()
        more, _ = self.put_wave("r%d-b" % seq)
        for stream, recs in more.items():
            committed[stream] |= recs
        self.wait_until(self.parked, timeout=60,
                        message="%s: the worker did not reach its fault point" % self.point)
        stored = self.wait_until(lambda: settled(self.receiver), timeout=30)[0]
        recorded = {x for (x,) in self.q("SELECT request_id::text FROM firehose.deliveries")}
        at_stop = {}
        for stream in STREAMS:
            mine = [q for q in stored if self.receiver.base + q["path"] == self.url(stream)]
            at_stop[stream] = (mine, recorded, self.failed(stream, "%s-r%d-" % (stream, seq)),
                               counted[stream])
        # the worker that starts next must not stop again
        self.q('ALTER DATABASE "%s" RESET firehose.test_fault' % self.dbname)
        return committed, at_stop

    def url(self, stream):
        return self.receiver.url + "/" + stream

    def finish(self, kind, seq, committed, at_stop, problems, counts):
        """After the restart: wait for delivery, check each stream."""
        if kind != "term":
            self.reconnect()
        assert self.q("SELECT firehose.flush(NULL, true, '60s')") == [(True,)], \
            "%s/%s: delivery did not finish after the restart" % (kind, self.point)
        reqs = self.receiver.requests(records=True)
        counted = self.counted()
        for stream in STREAMS:
            received = [x.decode() for q in reqs
                        if self.receiver.base + q["path"] == self.url(stream)
                        for x in q["records"]]
            failed = self.failed(stream, "%s-r%d-" % (stream, seq))
            check_round(kind, self.point, stream, committed[stream], at_stop[stream],
                        (received, failed, counted[stream]), problems, counts)
        self.receiver.assert_no_violations()


def settled(r):
    """[the receiver's requests] once every one received has been answered."""
    reqs = r.requests(records=True)
    return [reqs] if all(x["status"] is not None for x in reqs) else None


def check_round(kind, point, stream, committed, at_stop, after, problems, counts):
    """Compare one stream's outcome with the promise; add to counts."""
    stored_at_stop, recorded_ids, failed_at_stop, counted_before = at_stop
    received, failed, counted_after = after
    got = Counter(received)
    lost = committed - set(got) - failed
    foreign = (set(got) | failed) - committed
    dups = {x: n - 1 for x, n in got.items() if n > 1}
    # requests answered at the stop whose outcome was not recorded: only
    # these may be sent again
    unrecorded = [q for q in stored_at_stop if q["request_id"] not in recorded_ids]
    unrecorded_ids = {q["request_id"] for q in unrecorded}
    resendable = {x.decode() for q in unrecorded for x in q["records"]}
    where = "%s/%s/%s" % (kind, point, stream)

    if foreign:
        problems.append("%s: records never committed arrived: %s" % (where, sorted(foreign)))
    if set(got) & failed:
        problems.append("%s: records both delivered and failed: %s"
                        % (where, sorted(set(got) & failed)))
    if set(dups) - resendable:
        problems.append("%s: sent twice though recorded or never in flight: %s"
                        % (where, sorted(set(dups) - resendable)))
    if len(unrecorded_ids) > MAX_CONCURRENCY:
        problems.append("%s: %d requests answered and not recorded, more than max_concurrency"
                        % (where, len(unrecorded_ids)))
    if stream == "unl" and kind in ("server", "worker"):
        # crash recovery empties the unlogged staging: what was recorded or
        # stored at the stop stays, nothing more comes, the rest is lost
        stored = {x.decode() for q in stored_at_stop for x in q["records"]}
        promised = committed - stored - failed_at_stop
        if lost != promised:
            problems.append("%s: lost %d records, the README promises exactly %d: "
                            "lost and not promised %s, promised and not lost %s"
                            % (where, len(lost), len(promised), sorted(lost - promised),
                               sorted(promised - lost)))
        if failed != failed_at_stop:
            problems.append("%s: failed_records changed by the crash: %s != %s"
                            % (where, sorted(failed), sorted(failed_at_stop)))
    else:
        if lost:
            problems.append("%s: %d committed records lost: %s"
                            % (where, len(lost), sorted(lost)))
        # stream_status counts each record once, however often it was sent
        counted = (counted_after[0] - counted_before[0], counted_after[1] - counted_before[1])
        if counted != (len(committed) - len(failed), len(failed)):
            problems.append("%s: stream_status counted %d delivered and %d failed of %d "
                            "records committed, %d of them failed"
                            % ((where,) + counted + (len(committed), len(failed))))

    c = counts.setdefault((point, kind, stream), Counter())
    c["rounds"] += 1
    c["committed"] += len(committed)
    c["received"] += len(set(got))
    c["duplicates"] += sum(dups.values())
    c["failed"] += len(failed)
    c["lost"] += len(lost)


def print_table(counts, rounds, elapsed):
    cols = ["committed", "received", "duplicates", "failed", "lost"]
    lines = ["crash matrix: %d round(s) per kind, %.0f s; received = distinct records"
             % (rounds, elapsed),
             "%-20s %-7s %-6s %s" % ("point", "kind", "stream",
                                     " ".join("%10s" % c for c in cols))]
    for point in POINTS:
        for kind in KINDS:
            for stream in STREAMS:
                c = counts.get((point, kind, stream))
                if c:
                    lines.append("%-20s %-7s %-6s %s" % (point, kind, stream,
                                                          " ".join("%10d" % c[x] for x in cols)))
    return "\n".join(lines)


def wait_workers(cluster, sites, wait_until, other_than=None):
    """Wait until every site has a worker (none of other_than's); {point: pid}."""
    names = {s.dbname: s.point for s in sites}

    def check():
        try:
            rows = cluster.psql("SELECT datname, pid FROM pg_stat_activity "
                                "WHERE backend_type = 'firehose worker'")
        except Exception:       # the server is still restarting
            return None
        pids = {names[d]: pid for d, pid in rows if d in names}
        if len(pids) != len(sites):
            return None
        if other_than and any(pids[p] == other_than[p] for p in pids):
            return None
        return pids
    return wait_until(check, timeout=60, message="not every matrix database has a (new) worker")


def fault(point, seq):
    """The setting that stops the worker at point in round seq: from the
    first to the third time it gets there, so that some rounds stop it in
    the middle of a batch, after parts of it were recorded."""
    if point == "after_truncate":
        return "wait:" + point
    return "wait:%s#%d" % (point, 1 + seq % 3)


def run_round(cluster, sites, pool, kind, seq, pids, wait_until, problems, counts):
    # arm each database's point: a new worker reads the setting
    for s in sites:
        if s.point == "after_truncate":
            s.renew_streams()
        s.q('ALTER DATABASE "%s" SET firehose.test_fault = %%s' % s.dbname,
            (fault(s.point, seq),))
        s.q("SELECT pg_terminate_backend(%s)", (pids[s.point],))
    pids = wait_workers(cluster, sites, wait_until, other_than=pids)
    played = list(pool.map(lambda s: s.play(seq), sites))

    if kind == "server":
        cluster.stop(mode="immediate")
        cluster.start()
    elif kind == "worker":
        for s in sites:
            try:
                os.kill(pids[s.point], signal.SIGKILL)
            except ProcessLookupError:
                pass        # the postmaster ended it already (the first kill)
    else:
        for s in sites:
            s.q("SELECT pg_terminate_backend(%s)", (pids[s.point],))
    pids = wait_workers(cluster, sites, wait_until, other_than=pids)
    list(pool.map(lambda x: x[0].finish(kind, seq, x[1][0], x[1][1], problems, counts),
                  zip(sites, played)))
    return pids


def test_crash_matrix(cluster, receiver, wait_until, capsys):
    if not hasattr(cluster, "datadir"):
        pytest.skip("needs a cluster controlled by this test run (crash/restart)")
    rounds = int(os.environ.get("FIREHOSE_CRASH_ROUNDS", "10"))
    started = time.monotonic()
    counts = {}
    problems = []
    sites = []
    pool = ThreadPoolExecutor(len(POINTS))
    try:
        sites = list(pool.map(lambda p: Site(cluster, p, receiver, wait_until), POINTS))
        pids = wait_workers(cluster, sites, wait_until)
        seq = 0
        for kind in KINDS:
            for _ in range(rounds):
                seq += 1
                pids = run_round(cluster, sites, pool, kind, seq, pids, wait_until,
                                 problems, counts)
    finally:
        pool.shutdown()
        table = print_table(counts, rounds, time.monotonic() - started)
        with capsys.disabled():
            print("\n" + table)
        for s in sites:
            for conn in [s.conn] + s.sessions:
                conn.close()
            cluster.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % s.dbname)
    assert not problems, "\n".join(problems[:40])
    # every point, kind and stream ran every round
    assert all(counts[p, k, s]["rounds"] == rounds
               for p in POINTS for k in KINDS for s in STREAMS), table
