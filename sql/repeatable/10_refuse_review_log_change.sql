-- qf.refuse_review_log_change(): its current definition (last changed in 019_console_reviews.sql).
CREATE OR REPLACE FUNCTION qf.refuse_review_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'qf.review_log is append-only: record a new verdict that supersedes this one'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
