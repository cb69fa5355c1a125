"""Shared test configuration: fixtures for real services live in tests/fixtures/."""

from hypothesis import HealthCheck, settings

pytest_plugins = [
    "tests.fixtures.postgres", "tests.fixtures.chain", "tests.fixtures.rpc_proxy", "tests.fixtures.rounds",
]

# These machines are shared and noisy: no test may depend on wall-clock speed,
# Hypothesis's own deadline and slow-generation checks included.
settings.register_profile("qf", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("qf")
