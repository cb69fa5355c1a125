-- qf.donor_funding as it is now. Earlier definitions, kept as history: sql/023 (a new database runs them first).
--
-- Per donor, its first native funding before its first donation, the funder's label and fan-out, and the
-- peel chain behind it (the funder's own first funder, and so on, up to three hops, stopping at a known source).
CREATE OR REPLACE VIEW qf.donor_funding AS
WITH RECURSIVE donors AS (
    SELECT chain_id, sender AS donor, min(block_number) AS first_block, min(block_time) AS first_time
    FROM qf.allocated GROUP BY chain_id, sender
),
native AS (
    SELECT d.chain_id, d.donor, d.first_block, d.first_time, w.funder, w.amount, w.block_number, w.block_time,
           w.method, w.funder_is_contract
    FROM donors d
    JOIN qf.wallet_funding w ON w.chain_id = d.chain_id AND w.wallet = d.donor
     AND w.asset = '\xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee'::bytea AND w.block_time <= d.first_time
),
fan_out AS (
    SELECT chain_id, funder, count(*) AS donors FROM native GROUP BY chain_id, funder
),
trail AS (
    SELECT n.chain_id, n.donor, n.funder::bytea AS wallet, n.block_number AS funded_block, 1 AS hops,
           ARRAY[n.funder::bytea] AS path
    FROM native n
    UNION ALL
    SELECT t.chain_id, t.donor, w.funder::bytea, w.block_number, t.hops + 1, t.path || w.funder::bytea
    FROM trail t
    JOIN qf.wallet_funding w ON w.chain_id = t.chain_id AND w.wallet = t.wallet
     AND w.asset = '\xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee'::bytea AND w.block_number <= t.funded_block
    WHERE t.hops < 3 AND w.funder::bytea <> ALL (t.path)
      AND NOT EXISTS (SELECT 1 FROM qf.known_sources k WHERE k.chain_id = t.chain_id AND k.address = t.wallet)
),
longest AS (
    SELECT DISTINCT ON (chain_id, donor) chain_id, donor, hops, path FROM trail ORDER BY chain_id, donor, hops DESC
),
token AS (
    SELECT DISTINCT ON (d.chain_id, d.donor) d.chain_id, d.donor, w.asset, w.funder, w.amount, w.block_time
    FROM donors d
    JOIN qf.wallet_funding w ON w.chain_id = d.chain_id AND w.wallet = d.donor
     AND w.asset <> '\xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee'::bytea AND w.block_time <= d.first_time
    ORDER BY d.chain_id, d.donor, w.block_number, w.asset
)
SELECT d.chain_id,
       '0x' || encode(d.donor, 'hex')                             AS donor,
       d.first_block                                              AS first_donation_block,
       d.first_time                                               AS first_donation_time,
       '0x' || encode(n.funder, 'hex')                            AS funder,
       n.amount                                                   AS funded_amount_raw,
       n.block_number                                             AS funded_block,
       n.block_time                                               AS funded_time,
       extract(epoch FROM d.first_time - n.block_time)::bigint    AS seconds_before_first_donation,
       n.method                                                   AS funding_method,
       k.label                                                    AS funder_label,
       k.kind                                                     AS funder_kind,
       n.funder_is_contract,
       f.donors - 1                                               AS funder_other_donors,
       l.hops                                                     AS trail_depth,
       (SELECT array_agg('0x' || encode(p, 'hex') ORDER BY i) FROM unnest(l.path) WITH ORDINALITY AS u(p, i)) AS trail,
       '0x' || encode(t.asset, 'hex')                             AS token,
       '0x' || encode(t.funder, 'hex')                            AS token_funder,
       t.amount                                                   AS token_funded_amount_raw,
       t.block_time                                               AS token_funded_time,
       q.status                                                   AS search_status
FROM donors d
LEFT JOIN native n ON n.chain_id = d.chain_id AND n.donor = d.donor
LEFT JOIN fan_out f ON f.chain_id = n.chain_id AND f.funder = n.funder
LEFT JOIN qf.known_sources k ON k.chain_id = n.chain_id AND k.address = n.funder
LEFT JOIN longest l ON l.chain_id = d.chain_id AND l.donor = d.donor
LEFT JOIN token t ON t.chain_id = d.chain_id AND t.donor = d.donor
LEFT JOIN qf.funding_wallets q ON q.chain_id = d.chain_id AND q.wallet = d.donor;

COMMENT ON VIEW qf.donor_funding IS 'Per donor: its first native funding before its first donation, the funder''s known-source label, how many other donors the same funder funded, the peel chain behind it, and its first funding in a donated ERC-20.';
COMMENT ON COLUMN qf.donor_funding.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.donor_funding.donor IS 'Donor (the Allocated sender), 0x-hex.';
COMMENT ON COLUMN qf.donor_funding.first_donation_block IS 'Block of its first indexed donation.';
COMMENT ON COLUMN qf.donor_funding.first_donation_time IS 'Time of its first indexed donation.';
COMMENT ON COLUMN qf.donor_funding.funder IS 'Sender of its first incoming native transfer (at or before the first donation), 0x-hex; NULL when unknown.';
COMMENT ON COLUMN qf.donor_funding.funded_amount_raw IS 'Wei received in that transfer.';
COMMENT ON COLUMN qf.donor_funding.funded_block IS 'Block of that transfer.';
COMMENT ON COLUMN qf.donor_funding.funded_time IS 'Time of that transfer.';
COMMENT ON COLUMN qf.donor_funding.seconds_before_first_donation IS 'Seconds from the funding to the first donation.';
COMMENT ON COLUMN qf.donor_funding.funding_method IS 'How the funding was found (trace_filter, ots, import, ...).';
COMMENT ON COLUMN qf.donor_funding.funder_label IS 'The funder''s label in qf.known_sources (an exchange, bridge, faucet), else NULL.';
COMMENT ON COLUMN qf.donor_funding.funder_kind IS 'The funder''s kind in qf.known_sources, else NULL.';
COMMENT ON COLUMN qf.donor_funding.funder_is_contract IS 'Whether the funder has code; NULL when not asked.';
COMMENT ON COLUMN qf.donor_funding.funder_other_donors IS 'How many other donors the same funder funded first (before their first donation): its fan-out in the index.';
COMMENT ON COLUMN qf.donor_funding.trail_depth IS 'Hops of the funding trail found behind the donor (1: its funder only; 3: funder''s funder''s funder), stopping at a known source.';
COMMENT ON COLUMN qf.donor_funding.trail IS 'The funders along the trail, nearest first, 0x-hex.';
COMMENT ON COLUMN qf.donor_funding.token IS 'ERC-20 of its first incoming token transfer among the tokens it donated, 0x-hex.';
COMMENT ON COLUMN qf.donor_funding.token_funder IS 'Sender of that token transfer (0x000...0 for a mint), 0x-hex.';
COMMENT ON COLUMN qf.donor_funding.token_funded_amount_raw IS 'Token base units received in it.';
COMMENT ON COLUMN qf.donor_funding.token_funded_time IS 'Time of that token transfer.';
COMMENT ON COLUMN qf.donor_funding.search_status IS 'The worker''s status for the donor (pending, done, unavailable); NULL: not queued yet.';
