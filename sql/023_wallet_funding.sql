-- Where the money came from: each donor wallet's first funding, found from the node or imported.
--
-- An attacker who runs many wallets has to fund them, and the funding leaves a trail: one source
-- fanning out to fresh wallets shortly before they donate, peel chains (A funds B funds C), amounts
-- of "gas plus the donation". The funding worker (indexer/funding, beside `qf index` or as
-- `qf funding`) finds, for every donor the indexer has seen, its first incoming native transfer and
-- its first incoming transfer of each ERC-20 it donated, and then the funder's own first funding,
-- up to a small depth, stopping at known sources (exchanges, bridges, faucets: qf.known_sources).
--
-- Reorg-safe like the events: a found row carries its block and block hash and is written only if
-- the indexer's checkpoint covers it and its hash is the one the indexer stored for that block;
-- Store.rollback_to deletes the rows above the common ancestor and sends their wallets back to
-- the queue. Imported rows (`qf funding import`) carry no block hash and are kept.

CREATE TABLE qf.known_sources (
    chain_id    bigint      NOT NULL,
    address     qf.address  NOT NULL,
    label       text        NOT NULL CHECK (label <> ''),
    kind        text        NOT NULL CHECK (kind IN ('exchange', 'bridge', 'faucet', 'other')),
    source      text        NOT NULL CHECK (source <> ''),
    imported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, address)
);
COMMENT ON TABLE qf.known_sources IS
    'Labelled addresses that fund many honest wallets (exchanges'' hot wallets, bridges, faucets): sharing one '
    'of them as a funder is no evidence of coordination. Shipped list, `qf sources import`, and the devnet''s faucet.';
COMMENT ON COLUMN qf.known_sources.chain_id IS 'EIP-155 chain id the address is labelled on.';
COMMENT ON COLUMN qf.known_sources.address IS 'The labelled address, 20 raw bytes.';
COMMENT ON COLUMN qf.known_sources.label IS 'Its public name, e.g. ''Coinbase 10''.';
COMMENT ON COLUMN qf.known_sources.kind IS 'exchange, bridge, faucet or other.';
COMMENT ON COLUMN qf.known_sources.source IS 'Where the label comes from (a citation: the public label and where it was read).';
COMMENT ON COLUMN qf.known_sources.imported_at IS 'When the row was written.';

CREATE TABLE qf.wallet_funding (
    chain_id           bigint      NOT NULL,
    wallet             qf.address  NOT NULL,
    asset              qf.address  NOT NULL,
    funder             qf.address  NOT NULL,
    amount             qf.uint256  NOT NULL,
    block_number       bigint      NOT NULL,
    block_hash         qf.hash32,
    tx_hash            qf.hash32,
    block_time         timestamptz NOT NULL,
    depth              smallint    NOT NULL CHECK (depth >= 1),
    method             text        NOT NULL
                                   CHECK (method IN ('trace_filter', 'trace_block', 'ots', 'transfer_logs', 'import')),
    funder_is_contract boolean,
    found_at           timestamptz NOT NULL DEFAULT now(),
    CHECK ((method = 'import') OR (block_hash IS NOT NULL AND tx_hash IS NOT NULL)),
    PRIMARY KEY (chain_id, wallet, asset)
);
CREATE INDEX wallet_funding_funder_idx ON qf.wallet_funding (chain_id, funder, asset);
CREATE INDEX wallet_funding_block_idx ON qf.wallet_funding (chain_id, block_number);
COMMENT ON TABLE qf.wallet_funding IS
    'First incoming transfer of each asset to a wallet (a donor, or the funder of one up to the configured depth), '
    'as found on the node or imported; rows above a reorg''s common ancestor are deleted with the events.';
COMMENT ON COLUMN qf.wallet_funding.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.wallet_funding.wallet IS 'The funded wallet, 20 raw bytes.';
COMMENT ON COLUMN qf.wallet_funding.asset IS 'What it received: 0xeeee...eeee for the native coin, else the ERC-20 token.';
COMMENT ON COLUMN qf.wallet_funding.funder IS 'Who sent it (the transfer''s from: a transaction''s sender, a contract for an '
    'internal transfer, the ERC-20 Transfer''s from; the zero address for a mint).';
COMMENT ON COLUMN qf.wallet_funding.amount IS 'Amount received in that transfer, base units (wei for ETH).';
COMMENT ON COLUMN qf.wallet_funding.block_number IS 'Block of the transfer.';
COMMENT ON COLUMN qf.wallet_funding.block_hash IS 'Hash of that block as the node answered (NULL for imported rows).';
COMMENT ON COLUMN qf.wallet_funding.tx_hash IS 'Transaction of the transfer (NULL for imported rows).';
COMMENT ON COLUMN qf.wallet_funding.block_time IS 'Time of the block: point-in-time features see a funding from this time on.';
COMMENT ON COLUMN qf.wallet_funding.depth IS
    'How far from a donor the wallet was first looked up: 1 a donor (or a wallet asked about), 2 its funder, 3 ...';
COMMENT ON COLUMN qf.wallet_funding.method IS
    'How it was found: trace_filter, trace_block, ots (Otterscan ots_*), transfer_logs (ERC-20 Transfer logs) or import.';
COMMENT ON COLUMN qf.wallet_funding.funder_is_contract IS 'Whether the funder has code (eth_getCode); NULL when not asked.';
COMMENT ON COLUMN qf.wallet_funding.found_at IS 'When the row was written.';

CREATE TABLE qf.funding_wallets (
    chain_id          bigint      NOT NULL,
    wallet            qf.address  NOT NULL,
    depth             smallint    NOT NULL CHECK (depth >= 1),
    reason            text        NOT NULL CHECK (reason IN ('donor', 'funder', 'requested')),
    tokens            bytea[]     NOT NULL DEFAULT '{}',
    until_block       bigint      NOT NULL,
    searched_to_block bigint,
    status            text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'unavailable')),
    method            text,
    attempts          integer     NOT NULL DEFAULT 0,
    rpc_calls         integer     NOT NULL DEFAULT 0,
    first_seen_at     timestamptz NOT NULL DEFAULT now(),
    next_attempt_at   timestamptz NOT NULL DEFAULT '-infinity',
    last_attempt_at   timestamptz,
    last_error        text,
    PRIMARY KEY (chain_id, wallet)
);
CREATE INDEX funding_wallets_due_idx ON qf.funding_wallets (next_attempt_at) WHERE status = 'pending';
COMMENT ON TABLE qf.funding_wallets IS
    'Wallets whose funding is to be found (donors, their funders, wallets asked about), with the worker''s progress.';
COMMENT ON COLUMN qf.funding_wallets.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.funding_wallets.wallet IS 'The wallet, 20 raw bytes.';
COMMENT ON COLUMN qf.funding_wallets.depth IS 'Smallest depth it was queued at: 1 a donor or a wallet asked about, 2 a donor''s funder, ...';
COMMENT ON COLUMN qf.funding_wallets.reason IS 'Why it was first queued: donor, funder (of a wallet at depth - 1) or requested.';
COMMENT ON COLUMN qf.funding_wallets.tokens IS 'ERC-20 tokens whose first incoming transfer is looked up too (20-byte addresses).';
COMMENT ON COLUMN qf.funding_wallets.until_block IS
    'Search up to this block: a donor''s first donation, a funder''s funding of the wallet it funded (the largest asked).';
COMMENT ON COLUMN qf.funding_wallets.searched_to_block IS
    'Every asset not in qf.wallet_funding had no incoming transfer up to this block (NULL: never searched).';
COMMENT ON COLUMN qf.funding_wallets.status IS
    'pending (due at next_attempt_at), done (searched to until_block), unavailable (no method of the node can '
    'answer, e.g. native funding without a trace API: import it).';
COMMENT ON COLUMN qf.funding_wallets.method IS 'Method used by the last search of its native funding.';
COMMENT ON COLUMN qf.funding_wallets.attempts IS 'Searches made so far.';
COMMENT ON COLUMN qf.funding_wallets.rpc_calls IS 'JSON-RPC calls the last search spent (bounded per wallet).';
COMMENT ON COLUMN qf.funding_wallets.first_seen_at IS 'When it was queued.';
COMMENT ON COLUMN qf.funding_wallets.next_attempt_at IS
    'Earliest time of the next search (exponential backoff with jitter after a failure; a lease while in flight).';
COMMENT ON COLUMN qf.funding_wallets.last_attempt_at IS 'When the last search started.';
COMMENT ON COLUMN qf.funding_wallets.last_error IS 'Why the last search failed or was incomplete (NULL after a success).';

CREATE TABLE qf.funding_progress (
    chain_id             bigint PRIMARY KEY,
    donors_through_block bigint NOT NULL DEFAULT -1,
    rollbacks            bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE qf.funding_progress IS
    'How far the funding worker has queued the donors of qf.allocated, and how many reorg rollbacks it has seen.';
COMMENT ON COLUMN qf.funding_progress.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.funding_progress.donors_through_block IS
    'Donors of blocks up to this one are in qf.funding_wallets (moved back by a reorg rollback).';
COMMENT ON COLUMN qf.funding_progress.rollbacks IS
    'Reorg rollbacks so far (Store.rollback_to adds one): a search claimed before one is discarded, not stored.';

-- Per donor, its first native funding before its first donation, the funder's label and fan-out, and the
-- peel chain behind it (the funder's own first funder, and so on, up to three hops, stopping at a known source).
CREATE VIEW qf.donor_funding AS
WITH RECURSIVE donors AS (
    SELECT chain_id, sender AS donor, min(block_number) AS first_block, min(block_time) AS first_time
    FROM qf.allocated GROUP BY chain_id, sender
),
native AS (
    SELECT d.chain_id, d.donor, d.first_block, d.first_time, w.funder, w.amount, w.block_number, w.block_time,
           w.method, w.funder_is_contract
    FROM donors d
    JOIN qf.wallet_funding w ON w.chain_id = d.chain_id AND w.wallet = d.donor
     AND w.asset = '\xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee'::bytea AND w.block_time <= d.first_time
),
fan_out AS (
    SELECT chain_id, funder, count(*) AS donors FROM native GROUP BY chain_id, funder
),
trail AS (
    SELECT n.chain_id, n.donor, n.funder::bytea AS wallet, n.block_number AS funded_block, 1 AS hops,
           ARRAY[n.funder::bytea] AS path
    FROM native n
    UNION ALL
    SELECT t.chain_id, t.donor, w.funder::bytea, w.block_number, t.hops + 1, t.path || w.funder::bytea
    FROM trail t
    JOIN qf.wallet_funding w ON w.chain_id = t.chain_id AND w.wallet = t.wallet
     AND w.asset = '\xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee'::bytea AND w.block_number <= t.funded_block
    WHERE t.hops < 3 AND w.funder::bytea <> ALL (t.path)
      AND NOT EXISTS (SELECT 1 FROM qf.known_sources k WHERE k.chain_id = t.chain_id AND k.address = t.wallet)
),
longest AS (
    SELECT DISTINCT ON (chain_id, donor) chain_id, donor, hops, path FROM trail ORDER BY chain_id, donor, hops DESC
),
token AS (
    SELECT DISTINCT ON (d.chain_id, d.donor) d.chain_id, d.donor, w.asset, w.funder, w.amount, w.block_time
    FROM donors d
    JOIN qf.wallet_funding w ON w.chain_id = d.chain_id AND w.wallet = d.donor
     AND w.asset <> '\xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee'::bytea AND w.block_time <= d.first_time
    ORDER BY d.chain_id, d.donor, w.block_number, w.asset
)
SELECT d.chain_id,
       '0x' || encode(d.donor, 'hex')                             AS donor,
       d.first_block                                              AS first_donation_block,
       d.first_time                                               AS first_donation_time,
       '0x' || encode(n.funder, 'hex')                            AS funder,
       n.amount                                                   AS funded_amount_raw,
       n.block_number                                             AS funded_block,
       n.block_time                                               AS funded_time,
       extract(epoch FROM d.first_time - n.block_time)::bigint    AS seconds_before_first_donation,
       n.method                                                   AS funding_method,
       k.label                                                    AS funder_label,
       k.kind                                                     AS funder_kind,
       n.funder_is_contract,
       f.donors - 1                                               AS funder_other_donors,
       l.hops                                                     AS trail_depth,
       (SELECT array_agg('0x' || encode(p, 'hex') ORDER BY i) FROM unnest(l.path) WITH ORDINALITY AS u(p, i)) AS trail,
       '0x' || encode(t.asset, 'hex')                             AS token,
       '0x' || encode(t.funder, 'hex')                            AS token_funder,
       t.amount                                                   AS token_funded_amount_raw,
       t.block_time                                               AS token_funded_time,
       q.status                                                   AS search_status
FROM donors d
LEFT JOIN native n ON n.chain_id = d.chain_id AND n.donor = d.donor
LEFT JOIN fan_out f ON f.chain_id = n.chain_id AND f.funder = n.funder
LEFT JOIN qf.known_sources k ON k.chain_id = n.chain_id AND k.address = n.funder
LEFT JOIN longest l ON l.chain_id = d.chain_id AND l.donor = d.donor
LEFT JOIN token t ON t.chain_id = d.chain_id AND t.donor = d.donor
LEFT JOIN qf.funding_wallets q ON q.chain_id = d.chain_id AND q.wallet = d.donor;
COMMENT ON VIEW qf.donor_funding IS
    'Per donor: its first native funding before its first donation, the funder''s known-source label, how many '
    'other donors the same funder funded, the peel chain behind it, and its first funding in a donated ERC-20.';
COMMENT ON COLUMN qf.donor_funding.chain_id IS 'EIP-155 chain id.';
COMMENT ON COLUMN qf.donor_funding.donor IS 'Donor (the Allocated sender), 0x-hex.';
COMMENT ON COLUMN qf.donor_funding.first_donation_block IS 'Block of its first indexed donation.';
COMMENT ON COLUMN qf.donor_funding.first_donation_time IS 'Time of its first indexed donation.';
COMMENT ON COLUMN qf.donor_funding.funder IS 'Sender of its first incoming native transfer (at or before the first donation), 0x-hex; NULL when unknown.';
COMMENT ON COLUMN qf.donor_funding.funded_amount_raw IS 'Wei received in that transfer.';
COMMENT ON COLUMN qf.donor_funding.funded_block IS 'Block of that transfer.';
COMMENT ON COLUMN qf.donor_funding.funded_time IS 'Time of that transfer.';
COMMENT ON COLUMN qf.donor_funding.seconds_before_first_donation IS 'Seconds from the funding to the first donation.';
COMMENT ON COLUMN qf.donor_funding.funding_method IS 'How the funding was found (trace_filter, ots, import, ...).';
COMMENT ON COLUMN qf.donor_funding.funder_label IS 'The funder''s label in qf.known_sources (an exchange, bridge, faucet), else NULL.';
COMMENT ON COLUMN qf.donor_funding.funder_kind IS 'The funder''s kind in qf.known_sources, else NULL.';
COMMENT ON COLUMN qf.donor_funding.funder_is_contract IS 'Whether the funder has code; NULL when not asked.';
COMMENT ON COLUMN qf.donor_funding.funder_other_donors IS
    'How many other donors the same funder funded first (before their first donation): its fan-out in the index.';
COMMENT ON COLUMN qf.donor_funding.trail_depth IS
    'Hops of the funding trail found behind the donor (1: its funder only; 3: funder''s funder''s funder), '
    'stopping at a known source.';
COMMENT ON COLUMN qf.donor_funding.trail IS 'The funders along the trail, nearest first, 0x-hex.';
COMMENT ON COLUMN qf.donor_funding.token IS 'ERC-20 of its first incoming token transfer among the tokens it donated, 0x-hex.';
COMMENT ON COLUMN qf.donor_funding.token_funder IS 'Sender of that token transfer (0x000...0 for a mint), 0x-hex.';
COMMENT ON COLUMN qf.donor_funding.token_funded_amount_raw IS 'Token base units received in it.';
COMMENT ON COLUMN qf.donor_funding.token_funded_time IS 'Time of that token transfer.';
COMMENT ON COLUMN qf.donor_funding.search_status IS 'The worker''s status for the donor (pending, done, unavailable); NULL: not queued yet.';
