"""TEMPORARY during parallel development: load analyzer policy sections without their packages."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_SRC = Path(__file__).resolve().parents[1]


def _load(package: str) -> ModuleType:
    name = f"ftguard.{package}._policy"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _SRC / package / "_policy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


ReviewPolicy = _load("review").ReviewPolicy
WeightsPolicy = _load("weights").WeightsPolicy
BehaviorPolicy = _load("behavior").BehaviorPolicy
