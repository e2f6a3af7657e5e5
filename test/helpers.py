"""Small helpers shared by the integration tests."""

import json
import re
import socket
import time

# streams in tests deliver at once and retry fast
FAST = {"buffer_interval": 0, "retry_base": 50, "retry_max": 300}


def make_stream(db, name, url, **opts):
    """create_stream(name, 'http', FAST + url + opts)."""
    o = dict(FAST, url=url)
    o.update(opts)
    db.execute("SELECT firehose.create_stream(%s, 'http', %s::jsonb)", (name, json.dumps(o)))


def put_texts(db, stream, texts):
    return db.one("SELECT firehose.put_batch(%s, %s::text[])", (stream, list(texts)))


def flush(db, stream, timeout="60s"):
    assert db.flush(stream, timeout) is True, "flush(%s) timed out" % stream


def setting(pg, name):
    """current_setting(name) on a new connection (sees a reloaded config)."""
    c = pg()
    try:
        cur = c.cursor()
        cur.execute("SELECT current_setting(%s)", (name,))
        return cur.fetchone()[0]
    finally:
        c.close()


def refused(port):
    """True if nothing listens on the loopback port, False if a connection opens.

    A probe that lands while the server is closing its listening socket is reset
    instead of refused: that answers neither way, so it probes again."""
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return False
        except ConnectionRefusedError:
            return True
        except ConnectionResetError:
            time.sleep(0.02)
    raise AssertionError("port %d kept resetting connections" % port)


def worker_pids(pg, dbname):
    c = pg()
    try:
        cur = c.cursor()
        cur.execute("SELECT pid FROM pg_stat_activity "
                    "WHERE backend_type = 'firehose worker' AND datname = %s", (dbname,))
        return [x[0] for x in cur.fetchall()]
    finally:
        c.close()


def one_worker(pg, dbname, wait_until, other_than=None, timeout=20):
    """Wait until exactly one worker (not other_than) runs for dbname; its pid."""
    def check():
        pids = worker_pids(pg, dbname)
        return pids[0] if len(pids) == 1 and pids[0] != other_than else None
    return wait_until(check, timeout=timeout,
                      message="no (new) firehose worker for %s" % dbname)


FAILED_COLUMNS = ["id", "record_id", "data", "arrival_time", "first_attempt_at", "failed_at",
                  "attempts_made", "error_code", "error_message", "request_id"]


def failed(db, stream, order_by="id"):
    """The stream's firehose.failed_records rows as dicts (data as bytes,
    request_id as text), ordered by id or record_id."""
    assert order_by in ("id", "record_id")
    rows = db.q("SELECT id, record_id, data, arrival_time, first_attempt_at, failed_at, "
                "attempts_made, error_code, error_message, request_id::text "
                "FROM firehose.failed_records WHERE stream = %s ORDER BY " + order_by, (stream,))
    out = []
    for row in rows:
        d = dict(zip(FAILED_COLUMNS, row))
        d["data"] = bytes(d["data"])
        out.append(d)
    return out


def stored_errors(db, stream):
    """Every error text stored for stream: deliveries, failed_records, stream_status."""
    texts = [e for (e,) in db.q("SELECT error FROM firehose.deliveries WHERE stream = %s",
                                (stream,))]
    texts += [f["error_message"] for f in failed(db, stream)]
    texts.append(db.one("SELECT last_error FROM firehose.stream_status WHERE stream = %s",
                        (stream,)))
    assert all(t for t in texts), texts
    return texts


def alter_system(pg, name, value=None):
    """ALTER SYSTEM SET name = value (RESET when value is None), then reload."""
    c = pg()
    try:
        cur = c.cursor()
        if value is None:
            cur.execute("ALTER SYSTEM RESET %s" % name)
        else:
            cur.execute("ALTER SYSTEM SET %s = %%s" % name, (str(value),))
        cur.execute("SELECT pg_reload_conf()")
    finally:
        c.close()


def memory_kb(pid):
    """The kB figures of /proc/<pid>/status (VmHWM, VmRSS, RssFile, ...).  The
    file is world-readable: a test run as root reads the postgres user's
    processes as well as its own."""
    with open("/proc/%d/status" % pid) as f:
        return {m.group(1): int(m.group(2))
                for m in re.finditer(r"^(\w+):\s+(\d+) kB", f.read(), re.M)}


def private_peak_mb(pid):
    """The worker's peak resident memory of its own (VmHWM less the shared and
    file-backed pages resident now, which only grow), in MiB."""
    kb = memory_kb(pid)
    return (kb["VmHWM"] - kb.get("RssFile", 0) - kb.get("RssShmem", 0)) / 1024
