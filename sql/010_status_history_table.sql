-- Recipient status history as a table kept in the writer's transaction, so that qf.donations,
-- qf.recipient_status and the refresh join it by set, never by a lookup per row.
--
-- Why: qf.recipient_status_history was a view (a union with a join per RecipientStatusUpdated
-- row), and qf.donations ran a LATERAL lookup into it for every donation: on a full Gitcoin
-- Round 9 a pool-filtered count over qf.donations took 16 s, a SELECT DISTINCT donor over
-- 7 minutes. Now:
-- * qf.recipient_status_history is a table with the same columns plus the recipient's index
--   and the position (block, log index) of the recipient's next status event, so each row is
--   the interval in which that status held;
-- * statement-level triggers on the three status event tables (INSERT from the indexer's COPY,
--   DELETE from a reorg) recompute, in the same transaction, the history of just the recipients the
--   statement touched (for a RecipientStatusUpdated, those of its 64-recipient row), so the history
--   is exactly as current as the events; one recipient's history is a few rows, so recomputing it
--   whole is cheap and always right;
-- * qf.donations finds the status at each donation with an equality join on
--   (chain, strategy, recipient) and the interval test, which the planner runs as a hash join;
-- * qf.pools reads the latest window and the funded amount with grouped subqueries instead of
--   two LATERAL lookups per pool.
-- qf.rebuild_analytics() recomputes the history too (after a TRUNCATE or hand edits).

DROP VIEW qf.donations;
DROP VIEW qf.recipient_status;
DROP VIEW qf.recipient_status_history;
DROP VIEW qf.pools;

-- Status history --------------------------------------------------------------------------

CREATE TABLE qf.recipient_status_history (
    chain_id          bigint   NOT NULL,
    contract          bytea    NOT NULL,
    recipient_id      bytea    NOT NULL,
    block_number      bigint   NOT NULL,
    log_index         integer  NOT NULL,
    status            smallint NOT NULL,
    source            text     NOT NULL,
    recipient_index   bigint,
    next_block_number bigint,
    next_log_index    integer,
    PRIMARY KEY (chain_id, contract, recipient_id, block_number, log_index, source)
);
CREATE INDEX recipient_status_history_current_idx
    ON qf.recipient_status_history (chain_id, contract, recipient_id) WHERE next_block_number IS NULL;
COMMENT ON TABLE qf.recipient_status_history IS
    'Every status a recipient had, one row per event that set it: Registered (pending), '
    'UpdatedRegistration (its status column) and each RecipientStatusUpdated of the recipient''s '
    'row after its registration (the row''s nibble for it, whether or not this review changed it). '
    'Each row holds from its event up to (not including) next_block_number/next_log_index. Kept by '
    'triggers on the status event tables in the writer''s transaction (reorgs included).';
COMMENT ON COLUMN qf.recipient_status_history.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.recipient_status_history.contract IS 'Strategy contract of the pool, 20 raw bytes.';
COMMENT ON COLUMN qf.recipient_status_history.recipient_id IS 'Recipient id, 20 raw bytes.';
COMMENT ON COLUMN qf.recipient_status_history.block_number IS 'Block of the event that set the status.';
COMMENT ON COLUMN qf.recipient_status_history.log_index IS 'Log index of that event in its block.';
COMMENT ON COLUMN qf.recipient_status_history.status IS
    'Status from this event on: 1 pending, 2 accepted, 3 rejected, 4 appealed (0 none).';
COMMENT ON COLUMN qf.recipient_status_history.source IS
    'Event that set it: Registered, UpdatedRegistration or RecipientStatusUpdated.';
COMMENT ON COLUMN qf.recipient_status_history.recipient_index IS
    'Index of the recipient in the strategy, from its first Registered event; NULL if none was seen.';
COMMENT ON COLUMN qf.recipient_status_history.next_block_number IS
    'Block of the recipient''s next status event, where this status ends; NULL for the current status.';
COMMENT ON COLUMN qf.recipient_status_history.next_log_index IS 'Log index of that next event; NULL for the current status.';

-- Recomputes the history of the given recipients (parallel arrays: chain, strategy, recipient) from
-- the status event tables: their first Registered, their UpdatedRegistrations, and every
-- RecipientStatusUpdated of their row after that registration.
CREATE FUNCTION qf.recompute_status_history(chain_ids bigint[], contracts bytea[], recipients bytea[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS status_keys (chain_id bigint, contract bytea, recipient_id bytea) ON COMMIT DROP;
    TRUNCATE status_keys;
    INSERT INTO status_keys SELECT DISTINCT * FROM unnest(chain_ids, contracts, recipients);
    ANALYZE status_keys;
    DELETE FROM qf.recipient_status_history h USING status_keys k
    WHERE h.chain_id = k.chain_id AND h.contract = k.contract AND h.recipient_id = k.recipient_id;
    INSERT INTO qf.recipient_status_history
    WITH reg AS (
        SELECT DISTINCT ON (g.chain_id, g.contract, g.recipient_id)
               g.chain_id, g.contract, g.recipient_id, g.recipient_index, g.block_number, g.log_index
        FROM status_keys k
        JOIN qf.registered g ON g.chain_id = k.chain_id AND g.contract = k.contract AND g.recipient_id = k.recipient_id
        ORDER BY g.chain_id, g.contract, g.recipient_id, g.block_number, g.log_index
    ),
    events AS (
        SELECT chain_id, contract, recipient_id, block_number, log_index, 1::smallint AS status,
               'Registered'::text AS source
        FROM reg
        UNION ALL
        SELECT u.chain_id, u.contract, u.recipient_id, u.block_number, u.log_index, u.status, 'UpdatedRegistration'
        FROM status_keys k
        JOIN qf.updated_registration u
          ON u.chain_id = k.chain_id AND u.contract = k.contract AND u.recipient_id = k.recipient_id
        UNION ALL
        SELECT u.chain_id, u.contract, r.recipient_id, u.block_number, u.log_index,
               qf.status_nibble(u.full_row, r.recipient_index), 'RecipientStatusUpdated'
        FROM reg r
        JOIN qf.recipient_status_updated u ON u.chain_id = r.chain_id AND u.contract = r.contract
                                          AND u.row_index = r.recipient_index / 64
                                          AND (u.block_number, u.log_index) > (r.block_number, r.log_index)
    )
    SELECT e.chain_id, e.contract, e.recipient_id, e.block_number, e.log_index, e.status, e.source,
           r.recipient_index,
           lead(e.block_number) OVER w, lead(e.log_index) OVER w
    FROM events e
    LEFT JOIN reg r ON r.chain_id = e.chain_id AND r.contract = e.contract AND r.recipient_id = e.recipient_id
    WINDOW w AS (PARTITION BY e.chain_id, e.contract, e.recipient_id ORDER BY e.block_number, e.log_index, e.source);
END
$$;
COMMENT ON FUNCTION qf.recompute_status_history(bigint[], bytea[], bytea[]) IS
    'Recompute qf.recipient_status_history of the given recipients (parallel arrays of chain id, strategy '
    'contract and recipient id) from the status event tables. Called by the triggers on those tables.';

-- TG_ARGV[0]: "recipient" (the rows name their recipient) or "row" (RecipientStatusUpdated: every
-- recipient registered in the 64-recipient row).
CREATE FUNCTION qf.status_events_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    chain_ids bigint[];
    contracts bytea[];
    recipients bytea[];
BEGIN
    IF TG_ARGV[0] = 'row' THEN
        SELECT array_agg(g.chain_id), array_agg(g.contract), array_agg(g.recipient_id)
        INTO chain_ids, contracts, recipients
        FROM (SELECT DISTINCT chain_id, contract, row_index FROM changed) c
        JOIN qf.registered g ON g.chain_id = c.chain_id AND g.contract = c.contract
                            AND g.recipient_index / 64 = c.row_index;
    ELSE
        SELECT array_agg(chain_id), array_agg(contract), array_agg(recipient_id)
        INTO chain_ids, contracts, recipients
        FROM (SELECT DISTINCT chain_id, contract, recipient_id FROM changed) c;
    END IF;
    IF chain_ids IS NOT NULL THEN
        PERFORM qf.recompute_status_history(chain_ids, contracts, recipients);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER registered_insert_history AFTER INSERT ON qf.registered
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION qf.status_events_changed('recipient');
CREATE TRIGGER registered_delete_history AFTER DELETE ON qf.registered
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION qf.status_events_changed('recipient');
CREATE TRIGGER updated_registration_insert_history AFTER INSERT ON qf.updated_registration
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION qf.status_events_changed('recipient');
CREATE TRIGGER updated_registration_delete_history AFTER DELETE ON qf.updated_registration
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION qf.status_events_changed('recipient');
CREATE TRIGGER recipient_status_updated_insert_history AFTER INSERT ON qf.recipient_status_updated
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION qf.status_events_changed('row');
CREATE TRIGGER recipient_status_updated_delete_history AFTER DELETE ON qf.recipient_status_updated
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION qf.status_events_changed('row');

-- Current status --------------------------------------------------------------------------

CREATE VIEW qf.recipient_status AS
SELECT h.chain_id,
       s.pool_id,
       h.recipient_id,
       h.contract AS strategy,
       h.recipient_index,
       h.status,
       qf.status_name(h.status) AS status_name,
       h.block_number,
       h.log_index
FROM qf.recipient_status_history h
JOIN qf.strategies s ON s.chain_id = h.chain_id AND s.address = h.contract
WHERE h.next_block_number IS NULL;
COMMENT ON VIEW qf.recipient_status IS
    'Current status of each registered recipient of each pool: the latest row of '
    'qf.recipient_status_history (RecipientStatusUpdated full_row decoded at the recipient''s '
    'nibble, or a later (re-)registration).';
COMMENT ON COLUMN qf.recipient_status.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.recipient_status.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.recipient_status.recipient_id IS 'Recipient id, 20 raw bytes.';
COMMENT ON COLUMN qf.recipient_status.strategy IS 'Strategy contract of the pool, 20 raw bytes.';
COMMENT ON COLUMN qf.recipient_status.recipient_index IS
    'Index of the recipient in the strategy (nibble recipient_index mod 64 of row recipient_index / 64).';
COMMENT ON COLUMN qf.recipient_status.status IS
    'Current status: 1 pending, 2 accepted, 3 rejected, 4 appealed (0 none).';
COMMENT ON COLUMN qf.recipient_status.status_name IS 'status as a word: pending, accepted, rejected, appealed.';
COMMENT ON COLUMN qf.recipient_status.block_number IS 'Block of the event that set the current status.';
COMMENT ON COLUMN qf.recipient_status.log_index IS 'Log index of that event in its block.';

-- Pools -----------------------------------------------------------------------------------

CREATE VIEW qf.pools AS
SELECT c.chain_id,
       c.pool_id,
       c.strategy,
       c.token,
       t.decimals                                             AS token_decimals,
       w.allocation_start,
       w.allocation_end,
       coalesce(f.funded_raw, 0)                              AS funded_raw,
       coalesce(f.funded_raw, 0) / (10::numeric ^ t.decimals) AS funded
FROM qf.pool_created c
LEFT JOIN qf.tokens t ON t.chain_id = c.chain_id AND t.address = c.token
LEFT JOIN (
    -- Converted here, once per strategy (a DISTINCT ON subquery is not flattened into the caller),
    -- not once per donation when qf.donations compares block times with the window.
    SELECT DISTINCT ON (chain_id, contract) chain_id, contract,
           qf.unix_time(allocation_start) AS allocation_start, qf.unix_time(allocation_end) AS allocation_end
    FROM qf.timestamps_updated
    ORDER BY chain_id, contract, block_number DESC, log_index DESC
) w ON w.chain_id = c.chain_id AND w.contract = c.strategy
LEFT JOIN (
    SELECT chain_id, pool_id, sum(amount) AS funded_raw FROM qf.pool_funded GROUP BY chain_id, pool_id
) f ON f.chain_id = c.chain_id AND f.pool_id = c.pool_id;
COMMENT ON VIEW qf.pools IS
    'One row per pool: strategy, matching token, the latest allocation window and the matching pool funded so far.';
COMMENT ON COLUMN qf.pools.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.pools.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.pools.strategy IS 'Strategy contract of the pool, 20 raw bytes.';
COMMENT ON COLUMN qf.pools.token IS 'Matching-pool token, 20 raw bytes (0xeeee...eeee is the native coin).';
COMMENT ON COLUMN qf.pools.token_decimals IS 'Decimals of the matching-pool token; NULL if unknown.';
COMMENT ON COLUMN qf.pools.allocation_start IS
    'Donations open (latest TimestampsUpdated of the strategy); NULL if none was seen.';
COMMENT ON COLUMN qf.pools.allocation_end IS
    'Donations close, inclusive (latest TimestampsUpdated); infinity for a uint64-max "never".';
COMMENT ON COLUMN qf.pools.funded_raw IS
    'Matching pool: sum of PoolFunded amounts (net of fees), in base units of the pool token.';
COMMENT ON COLUMN qf.pools.funded IS 'Matching pool in token units; NULL if the decimals are unknown.';

-- Donations -------------------------------------------------------------------------------

-- A token's unit (10^decimals) once per token, not a numeric power per donation row.
ALTER TABLE qf.tokens ADD COLUMN unit numeric GENERATED ALWAYS AS (10::numeric ^ decimals) STORED;
COMMENT ON COLUMN qf.tokens.unit IS 'Base units per token unit (10^decimals); NULL if the decimals are unknown.';

-- Analysts look donors up by their 0x text; the view's expression is indexed so that is a lookup. The 0x text
-- columns are in the "C" collation: hex compares byte by byte, and DISTINCT / GROUP BY / ORDER BY on them
-- then sort with memcmp instead of the locale's rules.
CREATE INDEX allocated_donor_hex_idx ON qf.allocated ((('0x' || encode(sender, 'hex')) COLLATE "C"));

CREATE VIEW qf.donations AS
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
       coalesce(a.block_time BETWEEN p.allocation_start AND p.allocation_end, false) AS in_window
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
      AND (h.next_block_number IS NULL OR (a.block_number, a.log_index) < (h.next_block_number, h.next_log_index));
COMMENT ON VIEW qf.donations IS
    'One row per donation (Allo v2 Allocated event) with its pool, donor, token and amount in token '
    'units, the recipient''s status when it was made and whether it fell in the allocation window.';
COMMENT ON COLUMN qf.donations.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.donations.pool_id IS 'Allo pool id of the strategy that emitted the donation.';
COMMENT ON COLUMN qf.donations.recipient_id IS 'Recipient id donated to, 0x-hex.';
COMMENT ON COLUMN qf.donations.donor IS 'Donor (the Allocated sender), 0x-hex (indexed: WHERE donor = ''0x...'' is a lookup).';
COMMENT ON COLUMN qf.donations.token IS 'Donated token, 0x-hex (0xeeee...eeee is the native coin).';
COMMENT ON COLUMN qf.donations.token_symbol IS 'Symbol of the token; NULL if unknown.';
COMMENT ON COLUMN qf.donations.amount_raw IS 'Amount in the token''s base units (wei for ETH).';
COMMENT ON COLUMN qf.donations.amount IS 'Amount in token units (decimals applied); NULL when the token''s decimals are unknown.';
COMMENT ON COLUMN qf.donations.block_number IS 'Block holding the donation.';
COMMENT ON COLUMN qf.donations.block_time IS 'Timestamp of that block.';
COMMENT ON COLUMN qf.donations.tx_hash IS 'Donation transaction, 0x-hex.';
COMMENT ON COLUMN qf.donations.log_index IS 'Position of the Allocated log in its block.';
COMMENT ON COLUMN qf.donations.donor_nonce IS 'Nonce of the donation transaction: how many transactions the wallet had sent before (wallet freshness).';
COMMENT ON COLUMN qf.donations.gas_price IS 'Effective gas price of the donation transaction, in wei.';
COMMENT ON COLUMN qf.donations.recipient_status IS
    'Recipient''s status at the donation: latest status event at or before (block_number, log_index); '
    '1 pending, 2 accepted, 3 rejected, 4 appealed, 0 unknown.';
COMMENT ON COLUMN qf.donations.in_window IS
    'True if block_time lies in the pool''s latest allocation window (ends inclusive); false if outside or no window is known.';

-- Rebuild covers the history too --------------------------------------------------------------

CREATE OR REPLACE FUNCTION qf.rebuild_analytics(OUT donors bigint, OUT projects bigint, OUT pools bigint)
LANGUAGE plpgsql AS $$
DECLARE
    chain_ids bigint[];
    contracts bytea[];
    recipients bytea[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('qf.refresh_analytics'));
    TRUNCATE qf.recipient_status_history;
    SELECT array_agg(chain_id), array_agg(contract), array_agg(recipient_id) INTO chain_ids, contracts, recipients
    FROM (SELECT chain_id, contract, recipient_id FROM qf.registered
          UNION SELECT chain_id, contract, recipient_id FROM qf.updated_registration) x;
    IF chain_ids IS NOT NULL THEN
        PERFORM qf.recompute_status_history(chain_ids, contracts, recipients);
    END IF;
    TRUNCATE qf.project_totals, qf.project_eligible, qf.round_matching, qf.round_stats, qf.donor_features,
        qf.donor_pool, qf.pool_donation_totals, qf.donor_project;
    INSERT INTO qf.dirty_donors SELECT DISTINCT chain_id, sender FROM qf.allocated;
    INSERT INTO qf.dirty_pools (chain_id, pool_id, full_recompute) SELECT chain_id, pool_id, true FROM qf.pool_created;
    SELECT r.donors, r.projects, r.pools INTO donors, projects, pools FROM qf.refresh_analytics() r;
END
$$;
COMMENT ON FUNCTION qf.rebuild_analytics() IS
    'Recompute the recipient status history and every analytics table from the event tables '
    '(after a TRUNCATE or hand edits the triggers did not see).';

SELECT qf.rebuild_analytics();
