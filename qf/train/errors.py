"""Exceptions of training and its offline evaluation::

    QFError                    (qf.errors)
    ├── ConfigError            a training option that cannot be used (an unknown model, a bad fold count)
    └── DataError              the data cannot support what was asked: no donations, too few labels
        ├── MetricError        labels or scores cannot give a metric (one class only, mismatched lengths)
        └── SplitError         the labels cannot support a split (too few of a class, a missing pattern)

``MetricError`` and ``SplitError`` are also ``ValueError``s, as numpy-style
callers expect. ``qf train`` and ``qf eval`` print any of them as one line.
"""

from __future__ import annotations

from qf_sentinel.qf.errors import DataError


class MetricError(DataError, ValueError):
    """Labels or scores cannot give the metric asked for (one class only, mismatched lengths)."""


class SplitError(DataError, ValueError):
    """The labels cannot support the split asked for (too few of a class, a missing pattern)."""
