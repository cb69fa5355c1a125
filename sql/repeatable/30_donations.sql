-- qf.donations as it is now. Earlier definitions, kept as history: sql/003, sql/004, sql/010, sql/014, sql/018, sql/024 (a new database runs them first).
CREATE OR REPLACE VIEW qf.donations AS
SELECT a.chain_id,
       s.pool_id,
       ('0x' || encode(a.recipient_id, 'hex')) COLLATE "C" AS recipient_id,
       ('0x' || encode(a.sender, 'hex')) COLLATE "C"       AS donor,
       ('0x' || encode(a.token, 'hex')) COLLATE "C"        AS token,
       t.symbol                                           AS token_symbol,
       a.amount                                           AS amount_raw,
       a.amount / t.unit                                  AS amount,
       a.block_number,
       a.block_time,
       ('0x' || encode(a.tx_hash, 'hex')) COLLATE "C"      AS tx_hash,
       a.log_index,
       a.tx_nonce                                         AS donor_nonce,
       a.gas_price,
       coalesce(h.status, 0::smallint)                    AS recipient_status,
       coalesce(a.block_time BETWEEN p.allocation_start AND p.allocation_end, false) AS in_window,
       pr.name                                            AS project_name,
       price.usd                                          AS token_price_usd,
       a.amount / t.unit * price.usd                      AS amount_usd
FROM qf.allocated a
JOIN qf.donation_strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
LEFT JOIN qf.tokens t ON t.chain_id = a.chain_id AND t.address = a.token
LEFT JOIN (
    SELECT chain_id, pool_id, min(allocation_start) AS allocation_start, min(allocation_end) AS allocation_end
    FROM qf.pools GROUP BY chain_id, pool_id
) p ON p.chain_id = a.chain_id AND p.pool_id = s.pool_id
LEFT JOIN qf.recipient_status_history h
       ON h.chain_id = a.chain_id AND h.contract = a.contract AND h.recipient_id = a.recipient_id
      AND (h.block_number, h.log_index) <= (a.block_number, a.log_index)
      AND (h.next_block_number IS NULL OR (a.block_number, a.log_index) < (h.next_block_number, h.next_log_index))
LEFT JOIN qf.profile_anchors pa ON pa.chain_id = a.chain_id AND pa.anchor = a.recipient_id
LEFT JOIN qf.profiles pr ON pr.chain_id = pa.chain_id AND pr.registry = pa.registry AND pr.profile_id = pa.profile_id
-- Both keyed on unique keys, so dropped when the price is not read; they say whether a token has a
-- feed or imported prices at all, so a donation in an unpriced token costs no lookup.
LEFT JOIN qf.price_feeds f ON f.chain_id = a.chain_id AND f.token = a.token
LEFT JOIN (SELECT chain_id, token FROM qf.imported_prices GROUP BY 1, 2) ip
       ON ip.chain_id = a.chain_id AND ip.token = a.token
-- One value per donation, computed only when a query reads it (the same rule as qf.token_price_usd).
CROSS JOIN LATERAL (
    SELECT coalesce(
        CASE WHEN f.feed IS NOT NULL THEN
            (SELECT x.answer FROM qf.answer_updated x
             WHERE x.chain_id = a.chain_id AND x.contract = f.feed
               AND (x.block_number, x.log_index) <= (a.block_number, a.log_index)
             ORDER BY x.block_number DESC, x.log_index DESC LIMIT 1) / f.unit
        END,
        CASE WHEN ip.token IS NOT NULL THEN
            (SELECT i.price_usd FROM qf.imported_prices i
             WHERE i.chain_id = a.chain_id AND i.token = a.token AND i.at <= a.block_time
             ORDER BY i.at DESC LIMIT 1)
        END) AS usd
) price;

COMMENT ON VIEW qf.donations IS 'One row per donation: an Allocated log of a donation strategy (qf.donation_strategies; a DirectGrants payout is in qf.grants), with its pool, donor, token, amount in token units and USD, and context.';
COMMENT ON COLUMN qf.donations.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.donations.pool_id IS 'Allo pool id of the strategy that emitted the donation.';
COMMENT ON COLUMN qf.donations.recipient_id IS 'Recipient id donated to, 0x-hex.';
COMMENT ON COLUMN qf.donations.donor IS 'Donor (the Allocated sender), 0x-hex (indexed: WHERE donor = ''0x...'' is a lookup).';
COMMENT ON COLUMN qf.donations.token IS 'Donated token, 0x-hex (0xeeee...eeee is the native coin).';
COMMENT ON COLUMN qf.donations.token_symbol IS 'Symbol of the token; NULL if unknown.';
COMMENT ON COLUMN qf.donations.amount_raw IS 'Amount in the token''s base units (wei for ETH).';
COMMENT ON COLUMN qf.donations.amount IS 'Amount in token units (decimals applied); NULL when the token''s decimals are unknown.';
COMMENT ON COLUMN qf.donations.block_number IS 'Block holding the donation.';
COMMENT ON COLUMN qf.donations.block_time IS 'Timestamp of that block.';
COMMENT ON COLUMN qf.donations.tx_hash IS 'Donation transaction, 0x-hex.';
COMMENT ON COLUMN qf.donations.log_index IS 'Position of the Allocated log in its block.';
COMMENT ON COLUMN qf.donations.donor_nonce IS 'Nonce of the donation transaction: how many transactions the wallet had sent before (wallet freshness).';
COMMENT ON COLUMN qf.donations.gas_price IS 'Effective gas price of the donation transaction, in wei.';
COMMENT ON COLUMN qf.donations.recipient_status IS 'Recipient''s status at the donation: latest status event at or before (block_number, log_index); 1 pending, 2 accepted, 3 rejected, 4 appealed, 0 unknown.';
COMMENT ON COLUMN qf.donations.in_window IS 'True if block_time lies in the pool''s latest allocation window (ends inclusive); false if outside or no window is known.';
COMMENT ON COLUMN qf.donations.project_name IS 'Name of the Registry profile whose anchor is the recipient id (its current name); NULL if the recipient is not a known anchor (e.g. a wallet registered directly).';
COMMENT ON COLUMN qf.donations.token_price_usd IS 'USD per token unit when the donation was made (qf.token_price_usd: feed, else imported CSV); NULL if unknown.';
COMMENT ON COLUMN qf.donations.amount_usd IS 'amount * token_price_usd; NULL when either is unknown (never 0 for a missing price).';
