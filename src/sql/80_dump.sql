
-- ---------------------------------------------------------------------
-- pg_dump and restore
-- ---------------------------------------------------------------------

-- What a restored database needs to go on delivering: the streams (with
-- their secrets: a dump is a superuser's backup), their totals, the
-- deliveries and failed records, and the sequences, so that new ids do not
-- collide with restored ones.  The staging tables are not members of the
-- extension (create_stream makes them), so pg_dump dumps them as ordinary
-- tables, with the records they hold.  firehose.progress is left out: it
-- describes the source worker's batches in flight, whose records the
-- restored worker cuts anew.
SELECT pg_catalog.pg_extension_config_dump('firehose.stream', '');
SELECT pg_catalog.pg_extension_config_dump('firehose.stream_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('firehose.stream_stats', '');
SELECT pg_catalog.pg_extension_config_dump('firehose.deliveries', '');
SELECT pg_catalog.pg_extension_config_dump('firehose.deliveries_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('firehose.failed_records', '');
SELECT pg_catalog.pg_extension_config_dump('firehose.failed_records_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('firehose.record_id_seq', '');

-- Every new row of firehose.stream, from create_stream() or from a restore
-- (pg_restore and psql load the dumped rows with COPY, which fires these
-- triggers):
--  BEFORE: a consumed snapshot that a transaction running now, or any later
--    one, could fall below would hide that transaction's records for good.
--    A dump from a cluster whose transaction counter is ahead of this one
--    carries such a snapshot; it is reset to one that hides nothing (the
--    stream then delivers everything in its staging tables, at least once).
--    One that this cluster has passed (create_stream's '1:1:', or a dump of
--    the same cluster) is kept, so what was delivered is not sent again.
--  AFTER (only once the row is in): fresh shared counters for the stream id
--    (a slot of this database and id may be left from a stream dropped with
--    the extension), and a worker for the database at commit: the launcher
--    knows of no restored database until asked.
CREATE FUNCTION firehose._stream_inserted() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_WHEN = 'BEFORE' THEN
        IF pg_catalog.pg_snapshot_xmax(NEW.consumed)
           OPERATOR(pg_catalog.>) pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot()) THEN
            NEW.consumed := '1:1:'::pg_catalog.pg_snapshot;
        END IF;
        RETURN NEW;
    END IF;
    PERFORM firehose._forget_slot(NEW.id);
    PERFORM firehose._stream_changed();
    RETURN NULL;
END
$$;

CREATE TRIGGER stream_inserted_before BEFORE INSERT ON firehose.stream
    FOR EACH ROW EXECUTE FUNCTION firehose._stream_inserted();
CREATE TRIGGER stream_inserted_after AFTER INSERT ON firehose.stream
    FOR EACH ROW EXECUTE FUNCTION firehose._stream_inserted();
