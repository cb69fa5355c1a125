-- The operator console's review log and login record (`qf console`, console/review.py).
--
-- A reviewer's verdict on a flagged donor is appended to qf.review_log and written to qf.labels
-- (source = the reviewer's name) in one transaction, so the next `qf train` learns from it.
-- The log is append-only: a changed verdict is a new row that supersedes the current one, and
-- UPDATE, DELETE and TRUNCATE are refused by triggers. Two unique indexes make the verdicts of a
-- donor one chain: one first verdict, and each verdict superseded at most once; a double submit
-- or two reviewers answering the same stale page collide there instead of overwriting each other.

CREATE TABLE qf.review_log (
    id           bigserial   PRIMARY KEY,
    chain_id     bigint      NOT NULL,
    donor        qf.address  NOT NULL,
    verdict      text        NOT NULL CHECK (verdict IN ('sybil', 'honest')),
    comment      text        NOT NULL DEFAULT '' CHECK (length(comment) <= 2000),
    reviewer     text        NOT NULL CHECK (reviewer <> ''),
    decision_id  uuid,
    supersedes   bigint      REFERENCES qf.review_log (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (supersedes IS NULL OR supersedes < id)
);
CREATE UNIQUE INDEX review_log_first_idx ON qf.review_log (chain_id, donor) WHERE supersedes IS NULL;
CREATE UNIQUE INDEX review_log_supersedes_idx ON qf.review_log (supersedes);
CREATE INDEX review_log_donor_idx ON qf.review_log (chain_id, donor, id);
COMMENT ON TABLE qf.review_log IS
    'Append-only log of reviewers'' verdicts on flagged donors (`qf console`); a change of mind is a new row '
    'superseding the current one. qf.review_verdicts has each donor''s current verdict.';
COMMENT ON COLUMN qf.review_log.donor IS 'The donor judged, 20 raw bytes.';
COMMENT ON COLUMN qf.review_log.verdict IS 'sybil or honest.';
COMMENT ON COLUMN qf.review_log.comment IS 'The reviewer''s reasons, up to 2,000 characters.';
COMMENT ON COLUMN qf.review_log.reviewer IS 'Name of the reviewer''s token (QF_CONSOLE_REVIEWER_TOKENS), never the token.';
COMMENT ON COLUMN qf.review_log.decision_id IS 'The sidecar decision (qf.scorer_decisions) the review started from; '
    'no foreign key, because the audit log expires.';
COMMENT ON COLUMN qf.review_log.id IS 'Review id, increasing in the order verdicts were recorded.';
COMMENT ON COLUMN qf.review_log.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.review_log.created_at IS 'When the verdict was recorded.';
COMMENT ON COLUMN qf.review_log.supersedes IS 'The verdict this one replaces; NULL for a donor''s first verdict.';

CREATE FUNCTION qf.refuse_review_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'qf.review_log is append-only: record a new verdict that supersedes this one'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER review_log_append_only BEFORE UPDATE OR DELETE ON qf.review_log
    FOR EACH ROW EXECUTE FUNCTION qf.refuse_review_log_change();
CREATE TRIGGER review_log_no_truncate BEFORE TRUNCATE ON qf.review_log
    FOR EACH STATEMENT EXECUTE FUNCTION qf.refuse_review_log_change();

CREATE VIEW qf.review_verdicts AS
SELECT r.chain_id, r.donor, r.verdict, r.comment, r.reviewer, r.created_at, r.id AS review_id,
       (SELECT count(*) FROM qf.review_log h WHERE h.chain_id = r.chain_id AND h.donor = r.donor) AS reviews
FROM qf.review_log r
WHERE NOT EXISTS (SELECT 1 FROM qf.review_log n WHERE n.supersedes = r.id);
COMMENT ON VIEW qf.review_verdicts IS
    'Each reviewed donor''s current verdict (the one no later verdict supersedes) and how many it has had.';
COMMENT ON COLUMN qf.review_verdicts.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.review_verdicts.donor IS 'The donor judged, 20 raw bytes.';
COMMENT ON COLUMN qf.review_verdicts.verdict IS 'Current verdict: sybil or honest.';
COMMENT ON COLUMN qf.review_verdicts.comment IS 'The reviewer''s reasons for the current verdict.';
COMMENT ON COLUMN qf.review_verdicts.reviewer IS 'Name of the reviewer who gave the current verdict.';
COMMENT ON COLUMN qf.review_verdicts.created_at IS 'When the current verdict was recorded.';
COMMENT ON COLUMN qf.review_verdicts.review_id IS 'qf.review_log id of the current verdict.';
COMMENT ON COLUMN qf.review_verdicts.reviews IS 'Verdicts the donor has had, the superseded ones included.';

-- The review queue reads the flagged decisions only: a partial index keeps it off the APPROVE majority
-- of a long audit log.
CREATE INDEX scorer_decisions_flagged_idx ON qf.scorer_decisions (chain_id, donor, created_at)
    INCLUDE (risk_score) WHERE decision IN ('REVIEW', 'BLOCK');

-- The flagged-donors page lists a pool's latest scores riskiest first, a page at a time.
CREATE INDEX donor_risk_score_idx ON qf.donor_risk (chain_id, pool_id, model_version, score DESC, donor);

CREATE TABLE qf.console_logins (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    reviewer    text,
    role        text        CHECK (role IN ('reviewer', 'viewer')),
    ok          boolean     NOT NULL,
    remote      text
);
CREATE INDEX console_logins_at_idx ON qf.console_logins (at);
COMMENT ON TABLE qf.console_logins IS
    'Every login attempt at `qf console`: the token''s name and role when it matched, NULL when it did not '
    '(the token itself is never stored), and the client''s address.';
COMMENT ON COLUMN qf.console_logins.id IS 'Attempt id.';
COMMENT ON COLUMN qf.console_logins.at IS 'When the login was attempted.';
COMMENT ON COLUMN qf.console_logins.reviewer IS 'Name of the matching token; NULL when no token matched.';
COMMENT ON COLUMN qf.console_logins.role IS 'reviewer or viewer; NULL when no token matched.';
COMMENT ON COLUMN qf.console_logins.ok IS 'Whether the login succeeded.';
COMMENT ON COLUMN qf.console_logins.remote IS 'The client''s address as the console saw it.';
