--
-- partners: the presets for LogicMonitor, Logz.io, MongoDB Atlas and
-- Dynatrace (issue 12 section 3): the URL each builds (firehose.streams.
-- target), its defaults, its secrets redacted in the view, and the errors
-- of missing or bad options with their SQLSTATE, message, detail and hint.
-- Delivery to a receiver is in test/test_presets.py.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
-- try_stream(destination, opts): see 00_setup.sql

-- the defaults: buffer, interval, retry and content encoding
SELECT d, (SELECT string_agg(key || '=' || value::text, ', ' ORDER BY key)
             FROM jsonb_each(firehose._normalize_options(d, NULL, o, current_user::regrole))
            WHERE key IN ('buffer_size', 'buffer_interval', 'retry_duration',
                          'content_encoding', 'region', 'kind')) AS defaults
  FROM (VALUES ('logicmonitor', '{"api_key": "k", "account": "acme"}'::jsonb),
               ('logzio', '{"shipping_token": "t"}'),
               ('mongodb', '{"api_key": "k", "api_gateway_url": "https://abc123defg.execute-api.us-east-1.amazonaws.com/prod"}'),
               ('dynatrace', '{"api_token": "t", "region": "eu", "api_url": "https://abc12345.live.dynatrace.com"}')
       ) AS t(d, o);

--
-- logicmonitor: https://ACCOUNT.logicmonitor.com
--
SELECT opts, try_stream('logicmonitor', opts::jsonb) AS result
  FROM (VALUES ('{"api_key": "k", "account": "acme"}'),
               ('{"api_key": "k", "account": "acme-eu-2", "content_encoding": "none"}'),
               ('{"api_key": "k", "account": "a"}'),
               ('{"account": "acme"}'),
               ('{"api_key": "k"}'),
               ('{"api_key": "k", "account": ""}'),
               ('{"api_key": "k", "account": "-acme"}'),
               ('{"api_key": "k", "account": "acme-"}'),
               ('{"api_key": "k", "account": "acme.evil.example"}'),
               ('{"api_key": "k", "account": "ac/me"}'),
               ('{"api_key": "k", "account": "a23456789012345678901234567890123456789012345678901234567890123"}'),
               ('{"api_key": "k", "account": "a234567890123456789012345678901234567890123456789012345678901234"}'),
               ('{"api_key": "k", "account": "acme", "content_encoding": "zstd"}'),
               ('{"api_key": "k", "account": "acme", "url": "http://127.0.0.1:9/lm"}')
       ) AS t(opts);

--
-- logzio: https://listener-aws-metrics-stream-<region>.logz.io/, no
-- content encoding
--
SELECT opts, try_stream('logzio', opts::jsonb) AS result
  FROM (VALUES ('{"shipping_token": "t"}'),
               ('{"shipping_token": "t", "region": "eu"}'),
               ('{"shipping_token": "t", "region": "au"}'),
               ('{"region": "us"}'),
               ('{"shipping_token": "t", "content_encoding": "gzip"}'),
               ('{"shipping_token": "t", "content_encoding": "none"}')
       ) AS t(opts);

--
-- mongodb: the user's API Gateway (https), or the older Realm webhooks
--
SELECT opts, try_stream('mongodb', opts::jsonb) AS result
  FROM (VALUES ('{"api_key": "k", "api_gateway_url": "https://abc123defg.execute-api.us-east-1.amazonaws.com/prod"}'),
               ('{"api_key": "k", "api_gateway_url": "https://abc123defg.execute-api.eu-west-3.amazonaws.com/v1/firehose"}'),
               ('{"api_key": "k", "api_gateway_url": "https://webhooks.mongodb-realm.com/api/client/v2.0/app/a-1/service/kinesis/incoming_webhook/in"}'),
               ('{"api_gateway_url": "https://abc123defg.execute-api.us-east-1.amazonaws.com/prod"}'),
               ('{"api_key": "k"}'),
               ('{"api_key": "k", "api_gateway_url": "http://abc123defg.execute-api.us-east-1.amazonaws.com/prod"}'),
               ('{"api_key": "k", "api_gateway_url": "https://abc123defg.execute-api.us-east-1.amazonaws.com/"}'),
               ('{"api_key": "k", "api_gateway_url": "https://abc123defg.execute-api.us-east-1.amazonaws.com"}'),
               ('{"api_key": "k", "api_gateway_url": "https://evil.example/prod"}'),
               ('{"api_key": "k", "api_gateway_url": "https://x.execute-api.us-east-1.amazonaws.com.evil.example/prod"}'),
               ('{"api_key": "k", "api_gateway_url": "https://user:pw@abc.execute-api.us-east-1.amazonaws.com/prod"}'),
               ('{"api_key": "k", "api_gateway_url": "not a url"}'),
               ('{"api_key": "k", "url": "http://127.0.0.1:9/atlas"}')
       ) AS t(opts);

--
-- dynatrace: US / EU / Global intakes, api_url sent as dt-url
--
SELECT opts, try_stream('dynatrace', '{"api_token": "t", "api_url": "https://abc12345.live.dynatrace.com"}'::jsonb || opts::jsonb) AS result
  FROM (VALUES ('{"region": "us"}'),
               ('{"region": "eu"}'),
               ('{"region": "global", "kind": "metrics"}'),
               ('{}'),
               ('{"region": "ap"}'),
               ('{"region": "us", "kind": "logs"}'),
               ('{"region": "us", "kind": "logs", "url": "http://127.0.0.1:9/logs"}'),
               ('{"region": "us", "kind": "traces"}'),
               ('{"region": "us", "api_url": "http://abc12345.live.dynatrace.com"}'),
               ('{"region": "us", "api_url": "abc12345"}'),
               ('{"region": "us", "api_url": "https://dtuser:dt-password@abc12345.live.dynatrace.com"}'),
               ('{"region": "us", "api_url": "http://dtuser:dt-password@abc12345.live.dynatrace.com"}'),
               ('{"region": "us", "common_attributes": {"dt-url": "https://other.live.dynatrace.com"}}'),
               ('{"region": "us", "common_attributes": {"team": "db"}}')
       ) AS t(opts);
SELECT firehose.create_stream('s', 'dynatrace', '{"api_token": "t", "region": "us"}');

-- keys and tokens are redacted in the view; the rest is shown
SELECT firehose.create_stream('lm', 'logicmonitor', '{"api_key": "lm-secret", "account": "acme"}');
SELECT firehose.create_stream('lz', 'logzio', '{"shipping_token": "lz-secret"}');
SELECT firehose.create_stream('mg', 'mongodb', '{"api_key": "mg-secret", "api_gateway_url": "https://abc123defg.execute-api.us-east-1.amazonaws.com/prod"}');
SELECT firehose.create_stream('dt', 'dynatrace', '{"api_token": "dt-secret", "region": "us", "api_url": "https://dtuser:dt-password@abc12345.live.dynatrace.com"}');
SELECT name, destination, target, options - 'buffer_interval' - 'retry_duration' - 'buffer_size' AS options
  FROM firehose.streams WHERE name IN ('lm', 'lz', 'mg', 'dt') ORDER BY name;
-- the user information of Dynatrace's api_url, as of every URL: nowhere in the view
SELECT name FROM firehose.streams s
 WHERE s::text LIKE '%dt-password%' OR s::text LIKE '%dtuser%';

-- a change of where records go drops the stored key
SELECT sqlstate_of($$SELECT firehose.alter_stream('lm', '{"account": "other"}')$$);
SELECT sqlstate_of($$SELECT firehose.alter_stream('dt', '{"api_url": "https://other.live.dynatrace.com"}')$$);
SELECT sqlstate_of($$SELECT firehose.alter_stream('mg', '{"api_gateway_url": "https://zzz.execute-api.us-east-1.amazonaws.com/prod"}')$$);
SELECT sqlstate_of($$SELECT firehose.alter_stream('dt', '{"region": "eu", "api_token": "new"}')$$);
SELECT target, options->>'api_token' AS token FROM firehose.streams WHERE name = 'dt';
SELECT firehose.drop_stream(n) FROM unnest(ARRAY['lm', 'lz', 'mg', 'dt']) n;
