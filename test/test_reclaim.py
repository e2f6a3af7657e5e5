"""Reclaiming staging tables when shared_buffers is large.

Truncating a staging table walks every buffer header of shared_buffers
(PostgreSQL 15 outside recovery), however small the table: with 4 GB of
shared_buffers, 1,000 streams of a record a second kept the worker 89% busy
and 20 s late.  A table smaller than reclaim_pages() (shared_buffers / 16384
pages, at least 1) is now truncated only once the pages later batches read
again for it add up to that many.  These tests run a cluster of its own with
shared_buffers = 1 GB: 131,072 buffers, so 8 pages.  With the default 128 MB
every table is truncated at once, as the rest of the suite shows.
"""

import collections
import json
import time

import pytest

import pgcluster
from helpers import FAST

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

    def pages(self):
        """Pages of each of the stream's three staging tables."""
        self.cur.execute("SELECT pg_relation_size(format('firehose.stage_%%s_%%s', %s, k)::regclass) "
                         "/ 8192 FROM generate_series(0, 2) k ORDER BY k", (self.id,))
        return [r[0] for r in self.cur.fetchall()]


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
