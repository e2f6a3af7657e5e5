--
-- postgres_dest: the options of destination postgres: validation, the
-- defaults, the password redacted.  Delivery is tested against a second
-- PostgreSQL cluster in test/test_postgres.py.
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
        PERFORM firehose.create_stream('probe', 'postgres', opts);
        SELECT string_agg(e.key || '=' || e.value::text, ', ' ORDER BY e.key) INTO r
          FROM firehose.stream s, jsonb_each(s.options) e
         WHERE s.name = 'probe' AND e.key IN ('mode', 'exactly_once', 'retry_duration', 'key_columns');
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

SELECT opts, pg_temp.try(opts::jsonb) AS result
  FROM (VALUES ('{"conninfo": "host=db.example.com dbname=a", "table": "public.t"}'),
               ('{"conninfo": "postgresql://u@db.example.com:5433/a", "table": "public.t", "exactly_once": true}'),
               ('{"conninfo": "dbname=a", "table": "public.t"}'),
               ('{"conninfo": "host=/var/run/postgresql dbname=a", "table": "public.t"}'),
               ('{"conninfo": "host=a,b dbname=a", "table": "public.t"}'),
               ('{"conninfo": "host=a sslmode=disable", "table": "public.t"}'),
               ('{"conninfo": "host=a passfile=/etc/passwd", "table": "public.t"}'),
               ('{"conninfo": "host=a service=x", "table": "public.t"}'),
               ('{"conninfo": "host=a nosuch=1", "table": "public.t"}'),
               ('{"conninfo": "host=a", "table": "t"}'),
               ('{"conninfo": "host=a", "table": "public.t", "mode": "upsert"}'),
               ('{"conninfo": "host=a", "table": "public.t", "mode": "upsert", "key_columns": ["id"]}'),
               ('{"conninfo": "host=a", "table": "public.t", "key_columns": ["id"]}'),
               ('{"conninfo": "host=a", "table": "public.t", "mode": "upsert", "key_columns": []}'),
               ('{"conninfo": "host=a", "table": "public.t", "columns": {"a": "$.x.y", "b": "$"}}'),
               ('{"conninfo": "host=a", "table": "public.t", "sslmode": "verify-all"}'),
               ('{"conninfo": "host=a", "table": "public.t", "ledger_table": "ledger"}'),
               ('{"table": "public.t"}')
       ) AS t(opts);

-- the password is redacted in the view, and the target names no secret
SELECT firehose.create_stream('pgd', 'postgres',
    '{"conninfo": "host=db.example.com port=5433 user=loader password=pg-secret-pw dbname=dw", "table": "public.t"}');
SELECT options->>'conninfo' AS conninfo, target FROM firehose.streams WHERE name = 'pgd';
SELECT firehose.drop_stream('pgd');
SELECT firehose.create_stream('pgd', 'postgres',
    '{"conninfo": "postgresql://loader:uri-secret-pw@db.example.com/dw", "table": "public.t"}');
SELECT options->>'conninfo' AS conninfo FROM firehose.streams WHERE name = 'pgd';
SELECT firehose.drop_stream('pgd');
