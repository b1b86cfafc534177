"""Model backends behind one Protocol: local transformers models and OpenAI-compatible APIs."""

from ftguard.behavior.backends._openai import BackendError, OpenAIChatBackend
from ftguard.behavior.backends._protocol import BUILTIN_BACKENDS, Backend, backends
from ftguard.behavior.backends._transformers import TransformersBackend

__all__ = [
    "BUILTIN_BACKENDS",
    "Backend",
    "BackendError",
    "OpenAIChatBackend",
    "TransformersBackend",
    "backends",
]
