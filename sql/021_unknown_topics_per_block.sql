-- Unknown topics counted per block, so that a reorg takes back what it orphans.
--
-- qf.unknown_topics was one running count per (chain, contract, topic0): every batch added to
-- it, and a reorg rollback never subtracted, so live follow through reorgs counted logs of
-- orphaned blocks that a fresh backfill never sees. The counts now live per block in
-- qf.unknown_topic_blocks, which the indexer deletes above the common ancestor with the
-- events (Store.rollback_to), and a replayed batch sets rather than adds. qf.unknown_topics
-- stays, as the view of their sums, with the same columns (plus the first and last block).
--
-- Counts from before this migration carry no block: they are kept as one row per
-- (chain, contract, topic0) at the lower of the chain's checkpoint and finalized block, where
-- no ordinary reorg reaches. They may still include orphaned logs; deleting the chain's rows
-- and indexing again recounts them exactly.

CREATE TABLE qf.unknown_topic_blocks (
    chain_id     bigint NOT NULL,
    block_number bigint NOT NULL,
    contract     bytea  NOT NULL,
    topic0       bytea  NOT NULL,
    seen         bigint NOT NULL CHECK (seen > 0),
    PRIMARY KEY (chain_id, block_number, contract, topic0)
);
COMMENT ON TABLE qf.unknown_topic_blocks IS
    'Logs from indexed contracts whose topic0 is not an Allo v2 event the indexer decodes, counted per block and '
    'skipped; rows above a reorg''s common ancestor are deleted with the events.';
COMMENT ON COLUMN qf.unknown_topic_blocks.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.unknown_topic_blocks.block_number IS
    'Block holding the logs (for counts from before migration 021: the chain''s checkpoint or finalized block).';
COMMENT ON COLUMN qf.unknown_topic_blocks.contract IS 'Contract that emitted them, 20 raw bytes.';
COMMENT ON COLUMN qf.unknown_topic_blocks.topic0 IS 'Their first topic, 32 raw bytes (empty for an anonymous event).';
COMMENT ON COLUMN qf.unknown_topic_blocks.seen IS 'How many such logs the block holds.';

INSERT INTO qf.unknown_topic_blocks (chain_id, block_number, contract, topic0, seen)
SELECT u.chain_id, coalesce(least(c.checkpoint_block, c.finalized_block), c.start_block, 0), u.contract, u.topic0, u.seen
FROM qf.unknown_topics u
LEFT JOIN qf.chains c ON c.chain_id = u.chain_id
WHERE u.seen > 0;

DROP TABLE qf.unknown_topics;

CREATE VIEW qf.unknown_topics AS
SELECT chain_id, contract, topic0, sum(seen)::bigint AS seen,
       min(block_number) AS first_block, max(block_number) AS last_block
FROM qf.unknown_topic_blocks
GROUP BY chain_id, contract, topic0;
COMMENT ON VIEW qf.unknown_topics IS
    'Logs from indexed contracts whose topic0 is not an Allo v2 event the indexer decodes: counted and skipped '
    '(sums of qf.unknown_topic_blocks over the canonical chain).';
COMMENT ON COLUMN qf.unknown_topics.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.unknown_topics.contract IS 'Contract that emitted them, 20 raw bytes.';
COMMENT ON COLUMN qf.unknown_topics.topic0 IS 'Their first topic, 32 raw bytes (empty for an anonymous event).';
COMMENT ON COLUMN qf.unknown_topics.seen IS 'How many such logs the indexed blocks hold.';
COMMENT ON COLUMN qf.unknown_topics.first_block IS 'First block holding one.';
COMMENT ON COLUMN qf.unknown_topics.last_block IS 'Last block holding one.';
