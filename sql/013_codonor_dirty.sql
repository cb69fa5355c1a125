-- A donor's same_block_codonations counts donations by others to the same project in the same
-- block, so a donation (or its removal by a reorg) changes the features of every donor who gave
-- to that project in that block, not only its own sender's. Mark them all dirty; found by the
-- property test tests/analytics/test_incremental.py, where donor 1 joining donor 0's block left
-- donor 0's row stale until a full rebuild.
--
-- After an INSERT the new rows are in qf.allocated too; after a DELETE the co-donors still are.
-- The lookup is one probe of allocated_project_idx per changed row.

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
