--
-- zz_extension: DROP EXTENSION takes every stream with it, and a new
-- CREATE EXTENSION starts from nothing.
--
-- pg_regress runs all tests in one database; this one drops and creates the
-- extension they share, so its name sorts it last.
--
\set SHOW_CONTEXT never

SELECT extname, extversion, n.nspname AS schema, extrelocatable
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'firehose';

SELECT firehose.create_stream('first', 'http', '{
    "url": "http://127.0.0.1:9/", "buffer_interval": "1 day",
    "retry_duration": "2 hours", "retry_base": "1 hour"}');
SELECT firehose.create_stream('second', 'http', '{
    "url": "http://127.0.0.1:9/", "buffer_interval": "1 day",
    "retry_duration": "2 hours", "retry_base": "1 hour"}');
SELECT firehose.put_batch('second', ARRAY['abc', 'def']);
SELECT stream, buffered_records + in_flight_records AS pending_records
  FROM firehose.stream_status WHERE stream IN ('first', 'second') ORDER BY stream;

SET client_min_messages = warning;
DROP EXTENSION firehose CASCADE;
RESET client_min_messages;
-- nothing of firehose is left: no staging tables, no schema contents
SELECT count(*) AS firehose_relations
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'firehose';

CREATE EXTENSION firehose;
SELECT count(*) AS streams FROM firehose.streams;
-- new streams reuse the names and internal ids of the dropped ones
SELECT firehose.create_stream('first', 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT firehose.create_stream('second', 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT firehose.create_stream('third', 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT name, status, version FROM firehose.streams ORDER BY name;
-- and start with nothing buffered
SELECT stream, buffered_records, in_flight_records, incoming_records, incoming_bytes
  FROM firehose.stream_status ORDER BY stream;
SELECT count(*) AS staging_tables FROM pg_class
 WHERE relnamespace = 'firehose'::regnamespace AND relname LIKE 'stage\_%';
SELECT firehose.drop_stream(name) FROM firehose.streams ORDER BY name;
