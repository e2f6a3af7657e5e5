"""The S3 destination against a real, signature-checking S3 server.

The server is OpenStack Swift with s3api (test/s3server.py, the s3_server
fixture): it checks every AWS Signature V4, so a delivered object proves the
signer right.  Everything is read back with boto3 and compared byte for byte
(or as exact sets) with what was put.  Each test writes to its own bucket(s),
and its streams are dropped at the end.

Object keys follow Firehose (../shared/reference/firehose.md section 3.1):
<evaluated prefix><stream>-<version>-yyyy-MM-dd-HH-mm-ss-<uuid><ext>, the
default prefix yyyy/MM/dd/HH/, times in UTC unless time_zone is set, the time
being the arrival of the oldest record in the object.  Error records of a
failing http stream's S3 backup follow section 3.8.

Streams retry fast (retry_base 50 ms, retry_max 300 ms) and deliver at once
(buffer_interval 0), as in the other integration tests.
"""

import base64
import collections
import concurrent.futures
import datetime
import gzip
import hashlib
import io
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
import uuid

import psycopg2
import pytest

from helpers import FAST, failed, flush, make_stream, one_worker, put_texts

boto3 = pytest.importorskip("boto3", reason="python3-boto3 is not installed")
snappy = pytest.importorskip("snappy", reason="python3-snappy is not installed")
from botocore.exceptions import ClientError  # noqa: E402

MiB = 1024 * 1024
UTC = datetime.timezone.utc
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
RANDOM_RE = r"[0-9a-f]{8}-[0-9a-f]{2}"          # !{firehose:random-string}
HOUR_FOLDERS_RE = r"(?P<pY>\d{4})/(?P<pM>\d{2})/(?P<pd>\d{2})/(?P<pH>\d{2})/"
WRONG_SECRET = "not-the-secret"


# -- fixtures and helpers ----------------------------------------------------------

def new_bucket_name():
    return "fh-" + uuid.uuid4().hex[:24]


class S3Streams:
    """Creates buckets and s3 streams for one test; drops the streams after it."""

    def __init__(self, db, s3_server):
        self.db = db
        self.server = s3_server
        self.client = s3_server.client()
        self.names = []

    def bucket(self):
        name = new_bucket_name()
        self.client.create_bucket(Bucket=name)
        return name

    def options(self, bucket, **opts):
        """The s3 options for this server (path style, right keys), FAST, and opts."""
        o = dict(FAST, **self.target(bucket))
        o.update(opts)
        return o

    def target(self, bucket, **opts):
        """The destination options alone (for a backup's "s3" object)."""
        o = {"bucket": bucket, "endpoint": self.server.endpoint, "path_style": True,
             "region": self.server.region, "access_key_id": self.server.access_key,
             "secret_access_key": self.server.secret_key}
        o.update(opts)
        return o

    def stream(self, name, bucket, **opts):
        self.db.execute("SELECT firehose.create_stream(%s, 's3', %s::jsonb)",
                        (name, json.dumps(self.options(bucket, **opts))))
        self.names.append(name)
        return name

    def http_stream(self, name, url, **opts):
        make_stream(self.db, name, url, **opts)
        self.names.append(name)
        return name

    def keys(self, bucket, prefix=""):
        """Every key in bucket (under prefix), sorted."""
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return sorted(out)

    def get(self, bucket, key):
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def head(self, bucket, key):
        return self.client.head_object(Bucket=bucket, Key=key)

    def drop_all(self):
        for n in self.names:
            try:
                self.db.execute("SELECT firehose.drop_stream(%s, force => true)", (n,))
            except psycopg2.Error:
                pass


@pytest.fixture
def s3(db, s3_server):
    ctx = S3Streams(db, s3_server)
    try:
        yield ctx
    finally:
        ctx.drop_all()


class Window:
    """The UTC interval in which records were put (whole seconds, as keys have)."""

    def __init__(self):
        self.before = datetime.datetime.now(UTC).replace(tzinfo=None)
        self.after = None

    def close(self):
        self.after = datetime.datetime.now(UTC).replace(tzinfo=None)
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def check(self, t, offset_hours=0, what="key time"):
        off = datetime.timedelta(hours=offset_hours)
        lo = self.before.replace(microsecond=0) + off
        hi = self.after + off
        assert lo <= t <= hi, "%s %s not within [%s, %s]" % (what, t, lo, hi)

    def check_ms(self, ms, what):
        t = datetime.datetime.fromtimestamp(ms / 1000.0, UTC).replace(tzinfo=None)
        lo = self.before - datetime.timedelta(milliseconds=1)
        hi = self.after + datetime.timedelta(milliseconds=1)
        assert lo <= t <= hi, "%s %s (%d ms) not within [%s, %s]" % (what, t, ms, lo, hi)


def suffix_re(stream, version=r"\d+", ext=""):
    return (re.escape(stream) + r"-(?P<version>" + str(version) + r")-"
            r"(?P<ts>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})-(?P<uuid>" + UUID_RE + r")"
            + re.escape(ext))


def key_time(m):
    return datetime.datetime.strptime(m.group("ts"), "%Y-%m-%d-%H-%M-%S")


def parse_default_key(key, stream, version=1, ext="", prefix=""):
    """Check key is <prefix>yyyy/MM/dd/HH/<stream>-<version>-<time>-<uuid><ext> with the
    folders naming the hour of the suffix's time; return that time."""
    pattern = re.escape(prefix) + HOUR_FOLDERS_RE + suffix_re(stream, version, ext)
    m = re.fullmatch(pattern, key)
    assert m, "key %r does not match %r" % (key, pattern)
    t = key_time(m)
    assert (m.group("pY"), m.group("pM"), m.group("pd"), m.group("pH")) == \
        (t.strftime("%Y"), t.strftime("%m"), t.strftime("%d"), t.strftime("%H")), \
        "prefix hour differs from the suffix time in %r" % key
    return t


def joined(records, delimiter=b"\n"):
    return b"".join(r + delimiter for r in records)


def texts_bytes(texts):
    return [t.encode() for t in texts]


def deliveries(db, stream):
    cols = ["records", "bytes", "attempts", "http_status", "outcome", "error_code", "error"]
    return [dict(zip(cols, r)) for r in db.q(
        "SELECT records, bytes, attempts, http_status, outcome, error_code, error "
        "FROM firehose.deliveries WHERE stream = %s ORDER BY id", (stream,))]


def status(db, stream):
    cols = ["buffered_records", "in_flight_records", "delivered_records", "delivered_bytes",
            "failed_records", "failed_bytes", "incoming_records", "last_error_code",
            "last_error"]
    row = db.q("SELECT " + ", ".join(cols) + " FROM firehose.stream_status WHERE stream = %s",
               (stream,))[0]
    return dict(zip(cols, row))


def sample_texts(n, tag, seed=0, min_len=5, max_len=120):
    """n distinct, varied text records (no newline)."""
    rng = random.Random("%s-%d" % (tag, seed))
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 {}\":,.-_\u00e9\u2713"
    return ["%s-%05d-%s" % (tag, i, "".join(rng.choice(alphabet)
                                             for _ in range(rng.randint(min_len, max_len))))
            for i in range(n)]


# -- decompressors ---------------------------------------------------------------------

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def snappy_framed_decompress(body):
    """The snappy framing format (framing_format.txt), strictly: stream identifier
    first, compressed (0x00) / uncompressed (0x01) chunks of at most 65536 bytes
    with their masked CRC-32C checked, skippable chunks skipped.

    python3-snappy 0.5.3 (Debian 12) has snappy.StreamDecompressor, but its CRC
    code raises SystemError (PY_SSIZE_T_CLEAN) on Python 3.11, so the framing is
    read here and only the raw blocks go to snappy.uncompress."""
    assert crc32c(b"123456789") == 0xE3069283
    assert body[:10] == b"\xff\x06\x00\x00sNaPpY", "no snappy stream identifier: %r" % body[:10]
    pos, out = 0, []
    while pos < len(body):
        assert pos + 4 <= len(body), "truncated chunk header at %d" % pos
        kind = body[pos]
        length = int.from_bytes(body[pos + 1:pos + 4], "little")
        chunk = body[pos + 4:pos + 4 + length]
        assert len(chunk) == length, "truncated chunk at %d" % pos
        pos += 4 + length
        if kind == 0xFF:
            assert chunk == b"sNaPpY"
        elif kind in (0x00, 0x01):
            crc = int.from_bytes(chunk[:4], "little")
            data = snappy.uncompress(chunk[4:]) if kind == 0 else chunk[4:]
            assert len(data) <= 65536, "chunk of %d uncompressed bytes" % len(data)
            c = crc32c(data)
            masked = (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF
            assert masked == crc, "bad chunk CRC"
            out.append(bytes(data))
        elif 0x80 <= kind <= 0xFE:
            continue
        else:
            raise AssertionError("reserved unskippable chunk type 0x%02x" % kind)
    return b"".join(out)


def hadoop_snappy_decompress(body):
    out = io.BytesIO()
    snappy.hadoop_stream_decompress(io.BytesIO(body), out)
    return out.getvalue()


def zstd_decompress(body):
    p = subprocess.run(["zstd", "-d", "-q", "-c"], input=body, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, "zstd -d: %s" % p.stderr.decode(errors="replace")
    return p.stdout


DECOMPRESS = {
    "none": lambda b: b,
    "gzip": gzip.decompress,
    "zstd": zstd_decompress,
    "snappy": snappy_framed_decompress,
    "hadoop_snappy": hadoop_snappy_decompress,
}
EXTENSION = {"none": "", "gzip": ".gz", "zstd": ".zst", "snappy": ".snappy",
             "hadoop_snappy": ".hsnappy"}


# -- keys and bodies -------------------------------------------------------------------

def test_default_prefix_key_body_and_content_type(db, s3):
    b = s3.bucket()
    s3.stream("plain", b)
    texts = sample_texts(40, "plain") + ["", "h\u00e9llo \u2713 \"q\" \\ \t tab"]
    with Window() as w:
        assert put_texts(db, "plain", texts) == len(texts)
    flush(db, "plain")

    (key,) = s3.keys(b)
    w.check(parse_default_key(key, "plain"))
    assert s3.get(b, key) == joined(texts_bytes(texts))
    head = s3.head(b, key)
    assert head["ContentType"] == "application/octet-stream"
    assert head["ContentLength"] == sum(len(t.encode()) + 1 for t in texts)

    assert failed(db, "plain") == []
    (d,) = deliveries(db, "plain")
    assert (d["records"], d["outcome"], d["error_code"]) == (len(texts), "delivered", None)
    st = status(db, "plain")
    assert (st["delivered_records"], st["failed_records"], st["buffered_records"],
            st["in_flight_records"]) == (len(texts), 0, 0, 0)


def test_key_time_is_the_oldest_records_arrival(db, s3):
    """Records put 2 s apart in one object: the key has the first one's time."""
    b = s3.bucket()
    s3.stream("oldest", b)
    db.execute("SELECT firehose.pause('oldest')")
    with Window() as first:
        put_texts(db, "oldest", ["first"])
    time.sleep(2.2)
    with Window() as second:
        put_texts(db, "oldest", ["second"])
    db.execute("SELECT firehose.resume('oldest')")
    flush(db, "oldest")
    (key,) = s3.keys(b)
    t = parse_default_key(key, "oldest")
    first.check(t)
    assert t < second.before.replace(microsecond=0), (t, second.before)
    assert s3.get(b, key) == b"first\nsecond\n"


def test_prefix_without_timestamp_gets_hour_folders(db, s3):
    b = s3.bucket()
    s3.stream("folder", b, prefix="my/folder/", content_type="application/x-ndjson")
    with Window() as w:
        put_texts(db, "folder", ['{"a":1}', '{"a":2}'])
    flush(db, "folder")
    (key,) = s3.keys(b)
    w.check(parse_default_key(key, "folder", prefix="my/folder/"))
    assert s3.get(b, key) == b'{"a":1}\n{"a":2}\n'
    assert s3.head(b, key)["ContentType"] == "application/x-ndjson"


def test_custom_prefix_time_zone_extension_and_version(db, s3):
    b = s3.bucket()
    prefix = "logs/!{timestamp:yyyy-MM}/!{firehose:random-string}/!{timestamp:dd'T'HH}/"
    s3.stream("tokyo", b, prefix=prefix,
              error_output_prefix="errors/!{firehose:error-output-type}/",
              time_zone="Asia/Tokyo", file_extension=".json")
    assert db.one("SELECT version FROM firehose.streams WHERE name = 'tokyo'") == 1

    def check_key(key, version, ext, window):
        pattern = (r"logs/(?P<ym>\d{4}-\d{2})/(?P<rnd>" + RANDOM_RE + r")/"
                   r"(?P<d>\d{2})T(?P<H>\d{2})/" + suffix_re("tokyo", version, ext))
        m = re.fullmatch(pattern, key)
        assert m, "key %r does not match %r" % (key, pattern)
        t = key_time(m)
        # Asia/Tokyo is UTC+9 all year: prefix and suffix both in Tokyo time
        window.check(t, offset_hours=9)
        assert (m.group("ym"), m.group("d"), m.group("H")) == \
            (t.strftime("%Y-%m"), t.strftime("%d"), t.strftime("%H")), key
        return m.group("rnd")

    with Window() as w1:
        put_texts(db, "tokyo", ["t1", "t2"])
    flush(db, "tokyo")
    (k1,) = s3.keys(b)
    rnd1 = check_key(k1, 1, ".json", w1)
    assert s3.get(b, k1) == b"t1\nt2\n"

    db.execute("SELECT firehose.alter_stream('tokyo', %s::jsonb)",
               (json.dumps({"file_extension": ".ndjson"}),))
    assert db.one("SELECT version FROM firehose.streams WHERE name = 'tokyo'") == 2
    with Window() as w2:
        put_texts(db, "tokyo", ["t3"])
    flush(db, "tokyo")
    (k2,) = [k for k in s3.keys(b) if k != k1]
    rnd2 = check_key(k2, 2, ".ndjson", w2)
    assert "-2-" in k2 and k2.endswith(".ndjson")
    assert s3.get(b, k2) == b"t3\n"
    assert rnd1 != rnd2, "each object gets its own random string"
    assert s3.keys(b, "errors/") == []


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd", "snappy", "hadoop_snappy"])
def test_compression(db, s3, compression):
    b = s3.bucket()
    name = "c_" + compression
    s3.stream(name, b, compression=compression)
    # > 64 KiB so that snappy's framing needs several chunks; repetitive enough to shrink
    texts = sample_texts(600, "comp", max_len=60) + ["x" * 5000] * 3
    with Window() as w:
        put_texts(db, name, texts)
    flush(db, name)
    (key,) = s3.keys(b)
    w.check(parse_default_key(key, name, ext=EXTENSION[compression]))
    body = s3.get(b, key)
    plain = joined(texts_bytes(texts))
    if compression != "none":
        assert body != plain and len(body) < len(plain)
    got = DECOMPRESS[compression](body)
    # byte for byte the records, each followed by "\n" (their order within the
    # object is test_records_of_one_put_batch_keep_their_order's business)
    assert len(got) == len(plain)
    assert got.endswith(b"\n")
    assert sorted(got[:-1].split(b"\n")) == sorted(texts_bytes(texts))
    assert failed(db, name) == []


def test_records_of_one_put_batch_keep_their_order(db, s3):
    """One put_batch of records of varied length: the object holds them in the
    order they were put (heap pages with free space must not reorder them)."""
    b = s3.bucket()
    s3.stream("order", b)
    texts = sample_texts(3000, "comp", max_len=60)
    put_texts(db, "order", texts)
    flush(db, "order")
    (key,) = s3.keys(b)
    got = s3.get(b, key)[:-1].split(b"\n")
    assert sorted(got) == sorted(texts_bytes(texts))
    first = next((i for i, (g, t) in enumerate(zip(got, texts_bytes(texts))) if g != t), None)
    assert first is None, "records out of order from index %d: %r where %r was put" % (
        first, got[first][:20], texts[first][:20])


def test_file_extension_overrides_compression_default(db, s3):
    b = s3.bucket()
    s3.stream("gzext", b, compression="gzip", file_extension=".json.gz")
    put_texts(db, "gzext", ["a", "b"])
    flush(db, "gzext")
    (key,) = s3.keys(b)
    parse_default_key(key, "gzext", ext=".json.gz")
    assert gzip.decompress(s3.get(b, key)) == b"a\nb\n"


def test_delimiter_none_and_custom(db, s3):
    b = s3.bucket()
    s3.stream("nodelim", b, delimiter="none", prefix="nodelim/")
    s3.stream("customdelim", b, delimiter="|\r\n", prefix="custom/")
    texts = ['{"n":1}', '{"n":2}', "", '{"n":3}']
    put_texts(db, "nodelim", texts)
    put_texts(db, "customdelim", texts)
    flush(db, "nodelim")
    flush(db, "customdelim")
    (k1,) = s3.keys(b, "nodelim/")
    (k2,) = s3.keys(b, "custom/")
    parse_default_key(k1, "nodelim", prefix="nodelim/")
    parse_default_key(k2, "customdelim", prefix="custom/")
    assert s3.get(b, k1) == b'{"n":1}{"n":2}{"n":3}'
    assert s3.get(b, k2) == b'{"n":1}|\r\n{"n":2}|\r\n|\r\n{"n":3}|\r\n'


def test_buffer_size_splits_into_objects(db, s3):
    b = s3.bucket()
    s3.stream("split", b, buffer_size=1000)
    texts = ["s%03d-" % i + "y" * 95 for i in range(50)]      # 100 bytes each
    with Window() as w:
        put_texts(db, "split", texts)
    flush(db, "split")
    keys = s3.keys(b)
    assert len(keys) >= 5
    seen = []
    for k in keys:
        w.check(parse_default_key(k, "split"))
        body = s3.get(b, k)
        assert body.endswith(b"\n")
        recs = body[:-1].split(b"\n")
        assert sum(len(r) for r in recs) <= 1000, "object %s has more than buffer_size" % k
        assert recs == sorted(recs), "records within an object keep their order"
        seen += recs
    assert sorted(seen) == sorted(texts_bytes(texts))
    assert len({re.search(UUID_RE, k).group(0) for k in keys}) == len(keys)


def test_last_part_runs_over_buffer_size_rather_than_leave_a_crumb(db, s3):
    """buffer_size is a hint for S3: a batch a little over it (up to a quarter,
    what continuing puts leave in a size-triggered cut) is one object, not a
    full one and a small one; a batch further over splits at buffer_size."""
    b = s3.bucket()
    s3.stream("over", b, buffer_size=1000)

    def bodies(keys):
        return sorted((s3.get(b, k)[:-1].split(b"\n") for k in keys), key=len, reverse=True)

    twelve = ["a%03d-" % i + "z" * 95 for i in range(12)]       # 1200 bytes, one commit
    put_texts(db, "over", twelve)
    flush(db, "over")
    first = set(s3.keys(b))
    assert bodies(first) == [texts_bytes(twelve)]

    thirteen = ["b%03d-" % i + "z" * 95 for i in range(13)]     # 1300 bytes: over by more
    put_texts(db, "over", thirteen)
    flush(db, "over")
    assert [len(x) for x in bodies(set(s3.keys(b)) - first)] == [10, 3]


def test_multipart_upload(db, s3):
    b = s3.bucket()
    s3.stream("multi", b, buffer_size=64 * MiB, max_record_size=2 * MiB,
              multipart_threshold=5 * MiB, multipart_part_size=5 * MiB)
    rng = random.Random(12)
    texts = [base64.b64encode(rng.randbytes(MiB * 3 // 4)).decode() for _ in range(12)]
    assert all(len(t) == MiB for t in texts)
    with Window() as w:
        assert put_texts(db, "multi", texts) == 12
    flush(db, "multi", timeout="120s")
    (key,) = s3.keys(b)
    w.check(parse_default_key(key, "multi"))
    body = s3.get(b, key)
    assert len(body) == 12 * (MiB + 1)
    assert body == joined(texts_bytes(texts))
    etag = s3.head(b, key)["ETag"].strip('"')
    # 12 MiB + 12 bytes in 5 MiB parts: 5 + 5 + 2
    assert etag.endswith("-3"), "not a 3-part multipart upload: ETag %s" % etag
    assert s3.client.list_multipart_uploads(Bucket=b).get("Uploads", []) == []
    assert failed(db, "multi") == []
    assert [d["outcome"] for d in deliveries(db, "multi")] == ["delivered"]


def test_worker_killed_with_an_upload_in_flight_loses_nothing(db, s3, s3_server, pg, wait_until):
    """The worker dies while its multipart upload hangs (the S3 proxy is
    stopped): the next worker cuts the records anew and uploads them.  Nothing
    is lost or failed, and the records are in S3 once: the dead worker's
    request never completed (at most its CreateMultipartUpload is left,
    incomplete, for the bucket's lifecycle rule to abort)."""
    b = s3.bucket()
    s3.stream("killed", b, buffer_size=64 * MiB, max_record_size=2 * MiB,
              multipart_threshold=5 * MiB, multipart_part_size=5 * MiB)
    rng = random.Random(7)
    texts = [base64.b64encode(rng.randbytes(MiB * 3 // 4)).decode() for _ in range(8)]
    proxy = s3_server.pids["proxy"]
    pid = one_worker(pg, db.dbname, wait_until)
    os.kill(proxy, signal.SIGSTOP)
    try:
        put_texts(db, "killed", texts)
        wait_until(lambda: status(db, "killed")["in_flight_records"] == 8, timeout=30,
                   message="the upload did not start")
        assert db.one("SELECT pg_terminate_backend(%s)", (pid,)) is True
        one_worker(pg, db.dbname, wait_until, other_than=pid)
    finally:
        os.kill(proxy, signal.SIGCONT)
    flush(db, "killed", timeout="120s")
    (key,) = s3.keys(b)
    assert s3.get(b, key) == joined(texts_bytes(texts))
    assert failed(db, "killed") == []
    st = status(db, "killed")
    assert (st["delivered_records"], st["failed_records"], st["buffered_records"],
            st["in_flight_records"]) == (8, 0, 0, 0)
    assert [d["outcome"] for d in deliveries(db, "killed")] == ["delivered"]
    assert len(s3.client.list_multipart_uploads(Bucket=b).get("Uploads", [])) <= 1


def test_below_multipart_threshold_is_one_put(db, s3):
    b = s3.bucket()
    s3.stream("single", b, multipart_threshold=5 * MiB, multipart_part_size=5 * MiB,
              max_record_size=2 * MiB, buffer_size=64 * MiB)
    texts = ["z" * (MiB - 1)] * 4
    put_texts(db, "single", texts)
    flush(db, "single")
    (key,) = s3.keys(b)
    body = s3.get(b, key)
    assert body == joined(texts_bytes(texts))
    assert s3.head(b, key)["ETag"].strip('"') == hashlib.md5(body).hexdigest()


# -- credentials -------------------------------------------------------------------

def test_session_token_delivery(db, s3, cluster):
    """With a session token set the request carries X-Amz-Security-Token, signed.
    Swift's s3api does not check tokens against an STS, so this shows only that a
    signed request with a token is accepted (the token is part of the signature:
    test_s3server.py shows that altering it breaks the signature)."""
    b = s3.bucket()
    token = "FwoGZXIvYXdzEXAMPLE//token+with/special=chars"
    s3.stream("tok", b, session_token=token)
    put_texts(db, "tok", ["with-token"])
    flush(db, "tok")
    (key,) = s3.keys(b)
    assert s3.get(b, key) == b"with-token\n"
    assert failed(db, "tok") == []
    opts = db.one("SELECT options::text FROM firehose.streams WHERE name = 'tok'")
    assert token not in opts, opts
    assert token not in cluster.log_text()


def test_streams_view_redacts_s3_secrets(db, s3):
    b = s3.bucket()
    s3.stream("red", b, secret_access_key="very-secret-1", session_token="very-secret-2",
              access_key_id="AKIA-not-secret")
    opts = db.one("SELECT options FROM firehose.streams WHERE name = 'red'")
    text = json.dumps(opts)
    assert "very-secret" not in text, text
    assert opts["secret_access_key"] == "********"
    assert opts["session_token"] == "********"
    assert opts["bucket"] == b


def _server_environ(db):
    """The postmaster's environment (a backend's own /proc/self/environ is
    overwritten by its process title; the postmaster's is intact)."""
    stat = bytes(db.one("SELECT pg_read_binary_file('/proc/self/stat')")).decode()
    ppid = int(stat.rsplit(")", 1)[1].split()[1])
    raw = bytes(db.one("SELECT pg_read_binary_file(%s)", ("/proc/%d/environ" % ppid,)))
    return dict(kv.split("=", 1) for kv in raw.decode(errors="replace").split("\0") if "=" in kv)


def test_environment_credentials(db, s3):
    """credentials 'environment': the keys come from the server's environment
    (AWS_ACCESS_KEY_ID, ...).  When the cluster was started with the test
    server's keys the records arrive; without any AWS keys nothing is written
    and every record ends in failed_records."""
    env = _server_environ(db)
    b = s3.bucket()
    opts = s3.options(b, credentials="environment", retry_duration=1)
    del opts["access_key_id"], opts["secret_access_key"]
    db.execute("SELECT firehose.create_stream('envcred', 's3', %s::jsonb)", (json.dumps(opts),))
    s3.names.append("envcred")
    put_texts(db, "envcred", ["e1", "e2"])
    flush(db, "envcred")
    if env.get("AWS_ACCESS_KEY_ID") == s3.server.access_key and \
            env.get("AWS_SECRET_ACCESS_KEY") == s3.server.secret_key:
        (key,) = s3.keys(b)
        assert s3.get(b, key) == b"e1\ne2\n"
        assert failed(db, "envcred") == []
    elif "AWS_ACCESS_KEY_ID" not in env and "AWS_SECRET_ACCESS_KEY" not in env:
        assert s3.keys(b) == []
        rows = failed(db, "envcred")
        assert [r["data"] for r in rows] == [b"e1", b"e2"]
        assert all(r["error_code"] and r["error_message"] for r in rows), rows
    else:
        pytest.skip("the server's environment has other AWS keys")


# -- failures ------------------------------------------------------------------------

def test_wrong_secret_fails_at_once(db, s3):
    """A 403 SignatureDoesNotMatch fails its records at the first attempt
    instead of being retried for retry_duration.  The puts are separate
    commits, which the worker may cut into one batch or several (it wakes at
    each commit): every attempt made must be a single failed one."""
    b = s3.bucket()
    retry_s = 40
    s3.stream("badsig", b, secret_access_key=WRONG_SECRET, retry_duration=retry_s)
    texts = ["w%d" % i for i in range(7)]
    ids = [db.one("SELECT firehose.put('badsig', %s::text)", (t,)) for t in texts]
    flush(db, "badsig", timeout="%ds" % (retry_s + 30))
    assert s3.keys(b) == []
    rows = failed(db, "badsig", order_by="record_id")
    assert [r["data"] for r in rows] == texts_bytes(texts)
    assert [r["record_id"] for r in rows] == ids
    for r in rows:
        assert r["error_code"] == "S3.SignatureDoesNotMatch"
        assert r["error_message"] and "signature" in r["error_message"].lower()
        assert r["attempts_made"] == 1, "a 403 SignatureDoesNotMatch is not retried"
        # a retried failure would end only after retry_duration
        spent = (r["failed_at"] - r["first_attempt_at"]).total_seconds()
        assert spent < retry_s / 2, "failed %.1f s after the first attempt" % spent
    ds = deliveries(db, "badsig")
    assert ds and sum(d["records"] for d in ds) == len(texts)
    for d in ds:
        assert (d["outcome"], d["error_code"], d["attempts"], d["http_status"]) == \
            ("failed", "S3.SignatureDoesNotMatch", 1, 403)
    st = status(db, "badsig")
    assert (st["failed_records"], st["delivered_records"]) == (7, 0)
    assert st["last_error_code"] == "S3.SignatureDoesNotMatch"
    assert WRONG_SECRET not in (st["last_error"] or "")


def test_missing_bucket_fails_at_once(db, s3):
    missing = new_bucket_name()
    s3.stream("nobucket", missing)
    put_texts(db, "nobucket", ["m1", "m2"])
    flush(db, "nobucket")
    rows = failed(db, "nobucket")
    assert [r["data"] for r in rows] == [b"m1", b"m2"]
    for r in rows:
        assert r["error_code"] == "S3.NoSuchBucket"
        assert r["error_message"]
        assert r["attempts_made"] == 1
    (d,) = deliveries(db, "nobucket")
    assert (d["outcome"], d["error_code"], d["http_status"]) == ("failed", "S3.NoSuchBucket", 404)
    with pytest.raises(ClientError):
        s3.client.head_bucket(Bucket=missing)


def test_server_down_then_back(db, s3, s3_server):
    """S3 unreachable: a stream with the default retry_duration keeps retrying and
    delivers exactly once when the server is back; one with retry_duration 1 s
    fails with S3.ConnectionFailed."""
    b = s3.bucket()
    s3.stream("down", b, prefix="long/")
    s3.stream("down_short", b, prefix="short/", retry_duration=1)
    texts = ["d%02d" % i for i in range(10)]
    s3_server.stop(remove=False)
    try:
        put_texts(db, "down", texts)
        put_texts(db, "down_short", ["s1", "s2"])
        flush(db, "down_short")
        rows = failed(db, "down_short")
        assert [r["data"] for r in rows] == [b"s1", b"s2"]
        for r in rows:
            assert r["error_code"] == "S3.ConnectionFailed", r
            assert r["error_message"]
            assert r["attempts_made"] >= 2, "network errors are retried"
        (d,) = deliveries(db, "down_short")
        assert (d["outcome"], d["error_code"]) == ("failed", "S3.ConnectionFailed")
        # the long stream is still retrying, and has not given up
        assert db.flush("down", "1s") is False
        st = status(db, "down")
        assert st["in_flight_records"] + st["buffered_records"] == 10
        assert (st["delivered_records"], st["failed_records"]) == (0, 0)
    finally:
        s3_server.start()
    flush(db, "down", timeout="60s")
    (key,) = s3.keys(b, "long/")
    parse_default_key(key, "down", prefix="long/")
    assert s3.get(b, key) == joined(texts_bytes(texts))
    assert failed(db, "down") == []
    (d,) = deliveries(db, "down")
    assert d["outcome"] == "delivered" and d["attempts"] >= 2
    assert s3.keys(b, "short/") == []


def test_hanging_server_times_out_and_retry_writes_the_same_key(db, s3, s3_server):
    """A server that accepts connections but never answers (SIGSTOP): requests
    time out (S3.RequestTimeout) and are retried; when it wakes up it may also
    complete the timed-out uploads, but every attempt writes the same key, so
    there is exactly one object."""
    b = s3.bucket()
    s3.stream("hang", b, prefix="long/", request_timeout=700)
    s3.stream("hang_short", b, prefix="short/", request_timeout=700, retry_duration=1)
    texts = ["h%02d" % i for i in range(10)]
    proxy = s3_server.pids["proxy"]
    os.kill(proxy, signal.SIGSTOP)
    try:
        put_texts(db, "hang", texts)
        put_texts(db, "hang_short", ["x1"])
        flush(db, "hang_short")
        (row,) = failed(db, "hang_short")
        assert row["data"] == b"x1"
        assert row["error_code"] == "S3.RequestTimeout", row
        assert row["attempts_made"] >= 2
        assert db.flush("hang", "1s") is False
        assert status(db, "hang")["delivered_records"] == 0
    finally:
        os.kill(proxy, signal.SIGCONT)
    flush(db, "hang", timeout="60s")
    time.sleep(1)       # let the server finish any upload a timed-out attempt left
    (key,) = s3.keys(b, "long/")
    assert s3.get(b, key) == joined(texts_bytes(texts))
    assert failed(db, "hang") == []
    (d,) = deliveries(db, "hang")
    assert d["outcome"] == "delivered" and d["attempts"] >= 2


def test_redrive_after_fixing_the_secret(db, s3):
    b = s3.bucket()
    s3.stream("fixme", b, secret_access_key=WRONG_SECRET)
    put_texts(db, "fixme", ["r1", "r2", "r3"])
    flush(db, "fixme")
    assert len(failed(db, "fixme")) == 3 and s3.keys(b) == []
    db.execute("SELECT firehose.alter_stream('fixme', %s::jsonb)",
               (json.dumps({"secret_access_key": s3.server.secret_key}),))
    assert db.one("SELECT firehose.redrive('fixme')") == 3
    flush(db, "fixme")
    (key,) = s3.keys(b)
    parse_default_key(key, "fixme", version=2)
    assert s3.get(b, key) == b"r1\nr2\nr3\n"
    assert failed(db, "fixme") == []


def test_option_validation(db, s3):
    b = s3.bucket()

    def refused(opts, word):
        with pytest.raises(psycopg2.Error) as ei:
            db.execute("SELECT firehose.create_stream('bad', 's3', %s::jsonb)",
                       (json.dumps(opts),))
        msg = "%s %s" % (ei.value.pgerror, getattr(ei.value.diag, "message_hint", ""))
        assert word in msg, msg

    base = s3.options(b)
    refused({k: v for k, v in base.items() if k != "bucket"}, "bucket")
    refused(dict(base, compression="lz4"), "compression")
    refused(dict(base, multipart_threshold=1000), "multipart_threshold")
    refused(dict(base, multipart_part_size=1000), "multipart_part_size")
    refused(dict(base, time_zone="Mars/Olympus_Mons"), "time_zone")
    refused(dict(base, prefix="a/!{timestamp:yyyy}/"), "error_output_prefix")
    refused(dict(base, prefix="a/!{firehose:error-output-type}/",
                 error_output_prefix="e/!{firehose:error-output-type}/"), "prefix")
    refused(dict(base, file_extension="gz"), "file_extension")
    refused(dict(base, url="http://example.com/"), "url")
    # static keys and credentials from the environment do not mix
    refused(dict(base, credentials="environment"), "credentials")
    refused(dict(base, credentials="instance-profile"), "credentials")
    assert db.one("SELECT count(*) FROM firehose.streams") == 0


# -- S3 backup of an http stream ------------------------------------------------------

ERROR_RECORD_FIELDS = {"attemptsMade", "arrivalTimestamp", "errorCode", "errorMessage",
                       "attemptEndingTimestamp", "rawData", "subsequenceNumber", "dataId"}


def test_http_backup_failed_writes_error_records(db, s3, receiver):
    r = receiver()
    r.faults([{"status": 400, "error_message": "Schema mismatch: field zz is unknown"}])
    b = s3.bucket()
    s3.http_stream("hb", r.url, backup={"mode": "failed", "s3": s3.target(b)})
    texts = ["hb-%d" % i for i in range(5)] + ["\u00e9\u2713 {\"json\": true}"]
    with Window() as w:
        ids = [db.one("SELECT firehose.put('hb', %s::text)", (t,)) for t in texts]
    flush(db, "hb")
    w.close()          # attempts ended by now
    assert r.records() == []
    rows = failed(db, "hb", order_by="record_id")
    assert [x["data"] for x in rows] == texts_bytes(texts)
    assert all(x["error_code"] == "HttpEndpoint.DestinationException" for x in rows)

    # the puts are separate commits, cut into one batch or several: one
    # object of error records for each failed part
    docs = []
    for key in wait_for_lines(s3, b, len(texts)):
        m = re.fullmatch(r"http-endpoint-failed/" + HOUR_FOLDERS_RE + suffix_re("hb"), key)
        assert m, key
        t = key_time(m)
        assert (m.group("pY"), m.group("pM"), m.group("pd"), m.group("pH")) == \
            (t.strftime("%Y"), t.strftime("%m"), t.strftime("%d"), t.strftime("%H"))
        w.check(t)
        body = s3.get(b, key)
        assert body.endswith(b"\n"), key
        in_key = [json.loads(x) for x in body[:-1].split(b"\n")]
        # the record's position in its part's request
        assert sorted(d["subsequenceNumber"] for d in in_key) == list(range(len(in_key)))
        docs += in_key
    assert len(docs) == len(texts)
    by_data = {x["data"]: x for x in rows}
    assert sorted(base64.b64decode(d["rawData"]) for d in docs) == sorted(texts_bytes(texts))
    for d in docs:
        assert set(d) == ERROR_RECORD_FIELDS, d
        raw = base64.b64decode(d["rawData"])
        row = by_data[raw]
        assert d["dataId"] == str(row["record_id"])
        assert d["errorCode"] == "HttpEndpoint.DestinationException"
        assert "Schema mismatch: field zz is unknown" in d["errorMessage"]
        assert d["attemptsMade"] == row["attempts_made"] >= 1
        assert isinstance(d["arrivalTimestamp"], int)
        assert isinstance(d["attemptEndingTimestamp"], int)
        w.check_ms(d["arrivalTimestamp"], "arrivalTimestamp")
        w.check_ms(d["attemptEndingTimestamp"], "attemptEndingTimestamp")
        assert d["arrivalTimestamp"] <= d["attemptEndingTimestamp"]
        assert abs(d["arrivalTimestamp"] - int(row["arrival_time"].timestamp() * 1000)) <= 1
    assert [d["dataId"] for d in docs if base64.b64decode(d["rawData"]) == b"hb-0"] \
        == [str(ids[0])]


def wait_for_lines(s3, bucket, n, prefix="", timeout=30):
    """The keys under prefix once their objects hold n lines in all (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        keys = s3.keys(bucket, prefix)
        if sum(s3.get(bucket, k).count(b"\n") for k in keys) >= n or \
                time.monotonic() > deadline:
            return keys
        time.sleep(0.1)


def wait_for_keys(s3, bucket, n, prefix="", timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        keys = s3.keys(bucket, prefix)
        if len(keys) >= n or time.monotonic() > deadline:
            return keys
        time.sleep(0.1)


def test_http_backup_all_copies_delivered_records(db, s3, receiver):
    r = receiver()
    b = s3.bucket()
    s3.http_stream("hball", r.url, backup={"mode": "all", "s3": s3.target(b)})
    texts = sample_texts(30, "all")
    with Window() as w:
        put_texts(db, "hball", texts)
    flush(db, "hball")
    assert r.records() == texts_bytes(texts)
    assert failed(db, "hball") == []
    (key,) = wait_for_keys(s3, b, 1)
    w.check(parse_default_key(key, "hball"))
    assert s3.get(b, key) == joined(texts_bytes(texts))
    assert s3.keys(b, "http-endpoint-failed/") == []


def test_http_backup_failed_only_copies_nothing_when_delivered(db, s3, receiver):
    r = receiver()
    b = s3.bucket()
    s3.http_stream("hbok", r.url, backup={"mode": "failed", "s3": s3.target(b)})
    put_texts(db, "hbok", ["ok1", "ok2"])
    flush(db, "hbok")
    assert r.records() == [b"ok1", b"ok2"]
    time.sleep(0.5)
    assert s3.keys(b) == []


# -- the acceptance test: 200,000 records -------------------------------------------------

def test_200k_records_gzip_exactly_once_and_wrong_secret_delivers_nothing(db, s3):
    good_bucket = s3.bucket()
    bad_bucket = s3.bucket()
    s3.stream("big", good_bucket, compression="gzip", buffer_size=1000000, max_concurrency=4)
    s3.stream("bigbad", bad_bucket, compression="gzip", buffer_size=1000000,
              max_concurrency=4, secret_access_key=WRONG_SECRET)

    producers, per_producer, batch = 4, 50000, 2500
    rng = random.Random(200000)
    filler = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(10000))
    committed = [[] for _ in range(producers)]
    rolled_back = [[] for _ in range(producers)]
    bad_texts = ["bad-%05d-%s" % (i, "q" * (i % 50)) for i in range(5000)]
    errors = []

    def produce(p):
        try:
            conn = db.conn()
            cur = conn.cursor()
            for j in range(per_producer // batch):
                texts = []
                for i in range(batch):
                    n = j * batch + i
                    o = (n * 7919 + p * 104729) % 9000
                    texts.append("p%d-%06d-%s" % (p, n, filler[o:o + 20 + n % 81]))
                cur.execute("SELECT firehose.put_batch('big', %s::text[])", (texts,))
                committed[p] += texts
                if j % 5 == 2:       # a rolled-back transaction must deliver nothing
                    conn.autocommit = False
                    rb = ["rb-p%d-%d-%d" % (p, j, i) for i in range(100)]
                    cur.execute("SELECT firehose.put_batch('big', %s::text[])", (rb,))
                    conn.rollback()
                    conn.autocommit = True
                    rolled_back[p] += rb
        except Exception as e:      # reported in the main thread
            errors.append(e)

    def produce_bad():
        try:
            conn = db.conn()
            cur = conn.cursor()
            for j in range(0, len(bad_texts), 1000):
                cur.execute("SELECT firehose.put_batch('bigbad', %s::text[])",
                            (bad_texts[j:j + 1000],))
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    threads.append(threading.Thread(target=produce_bad))
    with Window() as w:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    flush(db, "big", timeout="180s")
    flush(db, "bigbad", timeout="60s")

    expected = [t.encode() for c in committed for t in c]
    assert len(expected) == producers * per_producer == 200000

    keys = s3.keys(good_bucket)
    total_bytes = sum(len(x) for x in expected)
    assert len(keys) >= total_bytes // 1000000
    for k in keys:
        w.check(parse_default_key(k, "big", ext=".gz"))

    def fetch(k):
        return k, gzip.decompress(s3.get(good_bucket, k))

    counts = collections.Counter()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        for k, body in ex.map(fetch, keys):
            assert body.endswith(b"\n"), k
            recs = body[:-1].split(b"\n")
            assert sum(len(x) for x in recs) <= 1250000, "object %s over buffer_size + 25%%" % k
            counts.update(recs)
    dups = {r: c for r, c in counts.items() if c > 1}
    assert not dups, "%d records delivered more than once, e.g. %r" % (
        len(dups), list(dups.items())[:5])
    got = set(counts)
    want = set(expected)
    missing, extra = want - got, got - want
    assert not missing and not extra, "missing %d (e.g. %r), extra %d (e.g. %r)" % (
        len(missing), sorted(missing)[:3], len(extra), sorted(extra)[:3])
    assert not any(x.startswith(b"rb-") for x in got)

    st = status(db, "big")
    assert (st["delivered_records"], st["failed_records"], st["buffered_records"],
            st["in_flight_records"]) == (200000, 0, 0, 0)
    assert db.one("SELECT count(*) FROM firehose.failed_records WHERE stream = 'big'") == 0
    assert s3.client.list_multipart_uploads(Bucket=good_bucket).get("Uploads", []) == []

    # the wrong secret: nothing written, every record failed with the S3 code
    assert s3.keys(bad_bucket) == []
    rows = db.q("SELECT convert_from(data, 'UTF8'), error_code, attempts_made "
                "FROM firehose.failed_records WHERE stream = 'bigbad'")
    assert len(rows) == len(bad_texts)
    assert sorted(x[0] for x in rows) == sorted(bad_texts)
    assert {x[1] for x in rows} == {"S3.SignatureDoesNotMatch"}
    assert {x[2] for x in rows} == {1}
    st = status(db, "bigbad")
    assert (st["delivered_records"], st["failed_records"]) == (0, 5000)
