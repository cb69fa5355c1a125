"""QF Sentinel: shared core for the indexer and the scorer.

This package holds what both processes need: settings, logging, errors, the
database (embedded or external) and its migrations, the local chain and the
round simulators. The ``indexer`` and ``scorer`` packages build on it.
"""

__version__ = "0.1.0"
