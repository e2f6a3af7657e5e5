--
-- redshift_dest: the options of destination redshift: validation (the S3
-- stage's, the connection's, the COPY's), Firehose's bounds, secrets
-- redacted.  Delivery is tested against the S3 server and a second
-- PostgreSQL cluster in test/test_redshift.py.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;

CREATE FUNCTION pg_temp.try(opts jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r text;
    detail text;
    hint text;
BEGIN
    BEGIN
        PERFORM firehose.create_stream('probe', 'redshift',
            '{"s3": {"bucket": "rs-bucket", "credentials": "environment"},
              "conninfo": "host=rs.example.com port=5439 dbname=dev",
              "table": "public.t", "iam_role": "arn:aws:iam::123456789012:role/Loader"}'::jsonb || opts);
        SELECT string_agg(e.key || '=' || e.value::text, ', ' ORDER BY e.key) INTO r
          FROM firehose.stream s, jsonb_each(s.options) e
         WHERE s.name = 'probe' AND e.key IN ('retry_duration', 'buffer_size', 'buffer_interval',
                                               'copy_options', 'columns');
        RAISE SQLSTATE 'ZZ000';
    EXCEPTION WHEN OTHERS THEN
        IF SQLSTATE = 'ZZ000' THEN
            RETURN coalesce(r, '(none)');
        END IF;
        GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
        RETURN SQLSTATE || ': ' || SQLERRM
               || CASE WHEN detail <> '' THEN ' / ' || detail ELSE '' END
               || CASE WHEN hint <> '' THEN ' / ' || hint ELSE '' END;
    END;
END
$$;

-- the defaults: Firehose's for Redshift (5 MB, 300 s, 3600 s)
SELECT pg_temp.try('{}');
SELECT opts, pg_temp.try(opts::jsonb) AS result
  FROM (VALUES
    -- the S3 stage
    ('{"s3": {"bucket": "rs-bucket", "credentials": "environment", "compression": "snappy"}}'),
    ('{"s3": {"bucket": "rs-bucket", "credentials": "environment", "compression": "hadoop_snappy"}}'),
    ('{"s3": {"bucket": "rs-bucket", "credentials": "environment", "compression": "zip"}}'),
    ('{"s3": {"bucket": "rs-bucket", "credentials": "environment", "compression": "gzip"}}'),
    ('{"s3": {"bucket": "rs-bucket", "credentials": "environment", "compression": "gzip"}, "copy_options": "JSON ''auto'' GZIP"}'),
    ('{"s3": {"bucket": "rs-bucket", "credentials": "environment", "compression": "zstd"}, "copy_options": "ZSTD"}'),
    ('{"copy_options": "GZIP"}'),
    ('{"s3": {"bucket": "rs-bucket", "credentials": "environment", "prefix": "p/!{timestamp:yyyy}/"}}'),
    ('{"s3": {"bucket": "rs-bucket", "credentials": "environment", "error_output_prefix": "e/!{firehose:error-output-type}/"}}'),
    ('{"s3": {"bucket": "rs-bucket", "credentials": "environment", "format": {"type": "parquet", "schema": "public.t"}}}'),
    ('{"s3": {"bucket": "Bad_Bucket", "credentials": "environment"}}'),
    ('{"s3": {"bucket": "rs-bucket", "credentials": "environment", "nosuch": 1}}'),
    ('{"s3": "rs-bucket"}'),
    -- the connection, checked as the postgres destination's
    ('{"conninfo": "dbname=dev"}'),
    ('{"conninfo": "host=/var/run/postgresql dbname=dev"}'),
    ('{"conninfo": "host=a,b dbname=dev"}'),
    ('{"conninfo": "host=a passfile=/etc/passwd"}'),
    ('{"table": "t"}'),
    -- the COPY
    ('{"columns": ["id", "Name", "select"]}'),
    ('{"columns": []}'),
    ('{"columns": "id"}'),
    ('{"copy_options": "JSON ''auto'' TIMEFORMAT ''auto'' DELIMITER '';'' NULL AS ''it''''s null''"}'),
    ('{"copy_options": "JSON ''auto''; DROP TABLE t"}'),
    ('{"copy_options": "JSON ''auto"}'),
    ('{"copy_options": "JSON ''auto'' -- x"}'),
    ('{"copy_options": "JSON ''auto'' /* x */"}'),
    ('{"copy_options": "NULL AS ''\\'' x ''; DROP TABLE t''"}'),
    ('{"copy_options": "JSON ''auto'' MANIFEST"}'),
    ('{"copy_options": "iam_role ''arn:aws:iam::1:role/x''"}'),
    ('{"copy_options": "JSON $$auto$$"}'),
    -- credentials
    ('{"iam_role": null}'),
    ('{"access_key_id": "AKIAEXAMPLE", "secret_access_key": "abc/def+ghi="}'),
    ('{"iam_role": null, "access_key_id": "AKIAEXAMPLE", "secret_access_key": "abc/def+ghi="}'),
    ('{"iam_role": null, "access_key_id": "AKIAEXAMPLE"}'),
    ('{"iam_role": null, "access_key_id": "AKIAEXAMPLE", "secret_access_key": "x''; DROP TABLE t; --"}'),
    ('{"session_token": "tok"}'),
    ('{"iam_role": "role/x"}'),
    ('{"iam_role": "arn:aws:iam::1:role/x'' DROP"}'),
    -- Firehose's bounds for Redshift
    ('{"retry_duration": 0}'),
    ('{"retry_duration": 7200}'),
    ('{"retry_duration": 7201}'),
    ('{"buffer_size": "128MB", "buffer_interval": "15min"}'),
    ('{"buffer_size": "129MB"}'),
    ('{"buffer_size": "512kB"}'),
    ('{"buffer_interval": "901s"}')
  ) AS t(opts);

-- secrets are redacted in the view: the database password, the keys COPY
-- gives Redshift, the S3 stage's keys; the target names none of them
SELECT firehose.create_stream('rsd', 'redshift',
    '{"s3": {"bucket": "rs-bucket", "access_key_id": "AKIAS3STAGE", "secret_access_key": "s3-stage-secret"},
      "conninfo": "host=rs.example.com port=5439 user=loader password=rs-secret-pw dbname=dev",
      "table": "public.t", "access_key_id": "AKIACOPYKEY", "secret_access_key": "copy/secret+key=",
      "session_token": "copytoken"}');
SELECT options->>'conninfo' AS conninfo, options->>'access_key_id' AS access_key_id,
       options->>'secret_access_key' AS secret_access_key, options->>'session_token' AS session_token,
       options->'s3'->>'secret_access_key' AS s3_secret, target
  FROM firehose.streams WHERE name = 'rsd';
SELECT position('rs-secret-pw' IN options::text) = 0 AS no_password_in_view,
       position('s3-stage-secret' IN options::text) = 0 AS no_s3_secret_in_view,
       position('copy/secret' IN options::text) = 0 AS no_copy_secret_in_view,
       position('copytoken' IN options::text) = 0 AS no_token_in_view
  FROM firehose.streams WHERE name = 'rsd';
SELECT firehose.drop_stream('rsd');
