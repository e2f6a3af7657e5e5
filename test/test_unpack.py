"""The decompress and cloudwatch_logs processors, with real gzip data, against
the strict receiver: what it gets, and failed_records of what does not
unpack (the original record, unchanged)."""

import base64
import gzip
import json

import psycopg2
import pytest

from helpers import failed, flush, make_stream
from test_s3 import s3, wait_for_keys  # noqa: F401  (s3 is a fixture)


def put_bytes(db, stream, blobs):
    db.execute("SELECT firehose.put_batch(%s, %s::bytea[])",
               (stream, [psycopg2.Binary(b) for b in blobs]))


def cwl(events, message_type="DATA_MESSAGE", group="/app/web"):
    return json.dumps({
        "messageType": message_type, "owner": "123456789012", "logGroup": group,
        "logStream": "i-0abc", "subscriptionFilters": ["all"],
        "logEvents": [{"id": str(n), "timestamp": 1700000000000 + n, "message": m}
                      for n, m in enumerate(events)]}).encode()


def test_decompress_gzip(db, receiver):
    r = receiver()
    make_stream(db, "d", r.url, processors=[{"type": "decompress", "format": "gzip"}])
    two_members = gzip.compress(b"first half, ") + gzip.compress(b"second half")
    blobs = [gzip.compress("héllo".encode()), b"not gzip at all", two_members,
             gzip.compress(b"x" * 100000)[:-10], gzip.compress(b"")]
    put_bytes(db, "d", blobs)
    flush(db, "d")
    assert r.records() == ["héllo".encode(), b"first half, second half", b""]
    f = failed(db, "d")
    assert [(x["data"], x["error_code"]) for x in f] == [
        (b"not gzip at all", "Decompression.Failed"),
        (blobs[3], "Decompression.Failed")]
    assert f[0]["error_message"] == "The data is not valid gzip."
    assert f[1]["error_message"] == "The gzip data is truncated."
    r.assert_no_violations()


def test_s3_writes_decompression_failures_under_their_own_error_type(db, s3):
    """Firehose writes records that would not decompress under the error
    output type decompression-failed, apart from the processing-failed ones
    (reference/firehose.md, error output); the object holds the rest."""
    b = s3.bucket()
    s3.stream("dz", b, processors=[{"type": "decompress", "format": "gzip"},
                                   {"type": "json_to_csv", "columns": ["a"]}],
              buffer_interval=60000)
    not_an_object = gzip.compress(b"[1]")
    put_bytes(db, "dz", [gzip.compress(b'{"a": "x"}'), b"not gzip", not_an_object])
    flush(db, "dz")
    keys = wait_for_keys(s3, b, 3)
    (dkey,) = [k for k in keys if k.startswith("decompression-failed/")]
    (pkey,) = [k for k in keys if k.startswith("processing-failed/")]
    (data_key,) = [k for k in keys if k not in (dkey, pkey)]
    assert s3.get(b, data_key) == b"x\n"
    docs = [json.loads(x) for x in s3.get(b, dkey).decode().splitlines()]
    assert [(base64.b64decode(d["rawData"]), d["errorCode"]) for d in docs] == \
        [(b"not gzip", "Decompression.Failed")]
    docs = [json.loads(x) for x in s3.get(b, pkey).decode().splitlines()]
    assert [(base64.b64decode(d["rawData"]), d["errorCode"]) for d in docs] == \
        [(not_an_object, "Processor.ProcessingFailed")]


def test_decompression_bomb_fails_alone(db, receiver):
    r = receiver()
    make_stream(db, "d", r.url, processors=[{"type": "decompress"}])
    bomb = gzip.compress(b"\0" * (65 * 1024 * 1024))     # 64 MiB is the limit
    put_bytes(db, "d", [bomb, gzip.compress(b"fine")])
    flush(db, "d")
    assert r.records() == [b"fine"]
    (f,) = failed(db, "d")
    assert f["error_code"] == "Decompression.Failed"
    assert f["error_message"] == "The decompressed record is too large."


def test_cloudwatch_logs_one_record_per_event(db, receiver):
    r = receiver()
    make_stream(db, "c", r.url, processors=[{"type": "decompress"},
                                            {"type": "cloudwatch_logs"}])
    blobs = [gzip.compress(cwl(["GET /a 200", "GET /b 404 \u00e9"])),
             gzip.compress(cwl([], message_type="CONTROL_MESSAGE")),
             gzip.compress(b"{\"messageType\": \"DATA_MESSAGE\"}"),
             gzip.compress(b"[1, 2"),
             gzip.compress(cwl(["POST /c 500"])),
             # an event that is an array, after one that ends with its message
             gzip.compress(b'{"messageType": "DATA_MESSAGE", "logEvents": '
                           b'[{"id": "1", "message": "m1"}, ["m2"]]}')]
    put_bytes(db, "c", blobs)
    flush(db, "c")
    assert r.records() == [b"GET /a 200", "GET /b 404 \u00e9".encode(), b"POST /c 500"]
    f = failed(db, "c")
    # the original (compressed) record, not what an earlier processor made
    assert [(x["data"], x["error_code"]) for x in f] == [
        (blobs[2], "CloudWatchLogs.InvalidRecord"),
        (blobs[3], "CloudWatchLogs.InvalidRecord"),
        (blobs[5], "CloudWatchLogs.InvalidRecord")]
    r.assert_no_violations()


def test_cloudwatch_logs_reads_gzip_itself(db, receiver):
    r = receiver()
    make_stream(db, "c", r.url, processors=[{"type": "cloudwatch_logs"}])
    put_bytes(db, "c", [gzip.compress(cwl(["one", "two", "three"])), b"\x1f\x8bbroken"])
    flush(db, "c")
    assert r.records() == [b"one", b"two", b"three"]
    (f,) = failed(db, "c")
    assert (f["data"], f["error_code"]) == (b"\x1f\x8bbroken", "Decompression.Failed")


def test_a_destination_failure_fails_the_source_record_once(db, receiver):
    r = receiver(mode="raw")
    make_stream(db, "c", r.url, format="raw", retry_duration=0,
                processors=[{"type": "cloudwatch_logs"}])
    r.faults([{"status": 400}])
    blob = gzip.compress(cwl(["a", "b"]))
    put_bytes(db, "c", [blob])
    flush(db, "c")
    f = failed(db, "c")
    assert [x["data"] for x in f] == [blob]


@pytest.mark.parametrize("procs,detail", [
    ([{"type": "decompress", "format": "zstd"}],
     'Processor 1 (decompress): "format" must be "gzip"'),
    ([{"type": "cloudwatch_logs", "extract": True}],
     'Processor 1 (cloudwatch_logs): unknown key "extract"'),
    ([{"type": "cloudwatch_logs"}, {"type": "decompress"}],
     "Processor 2 follows a cloudwatch_logs processor, which must be the last."),
])
def test_unpack_options_checked(db, procs, detail):
    with pytest.raises(psycopg2.Error) as e:
        make_stream(db, "bad", "http://127.0.0.1:9/x", processors=procs)
    assert e.value.pgcode == "22023"
    assert e.value.diag.message_detail.startswith(detail), e.value.diag.message_detail
