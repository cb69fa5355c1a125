-- qf.pools as it is now. Earlier definitions, kept as history: sql/004, sql/010 (a new database runs them first).
CREATE OR REPLACE VIEW qf.pools AS
SELECT c.chain_id,
       c.pool_id,
       c.strategy,
       c.token,
       t.decimals                                             AS token_decimals,
       w.allocation_start,
       w.allocation_end,
       coalesce(f.funded_raw, 0)                              AS funded_raw,
       coalesce(f.funded_raw, 0) / (10::numeric ^ t.decimals) AS funded
FROM qf.pool_created c
LEFT JOIN qf.tokens t ON t.chain_id = c.chain_id AND t.address = c.token
LEFT JOIN (
    -- Converted here, once per strategy (a DISTINCT ON subquery is not flattened into the caller),
    -- not once per donation when qf.donations compares block times with the window.
    SELECT DISTINCT ON (chain_id, contract) chain_id, contract,
           qf.unix_time(allocation_start) AS allocation_start, qf.unix_time(allocation_end) AS allocation_end
    FROM qf.timestamps_updated
    ORDER BY chain_id, contract, block_number DESC, log_index DESC
) w ON w.chain_id = c.chain_id AND w.contract = c.strategy
LEFT JOIN (
    SELECT chain_id, pool_id, sum(amount) AS funded_raw FROM qf.pool_funded GROUP BY chain_id, pool_id
) f ON f.chain_id = c.chain_id AND f.pool_id = c.pool_id;

COMMENT ON VIEW qf.pools IS 'One row per pool: strategy, matching token, the latest allocation window and the matching pool funded so far.';
COMMENT ON COLUMN qf.pools.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.pools.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.pools.strategy IS 'Strategy contract of the pool, 20 raw bytes.';
COMMENT ON COLUMN qf.pools.token IS 'Matching-pool token, 20 raw bytes (0xeeee...eeee is the native coin).';
COMMENT ON COLUMN qf.pools.token_decimals IS 'Decimals of the matching-pool token; NULL if unknown.';
COMMENT ON COLUMN qf.pools.allocation_start IS 'Donations open (latest TimestampsUpdated of the strategy); NULL if none was seen.';
COMMENT ON COLUMN qf.pools.allocation_end IS 'Donations close, inclusive (latest TimestampsUpdated); infinity for a uint64-max "never".';
COMMENT ON COLUMN qf.pools.funded_raw IS 'Matching pool: sum of PoolFunded amounts (net of fees), in base units of the pool token.';
COMMENT ON COLUMN qf.pools.funded IS 'Matching pool in token units; NULL if the decimals are unknown.';
