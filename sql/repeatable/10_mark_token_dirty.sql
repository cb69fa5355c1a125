-- qf.mark_token_dirty() as it is now. Earlier definitions, kept as history: sql/007 (a new database runs them first).
--
-- New decimals for a token change every amount in it: its donors, projects and pools.
CREATE OR REPLACE FUNCTION qf.mark_token_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO qf.dirty_donors
    SELECT DISTINCT a.chain_id, a.sender FROM qf.allocated a JOIN changed c USING (chain_id)
    WHERE a.token = c.address;
    INSERT INTO qf.dirty_projects
    SELECT DISTINCT a.chain_id, a.contract, a.recipient_id, a.sender FROM qf.allocated a JOIN changed c USING (chain_id)
    WHERE a.token = c.address;
    INSERT INTO qf.dirty_pools (chain_id, pool_id, full_recompute)
    SELECT DISTINCT p.chain_id, p.pool_id, true FROM qf.pool_created p JOIN changed c USING (chain_id)
    WHERE p.token = c.address;
    RETURN NULL;
END
$$;
