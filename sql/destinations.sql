--
-- destinations: the options of opensearch, splunk and the partner presets:
-- validation, defaults, redaction.  Delivery is tested against receivers
-- that implement the protocols in test/test_opensearch.py, test_splunk.py
-- and test_presets.py.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
-- try_stream(destination, opts): see 00_setup.sql

-- defaults of every destination, as Firehose's (buffer, interval, retries)
SELECT d, (SELECT string_agg(key || '=' || value::text, ', ' ORDER BY key)
             FROM jsonb_each(firehose._normalize_options(d, NULL, o, current_user::regrole))
            WHERE key IN ('buffer_size', 'buffer_interval', 'retry_duration', 'index_rotation',
                          'document_id', 'action', 'endpoint_type', 'ack', 'ack_timeout',
                          'content_encoding', 'site', 'kind', 'region')) AS defaults
  FROM (VALUES ('opensearch', '{"endpoint": "https://os:9200", "index": "logs"}'::jsonb),
               ('splunk', '{"endpoint": "https://splunk:8088", "token": "t"}'),
               ('datadog', '{"api_key": "k"}'),
               ('newrelic', '{"license_key": "k"}'),
               ('honeycomb', '{"api_key": "k", "dataset": "d"}'),
               ('sumologic', '{"access_token": "t", "deployment": "us2"}'),
               ('coralogix', '{"private_key": "k"}'),
               ('elastic', '{"api_key": "k", "url": "https://x.es.eu-west-1.aws.elastic-cloud.com"}')
       ) AS t(d, o);

--
-- opensearch
--
SELECT firehose.create_stream('s', 'opensearch', '{"index": "logs"}');
SELECT firehose.create_stream('s', 'opensearch', '{"endpoint": "https://os:9200", "index": "Logs"}');
SELECT opts, try_stream('opensearch', '{"endpoint": "https://os:9200", "index": "logs"}'::jsonb || opts::jsonb) AS result
  FROM (VALUES ('{}'),
               ('{"index": "_logs"}'),
               ('{"index": "a,b"}'),
               ('{"index": ""}'),
               ('{"index_rotation": "week"}'),
               ('{"index_rotation": "OneDay"}'),
               ('{"document_id": "none"}'),
               ('{"document_id": "$.order.id"}'),
               ('{"document_id": "order_id"}'),
               ('{"document_id": "$.["}'),
               ('{"routing": "$.customer"}'),
               ('{"type_name": "_doc", "pipeline": "p1", "action": "create"}'),
               ('{"action": "update"}'),
               ('{"username": "u"}'),
               ('{"username": "u", "password": "p"}'),
               ('{"aws_region": "eu-west-1"}'),
               ('{"aws_region": "eu-west-1", "credentials": "environment", "aws_service": "aoss"}'),
               ('{"aws_region": "eu-west-1", "access_key_id": "A", "secret_access_key": "S", "username": "u", "password": "p"}'),
               ('{"access_key_id": "A", "secret_access_key": "S"}'),
               ('{"aws_service": "es"}'),
               ('{"backup": {"mode": "all", "s3": {"bucket": "b-1", "credentials": "environment"}}}'),
               ('{"url": "https://os:9200"}')
       ) AS t(opts);

--
-- splunk
--
SELECT firehose.create_stream('s', 'splunk', '{"endpoint": "https://splunk:8088"}');
SELECT opts, try_stream('splunk', '{"endpoint": "https://splunk:8088", "token": "t"}'::jsonb || opts::jsonb) AS result
  FROM (VALUES ('{}'),
               ('{"endpoint_type": "event", "host": "h", "source": "s", "sourcetype": "st", "index": "main"}'),
               ('{"endpoint_type": "Raw"}'),
               ('{"ack": true, "ack_timeout": "5 minutes", "ack_poll_interval": 200}'),
               ('{"ack_timeout": 179}'),
               ('{"ack_timeout": 601}'),
               ('{"ack_poll_interval": 5}'),
               ('{"channel": "0aeeac95-ac74-4aa9-b30d-6c4c0ac581ba"}'),
               ('{"channel": "a b"}'),
               ('{"token": "a\nb"}')
       ) AS t(opts);

--
-- partner presets
--
SELECT firehose.create_stream('s', 'datadog', '{}');
SELECT firehose.create_stream('s', 'datadog', '{"api_key": "k", "site": "gov", "kind": "metrics"}');
SELECT firehose.create_stream('s', 'elastic', '{"api_key": "k"}');
SELECT firehose.create_stream('s', 'honeycomb', '{"api_key": "k"}');
SELECT d, opts, try_stream(d, opts::jsonb) AS result
  FROM (VALUES ('datadog', '{"api_key": "k", "site": "us5", "kind": "metrics"}'),
               ('datadog', '{"api_key": "k", "site": "mars"}'),
               ('datadog', '{"api_key": "k", "site": "gov", "kind": "metrics", "url": "https://proxy.example/dd"}'),
               ('datadog', '{"api_key": "k", "content_encoding": "none", "common_attributes": {"env": "prod"}}'),
               ('newrelic', '{"license_key": "k", "region": "eu", "kind": "metrics"}'),
               ('newrelic', '{"license_key": "k", "region": "ap"}'),
               ('sumologic', '{"access_token": "t", "deployment": "moon"}'),
               ('sumologic', '{"access_token": "t", "deployment": "eu", "data_type": "metrics"}'),
               ('coralogix', '{"private_key": "k", "region": "ap1"}'),
               ('coralogix', '{"private_key": "k", "region": "xx"}'),
               ('honeycomb', '{"api_key": "k", "dataset": "my data"}'),
               ('elastic', '{"api_key": "k", "url": "ftp://x"}'),
               ('datadog', '{"api_key": "k", "format": "raw"}')
       ) AS t(d, opts);

-- keys and tokens are redacted in the view
SELECT firehose.create_stream('dd', 'datadog', '{"api_key": "dd-secret"}');
SELECT firehose.create_stream('sp', 'splunk', '{"endpoint": "https://splunk:8088", "token": "hec-secret"}');
SELECT firehose.create_stream('os', 'opensearch', '{"endpoint": "https://os:9200", "index": "logs", "username": "u", "password": "os-secret"}');
SELECT name, options->>'api_key' AS api_key, options->>'token' AS token,
       options->>'password' AS password, options->>'username' AS username
  FROM firehose.streams WHERE name IN ('dd', 'sp', 'os') ORDER BY name;
SELECT firehose.drop_stream(n) FROM unnest(ARRAY['dd', 'sp', 'os']) n;

-- where each stream's records go (firehose.streams.target), without secrets
SELECT d, firehose._target(d, firehose._normalize_options(d, NULL, o, current_user::regrole)) AS target
  FROM (VALUES ('http', '{"url": "https://hooks.example.com/in"}'::jsonb),
               ('s3', '{"bucket": "logs-1", "region": "eu-west-1", "credentials": "environment"}'),
               ('s3', '{"bucket": "logs-1", "endpoint": "http://127.0.0.1:9000", "path_style": true, "prefix": "app/", "credentials": "environment"}'),
               ('opensearch', '{"endpoint": "https://os:9200/", "index": "logs", "pipeline": "p1"}'),
               ('splunk', '{"endpoint": "https://splunk:8088", "token": "t", "endpoint_type": "event"}'),
               ('datadog', '{"api_key": "k"}'),
               ('datadog', '{"api_key": "k", "site": "us5"}'),
               ('datadog', '{"api_key": "k", "site": "ap1", "kind": "metrics"}'),
               ('datadog', '{"api_key": "k", "site": "eu", "kind": "metrics"}'),
               ('newrelic', '{"license_key": "k", "region": "eu"}'),
               ('newrelic', '{"license_key": "k", "kind": "metrics"}'),
               ('honeycomb', '{"api_key": "k", "dataset": "my data"}'),
               ('sumologic', '{"access_token": "tok-secret", "deployment": "us2"}'),
               ('coralogix', '{"private_key": "k", "region": "eu2"}'),
               ('elastic', '{"api_key": "k", "url": "https://d1.es.eu-west-1.aws.elastic-cloud.com"}'),
               ('datadog', '{"api_key": "k", "url": "http://127.0.0.1:8080/dd"}')
       ) AS t(d, o);

--
-- secrets belong to where they were given for: alter_stream that changes
-- where records go (url, endpoint, bucket, region, a preset's site,
-- region or deployment) drops the stored secrets it does not give again;
-- if the destination then lacks one, the error says they were dropped
--
-- moved(destination, create options, changes): the secret options left
-- after the alter (values shown), or the error with its detail
CREATE FUNCTION pg_temp.moved(dest text, opts jsonb, changes jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r text;
    detail text;
BEGIN
    BEGIN
        PERFORM firehose.create_stream('probe', dest, opts);
        PERFORM firehose.alter_stream('probe', changes);
        SELECT coalesce(string_agg(e.key || '=' || e.value::text, ', ' ORDER BY e.key), '(none)')
          INTO r
          FROM firehose.stream s, jsonb_each(s.options) e
         WHERE s.name = 'probe'
           AND e.key IN ('access_key', 'headers', 'token', 'username', 'password',
                         'access_key_id', 'secret_access_key', 'session_token', 'api_key',
                         'license_key', 'access_token', 'private_key');
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
SELECT d, c, pg_temp.moved(d, o, c) AS secrets_after
  FROM (VALUES
    ('http', '{"url": "http://a:1/", "access_key": "k", "headers": {"Authorization": "Bearer b"}}'::jsonb,
             '{"url": "http://b:1/"}'::jsonb),
    ('http', '{"url": "http://a:1/", "access_key": "k", "headers": {"Authorization": "Bearer b"}}',
             '{"url": "http://b:1/", "access_key": "k2"}'),
    ('http', '{"url": "http://a:1/", "access_key": "k", "headers": {"Authorization": "Bearer b"}}',
             '{"url": "http://a:1/"}'),
    ('http', '{"url": "http://a:1/", "access_key": "k", "headers": {"Authorization": "Bearer b"}}',
             '{"buffer_size": "1MB", "format": "firehose"}'),
    ('splunk', '{"endpoint": "https://s:8088", "token": "t"}', '{"endpoint": "https://evil:8088"}'),
    ('splunk', '{"endpoint": "https://s:8088", "token": "t"}', '{"endpoint": "https://s2:8088", "token": "t2"}'),
    ('splunk', '{"endpoint": "https://s:8088", "token": "t"}', '{"endpoint_type": "event"}'),
    ('opensearch', '{"endpoint": "https://os:9200", "index": "l", "username": "u", "password": "p"}',
                   '{"endpoint": "https://evil:9200"}'),
    ('opensearch', '{"endpoint": "https://os:9200", "index": "l", "username": "u", "password": "p"}',
                   '{"endpoint": "https://os2:9200", "password": "p2"}'),
    ('opensearch', '{"endpoint": "https://os:9200", "index": "l", "aws_region": "eu-west-1", "credentials": "static", "access_key_id": "A", "secret_access_key": "S"}',
                   '{"endpoint": "https://evil:9200"}'),
    ('s3', '{"bucket": "bkt-1", "access_key_id": "A", "secret_access_key": "S"}', '{"bucket": "evil"}'),
    ('s3', '{"bucket": "bkt-1", "access_key_id": "A", "secret_access_key": "S"}', '{"region": "eu-west-1"}'),
    ('s3', '{"bucket": "bkt-1", "access_key_id": "A", "secret_access_key": "S"}', '{"endpoint": "http://evil:9000"}'),
    ('s3', '{"bucket": "bkt-1", "access_key_id": "A", "secret_access_key": "S"}',
           '{"bucket": "bkt-2", "access_key_id": "A2", "secret_access_key": "S2"}'),
    ('s3', '{"bucket": "bkt-1", "access_key_id": "A", "secret_access_key": "S"}', '{"prefix": "p/"}'),
    ('s3', '{"bucket": "bkt-1", "region": "eu-west-1", "access_key_id": "A", "secret_access_key": "S"}',
           '{"region": null}'),
    ('datadog', '{"api_key": "k"}', '{"url": "http://evil:1/"}'),
    ('datadog', '{"api_key": "k"}', '{"site": "eu"}'),
    ('datadog', '{"api_key": "k"}', '{"kind": "metrics"}'),
    ('datadog', '{"api_key": "k", "url": "http://proxy:1/"}', '{"url": null}'),
    ('newrelic', '{"license_key": "k"}', '{"region": "eu"}'),
    ('coralogix', '{"private_key": "k"}', '{"region": "us1"}'),
    ('sumologic', '{"access_token": "t", "deployment": "us2"}', '{"deployment": "eu"}'),
    ('elastic', '{"api_key": "k", "url": "https://d1.es.eu-west-1.aws.elastic-cloud.com"}',
                '{"url": "https://evil.example.com", "api_key": "k2"}')
  ) AS t(d, o, c);
-- the stored options of a backup are replaced as a whole: its old keys do
-- not carry over to a new backup store
SELECT pg_temp.moved('http', '{"url": "http://a:1/", "backup": {"s3": {"bucket": "bkt-1", "access_key_id": "A", "secret_access_key": "S"}}}',
                     '{"backup": {"s3": {"bucket": "evil", "credentials": "environment"}}}') AS secrets_after,
       (SELECT firehose._normalize_options('http', NULL,
                '{"url": "http://a:1/", "backup": {"s3": {"bucket": "bkt-1", "access_key_id": "A", "secret_access_key": "S"}}}',
                current_user::regrole) #> '{backup,s3}') ? 'access_key_id' AS had_keys;
SELECT firehose._normalize_options('http',
           firehose._normalize_options('http', NULL,
               '{"url": "http://a:1/", "backup": {"s3": {"bucket": "bkt-1", "access_key_id": "A", "secret_access_key": "S"}}}',
               current_user::regrole),
           '{"backup": {"s3": {"bucket": "evil", "credentials": "environment"}}}',
           current_user::regrole) #> '{backup,s3}' ? 'access_key_id' AS keys_carried;
-- the notice that says which secrets were dropped
SET client_min_messages = notice;
SELECT firehose.create_stream('moving', 'http', '{"url": "http://a:1/", "access_key": "k", "headers": {"X-Token": "t"}}');
SELECT firehose.alter_stream('moving', '{"url": "http://b:1/"}');
SELECT options->>'url' AS url, options ? 'access_key' AS has_access_key,
       options ? 'headers' AS has_headers
  FROM firehose.streams WHERE name = 'moving';
SELECT firehose.drop_stream('moving');
SET client_min_messages = warning;
