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
