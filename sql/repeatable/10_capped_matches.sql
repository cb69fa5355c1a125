-- qf.capped_matches(numeric[],numeric) as it is now. Earlier definitions, kept as history: sql/004 (a new database runs them first).
--
-- The Gitcoin iterative cap, on plain arrays so it can be checked by hand.
CREATE OR REPLACE FUNCTION qf.capped_matches(matches numeric[], cap numeric) RETURNS numeric[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    m numeric[] := matches;
    capped boolean[] := array_fill(false, ARRAY[coalesce(cardinality(matches), 0)]);
    excess numeric;
    uncapped_total numeric;
    n integer := coalesce(cardinality(matches), 0);
BEGIN
    IF cap IS NULL OR n = 0 THEN
        RETURN matches;
    END IF;
    -- Each pass caps at least one more project, so there are at most n passes.
    FOR pass IN 1 .. n LOOP
        excess := 0;
        FOR i IN 1 .. n LOOP
            IF NOT capped[i] AND m[i] > cap THEN
                excess := excess + (m[i] - cap);
                m[i] := cap;
                capped[i] := true;
            END IF;
        END LOOP;
        EXIT WHEN excess = 0;
        uncapped_total := 0;
        FOR i IN 1 .. n LOOP
            IF NOT capped[i] THEN
                uncapped_total := uncapped_total + m[i];
            END IF;
        END LOOP;
        -- Every project capped (or the rest have nothing): the excess stays in the pool.
        EXIT WHEN uncapped_total = 0;
        FOR i IN 1 .. n LOOP
            IF NOT capped[i] THEN
                m[i] := m[i] + excess * m[i] / uncapped_total;
            END IF;
        END LOOP;
    END LOOP;
    RETURN m;
END
$$;

COMMENT ON FUNCTION qf.capped_matches(numeric[],numeric) IS 'Gitcoin''s iterative matching cap: every match above cap is clamped to cap and the excess is shared among the projects still below the cap in proportion to their current match; repeated until no match exceeds cap. If every project with a match ends up capped, the rest of the excess is not paid out. Same order as the input; a NULL cap returns the input unchanged.';
