--
-- s3: the options of destination s3 and of the S3 backup store ("backup"
-- of an http stream): validation, defaults, normalization, redaction.
-- Delivery itself is tested against a real S3 server in test/test_s3.py.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;

-- try_s3(opts): create an s3 stream with a bucket and keys + opts; return
-- the normalized values of the keys given, or the error with its detail.
CREATE FUNCTION pg_temp.try_s3(opts jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r text;
    detail text;
BEGIN
    BEGIN
        PERFORM firehose.create_stream('probe', 's3',
            '{"bucket": "my-bucket", "access_key_id": "AKIDEXAMPLE",
              "secret_access_key": "wJalrXUtnFEMI"}'::jsonb || opts);
        SELECT string_agg(e.key || '=' || e.value::text, ', ' ORDER BY e.key) INTO r
          FROM firehose.stream s, jsonb_each(s.options) e
         WHERE s.name = 'probe' AND opts ? e.key;
        RAISE SQLSTATE 'ZZ000';
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

-- the defaults, as Firehose's: 24 hours of retries, a 300 s interval
SELECT firehose.create_stream('s3d', 's3', '{"bucket": "my-bucket", "access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI", "session_token": "FwoGZXIvYXdzEXAMPLE"}');
SELECT key, value FROM firehose.stream, jsonb_each(options)
 WHERE name = 's3d' ORDER BY key;
-- secrets are redacted in the view
SELECT options->>'access_key_id' AS akid, options->>'secret_access_key' AS secret,
       options->>'session_token' AS token, options->>'bucket' AS bucket
  FROM firehose.streams WHERE name = 's3d';
SELECT firehose.drop_stream('s3d');

-- errors as users see them
SELECT firehose.create_stream('s', 's3', '{"access_key_id": "A", "secret_access_key": "S"}');
SELECT firehose.create_stream('s', 's3', '{"bucket": "b-1"}');
SELECT firehose.create_stream('s', 's3', '{"bucket": "My_Bucket", "access_key_id": "A", "secret_access_key": "S"}');
SELECT firehose.create_stream('s', 's3', '{"bucket": "b-1", "access_key_id": "A", "secret_access_key": "S", "prefix": "!{timestamp:yyyy}/"}');
SELECT firehose.create_stream('s', 's3', '{"bucket": "b-1", "credentials": "environment", "secret_access_key": "S"}');
SELECT firehose.create_stream('s', 's3', '{"bucket": "b-1", "access_key_id": "A", "secret_access_key": "S", "time_zone": "Mars/Olympus"}');
SELECT firehose.create_stream('s', 's3', '{"bucket": "b-1", "access_key_id": "A", "secret_access_key": "S", "endpoint": "http://127.0.0.1:9000/b-1"}');
SELECT firehose.create_stream('s', 's3', '{"bucket": "b-1", "access_key_id": "A", "secret_access_key": "S", "sse_kms_key_id": "k"}');
SELECT firehose.create_stream('s', 's3', '{"bucket": "b-1", "access_key_id": "A", "secret_access_key": "S", "url": "http://x/"}');

-- every option, valid and invalid values
SELECT opts, pg_temp.try_s3(opts::jsonb) AS result
  FROM (VALUES ('{"bucket": "ab"}'),
               ('{"bucket": "a.b-c.1"}'),
               ('{"bucket": "-ab"}'),
               ('{"bucket": 5}'),
               ('{"region": "eu-west-1"}'),
               ('{"region": "EU WEST"}'),
               ('{"endpoint": "http://127.0.0.1:9000"}'),
               ('{"endpoint": "http://127.0.0.1:9000/"}'),
               ('{"endpoint": "s3.amazonaws.com"}'),
               ('{"endpoint": "https://h/?x=1"}'),
               ('{"path_style": true}'),
               ('{"path_style": "yes"}'),
               ('{"prefix": "logs/"}'),
               ('{"prefix": "logs/!{timestamp:yyyy/MM/dd}/", "error_output_prefix": "errors/!{firehose:error-output-type}/"}'),
               ('{"prefix": "!{firehose:random-string}/", "error_output_prefix": "e/!{firehose:error-output-type}/"}'),
               ('{"prefix": "a!{b"}'),
               ('{"prefix": "!{firehose:error-output-type}/"}'),
               ('{"prefix": "x/", "error_output_prefix": "errors/"}'),
               ('{"prefix": "!{timestamp:yyyy}/", "error_output_prefix": "!{firehose:error-output-type}/!{timestamp:qqq}"}'),
               ('{"prefix": "!{partitionKeyFromQuery:id}/", "error_output_prefix": "!{firehose:error-output-type}/"}'),
               ('{"compression": "gzip"}'),
               ('{"compression": "zstd"}'),
               ('{"compression": "snappy"}'),
               ('{"compression": "hadoop_snappy"}'),
               ('{"compression": "ZIP"}'),
               ('{"file_extension": ".json.gz"}'),
               ('{"file_extension": "json"}'),
               ('{"file_extension": ".JSON"}'),
               ('{"time_zone": "Asia/Tokyo"}'),
               ('{"time_zone": "UTC"}'),
               ('{"time_zone": "+09:00"}'),
               ('{"time_zone": "Nowhere/Land"}'),
               ('{"delimiter": "none"}'),
               ('{"delimiter": "\r\n"}'),
               ('{"content_type": "application/x-ndjson"}'),
               ('{"storage_class": "STANDARD_IA"}'),
               ('{"storage_class": "COLD"}'),
               ('{"sse": "AES256"}'),
               ('{"sse": "aws:kms", "sse_kms_key_id": "arn:aws:kms:us-east-1:1:key/x"}'),
               ('{"sse": "AES256", "sse_kms_key_id": "k"}'),
               ('{"sse": "none"}'),
               ('{"credentials": "instance"}'),
               ('{"multipart_threshold": "5MB", "multipart_part_size": "6MB"}'),
               ('{"multipart_threshold": "4MB"}'),
               ('{"multipart_part_size": 1000}'),
               ('{"tls_verify": false, "ca_file": "/etc/ssl/certs/ca-certificates.crt"}'),
               ('{"retry_duration": "1 day"}'),
               ('{"buffer_size": "128MB", "buffer_interval": "15 minutes"}'),
               ('{"backup": {"s3": {"bucket": "b-2"}}}')
       ) AS t(opts);

-- dynamic partitioning: partition_keys, max_active_partitions and their rules
SELECT opts, pg_temp.try_s3(opts::jsonb) AS result
  FROM (VALUES ('{"prefix": "c=!{partitionKeyFromQuery:c}/", "error_output_prefix": "e/!{firehose:error-output-type}/", "partition_keys": {"c": "$.customer.id"}, "max_active_partitions": 5000}'),
               ('{"prefix": "c=!{partitionKeyFromLambda:c}/", "error_output_prefix": "e/!{firehose:error-output-type}/"}'),
               ('{"prefix": "c=!{partitionKeyFromQuery:c}/", "partition_keys": {"c": "$.c"}}'),
               ('{"prefix": "c=!{partitionKeyFromQuery:c}/", "error_output_prefix": "e/!{firehose:error-output-type}/", "partition_keys": {"d": "$.d"}}'),
               ('{"prefix": "c=!{partitionKeyFromQuery:c}/", "error_output_prefix": "e/!{firehose:error-output-type}/", "partition_keys": {"c": "$.c ++"}}'),
               ('{"prefix": "c=!{partitionKeyFromQuery:c}/", "error_output_prefix": "e/!{firehose:error-output-type}/", "partition_keys": {"c": 5}}'),
               ('{"prefix": "c/", "partition_keys": {"c": "$.c"}}'),
               ('{"prefix": "c=!{partitionKeyFromQuery:c}/", "error_output_prefix": "e/!{firehose:error-output-type}/", "partition_keys": {"c": "$.c"}, "buffer_interval": 0}'),
               ('{"prefix": "c=!{partitionKeyFromQuery:c.d}/", "error_output_prefix": "e/!{firehose:error-output-type}/"}'),
               ('{"prefix": "c/", "error_output_prefix": "e/!{partitionKeyFromQuery:c}/!{firehose:error-output-type}/"}'),
               ('{"max_active_partitions": 5001}'),
               ('{"max_active_partitions": 0}')
       ) AS t(opts);

-- environment credentials need no keys
SELECT firehose.create_stream('s3e', 's3', '{"bucket": "b-1", "credentials": "environment"}');
SELECT options->>'credentials' FROM firehose.streams WHERE name = 's3e';
SELECT firehose.drop_stream('s3e');

--
-- backup: the S3 store of an http stream's failed (or all) records
--
CREATE FUNCTION pg_temp.try_backup(b jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r text;
    detail text;
BEGIN
    BEGIN
        PERFORM firehose.create_stream('probe', 'http',
            jsonb_build_object('url', 'http://127.0.0.1:9/', 'backup', b));
        SELECT options->'backup'->>'mode' || ' ' ||
               (SELECT string_agg(key, ',' ORDER BY key) FROM jsonb_object_keys(options->'backup'->'s3') key)
          INTO r FROM firehose.stream WHERE name = 'probe';
        RAISE SQLSTATE 'ZZ000';
    EXCEPTION WHEN OTHERS THEN
        IF SQLSTATE = 'ZZ000' THEN
            RETURN r;
        END IF;
        GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
        RETURN SQLSTATE || ': ' || SQLERRM
               || CASE WHEN detail <> '' THEN ' / ' || detail ELSE '' END;
    END;
END
$$;

SELECT b, pg_temp.try_backup(b::jsonb) AS result
  FROM (VALUES ('{"s3": {"bucket": "b-1", "access_key_id": "A", "secret_access_key": "S"}}'),
               ('{"mode": "all", "s3": {"bucket": "b-1", "credentials": "environment"}}'),
               ('{"mode": "some", "s3": {"bucket": "b-1", "credentials": "environment"}}'),
               ('{"mode": "failed"}'),
               ('{"s3": "s3://b-1"}'),
               ('{"s3": {"bucket": "b-1", "credentials": "environment"}, "bucket": "x"}'),
               ('{"s3": {"bucket": "b-1", "credentials": "environment", "buffer_size": 5}}'),
               ('{"s3": {"bucket": "b-1"}}'),
               ('{"s3": {"bucket": "b-1", "credentials": "environment", "prefix": "!{timestamp:yyyy}/"}}'),
               ('{"s3": {"bucket": "b-1", "credentials": "environment", "prefix": "!{partitionKeyFromLambda:k}/", "error_output_prefix": "!{firehose:error-output-type}/"}}'),
               ('"failed"')
       ) AS t(b);

-- the backup store's secrets are redacted too; the rest is shown
SELECT firehose.create_stream('hb', 'http', '{"url": "http://127.0.0.1:9/", "backup": {"mode": "failed", "s3": {"bucket": "b-1", "access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI", "session_token": "tok"}}}');
SELECT jsonb_pretty(options->'backup') FROM firehose.streams WHERE name = 'hb';
-- the owner's table keeps them
SELECT options->'backup'->'s3'->>'secret_access_key' FROM firehose.stream WHERE name = 'hb';
-- alter_stream replaces the backup as a whole; null removes it
SELECT firehose.alter_stream('hb', '{"backup": {"mode": "all", "s3": {"bucket": "b-3", "credentials": "environment"}}}');
SELECT options->'backup'->>'mode', options->'backup'->'s3'->>'bucket',
       options->'backup'->'s3' ? 'secret_access_key' AS has_secret
  FROM firehose.stream WHERE name = 'hb';
SELECT firehose.alter_stream('hb', '{"backup": null}');
SELECT options ? 'backup' FROM firehose.stream WHERE name = 'hb';
SELECT firehose.drop_stream('hb');
-- an s3 destination has no backup of its own (Firehose does not retry S3 into S3)
SELECT pg_temp.try_s3('{"backup": {"s3": {"bucket": "b-2"}}}') AS s3_backup;

-- option "format": JSON to Parquet; the schema is a table or composite type
CREATE TABLE public.pq_events (id int8, name text, price numeric(10,2), tags text[],
                               at timestamptz, payload jsonb);
CREATE TYPE public.pq_point AS (id int4, p point);
CREATE TYPE public.pq_wide AS (id int4, n numeric(50,2));
SELECT opts, pg_temp.try_s3(opts::jsonb) AS result
  FROM (VALUES ('{"format": {"type": "parquet", "schema": "public.pq_events"}}'),
               ('{"format": {"type": "parquet", "schema": "public.pq_events", "compression": "zstd", "page_size": "64kB", "enable_dictionary_compression": false, "writer_version": "v2", "case_insensitive": false, "convert_dots_in_json_keys_to_underscores": true, "column_to_json_key_mappings": {"at": "timestamp"}}}'),
               ('{"format": {"type": "orc", "schema": "public.pq_events"}}'),
               ('{"format": {"schema": "public.pq_events"}}'),
               ('{"format": {"type": "parquet"}}'),
               ('{"format": {"type": "parquet", "schema": "pq_events"}}'),
               ('{"format": {"type": "parquet", "schema": "public.no_such_table"}}'),
               ('{"format": {"type": "parquet", "schema": "pg_catalog.int4"}}'),
               ('{"format": {"type": "parquet", "schema": "public.pq_point"}}'),
               ('{"format": {"type": "parquet", "schema": "public.pq_wide"}}'),
               ('{"format": {"type": "parquet", "schema": "public.pq_events", "compression": "lz4"}}'),
               ('{"format": {"type": "parquet", "schema": "public.pq_events", "page_size": 1000}}'),
               ('{"format": {"type": "parquet", "schema": "public.pq_events", "writer_version": "v3"}}'),
               ('{"format": {"type": "parquet", "schema": "public.pq_events", "column_to_json_key_mappings": {"nope": "x"}}}'),
               ('{"format": {"type": "parquet", "schema": "public.pq_events", "column_to_json_key_mappings": {"id": 5}}}'),
               ('{"format": {"type": "parquet", "schema": "public.pq_events", "blocksize": 5}}'),
               ('{"format": "parquet"}'),
               ('{"format": {"type": "parquet", "schema": "public.pq_events"}, "compression": "gzip"}')
       ) AS t(opts);
-- a row group below Firehose's 64 MiB is allowed, with a WARNING
SELECT pg_temp.try_s3('{"format": {"type": "parquet", "schema": "public.pq_events", "block_size": "1MB"}}') AS small_block;
DROP TABLE public.pq_events;
DROP TYPE public.pq_point;
DROP TYPE public.pq_wide;
