-- Off-chain metadata. Every (protocol, pointer) an event carries is queued in qf.metadata_pointers
-- by a statement trigger on its source table; indexer.metadata fetches the queue in the background,
-- on its own connection, and stores each IPFS document in qf.ipfs_metadata once its bytes have been
-- verified against the CID. The indexer's transaction only adds the queue rows (one index probe per
-- new row); it never waits on a fetch, since the fetcher holds no lock while it talks to a gateway.
--
-- A new source of pointers is one line in a later migration, for any table with the columns
-- metadata_protocol and metadata_pointer:  SELECT qf.watch_metadata_pointers('qf.profiles');

CREATE TABLE qf.metadata_pointers (
    protocol        numeric(78,0) NOT NULL,
    pointer         text          NOT NULL,
    status          text          NOT NULL DEFAULT 'pending'
                                  CHECK (status IN ('pending', 'fetched', 'skipped', 'invalid')),
    attempts        integer       NOT NULL DEFAULT 0,
    first_seen_at   timestamptz   NOT NULL DEFAULT now(),
    next_attempt_at timestamptz   NOT NULL DEFAULT '-infinity',
    last_attempt_at timestamptz,
    last_error      text,
    PRIMARY KEY (protocol, pointer)
);
CREATE INDEX metadata_pointers_due_idx ON qf.metadata_pointers (next_attempt_at) WHERE status = 'pending';

CREATE TABLE qf.ipfs_metadata (
    cid        text        PRIMARY KEY,
    format     text        NOT NULL CHECK (format IN ('json', 'bytes')),
    body       jsonb,
    raw        bytea,
    size_bytes integer     NOT NULL,
    blocks     integer     NOT NULL,
    gateway    text        NOT NULL,
    fetched_at timestamptz NOT NULL,
    CHECK ((format = 'json') = (body IS NOT NULL) AND (format = 'bytes') = (raw IS NOT NULL))
);

COMMENT ON TABLE qf.metadata_pointers IS
    'Metadata pointers seen in events (queued by triggers), with the fetcher''s progress on each.';
COMMENT ON COLUMN qf.metadata_pointers.protocol IS 'Metadata protocol id (1 = IPFS; others are skipped).';
COMMENT ON COLUMN qf.metadata_pointers.pointer IS 'The pointer as the event carried it (for IPFS, a CID).';
COMMENT ON COLUMN qf.metadata_pointers.status IS
    'pending (to fetch, or to retry at next_attempt_at), fetched (in qf.ipfs_metadata), skipped (not IPFS), '
    'invalid (never fetchable: malformed CID, unsupported codec, not a file, too large).';
COMMENT ON COLUMN qf.metadata_pointers.attempts IS 'Fetch attempts made so far.';
COMMENT ON COLUMN qf.metadata_pointers.first_seen_at IS 'When an event first carried the pointer.';
COMMENT ON COLUMN qf.metadata_pointers.next_attempt_at IS
    'Earliest time of the next attempt (exponential backoff with jitter; a lease while a fetch is in flight).';
COMMENT ON COLUMN qf.metadata_pointers.last_attempt_at IS 'When the last attempt started.';
COMMENT ON COLUMN qf.metadata_pointers.last_error IS 'Why the last attempt failed (NULL after a success).';

COMMENT ON TABLE qf.ipfs_metadata IS
    'IPFS documents by CID, each block verified against its CID before it was stored.';
COMMENT ON COLUMN qf.ipfs_metadata.cid IS 'The CID, as the pointer spelled it.';
COMMENT ON COLUMN qf.ipfs_metadata.format IS 'json (the document is in body) or bytes (not JSON: in raw).';
COMMENT ON COLUMN qf.ipfs_metadata.body IS 'The document, when it parses as JSON.';
COMMENT ON COLUMN qf.ipfs_metadata.raw IS 'The file''s bytes, when they are not JSON.';
COMMENT ON COLUMN qf.ipfs_metadata.size_bytes IS 'Size of the file in bytes.';
COMMENT ON COLUMN qf.ipfs_metadata.blocks IS 'IPFS blocks fetched and verified to assemble it.';
COMMENT ON COLUMN qf.ipfs_metadata.gateway IS 'Gateway that served the root block (scheme://host:port).';
COMMENT ON COLUMN qf.ipfs_metadata.fetched_at IS 'When it was stored.';

-- Sorted, so that two writers adding the same pointers take their index entries in one order.
CREATE FUNCTION qf.queue_metadata_pointers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO qf.metadata_pointers (protocol, pointer)
    SELECT DISTINCT metadata_protocol, metadata_pointer FROM changed
    WHERE metadata_protocol IS NOT NULL AND metadata_pointer IS NOT NULL AND metadata_pointer <> ''
    ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION qf.queue_metadata_pointers() IS
    'Statement trigger: queue the (metadata_protocol, metadata_pointer) pairs of the changed rows.';

-- A source table: triggers on INSERT and UPDATE (a transition table allows one event per trigger),
-- and the pointers it already holds.
CREATE FUNCTION qf.watch_metadata_pointers(source regclass) RETURNS void LANGUAGE plpgsql AS $$
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
COMMENT ON FUNCTION qf.watch_metadata_pointers(regclass) IS
    'Make a table (with metadata_protocol and metadata_pointer columns) a source of qf.metadata_pointers.';

SELECT qf.watch_metadata_pointers('qf.pool_created');
SELECT qf.watch_metadata_pointers('qf.pool_metadata_updated');
SELECT qf.watch_metadata_pointers('qf.registered');
SELECT qf.watch_metadata_pointers('qf.updated_registration');
