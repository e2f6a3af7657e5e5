-- ---------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; the owner grants what others may do
-- ---------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA firehose FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA firehose FROM PUBLIC;
GRANT USAGE ON SCHEMA firehose TO PUBLIC;
-- firehose.stream_status calls it with the rights of the role querying the
-- view, and SELECT on the view must be enough to read it; it answers only
-- roles that may read the view (src/stream.c).  firehose.streams calls no
-- function: its columns are stored with the rows.
GRANT EXECUTE ON FUNCTION firehose._slot_status(integer) TO PUBLIC;
