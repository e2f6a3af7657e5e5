--
-- privileges: nothing is granted to PUBLIC; a role may do what it is
-- granted, and EXECUTE on put is enough to put.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_fh_nobody;
DROP ROLE IF EXISTS regress_fh_producer;
DROP ROLE IF EXISTS regress_fh_monitor;
RESET client_min_messages;

SELECT firehose.create_stream('guarded', 'http', '{
    "url": "http://127.0.0.1:9/", "buffer_interval": "1 day",
    "retry_duration": "2 hours", "retry_base": "1 hour", "access_key": "top-secret"}');

CREATE ROLE regress_fh_nobody;
CREATE ROLE regress_fh_producer;
CREATE ROLE regress_fh_monitor;

--
-- a role without grants can do nothing
--
SET ROLE regress_fh_nobody;
SELECT firehose.put('guarded', 'x'::text);
SELECT firehose.create_stream('mine', 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT stmt, sqlstate_of(stmt)
  FROM (VALUES
    ($$SELECT firehose.put('guarded', 'x'::text)$$),
    ($$SELECT firehose.put('guarded', 'x'::bytea)$$),
    ($$SELECT firehose.put('guarded', '{}'::jsonb)$$),
    ($$SELECT firehose.put_batch('guarded', ARRAY['x'])$$),
    ($$SELECT firehose.create_stream('mine', 'http', '{"url": "http://127.0.0.1:9/"}')$$),
    ($$SELECT firehose.alter_stream('guarded', '{"buffer_size": 1}')$$),
    ($$SELECT firehose.drop_stream('guarded', true)$$),
    ($$SELECT firehose.pause('guarded')$$),
    ($$SELECT firehose.resume('guarded')$$),
    ($$SELECT firehose.flush('guarded')$$),
    ($$SELECT firehose.redrive('guarded')$$),
    ($$SELECT * FROM firehose.streams$$),
    ($$SELECT * FROM firehose.stream_status$$),
    ($$SELECT * FROM firehose.deliveries$$),
    ($$SELECT * FROM firehose.failed_records$$),
    ($$SELECT * FROM firehose.stream$$),
    ($$SELECT firehose._normalize_options('http', NULL, '{"url": "http://127.0.0.1:9/"}', NULL)$$),
    ($$SELECT firehose._target('opensearch', '{}')$$),
    ($$SELECT firehose._redact_options('http', '{}')$$),
    ($$SELECT * FROM firehose._slot_status(1)$$),
    ($$SELECT firehose._forget_slot(1)$$),
    ($$SELECT firehose._stream_changed()$$)
  ) v(stmt);
RESET ROLE;
-- PUBLIC may execute _slot_status (firehose.stream_status calls it), nothing
-- else (capture_table checks ownership in C)
SELECT p.oid::regprocedure AS executable_by_public
  FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
 WHERE p.pronamespace = 'firehose'::regnamespace
   AND a.grantee = 0 AND a.privilege_type = 'EXECUTE'
 ORDER BY 1;
SELECT count(*) AS streams, min(version) AS version FROM firehose.streams WHERE name IN ('guarded', 'mine');
SELECT buffered_records + in_flight_records AS pending_records
  FROM firehose.stream_status WHERE stream = 'guarded';

--
-- a producer granted put(text, text) only: it puts without seeing the
-- catalog
--
GRANT EXECUTE ON FUNCTION firehose.put(text, text) TO regress_fh_producer;
SET ROLE regress_fh_producer;
SELECT firehose.put('guarded', 'from producer'::text) > 0 AS put;
SELECT firehose.put('guarded', 'x'::bytea);
SELECT firehose.put('nope', 'x'::text);
SELECT options FROM firehose.stream;
RESET ROLE;
SELECT buffered_records + in_flight_records AS pending_records
  FROM firehose.stream_status WHERE stream = 'guarded';

--
-- a monitor granted SELECT on the views sees them, secrets redacted; the
-- table behind them stays closed
--
GRANT SELECT ON firehose.streams, firehose.stream_status TO regress_fh_monitor;
SET ROLE regress_fh_monitor;
SELECT name, status, version, options->>'access_key' AS access_key, options->>'url' AS url
  FROM firehose.streams WHERE name = 'guarded';
SELECT stream, status, buffered_records + in_flight_records AS pending_records
  FROM firehose.stream_status WHERE stream = 'guarded';
-- every column
SELECT name, target, options->>'access_key' AS access_key, created_at IS NOT NULL AS created
  FROM (SELECT * FROM firehose.streams) s WHERE name = 'guarded';
SELECT stream, worker_running IS NOT NULL AS has_worker_running
  FROM (SELECT * FROM firehose.stream_status) s WHERE stream = 'guarded';
SELECT options FROM firehose.stream;
SELECT firehose.put('guarded', 'x'::text);
RESET ROLE;

--
-- a stream admin granted create_stream and drop_stream
--
GRANT EXECUTE ON FUNCTION firehose.create_stream(text, text, jsonb),
                          firehose.drop_stream(text, boolean) TO regress_fh_producer;
SET ROLE regress_fh_producer;
SELECT firehose.create_stream('mine', 'http', '{"url": "http://127.0.0.1:9/"}');
SELECT firehose.alter_stream('mine', '{"buffer_size": 1}');
RESET ROLE;
SELECT name FROM firehose.streams WHERE name IN ('guarded', 'mine') ORDER BY name;
SET ROLE regress_fh_producer;
SELECT firehose.drop_stream('mine');
RESET ROLE;
SELECT name FROM firehose.streams WHERE name IN ('guarded', 'mine') ORDER BY name;

SELECT firehose.drop_stream('guarded', force => true);
DROP OWNED BY regress_fh_producer;
DROP ROLE regress_fh_nobody;
DROP ROLE regress_fh_producer;
DROP OWNED BY regress_fh_monitor;
DROP ROLE regress_fh_monitor;

--
-- streams have owners: the creator, shown in firehose.streams.owner.
-- Changing, dropping, pausing, resuming, flushing, redriving and capturing
-- into a stream is for its owner, a member of the owner role and
-- superusers (42501 for others); put needs only EXECUTE.
--
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_fh_owner;
DROP ROLE IF EXISTS regress_fh_other;
DROP ROLE IF EXISTS regress_fh_member;
RESET client_min_messages;
CREATE ROLE regress_fh_owner;
CREATE ROLE regress_fh_other;
CREATE ROLE regress_fh_member IN ROLE regress_fh_owner;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA firehose
   TO regress_fh_owner, regress_fh_other, regress_fh_member;
GRANT SELECT ON firehose.streams TO regress_fh_owner, regress_fh_other;
CREATE TABLE owned_t (id int);
GRANT ALL ON owned_t TO regress_fh_owner, regress_fh_other, regress_fh_member;

SELECT firehose.create_stream('guarded', 'http', '{
    "url": "http://127.0.0.1:9/", "buffer_interval": "1 day",
    "retry_duration": "2 hours", "retry_base": "1 hour", "access_key": "top-secret"}');
SET ROLE regress_fh_owner;
SELECT firehose.create_stream('owned', 'http', '{
    "url": "http://127.0.0.1:9/", "buffer_interval": "1 day",
    "retry_duration": "2 hours", "retry_base": "1 hour", "access_key": "top-secret"}');
SELECT name, owner FROM firehose.streams WHERE name = 'owned';
RESET ROLE;
SELECT name, owner = current_user::regrole AS owned_by_creator
  FROM firehose.streams WHERE name = 'guarded';

-- another role may put, and nothing else
SET ROLE regress_fh_other;
SELECT firehose.put('owned', 'from other'::text) > 0 AS put;
SELECT firehose.alter_stream('owned', '{"url": "http://127.0.0.1:10/"}');
SELECT stmt, sqlstate_of(stmt)
  FROM (VALUES
    ($$SELECT firehose.alter_stream('owned', '{"url": "http://127.0.0.1:10/"}')$$),
    ($$SELECT firehose.drop_stream('owned', true)$$),
    ($$SELECT firehose.pause('owned')$$),
    ($$SELECT firehose.resume('owned')$$),
    ($$SELECT firehose.flush('owned')$$),
    ($$SELECT firehose.flush('owned', wait => true, timeout => '1 ms')$$),
    ($$SELECT firehose.redrive('owned')$$),
    ($$SELECT firehose.capture_table('owned_t', 'owned')$$),
    ($$SELECT firehose.alter_stream_owner('owned', 'regress_fh_other')$$),
    ($$SELECT firehose.alter_stream('guarded', '{"buffer_size": 1}')$$),
    ($$SELECT firehose.drop_stream('guarded', true)$$),
    ($$SELECT firehose.alter_stream('nope', '{"buffer_size": 1}')$$)
  ) v(stmt);
-- the internal functions behind them take the caller as an argument, but
-- only the one the functions above pass: even with EXECUTE on everything
-- granted, the caller cannot be forged
SELECT firehose._alter_stream('owned', '{"url": "http://127.0.0.1:10/"}', 'regress_fh_owner');
SELECT firehose._owned_stream_id('owned', 'regress_fh_owner');
SELECT firehose._create_stream('forged', 'http', '{"url": "http://127.0.0.1:9/"}', 'regress_fh_owner');
SELECT firehose._check_caller('regress_fh_other');
-- flush() of all streams flushes only those the caller may manage
SELECT firehose.flush();
RESET ROLE;
SELECT name, owner = current_user::regrole AS by_superuser, status, version,
       options->>'url' AS url, options->>'buffer_size' AS buffer_size
  FROM firehose.streams WHERE name IN ('owned', 'guarded') ORDER BY name;

-- the owner, a member of the owner role, a superuser may
SET ROLE regress_fh_owner;
SELECT firehose.pause('owned');
SELECT firehose.alter_stream('owned', '{"buffer_size": 2}');
SELECT firehose.capture_table('owned_t', 'owned');
SET ROLE regress_fh_member;
SELECT firehose.resume('owned');
SELECT firehose.alter_stream('owned', '{"buffer_size": 3}');
SELECT firehose.redrive('owned');
SELECT firehose.flush('owned');
RESET ROLE;
SELECT firehose.pause('owned');
SELECT firehose.resume('owned');
SELECT firehose.alter_stream('owned', '{"buffer_size": 4}');
SELECT firehose.uncapture_table('owned_t');
SELECT name, owner, status, version, options->>'buffer_size' AS buffer_size
  FROM firehose.streams WHERE name = 'owned';

-- alter_stream_owner: by the owner (or a superuser), to a role the caller
-- is a member of (a superuser: to any role)
SET ROLE regress_fh_owner;
SELECT firehose.alter_stream_owner('owned', 'regress_fh_other');
SELECT sqlstate_of($$SELECT firehose.alter_stream_owner('owned', 'regress_fh_other')$$);
SELECT firehose.alter_stream_owner('owned', NULL);
SELECT firehose.alter_stream_owner('owned', 'regress_fh_owner');
SET ROLE regress_fh_member;
SELECT firehose.alter_stream_owner('owned', 'regress_fh_member');
SELECT name, owner FROM firehose.streams WHERE name = 'owned';
-- now the member owns it; the former owner (not a member of the member)
-- may no longer alter it
SET ROLE regress_fh_owner;
SELECT sqlstate_of($$SELECT firehose.alter_stream('owned', '{"buffer_size": 5}')$$);
RESET ROLE;
SELECT firehose.alter_stream_owner('owned', 'regress_fh_other');
SET ROLE regress_fh_other;
SELECT firehose.alter_stream('owned', '{"buffer_size": 5}');
SELECT name, owner, options->>'buffer_size' AS buffer_size
  FROM firehose.streams WHERE name = 'owned';
SELECT firehose.drop_stream('owned', force => true);
RESET ROLE;
SELECT count(*) AS owned_streams FROM firehose.streams WHERE name = 'owned';

SELECT firehose.drop_stream('guarded', force => true);
DROP TABLE owned_t;
DROP OWNED BY regress_fh_owner, regress_fh_other, regress_fh_member;
DROP ROLE regress_fh_member;
DROP ROLE regress_fh_owner;
DROP ROLE regress_fh_other;
