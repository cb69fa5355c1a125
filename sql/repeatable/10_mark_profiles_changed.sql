-- qf.mark_profiles_changed() as it is now. Earlier definitions, kept as history: sql/014 (a new database runs them first).
CREATE OR REPLACE FUNCTION qf.mark_profiles_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM qf.refresh_profiles(array_agg(chain_id), array_agg(contract::bytea), array_agg(profile_id::bytea))
    FROM (SELECT DISTINCT chain_id, contract, profile_id FROM changed) c;
    RETURN NULL;
END
$$;
