-- qf.pool_strategies as it is now. Earlier definitions, kept as history: sql/024 (a new database runs them first).
CREATE OR REPLACE VIEW qf.pool_strategies AS
SELECT s.chain_id,
       s.pool_id,
       ('0x' || encode(s.address, 'hex')) COLLATE "C"     AS strategy,
       ('0x' || encode(s.strategy_id, 'hex')) COLLATE "C" AS strategy_id,
       CASE WHEN s.strategy_id_read IS NULL THEN 'unread' ELSE coalesce(k.kind, 'unknown') END AS kind,
       k.name,
       k.version,
       s.strategy_id_read
FROM qf.strategies s
LEFT JOIN qf.strategy_kinds k ON k.strategy_id = s.strategy_id;

COMMENT ON VIEW qf.pool_strategies IS 'Each pool''s strategy: what getStrategyId() answered and what that id is.';
COMMENT ON COLUMN qf.pool_strategies.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.pool_strategies.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.pool_strategies.strategy IS 'Strategy contract, 0x-hex.';
COMMENT ON COLUMN qf.pool_strategies.strategy_id IS 'Its getStrategyId(), 0x-hex; NULL if it gave none.';
COMMENT ON COLUMN qf.pool_strategies.kind IS 'qf.strategy_kinds.kind of the id; unknown for an id not there (or no id: it reverted, answered garbage); unread if the id was never asked for.';
COMMENT ON COLUMN qf.pool_strategies.name IS 'Strategy name of a known id.';
COMMENT ON COLUMN qf.pool_strategies.version IS 'Strategy version of a known id.';
COMMENT ON COLUMN qf.pool_strategies.strategy_id_read IS 'How getStrategyId() answered (qf.strategies.strategy_id_read).';
