"""Exceptions of the train/serve contract::

    QFError                     (qf.errors)
    ├── ConfigError
    │   └── UnsupportedModel    a model the kernels cannot reproduce, or a malformed model file
    │                           (also a ValueError, as the converters' callers expect)
    └── DataError               a version directory that does not fit: a feature order or array
                                width other than the scorer's, a file the manifest does not cover,
                                an edited or mislabelled version (qf.model.artifacts, qf.model.bundle)

The sidecar reports either as a ``ModelError`` (FAILED_PRECONDITION) naming the
version; ``qf train`` prints the line.
"""

from __future__ import annotations

from qf_sentinel.qf.errors import ConfigError


class UnsupportedModel(ConfigError, ValueError):
    """The model (or a saved file) holds something the kernels cannot reproduce exactly."""
