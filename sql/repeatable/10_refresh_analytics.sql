-- qf.refresh_analytics() as it is now. Earlier definitions, kept as history: sql/007, sql/024 (a new database runs them first).
--
-- The analytics count donation strategies' Allocated only: qf.donation_strategies wherever it reads
-- donations (per-project pairs, per-pool totals, donor features).
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

COMMENT ON FUNCTION qf.refresh_analytics() IS 'Bring qf.project_totals, qf.round_matching, qf.round_stats and qf.donor_features up to date by recomputing only the donors, projects and pools marked dirty since the last call; returns how many of each. The indexer calls it after its batches; call it yourself after changing qf.matching_caps.';
