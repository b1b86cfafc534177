"""Public names of a package loaded from their modules on first use (PEP 562).

A package lists each public name's home module; importing the package then costs nothing,
and ``from ftguard.weights import start_digests`` loads ``_hashing`` alone. Shared by the
packages whose callers need one light name quickly (the weight diff's command starts hashing
before numpy loads; ``ftguard weights diff`` needs one policy section).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose names live in ``homes``' modules.

    A name is imported on first access and then kept in the package's namespace, so later
    accesses are plain attribute reads; an unknown name raises ``AttributeError`` as usual.

    Args:
        package: The package's ``__name__``.
        homes: Each public name by the submodule that defines it (``"diff": "_diff"``).

    """
    namespace = sys.modules[package].__dict__

    def load(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        namespace[name] = value
        return value

    def names() -> list[str]:
        return sorted({*namespace, *namespace.get("__all__", ())})

    return load, names
