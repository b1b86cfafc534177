"""CLI: `ftguard weights` (registered on the root app when imported)."""

from __future__ import annotations

from ftguard.cli._app import app  # noqa: F401
