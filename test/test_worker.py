"""The delivery worker's life: killed, restarted, crashed, reconfigured, its database dropped.

Crash and restart tests need a cluster this test run controls (the throw-away
one the `cluster` fixture starts, or test/run's via FIREHOSE_TEST_PGDIR); they
are skipped against an external server.
"""

import json
import os
import time

import psycopg2
import pytest

from helpers import FAST, flush, make_stream, one_worker, put_texts, setting, worker_pids


def alter_system(pg, sql, reload=True):
    c = pg()
    try:
        cur = c.cursor()
        cur.execute(sql)
        if reload:
            cur.execute("SELECT pg_reload_conf()")
    finally:
        c.close()


@pytest.fixture
def delivery_switch(pg, wait_until):
    """switch(on: bool): firehose.enabled via ALTER SYSTEM + reload; reset at teardown."""
    def switch(on):
        if on:
            alter_system(pg, "ALTER SYSTEM RESET firehose.enabled")
        else:
            alter_system(pg, "ALTER SYSTEM SET firehose.enabled = off")
        want = "on" if on else "off"
        wait_until(lambda: setting(pg, "firehose.enabled") == want, timeout=10,
                   message="firehose.enabled did not become %s" % want)
    yield switch
    alter_system(pg, "ALTER SYSTEM RESET firehose.enabled")


def controlled(cluster):
    if not hasattr(cluster, "datadir"):
        pytest.skip("needs a cluster controlled by this test run (crash/restart)")


# -- the worker process ------------------------------------------------------------

@pytest.mark.parametrize("how", ["pg_terminate_backend", "sigterm"])
def test_terminated_worker_comes_back_and_delivers(db, pg, receiver, wait_until, how):
    r = receiver()
    make_stream(db, "s", r.url)
    put_texts(db, "s", ["before"])
    flush(db, "s")
    pid = one_worker(pg, db.dbname, wait_until)
    assert db.one("SELECT worker_running FROM firehose.stream_status WHERE stream = 's'")

    if how == "sigterm":
        if not hasattr(db.cluster, "datadir"):
            pytest.skip("signals need a local cluster")
        os.kill(pid, 15)
    else:
        assert db.one("SELECT pg_terminate_backend(%s)", (pid,)) is True
    meanwhile = ["meanwhile-%d" % i for i in range(100)]
    put_texts(db, "s", meanwhile[:50])
    db.execute("SELECT firehose.put('s', %s::text)", (meanwhile[50],))
    put_texts(db, "s", meanwhile[51:])

    new = one_worker(pg, db.dbname, wait_until, other_than=pid)
    assert new != pid
    flush(db, "s")
    assert r.records() == [b"before"] + [x.encode() for x in meanwhile]
    r.assert_no_violations()


def test_worker_killed_during_a_request_resends_the_batch(db, pg, receiver, wait_until):
    r = receiver()
    r.faults([{"delay": 2.0, "count": 1}])
    make_stream(db, "s", r.url)
    recs = ["k-%d" % i for i in range(20)]
    put_texts(db, "s", recs)
    wait_until(lambda: r.stats()["received"] >= 1, timeout=10)
    pid = one_worker(pg, db.dbname, wait_until)
    assert db.one("SELECT pg_terminate_backend(%s)", (pid,)) is True
    one_worker(pg, db.dbname, wait_until, other_than=pid)
    flush(db, "s")
    got = r.records()
    # at least once: all there, duplicates only from the interrupted request
    assert set(got) == {x.encode() for x in recs}
    assert len(got) in (20, 40)
    assert db.one("SELECT count(*) FROM firehose.failed_records") == 0
    st = db.q("SELECT buffered_records, in_flight_records FROM firehose.stream_status")
    assert st == [(0, 0)]


# -- DROP DATABASE ------------------------------------------------------------------

def _fresh_db(cluster, name):
    cluster.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    cluster.psql('CREATE DATABASE "%s"' % name)
    conn = cluster.connect(name)
    conn.cursor().execute("CREATE EXTENSION firehose")
    return conn


@pytest.mark.parametrize("in_flight", [False, True], ids=["idle", "request-in-flight"])
def test_drop_database_with_running_worker(cluster, pg, receiver, wait_until, in_flight):
    name = "fh_drop_%d_%d" % (os.getpid(), in_flight)
    r = receiver()
    conn = None
    try:
        conn = _fresh_db(cluster, name)
        cur = conn.cursor()
        cur.execute("SELECT firehose.create_stream('s', 'http', %s::jsonb)",
                    (json.dumps(dict(FAST, url=r.url, request_timeout=120000)),))
        cur.execute("SELECT firehose.put('s', 'x'::text)")
        cur.execute("SELECT firehose.flush('s', true)")
        assert cur.fetchone()[0] is True
        if in_flight:
            r.faults([{"delay": 60}])
            cur.execute("SELECT firehose.put('s', 'y'::text)")
            wait_until(lambda: r.stats()["received"] >= 2, timeout=10)
        one_worker(pg, name, wait_until)
        conn.close()

        t0 = time.monotonic()
        cluster.psql('DROP DATABASE "%s"' % name)          # no FORCE
        elapsed = time.monotonic() - t0
        assert elapsed < 10, "DROP DATABASE took %.1fs" % elapsed
        assert cluster.psql("SELECT count(*) FROM pg_database WHERE datname = %s",
                            params=(name,))[0][0] == 0
        assert worker_pids(pg, name) == []
    finally:
        if conn is not None:
            conn.close()
        cluster.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def test_failed_drop_database_gets_its_worker_back(cluster, pg, receiver, wait_until):
    """DROP DATABASE refused (another session is connected): the worker returns and delivers."""
    name = "fh_nodrop_%d" % os.getpid()
    r = receiver()
    conn = None
    try:
        conn = _fresh_db(cluster, name)
        cur = conn.cursor()
        cur.execute("SELECT firehose.create_stream('s', 'http', %s::jsonb)",
                    (json.dumps(dict(FAST, url=r.url)),))
        cur.execute("SELECT firehose.flush('s', true)")
        pid = one_worker(pg, name, wait_until)
        with pytest.raises(psycopg2.Error) as e:
            cluster.psql('DROP DATABASE "%s"' % name)
        assert "being accessed by other users" in str(e.value)
        cur.execute("SELECT firehose.put('s', 'still here'::text)")
        one_worker(pg, name, wait_until, other_than=pid)
        cur.execute("SELECT firehose.flush('s', true)")
        assert cur.fetchone()[0] is True
        assert r.records() == [b"still here"]
    finally:
        if conn is not None:
            conn.close()
        cluster.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


# -- crash and restart ----------------------------------------------------------------

def test_crash_keeps_durable_records_and_loses_unlogged_ones(db, cluster, pg, receiver,
                                                             wait_until, delivery_switch):
    controlled(cluster)
    rd, ru = receiver(), receiver()
    make_stream(db, "dur", rd.url, durable=True)
    make_stream(db, "unl", ru.url)
    assert db.one("SELECT options->'durable' FROM firehose.streams WHERE name = 'unl'") is False
    flush(db, "dur")
    flush(db, "unl")
    delivery_switch(False)
    dur = ["durable-%d" % i for i in range(200)]
    unl = ["unlogged-%d" % i for i in range(200)]
    put_texts(db, "dur", dur)
    put_texts(db, "unl", unl)
    assert db.q("SELECT stream, buffered_records FROM firehose.stream_status ORDER BY 1") == \
        [("dur", 200), ("unl", 200)]
    # on again after the restart, not before the crash (no reload until then)
    alter_system(pg, "ALTER SYSTEM RESET firehose.enabled", reload=False)

    cluster.crash()
    db.close_all()
    assert setting(pg, "firehose.enabled") == "on"
    one_worker(pg, db.dbname, wait_until)

    flush(db, "dur")
    flush(db, "unl")
    assert rd.records() == [x.encode() for x in dur]
    assert ru.records() == []
    st = db.q("SELECT stream, buffered_records, in_flight_records, failed_records "
              "FROM firehose.stream_status ORDER BY 1")
    assert st == [("dur", 0, 0, 0), ("unl", 0, 0, 0)]
    # both streams keep working
    put_texts(db, "unl", ["after-1", "after-2"])
    put_texts(db, "dur", ["after-3"])
    flush(db, "unl")
    flush(db, "dur")
    assert ru.records() == [b"after-1", b"after-2"]
    assert rd.records()[-1] == b"after-3" and len(rd.records()) == 201
    rd.assert_no_violations()
    ru.assert_no_violations()


def test_crash_while_durable_records_are_in_flight(db, cluster, pg, receiver, wait_until):
    controlled(cluster)
    r = receiver()
    r.faults([{"status": 503}])
    make_stream(db, "dur", r.url, durable=True)
    recs = ["inflight-%d" % i for i in range(50)]
    put_texts(db, "dur", recs)
    wait_until(lambda: r.stats()["received"] >= 2, timeout=10)
    cluster.crash()
    db.close_all()
    r.faults([])
    one_worker(pg, db.dbname, wait_until)
    flush(db, "dur")
    assert r.records() == [x.encode() for x in recs]
    assert db.one("SELECT count(*) FROM firehose.failed_records") == 0


def test_clean_restart_keeps_unlogged_records(db, cluster, pg, receiver, wait_until,
                                              delivery_switch):
    controlled(cluster)
    r = receiver()
    make_stream(db, "unl", r.url)
    flush(db, "unl")
    delivery_switch(False)
    recs = ["kept-%d" % i for i in range(150)]
    put_texts(db, "unl", recs)
    assert db.one("SELECT buffered_records FROM firehose.stream_status") == 150
    alter_system(pg, "ALTER SYSTEM RESET firehose.enabled", reload=False)

    cluster.restart()
    db.close_all()
    one_worker(pg, db.dbname, wait_until)
    flush(db, "unl")
    assert r.records() == [x.encode() for x in recs]


def test_clean_restart_with_records_in_flight(db, cluster, pg, receiver, wait_until):
    controlled(cluster)
    r = receiver()
    r.faults([{"status": 503}])
    make_stream(db, "unl", r.url)
    recs = ["restart-%d" % i for i in range(30)]
    put_texts(db, "unl", recs)
    wait_until(lambda: r.stats()["received"] >= 2, timeout=10)
    t0 = time.monotonic()
    cluster.restart()
    assert time.monotonic() - t0 < 30, "the worker held up a fast shutdown"
    db.close_all()
    r.faults([])
    one_worker(pg, db.dbname, wait_until)
    flush(db, "unl")
    assert r.records() == [x.encode() for x in recs]


# -- configuration ---------------------------------------------------------------------

def test_worker_survives_a_stream_dropped_while_its_request_is_in_flight(db, pg, receiver,
                                                                        wait_until):
    r, r2 = receiver(), receiver()
    r.faults([{"delay": 3.0, "count": 1}])
    make_stream(db, "doomed", r.url)
    make_stream(db, "other", r2.url)
    put_texts(db, "doomed", ["d1", "d2"])
    wait_until(lambda: r.stats()["received"] >= 1, timeout=10)
    pid = one_worker(pg, db.dbname, wait_until)
    with pytest.raises(psycopg2.Error) as e:
        db.execute("SELECT firehose.drop_stream('doomed')")
    assert "not yet delivered" in str(e.value)
    db.execute("SELECT firehose.drop_stream('doomed', force => true)")
    assert db.q("SELECT name FROM firehose.streams") == [("other",)]

    put_texts(db, "other", ["o1"])
    flush(db, "other")
    assert r2.records() == [b"o1"]
    # a new stream with the old name starts clean
    make_stream(db, "doomed", r2.url)
    put_texts(db, "doomed", ["n1"])
    flush(db, "doomed")
    assert r2.records() == [b"o1", b"n1"]
    wait_until(lambda: r.stats()["records"] >= 2, timeout=10)   # the slow answer lands
    put_texts(db, "other", ["o2"])
    flush(db, "other")
    assert r2.records() == [b"o1", b"n1", b"o2"]
    assert worker_pids(pg, db.dbname) == [pid], "the worker restarted"
    assert db.one("SELECT count(*) FROM firehose.failed_records") == 0


def test_sighup_enabled_off_stops_delivery_and_on_resumes(db, pg, receiver, delivery_switch):
    r = receiver()
    make_stream(db, "s", r.url)
    put_texts(db, "s", ["before"])
    flush(db, "s")
    pid = worker_pids(pg, db.dbname)

    delivery_switch(False)
    put_texts(db, "s", ["off-1", "off-2"])
    assert db.one("SELECT firehose.flush('s', true, '2s')") is False
    assert r.records() == [b"before"]
    assert r.stats()["received"] == 1
    assert db.one("SELECT buffered_records FROM firehose.stream_status") == 2

    delivery_switch(True)
    flush(db, "s")
    assert r.records() == [b"before", b"off-1", b"off-2"]
    assert worker_pids(pg, db.dbname) == pid, "reload must not restart the worker"


def test_worker_restart_mid_batch_resends_at_most_the_batch_and_counts_records_once(
        db, pg, receiver, wait_until):
    """A batch of 5 parts: 3 delivered and recorded, the 4th retrying, when the worker
    is terminated.  The next worker delivers the rest; duplicates stay within the
    batch, and stream_status counts every record once (incoming = records put)."""
    r = receiver()
    r.faults([{"delay": 0.0, "count": 3}, {"status": 503}])     # parts 1-3 ok, then 503
    make_stream(db, "s", r.url, buffer_size=100)
    recs = ["%02d" % i + "m" * 48 for i in range(10)]           # 50 bytes: 2 per part
    put_texts(db, "s", recs)
    wait_until(lambda: r.stats()["received"] >= 5, timeout=10)  # the 4th part retried
    db.wait_for("SELECT count(*) FROM firehose.deliveries", 3)
    pid = one_worker(pg, db.dbname, wait_until)
    assert db.one("SELECT pg_terminate_backend(%s)", (pid,)) is True
    r.faults([])
    one_worker(pg, db.dbname, wait_until, other_than=pid)
    flush(db, "s")
    got = r.records()
    assert set(got) == {x.encode() for x in recs}
    assert len(got) <= 2 * len(recs), "duplicates beyond the one batch"
    st = db.q("SELECT incoming_records, delivered_records, buffered_records, "
              "in_flight_records, failed_records FROM firehose.stream_status")[0]
    print("received %d records for 10 put; stream_status %r" % (len(got), st))
    assert st == (10, 10, 0, 0, 0), \
        "stream_status (incoming, delivered, buffered, in flight, failed) = %r" % (st,)


def test_worker_restart_with_parts_of_two_batches_recorded(db, pg, receiver, wait_until):
    """max_concurrency 2: part A1 of batch 1 hangs at the endpoint while A2 (batch 1) and
    B1 (batch 2) are delivered and recorded; then the worker is terminated.  The next
    worker must send A1 again, but not the parts already recorded (A2, B1), and
    stream_status must count every record once."""
    r = receiver()
    r.faults([{"delay": 4.0, "count": 1}])             # the first request to arrive hangs
    make_stream(db, "s", r.url, buffer_size=100, max_concurrency=2, request_timeout=30000)
    flush(db, "s")
    a = ["A%d" % i + "a" * 48 for i in range(4)]          # 50 bytes: 2 parts of 2
    b = ["B%d" % i + "b" * 48 for i in range(2)]          # 1 part
    put_texts(db, "s", a)
    wait_until(lambda: r.stats()["requests"] >= 1, timeout=10)   # one A part stored
    put_texts(db, "s", b)
    wait_until(lambda: r.stats()["requests"] >= 2, timeout=10)   # the B part stored
    db.wait_for("SELECT count(*) FROM firehose.deliveries", 2)
    assert len([q for q in r.requests() if not q.get("stored")]) == 1     # A's hung part
    recorded_ids = {x[0] for x in db.q("SELECT request_id::text FROM firehose.deliveries")}
    pid = one_worker(pg, db.dbname, wait_until)
    assert db.one("SELECT pg_terminate_backend(%s)", (pid,)) is True
    one_worker(pg, db.dbname, wait_until, other_than=pid)
    flush(db, "s")
    wait_until(lambda: all(q.get("outcome") for q in r.requests()), timeout=10)
    got = r.records()
    counts = {x: got.count(x.encode()) for x in a + b}
    recorded = [x.decode() for q in r.requests(records=True)
                if q["request_id"] in recorded_ids for x in q["records"]]
    assert len(recorded) == 4
    st = db.q("SELECT incoming_records, delivered_records, buffered_records, "
              "in_flight_records FROM firehose.stream_status")[0]
    print("counts %r; recorded before the kill %r; stream_status %r" % (counts, recorded, st))
    assert all(c >= 1 for c in counts.values()), counts
    resent = [x for x in recorded if counts[x] != 1]
    assert not resent, "delivered and recorded before the kill, yet sent again: %r" % resent
    assert st == (6, 6, 0, 0), "stream_status (incoming, delivered, buffered, in flight) = %r" % (st,)
