"""The team server's settings: where its workspace is, what it may read, how it listens."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ftguard._objects import ObjectRoot, is_object_uri, validation_problems

__all__ = ["ObjectRoot", "ServerSettings"]


class ServerSettings(BaseModel):
    """What ``ftguard server`` runs with (a YAML file, or its command-line options)."""

    model_config = ConfigDict(extra="forbid")

    workspace: Path
    """The workspace folder (holding ``.ftguard/``); its keys are read by the server only."""
    database_url: str | None = None
    """A SQLAlchemy URL (PostgreSQL for teams); default: the workspace's database."""
    storage_roots: dict[str, Path | ObjectRoot] = Field(default_factory=dict)
    """Named places job inputs may be read from: a client names ``ROOT/relative/path``. Each is
    an absolute folder, an object-storage URI (``s3://bucket/prefix``), or a mapping
    ``{uri: s3://bucket/prefix, endpoint_url: ..., region: ..., max_bytes: ..., max_objects: ...}``."""
    object_cache: Path | None = None
    """Where inputs from object-storage roots are downloaded, a folder per root (server-private);
    default: ``cache/objects`` in the workspace's ``.ftguard`` folder."""
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

    @field_validator("storage_roots", mode="before")
    @classmethod
    def _uris_are_object_roots(cls, roots: Any) -> Any:
        if not isinstance(roots, dict):
            return roots
        out: dict[Any, Any] = {}
        for name, value in roots.items():
            if isinstance(value, str) and is_object_uri(value):
                value = {"uri": value}
            if isinstance(value, dict):
                try:
                    value = ObjectRoot.model_validate(value)
                except ValidationError as exc:
                    raise ValueError(f"storage root {name}: {validation_problems(exc)}") from None
            out[name] = value
        return out

    @field_validator("storage_roots")
    @classmethod
    def _roots_are_folders(
        cls, roots: dict[str, Path | ObjectRoot]
    ) -> dict[str, Path | ObjectRoot]:
        for name, root in roots.items():
            if not name or "/" in name or "\\" in name or name in (".", ".."):
                raise ValueError(f"storage root name {name!r} must be a plain name")
            if isinstance(root, ObjectRoot):
                if name.startswith("."):
                    raise ValueError(f"object storage root name {name!r} must not start with '.'")
            elif not root.is_absolute():
                raise ValueError(f"storage root {name} must be an absolute path")
        folders = {n: Path(os.path.normpath(r)) for n, r in roots.items() if isinstance(r, Path)}
        for name, folder in folders.items():
            for other, outer in folders.items():
                if other != name and (folder == outer or outer in folder.parents):
                    raise ValueError(
                        f"storage roots {name} and {other} overlap ({folder} is in {outer}): "
                        "the policy's storage_access could be bypassed through the outer one"
                    )
        return roots

    @field_validator("object_cache")
    @classmethod
    def _cache_is_absolute(cls, folder: Path | None) -> Path | None:
        if folder is not None and not folder.is_absolute():
            raise ValueError("object_cache must be an absolute path")
        return folder

    @model_validator(mode="after")
    def _object_roots_know_their_cache(self) -> ServerSettings:
        self.storage_roots = {
            name: root.bind_cache(
                name,
                cache=self.object_cache / name if self.object_cache else None,
                workspace=self.workspace,
            )
            if isinstance(root, ObjectRoot)
            else root
            for name, root in self.storage_roots.items()
        }
        return self
