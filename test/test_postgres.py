"""Destination 'postgres' (issue 12, section 1): records into a table of a
second, real PostgreSQL cluster that this module starts (test/pgcluster.py,
without the firehose library).

Each test makes its own target database.  Records are JSON objects that
carry an id; what the target holds is compared with what was committed.
"""

import json
import os
import random
import signal
import sys
import threading
import time

import psycopg2
import pytest

import pgcluster
import pgproxy
from helpers import FAST, failed, one_worker

ROUNDS = int(os.environ.get("FIREHOSE_PG_CRASH_ROUNDS", "10"))

MIXED = """CREATE TABLE public.events (
    id bigint PRIMARY KEY,
    session int NOT NULL,
    name text,
    amount numeric(12,2),
    ratio double precision,
    ok boolean,
    at timestamptz,
    day date,
    tag uuid,
    doc jsonb)"""


@pytest.fixture(scope="module")
def target():
    """The second cluster: the destination's server."""
    c = pgcluster.Cluster(conf={"shared_preload_libraries": "", "log_min_messages": "warning"})
    c.start()
    yield c
    c.destroy()


_targets = iter(range(1, 1000))


@pytest.fixture
def tdb(target):
    """A fresh database on the target cluster; (name, cursor factory)."""
    name = "tgt_%d_%d" % (os.getpid(), next(_targets))
    target.psql('CREATE DATABASE "%s"' % name)
    yield name
    target.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def tq(target, dbname, sql, params=None):
    return target.psql(sql, db=dbname, params=params)


def conninfo(target, dbname):
    return "host=127.0.0.1 port=%d user=%s dbname=%s" % (target.port, target.user, dbname)


def make_pg_stream(db, name, target, dbname, **opts):
    o = dict(FAST, conninfo=conninfo(target, dbname), table="public.events")
    o.update(opts)
    db.execute("SELECT firehose.create_stream(%s, 'postgres', %s::jsonb)", (name, json.dumps(o)))


def record(i, session=0, bad=False):
    r = {"id": i, "session": session, "name": "n\t%d\\x\n" % i, "amount": "%d.25" % (i % 1000),
         "ratio": i / 7.0, "ok": i % 2 == 0, "at": "2026-01-01T00:00:00Z",
         "day": "2026-02-03", "tag": "00000000-0000-0000-0000-%012d" % i,
         "doc": {"k": i, "s": "x'\"y"}}
    if bad:
        r["amount"] = "not a number" if i % 2 else r["amount"]
        if i % 2 == 0:
            r["session"] = None
    return json.dumps(r)


def put_all(db, stream, texts):
    return db.one("SELECT firehose.put_batch(%s, %s::text[])", (stream, list(texts)))


def target_ids(target, dbname, table="public.events"):
    return [x for (x,) in tq(target, dbname, "SELECT id FROM %s ORDER BY id" % table)]


def test_records_land_in_the_table_with_their_types(db, target, tdb):
    tq(target, tdb, MIXED)
    make_pg_stream(db, "p", target, tdb)
    put_all(db, "p", [record(i) for i in range(1, 6)])
    assert db.flush("p", "120s") is True
    rows = tq(target, tdb, "SELECT id, session, name, amount::text, ok, at, day::text, tag::text, "
              "doc FROM public.events ORDER BY id")
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0][2] == "n\t1\\x\n"
    assert rows[0][3] == "1.25"
    assert rows[0][4] is False and rows[1][4] is True
    assert rows[0][6] == "2026-02-03"
    assert rows[0][7] == "00000000-0000-0000-0000-000000000001"
    assert rows[0][8] == {"k": 1, "s": "x'\"y"}
    st = db.q("SELECT delivered_records, failed_records FROM firehose.stream_status "
              "WHERE stream = 'p'")
    assert st == [(5, 0)]


def test_bad_records_fail_alone(db, target, tdb):
    """1% of the records are refused by the target (a value numeric does not
    read, a NULL in a NOT NULL column): exactly those are in failed_records,
    with Postgres.<SQLSTATE> and the server's message; the rest are in the
    table."""
    tq(target, tdb, MIXED)
    make_pg_stream(db, "p", target, tdb)
    n = 3000
    bad = set(random.Random(7).sample(range(1, n + 1), n // 100))
    put_all(db, "p", [record(i, bad=i in bad) for i in range(1, n + 1)])
    assert db.flush("p", "120s") is True
    assert target_ids(target, tdb) == sorted(set(range(1, n + 1)) - bad)
    rows = failed(db, "p")
    assert sorted(json.loads(r["data"])["id"] for r in rows) == sorted(bad)
    codes = {r["error_code"] for r in rows}
    assert codes == {"Postgres.22P02", "Postgres.23502"}, codes
    msgs = {r["error_code"]: r["error_message"] for r in rows}
    assert "invalid input syntax for type numeric" in msgs["Postgres.22P02"]
    assert "null value in column \"session\"" in msgs["Postgres.23502"]


def test_a_record_that_is_no_json_object_fails_alone(db, target, tdb):
    tq(target, tdb, MIXED)
    make_pg_stream(db, "p", target, tdb)
    put_all(db, "p", [record(1), "[1,2]", "not json", record(2)])
    assert db.flush("p", "120s") is True
    assert target_ids(target, tdb) == [1, 2]
    rows = failed(db, "p")
    assert sorted(r["data"] for r in rows) == [b"[1,2]", b"not json"]
    assert {r["error_code"] for r in rows} == {"Postgres.InvalidRecord"}


def test_error_without_a_line_is_bisected(db, target, tdb):
    """A deferred constraint fails at COMMIT, naming no record: bisection
    finds the one record."""
    tq(target, tdb, "CREATE TABLE public.events (id bigint PRIMARY KEY, "
        "session int, CONSTRAINT small EXCLUDE USING btree (session WITH =) "
        "DEFERRABLE INITIALLY DEFERRED)")
    tq(target, tdb, "INSERT INTO public.events VALUES (1000, 17)")
    make_pg_stream(db, "p", target, tdb)
    recs = [json.dumps({"id": i, "session": 100 + i}) for i in range(1, 41)]
    recs.insert(23, json.dumps({"id": 99, "session": 17}))  # clashes at COMMIT
    put_all(db, "p", recs)
    assert db.flush("p", "120s") is True
    rows = failed(db, "p")
    assert [(json.loads(r["data"])["id"], r["error_code"]) for r in rows] == \
        [(99, "Postgres.23P01")], rows
    assert target_ids(target, tdb) == list(range(1, 41)) + [1000]


def test_upsert_updates_rows_by_key(db, target, tdb):
    tq(target, tdb, "CREATE TABLE public.kv (k text PRIMARY KEY, v int NOT NULL, note text)")
    tq(target, tdb, "INSERT INTO public.kv VALUES ('a', 1, 'old'), ('z', 26, 'untouched')")
    make_pg_stream(db, "u", target, tdb, table="public.kv", mode="upsert", key_columns=["k"],
                   columns={"k": "$.key", "v": "$.val.n", "note": "note"})
    put_all(db, "u", [json.dumps({"key": "a", "val": {"n": 10}, "note": "new"}),
                      json.dumps({"key": "b", "val": {"n": 2}}),
                      json.dumps({"key": "b", "val": {"n": 3}, "note": "last wins"}),
                      json.dumps({"key": "c", "val": {}})])      # v NULL: refused
    assert db.flush("u", "120s") is True
    rows = tq(target, tdb, "SELECT k, v, note FROM public.kv ORDER BY k")
    assert rows == [("a", 10, "new"), ("b", 3, "last wins"), ("z", 26, "untouched")]
    f = failed(db, "u")
    assert [(json.loads(r["data"])["key"], r["error_code"]) for r in f] == [("c", "Postgres.23502")]


def test_schema_error_fails_at_once(db, target, tdb):
    make_pg_stream(db, "p", target, tdb, table="public.missing", retry_duration=600)
    put_all(db, "p", [record(1)])
    assert db.flush("p", "120s") is True
    rows = failed(db, "p")
    assert [(r["error_code"], r["attempts_made"]) for r in rows] == [("Postgres.42P01", 1)]
    assert "public.missing" in rows[0]["error_message"]


def test_target_down_then_delivered(db, target, tdb, wait_until):
    """The target stops for 20 s: the part is retried with backoff and
    delivered once it is back, nothing lost, nothing twice."""
    tq(target, tdb, MIXED)
    make_pg_stream(db, "p", target, tdb, retry_duration=600, retry_max=2000)
    put_all(db, "p", [record(i) for i in range(1, 101)])
    assert db.flush("p", "120s") is True
    target.stop()
    try:
        put_all(db, "p", [record(i) for i in range(101, 201)])
        # the worker tries and fails while the target is down
        wait_until(lambda: "retried" in (db.one("SELECT blocked_reason FROM "
                                                "firehose.stream_status WHERE stream = 'p'")
                                         or ""), timeout=30)
        time.sleep(20)      # the outage itself, not a wait for a result
    finally:
        target.start()
    assert db.flush("p", "120s") is True
    assert target_ids(target, tdb) == list(range(1, 201))
    assert failed(db, "p") == []
    assert db.one("SELECT count(*) FROM firehose.deliveries WHERE stream = 'p' AND attempts > 1") >= 1


def test_many_sessions_with_rollbacks(db, target, tdb):
    """200,000 records from 4 sessions, some transactions rolled back, into
    a 10-column table of mixed types: the table holds the committed set,
    each once."""
    tq(target, tdb, MIXED)
    make_pg_stream(db, "p", target, tdb, exactly_once=True, buffer_size="4MB",
                   buffer_interval=200)
    total = 200000
    committed = [set() for _ in range(4)]

    def session(s):
        conn = db.conn(autocommit=False)
        cur = conn.cursor()
        rng = random.Random(s)
        ids = list(range(s + 1, total + 1, 4))
        for k in range(0, len(ids), 1000):
            chunk = ids[k:k + 1000]
            cur.execute("SELECT firehose.put_batch('p', %s::text[])",
                        ([record(i, s) for i in chunk],))
            if rng.random() < 0.15:
                conn.rollback()
            else:
                conn.commit()
                committed[s].update(chunk)
        conn.close()

    threads = [threading.Thread(target=session, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    want = sorted(set().union(*committed))
    assert len(want) > total // 2
    assert db.flush("p", "600s") is True
    got = tq(target, tdb, "SELECT id, session FROM public.events ORDER BY id")
    assert [r[0] for r in got] == want
    assert all(r[1] == (r[0] - 1) % 4 for r in got)
    assert failed(db, "p") == []


def _retry(fn, wait_until):
    """fn() once the server takes connections again (after a crash)."""
    out = []

    def attempt():
        try:
            out.append(fn())
            return True
        except psycopg2.Error:
            return False
    wait_until(attempt, timeout=120, interval=0.2, message="the server did not come back")
    return out[0]


WAITING = "firehose: waiting at fault point pg_after_commit"


def test_exactly_once_across_worker_kills(db, cluster, target, tdb, pg, wait_until):
    """exactly_once: the worker is SIGKILLed after the target committed a
    part and before it recorded that (fault point pg_after_commit), ROUNDS
    times.  The table has no key, so a part loaded twice would show: every
    committed record is there exactly once, none failed."""
    tq(target, tdb, "CREATE TABLE public.events (id bigint, session int, name text)")
    make_pg_stream(db, "x", target, tdb, exactly_once=True, durable=True,
                   retry_base=20, retry_max=200, columns={"id": "id", "session": "session",
                                                          "name": "name"})
    committed = []
    dbname = db.dbname
    for rnd in range(ROUNDS):
        _retry(lambda: cluster.psql('ALTER DATABASE "%s" SET firehose.test_fault = '
                                    "'wait:pg_after_commit'" % dbname), wait_until)
        old = one_worker(pg, dbname, wait_until, timeout=60)
        cluster.psql("SELECT pg_terminate_backend(%s)", params=(old,))
        pid = one_worker(pg, dbname, wait_until, other_than=old, timeout=60)
        ids = list(range(rnd * 1000 + 1, rnd * 1000 + 51))
        cluster.psql("SELECT firehose.put_batch('x', %s::text[])", db=dbname,
                     params=([record(i, rnd) for i in ids],))
        committed += ids
        wait_until(lambda: cluster.psql("SELECT query FROM pg_stat_activity WHERE pid = %s",
                                        params=(pid,)) == [(WAITING,)], timeout=60,
                   message="round %d: the worker did not stop after the COMMIT" % rnd)
        # the part is in the target, not recorded at the source
        assert set(ids) <= set(target_ids(target, tdb))
        cluster.psql('ALTER DATABASE "%s" RESET firehose.test_fault' % dbname)
        os.kill(pid, signal.SIGKILL)
        # the postmaster restarts every process; the next worker retries the part
        _retry(lambda: cluster.psql("SELECT firehose.flush('x', true, '60s')", db=dbname),
               wait_until)
        assert _retry(lambda: cluster.psql("SELECT firehose.flush('x', true, '60s')",
                                           db=dbname), wait_until) == [(True,)]
        got = target_ids(target, tdb)
        assert len(got) == len(set(got)), "round %d: duplicates %s" % (
            rnd, sorted(i for i in set(got) if got.count(i) > 1))
        assert got == sorted(committed), "round %d: lost %s" % (
            rnd, sorted(set(committed) - set(got)))
    assert _retry(lambda: cluster.psql("SELECT count(*) FROM firehose.failed_records",
                                       db=dbname), wait_until) == [(0,)]
    # rows of batches recorded for good were pruned meanwhile, without loss
    # or duplicates: a few rows, those of the last rounds, not one per round
    ledger = tq(target, tdb, "SELECT count(*) FROM public.firehose_ledger")[0][0]
    assert ledger <= 4, "%d ledger rows after %d rounds" % (ledger, ROUNDS)
    print("exactly_once: %d rounds, %d records, 0 duplicates, 0 lost, %d ledger rows"
          % (ROUNDS, len(committed), ledger))


def test_wrong_password_fails_at_once_and_is_never_shown(db, cluster, target, tdb):
    """A password the target refuses (28P01) fails the part at once, with
    the server's message: no retrying until retry_duration.  The password
    shows nowhere: not in failed_records, stream_status, deliveries, nor in
    either server's log.  With the right one the records are redriven."""
    tq(target, tdb, MIXED)
    role = "loader_%d" % os.getpid()
    right, wrong = "right-pw-%d" % os.getpid(), "wrong-pw-%d" % os.getpid()
    target.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (role, right))
    tq(target, tdb, "GRANT INSERT ON public.events TO %s" % role)
    hba = os.path.join(target.datadir, "pg_hba.conf")
    with open(hba) as f:
        trust = f.read()
    logs = len(cluster.log_text()), len(target.log_text())
    try:
        # this role only: by password
        with open(hba, "w") as f:
            f.write("host all %s 127.0.0.1/32 scram-sha-256\n%s" % (role, trust))
        target.psql("SELECT pg_reload_conf()")
        pw = "host=127.0.0.1 port=%d user=%s password=%s dbname=%s"
        make_pg_stream(db, "p", target, tdb, conninfo=pw % (target.port, role, wrong, tdb),
                       retry_duration=600)
        put_all(db, "p", [record(i) for i in range(1, 4)])
        assert db.flush("p", "60s") is True
        rows = failed(db, "p")
        assert [(r["error_code"], r["attempts_made"]) for r in rows] == [("Postgres.28P01", 1)] * 3
        assert "password authentication failed for user \"%s\"" % role in rows[0]["error_message"]
        seen = [json.dumps(rows, default=str),
                json.dumps(db.q("SELECT * FROM firehose.stream_status WHERE stream = 'p'"),
                           default=str),
                json.dumps(db.q("SELECT * FROM firehose.deliveries WHERE stream = 'p'"),
                           default=str),
                cluster.log_text()[logs[0]:], target.log_text()[logs[1]:]]
        assert "password authentication failed" in seen[4]
        for text in seen:
            assert wrong not in text
        # the right password: redriven and delivered
        db.execute("SELECT firehose.alter_stream('p', %s::jsonb)",
                   (json.dumps({"conninfo": pw % (target.port, role, right, tdb)}),))
        assert db.one("SELECT firehose.redrive('p')") == 3
        assert db.flush("p", "120s") is True
        assert target_ids(target, tdb) == [1, 2, 3]
        assert failed(db, "p") == []
    finally:
        with open(hba, "w") as f:
            f.write(trust)
        target.psql("SELECT pg_reload_conf()")
        tq(target, tdb, "REVOKE ALL ON public.events FROM %s" % role)
        target.psql("DROP ROLE %s" % role)


RESET_ROUNDS = int(os.environ.get("FIREHOSE_PG_RESET_ROUNDS", "5"))


@pytest.fixture
def proxy(target):
    """A TCP proxy to the target that can reset a connection after COMMIT."""
    p = pgproxy.CommitResetProxy(target.port)
    yield p
    p.close()


def through(proxy, target, dbname):
    return "host=127.0.0.1 port=%d user=%s dbname=%s" % (proxy.port, target.user, dbname)


def test_reset_after_commit_without_exactly_once_duplicates(db, target, tdb, proxy):
    """The proxy's reset lands after the target committed: without
    exactly_once the part is sent again, the target has its records twice,
    and stream_status counts them as possible duplicates."""
    tq(target, tdb, "CREATE TABLE public.events (id bigint, session int, name text)")
    make_pg_stream(db, "p", target, tdb, conninfo=through(proxy, target, tdb), sslmode="disable",
                   columns={"id": "id", "session": "session", "name": "name"})
    proxy.arm()
    put_all(db, "p", [record(i) for i in range(1, 21)])
    assert db.flush("p", "120s") is True
    assert proxy.resets == 1
    assert target_ids(target, tdb) == sorted(list(range(1, 21)) * 2)
    assert db.q("SELECT delivered_records, possible_duplicates FROM firehose.stream_status "
                "WHERE stream = 'p'") == [(20, 20)]


def test_exactly_once_across_resets_after_commit(db, target, tdb, proxy):
    """exactly_once: the connection is reset (RST both ways) just after the
    target's CommandComplete for COMMIT, which the worker never gets, in
    RESET_ROUNDS rounds of several parts each.  The table has no key: every record
    is there once, none lost, none failed, and stream_status counts each
    record delivered once."""
    tq(target, tdb, "CREATE TABLE public.events (id bigint, session int, name text)")
    # small parts, several in flight on the stream's connection at once
    make_pg_stream(db, "x", target, tdb, conninfo=through(proxy, target, tdb), sslmode="disable",
                   exactly_once=True, columns={"id": "id", "session": "session", "name": "name"},
                   buffer_size=3000, max_concurrency=4)
    committed = []
    for rnd in range(RESET_ROUNDS):
        proxy.arm(skip=rnd % 4)     # the first part's COMMIT, or a later one's
        ids = list(range(rnd * 1000 + 1, rnd * 1000 + 101))
        put_all(db, "x", [record(i, rnd) for i in ids])
        committed += ids
        assert db.flush("x", "120s") is True
        assert proxy.resets == rnd + 1, "round %d: no COMMIT was withheld" % rnd
        got = target_ids(target, tdb)
        assert len(got) == len(set(got)), "round %d: duplicates %s" % (
            rnd, sorted(i for i in set(got) if got.count(i) > 1))
        assert got == committed, "round %d: lost %s" % (rnd, sorted(set(committed) - set(got)))
        assert db.q("SELECT delivered_records, failed_records, possible_duplicates "
                    "FROM firehose.stream_status WHERE stream = 'x'") == [(len(committed), 0, 0)]
    assert failed(db, "x") == []
    assert proxy.connections > RESET_ROUNDS
    print("exactly_once: %d resets after COMMIT, %d records, 0 duplicates, 0 lost"
          % (RESET_ROUNDS, len(committed)))


def test_ledger_keeps_a_bounded_number_of_rows(db, target, tdb):
    """exactly_once: each part adds a ledger row, and the rows of batches
    the source has recorded for good are deleted in a later part's
    transaction: after 30 parts (30 batches) the ledger holds a few rows,
    those of the newest batches, and every record is in the table once."""
    tq(target, tdb, "CREATE TABLE public.events (id bigint, session int, name text)")
    make_pg_stream(db, "x", target, tdb, exactly_once=True,
                   columns={"id": "id", "session": "session", "name": "name"})
    n = 30
    for k in range(n):
        put_all(db, "x", [record(k * 10 + i, k) for i in range(1, 4)])
        assert db.flush("x", "120s") is True
    assert target_ids(target, tdb) == sorted(k * 10 + i for k in range(n) for i in range(1, 4))
    assert db.one("SELECT count(*) FROM firehose.deliveries WHERE stream = 'x'") == n
    rows = tq(target, tdb, "SELECT records FROM public.firehose_ledger ORDER BY delivered_at")
    assert 1 <= len(rows) <= 4, "%d ledger rows after %d parts" % (len(rows), n)
    # the newest part's row is there
    assert rows[-1][0] == 3
    print("ledger: %d rows after %d parts" % (len(rows), n))
