-- Analytics views for psql: recipient statuses, pools, donations with status and window,
-- project totals, QF matching (standard, pro rata, capped), donor features, round stats.
--
-- Conventions of this file:
-- * "token units" means base units divided by 10^decimals of the token (qf.tokens); rows whose
--   token has unknown decimals have NULL token-unit amounts and are left out of token-unit sums.
-- * No prices: amounts in different tokens are never converted. Where one number must cover
--   several tokens (donor features, round totals) token units are added one for one; every
--   token seen so far has 18 decimals, so this is also a sum of base units / 1e18. Matching
--   uses only donations in the pool's own token (qf.pools.token), the unit of the pool.
-- * Addresses are 20-byte bytea, as in the event tables; qf.donations keeps its 0x-hex text.
-- * Materialized views are refreshed CONCURRENTLY by the indexer (indexer/store.py
--   MATERIALIZED_VIEWS, in dependency order), so each has a unique index on plain columns.

-- Indexes for the lookups below -----------------------------------------------------------

CREATE INDEX registered_recipient_idx
    ON qf.registered (chain_id, contract, recipient_id);
CREATE INDEX registered_row_idx
    ON qf.registered (chain_id, contract, (recipient_index / 64));
CREATE INDEX updated_registration_recipient_idx
    ON qf.updated_registration (chain_id, contract, recipient_id, block_number, log_index);
CREATE INDEX recipient_status_updated_row_idx
    ON qf.recipient_status_updated (chain_id, contract, row_index, block_number, log_index);
CREATE INDEX timestamps_updated_contract_idx
    ON qf.timestamps_updated (chain_id, contract, block_number, log_index);
CREATE INDEX pool_created_pool_idx ON qf.pool_created (chain_id, pool_id);
CREATE INDEX pool_funded_pool_idx ON qf.pool_funded (chain_id, pool_id);

-- Helpers ---------------------------------------------------------------------------------

CREATE FUNCTION qf.status_nibble(full_row numeric, recipient_index bigint) RETURNS smallint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN mod(div(full_row, power(2::numeric, 4 * (recipient_index % 64))), 16)::smallint;
COMMENT ON FUNCTION qf.status_nibble(numeric, bigint) IS
    'Status of a recipient in a RecipientStatusUpdated full_row: (full_row >> 4*(index mod 64)) & 15, '
    'in exact numeric arithmetic. 0 none, 1 pending, 2 accepted, 3 rejected, 4 appealed.';

CREATE FUNCTION qf.unix_time(seconds bigint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE WHEN seconds >= 253402300800 THEN 'infinity'::timestamptz
            ELSE to_timestamp(seconds) END;
COMMENT ON FUNCTION qf.unix_time(bigint) IS
    'Unix seconds as timestamptz; beyond year 9999 (e.g. a uint64 max "never") it is infinity.';

CREATE FUNCTION qf.status_name(status smallint) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (ARRAY['none', 'pending', 'accepted', 'rejected', 'appealed'])[status + 1];
COMMENT ON FUNCTION qf.status_name(smallint) IS
    'Name of an Allo v2 recipient status: 0 none, 1 pending, 2 accepted, 3 rejected, 4 appealed.';

-- The Gitcoin iterative cap, on plain arrays so it can be checked by hand.
CREATE FUNCTION qf.capped_matches(matches numeric[], cap numeric) RETURNS numeric[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    m numeric[] := matches;
    capped boolean[] := array_fill(false, ARRAY[coalesce(cardinality(matches), 0)]);
    excess numeric;
    uncapped_total numeric;
    n integer := coalesce(cardinality(matches), 0);
BEGIN
    IF cap IS NULL OR n = 0 THEN
        RETURN matches;
    END IF;
    -- Each pass caps at least one more project, so there are at most n passes.
    FOR pass IN 1 .. n LOOP
        excess := 0;
        FOR i IN 1 .. n LOOP
            IF NOT capped[i] AND m[i] > cap THEN
                excess := excess + (m[i] - cap);
                m[i] := cap;
                capped[i] := true;
            END IF;
        END LOOP;
        EXIT WHEN excess = 0;
        uncapped_total := 0;
        FOR i IN 1 .. n LOOP
            IF NOT capped[i] THEN
                uncapped_total := uncapped_total + m[i];
            END IF;
        END LOOP;
        -- Every project capped (or the rest have nothing): the excess stays in the pool.
        EXIT WHEN uncapped_total = 0;
        FOR i IN 1 .. n LOOP
            IF NOT capped[i] THEN
                m[i] := m[i] + excess * m[i] / uncapped_total;
            END IF;
        END LOOP;
    END LOOP;
    RETURN m;
END
$$;
COMMENT ON FUNCTION qf.capped_matches(numeric[], numeric) IS
    'Gitcoin''s iterative matching cap: every match above cap is clamped to cap and the excess is '
    'shared among the projects still below the cap in proportion to their current match; repeated '
    'until no match exceeds cap. If every project with a match ends up capped, the rest of the '
    'excess is not paid out. Same order as the input; a NULL cap returns the input unchanged.';

CREATE TABLE qf.matching_caps (
    chain_id bigint        NOT NULL,
    pool_id  numeric(78,0) NOT NULL,
    cap_pct  numeric       NOT NULL CHECK (cap_pct > 0 AND cap_pct <= 100),
    PRIMARY KEY (chain_id, pool_id)
);
COMMENT ON TABLE qf.matching_caps IS
    'Optional per-pool matching cap, set by analysts. Takes effect in qf.round_matching at its next refresh.';
COMMENT ON COLUMN qf.matching_caps.chain_id IS 'EIP-155 chain id of the pool.';
COMMENT ON COLUMN qf.matching_caps.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.matching_caps.cap_pct IS
    'Largest share of the matching pool one project may receive, in percent (0 < cap_pct <= 100).';

-- Recipient statuses ----------------------------------------------------------------------

CREATE VIEW qf.recipient_status_history AS
WITH reg AS (
    SELECT DISTINCT ON (chain_id, contract, recipient_id)
           chain_id, contract, recipient_id, recipient_index, block_number, log_index
    FROM qf.registered
    ORDER BY chain_id, contract, recipient_id, block_number, log_index
)
SELECT chain_id, contract, recipient_id, block_number, log_index,
       1::smallint AS status, 'Registered'::text AS source
FROM reg
UNION ALL
SELECT chain_id, contract, recipient_id, block_number, log_index, status, 'UpdatedRegistration'
FROM qf.updated_registration
UNION ALL
SELECT u.chain_id, u.contract, r.recipient_id, u.block_number, u.log_index,
       qf.status_nibble(u.full_row, r.recipient_index), 'RecipientStatusUpdated'
FROM qf.recipient_status_updated u
JOIN reg r ON r.chain_id = u.chain_id AND r.contract = u.contract
          AND u.row_index = r.recipient_index / 64
          AND (u.block_number, u.log_index) > (r.block_number, r.log_index);
COMMENT ON VIEW qf.recipient_status_history IS
    'Every status a recipient had, one row per event that set it: Registered (pending), '
    'UpdatedRegistration (its status column) and each RecipientStatusUpdated of the recipient''s '
    'row after its registration (the row''s nibble for it, whether or not this review changed it).';
COMMENT ON COLUMN qf.recipient_status_history.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.recipient_status_history.contract IS 'Strategy contract of the pool, 20 raw bytes.';
COMMENT ON COLUMN qf.recipient_status_history.recipient_id IS 'Recipient id, 20 raw bytes.';
COMMENT ON COLUMN qf.recipient_status_history.block_number IS 'Block of the event that set the status.';
COMMENT ON COLUMN qf.recipient_status_history.log_index IS 'Log index of that event in its block.';
COMMENT ON COLUMN qf.recipient_status_history.status IS
    'Status from this event on: 1 pending, 2 accepted, 3 rejected, 4 appealed (0 none).';
COMMENT ON COLUMN qf.recipient_status_history.source IS
    'Event that set it: Registered, UpdatedRegistration or RecipientStatusUpdated.';

CREATE VIEW qf.recipient_status AS
SELECT DISTINCT ON (h.chain_id, h.contract, h.recipient_id)
       h.chain_id,
       s.pool_id,
       h.recipient_id,
       h.contract AS strategy,
       r.recipient_index,
       h.status,
       qf.status_name(h.status) AS status_name,
       h.block_number,
       h.log_index
FROM qf.recipient_status_history h
JOIN qf.strategies s ON s.chain_id = h.chain_id AND s.address = h.contract
LEFT JOIN LATERAL (
    SELECT g.recipient_index FROM qf.registered g
    WHERE g.chain_id = h.chain_id AND g.contract = h.contract AND g.recipient_id = h.recipient_id
    ORDER BY g.block_number, g.log_index LIMIT 1
) r ON true
ORDER BY h.chain_id, h.contract, h.recipient_id, h.block_number DESC, h.log_index DESC;
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
       qf.unix_time(w.allocation_start)                       AS allocation_start,
       qf.unix_time(w.allocation_end)                         AS allocation_end,
       coalesce(f.funded_raw, 0)                              AS funded_raw,
       coalesce(f.funded_raw, 0) / (10::numeric ^ t.decimals) AS funded
FROM qf.pool_created c
LEFT JOIN qf.tokens t ON t.chain_id = c.chain_id AND t.address = c.token
LEFT JOIN LATERAL (
    SELECT allocation_start, allocation_end FROM qf.timestamps_updated u
    WHERE u.chain_id = c.chain_id AND u.contract = c.strategy
    ORDER BY u.block_number DESC, u.log_index DESC LIMIT 1
) w ON true
LEFT JOIN LATERAL (
    SELECT sum(amount) AS funded_raw FROM qf.pool_funded p
    WHERE p.chain_id = c.chain_id AND p.pool_id = c.pool_id
) f ON true;
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

-- Donations (replaces the 003 view; same columns first, then recipient_status and in_window) ---

DROP VIEW qf.donations CASCADE;
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
       a.gas_price,
       coalesce(st.status, 0::smallint)                   AS recipient_status,
       coalesce(a.block_time BETWEEN p.allocation_start AND p.allocation_end, false) AS in_window
FROM qf.allocated a
JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
LEFT JOIN qf.tokens t ON t.chain_id = a.chain_id AND t.address = a.token
LEFT JOIN qf.pools p ON p.chain_id = a.chain_id AND p.pool_id = s.pool_id
LEFT JOIN LATERAL (
    SELECT h.status FROM qf.recipient_status_history h
    WHERE h.chain_id = a.chain_id AND h.contract = a.contract AND h.recipient_id = a.recipient_id
      AND (h.block_number, h.log_index) <= (a.block_number, a.log_index)
    ORDER BY h.block_number DESC, h.log_index DESC LIMIT 1
) st ON true;
COMMENT ON VIEW qf.donations IS
    'One row per donation (Allo v2 Allocated event) with its pool, donor, token and amount in token '
    'units, the recipient''s status when it was made and whether it fell in the allocation window.';
COMMENT ON COLUMN qf.donations.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.donations.pool_id IS 'Allo pool id of the strategy that emitted the donation.';
COMMENT ON COLUMN qf.donations.recipient_id IS 'Recipient id donated to, 0x-hex.';
COMMENT ON COLUMN qf.donations.donor IS 'Donor (the Allocated sender), 0x-hex.';
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

-- Project totals (replaces the 003 view; same columns first, then token-unit columns) ----------

DROP MATERIALIZED VIEW qf.project_totals CASCADE;
CREATE MATERIALIZED VIEW qf.project_totals AS
WITH per_donor AS (
    SELECT a.chain_id, s.pool_id, a.recipient_id, a.token, a.sender,
           count(*) AS donations, sum(a.amount) AS amount
    FROM qf.allocated a
    JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
    GROUP BY 1, 2, 3, 4, 5
)
SELECT d.chain_id, d.pool_id, d.recipient_id, d.token,
       count(*)                                        AS unique_donors,
       sum(d.donations)                                AS donations,
       sum(d.amount)                                   AS amount_raw,
       sum(sqrt(d.amount))                             AS sum_sqrt_amount_raw,
       sum(d.amount) / (10::numeric ^ t.decimals)      AS amount,
       sum(sqrt(d.amount / (10::numeric ^ t.decimals))) AS sum_sqrt_amount
FROM per_donor d
LEFT JOIN qf.tokens t ON t.chain_id = d.chain_id AND t.address = d.token
GROUP BY d.chain_id, d.pool_id, d.recipient_id, d.token, t.decimals;
CREATE UNIQUE INDEX project_totals_key ON qf.project_totals (chain_id, pool_id, recipient_id, token);
COMMENT ON MATERIALIZED VIEW qf.project_totals IS
    'Per (chain, pool, recipient, token): unique donors, donations, amount, and the sum over donors of '
    'the square root of each donor''s total (the QF building block). One row per token: a pool that '
    'takes several tokens has several rows per recipient, never added together. All donations count, '
    'whatever the window or status (see qf.round_matching for the eligible ones).';
COMMENT ON COLUMN qf.project_totals.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.project_totals.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.project_totals.recipient_id IS 'Recipient id, 20 raw bytes.';
COMMENT ON COLUMN qf.project_totals.token IS 'Donated token, 20 raw bytes.';
COMMENT ON COLUMN qf.project_totals.unique_donors IS 'Distinct donors (Allocated senders).';
COMMENT ON COLUMN qf.project_totals.donations IS 'Number of donations.';
COMMENT ON COLUMN qf.project_totals.amount_raw IS 'Sum of donations in base units.';
COMMENT ON COLUMN qf.project_totals.sum_sqrt_amount_raw IS 'Sum over donors of sqrt(donor''s total in base units).';
COMMENT ON COLUMN qf.project_totals.amount IS 'Sum of donations in token units; NULL if the decimals are unknown.';
COMMENT ON COLUMN qf.project_totals.sum_sqrt_amount IS
    'Sum over donors of sqrt(donor''s total in token units); NULL if the decimals are unknown.';

-- Matching --------------------------------------------------------------------------------

CREATE MATERIALIZED VIEW qf.round_matching AS
WITH eligible AS (
    -- In-window donations in the pool's own token, per donor.
    SELECT a.chain_id, s.pool_id, a.recipient_id, a.sender,
           count(*) AS donations,
           sum(a.amount) / (10::numeric ^ p.token_decimals) AS amount
    FROM qf.allocated a
    JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
    JOIN qf.pools p ON p.chain_id = a.chain_id AND p.pool_id = s.pool_id AND p.token = a.token
    WHERE a.block_time BETWEEN p.allocation_start AND p.allocation_end
    GROUP BY a.chain_id, s.pool_id, a.recipient_id, a.sender, p.token_decimals
),
per_donor AS (
    SELECT e.*, sqrt(e.amount) AS root FROM eligible e
),
project AS (
    SELECT chain_id, pool_id, recipient_id,
           count(*)          AS contributors,
           sum(donations)    AS donations,
           sum(amount)       AS amount,
           sum(root)         AS sum_sqrt_amount,
           -- (sum sqrt c)^2 - sum c, with sum c taken as sum (sqrt c)^2 so that it is exactly 0 for
           -- one donor and never negative (numeric products are exact).
           sum(root) * sum(root) - sum(root * root) AS match_standard
    FROM per_donor
    GROUP BY chain_id, pool_id, recipient_id
),
accepted AS (
    SELECT r.chain_id, r.pool_id, r.recipient_id, p.token, p.funded, c.cap_pct,
           coalesce(j.contributors, 0)     AS contributors,
           coalesce(j.donations, 0)        AS donations,
           coalesce(j.amount, 0)           AS amount,
           coalesce(j.sum_sqrt_amount, 0)  AS sum_sqrt_amount,
           coalesce(j.match_standard, 0)   AS match_standard
    FROM qf.recipient_status r
    JOIN qf.pools p ON p.chain_id = r.chain_id AND p.pool_id = r.pool_id
    LEFT JOIN project j ON j.chain_id = r.chain_id AND j.pool_id = r.pool_id AND j.recipient_id = r.recipient_id
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
CREATE UNIQUE INDEX round_matching_key ON qf.round_matching (chain_id, pool_id, recipient_id);
COMMENT ON MATERIALIZED VIEW qf.round_matching IS
    'Standard QF matching per accepted recipient (current status 2) of each pool. Eligible donations: '
    'in the pool''s latest allocation window and in the pool''s own token (no prices, so other tokens '
    'are left out). match_standard = (sum_i sqrt(c_i))^2 - sum_i c_i over donors i with totals c_i; '
    'match scales it pro rata so the pool''s funded amount is paid in full; match_capped applies the '
    'optional cap of qf.matching_caps with qf.capped_matches. Refresh after changing a cap.';
COMMENT ON COLUMN qf.round_matching.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.round_matching.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.round_matching.recipient_id IS 'Accepted recipient, 20 raw bytes.';
COMMENT ON COLUMN qf.round_matching.token IS 'Pool token, 20 raw bytes: the unit of every amount in this row.';
COMMENT ON COLUMN qf.round_matching.contributors IS 'Distinct donors with eligible donations.';
COMMENT ON COLUMN qf.round_matching.donations IS 'Number of eligible donations.';
COMMENT ON COLUMN qf.round_matching.amount IS 'Sum of eligible donations, in pool token units.';
COMMENT ON COLUMN qf.round_matching.sum_sqrt_amount IS 'Sum over donors of sqrt(donor''s eligible total in token units).';
COMMENT ON COLUMN qf.round_matching.match_standard IS
    'Unscaled QF match (sum sqrt c)^2 - sum c, in pool token units; 0 with a single donor.';
COMMENT ON COLUMN qf.round_matching.match_share IS
    'match_standard / its sum over the pool (0..1); 0 when the pool''s sum is 0.';
COMMENT ON COLUMN qf.round_matching.match IS
    'Match scaled pro rata to the funded matching pool: funded * match_share, in pool token units.';
COMMENT ON COLUMN qf.round_matching.cap_pct IS 'Cap of the pool from qf.matching_caps, percent of the pool; NULL if none.';
COMMENT ON COLUMN qf.round_matching.match_capped IS
    'match after the iterative cap (qf.capped_matches at cap_pct% of funded), pool token units; equals match without a cap.';

-- Donor features --------------------------------------------------------------------------

CREATE MATERIALIZED VIEW qf.donor_features AS
WITH d AS (
    SELECT a.chain_id, a.sender AS donor, s.pool_id, a.contract, a.recipient_id, a.token,
           a.block_number, a.log_index, a.block_time, a.tx_nonce, a.gas_price,
           a.amount / (10::numeric ^ t.decimals) AS amount,
           extract(epoch FROM a.block_time - lag(a.block_time) OVER w) AS gap_seconds,
           row_number() OVER w AS nth,
           min(a.sender) OVER b <> max(a.sender) OVER b AS codonation
    FROM qf.allocated a
    JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
    LEFT JOIN qf.tokens t ON t.chain_id = a.chain_id AND t.address = a.token
    WINDOW w AS (PARTITION BY a.chain_id, a.sender ORDER BY a.block_number, a.log_index),
           b AS (PARTITION BY a.chain_id, a.block_number, a.contract, a.recipient_id)
),
per_project AS (
    SELECT chain_id, donor, max(amount) AS top_amount, count(*) AS projects
    FROM (SELECT chain_id, donor, contract, recipient_id, sum(amount) AS amount
          FROM d GROUP BY 1, 2, 3, 4) x
    GROUP BY 1, 2
)
SELECT d.chain_id,
       d.donor,
       count(*)                                                  AS donation_count,
       sum(d.amount)                                             AS total_amount,
       avg(d.amount)                                             AS mean_amount,
       coalesce(stddev_pop(d.amount), 0)                         AS amount_stddev,
       max(p.projects)                                           AS distinct_projects,
       count(DISTINCT d.pool_id)                                 AS distinct_pools,
       count(DISTINCT d.token)                                   AS distinct_tokens,
       min(d.block_time)                                         AS first_seen,
       max(d.block_time)                                         AS last_seen,
       extract(epoch FROM max(d.block_time) - min(d.block_time)) AS active_seconds,
       min(d.tx_nonce) FILTER (WHERE d.nth = 1)                  AS first_nonce,
       min(d.tx_nonce) FILTER (WHERE d.nth = 1) < 3              AS fresh_wallet,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY d.gap_seconds) AS median_gap_seconds,
       avg((d.amount % 0.5 = 0)::int)                            AS round_amount_share,
       count(*) FILTER (WHERE d.codonation)                      AS same_block_codonations,
       CASE WHEN sum(d.amount) > 0 THEN max(p.top_amount) / sum(d.amount) END AS top_project_share,
       count(DISTINCT d.gas_price)                               AS gas_price_distinct
FROM d
JOIN per_project p ON p.chain_id = d.chain_id AND p.donor = d.donor
GROUP BY d.chain_id, d.donor;
CREATE UNIQUE INDEX donor_features_key ON qf.donor_features (chain_id, donor);
COMMENT ON MATERIALIZED VIEW qf.donor_features IS
    'One row per donor (Allocated sender) per chain: behaviour features for sybil scoring, over all '
    'its donations (every pool, token, window and status). Amounts are token units added one for one '
    'across tokens (no prices); donations in tokens of unknown decimals are left out of the amount features.';
COMMENT ON COLUMN qf.donor_features.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.donor_features.donor IS 'Donor address, 20 raw bytes.';
COMMENT ON COLUMN qf.donor_features.donation_count IS 'Number of donations.';
COMMENT ON COLUMN qf.donor_features.total_amount IS 'Sum of donations, token units (tokens added one for one).';
COMMENT ON COLUMN qf.donor_features.mean_amount IS 'Mean donation, token units.';
COMMENT ON COLUMN qf.donor_features.amount_stddev IS
    'Population standard deviation of the donation amounts (volatility), token units; 0 for one donation.';
COMMENT ON COLUMN qf.donor_features.distinct_projects IS 'Distinct (pool strategy, recipient) pairs donated to.';
COMMENT ON COLUMN qf.donor_features.distinct_pools IS 'Distinct pools donated in.';
COMMENT ON COLUMN qf.donor_features.distinct_tokens IS 'Distinct tokens donated.';
COMMENT ON COLUMN qf.donor_features.first_seen IS 'Block time of the first donation.';
COMMENT ON COLUMN qf.donor_features.last_seen IS 'Block time of the last donation.';
COMMENT ON COLUMN qf.donor_features.active_seconds IS 'last_seen - first_seen, in seconds.';
COMMENT ON COLUMN qf.donor_features.first_nonce IS
    'Transaction nonce of the first donation (by block, log index): transactions the wallet had sent before.';
COMMENT ON COLUMN qf.donor_features.fresh_wallet IS 'first_nonce < 3: a wallet with almost no history.';
COMMENT ON COLUMN qf.donor_features.median_gap_seconds IS
    'Median time between consecutive donations (by block, log index), seconds; NULL with one donation.';
COMMENT ON COLUMN qf.donor_features.round_amount_share IS
    'Share (0..1) of donations whose token-unit amount is a multiple of 0.5 (so every whole, 1 or 5 multiple too).';
COMMENT ON COLUMN qf.donor_features.same_block_codonations IS
    'Donations made in a block where another donor also donated to the same project.';
COMMENT ON COLUMN qf.donor_features.top_project_share IS
    'Share (0..1) of the donor''s total amount that went to its single biggest project; NULL if the total is 0.';
COMMENT ON COLUMN qf.donor_features.gas_price_distinct IS 'Number of distinct gas prices paid on donations.';

-- Round statistics ------------------------------------------------------------------------

CREATE MATERIALIZED VIEW qf.round_stats AS
WITH don AS (
    SELECT a.chain_id, s.pool_id,
           count(DISTINCT a.sender)                                   AS donors,
           count(*)                                                   AS donations,
           sum(a.amount / (10::numeric ^ t.decimals))                 AS amount,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY (a.amount / (10::numeric ^ t.decimals))::float8)
                                                                      AS median_donation,
           avg((a.tx_nonce < 3)::int)                                 AS fresh_wallet_donation_share
    FROM qf.allocated a
    JOIN qf.strategies s ON s.chain_id = a.chain_id AND s.address = a.contract
    LEFT JOIN qf.tokens t ON t.chain_id = a.chain_id AND t.address = a.token
    GROUP BY a.chain_id, s.pool_id
),
ranked AS (
    SELECT m.chain_id, m.pool_id, m.match_standard, m.match,
           row_number() OVER (PARTITION BY m.chain_id, m.pool_id ORDER BY m.match_standard) AS up,
           row_number() OVER (PARTITION BY m.chain_id, m.pool_id ORDER BY m.match_standard DESC) AS down
    FROM qf.round_matching m
),
mat AS (
    SELECT chain_id, pool_id,
           count(*)                          AS accepted_projects,
           sum(match_standard)               AS total_standard,
           sum(match)                        AS matched,
           CASE WHEN sum(match_standard) > 0
                THEN 2 * sum(up * match_standard) / (count(*) * sum(match_standard))
                     - (count(*) + 1)::numeric / count(*)
           END                               AS match_gini,
           CASE WHEN sum(match_standard) > 0
                THEN sum(match_standard) FILTER (WHERE down <= 10) / sum(match_standard)
           END                               AS top10_match_share
    FROM ranked
    GROUP BY chain_id, pool_id
)
SELECT p.chain_id, p.pool_id, p.token,
       coalesce(d.donors, 0)       AS donors,
       coalesce(d.donations, 0)    AS donations,
       coalesce(d.amount, 0)       AS amount,
       d.median_donation,
       d.fresh_wallet_donation_share,
       p.funded                    AS matching_pool,
       coalesce(m.accepted_projects, 0) AS accepted_projects,
       m.match_gini,
       m.top10_match_share
FROM qf.pools p
LEFT JOIN don d ON d.chain_id = p.chain_id AND d.pool_id = p.pool_id
LEFT JOIN mat m ON m.chain_id = p.chain_id AND m.pool_id = p.pool_id;
CREATE UNIQUE INDEX round_stats_key ON qf.round_stats (chain_id, pool_id);
COMMENT ON MATERIALIZED VIEW qf.round_stats IS
    'One row per pool: participation, amounts, the matching pool, and how concentrated the standard '
    'QF matching of qf.round_matching is. Donation figures cover every donation of the pool (all '
    'tokens, added one for one in token units); matching figures only the eligible ones.';
COMMENT ON COLUMN qf.round_stats.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.round_stats.pool_id IS 'Allo pool id.';
COMMENT ON COLUMN qf.round_stats.token IS 'Pool (matching) token, 20 raw bytes.';
COMMENT ON COLUMN qf.round_stats.donors IS 'Distinct donors.';
COMMENT ON COLUMN qf.round_stats.donations IS 'Number of donations.';
COMMENT ON COLUMN qf.round_stats.amount IS 'Sum of donations, token units (tokens added one for one).';
COMMENT ON COLUMN qf.round_stats.median_donation IS 'Median donation, token units; NULL without donations.';
COMMENT ON COLUMN qf.round_stats.fresh_wallet_donation_share IS
    'Share (0..1) of donations sent from a wallet with nonce < 3 at the time; NULL without donations.';
COMMENT ON COLUMN qf.round_stats.matching_pool IS 'Funded matching pool (sum of PoolFunded, net of fees), pool token units.';
COMMENT ON COLUMN qf.round_stats.accepted_projects IS 'Recipients currently accepted.';
COMMENT ON COLUMN qf.round_stats.match_gini IS
    'Gini coefficient (0 equal .. 1 one project takes all) of match_standard over the accepted '
    'projects, zeros included; NULL when no project has a match.';
COMMENT ON COLUMN qf.round_stats.top10_match_share IS
    'Share (0..1) of the standard matching that goes to the 10 projects with the largest match; NULL when no project has a match.';
