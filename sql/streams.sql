--
-- streams: create_stream, alter_stream, drop_stream and the validation of
-- every option of destination http.
--
-- Errors are shown as users see them (message, DETAIL, HINT); SQLSTATEs are
-- checked with sqlstate_of(), which runs a statement and returns
-- "<SQLSTATE>: <message>" or "ok".  No ids or timestamps are printed.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;

-- try_options(opts): create a stream named probe with url + opts, return
-- the normalized values of the keys given (or the error), and leave nothing.
CREATE FUNCTION pg_temp.try_options(opts jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r text;
    detail text;
BEGIN
    BEGIN
        PERFORM firehose.create_stream('probe', 'http',
                                       '{"url": "http://127.0.0.1:9/"}'::jsonb || opts);
        SELECT string_agg(e.key || '=' || e.value::text, ', ' ORDER BY e.key) INTO r
          FROM firehose.stream s, jsonb_each(s.options) e
         WHERE s.name = 'probe' AND opts ? e.key;
        RAISE SQLSTATE 'ZZ000';         -- undo the stream
    EXCEPTION WHEN OTHERS THEN
        IF SQLSTATE = 'ZZ000' THEN
            RETURN coalesce(r, '(none)');
        END IF;
        GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
        RETURN SQLSTATE || ': ' || SQLERRM
               || CASE WHEN detail <> '' THEN ' / ' || detail ELSE '' END;
    END;
END
$$;

-- long values are cut to keep the output readable
CREATE FUNCTION pg_temp.short(t text, n int) RETURNS text
LANGUAGE sql AS $$
    SELECT CASE WHEN length(t) > n THEN left(t, n - 20) || '... (' || length(t) || ' chars)' ELSE t END
$$;

-- the staging tables of a stream: their ring position and persistence
CREATE FUNCTION pg_temp.staging(stream text)
RETURNS TABLE (ring_slot text, relpersistence "char")
LANGUAGE sql AS $$
    SELECT right(c.relname, 1), c.relpersistence
      FROM pg_class c
      JOIN firehose.stream s ON c.relname = 'stage_' || s.id || '_' || right(c.relname, 1)
     WHERE s.name = stream AND c.relnamespace = 'firehose'::regnamespace
     ORDER BY 1
$$;

--
-- Creating a stream: the smallest valid call, and every default filled in
--
SELECT firehose.create_stream('orders', 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT name, destination, status, version, created_at = updated_at AS never_changed
  FROM firehose.streams WHERE name = 'orders';
SELECT e.key, e.value
  FROM firehose.streams s, jsonb_each(s.options) e
 WHERE s.name = 'orders'
 ORDER BY e.key;
-- options defaults to '{}', which lacks the required url
SELECT firehose.create_stream('no_options', 'http');
-- three unlogged staging tables per stream
SELECT * FROM pg_temp.staging('orders');

--
-- Stream names: 1 to 64 of [A-Za-z0-9_.-], case-sensitive, unique
--
SELECT firehose.create_stream('Orders', 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT firehose.create_stream('a.b-c_9', 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT firehose.create_stream(repeat('x', 64), 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT name FROM firehose.streams
 WHERE name IN ('orders', 'Orders', 'a.b-c_9', repeat('x', 64)) ORDER BY name COLLATE "C";
SELECT count(*) AS streams_before FROM firehose.streams \gset
SELECT firehose.create_stream('orders', 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT firehose.create_stream('', 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT firehose.create_stream(repeat('x', 65), 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT firehose.create_stream('two words', 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT firehose.create_stream('a/b', 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT firehose.create_stream('caf' || chr(233), 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT firehose.create_stream(E'trailing\n', 'http', '{"url": "http://127.0.0.1:9/"}');
-- a failed create leaves nothing behind
SELECT count(*) - :streams_before AS new_streams FROM firehose.streams;

--
-- NULL arguments, destinations, the shape of options
--
SELECT firehose.create_stream(NULL, 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT firehose.create_stream('s', NULL, '{"url": "http://127.0.0.1:9/"}');
SELECT firehose.create_stream('s', 'http', NULL);   -- NULL options = '{}'
SELECT firehose.create_stream('s', 'kafka', '{"url": "http://127.0.0.1:9/"}');
SELECT firehose.create_stream('s', 'HTTP', '{"url": "http://127.0.0.1:9/"}');
SELECT firehose.create_stream('s', 'http', '["url", "http://127.0.0.1:9/"]');
SELECT firehose.create_stream('s', 'http', '"http://127.0.0.1:9/"');

--
-- Unknown options: named, with the list of valid ones; they are reported
-- before any other problem; option names are case-sensitive
--
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "buffer_sise": 100}');
SELECT firehose.create_stream('s', 'http', '{"buffer_size": 0, "Buffer_Size": 1}');

--
-- url: required, an absolute http(s) URL with a host, at most 1000 bytes
--
SELECT firehose.create_stream('s', 'http', '{}');
SELECT firehose.create_stream('s', 'http', '{"url": null}');
SELECT firehose.create_stream('s', 'http', '{"url": 8080}');
SELECT firehose.create_stream('s', 'http', '{"url": "ftp://example.com/in"}');
SELECT firehose.create_stream('s', 'http', '{"url": "example.com/in"}');
SELECT firehose.create_stream('s', 'http', '{"url": "http://"}');
SELECT firehose.create_stream('s', 'http', '{"url": "http://exa mple.com/"}');
SELECT firehose.create_stream('s', 'http', '{"url": "not a url"}');
SELECT firehose.create_stream('s', 'http', jsonb_build_object('url', 'http://a/' || repeat('p', 992)));
SELECT pg_temp.short(opts::text, 60) AS opts, pg_temp.short(pg_temp.try_options(opts), 160) AS result
  FROM (VALUES ('{"url": "https://example.com/ingest"}'::jsonb),
               ('{"url": "HTTPS://Example.COM:8443/a/b?c=d&e=f"}'),
               ('{"url": "http://[::1]:9/"}'),
               (jsonb_build_object('url', 'http://a/' || repeat('p', 991)))) v(opts);

--
-- Sizes: bytes as a JSON integer or a size string ('5MB', '1.5 kB')
--
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "buffer_size": "5 XB"}');
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "buffer_size": 0}');
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "buffer_size": "2GB"}');
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "buffer_size": 1.5}');
SELECT pg_temp.short(opts::text, 60) AS opts, pg_temp.short(pg_temp.try_options(opts), 160) AS result
  FROM (VALUES ('{"buffer_size": 1}'::jsonb),
               ('{"buffer_size": "5MB"}'),
               ('{"buffer_size": "1.5 kB"}'),
               ('{"buffer_size": "1GB"}'),
               ('{"buffer_size": 1073741824}'),
               ('{"buffer_size": 1073741825}'),
               ('{"buffer_size": "-1"}'),
               ('{"buffer_size": ""}'),
               ('{"buffer_size": true}'),
               ('{"buffer_size": [1]}'),
               ('{"buffer_size": 9223372036854775807}'),
               ('{"max_record_size": 1}'),
               ('{"max_record_size": "1000 kB"}'),
               ('{"max_record_size": 1073741823}'),
               ('{"max_record_size": "1GB"}'),
               ('{"max_record_size": 0}'),
               ('{"max_buffered_bytes": 0}'),
               ('{"max_buffered_bytes": "100MB"}'),
               ('{"max_buffered_bytes": "1 PB"}'),
               ('{"max_buffered_bytes": "2 PB"}'),
               ('{"max_buffered_bytes": -1}')) v(opts);

--
-- Durations: milliseconds (or seconds for retry_duration) as a JSON
-- integer, or an interval string ('5 seconds')
--
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "buffer_interval": "soon"}');
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "buffer_interval": -1}');
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "retry_duration": "2 days"}');
SELECT pg_temp.short(opts::text, 60) AS opts, pg_temp.short(pg_temp.try_options(opts), 160) AS result
  FROM (VALUES ('{"buffer_interval": 0}'::jsonb),
               ('{"buffer_interval": "5 seconds"}'),
               ('{"buffer_interval": "1.5 s"}'),
               ('{"buffer_interval": "00:01:00"}'),
               ('{"buffer_interval": "1 day"}'),
               ('{"buffer_interval": 86400001}'),
               ('{"buffer_interval": "1 month"}'),
               ('{"buffer_interval": "-5 seconds"}'),
               ('{"buffer_interval": "300000 years"}'),
               ('{"buffer_interval": ""}'),
               ('{"buffer_interval": false}'),
               ('{"retry_duration": 0}'),
               ('{"retry_duration": "5 minutes"}'),
               ('{"retry_duration": 7200}'),
               ('{"retry_duration": 86401}'),
               ('{"retry_duration": "2 hours"}'),
               ('{"retry_duration": "soon"}'),
               ('{"request_timeout": "30 seconds"}'),
               ('{"request_timeout": 1}'),
               ('{"request_timeout": 0}'),
               ('{"request_timeout": "1 hour"}'),
               ('{"request_timeout": "61 minutes"}'),
               ('{"retry_base": 50}'),
               ('{"retry_base": 0}'),
               ('{"retry_base": "250 ms"}'),
               ('{"retry_max": "2 minutes"}'),
               ('{"retry_max": "1 day"}'),
               ('{"retry_max": "2 days"}'),
               ('{"retry_max": 0}')) v(opts);

--
-- Integers and booleans
--
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "max_concurrency": "4"}');
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "max_concurrency": 65}');
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "durable": "yes"}');
SELECT pg_temp.short(opts::text, 60) AS opts, pg_temp.short(pg_temp.try_options(opts), 160) AS result
  FROM (VALUES ('{"max_concurrency": 1}'::jsonb),
               ('{"max_concurrency": 64}'),
               ('{"max_concurrency": 0}'),
               ('{"max_concurrency": 2.5}'),
               ('{"durable": true}'),
               ('{"durable": false}'),
               ('{"durable": "true"}'),
               ('{"durable": 1}'),
               ('{"tls_verify": false}'),
               ('{"tls_verify": "off"}')) v(opts);

--
-- Strings and choices
--
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "format": "xml"}');
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "content_encoding": "br"}');
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "access_key": 12345}');
SELECT firehose.create_stream('s', 'http', jsonb_build_object('url', 'http://127.0.0.1:9/', 'access_key', repeat('k', 4097)));
SELECT pg_temp.short(opts::text, 60) AS opts, pg_temp.short(pg_temp.try_options(opts), 160) AS result
  FROM (VALUES ('{"format": "firehose"}'::jsonb),
               ('{"format": "raw"}'),
               ('{"format": "RAW"}'),
               ('{"format": 1}'),
               ('{"content_encoding": "gzip"}'),
               ('{"content_encoding": "none"}'),
               ('{"content_encoding": "deflate"}'),
               ('{"access_key": "k-123"}'),
               (jsonb_build_object('access_key', repeat('k', 4096))),
               ('{"ca_file": "/etc/ssl/certs/ca.pem"}'),
               ('{"ca_file": false}'),
               ('{"format": "raw", "delimiter": "\r\n"}'),
               ('{"format": "raw", "delimiter": ""}'),
               (jsonb_build_object('format', 'raw', 'delimiter', repeat(',', 64))),
               (jsonb_build_object('format', 'raw', 'delimiter', repeat(',', 65))),
               ('{"format": "raw", "delimiter": 10}')) v(opts);

--
-- Options that do not apply to the format
--
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "delimiter": ","}');
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "format": "raw", "access_key": "k"}');
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "format": "raw", "common_attributes": {"env": "test"}}');

--
-- headers and common_attributes: objects of strings
--
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "headers": {"X-Count": 1}}');
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "headers": {"": "x"}}');
SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "headers": "Authorization: x"}');
SELECT pg_temp.short(opts::text, 60) AS opts, pg_temp.short(pg_temp.try_options(opts), 160) AS result
  FROM (VALUES ('{"headers": {"Authorization": "Bearer t", "X-Team": "a"}}'::jsonb),
               ('{"format": "raw", "headers": {"Content-Type": "text/plain"}}'),
               ('{"headers": {}}'),
               ('{"headers": ["Authorization"]}'),
               ('{"headers": {"X-A": null}}'),
               ('{"common_attributes": {"env": "test", "team": "data"}}'),
               ('{"common_attributes": {"nested": {"a": "b"}}}'),
               ('{"common_attributes": {"": "v"}}'),
               ((SELECT jsonb_build_object('common_attributes', jsonb_object_agg('k' || i, 'v'))
                   FROM generate_series(1, 50) i)),
               ((SELECT jsonb_build_object('common_attributes', jsonb_object_agg('k' || i, 'v'))
                   FROM generate_series(1, 51) i)),
               (jsonb_build_object('common_attributes', jsonb_build_object(repeat('k', 256), 'v'))),
               (jsonb_build_object('common_attributes', jsonb_build_object(repeat('k', 257), 'v'))),
               (jsonb_build_object('common_attributes', jsonb_build_object('k', repeat('v', 1024)))),
               (jsonb_build_object('common_attributes', jsonb_build_object('k', repeat('v', 1025))))
       ) v(opts);

--
-- Everything at once, and what is stored
--
SELECT firehose.create_stream('everything', 'http', '{
    "url": "https://127.0.0.1:9/v1/firehose",
    "buffer_size": "1MB", "buffer_interval": "2 minutes", "retry_duration": "10 minutes",
    "max_concurrency": 4, "max_record_size": "512kB", "max_buffered_bytes": "1GB",
    "durable": true, "request_timeout": "30 s", "retry_base": 50, "retry_max": "10 s",
    "format": "firehose", "access_key": "key-123", "common_attributes": {"env": "test"},
    "content_encoding": "gzip", "headers": {"X-Team": "data"},
    "tls_verify": false, "ca_file": "/etc/ssl/certs/ca.pem"}');
SELECT e.key, e.value
  FROM firehose.stream s, jsonb_each(s.options) e
 WHERE s.name = 'everything'
 ORDER BY e.key;

--
-- SQLSTATEs of the create_stream errors
--
SELECT stmt, sqlstate_of(stmt)
  FROM (VALUES
    ($$SELECT firehose.create_stream('orders', 'http', '{"url": "http://127.0.0.1:9/"}')$$),
    ($$SELECT firehose.create_stream('bad name', 'http', '{"url": "http://127.0.0.1:9/"}')$$),
    ($$SELECT firehose.create_stream(NULL, 'http', '{"url": "http://127.0.0.1:9/"}')$$),
    ($$SELECT firehose.create_stream('s', NULL, '{}')$$),
    ($$SELECT firehose.create_stream('s', 'kafka', '{}')$$),
    ($$SELECT firehose.create_stream('s', 'http', '[]')$$),
    ($$SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "bogus": 1}')$$),
    ($$SELECT firehose.create_stream('s', 'http', '{}')$$),
    ($$SELECT firehose.create_stream('s', 'http', '{"url": "ftp://x/"}')$$),
    ($$SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "buffer_size": "big"}')$$),
    ($$SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "buffer_size": 0}')$$),
    ($$SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "format": "xml"}')$$),
    ($$SELECT firehose.create_stream('s', 'http', '{"url": "http://127.0.0.1:9/", "delimiter": ","}')$$)
  ) v(stmt);

--
-- alter_stream: merges into the current options, bumps the version
--
SELECT firehose.create_stream('clicks', 'http',
       '{"url": "http://127.0.0.1:9/", "buffer_size": "1MB", "access_key": "secret-1"}');
SELECT firehose.alter_stream('clicks', '{"buffer_interval": "2 minutes", "max_concurrency": 4}');
SELECT s.version, s.updated_at > s.created_at AS updated,
       s.options->>'buffer_size' AS buffer_size, s.options->>'buffer_interval' AS buffer_interval,
       s.options->>'max_concurrency' AS max_concurrency, s.options->>'access_key' AS access_key
  FROM firehose.stream s WHERE s.name = 'clicks';
-- JSON null puts an option back to its default, or removes one without default
SELECT firehose.alter_stream('clicks', '{"buffer_size": null, "max_concurrency": null, "access_key": null}');
SELECT s.version, s.options->>'buffer_size' AS buffer_size,
       s.options->>'buffer_interval' AS buffer_interval,
       s.options->>'max_concurrency' AS max_concurrency, s.options ? 'access_key' AS has_access_key
  FROM firehose.stream s WHERE s.name = 'clicks';
-- an empty or NULL change still counts as a change
SELECT firehose.alter_stream('clicks', '{}');
SELECT firehose.alter_stream('clicks', NULL);
SELECT version FROM firehose.streams WHERE name = 'clicks';
-- the merged result is validated as a whole
SELECT firehose.alter_stream('clicks', '{"url": null}');
SELECT firehose.alter_stream('clicks', '{"access_key": "secret-2"}');
SELECT firehose.alter_stream('clicks', '{"format": "raw"}');
SELECT firehose.alter_stream('clicks', '{"format": "raw", "access_key": null, "delimiter": "\r\n"}');
SELECT firehose.alter_stream('clicks', '{"format": "firehose"}');
SELECT firehose.alter_stream('clicks', '{"format": "firehose", "delimiter": null}');
SELECT firehose.alter_stream('clicks', '{"bogus": true}');
SELECT firehose.alter_stream('clicks', '{"buffer_size": 0}');
SELECT firehose.alter_stream('clicks', '"raw"');
-- failed alters change nothing
SELECT version, options->>'format' AS format, options ? 'delimiter' AS has_delimiter,
       options->>'buffer_size' AS buffer_size
  FROM firehose.streams WHERE name = 'clicks';
SELECT firehose.alter_stream('nope', '{}');
SELECT stmt, sqlstate_of(stmt)
  FROM (VALUES
    ($$SELECT firehose.alter_stream('nope', '{}')$$),
    ($$SELECT firehose.alter_stream('clicks', '{"bogus": true}')$$),
    ($$SELECT firehose.alter_stream('clicks', '{"url": null}')$$)
  ) v(stmt);

--
-- durable switches the staging tables between unlogged and logged
--
SELECT * FROM pg_temp.staging('clicks');
SELECT firehose.alter_stream('clicks', '{"durable": true}');
SELECT * FROM pg_temp.staging('clicks');
SELECT firehose.alter_stream('clicks', '{"buffer_size": "2MB"}');   -- stays logged
SELECT * FROM pg_temp.staging('clicks');
SELECT firehose.alter_stream('clicks', '{"durable": null}');
SELECT * FROM pg_temp.staging('clicks');
SELECT firehose.alter_stream('clicks', '{"durable": false}');
SELECT * FROM pg_temp.staging('clicks');
SELECT * FROM pg_temp.staging('everything');
-- a failed alter leaves the persistence as it was
SELECT firehose.alter_stream('clicks', '{"durable": true, "buffer_size": 0}');
SELECT * FROM pg_temp.staging('clicks');
-- refused while records are buffered (here the transaction's own record)
BEGIN;
SELECT firehose.put('clicks', 'buffered') > 0 AS put;
SELECT firehose.alter_stream('clicks', '{"durable": true}');
ROLLBACK;
BEGIN;
SELECT firehose.put('clicks', 'buffered') > 0 AS put;
SELECT sqlstate_of($$SELECT firehose.alter_stream('clicks', '{"durable": true}')$$);
ROLLBACK;
SELECT * FROM pg_temp.staging('clicks');

--
-- create, alter and drop are transactional
--
BEGIN;
SELECT firehose.create_stream('temporary', 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT count(*) FROM pg_temp.staging('temporary');
ROLLBACK;
SELECT count(*) AS streams FROM firehose.streams WHERE name = 'temporary';
BEGIN;
SELECT firehose.alter_stream('clicks', '{"max_concurrency": 8}');
ROLLBACK;
SELECT version, options->>'max_concurrency' AS max_concurrency FROM firehose.streams WHERE name = 'clicks';

--
-- drop_stream: an empty stream goes with its staging tables
--
SELECT id AS clicks_id FROM firehose.stream WHERE name = 'clicks' \gset
SELECT firehose.drop_stream('clicks');
SELECT count(*) AS streams FROM firehose.streams WHERE name = 'clicks';
SELECT count(*) AS staging_tables FROM pg_class
 WHERE relnamespace = 'firehose'::regnamespace AND relname LIKE 'stage\_' || :clicks_id || '\_%';
SELECT firehose.drop_stream('clicks');
SELECT firehose.drop_stream('clicks', true);
SELECT sqlstate_of($$SELECT firehose.drop_stream('clicks')$$);
-- the name can be used again
SELECT firehose.create_stream('clicks', 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT name, version, options->>'buffer_size' AS buffer_size FROM firehose.streams WHERE name = 'clicks';
CREATE TEMP TABLE mine AS
SELECT id, name FROM firehose.stream
 WHERE name IN ('orders', 'Orders', 'a.b-c_9', repeat('x', 64), 'everything', 'clicks');
SELECT firehose.drop_stream(name) FROM mine ORDER BY name COLLATE "C";
SELECT count(*) AS streams FROM firehose.streams WHERE name IN (SELECT name FROM mine);
SELECT count(*) AS staging_tables
  FROM pg_class c JOIN mine ON c.relname LIKE 'stage\_' || mine.id || '\_%'
 WHERE c.relnamespace = 'firehose'::regnamespace;
