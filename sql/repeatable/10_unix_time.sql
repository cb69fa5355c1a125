-- qf.unix_time(bigint) as it is now. Earlier definitions, kept as history: sql/004 (a new database runs them first).
CREATE OR REPLACE FUNCTION qf.unix_time(seconds bigint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE WHEN seconds >= 253402300800 THEN 'infinity'::timestamptz
            ELSE to_timestamp(seconds) END;

COMMENT ON FUNCTION qf.unix_time(bigint) IS 'Unix seconds as timestamptz; beyond year 9999 (e.g. a uint64 max "never") it is infinity.';
