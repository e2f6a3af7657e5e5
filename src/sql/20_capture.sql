
-- ---------------------------------------------------------------------
-- Change capture (src/capture.c)
-- ---------------------------------------------------------------------

-- AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW and AFTER TRUNCATE ...
-- FOR EACH STATEMENT; arguments: the stream, then ignore=col[,col...] and
-- skip_unchanged=true.  ts_ms in the events is statement_timestamp().
-- Creating a trigger needs EXECUTE on this function; firing one does not.
CREATE FUNCTION firehose.capture() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'fh_capture';
COMMENT ON FUNCTION firehose.capture() IS
    'Trigger: puts each row change into the stream named by the first argument as a Debezium-style change event';

-- capture_table() is C (fh_capture_table): in the caller's rights it checks
-- that the caller may manage the stream, then calls _capture_table() with
-- the same arguments.  Neither is SECURITY DEFINER: CREATE TRIGGER runs as
-- the caller, so PostgreSQL checks that the caller may create triggers on
-- tbl (TRIGGER privilege) and may execute firehose.capture().
CREATE FUNCTION firehose.capture_table(tbl regclass, stream text, options jsonb DEFAULT '{}')
RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'fh_capture_table';

CREATE FUNCTION firehose._capture_table(tbl regclass, stream text, options jsonb)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    opts jsonb := coalesce(options, '{}');
    all_ops constant text[] := ARRAY['insert', 'update', 'delete', 'truncate'];
    ops text[] := all_ops;
    row_events text[];
    args text := '';
    k text;
    v text;
BEGIN
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = tbl) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'cannot capture changes of "%"', tbl
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = 'Only tables and partitioned tables can be captured.',
                  HINT = 'For a view, capture the tables it reads.';
    END IF;
    IF jsonb_typeof(opts) <> 'object' THEN
        RAISE EXCEPTION 'capture options must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example {"ignore": ["updated_at"], "operations": ["insert", "update"]}.';
    END IF;
    FOR k IN SELECT jsonb_object_keys(opts) LOOP
        IF k NOT IN ('ignore', 'operations', 'skip_unchanged') THEN
            RAISE EXCEPTION 'unknown capture option "%"', k
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'The options are ignore (array of column names), operations '
                             '(array of "insert", "update", "delete", "truncate") and '
                             'skip_unchanged (boolean).';
        END IF;
    END LOOP;

    IF opts ? 'ignore' THEN
        IF jsonb_typeof(opts->'ignore') <> 'array'
           OR EXISTS (SELECT 1 FROM jsonb_array_elements(opts->'ignore') e
                       WHERE jsonb_typeof(e) <> 'string') THEN
            RAISE EXCEPTION 'capture option "ignore" must be an array of column names'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'For example {"ignore": ["updated_at", "password_hash"]}.';
        END IF;
        FOR v IN SELECT DISTINCT e FROM jsonb_array_elements_text(opts->'ignore') e LOOP
            IF NOT EXISTS (SELECT 1 FROM pg_attribute a
                            WHERE a.attrelid = tbl AND a.attname = v
                              AND a.attnum > 0 AND NOT a.attisdropped) THEN
                RAISE EXCEPTION 'column "%" of table % does not exist', v, tbl
                    USING ERRCODE = 'undefined_column',
                          HINT = 'Capture option "ignore" names columns of the captured table.';
            END IF;
            args := args || format(', %L', 'ignore=' || v);
        END LOOP;
    END IF;

    IF opts ? 'operations' THEN
        IF jsonb_typeof(opts->'operations') <> 'array'
           OR EXISTS (SELECT 1 FROM jsonb_array_elements(opts->'operations') e
                       WHERE jsonb_typeof(e) <> 'string') THEN
            RAISE EXCEPTION 'capture option "operations" must be an array of operation names'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'For example {"operations": ["insert", "update"]}; the operations are insert, update, delete and truncate.';
        END IF;
        SELECT coalesce(array_agg(DISTINCT e), '{}') INTO ops
          FROM jsonb_array_elements_text(opts->'operations') e;
        FOREACH v IN ARRAY ops LOOP
            IF NOT v = ANY (all_ops) THEN
                RAISE EXCEPTION 'unknown operation "%" in capture option "operations"', v
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'The operations are insert, update, delete and truncate.';
            END IF;
        END LOOP;
        IF cardinality(ops) = 0 THEN
            RAISE EXCEPTION 'capture option "operations" must name at least one operation'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'To stop capturing a table, call firehose.uncapture_table().';
        END IF;
    END IF;

    IF opts ? 'skip_unchanged' THEN
        IF jsonb_typeof(opts->'skip_unchanged') <> 'boolean' THEN
            RAISE EXCEPTION 'capture option "skip_unchanged" must be a boolean'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'For example {"skip_unchanged": true}: no event for an UPDATE that changes only ignored columns, or nothing.';
        END IF;
        IF (opts->'skip_unchanged')::boolean THEN
            args := args || ', ''skip_unchanged=true''';
        END IF;
    END IF;

    -- capturing again replaces the triggers
    FOR k IN SELECT t.tgname FROM pg_trigger t
              WHERE t.tgrelid = tbl
                AND t.tgname IN ('firehose_capture', 'firehose_capture_truncate') LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', k, tbl);
    END LOOP;

    SELECT array_agg(upper(o) ORDER BY array_position(all_ops, o)) INTO row_events
      FROM unnest(ops) o WHERE o <> 'truncate';
    IF row_events IS NOT NULL THEN
        EXECUTE format('CREATE TRIGGER firehose_capture AFTER %s ON %s FOR EACH ROW '
                       'EXECUTE FUNCTION firehose.capture(%L%s)',
                       array_to_string(row_events, ' OR '), tbl, stream, args);
    END IF;
    IF 'truncate' = ANY (ops) THEN
        EXECUTE format('CREATE TRIGGER firehose_capture_truncate AFTER TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION firehose.capture(%L)',
                       tbl, stream);
    END IF;
END
$$;
COMMENT ON FUNCTION firehose.capture_table(regclass, text, jsonb) IS
    'Creates the firehose_capture triggers that put the changes of a table into a stream';

CREATE FUNCTION firehose.uncapture_table(tbl regclass)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k name;
    n integer := 0;
BEGIN
    FOR k IN SELECT t.tgname FROM pg_trigger t
              WHERE t.tgrelid = tbl
                AND t.tgname IN ('firehose_capture', 'firehose_capture_truncate') LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', k, tbl);
        n := n + 1;
    END LOOP;
    IF n = 0 THEN
        RAISE EXCEPTION 'table % is not captured', tbl
            USING ERRCODE = 'undefined_object',
                  HINT = 'firehose.capture_table() creates the triggers firehose_capture and firehose_capture_truncate that this drops.';
    END IF;
END
$$;
COMMENT ON FUNCTION firehose.uncapture_table(regclass) IS
    'Drops the triggers firehose.capture_table() created';
