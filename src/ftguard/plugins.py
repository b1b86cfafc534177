"""Plugins: one registry per kind of analyzer plugin, with the same verbs for every kind.

=========  ============================  ===========================================  =====================
kind       registry                      what is registered (Protocol)                entry-point group
=========  ============================  ===========================================  =====================
scanner    :data:`scanners`              a class implementing ``Scanner``             ``ftguard.scanners``
suite      :data:`suites`                a factory ``(*, triggers=None) -> Suite``    ``ftguard.suites``
backend    :data:`backends`              a factory returning a ``Backend``            ``ftguard.backends``
scorer     :data:`scorers`               a factory returning a ``RefusalScorer``      ``ftguard.scorers``
=========  ============================  ===========================================  =====================

Every registry has the verbs ``register(name)`` (a decorator), ``create(name, **kwargs)``,
``get(name)`` (the factory), ``names()`` and ``info(name)`` (where a plugin comes from).
Third-party distributions declare their plugins in the kind's entry-point group; see
``docs/plugins.md``. Importing this module is cheap: each kind's registry (and the package
it lives in) is imported on first access.

Example:
    >>> from ftguard.plugins import scanners
    >>> "hidden_text" in scanners.names()
    True
    >>> scanners.create("hidden_text").name
    'hidden_text'

"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ftguard._registry import ENTRY_POINT_GROUPS, PluginInfo, PluginKind, PluginSource, Registry

if TYPE_CHECKING:
    from ftguard.behavior.backends import backends
    from ftguard.behavior.scorers import scorers
    from ftguard.behavior.suites import suites
    from ftguard.review.scanners import scanners

__all__ = [
    "ENTRY_POINT_GROUPS",
    "PluginInfo",
    "PluginKind",
    "PluginSource",
    "Registry",
    "backends",
    "registries",
    "registry",
    "scanners",
    "scorers",
    "suites",
]

_HOMES: dict[str, tuple[PluginKind, str]] = {
    "scanners": ("scanner", "ftguard.review.scanners"),
    "suites": ("suite", "ftguard.behavior.suites"),
    "backends": ("backend", "ftguard.behavior.backends"),
    "scorers": ("scorer", "ftguard.behavior.scorers"),
}
_BY_KIND: dict[PluginKind, tuple[str, str]] = {
    kind: (attr, mod) for attr, (kind, mod) in _HOMES.items()
}


def registry(kind: PluginKind) -> Registry[Any]:
    """The registry of one kind of plugin (``scanner``, ``suite``, ``backend``, ``scorer``).

    Raises:
        KeyError: ``kind`` is not a plugin kind.

    """
    attr, module = _BY_KIND[kind]
    reg: Registry[Any] = getattr(import_module(module), attr)
    return reg


def registries() -> dict[PluginKind, Registry[Any]]:
    """Every kind's registry, by kind."""
    return {kind: registry(kind) for kind in _BY_KIND}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return registry(_HOMES[name][0])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
