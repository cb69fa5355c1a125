-- qf.recompute_status_history(bigint[],bytea[],bytea[]) as it is now. Earlier definitions, kept as history: sql/010 (a new database runs them first).
--
-- Recomputes the history of the given recipients (parallel arrays: chain, strategy, recipient) from
-- the status event tables: their first Registered, their UpdatedRegistrations, and every
-- RecipientStatusUpdated of their row after that registration.
CREATE OR REPLACE FUNCTION qf.recompute_status_history(chain_ids bigint[], contracts bytea[], recipients bytea[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS status_keys (chain_id bigint, contract bytea, recipient_id bytea) ON COMMIT DROP;
    TRUNCATE status_keys;
    INSERT INTO status_keys SELECT DISTINCT * FROM unnest(chain_ids, contracts, recipients);
    ANALYZE status_keys;
    DELETE FROM qf.recipient_status_history h USING status_keys k
    WHERE h.chain_id = k.chain_id AND h.contract = k.contract AND h.recipient_id = k.recipient_id;
    INSERT INTO qf.recipient_status_history
    WITH reg AS (
        SELECT DISTINCT ON (g.chain_id, g.contract, g.recipient_id)
               g.chain_id, g.contract, g.recipient_id, g.recipient_index, g.block_number, g.log_index
        FROM status_keys k
        JOIN qf.registered g ON g.chain_id = k.chain_id AND g.contract = k.contract AND g.recipient_id = k.recipient_id
        ORDER BY g.chain_id, g.contract, g.recipient_id, g.block_number, g.log_index
    ),
    events AS (
        SELECT chain_id, contract, recipient_id, block_number, log_index, 1::smallint AS status,
               'Registered'::text AS source
        FROM reg
        UNION ALL
        SELECT u.chain_id, u.contract, u.recipient_id, u.block_number, u.log_index, u.status, 'UpdatedRegistration'
        FROM status_keys k
        JOIN qf.updated_registration u
          ON u.chain_id = k.chain_id AND u.contract = k.contract AND u.recipient_id = k.recipient_id
        UNION ALL
        SELECT u.chain_id, u.contract, r.recipient_id, u.block_number, u.log_index,
               qf.status_nibble(u.full_row, r.recipient_index), 'RecipientStatusUpdated'
        FROM reg r
        JOIN qf.recipient_status_updated u ON u.chain_id = r.chain_id AND u.contract = r.contract
                                          AND u.row_index = r.recipient_index / 64
                                          AND (u.block_number, u.log_index) > (r.block_number, r.log_index)
    )
    SELECT e.chain_id, e.contract, e.recipient_id, e.block_number, e.log_index, e.status, e.source,
           r.recipient_index,
           lead(e.block_number) OVER w, lead(e.log_index) OVER w
    FROM events e
    LEFT JOIN reg r ON r.chain_id = e.chain_id AND r.contract = e.contract AND r.recipient_id = e.recipient_id
    WINDOW w AS (PARTITION BY e.chain_id, e.contract, e.recipient_id ORDER BY e.block_number, e.log_index, e.source);
END
$$;

COMMENT ON FUNCTION qf.recompute_status_history(bigint[],bytea[],bytea[]) IS 'Recompute qf.recipient_status_history of the given recipients (parallel arrays of chain id, strategy contract and recipient id) from the status event tables. Called by the triggers on those tables.';
