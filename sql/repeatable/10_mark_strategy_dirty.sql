-- qf.mark_strategy_dirty() as it is now. Earlier definitions, kept as history: sql/007 (a new database runs them first).
--
-- TG_ARGV[0]: whether the change needs every project of the pool recomputed.
CREATE OR REPLACE FUNCTION qf.mark_strategy_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO qf.dirty_pools (chain_id, contract, full_recompute)
    SELECT DISTINCT chain_id, contract, TG_ARGV[0]::boolean FROM changed;
    RETURN NULL;
END
$$;
