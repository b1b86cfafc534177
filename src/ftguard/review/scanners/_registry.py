"""The scanner plugin protocol and registry (``@scanner("name")``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Protocol, TypeVar, runtime_checkable

from ftguard.errors import BadInputError
from ftguard.review._example import Example
from ftguard.review._models import DatasetFinding, Finding, Trigger

__all__ = [
    "BUILTIN_SCANNERS",
    "ENTRY_POINT_GROUP",
    "BatchContext",
    "BatchScanner",
    "DatasetResult",
    "DatasetScanner",
    "ExampleScanner",
    "RunContext",
    "Scanner",
    "available_scanners",
    "create_scanner",
    "scanner",
]

ENTRY_POINT_GROUP = "ftguard.scanners"

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

_REGISTRY: dict[str, type] = {}
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

    def observe(self, examples: list[Example], feats: list[Any], findings: list[Finding], ctx: BatchContext) -> None:
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


def scanner(name: str) -> Callable[[T], T]:
    """Register a scanner class under ``name``.

    Example:
        >>> @scanner("my_scanner")
        ... class MyScanner:
        ...     version = "1"
        ...     uses_embeddings = False
        ...     def scan(self, example): return []

    """

    def register(cls: T) -> T:
        cls.name = name  # type: ignore[attr-defined]
        _REGISTRY[name] = cls
        return cls

    return register


def _load_entry_points() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep
    return found


def available_scanners() -> list[str]:
    """Names of every scanner that can run: built-in, registered and entry-point ones."""
    names = set(BUILTIN_SCANNERS) | set(_REGISTRY) | set(_load_entry_points())
    return sorted(names)


def create_scanner(name: str, **options: Any) -> Any:
    """Instantiate the scanner registered as ``name``.

    Raises:
        BadInputError: When no scanner has that name.

    """
    if name not in _REGISTRY:
        if name in BUILTIN_SCANNERS:
            import_module(BUILTIN_SCANNERS[name])
        else:
            eps = _load_entry_points()
            if name in eps:
                obj = eps[name].load()
                if name not in _REGISTRY and isinstance(obj, type):
                    scanner(name)(obj)
    if name not in _REGISTRY:
        raise BadInputError(f"no scanner named {name!r} (available: {', '.join(available_scanners())})")
    cls = _REGISTRY[name]
    obj = cls(**options) if options else cls()
    if not isinstance(obj, Scanner):
        raise BadInputError(f"scanner {name!r} lacks name/version/uses_embeddings")
    return obj
