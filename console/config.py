"""What a deployment configures for the console, taken from :class:`qf.settings.Settings` at the edge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.settings import Settings, default_of


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
    #: the one chain shown (None: every indexed chain, with a chain column and filter)
    chain_id: int | None = None
    #: cookies only over HTTPS (set when a TLS proxy fronts the console)
    secure_cookies: bool = False
    #: the key that signs session cookies (the same across restarts keeps sessions)
    session_secret: str = field(default="", repr=False)
    #: largest request body read; larger is refused (413) before parsing
    max_body_bytes: int = default_of("console_max_body_bytes")
    #: addresses or networks of proxies whose X-Forwarded-For is believed (none by default)
    trusted_proxies: tuple[str, ...] = ()
    #: failed logins per client address, and from everyone, per window, before 429
    login_failures: int = default_of("console_login_failures")
    login_global_failures: int = default_of("console_login_global_failures")
    login_window_seconds: float = default_of("console_login_window_seconds")

    def __post_init__(self) -> None:
        if not self.reviewers and not self.viewers:
            raise ConfigError(
                "the console needs at least one login: set QF_CONSOLE_REVIEWER_TOKENS (name:token, "
                "a token of 16+ characters) or QF_CONSOLE_VIEWER_TOKENS, or their _FILE variants"
            )
        if not self.session_secret:
            raise ConfigError(
                "the console needs a session signing key: set QF_CONSOLE_SESSION_SECRET or "
                "QF_CONSOLE_SESSION_SECRET_FILE (32+ characters, e.g. `openssl rand -hex 32`)"
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
            session_secret=settings.console_session_secret or "",
            max_body_bytes=settings.console_max_body_bytes,
            trusted_proxies=settings.console_trusted_proxies,
            login_failures=settings.console_login_failures,
            login_global_failures=settings.console_login_global_failures,
            login_window_seconds=settings.console_login_window_seconds,
        )

    def role_of(self, name: str) -> str | None:
        """The role a configured login has now (None once its token is no longer configured)."""
        return "reviewer" if name in self.reviewers else "viewer" if name in self.viewers else None
