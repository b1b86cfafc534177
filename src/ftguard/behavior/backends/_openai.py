"""OpenAI-compatible chat backend (vLLM, Ollama, llama.cpp server, TGI) over httpx.

Bounded concurrency (a thread pool), retries with exponential backoff on connection
errors, timeouts, 429 and 5xx; every other failure ends in one clear error.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ftguard.behavior._types import ModelIdentity
from ftguard.behavior.backends._protocol import backends
from ftguard.digests import sha256_bytes
from ftguard.errors import BadInputError, FtguardError, MissingDependencyError

__all__ = ["BackendError", "OpenAIChatBackend"]


class BackendError(FtguardError):
    """The model endpoint failed or answered something unusable (exit code 2)."""


@backends.register("openai")
class OpenAIChatBackend:
    """Generate through an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        base_url: The API root, for example ``http://localhost:8000/v1``.
        model: The served model name.
        api_key_env: Environment variable holding the API key (sent as a bearer token when set).
        concurrency: Requests in flight at once.
        retries: Retries per request after the first try.
        timeout: Seconds per request.
        max_new_tokens: ``max_tokens`` of each request.
        temperature: Sampling temperature (0 = greedy).
        system_prompt: Optional system message.
        backoff: First retry delay in seconds (doubles each retry).
        model_digest: Digest of the served weights, if known: makes runs cacheable.

    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        concurrency: int = 4,
        retries: int = 3,
        timeout: float = 60.0,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        system_prompt: str | None = None,
        backoff: float = 0.5,
        model_digest: str | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise BadInputError(f"base URL must start with http:// or https://, got {base_url!r}")
        if concurrency < 1 or retries < 0 or timeout <= 0:
            raise BadInputError("concurrency must be >= 1, retries >= 0 and timeout > 0")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.retries = retries
        self.timeout = timeout
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.system_prompt = system_prompt
        self.backoff = backoff
        self.model_digest = model_digest

    def identity(self) -> ModelIdentity:
        """The endpoint and model name (content-addressed only when ``model_digest`` is given)."""
        digest = self.model_digest or sha256_bytes(f"{self.base_url}\0{self.model}".encode())
        return ModelIdentity(
            backend=self.name,
            name=f"{self.model} @ {self.base_url}",
            digest=digest,
            content_addressed=self.model_digest is not None,
        )

    def settings(self) -> dict[str, object]:
        """Request settings that change outputs."""
        return {
            "decoding": "greedy" if self.temperature <= 0 else "sample",
            "temperature": self.temperature,
            "max_new_tokens": self.max_new_tokens,
            "system_prompt": self.system_prompt,
        }

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _one(self, client: Any, prompt: str) -> str:
        import httpx

        messages = [{"role": "user", "content": prompt}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature,
        }
        url = f"{self.base_url}/chat/completions"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                resp = client.post(url, json=body, headers=self._headers())
            except httpx.TimeoutException:
                last = f"timed out after {self.timeout:g} s"
                continue
            except httpx.TransportError as exc:
                last = f"cannot connect: {exc}"
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                last = f"HTTP {resp.status_code}"
                continue
            if resp.status_code >= 400:
                detail = resp.text[:200].replace("\n", " ")
                raise BackendError(f"{url}: HTTP {resp.status_code}: {detail}")
            try:
                content = resp.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise BackendError(f"{url}: not an OpenAI chat completion response") from exc
            return str(content or "")
        raise BackendError(f"{url}: failed after {self.retries + 1} tries ({last})")

    def generate(self, prompts: list[str]) -> list[str]:
        """Answers to ``prompts``, ``concurrency`` requests at a time, in input order."""
        if not prompts:
            return []
        try:
            import httpx
        except ImportError as exc:
            raise MissingDependencyError("httpx", "server") from exc
        limits = httpx.Limits(max_connections=self.concurrency)
        with (
            httpx.Client(timeout=self.timeout, limits=limits) as client,
            ThreadPoolExecutor(max_workers=self.concurrency) as pool,
        ):
            return list(pool.map(lambda p: self._one(client, p), prompts))
