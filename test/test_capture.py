"""Change capture: rows changed in captured tables arrive at an HTTP endpoint
as Debezium-style change events (firehose.capture(), firehose.capture_table()).

Each test captures tables into a stream with buffer_interval 0 and compares
the events the receiver got, decoded as JSON, with the rows PostgreSQL holds.
"""

import json
import time
from decimal import Decimal

import psycopg2

from helpers import make_stream


def events(db, receiver, stream):
    """Wait until what was committed is delivered; every event so far, decoded."""
    assert db.flush(stream, "60s") is True, "flush(%s) timed out" % stream
    receiver.assert_no_violations()
    return [json.loads(r, parse_float=Decimal) for r in receiver.records()]


def row_json(db, table, where):
    """What PostgreSQL's row_to_json makes of one row, decoded."""
    return json.loads(db.one("SELECT row_to_json(_row)::text FROM %s _row WHERE %s" % (table, where)),
                      parse_float=Decimal)


def in_transaction(db, statements):
    """Run statements in one transaction; return its pg_current_xact_id() and
    the client clock (ms) before and after."""
    conn = db.conn(autocommit=False)
    before = int(time.time() * 1000)
    with conn.cursor() as cur:
        for s in statements:
            cur.execute(s)
        cur.execute("SELECT pg_current_xact_id()::text::bigint")
        xid = cur.fetchone()[0]
    conn.commit()
    after = int(time.time() * 1000)
    conn.close()
    return xid, before, after


TYPES_TABLE = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TYPE point2 AS (x integer, label text);
CREATE TABLE typed (
    id     integer PRIMARY KEY,
    n      numeric,
    big    bigint,
    f      double precision,
    ok     boolean,
    t      text,
    ts     timestamptz,
    d      date,
    arr    integer[],
    tarr   text[],
    j      json,
    jb     jsonb,
    b      bytea,
    u      uuid,
    m      mood,
    pos    posint,
    pt     point2,
    g      integer GENERATED ALWAYS AS (id * 10) STORED,
    "Mixed Case" text,
    nul    text,
    secret text
)
"""


def test_insert_update_delete_truncate_arrive_as_envelopes(db, receiver):
    r = receiver()
    make_stream(db, "cdc", r.url)
    db.execute(TYPES_TABLE)
    db.execute("""SELECT firehose.capture_table('typed', 'cdc', '{"ignore": ["secret"]}')""")

    xid_c, c0, c1 = in_transaction(db, ["""
        INSERT INTO typed VALUES (1, 12345678901234567890.12345, 9007199254740993, 0.25, true,
            E'caf\\u00e9 "q" \\\\ \\n', '2024-02-29 12:34:56.789+00', '2024-02-29',
            '{1,NULL,3}', '{"a b",c}', '{"k": [1, "two", null]}', '{"z": 1, "a": {"b": false}}',
            '\\x00ff', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy', 7, ROW(3, 'p'),
            DEFAULT, 'mc', NULL, 'hunter2')"""])
    inserted = row_json(db, "typed", "id = 1")
    xid_u, u0, u1 = in_transaction(db, [
        "UPDATE typed SET n = 2.5, jb = jb || '{\"new\": [true]}', arr = arr || 4, secret = 'x'"])
    updated = row_json(db, "typed", "id = 1")
    xid_d, _, _ = in_transaction(db, ["DELETE FROM typed"])
    xid_t, _, _ = in_transaction(db, ["INSERT INTO typed (id) VALUES (2)", "TRUNCATE typed"])

    evs = events(db, r, "cdc")
    assert [e["op"] for e in evs] == ["c", "u", "d", "c", "t"]
    c, u, d, c2, t = evs

    # the row images are PostgreSQL's own JSON of the row, ignored column left out
    for image in (inserted, updated):
        assert image.pop("secret") in ("hunter2", "x")
    assert c["before"] is None and c["after"] == inserted
    assert u["before"] == inserted and u["after"] == updated
    assert d["before"] == updated and d["after"] is None
    assert t["before"] is None and t["after"] is None

    # and each type is what a consumer expects
    a = c["after"]
    assert list(a) == ["id", "n", "big", "f", "ok", "t", "ts", "d", "arr", "tarr", "j", "jb",
                       "b", "u", "m", "pos", "pt", "g", "Mixed Case", "nul"]
    assert a["n"] == Decimal("12345678901234567890.12345")
    assert a["big"] == 9007199254740993
    assert a["f"] == Decimal("0.25") and a["ok"] is True
    assert a["t"] == 'caf\u00e9 "q" \\ \n'
    assert a["ts"].startswith("2024-02-29T") and a["d"] == "2024-02-29"
    assert a["arr"] == [1, None, 3] and a["tarr"] == ["a b", "c"]
    assert a["j"] == {"k": [1, "two", None]}
    assert a["jb"] == {"a": {"b": False}, "z": 1}
    assert a["b"] == "\\x00ff"
    assert a["u"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert a["m"] == "happy" and a["pos"] == 7 and a["pt"] == {"x": 3, "label": "p"}
    assert a["g"] == 10 and a["Mixed Case"] == "mc" and a["nul"] is None
    assert u["after"]["jb"] == {"a": {"b": False}, "z": 1, "new": [True]}
    assert u["after"]["arr"] == [1, None, 3, 4] and u["after"]["n"] == Decimal("2.5")

    # the envelope
    for e, xid in ((c, xid_c), (u, xid_u), (d, xid_d), (c2, xid_t), (t, xid_t)):
        assert list(e) == ["before", "after", "op", "ts_ms", "source"]
        assert e["source"] == {"version": "firehose-0.1.0", "connector": "firehose",
                               "db": db.dbname, "schema": "public", "table": "typed",
                               "txId": xid, "ts_ms": e["ts_ms"]}
    assert c0 - 5 <= c["ts_ms"] <= c1 + 5
    assert u0 - 5 <= u["ts_ms"] <= u1 + 5


def test_rolled_back_changes_deliver_nothing(db, receiver):
    r = receiver()
    make_stream(db, "rb", r.url)
    db.execute("CREATE TABLE acct (id integer PRIMARY KEY, v text)")
    db.execute("SELECT firehose.capture_table('acct', 'rb')")

    conn = db.conn(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO acct VALUES (1, 'rolled back')")
        cur.execute("TRUNCATE acct")
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute("INSERT INTO acct VALUES (2, 'kept')")
        cur.execute("SAVEPOINT s")
        cur.execute("UPDATE acct SET v = 'undone'")
        cur.execute("DELETE FROM acct")
        cur.execute("ROLLBACK TO SAVEPOINT s")
        cur.execute("UPDATE acct SET v = 'kept too'")
    conn.commit()
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO acct VALUES (3, 'fails')")
            cur.execute("INSERT INTO acct VALUES (3, 'duplicate key')")
    except psycopg2.IntegrityError:
        conn.rollback()
    else:
        raise AssertionError("duplicate key was accepted")

    evs = events(db, r, "rb")
    assert [(e["op"], e["before"], e["after"]) for e in evs] == [
        ("c", None, {"id": 2, "v": "kept"}),
        ("u", {"id": 2, "v": "kept"}, {"id": 2, "v": "kept too"}),
    ]
    assert db.one("SELECT delivered_records FROM firehose.stream_status WHERE stream = 'rb'") == 2


def test_changes_of_one_transaction_share_its_txid(db, receiver):
    r = receiver()
    make_stream(db, "tx", r.url)
    db.execute("CREATE TABLE orders (id integer PRIMARY KEY, total numeric)")
    db.execute("CREATE TABLE lines (order_id integer, sku text, qty integer)")
    db.execute("SELECT firehose.capture_table('orders', 'tx')")
    db.execute("SELECT firehose.capture_table('lines', 'tx', %s::jsonb)",
               (json.dumps({"operations": ["insert"]}),))

    xid1, _, _ = in_transaction(db, [
        "INSERT INTO orders VALUES (1, 0)",
        "INSERT INTO lines SELECT 1, 'sku' || i, i FROM generate_series(1, 3) i",
        "SAVEPOINT a",
        "UPDATE orders SET total = 9.99 WHERE id = 1",
        "RELEASE SAVEPOINT a",
        "DELETE FROM lines WHERE qty = 2",    # not captured: operations
    ])
    xid2, _, _ = in_transaction(db, ["UPDATE orders SET total = 10 WHERE id = 1"])
    assert xid1 != xid2

    evs = events(db, r, "tx")
    assert [(e["source"]["table"], e["op"]) for e in evs] == [
        ("orders", "c"), ("lines", "c"), ("lines", "c"), ("lines", "c"),
        ("orders", "u"), ("orders", "u")]
    assert {e["source"]["txId"] for e in evs[:5]} == {xid1}
    assert evs[5]["source"]["txId"] == xid2
    assert [e["after"]["sku"] for e in evs[1:4]] == ["sku1", "sku2", "sku3"]
    assert evs[4]["after"]["total"] == Decimal("9.99")
    ts = [e["ts_ms"] for e in evs]
    assert ts == sorted(ts)


def test_writer_without_firehose_privileges_is_captured(db, receiver):
    r = receiver()
    make_stream(db, "priv", r.url)
    role = "capture_writer_%s" % db.dbname
    db.execute("CREATE TABLE notes (id integer, body text)")
    db.execute("SELECT firehose.capture_table('notes', 'priv', %s::jsonb)",
               (json.dumps({"skip_unchanged": True, "ignore": ["body"]}),))
    db.execute('CREATE ROLE "%s"' % role)
    try:
        db.execute('GRANT INSERT, UPDATE ON notes TO "%s"' % role)
        assert db.one("SELECT has_function_privilege(%s, 'firehose.capture()', 'EXECUTE') OR "
                      "has_function_privilege(%s, 'firehose.put(text, text)', 'EXECUTE')",
                      (role, role)) is False
        conn = db.conn()
        with conn.cursor() as cur:
            cur.execute('SET ROLE "%s"' % role)
            cur.execute("INSERT INTO notes VALUES (1, 'a')")
            cur.execute("UPDATE notes SET body = 'b'")    # only an ignored column: skipped
            cur.execute("UPDATE notes SET id = 2")
        conn.close()
        evs = events(db, r, "priv")
        assert [(e["op"], e["before"], e["after"]) for e in evs] == [
            ("c", None, {"id": 1}), ("u", {"id": 1}, {"id": 2})]
    finally:
        db.execute('DROP OWNED BY "%s"' % role)
        db.execute('DROP ROLE "%s"' % role)
