"""The suite model and registry: factories register under a name with ``@suites.register``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from ftguard._registry import ENTRY_POINT_GROUPS, Registry
from ftguard.behavior._evidence import SuiteInfo, SuiteKind, SuitePrompt
from ftguard.digests import canonical_json, sha256_bytes
from ftguard.errors import BadInputError

__all__ = ["BUILTIN_SUITES", "Suite", "SuiteFactory", "suites"]


class Suite(BaseModel):
    """A named, versioned list of prompts."""

    name: str
    kind: SuiteKind
    version: str
    prompts: list[SuitePrompt]

    @property
    def digest(self) -> str:
        """SHA-256 over the prompts (canonical JSON), naming exactly what runs."""
        # A field added later enters the digest only where it is set, so suites that do not
        # use it keep the digests they always had (and their cached and stored runs).
        rows = [
            p.model_dump(
                mode="json", exclude=None if p.trigger_rank is not None else {"trigger_rank"}
            )
            for p in self.prompts
        ]
        return sha256_bytes(canonical_json(rows, spaced=True))  # spaced: the digests it had

    def info(self) -> SuiteInfo:
        """The suite's identity as recorded in a run."""
        return SuiteInfo(
            name=self.name,
            kind=self.kind,
            version=self.version,
            digest=self.digest,
            size=len(self.prompts),
        )

    def limited(self, limit: int | None) -> Suite:
        """A deterministic subset of at most ``limit`` prompts, balanced over categories."""
        if limit is None or limit >= len(self.prompts):
            return self
        if limit < 1:
            raise BadInputError(f"limit must be at least 1, got {limit}")
        by_cat: dict[str, list[SuitePrompt]] = {}
        for p in self.prompts:
            by_cat.setdefault(p.category, []).append(p)
        picked: list[SuitePrompt] = []
        round_ = 0
        while len(picked) < limit:
            for items in by_cat.values():
                if round_ < len(items) and len(picked) < limit:
                    picked.append(items[round_])
            round_ += 1
        order = {p.id: i for i, p in enumerate(self.prompts)}
        picked.sort(key=lambda p: order[p.id])
        return self.model_copy(update={"prompts": picked})


@runtime_checkable
class SuiteFactory(Protocol):
    """Builds a suite; ``triggers`` are the candidate triggers to probe (trigger suites)."""

    def __call__(self, *, triggers: Sequence[str] | None = None) -> Suite: ...


BUILTIN_SUITES: dict[str, str] = dict.fromkeys(
    ("safety", "safety_tasks", "over_refusal", "over_refusal_styles", "capability", "triggers"),
    "ftguard.behavior.suites._builtin",
)
"""Built-in suites: name -> module that registers it (imported on first use)."""

suites: Registry[Suite] = Registry(
    "suite", group=ENTRY_POINT_GROUPS["suite"], builtins=BUILTIN_SUITES, protocol=Suite
)
"""Every suite: built-in, registered with ``suites.register`` and declared in ``ftguard.suites``.

``suites.create(name, triggers=...)`` builds one; every factory takes ``triggers``.
"""
