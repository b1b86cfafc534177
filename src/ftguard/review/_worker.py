"""What the worker processes run: the per-example scanners and dataset features of a chunk."""

from __future__ import annotations

from typing import Any

from ftguard.review._evidence import Finding
from ftguard.review._example import Example
from ftguard.review.scanners._registry import DatasetScanner, ExampleScanner, scanners

__all__ = ["scan_chunk"]

_CACHE: dict[tuple[str, ...], list[Any]] = {}


def _scanners(names: tuple[str, ...]) -> list[Any]:
    if names not in _CACHE:
        _CACHE[names] = [scanners.create(n) for n in names]
    return _CACHE[names]


def scan_chunk(
    names: tuple[str, ...], examples: list[Example]
) -> tuple[list[Finding], dict[str, list[Any]]]:
    """Run the per-example scanners and the dataset scanners' ``features`` over a chunk."""
    findings: list[Finding] = []
    feats: dict[str, list[Any]] = {}
    for sc in _scanners(names):
        if isinstance(sc, ExampleScanner):
            for ex in examples:
                findings.extend(sc.scan(ex))
        if isinstance(sc, DatasetScanner):
            batch = getattr(sc, "features_batch", None)
            feats[sc.name] = (
                batch(examples) if batch is not None else [sc.features(ex) for ex in examples]
            )
    findings.sort(key=lambda f: f.example)
    return findings, feats
