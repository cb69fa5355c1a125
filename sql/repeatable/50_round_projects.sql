-- qf.round_projects as it is now. Earlier definitions, kept as history: sql/027 (a new database runs them first).
CREATE OR REPLACE VIEW qf.round_projects AS
SELECT round,
       recipient_id,
       (array_agg(project_name ORDER BY chain_id) FILTER (WHERE project_name IS NOT NULL))[1] AS project_name,
       array_agg(DISTINCT chain_id ORDER BY chain_id)                    AS chains,
       count(DISTINCT donor)                                            AS donors,
       count(*)                                                         AS donations,
       coalesce(sum(amount_usd), 0)                                     AS amount_usd,
       count(*) FILTER (WHERE amount_usd IS NULL)                       AS unpriced
FROM qf.round_donations
WHERE eligible
GROUP BY round, recipient_id;

COMMENT ON VIEW qf.round_projects IS 'Each project of a round across its chains: eligible donations only (what `qf matching --round` matches).';
COMMENT ON COLUMN qf.round_projects.round IS 'The round (qf.rounds.name).';
COMMENT ON COLUMN qf.round_projects.recipient_id IS 'The project''s recipient id.';
COMMENT ON COLUMN qf.round_projects.project_name IS 'Its profile name on the lowest chain id that has one.';
COMMENT ON COLUMN qf.round_projects.chains IS 'Chains where it received eligible donations.';
COMMENT ON COLUMN qf.round_projects.donors IS 'Distinct donor addresses over every chain (one address counts once).';
COMMENT ON COLUMN qf.round_projects.donations IS 'Eligible donations.';
COMMENT ON COLUMN qf.round_projects.amount_usd IS 'Their USD value at donation time (unpriced ones excluded).';
COMMENT ON COLUMN qf.round_projects.unpriced IS 'Eligible donations without a USD price, left out of amount_usd and of matching.';
