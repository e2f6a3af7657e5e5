--
-- views: firehose.streams (secrets redacted), firehose.stream_status,
-- firehose.deliveries, firehose.failed_records; redrive, flush and
-- drop_stream of a stream that still holds records.
--
-- Streams point at a port nobody listens on, with a one-day buffer interval
-- and two hours of retries: what they hold stays buffered or in flight.
--
\set SHOW_CONTEXT never

CREATE FUNCTION pg_temp.columns(view regclass) RETURNS TABLE (column_name name, data_type text)
LANGUAGE sql AS $$
    SELECT a.attname, format_type(a.atttypid, a.atttypmod)
      FROM pg_attribute a
     WHERE a.attrelid = view AND a.attnum > 0 AND NOT a.attisdropped
     ORDER BY a.attnum
$$;

--
-- The columns of the views
--
SELECT * FROM pg_temp.columns('firehose.streams');
SELECT * FROM pg_temp.columns('firehose.stream_status');
SELECT * FROM pg_temp.columns('firehose.deliveries');
SELECT * FROM pg_temp.columns('firehose.failed_records');

--
-- firehose.streams shows the options with access_key and every header
-- value replaced by "********"
--
SELECT firehose.create_stream('secret', 'http', '{
    "url": "http://127.0.0.1:9/", "buffer_interval": "1 day",
    "retry_duration": "2 hours", "retry_base": "1 hour",
    "access_key": "AKIA-very-secret",
    "headers": {"Authorization": "Bearer xyz", "X-Team": "data"},
    "common_attributes": {"env": "test"}}');
SELECT firehose.create_stream('webhook', 'http', '{
    "url": "http://127.0.0.1:9/in?token=abc", "format": "raw", "delimiter": "\n",
    "buffer_interval": "1 day", "retry_duration": "2 hours", "retry_base": "1 hour",
    "headers": {"X-Api-Key": "k-123"}}');
SELECT name, destination, status, version, created_at IS NOT NULL AS has_created_at,
       updated_at IS NOT NULL AS has_updated_at
  FROM firehose.streams WHERE name IN ('secret', 'webhook') ORDER BY name;
SELECT s.name, e.key, e.value
  FROM firehose.streams s, jsonb_each(s.options) e
 WHERE e.key IN ('access_key', 'headers', 'common_attributes', 'url', 'format', 'delimiter')
   AND s.name IN ('secret', 'webhook')
 ORDER BY s.name, e.key;
-- nothing else differs from what is stored
SELECT v.name,
       v.options - 'access_key' - 'headers' = s.options - 'access_key' - 'headers' AS rest_equal,
       s.options->>'access_key' AS stored_access_key, s.options->'headers' AS stored_headers
  FROM firehose.streams v JOIN firehose.stream s USING (name)
 WHERE v.name IN ('secret', 'webhook')
 ORDER BY v.name;
-- redaction follows alter_stream
SELECT firehose.alter_stream('secret', '{"access_key": "rotated", "headers": null}');
SELECT options->'access_key' AS access_key, options ? 'headers' AS has_headers, version
  FROM firehose.streams WHERE name = 'secret';
SELECT firehose.alter_stream('secret', '{"access_key": null, "headers": {"X-New": "v"}}');
SELECT options ? 'access_key' AS has_access_key, options->'headers' AS headers
  FROM firehose.streams WHERE name = 'secret';

--
-- firehose.stream_status
--
SELECT stream, status, buffered_records, buffered_bytes,
       buffered_records + in_flight_records AS pending_records,
       buffered_bytes + in_flight_bytes AS pending_bytes,
       delivered_records, delivered_bytes, failed_records, failed_bytes,
       incoming_records, incoming_bytes, oldest_record_age,
       last_success_at, last_error_code, last_error, last_error_at
  FROM firehose.stream_status WHERE stream IN ('secret', 'webhook') ORDER BY stream;
SELECT firehose.put_batch('secret', ARRAY['one', 'two', 'three']);
SELECT firehose.put('webhook', '{"event": "signup"}'::jsonb) > 0 AS put;
SELECT stream, status, buffered_records + in_flight_records AS pending_records,
       buffered_bytes + in_flight_bytes AS pending_bytes,
       incoming_records, incoming_bytes, delivered_records, failed_records,
       last_success_at IS NULL AS never_succeeded
  FROM firehose.stream_status WHERE stream IN ('secret', 'webhook') ORDER BY stream;
-- every stream has exactly one row, also without records
SELECT firehose.create_stream('quiet', 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT stream, status, incoming_records, oldest_record_age
  FROM firehose.stream_status WHERE stream = 'quiet';
SELECT (SELECT count(*) FROM firehose.stream_status)
       = (SELECT count(*) FROM firehose.streams) AS one_row_per_stream,
       (SELECT count(*) FROM firehose.stream_status
         WHERE stream IN ('secret', 'webhook', 'quiet')) AS rows_of_these;

--
-- firehose.deliveries and firehose.failed_records hold nothing of new streams
--
SELECT count(*) AS deliveries FROM firehose.deliveries
 WHERE stream IN ('secret', 'webhook', 'quiet');
SELECT count(*) AS failed FROM firehose.failed_records
 WHERE stream IN ('secret', 'webhook', 'quiet');

--
-- redrive: puts failed records back into their stream, in the caller's
-- transaction, and deletes them from failed_records
--
SELECT firehose.redrive('nope');
SELECT sqlstate_of($$SELECT firehose.redrive('nope')$$);
SELECT firehose.redrive('quiet');      -- nothing failed
-- failed records as the worker would have written them
INSERT INTO firehose.failed_records
       (stream_id, stream, record_id, data, arrival_time, attempts_made, error_code, error_message)
SELECT s.id, s.name, i, convert_to('failed ' || i, 'UTF8'), now(), 3,
       'HttpEndpoint.DestinationException', 'Received the following response ... 500'
  FROM firehose.stream s, generate_series(1, 4) i WHERE s.name = 'quiet';
INSERT INTO firehose.failed_records (stream_id, stream, record_id, data, arrival_time, attempts_made)
SELECT s.id, s.name, 99, 'other stream', now(), 1 FROM firehose.stream s WHERE s.name = 'secret';
SELECT firehose.alter_stream('quiet', '{"buffer_interval": "1 day", "retry_duration": "2 hours", "retry_base": "1 hour"}');
-- by id: only those of this stream
SELECT firehose.redrive('quiet', ARRAY(SELECT id FROM firehose.failed_records
                                         WHERE record_id IN (1, 99)));
SELECT stream, record_id, convert_from(data, 'UTF8') AS data
  FROM firehose.failed_records WHERE stream IN ('secret', 'quiet') ORDER BY stream, record_id;
SELECT buffered_records + in_flight_records AS pending_records,
       buffered_bytes + in_flight_bytes AS pending_bytes
  FROM firehose.stream_status WHERE stream = 'quiet';
-- rolled back: the failed records stay, nothing is put
BEGIN;
SELECT firehose.redrive('quiet');
SELECT count(*) AS failed_left FROM firehose.failed_records WHERE stream = 'quiet';
ROLLBACK;
SELECT count(*) AS failed_left FROM firehose.failed_records WHERE stream = 'quiet';
SELECT buffered_records + in_flight_records AS pending_records
  FROM firehose.stream_status WHERE stream = 'quiet';
-- all of the stream's
SELECT firehose.redrive('quiet', NULL);
SELECT firehose.redrive('quiet');
SELECT stream, record_id FROM firehose.failed_records
 WHERE stream IN ('secret', 'quiet') ORDER BY stream, record_id;
SELECT buffered_records + in_flight_records AS pending_records,
       buffered_bytes + in_flight_bytes AS pending_bytes
  FROM firehose.stream_status WHERE stream = 'quiet';
-- ids that are not failed records of the stream
SELECT firehose.redrive('quiet', ARRAY[-1, 0]::bigint[]);
SELECT firehose.redrive('quiet', '{}');

--
-- flush
--
SELECT firehose.flush('nope');
SELECT sqlstate_of($$SELECT firehose.flush('nope')$$);
-- records that cannot be delivered: waiting gives up at the timeout
SELECT firehose.flush('secret', wait => true, timeout => '200 ms');
-- without wait, flush only asks for delivery
SELECT firehose.flush('secret');
SELECT firehose.flush();
SELECT buffered_records + in_flight_records AS pending_records
  FROM firehose.stream_status WHERE stream = 'secret';

--
-- drop_stream refuses a stream with records not yet delivered (55006)
-- unless force => true
--
SELECT firehose.drop_stream('secret');
SELECT firehose.drop_stream('secret', false);
SELECT sqlstate_of($$SELECT firehose.drop_stream('secret')$$);
SELECT name FROM firehose.streams WHERE name IN ('secret', 'webhook', 'quiet') ORDER BY name;
SELECT id AS secret_id FROM firehose.stream WHERE name = 'secret' \gset
SELECT firehose.drop_stream('secret', force => true);
SELECT firehose.drop_stream('webhook', true);
SELECT firehose.drop_stream('quiet', true);
SELECT count(*) AS streams FROM firehose.streams WHERE name IN ('secret', 'webhook', 'quiet');
SELECT count(*) AS status_rows FROM firehose.stream_status
 WHERE stream IN ('secret', 'webhook', 'quiet');
SELECT count(*) AS staging_tables FROM pg_class
 WHERE relnamespace = 'firehose'::regnamespace AND relname LIKE 'stage\_' || :secret_id || '\_%';
-- failed records go with their stream: a new stream of the same name
-- must not see (or redrive) them
SELECT count(*) AS failed_left FROM firehose.failed_records WHERE stream_id = :secret_id;
SELECT stream, record_id FROM firehose.failed_records
 WHERE stream IN ('secret', 'quiet') ORDER BY stream, record_id;
