"""The suite registry: suites register a factory under a name with :func:`suite`."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from ftguard.behavior._types import SuiteInfo, SuiteKind, SuitePrompt
from ftguard.digests import sha256_bytes
from ftguard.errors import BadInputError

__all__ = ["Suite", "SuiteFactory", "get_suite", "suite", "suite_names"]


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
            p.model_dump(mode="json", exclude=None if p.trigger_rank is not None else {"trigger_rank"})
            for p in self.prompts
        ]
        return sha256_bytes(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode())

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


_REGISTRY: dict[str, SuiteFactory] = {}


def suite(name: str) -> Callable[[SuiteFactory], SuiteFactory]:
    """Register a suite factory under ``name`` (decorator)."""

    def register(factory: SuiteFactory) -> SuiteFactory:
        _REGISTRY[name] = factory
        return factory

    return register


def suite_names() -> list[str]:
    """Names of the registered suites."""
    from ftguard.behavior.suites import _builtin  # noqa: F401  (registers the built-ins)

    return sorted(_REGISTRY)


def get_suite(name: str, *, triggers: Sequence[str] | None = None) -> Suite:
    """Build the suite registered as ``name``.

    Raises:
        BadInputError: No suite has that name.

    """
    names = suite_names()
    if name not in _REGISTRY:
        raise BadInputError(f"unknown suite {name!r}; known suites: {', '.join(names)}")
    return _REGISTRY[name](triggers=triggers)
