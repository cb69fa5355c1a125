-- qf.donor_chains as it is now. Earlier definitions, kept as history: sql/027 (a new database runs them first).
CREATE OR REPLACE VIEW qf.donor_chains AS
SELECT donor,
       array_agg(chain_id ORDER BY chain_id) AS chains,
       count(*)                              AS n_chains,
       sum(donations)                        AS donations,
       min(first_at)                         AS first_at,
       max(last_at)                          AS last_at
FROM (
    SELECT ('0x' || encode(a.sender, 'hex')) COLLATE "C" AS donor, a.chain_id, count(*) AS donations,
           min(a.block_time) AS first_at, max(a.block_time) AS last_at
    FROM qf.allocated a
    JOIN qf.donation_strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
    GROUP BY a.sender, a.chain_id
) per_chain
GROUP BY donor;

COMMENT ON VIEW qf.donor_chains IS 'Every donor address over every indexed chain: one wallet, several chains (donations to donation strategies only).';
COMMENT ON COLUMN qf.donor_chains.donor IS 'The address.';
COMMENT ON COLUMN qf.donor_chains.chains IS 'Chains it donated on.';
COMMENT ON COLUMN qf.donor_chains.n_chains IS 'How many.';
COMMENT ON COLUMN qf.donor_chains.donations IS 'Its donations over every chain.';
COMMENT ON COLUMN qf.donor_chains.first_at IS 'Its first donation on any chain.';
COMMENT ON COLUMN qf.donor_chains.last_at IS 'Its latest on any chain.';
