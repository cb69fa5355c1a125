-- qf.queue_metadata_pointers() as it is now. Earlier definitions, kept as history: sql/015 (a new database runs them first).
--
-- Sorted, so that two writers adding the same pointers take their index entries in one order.
CREATE OR REPLACE FUNCTION qf.queue_metadata_pointers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO qf.metadata_pointers (protocol, pointer)
    SELECT DISTINCT metadata_protocol, metadata_pointer FROM changed
    WHERE metadata_protocol IS NOT NULL AND metadata_pointer IS NOT NULL AND metadata_pointer <> ''
    ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION qf.queue_metadata_pointers() IS 'Statement trigger: queue the (metadata_protocol, metadata_pointer) pairs of the changed rows.';
