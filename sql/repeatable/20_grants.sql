-- qf.grants as it is now. Earlier definitions, kept as history: sql/024 (a new database runs them first).
CREATE OR REPLACE VIEW qf.grants AS
SELECT a.chain_id,
       s.pool_id,
       ('0x' || encode(a.recipient_id, 'hex')) COLLATE "C" AS recipient_id,
       ('0x' || encode(a.sender, 'hex')) COLLATE "C"       AS sender,
       ('0x' || encode(a.token, 'hex')) COLLATE "C"        AS token,
       t.symbol                                           AS token_symbol,
       a.amount                                           AS amount_raw,
       a.amount / t.unit                                  AS amount,
       a.block_number,
       a.block_time,
       ('0x' || encode(a.tx_hash, 'hex')) COLLATE "C"      AS tx_hash,
       a.log_index,
       k.kind,
       k.name                                             AS strategy_name,
       k.version                                          AS strategy_version,
       pr.name                                            AS project_name
FROM qf.allocated a
JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
JOIN qf.strategy_kinds k ON k.strategy_id = s.strategy_id AND k.kind IN ('direct_grant', 'rfp')
LEFT JOIN qf.tokens t ON t.chain_id = a.chain_id AND t.address = a.token
LEFT JOIN qf.profile_anchors pa ON pa.chain_id = a.chain_id AND pa.anchor = a.recipient_id
LEFT JOIN qf.profiles pr ON pr.chain_id = pa.chain_id AND pr.registry = pa.registry AND pr.profile_id = pa.profile_id;

COMMENT ON VIEW qf.grants IS 'One row per grant: an Allocated log of a DirectGrants or RFP strategy, a manager''s decision, not a donation.';
COMMENT ON COLUMN qf.grants.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.grants.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.grants.recipient_id IS 'Recipient granted, 0x-hex.';
COMMENT ON COLUMN qf.grants.sender IS 'Who allocated: the pool manager (the zero address for an RFPCommittee vote''s award).';
COMMENT ON COLUMN qf.grants.token IS 'Token, 0x-hex (0xeeee...eeee is the native coin).';
COMMENT ON COLUMN qf.grants.token_symbol IS 'Token symbol as the token contract reports it; NULL if unknown.';
COMMENT ON COLUMN qf.grants.amount_raw IS 'Amount in the token''s base units.';
COMMENT ON COLUMN qf.grants.amount IS 'Amount in token units; NULL if the decimals are unknown.';
COMMENT ON COLUMN qf.grants.block_number IS 'Block of the Allocated log.';
COMMENT ON COLUMN qf.grants.block_time IS 'Timestamp of that block.';
COMMENT ON COLUMN qf.grants.tx_hash IS 'Transaction, 0x-hex.';
COMMENT ON COLUMN qf.grants.log_index IS 'Position of the log in its block.';
COMMENT ON COLUMN qf.grants.kind IS 'direct_grant: DirectGrantsLite''s Allocated is the transfer itself, DirectGrantsSimple''s the amount awarded (paid by milestones, qf.distributed); rfp: the accepted proposal''s bid (paid by milestones).';
COMMENT ON COLUMN qf.grants.strategy_name IS 'Strategy name (qf.strategy_kinds).';
COMMENT ON COLUMN qf.grants.strategy_version IS 'Strategy version (qf.strategy_kinds).';
COMMENT ON COLUMN qf.grants.project_name IS 'Name of the Registry profile whose anchor is the recipient id; NULL if none.';
