-- qf.watch_metadata_pointers(regclass) as it is now. Earlier definitions, kept as history: sql/015 (a new database runs them first).
--
-- A source table: triggers on INSERT and UPDATE (a transition table allows one event per trigger),
-- and the pointers it already holds.
CREATE OR REPLACE FUNCTION qf.watch_metadata_pointers(source regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    base text := (SELECT relname FROM pg_class WHERE oid = source);
BEGIN
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS changed '
                   'FOR EACH STATEMENT EXECUTE FUNCTION qf.queue_metadata_pointers()', base || '_insert_metadata', source);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING NEW TABLE AS changed '
                   'FOR EACH STATEMENT EXECUTE FUNCTION qf.queue_metadata_pointers()', base || '_update_metadata', source);
    EXECUTE format('INSERT INTO qf.metadata_pointers (protocol, pointer) '
                   'SELECT DISTINCT metadata_protocol, metadata_pointer FROM %s '
                   'WHERE metadata_protocol IS NOT NULL AND metadata_pointer IS NOT NULL AND metadata_pointer <> '''' '
                   'ORDER BY 1, 2 ON CONFLICT DO NOTHING', source);
END
$$;

COMMENT ON FUNCTION qf.watch_metadata_pointers(regclass) IS 'Make a table (with metadata_protocol and metadata_pointer columns) a source of qf.metadata_pointers.';
