"""ftguard: access controls around the fine-tuning of language models."""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftguard.gate import verify_deployment

__all__ = ["__version__", "verify_deployment"]


def __getattr__(name: str) -> Any:
    if name == "verify_deployment":
        from ftguard.gate import verify_deployment

        return verify_deployment
    raise AttributeError(name)
