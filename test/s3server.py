#!/usr/bin/python3
"""A real, signature-checking S3 server for the firehose tests.

OpenStack Swift (Debian 12: swift, swift-proxy, swift-account,
swift-container, swift-object, python3-swift) with the s3api middleware: a
production S3 implementation that checks AWS Signature V4 (secret, region,
clock skew, signed headers, payload SHA-256).  Fake S3 servers that accept
any signature prove nothing about our signer; this one answers a bad
signature with 403 SignatureDoesNotMatch.

An S3Server owns one directory (a fresh temporary one unless base_dir is
given) holding our own swift_dir ("etc": swift.conf, the four server configs
and the three rings), the object data ("srv/d1"), one log per server ("log")
and a state file (s3server.json) that lets another process (the CLI's stop)
find the processes again.  Nothing outside that directory is read or
written: /etc/swift is not used.

The four servers (account, container, object, proxy) listen on free loopback
ports, with workers = 0 (one process each, no fork, no privilege drop), as
the calling user, so this works as root and as an ordinary user.  The proxy
speaks S3 (path-style; region us-east-1) with two users:

    access key test:tester    secret testing    (S3Server.access_key/.secret_key)
    access key test2:tester2  secret testing2   (S3Server.access_key2/.secret_key2)

The object server keeps metadata in user.* xattrs, so the data directory
must support them (ext4, xfs, btrfs; tmpfs only from Linux 6.6).  It is
checked; when base_dir (or the temp dir) cannot hold xattrs, the data goes
to a fresh directory under the first of $FIREHOSE_S3_DATA_DIR, $TMPDIR,
/tmp, /var/tmp, <repo>/tmp that can.

Python API:

    import s3server
    s = s3server.start()          # or start(base_dir=...)
    s.endpoint, s.access_key, s.secret_key, s.region
    s.env()                       # AWS_* variables for /usr/bin/aws (path style)
    s.aws("s3api", "list-buckets") # run /usr/bin/aws against it, returns CompletedProcess
    s.client(access_key=..., secret_key=...)   # a boto3 S3 client (path style)
    s.stop(remove=True)
    s.restart()                   # stop(remove=False) + start(): same ports, same data
    os.kill(s.pids["proxy"], signal.SIGSTOP)   # e.g. a server that hangs

Command line:

    /usr/bin/python3 test/s3server.py start --dir D
        starts the servers, prints (shell-evaluable)
        S3_ENDPOINT=http://127.0.0.1:P S3_ACCESS_KEY=test:tester S3_SECRET_KEY=testing S3_REGION=us-east-1
    /usr/bin/python3 test/s3server.py stop --dir D [--rm]
        (without --rm a later start --dir D comes back on the same ports with the same data)
    /usr/bin/python3 test/s3server.py status --dir D

Run it with /usr/bin/python3 (Debian's, which has the swift modules); the
servers themselves always run under /usr/bin/python3.
"""

import argparse
import errno
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

TEST_DIR = os.path.dirname(os.path.abspath(__file__))
SYSTEM_PYTHON = "/usr/bin/python3"
SWIFT_BIN = "/usr/bin"
AWS = "/usr/bin/aws"
STATE_FILE = "s3server.json"
SERVERS = ("account", "container", "object", "proxy")
REGION = "us-east-1"
USERS = (("test:tester", "testing"), ("test2:tester2", "testing2"))
# Discard port for swift's syslog handler: with -v the servers log to stderr
# (our log files); this keeps them off the machine's syslog.
SYSLOG_SINK = ("127.0.0.1", 9)


class S3ServerError(RuntimeError):
    pass


def swift_installed():
    """None if the Swift servers are installed, else a reason (for pytest.skip)."""
    missing = [p for p in ["%s/swift-%s-server" % (SWIFT_BIN, s) for s in SERVERS]
               if not os.access(p, os.X_OK)]
    if missing:
        return ("OpenStack Swift is not installed (missing %s; apt-get install swift "
                "swift-proxy swift-account swift-container swift-object python3-swift)"
                % ", ".join(missing))
    if not os.path.isdir("/usr/lib/python3/dist-packages/swift"):
        return "python3-swift is not installed"
    return None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def supports_xattr(directory):
    """True if files in directory can hold a 254-byte user.* xattr."""
    try:
        fd, path = tempfile.mkstemp(prefix=".xattr-check-", dir=directory)
    except OSError:
        return False
    try:
        os.setxattr(path, "user.firehose.check", b"x" * 254)
        return os.getxattr(path, "user.firehose.check") == b"x" * 254
    except OSError:
        return False
    finally:
        os.close(fd)
        os.unlink(path)


def xattr_dir_candidates():
    c = [os.environ.get("FIREHOSE_S3_DATA_DIR"), tempfile.gettempdir(), "/tmp",
         "/var/tmp", os.path.join(os.path.dirname(TEST_DIR), "tmp")]
    seen = []
    for d in c:
        if d and d not in seen:
            seen.append(d)
    return seen


def xattr_capable_parent():
    for d in xattr_dir_candidates():
        if d.endswith("/tmp") and not os.path.isdir(d) and d.startswith(os.path.dirname(TEST_DIR)):
            try:
                os.makedirs(d, exist_ok=True)
            except OSError:
                continue
        if os.path.isdir(d) and supports_xattr(d):
            return d
    raise S3ServerError("no directory with user xattr support among %s (Swift's object "
                        "server needs one; set FIREHOSE_S3_DATA_DIR)"
                        % ", ".join(xattr_dir_candidates()))


def calling_user():
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        raise S3ServerError("uid %d has no passwd entry; Swift needs a user name" % os.getuid())


def server_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTHON") and k not in ("VIRTUAL_ENV",)}
    env["EVENTLET_NO_GREENDNS"] = "yes"     # ~0.3 s less start-up per process
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


# Built in one Python process (one swift import instead of three
# swift-ring-builder runs).  argv: etc_dir account_port container_port object_port
RING_SCRIPT = r"""
import os, sys
from swift.common.ring import RingBuilder
etc = sys.argv[1]
for kind, port in zip(("account", "container", "object"), sys.argv[2:5]):
    b = RingBuilder(6, 1, 1)
    b.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port),
               "replication_ip": "127.0.0.1", "replication_port": int(port),
               "device": "d1", "weight": 1.0, "meta": ""})
    b.rebalance()
    b.save(os.path.join(etc, kind + ".builder"))
    b.get_ring().save(os.path.join(etc, kind + ".ring.gz"))
"""


def _ini(sections):
    out = []
    for name, items in sections:
        out.append("[%s]" % name)
        for k, v in items:
            out.append("%s = %s" % (k, v))
        out.append("")
    return "\n".join(out)


class S3Server:
    """Swift + s3api on loopback.  See the module docstring."""

    region = REGION
    access_key, secret_key = USERS[0]
    access_key2, secret_key2 = USERS[1]

    def __init__(self, base_dir=None):
        self.own_dir = base_dir is None
        if base_dir is None:
            base_dir = tempfile.mkdtemp(prefix="firehose-s3-", dir=xattr_capable_parent())
        self.base_dir = os.path.abspath(base_dir)
        self.etc_dir = os.path.join(self.base_dir, "etc")
        self.log_dir = os.path.join(self.base_dir, "log")
        self.data_dir = None      # srv: holds d1
        self.data_dir_own = False  # data dir outside base_dir (removed with it)
        self.ports = {}
        self.pids = {}
        self.user = calling_user()
        self._procs = {}
        self.start_seconds = None
        self._read_state()

    # -- state -------------------------------------------------------------

    @property
    def port(self):
        return self.ports.get("proxy")

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port if self.port else None

    def _state_path(self):
        return os.path.join(self.base_dir, STATE_FILE)

    def _read_state(self):
        try:
            with open(self._state_path()) as f:
                st = json.load(f)
        except FileNotFoundError:
            return
        self.ports = {k: int(v) for k, v in st.get("ports", {}).items()}
        self.pids = {k: int(v) for k, v in st.get("pids", {}).items()}
        self.data_dir = st.get("data_dir")
        self.data_dir_own = st.get("data_dir_own", False)

    def _write_state(self):
        st = {"ports": self.ports, "pids": self.pids, "data_dir": self.data_dir,
              "data_dir_own": self.data_dir_own, "endpoint": self.endpoint,
              "access_key": self.access_key, "secret_key": self.secret_key,
              "region": self.region, "users": [list(u) for u in USERS]}
        tmp = self._state_path() + ".tmp"
        with open(tmp, "w") as f:
            json.dump(st, f, indent=1)
        os.replace(tmp, self._state_path())

    # -- configuration -------------------------------------------------------

    def _prepare_dirs(self):
        os.makedirs(self.etc_dir, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        if self.data_dir is None:
            if supports_xattr(self.base_dir):
                self.data_dir = os.path.join(self.base_dir, "srv")
            else:
                self.data_dir = tempfile.mkdtemp(prefix="firehose-s3-data-",
                                                 dir=xattr_capable_parent())
                self.data_dir_own = True
        os.makedirs(os.path.join(self.data_dir, "d1"), exist_ok=True)

    def _common(self, kind):
        return [("bind_ip", "127.0.0.1"), ("bind_port", self.ports[kind]),
                ("bind_timeout", 5), ("workers", 0), ("user", self.user),
                ("swift_dir", self.etc_dir), ("devices", self.data_dir),
                ("mount_check", "false"), ("disable_fallocate", "true"),
                ("log_name", "s3-" + kind), ("log_level", "INFO"),
                ("log_udp_host", SYSLOG_SINK[0]), ("log_udp_port", SYSLOG_SINK[1])]

    def _write_configs(self):
        with open(os.path.join(self.etc_dir, "swift.conf"), "w") as f:
            f.write(_ini([
                ("swift-hash", [("swift_hash_path_suffix", "firehose-test"),
                                ("swift_hash_path_prefix", "firehose-test")]),
                ("storage-policy:0", [("name", "Policy-0"), ("default", "yes")]),
            ]))
        for kind in ("account", "container", "object"):
            sections = [
                ("DEFAULT", self._common(kind)),
                ("pipeline:main", [("pipeline", "healthcheck %s-server" % kind)]),
                ("app:%s-server" % kind, [("use", "egg:swift#%s" % kind)]),
                ("filter:healthcheck", [("use", "egg:swift#healthcheck")]),
            ]
            if kind == "object":
                sections[2][1].append(("replication_server", "false"))
            with open(os.path.join(self.etc_dir, "%s-server.conf" % kind), "w") as f:
                f.write(_ini(sections))
        pipeline = ("catch_errors gatekeeper healthcheck proxy-logging cache listing_formats "
                    "s3api tempauth copy slo dlo proxy-logging proxy-server")
        simple = ["catch_errors", "gatekeeper", "healthcheck", "listing_formats",
                  "copy", "slo", "dlo"]
        sections = [
            ("DEFAULT", self._common("proxy")),
            ("pipeline:main", [("pipeline", pipeline)]),
            ("app:proxy-server", [("use", "egg:swift#proxy"),
                                  ("account_autocreate", "true")]),
            ("filter:s3api", [("use", "egg:swift#s3api"), ("location", REGION),
                              ("storage_domain", "localhost"),
                              ("min_segment_size", 5242880)]),
            ("filter:tempauth", [("use", "egg:swift#tempauth")] +
             [("user_%s" % ak.replace(":", "_"), "%s .admin" % sk) for ak, sk in USERS]),
            # tempauth needs the cache filter; no memcached runs.  CRITICAL
            # keeps the per-request "connection refused" out of the log.
            ("filter:cache", [("use", "egg:swift#memcache"),
                              ("memcache_servers", "127.0.0.1:%d" % self.ports["memcache"]),
                              ("set log_level", "CRITICAL")]),
            ("filter:proxy-logging", [("use", "egg:swift#proxy_logging")]),
        ] + [("filter:%s" % n, [("use", "egg:swift#%s" % n)]) for n in simple]
        with open(os.path.join(self.etc_dir, "proxy-server.conf"), "w") as f:
            f.write(_ini(sections))

    # -- processes -----------------------------------------------------------

    def _conf_path(self, kind):
        return os.path.join(self.etc_dir, "%s-server.conf" % kind)

    def _spawn(self, kind):
        log = open(os.path.join(self.log_dir, "%s.log" % kind), "wb")
        try:
            p = subprocess.Popen(
                [SYSTEM_PYTHON, "%s/swift-%s-server" % (SWIFT_BIN, kind),
                 self._conf_path(kind), "-v"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=server_env(), cwd="/", start_new_session=True)
        finally:
            log.close()
        self._procs[kind] = p
        self.pids[kind] = p.pid

    def _build_rings(self):
        return subprocess.Popen(
            [SYSTEM_PYTHON, "-c", RING_SCRIPT, self.etc_dir] +
            [str(self.ports[k]) for k in ("account", "container", "object")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=server_env())

    def _alive(self, kind):
        p = self._procs.get(kind)
        if p is not None:
            return p.poll() is None
        return _pid_is_ours(self.pids.get(kind), self._conf_path(kind))

    def _healthy(self, kind):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthcheck" % self.ports[kind],
                                        timeout=2) as r:
                return r.status == 200 and r.read() == b"OK"
        except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
            return False

    def log_text(self, kind="proxy", tail=None):
        try:
            with open(os.path.join(self.log_dir, "%s.log" % kind), errors="replace") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-tail:] if tail else lines)

    def is_running(self):
        return bool(self.pids) and all(self._alive(k) for k in SERVERS)

    def start(self, timeout=30.0, attempts=3):
        """Start the servers.  A server that ran before (stopped with
        remove=False, in this object or in the same directory) comes back on
        the same ports, so the endpoint stays valid ("server was down"
        tests), with its buckets and objects."""
        if swift_installed():
            raise S3ServerError(swift_installed())
        if self.is_running():
            return self
        t0 = time.monotonic()
        reuse = all(self.ports.get(k) for k in SERVERS + ("memcache",))
        for attempt in range(attempts):
            try:
                self._start_once(timeout, reuse)
                break
            except _PortClash as e:
                self._kill_all()
                if reuse or attempt == attempts - 1:
                    raise S3ServerError(str(e))
        self.start_seconds = time.monotonic() - t0
        return self

    def restart(self, timeout=30.0):
        """stop(remove=False) + start(): same ports, same data."""
        self.stop(remove=False)
        return self.start(timeout=timeout)

    def _start_once(self, timeout, reuse_ports=False):
        self._prepare_dirs()
        # memcache port: a free port nothing listens on (no memcached runs)
        if not reuse_ports:
            self.ports = {k: free_port() for k in SERVERS + ("memcache",)}
        self.pids = {}
        self._procs = {}
        self._write_configs()
        for kind in ("account", "container", "object"):
            for ext in (".builder", ".ring.gz"):
                try:
                    os.unlink(os.path.join(self.etc_dir, kind + ext))
                except FileNotFoundError:
                    pass
        # The storage servers do not read the rings: start them while the
        # rings are built; the proxy needs the rings.
        rings = self._build_rings()
        for kind in ("account", "container", "object"):
            self._spawn(kind)
        out, _ = rings.communicate(timeout=60)
        if rings.returncode != 0:
            self._kill_all()
            raise S3ServerError("building the rings failed:\n%s" % out.decode(errors="replace"))
        self._spawn("proxy")
        self._write_state()
        deadline = time.monotonic() + timeout
        pending = list(SERVERS)
        while pending:
            for kind in list(pending):
                if not self._alive(kind):
                    text = self.log_text(kind, tail=30)
                    if "Address already in use" in text or "Could not bind" in text:
                        raise _PortClash("%s server could not bind port %d"
                                         % (kind, self.ports[kind]))
                    self._kill_all()
                    raise S3ServerError("swift %s server exited during start-up; log %s:\n%s"
                                        % (kind, os.path.join(self.log_dir, kind + ".log"), text))
                if self._healthy(kind):
                    pending.remove(kind)
            if not pending:
                break
            if time.monotonic() > deadline:
                self._kill_all()
                raise S3ServerError("swift servers %s not healthy after %ss; logs in %s"
                                    % (", ".join(pending), timeout, self.log_dir))
            time.sleep(0.05)

    def _kill_all(self, timeout=5.0):
        for kind, pid in self.pids.items():
            if self._alive(kind):
                try:
                    os.kill(pid, signal.SIGTERM)
                    os.kill(pid, signal.SIGCONT)   # in case a test SIGSTOPped it
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for kind, pid in self.pids.items():
            while self._alive(kind) and time.monotonic() < deadline:
                if kind in self._procs:
                    try:
                        self._procs[kind].wait(0.05)
                    except subprocess.TimeoutExpired:
                        pass
                else:
                    time.sleep(0.05)
            if self._alive(kind):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                if kind in self._procs:
                    self._procs[kind].wait()
        self._procs = {}

    def stop(self, remove=None):
        """Stop the four servers.  remove (default: when the directory was
        created by us) deletes the directory and the data."""
        self._kill_all()
        self.pids = {}
        if remove is None:
            remove = self.own_dir
        if remove:
            self.remove()
        elif os.path.isdir(self.base_dir):
            self._write_state()

    def remove(self):
        if self.data_dir_own and self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def memory_kib(self):
        """Resident set size of the four servers, KiB."""
        total = 0
        for pid in self.pids.values():
            try:
                with open("/proc/%d/status" % pid) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
            except FileNotFoundError:
                pass
        return total

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- clients -------------------------------------------------------------

    def aws_config_path(self):
        """An AWS config file forcing path-style addressing."""
        path = os.path.join(self.base_dir, "aws-config")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write("[default]\nregion = %s\ns3 =\n    addressing_style = path\n" % REGION)
        return path

    def env(self, access_key=None, secret_key=None, base=None):
        """Environment for /usr/bin/aws (or boto3) against this server."""
        env = dict(os.environ if base is None else base)
        for k in list(env):
            if k.startswith("AWS_"):
                del env[k]
        env.update({
            "AWS_ACCESS_KEY_ID": access_key or self.access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key or self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_CONFIG_FILE": self.aws_config_path(),
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
        })
        return env

    def aws(self, *args, access_key=None, secret_key=None, check=False, input=None,
            timeout=120):
        """Run /usr/bin/aws --endpoint-url <endpoint> args...; CompletedProcess
        (stdout/stderr bytes)."""
        return subprocess.run([AWS, "--endpoint-url", self.endpoint] + list(args),
                              env=self.env(access_key, secret_key), input=input,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              check=check, timeout=timeout)

    def client(self, access_key=None, secret_key=None, **config):
        """A boto3 S3 client (python3-boto3), path style, no retries."""
        import boto3
        from botocore.config import Config
        cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                     signature_version="s3v4", **config)
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key, config=cfg)


class _PortClash(Exception):
    pass


def _pid_is_ours(pid, conf_path):
    """True if pid is alive and is the Swift server started with conf_path
    (guards against a recycled pid)."""
    if not pid:
        return False
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    except OSError as e:
        if e.errno in (errno.ESRCH, errno.ENOENT):
            return False
        raise
    return state != "Z" and conf_path.encode() in argv


def start(base_dir=None, timeout=30.0):
    """Start a server (in a fresh temp dir unless base_dir); returns the S3Server."""
    return S3Server(base_dir).start(timeout=timeout)


def main(argv=None):
    ap = argparse.ArgumentParser(description="signature-checking S3 server (Swift + s3api) "
                                 "for the firehose tests")
    ap.add_argument("action", choices=["start", "stop", "status"])
    ap.add_argument("--dir", required=True, help="server directory (created if missing)")
    ap.add_argument("--rm", action="store_true", help="with stop: remove the directory")
    ap.add_argument("--timeout", type=float, default=30.0, help="start-up timeout, seconds")
    args = ap.parse_args(argv)
    try:
        if args.action == "start":
            os.makedirs(args.dir, exist_ok=True)
            s = S3Server(args.dir).start(timeout=args.timeout)
        else:
            if not os.path.exists(os.path.join(args.dir, STATE_FILE)):
                print("no S3 server in %s" % args.dir, file=sys.stderr)
                return 0 if args.action == "stop" else 1
            s = S3Server(args.dir)
            if args.action == "stop":
                s.stop(remove=args.rm)
                return 0
            running = s.is_running()
            print("RUNNING=%d" % running)
            if not running:
                return 1
    except S3ServerError as e:
        print("s3server: %s" % e, file=sys.stderr)
        return 1
    print("S3_ENDPOINT=%s S3_ACCESS_KEY=%s S3_SECRET_KEY=%s S3_REGION=%s"
          % (s.endpoint, s.access_key, s.secret_key, s.region))
    return 0


if __name__ == "__main__":
    sys.exit(main())
