"""The application: the ``qf`` command line and the demo, on top of everything else.

The layers, each importing only those below it (``tests/test_architecture.py``
holds the code to this, through import-linter's contracts in ``pyproject.toml``)::

    qf_sentinel                  the CLI and the demo (calls the sidecar through scorer.client), batch scoring
                                 (`qf score`: batch) and the retention policy (retention)
    console                      the web console
    indexer | scorer | qf.train  the three components, independent of each other
    qf.model                     the train/serve contract: features, arrays, artifacts, kernels
    qf.matching | qf.sim | ...   the domain core (matching formulas, the simulator, experiments, chain and
                                 database access)
    qf.settings, qf.logs, qf.errors
"""
