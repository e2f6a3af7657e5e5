-- firehose.capture(), capture_table(), uncapture_table(): change events.
--
-- The stream's buffer interval is an hour, so nothing is cut or delivered
-- while this runs: the events are read straight from the stream's staging
-- tables, with the ts_ms and txId values (which change from run to run)
-- replaced by "_".
\set SHOW_CONTEXT never
SELECT firehose.create_stream('capture', 'http',
    '{"url": "http://127.0.0.1:9/capture", "buffer_interval": "1 hour"}');

-- the events staged since the last call, oldest first
CREATE FUNCTION capture_events(raw boolean DEFAULT false) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    sid integer := (SELECT id FROM firehose.stream WHERE name = 'capture');
    seen bigint := coalesce(nullif(current_setting('capture.seen', true), ''), '0')::bigint;
    r record;
BEGIN
    FOR r IN EXECUTE format(
        'SELECT id, convert_from(data, ''UTF8'') AS event FROM ('
        'SELECT id, data FROM firehose.stage_%1$s_0 UNION ALL '
        'SELECT id, data FROM firehose.stage_%1$s_1 UNION ALL '
        'SELECT id, data FROM firehose.stage_%1$s_2) s WHERE id > $1 ORDER BY id', sid)
        USING seen
    LOOP
        PERFORM set_config('capture.seen', r.id::text, false);
        IF raw THEN
            RETURN NEXT r.event;
        ELSE
            RETURN NEXT regexp_replace(r.event, '"(ts_ms|txId)":[0-9]+', '"\1":_', 'g');
        END IF;
    END LOOP;
END
$$;

-- every column type comes out as PostgreSQL writes it in JSON
CREATE TYPE cap_mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN cap_posint AS integer CHECK (VALUE > 0);
CREATE TYPE cap_point AS (x integer, label text);
CREATE TABLE cap_types (
    id        integer PRIMARY KEY,
    n         numeric,
    f         double precision,
    ok        boolean,
    t         text,
    ts        timestamptz,
    tsn       timestamp,
    d         date,
    iv        interval,
    arr       integer[],
    tarr      text[],
    j         json,
    jb        jsonb,
    b         bytea,
    u         uuid,
    mood      cap_mood,
    pos       cap_posint,
    pt        cap_point,
    g         integer GENERATED ALWAYS AS (id * 10) STORED,
    "Odd ""name""" text,
    nothing   text
);
SELECT firehose.capture_table('cap_types', 'capture');
INSERT INTO cap_types VALUES (1, 12345678901234567890.123, 1.5e-3, true, E'line\nbreak "quoted" \\ é',
    '2024-02-29 12:34:56.789+00', '2024-02-29 12:34:56', '2024-02-29', '1 day 2 hours',
    '{1,NULL,3}', '{"a b",c}', '{"k": [1, "two", null]}', '{"z": 1, "a": {"b": false}}',
    '\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy', 7, ROW(3, 'p'),
    DEFAULT, 'odd', NULL);
SELECT * FROM capture_events();
-- numbers that JSON cannot hold are strings
INSERT INTO cap_types (id, n, f) VALUES (2, 'NaN', '-Infinity');
SELECT * FROM capture_events();

-- insert, update, delete, truncate
CREATE TABLE cap_t (id integer PRIMARY KEY, v text, updated_at timestamptz, secret text);
SELECT firehose.capture_table('cap_t', 'capture');
INSERT INTO cap_t VALUES (1, 'one', '2024-01-01 00:00:00+00', 'pw1'), (2, 'two', NULL, 'pw2');
UPDATE cap_t SET v = 'uno' WHERE id = 1;
DELETE FROM cap_t WHERE id = 2;
TRUNCATE cap_t;
SELECT * FROM capture_events();

-- ts_ms is the statement's start, txId the top-level transaction's id
BEGIN;
SAVEPOINT a;
INSERT INTO cap_t VALUES (10, 'ten');
SELECT (e->>'ts_ms')::bigint = (e->'source'->>'ts_ms')::bigint AS same_ts,
       (e->>'ts_ms')::bigint BETWEEN floor(extract(epoch FROM now()) * 1000)
                             AND floor(extract(epoch FROM clock_timestamp()) * 1000) AS ts_in_txn,
       (e->'source'->>'txId')::xid8 = pg_current_xact_id() AS txid
  FROM (SELECT e::json FROM capture_events(raw => true) e) s(e);
COMMIT;
DO $$
DECLARE
    e json;
BEGIN
    INSERT INTO cap_t VALUES (11, 'eleven');
    SELECT x::json INTO e FROM capture_events(raw => true) x;
    RAISE NOTICE 'ts_ms is statement_timestamp(): %',
        (e->>'ts_ms')::bigint = floor(extract(epoch FROM statement_timestamp()) * 1000);
END
$$;

-- a rolled-back change stages nothing; a rolled-back savepoint takes its
-- changes with it
BEGIN;
INSERT INTO cap_t VALUES (20, 'rolled back');
ROLLBACK;
BEGIN;
INSERT INTO cap_t VALUES (21, 'kept');
SAVEPOINT s;
UPDATE cap_t SET v = 'undone' WHERE id = 21;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT * FROM capture_events();

-- ignore= leaves columns out; skip_unchanged drops updates that change
-- nothing else
SELECT firehose.capture_table('cap_t', 'capture',
    '{"ignore": ["updated_at", "secret"], "skip_unchanged": true}');
UPDATE cap_t SET updated_at = '2024-06-01 00:00:00+00', secret = 'new' WHERE id = 21;
UPDATE cap_t SET v = v WHERE id = 21;
UPDATE cap_t SET v = 'changed', secret = 'newer' WHERE id = 21;
SELECT * FROM capture_events();
-- without skip_unchanged, every update is an event
SELECT firehose.capture_table('cap_t', 'capture', '{"ignore": ["secret"]}');
UPDATE cap_t SET secret = 'x' WHERE id = 21;
SELECT * FROM capture_events();

-- operations picks the triggers
SELECT firehose.capture_table('cap_t', 'capture', '{"operations": ["update", "insert"]}');
SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger
 WHERE tgrelid = 'cap_t'::regclass ORDER BY tgname;
INSERT INTO cap_t VALUES (30, 'thirty');
DELETE FROM cap_t WHERE id = 30;
TRUNCATE cap_t;
SELECT * FROM capture_events();
SELECT firehose.capture_table('cap_t', 'capture', '{"operations": ["truncate"]}');
SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger
 WHERE tgrelid = 'cap_t'::regclass ORDER BY tgname;

-- uncapture_table drops the triggers
SELECT firehose.uncapture_table('cap_t');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'cap_t'::regclass;
INSERT INTO cap_t VALUES (40, 'not captured');
SELECT * FROM capture_events();

-- hand-made triggers: several key=value arguments, a comma list in ignore=
CREATE TABLE cap_hand (id integer, a text, b text, c text);
CREATE TRIGGER cap_hand AFTER INSERT OR UPDATE ON cap_hand FOR EACH ROW
    EXECUTE FUNCTION firehose.capture('capture', 'ignore=a, b', 'skip_unchanged=on');
INSERT INTO cap_hand VALUES (1, 'a', 'b', 'c');
UPDATE cap_hand SET a = 'A', b = 'B';
SELECT * FROM capture_events();
-- a trigger's state is kept for the session: a replaced trigger and an
-- altered table are seen by the next statement
INSERT INTO cap_hand VALUES (2, 'a', 'b', 'c');
CREATE OR REPLACE TRIGGER cap_hand AFTER INSERT OR UPDATE ON cap_hand FOR EACH ROW
    EXECUTE FUNCTION firehose.capture('capture', 'ignore=c');
INSERT INTO cap_hand VALUES (3, 'a', 'b', 'c');
ALTER TABLE cap_hand ADD COLUMN d text DEFAULT 'd';
INSERT INTO cap_hand VALUES (4, 'a', 'b', 'c');
SELECT * FROM capture_events();
-- a renamed schema is seen too (it invalidates no relcache entry)
CREATE SCHEMA cap_ns;
ALTER TABLE cap_hand SET SCHEMA cap_ns;
INSERT INTO cap_ns.cap_hand VALUES (5, 'a', 'b', 'c');
ALTER SCHEMA cap_ns RENAME TO cap_ns2;
INSERT INTO cap_ns2.cap_hand VALUES (6, 'a', 'b', 'c');
SELECT * FROM capture_events();
DROP SCHEMA cap_ns2 CASCADE;

-- columns added with a default, dropped columns, TOASTed values
CREATE TABLE cap_alt (id integer, gone text, big text);
ALTER TABLE cap_alt ALTER COLUMN big SET STORAGE EXTERNAL;
INSERT INTO cap_alt VALUES (1, 'x', repeat('0123456789', 300));
ALTER TABLE cap_alt ADD COLUMN added integer DEFAULT 42;
ALTER TABLE cap_alt DROP COLUMN gone;
SELECT firehose.capture_table('cap_alt', 'capture');
UPDATE cap_alt SET id = 2;
SELECT e->'before'->>'id' AS before_id, e->'after'->>'id' AS after_id,
       length(e->'before'->>'big') AS before_big, length(e->'after'->>'big') AS after_big,
       e->'before'->'added' AS before_added, e->'before' ? 'gone' AS has_gone
  FROM (SELECT e::jsonb FROM capture_events(raw => true) e) s(e);
-- the same through the projection that ignore= makes
SELECT firehose.capture_table('cap_alt', 'capture', '{"ignore": ["added"]}');
UPDATE cap_alt SET id = 3;
SELECT e->'before'->>'id' AS before_id, e->'after'->>'id' AS after_id,
       length(e->'before'->>'big') AS before_big, length(e->'after'->>'big') AS after_big,
       e->'before' ? 'added' AS has_added
  FROM (SELECT e::jsonb FROM capture_events(raw => true) e) s(e);

-- partitioned tables: rows name their partition, TRUNCATE the parent
CREATE TABLE cap_part (id integer, v text) PARTITION BY RANGE (id);
CREATE TABLE cap_part_1 PARTITION OF cap_part FOR VALUES FROM (0) TO (10);
SELECT firehose.capture_table('cap_part', 'capture');
CREATE TABLE cap_part_2 PARTITION OF cap_part FOR VALUES FROM (10) TO (20);
INSERT INTO cap_part VALUES (1, 'a'), (11, 'b');
TRUNCATE cap_part;
SELECT * FROM capture_events();
SELECT firehose.uncapture_table('cap_part');

-- whoever writes to a captured table needs no privilege on firehose (not
-- even EXECUTE on firehose.capture() or firehose.put()); creating a capture
-- trigger needs EXECUTE on firehose.capture()
CREATE ROLE regress_capture_writer;
SELECT has_function_privilege('regress_capture_writer', 'firehose.capture()', 'EXECUTE') AS can_capture,
       has_function_privilege('regress_capture_writer', 'firehose.put(text, text)', 'EXECUTE') AS can_put;
CREATE TABLE cap_priv (id integer, v text);
SELECT firehose.capture_table('cap_priv', 'capture');
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON cap_priv TO regress_capture_writer;
SET ROLE regress_capture_writer;
INSERT INTO cap_priv VALUES (1, 'by writer');
UPDATE cap_priv SET v = 'again';
DELETE FROM cap_priv;
TRUNCATE cap_priv;
CREATE TEMP TABLE cap_mine (id integer);
CREATE TRIGGER cap_mine AFTER INSERT ON cap_mine FOR EACH ROW
    EXECUTE FUNCTION firehose.capture('capture');
DROP TABLE cap_mine;
RESET ROLE;
SELECT * FROM capture_events();

-- misuse of the trigger
CREATE TABLE cap_bad (id integer, v text);
CREATE TRIGGER cap_bad BEFORE INSERT ON cap_bad FOR EACH ROW EXECUTE FUNCTION firehose.capture('capture');
INSERT INTO cap_bad VALUES (1);
DROP TRIGGER cap_bad ON cap_bad;
CREATE TRIGGER cap_bad BEFORE TRUNCATE ON cap_bad FOR EACH STATEMENT EXECUTE FUNCTION firehose.capture('capture');
TRUNCATE cap_bad;
DROP TRIGGER cap_bad ON cap_bad;
CREATE TRIGGER cap_bad AFTER INSERT ON cap_bad FOR EACH STATEMENT EXECUTE FUNCTION firehose.capture('capture');
INSERT INTO cap_bad VALUES (1);
DROP TRIGGER cap_bad ON cap_bad;
CREATE TRIGGER cap_bad AFTER INSERT ON cap_bad FOR EACH ROW EXECUTE FUNCTION firehose.capture();
INSERT INTO cap_bad VALUES (1);
DROP TRIGGER cap_bad ON cap_bad;
CREATE TRIGGER cap_bad AFTER INSERT ON cap_bad FOR EACH ROW EXECUTE FUNCTION firehose.capture('no_such_stream');
INSERT INTO cap_bad VALUES (1);
DROP TRIGGER cap_bad ON cap_bad;
CREATE TRIGGER cap_bad AFTER INSERT ON cap_bad FOR EACH ROW EXECUTE FUNCTION firehose.capture('capture', 'ignore');
INSERT INTO cap_bad VALUES (1);
DROP TRIGGER cap_bad ON cap_bad;
CREATE TRIGGER cap_bad AFTER INSERT ON cap_bad FOR EACH ROW EXECUTE FUNCTION firehose.capture('capture', 'when=id > 1');
INSERT INTO cap_bad VALUES (1);
DROP TRIGGER cap_bad ON cap_bad;
CREATE TRIGGER cap_bad AFTER INSERT ON cap_bad FOR EACH ROW EXECUTE FUNCTION firehose.capture('capture', 'ignore=v,w');
INSERT INTO cap_bad VALUES (1);
DROP TRIGGER cap_bad ON cap_bad;
CREATE TRIGGER cap_bad AFTER INSERT ON cap_bad FOR EACH ROW EXECUTE FUNCTION firehose.capture('capture', 'skip_unchanged=maybe');
INSERT INTO cap_bad VALUES (1);
DROP TRIGGER cap_bad ON cap_bad;
-- a record over max_record_size fails the change (its size varies with
-- the digits of txId: show the SQLSTATE only)
SELECT firehose.alter_stream('capture', '{"max_record_size": 300}');
CREATE TRIGGER cap_bad AFTER INSERT ON cap_bad FOR EACH ROW EXECUTE FUNCTION firehose.capture('capture');
\set VERBOSITY sqlstate
INSERT INTO cap_bad VALUES (1, repeat('x', 300));
\set VERBOSITY default
SELECT firehose.alter_stream('capture', '{"max_record_size": 1024000}');
DROP TRIGGER cap_bad ON cap_bad;
SELECT firehose.capture();

-- capture_table() checks its arguments
CREATE VIEW cap_view AS SELECT * FROM cap_bad;
SELECT firehose.capture_table(NULL, 'capture');
SELECT firehose.capture_table('cap_bad', NULL);
SELECT firehose.capture_table('cap_bad', 'no_such_stream');
SELECT firehose.capture_table('cap_view', 'capture');
SELECT firehose.capture_table('cap_bad', 'capture', '["ignore"]');
SELECT firehose.capture_table('cap_bad', 'capture', '{"ignored": ["v"]}');
SELECT firehose.capture_table('cap_bad', 'capture', '{"ignore": "v"}');
SELECT firehose.capture_table('cap_bad', 'capture', '{"ignore": [1]}');
SELECT firehose.capture_table('cap_bad', 'capture', '{"ignore": ["v", "w"]}');
SELECT firehose.capture_table('cap_bad', 'capture', '{"operations": "insert"}');
SELECT firehose.capture_table('cap_bad', 'capture', '{"operations": ["insert", "upsert"]}');
SELECT firehose.capture_table('cap_bad', 'capture', '{"operations": []}');
SELECT firehose.capture_table('cap_bad', 'capture', '{"skip_unchanged": "yes"}');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'cap_bad'::regclass;
SELECT firehose.uncapture_table('cap_bad');
-- creating a trigger needs the TRIGGER privilege on the table
SET ROLE regress_capture_writer;
SELECT firehose.capture_table('cap_bad', 'capture');
RESET ROLE;
GRANT EXECUTE ON FUNCTION firehose.capture_table(regclass, text, jsonb),
    firehose.uncapture_table(regclass) TO regress_capture_writer;
SELECT firehose.capture_table('cap_t', 'capture');
-- capturing into a stream needs to be its owner (or a member, or a superuser)
SET ROLE regress_capture_writer;
SELECT firehose.capture_table('cap_bad', 'capture');
RESET ROLE;
SELECT firehose.alter_stream_owner('capture', 'regress_capture_writer');
SET ROLE regress_capture_writer;
SELECT firehose.capture_table('cap_bad', 'capture');
SELECT firehose.uncapture_table('cap_t');
RESET ROLE;
SELECT firehose.alter_stream_owner('capture', current_user::regrole);
SELECT firehose.uncapture_table('cap_t');

SELECT * FROM capture_events();
-- a stream that capture triggers feed cannot be dropped, even with force
SELECT firehose.drop_stream('capture', force => true);
DROP TABLE cap_types, cap_t, cap_alt, cap_part, cap_priv, cap_bad CASCADE;
SELECT firehose.drop_stream('capture', force => true);
DROP TYPE cap_mood, cap_point;
DROP DOMAIN cap_posint;
DROP FUNCTION capture_events(boolean);
REVOKE ALL ON FUNCTION firehose.capture_table(regclass, text, jsonb),
    firehose.uncapture_table(regclass) FROM regress_capture_writer;
DROP ROLE regress_capture_writer;
