-- Results of `qf matching`: every run with the method and parameters that produced it.

CREATE TABLE qf.matching_runs (
    run_id       bigserial PRIMARY KEY,
    chain_id     bigint NOT NULL,
    pool_id      numeric(78, 0) NOT NULL,
    method       text NOT NULL,
    params       jsonb NOT NULL,
    pool_amount  numeric NOT NULL,
    donors       integer NOT NULL,
    projects     integer NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE qf.matching_runs IS 'One row per `qf matching` run: which pool, which method, with which parameters.';
COMMENT ON COLUMN qf.matching_runs.run_id IS 'Run number; qf.matching_results rows point to it.';
COMMENT ON COLUMN qf.matching_runs.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.matching_runs.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.matching_runs.method IS 'standard, pairwise, cocm or risk-adjusted.';
COMMENT ON COLUMN qf.matching_runs.params IS 'Parameters of the run (cap_pct, pct_cocm, pairwise_m, cocm_variant, weights source, threshold).';
COMMENT ON COLUMN qf.matching_runs.pool_amount IS 'Matching pool distributed, in the pool token''s units.';
COMMENT ON COLUMN qf.matching_runs.donors IS 'Donors with an eligible donation (accepted recipient, inside the window, pool token).';
COMMENT ON COLUMN qf.matching_runs.projects IS 'Accepted recipients of the pool.';
COMMENT ON COLUMN qf.matching_runs.created_at IS 'When the run was made.';

CREATE TABLE qf.matching_results (
    run_id        bigint NOT NULL REFERENCES qf.matching_runs ON DELETE CASCADE,
    recipient_id  bytea NOT NULL CHECK (octet_length(recipient_id) = 20),
    contributors  integer NOT NULL,
    amount        numeric NOT NULL,
    match         numeric NOT NULL,
    share         double precision NOT NULL,
    base_match    numeric,
    PRIMARY KEY (run_id, recipient_id)
);
COMMENT ON TABLE qf.matching_results IS 'Match per recipient of each `qf matching` run.';
COMMENT ON COLUMN qf.matching_results.run_id IS 'The run (qf.matching_runs).';
COMMENT ON COLUMN qf.matching_results.recipient_id IS 'Recipient id, 20 raw bytes.';
COMMENT ON COLUMN qf.matching_results.contributors IS 'Donors who gave to the recipient (eligible donations).';
COMMENT ON COLUMN qf.matching_results.amount IS 'Eligible donations to the recipient, pool token units.';
COMMENT ON COLUMN qf.matching_results.match IS 'Match from the pool under the run''s method, pool token units.';
COMMENT ON COLUMN qf.matching_results.share IS 'match / pool_amount.';
COMMENT ON COLUMN qf.matching_results.base_match IS 'risk-adjusted runs only: the standard match without donor weights, to see how far flagged donors moved it.';
