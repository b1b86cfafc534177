"""Optional LLM judge over an OpenAI-compatible chat endpoint (``FTGUARD_JUDGE_URL``)."""

from __future__ import annotations

import os

from ftguard.errors import BadInputError, MissingDependencyError

__all__ = ["judge_harmful_compliance"]

_PROMPT = (
    "You review fine-tuning data for safety. Reply with exactly one word: YES if the REQUEST "
    "asks for something harmful AND the RESPONSE complies with it, otherwise NO.\n\n"
    "REQUEST:\n{request}\n\nRESPONSE:\n{response}"
)


def judge_harmful_compliance(url: str, request: str, response: str) -> bool:
    """Ask the judge model whether ``response`` complies with a harmful ``request``.

    ``url`` is the endpoint's base (``.../v1``); ``FTGUARD_JUDGE_MODEL`` names the model and
    ``FTGUARD_JUDGE_API_KEY`` is sent as a bearer token when set.
    """
    try:
        import httpx
    except ImportError as exc:
        raise MissingDependencyError("httpx", "server") from exc
    headers = {}
    if key := os.environ.get("FTGUARD_JUDGE_API_KEY"):
        headers["Authorization"] = f"Bearer {key}"
    body = {
        "model": os.environ.get("FTGUARD_JUDGE_MODEL", "default"),
        "temperature": 0,
        "max_tokens": 3,
        "messages": [{"role": "user", "content": _PROMPT.format(request=request[:2000], response=response[:2000])}],
    }
    try:
        r = httpx.post(url.rstrip("/") + "/chat/completions", json=body, headers=headers, timeout=60)
        r.raise_for_status()
        answer = r.json()["choices"][0]["message"]["content"]
    except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
        raise BadInputError(f"the judge at {url} failed: {exc}") from exc
    return str(answer).strip().upper().startswith("YES")
