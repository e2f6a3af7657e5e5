--
-- pause and resume: a paused stream keeps accepting records and delivers
-- nothing; flush() on it says so; resume makes it ACTIVE again.
--
\set SHOW_CONTEXT never

SELECT firehose.create_stream('held', 'http',
       '{"url": "http://127.0.0.1:9/", "max_buffered_bytes": 10}');
SELECT firehose.pause('held');
SELECT name, status, version FROM firehose.streams WHERE name = 'held';
SELECT stream, status FROM firehose.stream_status WHERE stream = 'held';
-- pausing a paused stream is no error
SELECT firehose.pause('held');
SELECT name, status, version FROM firehose.streams WHERE name = 'held';

--
-- records put into a paused stream stay buffered
--
SELECT firehose.put_batch('held', ARRAY['abc', 'defg']);
SELECT stream, status, buffered_records, buffered_bytes, in_flight_records, in_flight_bytes,
       delivered_records, failed_records, incoming_records, incoming_bytes,
       oldest_record_age >= interval '0' AS has_oldest_record_age
  FROM firehose.stream_status WHERE stream = 'held';
-- max_buffered_bytes: the hint names a paused stream as one cause
SELECT firehose.put('held', 'hijk'::text);
SELECT sqlstate_of($$SELECT firehose.put('held', 'hijk'::text)$$);
-- flush() does not wait for a paused stream
SELECT firehose.flush('held');
SELECT firehose.flush('held', wait => true, timeout => '20 s') AS flushed,
       clock_timestamp() - statement_timestamp() < interval '10 s' AS returned_at_once;
SELECT stream, status, buffered_records, buffered_bytes, in_flight_records
  FROM firehose.stream_status WHERE stream = 'held';
-- drop_stream counts them as not yet delivered
SELECT firehose.drop_stream('held');

--
-- pause and resume are transactional
--
BEGIN;
SELECT firehose.resume('held');
SELECT status FROM firehose.streams WHERE name = 'held';
ROLLBACK;
SELECT status FROM firehose.streams WHERE name = 'held';

--
-- resume
--
SELECT firehose.resume('held');
SELECT name, status, version FROM firehose.streams WHERE name = 'held';
SELECT stream, status FROM firehose.stream_status WHERE stream = 'held';
SELECT firehose.resume('held');
SELECT name, status, version FROM firehose.streams WHERE name = 'held';

--
-- unknown streams
--
SELECT firehose.pause('nope');
SELECT firehose.resume('nope');
SELECT stmt, sqlstate_of(stmt)
  FROM (VALUES ($$SELECT firehose.pause('nope')$$),
               ($$SELECT firehose.resume('nope')$$)) v(stmt);

SELECT firehose.drop_stream('held', force => true);
