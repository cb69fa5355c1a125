"""The sidecar's secrets configuration: tokens from variables or files, checked, never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.settings import Settings
from tests.test_cli import assert_one_line_error, qf


def test_tokens_from_the_variable_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("backend:file-token-0123456789abcdef\n\n")
    settings = Settings.from_env({"QF_SCORER_TOKENS": "web:env-token-0123456789abcdef",
                                  "QF_SCORER_TOKENS_FILE": str(path)})  # fmt: skip
    assert settings.scorer_tokens == {"web": "env-token-0123456789abcdef", "backend": "file-token-0123456789abcdef"}
    assert "token-0123" not in repr(settings), "tokens never appear in the settings' repr (logs, tracebacks)"


@pytest.mark.parametrize("value", ["no-colon-here-0123456789", "short:abc", ":nameless-token-0123456789"])
def test_malformed_tokens_are_refused_without_echoing_them(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"QF_SCORER_TOKENS": value})
    assert value.rsplit(":", maxsplit=1)[-1] not in str(info.value) or len(value.rsplit(":", maxsplit=1)[-1]) < 4


def test_duplicate_client_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="appears twice"):
        Settings.from_env({"QF_SCORER_TOKENS": "a:token-one-0123456789abc,a:token-two-0123456789abc"})


@pytest.mark.integration
def test_serve_without_tokens_is_one_line(tmp_path: Path) -> None:
    """`qf serve` with no client token configured refuses to start (an open gate would be worse)."""
    proc = qf("serve", env={"QF_DATABASE_URL": "postgresql://127.0.0.1:1/nothing"}, home=tmp_path)
    assert_one_line_error(proc, "QF_SCORER_TOKENS")


@pytest.mark.integration
def test_unreadable_token_file_is_one_line(tmp_path: Path) -> None:
    proc = qf("serve", env={"QF_SCORER_TOKENS_FILE": str(tmp_path / "missing")}, home=tmp_path)
    assert_one_line_error(proc, "QF_SCORER_TOKENS_FILE", "cannot read")


def test_thresholds_are_overridden_together() -> None:
    """One threshold alone would silently pair with a default instead of the model's: refused."""
    with pytest.raises(ConfigError, match="both"):
        Settings.from_env({"QF_SCORER_REVIEW_THRESHOLD": "0.3"})
    both = Settings.from_env({"QF_SCORER_REVIEW_THRESHOLD": "0.3", "QF_SCORER_BLOCK_THRESHOLD": "0.8"})
    assert (both.scorer_review_threshold, both.scorer_block_threshold) == (0.3, 0.8)
