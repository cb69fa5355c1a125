-- Foundation: the qf schema and the labels that say who is a sybil.
-- Addresses are stored as 20-byte bytea everywhere in this project.

CREATE SCHEMA IF NOT EXISTS qf;

CREATE TABLE qf.labels (
    chain_id   bigint      NOT NULL,
    address    bytea       NOT NULL CHECK (octet_length(address) = 20),
    is_sybil   boolean     NOT NULL,
    pattern    text        NOT NULL,
    source     text        NOT NULL,
    run_id     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, address, source)
);

COMMENT ON TABLE qf.labels IS
    'Ground truth and reviewer verdicts: whether an address is a sybil, per chain and per source.';
COMMENT ON COLUMN qf.labels.chain_id IS 'EIP-155 chain id the address belongs to.';
COMMENT ON COLUMN qf.labels.address IS 'The labelled account, 20 raw bytes.';
COMMENT ON COLUMN qf.labels.is_sybil IS 'True if the source judges the address a sybil.';
COMMENT ON COLUMN qf.labels.pattern IS
    'The behaviour labelled: honest, whale, or the name of a sybil pattern.';
COMMENT ON COLUMN qf.labels.source IS
    'Who says so: a simulator, a labels file or a reviewer; one label per source.';
COMMENT ON COLUMN qf.labels.run_id IS 'The simulation or review run that produced the label, if any.';
COMMENT ON COLUMN qf.labels.created_at IS 'When the label was recorded.';
