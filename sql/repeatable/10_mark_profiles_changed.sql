-- qf.mark_profiles_changed(): its current definition (last changed in 014_allo_variants_and_profiles.sql).
CREATE OR REPLACE FUNCTION qf.mark_profiles_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM qf.refresh_profiles(array_agg(chain_id), array_agg(contract::bytea), array_agg(profile_id::bytea))
    FROM (SELECT DISTINCT chain_id, contract, profile_id FROM changed) c;
    RETURN NULL;
END
$$;
