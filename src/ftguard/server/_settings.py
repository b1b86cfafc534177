"""The team server's settings: where its workspace is, what it may read, how it listens."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ServerSettings"]


class ServerSettings(BaseModel):
    """What ``ftguard server`` runs with (a YAML file, or its command-line options)."""

    model_config = ConfigDict(extra="forbid")

    workspace: Path
    """The workspace folder (holding ``.ftguard/``); its keys are read by the server only."""
    database_url: str | None = None
    """A SQLAlchemy URL (PostgreSQL for teams); default: the workspace's database."""
    storage_roots: dict[str, Path] = Field(default_factory=dict)
    """Named folders job inputs may be read from: a client names ``ROOT/relative/path``."""
    max_body_bytes: int = Field(default=1 << 20, ge=1024, le=64 << 20)
    """Requests with a larger body are refused (413)."""
    secure_cookies: bool = False
    """Mark the console's cookies ``Secure`` (set when served over TLS or behind a TLS proxy)."""
    auth_failures_per_minute: int = Field(default=20, ge=1, le=10_000)
    """Failed authentications one client address may make a minute before it gets 429."""
    full_verify_seconds: float = Field(default=300.0, gt=0)
    """How often the whole audit chain is verified again (between, only new events are)."""
    analysis_workers: int = Field(default=1, ge=0, le=64)
    """Worker processes that run reviews, weight diffs and evaluations, at a lower CPU
    priority than the process answering requests; 0 runs them in the request's thread."""
    public_url: str | None = None
    """The URL people reach the console at (for OIDC redirects); default: the request's."""

    @field_validator("storage_roots")
    @classmethod
    def _roots_are_folders(cls, roots: dict[str, Path]) -> dict[str, Path]:
        for name, path in roots.items():
            if not name or "/" in name or name in (".", ".."):
                raise ValueError(f"storage root name {name!r} must be a plain name")
            if not path.is_absolute():
                raise ValueError(f"storage root {name} must be an absolute path")
        return roots
