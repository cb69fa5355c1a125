-- qf.unpriced_donations as it is now. Earlier definitions, kept as history: sql/018 (a new database runs them first).
CREATE OR REPLACE VIEW qf.unpriced_donations AS
SELECT chain_id, pool_id, token, token_symbol, count(*) AS donations, sum(amount) AS amount
FROM qf.donations WHERE amount_usd IS NULL GROUP BY 1, 2, 3, 4;

COMMENT ON VIEW qf.unpriced_donations IS 'Donations with no USD value (no feed and no imported price, or unknown decimals), per pool and token.';
COMMENT ON COLUMN qf.unpriced_donations.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.unpriced_donations.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.unpriced_donations.token IS 'Token, 0x-hex.';
COMMENT ON COLUMN qf.unpriced_donations.token_symbol IS 'Symbol of the token; NULL if unknown.';
COMMENT ON COLUMN qf.unpriced_donations.donations IS 'Donations without a price.';
COMMENT ON COLUMN qf.unpriced_donations.amount IS 'Their amount in token units (NULL if the decimals are unknown).';
