"""The process stage: stream option "processors" with SQL function processors.

A processor function name(r firehose.record) RETURNS firehose.processed says
of each record Ok (deliver its new data), Dropped or ProcessingFailed; an
ERROR it raises fails that record alone.  The receiver is the strict one:
it checks the Firehose HTTP protocol of every request.
"""

import base64
import json
import os

import psycopg2
import pytest

from helpers import failed, flush, make_stream, put_texts
from test_s3 import s3, wait_for_keys  # noqa: F401  (s3 is a fixture)

# uppercases, and drops, fails, raises, returns NULL or nonsense by content
CONTENT_FUNCTION = """
CREATE SCHEMA app;
CREATE TABLE app.seen (record_id bigint);
CREATE FUNCTION app.transform(r firehose.record) RETURNS firehose.processed
LANGUAGE plpgsql AS $$
DECLARE
    t text := convert_from(r.data, 'UTF8');
BEGIN
    INSERT INTO app.seen VALUES (r.id);
    IF t LIKE 'drop%' THEN
        RETURN ROW('Dropped', NULL, NULL)::firehose.processed;
    ELSIF t LIKE 'fail%' THEN
        RETURN ROW('ProcessingFailed', NULL, NULL)::firehose.processed;
    ELSIF t LIKE 'raise%' THEN
        RAISE EXCEPTION 'cannot transform %', t;
    ELSIF t LIKE 'null%' THEN
        RETURN NULL;
    ELSIF t LIKE 'maybe%' THEN
        RETURN ROW('Maybe', r.data, NULL)::firehose.processed;
    END IF;
    RETURN ROW('Ok', convert_to(upper(t), 'UTF8'), NULL)::firehose.processed;
END $$;
"""


def processors(fn):
    return [{"type": "function", "function": fn}]


def test_function_uppercases_drops_and_fails_records_by_content(db, receiver):
    db.execute(CONTENT_FUNCTION)
    r = receiver()
    make_stream(db, "p", r.url, processors=processors("app.transform"))
    texts = ["alpha", "drop me", "beta", "fail me", "raise me", "gamma \u00e9",
             "null me", "maybe me", "delta"]
    ids = [db.one("SELECT firehose.put('p', %s::text)", (t,)) for t in texts]
    flush(db, "p")

    # upper() as the database's collation has it (non-ASCII letters too)
    assert r.records() == [db.one("SELECT upper(%s)", (t,)).encode()
                           for t in ["alpha", "beta", "gamma \u00e9", "delta"]]
    r.assert_no_violations()

    rows = failed(db, "p", order_by="record_id")
    by_data = {row["data"]: row for row in rows}
    assert sorted(by_data) == sorted([b"fail me", b"raise me", b"null me", b"maybe me"])
    assert by_data[b"fail me"]["error_code"] == "Processor.ProcessingFailed"
    assert by_data[b"raise me"]["error_code"] == "Processor.FunctionError"
    assert "cannot transform raise me" in by_data[b"raise me"]["error_message"]
    assert by_data[b"null me"]["error_code"] == "Processor.NullResult"
    assert by_data[b"maybe me"]["error_code"] == "Processor.InvalidResult"
    assert '"Maybe"' in by_data[b"maybe me"]["error_message"]
    # the original records, by their ids
    assert sorted(row["record_id"] for row in rows) == sorted(
        ids[texts.index(t)] for t in ["fail me", "raise me", "null me", "maybe me"])

    # the delivery counts the records read: 9, of which 4 failed
    assert db.q("SELECT sum(records), sum(failed_records) FROM firehose.deliveries "
                "WHERE stream = 'p'") == [(9, 4)]
    status = db.q("SELECT delivered_records, failed_records FROM firehose.stream_status "
                  "WHERE stream = 'p'")
    assert status == [(5, 4)]
    # what the function did for the records that did not raise is kept, once each;
    # the call that raised was rolled back
    seen = [x[0] for x in db.q("SELECT record_id FROM app.seen ORDER BY 1")]
    assert seen == sorted(i for i, t in zip(ids, texts) if t != "raise me")


def test_every_record_dropped_sends_nothing(db, receiver):
    db.execute(CONTENT_FUNCTION)
    r = receiver()
    make_stream(db, "d", r.url, processors=processors("app.transform"))
    put_texts(db, "d", ["drop %d" % i for i in range(20)])
    flush(db, "d")
    assert r.requests() == []
    assert r.records() == []
    assert failed(db, "d") == []
    assert db.one("SELECT delivered_records FROM firehose.stream_status WHERE stream = 'd'") == 20


def test_one_raise_in_10000_fails_that_record_alone(db, receiver):
    db.execute("""
        CREATE SCHEMA app;
        CREATE TABLE app.seen (record_id bigint);
        CREATE FUNCTION app.check(r firehose.record) RETURNS firehose.processed
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO app.seen VALUES (r.id);
            IF r.data = 'rec-7777'::bytea THEN
                RAISE EXCEPTION 'record % is bad', r.id;
            END IF;
            RETURN ROW('Ok', r.data || 'x'::bytea, NULL)::firehose.processed;
        END $$;
    """)
    r = receiver()
    make_stream(db, "big", r.url, processors=processors("app.check"),
                buffer_interval="1 hour")
    texts = ["rec-%d" % i for i in range(10000)]
    put_texts(db, "big", texts)
    flush(db, "big")

    assert r.records() == [(t + "x").encode() for t in texts if t != "rec-7777"]
    r.assert_no_violations()
    rows = failed(db, "big")
    assert [(row["data"], row["error_code"]) for row in rows] == \
        [(b"rec-7777", "Processor.FunctionError")]
    assert "is bad" in rows[0]["error_message"]
    # every record that did not raise was processed exactly once, as far as
    # its effects go: none lost to the rollback, none doubled by the retry
    assert db.q("SELECT count(*), count(DISTINCT record_id) FROM app.seen") == [(9999, 9999)]


@pytest.fixture
def plain_role(cluster, db):
    """A role that is no superuser; what it owns in db is dropped with it."""
    name = "fh_proc_%d" % os.getpid()
    cluster.psql('DROP ROLE IF EXISTS "%s"' % name)
    cluster.psql('CREATE ROLE "%s"' % name)
    yield name
    db.close_all()
    cluster.psql('DROP OWNED BY "%s"' % name, db=db.dbname)
    cluster.psql('DROP ROLE IF EXISTS "%s"' % name)


def test_function_runs_as_the_stream_owner_not_as_the_worker(db, receiver, plain_role, cluster):
    """A function of a non-superuser owner runs with the owner's rights: its
    ALTER ROLE ... SUPERUSER fails (that record alone), and current_user is
    the owner."""
    role = plain_role
    db.execute('CREATE SCHEMA app AUTHORIZATION "%s"' % role)
    db.execute('SET ROLE "%s"' % role)
    db.execute("""
        CREATE FUNCTION app.escalate(r firehose.record) RETURNS firehose.processed
        LANGUAGE plpgsql AS $f$
        BEGIN
            IF r.data = 'escalate'::bytea THEN
                ALTER ROLE "%s" SUPERUSER;
            END IF;
            RETURN ROW('Ok', convert_to(current_user || ':' || session_user, 'UTF8'),
                       NULL)::firehose.processed;
        END $f$;
    """ % role)
    db.execute("RESET ROLE")
    r = receiver()
    make_stream(db, "own", r.url, processors=processors("app.escalate"))
    db.execute("SELECT firehose.alter_stream_owner('own', %s)", (role,))
    put_texts(db, "own", ["escalate", "who"])
    flush(db, "own")

    assert db.one("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)) is False
    rows = failed(db, "own")
    assert [(row["data"], row["error_code"]) for row in rows] == \
        [(b"escalate", "Processor.FunctionError")]
    assert len(r.records()) == 1
    assert r.records()[0].decode().split(":")[0] == role
    db.execute("SELECT firehose.drop_stream('own')")


def test_processors_are_checked_at_create_and_alter(db, receiver):
    r = receiver()
    db.execute("""
        CREATE SCHEMA app;
        CREATE FUNCTION app.wrong(r firehose.record) RETURNS text
        LANGUAGE sql AS $$ SELECT 'x' $$;
        CREATE FUNCTION app.good(r firehose.record) RETURNS firehose.processed
        LANGUAGE sql AS $$ SELECT ROW('Ok', r.data, NULL)::firehose.processed $$;
    """)

    def error(procs):
        with pytest.raises(psycopg2.Error) as e:
            make_stream(db, "bad", r.url, processors=procs)
        return e.value.pgcode, e.value.diag.message_primary, e.value.diag.message_detail

    assert error(processors("app.missing"))[:2] == (
        "42883", "processor function app.missing(firehose.record) does not exist")
    assert error(processors("app.wrong"))[:2] == (
        "42P13", "processor function app.wrong(firehose.record) must return firehose.processed")
    code, msg, detail = error([{"type": "kinesis"}])
    assert (code, msg) == ("22023", 'option "processors" is not valid')
    assert 'unknown type "kinesis"' in detail
    code, msg, detail = error([{"type": "function", "function": "app.good", "x": 1}])
    assert 'unknown key "x"' in detail
    code, msg, detail = error({"type": "function", "function": "app.good"})
    assert "array" in detail
    assert error("app.good")[:2] == ("22023", 'option "processors" must be an array of processors '
                                      'such as [{"type": "function", "function": "myschema.transform"}]')

    # stored normalized, schema-qualified; null removes them
    make_stream(db, "good", r.url, processors=processors("app.good"))
    assert db.one("SELECT options->'processors' FROM firehose.streams WHERE name = 'good'") == \
        [{"type": "function", "function": "app.good"}]
    db.execute("SELECT firehose.alter_stream('good', '{\"processors\": null}')")
    assert db.one("SELECT options ? 'processors' FROM firehose.streams WHERE name = 'good'") is False
    with pytest.raises(psycopg2.Error) as e:
        db.execute("SELECT firehose.alter_stream('good', %s::jsonb)",
                   (json.dumps({"processors": processors("app.wrong")}),))
    assert e.value.pgcode == "42P13"


def test_function_dropped_after_create_fails_the_records(db, receiver):
    """A processor function dropped while the stream runs fails its records
    (they wait in failed_records for a redrive), it sends nothing."""
    db.execute("""
        CREATE SCHEMA app;
        CREATE FUNCTION app.gone(r firehose.record) RETURNS firehose.processed
        LANGUAGE sql AS $$ SELECT ROW('Ok', r.data, NULL)::firehose.processed $$;
    """)
    r = receiver()
    make_stream(db, "g", r.url, processors=processors("app.gone"))
    put_texts(db, "g", ["before"])
    flush(db, "g")
    assert r.records() == [b"before"]
    db.execute("DROP FUNCTION app.gone(firehose.record)")
    put_texts(db, "g", ["a", "b"])
    flush(db, "g")
    assert r.records() == [b"before"]
    rows = failed(db, "g")
    assert [row["data"] for row in rows] == [b"a", b"b"]
    assert all(row["error_code"].startswith("Processor.") for row in rows)


# -- around the processors: counters, before/after counts, redrive, backup -------------

GATE_FUNCTION = """
CREATE SCHEMA app;
CREATE TABLE app.gate (open boolean);
INSERT INTO app.gate VALUES (false);
-- drops 'drop...', fails 'fail...' while the gate is closed, appends '!' to the rest
CREATE FUNCTION app.gated(r firehose.record) RETURNS firehose.processed
LANGUAGE plpgsql AS $$
DECLARE
    t text := convert_from(r.data, 'UTF8');
BEGIN
    IF t LIKE 'drop%' THEN
        RETURN ROW('Dropped', NULL, NULL)::firehose.processed;
    ELSIF t LIKE 'fail%' AND NOT (SELECT open FROM app.gate) THEN
        RETURN ROW('ProcessingFailed', NULL, NULL)::firehose.processed;
    END IF;
    RETURN ROW('Ok', convert_to(t || '!', 'UTF8'), NULL)::firehose.processed;
END $$;
"""


def test_status_counts_dropped_and_failed_and_processing_time(db, receiver):
    db.execute(GATE_FUNCTION)
    r = receiver()
    make_stream(db, "cnt", r.url, processors=processors("app.gated"),
                buffer_interval="1 hour")
    texts = ["keep-%d" % i for i in range(7)] + ["drop-%d" % i for i in range(5)] + \
        ["fail-%d" % i for i in range(3)]
    put_texts(db, "cnt", texts)
    flush(db, "cnt")
    assert sorted(r.records()) == sorted(("keep-%d!" % i).encode() for i in range(7))
    row = db.q("SELECT delivered_records, failed_records, dropped_records, "
               "processing_failed_records, processing_us_per_record "
               "FROM firehose.stream_status WHERE stream = 'cnt'")[0]
    assert row[:4] == (12, 3, 5, 3)
    assert row[4] is not None and row[4] > 0

    # one part: 15 records read, 7 after processing, their bytes as sent
    assert db.q("SELECT records, bytes, records_after_processing, bytes_after_processing, "
                "failed_records FROM firehose.deliveries WHERE stream = 'cnt'") == \
        [(15, sum(len(t) for t in texts), 7, sum(len(t) + 1 for t in texts[:7]), 3)]

    # a stream without processors: before and after the same, no processing time
    make_stream(db, "plain", r.url)
    put_texts(db, "plain", ["a", "bb"])
    flush(db, "plain")
    assert db.q("SELECT records, bytes, records_after_processing, bytes_after_processing "
                "FROM firehose.deliveries WHERE stream = 'plain'") == [(2, 3, 2, 3)]
    assert db.q("SELECT dropped_records, processing_failed_records, processing_us_per_record "
                "FROM firehose.stream_status WHERE stream = 'plain'") == [(0, 0, None)]


def test_processing_failures_are_redriven_through_the_processors(db, receiver):
    db.execute(GATE_FUNCTION)
    r = receiver()
    make_stream(db, "rd", r.url, processors=processors("app.gated"))
    put_texts(db, "rd", ["keep", "fail-1", "fail-2"])
    flush(db, "rd")
    assert r.records() == [b"keep!"]
    assert [x["data"] for x in failed(db, "rd")] == [b"fail-1", b"fail-2"]

    db.execute("UPDATE app.gate SET open = true")
    assert db.one("SELECT firehose.redrive('rd')") == 2
    flush(db, "rd")
    assert failed(db, "rd") == []
    # the original data went through the processor again
    assert r.records() == [b"keep!", b"fail-1!", b"fail-2!"]
    r.assert_no_violations()


# -- the S3 backup of a stream with processors (the real S3 server) -----------------------

def error_docs(body):
    return [json.loads(x) for x in body.decode().splitlines()]


def test_backup_writes_processing_failures_under_processing_failed(db, s3, receiver):
    """Records a processor failed go to the backup as error records under
    !{firehose:error-output-type} = processing-failed, with their source data;
    delivery failures of the same part under the destination's own type,
    with the data that was sent."""
    db.execute(GATE_FUNCTION)
    r = receiver()
    b = s3.bucket()
    s3.http_stream("bp", r.url, processors=processors("app.gated"),
                   backup={"mode": "failed", "s3": s3.target(b)})
    put_texts(db, "bp", ["keep-1", "fail-1", "drop-1", "keep-2", "fail-2"])
    flush(db, "bp")
    assert r.records() == [b"keep-1!", b"keep-2!"]
    (key,) = wait_for_keys(s3, b, 1)
    assert key.startswith("processing-failed/"), key
    docs = error_docs(s3.get(b, key))
    assert [base64.b64decode(d["rawData"]) for d in docs] == [b"fail-1", b"fail-2"]
    assert {d["errorCode"] for d in docs} == {"Processor.ProcessingFailed"}
    assert all(d["attemptsMade"] == 1 for d in docs)

    # now the destination refuses: both kinds in one part, each under its type
    r.faults([{"status": 400, "error_message": "no"}])
    put_texts(db, "bp", ["keep-3", "fail-3"])
    flush(db, "bp")
    keys = wait_for_keys(s3, b, 3)
    assert len(keys) == 3
    (http_key,) = [k for k in keys if k.startswith("http-endpoint-failed/")]
    docs = error_docs(s3.get(b, http_key))
    assert [base64.b64decode(d["rawData"]) for d in docs] == [b"keep-3!"]
    assert docs[0]["errorCode"] == "HttpEndpoint.DestinationException"
    proc_keys = [k for k in keys if k.startswith("processing-failed/")]
    assert len(proc_keys) == 2
    raws = [base64.b64decode(d["rawData"]) for k in proc_keys for d in error_docs(s3.get(b, k))]
    assert sorted(raws) == [b"fail-1", b"fail-2", b"fail-3"]
    # failed_records keeps the source data of both, for a redrive
    assert sorted(x["data"] for x in failed(db, "bp")) == \
        [b"fail-1", b"fail-2", b"fail-3", b"keep-3"]


def test_backup_all_keeps_the_source_records(db, s3, receiver):
    """Mode all: the backup object holds the records as read, before the
    processors changed, dropped or failed them."""
    db.execute(GATE_FUNCTION)
    r = receiver()
    b = s3.bucket()
    s3.http_stream("ba", r.url, processors=processors("app.gated"),
                   backup={"mode": "all", "s3": s3.target(b)}, buffer_interval="1 hour")
    texts = ["keep-1", "drop-1", "fail-1", "keep-2"]
    put_texts(db, "ba", texts)
    flush(db, "ba")
    assert r.records() == [b"keep-1!", b"keep-2!"]
    keys = wait_for_keys(s3, b, 2)
    (all_key,) = [k for k in keys if not k.startswith("processing-failed/")]
    assert s3.get(b, all_key) == b"".join(t.encode() + b"\n" for t in texts)


def readme_block(marker):
    """The ```sql block of README.md that follows the line with marker."""
    with open(os.path.join(os.path.dirname(__file__), "..", "README.md")) as f:
        text = f.read()
    after = text[text.index(marker):]
    start = after.index("```sql\n") + len("```sql\n")
    return after[start:after.index("```\n", start)]


def test_readme_cdc_example(db, receiver):
    """The README's CDC example, run as written (its URL the receiver's):
    an update of last_seen alone is dropped, email is masked in both images."""
    r = receiver()
    sql = readme_block("<!-- cdc-example")
    assert "https://example.com/cdc" in sql
    db.execute(sql.replace("https://example.com/cdc", r.url))
    db.execute("INSERT INTO app.customers VALUES (1, 'Ada', 'ada@example.com', now())")
    db.execute("UPDATE app.customers SET last_seen = now() + interval '1 minute'")
    db.execute("UPDATE app.customers SET name = 'Ada L.'")
    db.execute("INSERT INTO app.customers VALUES (2, 'Bob', NULL, NULL)")
    flush(db, "customers_cdc")
    r.assert_no_violations()

    events = [json.loads(x) for x in r.records()]
    assert [e["op"] for e in events] == ["c", "u", "c"]
    md5 = db.one("SELECT md5('ada@example.com')")
    assert events[0]["after"]["email"] == md5
    assert events[1]["before"]["email"] == md5 and events[1]["after"]["email"] == md5
    assert (events[1]["before"]["name"], events[1]["after"]["name"]) == ("Ada", "Ada L.")
    assert events[2]["after"]["email"] is None
    assert not any("ada@example.com" in x.decode() for x in r.records())
    assert db.q("SELECT dropped_records, failed_records FROM firehose.stream_status "
                "WHERE stream = 'customers_cdc'") == [(1, 0)]
    db.execute("SELECT firehose.uncapture_table('app.customers')")
