"""Prepared transactions (PREPARE TRANSACTION, COMMIT PREPARED).

Their records become visible at COMMIT PREPARED, which no commit callback
announces to the worker.  The worker learns of them from notes made at
PREPARE (the transaction's streams and id), or, when it has no notes (it
started after the PREPARE, or the notes overflowed), from the list of
prepared transactions, and looks when each has ended.  Every test runs with
firehose.naptime at one hour, so that the worker's rare probe of every
stream (every ten naptimes) cannot be what delivers the records.
"""

import json
import time

import pytest

from helpers import FAST, alter_system, make_stream, one_worker, put_texts, setting

# well under naptime (1 h); the worker looks at least once a second
PROMPT = 20


@pytest.fixture
def long_naptime(pg, wait_until):
    alter_system(pg, "firehose.naptime", "1h")
    wait_until(lambda: setting(pg, "firehose.naptime") == "1h", message="naptime not reloaded")
    yield
    alter_system(pg, "firehose.naptime")


@pytest.fixture
def prepared(db):
    """prepare(gid, sql_statements): run them in a transaction and PREPARE
    it; prepared transactions left at the end are rolled back (a database
    with one cannot be dropped)."""
    def prepare(gid, statements):
        c = db.conn(autocommit=False)
        with c.cursor() as cur:
            for sql, params in statements:
                cur.execute(sql, params)
            cur.execute("PREPARE TRANSACTION %s", (gid,))
        c.commit()
        c.close()
    yield prepare
    for (gid,) in db.q("SELECT gid FROM pg_prepared_xacts "
                       "WHERE database = current_database()"):
        db.execute("ROLLBACK PREPARED %s", (gid,))


def puts(stream, texts):
    return [("SELECT firehose.put(%s, %s::text)", (stream, t)) for t in texts]


def wait_for(r, expected):
    """The receiver's records once it has len(expected) of them (or after
    PROMPT seconds), sorted, and the seconds it took."""
    t0 = time.time()
    r.wait_records(len(expected), timeout=PROMPT)
    return sorted(r.records()), time.time() - t0


def test_commit_prepared_delivers_promptly_and_rollback_nothing(db, receiver, long_naptime,
                                                                prepared):
    r = receiver()
    make_stream(db, "p", r.url)
    make_stream(db, "q", r.url)
    assert db.flush() is True     # the worker runs and has loaded the streams
    prepared("tx1", puts("p", ["p1", "p2"]) + puts("q", ["q1"]) +
             [("SAVEPOINT s", None)] + puts("p", ["p3"]) + [("RELEASE s", None)])
    prepared("tx2", puts("p", ["gone1"]) + puts("q", ["gone2"]))
    assert db.one("SELECT count(*) FROM pg_prepared_xacts") == 2
    assert r.records() == []
    db.execute("ROLLBACK PREPARED 'tx2'")
    db.execute("COMMIT PREPARED 'tx1'")
    got, took = wait_for(r, ["p1", "p2", "p3", "q1"])
    assert got == [b"p1", b"p2", b"p3", b"q1"], "after %.1fs" % took
    # what was rolled back never arrives; the streams go on as usual
    put_texts(db, "p", ["after"])
    assert db.flush("p") is True
    assert db.flush("q") is True
    assert sorted(r.records()) == [b"after", b"p1", b"p2", b"p3", b"q1"]
    assert db.q("SELECT stream, buffered_records, delivered_records "
                "FROM firehose.stream_status ORDER BY 1") == [("p", 0, 4), ("q", 0, 1)]
    r.assert_no_violations()


def test_stream_created_and_put_into_in_a_prepared_transaction(db, receiver, long_naptime,
                                                               prepared):
    """A change of the streams in a prepared transaction is loaded by the
    worker when the transaction commits (no commit callback reloads it)."""
    r = receiver()
    make_stream(db, "old", r.url)
    put_texts(db, "old", ["o1"])
    assert db.flush("old") is True   # the worker runs and has loaded the streams
    prepared("tx", [("SELECT firehose.create_stream('new', 'http', %s::jsonb)",
                     (json.dumps(dict(FAST, url=r.url)),))] + puts("new", ["n1", "n2"]))
    db.execute("COMMIT PREPARED 'tx'")
    got, took = wait_for(r, ["o1", "n1", "n2"])
    assert got == [b"n1", b"n2", b"o1"], "after %.1fs" % took


@pytest.mark.parametrize("how", ["terminate", "crash"])
def test_prepared_transaction_across_a_worker_restart(db, cluster, pg, receiver, wait_until,
                                                      long_naptime, prepared, how):
    """The worker that took the notes of a prepared transaction is gone when
    it commits: its successor (after SIGTERM; after a crash, which empties
    shared memory and unlogged tables, with a durable stream) lists the
    prepared transactions when it starts."""
    if how == "crash" and not hasattr(cluster, "datadir"):
        pytest.skip("needs a cluster controlled by this test run (crash)")
    r = receiver()
    make_stream(db, "s", r.url, durable=(how == "crash"))
    put_texts(db, "s", ["before"])
    assert db.flush("s") is True
    prepared("tx", puts("s", ["x1", "x2", "x3"]))
    old = one_worker(pg, db.dbname, wait_until)
    if how == "terminate":
        assert db.one("SELECT pg_terminate_backend(%s)", (old,)) is True
    else:
        cluster.crash()
        db.close_all()
    one_worker(pg, db.dbname, wait_until, other_than=old, timeout=60)
    assert setting(pg, "firehose.naptime") == "1h"
    db.execute("COMMIT PREPARED 'tx'")
    got, took = wait_for(r, ["before", "x1", "x2", "x3"])
    assert got == [b"before", b"x1", b"x2", b"x3"], "after %.1fs" % took


def test_prepared_transaction_past_the_room_of_the_notes(db, receiver, long_naptime, prepared):
    """One prepared transaction that puts into 100 streams: more than the
    worker's notes hold (64), so it finds the transaction in the list of
    prepared transactions and looks at every stream when it commits."""
    r = receiver()
    names = ["o%03d" % i for i in range(100)]
    db.execute("SELECT firehose.create_stream(s, 'http', %s::jsonb) "
               "FROM pg_catalog.unnest(%s::text[]) s",
               (json.dumps(dict(FAST, url=r.url)), names))
    assert db.flush() is True     # the worker has loaded the streams
    prepared("tx", [("SELECT firehose.put(s, s || ' x') FROM pg_catalog.unnest(%s::text[]) s",
                     (names,))])
    db.execute("COMMIT PREPARED 'tx'")
    t0 = time.time()
    r.wait_records(100, timeout=60)
    assert sorted(r.records()) == sorted((n + " x").encode() for n in names), \
        "after %.1fs" % (time.time() - t0)
    r.assert_no_violations()
