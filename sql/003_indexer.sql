-- The indexer's own state: per-chain checkpoint, recent block hashes, discovered
-- strategies, token metadata, unknown topics; and the first readable views.

CREATE TABLE qf.chains (
    chain_id          bigint PRIMARY KEY,
    core              bytea NOT NULL CHECK (octet_length(core) = 20),
    start_block       bigint NOT NULL,
    checkpoint_block  bigint,
    checkpoint_hash   bytea,
    finalized_block   bigint,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE qf.chains IS 'One row per indexed chain: where indexing started and the last block whose events are all committed.';
COMMENT ON COLUMN qf.chains.core IS 'Address of the Allo v2 core contract (pool factory) being indexed.';
COMMENT ON COLUMN qf.chains.start_block IS 'First block scanned.';
COMMENT ON COLUMN qf.chains.checkpoint_block IS 'Last block fully indexed; committed in the same transaction as the rows it covers.';
COMMENT ON COLUMN qf.chains.checkpoint_hash IS 'Hash of checkpoint_block, checked against the next batch''s parent hash to detect reorgs.';
COMMENT ON COLUMN qf.chains.finalized_block IS 'Highest block known final (node''s finalized tag, or head minus confirmations); hashes below it are pruned.';

CREATE TABLE qf.blocks (
    chain_id     bigint NOT NULL,
    number       bigint NOT NULL,
    hash         bytea NOT NULL CHECK (octet_length(hash) = 32),
    parent_hash  bytea NOT NULL CHECK (octet_length(parent_hash) = 32),
    block_time   timestamptz NOT NULL,
    PRIMARY KEY (chain_id, number)
);
COMMENT ON TABLE qf.blocks IS 'Hashes of recent (non-final) blocks the indexer has seen: every block that carries indexed events plus each batch''s last block. Used to find the common ancestor after a reorg; pruned below finality.';
COMMENT ON COLUMN qf.blocks.block_time IS 'Block timestamp (UTC).';

CREATE TABLE qf.strategies (
    chain_id          bigint NOT NULL,
    address           bytea NOT NULL CHECK (octet_length(address) = 20),
    pool_id           numeric(78, 0) NOT NULL,
    discovered_block  bigint NOT NULL,
    PRIMARY KEY (chain_id, address)
);
CREATE INDEX strategies_pool ON qf.strategies (chain_id, pool_id);
COMMENT ON TABLE qf.strategies IS 'Strategy contracts discovered from PoolCreated (one per pool); their events are indexed from discovered_block on. Deleted with the PoolCreated row on a reorg.';

CREATE TABLE qf.tokens (
    chain_id  bigint NOT NULL,
    address   bytea NOT NULL CHECK (octet_length(address) = 20),
    symbol    text,
    decimals  smallint,
    PRIMARY KEY (chain_id, address)
);
COMMENT ON TABLE qf.tokens IS 'Tokens seen in pools and donations, with symbol and decimals read from the contract (NULL if it does not answer). 0xeeee...eeee is the native coin, 18 decimals.';

CREATE TABLE qf.unknown_topics (
    chain_id  bigint NOT NULL,
    contract  bytea NOT NULL,
    topic0    bytea NOT NULL,
    seen      bigint NOT NULL,
    PRIMARY KEY (chain_id, contract, topic0)
);
COMMENT ON TABLE qf.unknown_topics IS 'Logs from indexed contracts whose topic0 is not an Allo v2 event the indexer decodes: counted and skipped.';

-- One readable row per donation. A plain view, so it is always as fresh as the
-- last committed batch; the analytics migrations add the materialized views.
CREATE VIEW qf.donations AS
SELECT a.chain_id,
       s.pool_id,
       '0x' || encode(a.recipient_id, 'hex')              AS recipient_id,
       '0x' || encode(a.sender, 'hex')                    AS donor,
       '0x' || encode(a.token, 'hex')                     AS token,
       t.symbol                                           AS token_symbol,
       a.amount                                           AS amount_raw,
       a.amount / (10::numeric ^ t.decimals)              AS amount,
       a.block_number,
       a.block_time,
       '0x' || encode(a.tx_hash, 'hex')                   AS tx_hash,
       a.log_index,
       a.tx_nonce                                         AS donor_nonce,
       a.gas_price
FROM qf.allocated a
JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
LEFT JOIN qf.tokens t ON t.chain_id = a.chain_id AND t.address = a.token;
COMMENT ON VIEW qf.donations IS 'One row per donation (Allo v2 Allocated event) with its pool, donor, token and amount in token units.';
COMMENT ON COLUMN qf.donations.amount_raw IS 'Amount in the token''s base units (wei for ETH).';
COMMENT ON COLUMN qf.donations.amount IS 'Amount in token units (decimals applied); NULL when the token''s decimals are unknown.';
COMMENT ON COLUMN qf.donations.donor_nonce IS 'Nonce of the donation transaction: how many transactions the wallet had sent before (wallet freshness).';
COMMENT ON COLUMN qf.donations.gas_price IS 'Effective gas price of the donation transaction, in wei.';

CREATE MATERIALIZED VIEW qf.project_totals AS
WITH per_donor AS (
    SELECT a.chain_id, s.pool_id, a.recipient_id, a.token, a.sender,
           count(*) AS donations, sum(a.amount) AS amount
    FROM qf.allocated a
    JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
    GROUP BY 1, 2, 3, 4, 5
)
SELECT chain_id, pool_id, recipient_id, token,
       count(*)                 AS unique_donors,
       sum(donations)           AS donations,
       sum(amount)              AS amount_raw,
       sum(sqrt(amount))        AS sum_sqrt_amount_raw
FROM per_donor
GROUP BY 1, 2, 3, 4;
CREATE UNIQUE INDEX project_totals_key ON qf.project_totals (chain_id, pool_id, recipient_id, token);
COMMENT ON MATERIALIZED VIEW qf.project_totals IS 'Per (chain, pool, recipient, token): unique donors, donations, amount, and the sum over donors of the square root of each donor''s total (the QF building block). Refreshed by the indexer after its batches.';
