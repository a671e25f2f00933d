"""What the web app serves: the database URL, the sensor pipeline config and the access token.

The token comes from ``$CHRONO_TOKEN``, else from the caller (``chrono serve --token-file`` or a
config value), else from ``<data_dir>/state/web_token``, which the first start creates with a
fresh random token (mode 0600) so the token stays the same across restarts.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from chrono.core.errors import ConfigError
from chrono.sensors.config import SensorPipelineConfig

TOKEN_ENV = "CHRONO_TOKEN"
TOKEN_FILE_NAME = "web_token"
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class ResolvedToken:
    """The token the app checks, where it came from, and whether this start generated it."""

    value: str = field(repr=False)
    source: str
    """env | config | file"""
    generated: bool
    path: Path | None = None


def token_path(data_dir: Path) -> Path:
    return data_dir / "state" / TOKEN_FILE_NAME


def resolve_token(data_dir: Path, configured: str | None = None) -> ResolvedToken:
    """``$CHRONO_TOKEN``, else ``configured``, else the token file (created on first use)."""
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return ResolvedToken(_checked(env, TOKEN_ENV), "env", False)
    if configured and configured.strip():
        return ResolvedToken(_checked(configured.strip(), "config"), "config", False)
    path = token_path(data_dir)
    if path.is_file():
        stored = path.read_text(encoding="utf-8").strip()
        if stored:
            return ResolvedToken(_checked(stored, str(path)), "file", False, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    # O_EXCL: two servers starting at once must not each print a different token.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return ResolvedToken(_checked(path.read_text(encoding="utf-8").strip(), str(path)),
                             "file", False, path)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(value + "\n")
    return ResolvedToken(value, "file", True, path)


def _checked(value: str, where: str) -> str:
    if len(value) < MIN_TOKEN_CHARS:
        raise ConfigError("token_too_short",
                          f"the token from {where} has fewer than {MIN_TOKEN_CHARS} characters")
    return value


@dataclass
class WebSettings:
    """Everything :func:`chrono.web.create_app` needs."""

    db_url: str
    """Timeline database (``sqlite:///...`` or ``postgresql://...``)."""
    pipeline: SensorPipelineConfig
    """The sensor pipeline's config: its data_dir holds buckets, runs, scenarios and the queue."""
    token: str = field(repr=False)
    """The bearer token every route but ``/health`` requires."""
    session_hours: float = 12.0
    """How long a browser session cookie stays valid."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed to call the API from a browser; empty (the default) turns CORS off."""
    secure_cookie: bool = False
    """Mark the session cookie Secure (set it when serving behind HTTPS)."""

    @property
    def data_dir(self) -> Path:
        return self.pipeline.data_path
