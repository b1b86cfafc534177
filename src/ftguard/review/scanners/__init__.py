"""Scanners: one module each, registered by name with ``@scanner``."""

from ftguard.review.scanners._registry import (
    BUILTIN_SCANNERS,
    ENTRY_POINT_GROUP,
    BatchContext,
    BatchScanner,
    DatasetResult,
    DatasetScanner,
    ExampleScanner,
    RunContext,
    Scanner,
    available_scanners,
    create_scanner,
    scanner,
)

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
