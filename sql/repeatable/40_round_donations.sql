-- qf.round_donations as it is now. Earlier definitions, kept as history: sql/027 (a new database runs them first).
CREATE OR REPLACE VIEW qf.round_donations AS
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

COMMENT ON VIEW qf.round_donations IS 'Every donation to a pool of a named round (qf.rounds), on every chain, with whether matching counts it.';
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
COMMENT ON COLUMN qf.round_donations.eligible IS 'Whether round matching counts it: the recipient is accepted now and the donation is inside the pool''s window.';
