-- qf.round_matching_named as it is now. Earlier definitions, kept as history: sql/017 (a new database runs them first).
CREATE OR REPLACE VIEW qf.round_matching_named AS
SELECT qf.project_name(m.chain_id, m.recipient_id) AS project_name, m.*
FROM qf.round_matching m;

COMMENT ON VIEW qf.round_matching_named IS 'qf.round_matching with each recipient''s project name first.';
COMMENT ON COLUMN qf.round_matching_named.project_name IS 'Project name (qf.project_name); NULL if unknown.';
COMMENT ON COLUMN qf.round_matching_named.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.round_matching_named.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.round_matching_named.recipient_id IS 'Accepted recipient, 20 raw bytes.';
COMMENT ON COLUMN qf.round_matching_named.token IS 'Pool token, 20 raw bytes: the unit of every amount in this row.';
COMMENT ON COLUMN qf.round_matching_named.contributors IS 'Distinct donors with eligible donations.';
COMMENT ON COLUMN qf.round_matching_named.donations IS 'Number of eligible donations.';
COMMENT ON COLUMN qf.round_matching_named.amount IS 'Sum of eligible donations, in pool token units.';
COMMENT ON COLUMN qf.round_matching_named.sum_sqrt_amount IS 'Sum over donors of sqrt(donor''s eligible total in token units).';
COMMENT ON COLUMN qf.round_matching_named.match_standard IS 'Unscaled QF match (sum sqrt c)^2 - sum c, in pool token units; 0 with a single donor.';
COMMENT ON COLUMN qf.round_matching_named.match_share IS 'match_standard / its sum over the pool (0..1); 0 when the pool''s sum is 0.';
COMMENT ON COLUMN qf.round_matching_named.match IS 'Match scaled pro rata to the funded matching pool: funded * match_share, in pool token units.';
COMMENT ON COLUMN qf.round_matching_named.cap_pct IS 'Cap of the pool from qf.matching_caps, percent of the pool; NULL if none.';
COMMENT ON COLUMN qf.round_matching_named.match_capped IS 'match after the iterative cap (qf.capped_matches at cap_pct% of funded), pool token units; equals match without a cap.';
