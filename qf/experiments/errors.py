"""Exceptions of experiments (the scoring sidecar maps this one to NOT_FOUND)::

    QFError (qf.errors)
    └── UnknownExperiment  no experiment has this name

A configuration that cannot be used is a :class:`qf.errors.ConfigError`, an
impossible count or reward a :class:`qf.errors.DataError`.
"""

from __future__ import annotations

from qf_sentinel.qf.errors import QFError


class UnknownExperiment(QFError):
    """No experiment has this name."""

    def __init__(self, experiment: str) -> None:
        super().__init__(f"unknown experiment {experiment!r}")
        self.experiment = experiment
