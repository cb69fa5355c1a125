-- The scoring sidecar's audit log: every decision it returns, written asynchronously in batches.

CREATE TABLE qf.scorer_decisions (
    decision_id   uuid          PRIMARY KEY,
    created_at    timestamptz   NOT NULL,
    client        text          NOT NULL,
    method        text          NOT NULL,
    chain_id      bigint,
    donor         bytea         CHECK (octet_length(donor) = 20),
    recipient_id  bytea,
    pool_id       numeric(78,0),
    token         bytea,
    amount        numeric,
    risk_score    double precision,
    level         text,
    decision      text,
    cold_start    boolean,
    anomaly       jsonb,
    reasons       jsonb,
    features      jsonb,
    context       jsonb,
    model_version text          NOT NULL,
    latency_ms    double precision NOT NULL
);
CREATE INDEX scorer_decisions_created_idx ON qf.scorer_decisions (created_at);
CREATE INDEX scorer_decisions_donor_idx ON qf.scorer_decisions (donor, created_at);
COMMENT ON TABLE qf.scorer_decisions IS
    'Audit log of the scoring sidecar: one row per decision it returned (ScoreContribution(s) and '
    'DetectAnomaly), with the inputs, the features used, the scores and the model version. Deleted after '
    'the retention period (QF_AUDIT_RETENTION_DAYS, default 90) by `qf serve` and `qf retention`.';
COMMENT ON COLUMN qf.scorer_decisions.decision_id IS 'Id returned to the caller as decision_id.';
COMMENT ON COLUMN qf.scorer_decisions.created_at IS 'When the decision was made (server clock).';
COMMENT ON COLUMN qf.scorer_decisions.client IS 'Name of the authenticated client (from the token configuration), never the token.';
COMMENT ON COLUMN qf.scorer_decisions.method IS 'gRPC method that produced the decision.';
COMMENT ON COLUMN qf.scorer_decisions.chain_id IS 'EIP-155 chain id of the request.';
COMMENT ON COLUMN qf.scorer_decisions.donor IS 'Donor address, 20 raw bytes.';
COMMENT ON COLUMN qf.scorer_decisions.recipient_id IS 'Recipient id of the contribution, raw bytes.';
COMMENT ON COLUMN qf.scorer_decisions.pool_id IS 'Allo pool id of the contribution.';
COMMENT ON COLUMN qf.scorer_decisions.token IS 'Token of the contribution, raw bytes.';
COMMENT ON COLUMN qf.scorer_decisions.amount IS 'Amount of the contribution in token units, as sent.';
COMMENT ON COLUMN qf.scorer_decisions.risk_score IS 'Risk score 0..1 returned.';
COMMENT ON COLUMN qf.scorer_decisions.level IS 'LOW, MEDIUM or HIGH.';
COMMENT ON COLUMN qf.scorer_decisions.decision IS 'APPROVE, REVIEW or BLOCK (NULL for DetectAnomaly).';
COMMENT ON COLUMN qf.scorer_decisions.cold_start IS 'True if the donor had no indexed history (cold-start features).';
COMMENT ON COLUMN qf.scorer_decisions.anomaly IS 'Anomaly scores and flags returned.';
COMMENT ON COLUMN qf.scorer_decisions.reasons IS 'Top reasons returned: feature, value, contribution.';
COMMENT ON COLUMN qf.scorer_decisions.features IS 'The feature vector the model saw, by feature name.';
COMMENT ON COLUMN qf.scorer_decisions.context IS 'Client-supplied context map of the request.';
COMMENT ON COLUMN qf.scorer_decisions.model_version IS 'Model version directory that produced the decision.';
COMMENT ON COLUMN qf.scorer_decisions.latency_ms IS 'Time from request to response inside the server, milliseconds.';
