-- qf.mark_pool_dirty(): its current definition (last changed in 007_incremental_analytics.sql).
CREATE OR REPLACE FUNCTION qf.mark_pool_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO qf.dirty_pools (chain_id, pool_id, full_recompute)
    SELECT DISTINCT chain_id, pool_id, TG_ARGV[0]::boolean FROM changed;
    RETURN NULL;
END
$$;
