-- qf.project_totals_named as it is now. Earlier definitions, kept as history: sql/017 (a new database runs them first).
CREATE OR REPLACE VIEW qf.project_totals_named AS
SELECT qf.project_name(t.chain_id, t.recipient_id) AS project_name, t.*
FROM qf.project_totals t;

COMMENT ON VIEW qf.project_totals_named IS 'qf.project_totals with each recipient''s project name first.';
COMMENT ON COLUMN qf.project_totals_named.project_name IS 'Project name (qf.project_name); NULL if unknown.';
COMMENT ON COLUMN qf.project_totals_named.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.project_totals_named.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.project_totals_named.recipient_id IS 'Recipient id, 20 raw bytes.';
COMMENT ON COLUMN qf.project_totals_named.token IS 'Donated token, 20 raw bytes.';
COMMENT ON COLUMN qf.project_totals_named.unique_donors IS 'Distinct donors (Allocated senders).';
COMMENT ON COLUMN qf.project_totals_named.donations IS 'Number of donations.';
COMMENT ON COLUMN qf.project_totals_named.amount_raw IS 'Sum of donations in base units.';
COMMENT ON COLUMN qf.project_totals_named.sum_sqrt_amount_raw IS 'Sum over donors of sqrt(donor''s total in base units).';
COMMENT ON COLUMN qf.project_totals_named.amount IS 'Sum of donations in token units; NULL if the decimals are unknown.';
COMMENT ON COLUMN qf.project_totals_named.sum_sqrt_amount IS 'Sum over donors of sqrt(donor''s total in token units); NULL if the decimals are unknown.';
