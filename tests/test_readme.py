"""The README is the configuration reference: every setting the code reads is in it."""

from __future__ import annotations

from pathlib import Path

from qf_sentinel.qf.settings import ENV_VARS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text()
    assert [name for name in ENV_VARS if f"`{name}`" not in text] == []
