"""The backend Protocol and registry: anything that turns prompts into answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from ftguard.behavior._types import ModelIdentity
from ftguard.errors import BadInputError

__all__ = ["Backend", "backend", "backend_names", "make_backend"]


@runtime_checkable
class Backend(Protocol):
    """A model that answers chat prompts.

    ``generate`` takes user messages and returns the assistant's answers in the same order.
    ``identity`` names the model by content digest; ``settings`` are the generation
    settings that, with the identity and the suite digest, key the run cache.
    """

    name: str

    def identity(self) -> ModelIdentity: ...

    def settings(self) -> dict[str, object]: ...

    def generate(self, prompts: list[str]) -> list[str]: ...


_REGISTRY: dict[str, Callable[..., Backend]] = {}


def backend(name: str) -> Callable[[Callable[..., Backend]], Callable[..., Backend]]:
    """Register a backend factory under ``name`` (decorator)."""

    def register(factory: Callable[..., Backend]) -> Callable[..., Backend]:
        _REGISTRY[name] = factory
        return factory

    return register


def backend_names() -> list[str]:
    """Names of the registered backends."""
    return sorted(_REGISTRY)


def make_backend(name: str, **kwargs: Any) -> Backend:
    """Create the backend registered as ``name`` with ``kwargs``.

    Raises:
        BadInputError: No backend has that name.

    """
    if name not in _REGISTRY:
        raise BadInputError(f"unknown backend {name!r}; known: {', '.join(backend_names())}")
    return _REGISTRY[name](**kwargs)
