-- qf.review_verdicts as it is now. Earlier definitions, kept as history: sql/019 (a new database runs them first).
CREATE OR REPLACE VIEW qf.review_verdicts AS
SELECT r.chain_id, r.donor, r.verdict, r.comment, r.reviewer, r.created_at, r.id AS review_id,
       (SELECT count(*) FROM qf.review_log h WHERE h.chain_id = r.chain_id AND h.donor = r.donor) AS reviews
FROM qf.review_log r
WHERE NOT EXISTS (SELECT 1 FROM qf.review_log n WHERE n.supersedes = r.id);

COMMENT ON VIEW qf.review_verdicts IS 'Each reviewed donor''s current verdict (the one no later verdict supersedes) and how many it has had.';
COMMENT ON COLUMN qf.review_verdicts.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.review_verdicts.donor IS 'The donor judged, 20 raw bytes.';
COMMENT ON COLUMN qf.review_verdicts.verdict IS 'Current verdict: sybil or honest.';
COMMENT ON COLUMN qf.review_verdicts.comment IS 'The reviewer''s reasons for the current verdict.';
COMMENT ON COLUMN qf.review_verdicts.reviewer IS 'Name of the reviewer who gave the current verdict.';
COMMENT ON COLUMN qf.review_verdicts.created_at IS 'When the current verdict was recorded.';
COMMENT ON COLUMN qf.review_verdicts.review_id IS 'qf.review_log id of the current verdict.';
COMMENT ON COLUMN qf.review_verdicts.reviews IS 'Verdicts the donor has had, the superseded ones included.';
