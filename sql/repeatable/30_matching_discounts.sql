-- qf.matching_discounts as it is now. Earlier definitions, kept as history: sql/011 (a new database runs them first).
CREATE OR REPLACE VIEW qf.matching_discounts AS
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

COMMENT ON VIEW qf.matching_discounts IS 'Per project and donor, the eligible contributions risk-adjusted matching discounts (weight < 1 in the latest `qf score` of the pool), with the score, decision, reasons and community behind it. SELECT recipient_id, count(*), sum(amount_discounted) FROM qf.matching_discounts WHERE pool_id = 1 GROUP BY 1.';
COMMENT ON COLUMN qf.matching_discounts.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.matching_discounts.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.matching_discounts.recipient_id IS 'Project (recipient id), 0x-hex.';
COMMENT ON COLUMN qf.matching_discounts.donor IS 'Donor, 0x-hex.';
COMMENT ON COLUMN qf.matching_discounts.amount IS 'The donor''s eligible total to the project, pool token units.';
COMMENT ON COLUMN qf.matching_discounts.weight IS 'Weight in risk-adjusted matching (qf.donor_risk.weight).';
COMMENT ON COLUMN qf.matching_discounts.amount_discounted IS 'amount * (1 - weight): what the discount removes.';
COMMENT ON COLUMN qf.matching_discounts.score IS 'Calibrated risk 0..1 of the donor.';
COMMENT ON COLUMN qf.matching_discounts.decision IS 'APPROVE, REVIEW or BLOCK.';
COMMENT ON COLUMN qf.matching_discounts.reasons IS 'The features that pushed the score most.';
COMMENT ON COLUMN qf.matching_discounts.community IS 'The donor''s Leiden community.';
COMMENT ON COLUMN qf.matching_discounts.community_flagged_share IS 'Share of the community''s donors not approved.';
COMMENT ON COLUMN qf.matching_discounts.model_version IS 'Model version of the scores.';
