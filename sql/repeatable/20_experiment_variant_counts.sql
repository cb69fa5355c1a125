-- qf.experiment_variant_counts as it is now. Earlier definitions, kept as history: sql/008 (a new database runs them first).
CREATE OR REPLACE VIEW qf.experiment_variant_counts AS
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

COMMENT ON VIEW qf.experiment_variant_counts IS 'Per experiment and variant (all variants, zeros included): exposures (assigned users), conversions (users whose best reward is at least 0.5, for the statistics) and successes (sum of each user''s best reward, for the bandits). A user counts once however many outcomes they have.';
COMMENT ON COLUMN qf.experiment_variant_counts.experiment IS 'The experiment (qf.experiments).';
COMMENT ON COLUMN qf.experiment_variant_counts.variant IS 'The variant.';
COMMENT ON COLUMN qf.experiment_variant_counts.position IS 'Position of the variant in qf.experiments.variants, from 1.';
COMMENT ON COLUMN qf.experiment_variant_counts.exposures IS 'Users assigned to the variant.';
COMMENT ON COLUMN qf.experiment_variant_counts.conversions IS 'Assigned users with a best reward of at least 0.5.';
COMMENT ON COLUMN qf.experiment_variant_counts.successes IS 'Sum over assigned users of their best reward (0 without outcomes).';
