-- qf.refresh_profiles(bigint[],bytea[],bytea[]) as it is now. Earlier definitions, kept as history: sql/014 (a new database runs them first).
--
-- Recompute the given profiles from their events (deleting those no event mentions any more).
CREATE OR REPLACE FUNCTION qf.refresh_profiles(chain_ids bigint[], registries bytea[], profile_ids bytea[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass('pg_temp.refresh_profile_keys') IS NULL THEN
        CREATE TEMP TABLE refresh_profile_keys (chain_id bigint, registry bytea, profile_id bytea) ON COMMIT DROP;
    ELSE
        TRUNCATE refresh_profile_keys;
    END IF;
    INSERT INTO refresh_profile_keys SELECT DISTINCT * FROM unnest(chain_ids, registries, profile_ids);

    DELETE FROM qf.profile_anchors a USING refresh_profile_keys k
    WHERE a.chain_id = k.chain_id AND a.registry = k.registry AND a.profile_id = k.profile_id;
    DELETE FROM qf.profiles p USING refresh_profile_keys k
    WHERE p.chain_id = k.chain_id AND p.registry = k.registry AND p.profile_id = k.profile_id;

    INSERT INTO qf.profiles
    SELECT k.chain_id, k.registry, k.profile_id, n.name, n.anchor, c.nonce, o.owner,
           CASE WHEN po.block_number IS NOT NULL
                 AND (o.block_number IS NULL OR (po.block_number, po.log_index) > (o.block_number, o.log_index))
                THEN po.pending_owner END,
           m.metadata_protocol, m.metadata_pointer, c.block_number, last.block_number
    FROM refresh_profile_keys k
    LEFT JOIN LATERAL (
        SELECT x.nonce, x.block_number FROM qf.profile_created x
        WHERE x.chain_id = k.chain_id AND x.contract = k.registry AND x.profile_id = k.profile_id
        ORDER BY x.block_number, x.log_index LIMIT 1
    ) c ON true
    LEFT JOIN LATERAL (
        SELECT x.name, x.anchor FROM (
            SELECT name, anchor, block_number, log_index FROM qf.profile_created
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
            UNION ALL
            SELECT name, anchor, block_number, log_index FROM qf.profile_name_updated
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
        ) x ORDER BY x.block_number DESC, x.log_index DESC LIMIT 1
    ) n ON true
    LEFT JOIN LATERAL (
        SELECT x.metadata_protocol, x.metadata_pointer FROM (
            SELECT metadata_protocol, metadata_pointer, block_number, log_index FROM qf.profile_created
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
            UNION ALL
            SELECT metadata_protocol, metadata_pointer, block_number, log_index FROM qf.profile_metadata_updated
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
        ) x ORDER BY x.block_number DESC, x.log_index DESC LIMIT 1
    ) m ON true
    LEFT JOIN LATERAL (
        SELECT x.owner, x.block_number, x.log_index FROM (
            SELECT owner, block_number, log_index FROM qf.profile_created
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
            UNION ALL
            SELECT owner, block_number, log_index FROM qf.profile_owner_updated
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
        ) x ORDER BY x.block_number DESC, x.log_index DESC LIMIT 1
    ) o ON true
    LEFT JOIN LATERAL (
        SELECT x.pending_owner, x.block_number, x.log_index FROM qf.profile_pending_owner_updated x
        WHERE x.chain_id = k.chain_id AND x.contract = k.registry AND x.profile_id = k.profile_id
        ORDER BY x.block_number DESC, x.log_index DESC LIMIT 1
    ) po ON true
    CROSS JOIN LATERAL (
        SELECT max(b) AS block_number FROM (
            SELECT max(block_number) FROM qf.profile_created
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
            UNION ALL SELECT max(block_number) FROM qf.profile_name_updated
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
            UNION ALL SELECT max(block_number) FROM qf.profile_metadata_updated
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
            UNION ALL SELECT max(block_number) FROM qf.profile_owner_updated
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
            UNION ALL SELECT max(block_number) FROM qf.profile_pending_owner_updated
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
        ) y(b)
    ) last
    WHERE last.block_number IS NOT NULL;

    INSERT INTO qf.profile_anchors
    SELECT DISTINCT ON (x.chain_id, x.anchor) x.chain_id, x.anchor, x.contract, x.profile_id, x.anchor = p.anchor
    FROM (
        SELECT chain_id, contract, profile_id, anchor, block_number, log_index FROM qf.profile_created
        UNION ALL
        SELECT chain_id, contract, profile_id, anchor, block_number, log_index FROM qf.profile_name_updated
    ) x
    JOIN refresh_profile_keys k ON k.chain_id = x.chain_id AND k.registry = x.contract AND k.profile_id = x.profile_id
    JOIN qf.profiles p ON p.chain_id = x.chain_id AND p.registry = x.contract AND p.profile_id = x.profile_id
    ORDER BY x.chain_id, x.anchor, x.block_number DESC, x.log_index DESC
    ON CONFLICT (chain_id, anchor) DO NOTHING;  -- an anchor of two registries' profiles: the first one kept
END
$$;

COMMENT ON FUNCTION qf.refresh_profiles(bigint[],bytea[],bytea[]) IS 'Recompute qf.profiles and qf.profile_anchors for the given (chain, registry, profile) keys from the events. Called by the triggers on the profile_* tables; internal.';
