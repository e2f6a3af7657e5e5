--
-- null_names: a NULL stream name is SQLSTATE 22004 (null_value_not_allowed)
-- for every function that takes one, as it is for put() and create_stream().
-- (flush(NULL) is different: it means every active stream.)
--
\set SHOW_CONTEXT never

SELECT firehose.create_stream('present', 'http', '{"url": "http://127.0.0.1:9/"}');

SELECT firehose.put(NULL, 'x'::text);
SELECT firehose.alter_stream(NULL, '{}');
SELECT firehose.drop_stream(NULL);
SELECT firehose.pause(NULL);
SELECT firehose.resume(NULL);
SELECT firehose.redrive(NULL);

SELECT stmt, sqlstate_of(stmt)
  FROM (VALUES
    ($$SELECT firehose.create_stream(NULL, 'http', '{}')$$),
    ($$SELECT firehose.put(NULL, 'x'::text)$$),
    ($$SELECT firehose.put_batch(NULL, ARRAY['x'])$$),
    ($$SELECT firehose.alter_stream(NULL, '{}')$$),
    ($$SELECT firehose.drop_stream(NULL)$$),
    ($$SELECT firehose.drop_stream(NULL, true)$$),
    ($$SELECT firehose.pause(NULL)$$),
    ($$SELECT firehose.resume(NULL)$$),
    ($$SELECT firehose.redrive(NULL)$$),
    ($$SELECT firehose.redrive(NULL, ARRAY[1::bigint])$$),
    ($$SELECT firehose.flush(NULL)$$)
  ) v(stmt);

-- nothing changed
SELECT name, status, version FROM firehose.streams WHERE name = 'present';
SELECT firehose.drop_stream('present');
