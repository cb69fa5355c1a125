-- Allo v2 events: one table per event, one row per log, written by the indexer.
--
-- Table and column names and order are those of indexer/decode.py (EventSpec), which the
-- store COPYs into. Every table starts with the same seven columns saying where the log is;
-- (chain_id, tx_hash, log_index) identifies a log, and a reorg deletes by block number.
-- Addresses are 20-byte and hashes 32-byte bytea, uint256 is numeric(78,0), uint64
-- timestamps are bigint.

CREATE TABLE qf.pool_created (
    chain_id          bigint        NOT NULL,
    block_number      bigint        NOT NULL,
    block_hash        bytea         NOT NULL CHECK (octet_length(block_hash) = 32),
    tx_hash           bytea         NOT NULL CHECK (octet_length(tx_hash) = 32),
    tx_index          integer       NOT NULL,
    log_index         integer       NOT NULL,
    contract          bytea         NOT NULL CHECK (octet_length(contract) = 20),
    pool_id           numeric(78,0) NOT NULL,
    profile_id        bytea         NOT NULL CHECK (octet_length(profile_id) = 32),
    strategy          bytea         NOT NULL CHECK (octet_length(strategy) = 20),
    token             bytea         NOT NULL CHECK (octet_length(token) = 20),
    amount            numeric(78,0) NOT NULL,
    metadata_protocol numeric(78,0) NOT NULL,
    metadata_pointer  text          NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);

CREATE TABLE qf.pool_funded (
    chain_id     bigint        NOT NULL,
    block_number bigint        NOT NULL,
    block_hash   bytea         NOT NULL CHECK (octet_length(block_hash) = 32),
    tx_hash      bytea         NOT NULL CHECK (octet_length(tx_hash) = 32),
    tx_index     integer       NOT NULL,
    log_index    integer       NOT NULL,
    contract     bytea         NOT NULL CHECK (octet_length(contract) = 20),
    pool_id      numeric(78,0) NOT NULL,
    amount       numeric(78,0) NOT NULL,
    fee          numeric(78,0) NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);

CREATE TABLE qf.pool_metadata_updated (
    chain_id          bigint        NOT NULL,
    block_number      bigint        NOT NULL,
    block_hash        bytea         NOT NULL CHECK (octet_length(block_hash) = 32),
    tx_hash           bytea         NOT NULL CHECK (octet_length(tx_hash) = 32),
    tx_index          integer       NOT NULL,
    log_index         integer       NOT NULL,
    contract          bytea         NOT NULL CHECK (octet_length(contract) = 20),
    pool_id           numeric(78,0) NOT NULL,
    metadata_protocol numeric(78,0) NOT NULL,
    metadata_pointer  text          NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);

CREATE TABLE qf.registered (
    chain_id          bigint        NOT NULL,
    block_number      bigint        NOT NULL,
    block_hash        bytea         NOT NULL CHECK (octet_length(block_hash) = 32),
    tx_hash           bytea         NOT NULL CHECK (octet_length(tx_hash) = 32),
    tx_index          integer       NOT NULL,
    log_index         integer       NOT NULL,
    contract          bytea         NOT NULL CHECK (octet_length(contract) = 20),
    recipient_id      bytea         NOT NULL CHECK (octet_length(recipient_id) = 20),
    recipient_address bytea                  CHECK (octet_length(recipient_address) = 20),
    recipient_index   bigint,
    metadata_protocol numeric(78,0),
    metadata_pointer  text,
    data              bytea         NOT NULL,
    sender            bytea         NOT NULL CHECK (octet_length(sender) = 20),
    PRIMARY KEY (chain_id, tx_hash, log_index)
);

CREATE TABLE qf.updated_registration (
    chain_id          bigint        NOT NULL,
    block_number      bigint        NOT NULL,
    block_hash        bytea         NOT NULL CHECK (octet_length(block_hash) = 32),
    tx_hash           bytea         NOT NULL CHECK (octet_length(tx_hash) = 32),
    tx_index          integer       NOT NULL,
    log_index         integer       NOT NULL,
    contract          bytea         NOT NULL CHECK (octet_length(contract) = 20),
    recipient_id      bytea         NOT NULL CHECK (octet_length(recipient_id) = 20),
    recipient_address bytea                  CHECK (octet_length(recipient_address) = 20),
    recipient_index   bigint,
    metadata_protocol numeric(78,0),
    metadata_pointer  text,
    data              bytea         NOT NULL,
    sender            bytea         NOT NULL CHECK (octet_length(sender) = 20),
    status            smallint      NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);

CREATE TABLE qf.recipient_status_updated (
    chain_id     bigint        NOT NULL,
    block_number bigint        NOT NULL,
    block_hash   bytea         NOT NULL CHECK (octet_length(block_hash) = 32),
    tx_hash      bytea         NOT NULL CHECK (octet_length(tx_hash) = 32),
    tx_index     integer       NOT NULL,
    log_index    integer       NOT NULL,
    contract     bytea         NOT NULL CHECK (octet_length(contract) = 20),
    row_index    numeric(78,0) NOT NULL,
    full_row     numeric(78,0) NOT NULL,
    sender       bytea         NOT NULL CHECK (octet_length(sender) = 20),
    PRIMARY KEY (chain_id, tx_hash, log_index)
);

CREATE TABLE qf.timestamps_updated (
    chain_id           bigint  NOT NULL,
    block_number       bigint  NOT NULL,
    block_hash         bytea   NOT NULL CHECK (octet_length(block_hash) = 32),
    tx_hash            bytea   NOT NULL CHECK (octet_length(tx_hash) = 32),
    tx_index           integer NOT NULL,
    log_index          integer NOT NULL,
    contract           bytea   NOT NULL CHECK (octet_length(contract) = 20),
    registration_start bigint  NOT NULL,
    registration_end   bigint  NOT NULL,
    allocation_start   bigint  NOT NULL,
    allocation_end     bigint  NOT NULL,
    sender             bytea   NOT NULL CHECK (octet_length(sender) = 20),
    PRIMARY KEY (chain_id, tx_hash, log_index)
);

CREATE TABLE qf.allocated (
    chain_id     bigint        NOT NULL,
    block_number bigint        NOT NULL,
    block_hash   bytea         NOT NULL CHECK (octet_length(block_hash) = 32),
    tx_hash      bytea         NOT NULL CHECK (octet_length(tx_hash) = 32),
    tx_index     integer       NOT NULL,
    log_index    integer       NOT NULL,
    contract     bytea         NOT NULL CHECK (octet_length(contract) = 20),
    recipient_id bytea         NOT NULL CHECK (octet_length(recipient_id) = 20),
    amount       numeric(78,0) NOT NULL,
    token        bytea         NOT NULL CHECK (octet_length(token) = 20),
    sender       bytea         NOT NULL CHECK (octet_length(sender) = 20),
    origin       bytea         NOT NULL CHECK (octet_length(origin) = 20),
    tx_from      bytea         NOT NULL CHECK (octet_length(tx_from) = 20),
    tx_nonce     bigint        NOT NULL,
    gas_price    numeric(78,0) NOT NULL,
    block_time   timestamptz   NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);

CREATE TABLE qf.distributed (
    chain_id          bigint        NOT NULL,
    block_number      bigint        NOT NULL,
    block_hash        bytea         NOT NULL CHECK (octet_length(block_hash) = 32),
    tx_hash           bytea         NOT NULL CHECK (octet_length(tx_hash) = 32),
    tx_index          integer       NOT NULL,
    log_index         integer       NOT NULL,
    contract          bytea         NOT NULL CHECK (octet_length(contract) = 20),
    recipient_id      bytea         NOT NULL CHECK (octet_length(recipient_id) = 20),
    recipient_address bytea         NOT NULL CHECK (octet_length(recipient_address) = 20),
    amount            numeric(78,0) NOT NULL,
    sender            bytea         NOT NULL CHECK (octet_length(sender) = 20),
    PRIMARY KEY (chain_id, tx_hash, log_index)
);

CREATE TABLE qf.funds_distributed (
    chain_id     bigint        NOT NULL,
    block_number bigint        NOT NULL,
    block_hash   bytea         NOT NULL CHECK (octet_length(block_hash) = 32),
    tx_hash      bytea         NOT NULL CHECK (octet_length(tx_hash) = 32),
    tx_index     integer       NOT NULL,
    log_index    integer       NOT NULL,
    contract     bytea         NOT NULL CHECK (octet_length(contract) = 20),
    amount       numeric(78,0) NOT NULL,
    grantee      bytea         NOT NULL CHECK (octet_length(grantee) = 20),
    token        bytea         NOT NULL CHECK (octet_length(token) = 20),
    recipient_id bytea         NOT NULL CHECK (octet_length(recipient_id) = 20),
    PRIMARY KEY (chain_id, tx_hash, log_index)
);

CREATE INDEX pool_created_block_idx             ON qf.pool_created (chain_id, block_number);
CREATE INDEX pool_funded_block_idx              ON qf.pool_funded (chain_id, block_number);
CREATE INDEX pool_metadata_updated_block_idx    ON qf.pool_metadata_updated (chain_id, block_number);
CREATE INDEX registered_block_idx               ON qf.registered (chain_id, block_number);
CREATE INDEX updated_registration_block_idx     ON qf.updated_registration (chain_id, block_number);
CREATE INDEX recipient_status_updated_block_idx ON qf.recipient_status_updated (chain_id, block_number);
CREATE INDEX timestamps_updated_block_idx       ON qf.timestamps_updated (chain_id, block_number);
CREATE INDEX allocated_block_idx                ON qf.allocated (chain_id, block_number);
CREATE INDEX distributed_block_idx              ON qf.distributed (chain_id, block_number);
CREATE INDEX funds_distributed_block_idx        ON qf.funds_distributed (chain_id, block_number);

-- Tables ---------------------------------------------------------------------------------

COMMENT ON TABLE qf.pool_created IS
    'Allo core PoolCreated: a pool and its strategy contract were created (one row per log).';
COMMENT ON TABLE qf.pool_funded IS
    'Allo core PoolFunded: matching funds were added to a pool, net of the protocol fee.';
COMMENT ON TABLE qf.pool_metadata_updated IS
    'Allo core PoolMetadataUpdated: a pool''s off-chain metadata pointer changed.';
COMMENT ON TABLE qf.registered IS
    'Strategy Registered: a recipient applied to a pool for the first time.';
COMMENT ON TABLE qf.updated_registration IS
    'Strategy UpdatedRegistration: a recipient applied again; its status went back to pending or to appealed.';
COMMENT ON TABLE qf.recipient_status_updated IS
    'Strategy RecipientStatusUpdated: a reviewer changed statuses; the whole 64-recipient row after the change.';
COMMENT ON TABLE qf.timestamps_updated IS
    'Strategy TimestampsUpdated: the registration and allocation windows were set or changed.';
COMMENT ON TABLE qf.allocated IS
    'Strategy Allocated: one donation, with the transaction and block context the scorer reads.';
COMMENT ON TABLE qf.distributed IS
    'Strategy Distributed (Allo BaseStrategy): a payout of the matching pool to a recipient.';
COMMENT ON TABLE qf.funds_distributed IS
    'Strategy FundsDistributed (donation-voting strategies): a payout of the matching pool to a recipient.';

-- The seven leading columns mean the same in every table.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'pool_created', 'pool_funded', 'pool_metadata_updated', 'registered',
        'updated_registration', 'recipient_status_updated', 'timestamps_updated',
        'allocated', 'distributed', 'funds_distributed'
    ] LOOP
        EXECUTE format('COMMENT ON COLUMN qf.%I.chain_id IS %L', t,
            'EIP-155 chain id of the chain the log is on.');
        EXECUTE format('COMMENT ON COLUMN qf.%I.block_number IS %L', t,
            'Number of the block holding the log; a reorg deletes rows from a block number up.');
        EXECUTE format('COMMENT ON COLUMN qf.%I.block_hash IS %L', t,
            'Hash of the block holding the log, 32 raw bytes.');
        EXECUTE format('COMMENT ON COLUMN qf.%I.tx_hash IS %L', t,
            'Hash of the transaction that emitted the log, 32 raw bytes.');
        EXECUTE format('COMMENT ON COLUMN qf.%I.tx_index IS %L', t,
            'Position of the transaction in its block.');
        EXECUTE format('COMMENT ON COLUMN qf.%I.log_index IS %L', t,
            'Position of the log in its block.');
        EXECUTE format('COMMENT ON COLUMN qf.%I.contract IS %L', t,
            'Address of the contract that emitted the log (the Allo core or a strategy), 20 raw bytes.');
    END LOOP;
END
$$;

-- Event columns --------------------------------------------------------------------------

COMMENT ON COLUMN qf.pool_created.pool_id IS 'Allo pool id (uint256, indexed).';
COMMENT ON COLUMN qf.pool_created.profile_id IS 'Allo registry profile that owns the pool (bytes32, indexed).';
COMMENT ON COLUMN qf.pool_created.strategy IS
    'Strategy contract of the pool; the strategy events of the pool are emitted by it.';
COMMENT ON COLUMN qf.pool_created.token IS
    'Asset of the matching pool; 0xeeee...eeee is the chain''s native token.';
COMMENT ON COLUMN qf.pool_created.amount IS 'Amount funded at creation, in the token''s base units.';
COMMENT ON COLUMN qf.pool_created.metadata_protocol IS 'Metadata protocol id (1 = IPFS).';
COMMENT ON COLUMN qf.pool_created.metadata_pointer IS
    'Metadata pointer (an IPFS CID); invalid UTF-8 and NUL are replaced by U+FFFD.';

COMMENT ON COLUMN qf.pool_funded.pool_id IS 'Allo pool id (uint256, indexed).';
COMMENT ON COLUMN qf.pool_funded.amount IS 'Amount added to the pool after the fee, in the pool token''s base units.';
COMMENT ON COLUMN qf.pool_funded.fee IS 'Protocol fee taken from the funding, in the pool token''s base units.';

COMMENT ON COLUMN qf.pool_metadata_updated.pool_id IS 'Allo pool id (uint256, indexed).';
COMMENT ON COLUMN qf.pool_metadata_updated.metadata_protocol IS 'New metadata protocol id (1 = IPFS).';
COMMENT ON COLUMN qf.pool_metadata_updated.metadata_pointer IS
    'New metadata pointer (an IPFS CID); invalid UTF-8 and NUL are replaced by U+FFFD.';

COMMENT ON COLUMN qf.registered.recipient_id IS 'Recipient id (indexed): the applicant or its registry anchor.';
COMMENT ON COLUMN qf.registered.recipient_address IS
    'Payout address: second address of the registration data; NULL when data has another layout.';
COMMENT ON COLUMN qf.registered.recipient_index IS
    'Recipient''s index in the strategy (order of first registration, from 0); NULL when data has another layout.';
COMMENT ON COLUMN qf.registered.metadata_protocol IS
    'Application metadata protocol id (1 = IPFS); NULL when data has another layout.';
COMMENT ON COLUMN qf.registered.metadata_pointer IS
    'Application metadata pointer (an IPFS CID); NULL when data has another layout.';
COMMENT ON COLUMN qf.registered.data IS
    'The event''s raw data field; donation-voting strategies emit abi.encode(abi.encode(recipientId, recipientAddress, metadata), recipientIndex).';
COMMENT ON COLUMN qf.registered.sender IS 'Account that registered the recipient.';

COMMENT ON COLUMN qf.updated_registration.recipient_id IS 'Recipient id (indexed): the applicant or its registry anchor.';
COMMENT ON COLUMN qf.updated_registration.recipient_address IS
    'Payout address: second address of the registration data; NULL when data has another layout.';
COMMENT ON COLUMN qf.updated_registration.recipient_index IS
    'Recipient''s index in the strategy, unchanged by re-registration; NULL when data has another layout.';
COMMENT ON COLUMN qf.updated_registration.metadata_protocol IS
    'Application metadata protocol id (1 = IPFS); NULL when data has another layout.';
COMMENT ON COLUMN qf.updated_registration.metadata_pointer IS
    'Application metadata pointer (an IPFS CID); NULL when data has another layout.';
COMMENT ON COLUMN qf.updated_registration.data IS
    'The event''s raw data field, same layout as qf.registered.data.';
COMMENT ON COLUMN qf.updated_registration.sender IS 'Account that re-registered the recipient.';
COMMENT ON COLUMN qf.updated_registration.status IS
    'Status after re-registration: 1 pending, 2 accepted, 3 rejected, 4 appealed.';

COMMENT ON COLUMN qf.recipient_status_updated.row_index IS
    'Row of the status bitmap (indexed): recipients 64*row_index to 64*row_index+63.';
COMMENT ON COLUMN qf.recipient_status_updated.full_row IS
    'The whole row after the change: 4 bits per recipient, recipient index mod 64 gives the nibble; 1 pending, 2 accepted, 3 rejected, 4 appealed.';
COMMENT ON COLUMN qf.recipient_status_updated.sender IS 'Reviewer who changed the statuses.';

COMMENT ON COLUMN qf.timestamps_updated.registration_start IS
    'Registration opens (unix seconds); values above 2^63-1 are stored as 2^63-1.';
COMMENT ON COLUMN qf.timestamps_updated.registration_end IS
    'Registration closes (unix seconds); values above 2^63-1 are stored as 2^63-1.';
COMMENT ON COLUMN qf.timestamps_updated.allocation_start IS
    'Donations open (unix seconds); values above 2^63-1 are stored as 2^63-1.';
COMMENT ON COLUMN qf.timestamps_updated.allocation_end IS
    'Donations close (unix seconds); values above 2^63-1 are stored as 2^63-1.';
COMMENT ON COLUMN qf.timestamps_updated.sender IS 'Account that set the windows.';

COMMENT ON COLUMN qf.allocated.recipient_id IS 'Recipient id donated to (indexed).';
COMMENT ON COLUMN qf.allocated.amount IS 'Donation amount in the token''s base units.';
COMMENT ON COLUMN qf.allocated.token IS 'Donated asset; 0xeeee...eeee is the chain''s native token.';
COMMENT ON COLUMN qf.allocated.sender IS 'Donor as the strategy saw it (the caller of the Allo core).';
COMMENT ON COLUMN qf.allocated.origin IS 'tx.origin of the donation as the strategy emitted it.';
COMMENT ON COLUMN qf.allocated.tx_from IS 'Sender of the transaction (from the transaction, not the log).';
COMMENT ON COLUMN qf.allocated.tx_nonce IS
    'Nonce of the transaction: how many transactions the sender had sent before (wallet age).';
COMMENT ON COLUMN qf.allocated.gas_price IS 'Effective gas price the transaction paid, in wei.';
COMMENT ON COLUMN qf.allocated.block_time IS 'Timestamp of the block holding the donation.';

COMMENT ON COLUMN qf.distributed.recipient_id IS 'Recipient id paid (indexed).';
COMMENT ON COLUMN qf.distributed.recipient_address IS 'Address the payout went to.';
COMMENT ON COLUMN qf.distributed.amount IS 'Payout in the pool token''s base units.';
COMMENT ON COLUMN qf.distributed.sender IS 'Account that triggered the distribution.';

COMMENT ON COLUMN qf.funds_distributed.amount IS 'Payout in the token''s base units.';
COMMENT ON COLUMN qf.funds_distributed.grantee IS 'Address the payout went to.';
COMMENT ON COLUMN qf.funds_distributed.token IS
    'Paid asset (indexed); 0xeeee...eeee is the chain''s native token.';
COMMENT ON COLUMN qf.funds_distributed.recipient_id IS 'Recipient id paid (indexed).';
