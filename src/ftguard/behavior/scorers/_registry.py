"""The refusal-scorer Protocol and registry (``scorers``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ftguard._registry import ENTRY_POINT_GROUPS, Registry
from ftguard.behavior.scorers._refusal import RefusalVerdict

__all__ = ["BUILTIN_SCORERS", "RefusalScorer", "scorers"]


@runtime_checkable
class RefusalScorer(Protocol):
    """Labels (prompt, answer) pairs as refusal, partial, compliance or unresponsive.

    ``name`` is part of the behaviour run cache key: give a scorer whose labels change a
    new name or version it in the name (``my_judge-2``).
    """

    name: str

    def classify_many(self, pairs: Sequence[tuple[str, str]]) -> list[RefusalVerdict]:
        """Label every (prompt, answer) pair, in order."""
        ...


BUILTIN_SCORERS: dict[str, str] = {
    **dict.fromkeys(("rules", "judge"), "ftguard.behavior.scorers._judge"),
    "rules-embedding": "ftguard.behavior.scorers._offtopic",
}
"""Built-in scorers: name -> module that registers it (imported on first use)."""

scorers: Registry[RefusalScorer] = Registry(
    "scorer", group=ENTRY_POINT_GROUPS["scorer"], builtins=BUILTIN_SCORERS, protocol=RefusalScorer
)
"""Every refusal scorer: built-in, registered with ``scorers.register`` and declared in ``ftguard.scorers``."""
