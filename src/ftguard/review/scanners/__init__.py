"""Scanners: one module each, registered by name in :data:`scanners` (``@scanner("name")``)."""

from ftguard.review.scanners._registry import (
    BUILTIN_SCANNERS,
    BatchContext,
    BatchScanner,
    DatasetResult,
    DatasetScanner,
    ExampleScanner,
    RunContext,
    Scanner,
    scanner,
    scanners,
)

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
