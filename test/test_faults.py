"""Fault tests (issue 9): failures between steps that are not one transaction.

The worker is made to fail at a named point with the superuser-only,
testing-only setting firehose.test_fault (see README, "Configuration"),
set for the test's database only; a restarted worker reads it.
"""

from helpers import failed, make_stream, one_worker


def set_worker_fault(db, pg, wait_until, points):
    """Make the database's worker fail at points (a list of names): set
    firehose.test_fault for the database and restart the worker."""
    db.execute('ALTER DATABASE "%s" SET firehose.test_fault = %%s' % db.dbname,
               (",".join(points),))
    old = one_worker(pg, db.dbname, wait_until)
    assert db.one("SELECT pg_terminate_backend(%s)", (old,)) is True
    one_worker(pg, db.dbname, wait_until, other_than=old)


def test_failed_records_survive_a_failure_after_the_truncate(db, pg, cluster, receiver,
                                                             wait_until):
    """Defect 1: the worker truncated a staging table in the transaction that
    recorded the last part's failed records; an ERROR after the truncate
    rolled the recording back but not the truncate, and the records vanished.
    Here the last part of a batch fails for good while its records lie in a
    staging table that is no longer current, so the worker truncates that
    table right after recording them, and fails there."""
    r = receiver()
    make_stream(db, "f", r.url)
    set_worker_fault(db, pg, wait_until, ["after_truncate"])
    log_offset = len(cluster.log_text())
    put = "SELECT firehose.put('f', %s::text)"

    # r1 goes into the current staging table in a transaction left open ...
    long = db.conn(autocommit=False)
    long.cursor().execute(put, ("r1",))
    # ... while another record's batch completes and moves the producers on
    db.execute(put, ("x0",))
    assert db.flush("f") is True
    # r1 fails for good (400), and its table is truncated after recording
    r.faults([{"status": 400}])
    long.commit()
    db.flush("f")
    wait_until(lambda: "injected failure at \"after_truncate\"" in
               cluster.log_text()[log_offset:], timeout=30,
               message="the worker did not reach the fault point")
    one_worker(pg, db.dbname, wait_until)   # the worker goes on after the error
    assert db.flush("f") is True

    rows = failed(db, "f")
    assert [x["data"] for x in rows] == [b"r1"], rows
    assert rows[0]["error_code"] is not None
    assert r.records() == [b"x0"]
    st = db.q("SELECT delivered_records, failed_records, buffered_records, "
              "in_flight_records FROM firehose.stream_status WHERE stream = 'f'")
    assert st == [(1, 1, 0, 0)], st
