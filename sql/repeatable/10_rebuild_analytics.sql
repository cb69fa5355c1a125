-- qf.rebuild_analytics() as it is now. Earlier definitions, kept as history: sql/007, sql/010 (a new database runs them first).
CREATE OR REPLACE FUNCTION qf.rebuild_analytics(OUT donors bigint, OUT projects bigint, OUT pools bigint)
LANGUAGE plpgsql AS $$
DECLARE
    chain_ids bigint[];
    contracts bytea[];
    recipients bytea[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('qf.refresh_analytics'));
    TRUNCATE qf.recipient_status_history;
    SELECT array_agg(chain_id), array_agg(contract), array_agg(recipient_id) INTO chain_ids, contracts, recipients
    FROM (SELECT chain_id, contract, recipient_id FROM qf.registered
          UNION SELECT chain_id, contract, recipient_id FROM qf.updated_registration) x;
    IF chain_ids IS NOT NULL THEN
        PERFORM qf.recompute_status_history(chain_ids, contracts, recipients);
    END IF;
    TRUNCATE qf.project_totals, qf.project_eligible, qf.round_matching, qf.round_stats, qf.donor_features,
        qf.donor_pool, qf.pool_donation_totals, qf.donor_project;
    INSERT INTO qf.dirty_donors SELECT DISTINCT chain_id, sender FROM qf.allocated;
    INSERT INTO qf.dirty_pools (chain_id, pool_id, full_recompute) SELECT chain_id, pool_id, true FROM qf.pool_created;
    SELECT r.donors, r.projects, r.pools INTO donors, projects, pools FROM qf.refresh_analytics() r;
END
$$;

COMMENT ON FUNCTION qf.rebuild_analytics() IS 'Recompute the recipient status history and every analytics table from the event tables (after a TRUNCATE or hand edits the triggers did not see).';
