-- UI-variant experiments of the scoring sidecar (scorer/experiments.py, scorer/experiment_store.py).
--
-- An experiment names its variants and the policy that assigns new users (hash buckets or a
-- bandit). A user's first assignment is kept for good: the primary key of
-- qf.experiment_assignments makes it one per (experiment, user), and the store inserts with
-- ON CONFLICT DO NOTHING so concurrent first requests agree on one variant. Outcomes point to
-- their assignment, so nobody can convert in an experiment they were never shown.
-- qf.experiment_variant_counts is what the bandits and the statistics read.

CREATE TABLE qf.experiments (
    name       text        PRIMARY KEY CHECK (name ~ '^[a-z0-9_-]{1,64}$'),
    variants   text[]      NOT NULL CHECK (cardinality(variants) >= 2 AND array_position(variants, NULL) IS NULL),
    baseline   text        NOT NULL CHECK (baseline = ANY (variants)),
    policy     text        NOT NULL CHECK (policy IN ('hash', 'thompson', 'epsilon_greedy')),
    weights    float8[]    CHECK (weights IS NULL OR cardinality(weights) = cardinality(variants)),
    epsilon    float8      NOT NULL DEFAULT 0.1 CHECK (epsilon >= 0 AND epsilon <= 1),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE qf.experiments IS
    'UI-variant experiments of the scoring sidecar: variants, baseline and the policy assigning new users.';
COMMENT ON COLUMN qf.experiments.name IS 'Experiment name, [a-z0-9_-]{1,64}; what AssignVariant asks for.';
COMMENT ON COLUMN qf.experiments.variants IS
    'Variant names in a fixed order (hash buckets follow it); cannot change once users are assigned.';
COMMENT ON COLUMN qf.experiments.baseline IS 'The variant lifts are measured against (one of variants).';
COMMENT ON COLUMN qf.experiments.policy IS
    'How new users are assigned: hash (weighted SHA-256 buckets), thompson (Thompson sampling) or '
    'epsilon_greedy. Existing assignments never change, whatever the policy.';
COMMENT ON COLUMN qf.experiments.weights IS
    'hash policy only: relative share of each variant, same order as variants; NULL = equal shares.';
COMMENT ON COLUMN qf.experiments.epsilon IS 'epsilon_greedy only: probability of assigning a uniformly random variant.';
COMMENT ON COLUMN qf.experiments.created_at IS 'When the experiment was first configured.';

CREATE TABLE qf.experiment_assignments (
    experiment  text        NOT NULL REFERENCES qf.experiments (name) ON DELETE CASCADE,
    user_id     text        NOT NULL CHECK (user_id <> ''),
    variant     text        NOT NULL,
    assigned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment, user_id)
);
COMMENT ON TABLE qf.experiment_assignments IS
    'The variant each user was given, once and for good (sticky); a row is one exposure.';
COMMENT ON COLUMN qf.experiment_assignments.experiment IS 'The experiment (qf.experiments).';
COMMENT ON COLUMN qf.experiment_assignments.user_id IS 'Stable id of the user as the dApp sends it (e.g. the donor address).';
COMMENT ON COLUMN qf.experiment_assignments.variant IS 'The variant shown to the user, one of the experiment''s variants.';
COMMENT ON COLUMN qf.experiment_assignments.assigned_at IS 'When the user was first assigned.';
-- Exposures per variant; the primary key serves the per-user lookups.
CREATE INDEX experiment_assignments_variant_idx ON qf.experiment_assignments (experiment, variant);

CREATE TABLE qf.experiment_outcomes (
    id          bigserial   PRIMARY KEY,
    experiment  text        NOT NULL,
    user_id     text        NOT NULL,
    variant     text        NOT NULL,
    reward      float8      NOT NULL CHECK (reward >= 0 AND reward <= 1),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (experiment, user_id) REFERENCES qf.experiment_assignments (experiment, user_id) ON DELETE CASCADE
);
COMMENT ON TABLE qf.experiment_outcomes IS
    'Rewards of assigned users (RecordOutcome): 1 for a conversion, 0..1 in general; several per user allowed. '
    'Kept one year by default (scorer.experiment_store.delete_older_than).';
COMMENT ON COLUMN qf.experiment_outcomes.id IS 'Row number, in recording order.';
COMMENT ON COLUMN qf.experiment_outcomes.experiment IS 'The experiment (qf.experiments).';
COMMENT ON COLUMN qf.experiment_outcomes.user_id IS 'The user; must have an assignment in the experiment.';
COMMENT ON COLUMN qf.experiment_outcomes.variant IS
    'The user''s variant when the outcome was recorded (copied from the assignment, which never changes).';
COMMENT ON COLUMN qf.experiment_outcomes.reward IS 'Reward in [0, 1]; at least 0.5 counts as a conversion in the statistics.';
COMMENT ON COLUMN qf.experiment_outcomes.recorded_at IS 'When the outcome was recorded; retention deletes by it.';
-- Per-user best reward (joined to assignments per variant), and retention by age.
CREATE INDEX experiment_outcomes_user_idx ON qf.experiment_outcomes (experiment, user_id, reward);
CREATE INDEX experiment_outcomes_recorded_at_idx ON qf.experiment_outcomes (recorded_at);

CREATE VIEW qf.experiment_variant_counts AS
WITH best AS (
    SELECT experiment, user_id, max(reward) AS reward
    FROM qf.experiment_outcomes
    GROUP BY experiment, user_id
)
SELECT e.name AS experiment,
       v.variant,
       v.position,
       count(a.user_id) AS exposures,
       count(*) FILTER (WHERE b.reward >= 0.5) AS conversions,
       coalesce(sum(b.reward), 0) AS successes
FROM qf.experiments e
CROSS JOIN LATERAL unnest(e.variants) WITH ORDINALITY AS v (variant, position)
LEFT JOIN qf.experiment_assignments a ON a.experiment = e.name AND a.variant = v.variant
LEFT JOIN best b ON b.experiment = a.experiment AND b.user_id = a.user_id
GROUP BY e.name, v.variant, v.position;
COMMENT ON VIEW qf.experiment_variant_counts IS
    'Per experiment and variant (all variants, zeros included): exposures (assigned users), conversions (users '
    'whose best reward is at least 0.5, for the statistics) and successes (sum of each user''s best reward, '
    'for the bandits). A user counts once however many outcomes they have.';
COMMENT ON COLUMN qf.experiment_variant_counts.experiment IS 'The experiment (qf.experiments).';
COMMENT ON COLUMN qf.experiment_variant_counts.variant IS 'The variant.';
COMMENT ON COLUMN qf.experiment_variant_counts.position IS 'Position of the variant in qf.experiments.variants, from 1.';
COMMENT ON COLUMN qf.experiment_variant_counts.exposures IS 'Users assigned to the variant.';
COMMENT ON COLUMN qf.experiment_variant_counts.conversions IS 'Assigned users with a best reward of at least 0.5.';
COMMENT ON COLUMN qf.experiment_variant_counts.successes IS 'Sum over assigned users of their best reward (0 without outcomes).';
