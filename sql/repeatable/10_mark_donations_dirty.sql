-- qf.mark_donations_dirty() as it is now. Earlier definitions, kept as history: sql/007, sql/013 (a new database runs them first).
CREATE OR REPLACE FUNCTION qf.mark_donations_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO qf.dirty_donors
    SELECT DISTINCT chain_id, sender FROM changed
    UNION
    SELECT a.chain_id, a.sender
    FROM (SELECT DISTINCT chain_id, contract, recipient_id, block_number FROM changed) c
    JOIN qf.allocated a ON a.chain_id = c.chain_id AND a.contract = c.contract
                       AND a.recipient_id = c.recipient_id AND a.block_number = c.block_number;
    INSERT INTO qf.dirty_projects SELECT DISTINCT chain_id, contract, recipient_id, sender FROM changed;
    INSERT INTO qf.dirty_pools (chain_id, contract, full_recompute)
    SELECT DISTINCT chain_id, contract, false FROM changed;
    RETURN NULL;
END
$$;
