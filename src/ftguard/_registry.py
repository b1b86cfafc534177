"""One generic plugin registry: register by decorator, create by name, discover entry points.

Every kind of analyzer plugin (scanners, suites, backends, scorers) has one
:class:`Registry`. A registry knows three sources of names, looked up in this order:

1. names registered with :meth:`Registry.register` (a decorator);
2. built-in names, each mapped to the module that registers it, imported on first use;
3. entry points of the kind's group (``ftguard.scanners``, ...), read from the installed
   distributions' metadata on :meth:`Registry.names` and on the lookup of an unknown name,
   and loaded only when their name is used.

A plugin cannot take the name of a built-in or of another plugin: the built-in wins, and a
second registration under a taken name is refused. A plugin that fails to load is one
:class:`~ftguard.errors.BadInputError` naming its distribution and entry point, raised when
that plugin is used, never when ftguard is imported or another plugin is used.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any, Generic, Literal, TypeVar, cast

from ftguard.errors import BadInputError, FtguardError

__all__ = ["ENTRY_POINT_GROUPS", "PluginInfo", "PluginKind", "PluginSource", "Registry"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

PluginKind = Literal["scanner", "suite", "backend", "scorer"]
"""The kinds of plugin ftguard has."""

PluginSource = Literal["builtin", "registered", "entry_point"]
"""Where a plugin came from: ftguard itself, a ``register`` call, or an installed distribution."""

ENTRY_POINT_GROUPS: dict[PluginKind, str] = {
    "scanner": "ftguard.scanners",
    "suite": "ftguard.suites",
    "backend": "ftguard.backends",
    "scorer": "ftguard.scorers",
}
"""The entry-point group third-party distributions declare their plugins in, per kind."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


@dataclass(frozen=True)
class PluginInfo:
    """Where a registered plugin comes from (what a stored run can name)."""

    kind: str
    """The plugin's kind (``scanner``, ``suite``, ``backend``, ``scorer``)."""
    name: str
    """The name it is registered under."""
    source: PluginSource
    """``builtin``, ``registered`` (a ``register`` call) or ``entry_point``."""
    target: str
    """The factory as ``module:qualname``."""
    distribution: str | None = None
    """For entry points: the distribution that declares it."""
    distribution_version: str | None = None
    """For entry points: that distribution's version."""
    entry_point: str | None = None
    """For entry points: ``name = value`` as declared."""

    @property
    def origin(self) -> str:
        """One phrase saying where the plugin comes from."""
        if self.source == "entry_point":
            return f"entry point {self.entry_point!r} of {self.distribution} {self.distribution_version}"
        if self.source == "builtin":
            return f"built-in ({self.target})"
        return f"registered by {self.target}"


def _target(obj: object) -> str:
    module = getattr(obj, "__module__", None) or "?"
    return f"{module}:{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def _dist_of(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "an unknown distribution", "?"
    return str(dist.metadata["Name"] or dist.name), str(dist.version)


def _describe(ep: EntryPoint) -> str:
    name, version = _dist_of(ep)
    return (
        f"entry point '{ep.name} = {ep.value}' (group {ep.group}) of distribution {name} {version}"
    )


class Registry(Generic[T]):
    """Plugins of one kind, by name.

    Args:
        kind: What the plugins are (``scanner``, ...), used in messages.
        group: The entry-point group third-party plugins are declared in.
        builtins: Built-in names, each mapped to the module that registers it (imported on
            first use of one of its names).
        protocol: A ``runtime_checkable`` Protocol or class that everything :meth:`create`
            makes must be an instance of.
        on_register: Called with ``(name, factory)`` when a factory is registered (for
            example to set a class's ``name`` attribute).

    Example:
        >>> widgets: Registry[object] = Registry("widget", group="example.widgets")
        >>> @widgets.register("plain")
        ... class Plain:
        ...     pass
        >>> widgets.names()
        ['plain']
        >>> type(widgets.create("plain")).__name__
        'Plain'

    """

    def __init__(
        self,
        kind: str,
        *,
        group: str,
        builtins: Mapping[str, str] | None = None,
        protocol: type | None = None,
        on_register: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.kind = kind
        self.group = group
        self._builtins = dict(builtins or {})
        self._protocol = protocol
        self._on_register = on_register
        self._factories: dict[str, Callable[..., T]] = {}
        self._infos: dict[str, PluginInfo] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, group={self.group!r})"

    # -- the verbs ----------------------------------------------------------------------

    def register(self, name: str) -> Callable[[F], F]:
        """Register a factory (a class, or a function returning the plugin) under ``name``.

        Use as a decorator: ``@scanners.register("my_scanner")``. Registering the same object
        twice under the same name is harmless; another object under a taken name is refused.

        Raises:
            BadInputError: The name is not a valid plugin name, or already taken.

        """
        self._check_name(name)

        def decorator(factory: F) -> F:
            module = getattr(factory, "__module__", None)
            source: PluginSource = "builtin" if self._builtins.get(name) == module else "registered"
            self._add(name, factory, PluginInfo(self.kind, name, source, _target(factory)))
            return factory

        return decorator

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``, importing or loading it on first use.

        Raises:
            BadInputError: No plugin has that name, or its plugin cannot be loaded.

        """
        factory = self._factories.get(name)
        if factory is not None:
            return factory
        if name in self._builtins:
            import_module(self._builtins[name])
            factory = self._factories.get(name)
            if factory is None:  # a bug in ftguard, not in the caller's input
                raise FtguardError(
                    f"built-in {self.kind} {name!r}: {self._builtins[name]} did not register it"
                )
            return factory
        found = self._entry_points().get(name)
        if found:
            return self._load(name, found)
        raise BadInputError(
            f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self.names()) or 'none'}"
        )

    def create(self, name: str, **kwargs: Any) -> T:
        """Make the plugin registered as ``name``: its factory called with ``kwargs``.

        Raises:
            BadInputError: No plugin has that name, its plugin cannot be loaded, it fails to
                start (entry-point plugins), or it makes something of the wrong kind.

        """
        factory = self.get(name)
        info = self._infos[name]
        if info.source == "entry_point":
            try:
                obj = factory(**kwargs)
            except FtguardError:
                raise
            except Exception as exc:
                raise BadInputError(
                    f"{self.kind} {name!r} ({info.origin}) failed to start: {type(exc).__name__}: {exc}"
                ) from exc
        else:
            obj = factory(**kwargs)
        if self._protocol is not None and not isinstance(obj, self._protocol):
            raise BadInputError(
                f"{self.kind} {name!r} ({info.origin}) made a {type(obj).__name__}, "
                f"which is not a {self._protocol.__name__} (see docs/plugins.md)"
            )
        return cast(T, obj)

    def names(self) -> list[str]:
        """Every name that can be used: built-in, registered and declared by entry points.

        Entry points are listed from the installed distributions' metadata, not loaded.
        """
        return sorted(set(self._builtins) | set(self._factories) | set(self._entry_points()))

    def info(self, name: str) -> PluginInfo:
        """Where the plugin registered as ``name`` comes from (loading it if needed).

        Raises:
            BadInputError: No plugin has that name, or its plugin cannot be loaded.

        """
        factory = self.get(name)
        info = self._infos[name]
        if info.source == "registered":  # imported by another plugin's entry point?
            module = getattr(factory, "__module__", None)
            for ep in self._entry_points().get(name, []):
                if ep.module == module:
                    dist, version = _dist_of(ep)
                    info = PluginInfo(
                        self.kind,
                        name,
                        "entry_point",
                        info.target,
                        dist,
                        version,
                        f"{ep.name} = {ep.value}",
                    )
                    self._infos[name] = info
                    break
        return info

    # -- internals ----------------------------------------------------------------------

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise BadInputError(
                f"{name!r} is not a valid {self.kind} name (letters, digits, '_', '.', '-'; "
                "starting with a letter or digit; at most 100 characters)"
            )

    def _add(self, name: str, factory: Callable[..., T], info: PluginInfo) -> None:
        with self._lock:
            taken = self._factories.get(name)
            if taken is factory:
                return
            if taken is not None:
                raise BadInputError(
                    f"{self.kind} {name!r} is already registered ({self._infos[name].origin}); "
                    f"{info.target} needs another name"
                )
            if info.source != "builtin" and name in self._builtins:
                raise BadInputError(
                    f"{name!r} is the name of a built-in {self.kind}; {info.target} needs another name"
                )
            if self._on_register is not None:
                self._on_register(name, factory)
            self._factories[name] = factory
            self._infos[name] = info

    def _entry_points(self) -> dict[str, list[EntryPoint]]:
        found: dict[str, list[EntryPoint]] = {}
        try:
            declared = list(entry_points(group=self.group))
        except Exception as exc:  # a distribution's unreadable metadata
            raise BadInputError(
                f"cannot read the installed {self.kind} plugins (entry-point group {self.group}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        for ep in declared:
            found.setdefault(ep.name, []).append(ep)
        return found

    def _load(self, name: str, found: list[EntryPoint]) -> Callable[..., T]:
        if len(found) > 1:
            raise BadInputError(
                f"{self.kind} {name!r} is declared by more than one plugin: "
                f"{'; '.join(_describe(ep) for ep in found)}; uninstall all but one"
            )
        ep = found[0]
        where = _describe(ep)
        try:
            obj = ep.load()
        except Exception as exc:
            raise BadInputError(
                f"{self.kind} plugin {name!r} cannot be loaded: {where} raised "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        dist, version = _dist_of(ep)
        info = PluginInfo(
            self.kind,
            name,
            "entry_point",
            ep.value if isinstance(obj, ModuleType) else _target(obj),
            distribution=dist,
            distribution_version=version,
            entry_point=f"{ep.name} = {ep.value}",
        )
        registered = self._factories.get(name)
        if registered is not None:  # its import registered it with the decorator
            if not isinstance(obj, ModuleType) and obj is not registered:
                raise BadInputError(
                    f"{self.kind} plugin {name!r}: {where} names {_target(obj)}, but importing it "
                    f"registered {_target(registered)} under that name"
                )
            self._infos[name] = info
            return registered
        if isinstance(obj, ModuleType) or not callable(obj):
            raise BadInputError(
                f"{self.kind} plugin {name!r}: {where} registers no {self.kind} named {name!r} "
                f"(point it at a class or factory function, or register that name in the module)"
            )
        other = next((n for n, f in self._factories.items() if f is obj), None)
        if other is not None:
            raise BadInputError(
                f"{self.kind} plugin {name!r}: {where} names {_target(obj)}, which is registered "
                f"as {other!r}; use the same name in both places"
            )
        self._add(name, cast(Callable[..., T], obj), info)
        return self._factories[name]
