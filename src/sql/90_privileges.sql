-- ---------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; the owner grants what others may do
-- ---------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA firehose FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA firehose FROM PUBLIC;
GRANT USAGE ON SCHEMA firehose TO PUBLIC;
