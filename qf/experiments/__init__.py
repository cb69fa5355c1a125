"""UI-variant experiments: who sees which variant, and what the results say.

The scoring sidecar assigns variants and records outcomes (``AssignVariant``,
``RecordOutcome``, ``GetExperimentStats``) and the console draws the results;
this package is what both use, below them::

    logic   ExperimentConfig, the assignment policies (hash, thompson, epsilon_greedy) and the
            statistics (conversion, lift with its 95% interval, chi-square); pure
    store   the database edge: configurations, sticky assignments, outcomes and their retention
    errors  UnknownExperiment
"""
