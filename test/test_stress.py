"""Stress: puts from several sessions while the worker cuts, rotates and truncates.

Several sessions put for a bounded time (FIREHOSE_STRESS_SECONDS, default 40;
set it higher by hand for a longer run), one record per transaction as
pgbench -M prepared would, plus small put_batch calls and multi-put
transactions.  The stream has a tiny buffer_size and buffer_interval, so the
worker cuts a batch, moves the producers to the next staging table and
truncates the old ones many times a second.  Meanwhile one session does what
autovacuum and an administrator do to the catalog now and then: ANALYZE
firehose.stream and alter_stream() of another stream, each of which sends
every backend a relcache invalidation of firehose.stream in the middle of
its put() calls.

Checks: no backend crashed (the checkpointer was not restarted, which the
postmaster does after any crash, emptying the unlogged staging tables; and
no "terminated by signal" in the server log), no put() failed, and after
flush(wait) exactly the committed set arrived at the receiver.
"""

import collections
import json
import os
import random
import threading
import time

import psycopg2

SECONDS = float(os.environ.get("FIREHOSE_STRESS_SECONDS", "40"))
PRODUCERS = 3


class Ledger:
    def __init__(self):
        self.lock = threading.Lock()
        self.committed = []
        self.errors = []
        self.lost = 0       # connections the server closed
        self.txns = 0

    def commit(self, recs):
        with self.lock:
            self.committed.extend(recs)
            self.txns += 1


def producer(db, sid, ledger, stop, seed):
    """One record per transaction mostly; now and then a batch or a multi-put
    transaction.  A prepared statement, as pgbench -M prepared."""
    rng = random.Random(seed)
    conn = db.conn(autocommit=True)
    cur = conn.cursor()
    body = "x" * 150
    n = 0
    cur.execute("PREPARE p(text) AS SELECT firehose.put('steady', $1)")
    try:
        while not stop.is_set():
            r = rng.random()
            try:
                if r < 0.9:
                    recs = ["s%d:%d:%s" % (sid, n, body)]
                    cur.execute("EXECUTE p(%s)", (recs[0],))
                elif r < 0.95:
                    recs = ["s%d:%d:b" % (sid, n + i) for i in range(rng.randrange(2, 50))]
                    cur.execute("SELECT firehose.put_batch('steady', %s::text[])", (recs,))
                else:
                    recs = ["s%d:%d:t" % (sid, n + i) for i in range(rng.randrange(2, 6))]
                    cur.execute("BEGIN")
                    for x in recs:
                        cur.execute("EXECUTE p(%s)", (x,))
                    cur.execute("COMMIT")
                ledger.commit(recs)
                n += len(recs)
            except psycopg2.OperationalError as e:     # the connection is gone
                ledger.errors.append("producer %d: %s" % (sid, str(e).strip()))
                ledger.lost += 1
                stop.set()
            except psycopg2.Error as e:     # counted; the session goes on
                ledger.errors.append("producer %d: %s" % (sid, str(e).strip()))
                cur.execute("ROLLBACK")
    finally:
        conn.close()


def catalog_churn(db, ledger, stop):
    """Invalidate firehose.stream now and then, as autovacuum (ANALYZE) and
    alter_stream() of an unrelated stream do."""
    conn = db.conn(autocommit=True)
    cur = conn.cursor()
    i = 0
    try:
        while not stop.is_set():
            if i % 2:
                cur.execute("ANALYZE firehose.stream")
            else:
                cur.execute("SELECT firehose.alter_stream('other', %s::jsonb)",
                            (json.dumps({"buffer_size": 100000 + i}),))
            i += 1
            stop.wait(0.02)
    except psycopg2.Error as e:
        ledger.errors.append("catalog churn: %s" % str(e).strip())
        stop.set()
    finally:
        conn.close()


def server_generation(db, timeout=90):
    """When the checkpointer started.  pg_postmaster_start_time() stays the
    same when the postmaster reinitialises after a backend crashed; the
    checkpointer, like every child, is started anew."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = db.conn()
            try:
                cur = conn.cursor()
                cur.execute("SELECT backend_start FROM pg_stat_activity "
                            "WHERE backend_type = 'checkpointer'")
                return cur.fetchone()[0]
            finally:
                conn.close()
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_puts_survive_rotation_truncation_and_invalidations(db, cluster, receiver,
                                                            record_property, wait_until):
    r = receiver()
    db.execute("SELECT firehose.create_stream('steady', 'http', %s::jsonb)", (json.dumps({
        "url": r.url, "buffer_size": 4096, "buffer_interval": 20, "max_concurrency": 2,
        "retry_base": 50, "retry_max": 300}),))
    db.execute("SELECT firehose.create_stream('other', 'http', %s::jsonb)",
               (json.dumps({"url": r.url}),))
    generation = server_generation(db)
    log_offset = len(cluster.log_text())

    ledger = Ledger()
    stop = threading.Event()
    threads = [threading.Thread(target=producer, args=(db, i, ledger, stop, 4200 + i))
               for i in range(PRODUCERS)]
    threads.append(threading.Thread(target=catalog_churn, args=(db, ledger, stop)))
    for t in threads:
        t.start()
    # the worker must be rotating and truncating while the sessions put
    stop.wait(SECONDS)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "sessions did not stop"

    def crashes():
        log = cluster.log_text()[log_offset:]
        return [ln for ln in log.splitlines() if "terminated by signal" in ln]
    if ledger.lost:
        # the postmaster may not have seen the death yet: give it time
        # (server_generation also waits for the server to accept connections)
        try:
            wait_until(lambda: crashes() or server_generation(db) != generation,
                       timeout=30)
        except TimeoutError:
            pass
    assert server_generation(db) == generation, \
        "the postmaster restarted its processes (a backend crashed):\n" + "\n".join(crashes())
    assert not crashes(), "a backend crashed:\n" + "\n".join(crashes())
    assert not ledger.errors, "%d failed statements, e.g. %r" % (
        len(ledger.errors), sorted(set(ledger.errors))[:5])

    assert db.flush("steady", "120s") is True, "flush(wait) timed out"
    counts = collections.Counter(r.records())
    committed = collections.Counter(x.encode() for x in ledger.committed)
    assert len(committed) == len(ledger.committed), "payloads must be unique"
    missing = set(committed) - set(counts)
    unexpected = set(counts) - set(committed)
    duplicates = sum(c - 1 for c in counts.values())
    batches = db.one("SELECT count(*) FROM firehose.deliveries WHERE stream = 'steady'")
    summary = collections.OrderedDict([
        ("seconds", SECONDS), ("committed", len(committed)), ("txns", ledger.txns),
        ("received", sum(counts.values())), ("missing", len(missing)),
        ("unexpected", len(unexpected)), ("duplicates", duplicates),
        ("parts", batches)])
    print("\nstress: " + ", ".join("%s=%s" % kv for kv in summary.items()))
    for k, v in summary.items():
        record_property(k, v)
    assert not missing, "%d committed records never arrived, e.g. %r" % (
        len(missing), sorted(missing)[:5])
    assert not unexpected, "%d unexpected records, e.g. %r" % (
        len(unexpected), sorted(unexpected)[:5])
    # no faults injected: every record exactly once
    assert duplicates == 0
    assert db.one("SELECT count(*) FROM firehose.failed_records") == 0
    # the worker really did cut many batches, and rotated and truncated the
    # staging tables: they hold a small part of what went through them
    assert batches > 20, batches
    sid = db.one("SELECT id FROM firehose.stream WHERE name = 'steady'")
    staged = db.one("SELECT sum(pg_relation_size(c.oid)) FROM pg_class c "
                    "WHERE c.relnamespace = 'firehose'::regnamespace AND c.relname LIKE %s",
                    ("stage\\_%d\\_%%" % sid,))
    put_bytes = sum(len(x) for x in committed)
    assert staged < put_bytes / 4, (staged, put_bytes)


# -- the same race, made deterministic --------------------------------------
#
# A session inside a transaction that already holds its locks sees other
# sessions' catalog changes only when it takes its next new lock.  These two
# tests let firehose.stream be invalidated exactly between put()'s cache
# lookup and the lock it takes next.

def _two_streams(db):
    for s in ("s1", "s2"):
        db.execute("SELECT firehose.create_stream(%s, 'http', %s::jsonb)",
                   (s, json.dumps({"url": "http://127.0.0.1:9/unused"})))


def test_put_of_an_uncached_stream_after_an_invalidation(db, cluster):
    """The cache miss's catalog query takes the first lock on firehose.stream:
    the invalidation arrives there, in the middle of the lookup."""
    _two_streams(db)
    generation = server_generation(db)
    a = db.conn()
    cur = a.cursor()
    cur.execute("SELECT firehose.put('s1', 'warm')")        # cache built
    cur.execute("BEGIN")
    cur.execute("SELECT firehose.put('s1', 'one')")         # s1's locks taken
    db.execute("SELECT firehose.create_stream('s3', 'http', %s::jsonb)",
               (json.dumps({"url": "http://127.0.0.1:9/unused"}),))
    cur.execute("SELECT firehose.put('s2', 'two')")         # s2 not cached yet
    cur.execute("COMMIT")
    assert server_generation(db) == generation
    assert db.one("SELECT sum(buffered_records) FROM firehose.stream_status") == 3


def test_put_of_a_cached_stream_after_an_invalidation(db, cluster):
    """The staging table's lock is the first new lock: the invalidation (here
    the ANALYZE autovacuum runs) arrives between the lookup and the insert."""
    _two_streams(db)
    generation = server_generation(db)
    a = db.conn()
    cur = a.cursor()
    cur.execute("SELECT firehose.put('s1', 'warm'), firehose.put('s2', 'warm')")
    cur.execute("BEGIN")
    cur.execute("SELECT firehose.put('s1', 'one')")
    db.execute("ANALYZE firehose.stream")
    cur.execute("SELECT firehose.put('s2', 'two')")
    cur.execute("SELECT firehose.put_batch('s2', ARRAY['three', 'four'])")
    cur.execute("COMMIT")
    assert server_generation(db) == generation
    assert db.q("SELECT stream, buffered_records FROM firehose.stream_status "
                "ORDER BY 1") == [("s1", 2), ("s2", 4)]
