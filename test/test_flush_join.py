"""flush() while a batch is open (worker.c, flush_joins_open_batch).

A flush() that finds every committed record already in the stream's last
open batch is answered when that batch is, instead of cutting an empty batch
that reads every staging page again.  Records of a prepared transaction are
counted by no commit, so the worker must still cut for them: a transaction
prepared before the cut and committed while the batch is in flight, and one
prepared and committed after the cut.  firehose.naptime is set long, so the
safety pass (which finds prepared records on its own) cannot deliver them
in time: flush() must.
"""

import pytest

from helpers import make_stream, put_texts, setting


@pytest.fixture
def long_naptime(pg, wait_until):
    """firehose.naptime (the worker's safety pass) set to 10 minutes."""
    c = pg()
    with c.cursor() as cur:
        cur.execute("ALTER SYSTEM SET firehose.naptime = '10min'")
        cur.execute("SELECT pg_reload_conf()")
    wait_until(lambda: setting(pg, "firehose.naptime") == "10min",
               message="naptime not reloaded")
    yield
    with c.cursor() as cur:
        cur.execute("ALTER SYSTEM RESET firehose.naptime")
        cur.execute("SELECT pg_reload_conf()")
    c.close()


@pytest.fixture
def no_prepared_left(db):
    """A failed test leaves no prepared transaction (it would keep the
    database from being dropped)."""
    yield
    for (gid,) in db.q("SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"):
        db.execute("ROLLBACK PREPARED '%s'" % gid)


def prepare_put(db, gid, stream, texts):
    """put_batch in a transaction prepared as gid (not committed)."""
    c = db.conn()
    with c.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("SELECT firehose.put_batch(%s, %s::text[])", (stream, list(texts)))
        cur.execute("PREPARE TRANSACTION '%s'" % gid)
    c.close()


def in_flight(db, stream):
    return db.one("SELECT in_flight_records FROM firehose.stream_status WHERE stream = %s",
                  (stream,))


def open_batch(db, r, wait_until, stream):
    """put one record, whose request the receiver holds for 4 s: the
    stream's batch stays open that long."""
    r.faults([{"delay": 4.0, "count": 1}])
    put_texts(db, stream, ["a"])
    wait_until(lambda: in_flight(db, stream) == 1, timeout=30,
               message="the first batch was not cut")


def test_flush_cuts_for_a_transaction_prepared_before_the_open_batch(
        db, receiver, wait_until, long_naptime, no_prepared_left):
    """Prepared before the batch was cut (in progress in its snapshot),
    committed while it is in flight: no commit counted it, and flush()
    must deliver it (fails when the join ignores the transactions in
    progress at the cut: flush() returned with only 'a')."""
    r = receiver()
    make_stream(db, "s", r.url)
    prepare_put(db, "fh_before", "s", ["p1"])
    open_batch(db, r, wait_until, "s")
    db.execute("COMMIT PREPARED 'fh_before'")
    assert db.flush("s", "60s") is True
    assert sorted(r.records()) == [b"a", b"p1"]


def test_flush_cuts_for_a_transaction_prepared_after_the_open_batch(
        db, receiver, wait_until, long_naptime, no_prepared_left):
    """Begun, prepared and committed while the batch is in flight (a
    transaction the batch's snapshot does not know of): flush() must
    deliver it (fails when PREPARE is not counted: flush() returned with
    only 'a')."""
    r = receiver()
    make_stream(db, "s", r.url)
    open_batch(db, r, wait_until, "s")
    prepare_put(db, "fh_after", "s", ["p2"])
    db.execute("COMMIT PREPARED 'fh_after'")
    assert db.flush("s", "60s") is True
    assert sorted(r.records()) == [b"a", b"p2"]


def test_flush_of_an_open_batch_waits_for_it_and_for_later_commits(
        db, receiver, wait_until, long_naptime, no_prepared_left):
    """flush() while the only batch is in flight returns once it is
    delivered; a record committed after the cut still gets a batch."""
    r = receiver()
    make_stream(db, "s", r.url)
    open_batch(db, r, wait_until, "s")
    assert db.flush("s", "60s") is True
    assert sorted(r.records()) == [b"a"]
    assert in_flight(db, "s") == 0
    open_batch(db, r, wait_until, "s")
    put_texts(db, "s", ["b"])
    assert db.flush("s", "60s") is True
    assert sorted(r.records()) == [b"a", b"a", b"b"]
