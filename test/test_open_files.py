"""The worker within the server's open-file limit: its sockets count in fd.c's budget.

PostgreSQL's fd.c keeps the relation files it caches within max_safe_fds
(from the open-file limit), closing them LRU, but only counts the
descriptors it knows of.  The worker's staging tables (three per stream)
fill that budget; the sockets curl opened on top of it took the process past
its limit, and then epoll_create1 (a new WaitEventSet) failed, the worker
errored in a loop and sent again what it had not recorded.  The test starts
its own cluster with a low open-file limit, makes the worker open hundreds
of staging tables and keeps many requests in flight at once (the receiver
holds each answer), and asserts every record arrives exactly once, the worker
never restarted, and the log has no "Too many open files".
"""

import collections
import json

import pytest

import pgcluster
from helpers import FAST, worker_pids

NOFILE = 160            # the server's open-file limit: max_safe_fds about 140
STREAMS = 120           # 360 staging tables, more than fd.c may keep open
RECORDS = 30            # per stream, in batches of about 5 records
CONCURRENCY = 6         # requests of a stream in flight at once


@pytest.fixture
def small_cluster():
    if not pgcluster.firehose_library_installed():
        pytest.skip("the firehose library is not installed in this PostgreSQL")
    c = pgcluster.Cluster(conf={"max_connections": 20, "firehose.naptime": 200,
                                "firehose.worker_memory": "64MB"},
                          nofile=NOFILE)
    c.start()
    try:
        yield c
    finally:
        c.destroy()


def open_file_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return None


def test_sockets_and_staging_tables_stay_within_the_open_file_limit(small_cluster, receiver,
                                                                   wait_until):
    c = small_cluster
    c.psql("CREATE DATABASE fd")
    conn = c.connect("fd")
    cur = conn.cursor()
    cur.execute("CREATE EXTENSION firehose")

    recv = receiver()
    # each answer held a while: every stream's requests are in flight together
    recv.faults([{"delay": 0.3}])
    opts = dict(FAST, url=recv.url, max_concurrency=CONCURRENCY, buffer_size=5 * 60,
                retry_max=200)
    for s in range(STREAMS):
        cur.execute("SELECT firehose.create_stream(%s, 'http', %s::jsonb)",
                    ("s%d" % s, json.dumps(opts)))
    pid = one_worker_pid(c, wait_until)
    assert open_file_limit(pid) == NOFILE, "the server did not get the low open-file limit"
    sent = []
    for s in range(STREAMS):
        texts = [json.dumps({"s": s, "i": i, "pad": "x" * 30}) for i in range(RECORDS)]
        cur.execute("SELECT firehose.put_batch(%s, %s::text[])", ("s%d" % s, texts))
        sent.extend(texts)

    cur.execute("SELECT firehose.flush(NULL, true, '60s'::interval)")
    flushed = cur.fetchone()[0]
    log = c.log_text()
    assert "Too many open files" not in log, log[-3000:]
    assert "could not load library" not in log, log[-3000:]
    assert flushed is True, "flush timed out"

    got = collections.Counter(r.decode() for r in recv.records())
    dups = {t: n for t, n in got.items() if n > 1}
    missing = set(sent) - set(got)
    assert not missing, "%d records not delivered" % len(missing)
    assert not dups, "%d records delivered more than once" % len(dups)
    assert len(got) == len(sent)
    assert worker_pids(c.connect, "fd") == [pid], "the worker restarted"
    cur.execute("SELECT count(*) FROM firehose.failed_records")
    assert cur.fetchone()[0] == 0
    conn.close()


def one_worker_pid(c, wait_until):
    pids = []

    def found():
        pids[:] = worker_pids(c.connect, "fd")
        return len(pids) == 1
    wait_until(found, timeout=30, message="no firehose worker for database fd")
    return pids[0]
