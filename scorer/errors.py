"""Exceptions of the scoring sidecar, mapped to gRPC status codes in one place: the service boundary.

Everything the engine, the stores and the request parsers raise on purpose is
a :class:`ScorerError` (itself a :class:`qf.errors.QFError`, so the CLI prints
one line for it)::

    ScorerError
    ├── ModelError         a model version cannot be loaded or served   -> FAILED_PRECONDITION
    ├── ValidationError    a request field is malformed (field, message) -> INVALID_ARGUMENT
    ├── PermissionDenied   a field only an admin token may set           -> PERMISSION_DENIED
    ├── UnknownDonor       a call that needs a donor's history got an unknown donor -> NOT_FOUND
    ├── NotReady           no model or no feature snapshot loaded yet    -> UNAVAILABLE
    └── DependencyDown     the database was just found unreachable: failing fast -> UNAVAILABLE

and from below: ``qf.experiments.errors.UnknownExperiment`` -> NOT_FOUND,
``qf.errors.ConfigError`` / ``DataError`` -> FAILED_PRECONDITION,
an unreachable database (psycopg ``OperationalError``, a pool timeout) -> UNAVAILABLE,
anything else -> INTERNAL (logged with its traceback). The table is
:data:`scorer.service.STATUS_CODES`; ``tests/scorer/test_errors.py`` checks every
class here has its documented code.

Unknown donors are *not* an error when scoring, detecting or recommending:
those calls treat them as cold starts. :class:`UnknownDonor` is for callers
that must have indexed history (see :meth:`scorer.feature_store.FeatureSnapshot.require`).
"""

from __future__ import annotations

from pathlib import Path

from qf_sentinel.qf.errors import QFError


class ScorerError(QFError):
    """Base of every error the scoring sidecar raises on purpose."""


class ModelError(ScorerError):
    """A model version failed verification, loading, warm-up or its self-check; nothing was swapped in.

    The message names the version directory, not its path: it reaches clients of ReloadModels.
    """

    def __init__(self, message: str, *, version_dir: Path | None = None) -> None:
        super().__init__(f"{version_dir.name}: {message}" if version_dir is not None else message)
        self.version_dir = version_dir


class ValidationError(ScorerError):
    """A request field cannot be used; ``field`` names it as the API does (e.g. ``contribution.amount``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownDonor(ScorerError):
    """The donor has no indexed history on the chain (only raised where history is required)."""

    def __init__(self, donor: bytes, *, chain_id: int) -> None:
        super().__init__(f"donor 0x{donor.hex()} has no indexed donations on chain {chain_id}")
        self.donor = donor
        self.chain_id = chain_id


class PermissionDenied(ScorerError):
    """A request field that only an admin token may set (``Contribution.observed_at``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NotReady(ScorerError):
    """A store was read before anything was loaded into it (the server is still starting)."""


class DependencyDown(ScorerError):
    """A dependency (the database) was found unreachable moments ago; the call is refused without waiting."""

    def __init__(self, dependency: str) -> None:
        super().__init__(f"the {dependency} database is unavailable; retry later")
        self.dependency = dependency

