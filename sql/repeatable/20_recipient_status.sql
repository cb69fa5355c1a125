-- qf.recipient_status as it is now. Earlier definitions, kept as history: sql/004, sql/010 (a new database runs them first).
CREATE OR REPLACE VIEW qf.recipient_status AS
SELECT h.chain_id,
       s.pool_id,
       h.recipient_id,
       h.contract AS strategy,
       h.recipient_index,
       h.status,
       qf.status_name(h.status) AS status_name,
       h.block_number,
       h.log_index
FROM qf.recipient_status_history h
JOIN qf.strategies s ON s.chain_id = h.chain_id AND s.address = h.contract
WHERE h.next_block_number IS NULL;

COMMENT ON VIEW qf.recipient_status IS 'Current status of each registered recipient of each pool: the latest row of qf.recipient_status_history (RecipientStatusUpdated full_row decoded at the recipient''s nibble, or a later (re-)registration).';
COMMENT ON COLUMN qf.recipient_status.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.recipient_status.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.recipient_status.recipient_id IS 'Recipient id, 20 raw bytes.';
COMMENT ON COLUMN qf.recipient_status.strategy IS 'Strategy contract of the pool, 20 raw bytes.';
COMMENT ON COLUMN qf.recipient_status.recipient_index IS 'Index of the recipient in the strategy (nibble recipient_index mod 64 of row recipient_index / 64).';
COMMENT ON COLUMN qf.recipient_status.status IS 'Current status: 1 pending, 2 accepted, 3 rejected, 4 appealed (0 none).';
COMMENT ON COLUMN qf.recipient_status.status_name IS 'status as a word: pending, accepted, rejected, appealed.';
COMMENT ON COLUMN qf.recipient_status.block_number IS 'Block of the event that set the current status.';
COMMENT ON COLUMN qf.recipient_status.log_index IS 'Log index of that event in its block.';
