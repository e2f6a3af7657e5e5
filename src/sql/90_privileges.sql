-- ---------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; the owner grants what others may do
-- ---------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA firehose FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA firehose FROM PUBLIC;
GRANT USAGE ON SCHEMA firehose TO PUBLIC;
-- the views call these; SELECT on a view must be enough to read it
GRANT EXECUTE ON FUNCTION firehose._redact_options(text, jsonb) TO PUBLIC;
GRANT EXECUTE ON FUNCTION firehose._slot_status(integer) TO PUBLIC;
