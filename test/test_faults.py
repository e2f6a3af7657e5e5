"""Fault tests (issue 9): failures between steps that are not one transaction.

The worker is made to fail at a named point with the superuser-only,
testing-only setting firehose.test_fault (see README, "Configuration"),
set for the test's database only; a restarted worker reads it.
"""

import collections
import json

import psycopg2

from helpers import FAST, failed, make_stream, one_worker, put_texts


def set_worker_fault(db, pg, wait_until, points):
    """Make the database's worker fail at points (a list of names): set
    firehose.test_fault for the database and restart the worker."""
    db.execute('ALTER DATABASE "%s" SET firehose.test_fault = %%s' % db.dbname,
               (",".join(points),))
    old = one_worker(pg, db.dbname, wait_until)
    assert db.one("SELECT pg_terminate_backend(%s)", (old,)) is True
    one_worker(pg, db.dbname, wait_until, other_than=old)


def parked(db, point, other_than=None):
    """The pid of the database's worker once it waits at fault point (one
    started after other_than), else None."""
    rows = db.q("SELECT pid, query FROM pg_stat_activity "
                "WHERE backend_type = 'firehose worker' AND datname = current_database()")
    if len(rows) == 1 and rows[0][0] != other_than and \
            rows[0][1] == "firehose: waiting at fault point " + point:
        return rows[0][0]
    return None


def terminate(db, pg, wait_until, pid):
    """End the worker pid (SIGTERM, no crash) and wait for the next one."""
    assert db.one("SELECT pg_terminate_backend(%s)", (pid,)) is True
    return one_worker(pg, db.dbname, wait_until, other_than=pid)


def recorded_twice(db, r, stream):
    """Records carried by two requests whose outcomes are both recorded
    (firehose.deliveries), and the sum of the recorded parts' records."""
    ids = [x for (x,) in db.q("SELECT request_id::text FROM firehose.deliveries "
                              "WHERE stream = %s", (stream,))]
    stored = {q["request_id"]: q["records"] for q in r.requests(records=True)
              if q.get("stored")}
    n = collections.Counter(x for rid in ids for x in stored.get(rid, []))
    total = db.one("SELECT sum(records) FROM firehose.deliveries WHERE stream = %s",
                   (stream,))
    return sorted(x for x, c in n.items() if c > 1), total


def worker_activity(db):
    rows = db.q("SELECT query FROM pg_stat_activity "
                "WHERE backend_type = 'firehose worker' AND datname = current_database()")
    return rows[0][0] if len(rows) == 1 else None


def test_pause_holds_records_put_while_the_worker_holds_a_stale_load(db, pg, receiver,
                                                                      wait_until):
    """The worker loaded a new stream as ACTIVE; pause() committed before
    that pass cut anything, and records were put after it returned.  The pass
    must not cut them under the state it loaded: pause() holds every record
    put after it returns.  sleep:after_load keeps the worker between loading
    its streams and cutting for a few seconds, the window a loaded machine
    opens by chance."""
    r = receiver()
    other = receiver()
    make_stream(db, "barrier", other.url)
    set_worker_fault(db, pg, wait_until, ["sleep:after_load"])
    sleeping = "firehose: sleeping at fault point after_load"
    # the new worker's first pass loads, sleeps, and goes on
    wait_until(lambda: worker_activity(db) not in (None, sleeping), timeout=30,
               message="the restarted worker's first pass did not end")
    make_stream(db, "held", r.url)
    wait_until(lambda: worker_activity(db) == sleeping, timeout=30,
               message="the worker did not reload for the new stream")
    db.execute("SELECT firehose.pause('held')")
    put_texts(db, "held", ["h1", "h2"])
    # the pass that loaded 'held' as ACTIVE goes on; the next one reloads
    wait_until(lambda: worker_activity(db) != sleeping, timeout=30,
               message="the worker stayed at after_load")
    db.execute('ALTER DATABASE "%s" RESET firehose.test_fault' % db.dbname)
    put_texts(db, "barrier", ["b"])
    assert db.flush("barrier", "60s") is True
    st = db.q("SELECT status, buffered_records, in_flight_records, delivered_records "
              "FROM firehose.stream_status WHERE stream = 'held'")[0]
    assert st == ("PAUSED", 2, 0, 0)
    assert r.stats()["received"] == 0
    db.execute("SELECT firehose.resume('held')")
    assert db.flush("held", "60s") is True
    assert sorted(r.records()) == [b"h1", b"h2"]


def test_a_part_is_recorded_once_across_two_restarts(db, pg, receiver, wait_until):
    """A restarted worker resumes a batch from firehose.progress, jumping over
    the stretches recorded before.  It recorded its first part as starting
    where the batch stood, before the jump: at the start of the recorded
    stretch.  A second restart found two stretches starting there, jumped to
    the nearer end and recorded that part's records again: delivered_records
    counted them twice (seen in test_exactset with worker kills).  Each
    record is delivered once here and must be counted once."""
    r = receiver()
    # one batch of six parts of five records, one part at a time
    make_stream(db, "p", r.url, buffer_size=20, max_concurrency=1)
    set_worker_fault(db, pg, wait_until, ["wait:after_answer#2"])
    recs = ["r%03d" % i for i in range(30)]
    put_texts(db, "p", recs)

    # the first worker recorded part 0 and stops with part 1 answered
    pid = wait_until(lambda: parked(db, "after_answer"), timeout=30,
                     message="the first worker did not stop after its second answer")
    assert db.one("SELECT count(*) FROM firehose.deliveries") == 1
    # the second resumes the batch after part 0, records part 1 again and
    # stops with part 2 answered
    pid = terminate(db, pg, wait_until, pid)
    pid = wait_until(lambda: parked(db, "after_answer"), timeout=30,
                     message="the second worker did not stop after its second answer")
    assert db.one("SELECT count(*) FROM firehose.deliveries") == 2
    assert db.one("SELECT count(*) FROM firehose.progress") == 2
    # the third resumes the batch again and finishes it
    db.execute('ALTER DATABASE "%s" RESET firehose.test_fault' % db.dbname)
    terminate(db, pg, wait_until, pid)
    assert db.flush("p") is True

    assert sorted(set(r.records())) == [x.encode() for x in recs]
    twice, total = recorded_twice(db, r, "p")
    assert not twice, "records of two recorded parts: %r" % twice
    assert total == len(recs)
    st = db.q("SELECT delivered_records, failed_records, buffered_records, "
              "in_flight_records FROM firehose.stream_status WHERE stream = 'p'")
    assert st == [(len(recs), 0, 0, 0)], st


def test_a_batch_without_recorded_parts_is_read_again(db, pg, receiver, wait_until):
    """Batches complete in order, but their parts are recorded as they come:
    a later batch's part may be recorded while an older batch's part still
    retries.  A restarted worker resumed only the batches with a recorded
    part (firehose.progress) and cut new ones after the newest: the older
    batch's records were never read again."""
    r = receiver()
    make_stream(db, "g", r.url, max_concurrency=2, retry_base=60000, retry_max=60000)
    r.faults([{"status": 503, "count": 1}])
    first = ["first-%d" % i for i in range(3)]
    put_texts(db, "g", first)
    # the first batch's part is answered 503 and waits a minute to retry ...
    wait_until(lambda: [q["status"] for q in r.requests()] == [503], timeout=30,
               message="the first batch's request was not answered 503")
    # ... while the second batch's part is delivered and recorded
    second = ["second-%d" % i for i in range(3)]
    put_texts(db, "g", second)
    wait_until(lambda: db.one("SELECT count(*) FROM firehose.deliveries") == 1, timeout=30,
               message="the second batch's part was not recorded")
    assert db.one("SELECT count(*) FROM firehose.progress") == 1
    terminate(db, pg, wait_until, one_worker(pg, db.dbname, wait_until))
    assert db.flush("g") is True

    assert sorted(r.records()) == sorted(x.encode() for x in first + second)
    st = db.q("SELECT delivered_records, failed_records, buffered_records, "
              "in_flight_records FROM firehose.stream_status WHERE stream = 'g'")
    assert st == [(6, 0, 0, 0)], st


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


def test_durable_cannot_switch_under_buffered_records(db, receiver, wait_until):
    """Defect 2: alter_stream(durable) rewrites the staging tables (ALTER
    TABLE SET LOGGED), and the rewrite moves rows: the rows of a rolled-back
    transaction are left out, so the committed rows behind them move to the
    front.  A batch half read, whose TID cursor points into the old layout,
    then skipped records.  The switch is refused while anything is buffered
    or in flight; after a flush it goes through and loses nothing."""
    r = receiver()
    # small parts, one at a time, each answer slow: the batch is read in
    # many steps while the switch is tried
    make_stream(db, "d", r.url, buffer_size=2000, max_concurrency=1)
    r.faults([{"delay": 0.2}])
    aborted = db.conn(autocommit=False)
    aborted.cursor().execute("SELECT firehose.put_batch('d', %s::text[])",
                             (["gone-%d" % i for i in range(300)],))
    recs = ["kept-%04d-%s" % (i, "v" * 60) for i in range(600)]
    committed = db.conn(autocommit=False)
    committed.cursor().execute("SELECT firehose.put_batch('d', %s::text[])", (recs,))
    aborted.rollback()
    committed.commit()
    r.wait_requests(3, timeout=30)

    switched = True
    try:
        db.execute("""SELECT firehose.alter_stream('d', '{"durable": true}')""")
    except psycopg2.Error as e:
        switched = False
        assert e.pgcode == "55006", e.pgcode          # object_in_use
        assert "has records not yet delivered" in e.pgerror
        assert "firehose.flush('d', wait => true)" in e.diag.message_hint

    assert db.flush("d", "120s") is True
    got = r.records()
    assert sorted(got) == sorted(x.encode() for x in recs), \
        "%d of %d records arrived, %d distinct" % (len(got), len(recs), len(set(got)))
    assert not switched, "the switch went through with records in flight"
    assert db.one("SELECT count(*) FROM pg_class WHERE relnamespace = 'firehose'::regnamespace "
                  "AND relname LIKE 'stage_%' AND relpersistence = 'u'") == 3

    # nothing buffered now: the switch goes through, and delivery goes on
    r.faults([])
    db.execute("""SELECT firehose.alter_stream('d', '{"durable": true}')""")
    assert db.one("SELECT count(*) FROM pg_class WHERE relnamespace = 'firehose'::regnamespace "
                  "AND relname LIKE 'stage_%' AND relpersistence = 'p'") == 3
    db.execute("SELECT firehose.put('d', 'after')")
    assert db.flush("d") is True
    assert sorted(r.records()) == sorted([x.encode() for x in recs] + [b"after"])


def test_every_stream_delivers_what_arrives_during_and_after_a_pass(db, pg, receiver,
                                                                   wait_until):
    """A worker pass visits only the streams that got commits (noted in
    shared memory at commit), whose timer expired or that had a part
    recorded, not every stream.  Records put into many streams while a pass
    is in progress (sleep:after_load holds the worker between loading the
    streams and cutting), then one more into each once all were delivered
    and idle, must all be delivered, without flush() (which makes the worker look at every
    stream) and without the safety pass (naptime one hour).  60 streams fit
    in the set of noted streams (256); 300 may overflow it, and the worker
    must then look at all of them."""
    r = receiver()
    c = pg()
    try:
        cur = c.cursor()
        cur.execute("ALTER SYSTEM SET firehose.naptime = '1h'")
        cur.execute("SELECT pg_reload_conf()")
    finally:
        c.close()
    sleeping = "firehose: sleeping at fault point after_load"
    try:
        make_stream(db, "barrier", r.url)
        # a new worker reads naptime and the fault point when it starts
        set_worker_fault(db, pg, wait_until, ["sleep:after_load"])
        for n in (60, 300):
            r.reset()
            names = ["m%d_%03d" % (n, i) for i in range(n)]
            db.execute("SELECT firehose.create_stream(s, 'http', %s::jsonb) "
                       "FROM pg_catalog.unnest(%s::text[]) s",
                       (json.dumps(dict(FAST, url=r.url)), names))
            wait_until(lambda: worker_activity(db) == sleeping, timeout=30,
                       message="the worker did not reload for the new streams")
            conn = db.conn()
            with conn.cursor() as pc:
                for name in names:
                    pc.execute("SELECT firehose.put(%s, %s::text)", (name, name + " a"))
                wait_until(lambda: worker_activity(db) != sleeping, timeout=30,
                           message="the worker stayed at after_load")
                # every stream idle again: its 'a' recorded, nothing pending
                db.wait_for("SELECT sum(delivered_records) FROM firehose.stream_status "
                            "WHERE stream OPERATOR(pg_catalog.=) ANY(%s)", n, timeout=60,
                            params=(names,))
                for name in names:
                    pc.execute("SELECT firehose.put(%s, %s::text)", (name, name + " b"))
            conn.close()
            r.wait_records(2 * n, timeout=60)
            assert sorted(r.records()) == sorted(("%s %s" % (x, k)).encode()
                                                 for x in names for k in "ab")
        r.assert_no_violations()
    finally:
        db.execute('ALTER DATABASE "%s" RESET firehose.test_fault' % db.dbname)
        c = pg()
        try:
            cur = c.cursor()
            cur.execute("ALTER SYSTEM RESET firehose.naptime")
            cur.execute("SELECT pg_reload_conf()")
        finally:
            c.close()
