-- One type each for the chain's three kinds of value, checked by the database once:
--
--   qf.address  a 20-byte address (bytea)
--   qf.hash32   a 32-byte hash or id (bytea)
--   qf.uint256  an unsigned 256-bit integer (numeric(78,0) in [0, 2^256))
--
-- Existing columns move onto them: every bytea column of a qf table whose only check was
-- octet_length(col) = 20 or 32 (that check is then dropped: the domain holds it), and every
-- numeric(78,0) column (each holds a uint256 read from an event). Values are unchanged and
-- re-checked; PostgreSQL sends a domain's base type to clients, so readers see no change, except
-- that an array built from domain values (ARRAY[sender], array_agg(sender)) has the domain's own
-- array type, which clients do not know: cast the element (sender::bytea) when building one.
--
-- PostgreSQL refuses to change the type of a column a view reads, so the views that depend on
-- these tables (ours, and any a user added, in any schema) are saved, dropped and recreated
-- from their own stored definitions, with their options, owners, comments and grants, all in
-- this migration's transaction. New tables should use the domains directly.

CREATE DOMAIN qf.address AS bytea CHECK (octet_length(VALUE) = 20);
CREATE DOMAIN qf.hash32 AS bytea CHECK (octet_length(VALUE) = 32);
CREATE DOMAIN qf.uint256 AS numeric(78,0)
    CHECK (VALUE >= 0 AND VALUE < 115792089237316195423570985008687907853269984665640564039457584007913129639936);

COMMENT ON DOMAIN qf.address IS 'A 20-byte Ethereum address.';
COMMENT ON DOMAIN qf.hash32 IS 'A 32-byte hash or identifier (block, transaction, profile id).';
COMMENT ON DOMAIN qf.uint256 IS 'An unsigned 256-bit integer as the chain holds it (wei amounts, pool ids).';

DO $migration$
DECLARE
    col record;
    v record;
    g record;
    target regtype;
BEGIN
    -- The columns to move, with the check each loses.
    CREATE TEMP TABLE domain_moves ON COMMIT DROP AS
    SELECT c.oid AS relid, a.attname, a.attnum,
           CASE WHEN a.atttypid = 'bytea'::regtype AND pg_get_constraintdef(k.oid) LIKE '%= 20))' THEN 'qf.address'
                WHEN a.atttypid = 'bytea'::regtype THEN 'qf.hash32'
                ELSE 'qf.uint256' END AS domain,
           k.conname
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'qf'
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_constraint k
        ON k.conrelid = c.oid AND k.contype = 'c' AND k.conkey = ARRAY[a.attnum]
       AND pg_get_constraintdef(k.oid) ~ ('^CHECK \(\(octet_length\(' || quote_ident(a.attname) || '\) = (20|32)\)\)$')
    WHERE c.relkind = 'r'
      AND ((a.atttypid = 'bytea'::regtype AND k.oid IS NOT NULL)
           OR (a.atttypid = 'numeric'::regtype AND a.atttypmod = ((78 << 16) | 0) + 4));

    -- Every view reading one of those tables, directly or through another view, in creation order.
    CREATE TEMP TABLE domain_views ON COMMIT DROP AS
    WITH RECURSIVE dependent(oid) AS (
        SELECT DISTINCT r.ev_class
        FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
        WHERE d.refobjid IN (SELECT relid FROM domain_moves) AND r.ev_class <> d.refobjid
        UNION
        SELECT r.ev_class
        FROM dependent p JOIN pg_depend d ON d.refobjid = p.oid JOIN pg_rewrite r ON r.oid = d.objid
        WHERE r.ev_class <> p.oid
    )
    SELECT c.oid AS old_oid, format('%I.%I', n.nspname, c.relname) AS name, c.relkind,
           pg_get_viewdef(c.oid) AS definition, c.reloptions, pg_get_userbyid(c.relowner) AS owner,
           c.relacl, obj_description(c.oid, 'pg_class') AS comment,
           (SELECT array_agg(format('COMMENT ON COLUMN %I.%I.%I IS %L', n.nspname, c.relname, a.attname,
                                    col_description(c.oid, a.attnum)))
              FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
               AND col_description(c.oid, a.attnum) IS NOT NULL) AS column_comments
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid IN (SELECT oid FROM dependent);

    IF EXISTS (SELECT FROM domain_views WHERE relkind = 'm') THEN
        RAISE EXCEPTION 'a materialized view reads a qf event table: drop it, migrate, then recreate it'
            USING HINT = (SELECT string_agg(name, ', ') FROM domain_views WHERE relkind = 'm');
    END IF;

    FOR v IN SELECT name FROM domain_views ORDER BY old_oid DESC LOOP
        EXECUTE format('DROP VIEW %s', v.name);
    END LOOP;

    FOR col IN SELECT * FROM domain_moves ORDER BY relid, attnum LOOP
        IF col.conname IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', col.relid::regclass, col.conname);
        END IF;
        target := col.domain::regtype;
        EXECUTE format('ALTER TABLE %s ALTER COLUMN %I TYPE %s', col.relid::regclass, col.attname, target);
    END LOOP;

    -- Recreated in creation order, so a view another reads exists before it.
    FOR v IN SELECT * FROM domain_views ORDER BY old_oid LOOP
        EXECUTE format('CREATE VIEW %s%s AS %s', v.name,
                       CASE WHEN v.reloptions IS NULL THEN ''
                            ELSE format(' WITH (%s)', array_to_string(v.reloptions, ', ')) END,
                       v.definition);
        EXECUTE format('ALTER VIEW %s OWNER TO %I', v.name, v.owner);
        IF v.comment IS NOT NULL THEN
            EXECUTE format('COMMENT ON VIEW %s IS %L', v.name, v.comment);
        END IF;
        IF v.column_comments IS NOT NULL THEN
            FOR i IN 1 .. cardinality(v.column_comments) LOOP
                EXECUTE v.column_comments[i];
            END LOOP;
        END IF;
        IF v.relacl IS NOT NULL THEN
            EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', v.name);
            FOR g IN
                SELECT CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(acl.grantee)) END AS who,
                       acl.privilege_type, acl.is_grantable
                FROM aclexplode(v.relacl) acl
            LOOP
                EXECUTE format('GRANT %s ON %s TO %s%s', g.privilege_type, v.name, g.who,
                               CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
            END LOOP;
        END IF;
    END LOOP;
END
$migration$;
