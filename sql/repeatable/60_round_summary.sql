-- qf.round_summary as it is now. Earlier definitions, kept as history: sql/027 (a new database runs them first).
CREATE OR REPLACE VIEW qf.round_summary AS
SELECT r.name                                                              AS round,
       (SELECT count(*) FROM qf.round_pools p WHERE p.round = r.name)      AS pools,
       (SELECT count(DISTINCT chain_id) FROM qf.round_pools p WHERE p.round = r.name) AS chains,
       coalesce(d.donors, 0)                                               AS donors,
       coalesce(d.donors_on_several_chains, 0)                             AS donors_on_several_chains,
       coalesce(d.donations, 0)                                            AS donations,
       coalesce(d.eligible_donations, 0)                                   AS eligible_donations,
       coalesce(d.amount_usd, 0)                                           AS amount_usd,
       coalesce(j.unpriced, 0)                                             AS unpriced,
       coalesce(j.projects, 0)                                             AS projects
FROM qf.rounds r
LEFT JOIN (
    SELECT round, count(*) AS donors, count(*) FILTER (WHERE n_chains > 1) AS donors_on_several_chains,
           sum(donations) AS donations, sum(eligible_donations) AS eligible_donations, sum(amount_usd) AS amount_usd
    FROM qf.round_donors GROUP BY round
) d ON d.round = r.name
LEFT JOIN (
    SELECT round, count(*) AS projects, sum(unpriced) AS unpriced FROM qf.round_projects GROUP BY round
) j ON j.round = r.name;

COMMENT ON VIEW qf.round_summary IS 'One row per named round: its size over every chain.';
COMMENT ON COLUMN qf.round_summary.round IS 'The round (qf.rounds.name).';
COMMENT ON COLUMN qf.round_summary.pools IS 'Pools in the round.';
COMMENT ON COLUMN qf.round_summary.chains IS 'Chains those pools are on.';
COMMENT ON COLUMN qf.round_summary.donors IS 'Distinct donor addresses over every chain.';
COMMENT ON COLUMN qf.round_summary.donors_on_several_chains IS 'Of them, addresses that donated on more than one chain.';
COMMENT ON COLUMN qf.round_summary.donations IS 'Donations to the round''s pools.';
COMMENT ON COLUMN qf.round_summary.eligible_donations IS 'Of them, what matching counts.';
COMMENT ON COLUMN qf.round_summary.amount_usd IS 'USD value of the eligible donations (unpriced ones excluded).';
COMMENT ON COLUMN qf.round_summary.unpriced IS 'Eligible donations without a USD price.';
COMMENT ON COLUMN qf.round_summary.projects IS 'Projects with eligible donations.';
