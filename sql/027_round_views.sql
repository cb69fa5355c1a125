-- A round across chains in psql: its donations, projects, donors and totals, and every donor's chains.
-- A donor is an address on any chain and a project a recipient id on any chain, as `qf matching --round`
-- (qf/matching/rounds.py) and qf-calculator count them. "Eligible" is what matching counts: to a recipient
-- accepted now (its current status), inside its pool's allocation window; valued in USD at donation time.

CREATE VIEW qf.round_donations AS
SELECT rp.round,
       d.chain_id,
       d.pool_id,
       d.recipient_id,
       d.project_name,
       d.donor,
       d.token,
       d.token_symbol,
       d.amount,
       d.amount_usd,
       d.block_number,
       d.block_time,
       d.tx_hash,
       d.log_index,
       coalesce(cur.status = 2, false) AND d.in_window AS eligible
FROM qf.round_pools rp
JOIN qf.donations d ON d.chain_id = rp.chain_id AND d.pool_id = rp.pool_id
LEFT JOIN LATERAL (
    SELECT h.status
    FROM qf.donation_strategies s
    JOIN qf.recipient_status_history h ON h.chain_id = s.chain_id AND h.contract = s.address
    WHERE s.chain_id = d.chain_id AND s.pool_id = d.pool_id
      AND h.recipient_id = decode(substr(d.recipient_id, 3), 'hex') AND h.next_block_number IS NULL
    LIMIT 1
) cur ON true;
COMMENT ON VIEW qf.round_donations IS
    'Every donation to a pool of a named round (qf.rounds), on every chain, with whether matching counts it.';
COMMENT ON COLUMN qf.round_donations.round IS 'The round (qf.rounds.name).';
COMMENT ON COLUMN qf.round_donations.chain_id IS 'EIP-155 chain id of the pool.';
COMMENT ON COLUMN qf.round_donations.pool_id IS 'Allo pool id on that chain.';
COMMENT ON COLUMN qf.round_donations.recipient_id IS 'The project: its recipient id (the same on every chain for one profile).';
COMMENT ON COLUMN qf.round_donations.project_name IS 'The project''s profile name on this chain (chain data: anyone''s text).';
COMMENT ON COLUMN qf.round_donations.donor IS 'The donating address (one donor on every chain).';
COMMENT ON COLUMN qf.round_donations.token IS 'Donated token (0xeeee... is the native coin).';
COMMENT ON COLUMN qf.round_donations.token_symbol IS 'The token''s symbol as its contract answers it.';
COMMENT ON COLUMN qf.round_donations.amount IS 'Amount in token units.';
COMMENT ON COLUMN qf.round_donations.amount_usd IS 'Amount in USD at donation time; NULL when the token has no price then.';
COMMENT ON COLUMN qf.round_donations.block_number IS 'Block of the donation on its chain.';
COMMENT ON COLUMN qf.round_donations.block_time IS 'Time of that block.';
COMMENT ON COLUMN qf.round_donations.tx_hash IS 'Transaction hash.';
COMMENT ON COLUMN qf.round_donations.log_index IS 'Log index in the block.';
COMMENT ON COLUMN qf.round_donations.eligible IS
    'Whether round matching counts it: the recipient is accepted now and the donation is inside the pool''s window.';

CREATE VIEW qf.round_projects AS
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
COMMENT ON VIEW qf.round_projects IS
    'Each project of a round across its chains: eligible donations only (what `qf matching --round` matches).';
COMMENT ON COLUMN qf.round_projects.round IS 'The round (qf.rounds.name).';
COMMENT ON COLUMN qf.round_projects.recipient_id IS 'The project''s recipient id.';
COMMENT ON COLUMN qf.round_projects.project_name IS 'Its profile name on the lowest chain id that has one.';
COMMENT ON COLUMN qf.round_projects.chains IS 'Chains where it received eligible donations.';
COMMENT ON COLUMN qf.round_projects.donors IS 'Distinct donor addresses over every chain (one address counts once).';
COMMENT ON COLUMN qf.round_projects.donations IS 'Eligible donations.';
COMMENT ON COLUMN qf.round_projects.amount_usd IS 'Their USD value at donation time (unpriced ones excluded).';
COMMENT ON COLUMN qf.round_projects.unpriced IS 'Eligible donations without a USD price, left out of amount_usd and of matching.';

CREATE VIEW qf.round_donors AS
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
COMMENT ON VIEW qf.round_donors IS
    'Each donor of a round: one address over every chain of the round (the same wallet on two chains is one donor).';
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

CREATE VIEW qf.round_summary AS
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

CREATE VIEW qf.donor_chains AS
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
COMMENT ON VIEW qf.donor_chains IS
    'Every donor address over every indexed chain: one wallet, several chains (donations to donation strategies only).';
COMMENT ON COLUMN qf.donor_chains.donor IS 'The address.';
COMMENT ON COLUMN qf.donor_chains.chains IS 'Chains it donated on.';
COMMENT ON COLUMN qf.donor_chains.n_chains IS 'How many.';
COMMENT ON COLUMN qf.donor_chains.donations IS 'Its donations over every chain.';
COMMENT ON COLUMN qf.donor_chains.first_at IS 'Its first donation on any chain.';
COMMENT ON COLUMN qf.donor_chains.last_at IS 'Its latest on any chain.';
