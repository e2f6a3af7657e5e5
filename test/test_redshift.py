"""Destination 'redshift' (issue 12, section 2): Firehose's way into Redshift,
objects and manifests in S3, then COPY ... MANIFEST over a libpq connection.

Redshift itself cannot run here.  The S3 stage runs against the real,
signature-checking S3 server (test/s3server.py): objects and manifests are
read back with boto3.  The COPY goes to a second, real PostgreSQL cluster
started by this module with log_statement = all: the exact statement it
received is read from its log (a statement that does not parse is logged
as the STATEMENT of its error).  PostgreSQL refuses Redshift's COPY
(CREDENTIALS, MANIFEST: a syntax error, SQLSTATE 42601), so every COPY
here fails: that is the path tested to its end, retries until
retry_duration, then the manifest of the skipped objects under
errors/manifests/ and the records in failed_records with its key.  A COPY
that succeeds was not run (README, destination redshift).
"""

import gzip
import json
import os
import re
import socket
import uuid

import pytest

import pgcluster
from helpers import FAST, failed, put_texts

boto3 = pytest.importorskip("boto3", reason="python3-boto3 is not installed")

ROLE = "arn:aws:iam::123456789012:role/FirehoseLoader"
DATE_DIRS = r"\d{4}/\d{2}/\d{2}/\d{2}/"
NAME_RE = r"(?P<name>%s-1-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9a-f-]{36})"


@pytest.fixture(scope="module")
def target():
    """The cluster playing Redshift: it logs every statement it receives."""
    c = pgcluster.Cluster(conf={"shared_preload_libraries": "", "log_statement": "all",
                                "log_min_messages": "warning"})
    c.start()
    yield c
    c.destroy()


@pytest.fixture
def tdb(target):
    name = "rs_%d_%s" % (os.getpid(), uuid.uuid4().hex[:8])
    target.psql('CREATE DATABASE "%s"' % name)
    target.psql("CREATE TABLE public.events (id bigint, name text)", db=name)
    yield name
    target.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


@pytest.fixture
def bucket(s3_server):
    client = s3_server.client()
    name = "rs-" + uuid.uuid4().hex[:20]
    client.create_bucket(Bucket=name)
    return client, name


def s3_options(s3_server, bucket, **opts):
    o = {"bucket": bucket, "endpoint": s3_server.endpoint, "path_style": True,
         "region": s3_server.region, "access_key_id": s3_server.access_key,
         "secret_access_key": s3_server.secret_key, "prefix": "rs/"}
    o.update(opts)
    return o


def make_stream(db, name, s3, target, tdb, **opts):
    o = dict(FAST, s3=s3, table="public.events",
             conninfo="host=127.0.0.1 port=%d user=%s dbname=%s" % (target.port, target.user, tdb),
             iam_role=ROLE, copy_options="JSON 'auto' TIMEFORMAT 'auto'", retry_duration=3)
    o.update(opts)
    db.execute("SELECT firehose.create_stream(%s, 'redshift', %s::jsonb)", (name, json.dumps(o)))


def keys(client, bucket, prefix=""):
    out = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return sorted(out)


def get(client, bucket, key):
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def layout(client, bucket, stream):
    """The bucket's keys by folder: data objects, manifests, errors manifests,
    each {name: key} (name: <stream>-1-<time>-<uuid>, shared by the three)."""
    out = {"objects": {}, "manifests": {}, "errors": {}}
    pats = {"manifests": r"rs/manifests/%s%s$", "errors": r"rs/errors/manifests/%s%s$",
            "objects": r"rs/%s%s(?P<ext>\.gz)?$"}
    for k in keys(client, bucket):
        for what, pat in pats.items():
            m = re.match(pat % (DATE_DIRS, NAME_RE % re.escape(stream)), k)
            if m:
                out[what][m.group("name")] = k
                break
        else:
            raise AssertionError("unexpected key %r" % k)
    return out


def copy_statements(target, since):
    """The COPY statements the target received, in order, from log offset
    since: logged by log_statement when they parse, else (PostgreSQL's
    syntax error at CREDENTIALS) as the STATEMENT of their error, once each."""
    return re.findall(r"(?:LOG:  statement: |STATEMENT:  )(COPY .*)", target.log_text()[since:])


def put_with_rollbacks(db, stream, n, tag):
    """n records in committed transactions, and as many rolled back: the
    committed ones, as text."""
    committed = []
    for t in range(4):
        texts = [json.dumps({"id": i, "name": "%s-%d" % (tag, i)})
                 for i in range(t * n // 4, (t + 1) * n // 4)]
        conn = db.conn(autocommit=False)
        cur = conn.cursor()
        cur.execute("SELECT firehose.put_batch(%s, %s::text[])", (stream, texts))
        if t == 2:
            conn.rollback()
        else:
            conn.commit()
            committed += texts
        conn.close()
    return committed


def test_objects_manifests_copy_text_and_errors_manifests(db, target, tdb, s3_server, bucket):
    """The whole way of a part whose COPY keeps failing: the object (the
    committed records, each with its line feed), its manifest in Redshift's
    format, the exact COPY the target received, sent again until
    retry_duration ran out, then the manifest again under errors/manifests/
    and every committed record in failed_records with that key."""
    client, b = bucket
    since = len(target.log_text())
    make_stream(db, "rs", s3_options(s3_server, b), target, tdb, columns=["id", "Name"])
    committed = put_with_rollbacks(db, "rs", 400, "a")
    assert db.flush("rs", "60s") is True

    got = layout(client, b, "rs")
    assert got["objects"], "no object was written"
    # one manifest per object, and the same again under errors/
    assert set(got["manifests"]) == set(got["objects"]) == set(got["errors"])
    lines = []
    for name, okey in got["objects"].items():
        manifest = json.loads(get(client, b, got["manifests"][name]))
        assert manifest == {"entries": [{"url": "s3://%s/%s" % (b, okey), "mandatory": True}]}
        assert json.loads(get(client, b, got["errors"][name])) == manifest
        body = get(client, b, okey).decode()
        assert body.endswith("\n")
        lines += body.split("\n")[:-1]
    assert sorted(lines) == sorted(committed)

    # the statements, exactly; each part's sent more than once (retried)
    stmts = copy_statements(target, since)
    expected = {}
    for name, mkey in got["manifests"].items():
        expected[name] = ("COPY \"public\".\"events\" (\"id\", \"Name\") FROM 's3://%s/%s' "
                          "CREDENTIALS 'aws_iam_role=%s' MANIFEST JSON 'auto' TIMEFORMAT 'auto'"
                          % (b, mkey, ROLE))
    assert set(stmts) == set(expected.values()), stmts[:3]
    for text in expected.values():
        assert stmts.count(text) >= 2, "the COPY was not retried: %r" % text

    # every committed record failed once, naming its errors/ manifest
    rows = failed(db, "rs")
    assert sorted(r["data"].decode() for r in rows) == sorted(committed)
    by_data = {}
    for name, okey in got["objects"].items():
        for line in get(client, b, okey).decode().split("\n")[:-1]:
            by_data[line] = name
    for r in rows:
        assert r["error_code"] == "Redshift.SyntaxError"
        assert r["error_message"].startswith("COPY failed (SQLSTATE 42601): syntax error")
        url = "s3://%s/%s" % (b, got["errors"][by_data[r["data"].decode()]])
        assert "The manifest of the skipped objects is %s." % url in r["error_message"]
        assert r["attempts_made"] >= 2
    assert db.one("SELECT delivered_records FROM firehose.stream_status WHERE stream = 'rs'") == 0


def test_gzip_objects_and_retry_duration_zero(db, target, tdb, s3_server, bucket):
    """Objects gzip-compressed (.gz) for COPY ... GZIP; with retry_duration 0
    the COPY is sent once, as Firehose does not retry then."""
    client, b = bucket
    since = len(target.log_text())
    make_stream(db, "rz", s3_options(s3_server, b, compression="gzip"), target, tdb,
                copy_options="JSON 'auto' GZIP", retry_duration=0)
    texts = [json.dumps({"id": i, "name": "z%d" % i}) for i in range(50)]
    put_texts(db, "rz", texts)
    assert db.flush("rz", "60s") is True

    got = layout(client, b, "rz")
    assert set(got["manifests"]) == set(got["objects"]) == set(got["errors"])
    lines = []
    for name, okey in got["objects"].items():
        assert okey.endswith(".gz")
        manifest = json.loads(get(client, b, got["manifests"][name]))
        assert manifest["entries"] == [{"url": "s3://%s/%s" % (b, okey), "mandatory": True}]
        lines += gzip.decompress(get(client, b, okey)).decode().split("\n")[:-1]
    assert sorted(lines) == sorted(texts)
    stmts = copy_statements(target, since)
    assert sorted(stmts) == sorted(
        "COPY \"public\".\"events\" FROM 's3://%s/%s' CREDENTIALS 'aws_iam_role=%s' "
        "MANIFEST JSON 'auto' GZIP" % (b, k, ROLE) for k in got["manifests"].values())
    rows = failed(db, "rz")
    assert len(rows) == len(texts) and all(r["attempts_made"] == 1 for r in rows)


def test_key_credentials_in_the_copy_and_nowhere_else(db, cluster, target, tdb, s3_server,
                                                      bucket):
    """Access keys go into the COPY's CREDENTIALS (what Redshift needs to
    read the bucket), and into no view, error or log of the source
    database: not the keys, not the conninfo password."""
    client, b = bucket
    secret = "Rs/Secret+Key=" + uuid.uuid4().hex
    token = "Tok" + uuid.uuid4().hex
    password = "pw-" + uuid.uuid4().hex
    since = len(target.log_text())
    source_since = len(cluster.log_text())
    make_stream(db, "rk", s3_options(s3_server, b), target, tdb, iam_role=None,
                access_key_id="AKIAREDSHIFTCOPY", secret_access_key=secret,
                session_token=token, retry_duration=1,
                conninfo="host=127.0.0.1 port=%d user=%s password=%s dbname=%s"
                % (target.port, target.user, password, tdb))
    put_texts(db, "rk", [json.dumps({"id": 1, "name": "k"})])
    assert db.flush("rk", "60s") is True

    got = layout(client, b, "rk")
    (mkey,) = got["manifests"].values()
    stmts = copy_statements(target, since)
    assert stmts and set(stmts) == {
        "COPY \"public\".\"events\" FROM 's3://%s/%s' CREDENTIALS "
        "'aws_access_key_id=AKIAREDSHIFTCOPY;aws_secret_access_key=%s;token=%s' "
        "MANIFEST JSON 'auto' TIMEFORMAT 'auto'" % (b, mkey, secret, token)}

    seen = []
    for view in ("firehose.streams", "firehose.stream_status", "firehose.failed_records",
                 "firehose.deliveries"):
        seen.append(json.dumps(db.q("SELECT * FROM %s" % view), default=str))
    seen.append(cluster.log_text()[source_since:])
    text = "\n".join(seen)
    assert "Redshift.SyntaxError" in text     # the failure is there, the secrets are not
    for s in (secret, token, password, s3_server.secret_key):
        assert s not in text


def test_no_connection_is_retried_then_skipped(db, target, tdb, s3_server, bucket):
    """A cluster that cannot be reached: Redshift.ConnectionFailed, retried
    until retry_duration, then the errors/ manifest as for a failing COPY."""
    client, b = bucket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                       # nothing listens there now
    make_stream(db, "rc", s3_options(s3_server, b), target, tdb, retry_duration=1,
                conninfo="host=127.0.0.1 port=%d user=x dbname=dev connect_timeout=5" % port)
    texts = [json.dumps({"id": i}) for i in range(5)]
    put_texts(db, "rc", texts)
    assert db.flush("rc", "60s") is True

    got = layout(client, b, "rc")
    (name,) = got["errors"]
    rows = failed(db, "rc")
    assert sorted(r["data"].decode() for r in rows) == sorted(texts)
    for r in rows:
        assert r["error_code"] == "Redshift.ConnectionFailed"
        assert r["attempts_made"] >= 2
        assert r["error_message"].endswith(
            "The manifest of the skipped objects is s3://%s/%s." % (b, got["errors"][name]))
