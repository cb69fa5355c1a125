-- qf.mark_strategy_kind_dirty() as it is now. Earlier definitions, kept as history: sql/024 (a new database runs them first).
--
-- A strategy whose id is read (or stored) after its donations: its pool and donors are recomputed.
CREATE OR REPLACE FUNCTION qf.mark_strategy_kind_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO qf.dirty_pools (chain_id, pool_id, full_recompute)
    SELECT DISTINCT chain_id, pool_id, true FROM changed;
    INSERT INTO qf.dirty_donors
    SELECT DISTINCT a.chain_id, a.sender
    FROM changed c JOIN qf.allocated a ON a.chain_id = c.chain_id AND a.contract = c.address;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION qf.mark_strategy_kind_dirty() IS 'Trigger: a strategy stored or given its id marks its pool (in full) and the senders of its Allocated logs dirty.';
