-- qf.unknown_topics as it is now. Earlier definitions, kept as history: sql/021 (a new database runs them first).
CREATE OR REPLACE VIEW qf.unknown_topics AS
SELECT chain_id, contract, topic0, sum(seen)::bigint AS seen,
       min(block_number) AS first_block, max(block_number) AS last_block
FROM qf.unknown_topic_blocks
GROUP BY chain_id, contract, topic0;

COMMENT ON VIEW qf.unknown_topics IS 'Logs from indexed contracts whose topic0 is not an Allo v2 event the indexer decodes: counted and skipped (sums of qf.unknown_topic_blocks over the canonical chain).';
COMMENT ON COLUMN qf.unknown_topics.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.unknown_topics.contract IS 'Contract that emitted them, 20 raw bytes.';
COMMENT ON COLUMN qf.unknown_topics.topic0 IS 'Their first topic, 32 raw bytes (empty for an anonymous event).';
COMMENT ON COLUMN qf.unknown_topics.seen IS 'How many such logs the indexed blocks hold.';
COMMENT ON COLUMN qf.unknown_topics.first_block IS 'First block holding one.';
COMMENT ON COLUMN qf.unknown_topics.last_block IS 'Last block holding one.';
