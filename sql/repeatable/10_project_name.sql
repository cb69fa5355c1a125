-- qf.project_name(bigint,bytea) as it is now. Earlier definitions, kept as history: sql/017 (a new database runs them first).
CREATE OR REPLACE FUNCTION qf.project_name(chain_id bigint, recipient_id bytea) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN (SELECT p.name FROM qf.profile_anchors a
        JOIN qf.profiles p ON p.chain_id = a.chain_id AND p.registry = a.registry AND p.profile_id = a.profile_id
        WHERE a.chain_id = project_name.chain_id AND a.anchor = project_name.recipient_id);

COMMENT ON FUNCTION qf.project_name(bigint,bytea) IS 'Current name of the Registry profile whose anchor is this recipient id; NULL if it is not a known anchor.';
