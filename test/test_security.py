"""Attacks on firehose's privilege model (issue 8).

Every test here is an attack that must fail: it passes only when the attacker
gains nothing.  Sections, one per part of the privilege model:

- the sealed worker and the ProcessUtility hook (search_path, operators,
  DROP DATABASE, database slots)
- egress and secrets: options that reach beyond the stream (the server's AWS
  identity, its files, the addresses it can reach) are for superusers or an
  allowlist; a stream's secrets do not leak through its options, its target
  or the error texts the worker stores
- view grants and pg_dump: a monitor's SELECT * on every view, PUBLIC's
  functions, a dump and restore that go on delivering
- ownership: streams have owners; other roles may put but not alter, drop,
  pause, resume, flush, redrive or capture into a stream; a stream moved
  elsewhere leaves its secrets behind; failed records belong to their stream
  by id, so a new stream of the same name never redrives them
"""

import base64
import json
import os
import subprocess
import tempfile

import psycopg2
import pytest

from conftest import Database, _drop_database
from helpers import (FAST, failed, flush, make_stream, one_worker, put_texts, stored_errors,
                     worker_pids)

import pgcluster


def connect_as(cluster, role, dbname):
    conn = psycopg2.connect(host=cluster.host, port=cluster.port, user=role,
                            dbname=dbname, connect_timeout=10)
    conn.autocommit = True
    return conn


def run_as(cluster, role, dbname, *statements):
    conn = connect_as(cluster, role, dbname)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()


def is_superuser(pg, role):
    c = pg()
    try:
        cur = c.cursor()
        cur.execute("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = %s", (role,))
        return cur.fetchone()[0]
    finally:
        c.close()


@pytest.fixture
def role(cluster, pg):
    """role(suffix): a new LOGIN role, neither superuser nor owner of anything;
    dropped at teardown with whatever it owns (databases are handed back)."""
    made = []

    def make(suffix):
        name = "fh_sec_%s_%d" % (suffix, os.getpid())
        c = pg()
        try:
            c.cursor().execute('DROP ROLE IF EXISTS "%s"' % name)
            c.cursor().execute('CREATE ROLE "%s" LOGIN' % name)
        finally:
            c.close()
        made.append(name)
        return name

    yield make
    for name in made:
        c = pg()
        try:
            cur = c.cursor()
            cur.execute("SELECT datname FROM pg_catalog.pg_database d "
                        "JOIN pg_catalog.pg_roles r ON r.oid = d.datdba WHERE r.rolname = %s",
                        (name,))
            dbs = [x[0] for x in cur.fetchall()] + ["postgres"]
        finally:
            c.close()
        for dbname in dbs:
            try:
                cluster.psql('REASSIGN OWNED BY "%s" TO CURRENT_USER' % name, db=dbname)
                cluster.psql('DROP OWNED BY "%s"' % name, db=dbname)
            except psycopg2.Error:
                pass            # the database is gone already
        cluster.psql('DROP ROLE IF EXISTS "%s"' % name)


# == The sealed worker and the ProcessUtility hook ====================================
#
# The worker is a superuser process in databases whose owners are not
# superusers.  Nothing a database owner (or a role with CREATE on public) can
# set or create may run with the worker's rights, and nobody but who may drop
# a database can stop its worker.

def escalating_function(schema, name, args, returns, body_result, victim):
    """CREATE FUNCTION schema.name(args) that makes victim a superuser when a
    superuser calls it (and quietly does nothing for anyone else)."""
    return """
        CREATE FUNCTION %s.%s(%s) RETURNS %s LANGUAGE plpgsql AS $f$
        BEGIN
            BEGIN
                EXECUTE 'ALTER ROLE "%s" SUPERUSER';
            EXCEPTION WHEN insufficient_privilege THEN NULL;
            END;
            %s
        END
        $f$""" % (schema, name, args, returns, victim, body_result)


def plant_text_equality(cluster, owner, dbname):
    """As owner: evil.=(text, text), which escalates owner, used by every
    text comparison of a session whose search_path lists evil first."""
    run_as(cluster, owner, dbname,
           "CREATE SCHEMA evil",
           escalating_function("evil", "texteq", "a text, b text", "boolean",
                               "RETURN a OPERATOR(pg_catalog.=) b;", owner),
           "CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, "
           "FUNCTION = evil.texteq)")


def restart_worker_and_deliver(db, pg, r, wait_until, texts):
    """Terminate the database's worker, wait for the next one (it connects
    with the current database and role settings), deliver texts through it."""
    pid = one_worker(pg, db.dbname, wait_until)
    assert db.one("SELECT pg_terminate_backend(%s)", (pid,)) is True
    one_worker(pg, db.dbname, wait_until, other_than=pid)
    put_texts(db, "s", texts)
    flush(db, "s")


@pytest.mark.parametrize("setting", ["database", "role"])
def test_search_path_operator_does_not_run_as_the_worker(db, cluster, pg, receiver, role,
                                                          wait_until, setting):
    """A database owner (not a superuser) plants evil.=(text, text) and puts
    evil first in the worker's search_path: through ALTER DATABASE ... SET,
    which it may do, or through a per-role setting of the worker's user in
    that database, which a superuser made.  The worker's next connection must
    neither call the operator nor stop delivering."""
    owner = role("dbowner")
    cluster.psql('ALTER DATABASE "%s" OWNER TO "%s"' % (db.dbname, owner))
    r = receiver()
    make_stream(db, "s", r.url)
    plant_text_equality(cluster, owner, db.dbname)
    if setting == "database":
        run_as(cluster, owner, db.dbname,
               'ALTER DATABASE "%s" SET search_path = evil, pg_catalog' % db.dbname)
    else:
        worker_user = cluster.psql("SELECT rolname FROM pg_catalog.pg_roles "
                                   "WHERE oid = 10")[0][0]
        cluster.psql('ALTER ROLE "%s" IN DATABASE "%s" SET search_path = evil, pg_catalog'
                     % (worker_user, db.dbname))
    # the trap works: a superuser session with that setting makes owner a superuser
    probe = cluster.connect(db.dbname)
    try:
        probe.cursor().execute("SELECT 'a'::text = 'b'::text")
        assert is_superuser(pg, owner), "the planted operator did not run (test broken)"
    finally:
        probe.close()
    cluster.psql('ALTER ROLE "%s" NOSUPERUSER' % owner)

    try:
        restart_worker_and_deliver(db, pg, r, wait_until, ["one", "two"])
        assert r.records() == [b"one", b"two"]
        assert not is_superuser(pg, owner), "the worker ran the database owner's operator"
    finally:
        if setting == "role":
            cluster.psql('ALTER ROLE "%s" IN DATABASE "%s" RESET search_path'
                         % (worker_user, db.dbname))


def test_public_unnest_is_not_called_by_the_worker(db, cluster, pg, receiver, role, wait_until):
    """A role with CREATE on public (here: the database owner, as in
    PostgreSQL 15) creates public.unnest(bigint[]): with the default
    search_path it is a closer match than pg_catalog.unnest(anyarray).  The
    worker records failed records with unnest; it must not call this one."""
    owner = role("unnest")
    cluster.psql('ALTER DATABASE "%s" OWNER TO "%s"' % (db.dbname, owner))
    run_as(cluster, owner, db.dbname,
           escalating_function("public", "unnest", "a bigint[]", "SETOF bigint",
                               "RETURN QUERY SELECT pg_catalog.unnest(a);", owner))
    r = receiver()
    r.faults([{"status": 400, "error_message": "refused"}])
    make_stream(db, "s", r.url)
    put_texts(db, "s", ["a", "b", "c"])
    flush(db, "s")
    assert [f["data"] for f in failed(db, "s", order_by="record_id")] == [b"a", b"b", b"c"]
    assert not is_superuser(pg, owner), "the worker ran public.unnest(bigint[])"


def test_drop_database_refused_does_not_stop_the_worker(db, cluster, pg, receiver, role,
                                                         wait_until):
    """A role that owns nothing runs DROP DATABASE in a loop: each fails with
    "must be owner", and the worker keeps running and delivering.  Neither
    does the owner's DROP DATABASE inside a transaction block (which
    PostgreSQL refuses) stop the worker."""
    nobody = role("nobody")
    r = receiver()
    make_stream(db, "s", r.url)
    put_texts(db, "s", ["first"])
    flush(db, "s")
    pid = one_worker(pg, db.dbname, wait_until)

    conn = connect_as(cluster, nobody, "postgres")
    try:
        for i in range(20):
            with pytest.raises(psycopg2.Error) as e:
                conn.cursor().execute('DROP DATABASE "%s"' % db.dbname)
            assert "must be owner" in str(e.value)
            put_texts(db, "s", ["during-%d" % i])
    finally:
        conn.close()

    block = cluster.connect("postgres", autocommit=False)
    try:
        with pytest.raises(psycopg2.Error) as e:
            block.cursor().execute('DROP DATABASE "%s"' % db.dbname)
        assert "cannot run inside a transaction block" in str(e.value)
    finally:
        block.rollback()
        block.close()

    flush(db, "s")
    assert worker_pids(pg, db.dbname) == [pid]
    assert r.records() == [b"first"] + [b"during-%d" % i for i in range(20)]


def test_worker_runs_as_the_extension_owner(db, cluster, pg, receiver, role, wait_until):
    """The worker runs as the role that ran CREATE EXTENSION, not as the
    bootstrap superuser: an extension owner demoted from superuser puts a
    trigger on its own firehose.deliveries (the worker inserts there); the
    trigger runs as that owner and cannot make it a superuser again, and
    delivery goes on."""
    owner = role("extowner")
    r = receiver()
    # the schema outlives DROP EXTENSION (it is not a member): the owner's own
    db.execute("DROP EXTENSION firehose")
    db.execute("DROP SCHEMA firehose")
    cluster.psql('ALTER ROLE "%s" SUPERUSER' % owner)
    try:
        db.execute('SET ROLE "%s"' % owner)
        db.execute("CREATE EXTENSION firehose")
        db.execute("RESET ROLE")
        cluster.psql('ALTER ROLE "%s" NOSUPERUSER' % owner)
        make_stream(db, "s", r.url)
        run_as_role = ['SET ROLE "%s"' % owner,
                       "CREATE TABLE firehose.seen (who text)",
                       escalating_function("firehose", "on_delivery", "", "trigger",
                                           "INSERT INTO firehose.seen VALUES (current_user); "
                                           "RETURN NULL;", owner),
                       "CREATE TRIGGER on_delivery AFTER INSERT ON firehose.deliveries "
                       "FOR EACH ROW EXECUTE FUNCTION firehose.on_delivery()",
                       "RESET ROLE"]
        for sql in run_as_role:
            db.execute(sql)
        restart_worker_and_deliver(db, pg, r, wait_until, ["x"])
        assert r.records() == [b"x"]
        assert db.q("SELECT DISTINCT who FROM firehose.seen") == [(owner,)]
        assert not is_superuser(pg, owner), "the worker ran the owner's trigger as a superuser"
    finally:
        db.execute("RESET ROLE")
        cluster.psql('REASSIGN OWNED BY "%s" TO CURRENT_USER' % owner, db=db.dbname)


def test_seventy_databases_cannot_make_a_commit_panic(cluster, pg, receiver, wait_until):
    """70 databases with firehose and a stream, a restart (the launcher then
    tries every database), then create_stream() in a 71st: the database
    slots (64) are all taken, and the commit that asks for a worker must not
    fail (an ERROR at commit is a PANIC that restarts the whole server).  The
    71st database waits for a slot, and delivers once others are dropped."""
    if not hasattr(cluster, "datadir"):
        pytest.skip("needs a cluster this test run controls (restart)")
    from concurrent.futures import ThreadPoolExecutor

    prefix = "fh_many_%d_" % os.getpid()
    template = prefix + "template"
    names = [prefix + "%02d" % i for i in range(1, 71)]
    last = prefix + "71"
    r = receiver()

    def drop(name):
        _drop_database(cluster, name)   # retries while the server restarts

    try:
        # copies of one database are made much faster than new ones; a
        # template may have no session (its worker) connected while copied
        drop(template)
        cluster.psql('CREATE DATABASE "%s"' % template)
        conn = cluster.connect(template)
        try:
            cur = conn.cursor()
            cur.execute("CREATE EXTENSION firehose")
            cur.execute("SELECT firehose.create_stream('s', 'http', %s::jsonb)",
                        (json.dumps(dict(FAST, url=r.url)),))
        finally:
            conn.close()
        cluster.psql('ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS false' % template)
        cluster.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s", params=(template,))
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda n: cluster.psql('CREATE DATABASE "%s" TEMPLATE "%s"'
                                                 % (n, template)), names))
        cluster.restart()
        log_from = len(cluster.log_text())

        cluster.psql('CREATE DATABASE "%s"' % last)
        conn = cluster.connect(last)
        try:
            cur = conn.cursor()
            cur.execute("CREATE EXTENSION firehose")
            cur.execute("SELECT firehose.create_stream('t', 'http', %s::jsonb)",
                        (json.dumps(dict(FAST, url=r.url)),))
            cur.execute("SELECT firehose.put('t', 'from the 71st'::text)")
        finally:
            conn.close()
        assert cluster.psql("SELECT 1") == [(1,)]
        log = cluster.log_text()[log_from:]
        assert "PANIC" not in log and "terminated by signal" not in log, log[-2000:]

        # databases given up free their slots: the 71st gets one and delivers
        # (the last made are dropped first: they wait for a slot, which then
        # goes to no worker that the next DROP must stop)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(drop, [template] + names[::-1]))
        one_worker(pg, last, wait_until, timeout=30)
        conn = cluster.connect(last)
        try:
            cur = conn.cursor()
            cur.execute("SELECT firehose.flush('t', true, '60s')")
            assert cur.fetchone()[0] is True
        finally:
            conn.close()
        assert r.records() == [b"from the 71st"]
    finally:
        for name in [template, last] + names:
            drop(name)


# -- egress: options only some roles may use ---------------------------------

@pytest.fixture
def admin_role(db):
    """A role that is not a superuser, granted create_stream and alter_stream."""
    role = "fh_admin_%s" % db.dbname
    db.execute('DROP ROLE IF EXISTS "%s"' % role)
    db.execute('CREATE ROLE "%s"' % role)
    db.execute('GRANT EXECUTE ON FUNCTION firehose.create_stream(text, text, jsonb), '
               'firehose.alter_stream(text, jsonb) TO "%s"' % role)
    yield role
    db.close_all()
    db.execute('DROP OWNED BY "%s"' % role)
    db.execute('DROP ROLE "%s"' % role)


def sqlstate(db, sql, params=None, role=None):
    """Run sql (as role, with SET ROLE); None, or the SQLSTATE of its error."""
    c = db.conn()
    cur = c.cursor()
    if role:
        cur.execute('SET ROLE "%s"' % role)
    try:
        cur.execute(sql, params)
        return None
    except psycopg2.Error as e:
        return e.pgcode
    finally:
        c.close()


def create(name, destination, **opts):
    return ("SELECT firehose.create_stream(%s, %s, %s::jsonb)",
            (name, destination, json.dumps(opts)))


S3_KEYS = {"access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI"}


def test_environment_credentials_need_a_superuser(db, admin_role):
    env = {"bucket": "bkt", "credentials": "environment"}
    os_env = {"endpoint": "http://127.0.0.1:9", "index": "i", "aws_region": "us-east-1",
              "credentials": "environment"}
    backup = {"url": "http://127.0.0.1:9/",
              "backup": {"mode": "failed", "s3": env}}
    # SET ROLE: session_user stays the superuser, the caller is not one
    assert sqlstate(db, *create("e1", "s3", **env), role=admin_role) == "42501"
    assert sqlstate(db, *create("e2", "opensearch", **os_env), role=admin_role) == "42501"
    assert sqlstate(db, *create("e3", "http", **backup), role=admin_role) == "42501"
    assert sqlstate(db, *create("e4", "s3", bucket="bkt", **S3_KEYS), role=admin_role) is None
    assert sqlstate(db, "SELECT firehose.alter_stream('e4', %s::jsonb)",
                    (json.dumps({"credentials": "environment", "access_key_id": None,
                                 "secret_access_key": None}),), role=admin_role) == "42501"
    assert db.one("SELECT count(*) FROM firehose.streams") == 1
    assert db.one("SELECT options->>'credentials' FROM firehose.streams") == "static"
    # a superuser may
    for args in (create("e1", "s3", **env), create("e2", "opensearch", **os_env),
                 create("e3", "http", **backup)):
        assert sqlstate(db, *args) is None
    assert db.one("SELECT count(*) FROM firehose.streams") == 4


def test_a_superuser_calling_a_definer_function_lends_it_no_rights(db, admin_role):
    # a SECURITY DEFINER function of the non-superuser, called by a superuser:
    # it runs in its owner's rights, create_stream sees that role as caller
    db.execute("GRANT CREATE ON SCHEMA public TO \"%s\"" % admin_role)
    c = db.conn()
    cur = c.cursor()
    cur.execute('SET ROLE "%s"' % admin_role)
    cur.execute("CREATE FUNCTION public.trojan() RETURNS void LANGUAGE sql SECURITY DEFINER "
                "AS $$ SELECT firehose.create_stream('t', 's3', "
                "'{\"bucket\": \"bkt\", \"credentials\": \"environment\"}') $$")
    c.close()
    assert sqlstate(db, "SELECT public.trojan()") == "42501"
    assert db.one("SELECT count(*) FROM firehose.streams") == 0
    db.execute("DROP FUNCTION public.trojan()")
    db.execute("REVOKE CREATE ON SCHEMA public FROM \"%s\"" % admin_role)


def test_ca_file_needs_a_superuser_or_the_allowlist(db, admin_role):
    d = tempfile.mkdtemp(prefix="firehose-ca-")
    os.chmod(d, 0o755)                     # the server (user postgres) resolves it
    ca = os.path.join(d, "ca.pem")
    with open(ca, "w") as f:
        f.write("not read at create time\n")
    os.chmod(ca, 0o644)
    link = os.path.join(d, "passwd.pem")
    os.symlink("/etc/passwd", link)
    try:
        url = {"url": "https://127.0.0.1:9/"}
        backup = dict(url, backup={"mode": "failed",
                                   "s3": dict(S3_KEYS, bucket="bkt", ca_file=ca)})
        for dest, opts in (("http", dict(url, ca_file=ca)),
                           ("splunk", {"endpoint": "https://127.0.0.1:9", "token": "t",
                                       "ca_file": ca}),
                           ("opensearch", {"endpoint": "https://127.0.0.1:9", "index": "i",
                                           "ca_file": ca}),
                           ("s3", dict(S3_KEYS, bucket="bkt", ca_file=ca)),
                           ("datadog", {"api_key": "k", "ca_file": ca}),
                           ("http", backup)):
            assert sqlstate(db, *create("c", dest, **opts), role=admin_role) == "42501", dest

        # only a superuser sets the allowlist
        assert sqlstate(db, "SET firehose.allowed_ca_dirs = %s", (d,), role=admin_role) == "42501"
        db.execute("ALTER DATABASE \"%s\" SET firehose.allowed_ca_dirs = '%s'" % (db.dbname, d))
        db.close_all()                     # new sessions read the setting
        assert sqlstate(db, *create("c", "http", **dict(url, ca_file=ca)),
                        role=admin_role) is None
        assert sqlstate(db, *create("b", "http", **backup), role=admin_role) is None
        # not through a symbolic link or ".." out of the directory
        for path in (link, os.path.join(d, "..", "..", "etc", "passwd"), "/etc/passwd"):
            assert sqlstate(db, "SELECT firehose.alter_stream('c', %s::jsonb)",
                            (json.dumps({"ca_file": path}),), role=admin_role) == "42501", path
        assert db.one("SELECT options->>'ca_file' FROM firehose.streams "
                      "WHERE name = 'c'") == ca
        # a superuser may name any file
        assert sqlstate(db, "SELECT firehose.alter_stream('c', %s::jsonb)",
                        (json.dumps({"ca_file": "/etc/passwd"}),)) is None
    finally:
        os.unlink(link)
        os.unlink(ca)
        os.rmdir(d)


# -- view grants and pg_dump (issue 8, section 6) -----------------------------------

# firehose's own tables a monitor may be granted besides the views
MONITOR_TABLES = ("deliveries", "failed_records")


def role_name(what):
    return "fh_%s_%d" % (what, os.getpid())


def drop_role(db, role):
    """DROP OWNED in the test's database (grants), then the role."""
    db.execute("DROP OWNED BY %s" % role)
    db.execute("DROP ROLE %s" % role)


def as_role(db, role, sql):
    """Rows of sql run by role (SET ROLE in a connection of its own)."""
    c = db.conn()
    try:
        with c.cursor() as cur:
            cur.execute("SET ROLE %s" % role)
            cur.execute(sql)
            return cur.fetchall()
    finally:
        c.close()


def run_pg(binary, *args):
    """Run a PostgreSQL client program of the cluster's installation."""
    r = subprocess.run([os.path.join(pgcluster.PGBIN, binary)] + list(args),
                       capture_output=True, text=True, timeout=300,
                       env={k: v for k, v in os.environ.items() if not k.startswith("PG")})
    assert r.returncode == 0, "%s failed (exit %d):\n%s%s" % (binary, r.returncode,
                                                              r.stdout, r.stderr)
    return r


def dead_stream(db, name, texts=("lost",)):
    """A stream to a port nobody listens on, without retries, and its records
    in failed_records."""
    make_stream(db, name, "http://127.0.0.1:%d/" % pgcluster.free_port(), retry_duration=0)
    put_texts(db, name, texts)
    flush(db, name)
    assert db.one("SELECT count(*) FROM firehose.failed_records WHERE stream = %s",
                  (name,)) == len(texts)


def conn_args(cluster, dbname):
    return ["-h", cluster.host, "-p", str(cluster.port), "-U", cluster.user, "-d", dbname]


@pytest.fixture
def restored(cluster):
    """Factory: restored(db, fmt='c') dumps db with pg_dump and restores it into
    a new database of the same cluster (pg_restore for the custom format,
    psql for a plain one, stopping at the first error); a Database."""
    made = []
    tmp = tempfile.mkdtemp(prefix="firehose-dump-")

    def restore(db, fmt="c"):
        name = "%s_restored%d" % (db.dbname, len(made))
        path = os.path.join(tmp, "dump.%d" % len(made))
        run_pg("pg_dump", *conn_args(cluster, db.dbname), "-F", fmt, "-f", path)
        _drop_database(cluster, name)
        cluster.psql('CREATE DATABASE "%s"' % name)
        target = Database(cluster, name)
        made.append(target)
        if fmt == "c":
            run_pg("pg_restore", *conn_args(cluster, name), "--exit-on-error", path)
        else:
            run_pg("psql", *conn_args(cluster, name), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                   "-f", path)
        return target

    yield restore
    for d in made:
        d.close_all()
        _drop_database(cluster, d.dbname)
    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))
    os.rmdir(tmp)


class TestViewGrants:
    def test_monitor_selects_star_from_every_view(self, db, receiver):
        """A role granted SELECT on the views (every view of schema firehose,
        found in pg_views) and on deliveries/failed_records reads them all,
        secrets redacted, without any other grant."""
        r = receiver(access_key="view-secret")
        make_stream(db, "watched", r.url, access_key="view-secret",
                    headers={"Authorization": "Bearer hdr-secret"})
        put_texts(db, "watched", ["a", "b"])
        flush(db, "watched")
        dead_stream(db, "refused")
        views = [v for (v,) in db.q("SELECT viewname FROM pg_views "
                                    "WHERE schemaname = 'firehose' ORDER BY viewname")]
        assert {"streams", "stream_status"} <= set(views)
        monitor = role_name("monitor")
        db.execute("CREATE ROLE %s" % monitor)
        try:
            for rel in views + list(MONITOR_TABLES):
                db.execute("GRANT SELECT ON firehose.%s TO %s" % (rel, monitor))
            for rel in views + list(MONITOR_TABLES):
                rows = as_role(db, monitor, "SELECT * FROM firehose.%s" % rel)
                assert rows, "monitor read no row of firehose.%s" % rel
                text = repr(rows)
                assert "view-secret" not in text and "hdr-secret" not in text, rel
            (opts, target) = as_role(db, monitor, "SELECT options, target FROM firehose.streams "
                                                  "WHERE name = 'watched'")[0]
            assert opts["access_key"] == "********"
            assert opts["headers"] == {"Authorization": "********"}
            assert target == r.url
            (delivered,) = as_role(db, monitor, "SELECT delivered_records FROM "
                                                "firehose.stream_status WHERE stream = 'watched'")[0]
            assert delivered == 2
        finally:
            drop_role(db, monitor)

    def test_public_executes_no_internal_function_but_slot_status(self, db):
        """PUBLIC may execute only _slot_status (stream_status needs it), which
        answers only roles that may read stream_status (capture_table checks
        ownership in C, with no internal function executable by its caller)."""
        public = db.q("""
            SELECT p.oid::regprocedure::text
              FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
             WHERE p.pronamespace = 'firehose'::regnamespace
               AND a.grantee = 0 AND a.privilege_type = 'EXECUTE'
             ORDER BY 1""")
        assert sorted(f for (f,) in public) == ["firehose._slot_status(integer)"]
        # nor any table, view or sequence
        assert db.q("""
            SELECT c.relname, a.privilege_type
              FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault(
                       (CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::"char", c.relowner))) a
             WHERE c.relnamespace = 'firehose'::regnamespace AND a.grantee = 0""") == []

        db.execute("SELECT firehose.create_stream('hidden', 'http', %s::jsonb)",
                   (json.dumps(dict(FAST, url="http://127.0.0.1:9/", buffer_interval="1 day")),))
        put_texts(db, "hidden", ["x"])
        sid = db.one("SELECT id FROM firehose.stream WHERE name = 'hidden'")
        nobody = role_name("nobody")
        monitor = role_name("statmon")
        db.execute("CREATE ROLE %s" % nobody)
        db.execute("CREATE ROLE %s" % monitor)
        try:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege) as e:
                as_role(db, nobody, "SELECT * FROM firehose._slot_status(%d)" % sid)
            assert "_slot_status" in str(e.value)
            db.execute("GRANT SELECT ON firehose.stream_status TO %s" % monitor)
            assert as_role(db, monitor, "SELECT buffered_records + in_flight_records "
                                        "FROM firehose._slot_status(%d)" % sid) == [(1,)]
        finally:
            db.execute("DROP ROLE %s" % nobody)
            drop_role(db, monitor)


class TestDump:
    def test_dump_restore_round_trip_delivers(self, db, receiver, restored):
        """pg_dump, then pg_restore into a new database: streams with their
        options (secrets included), stats, failed records and the sequences
        come back, each staging table once; the restored database delivers
        the records buffered at dump time and new ones, with the restored
        access key (a worker starts for it without being asked), and redrives
        the restored failed records."""
        r = receiver(access_key="dump-secret")
        live = receiver()
        make_stream(db, "kept", r.url, access_key="dump-secret",
                    headers={"X-Token": "hdr-secret"})
        make_stream(db, "live", live.url)
        put_texts(db, "kept", ["d1", "d2", "d3"])
        flush(db, "kept")
        r.wait_records(3)
        # records the restored database has to deliver: buffered at dump time
        db.execute("SELECT firehose.pause('kept')")
        put_texts(db, "kept", ["b1", "b2"])
        dead_stream(db, "dead", ["f1", "f2"])

        # every column (an owner, say) but the consumed snapshot, which a
        # restore may reset
        stream_sql = "SELECT to_jsonb(s) - 'consumed' FROM firehose.stream s ORDER BY id"
        failed_sql = "SELECT to_jsonb(f) FROM firehose.failed_records f ORDER BY id"
        stats_sql = "SELECT * FROM firehose.stream_stats ORDER BY stream_id"
        seq_sql = ("SELECT sequencename, last_value FROM pg_sequences "
                   "WHERE schemaname = 'firehose' ORDER BY 1")
        stage_sql = ("SELECT count(*) FROM pg_class WHERE relnamespace = 'firehose'::regnamespace "
                     "AND relname LIKE 'stage\\_%'")
        before = [db.q(q) for q in (stream_sql, failed_sql, stats_sql, seq_sql, stage_sql)]
        assert len(db.q(failed_sql)) == 2

        new = restored(db)
        after = [new.q(q) for q in (stream_sql, failed_sql, stats_sql, seq_sql, stage_sql)]
        assert after[0] == before[0], "streams and options (secrets included)"
        assert after[0][0][0]["options"]["access_key"] == "dump-secret"
        assert after[1] == before[1], "failed records"
        assert after[2] == before[2], "stream_stats"
        assert after[3] == before[3], "sequences"
        assert after[4] == before[4] == [(9,)], "three staging tables per stream, once"

        # nothing but a put: the restore itself asked for the new database's worker
        put_texts(new, "live", ["live-1"])
        live.wait_records(1)
        assert live.records() == [b"live-1"]

        # the source stays paused: what arrives now comes from the restored one
        new.execute("SELECT firehose.resume('kept')")
        put_texts(new, "kept", ["after"])
        flush(new, "kept")
        r.wait_records(6)
        got = sorted(r.records())
        assert got == sorted([b"d1", b"d2", b"d3", b"b1", b"b2", b"after"]), got
        new.wait_for("SELECT delivered_records FROM firehose.stream_status "
                     "WHERE stream = 'kept'", 6)

        new.execute("SELECT firehose.alter_stream('dead', %s::jsonb)",
                    (json.dumps({"url": r.url, "access_key": "dump-secret"}),))
        assert new.one("SELECT firehose.redrive('dead')") == 2
        flush(new, "dead")
        r.wait_records(8)
        assert sorted(r.records())[-2:] == [b"f1", b"f2"]

    def test_restored_consumed_snapshot_hides_no_new_record(self, db, receiver, restored):
        """A dump whose consumed snapshot is ahead of the restoring cluster's
        transactions (a dump of a busier cluster, forged here) would hide the
        records put after the restore and before the restored worker's first
        batch (here: while the stream is paused), and then count them as
        delivered; the restore resets it."""
        r = receiver()
        make_stream(db, "ahead", r.url)
        db.execute("SELECT firehose.pause('ahead')")
        ahead = db.one("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint") + 10 ** 7
        db.execute("UPDATE firehose.stream SET consumed = %s::pg_snapshot WHERE name = 'ahead'",
                   ("%d:%d:" % (ahead, ahead),))
        new = restored(db, fmt="p")
        put_texts(new, "ahead", ["new"])
        new.execute("SELECT firehose.resume('ahead')")
        flush(new, "ahead")
        r.wait_records(1, timeout=30)
        assert r.records() == [b"new"]


# -- secrets: what is sent as a header, what is shown, what is stored ---------

def test_line_breaks_in_headers_are_refused(db):
    url = "http://127.0.0.1:9/"
    for opts in ({"headers": {"X-Ok": "a\r\nX-Injected: 1"}},
                 {"headers": {"X-Ok\nX-Injected": "1"}},
                 {"headers": {"X-Ok": "a\rb"}},
                 {"common_attributes": {"k": "a\nb"}},
                 {"access_key": "key\r\nX-Injected: 1"}):
        assert sqlstate(db, *create("h", "http", url=url, **opts)) == "22023", opts
    assert sqlstate(db, *create("h", "splunk", endpoint="http://127.0.0.1:9",
                                token="t\r\nX-Injected: 1")) == "22023"
    assert sqlstate(db, *create("h", "datadog", api_key="k\nX-Injected: 1")) == "22023"
    assert db.one("SELECT count(*) FROM firehose.streams") == 0
    # alter_stream too
    make_stream(db, "h", url, headers={"X-Ok": "fine"})
    assert sqlstate(db, "SELECT firehose.alter_stream('h', %s::jsonb)",
                    (json.dumps({"headers": {"X-Ok": "a\r\nX-Injected: 1"}}),)) == "22023"
    assert db.one("SELECT options->'headers'->>'X-Ok' FROM firehose.stream") == "fine"


def test_url_user_info_is_not_shown(db, receiver):
    r = receiver("raw")
    url = r.url.replace("http://", "http://urluser:URLPASSWORD1@")
    make_stream(db, "u", url, format="raw")
    db.execute(*create("o", "opensearch", endpoint="http://osuser:OSPASSWORD2@127.0.0.1:9",
                       index="i"))
    db.execute(*create("k", "splunk", endpoint="https://hec:HECPASSWORD3@127.0.0.1:9",
                       token="tok-1234"))
    db.execute(*create("s", "s3", bucket="bkt", endpoint="http://s3user:S3PASSWORD4@127.0.0.1:9",
                       path_style=True, **S3_KEYS))
    db.execute(*create("b", "http", url="http://127.0.0.1:9/", backup={
        "mode": "failed", "s3": dict(S3_KEYS, bucket="bkt",
                                     endpoint="http://bk:BKPASSWORD5@127.0.0.1:9")}))
    shown = db.q("SELECT name, options::text, target FROM firehose.streams ORDER BY name")
    assert len(shown) == 5
    for name, options, target in shown:
        for secret in ("URLPASSWORD1", "OSPASSWORD2", "HECPASSWORD3", "S3PASSWORD4",
                       "BKPASSWORD5", "urluser", "osuser", "s3user"):
            assert secret not in options and secret not in (target or ""), (name, secret)
        assert "********@127.0.0.1" in options, (name, options)
    assert db.one("SELECT target FROM firehose.streams WHERE name = 'u'") == \
        r.url.replace("http://", "http://********@")
    # the worker still uses the URL as given
    put_texts(db, "u", ["with basic auth"])
    flush(db, "u")
    (req,) = r.requests()
    auth = {k.lower(): v for k, v in req["headers"].items()}["authorization"]
    assert base64.b64decode(auth.split()[1]) == b"urluser:URLPASSWORD1"


def test_secrets_echoed_by_the_destination_are_not_stored(db, receiver):
    r = receiver()
    secrets = {"access_key": "ACCESSKEY-0123456789", "header": "HEADERTOKEN-abcdef",
               "url_password": "URLPASS-987654"}
    # the destination quotes what it was sent; the stored text is clipped to
    # 8 KiB (with "..."), which here cuts the last key short after 9 bytes
    said = "Received the following response from the endpoint destination. 400: "
    echo = ("bad key %s, bad header Bearer %s, bad user urluser:%s; "
            % (secrets["access_key"], secrets["header"], secrets["url_password"])).encode()
    echo = echo.ljust(8192 - 3 - len(said) - 9, b".") + secrets["access_key"].encode() * 2
    r.faults([{"status": 400, "error_body_b64": base64.b64encode(echo).decode()}])
    url = r.url.replace("http://", "http://urluser:%s@" % secrets["url_password"])
    make_stream(db, "e", url, access_key=secrets["access_key"],
                headers={"Authorization": "Bearer " + secrets["header"]})
    put_texts(db, "e", ["a", "b"])
    flush(db, "e")
    texts = stored_errors(db, "e")
    assert len(texts) == 4                  # one delivery, two records, the status
    for t in texts:
        assert "bad key [redacted], bad header [redacted], bad user [redacted]; " in t, t
        assert t.endswith(".[redacted]..."), t[-40:]
        for s in secrets.values():
            assert s not in t, (s, t)
        assert "ACCESSKEY" not in t and "HEADERTOKEN" not in t and "URLPASS" not in t


def test_error_bodies_are_stored_as_valid_clipped_text(db, receiver):
    r = receiver()
    body = b"bad \xff\xfe bytes \xe2\x82 cut \xc3"
    r.faults([{"status": 400, "error_body_b64": base64.b64encode(body).decode(), "count": 1},
              {"status": 400, "error_body_b64":
               base64.b64encode(b"nul \x00 after").decode(), "count": 1},
              {"status": 400, "error_body_b64":
               base64.b64encode("\u00e9".encode() * 20000).decode()}])
    make_stream(db, "v", r.url, max_concurrency=1)
    for text in ("a", "b", "c"):
        put_texts(db, "v", [text])
        flush(db, "v")
    msgs = [f["error_message"] for f in failed(db, "v")]
    assert len(msgs) == 3
    assert msgs[0].endswith("bad \ufffd\ufffd bytes \ufffd\ufffd cut \ufffd"), msgs[0]
    assert "\x00" not in msgs[1] and "nul " in msgs[1], msgs[1]
    assert len(msgs[2].encode()) <= 8192 and msgs[2].endswith("\u00e9...")
    # the database sees valid text in every table
    for (e,) in db.q("SELECT error FROM firehose.deliveries WHERE stream = 'v'"):
        assert isinstance(e, str)
    assert db.one("SELECT count(*) FROM firehose.failed_records "
                  "WHERE octet_length(convert_to(error_message, 'UTF8')) > 0") == 3


# -- egress: firehose.allowed_destinations -----------------------------------

def test_metadata_addresses_are_refused_at_create(db):
    for url in ("http://169.254.169.254/latest/meta-data/",
                "http://[fd00:ec2::254]/latest",
                "http://[::ffff:169.254.169.254]/",
                "https://169.254.1.1:8443/x"):
        assert sqlstate(db, *create("m", "http", url=url)) == "42501", url
    meta = "http://169.254.169.254"
    assert sqlstate(db, *create("m", "opensearch", endpoint=meta, index="i")) == "42501"
    assert sqlstate(db, *create("m", "splunk", endpoint=meta, token="tok-1")) == "42501"
    assert sqlstate(db, *create("m", "s3", bucket="bkt", endpoint=meta, **S3_KEYS)) == "42501"
    assert sqlstate(db, *create("m", "datadog", api_key="k", url=meta)) == "42501"
    assert sqlstate(db, *create("m", "http", url="http://127.0.0.1:9/", backup={
        "mode": "failed", "s3": dict(S3_KEYS, bucket="bkt", endpoint=meta)})) == "42501"
    assert db.one("SELECT count(*) FROM firehose.streams") == 0
    # nor by alter_stream; loopback stays allowed by default
    make_stream(db, "m", "http://127.0.0.1:9/")
    assert sqlstate(db, "SELECT firehose.alter_stream('m', %s::jsonb)",
                    (json.dumps({"url": meta + "/"}),)) == "42501"
    assert db.one("SELECT options->>'url' FROM firehose.stream") == "http://127.0.0.1:9/"
    # only a superuser changes the list, and only to a well-formed one
    assert sqlstate(db, "SET firehose.allowed_destinations = '10.0.0.0/33'") == "22023"


def restart_worker(db, pg, wait_until):
    """Terminate the database's worker; wait for the launcher's new one."""
    old = one_worker(pg, db.dbname, wait_until)
    db.execute("SELECT pg_terminate_backend(%s)", (old,))
    return one_worker(pg, db.dbname, wait_until, other_than=old, timeout=60)


def test_a_name_resolving_to_a_refused_address_is_not_connected(db, pg, receiver, wait_until):
    r = receiver()
    local = r.url.replace("127.0.0.1", "localhost")
    make_stream(db, "n", local)
    make_stream(db, "h", r.url)
    put_texts(db, "h", ["allowed"])
    flush(db, "h")                          # the worker runs, loopback allowed
    assert r.records() == [b"allowed"]
    r.reset()
    # loopback refused by address, every name allowed: the URL text passes,
    # the address "localhost" resolves to does not
    db.execute("ALTER DATABASE \"%s\" SET firehose.allowed_destinations = "
               "'!127.0.0.0/8, !::1, *'" % db.dbname)
    restart_worker(db, pg, wait_until)
    put_texts(db, "n", ["never sent"])
    flush(db, "n")
    (f,) = failed(db, "n")
    assert f["error_code"] == "Firehose.DestinationNotAllowed", f
    assert f["data"] == b"never sent"
    assert "firehose.allowed_destinations does not allow address " in f["error_message"]
    assert ("127.0.0.1" in f["error_message"]) or ("::1" in f["error_message"])
    assert db.one("SELECT last_error_code FROM firehose.stream_status "
                  "WHERE stream = 'n'") == "Firehose.DestinationNotAllowed"
    assert r.stats()["received"] == 0
    # a stream's host refused by name after it was created: not sent either
    db.execute("ALTER DATABASE \"%s\" SET firehose.allowed_destinations = "
               "'!localhost, *'" % db.dbname)
    restart_worker(db, pg, wait_until)
    put_texts(db, "n", ["nor this"])
    flush(db, "n")
    f = failed(db, "n")[-1]
    assert f["error_code"] == "Firehose.DestinationNotAllowed", f
    assert "does not allow host localhost" in f["error_message"], f
    assert r.stats()["received"] == 0
    # and the address literal still goes through
    put_texts(db, "h", ["still allowed"])
    flush(db, "h")
    assert r.records() == [b"still allowed"]


def test_a_secret_read_from_a_table_stays_out_of_activity_and_logs(db, cluster, receiver):
    key = "TABLEKEY-5f3a9c2e71"
    r = receiver(access_key=key)           # answers 401 to any other key
    db.execute("ALTER DATABASE \"%s\" SET log_statement = 'all'" % db.dbname)
    db.execute("CREATE TABLE public.secrets (name text PRIMARY KEY, value text NOT NULL)")
    db.execute("REVOKE ALL ON public.secrets FROM PUBLIC")
    # (psycopg2 sends values inline: this connection predates log_statement)
    db.execute("INSERT INTO public.secrets SELECT 'k', %s", (key,))
    before = len(cluster.log_text())
    c = db.conn()
    cur = c.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    cur.execute("SELECT firehose.create_stream('t', 'http', jsonb_build_object("
                "'url', %s::text, 'buffer_interval', 0, "
                "'access_key', (SELECT value FROM public.secrets WHERE name = 'k')))", (r.url,))
    shown = db.one("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,))
    assert "firehose.create_stream" in shown and key not in shown, shown
    put_texts(db, "t", ["keyed"])
    flush(db, "t")
    assert r.records() == [b"keyed"]       # the worker sent the key read from the table
    log = cluster.log_text()[before:]
    assert "firehose.create_stream('t'" in log, "log_statement logged the call"
    assert key not in log
    assert key not in db.one("SELECT options::text FROM firehose.streams WHERE name = 't'")
    c.close()


# == Ownership: streams have owners (issue 8, section 3) ========================
#
# Roles here are used with SET ROLE on the test's superuser connection, which
# is what current_user-based checks see; they need no LOGIN.

@pytest.fixture
def roles(db):
    """roles(*suffixes): new roles, each with EXECUTE on every firehose
    function and SELECT on firehose.streams (so that only ownership stands in
    the way); dropped at teardown."""
    made = []

    def make(*suffixes):
        names = []
        for suffix in suffixes:
            name = "fh_own_%s_%d" % (suffix, os.getpid())
            db.execute('DROP ROLE IF EXISTS "%s"' % name)
            db.execute('CREATE ROLE "%s"' % name)
            made.append(name)
            db.execute('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA firehose TO "%s"' % name)
            db.execute('GRANT SELECT ON firehose.streams, firehose.failed_records TO "%s"' % name)
            names.append(name)
        return names

    yield make
    db.close_all()
    for name in reversed(made):
        db.execute('DROP OWNED BY "%s"' % name)
        db.execute('DROP ROLE "%s"' % name)
    db.close_all()


def role_conn(db, role):
    """A new connection of db whose current_user is role."""
    c = db.conn()
    c.cursor().execute('SET ROLE "%s"' % role)
    return c


def conn_run(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description is not None else None


def conn_sqlstate(conn, sql, params=None):
    """The SQLSTATE sql fails with, or None if it succeeds."""
    try:
        conn_run(conn, sql, params)
        return None
    except psycopg2.Error as e:
        return e.pgcode


def stream_row(db, name):
    return db.q("SELECT owner::text, status, version, options->>'url' FROM firehose.streams "
                "WHERE name = %s", (name,))


# every call that needs ownership, on stream 's' and table owned_t
OWNER_CALLS = [
    "SELECT firehose.alter_stream('s', '{\"url\": \"http://127.0.0.1:9/elsewhere\"}')",
    "SELECT firehose.pause('s')",
    "SELECT firehose.resume('s')",
    "SELECT firehose.flush('s')",
    "SELECT firehose.flush('s', wait => true, timeout => '30s')",
    "SELECT firehose.redrive('s')",
    "SELECT firehose.capture_table('owned_t', 's')",
    "SELECT firehose.drop_stream('s', force => true)",
]


class TestOwnership:
    """Streams have owners: only the owner, a member of the owner role or a
    superuser may change, drop, pause, resume, flush, redrive or capture into
    a stream; failed records belong to the stream by id."""

    def test_non_owner_is_refused_42501(self, db, roles, receiver):
        """Another role with EXECUTE on everything may put into a stream, but not
        alter, pause, resume, flush, redrive, capture into, give away or drop it."""
        owner, other = roles("owner", "other")
        r = receiver()
        o = role_conn(db, owner)
        conn_run(o, "SELECT firehose.create_stream('s', 'http', %s::jsonb)",
                 (json.dumps(dict(FAST, url=r.url, access_key="k-owner")),))
        db.execute("CREATE TABLE owned_t (id int)")
        db.execute('GRANT ALL ON owned_t TO "%s"' % other)
        before = stream_row(db, "s")
        assert before == [(owner, "ACTIVE", 1, r.url)]

        x = role_conn(db, other)
        assert conn_run(x, "SELECT firehose.put('s', 'from other'::text) > 0") == [(True,)]
        for sql in OWNER_CALLS + ["SELECT firehose.alter_stream_owner('s', '%s')" % other]:
            assert conn_sqlstate(x, sql) == "42501", sql
        with pytest.raises(psycopg2.Error, match='must be owner of stream "s"'):
            conn_run(x, OWNER_CALLS[0])

        assert stream_row(db, "s") == before
        assert db.q("SELECT tgname FROM pg_trigger WHERE tgrelid = 'owned_t'::regclass") == []
        # the record other put is delivered to the owner's URL, once flushed
        flush(db, "s")
        assert r.records() == [b"from other"]


    def test_capture_table_needs_only_its_own_execute(self, db, receiver):
        """A role granted EXECUTE on create_stream and capture_table alone (and
        capture, which its triggers name) captures a table of its own into its
        own stream: the ownership check needs no internal function executable by
        that role (none is, nor by PUBLIC), and is still made."""
        name = "fh_capmin_%d" % os.getpid()
        other = "fh_capother_%d" % os.getpid()
        r = receiver()
        for n in (name, other):
            db.execute('DROP ROLE IF EXISTS "%s"' % n)
            db.execute('CREATE ROLE "%s"' % n)
            db.execute('GRANT CREATE ON SCHEMA public TO "%s"' % n)
            db.execute('GRANT EXECUTE ON FUNCTION firehose.create_stream(text, text, jsonb), '
                       'firehose.capture_table(regclass, text, jsonb), firehose.capture() '
                       'TO "%s"' % n)
        try:
            c = role_conn(db, name)
            conn_run(c, "SELECT firehose.create_stream('mine', 'http', %s::jsonb)",
                     (json.dumps(dict(FAST, url=r.url)),))
            conn_run(c, "CREATE TABLE public.capmin_t (id int)")
            conn_run(c, "SELECT firehose.capture_table('public.capmin_t', 'mine')")
            assert db.one("SELECT count(*) FROM pg_trigger "
                          "WHERE tgrelid = 'public.capmin_t'::regclass") == 2
            # the internal function is not callable by the role itself
            assert conn_sqlstate(c, "SELECT firehose._capture_table("
                                    "'public.capmin_t', 'mine', '{}')") == "42501"
            # and the check is made: another role with the same grants, owning
            # its own table, may not capture into 'mine'
            x = role_conn(db, other)
            conn_run(x, "CREATE TABLE public.capother_t (id int)")
            assert conn_sqlstate(x, "SELECT firehose.capture_table("
                                    "'public.capother_t', 'mine')") == "42501"
            assert db.q("SELECT tgname FROM pg_trigger "
                        "WHERE tgrelid = 'public.capother_t'::regclass") == []
            conn_run(c, "INSERT INTO public.capmin_t VALUES (7)")
            flush(db, "mine")
            assert json.loads(r.records()[0])["after"] == {"id": 7}
        finally:
            db.close_all()
            db.execute("DROP TABLE IF EXISTS public.capmin_t, public.capother_t")
            db.execute("SELECT firehose.drop_stream('mine', force => true) "
                       "WHERE EXISTS (SELECT FROM firehose.stream WHERE name = 'mine')")
            for n in (name, other):
                db.execute('DROP OWNED BY "%s"' % n)
                db.execute('DROP ROLE "%s"' % n)

    def test_flush_of_all_streams_is_only_the_callers(self, db, roles, receiver):
        """flush() without a stream asks only for the streams the caller may manage."""
        owner, other = roles("owner", "other")
        r = receiver()
        o = role_conn(db, owner)
        x = role_conn(db, other)
        for c, name in ((o, "s"), (x, "mine")):
            conn_run(c, "SELECT firehose.create_stream(%s, 'http', %s::jsonb)",
                     (name, json.dumps(dict(FAST, url=r.url, buffer_interval="1 day"))))
        # the worker runs and has seen both streams
        conn_run(x, "SELECT firehose.put('mine', 'first'::text)")
        assert conn_run(x, "SELECT firehose.flush('mine', true, '60s')") == [(True,)]
        assert r.records() == [b"first"]
        r.reset()
        conn_run(o, "SELECT firehose.put('s', 'waits'::text)")
        conn_run(x, "SELECT firehose.put('mine', 'flushed'::text)")
        # other's flush of everything delivers its own stream, and not the owner's
        assert conn_run(x, "SELECT firehose.flush(NULL, wait => true, timeout => '60s')") == [(True,)]
        assert r.records() == [b"flushed"]
        assert db.one("SELECT buffered_records FROM firehose.stream_status WHERE stream = 's'") == 1
        assert conn_run(o, "SELECT firehose.flush(NULL, wait => true, timeout => '60s')") == [(True,)]
        assert sorted(r.records()) == [b"flushed", b"waits"]

    def test_member_of_owner_role_and_superuser_may(self, db, roles, receiver):
        """A member of the owner role, and a superuser, may do what the owner may;
        alter_stream_owner gives a stream only to a role the caller is a member of."""
        owner, member, other = roles("owner", "member", "other")
        db.execute('GRANT "%s" TO "%s"' % (owner, member))
        r = receiver()
        o = role_conn(db, owner)
        conn_run(o, "SELECT firehose.create_stream('s', 'http', %s::jsonb)",
                 (json.dumps(dict(FAST, url=r.url)),))
        db.execute("CREATE TABLE owned_t (id int)")
        db.execute('GRANT ALL ON owned_t TO "%s"' % member)

        m = role_conn(db, member)
        for sql in OWNER_CALLS[1:-1]:
            assert conn_sqlstate(m, sql) is None, sql
        assert db.one("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'owned_t'::regclass") == 2
        db.execute("SELECT firehose.uncapture_table('owned_t')")
        conn_run(m, "INSERT INTO owned_t VALUES (1)")

        # the owner can give the stream to a role it is a member of, not to others
        assert conn_sqlstate(o, "SELECT firehose.alter_stream_owner('s', '%s')" % other) == "42501"
        assert conn_sqlstate(m, "SELECT firehose.alter_stream_owner('s', '%s')" % member) is None
        assert stream_row(db, "s")[0][0] == member
        # the former owner is not a member of member: it lost the stream
        assert conn_sqlstate(o, "SELECT firehose.pause('s')") == "42501"

        # a superuser may do everything, and give the stream to anyone
        for sql in OWNER_CALLS[1:3]:
            db.execute(sql)
        db.execute("SELECT firehose.alter_stream_owner('s', '%s')" % other)
        assert stream_row(db, "s")[0][0] == other
        x = role_conn(db, other)
        conn_run(x, "SELECT firehose.drop_stream('s', force => true)")
        assert stream_row(db, "s") == []


    def test_name_reuse_does_not_redrive_old_records(self, db, roles, receiver):
        """Stream s fails records and is dropped; another role creates a stream of
        the same name at its own URL and redrives: nothing of the old stream's
        records reaches the new URL."""
        owner, other = roles("owner", "other")
        old = receiver()
        old.faults([{"status": 400, "error_message": "rejected for good"}])
        o = role_conn(db, owner)
        conn_run(o, "SELECT firehose.create_stream('s', 'http', %s::jsonb)",
                 (json.dumps(dict(FAST, url=old.url)),))
        conn_run(o, "SELECT firehose.put_batch('s', ARRAY['old secret 1', 'old secret 2'])")
        assert conn_run(o, "SELECT firehose.flush('s', true, '60s')") == [(True,)]
        assert [x["data"] for x in failed(db, "s")] == [b"old secret 1", b"old secret 2"]
        conn_run(o, "SELECT firehose.drop_stream('s')")
        # the dropped stream's failed records went with it
        assert db.one("SELECT count(*) FROM firehose.failed_records") == 0

        new = receiver()
        x = role_conn(db, other)
        conn_run(x, "SELECT firehose.create_stream('s', 'http', %s::jsonb)",
                 (json.dumps(dict(FAST, url=new.url)),))
        assert conn_run(x, "SELECT firehose.redrive('s')") == [(0,)]
        conn_run(x, "SELECT firehose.put('s', 'new marker'::text)")
        assert conn_run(x, "SELECT firehose.flush('s', true, '60s')") == [(True,)]
        assert new.records() == [b"new marker"]
        assert [q["records"] for q in new.requests(records=True)] == [[b"new marker"]]


    def test_redrive_takes_only_the_streams_own_failed_records(self, db, roles, receiver):
        """Failed records carry their stream's id: a stream's redrive puts back its
        own, and those of another stream stay where they are."""
        owner, = roles("owner")
        bad = receiver()
        bad.faults([{"status": 400}])
        o = role_conn(db, owner)
        for name in ("a", "b"):
            conn_run(o, "SELECT firehose.create_stream(%s, 'http', %s::jsonb)",
                     (name, json.dumps(dict(FAST, url=bad.url))))
            conn_run(o, "SELECT firehose.put(%s, %s::text)", (name, "rec of " + name))
            assert conn_run(o, "SELECT firehose.flush(%s, true, '60s')", (name,)) == [(True,)]
        ids = dict(db.q("SELECT name, id FROM firehose.stream"))
        assert sorted(db.q("SELECT stream, stream_id FROM firehose.failed_records")) == \
            [("a", ids["a"]), ("b", ids["b"])]
        good = receiver()
        conn_run(o, "SELECT firehose.alter_stream('a', %s::jsonb)", (json.dumps({"url": good.url}),))
        assert conn_run(o, "SELECT firehose.redrive('a')") == [(1,)]
        assert conn_run(o, "SELECT firehose.flush('a', true, '60s')") == [(True,)]
        assert good.records() == [b"rec of a"]
        assert db.q("SELECT stream, stream_id FROM firehose.failed_records") == [("b", ids["b"])]

    def test_redirected_stream_does_not_carry_its_secrets(self, db, roles, receiver):
        """The owner points a stream with an access key and a secret header at
        another URL without giving them again: the new URL never receives
        them (they are dropped, with a notice); given again, the new ones go."""
        owner, = roles("owner")
        old = receiver(access_key="k-old-secret")
        new = receiver()
        o = role_conn(db, owner)
        conn_run(o, "SELECT firehose.create_stream('s', 'http', %s::jsonb)",
                 (json.dumps(dict(FAST, url=old.url, access_key="k-old-secret",
                                  headers={"X-Api-Token": "h-old-secret"})),))
        conn_run(o, "SELECT firehose.put('s', 'to old'::text)")
        assert conn_run(o, "SELECT firehose.flush('s', true, '60s')") == [(True,)]
        assert old.records() == [b"to old"]

        del o.notices[:]
        conn_run(o, "SELECT firehose.alter_stream('s', %s::jsonb)",
                 (json.dumps({"url": new.url}),))
        assert any('dropped the stored secret options "access_key", "headers"' in n
                   for n in o.notices), o.notices
        opts = db.one("SELECT options FROM firehose.stream WHERE name = 's'")
        assert "access_key" not in opts and "headers" not in opts
        conn_run(o, "SELECT firehose.put('s', 'to new'::text)")
        assert conn_run(o, "SELECT firehose.flush('s', true, '60s')") == [(True,)]
        assert new.records() == [b"to new"]
        sent = json.dumps([q["headers"] for q in new.requests()])
        assert "k-old-secret" not in sent and "h-old-secret" not in sent

        # a key given again in the same call is the one sent
        conn_run(o, "SELECT firehose.alter_stream('s', %s::jsonb)",
                 (json.dumps({"url": new.url + "/v2", "access_key": "k-new"}),))
        conn_run(o, "SELECT firehose.put('s', 'with new key'::text)")
        assert conn_run(o, "SELECT firehose.flush('s', true, '60s')") == [(True,)]
        last = new.requests()[-1]["headers"]
        assert {k.lower(): v for k, v in last.items()}["x-amz-firehose-access-key"] == "k-new"
        assert "k-old-secret" not in json.dumps([q["headers"] for q in new.requests()])
        assert old.records() == [b"to old"]

    def test_redirect_needing_a_secret_is_refused(self, db, roles, receiver):
        """A destination whose secret is required (Splunk's token) cannot be
        moved without giving it again: the error names the dropped option,
        and the stream stays as it was."""
        owner, = roles("owner")
        o = role_conn(db, owner)
        conn_run(o, "SELECT firehose.create_stream('hec', 'splunk', %s::jsonb)",
                 (json.dumps({"endpoint": "http://127.0.0.1:9/", "token": "hec-secret"}),))
        with pytest.raises(psycopg2.Error) as e:
            conn_run(o, "SELECT firehose.alter_stream('hec', %s::jsonb)",
                     (json.dumps({"endpoint": "http://127.0.0.1:10/"}),))
        assert e.value.pgcode == "22023"
        assert 'option "token" is required' in e.value.pgerror
        assert 'dropped the stored secret options "token"' in e.value.diag.message_detail
        assert db.q("SELECT options->>'endpoint', options->>'token' FROM firehose.stream "
                    "WHERE name = 'hec'") == [("http://127.0.0.1:9/", "hec-secret")]
