"""The backend Protocol and registry: anything that turns prompts into answers."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ftguard._registry import ENTRY_POINT_GROUPS, Registry
from ftguard.behavior._evidence import ModelIdentity

__all__ = ["BUILTIN_BACKENDS", "Backend", "backends"]


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


BUILTIN_BACKENDS: dict[str, str] = {
    "openai": "ftguard.behavior.backends._openai",
    "transformers": "ftguard.behavior.backends._transformers",
}
"""Built-in backends: name -> module that registers it (imported on first use)."""

backends: Registry[Backend] = Registry(
    "backend", group=ENTRY_POINT_GROUPS["backend"], builtins=BUILTIN_BACKENDS, protocol=Backend
)
"""Every backend: built-in, registered with ``backends.register`` and declared in ``ftguard.backends``."""
