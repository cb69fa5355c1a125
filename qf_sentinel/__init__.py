"""QF Sentinel: the one importable package, and the application on top of everything else.

The repository's top-level folders are its subpackages, linked in (``qf_sentinel/qf`` is
``../qf``, and so on for ``indexer``, ``scorer``, ``console`` and the data folders ``sql``,
``contracts_abi``, ``data``): one top-level name, so nothing installed beside it is shadowed.

The layers, each importing only those below it (``tests/test_architecture.py``
holds the code to this, through import-linter's contracts in ``pyproject.toml``)::

    qf_sentinel.cli, .demo, ...  the CLI and the demo (calls the sidecar through scorer.client), batch scoring
                                 (`qf score`: batch) and the retention policy (retention)
    console                      the web console
    indexer | scorer | qf.train  the three components, independent of each other
    qf.model                     the train/serve contract: features, arrays, artifacts, kernels
    qf.matching | qf.sim | ...   the domain core (matching formulas, the simulator, experiments, chain and
                                 database access)
    qf.settings, qf.logs, qf.errors
"""
