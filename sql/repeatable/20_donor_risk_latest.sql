-- qf.donor_risk_latest as it is now. Earlier definitions, kept as history: sql/011 (a new database runs them first).
CREATE OR REPLACE VIEW qf.donor_risk_latest AS
SELECT r.*
FROM qf.donor_risk r
JOIN (
    SELECT DISTINCT ON (chain_id, pool_id) chain_id, pool_id, model_version
    FROM qf.donor_risk ORDER BY chain_id, pool_id, scored_at DESC
) v USING (chain_id, pool_id, model_version);

COMMENT ON VIEW qf.donor_risk_latest IS 'qf.donor_risk of the most recently scored model version of each pool.';
COMMENT ON COLUMN qf.donor_risk_latest.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.donor_risk_latest.pool_id IS 'Allo pool id scored.';
COMMENT ON COLUMN qf.donor_risk_latest.donor IS 'Donor address, 20 raw bytes.';
COMMENT ON COLUMN qf.donor_risk_latest.model_version IS 'Model version directory name that produced the score.';
COMMENT ON COLUMN qf.donor_risk_latest.score IS 'Calibrated risk 0..1 (the sidecar''s ScoreContribution risk).';
COMMENT ON COLUMN qf.donor_risk_latest.level IS 'LOW, MEDIUM or HIGH.';
COMMENT ON COLUMN qf.donor_risk_latest.decision IS 'APPROVE, REVIEW or BLOCK at the version''s thresholds.';
COMMENT ON COLUMN qf.donor_risk_latest.reasons IS 'The features that pushed the score most, riskiest first.';
COMMENT ON COLUMN qf.donor_risk_latest.community IS 'Leiden community of the donor-project graph the donor belongs to (the coordination features'' community).';
COMMENT ON COLUMN qf.donor_risk_latest.community_flagged_share IS 'Share (0..1) of the community''s donors in this pool that were not approved.';
COMMENT ON COLUMN qf.donor_risk_latest.weight IS 'Weight (0..1) of the donor''s contributions in risk-adjusted matching: 1 when approved, falling to 0 from the review to the block threshold, and scaled down with its community when most of it is flagged.';
COMMENT ON COLUMN qf.donor_risk_latest.scored_at IS 'When `qf score` wrote the row.';
