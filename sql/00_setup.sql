--
-- 00_setup: helpers for the tests after it (pg_regress runs them in name
-- order, in one database).
--

-- run a statement; 'ok', or its SQLSTATE and message
CREATE FUNCTION sqlstate_of(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
GRANT EXECUTE ON FUNCTION sqlstate_of(text) TO PUBLIC;

-- try_stream(destination, opts): create stream 'probe' and undo it; its
-- target and the options given, as firehose.streams shows them (secrets
-- redacted), or the error with its SQLSTATE, detail and hint.  Here, not
-- in pg_temp, so that every later file has it (each runs in a session of
-- its own)
CREATE FUNCTION try_stream(dest text, opts jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r text;
    detail text;
    hint text;
BEGIN
    BEGIN
        PERFORM firehose.create_stream('probe', dest, opts);
        SELECT s.target || ' ' || string_agg(e.key || '=' || e.value::text, ', ' ORDER BY e.key) INTO r
          FROM firehose.streams s, jsonb_each(s.options) e
         WHERE s.name = 'probe' AND opts ? e.key
         GROUP BY s.target;
        RAISE SQLSTATE 'ZZ000';
    EXCEPTION WHEN OTHERS THEN
        IF SQLSTATE = 'ZZ000' THEN
            RETURN r;
        END IF;
        GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
        RETURN SQLSTATE || ': ' || SQLERRM
               || CASE WHEN detail <> '' THEN ' / ' || detail ELSE '' END
               || CASE WHEN hint <> '' THEN ' / HINT: ' || hint ELSE '' END;
    END;
END
$$;
