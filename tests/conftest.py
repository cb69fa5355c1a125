"""Shared test configuration: fixtures for real services live in tests/fixtures/."""

pytest_plugins = ["tests.fixtures.postgres", "tests.fixtures.chain", "tests.fixtures.rpc_proxy"]
