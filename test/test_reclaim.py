"""Reclaiming staging tables when shared_buffers is large.

Truncating a staging table walks every buffer header of shared_buffers
(PostgreSQL 15 outside recovery), however small the table: with 4 GB of
shared_buffers, 1,000 streams of a record a second kept the worker 89% busy
and 20 s late.  A table smaller than reclaim_pages() (shared_buffers / 16384
pages, at least 1) is now truncated only once the pages later batches read
again for it add up to that many.  These tests run a cluster of its own with
shared_buffers = 1 GB: 131,072 buffers, so 8 pages.  With the default 128 MB
every table is truncated at once, as the rest of the suite shows.

The last three tests run on the suite's cluster (128 MB: every delivered
table is truncated at once).  They show what a truncation touches: a staging
table's TOAST table and its index are left alone while the TOAST table is
empty (each truncation of a relation walks shared_buffers, and the index is
built again), are truncated with it once records over about 2 kB were put,
and an index a superuser gave a staging table is rebuilt.
"""

import collections
import json
import os
import time

import pytest

import pgcluster
from helpers import FAST, make_stream

RECLAIM_PAGES = 8


@pytest.fixture(scope="module")
def big_buffers():
    if not pgcluster.firehose_library_installed():
        pytest.skip("the firehose library is not installed in this PostgreSQL")
    c = pgcluster.Cluster(conf={"shared_buffers": "1GB"})
    c.start()
    try:
        c.psql("CREATE EXTENSION firehose")
        yield c
    finally:
        c.destroy()


class Stream:
    def __init__(self, cluster, name, url):
        self.conn = cluster.connect()
        self.conn.autocommit = True
        self.cur = self.conn.cursor()
        self.name = name
        self.cur.execute("SELECT firehose.create_stream(%s, 'http', %s::jsonb)",
                         (name, json.dumps(dict(FAST, url=url))))
        self.cur.execute("SELECT id FROM firehose.stream WHERE name = %s", (name,))
        self.id = self.cur.fetchone()[0]

    def put(self, texts):
        self.cur.execute("SELECT firehose.put_batch(%s, %s::text[])", (self.name, texts))

    def flush(self):
        self.cur.execute("SELECT firehose.flush(%s, true, '60s'::interval)", (self.name,))
        assert self.cur.fetchone()[0] is True, "flush timed out"

    def one(self, sql, params=None):
        self.cur.execute(sql, params)
        return self.cur.fetchone()[0]

    def pages(self):
        return stage_pages(self.one, self.id)


def stage_name(sid, k):
    return "firehose.stage_%d_%d" % (sid, k)


def stage_pages(one, sid):
    """Pages of each of stream sid's three staging tables; one(sql, params)
    returns a query's single value."""
    return [one("SELECT pg_relation_size(%s::regclass) / 8192", (stage_name(sid, k),))
            for k in range(3)]


def stays(f, seconds=1.5):
    """f() holds at every look for that long."""
    end = time.time() + seconds
    while time.time() < end:
        if not f():
            return False
        time.sleep(0.05)
    return True


def test_small_tables_wait_and_are_truncated_once_reread_enough(big_buffers, receiver):
    r = receiver()
    s = Stream(big_buffers, "slow", r.url)
    sent = []
    history = []
    truncated = False
    for rnd in range(3 * RECLAIM_PAGES):
        texts = ["r%d-%d" % (rnd, i) for i in range(5)]     # one page a batch
        s.put(texts)
        sent.extend(texts)
        s.flush()
        if rnd == 3:
            # the tables of rounds 0 and 1 are delivered; truncated at once
            # (as with small shared_buffers) only the current one would hold
            # pages within moments
            assert stays(lambda: sum(p > 0 for p in s.pages()) == 3), \
                "delivered tables were truncated at once: %s" % s.pages()
        history.append(s.pages())
        if rnd > 3 and any(h > 0 and p == 0 for h, p in zip(history[-2], history[-1])):
            truncated = True
        assert sum(history[-1]) <= 3 * RECLAIM_PAGES, history
    assert truncated, "no table was ever truncated: %s" % history

    got = r.records()
    assert [x.decode() for x in got] == sent
    r.assert_no_violations()


def test_a_table_of_reclaim_pages_is_truncated_at_once(big_buffers, receiver, wait_until):
    r = receiver()
    s = Stream(big_buffers, "bulk", r.url)
    big = ["%06d" % i + "b" * 94 for i in range(3000)]      # about 40 pages
    s.put(big)
    s.flush()
    pages = s.pages()
    (k,) = [i for i, p in enumerate(pages) if p > 0]
    assert pages[k] >= RECLAIM_PAGES, pages
    # the next batch finds it delivered and not current: truncated now
    s.put(["after"])
    s.flush()
    wait_until(lambda: s.pages()[k] == 0, timeout=10,
               message="a delivered table of %d pages was left" % pages[k])
    got = collections.Counter(x.decode() for x in r.records())
    assert got == collections.Counter(big + ["after"])


def cycle_until_truncated(db, name, sid, rounds=15, texts=lambda rnd: ["x%d" % rnd]):
    """Put and deliver a batch a round until every staging table has gone
    from holding pages to none at least once; the records put, in order."""
    sent = []
    before = [0, 0, 0]
    truncated = set()
    for rnd in range(rounds):
        t = texts(rnd)
        db.execute("SELECT firehose.put_batch(%s, %s::text[])", (name, t))
        sent.extend(t)
        assert db.flush(name) is True
        # the truncation is the worker's next transaction after the recording
        time.sleep(0.2)
        now = stage_pages(db.one, sid)
        truncated |= {k for k in range(3) if before[k] > 0 and now[k] == 0}
        before = now
        if len(truncated) == 3:
            return sent
    pytest.fail("not every staging table was truncated in %d rounds: %s" % (rounds, truncated))


def test_an_empty_toast_table_and_its_index_are_left_alone(db, receiver):
    datadir = getattr(db.cluster, "datadir", None)
    if datadir is None:
        pytest.skip("needs the cluster's data directory")
    r = receiver()
    make_stream(db, "small", r.url)
    sid = db.one("SELECT id FROM firehose.stream WHERE name = 'small'")
    files = [os.path.join(datadir, db.one(
        "SELECT pg_relation_filepath(i.indexrelid) FROM pg_class c "
        "JOIN pg_index i ON i.indrelid = c.reltoastrelid WHERE c.oid = %s::regclass",
        (stage_name(sid, k),))) for k in range(3)]
    seen = [(os.stat(f).st_mtime_ns, os.stat(f).st_size) for f in files]
    time.sleep(0.05)            # a rebuilt index would show a later mtime

    sent = cycle_until_truncated(db, "small", sid)

    # truncating the TOAST table would have rebuilt its index: a new file
    # length (0, then the metapage written again) and a new mtime
    assert [(os.stat(f).st_mtime_ns, os.stat(f).st_size) for f in files] == seen
    assert [x.decode() for x in r.records()] == sent


def test_a_toast_table_in_use_is_truncated_with_its_table(db, receiver, wait_until):
    r = receiver()
    make_stream(db, "large", r.url)
    sid = db.one("SELECT id FROM firehose.stream WHERE name = 'large'")
    # random hex of 40 kB does not compress below 2 kB: stored in TOAST
    sent = cycle_until_truncated(
        db, "large", sid, texts=lambda rnd: [os.urandom(20000).hex() for _ in range(3)])

    def pages():
        """(pages, TOAST pages) of each staging table."""
        return [tuple(db.q("SELECT pg_relation_size(oid) / 8192, "
                           "pg_relation_size(reltoastrelid) / 8192 FROM pg_class "
                           "WHERE oid = %s::regclass", (stage_name(sid, k),))[0]) for k in range(3)]
    # the last batch's table holds its records; the one before it is
    # truncated by the worker's next transaction
    wait_until(lambda: sum(p > 0 for p, _ in pages()) <= 1, timeout=10,
               message="delivered tables were left: %s" % pages())
    now = pages()
    assert all(t == 0 for p, t in now if p == 0), now
    assert [x.decode() for x in r.records()] == sent


def test_a_staging_table_index_of_a_superuser_is_rebuilt(db, receiver):
    r = receiver()
    make_stream(db, "indexed", r.url)
    sid = db.one("SELECT id FROM firehose.stream WHERE name = 'indexed'")
    # put() does not maintain indexes (staging tables have none); a row a
    # superuser inserts by hand is in the index, and is delivered with the
    # first batch (batches read every committed row of the tables)
    for k in range(3):
        db.execute("CREATE INDEX ON %s (id)" % stage_name(sid, k))
        db.execute("INSERT INTO %s (id, txid, arrival, data) VALUES "
                   "(%d, txid_current(), now(), 'by hand %d')" % (stage_name(sid, k), -1 - k, k))
    sent = cycle_until_truncated(db, "indexed", sid)
    # an index left as it was would point at rows put since into the same
    # places: an index scan would find them under the old keys
    db.execute("SET enable_seqscan = off")
    db.execute("SET enable_bitmapscan = off")
    for k in range(3):
        plan = "\n".join(x[0] for x in db.q("EXPLAIN SELECT count(*) FROM %s WHERE id < 0"
                                            % stage_name(sid, k)))
        assert "Index" in plan, plan
        assert db.one("SELECT count(*) FROM %s WHERE id < 0" % stage_name(sid, k)) == 0
    assert collections.Counter(x.decode() for x in r.records()) == \
        collections.Counter(sent + ["by hand %d" % k for k in range(3)])
