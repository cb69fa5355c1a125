-- qf.mark_pool_dirty() as it is now. Earlier definitions, kept as history: sql/007 (a new database runs them first).
CREATE OR REPLACE FUNCTION qf.mark_pool_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO qf.dirty_pools (chain_id, pool_id, full_recompute)
    SELECT DISTINCT chain_id, pool_id, TG_ARGV[0]::boolean FROM changed;
    RETURN NULL;
END
$$;
