-- Rounds across chains: a round is a name for a set of (chain, pool), matched together in USD
-- (`qf rounds add NAME --pool CHAIN:POOL ...`, then `qf matching --round NAME`). A matching run is
-- then of a round rather than of one pool.

CREATE TABLE qf.rounds (
    name       text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE qf.rounds IS 'A named round: one or more pools, on one chain or several, matched as one (qf.round_pools).';
COMMENT ON COLUMN qf.rounds.name IS 'The round''s name (letters, digits, dot, dash, underscore; up to 64 characters).';
COMMENT ON COLUMN qf.rounds.created_at IS 'When `qf rounds add` first named it.';

CREATE TABLE qf.round_pools (
    round    text       NOT NULL REFERENCES qf.rounds (name) ON DELETE CASCADE,
    chain_id bigint     NOT NULL,
    pool_id  qf.uint256 NOT NULL,
    added_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (round, chain_id, pool_id)
);
COMMENT ON TABLE qf.round_pools IS 'The pools of each round in qf.rounds.';
COMMENT ON COLUMN qf.round_pools.round IS 'The round (qf.rounds.name).';
COMMENT ON COLUMN qf.round_pools.chain_id IS 'EIP-155 chain id of the pool.';
COMMENT ON COLUMN qf.round_pools.pool_id IS 'Allo pool id on that chain.';
COMMENT ON COLUMN qf.round_pools.added_at IS 'When the pool was added to the round.';

ALTER TABLE qf.matching_runs
    ADD COLUMN round text REFERENCES qf.rounds (name),
    ALTER COLUMN chain_id DROP NOT NULL,
    ALTER COLUMN pool_id DROP NOT NULL,
    ADD CONSTRAINT matching_runs_pool_or_round
        CHECK ((round IS NULL AND chain_id IS NOT NULL AND pool_id IS NOT NULL)
               OR (round IS NOT NULL AND chain_id IS NULL AND pool_id IS NULL));
COMMENT ON COLUMN qf.matching_runs.round IS
    'The round (qf.rounds) a `qf matching --round` run matched across its pools, in USD; NULL for a run of one pool.';
COMMENT ON COLUMN qf.matching_runs.chain_id IS 'EIP-155 chain id; NULL for a run of a round.';
COMMENT ON COLUMN qf.matching_runs.pool_id IS 'Allo pool id; NULL for a run of a round.';
COMMENT ON COLUMN qf.matching_runs.pool_amount IS
    'Matching pool distributed: the pool token''s units, or USD for a `--usd` run and for a run of a round.';
