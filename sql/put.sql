--
-- put and put_batch: types, ids, limits, errors, and transactions.
--
-- The streams here point at a port nobody listens on, with a one-day buffer
-- interval and two hours of retries, so nothing they hold is delivered or
-- failed while the test runs.  The worker may still cut a batch (records
-- move from buffered to in flight), so counts are taken as
-- buffered + in_flight ("pending") and incoming, which do not depend on it.
--
\set SHOW_CONTEXT never

CREATE FUNCTION pg_temp.pending(stream text,
    OUT pending_records bigint, OUT pending_bytes bigint,
    OUT incoming_records bigint, OUT incoming_bytes bigint,
    OUT delivered_records bigint, OUT failed_records bigint)
LANGUAGE sql AS $$
    SELECT buffered_records + in_flight_records, buffered_bytes + in_flight_bytes,
           incoming_records, incoming_bytes, delivered_records, failed_records
      FROM firehose.stream_status WHERE stream = pending.stream
$$;

SELECT firehose.create_stream('events', 'http', '{
    "url": "http://127.0.0.1:9/", "buffer_interval": "1 day", "buffer_size": "1GB",
    "retry_duration": "2 hours", "retry_base": "1 hour", "retry_max": "1 day",
    "max_record_size": 100}');
SELECT * FROM pg_temp.pending('events');

--
-- put() takes bytea, text and jsonb and returns increasing record ids
--
SELECT firehose.put('events', '\x00ff01'::bytea) AS id1 \gset
SELECT firehose.put('events', 'hello'::text) AS id2 \gset
SELECT firehose.put('events', '{"b": 1, "a": [true, null]}'::jsonb) AS id3 \gset
SELECT firehose.put('events', 'untyped literal is text') AS id4 \gset
SELECT :id1 > 0 AS positive, :id1 < :id2 AND :id2 < :id3 AND :id3 < :id4 AS increasing;
-- bytes: 3 + 5 + 27 (jsonb as text: '{"a": [true, null], "b": 1}') + 23 = 58
SELECT * FROM pg_temp.pending('events');
SELECT length('{"b": 1, "a": [true, null]}'::jsonb::text) AS jsonb_text_length;
-- one statement, many records
SELECT count(DISTINCT firehose.put('events', 'row ' || i)) AS distinct_ids
  FROM generate_series(1, 10) i;
SELECT * FROM pg_temp.pending('events');
-- empty records are records
SELECT firehose.put('events', ''::text) > 0 AS put_empty_text,
       firehose.put('events', ''::bytea) > 0 AS put_empty_bytea,
       firehose.put('events', 'null'::jsonb) > 0 AS put_json_null;
SELECT * FROM pg_temp.pending('events');
-- other types need a cast
SELECT firehose.put('events', '{"a": 1}'::json);
SELECT firehose.put('events', 42);

--
-- put_batch() takes arrays of the same types and returns the number put
--
SELECT firehose.put_batch('events', ARRAY['a', 'bb', 'ccc']);
SELECT firehose.put_batch('events', ARRAY['\x01'::bytea, '\x0203']);
SELECT firehose.put_batch('events', ARRAY['{"k": 1}'::jsonb, '[1, 2]']);
SELECT firehose.put_batch('events', '{}'::text[]);
SELECT firehose.put_batch('events', ARRAY(SELECT 'item ' || i FROM generate_series(1, 100) i));
SELECT * FROM pg_temp.pending('events');
SELECT firehose.put_batch('events', ARRAY[1, 2]);

--
-- Unknown streams: SQLSTATE 42704 with a hint
--
SELECT firehose.put('nope', 'x'::text);
SELECT firehose.put_batch('nope', ARRAY['x']);
SELECT firehose.put(repeat('n', 65), 'x'::text);
SELECT firehose.put('Events', 'x'::text);

--
-- NULLs are errors (22004)
--
SELECT firehose.put(NULL, 'x'::text);
SELECT firehose.put('events', NULL::text);
SELECT firehose.put('events', NULL::bytea);
SELECT firehose.put('events', NULL::jsonb);
SELECT firehose.put_batch('events', NULL::text[]);
SELECT firehose.put_batch('events', ARRAY['a', NULL, 'c']);
SELECT firehose.put_batch(NULL, ARRAY['a']);
-- none of the failed calls put anything
SELECT * FROM pg_temp.pending('events');

--
-- max_record_size (100 bytes here): 54000, with the sizes
--
SELECT firehose.put('events', repeat('x', 100)) > 0 AS at_the_limit;
SELECT firehose.put('events', repeat('x', 101));
SELECT firehose.put('events', convert_to(repeat('x', 200), 'UTF8'));
-- jsonb is measured as its text: 101 bytes
SELECT firehose.put('events', jsonb_build_object('k', repeat('x', 92)));
-- multibyte text is measured in bytes: 51 x 2 bytes
SELECT firehose.put('events', repeat(chr(233), 51));
-- one record too large fails the whole batch
SELECT firehose.put_batch('events', ARRAY['ok', repeat('x', 101), 'ok']);
SELECT * FROM pg_temp.pending('events');
-- the limit follows alter_stream at once
SELECT firehose.alter_stream('events', '{"max_record_size": 5}');
SELECT firehose.put('events', 'too long'::text);
SELECT firehose.alter_stream('events', '{"max_record_size": null}');
SELECT firehose.put('events', repeat('x', 1000)) > 0 AS default_limit_is_1024000;

--
-- max_buffered_bytes: 53000 when the records not yet delivered would pass it
--
SELECT firehose.create_stream('small', 'http', '{
    "url": "http://127.0.0.1:9/", "buffer_interval": "1 day",
    "retry_duration": "2 hours", "retry_base": "1 hour", "max_buffered_bytes": 20}');
SELECT firehose.put('small', '0123456789'::text) > 0 AS put_10;
SELECT firehose.put('small', '01234567'::text) > 0 AS put_8;
SELECT firehose.put('small', '012'::text);
SELECT firehose.put('small', '01'::text) > 0 AS put_2_reaches_20;
SELECT firehose.put('small', ''::text) > 0 AS put_empty_still_fits;
SELECT firehose.put('small', 'x'::text);
SELECT * FROM pg_temp.pending('small');
-- records put earlier in the same transaction count too
SELECT firehose.alter_stream('small', '{"max_buffered_bytes": 30}');
BEGIN;
SELECT firehose.put('small', '012345'::text) > 0 AS put_6;
SELECT firehose.put('small', '01234'::text);
ROLLBACK;
-- put_batch checks every record
SELECT firehose.put_batch('small', ARRAY['0123', '0123', '0123']);
SELECT * FROM pg_temp.pending('small');
SELECT firehose.alter_stream('small', '{"max_buffered_bytes": 0}');
SELECT firehose.put_batch('small', ARRAY['0123', '0123', '0123']);
SELECT * FROM pg_temp.pending('small');

--
-- Transactions: only committed records count
--
SELECT firehose.create_stream('tx', 'http', '{
    "url": "http://127.0.0.1:9/", "buffer_interval": "1 day",
    "retry_duration": "2 hours", "retry_base": "1 hour"}');
BEGIN;
SELECT firehose.put('tx', 'aaaa'::text) > 0 AS put;
-- not counted before commit, not even in the putting session
SELECT * FROM pg_temp.pending('tx');
ROLLBACK;
SELECT * FROM pg_temp.pending('tx');
BEGIN;
SELECT firehose.put('tx', '1'::text) > 0 AS put_1;
SAVEPOINT a;
SELECT firehose.put_batch('tx', ARRAY['22', '22']);
ROLLBACK TO SAVEPOINT a;
SELECT firehose.put('tx', '333'::text) > 0 AS put_333;
SAVEPOINT b;
SELECT firehose.put('tx', '4444'::text) > 0 AS put_4444;
RELEASE SAVEPOINT b;
SAVEPOINT c;
SAVEPOINT d;
SELECT firehose.put('tx', '55555'::text) > 0 AS put_55555;
RELEASE SAVEPOINT d;
ROLLBACK TO SAVEPOINT c;
SELECT * FROM pg_temp.pending('tx');
COMMIT;
-- 1 + 333 + 4444
SELECT * FROM pg_temp.pending('tx');
-- an error aborts the transaction and its records
BEGIN;
SELECT firehose.put('tx', 'lost'::text) > 0 AS put;
SELECT 1 / 0;
COMMIT;
SELECT * FROM pg_temp.pending('tx');
-- a PL/pgSQL exception block is a subtransaction
DO $$
BEGIN
    PERFORM firehose.put('tx', 'kept'::text);
    BEGIN
        PERFORM firehose.put('tx', 'lost in block'::text);
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN
        RAISE NOTICE 'caught: %', SQLERRM;
    END;
END
$$;
SELECT * FROM pg_temp.pending('tx');
-- records of several streams in one transaction
BEGIN;
SELECT firehose.put('tx', 'x'::text) > 0 AS put_tx, firehose.put('small', 'y'::text) > 0 AS put_small;
COMMIT;
SELECT stream, buffered_records + in_flight_records AS pending_records
  FROM firehose.stream_status WHERE stream IN ('tx', 'small') ORDER BY stream;
-- a stream created in the same transaction
BEGIN;
SELECT firehose.create_stream('fresh', 'http', '{
    "url": "http://127.0.0.1:9/", "buffer_interval": "1 day",
    "retry_duration": "2 hours", "retry_base": "1 hour"}');
SELECT firehose.put('fresh', 'first'::text) > 0 AS put;
COMMIT;
SELECT * FROM pg_temp.pending('fresh');
-- a stream dropped in another statement is gone for put at once
SELECT firehose.drop_stream('fresh', force => true);
SELECT firehose.put('fresh', 'x'::text);

--
-- SQLSTATEs
--
SELECT firehose.alter_stream('small', '{"max_buffered_bytes": 20}');
SELECT stmt, sqlstate_of(stmt)
  FROM (VALUES
    ($$SELECT firehose.put('nope', 'x'::text)$$),
    ($$SELECT firehose.put('nope', 'x'::bytea)$$),
    ($$SELECT firehose.put('nope', '1'::jsonb)$$),
    ($$SELECT firehose.put_batch('nope', ARRAY['x'])$$),
    ($$SELECT firehose.put(NULL, 'x'::text)$$),
    ($$SELECT firehose.put('events', NULL::text)$$),
    ($$SELECT firehose.put_batch('events', ARRAY[NULL::text])$$),
    ($$SELECT firehose.put('events', repeat('x', 1024001))$$),
    ($$SELECT firehose.put('small', repeat('x', 100))$$)
  ) v(stmt);

SELECT firehose.drop_stream(name, force => true) FROM firehose.streams
 WHERE name IN ('events', 'small', 'tx') ORDER BY name;
