"""What a deployment configures for the console, taken from :class:`qf.settings.Settings` at the edge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from qf.errors import ConfigError
from qf.settings import Settings


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    database_url: str = field(repr=False)
    models_dir: Path
    host: str = "127.0.0.1"
    port: int = 8088
    #: name -> token of the logins that may review (the name is the verdicts' source in qf.labels)
    reviewers: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: name -> token of read-only logins
    viewers: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: the chain shown when several are indexed (None: the only one, or the lowest)
    chain_id: int | None = None
    #: cookies only over HTTPS (set when a TLS proxy fronts the console)
    secure_cookies: bool = False

    def __post_init__(self) -> None:
        if not self.reviewers and not self.viewers:
            raise ConfigError(
                "the console needs at least one login: set QF_CONSOLE_REVIEWER_TOKENS (name:token, "
                "a token of 16+ characters) or QF_CONSOLE_VIEWER_TOKENS, or their _FILE variants"
            )
        both = set(self.reviewers) & set(self.viewers)
        if both:
            raise ConfigError(f"console login name(s) {', '.join(sorted(both))} are both reviewer and viewer")

    @classmethod
    def from_settings(cls, settings: Settings, database_url: str) -> ConsoleConfig:
        return cls(
            database_url=database_url,
            models_dir=settings.models_dir,
            host=settings.console_host,
            port=settings.console_port,
            reviewers=settings.console_reviewer_tokens,
            viewers=settings.console_viewer_tokens,
            chain_id=settings.chain_id,
            secure_cookies=settings.console_secure_cookies,
        )
