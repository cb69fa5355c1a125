-- qf.refuse_review_log_change() as it is now. Earlier definitions, kept as history: sql/019 (a new database runs them first).
CREATE OR REPLACE FUNCTION qf.refuse_review_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'qf.review_log is append-only: record a new verdict that supersedes this one'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
