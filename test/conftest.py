"""pytest fixtures for the firehose integration tests.

cluster   (session)  the PostgreSQL cluster: the one test/run started (env
                     FIREHOSE_TEST_PGDIR, or FIREHOSE_TEST_PGHOST/PGPORT/PGUSER),
                     else a throw-away test/pgcluster.py Cluster for this run.
pg        (session)  connection factory: pg(dbname='postgres', autocommit=True).
db        (function) a fresh database with CREATE EXTENSION firehose, dropped
                     afterwards; see Database.
receiver  (function) factory starting test/receiver.py processes; see Receiver.
module_receiver (module) one firehose-mode Receiver shared by a test module
                     (not checked for violations; call .reset() per test).
wait_until(function) wait_until(fn, timeout=30, interval=0.05, message=None).
s3_server (session)  a signature-checking S3 server (OpenStack Swift + s3api,
                     test/s3server.py); skips when Swift is not installed.
read_parquet (session) read_parquet(*files, sql=None): the files read back by
                     DuckDB (test/node/readparquet.mjs); see that script.
"""

import base64
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

TEST_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TEST_DIR)

import pgcluster  # noqa: E402

PYTHON = "/usr/bin/python3"


def wait_until(fn, timeout=30.0, interval=0.05, message=None):
    """Call fn() until it returns a truthy value; return it.  TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(message or "condition not met within %ss" % timeout)
        time.sleep(interval)


# -- PostgreSQL -------------------------------------------------------------

class ExternalCluster:
    """A running server known only by host/port/user: no restart or crash."""

    def __init__(self, host, port, user):
        self.host, self.port, self.user = host, int(port), user

    def connect(self, dbname="postgres", autocommit=True):
        import psycopg2
        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user,
                                dbname=dbname, connect_timeout=10)
        conn.autocommit = autocommit
        return conn

    psql = pgcluster.Cluster.psql
    poll_query_until = pgcluster.Cluster.poll_query_until

    def log_text(self):
        return ""

    def _unsupported(self, *a, **kw):
        pytest.skip("cluster not controlled by this test run (set FIREHOSE_TEST_PGDIR)")

    start = stop = restart = crash = reload = set_conf = _unsupported


@pytest.fixture(scope="session")
def cluster():
    pgdir = os.environ.get("FIREHOSE_TEST_PGDIR")
    port = os.environ.get("FIREHOSE_TEST_PGPORT")
    if pgdir:
        yield pgcluster.Cluster(base_dir=pgdir)
    elif port:
        yield ExternalCluster(os.environ.get("FIREHOSE_TEST_PGHOST", "127.0.0.1"), port,
                              os.environ.get("FIREHOSE_TEST_PGUSER", "postgres"))
    else:
        c = pgcluster.Cluster()
        c.start()
        try:
            yield c
        finally:
            c.destroy()


@pytest.fixture(scope="session")
def pg(cluster):
    """Connection factory: pg(dbname='postgres', autocommit=True)."""
    return cluster.connect


_db_counter = itertools.count(1)


class Database:
    """A fresh database with the firehose extension.

    .dbname, .cluster
    .conn(autocommit=True)   a new psycopg2 connection (closed at teardown)
    .q(sql, params=None)     rows (list of tuples); [] for statements without rows
    .one(sql, params=None)   the single value of a one-row, one-column result
    .execute(sql, params)    run a statement, no result
    .flush(stream=None, timeout='30s')  firehose.flush(stream, wait => true, timeout)
                             (alias .wait_flush)
    .wait_for(sql, expected=True, timeout=30)  poll a single-value query
    """

    def __init__(self, cluster, dbname):
        self.cluster = cluster
        self.dbname = dbname
        self._conns = []
        self._main = None

    def conn(self, autocommit=True):
        c = self.cluster.connect(self.dbname, autocommit=autocommit)
        self._conns.append(c)
        return c

    def _cursor(self):
        if self._main is None or self._main.closed:
            self._main = self.conn()
        return self._main.cursor()

    def q(self, sql, params=None):
        with self._cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []

    def one(self, sql, params=None):
        rows = self.q(sql, params)
        assert len(rows) == 1 and len(rows[0]) == 1, "expected one value, got %r" % (rows,)
        return rows[0][0]

    def execute(self, sql, params=None):
        with self._cursor() as cur:
            cur.execute(sql, params)

    def flush(self, stream=None, timeout="30s"):
        return self.one("SELECT firehose.flush(%s, true, %s::interval)", (stream, timeout))

    wait_flush = flush

    def wait_for(self, sql, expected=True, timeout=30.0, params=None):
        last = []

        def check():
            last[:] = [self.one(sql, params)]
            return last[0] == expected
        wait_until(check, timeout, message="%s: expected %r, last %r"
                   % (sql, expected, last[0] if last else None))

    def close_all(self):
        for c in self._conns:
            try:
                c.close()
            except Exception:
                pass
        self._conns = []
        self._main = None


def _drop_database(cluster, name):
    # A firehose worker may be (re)connecting: FORCE, and retry briefly.
    deadline = time.monotonic() + 15
    while True:
        try:
            cluster.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def db(cluster):
    name = "t_%d_%d" % (os.getpid(), next(_db_counter))
    _drop_database(cluster, name)
    cluster.psql('CREATE DATABASE "%s"' % name)
    d = Database(cluster, name)
    try:
        d.execute("CREATE EXTENSION firehose")
        yield d
    finally:
        d.close_all()
        _drop_database(cluster, name)


@pytest.fixture(name="wait_until")
def wait_until_fixture():
    return wait_until


# -- HTTP receiver ------------------------------------------------------------

class Receiver:
    """One test/receiver.py process.

    .url (http://127.0.0.1:<port>/firehose), .port, .base (control base URL)
    .stats() .records() (list of bytes) .requests() .faults(rules) .reset()
    .wait_records(n, timeout=30) .assert_no_violations() .stop()
    """

    def __init__(self, mode="firehose", access_key=None, extra_args=()):
        self.mode = mode
        self._dir = tempfile.mkdtemp(prefix="firehose-recv-")
        portfile = os.path.join(self._dir, "port")
        self._stderr = open(os.path.join(self._dir, "stderr"), "w+")
        argv = [PYTHON, os.path.join(TEST_DIR, "receiver.py"), "--port", "0",
                "--portfile", portfile, "--mode", mode]
        if access_key is not None:
            argv += ["--access-key", access_key]
        argv += list(extra_args)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._stderr)
        deadline = time.monotonic() + 15
        while not os.path.exists(portfile):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("receiver did not start: %s" % self.stderr_text())
            time.sleep(0.02)
        with open(portfile) as f:
            self.port = int(f.read())
        self.base = "http://127.0.0.1:%d" % self.port
        self.url = self.base + "/firehose"

    def _control(self, method, what, payload=None, timeout=60):
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.base + "/_control/" + what, data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
        # The receiver may be in a down_for outage: retry refused connections.
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as e:
                body = e.read()
                if e.code == 408 and what.startswith("wait"):
                    raise TimeoutError("receiver wait timed out: %s" % body.decode())
                raise RuntimeError("control %s %s: %d %s" % (method, what, e.code, body))
            except (urllib.error.URLError, ConnectionError) as e:
                reason = getattr(e, "reason", e)
                if not isinstance(reason, ConnectionError) or time.monotonic() > deadline \
                        or self.proc.poll() is not None:
                    raise
                time.sleep(0.05)

    def stats(self):
        return self._control("GET", "stats")

    def records(self):
        return [base64.b64decode(r) for r in self._control("GET", "records")["records"]]

    def requests(self, records=False):
        """Every request received; records=True adds "records" (list of bytes stored)."""
        reqs = self._control("GET", "requests?records=1" if records else "requests")
        for r in reqs:
            if "records_b64" in r:
                r["records"] = [base64.b64decode(x) for x in r.pop("records_b64")]
        return reqs

    def faults(self, rules):
        return self._control("POST", "faults", list(rules))

    def reset(self):
        return self._control("POST", "reset", {})

    def wait_records(self, n, timeout=30.0):
        """Block until at least n records are stored; return the stats."""
        return self._control("GET", "wait?records=%d&timeout=%s" % (n, timeout),
                             timeout=timeout + 30)

    def wait_requests(self, n, timeout=30.0):
        return self._control("GET", "wait?requests=%d&timeout=%s" % (n, timeout),
                             timeout=timeout + 30)

    def assert_no_violations(self):
        v = self.stats()["violations"]
        assert not v, "protocol violations seen by the receiver: %r" % v

    def stderr_text(self):
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        for f in os.listdir(self._dir):
            os.unlink(os.path.join(self._dir, f))
        os.rmdir(self._dir)


@pytest.fixture(scope="module")
def module_receiver():
    r = Receiver("firehose")
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def receiver():
    """Factory: receiver(mode='firehose', access_key=None, strict=True, extra_args=()).

    With strict=True (the default) the test fails at teardown if the receiver
    saw any protocol violation.
    """
    started = []

    def start(mode="firehose", access_key=None, strict=True, extra_args=()):
        r = Receiver(mode, access_key, extra_args)
        started.append((r, strict))
        return r

    yield start
    problems = []
    for r, strict in started:
        try:
            if strict and r.proc.poll() is None:
                v = r.stats()["violations"]
                if v:
                    problems.append("receiver %s saw protocol violations: %r" % (r.url, v))
        finally:
            r.stop()
    if problems:
        pytest.fail("\n".join(problems))


# -- S3 server ------------------------------------------------------------------

@pytest.fixture(scope="session")
def s3_server():
    """A signature-checking S3 server (test/s3server.py: OpenStack Swift + s3api),
    one per test run: .endpoint .access_key .secret_key .region (us-east-1),
    .access_key2/.secret_key2 (a second user), .client() (boto3, path style),
    .aws(*args) (runs /usr/bin/aws), .env() (AWS_* for /usr/bin/aws),
    .log_text().  Skips the test when Swift is not installed.

    FIREHOSE_TEST_S3_DIR names the directory of a server already started with
    "test/s3server.py start --dir D"; it is used as is and left running.
    """
    import s3server
    reason = s3server.swift_installed()
    if reason:
        pytest.skip(reason)
    s3dir = os.environ.get("FIREHOSE_TEST_S3_DIR")
    if s3dir:
        s = s3server.S3Server(s3dir)
        if not s.is_running():
            pytest.fail("FIREHOSE_TEST_S3_DIR=%s: no running S3 server there" % s3dir)
        yield s
        return
    s = s3server.start()
    try:
        yield s
    finally:
        s.stop()


# -- Parquet reader -------------------------------------------------------------

NODE_DIR = os.path.join(TEST_DIR, "node")


@pytest.fixture(scope="session")
def read_parquet():
    """read_parquet(*files, sql=None) -> {file: {rows, types, schema, metadata}}:
    Parquet files read back by DuckDB (@duckdb/node-api in test/node, which
    scripts/install-deps --tests installs).  A checkout without
    test/node/node_modules (a fresh clone) gets it from npm's cache, offline,
    as package-lock.json pins it."""
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@duckdb", "node-api")):
        r = subprocess.run(["npm", "ci", "--offline", "--no-audit", "--no-fund",
                            "--loglevel=error", "--prefix", NODE_DIR],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.fail("DuckDB for Node is not installed in test/node and npm's cache "
                        "cannot install it offline: run scripts/install-deps --tests\n"
                        + r.stderr[-2000:])

    def read(*files, sql=None):
        cmd = ["node", os.path.join(NODE_DIR, "readparquet.mjs")]
        if sql:
            cmd += ["--sql", sql]
        r = subprocess.run(cmd + [str(f) for f in files], capture_output=True,
                           text=True, timeout=300)
        if r.returncode != 0:
            raise AssertionError("DuckDB could not read %s:\n%s" % (files, r.stderr[-4000:]))
        return json.loads(r.stdout)
    return read
