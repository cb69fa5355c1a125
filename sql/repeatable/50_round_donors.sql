-- qf.round_donors as it is now. Earlier definitions, kept as history: sql/027 (a new database runs them first).
CREATE OR REPLACE VIEW qf.round_donors AS
SELECT round,
       donor,
       array_agg(DISTINCT chain_id ORDER BY chain_id)                    AS chains,
       count(DISTINCT chain_id)                                         AS n_chains,
       count(*)                                                         AS donations,
       count(DISTINCT recipient_id)                                     AS projects,
       coalesce(sum(amount_usd) FILTER (WHERE eligible), 0)             AS amount_usd,
       count(*) FILTER (WHERE eligible)                                 AS eligible_donations,
       min(block_time)                                                  AS first_at,
       max(block_time)                                                  AS last_at
FROM qf.round_donations
GROUP BY round, donor;

COMMENT ON VIEW qf.round_donors IS 'Each donor of a round: one address over every chain of the round (the same wallet on two chains is one donor).';
COMMENT ON COLUMN qf.round_donors.round IS 'The round (qf.rounds.name).';
COMMENT ON COLUMN qf.round_donors.donor IS 'The donor''s address.';
COMMENT ON COLUMN qf.round_donors.chains IS 'Chains it donated on in this round.';
COMMENT ON COLUMN qf.round_donors.n_chains IS 'How many.';
COMMENT ON COLUMN qf.round_donors.donations IS 'Its donations to the round''s pools, eligible or not.';
COMMENT ON COLUMN qf.round_donors.projects IS 'Distinct projects (recipient ids) it gave to.';
COMMENT ON COLUMN qf.round_donors.amount_usd IS 'USD value of its eligible donations.';
COMMENT ON COLUMN qf.round_donors.eligible_donations IS 'Donations matching counts.';
COMMENT ON COLUMN qf.round_donors.first_at IS 'Its first donation to the round, on any chain.';
COMMENT ON COLUMN qf.round_donors.last_at IS 'Its latest.';
