--
-- option_security: options that reach beyond the stream are for
-- superusers (credentials "environment", ca_file unless under
-- firehose.allowed_ca_dirs), whoever was granted create_stream.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_fh_admin;
RESET client_min_messages;
CREATE ROLE regress_fh_admin;
GRANT EXECUTE ON FUNCTION firehose.create_stream(text, text, jsonb),
                          firehose.alter_stream(text, jsonb),
                          firehose.drop_stream(text, boolean) TO regress_fh_admin;
SELECT current_setting('data_directory') AS datadir \gset

SET ROLE regress_fh_admin;
-- the server's own AWS identity, at the top and in an S3 backup store
SELECT firehose.create_stream('env', 's3', '{"bucket": "bkt", "credentials": "environment"}');
SELECT firehose.create_stream('env', 'opensearch', '{
    "endpoint": "http://127.0.0.1:9", "index": "i", "aws_region": "us-east-1",
    "credentials": "environment"}');
SELECT firehose.create_stream('env', 'http', '{"url": "http://127.0.0.1:9/",
    "backup": {"mode": "failed", "s3": {"bucket": "bkt", "credentials": "environment"}}}');
-- a file of the server, in every destination that takes one
SELECT firehose.create_stream('ca', 'http', '{"url": "https://127.0.0.1:9/",
    "ca_file": "/etc/ssl/certs/ca-certificates.crt"}');
SELECT firehose.create_stream('ca', 'splunk', '{"endpoint": "https://127.0.0.1:9",
    "token": "t", "ca_file": "/etc/passwd"}');
SELECT firehose.create_stream('ca', 'datadog', '{"api_key": "k", "ca_file": "/etc/passwd"}');
SELECT firehose.create_stream('ca', 'http', '{"url": "http://127.0.0.1:9/",
    "backup": {"mode": "failed", "s3": {"bucket": "bkt", "access_key_id": "a",
               "secret_access_key": "s", "ca_file": "/etc/passwd"}}}');
-- neither given later by alter_stream
SELECT firehose.create_stream('plain', 's3', '{"bucket": "bkt", "access_key_id": "a",
    "secret_access_key": "s"}');
SELECT firehose.alter_stream('plain', '{"credentials": "environment", "access_key_id": null,
    "secret_access_key": null}');
SELECT firehose.alter_stream('plain', '{"ca_file": "/etc/passwd"}');
RESET ROLE;

-- a superuser may; the stream then stays out of the non-superuser's reach
SELECT firehose.alter_stream('plain', '{"credentials": "environment", "access_key_id": null,
    "secret_access_key": null}');
SET ROLE regress_fh_admin;
SELECT firehose.alter_stream('plain', '{"buffer_size": "1MB"}');
-- unless the options are changed back into what the role may use
SELECT firehose.alter_stream('plain', '{"credentials": "static", "access_key_id": "a",
    "secret_access_key": "s"}');
RESET ROLE;

-- firehose.allowed_ca_dirs: files under those directories, after ".." and
-- symbolic links are resolved (only a superuser sets it)
SET ROLE regress_fh_admin;
SET firehose.allowed_ca_dirs = '/tmp';
RESET ROLE;
SELECT set_config('firehose.allowed_ca_dirs', '/nonexistent, ' || :'datadir', false) IS NOT NULL AS set;
SET ROLE regress_fh_admin;
SELECT sqlstate_of(format($$SELECT firehose.alter_stream('plain', '{"ca_file": %s}')$$,
                          to_jsonb(:'datadir' || '/PG_VERSION'))) AS under_allowed_dir;
SELECT sqlstate_of(format($$SELECT firehose.alter_stream('plain', '{"ca_file": %s}')$$,
                          to_jsonb(:'datadir' || '/base/../PG_VERSION'))) AS dotdot_inside;
SELECT sqlstate_of(format($$SELECT firehose.alter_stream('plain', '{"ca_file": %s}')$$,
                          to_jsonb(:'datadir' || '/../../../../../../../etc/passwd'))) LIKE '42501:%' AS dotdot_outside;
SELECT sqlstate_of(format($$SELECT firehose.alter_stream('plain', '{"ca_file": %s}')$$,
                          to_jsonb(:'datadir' || '/no_such_file'))) LIKE '42501:%' AS missing_file;
SELECT sqlstate_of(format($$SELECT firehose.alter_stream('plain', '{"ca_file": %s}')$$,
                          to_jsonb(:'datadir' || '/base'))) LIKE '42501:%' AS directory;
RESET ROLE;
RESET firehose.allowed_ca_dirs;
SELECT firehose.alter_stream('plain', '{"ca_file": "/etc/passwd"}');
SELECT name, options->>'ca_file' AS ca_file, options->>'credentials' AS credentials
  FROM firehose.streams WHERE name = 'plain';

SELECT firehose.drop_stream('plain');

--
-- what is sent as an HTTP header has no line break or NUL
--
SELECT firehose.create_stream('h', 'http', '{"url": "http://127.0.0.1:9/",
    "headers": {"X-A": "v\r\nX-Injected: 1"}}');
SELECT firehose.create_stream('h', 'http', '{"url": "http://127.0.0.1:9/",
    "headers": {"X-A\nX-Injected": "1"}}');
SELECT firehose.create_stream('h', 'http', '{"url": "http://127.0.0.1:9/",
    "common_attributes": {"k": "a\nb"}}');
SELECT firehose.create_stream('h', 'splunk', '{"endpoint": "http://127.0.0.1:9",
    "token": "t\r\nX-Injected: 1"}');

--
-- user information in URLs is not shown
--
SELECT firehose.create_stream('u', 'http', '{"url": "https://user:pa%40ss@127.0.0.1:9/in?x=1",
    "backup": {"mode": "failed", "s3": {"bucket": "bkt", "access_key_id": "a",
               "secret_access_key": "s", "endpoint": "http://k:s@127.0.0.1:9"}}}');
SELECT firehose.create_stream('o', 'opensearch', '{"endpoint": "http://u:p@127.0.0.1:9",
    "index": "i"}');
SELECT name, options->>'url' AS url, options->'backup'->'s3'->>'endpoint' AS backup_endpoint,
       options->>'endpoint' AS endpoint, target
  FROM firehose.streams WHERE name IN ('u', 'o') ORDER BY name;
SELECT firehose.drop_stream('u');
SELECT firehose.drop_stream('o');

--
-- firehose.allowed_destinations: link-local and metadata addresses are
-- refused by default; the worker checks resolved addresses again
--
SHOW firehose.allowed_destinations;
SELECT firehose.create_stream('m', 'http', '{"url": "http://169.254.169.254/latest/meta-data/"}');
SELECT firehose.create_stream('m', 'opensearch', '{"endpoint": "http://[fd00:ec2::254]",
    "index": "i"}');
SELECT firehose.create_stream('m', 'http', '{"url": "http://127.0.0.1:9/",
    "backup": {"mode": "failed", "s3": {"bucket": "bkt", "access_key_id": "a",
               "secret_access_key": "s", "endpoint": "http://169.254.1.2"}}}');
SET firehose.allowed_destinations = '10.0.0.0/8, *.example.com, !*';
SELECT firehose.create_stream('m', 'http', '{"url": "http://10.1.2.3/"}');
SELECT firehose.create_stream('m2', 'http', '{"url": "https://in.example.com/"}');
SELECT firehose.create_stream('m3', 'http', '{"url": "https://example.org/"}');
SELECT firehose.drop_stream('m');
SELECT firehose.drop_stream('m2');
SET firehose.allowed_destinations = '10.0.0.0/8, ::1/200';
SET ROLE regress_fh_admin;
SET firehose.allowed_destinations = '*';
RESET ROLE;
RESET firehose.allowed_destinations;

DROP OWNED BY regress_fh_admin;
DROP ROLE regress_fh_admin;
