-- qf.donation_strategies as it is now. Earlier definitions, kept as history: sql/024 (a new database runs them first).
CREATE OR REPLACE VIEW qf.donation_strategies AS
SELECT s.chain_id, s.address, s.pool_id, s.discovered_block
FROM qf.strategies s
JOIN qf.strategy_kinds k ON k.strategy_id = s.strategy_id AND k.kind = 'donation';

COMMENT ON VIEW qf.donation_strategies IS 'The strategies whose Allocated logs are donations (kind donation): what every donation reader joins qf.allocated to, in place of qf.strategies.';
COMMENT ON COLUMN qf.donation_strategies.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.donation_strategies.address IS 'Strategy contract, 20 raw bytes.';
COMMENT ON COLUMN qf.donation_strategies.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.donation_strategies.discovered_block IS 'Block of the pool''s PoolCreated.';
