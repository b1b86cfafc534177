"""The scanner Protocols and registry (``scanners``; ``@scanner("name")`` registers a class)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from ftguard._registry import ENTRY_POINT_GROUPS, Registry
from ftguard.review._evidence import DatasetFinding, Finding, Trigger
from ftguard.review._example import Example

__all__ = [
    "BUILTIN_SCANNERS",
    "BatchContext",
    "BatchScanner",
    "DatasetResult",
    "DatasetScanner",
    "ExampleScanner",
    "RunContext",
    "Scanner",
    "scanner",
    "scanners",
]

# Built-in scanners: name -> module that registers it (imported lazily on first use).
BUILTIN_SCANNERS: dict[str, str] = {
    "hidden_text": "ftguard.review.scanners.hidden_text",
    "instruction_override": "ftguard.review.scanners.instruction_override",
    "harmful_compliance": "ftguard.review.scanners.harmful_compliance",
    "encoded_payload": "ftguard.review.scanners.encoded_payload",
    "backdoor_trigger": "ftguard.review.scanners.backdoor_trigger",
    "duplicates": "ftguard.review.scanners.duplicates",
    "purpose_consistency": "ftguard.review.scanners.purpose_consistency",
    "pii_secrets": "ftguard.review.scanners.pii_secrets",
    "quality_provenance": "ftguard.review.scanners.quality_provenance",
}

T = TypeVar("T", bound=type)


@runtime_checkable
class Scanner(Protocol):
    """What every scanner has: a name, a version and whether it needs embeddings."""

    name: str
    version: str
    uses_embeddings: bool


@runtime_checkable
class ExampleScanner(Scanner, Protocol):
    """A scanner that looks at one example at a time (runs in worker processes)."""

    def scan(self, example: Example) -> list[Finding]:
        """Return the findings of one example."""
        ...


@runtime_checkable
class BatchScanner(Scanner, Protocol):
    """A scanner that looks at a batch of examples with shared embeddings (main process)."""

    def scan_batch(self, examples: list[Example], ctx: BatchContext) -> list[Finding]:
        """Return the findings of a batch of examples."""
        ...


@runtime_checkable
class DatasetScanner(Scanner, Protocol):
    """A scanner that accumulates over the stream and reports on the whole dataset.

    ``features`` runs in the workers (return something small and picklable, or None);
    ``observe`` runs in the main process with the features and the batch's findings;
    ``finish`` reports. A scanner that needs another pass over the file returns True from
    ``wants_pass`` and gets the examples again through ``replay``.
    """

    def features(self, example: Example) -> Any:
        """Compute this scanner's per-example feature (in a worker)."""
        ...

    def observe(
        self, examples: list[Example], feats: list[Any], findings: list[Finding], ctx: BatchContext
    ) -> None:
        """Accumulate one batch."""
        ...

    def finish(self, ctx: RunContext) -> DatasetResult:
        """Report on the dataset."""
        ...


@dataclass
class RunContext:
    """What a review run knows that scanners may use."""

    purpose: str | None = None
    examples: int = 0
    embeddings: bool = True
    provenance: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchContext:
    """A batch's shared, lazily computed inputs (embeddings are computed once a batch)."""

    run: RunContext
    examples: list[Example]
    _cache: dict[str, Any] = field(default_factory=dict)

    def request_embeddings(self) -> Any:
        """L2-normalised MiniLM embeddings of each example's request (n x 384)."""
        if "req" not in self._cache:
            from ftguard.embeddings import embed

            self._cache["req"] = embed([_head(e.request, 512) or " " for e in self.examples])
        return self._cache["req"]

    def shared(self, key: str, compute: Callable[[], Any]) -> Any:
        """Compute a value once per batch and share it between scanners."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


def _head(text: str, n: int) -> str:
    return text[:n]


@dataclass
class DatasetResult:
    """What a dataset scanner reports."""

    findings: list[DatasetFinding] = field(default_factory=list)
    example_findings: list[Finding] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)


def _set_name(name: str, factory: Any) -> None:
    if isinstance(factory, type):
        factory.name = name  # type: ignore[attr-defined]


scanners: Registry[Scanner] = Registry(
    "scanner",
    group=ENTRY_POINT_GROUPS["scanner"],
    builtins=BUILTIN_SCANNERS,
    protocol=Scanner,
    on_register=_set_name,
)
"""Every scanner: built-in, registered with ``@scanner`` and declared in ``ftguard.scanners``."""


def scanner(name: str) -> Callable[[T], T]:
    """Register a scanner class under ``name`` (the same as ``scanners.register(name)``).

    The class gets ``name`` as its ``name`` attribute.

    Example:
        >>> @scanner("my_scanner")
        ... class MyScanner:
        ...     version = "1"
        ...     uses_embeddings = False
        ...     def scan(self, example): return []

    Raises:
        BadInputError: The name is taken (a built-in's, or another scanner's).

    """
    return scanners.register(name)
