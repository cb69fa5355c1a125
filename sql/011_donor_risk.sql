-- Batch risk scores of a pool's donors (`qf score --pool N`), and what they take from the matching.
--
-- `qf score` scores every donor of a pool with the served model version, exactly as the sidecar
-- would (same features, same kernels), and stores one row per donor and version here. The
-- risk-adjusted matching (`qf matching --method risk-adjusted --weights model`) reads the latest
-- version's rows; qf.matching_discounts shows per project which donors lost weight and why.

CREATE TABLE qf.donor_risk (
    chain_id      bigint           NOT NULL,
    pool_id       numeric(78,0)    NOT NULL,
    donor         bytea            NOT NULL CHECK (octet_length(donor) = 20),
    model_version text             NOT NULL,
    score         double precision NOT NULL CHECK (score >= 0 AND score <= 1),
    level         text             NOT NULL CHECK (level IN ('LOW', 'MEDIUM', 'HIGH')),
    decision      text             NOT NULL CHECK (decision IN ('APPROVE', 'REVIEW', 'BLOCK')),
    reasons       text[]           NOT NULL,
    community     integer,
    community_flagged_share double precision,
    weight        double precision NOT NULL CHECK (weight >= 0 AND weight <= 1),
    scored_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, pool_id, model_version, donor)
);
CREATE INDEX donor_risk_latest_idx ON qf.donor_risk (chain_id, pool_id, scored_at DESC);
COMMENT ON TABLE qf.donor_risk IS
    'Risk of every donor of a pool under one model version, written by `qf score --pool N` (one run replaces '
    'that version''s rows for the pool). The same numbers the sidecar answers for these donors.';
COMMENT ON COLUMN qf.donor_risk.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.donor_risk.pool_id IS 'Allo pool id scored.';
COMMENT ON COLUMN qf.donor_risk.donor IS 'Donor address, 20 raw bytes.';
COMMENT ON COLUMN qf.donor_risk.model_version IS 'Model version directory name that produced the score.';
COMMENT ON COLUMN qf.donor_risk.score IS 'Calibrated risk 0..1 (the sidecar''s ScoreContribution risk).';
COMMENT ON COLUMN qf.donor_risk.level IS 'LOW, MEDIUM or HIGH.';
COMMENT ON COLUMN qf.donor_risk.decision IS 'APPROVE, REVIEW or BLOCK at the version''s thresholds.';
COMMENT ON COLUMN qf.donor_risk.reasons IS 'The features that pushed the score most, riskiest first.';
COMMENT ON COLUMN qf.donor_risk.community IS
    'Leiden community of the donor-project graph the donor belongs to (the coordination features'' community).';
COMMENT ON COLUMN qf.donor_risk.community_flagged_share IS
    'Share (0..1) of the community''s donors in this pool that were not approved.';
COMMENT ON COLUMN qf.donor_risk.weight IS
    'Weight (0..1) of the donor''s contributions in risk-adjusted matching: 1 when approved, falling to 0 '
    'from the review to the block threshold, and scaled down with its community when most of it is flagged.';
COMMENT ON COLUMN qf.donor_risk.scored_at IS 'When `qf score` wrote the row.';

CREATE VIEW qf.donor_risk_latest AS
SELECT r.*
FROM qf.donor_risk r
JOIN (
    SELECT DISTINCT ON (chain_id, pool_id) chain_id, pool_id, model_version
    FROM qf.donor_risk ORDER BY chain_id, pool_id, scored_at DESC
) v USING (chain_id, pool_id, model_version);
COMMENT ON VIEW qf.donor_risk_latest IS 'qf.donor_risk of the most recently scored model version of each pool.';
DO $$
DECLARE
    col record;
BEGIN
    -- The view's columns are qf.donor_risk's: the same comments.
    FOR col IN
        SELECT a.attname, col_description('qf.donor_risk'::regclass, a.attnum) AS text
        FROM pg_attribute a WHERE a.attrelid = 'qf.donor_risk'::regclass AND a.attnum > 0 AND NOT a.attisdropped
    LOOP
        EXECUTE format('COMMENT ON COLUMN qf.donor_risk_latest.%I IS %L', col.attname, col.text);
    END LOOP;
END
$$;

CREATE VIEW qf.matching_discounts AS
SELECT r.chain_id, r.pool_id,
       '0x' || encode(p.recipient_id, 'hex')              AS recipient_id,
       '0x' || encode(r.donor, 'hex')                     AS donor,
       p.eligible_amount                                  AS amount,
       r.weight,
       p.eligible_amount * (1 - r.weight)                 AS amount_discounted,
       r.score, r.decision, r.reasons, r.community, r.community_flagged_share, r.model_version
FROM qf.donor_risk_latest r
JOIN qf.strategies s ON s.chain_id = r.chain_id AND s.pool_id = r.pool_id
JOIN qf.donor_project p ON p.chain_id = r.chain_id AND p.contract = s.address AND p.sender = r.donor
WHERE r.weight < 1 AND p.eligible_amount > 0;
COMMENT ON VIEW qf.matching_discounts IS
    'Per project and donor, the eligible contributions risk-adjusted matching discounts (weight < 1 in the '
    'latest `qf score` of the pool), with the score, decision, reasons and community behind it. '
    'SELECT recipient_id, count(*), sum(amount_discounted) FROM qf.matching_discounts WHERE pool_id = 1 GROUP BY 1.';
COMMENT ON COLUMN qf.matching_discounts.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.matching_discounts.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.matching_discounts.recipient_id IS 'Project (recipient id), 0x-hex.';
COMMENT ON COLUMN qf.matching_discounts.donor IS 'Donor, 0x-hex.';
COMMENT ON COLUMN qf.matching_discounts.score IS 'Calibrated risk 0..1 of the donor.';
COMMENT ON COLUMN qf.matching_discounts.decision IS 'APPROVE, REVIEW or BLOCK.';
COMMENT ON COLUMN qf.matching_discounts.reasons IS 'The features that pushed the score most.';
COMMENT ON COLUMN qf.matching_discounts.community IS 'The donor''s Leiden community.';
COMMENT ON COLUMN qf.matching_discounts.community_flagged_share IS 'Share of the community''s donors not approved.';
COMMENT ON COLUMN qf.matching_discounts.model_version IS 'Model version of the scores.';
COMMENT ON COLUMN qf.matching_discounts.amount IS 'The donor''s eligible total to the project, pool token units.';
COMMENT ON COLUMN qf.matching_discounts.weight IS 'Weight in risk-adjusted matching (qf.donor_risk.weight).';
COMMENT ON COLUMN qf.matching_discounts.amount_discounted IS 'amount * (1 - weight): what the discount removes.';
