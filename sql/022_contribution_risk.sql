-- What the contribution gate would have answered for every indexed contribution, as of the moment it was made.
--
-- `qf score --pool N` replays the chain's indexed donations in chain order through the gate's live state
-- (qf/model/live.py, the code the sidecar serves with) and scores each one with the served version's
-- contribution gate, on what existed just before it: a retrospective of the gate as it would have been used.
-- One row per donation of the pool and version; a run replaces that version's rows for the pool.

CREATE TABLE qf.contribution_risk (
    chain_id      bigint           NOT NULL,
    pool_id       numeric(78,0)    NOT NULL,
    block_number  bigint           NOT NULL,
    log_index     integer          NOT NULL,
    donor         qf.address       NOT NULL,
    recipient_id  qf.address       NOT NULL,
    model_version text             NOT NULL,
    first_contribution boolean     NOT NULL,
    risk          double precision NOT NULL CHECK (risk >= 0 AND risk <= 1),
    level         text             NOT NULL CHECK (level IN ('LOW', 'MEDIUM', 'HIGH')),
    decision      text             NOT NULL CHECK (decision IN ('APPROVE', 'REVIEW', 'BLOCK')),
    reasons       text[]           NOT NULL,
    scored_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, pool_id, model_version, block_number, log_index)
);
CREATE INDEX contribution_risk_donor_idx ON qf.contribution_risk (chain_id, donor);
COMMENT ON TABLE qf.contribution_risk IS
    'The contribution gate''s answer for every indexed donation of a pool, as of just before it was made '
    '(point-in-time features, no later data), written by `qf score --pool N` for the served version.';
COMMENT ON COLUMN qf.contribution_risk.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.contribution_risk.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.contribution_risk.block_number IS 'Block of the donation (with log_index, its place in the chain).';
COMMENT ON COLUMN qf.contribution_risk.log_index IS 'Log index of the donation''s Allocated event in its block.';
COMMENT ON COLUMN qf.contribution_risk.donor IS 'Donor address, 20 raw bytes.';
COMMENT ON COLUMN qf.contribution_risk.recipient_id IS 'Recipient id, 20 raw bytes.';
COMMENT ON COLUMN qf.contribution_risk.model_version IS 'Model version whose contribution gate scored it.';
COMMENT ON COLUMN qf.contribution_risk.first_contribution IS 'The donor''s first indexed donation on this chain.';
COMMENT ON COLUMN qf.contribution_risk.risk IS 'Calibrated risk 0..1 of the gate, as of the donation.';
COMMENT ON COLUMN qf.contribution_risk.level IS 'LOW, MEDIUM or HIGH.';
COMMENT ON COLUMN qf.contribution_risk.decision IS 'APPROVE, REVIEW or BLOCK at the gate''s thresholds.';
COMMENT ON COLUMN qf.contribution_risk.reasons IS 'The reasons in words, the riskiest first.';
COMMENT ON COLUMN qf.contribution_risk.scored_at IS 'When `qf score` wrote the row.';
