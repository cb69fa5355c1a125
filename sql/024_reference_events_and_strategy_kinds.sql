-- Every event Gitcoin's indexer reads, and which strategy a pool runs.
--
-- 1. Event tables for the variants of Gitcoin's indexer (gitcoinco/grants-stack-indexer-v2,
--    apps/indexer/config.yaml; pinned in tests/fixtures/reference/) that had none: the QV strategies'
--    votes (NFT-gated too), the Superfluid strategy's stream rate, per-recipient statuses, Allo v2.1's
--    IBaseStrategy forms, the Allo v1 -> v2 profile migration and Gitcoin's attestation network.
--    indexer/decode.py lists them; the leading columns are those of sql/002.
-- 2. Which strategy a pool runs: qf.strategies gets what the strategy's getStrategyId() answered
--    (read once, when the pool is discovered), and qf.strategy_kinds maps the ids Gitcoin's indexers
--    know to a name, a version and a kind. An id is keccak256(abi.encode(name || version)).
-- 3. Donations are what a donation strategy emits: qf.donations and the analytics read Allocated
--    only from strategies of kind 'donation' (qf.donation_strategies). A DirectGrants payout is a
--    grant (qf.grants), a Superfluid Allocated a flow rate, an unknown strategy's Allocated nothing
--    we can name. qf.allocated itself still holds every Allocated log, whoever emitted it.
--
-- A database indexed before this migration has strategies whose id was never read (kind 'unread'):
-- the indexer reads them when it starts, and the trigger below recomputes their pools.

-- 1. Event tables -------------------------------------------------------------------------------

CREATE TABLE qf.qv_votes (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    recipient_id qf.address NOT NULL,
    votes        qf.uint256 NOT NULL,
    nft          qf.address,
    allocator    qf.address NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.qv_votes IS
    'Strategy Allocated(address,uint256,address) (QVSimple, QVImpactStream: voice credits cast as votes) and '
    'AllocatedWithNft(address,uint256,address,address) (QVNftTiered: votes of an NFT holder). Votes, not money.';
COMMENT ON COLUMN qf.qv_votes.recipient_id IS 'Recipient voted for (indexed).';
COMMENT ON COLUMN qf.qv_votes.votes IS 'Votes cast (the square root of the voice credits spent, as QV strategies count).';
COMMENT ON COLUMN qf.qv_votes.nft IS 'NFT collection whose token gave the right to vote (AllocatedWithNft); NULL for Allocated.';
COMMENT ON COLUMN qf.qv_votes.allocator IS 'Who voted.';

CREATE TABLE qf.allocated_with_data (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    recipient_id qf.address NOT NULL,
    sender       qf.address NOT NULL,
    amount       qf.uint256 NOT NULL,
    data         bytea      NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.allocated_with_data IS
    'Strategy Allocated(address,address,uint256,bytes) (Allo v2.1 IBaseStrategy): an allocation whose meaning is '
    'the strategy''s (DonationVotingOnchain/Offchain: a donation, data = abi.encode(token); QVSimple v2.1: voice '
    'credits). No strategy id Gitcoin maps emits it, so it is not counted as a donation.';
COMMENT ON COLUMN qf.allocated_with_data.recipient_id IS 'Recipient (indexed).';
COMMENT ON COLUMN qf.allocated_with_data.sender IS 'Allocator (indexed).';
COMMENT ON COLUMN qf.allocated_with_data.amount IS 'Amount, in the unit the strategy allocates (token base units, voice credits).';
COMMENT ON COLUMN qf.allocated_with_data.data IS 'The strategy''s data as emitted.';

CREATE TABLE qf.registered_with_data (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    recipient_id qf.address NOT NULL,
    data         bytea      NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.registered_with_data IS
    'Strategy Registered(address,bytes) (Allo v2.1 IBaseStrategy; RecipientsExtension emits '
    'abi.encode(abi.encode(anchor, metadata, extraData), recipientsCounter)).';
COMMENT ON COLUMN qf.registered_with_data.recipient_id IS 'Recipient id (indexed).';
COMMENT ON COLUMN qf.registered_with_data.data IS 'The registration data as emitted.';

CREATE TABLE qf.updated_registration_with_id (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    recipient_id   qf.address NOT NULL,
    application_id qf.uint256 NOT NULL,
    data           bytea      NOT NULL,
    sender         qf.address NOT NULL,
    status         smallint   NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.updated_registration_with_id IS
    'Strategy UpdatedRegistration(address,uint256,bytes,address,uint8) (QV strategies, LTIPSimple): a recipient '
    'registered again, as a new application.';
COMMENT ON COLUMN qf.updated_registration_with_id.recipient_id IS 'Recipient id (indexed).';
COMMENT ON COLUMN qf.updated_registration_with_id.application_id IS 'The recipient''s application counter after the update.';
COMMENT ON COLUMN qf.updated_registration_with_id.data IS
    'The registration data as sent: abi.encode(recipientId, recipientAddress, metadata) with a registry anchor, '
    'abi.encode(recipientAddress, registryAnchor, metadata) without.';
COMMENT ON COLUMN qf.updated_registration_with_id.sender IS 'Who sent the update.';
COMMENT ON COLUMN qf.updated_registration_with_id.status IS
    'Status after the update (IStrategy.Status: 1 pending, 2 accepted, 3 rejected, 4 appealed, 5 in review, 6 canceled).';

CREATE TABLE qf.recipient_status_set (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    recipient_id   qf.address NOT NULL,
    application_id qf.uint256,
    status         smallint   NOT NULL,
    sender         qf.address NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.recipient_status_set IS
    'Strategy RecipientStatusUpdated for one recipient: (address,uint256,uint8,address) (QV strategies, LTIPSimple: '
    'the application reviewed) and (address,uint8,address) (DonationVoting, WrappedVotingNftMint). Donation-voting '
    'strategies emit 64-recipient bitmap rows instead (qf.recipient_status_updated).';
COMMENT ON COLUMN qf.recipient_status_set.recipient_id IS 'Recipient id (indexed).';
COMMENT ON COLUMN qf.recipient_status_set.application_id IS 'Application the status is for; NULL for the three-field form.';
COMMENT ON COLUMN qf.recipient_status_set.status IS
    'New status (IStrategy.Status: 1 pending, 2 accepted, 3 rejected, 4 appealed, 5 in review, 6 canceled).';
COMMENT ON COLUMN qf.recipient_status_set.sender IS 'Who set it (the zero address when a QV review threshold did).';

CREATE TABLE qf.distributed_with_data (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    recipient_id qf.address NOT NULL,
    data         bytea      NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.distributed_with_data IS
    'Strategy Distributed(address,bytes) (Allo v2.1 IBaseStrategy): a payout whose data is the strategy''s '
    '(usually abi.encode(recipientAddress, amount, sender)).';
COMMENT ON COLUMN qf.distributed_with_data.recipient_id IS 'Recipient paid (indexed).';
COMMENT ON COLUMN qf.distributed_with_data.data IS 'The payout data as emitted.';

CREATE TABLE qf.distributed_flow_rate (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    sender    qf.address    NOT NULL,
    flow_rate numeric(29,0) NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.distributed_flow_rate IS
    'Strategy Distributed(address,int96) (SQFSuperfluid): the matching pool now streams to the recipients'' '
    'Superfluid pool at this rate. A rate, not an amount.';
COMMENT ON COLUMN qf.distributed_flow_rate.sender IS 'Who started or changed the stream (indexed).';
COMMENT ON COLUMN qf.distributed_flow_rate.flow_rate IS 'Superfluid flow rate (int96): super-token base units per second.';

CREATE TABLE qf.profile_migrated (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    allo_v1_project_id qf.hash32  NOT NULL,
    allo_v1_chain_id   qf.uint256 NOT NULL,
    profile_id         qf.hash32  NOT NULL,
    nonce              qf.uint256 NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.profile_migrated IS
    'AlloV1ToV2ProfileMigration ProfileMigrated: an Allo v1 project became this Allo v2 Registry profile. Stored '
    'only from the migration contract.';
COMMENT ON COLUMN qf.profile_migrated.allo_v1_project_id IS 'The Allo v1 project id (indexed).';
COMMENT ON COLUMN qf.profile_migrated.allo_v1_chain_id IS 'Chain the Allo v1 project lived on.';
COMMENT ON COLUMN qf.profile_migrated.profile_id IS 'The Allo v2 Registry profile id (indexed).';
COMMENT ON COLUMN qf.profile_migrated.nonce IS 'Nonce the profile was created with.';

CREATE TABLE qf.on_attested (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    uid       qf.hash32  NOT NULL,
    recipient qf.address NOT NULL,
    fee       qf.uint256 NOT NULL,
    data      bytea      NOT NULL,
    ref_uid   qf.hash32  NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.on_attested IS
    'GitcoinAttestationNetwork OnAttested: an EAS attestation made through Gitcoin''s attestation network. '
    'Stored only from that contract.';
COMMENT ON COLUMN qf.on_attested.uid IS 'Attestation uid (indexed).';
COMMENT ON COLUMN qf.on_attested.recipient IS 'Who the attestation is about (indexed).';
COMMENT ON COLUMN qf.on_attested.fee IS 'Fee paid, in wei.';
COMMENT ON COLUMN qf.on_attested.data IS 'The attestation data as emitted.';
COMMENT ON COLUMN qf.on_attested.ref_uid IS 'Uid of the attestation this one refers to (zero if none).';

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'qv_votes', 'allocated_with_data', 'registered_with_data', 'updated_registration_with_id',
        'recipient_status_set', 'distributed_with_data', 'distributed_flow_rate', 'profile_migrated', 'on_attested'
    ] LOOP
        EXECUTE format('CREATE INDEX %I ON qf.%I (chain_id, block_number)', t || '_block_idx', t);
        EXECUTE format('COMMENT ON COLUMN qf.%I.chain_id IS %L', t, 'EIP-155 chain id of the log.');
        EXECUTE format('COMMENT ON COLUMN qf.%I.block_number IS %L', t, 'Block holding the log.');
        EXECUTE format('COMMENT ON COLUMN qf.%I.block_hash IS %L', t, 'Hash of the block holding the log, 32 raw bytes.');
        EXECUTE format('COMMENT ON COLUMN qf.%I.tx_hash IS %L', t,
            'Hash of the transaction that emitted the log, 32 raw bytes.');
        EXECUTE format('COMMENT ON COLUMN qf.%I.tx_index IS %L', t, 'Position of the transaction in its block.');
        EXECUTE format('COMMENT ON COLUMN qf.%I.log_index IS %L', t, 'Position of the log in its block.');
        EXECUTE format('COMMENT ON COLUMN qf.%I.contract IS %L', t,
            'Address of the contract that emitted the log, 20 raw bytes.');
    END LOOP;
END
$$;

-- 2. Which strategy a pool runs -----------------------------------------------------------------

ALTER TABLE qf.strategies
    ADD COLUMN strategy_id qf.hash32,
    ADD COLUMN strategy_id_read text CHECK (strategy_id_read IN ('answered', 'no_answer', 'malformed'));
COMMENT ON COLUMN qf.strategies.strategy_id IS
    'What the strategy''s getStrategyId() answered (its first 32 bytes), read once when the pool was discovered; '
    'NULL if it did not answer a bytes32 or was never asked.';
COMMENT ON COLUMN qf.strategies.strategy_id_read IS
    'How getStrategyId() answered: answered; no_answer (it reverted or returned nothing); malformed (fewer than '
    '32 bytes, not hex). NULL: never asked (a strategy stored before migration 024, until the indexer starts).';

CREATE TABLE qf.strategy_kinds (
    strategy_id qf.hash32 PRIMARY KEY,
    name        text NOT NULL,
    version     text NOT NULL,
    preimage    text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('donation', 'direct_grant', 'direct_allocation', 'retro_funding',
                                              'quadratic_voting', 'micro_grants', 'rfp', 'streaming_qf')),
    label       text,
    source      text NOT NULL CHECK (source IN ('gitcoin', 'qf-sentinel'))
);
COMMENT ON TABLE qf.strategy_kinds IS
    'Strategy ids (getStrategyId()) with a name, a version and a kind: the ids Gitcoin''s indexers know '
    '(gitcoinco/grants-stack-indexer src/indexer/allo/v2/strategy.ts and grants-stack-indexer-v2 '
    'packages/processors/src/processors/strategy/mapping.ts, pinned in tests/fixtures/reference/), and the '
    'project''s own devnet strategy. An id not here is kind ''unknown'' (qf.pool_strategies).';
COMMENT ON COLUMN qf.strategy_kinds.strategy_id IS 'keccak256(abi.encode(preimage)), as Allo''s BaseStrategy computes it.';
COMMENT ON COLUMN qf.strategy_kinds.name IS 'Strategy name.';
COMMENT ON COLUMN qf.strategy_kinds.version IS 'Strategy version, as Gitcoin labels it.';
COMMENT ON COLUMN qf.strategy_kinds.preimage IS
    'The name string the strategy was deployed with (name || version, but for two deployments: the vault''s '
    'v1.0 was redeployed as v1.0a, EasyRPGF carries no version).';
COMMENT ON COLUMN qf.strategy_kinds.kind IS
    'What the strategy''s Allocated means: donation (donation-voting, QF: a donation), direct_grant '
    '(DirectGrants: a manager''s grant), rfp (an accepted proposal''s award), quadratic_voting and micro_grants '
    '(votes), streaming_qf (Superfluid: a flow rate), direct_allocation and retro_funding (no Allocated).';
COMMENT ON COLUMN qf.strategy_kinds.label IS 'The label Gitcoin''s sources write beside the id; NULL for the project''s own.';
COMMENT ON COLUMN qf.strategy_kinds.source IS 'gitcoin (the pinned reference lists) or qf-sentinel (the devnet''s own).';

INSERT INTO qf.strategy_kinds (strategy_id, name, version, preimage, kind, label, source) VALUES
    ('\xf8a14294e80ff012e54157ec9d1b2827421f1e7f6bde38c06730b1c031b3f935', 'SQFSuperfluid', 'v1', 'SQFSuperfluidv1', 'streaming_qf', 'SQFSuperfluidv1', 'gitcoin'),
    ('\x697f0592ebd05466d2d24454477e11d69c475d7a7c4134f15ddc1ea9811bb16f', 'MicroGrants', 'v1', 'MicroGrantsv1', 'micro_grants', 'MicroGrantsv1', 'gitcoin'),
    ('\x741ac1e2f387d83f219f6b5349d35ec34902cf94019d117335e0045d2e0ed912', 'MicroGrantsGov', 'v1', 'MicroGrantsGovv1', 'micro_grants', 'MicroGrantsGovv1', 'gitcoin'),
    ('\x5aa24dcfcd55a1e059a172e987b3456736b4856c71e57aaf52e9a965897318dd', 'MicroGrantsHats', 'v1', 'MicroGrantsHatsv1', 'micro_grants', 'MicroGrantsHatsv1', 'gitcoin'),
    ('\x0d459e12d9e91d2b2a8fa12be8c7eb2b4f1c35e74573990c34b436613bc2350f', 'RFPSimpleStrategy', 'v1.0', 'RFPSimpleStrategyv1.0', 'rfp', 'RFPSimpleStrategyv1.0', 'gitcoin'),
    ('\x7d143166a83c6a8a303ae32a6ccd287e48d79818f5d15d89e185391199909803', 'RFPCommitteeStrategy', 'v1.0', 'RFPCommitteeStrategyv1.0', 'rfp', 'RFPCommitteeStrategyv1.0', 'gitcoin'),
    ('\x22d006e191d6dc5ff1a25bb0733f47f64a9c34860b6703df88dea7cb3987b4c3', 'QVSimpleStrategy', 'v1.0', 'QVSimpleStrategyv1.0', 'quadratic_voting', 'QVSimpleStrategyv1.0', 'gitcoin'),
    ('\x6f9291df02b2664139cec5703c124e4ebce32879c74b6297faa1468aa5ff9ebf', 'DonationVotingMerkleDistributionDirectTransferStrategy', 'v1.0', 'DonationVotingMerkleDistributionDirectTransferStrategyv1.0', 'donation', 'DonationVotingMerkleDistributionDirectTransferStrategyv1.0', 'gitcoin'),
    ('\x2f46bf157821dc41daa51479e94783bb0c8699eac63bf75ec450508ab03867ce', 'DonationVotingMerkleDistributionDirectTransferStrategy', 'v1.1', 'DonationVotingMerkleDistributionDirectTransferStrategyv1.1', 'donation', 'DonationVotingMerkleDistributionDirectTransferStrategyv1.1', 'gitcoin'),
    ('\x2f0250d534b2d59b8b5cfa5eb0d0848a59ccbf5de2eaf72d2ba4bfe73dce7c6b', 'DonationVotingMerkleDistributionDirectTransferStrategy', 'v2.0', 'DonationVotingMerkleDistributionDirectTransferStrategyv2.0', 'donation', 'DonationVotingMerkleDistributionDirectTransferStrategyv2.0', 'gitcoin'),
    ('\x9fa6890423649187b1f0e8bf4265f0305ce99523c3d11aa36b35a54617bb0ec0', 'DonationVotingMerkleDistributionDirectTransferStrategy', 'v2.1', 'DonationVotingMerkleDistributionDirectTransferStrategyv2.1', 'donation', 'DonationVotingMerkleDistributionDirectTransferStrategyv2.1', 'gitcoin'),
    ('\x7e75375f0a7cd9f7ea159c8b065976e4f764f9dcef1edf692f31dd1842f70c87', 'DonationVotingMerkleDistributionVaultStrategy', 'v1.0', 'DonationVotingMerkleDistributionVaultStrategyv1.0a', 'donation', 'DonationVotingMerkleDistributionVaultStrategyv1.0', 'gitcoin'),
    ('\x093072375737c0e8872fef36808849aeba7f865e182d495f2b98308115c9ef13', 'DonationVotingMerkleDistributionVaultStrategy', 'v1.1', 'DonationVotingMerkleDistributionVaultStrategyv1.1', 'donation', 'DonationVotingMerkleDistributionVaultStrategyv1.1', 'gitcoin'),
    ('\x263cb916541b6fc1fb5543a244829ccdba75264b097726e6ecc3c3cfce824bf5', 'DirectGrantsSimpleStrategy', 'v1.1', 'DirectGrantsSimpleStrategyv1.1', 'direct_grant', 'DirectGrantsSimpleStrategyv1.1', 'gitcoin'),
    ('\x53fb9d3bce0956ca2db5bb1441f5ca23050cb1973b33789e04a5978acfd9ca93', 'DirectGrantsSimpleStrategy', 'v2.1', 'DirectGrantsSimpleStrategyv2.1', 'direct_grant', 'DirectGrantsSimpleStrategyv2.1', 'gitcoin'),
    ('\x103732a8e473467a510d4128ee11065262bdd978f0d9dad89ba68f2c56127e27', 'DirectGrantsLiteStrategy', 'v1.0', 'DirectGrantsLiteStrategyv1.0', 'direct_grant', 'DirectGrantsLiteStrategyv1.0', 'gitcoin'),
    ('\x662f5a0d3ea7e9b6ed1b351a9d96ac636a3c3ed727390aeff4ec931ae760d5ae', 'EasyRPGFStrategy', '1.0', 'EasyRPGFStrategy', 'retro_funding', 'EasyRPGFStrategy1.0', 'gitcoin'),
    ('\x4cd0051913234cdd7d165b208851240d334786d6e5afbb4d0eec203515a9c6f3', 'DirectAllocationStrategy', 'v1.1', 'DirectAllocationStrategyv1.1', 'direct_allocation', 'DirectAllocationStrategyv1.1', 'gitcoin'),
    ('\x060ffd6c79f918819a622248c6823443412aedea610cc19c89d28dadcdef7fba', 'EasyRetroFundingStrategy', 'v1.0', 'EasyRetroFundingStrategyv1.0', 'retro_funding', 'EasyRetroFundingStrategyv1.0', 'gitcoin'),
    -- contracts/DonationStrategy.sol: the devnet's own donation-voting strategy (qf simulate --strategy project).
    ('\x0165d4e78d165903a8d90ff626d509315ea6473b2d05396912d0e4df1583cf2f', 'QFSentinelDonationStrategy', 'v1.0', 'QFSentinelDonationStrategyv1.0', 'donation', NULL, 'qf-sentinel');

CREATE VIEW qf.pool_strategies AS
SELECT s.chain_id,
       s.pool_id,
       ('0x' || encode(s.address, 'hex')) COLLATE "C"     AS strategy,
       ('0x' || encode(s.strategy_id, 'hex')) COLLATE "C" AS strategy_id,
       CASE WHEN s.strategy_id_read IS NULL THEN 'unread' ELSE coalesce(k.kind, 'unknown') END AS kind,
       k.name,
       k.version,
       s.strategy_id_read
FROM qf.strategies s
LEFT JOIN qf.strategy_kinds k ON k.strategy_id = s.strategy_id;
COMMENT ON VIEW qf.pool_strategies IS 'Each pool''s strategy: what getStrategyId() answered and what that id is.';
COMMENT ON COLUMN qf.pool_strategies.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.pool_strategies.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.pool_strategies.strategy IS 'Strategy contract, 0x-hex.';
COMMENT ON COLUMN qf.pool_strategies.strategy_id IS 'Its getStrategyId(), 0x-hex; NULL if it gave none.';
COMMENT ON COLUMN qf.pool_strategies.kind IS
    'qf.strategy_kinds.kind of the id; unknown for an id not there (or no id: it reverted, answered garbage); '
    'unread if the id was never asked for.';
COMMENT ON COLUMN qf.pool_strategies.name IS 'Strategy name of a known id.';
COMMENT ON COLUMN qf.pool_strategies.version IS 'Strategy version of a known id.';
COMMENT ON COLUMN qf.pool_strategies.strategy_id_read IS 'How getStrategyId() answered (qf.strategies.strategy_id_read).';

CREATE VIEW qf.donation_strategies AS
SELECT s.chain_id, s.address, s.pool_id, s.discovered_block
FROM qf.strategies s
JOIN qf.strategy_kinds k ON k.strategy_id = s.strategy_id AND k.kind = 'donation';
COMMENT ON VIEW qf.donation_strategies IS
    'The strategies whose Allocated logs are donations (kind donation): what every donation reader joins '
    'qf.allocated to, in place of qf.strategies.';
COMMENT ON COLUMN qf.donation_strategies.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.donation_strategies.address IS 'Strategy contract, 20 raw bytes.';
COMMENT ON COLUMN qf.donation_strategies.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.donation_strategies.discovered_block IS 'Block of the pool''s PoolCreated.';

-- 3. Donations are what donation strategies emit --------------------------------------------------

CREATE OR REPLACE VIEW qf.donations AS
SELECT a.chain_id,
       s.pool_id,
       ('0x' || encode(a.recipient_id, 'hex')) COLLATE "C" AS recipient_id,
       ('0x' || encode(a.sender, 'hex')) COLLATE "C"       AS donor,
       ('0x' || encode(a.token, 'hex')) COLLATE "C"        AS token,
       t.symbol                                           AS token_symbol,
       a.amount                                           AS amount_raw,
       a.amount / t.unit                                  AS amount,
       a.block_number,
       a.block_time,
       ('0x' || encode(a.tx_hash, 'hex')) COLLATE "C"      AS tx_hash,
       a.log_index,
       a.tx_nonce                                         AS donor_nonce,
       a.gas_price,
       coalesce(h.status, 0::smallint)                    AS recipient_status,
       coalesce(a.block_time BETWEEN p.allocation_start AND p.allocation_end, false) AS in_window,
       pr.name                                            AS project_name,
       price.usd                                          AS token_price_usd,
       a.amount / t.unit * price.usd                      AS amount_usd
FROM qf.allocated a
JOIN qf.donation_strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
LEFT JOIN qf.tokens t ON t.chain_id = a.chain_id AND t.address = a.token
LEFT JOIN (
    SELECT chain_id, pool_id, min(allocation_start) AS allocation_start, min(allocation_end) AS allocation_end
    FROM qf.pools GROUP BY chain_id, pool_id
) p ON p.chain_id = a.chain_id AND p.pool_id = s.pool_id
LEFT JOIN qf.recipient_status_history h
       ON h.chain_id = a.chain_id AND h.contract = a.contract AND h.recipient_id = a.recipient_id
      AND (h.block_number, h.log_index) <= (a.block_number, a.log_index)
      AND (h.next_block_number IS NULL OR (a.block_number, a.log_index) < (h.next_block_number, h.next_log_index))
LEFT JOIN qf.profile_anchors pa ON pa.chain_id = a.chain_id AND pa.anchor = a.recipient_id
LEFT JOIN qf.profiles pr ON pr.chain_id = pa.chain_id AND pr.registry = pa.registry AND pr.profile_id = pa.profile_id
-- Both keyed on unique keys, so dropped when the price is not read; they say whether a token has a
-- feed or imported prices at all, so a donation in an unpriced token costs no lookup.
LEFT JOIN qf.price_feeds f ON f.chain_id = a.chain_id AND f.token = a.token
LEFT JOIN (SELECT chain_id, token FROM qf.imported_prices GROUP BY 1, 2) ip
       ON ip.chain_id = a.chain_id AND ip.token = a.token
-- One value per donation, computed only when a query reads it (the same rule as qf.token_price_usd).
CROSS JOIN LATERAL (
    SELECT coalesce(
        CASE WHEN f.feed IS NOT NULL THEN
            (SELECT x.answer FROM qf.answer_updated x
             WHERE x.chain_id = a.chain_id AND x.contract = f.feed
               AND (x.block_number, x.log_index) <= (a.block_number, a.log_index)
             ORDER BY x.block_number DESC, x.log_index DESC LIMIT 1) / f.unit
        END,
        CASE WHEN ip.token IS NOT NULL THEN
            (SELECT i.price_usd FROM qf.imported_prices i
             WHERE i.chain_id = a.chain_id AND i.token = a.token AND i.at <= a.block_time
             ORDER BY i.at DESC LIMIT 1)
        END) AS usd
) price;
COMMENT ON VIEW qf.donations IS
    'One row per donation: an Allocated log of a donation strategy (qf.donation_strategies; a DirectGrants '
    'payout is in qf.grants), with its pool, donor, token, amount in token units and USD, and context.';

CREATE VIEW qf.grants AS
SELECT a.chain_id,
       s.pool_id,
       ('0x' || encode(a.recipient_id, 'hex')) COLLATE "C" AS recipient_id,
       ('0x' || encode(a.sender, 'hex')) COLLATE "C"       AS sender,
       ('0x' || encode(a.token, 'hex')) COLLATE "C"        AS token,
       t.symbol                                           AS token_symbol,
       a.amount                                           AS amount_raw,
       a.amount / t.unit                                  AS amount,
       a.block_number,
       a.block_time,
       ('0x' || encode(a.tx_hash, 'hex')) COLLATE "C"      AS tx_hash,
       a.log_index,
       k.kind,
       k.name                                             AS strategy_name,
       k.version                                          AS strategy_version,
       pr.name                                            AS project_name
FROM qf.allocated a
JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
JOIN qf.strategy_kinds k ON k.strategy_id = s.strategy_id AND k.kind IN ('direct_grant', 'rfp')
LEFT JOIN qf.tokens t ON t.chain_id = a.chain_id AND t.address = a.token
LEFT JOIN qf.profile_anchors pa ON pa.chain_id = a.chain_id AND pa.anchor = a.recipient_id
LEFT JOIN qf.profiles pr ON pr.chain_id = pa.chain_id AND pr.registry = pa.registry AND pr.profile_id = pa.profile_id;
COMMENT ON VIEW qf.grants IS
    'One row per grant: an Allocated log of a DirectGrants or RFP strategy, a manager''s decision, not a donation.';
COMMENT ON COLUMN qf.grants.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.grants.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.grants.recipient_id IS 'Recipient granted, 0x-hex.';
COMMENT ON COLUMN qf.grants.sender IS 'Who allocated: the pool manager (the zero address for an RFPCommittee vote''s award).';
COMMENT ON COLUMN qf.grants.token IS 'Token, 0x-hex (0xeeee...eeee is the native coin).';
COMMENT ON COLUMN qf.grants.token_symbol IS 'Token symbol as the token contract reports it; NULL if unknown.';
COMMENT ON COLUMN qf.grants.amount_raw IS 'Amount in the token''s base units.';
COMMENT ON COLUMN qf.grants.amount IS 'Amount in token units; NULL if the decimals are unknown.';
COMMENT ON COLUMN qf.grants.block_number IS 'Block of the Allocated log.';
COMMENT ON COLUMN qf.grants.block_time IS 'Timestamp of that block.';
COMMENT ON COLUMN qf.grants.tx_hash IS 'Transaction, 0x-hex.';
COMMENT ON COLUMN qf.grants.log_index IS 'Position of the log in its block.';
COMMENT ON COLUMN qf.grants.kind IS
    'direct_grant: DirectGrantsLite''s Allocated is the transfer itself, DirectGrantsSimple''s the amount awarded '
    '(paid by milestones, qf.distributed); rfp: the accepted proposal''s bid (paid by milestones).';
COMMENT ON COLUMN qf.grants.strategy_name IS 'Strategy name (qf.strategy_kinds).';
COMMENT ON COLUMN qf.grants.strategy_version IS 'Strategy version (qf.strategy_kinds).';
COMMENT ON COLUMN qf.grants.project_name IS 'Name of the Registry profile whose anchor is the recipient id; NULL if none.';

-- The analytics count donation strategies' Allocated only: qf.refresh_analytics of sql/007, with
-- qf.donation_strategies where it reads donations (per-project pairs, per-pool totals, donor features).
-- Pairs and dirty keys still come from every Allocated, so rows of a strategy that stops counting go.
CREATE OR REPLACE FUNCTION qf.refresh_analytics(OUT donors bigint, OUT projects bigint, OUT pools bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    -- One refresh at a time; writers adding dirty keys meanwhile are not blocked (their rows
    -- are not visible to the DELETEs below and wait for the next call).
    PERFORM pg_advisory_xact_lock(hashtext('qf.refresh_analytics'));
    DROP TABLE IF EXISTS pg_temp.refresh_donors, pg_temp.refresh_pools, pg_temp.refresh_pairs,
        pg_temp.refresh_pool_delta, pg_temp.refresh_project_delta;

    CREATE TEMP TABLE refresh_donors (chain_id bigint, donor bytea, PRIMARY KEY (chain_id, donor)) ON COMMIT DROP;
    WITH d AS (DELETE FROM qf.dirty_donors RETURNING chain_id, donor)
    INSERT INTO refresh_donors SELECT DISTINCT chain_id, donor FROM d;

    -- Pools by id; a strategy that no longer exists went with its PoolCreated, whose delete
    -- marked the pool id itself.
    CREATE TEMP TABLE refresh_pools (
        chain_id bigint, pool_id numeric(78,0), strategy bytea, full_recompute boolean,
        PRIMARY KEY (chain_id, pool_id)
    ) ON COMMIT DROP;
    WITH d AS (DELETE FROM qf.dirty_pools RETURNING chain_id, contract, pool_id, full_recompute),
    resolved AS (
        SELECT d.chain_id, coalesce(d.pool_id, s.pool_id) AS pool_id, d.full_recompute
        FROM d LEFT JOIN qf.strategies s ON s.chain_id = d.chain_id AND s.address = d.contract
    )
    INSERT INTO refresh_pools
    SELECT r.chain_id, r.pool_id, min(s.address), bool_or(r.full_recompute)
    FROM resolved r LEFT JOIN qf.strategies s ON s.chain_id = r.chain_id AND s.pool_id = r.pool_id
    WHERE r.pool_id IS NOT NULL
    GROUP BY r.chain_id, r.pool_id;

    -- (project, donor) pairs whose qf.donor_project rows are out of date; a full pool recomputes all of its pairs.
    CREATE TEMP TABLE refresh_pairs (
        chain_id bigint, pool_id numeric(78,0), contract bytea, recipient_id bytea, sender bytea,
        PRIMARY KEY (chain_id, contract, recipient_id, sender)
    ) ON COMMIT DROP;
    WITH d AS (DELETE FROM qf.dirty_projects RETURNING chain_id, contract, recipient_id, sender)
    INSERT INTO refresh_pairs
    SELECT DISTINCT d.chain_id, s.pool_id, d.contract, d.recipient_id, d.sender
    FROM d JOIN qf.strategies s ON s.chain_id = d.chain_id AND s.address = d.contract;
    IF EXISTS (SELECT 1 FROM refresh_pools WHERE full_recompute) THEN
        INSERT INTO refresh_pairs
        SELECT DISTINCT a.chain_id, p.pool_id, a.contract, a.recipient_id, a.sender
        FROM refresh_pools p JOIN qf.allocated a ON a.chain_id = p.chain_id AND a.contract = p.strategy
        WHERE p.full_recompute
        ON CONFLICT DO NOTHING;
        -- Pairs of a pool that is gone or lost donations: their old rows must go.
        INSERT INTO refresh_pairs
        SELECT x.chain_id, x.pool_id, x.contract, x.recipient_id, x.sender
        FROM refresh_pools p JOIN qf.donor_project x ON x.chain_id = p.chain_id AND x.pool_id = p.pool_id
        WHERE p.full_recompute
        ON CONFLICT DO NOTHING;
    END IF;

    ANALYZE refresh_donors, refresh_pools, refresh_pairs;
    SELECT count(*) INTO donors FROM refresh_donors;
    SELECT count(*) INTO projects FROM (SELECT DISTINCT chain_id, contract, recipient_id FROM refresh_pairs) x;
    SELECT count(*) INTO pools FROM refresh_pools;

    -- Per (project, donor) rows: take the old ones out and the new ones in, as deltas ---------
    CREATE TEMP TABLE refresh_project_delta (
        chain_id bigint, pool_id numeric(78,0), recipient_id bytea, token bytea, donors bigint, donations bigint,
        amount_raw numeric, sqrt_raw numeric, eligible_donors bigint, eligible_donations bigint,
        eligible_amount numeric, eligible_sqrt numeric, eligible_square numeric
    ) ON COMMIT DROP;
    WITH old AS (
        DELETE FROM qf.donor_project x USING refresh_pairs k
        WHERE x.chain_id = k.chain_id AND x.contract = k.contract AND x.recipient_id = k.recipient_id
          AND x.sender = k.sender
        RETURNING x.*
    )
    INSERT INTO refresh_project_delta
    SELECT chain_id, pool_id, recipient_id, token, -count(*), -sum(donations), -sum(amount_raw), -sum(sqrt_raw),
           -count(*) FILTER (WHERE eligible_donations > 0), -sum(eligible_donations),
           -coalesce(sum(eligible_amount), 0), -coalesce(sum(eligible_sqrt), 0),
           -coalesce(sum(eligible_sqrt * eligible_sqrt), 0)
    FROM old GROUP BY chain_id, pool_id, recipient_id, token;
    WITH new AS (
        INSERT INTO qf.donor_project
        SELECT g.*, sqrt(g.eligible_amount)
        FROM (
            SELECT k.chain_id, k.pool_id, k.contract, k.recipient_id, k.sender, a.token,
                   count(*) AS donations, sum(a.amount) AS amount_raw, sqrt(sum(a.amount)) AS sqrt_raw,
                   count(*) FILTER (WHERE e.eligible) AS eligible_donations,
                   coalesce(sum(a.amount) FILTER (WHERE e.eligible), 0) / (10::numeric ^ max(p.token_decimals))
                       AS eligible_amount
            FROM refresh_pairs k
            JOIN qf.allocated a ON a.chain_id = k.chain_id AND a.sender = k.sender AND a.contract = k.contract
                               AND a.recipient_id = k.recipient_id
            JOIN qf.donation_strategies ds ON ds.chain_id = k.chain_id AND ds.address = k.contract
            LEFT JOIN qf.pools p ON p.chain_id = k.chain_id AND p.pool_id = k.pool_id
            CROSS JOIN LATERAL (
                SELECT coalesce(a.token = p.token AND p.token_decimals IS NOT NULL
                                AND a.block_time BETWEEN p.allocation_start AND p.allocation_end, false) AS eligible
            ) e
            GROUP BY k.chain_id, k.pool_id, k.contract, k.recipient_id, k.sender, a.token
        ) g
        RETURNING *
    )
    INSERT INTO refresh_project_delta
    SELECT chain_id, pool_id, recipient_id, token, count(*), sum(donations), sum(amount_raw), sum(sqrt_raw),
           count(*) FILTER (WHERE eligible_donations > 0), sum(eligible_donations),
           coalesce(sum(eligible_amount), 0), coalesce(sum(eligible_sqrt), 0),
           coalesce(sum(eligible_sqrt * eligible_sqrt), 0)
    FROM new GROUP BY chain_id, pool_id, recipient_id, token;

    -- Project totals (every token) and eligible QF inputs (pool token, in window) ------------
    INSERT INTO qf.project_totals AS t (chain_id, pool_id, recipient_id, token, unique_donors, donations,
                                        amount_raw, sum_sqrt_amount_raw)
    SELECT chain_id, pool_id, recipient_id, token, sum(donors), sum(donations), sum(amount_raw), sum(sqrt_raw)
    FROM refresh_project_delta GROUP BY chain_id, pool_id, recipient_id, token
    ON CONFLICT (chain_id, pool_id, recipient_id, token) DO UPDATE
    SET unique_donors = t.unique_donors + EXCLUDED.unique_donors, donations = t.donations + EXCLUDED.donations,
        amount_raw = t.amount_raw + EXCLUDED.amount_raw,
        sum_sqrt_amount_raw = t.sum_sqrt_amount_raw + EXCLUDED.sum_sqrt_amount_raw;
    DELETE FROM qf.project_totals t USING refresh_project_delta d
    WHERE t.chain_id = d.chain_id AND t.pool_id = d.pool_id AND t.recipient_id = d.recipient_id
      AND t.token = d.token AND t.unique_donors = 0;
    UPDATE qf.project_totals t
    SET amount = t.amount_raw / (10::numeric ^ k.decimals),
        sum_sqrt_amount = t.sum_sqrt_amount_raw / sqrt(10::numeric ^ k.decimals)
    FROM (SELECT DISTINCT d.chain_id, d.pool_id, d.recipient_id, d.token, tk.decimals
          FROM refresh_project_delta d
          LEFT JOIN qf.tokens tk ON tk.chain_id = d.chain_id AND tk.address = d.token) k
    WHERE t.chain_id = k.chain_id AND t.pool_id = k.pool_id AND t.recipient_id = k.recipient_id AND t.token = k.token;

    INSERT INTO qf.project_eligible AS e
    SELECT chain_id, pool_id, recipient_id, sum(eligible_donors), sum(eligible_donations), sum(eligible_amount),
           sum(eligible_sqrt), sum(eligible_square)
    FROM refresh_project_delta GROUP BY chain_id, pool_id, recipient_id
    ON CONFLICT (chain_id, pool_id, recipient_id) DO UPDATE
    SET contributors = e.contributors + EXCLUDED.contributors, donations = e.donations + EXCLUDED.donations,
        amount = e.amount + EXCLUDED.amount, sum_sqrt_amount = e.sum_sqrt_amount + EXCLUDED.sum_sqrt_amount,
        sum_root_square = e.sum_root_square + EXCLUDED.sum_root_square;
    DELETE FROM qf.project_eligible WHERE contributors = 0;

    -- Matching per dirty pool, from the per-project inputs -----------------------------------
    DELETE FROM qf.round_matching m USING refresh_pools p WHERE m.chain_id = p.chain_id AND m.pool_id = p.pool_id;
    INSERT INTO qf.round_matching
    WITH accepted AS (
        SELECT r.chain_id, r.pool_id, r.recipient_id, p.token, p.funded, c.cap_pct,
               coalesce(j.contributors, 0)                          AS contributors,
               coalesce(j.donations, 0)                             AS donations,
               coalesce(j.amount, 0)                                AS amount,
               coalesce(j.sum_sqrt_amount, 0)                       AS sum_sqrt_amount,
               -- (sum sqrt c)^2 - sum c, with sum c taken as sum (sqrt c)^2 so that it is exactly 0
               -- for one donor and never negative.
               coalesce(j.sum_sqrt_amount * j.sum_sqrt_amount - j.sum_root_square, 0) AS match_standard
        FROM refresh_pools k
        JOIN qf.recipient_status r ON r.chain_id = k.chain_id AND r.pool_id = k.pool_id
        JOIN qf.pools p ON p.chain_id = r.chain_id AND p.pool_id = r.pool_id
        LEFT JOIN qf.project_eligible j
               ON j.chain_id = r.chain_id AND j.pool_id = r.pool_id AND j.recipient_id = r.recipient_id
        LEFT JOIN qf.matching_caps c ON c.chain_id = r.chain_id AND c.pool_id = r.pool_id
        WHERE r.status = 2
    ),
    scaled AS (
        SELECT x.*,
               CASE WHEN x.total > 0 THEN x.match_standard / x.total ELSE 0 END AS match_share,
               CASE WHEN x.total > 0 THEN coalesce(x.funded, 0) * x.match_standard / x.total ELSE 0 END AS match
        FROM (SELECT a.*, sum(a.match_standard) OVER (PARTITION BY a.chain_id, a.pool_id) AS total
              FROM accepted a) x
    ),
    capped AS (
        SELECT g.chain_id, g.pool_id, u.recipient_id, u.match_capped
        FROM (
            SELECT chain_id, pool_id,
                   array_agg(recipient_id ORDER BY recipient_id) AS ids,
                   qf.capped_matches(array_agg(match ORDER BY recipient_id),
                                     max(cap_pct) / 100 * coalesce(max(funded), 0)) AS matches
            FROM scaled
            GROUP BY chain_id, pool_id
        ) g
        CROSS JOIN LATERAL unnest(g.ids, g.matches) AS u(recipient_id, match_capped)
    )
    SELECT s.chain_id, s.pool_id, s.recipient_id, s.token,
           s.contributors, s.donations, s.amount, s.sum_sqrt_amount, s.match_standard,
           s.match_share, s.match, s.cap_pct, c.match_capped
    FROM scaled s
    JOIN capped c USING (chain_id, pool_id, recipient_id);

    -- Per-pool donation totals: take out the dirty donors' old rows, add their new ones ----------
    CREATE TEMP TABLE refresh_pool_delta (
        chain_id bigint, pool_id numeric(78,0), donors bigint, donations bigint, amount numeric, fresh bigint
    ) ON COMMIT DROP;
    WITH old AS (
        DELETE FROM qf.donor_pool o USING refresh_donors k WHERE o.chain_id = k.chain_id AND o.donor = k.donor
        RETURNING o.*
    )
    INSERT INTO refresh_pool_delta
    SELECT chain_id, pool_id, -count(*), -sum(donations), -coalesce(sum(amount), 0), -sum(fresh_donations)
    FROM old GROUP BY chain_id, pool_id;
    WITH new AS (
        INSERT INTO qf.donor_pool
        SELECT a.chain_id, s.pool_id, a.sender, count(*), sum(a.amount / (10::numeric ^ t.decimals)),
               count(*) FILTER (WHERE a.tx_nonce < 3)
        FROM refresh_donors k
        JOIN qf.allocated a ON a.chain_id = k.chain_id AND a.sender = k.donor
        JOIN qf.donation_strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
        LEFT JOIN qf.tokens t ON t.chain_id = a.chain_id AND t.address = a.token
        GROUP BY a.chain_id, s.pool_id, a.sender
        RETURNING *
    )
    INSERT INTO refresh_pool_delta
    SELECT chain_id, pool_id, count(*), sum(donations), coalesce(sum(amount), 0), sum(fresh_donations)
    FROM new GROUP BY chain_id, pool_id;
    INSERT INTO qf.pool_donation_totals AS p
    SELECT chain_id, pool_id, sum(donors), sum(donations), sum(amount), sum(fresh)
    FROM refresh_pool_delta GROUP BY chain_id, pool_id
    ON CONFLICT (chain_id, pool_id) DO UPDATE
    SET donors = p.donors + EXCLUDED.donors, donations = p.donations + EXCLUDED.donations,
        amount = p.amount + EXCLUDED.amount, fresh_donations = p.fresh_donations + EXCLUDED.fresh_donations;
    DELETE FROM qf.pool_donation_totals WHERE donors = 0;

    -- Round stats per dirty pool ---------------------------------------------------------------
    DELETE FROM qf.round_stats r USING refresh_pools p WHERE r.chain_id = p.chain_id AND r.pool_id = p.pool_id;
    INSERT INTO qf.round_stats
    WITH don AS (
        SELECT t.chain_id, t.pool_id, t.donors, t.donations, t.amount,
               CASE WHEN t.donations > 0 THEN t.amount / t.donations END AS mean_donation,
               CASE WHEN t.donations > 0 THEN t.fresh_donations::numeric / t.donations END
                   AS fresh_wallet_donation_share
        FROM refresh_pools k
        JOIN qf.pool_donation_totals t ON t.chain_id = k.chain_id AND t.pool_id = k.pool_id
    ),
    ranked AS (
        SELECT m.chain_id, m.pool_id, m.match_standard,
               row_number() OVER (PARTITION BY m.chain_id, m.pool_id ORDER BY m.match_standard) AS up,
               row_number() OVER (PARTITION BY m.chain_id, m.pool_id ORDER BY m.match_standard DESC) AS down
        FROM refresh_pools k
        JOIN qf.round_matching m ON m.chain_id = k.chain_id AND m.pool_id = k.pool_id
    ),
    mat AS (
        SELECT chain_id, pool_id,
               count(*) AS accepted_projects,
               CASE WHEN sum(match_standard) > 0
                    THEN 2 * sum(up * match_standard) / (count(*) * sum(match_standard))
                         - (count(*) + 1)::numeric / count(*)
               END AS match_gini,
               CASE WHEN sum(match_standard) > 0
                    THEN sum(match_standard) FILTER (WHERE down <= 10) / sum(match_standard)
               END AS top10_match_share
        FROM ranked
        GROUP BY chain_id, pool_id
    )
    SELECT p.chain_id, p.pool_id, p.token,
           coalesce(d.donors, 0), coalesce(d.donations, 0), coalesce(d.amount, 0),
           d.mean_donation, d.fresh_wallet_donation_share, p.funded,
           coalesce(m.accepted_projects, 0), m.match_gini, m.top10_match_share
    FROM refresh_pools k
    JOIN qf.pools p ON p.chain_id = k.chain_id AND p.pool_id = k.pool_id
    LEFT JOIN don d ON d.chain_id = p.chain_id AND d.pool_id = p.pool_id
    LEFT JOIN mat m ON m.chain_id = p.chain_id AND m.pool_id = p.pool_id;

    -- Donor features per dirty donor (all of the donor's donations) ----------------------------
    DELETE FROM qf.donor_features f USING refresh_donors k WHERE f.chain_id = k.chain_id AND f.donor = k.donor;
    INSERT INTO qf.donor_features
    WITH d AS (
        SELECT a.chain_id, a.sender AS donor, s.pool_id, a.contract, a.recipient_id, a.token,
               a.block_number, a.log_index, a.block_time, a.tx_nonce, a.gas_price,
               a.amount / (10::numeric ^ t.decimals) AS amount,
               extract(epoch FROM a.block_time - lag(a.block_time) OVER w) AS gap_seconds,
               row_number() OVER w AS nth,
               EXISTS (SELECT 1 FROM qf.allocated o
                       WHERE o.chain_id = a.chain_id AND o.contract = a.contract
                         AND o.recipient_id = a.recipient_id AND o.block_number = a.block_number
                         AND o.sender <> a.sender) AS codonation
        FROM refresh_donors k
        JOIN qf.allocated a ON a.chain_id = k.chain_id AND a.sender = k.donor
        JOIN qf.donation_strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
        LEFT JOIN qf.tokens t ON t.chain_id = a.chain_id AND t.address = a.token
        WINDOW w AS (PARTITION BY a.chain_id, a.sender ORDER BY a.block_number, a.log_index)
    ),
    per_project AS (
        SELECT chain_id, donor, max(amount) AS top_amount, count(*) AS projects
        FROM (SELECT chain_id, donor, contract, recipient_id, sum(amount) AS amount
              FROM d GROUP BY 1, 2, 3, 4) x
        GROUP BY 1, 2
    )
    SELECT d.chain_id, d.donor,
           count(*),
           sum(d.amount),
           avg(d.amount),
           coalesce(stddev_pop(d.amount), 0),
           max(p.projects),
           count(DISTINCT d.pool_id),
           count(DISTINCT d.token),
           min(d.block_time),
           max(d.block_time),
           extract(epoch FROM max(d.block_time) - min(d.block_time)),
           min(d.tx_nonce) FILTER (WHERE d.nth = 1),
           min(d.tx_nonce) FILTER (WHERE d.nth = 1) < 3,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY d.gap_seconds),
           avg((d.amount % 0.5 = 0)::int),
           count(*) FILTER (WHERE d.codonation),
           CASE WHEN sum(d.amount) > 0 THEN max(p.top_amount) / sum(d.amount) END,
           count(DISTINCT d.gas_price)
    FROM d
    JOIN per_project p ON p.chain_id = d.chain_id AND p.donor = d.donor
    GROUP BY d.chain_id, d.donor;
END
$$;

-- A strategy whose id is read (or stored) after its donations: its pool and donors are recomputed.
CREATE FUNCTION qf.mark_strategy_kind_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO qf.dirty_pools (chain_id, pool_id, full_recompute)
    SELECT DISTINCT chain_id, pool_id, true FROM changed;
    INSERT INTO qf.dirty_donors
    SELECT DISTINCT a.chain_id, a.sender
    FROM changed c JOIN qf.allocated a ON a.chain_id = c.chain_id AND a.contract = c.address;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION qf.mark_strategy_kind_dirty() IS
    'Trigger: a strategy stored or given its id marks its pool (in full) and the senders of its Allocated logs dirty.';
CREATE TRIGGER strategies_insert_kind_dirty AFTER INSERT ON qf.strategies
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION qf.mark_strategy_kind_dirty();
CREATE TRIGGER strategies_update_kind_dirty AFTER UPDATE ON qf.strategies
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION qf.mark_strategy_kind_dirty();

SELECT qf.rebuild_analytics();
