"""OpenAI-compatible backend (vLLM, TGI, llama.cpp server, Ollama) over httpx.

Two request shapes (``api``):

* ``"chat"`` (default): one conversation per ``POST /chat/completions``; the server applies
  the model's chat template. Serve the before and the after model from one server process
  (a base model and its LoRA adapter in one vLLM) or give both servers the same
  ``--chat-template``, so both get the same template.
* ``"completions"``: up to ``batch_size`` prompts per ``POST /completions`` (the legacy
  endpoint takes a list of prompts; chat endpoints do not). The chat template is rendered
  here, from the template file given as ``chat_template``, so the before and the after
  model get the same prompt bytes by construction; its digest is part of the settings.

Up to ``concurrency`` requests are in flight at once (a thread pool over one connection
pool); servers with continuous batching (vLLM, TGI) batch concurrent requests themselves.
Connection errors, timeouts, 429 and 5xx are retried with exponential backoff; every other
failure ends in one clear :class:`BackendError`. :meth:`OpenAIChatBackend.generate_each`
reports each answer as soon as it arrives, so the runner stores it at once and an
interrupted run resumes from the answers it already has.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Literal

from ftguard.behavior._evidence import ModelIdentity
from ftguard.behavior.backends._chat_template import ChatTemplate, load_chat_template
from ftguard.behavior.backends._protocol import backends
from ftguard.digests import sha256_bytes
from ftguard.errors import BadInputError, FtguardError, MissingDependencyError

__all__ = ["DEFAULT_CONCURRENCY", "ApiKind", "BackendError", "OpenAIChatBackend"]

ApiKind = Literal["chat", "completions"]
"""Which endpoint a backend calls: ``/chat/completions`` or the legacy ``/completions``."""

DEFAULT_CONCURRENCY = 16
"""Requests in flight by default: on the loopback benchmark (benchmarks/behavior_speed.py,
a dynamically batching server) 16 gave the highest throughput of 1, 4 and 16; servers with
continuous batching on a GPU (vLLM, TGI) keep gaining up to their batch limit (raise it)."""


class BackendError(FtguardError):
    """The model endpoint failed or answered something unusable (exit code 2)."""


@backends.register("openai")
class OpenAIChatBackend:
    """Generate through an OpenAI-compatible server.

    Args:
        base_url: The API root, for example ``http://localhost:8000/v1``.
        model: The served model name (with vLLM: ``--served-model-name`` or a LoRA module name).
        api_key_env: Environment variable holding the API key (sent as a bearer token when set).
        api: ``"chat"`` (one conversation a request, the server's chat template) or
            ``"completions"`` (``batch_size`` prompts a request, rendered here with
            ``chat_template``).
        concurrency: Requests in flight at once.
        batch_size: Prompts per request with ``api="completions"``.
        retries: Retries per request after the first try.
        timeout: Seconds per request.
        max_new_tokens: ``max_tokens`` of each request.
        temperature: Sampling temperature (0 = greedy).
        seed: ``seed`` of each request (matters only when sampling).
        stop: Stop sequences sent with each request.
        system_prompt: Optional system message.
        chat_template: With ``api="completions"``: a template file or a model/tokenizer
            folder (see :func:`load_chat_template`), or a loaded :class:`ChatTemplate`.
        extra_body: Further request fields, sent as they are (for example vLLM's
            ``{"add_special_tokens": False}``); part of the settings.
        backoff: First retry delay in seconds (doubles each retry).
        model_digest: Digest of the served weights (for example the manifest root of the
            model and adapter folders, or a pinned revision): makes runs cacheable and
            resumable. Without it nothing is cached, since the name alone does not say
            which weights answered.

    Raises:
        BadInputError: A malformed URL, a setting out of range, or ``api="completions"``
            without a chat template.

    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        api: ApiKind = "chat",
        concurrency: int = DEFAULT_CONCURRENCY,
        batch_size: int = 8,
        retries: int = 3,
        timeout: float = 120.0,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        seed: int | None = 0,
        stop: list[str] | None = None,
        system_prompt: str | None = None,
        chat_template: str | Path | ChatTemplate | None = None,
        extra_body: Mapping[str, Any] | None = None,
        backoff: float = 0.5,
        model_digest: str | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise BadInputError(f"base URL must start with http:// or https://, got {base_url!r}")
        if concurrency < 1 or batch_size < 1 or retries < 0 or timeout <= 0:
            raise BadInputError(
                "concurrency and batch_size must be >= 1, retries >= 0 and timeout > 0"
            )
        if max_new_tokens < 1:
            raise BadInputError("max_new_tokens must be at least 1")
        if api not in ("chat", "completions"):
            raise BadInputError(f"api must be 'chat' or 'completions', got {api!r}")
        if model_digest is not None and not model_digest.strip():
            raise BadInputError("model_digest is empty")
        if isinstance(chat_template, str | Path):
            chat_template = load_chat_template(chat_template)
        if api == "completions" and chat_template is None:
            raise BadInputError(
                "api='completions' needs chat_template (the model's template file or folder): "
                "the legacy endpoint would otherwise get the bare prompt"
            )
        if api == "chat" and chat_template is not None:
            raise BadInputError(
                "chat_template applies to api='completions'; with api='chat' the server's "
                "template is used (start the server with the template you want)"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.api: ApiKind = api
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.retries = retries
        self.timeout = timeout
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.seed = seed
        self.stop = list(stop) if stop else None
        self.system_prompt = system_prompt
        self.chat_template = chat_template
        self.extra_body = dict(extra_body or {})
        self.backoff = backoff
        self.model_digest = model_digest
        self.usage: dict[str, int] = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
        """Requests answered and the tokens the server reported (``usage``), summed."""
        self._usage_lock = threading.Lock()

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
        """Request settings that change outputs (they key the output cache).

        Concurrency and batch size are not among them: with greedy decoding they change
        only the order the server sees the prompts in.
        """
        return {
            "decoding": "greedy" if self.temperature <= 0 else "sample",
            "temperature": self.temperature,
            "seed": self.seed,
            "max_new_tokens": self.max_new_tokens,
            "stop": self.stop,
            "system_prompt": self.system_prompt,
            "api": self.api,
            "chat_template": self.chat_template.digest if self.chat_template else "server",
            "extra_body": self.extra_body or None,
        }

    # -- requests -----------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _messages(self, prompt: str) -> list[dict[str, str]]:
        messages = [{"role": "user", "content": prompt}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return messages

    def _body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        if self.stop:
            body["stop"] = self.stop
        body.update(self.extra_body)
        return body

    def _post(self, client: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body``; retry transient failures; the decoded JSON answer."""
        import httpx

        url = f"{self.base_url}/{path}"
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
                data = resp.json()
            except ValueError as exc:
                raise BackendError(f"{url}: the answer is not JSON") from exc
            if not isinstance(data, dict):
                raise BackendError(f"{url}: the answer is not a JSON object")
            self._count(data.get("usage"))
            return data
        raise BackendError(f"{url}: failed after {self.retries + 1} tries ({last})")

    def _count(self, usage: object) -> None:
        with self._usage_lock:
            self.usage["requests"] += 1
            if isinstance(usage, Mapping):
                for key in ("prompt_tokens", "completion_tokens"):
                    value = usage.get(key)
                    if isinstance(value, int):
                        self.usage[key] += value

    def _chat(self, client: Any, prompts: list[str]) -> list[str]:
        [prompt] = prompts
        data = self._post(
            client, "chat/completions", {**self._body(), "messages": self._messages(prompt)}
        )
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise BackendError(
                f"{self.base_url}/chat/completions: not an OpenAI chat completion response"
            ) from exc
        return [str(content or "").strip()]

    def _complete(self, client: Any, prompts: list[str]) -> list[str]:
        assert self.chat_template is not None  # checked in __init__
        texts = [self.chat_template.render(self._messages(p)) for p in prompts]
        data = self._post(client, "completions", {**self._body(), "prompt": texts})
        url = f"{self.base_url}/completions"
        try:
            choices = sorted(data["choices"], key=lambda c: int(c.get("index", 0)))
            outputs = [str(c["text"] or "").strip() for c in choices]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BackendError(f"{url}: not an OpenAI completion response") from exc
        if len(outputs) != len(prompts):
            raise BackendError(f"{url}: {len(outputs)} completions for {len(prompts)} prompts")
        return outputs

    # -- generation ---------------------------------------------------------------------

    def _requests(self, prompts: list[str]) -> list[list[int]]:
        """Prompt indices per request: one each for chat, ``batch_size`` for completions."""
        step = self.batch_size if self.api == "completions" else 1
        return [list(range(i, min(i + step, len(prompts)))) for i in range(0, len(prompts), step)]

    def generate_each(self, prompts: list[str]) -> Iterator[tuple[int, str]]:
        """Yield ``(index, answer)`` for ``prompts`` as the answers arrive.

        Up to ``concurrency`` requests are in flight. When a request fails for good, the
        requests not yet sent are cancelled, the answers of those already in flight are
        still yielded, and then the :class:`BackendError` is raised: a caller that stores
        each answer keeps every answer the server gave.

        Raises:
            BackendError: A request failed after its retries, or the answer was unusable.
            MissingDependencyError: httpx is not installed.

        """
        if not prompts:
            return
        try:
            import httpx
        except ImportError as exc:
            raise MissingDependencyError("httpx", "server") from exc
        call = self._complete if self.api == "completions" else self._chat
        limits = httpx.Limits(max_connections=self.concurrency)
        with httpx.Client(timeout=self.timeout, limits=limits) as client:
            pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="ftguard-http")
            try:
                pending: dict[Future[list[str]], list[int]] = {
                    pool.submit(call, client, [prompts[i] for i in idx]): idx
                    for idx in self._requests(prompts)
                }
                yield from _as_answered(pending)
            finally:
                # Normally nothing is left; when the caller stops early (Ctrl-C), requests
                # not yet sent are dropped and those in flight end with the client.
                pool.shutdown(wait=False, cancel_futures=True)

    def generate(self, prompts: list[str]) -> list[str]:
        """Answers to ``prompts``, ``concurrency`` requests at a time, in input order."""
        out = [""] * len(prompts)
        for index, answer in self.generate_each(prompts):
            out[index] = answer
        return out


def _as_answered(pending: dict[Future[list[str]], list[int]]) -> Iterator[tuple[int, str]]:
    """Yield each finished request's answers; after a failure, drain, then raise it."""
    error: BaseException | None = None
    while pending:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            indices = pending.pop(future)
            if future.cancelled():
                continue
            exc = future.exception()
            if exc is not None:
                if error is None:
                    error = exc
                    for other in pending:
                        other.cancel()  # not sent yet: never sent
                continue
            yield from zip(indices, future.result(), strict=True)
    if error is not None:
        raise error
