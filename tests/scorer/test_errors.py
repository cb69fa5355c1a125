"""Every error the sidecar raises on purpose leaves it with the status code its docstring documents."""

from __future__ import annotations

import re

import grpc
import psycopg
import pytest
from psycopg_pool import PoolTimeout

from qf_sentinel.qf.errors import ConfigError, DataError
from qf_sentinel.qf.experiments.errors import UnknownExperiment
from qf_sentinel.scorer import errors
from qf_sentinel.scorer.errors import (
    DependencyDown,
    ModelError,
    NotReady,
    PermissionDenied,
    ScorerError,
    UnknownDonor,
    ValidationError,
)  # fmt: skip
from qf_sentinel.scorer.service import status_of

EXAMPLES: dict[type[ScorerError], ScorerError] = {
    ModelError: ModelError("v1: feature names differ"),
    ValidationError: ValidationError("contribution.amount", "is not a number"),
    PermissionDenied: PermissionDenied("contribution.observed_at", "only an admin token may set it"),
    UnknownDonor: UnknownDonor(b"\x01" * 20, chain_id=31337),
    NotReady: NotReady("no model version is loaded yet"),
    DependencyDown: DependencyDown("experiments"),
}


def documented() -> dict[str, str]:
    """Class name -> status code, read from the tree in ``scorer/errors.py``'s docstring."""
    assert errors.__doc__ is not None
    return dict(re.findall(r"[├└]── (\w+)\s.*?-> ([A-Z_]+)", errors.__doc__))


def subclasses(cls: type[ScorerError]) -> set[type[ScorerError]]:
    found = set(cls.__subclasses__())
    return found.union(*(subclasses(c) for c in found)) if found else found


def test_every_scorer_error_is_documented_with_an_example() -> None:
    assert {c.__name__ for c in subclasses(ScorerError)} == set(documented())
    assert subclasses(ScorerError) == set(EXAMPLES)


@pytest.mark.parametrize("kind", sorted(EXAMPLES, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_each_maps_to_its_documented_code_with_its_own_message(kind: type[ScorerError]) -> None:
    code, message = status_of(EXAMPLES[kind])
    assert code.name == documented()[kind.__name__]
    assert message == str(EXAMPLES[kind])
    assert code != grpc.StatusCode.INTERNAL


def test_errors_from_below_map_as_documented() -> None:
    assert status_of(ConfigError("bad threshold"))[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert status_of(DataError("no donations"))[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert status_of(psycopg.OperationalError("connection refused")) == (
        grpc.StatusCode.UNAVAILABLE, "the database is unavailable; retry later",
    )  # fmt: skip
    assert status_of(PoolTimeout("couldn't get a connection after 2.0 sec"))[0] == grpc.StatusCode.UNAVAILABLE
    # Anything else is a bug: INTERNAL, with nothing of the exception in the message.
    assert status_of(KeyError("secret"))== (grpc.StatusCode.INTERNAL, "internal error")


def test_an_unknown_experiment_from_the_shared_store_is_not_found() -> None:
    """`qf.experiments` raises it below the sidecar; the service still answers NOT_FOUND with its message."""
    assert status_of(UnknownExperiment("checkout")) == (grpc.StatusCode.NOT_FOUND, "unknown experiment 'checkout'")
