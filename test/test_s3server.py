"""The S3 test server alone (no PostgreSQL): it must be a real S3 that checks
signatures.

A server that accepts any signature proves nothing about the extension's
SigV4 signer, so every rejection the S3 tests will rely on is shown here
(wrong secret, unknown access key, a signed header or the payload changed
after signing, wrong region, skewed clock), next to the same request signed
correctly being accepted.  Objects are read back with Debian's awscli and
boto3 and compared byte for byte.
"""

import datetime
import hashlib
import os
import re
import subprocess
import urllib.error
import urllib.request
import uuid

import pytest

boto3 = pytest.importorskip("boto3", reason="python3-boto3 is not installed")
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

import s3server  # noqa: E402

MiB = 1024 * 1024


def bucket_name():
    return "t-" + uuid.uuid4().hex[:20]


def payload(n, seed=b""):
    """n deterministic bytes covering every byte value."""
    out = bytearray()
    block = hashlib.sha256(seed).digest()
    while len(out) < n:
        out += bytes(range(256)) + block
        block = hashlib.sha256(block).digest()
    return bytes(out[:n])


@pytest.fixture
def bucket(s3_server):
    name = bucket_name()
    s3_server.client().create_bucket(Bucket=name)
    return name


def error_of(call, *args, **kwargs):
    """(HTTP status, S3 error code) of a boto3 call that must fail."""
    with pytest.raises(ClientError) as ei:
        call(*args, **kwargs)
    r = ei.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def signed_request(s3, method, path, body=b"", access_key=None, secret_key=None,
                   region=None, headers=None, after_signing=None, token=None):
    """Sign a request with botocore's SigV4 (optionally alter it afterwards),
    send it with urllib; returns (status, headers, body bytes)."""
    url = s3.endpoint + path
    h = {"x-amz-content-sha256": hashlib.sha256(body).hexdigest()}
    h.update(headers or {})
    req = AWSRequest(method=method, url=url, data=body, headers=h)
    SigV4Auth(Credentials(access_key or s3.access_key, secret_key or s3.secret_key, token),
              "s3", region or s3.region).add_auth(req)
    hdrs = dict(req.headers.items())
    if after_signing:
        after_signing(hdrs)
    ureq = urllib.request.Request(url, data=body if method in ("PUT", "POST") else None,
                                  method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(ureq, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def xml_code(body):
    m = re.search(rb"<Code>([^<]*)</Code>", body)
    return m.group(1).decode() if m else None


def object_exists(s3, bucket, key):
    try:
        s3.client().head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as e:
        if e.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return False
        raise


# -- the server works -----------------------------------------------------------

def test_put_and_get_with_awscli(s3_server, tmp_path):
    name = bucket_name()
    r = s3_server.aws("s3api", "create-bucket", "--bucket", name)
    assert r.returncode == 0, r.stderr.decode()
    data = payload(300 * 1024 + 7, b"awscli")
    src = tmp_path / "src"
    src.write_bytes(data)
    key = "2024/01/02/03/stream-1-2024-01-02-03-04-05-abc.gz"
    r = s3_server.aws("s3api", "put-object", "--bucket", name, "--key", key,
                      "--body", str(src))
    assert r.returncode == 0, r.stderr.decode()
    out = tmp_path / "out"
    r = s3_server.aws("s3api", "get-object", "--bucket", name, "--key", key, str(out))
    assert r.returncode == 0, r.stderr.decode()
    assert out.read_bytes() == data
    r = s3_server.aws("s3api", "list-objects-v2", "--bucket", name,
                      "--query", "Contents[].Key", "--output", "text")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().split() == [key]


def test_put_and_get_with_boto3(s3_server, bucket):
    c = s3_server.client()
    for key, data in [("a/b/c.txt", b"hello\n"), ("empty", b""),
                      ("bin", payload(65537, b"boto3"))]:
        c.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/octet-stream")
        got = c.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == data
        assert got["ContentLength"] == len(data)
        assert got["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    keys = [o["Key"] for o in c.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == ["a/b/c.txt", "bin", "empty"]


def test_multipart_upload_two_parts(s3_server, bucket):
    c = s3_server.client()
    parts_data = [payload(5 * MiB, b"part1"), payload(12345, b"part2")]
    up = c.create_multipart_upload(Bucket=bucket, Key="big")
    parts = []
    for i, d in enumerate(parts_data, 1):
        r = c.upload_part(Bucket=bucket, Key="big", UploadId=up["UploadId"],
                          PartNumber=i, Body=d)
        parts.append({"PartNumber": i, "ETag": r["ETag"]})
    # not visible before completion
    assert not object_exists(s3_server, bucket, "big")
    done = c.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=up["UploadId"],
                                       MultipartUpload={"Parts": parts})
    assert done["ETag"].strip('"').endswith("-2")
    got = c.get_object(Bucket=bucket, Key="big")["Body"].read()
    assert len(got) == 5 * MiB + 12345
    assert got == b"".join(parts_data)


def test_multipart_part_below_5mib_is_refused(s3_server, bucket):
    """Parts other than the last must be >= 5 MiB (as on AWS)."""
    c = s3_server.client()
    up = c.create_multipart_upload(Bucket=bucket, Key="small-parts")
    parts = []
    for i in (1, 2):
        r = c.upload_part(Bucket=bucket, Key="small-parts", UploadId=up["UploadId"],
                          PartNumber=i, Body=payload(1024, b"%d" % i))
        parts.append({"PartNumber": i, "ETag": r["ETag"]})
    status, code = error_of(c.complete_multipart_upload, Bucket=bucket, Key="small-parts",
                            UploadId=up["UploadId"], MultipartUpload={"Parts": parts})
    assert (status, code) == (400, "EntityTooSmall")
    c.abort_multipart_upload(Bucket=bucket, Key="small-parts", UploadId=up["UploadId"])
    assert not object_exists(s3_server, bucket, "small-parts")


def test_abort_multipart_upload(s3_server, bucket):
    c = s3_server.client()
    up = c.create_multipart_upload(Bucket=bucket, Key="aborted")
    c.upload_part(Bucket=bucket, Key="aborted", UploadId=up["UploadId"], PartNumber=1,
                  Body=b"x" * 100)
    c.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=up["UploadId"])
    assert error_of(c.list_parts, Bucket=bucket, Key="aborted",
                    UploadId=up["UploadId"]) == (404, "NoSuchUpload")
    assert c.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


# -- the server is strict ---------------------------------------------------------

def test_correctly_signed_raw_request_is_accepted(s3_server, bucket):
    """The control for the rejections below: same helper, right key, 200."""
    status, _, body = signed_request(s3_server, "PUT", "/%s/raw" % bucket, b"raw body")
    assert status == 200, body
    assert s3_server.client().get_object(Bucket=bucket, Key="raw")["Body"].read() == b"raw body"
    status, _, body = signed_request(s3_server, "GET", "/%s/raw" % bucket)
    assert (status, body) == (200, b"raw body")


def test_wrong_secret_is_signature_does_not_match(s3_server, bucket):
    bad = s3_server.client(secret_key="not-" + s3_server.secret_key)
    assert error_of(bad.put_object, Bucket=bucket, Key="k", Body=b"x") \
        == (403, "SignatureDoesNotMatch")
    assert error_of(bad.get_object, Bucket=bucket, Key="k") == (403, "SignatureDoesNotMatch")
    assert not object_exists(s3_server, bucket, "k")
    # The raw error document, as the extension will parse it (S3.<Code>).
    status, headers, body = signed_request(s3_server, "PUT", "/%s/k2" % bucket, b"x",
                                           secret_key="wrong")
    assert status == 403
    assert headers["Content-Type"] == "application/xml"
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>"
                           b"SignatureDoesNotMatch</Code><Message>The request signature "
                           b"we calculated does not match the signature you provided.")
    assert b"<CanonicalRequest>PUT\n/%s/k2\n" % bucket.encode() in body
    assert b"<StringToSign>AWS4-HMAC-SHA256\n" in body
    assert not object_exists(s3_server, bucket, "k2")


def test_wrong_access_key_is_rejected(s3_server, bucket):
    for ak in ("nobody:nobody", "AKIDEXAMPLE", "test:nottester"):
        bad = s3_server.client(access_key=ak)
        status, code = error_of(bad.put_object, Bucket=bucket, Key="k", Body=b"x")
        # Swift answers SignatureDoesNotMatch where AWS says InvalidAccessKeyId.
        assert status == 403 and code in ("SignatureDoesNotMatch", "InvalidAccessKeyId"), \
            (ak, status, code)
    assert not object_exists(s3_server, bucket, "k")


def test_second_user_works_and_has_its_own_buckets(s3_server, bucket):
    other = s3_server.client(access_key=s3_server.access_key2,
                             secret_key=s3_server.secret_key2)
    # another account: the first user's bucket does not exist for it
    assert error_of(other.get_object, Bucket=bucket, Key="k") == (404, "NoSuchBucket")
    mine = bucket_name()
    other.create_bucket(Bucket=mine)
    other.put_object(Bucket=mine, Key="k", Body=b"2")
    assert other.get_object(Bucket=mine, Key="k")["Body"].read() == b"2"
    # the first user's secret does not sign for the second user
    crossed = s3_server.client(access_key=s3_server.access_key2,
                               secret_key=s3_server.secret_key)
    assert error_of(crossed.get_object, Bucket=mine, Key="k") == (403, "SignatureDoesNotMatch")


def test_missing_bucket_is_no_such_bucket(s3_server):
    c = s3_server.client()
    missing = bucket_name()
    assert error_of(c.put_object, Bucket=missing, Key="k", Body=b"x") == (404, "NoSuchBucket")
    assert error_of(c.get_object, Bucket=missing, Key="k") == (404, "NoSuchBucket")
    assert error_of(c.create_multipart_upload, Bucket=missing, Key="k") \
        == (404, "NoSuchBucket")
    status, _, body = signed_request(s3_server, "PUT", "/%s/k" % missing, b"x")
    assert status == 404
    assert b"<Error><Code>NoSuchBucket</Code>" in body
    assert b"<BucketName>%s</BucketName>" % missing.encode() in body


def test_missing_key_is_no_such_key(s3_server, bucket):
    assert error_of(s3_server.client().get_object, Bucket=bucket, Key="nope") \
        == (404, "NoSuchKey")


def test_signed_header_changed_after_signing(s3_server, bucket):
    def alter(h):
        h["Content-Type"] = "text/html"
    status, _, body = signed_request(s3_server, "PUT", "/%s/ct" % bucket, b"x",
                                     headers={"Content-Type": "text/plain"},
                                     after_signing=alter)
    assert (status, xml_code(body)) == (403, "SignatureDoesNotMatch")

    def other_token(h):
        h["X-Amz-Security-Token"] = "other"
    status, _, body = signed_request(s3_server, "PUT", "/%s/tok" % bucket, b"x",
                                     token="session", after_signing=other_token)
    assert (status, xml_code(body)) == (403, "SignatureDoesNotMatch")
    assert not object_exists(s3_server, bucket, "ct")
    assert not object_exists(s3_server, bucket, "tok")


def test_payload_must_match_signed_sha256(s3_server, bucket):
    status, _, body = signed_request(
        s3_server, "PUT", "/%s/digest" % bucket, b"actual",
        headers={"x-amz-content-sha256": hashlib.sha256(b"signed").hexdigest()})
    assert (status, xml_code(body)) == (400, "BadDigest")
    assert not object_exists(s3_server, bucket, "digest")


def test_wrong_region_and_skewed_clock(s3_server, bucket):
    status, _, body = signed_request(s3_server, "GET", "/%s" % bucket, region="eu-west-1")
    assert (status, xml_code(body)) == (400, "AuthorizationHeaderMalformed")

    def old_date(h):
        old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
        h["X-Amz-Date"] = old.strftime("%Y%m%dT%H%M%SZ")
    status, _, body = signed_request(s3_server, "GET", "/%s" % bucket, after_signing=old_date)
    assert (status, xml_code(body)) == (403, "RequestTimeTooSkewed")


# -- the command line -------------------------------------------------------------

def test_command_line_start_and_stop(tmp_path):
    reason = s3server.swift_installed()
    if reason:
        pytest.skip(reason)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "s3server.py")
    d = str(tmp_path / "s3")
    pids = []
    out = subprocess.run(["/usr/bin/python3", script, "start", "--dir", d],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    try:
        assert out.returncode == 0, out.stderr.decode()
        vals = dict(kv.split("=", 1) for kv in out.stdout.decode().split())
        assert vals["S3_ACCESS_KEY"] == "test:tester"
        assert vals["S3_SECRET_KEY"] == "testing"
        assert vals["S3_REGION"] == "us-east-1"
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", vals["S3_ENDPOINT"])
        with urllib.request.urlopen(vals["S3_ENDPOINT"] + "/healthcheck", timeout=10) as r:
            assert r.read() == b"OK"
        s = s3server.S3Server(d)
        assert s.endpoint == vals["S3_ENDPOINT"] and s.is_running()
        pids = list(s.pids.values())
        assert len(pids) == 4
        c = s.client()
        c.create_bucket(Bucket="cli-bucket")
        c.put_object(Bucket="cli-bucket", Key="k", Body=b"v")
        assert c.get_object(Bucket="cli-bucket", Key="k")["Body"].read() == b"v"

        # stop without --rm, then start again: down in between, then back on
        # the same endpoint with the same data
        stop = subprocess.run(["/usr/bin/python3", script, "stop", "--dir", d],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert stop.returncode == 0, stop.stderr.decode()
        with pytest.raises(urllib.error.URLError) as ei:
            urllib.request.urlopen(vals["S3_ENDPOINT"] + "/healthcheck", timeout=10)
        assert isinstance(ei.value.reason, ConnectionRefusedError)
        again = subprocess.run(["/usr/bin/python3", script, "start", "--dir", d],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert again.returncode == 0, again.stderr.decode()
        assert again.stdout == out.stdout
        assert c.get_object(Bucket="cli-bucket", Key="k")["Body"].read() == b"v"
        pids = list(s3server.S3Server(d).pids.values())
    finally:
        stop = subprocess.run(["/usr/bin/python3", script, "stop", "--dir", d, "--rm"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert stop.returncode == 0, stop.stderr.decode()
    for pid in pids:
        assert not os.path.exists("/proc/%d" % pid) or \
            open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] == "Z"
    assert not os.path.exists(d)
