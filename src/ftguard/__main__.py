"""``python -m ftguard``: the CLI."""

from __future__ import annotations

from ftguard.cli import _entry

_entry()
