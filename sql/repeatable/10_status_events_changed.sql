-- qf.status_events_changed() as it is now. Earlier definitions, kept as history: sql/010 (a new database runs them first).
--
-- TG_ARGV[0]: "recipient" (the rows name their recipient) or "row" (RecipientStatusUpdated: every
-- recipient registered in the 64-recipient row).
CREATE OR REPLACE FUNCTION qf.status_events_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    chain_ids bigint[];
    contracts bytea[];
    recipients bytea[];
BEGIN
    IF TG_ARGV[0] = 'row' THEN
        SELECT array_agg(g.chain_id), array_agg(g.contract), array_agg(g.recipient_id)
        INTO chain_ids, contracts, recipients
        FROM (SELECT DISTINCT chain_id, contract, row_index FROM changed) c
        JOIN qf.registered g ON g.chain_id = c.chain_id AND g.contract = c.contract
                            AND g.recipient_index / 64 = c.row_index;
    ELSE
        SELECT array_agg(chain_id), array_agg(contract), array_agg(recipient_id)
        INTO chain_ids, contracts, recipients
        FROM (SELECT DISTINCT chain_id, contract, recipient_id FROM changed) c;
    END IF;
    IF chain_ids IS NOT NULL THEN
        PERFORM qf.recompute_status_history(chain_ids, contracts, recipients);
    END IF;
    RETURN NULL;
END
$$;
