-- qf.token_price_usd(bigint,bytea,bigint,integer,timestamp with time zone) as it is now. Earlier definitions, kept as history: sql/018 (a new database runs them first).
--
-- USD price of a token at a point of the chain.
CREATE OR REPLACE FUNCTION qf.token_price_usd(chain_id bigint, token bytea, block_number bigint, log_index integer,
                                   block_time timestamptz) RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE
RETURN coalesce(
    (SELECT u.answer / f.unit FROM qf.price_feeds f
     JOIN LATERAL (
         SELECT x.answer FROM qf.answer_updated x
         WHERE x.chain_id = f.chain_id AND x.contract = f.feed
           AND (x.block_number, x.log_index) <= (token_price_usd.block_number, token_price_usd.log_index)
         ORDER BY x.block_number DESC, x.log_index DESC LIMIT 1
     ) u ON true
     WHERE f.chain_id = token_price_usd.chain_id AND f.token = token_price_usd.token),
    (SELECT p.price_usd FROM qf.imported_prices p
     WHERE p.chain_id = token_price_usd.chain_id AND p.token = token_price_usd.token
       AND p.at <= token_price_usd.block_time
     ORDER BY p.at DESC LIMIT 1));

COMMENT ON FUNCTION qf.token_price_usd(bigint,bytea,bigint,integer,timestamp with time zone) IS 'USD per token unit at (block_number, log_index): the token''s feed''s latest answer at or before it, else the latest imported price at or before block_time; NULL if neither exists.';
