"""Shared test configuration: fixtures for real services live in tests/fixtures/."""

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = [
    "tests.fixtures.postgres", "tests.fixtures.chain", "tests.fixtures.rpc_proxy", "tests.fixtures.rounds",
]

# These machines are shared and noisy: no test may depend on wall-clock speed,
# Hypothesis's own deadline and slow-generation checks included.
settings.register_profile("qf", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("qf")

#: The fixtures that start a real PostgreSQL or anvil. Every fixture that needs a database or a chain
#: (db_url, migrated_db_url, chain, labelled_round, console_round, ...) asks for one of them, so a test
#: that uses any of those, directly or through other fixtures, is an integration test.
INTEGRATION_FIXTURES = frozenset({"pg_server_url", "restartable_pg", "anvil_node", "new_anvil"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``integration`` every test whose fixture closure starts PostgreSQL or anvil (see pyproject.toml)."""
    for item in items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
