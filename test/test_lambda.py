"""The Lambda processor: Firehose's Lambda event over HTTP, against the strict
test endpoint test/lambda_receiver.py, with the strict Firehose receiver as
the destination.

The test function uppercases a record, drops "drop..." and fails "fail..."
(see lambda_receiver.py); .script() makes it answer wrongly on purpose.
"""

import json
import re

import psycopg2
import pytest

from helpers import failed, flush, make_stream, one_worker, put_texts
from lambda_receiver import LambdaReceiver
from test_s3 import s3  # noqa: F401  (the fixture)
from test_s3_partitioning import ERRORS, SLOW, objects

AKID = "AKIDLAMBDATEST000001"
SECRET = "lambda/test/secret/key/0123456789abcdefghij"


@pytest.fixture
def lam():
    """Factory: lam(**LambdaReceiver options) -> a started endpoint; the test
    fails if any request broke the protocol."""
    started = []

    def start(**kw):
        r = LambdaReceiver(**kw).start()
        started.append(r)
        return r
    yield start
    for r in started:
        r.stop()
    for r in started:
        assert not r.violations(), "Lambda protocol violations: %r" % r.violations()


def lambda_stream(db, name, dest, fn, **popts):
    p = {"type": "lambda", "url": fn.url}
    p.update(popts)
    make_stream(db, name, dest.url, processors=[p])


def codes(db, stream):
    return [(f["data"], f["error_code"]) for f in failed(db, stream, order_by="record_id")]


def test_ok_dropped_and_processing_failed(db, receiver, lam):
    r, fn = receiver(), lam()
    lambda_stream(db, "l", r, fn)
    put_texts(db, "l", ["alpha", "drop me", "fail me", "beta \u00e9"])
    flush(db, "l")
    assert r.records() == [b"ALPHA", "BETA \u00c9".encode()]
    assert codes(db, "l") == [(b"fail me", "Lambda.ProcessingFailed")]
    reqs = fn.requests()
    assert len(reqs) == 1
    assert [json.loads(json.dumps(x["recordId"])) for x in reqs[0]["records"]] \
        == ["0", "1", "2", "3"]
    assert reqs[0]["deliveryStreamArn"].endswith(":deliverystream/l")
    assert reqs[0]["region"] == "us-east-1"


def test_mismatched_ids_fail_those_records(db, receiver, lam):
    r, fn = receiver(), lam()
    lambda_stream(db, "l", r, fn)
    fn.script([{"mismatch": 1}])
    put_texts(db, "l", ["a1", "b2", "c3"])
    flush(db, "l")
    assert r.records() == [b"B2", b"C3"]
    f = failed(db, "l")
    assert [(x["data"], x["error_code"]) for x in f] == [(b"a1", "Lambda.MissingRecordId")]
    assert "not sent" in f[0]["error_message"]


def test_duplicated_and_missing_ids(db, receiver, lam):
    r, fn = receiver(), lam()
    lambda_stream(db, "l", r, fn)
    fn.script([{"duplicate": True}])
    put_texts(db, "l", ["a1", "b2", "c3"])
    flush(db, "l")
    fn.script([{"omit": True}])
    put_texts(db, "l", ["d4", "e5"])
    flush(db, "l")
    assert r.records() == [b"B2", b"C3", b"D4"]
    assert codes(db, "l") == [(b"a1", "Lambda.DuplicatedRecordId"),
                              (b"e5", "Lambda.MissingRecordId")]


def test_500_then_success_retries_the_same_invocation(db, receiver, lam):
    r, fn = receiver(), lam()
    lambda_stream(db, "l", r, fn)
    fn.script([{"status": 500}])
    put_texts(db, "l", ["x", "y"])
    flush(db, "l")
    assert r.records() == [b"X", b"Y"]
    assert failed(db, "l") == []
    ids = fn.invocations()
    assert len(ids) == 2 and ids[0] == ids[1]


def test_invocation_failure_after_retries_fails_every_record(db, receiver, lam):
    r, fn = receiver(), lam()
    lambda_stream(db, "l", r, fn, number_of_retries=2)
    fn.script([{"status": 500}] * 3)
    put_texts(db, "l", ["x", "y"])
    flush(db, "l")
    assert r.records() == []
    f = failed(db, "l")
    assert [(x["data"], x["error_code"]) for x in f] == [
        (b"x", "Lambda.InvocationFailed"), (b"y", "Lambda.InvocationFailed")]
    assert "after 3 attempts" in f[0]["error_message"]
    assert "HTTP 500" in f[0]["error_message"]
    assert len(fn.requests()) == 3


def test_too_large_answer_is_an_invocation_failure(db, receiver, lam):
    r, fn = receiver(), lam()
    lambda_stream(db, "l", r, fn, number_of_retries=1)
    # over 6 MB, then again: both attempts fail
    fn.script([{"huge": 6 * 1024 * 1024}, {"huge": 6 * 1024 * 1024}])
    put_texts(db, "l", ["big"])
    flush(db, "l")
    fn.script([{"huge": 6 * 1024 * 1024}])    # once: the retry succeeds
    put_texts(db, "l", ["small"])
    flush(db, "l")
    assert r.records() == [b"SMALL"]
    f = failed(db, "l")
    assert [(x["data"], x["error_code"]) for x in f] == [(b"big", "Lambda.InvocationFailed")]
    assert "exceeded 6291456 bytes" in f[0]["error_message"]


def test_answer_that_is_not_json(db, receiver, lam):
    r, fn = receiver(), lam()
    lambda_stream(db, "l", r, fn)
    fn.script([{"not_json": True}])
    put_texts(db, "l", ["q"])
    flush(db, "l")
    assert r.records() == []
    assert codes(db, "l") == [(b"q", "Lambda.JsonProcessingException")]
    assert len(fn.requests()) == 1      # not retried, as Firehose


def test_invocations_are_cut_by_buffer_size(db, receiver, lam):
    r, fn = receiver(), lam()
    lambda_stream(db, "l", r, fn, buffer_size=209715)
    texts = ["r%02d" % i + "x" * 60000 for i in range(10)]
    put_texts(db, "l", texts)
    flush(db, "l")
    assert r.records() == [t.upper().encode() for t in texts]
    reqs = fn.requests()
    assert len(reqs) >= 3
    for e in reqs:
        assert sum(len(x["data"]) * 3 // 4 for x in e["records"]) <= 209715 + 4


def test_sigv4_signed_invocations(db, receiver, lam):
    r = receiver()
    fn = lam(sigv4={"access_key": AKID, "secret_key": SECRET, "region": "eu-west-1"})
    lambda_stream(db, "l", r, fn, auth="sigv4", region="eu-west-1",
                  access_key_id=AKID, secret_access_key=SECRET)
    put_texts(db, "l", ["signed"])
    flush(db, "l")
    assert r.records() == [b"SIGNED"]
    assert fn.refused == []
    # the receiver does check: a wrong secret is refused, and the records fail
    db.execute("SELECT firehose.alter_stream('l', %s::jsonb)",
               (json.dumps({"processors": [{
                   "type": "lambda", "url": fn.url, "auth": "sigv4", "region": "eu-west-1",
                   "access_key_id": AKID, "secret_access_key": SECRET + "x",
                   "number_of_retries": 0}]}),))
    put_texts(db, "l", ["forged"])
    flush(db, "l")
    assert fn.refused == ["signature mismatch"]
    f = failed(db, "l")
    assert [(x["data"], x["error_code"]) for x in f] == [(b"forged", "Lambda.InvocationFailed")]
    assert "HTTP 403" in f[0]["error_message"]
    assert SECRET not in f[0]["error_message"]


def test_header_auth_and_its_secret_redacted(db, receiver, lam):
    r = receiver()
    fn = lam(header=("X-Api-Key", "k-123456"))
    lambda_stream(db, "l", r, fn, headers={"X-Api-Key": "k-123456"})
    put_texts(db, "l", ["keyed"])
    flush(db, "l")
    assert r.records() == [b"KEYED"]
    shown = db.one("SELECT options::text FROM firehose.streams WHERE name = 'l'")
    assert "k-123456" not in shown and "********" in shown


def test_url_goes_through_allowed_destinations(db, pg, receiver, lam, wait_until):
    r, fn = receiver(), lam()
    # refused at create, as any destination's URL
    with pytest.raises(psycopg2.Error) as e:
        make_stream(db, "m", r.url, processors=[
            {"type": "lambda", "url": "http://169.254.169.254/latest/"}])
    assert e.value.pgcode == "42501"
    # and by the worker, whose connections are checked: a host refused by name
    make_stream(db, "l", r.url, processors=[
        {"type": "lambda", "url": fn.url.replace("127.0.0.1", "localhost")}])
    db.execute("ALTER DATABASE \"%s\" SET firehose.allowed_destinations = "
               "'!localhost, *'" % db.dbname)
    old = one_worker(pg, db.dbname, wait_until)
    db.execute("SELECT pg_terminate_backend(%s)", (old,))
    one_worker(pg, db.dbname, wait_until, other_than=old, timeout=60)
    put_texts(db, "l", ["never sent"])
    flush(db, "l")
    (f,) = failed(db, "l")
    assert (f["data"], f["error_code"]) == (b"never sent", "Firehose.DestinationNotAllowed")
    assert "does not allow host localhost" in f["error_message"]
    assert fn.requests() == [] and r.records() == []


def option_error(db, processors):
    with pytest.raises(psycopg2.Error) as e:
        make_stream(db, "bad", "http://127.0.0.1:9/x", processors=processors)
    return e.value.pgcode, e.value.diag.message_primary, e.value.diag.message_detail


@pytest.mark.parametrize("proc,detail", [
    ({"type": "lambda"}, 'Processor 1 (lambda): no "url": the URL of the function'),
    ({"type": "lambda", "url": "http://127.0.0.1:9/", "arn": "x"},
     'Processor 1 (lambda): unknown key "arn"; it takes "type", "url", '),
    ({"type": "lambda", "url": "http://127.0.0.1:9/", "access_key_id": "A"},
     'Processor 1 (lambda): AWS credentials are given but "auth" is "none"'),
])
def test_lambda_options_checked(db, proc, detail):
    code, msg, det = option_error(db, [proc])
    assert (code, msg) == ("22023", 'option "processors" is not valid')
    assert det.startswith(detail), det


def test_lambda_limits_and_order_checked(db):
    url = "http://127.0.0.1:9/"
    code, msg, _ = option_error(db, [{"type": "lambda", "url": url, "buffer_size": "4MB"}])
    assert (code, msg) == ("22023", 'option "buffer_size" is out of range')
    code, msg, _ = option_error(db, [{"type": "lambda", "url": url, "number_of_retries": -1}])
    assert (code, msg) == ("22023", 'option "number_of_retries" is out of range')
    code, msg, _ = option_error(db, [{"type": "lambda", "url": url, "auth": "sigv4"}])
    assert code == "22023" and "needs credentials" in msg
    db.execute("CREATE FUNCTION public.ident(r firehose.record) RETURNS firehose.processed "
               "LANGUAGE sql AS $$ SELECT ROW('Ok', r.data, NULL)::firehose.processed $$")
    code, msg, det = option_error(db, [{"type": "lambda", "url": url},
                                       {"type": "function", "function": "public.ident"}])
    assert code == "22023" and "Processor 2 (function) follows a lambda processor" in det
    # normalized: every default filled in
    make_stream(db, "good", "http://127.0.0.1:9/x",
                processors=[{"type": "function", "function": "public.ident"},
                            {"type": "lambda", "url": url}])
    stored = json.loads(db.one("SELECT options::text FROM firehose.stream WHERE name = 'good'"))
    assert stored["processors"][1] == {
        "type": "lambda", "url": url, "auth": "none", "region": "us-east-1",
        "buffer_size": 1048576, "number_of_retries": 3, "timeout": 300000,
        "tls_verify": True}


def test_partition_keys_go_to_s3_prefixes(db, s3, lam):
    """metadata.partitionKeys land where a function's partition_keys do:
    !{partitionKeyFromLambda:name} in an S3 prefix (dynamic partitioning)."""
    fn = lam()
    b = s3.bucket()
    s3.stream("lp", b, error_output_prefix=ERRORS, prefix="first=!{partitionKeyFromLambda:first}/",
              processors=[{"type": "lambda", "url": fn.url}], **SLOW)
    put_texts(db, "lp", ["apple", "avocado", "banana", "drop it"])
    flush(db, "lp")
    got = {}
    for k, rs in objects(s3, b, "first=").items():
        m = re.match(r"first=([ab])/\d{4}/\d{2}/\d{2}/\d{2}/lp-1-", k)
        assert m, k
        got.setdefault(m.group(1), []).extend(rs)
    assert {k: sorted(v) for k, v in got.items()} == {
        "a": [b"APPLE", b"AVOCADO"], "b": [b"BANANA"]}
    assert failed(db, "lp") == []
