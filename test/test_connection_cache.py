"""The worker's idle HTTP connections: kept for reuse, bounded by its fd budget.

libcurl keeps a finished request's connection open for the next request to
the same host and port.  Each such socket holds a place in PostgreSQL's file
descriptor budget (AcquireExternalFD, see test_open_files.py), and curl, left
to its default, keeps up to four connections per request in flight and
closes one only when another is given back: with many destinations the idle
connections filled the worker's places, a request to a new destination then
found none and failed ("No file descriptor was free for a connection") to be
retried, and after the deliveries the worker went on holding them.

The first test starts its own cluster with a low open-file limit, gives each
stream its own receiver (many distinct endpoints) and asserts that no request
had to be retried for want of a socket and that, once everything is
delivered, the worker holds at most an eighth of fd.c's budget
(max_safe_fds, below the open-file limit) as sockets to the receivers:
curl's sockets may take a quarter of it, and with nothing in flight the
worker closes its idle connections when they take more than half of that.
The second asserts the common case did not lose its reuse: one busy endpoint
sees no more connections than the stream's max_concurrency, and they stay
open for the next batch.
"""

import collections
import json
import os

import pytest

import pgcluster
from helpers import FAST, flush, make_stream, put_texts, worker_pids

NOFILE = 160            # the server's open-file limit: max_safe_fds about 140
ENDPOINTS = 40          # streams, each with its own receiver
RECORDS = 20            # per stream, in batches of about 5 records
CONCURRENCY = 2         # requests of a stream in flight at once
# curl's sockets: at most max_safe_fds / 4, idle ones half of that; fd.c's
# max_safe_fds is below the limit by the 3 standard streams and its 10
# reserved descriptors at least
IDLE_BOUND = (NOFILE - 3 - 10) // 4 // 2


@pytest.fixture
def small_cluster():
    if not pgcluster.firehose_library_installed():
        pytest.skip("the firehose library is not installed in this PostgreSQL")
    c = pgcluster.Cluster(conf={"max_connections": 20, "firehose.naptime": 200},
                          nofile=NOFILE)
    c.start()
    try:
        yield c
    finally:
        c.destroy()


def sockets_to(pid, ports):
    """The TCP sockets process pid holds open whose peer is one of ports."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue                    # closed meanwhile
        if link.startswith("socket:["):
            inodes.add(int(link[len("socket:["):-1]))
    held = 0
    for table in ("tcp", "tcp6"):
        with open("/proc/%d/net/%s" % (pid, table)) as f:
            next(f)
            for line in f:
                fields = line.split()
                peer_port = int(fields[2].rsplit(":", 1)[1], 16)
                if peer_port in ports and int(fields[9]) in inodes:
                    held += 1
    return held


def test_many_endpoints_idle_connections_stay_within_the_budget(small_cluster, receiver,
                                                                  wait_until):
    c = small_cluster
    c.psql("CREATE DATABASE conns")
    conn = c.connect("conns")
    cur = conn.cursor()
    cur.execute("CREATE EXTENSION firehose")

    receivers = [receiver() for _ in range(ENDPOINTS)]
    ports = {r.port for r in receivers}
    for i, r in enumerate(receivers):
        # each answer held a while: the streams' requests are in flight together
        r.faults([{"delay": 0.3}])
        opts = dict(FAST, url=r.url, max_concurrency=CONCURRENCY, buffer_size=5 * 60)
        cur.execute("SELECT firehose.create_stream(%s, 'http', %s::jsonb)",
                    ("e%d" % i, json.dumps(opts)))
    pids = []

    def one_worker():
        pids[:] = worker_pids(c.connect, "conns")
        return len(pids) == 1
    wait_until(one_worker, timeout=30, message="no firehose worker for database conns")
    pid = pids[0]

    sent = collections.defaultdict(list)
    for i in range(ENDPOINTS):
        texts = [json.dumps({"e": i, "i": k, "pad": "x" * 30}) for k in range(RECORDS)]
        cur.execute("SELECT firehose.put_batch(%s, %s::text[])", ("e%d" % i, texts))
        sent[i] = texts
    cur.execute("SELECT firehose.flush(NULL, true, '60s'::interval)")
    if cur.fetchone()[0] is not True:
        cur.execute("SELECT pg_catalog.count(*), pg_catalog.max(last_error) "
                    "FROM firehose.stream_status WHERE in_flight_records > 0")
        raise AssertionError("flush timed out: %d streams not done (%s)" % cur.fetchone())

    for i, r in enumerate(receivers):
        assert sorted(x.decode() for x in r.records()) == sorted(sent[i])
    # a request to a new endpoint waited for a place (curl closed an idle
    # connection for it) instead of failing for want of a descriptor
    cur.execute("SELECT count(*), count(*) FILTER (WHERE attempts > 1), "
                "pg_catalog.max(error) FROM firehose.deliveries")
    requests, retried, error = cur.fetchone()
    assert requests >= ENDPOINTS * RECORDS // 5
    assert retried == 0, "%d of %d requests were retried (%s)" % (retried, requests, error)

    # what curl keeps once nothing is in flight: within the bound (the
    # worker closes them all when they are more)
    held = []

    def within_bound():
        held[:] = [sockets_to(pid, ports)]
        return held[0] <= IDLE_BOUND
    try:
        wait_until(within_bound, timeout=30)
    except TimeoutError:
        raise AssertionError("after the deliveries the worker holds %d sockets to the "
                             "receivers, expected at most %d" % (held[0], IDLE_BOUND))
    assert worker_pids(c.connect, "conns") == [pid], "the worker restarted"
    conn.close()


def test_busy_endpoint_reuses_its_connections(db, receiver):
    r = receiver()
    make_stream(db, "busy", r.url, max_concurrency=4, buffer_size=200)
    for k in range(10):
        put_texts(db, "busy", ["%d-%d-%s" % (k, i, "y" * 40) for i in range(20)])
        flush(db, "busy")
    reqs = r.requests()
    assert len(reqs) >= 40, "expected many small requests, got %d" % len(reqs)
    connections = {q["client_port"] for q in reqs}
    assert len(connections) <= 4, \
        "%d requests came on %d connections" % (len(reqs), len(connections))
    # and kept, open, for the next batch while nothing is in flight
    pids = worker_pids(db.cluster.connect, db.dbname)
    assert len(pids) == 1
    assert 1 <= sockets_to(pids[0], {r.port}) <= 4
