-- firehose--0.1.0.sql, assembled by the Makefile from the files in src/sql, in name order

\echo Use "CREATE EXTENSION firehose" to load this file. \quit

-- ---------------------------------------------------------------------
-- Catalog
-- ---------------------------------------------------------------------

-- what a processor function of option "processors" takes and returns:
--   CREATE FUNCTION f(r firehose.record) RETURNS firehose.processed
-- result is 'Ok' (deliver data), 'Dropped' or 'ProcessingFailed'
CREATE TYPE firehose.record AS (id bigint, data bytea, arrival timestamptz);
COMMENT ON TYPE firehose.record IS 'A record as a processor function gets it';
CREATE TYPE firehose.processed AS (result text, data bytea, partition_keys jsonb);
COMMENT ON TYPE firehose.processed IS 'What a processor function makes of a record: result Ok, Dropped or ProcessingFailed';

CREATE TABLE firehose.stream (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    -- the role that may alter, drop, pause, resume, flush, redrive and
    -- capture into the stream (with its members and superusers); regrole so
    -- that pg_dump writes the role's name, not its oid
    owner       regrole NOT NULL,
    destination text NOT NULL,
    options     jsonb NOT NULL,
    status      text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'PAUSED')),
    version     integer NOT NULL DEFAULT 1,
    -- every record of a transaction visible in this snapshot is delivered
    -- or failed; the worker advances it (see src/staging.c)
    consumed    pg_snapshot NOT NULL DEFAULT '1:1:',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE firehose.stream IS 'Delivery streams (internal; query firehose.streams)';

CREATE TABLE firehose.stream_stats (
    stream_id         integer PRIMARY KEY REFERENCES firehose.stream (id) ON DELETE CASCADE,
    delivered_records bigint NOT NULL DEFAULT 0,
    delivered_bytes   bigint NOT NULL DEFAULT 0,
    failed_records    bigint NOT NULL DEFAULT 0,
    failed_bytes      bigint NOT NULL DEFAULT 0,
    possible_duplicates bigint NOT NULL DEFAULT 0,
    -- the process stage: records dropped (counted in delivered_records) and
    -- failed (in failed_records) by processors; records that went through
    -- processors and the microseconds that took
    dropped_records   bigint NOT NULL DEFAULT 0,
    processing_failed_records bigint NOT NULL DEFAULT 0,
    processed_records bigint NOT NULL DEFAULT 0,
    processing_us     bigint NOT NULL DEFAULT 0,
    last_success_at   timestamptz,
    last_error_code   text,
    last_error        text,
    last_error_at     timestamptz
);
COMMENT ON TABLE firehose.stream_stats IS 'Delivery totals per stream (internal; query firehose.stream_status)';

-- one row per recorded part of a batch not yet complete: a worker that
-- starts over resumes those batches and skips these stretches of their scan
CREATE TABLE firehose.progress (
    stream_id    integer NOT NULL REFERENCES firehose.stream (id) ON DELETE CASCADE,
    batch_lo     pg_snapshot NOT NULL,
    batch_hi     pg_snapshot NOT NULL,
    cut_at       timestamptz NOT NULL,
    first_table  integer NOT NULL,
    start_table  integer NOT NULL,
    start_cursor tid,
    end_table    integer NOT NULL,
    end_cursor   tid
);
CREATE INDEX ON firehose.progress (stream_id);
COMMENT ON TABLE firehose.progress IS 'Recorded parts of unfinished batches (internal)';

CREATE TABLE firehose.deliveries (
    id          bigserial PRIMARY KEY,
    stream      text NOT NULL,
    batch       bigint NOT NULL,
    part        integer NOT NULL,
    request_id  uuid NOT NULL,
    records     integer NOT NULL,
    bytes       bigint NOT NULL,
    -- what the processors made of the records read: the records and bytes
    -- sent (the same as records and bytes without processors)
    records_after_processing integer NOT NULL,
    bytes_after_processing bigint NOT NULL,
    attempts    integer NOT NULL,
    http_status integer,
    duration_ms bigint NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('delivered', 'failed', 'partial')),
    failed_records integer NOT NULL DEFAULT 0,
    objects     integer NOT NULL DEFAULT 1,
    error_code  text,
    error       text,
    finished_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ON firehose.deliveries (finished_at);
COMMENT ON TABLE firehose.deliveries IS 'One row per delivered or failed request; kept for firehose.deliveries_retention';

-- rows belong to their stream by id: dropping the stream deletes them, and
-- a new stream of the same name never sees (or redrives) them
CREATE TABLE firehose.failed_records (
    id               bigserial PRIMARY KEY,
    stream_id        integer NOT NULL REFERENCES firehose.stream (id) ON DELETE CASCADE,
    stream           text NOT NULL,
    record_id        bigint NOT NULL,
    data             bytea NOT NULL,
    arrival_time     timestamptz NOT NULL,
    first_attempt_at timestamptz,
    failed_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempts_made    integer NOT NULL,
    error_code       text,
    error_message    text,
    request_id       uuid
);
CREATE INDEX ON firehose.failed_records (stream);
CREATE INDEX ON firehose.failed_records (stream_id);
COMMENT ON TABLE firehose.failed_records IS 'Records whose delivery failed for good; firehose.redrive() puts them back';

CREATE SEQUENCE firehose.record_id_seq;

-- ---------------------------------------------------------------------
-- Internal helpers (C)
-- ---------------------------------------------------------------------

-- caller: the role that called create_stream/alter_stream, for the options
-- only some roles may use (credentials 'environment', ca_file)
CREATE FUNCTION firehose._normalize_options(destination text, current jsonb, changes jsonb,
                                            caller regrole)
RETURNS jsonb LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'fh_normalize_options_sql';

CREATE FUNCTION firehose._redact_options(destination text, options jsonb)
RETURNS jsonb LANGUAGE c IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'fh_redact_options_sql';

CREATE FUNCTION firehose._stream_changed()
RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'fh_stream_changed_sql';

-- a new stream starts with fresh shared counters, whatever an earlier
-- stream of the same id (before DROP EXTENSION) left there
CREATE FUNCTION firehose._forget_slot(stream_id integer)
RETURNS void LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'fh_forget_slot_sql';

CREATE FUNCTION firehose._slot_status(stream_id integer,
    OUT buffered_records bigint, OUT buffered_bytes bigint,
    OUT in_flight_records bigint, OUT in_flight_bytes bigint,
    OUT oldest_arrival timestamptz, OUT worker_running boolean,
    OUT blocked_since timestamptz, OUT blocked_reason text,
    OUT active_partitions integer, OUT partitions_exceeded boolean)
RETURNS record LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'fh_slot_status_sql';

-- called by the worker for every finished request: p_records records of
-- which p_failed_records (p_failed_bytes) failed; p_duplicates were sent
-- again after an ambiguous outcome (a Splunk acknowledgement timeout); the
-- processors (if any) left p_records_after records (p_bytes_after bytes),
-- dropped p_dropped and failed p_processing_failed (counted in
-- p_failed_records too), in p_processing_us microseconds
CREATE FUNCTION firehose._record_delivery(p_stream_id integer, p_batch bigint, p_part integer,
    p_request_id text, p_records integer, p_bytes bigint, p_attempts integer,
    p_http_status integer, p_duration_ms bigint, p_failed_records integer, p_failed_bytes bigint,
    p_duplicates bigint, p_error_code text, p_error text, p_objects integer,
    p_records_after integer, p_bytes_after bigint, p_dropped integer,
    p_processing_failed integer, p_processing_us bigint)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    now timestamptz := clock_timestamp();
BEGIN
    INSERT INTO firehose.deliveries (stream, batch, part, request_id, records, bytes,
                                     records_after_processing, bytes_after_processing, attempts,
                                     http_status, duration_ms, outcome, failed_records,
                                     objects, error_code, error)
    SELECT s.name, p_batch, p_part, p_request_id::uuid, p_records, p_bytes,
           p_records_after, p_bytes_after, p_attempts,
           p_http_status, p_duration_ms,
           CASE WHEN p_failed_records = 0 THEN 'delivered'
                WHEN p_failed_records = p_records THEN 'failed' ELSE 'partial' END,
           p_failed_records, p_objects, p_error_code, p_error
      FROM firehose.stream s WHERE s.id = p_stream_id;
    UPDATE firehose.stream_stats
       SET delivered_records = delivered_records + (p_records - p_failed_records),
           delivered_bytes = delivered_bytes + (p_bytes - p_failed_bytes),
           failed_records = failed_records + p_failed_records,
           failed_bytes = failed_bytes + p_failed_bytes,
           possible_duplicates = possible_duplicates + p_duplicates,
           dropped_records = dropped_records + p_dropped,
           processing_failed_records = processing_failed_records + p_processing_failed,
           processed_records = processed_records
                               + CASE WHEN p_processing_us IS NULL THEN 0 ELSE p_records END,
           processing_us = processing_us + coalesce(p_processing_us, 0),
           last_success_at = CASE WHEN p_failed_records < p_records
                                  THEN now ELSE last_success_at END,
           last_error_code = CASE WHEN p_error_code IS NOT NULL
                                  THEN p_error_code ELSE last_error_code END,
           last_error = CASE WHEN p_error_code IS NOT NULL THEN p_error ELSE last_error END,
           last_error_at = CASE WHEN p_error_code IS NOT NULL
                                THEN now ELSE last_error_at END
     WHERE stream_id = p_stream_id;
END
$$;

-- ---------------------------------------------------------------------
-- Streams
-- ---------------------------------------------------------------------

-- SECURITY DEFINER: tells only whether a stream exists, to callers such as
-- capture_table() that may not read the catalog and its secrets
CREATE FUNCTION firehose._stream_id(stream text) RETURNS integer
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid integer;
BEGIN
    IF stream IS NULL THEN
        RAISE EXCEPTION 'stream name must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT s.id INTO sid FROM firehose.stream s WHERE s.name = stream;
    IF sid IS NULL THEN
        RAISE EXCEPTION 'stream "%" does not exist', stream
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with firehose.create_stream(), or list the streams with SELECT name FROM firehose.streams.';
    END IF;
    RETURN sid;
END
$$;

-- A user-facing function that must know its caller is C (fh_call_with_caller),
-- running in the caller's rights: it calls the SECURITY DEFINER function of
-- the same name with an underscore, passing the calling role last.  Inside
-- that one current_user is the extension's owner, and session_user need not
-- be the caller; the underscore functions are executable by no one else.
-- Should a role be granted EXECUTE on them anyway (GRANT ... ON ALL
-- FUNCTIONS IN SCHEMA firehose), _check_caller() refuses a caller that is
-- not the one fh_call_with_caller passed.
CREATE FUNCTION firehose._check_caller(caller regrole) RETURNS void
LANGUAGE c AS 'MODULE_PATHNAME', 'fh_check_caller_sql';

-- may caller act as the owner of a stream owned by owner: the owner itself,
-- a role that has the owner's privileges (a member that inherits them), a
-- superuser; what PostgreSQL asks of the owner of a table
CREATE FUNCTION firehose._may_manage(owner oid, caller oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN pg_catalog.pg_has_role(caller, owner, 'USAGE');

-- the id of a stream that caller may manage; 42501 otherwise
CREATE FUNCTION firehose._owned_stream_id(stream text, caller regrole) RETURNS integer
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid integer;
    owner regrole;
BEGIN
    PERFORM firehose._check_caller(caller);
    sid := firehose._stream_id(stream);
    SELECT s.owner INTO owner FROM firehose.stream s WHERE s.id = sid;
    IF NOT firehose._may_manage(owner, caller) THEN
        RAISE EXCEPTION 'must be owner of stream "%"', stream
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Its owner (firehose.streams.owner), a member of the owner role or a superuser may do this.';
    END IF;
    RETURN sid;
END
$$;

CREATE FUNCTION firehose.create_stream(name text, destination text, options jsonb DEFAULT '{}')
RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'fh_call_with_caller';

CREATE FUNCTION firehose._create_stream(name text, destination text, options jsonb,
                                        caller regrole)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    opts jsonb;
    sid integer;
BEGIN
    PERFORM firehose._check_caller(caller);
    IF name IS NULL OR destination IS NULL THEN
        RAISE EXCEPTION 'stream name and destination must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF name !~ '^[A-Za-z0-9_.-]{1,64}$' THEN
        RAISE EXCEPTION 'invalid stream name "%"', name
            USING ERRCODE = 'invalid_name',
                  DETAIL = 'A stream name has 1 to 64 characters.',
                  HINT = 'Use letters, digits, underscore, hyphen and period only ([A-Za-z0-9_.-]).';
    END IF;
    IF EXISTS (SELECT 1 FROM firehose.stream s WHERE s.name = _create_stream.name) THEN
        RAISE EXCEPTION 'stream "%" already exists', name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Change it with firehose.alter_stream(), or drop it first.';
    END IF;
    opts := firehose._normalize_options(destination, NULL, coalesce(options, '{}'), caller);

    INSERT INTO firehose.stream (name, owner, destination, options)
    VALUES (name, caller, destination, opts) RETURNING id INTO sid;
    INSERT INTO firehose.stream_stats (stream_id) VALUES (sid);
    PERFORM firehose._forget_slot(sid);
    FOR k IN 0..2 LOOP
        EXECUTE format('CREATE %s TABLE firehose.%I (id bigint NOT NULL, txid bigint NOT NULL, '
                       'arrival timestamptz NOT NULL, data bytea NOT NULL) '
                       'WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false)',
                       CASE WHEN (opts->>'durable')::boolean THEN '' ELSE 'UNLOGGED' END,
                       'stage_' || sid || '_' || k);
    END LOOP;
    PERFORM firehose._stream_changed();
END
$$;

-- Committed records of a stream not yet delivered or failed for good: those
-- not visible in its consumed snapshot.  Rows of transactions still open are
-- not counted; callers that must see none lock the tables first.
CREATE FUNCTION firehose._undelivered(sid integer, consumed pg_snapshot) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    waiting bigint := 0;
    n bigint;
BEGIN
    FOR k IN 0..2 LOOP
        EXECUTE format('SELECT count(*) FROM firehose.%I WHERE NOT pg_visible_in_snapshot(txid::text::xid8, $1)',
                       'stage_' || sid || '_' || k)
           INTO n USING consumed;
        waiting := waiting + n;
    END LOOP;
    RETURN waiting;
END
$$;

CREATE FUNCTION firehose.alter_stream(name text, options jsonb)
RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'fh_call_with_caller';

CREATE FUNCTION firehose._alter_stream(name text, options jsonb, caller regrole)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s firehose.stream;
    opts jsonb;
    waiting bigint;
BEGIN
    SELECT * INTO s FROM firehose.stream st
     WHERE st.id = firehose._owned_stream_id(_alter_stream.name, caller) FOR UPDATE;
    opts := firehose._normalize_options(s.destination, s.options, coalesce(options, '{}'), caller);
    IF (opts->>'durable')::boolean IS DISTINCT FROM (s.options->>'durable')::boolean THEN
        -- SET LOGGED/UNLOGGED rewrites the staging tables: rows move (those
        -- of rolled-back transactions are left out) and get new TIDs, while
        -- the worker reads batches with TID cursors and saves them in
        -- firehose.progress.  Switch only tables whose every committed row
        -- is consumed: no batch then has a row left to read in them.  The
        -- lock waits for producers still writing (their rows count once
        -- committed) and keeps new ones out until this commits; the stream
        -- row, locked above, keeps consumed from moving.
        EXECUTE format('LOCK TABLE firehose.%I, firehose.%I, firehose.%I IN ACCESS EXCLUSIVE MODE',
                       'stage_' || s.id || '_0', 'stage_' || s.id || '_1', 'stage_' || s.id || '_2');
        waiting := firehose._undelivered(s.id, s.consumed);
        IF waiting > 0 THEN
            RAISE EXCEPTION 'stream "%" has records not yet delivered', s.name
                USING ERRCODE = 'object_in_use',
                      DETAIL = format('%s record(s) are buffered or in flight; switching durable rewrites the staging tables they are read from.', waiting),
                      HINT = 'Stop the producers, wait for delivery with firehose.flush(''' || s.name || ''', wait => true), then switch durable.';
        END IF;
        FOR k IN 0..2 LOOP
            EXECUTE format('ALTER TABLE firehose.%I SET %s', 'stage_' || s.id || '_' || k,
                           CASE WHEN (opts->>'durable')::boolean THEN 'LOGGED' ELSE 'UNLOGGED' END);
        END LOOP;
    END IF;
    UPDATE firehose.stream
       SET options = opts, version = version + 1, updated_at = now()
     WHERE id = s.id;
    PERFORM firehose._stream_changed();
END
$$;

-- like ALTER TABLE ... OWNER TO: the caller may manage the stream and is a
-- member of the new owner role (a superuser may give it to any role)
CREATE FUNCTION firehose.alter_stream_owner(stream text, new_owner regrole)
RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'fh_call_with_caller';

CREATE FUNCTION firehose._alter_stream_owner(stream text, new_owner regrole, caller regrole)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid integer := firehose._owned_stream_id(stream, caller);
BEGIN
    IF new_owner IS NULL THEN
        RAISE EXCEPTION 'new owner of stream "%" must not be NULL', stream
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_has_role(caller, new_owner, 'MEMBER') THEN
        RAISE EXCEPTION 'must be member of role "%"', new_owner
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Giving stream "%s" to a role needs membership in that role.', stream),
                  HINT = 'A superuser may give a stream to any role.';
    END IF;
    UPDATE firehose.stream SET owner = new_owner, updated_at = now() WHERE id = sid;
    PERFORM firehose._stream_changed();
END
$$;

CREATE FUNCTION firehose.drop_stream(name text, force boolean DEFAULT false)
RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'fh_call_with_caller';

CREATE FUNCTION firehose._drop_stream(name text, force boolean, caller regrole)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid integer := firehose._owned_stream_id(name, caller);
    consumed pg_snapshot;
    captured text;
    waiting bigint;
BEGIN
    SELECT s.consumed INTO consumed FROM firehose.stream s WHERE s.id = sid FOR UPDATE;
    -- tables whose capture triggers put into this stream would fail every write
    SELECT string_agg(DISTINCT t.tgrelid::regclass::text, ', ' ORDER BY t.tgrelid::regclass::text)
      INTO captured
      FROM pg_trigger t
     WHERE t.tgfoid = 'firehose.capture()'::regprocedure
       AND t.tgnargs > 0
       AND split_part(encode(t.tgargs, 'escape'), '\000', 1) = _drop_stream.name;
    IF captured IS NOT NULL THEN
        RAISE EXCEPTION 'stream "%" is used by capture triggers', name
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = 'Captured tables: ' || captured || '.',
                  HINT = 'Remove them first with firehose.uncapture_table().';
    END IF;
    waiting := firehose._undelivered(sid, consumed);
    IF NOT coalesce(force, false) AND waiting > 0 THEN
        RAISE EXCEPTION 'stream "%" has records not yet delivered', name
            USING ERRCODE = 'object_in_use',
                  DETAIL = format('%s committed record(s) are buffered or in flight.', waiting),
                  HINT = 'Wait for delivery with firehose.flush(''' || name || ''', wait => true), or drop it anyway with force => true (those records are lost).';
    END IF;
    -- its failed_records go with it (ON DELETE CASCADE)
    DELETE FROM firehose.stream WHERE id = sid;
    FOR k IN 0..2 LOOP
        EXECUTE format('DROP TABLE firehose.%I', 'stage_' || sid || '_' || k);
    END LOOP;
    PERFORM firehose._stream_changed();
END
$$;

CREATE FUNCTION firehose._set_status(stream text, status text, caller regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE firehose.stream s SET status = _set_status.status, updated_at = now()
     WHERE s.id = firehose._owned_stream_id(_set_status.stream, caller);
    PERFORM firehose._stream_changed();
END
$$;

CREATE FUNCTION firehose.pause(stream text) RETURNS void
LANGUAGE c AS 'MODULE_PATHNAME', 'fh_call_with_caller';

CREATE FUNCTION firehose._pause(stream text, caller regrole) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT firehose._set_status(stream, 'PAUSED', caller);
END;

CREATE FUNCTION firehose.resume(stream text) RETURNS void
LANGUAGE c AS 'MODULE_PATHNAME', 'fh_call_with_caller';

CREATE FUNCTION firehose._resume(stream text, caller regrole) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT firehose._set_status(stream, 'ACTIVE', caller);
END;

-- ---------------------------------------------------------------------
-- Putting records
-- ---------------------------------------------------------------------

CREATE FUNCTION firehose.put(stream text, data bytea) RETURNS bigint
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fh_put';
CREATE FUNCTION firehose.put(stream text, data text) RETURNS bigint
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fh_put';
CREATE FUNCTION firehose.put(stream text, data jsonb) RETURNS bigint
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fh_put';

CREATE FUNCTION firehose.put_batch(stream text, data bytea[]) RETURNS bigint
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fh_put_batch';
CREATE FUNCTION firehose.put_batch(stream text, data text[]) RETURNS bigint
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fh_put_batch';
CREATE FUNCTION firehose.put_batch(stream text, data jsonb[]) RETURNS bigint
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fh_put_batch';

CREATE FUNCTION firehose.flush(stream text DEFAULT NULL, wait boolean DEFAULT false,
                               timeout interval DEFAULT '30s')
RETURNS boolean LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'fh_flush_sql';

CREATE FUNCTION firehose.redrive(stream text, ids bigint[] DEFAULT NULL) RETURNS bigint
LANGUAGE c AS 'MODULE_PATHNAME', 'fh_call_with_caller';

-- the stream's own failed records (by id: not those of an earlier stream
-- of the same name) back into it
CREATE FUNCTION firehose._redrive(stream text, ids bigint[], caller regrole) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid integer := firehose._owned_stream_id(stream, caller);
    n bigint;
BEGIN
    WITH gone AS (
        DELETE FROM firehose.failed_records f
         WHERE f.stream_id = sid AND (ids IS NULL OR f.id = ANY (ids))
        RETURNING f.id, f.data)
    SELECT count(firehose.put(_redrive.stream, g.data)) INTO n
      FROM (SELECT * FROM gone ORDER BY id) g;
    RETURN n;
END
$$;

-- ---------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------

CREATE FUNCTION firehose._target(destination text, options jsonb)
RETURNS text LANGUAGE c IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'fh_target_sql';

-- What firehose.streams shows is kept with each row, computed when the row
-- is written.  The functions a view calls run with the rights of the role
-- querying it, so computing these in the view would need them executable by
-- PUBLIC, where any role could call them on options of its own: they expect
-- options that create_stream validated (garbage crashes _target).
ALTER TABLE firehose.stream
    ADD COLUMN shown_options jsonb
        GENERATED ALWAYS AS (firehose._redact_options(destination, options)) STORED,
    ADD COLUMN target text
        GENERATED ALWAYS AS (firehose._target(destination, options)) STORED;

CREATE VIEW firehose.streams AS
SELECT s.name, s.owner, s.destination, s.status, s.version,
       s.shown_options AS options,
       s.created_at, s.updated_at,
       s.target
  FROM firehose.stream s;

CREATE VIEW firehose.stream_status AS
SELECT s.name AS stream, s.status,
       st.buffered_records, st.buffered_bytes,
       st.in_flight_records, st.in_flight_bytes,
       x.delivered_records, x.delivered_bytes,
       x.failed_records, x.failed_bytes, x.possible_duplicates,
       x.dropped_records, x.processing_failed_records,
       (x.processing_us::float8 / NULLIF(x.processed_records, 0))::numeric(20, 3)
           AS processing_us_per_record,
       st.buffered_records + st.in_flight_records + x.delivered_records + x.failed_records
           AS incoming_records,
       st.buffered_bytes + st.in_flight_bytes + x.delivered_bytes + x.failed_bytes
           AS incoming_bytes,
       clock_timestamp() - st.oldest_arrival AS oldest_record_age,
       x.last_success_at, x.last_error_code, x.last_error, x.last_error_at,
       st.worker_running, st.blocked_since, st.blocked_reason,
       st.active_partitions, st.partitions_exceeded
  FROM firehose.stream s
  JOIN firehose.stream_stats x ON x.stream_id = s.id
 CROSS JOIN LATERAL firehose._slot_status(s.id) st;

