-- Names rather than bare recipient ids wherever a project is listed.
--
-- qf.project_name(chain_id, recipient_id) resolves a recipient id (a Registry profile's anchor in
-- donation-voting rounds) to the profile's current name: two key lookups, usable on any table,
-- e.g.  SELECT qf.project_name(chain_id, recipient_id), match FROM qf.round_matching;
-- qf.round_matching_named and qf.project_totals_named are those tables with the name added, and a
-- `qf matching` run records the name of each recipient it scored.

CREATE FUNCTION qf.project_name(chain_id bigint, recipient_id bytea) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN (SELECT p.name FROM qf.profile_anchors a
        JOIN qf.profiles p ON p.chain_id = a.chain_id AND p.registry = a.registry AND p.profile_id = a.profile_id
        WHERE a.chain_id = project_name.chain_id AND a.anchor = project_name.recipient_id);
COMMENT ON FUNCTION qf.project_name(bigint, bytea) IS
    'Current name of the Registry profile whose anchor is this recipient id; NULL if it is not a known anchor.';

CREATE VIEW qf.round_matching_named AS
SELECT qf.project_name(m.chain_id, m.recipient_id) AS project_name, m.*
FROM qf.round_matching m;
COMMENT ON VIEW qf.round_matching_named IS 'qf.round_matching with each recipient''s project name first.';
COMMENT ON COLUMN qf.round_matching_named.project_name IS 'Project name (qf.project_name); NULL if unknown.';

CREATE VIEW qf.project_totals_named AS
SELECT qf.project_name(t.chain_id, t.recipient_id) AS project_name, t.*
FROM qf.project_totals t;
COMMENT ON VIEW qf.project_totals_named IS 'qf.project_totals with each recipient''s project name first.';
COMMENT ON COLUMN qf.project_totals_named.project_name IS 'Project name (qf.project_name); NULL if unknown.';

-- The named views' other columns mean what the tables' do.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT v.view, a.attname, col_description(a.attrelid, a.attnum) AS comment
        FROM (VALUES ('qf.round_matching_named', 'qf.round_matching'::regclass),
                     ('qf.project_totals_named', 'qf.project_totals'::regclass)) v(view, base)
        JOIN pg_attribute a ON a.attrelid = v.base AND a.attnum > 0 AND NOT a.attisdropped
    LOOP
        EXECUTE format('COMMENT ON COLUMN %s.%I IS %L', c.view, c.attname, c.comment);
    END LOOP;
END
$$;

ALTER TABLE qf.matching_results ADD COLUMN project_name text;
COMMENT ON COLUMN qf.matching_results.project_name IS
    'Name of the recipient''s Registry profile when the run was made; NULL if it had none.';
