#!/usr/bin/python3
"""Throw-away PostgreSQL 15 clusters for the firehose tests.

A Cluster owns one directory (a fresh temporary one unless base_dir is given)
holding the data directory ("data"), the server log ("postgres.log"), the Unix
socket and a small state file (cluster.json) that lets another process attach
to the same cluster by naming the same directory.
The server listens on 127.0.0.1 on a free port; authentication is trust.

PostgreSQL refuses to run as root.  When this process runs as root the
directory is handed to the "postgres" system user, initdb and pg_ctl run
through "runuser -u postgres --", and the superuser role is "postgres".  If
base_dir was given, the server's own files go to a fresh temp dir owned by
postgres (base_dir may be below a directory postgres cannot enter) and
base_dir keeps only cluster.json, which points to it.  As
an ordinary user everything runs directly and the superuser role is named
after that user.

shared_preload_libraries = 'firehose' is set when the extension's library is
installed; FIREHOSE_PRELOAD=0 forces it off, FIREHOSE_PRELOAD=1 forces it on.

FIREHOSE_SANITIZE=DIR (test/run --sanitize, whose extension is built with
gcc's -fsanitize=address,undefined): the server starts with gcc's ASan and
UBSan runtimes preloaded (PostgreSQL itself is not instrumented, and the
ASan runtime must be the first library of the process); their reports go to
the server's stderr, that is its log.  DIR holds a helper library built
for it (test/asan_initfirst.c).

Command line (used by test/run and demo scripts):

    /usr/bin/python3 test/pgcluster.py start --dir D [--port P] [--set k=v ...]
        initialises D if needed, starts the server, prints
        "PORT=... HOST=127.0.0.1 USER=... DIR=..." (shell-evaluable)
    /usr/bin/python3 test/pgcluster.py stop --dir D [--mode fast|immediate] [--rm]
    /usr/bin/python3 test/pgcluster.py status --dir D
    /usr/bin/python3 test/pgcluster.py log --dir D [--tail N]
"""

import argparse
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

PGBIN = os.environ.get("FIREHOSE_PGBIN", "/usr/lib/postgresql/15/bin")
STATE_FILE = "cluster.json"
CONF_FILE = "firehose_test.conf"

# Settings every test cluster gets; extra conf passed to Cluster() wins.
BASE_CONF = {
    "listen_addresses": "127.0.0.1",
    "max_worker_processes": 32,
    "max_connections": 100,
    "max_prepared_transactions": 10,
    "fsync": "off",
    "log_min_messages": "warning",
    "log_checkpoints": "off",
    "log_line_prefix": "%m [%p] %q%a ",
    "log_timezone": "UTC",
    "timezone": "UTC",
    "lc_messages": "C",
    "datestyle": "iso, mdy",
}


def free_port():
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def conf_value(v):
    """Render a Python value as a postgresql.conf value."""
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, (int, float)):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


def firehose_library_installed():
    pkglibdir = subprocess.run([os.path.join(PGBIN, "pg_config"), "--pkglibdir"],
                               capture_output=True, text=True, check=True).stdout.strip()
    return os.path.exists(os.path.join(pkglibdir, "firehose.so"))


def sanitizer_env():
    """The server's extra environment under FIREHOSE_SANITIZE=DIR, else {}.

    ASan aborts the process at its first report (the postmaster then restarts
    the cluster, which the tests notice); UBSan reports and goes on.  Leak
    detection is off: a backend's memory contexts are freed by exit."""
    out = os.environ.get("FIREHOSE_SANITIZE", "")
    if not out:
        return {}
    libs = []
    for name in ("libasan.so", "libubsan.so"):
        path = subprocess.run(["gcc", "-print-file-name=" + name], capture_output=True,
                              text=True, check=True).stdout.strip()
        if not os.path.isabs(path):
            raise ClusterError("gcc has no %s (install libasan8 and libubsan1)" % name)
        libs.append(os.path.realpath(path))
    # test/asan_initfirst.c, built once per run
    shim = os.path.join(out, "asan_initfirst.so")
    if not os.path.exists(shim):
        os.makedirs(os.path.dirname(shim), exist_ok=True)
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "asan_initfirst.c")
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", shim + ".tmp", src,
                        "-Wl,-z,initfirst", "-Wl,--no-as-needed", libs[0]], check=True)
        os.replace(shim + ".tmp", shim)
    return {
        "LD_PRELOAD": " ".join([libs[0], shim, libs[1]]),
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:verify_asan_link_order=0",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=0",
    }


def want_preload():
    v = os.environ.get("FIREHOSE_PRELOAD", "auto").strip().lower()
    if v in ("0", "no", "off", "false"):
        return False
    if v in ("1", "yes", "on", "true"):
        return True
    return firehose_library_installed()


class ClusterError(RuntimeError):
    pass


class Cluster:
    """One throw-away PostgreSQL cluster.

    base_dir: directory to own (created if missing); default a new temp dir,
              removed again by destroy().
    port:     TCP port; default a free one.
    conf:     extra postgresql.conf settings, e.g. {"firehose.naptime": 100}.
    nofile:   the server's open-file limit (RLIMIT_NOFILE, set with prlimit
              when it starts); default the inherited one.
    """

    def __init__(self, base_dir=None, port=None, conf=None, nofile=None):
        self.nofile = nofile
        self.as_root = os.geteuid() == 0
        self.owns_dir = base_dir is None
        if base_dir is None:
            base_dir = tempfile.mkdtemp(prefix="firehose-pg-")
        self.base_dir = os.path.abspath(base_dir)
        os.makedirs(self.base_dir, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port
        self.user = "postgres" if self.as_root else pwd.getpwuid(os.geteuid()).pw_name
        self.conf = dict(conf or {})
        state = self._read_state()
        if state:
            # Re-attaching to a cluster created earlier (maybe by another process).
            self.port = self.port or state["port"]
            self.user = state["user"]
            self.pgdir = state["pgdir"]
            self.conf = {**state.get("conf", {}), **self.conf}
        elif not self.as_root or self.owns_dir:
            self.pgdir = self.base_dir
        else:
            # base_dir may sit below directories user postgres cannot enter:
            # keep the server's files in a fresh temp dir it owns instead.
            self.pgdir = tempfile.mkdtemp(prefix="firehose-pg-")
        self.datadir = os.path.join(self.pgdir, "data")
        self.sockdir = self.pgdir
        self.logfile = os.path.join(self.pgdir, "postgres.log")
        if self.port is None:
            self.port = free_port()
        self._write_state()

    # -- plumbing ---------------------------------------------------------

    def _read_state(self):
        try:
            with open(os.path.join(self.base_dir, STATE_FILE)) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def _write_state(self):
        path = os.path.join(self.base_dir, STATE_FILE)
        with open(path + ".tmp", "w") as f:
            json.dump({"port": self.port, "user": self.user, "host": self.host,
                       "pgdir": self.pgdir, "conf": self.conf}, f)
        os.replace(path + ".tmp", path)

    def _run(self, argv, check=True, extra_env=None, prefix=()):
        """Run a PostgreSQL binary as the cluster owner (after the command
        prefix, e.g. prlimit); return CompletedProcess."""
        argv = list(prefix) + [os.path.join(PGBIN, argv[0])] + list(argv[1:])
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        env.update(extra_env or {})
        r = subprocess.run(argv, cwd=self.pgdir, env=env, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise ClusterError("%s failed (exit %d):\n%s%s\n--- server log tail ---\n%s" % (
                " ".join(argv), r.returncode, r.stdout, r.stderr, self.log_text()[-3000:]))
        return r

    def _chown(self, path):
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _write_conf(self):
        settings = dict(BASE_CONF)
        settings["port"] = self.port
        settings["unix_socket_directories"] = self.sockdir
        settings["shared_preload_libraries"] = "firehose" if want_preload() else ""
        settings.update(self.conf)
        path = os.path.join(self.datadir, CONF_FILE)
        with open(path, "w") as f:
            f.write("# written by test/pgcluster.py; rewritten on every start\n")
            for k, v in settings.items():
                f.write("%s = %s\n" % (k, conf_value(v)))
        self._chown(path)

    # -- lifecycle --------------------------------------------------------

    @property
    def initialized(self):
        return os.path.exists(os.path.join(self.datadir, "PG_VERSION"))

    def init(self):
        """initdb (no-op when already initialised)."""
        os.makedirs(self.pgdir, exist_ok=True)
        self._chown(self.pgdir)
        if not self.initialized:
            self._run(["initdb", "-D", self.datadir, "-U", self.user, "-A", "trust",
                       "-E", "UTF8", "--locale=C", "--no-sync"])
            with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
                f.write("\ninclude_if_exists = '%s'\n" % CONF_FILE)
            with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
                f.write("local all all trust\n"
                        "host all all 127.0.0.1/32 trust\n"
                        "host all all ::1/128 trust\n"
                        "local replication all trust\n"
                        "host replication all 127.0.0.1/32 trust\n")
        self._write_state()
        return self

    def is_running(self):
        if not self.initialized:
            return False
        return self._run(["pg_ctl", "-D", self.datadir, "status"], check=False).returncode == 0

    def start(self):
        if not self.initialized:
            self.init()
        if self.is_running():
            return self
        self._write_conf()
        self._write_state()
        prefix = ["prlimit", "--nofile=%d:%d" % (self.nofile, self.nofile)] if self.nofile else []
        self._run(["pg_ctl", "-D", self.datadir, "-l", self.logfile, "-c", "-w", "-t", "120",
                   "start"], extra_env=sanitizer_env(), prefix=prefix)
        return self

    def stop(self, mode="fast"):
        if self.initialized and self.is_running():
            self._run(["pg_ctl", "-D", self.datadir, "-m", mode, "-w", "-t", "120", "stop"])
        return self

    def restart(self):
        self.stop()
        return self.start()

    def crash(self):
        """Immediate shutdown then start: crash recovery runs, unlogged tables are reset."""
        self.stop(mode="immediate")
        return self.start()

    def reload(self):
        self._write_conf()
        self._run(["pg_ctl", "-D", self.datadir, "reload"])
        return self

    def set_conf(self, **settings):
        """Change settings (applied on the next start/restart/reload)."""
        self.conf.update(settings)
        self._write_state()
        return self

    def remove(self):
        """Delete the server's files and base_dir (the server must be stopped)."""
        shutil.rmtree(self.pgdir, ignore_errors=True)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def destroy(self):
        """Stop the server; remove its files if this Cluster created the directory."""
        try:
            self.stop(mode="immediate")
        finally:
            if self.owns_dir:
                self.remove()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.destroy()

    # -- access -----------------------------------------------------------

    def dsn(self, dbname="postgres"):
        return "host=%s port=%d user=%s dbname=%s" % (self.host, self.port, self.user, dbname)

    def connect(self, dbname="postgres", autocommit=True):
        import psycopg2
        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user,
                                dbname=dbname, connect_timeout=10)
        conn.autocommit = autocommit
        return conn

    def psql(self, sql, db="postgres", params=None):
        """Run one statement in its own autocommit connection.

        Returns the rows (list of tuples) when the statement returns rows, else None.
        """
        conn = self.connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description is not None else None
        finally:
            conn.close()

    def poll_query_until(self, sql, expected=True, db="postgres", timeout=30.0, interval=0.05):
        """Re-run a single-value query until it returns `expected`; return the last value.

        Raises TimeoutError when the value never matched.
        """
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                rows = self.psql(sql, db)
                last = rows[0][0] if rows else None
                if last == expected:
                    return last
            except Exception as e:  # server restarting etc.
                last = e
            if time.monotonic() > deadline:
                raise TimeoutError("%r did not return %r within %ss (last: %r)"
                                   % (sql, expected, timeout, last))
            time.sleep(interval)

    def log_text(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern, offset=0, timeout=30.0):
        """Wait until the regex `pattern` appears in the log after byte `offset`."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.log_text()[offset:])
            if m:
                return m
            if time.monotonic() > deadline:
                raise TimeoutError("log pattern %r not seen within %ss" % (pattern, timeout))
            time.sleep(0.05)

    def log_offset(self):
        return len(self.log_text())


def main(argv=None):
    ap = argparse.ArgumentParser(description="throw-away PostgreSQL cluster for firehose tests")
    ap.add_argument("action", choices=["start", "stop", "status", "restart", "log"])
    ap.add_argument("--dir", required=True, help="cluster directory (created if missing)")
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="extra postgresql.conf setting (value written verbatim-quoted)")
    ap.add_argument("--mode", default="fast", help="stop mode (fast, immediate, smart)")
    ap.add_argument("--rm", action="store_true", help="with stop: remove the directory")
    ap.add_argument("--tail", type=int, default=0, help="with log: only the last N lines")
    args = ap.parse_args(argv)

    if args.action != "start" and not os.path.exists(os.path.join(args.dir, STATE_FILE)):
        print("no cluster in %s" % args.dir, file=sys.stderr)
        return 0 if args.action == "stop" else 3
    conf = {}
    for item in args.set:
        k, _, v = item.partition("=")
        conf[k.strip()] = v
    c = Cluster(base_dir=args.dir, port=args.port, conf=conf)
    try:
        if args.action == "start":
            c.start()
        elif args.action == "restart":
            c.restart()
        elif args.action == "stop":
            c.stop(mode=args.mode)
            if args.rm:
                c.remove()
            return 0
        elif args.action == "log":
            lines = c.log_text().splitlines(True)
            sys.stdout.write("".join(lines[-args.tail:] if args.tail else lines))
            return 0
        elif args.action == "status":
            running = c.initialized and c.is_running()
            print("RUNNING=%d" % running)
            if not running:
                return 3
    except ClusterError as e:
        print(str(e), file=sys.stderr)
        return 1
    print("PORT=%d HOST=%s USER=%s DIR=%s" % (c.port, c.host, c.user, c.base_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
