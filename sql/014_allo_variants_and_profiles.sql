-- Every Allo v2 event variant real strategies emit, the Registry's profiles, and names for recipients.
--
-- Real strategies overload event names; the indexer matches logs by full signature
-- (indexer/decode.py lists them, with their sources) and variants that carry other fields get
-- their own table here. The Registry's events (ProfileCreated and its updates, AccessControl's
-- RoleGranted / RoleRevoked for members) fill their tables, and qf.profiles / qf.profile_anchors
-- hold each profile's current state, kept by triggers, so that qf.donations can name the project
-- behind a recipient id (a profile's anchor) with two key lookups.

-- New event tables: the seven leading columns of sql/002, then the event's own fields. ---------

CREATE TABLE qf.updated_registration_no_status (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    recipient_id qf.address NOT NULL,
    data         bytea      NOT NULL,
    sender       qf.address NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.updated_registration_no_status IS
    'Strategy UpdatedRegistration(address,bytes,address) (MicroGrants): a recipient changed its application; no status.';
COMMENT ON COLUMN qf.updated_registration_no_status.recipient_id IS 'Recipient id (indexed).';
COMMENT ON COLUMN qf.updated_registration_no_status.data IS 'The application data as emitted.';
COMMENT ON COLUMN qf.updated_registration_no_status.sender IS 'Who sent the update.';

CREATE TABLE qf.window_updated (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    window_start bigint     NOT NULL,
    window_end   bigint     NOT NULL,
    sender       qf.address NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.window_updated IS
    'Strategy TimestampsUpdated(uint64,uint64,address): one window was set, the registration window for '
    'DirectGrants strategies, the allocation window for MicroGrants.';
COMMENT ON COLUMN qf.window_updated.window_start IS 'Window opens (unix seconds).';
COMMENT ON COLUMN qf.window_updated.window_end IS 'Window closes (unix seconds).';
COMMENT ON COLUMN qf.window_updated.sender IS 'Who set the window.';

CREATE TABLE qf.allocation_votes (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    recipient_id qf.address NOT NULL,
    status       smallint   NOT NULL,
    sender       qf.address NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.allocation_votes IS
    'Strategy Allocated(address,uint8,address) (MicroGrants): an allocator''s vote on a recipient, not a donation.';
COMMENT ON COLUMN qf.allocation_votes.recipient_id IS 'Recipient voted on (indexed).';
COMMENT ON COLUMN qf.allocation_votes.status IS 'The status voted for (2 accepted, 3 rejected).';
COMMENT ON COLUMN qf.allocation_votes.sender IS 'The allocator.';

CREATE TABLE qf.direct_allocated (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    profile_id    qf.hash32  NOT NULL,
    profile_owner qf.address NOT NULL,
    amount        qf.uint256 NOT NULL,
    token         qf.address NOT NULL,
    sender        qf.address NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.direct_allocated IS
    'Strategy DirectAllocated (DirectAllocationStrategy): a transfer straight to a profile''s owner.';
COMMENT ON COLUMN qf.direct_allocated.profile_id IS 'Registry profile paid (indexed).';
COMMENT ON COLUMN qf.direct_allocated.profile_owner IS 'Address that received the funds.';
COMMENT ON COLUMN qf.direct_allocated.amount IS 'Amount in the token''s base units.';
COMMENT ON COLUMN qf.direct_allocated.token IS 'Token transferred; 0xeeee...eeee is the native coin.';
COMMENT ON COLUMN qf.direct_allocated.sender IS 'Who paid.';

CREATE TABLE qf.distribution_updated (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    merkle_root       qf.hash32,
    metadata_protocol qf.uint256 NOT NULL,
    metadata_pointer  text       NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.distribution_updated IS
    'Strategy DistributionUpdated: the payout plan was set (its Merkle root for donation-voting strategies, '
    'only metadata for EasyRetroFunding).';
COMMENT ON COLUMN qf.distribution_updated.merkle_root IS 'Root of the payout Merkle tree; NULL for the metadata-only form.';
COMMENT ON COLUMN qf.distribution_updated.metadata_protocol IS 'Metadata protocol id (1 = IPFS).';
COMMENT ON COLUMN qf.distribution_updated.metadata_pointer IS 'Metadata pointer (the distribution''s IPFS CID).';

CREATE TABLE qf.batch_payout_successful (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    sender qf.address NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.batch_payout_successful IS 'Strategy BatchPayoutSuccessful: a distribute() call paid its batch.';
COMMENT ON COLUMN qf.batch_payout_successful.sender IS 'The pool manager who distributed (indexed).';

CREATE TABLE qf.claimed (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    recipient_id      qf.address NOT NULL,
    recipient_address qf.address NOT NULL,
    amount            qf.uint256 NOT NULL,
    token             qf.address NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.claimed IS 'Strategy Claimed (donation-voting vault): a recipient claimed donations held for it.';
COMMENT ON COLUMN qf.claimed.recipient_id IS 'Recipient id (indexed).';
COMMENT ON COLUMN qf.claimed.recipient_address IS 'Address paid.';
COMMENT ON COLUMN qf.claimed.amount IS 'Amount in the token''s base units.';
COMMENT ON COLUMN qf.claimed.token IS 'Token claimed.';

CREATE TABLE qf.initialized (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    pool_id qf.uint256,
    data    bytea,
    version smallint,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.initialized IS
    'Initialized: a strategy joined its pool (Initialized(uint256,bytes): pool id and init data), or an '
    'upgradeable contract was initialised (Initialized(uint8): version).';
COMMENT ON COLUMN qf.initialized.pool_id IS 'Pool the strategy was initialised for; NULL for the version form.';
COMMENT ON COLUMN qf.initialized.data IS 'The strategy''s initialisation data as passed by the core; NULL for the version form.';
COMMENT ON COLUMN qf.initialized.version IS 'Initializable version; NULL for the strategy form.';

CREATE TABLE qf.pool_active (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    active boolean NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.pool_active IS 'Strategy PoolActive: the strategy opened or closed its pool.';
COMMENT ON COLUMN qf.pool_active.active IS 'Whether the pool is now active.';

-- The Registry ---------------------------------------------------------------------------------

CREATE TABLE qf.profile_created (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    profile_id        qf.hash32  NOT NULL,
    nonce             qf.uint256 NOT NULL,
    name              text       NOT NULL,
    metadata_protocol qf.uint256 NOT NULL,
    metadata_pointer  text       NOT NULL,
    owner             qf.address NOT NULL,
    anchor            qf.address NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.profile_created IS 'Registry ProfileCreated: a project or round operator''s profile, with its anchor.';
COMMENT ON COLUMN qf.profile_created.profile_id IS 'Profile id, keccak256(nonce, owner) (indexed).';
COMMENT ON COLUMN qf.profile_created.nonce IS 'Nonce the owner chose for the id.';
COMMENT ON COLUMN qf.profile_created.name IS 'Profile name; invalid UTF-8 and NUL are replaced by U+FFFD.';
COMMENT ON COLUMN qf.profile_created.metadata_protocol IS 'Metadata protocol id (1 = IPFS).';
COMMENT ON COLUMN qf.profile_created.metadata_pointer IS 'Metadata pointer (an IPFS CID).';
COMMENT ON COLUMN qf.profile_created.owner IS 'Owner of the profile.';
COMMENT ON COLUMN qf.profile_created.anchor IS 'The profile''s anchor: the address it registers to rounds and is paid under.';

CREATE TABLE qf.profile_name_updated (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    profile_id qf.hash32  NOT NULL,
    name       text       NOT NULL,
    anchor     qf.address NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.profile_name_updated IS 'Registry ProfileNameUpdated: a new name, and with it a new anchor.';
COMMENT ON COLUMN qf.profile_name_updated.profile_id IS 'Profile id (indexed).';
COMMENT ON COLUMN qf.profile_name_updated.name IS 'The new name.';
COMMENT ON COLUMN qf.profile_name_updated.anchor IS 'The new anchor (the old one still resolves to the profile).';

CREATE TABLE qf.profile_metadata_updated (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    profile_id        qf.hash32  NOT NULL,
    metadata_protocol qf.uint256 NOT NULL,
    metadata_pointer  text       NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.profile_metadata_updated IS 'Registry ProfileMetadataUpdated: new metadata for a profile.';
COMMENT ON COLUMN qf.profile_metadata_updated.profile_id IS 'Profile id (indexed).';
COMMENT ON COLUMN qf.profile_metadata_updated.metadata_protocol IS 'Metadata protocol id (1 = IPFS).';
COMMENT ON COLUMN qf.profile_metadata_updated.metadata_pointer IS 'Metadata pointer (an IPFS CID).';

CREATE TABLE qf.profile_owner_updated (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    profile_id qf.hash32  NOT NULL,
    owner      qf.address NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.profile_owner_updated IS 'Registry ProfileOwnerUpdated: the pending owner accepted ownership.';
COMMENT ON COLUMN qf.profile_owner_updated.profile_id IS 'Profile id (indexed).';
COMMENT ON COLUMN qf.profile_owner_updated.owner IS 'The new owner.';

CREATE TABLE qf.profile_pending_owner_updated (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    profile_id    qf.hash32  NOT NULL,
    pending_owner qf.address NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.profile_pending_owner_updated IS 'Registry ProfilePendingOwnerUpdated: the owner offered the profile to another address.';
COMMENT ON COLUMN qf.profile_pending_owner_updated.profile_id IS 'Profile id (indexed).';
COMMENT ON COLUMN qf.profile_pending_owner_updated.pending_owner IS 'Who may accept ownership.';

CREATE TABLE qf.role_granted (
    chain_id bigint NOT NULL, block_number bigint NOT NULL, block_hash qf.hash32 NOT NULL,
    tx_hash qf.hash32 NOT NULL, tx_index integer NOT NULL, log_index integer NOT NULL, contract qf.address NOT NULL,
    role    qf.hash32  NOT NULL,
    account qf.address NOT NULL,
    sender  qf.address NOT NULL,
    PRIMARY KEY (chain_id, tx_hash, log_index)
);
COMMENT ON TABLE qf.role_granted IS
    'AccessControl RoleGranted: in the Registry the role is a profile id and the account a member; in the core, '
    'a pool''s manager or admin role.';
COMMENT ON COLUMN qf.role_granted.role IS 'Role (indexed): a profile id for Registry members.';
COMMENT ON COLUMN qf.role_granted.account IS 'Account given the role (indexed).';
COMMENT ON COLUMN qf.role_granted.sender IS 'Who granted it (indexed).';

CREATE TABLE qf.role_revoked (LIKE qf.role_granted INCLUDING ALL);
COMMENT ON TABLE qf.role_revoked IS 'AccessControl RoleRevoked: the account lost the role (a member removed).';
COMMENT ON COLUMN qf.role_revoked.role IS 'Role (indexed): a profile id for Registry members.';
COMMENT ON COLUMN qf.role_revoked.account IS 'Account that lost the role (indexed).';
COMMENT ON COLUMN qf.role_revoked.sender IS 'Who revoked it (indexed).';

-- The leading columns mean the same everywhere; a reorg deletes by block number.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'updated_registration_no_status', 'window_updated', 'allocation_votes', 'direct_allocated',
        'distribution_updated', 'batch_payout_successful', 'claimed', 'initialized', 'pool_active',
        'profile_created', 'profile_name_updated', 'profile_metadata_updated', 'profile_owner_updated',
        'profile_pending_owner_updated', 'role_granted', 'role_revoked'
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
            'Address of the contract that emitted the log (a strategy, the core or the Registry), 20 raw bytes.');
    END LOOP;
END
$$;

CREATE INDEX profile_created_profile_idx ON qf.profile_created (chain_id, contract, profile_id);
CREATE INDEX profile_name_updated_profile_idx ON qf.profile_name_updated (chain_id, contract, profile_id);
CREATE INDEX profile_metadata_updated_profile_idx ON qf.profile_metadata_updated (chain_id, contract, profile_id);
CREATE INDEX profile_owner_updated_profile_idx ON qf.profile_owner_updated (chain_id, contract, profile_id);
CREATE INDEX profile_pending_owner_updated_profile_idx ON qf.profile_pending_owner_updated (chain_id, contract, profile_id);
CREATE INDEX role_granted_role_idx ON qf.role_granted (chain_id, contract, role, account);
CREATE INDEX role_revoked_role_idx ON qf.role_revoked (chain_id, contract, role, account);

-- Profiles: current state, kept from the events by triggers ---------------------------------------

CREATE TABLE qf.profiles (
    chain_id          bigint     NOT NULL,
    registry          qf.address NOT NULL,
    profile_id        qf.hash32  NOT NULL,
    name              text,
    anchor            qf.address,
    nonce             qf.uint256,
    owner             qf.address,
    pending_owner     qf.address,
    metadata_protocol qf.uint256,
    metadata_pointer  text,
    created_block     bigint,
    updated_block     bigint     NOT NULL,
    PRIMARY KEY (chain_id, registry, profile_id)
);
COMMENT ON TABLE qf.profiles IS
    'Registry profiles as they stand after the last indexed block: one row per profile seen in any Registry '
    'event (fields NULL when no indexed event told them, e.g. a profile created before the start block). '
    'Kept by triggers on the profile_* tables, reorgs included; members are in qf.profile_members.';
COMMENT ON COLUMN qf.profiles.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.profiles.registry IS 'Registry contract holding the profile.';
COMMENT ON COLUMN qf.profiles.profile_id IS 'Profile id.';
COMMENT ON COLUMN qf.profiles.name IS 'Current name (latest ProfileCreated / ProfileNameUpdated).';
COMMENT ON COLUMN qf.profiles.anchor IS 'Current anchor; earlier anchors are in qf.profile_anchors.';
COMMENT ON COLUMN qf.profiles.nonce IS 'Nonce of the id (from ProfileCreated).';
COMMENT ON COLUMN qf.profiles.owner IS 'Current owner (latest ProfileCreated / ProfileOwnerUpdated).';
COMMENT ON COLUMN qf.profiles.pending_owner IS 'Address offered ownership and not yet accepted; NULL if none.';
COMMENT ON COLUMN qf.profiles.metadata_protocol IS 'Current metadata protocol id (1 = IPFS).';
COMMENT ON COLUMN qf.profiles.metadata_pointer IS 'Current metadata pointer (an IPFS CID).';
COMMENT ON COLUMN qf.profiles.created_block IS 'Block of ProfileCreated; NULL if not indexed.';
COMMENT ON COLUMN qf.profiles.updated_block IS 'Block of the latest event about the profile.';

CREATE TABLE qf.profile_anchors (
    chain_id   bigint     NOT NULL,
    anchor     qf.address NOT NULL,
    registry   qf.address NOT NULL,
    profile_id qf.hash32  NOT NULL,
    current    boolean    NOT NULL,
    PRIMARY KEY (chain_id, anchor)
);
COMMENT ON TABLE qf.profile_anchors IS
    'Every anchor a profile has had (a rename makes a new one; registrations under the old one stay valid): '
    'how a recipient id resolves to its project. Kept with qf.profiles.';
COMMENT ON COLUMN qf.profile_anchors.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.profile_anchors.anchor IS 'Anchor address (a recipient id in donation-voting rounds).';
COMMENT ON COLUMN qf.profile_anchors.registry IS 'Registry contract of the profile.';
COMMENT ON COLUMN qf.profile_anchors.profile_id IS 'Profile the anchor belongs to.';
COMMENT ON COLUMN qf.profile_anchors.current IS 'Whether it is the profile''s current anchor.';

-- Recompute the given profiles from their events (deleting those no event mentions any more).
CREATE FUNCTION qf.refresh_profiles(chain_ids bigint[], registries bytea[], profile_ids bytea[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass('pg_temp.refresh_profile_keys') IS NULL THEN
        CREATE TEMP TABLE refresh_profile_keys (chain_id bigint, registry bytea, profile_id bytea) ON COMMIT DROP;
    ELSE
        TRUNCATE refresh_profile_keys;
    END IF;
    INSERT INTO refresh_profile_keys SELECT DISTINCT * FROM unnest(chain_ids, registries, profile_ids);

    DELETE FROM qf.profile_anchors a USING refresh_profile_keys k
    WHERE a.chain_id = k.chain_id AND a.registry = k.registry AND a.profile_id = k.profile_id;
    DELETE FROM qf.profiles p USING refresh_profile_keys k
    WHERE p.chain_id = k.chain_id AND p.registry = k.registry AND p.profile_id = k.profile_id;

    INSERT INTO qf.profiles
    SELECT k.chain_id, k.registry, k.profile_id, n.name, n.anchor, c.nonce, o.owner,
           CASE WHEN po.block_number IS NOT NULL
                 AND (o.block_number IS NULL OR (po.block_number, po.log_index) > (o.block_number, o.log_index))
                THEN po.pending_owner END,
           m.metadata_protocol, m.metadata_pointer, c.block_number, last.block_number
    FROM refresh_profile_keys k
    LEFT JOIN LATERAL (
        SELECT x.nonce, x.block_number FROM qf.profile_created x
        WHERE x.chain_id = k.chain_id AND x.contract = k.registry AND x.profile_id = k.profile_id
        ORDER BY x.block_number, x.log_index LIMIT 1
    ) c ON true
    LEFT JOIN LATERAL (
        SELECT x.name, x.anchor FROM (
            SELECT name, anchor, block_number, log_index FROM qf.profile_created
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
            UNION ALL
            SELECT name, anchor, block_number, log_index FROM qf.profile_name_updated
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
        ) x ORDER BY x.block_number DESC, x.log_index DESC LIMIT 1
    ) n ON true
    LEFT JOIN LATERAL (
        SELECT x.metadata_protocol, x.metadata_pointer FROM (
            SELECT metadata_protocol, metadata_pointer, block_number, log_index FROM qf.profile_created
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
            UNION ALL
            SELECT metadata_protocol, metadata_pointer, block_number, log_index FROM qf.profile_metadata_updated
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
        ) x ORDER BY x.block_number DESC, x.log_index DESC LIMIT 1
    ) m ON true
    LEFT JOIN LATERAL (
        SELECT x.owner, x.block_number, x.log_index FROM (
            SELECT owner, block_number, log_index FROM qf.profile_created
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
            UNION ALL
            SELECT owner, block_number, log_index FROM qf.profile_owner_updated
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
        ) x ORDER BY x.block_number DESC, x.log_index DESC LIMIT 1
    ) o ON true
    LEFT JOIN LATERAL (
        SELECT x.pending_owner, x.block_number, x.log_index FROM qf.profile_pending_owner_updated x
        WHERE x.chain_id = k.chain_id AND x.contract = k.registry AND x.profile_id = k.profile_id
        ORDER BY x.block_number DESC, x.log_index DESC LIMIT 1
    ) po ON true
    CROSS JOIN LATERAL (
        SELECT max(b) AS block_number FROM (
            SELECT max(block_number) FROM qf.profile_created
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
            UNION ALL SELECT max(block_number) FROM qf.profile_name_updated
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
            UNION ALL SELECT max(block_number) FROM qf.profile_metadata_updated
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
            UNION ALL SELECT max(block_number) FROM qf.profile_owner_updated
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
            UNION ALL SELECT max(block_number) FROM qf.profile_pending_owner_updated
            WHERE chain_id = k.chain_id AND contract = k.registry AND profile_id = k.profile_id
        ) y(b)
    ) last
    WHERE last.block_number IS NOT NULL;

    INSERT INTO qf.profile_anchors
    SELECT DISTINCT ON (x.chain_id, x.anchor) x.chain_id, x.anchor, x.contract, x.profile_id, x.anchor = p.anchor
    FROM (
        SELECT chain_id, contract, profile_id, anchor, block_number, log_index FROM qf.profile_created
        UNION ALL
        SELECT chain_id, contract, profile_id, anchor, block_number, log_index FROM qf.profile_name_updated
    ) x
    JOIN refresh_profile_keys k ON k.chain_id = x.chain_id AND k.registry = x.contract AND k.profile_id = x.profile_id
    JOIN qf.profiles p ON p.chain_id = x.chain_id AND p.registry = x.contract AND p.profile_id = x.profile_id
    ORDER BY x.chain_id, x.anchor, x.block_number DESC, x.log_index DESC
    ON CONFLICT (chain_id, anchor) DO NOTHING;  -- an anchor of two registries' profiles: the first one kept
END
$$;
COMMENT ON FUNCTION qf.refresh_profiles(bigint[], bytea[], bytea[]) IS
    'Recompute qf.profiles and qf.profile_anchors for the given (chain, registry, profile) keys from the events. '
    'Called by the triggers on the profile_* tables; internal.';

CREATE FUNCTION qf.mark_profiles_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM qf.refresh_profiles(array_agg(chain_id), array_agg(contract::bytea), array_agg(profile_id::bytea))
    FROM (SELECT DISTINCT chain_id, contract, profile_id FROM changed) c;
    RETURN NULL;
END
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'profile_created', 'profile_name_updated', 'profile_metadata_updated', 'profile_owner_updated',
        'profile_pending_owner_updated'
    ] LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON qf.%I REFERENCING NEW TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION qf.mark_profiles_changed()', t || '_insert_profiles', t);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON qf.%I REFERENCING OLD TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION qf.mark_profiles_changed()', t || '_delete_profiles', t);
    END LOOP;
END
$$;

CREATE VIEW qf.profile_members AS
SELECT p.chain_id, p.registry, p.profile_id, p.name,
       ('0x' || encode(g.account, 'hex')) COLLATE "C" AS member,
       g.block_number AS since_block
FROM qf.profiles p
JOIN LATERAL (
    SELECT DISTINCT ON (e.account) e.account, e.block_number, e.granted
    FROM (
        SELECT account, block_number, log_index, true AS granted FROM qf.role_granted
        WHERE chain_id = p.chain_id AND contract = p.registry AND role = p.profile_id
        UNION ALL
        SELECT account, block_number, log_index, false FROM qf.role_revoked
        WHERE chain_id = p.chain_id AND contract = p.registry AND role = p.profile_id
    ) e ORDER BY e.account, e.block_number DESC, e.log_index DESC
) g ON g.granted;
COMMENT ON VIEW qf.profile_members IS
    'Current members of each profile: accounts whose latest RoleGranted / RoleRevoked for the profile''s id '
    'is a grant (the owner is in qf.profiles).';
COMMENT ON COLUMN qf.profile_members.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.profile_members.registry IS 'Registry contract.';
COMMENT ON COLUMN qf.profile_members.profile_id IS 'Profile id.';
COMMENT ON COLUMN qf.profile_members.name IS 'Current name of the profile.';
COMMENT ON COLUMN qf.profile_members.member IS 'Member, 0x-hex.';
COMMENT ON COLUMN qf.profile_members.since_block IS 'Block of the grant that made it a member.';

-- Donations name their project ------------------------------------------------------------------

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
       pr.name                                            AS project_name
FROM qf.allocated a
JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
LEFT JOIN qf.tokens t ON t.chain_id = a.chain_id AND t.address = a.token
-- Grouped by its key, so the planner drops this join when a query does not read in_window.
LEFT JOIN (
    SELECT chain_id, pool_id, min(allocation_start) AS allocation_start, min(allocation_end) AS allocation_end
    FROM qf.pools GROUP BY chain_id, pool_id
) p ON p.chain_id = a.chain_id AND p.pool_id = s.pool_id
LEFT JOIN qf.recipient_status_history h
       ON h.chain_id = a.chain_id AND h.contract = a.contract AND h.recipient_id = a.recipient_id
      AND (h.block_number, h.log_index) <= (a.block_number, a.log_index)
      AND (h.next_block_number IS NULL OR (a.block_number, a.log_index) < (h.next_block_number, h.next_log_index))
-- Both keyed lookups on unique keys: dropped by the planner when project_name is not read.
LEFT JOIN qf.profile_anchors pa ON pa.chain_id = a.chain_id AND pa.anchor = a.recipient_id
LEFT JOIN qf.profiles pr ON pr.chain_id = pa.chain_id AND pr.registry = pa.registry AND pr.profile_id = pa.profile_id;
COMMENT ON COLUMN qf.donations.project_name IS
    'Name of the Registry profile whose anchor is the recipient id (its current name); NULL if the recipient '
    'is not a known anchor (e.g. a wallet registered directly).';
