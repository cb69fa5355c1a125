-- qf.status_name(smallint) as it is now. Earlier definitions, kept as history: sql/004 (a new database runs them first).
CREATE OR REPLACE FUNCTION qf.status_name(status smallint) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (ARRAY['none', 'pending', 'accepted', 'rejected', 'appealed'])[status + 1];

COMMENT ON FUNCTION qf.status_name(smallint) IS 'Name of an Allo v2 recipient status: 0 none, 1 pending, 2 accepted, 3 rejected, 4 appealed.';
