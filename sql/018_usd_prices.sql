-- Donations in USD: token prices at donation time from Chainlink-style price feeds indexed from the
-- same node (AnswerUpdated), or from an imported CSV where a token has no feed.
--
-- qf.donations gains token_price_usd and amount_usd: the feed's latest answer at or before the
-- donation's (block, log), else the latest imported price at or before its block time; NULL when
-- neither exists. A donation without a price is never valued at 0: qf.unpriced_donations counts
-- them per pool and token, and `qf matching --usd` leaves them out and reports them.

CREATE TABLE qf.answer_updated (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    answer     numeric(78,0) NOT NULL,
    round_id   qf.uint256    NOT NULL,
    updated_at qf.uint256    NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
CREATE INDEX answer_updated_block_idx ON qf.answer_updated (chain_id, block_number);
CREATE INDEX answer_updated_feed_idx ON qf.answer_updated (chain_id, contract, block_number DESC, log_index DESC);
COMMENT ON TABLE qf.answer_updated IS
    'Price feed AnswerUpdated (Chainlink aggregator): a new answer of a feed in qf.price_feeds.';
COMMENT ON COLUMN qf.answer_updated.chain_id IS 'EIP-155 chain id of the log.';
COMMENT ON COLUMN qf.answer_updated.block_number IS 'Block holding the log.';
COMMENT ON COLUMN qf.answer_updated.block_hash IS 'Hash of the block holding the log, 32 raw bytes.';
COMMENT ON COLUMN qf.answer_updated.tx_hash IS 'Hash of the transaction that emitted the log, 32 raw bytes.';
COMMENT ON COLUMN qf.answer_updated.tx_index IS 'Position of the transaction in its block.';
COMMENT ON COLUMN qf.answer_updated.log_index IS 'Position of the log in its block.';
COMMENT ON COLUMN qf.answer_updated.contract IS 'The price feed (aggregator) that emitted it, 20 raw bytes.';
COMMENT ON COLUMN qf.answer_updated.answer IS 'The answer (int256, indexed), in the feed''s decimals.';
COMMENT ON COLUMN qf.answer_updated.round_id IS 'Feed round id (indexed).';
COMMENT ON COLUMN qf.answer_updated.updated_at IS 'Unix time the feed says the answer is from.';

CREATE TABLE qf.price_feeds (
    chain_id bigint     NOT NULL,
    token    qf.address NOT NULL,
    feed     qf.address NOT NULL,
    decimals smallint   NOT NULL CHECK (decimals BETWEEN 0 AND 36),
    unit     numeric    GENERATED ALWAYS AS (10::numeric ^ decimals) STORED,
    PRIMARY KEY (chain_id, token)
);
COMMENT ON TABLE qf.price_feeds IS
    'Which USD price feed prices which token (QF_PRICE_FEEDS, or the devnet''s), written by the indexer at start.';
COMMENT ON COLUMN qf.price_feeds.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.price_feeds.token IS 'Token priced; 0xeeee...eeee is the native coin.';
COMMENT ON COLUMN qf.price_feeds.feed IS 'Aggregator whose AnswerUpdated events give the token''s USD price.';
COMMENT ON COLUMN qf.price_feeds.decimals IS 'Decimals of the feed''s answers (read from the feed).';
COMMENT ON COLUMN qf.price_feeds.unit IS '10^decimals: an answer divided by it is USD per token.';

CREATE TABLE qf.imported_prices (
    chain_id  bigint      NOT NULL,
    token     qf.address  NOT NULL,
    at        timestamptz NOT NULL,
    price_usd numeric     NOT NULL CHECK (price_usd >= 0),
    source    text        NOT NULL,
    PRIMARY KEY (chain_id, token, at)
);
COMMENT ON TABLE qf.imported_prices IS
    'USD prices imported from a CSV (`qf prices import`), for tokens without a feed: a donation takes the '
    'latest price at or before its block time.';
COMMENT ON COLUMN qf.imported_prices.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.imported_prices.token IS 'Token priced; 0xeeee...eeee is the native coin.';
COMMENT ON COLUMN qf.imported_prices.at IS 'Time the price holds from.';
COMMENT ON COLUMN qf.imported_prices.price_usd IS 'USD per token unit.';
COMMENT ON COLUMN qf.imported_prices.source IS 'File it came from.';

-- USD price of a token at a point of the chain.
CREATE FUNCTION qf.token_price_usd(chain_id bigint, token bytea, block_number bigint, log_index integer,
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
COMMENT ON FUNCTION qf.token_price_usd(bigint, bytea, bigint, integer, timestamptz) IS
    'USD per token unit at (block_number, log_index): the token''s feed''s latest answer at or before it, '
    'else the latest imported price at or before block_time; NULL if neither exists.';

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
JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
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
COMMENT ON COLUMN qf.donations.token_price_usd IS
    'USD per token unit when the donation was made (qf.token_price_usd: feed, else imported CSV); NULL if unknown.';
COMMENT ON COLUMN qf.donations.amount_usd IS
    'amount * token_price_usd; NULL when either is unknown (never 0 for a missing price).';

CREATE VIEW qf.unpriced_donations AS
SELECT chain_id, pool_id, token, token_symbol, count(*) AS donations, sum(amount) AS amount
FROM qf.donations WHERE amount_usd IS NULL GROUP BY 1, 2, 3, 4;
COMMENT ON VIEW qf.unpriced_donations IS
    'Donations with no USD value (no feed and no imported price, or unknown decimals), per pool and token.';
COMMENT ON COLUMN qf.unpriced_donations.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.unpriced_donations.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.unpriced_donations.token IS 'Token, 0x-hex.';
COMMENT ON COLUMN qf.unpriced_donations.token_symbol IS 'Symbol of the token; NULL if unknown.';
COMMENT ON COLUMN qf.unpriced_donations.donations IS 'Donations without a price.';
COMMENT ON COLUMN qf.unpriced_donations.amount IS 'Their amount in token units (NULL if the decimals are unknown).';
