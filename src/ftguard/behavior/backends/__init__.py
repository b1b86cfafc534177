"""Model backends behind one Protocol: local transformers models and OpenAI-compatible APIs."""

from ftguard.behavior.backends._openai import BackendError, OpenAIChatBackend
from ftguard.behavior.backends._protocol import Backend, backend, backend_names, make_backend
from ftguard.behavior.backends._transformers import TransformersBackend

__all__ = [
    "Backend",
    "BackendError",
    "OpenAIChatBackend",
    "TransformersBackend",
    "backend",
    "backend_names",
    "make_backend",
]
