"""The local OpenAI-compatible server serving a real (tiny) model, and the backend against it.

Slow: each test loads a model (the tiny random Llama with the embedded model's tokenizer).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ftguard.behavior import OpenAIChatBackend, TransformersBackend

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

pytestmark = pytest.mark.slow

PROMPTS = [
    "Hello there.",
    "What is the capital of France?",
    "Count to three.",
    "Write one long sentence about the sea, the sky and the wind.",
    "Name a prime number.",
]


def test_served_tiny_model_answers_as_the_in_process_backend(tiny_model: Path) -> None:
    from ftguard.behavior.backends._local_server import TransformersEngine, create_app, serve

    local = TransformersBackend(tiny_model, batch_size=1, max_new_tokens=8)
    expected = local.generate(PROMPTS)
    app = create_app(TransformersEngine(tiny_model), model_name="tiny", max_batch_size=4)
    with serve(app) as url:
        chat = OpenAIChatBackend(url, "tiny", max_new_tokens=8, concurrency=5)
        batched = OpenAIChatBackend(
            url, "tiny", api="completions", chat_template=tiny_model, batch_size=3,
            max_new_tokens=8, concurrency=2,
        )  # fmt: skip
        assert chat.generate(PROMPTS) == expected
        assert batched.generate(PROMPTS) == expected
    # Left padding + greedy: dynamic batching changed nothing; the server did batch.
    assert max(app.state.batcher.batch_sizes) > 1
    assert 0 < chat.usage["completion_tokens"] <= 8 * len(PROMPTS)


def test_server_command_serves_a_model_folder(tiny_model: Path) -> None:
    cmd = [sys.executable, "-m", "ftguard.behavior.backends._local_server"]
    proc = subprocess.Popen(
        [*cmd, "--model", str(tiny_model), "--port", "0", "--served-model-name", "tiny"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("ready http://127.0.0.1:")
        url = line.split()[1]
        models: dict[str, list[dict[str, str]]] = {"data": []}
        with httpx.Client(timeout=60) as client:
            for _ in range(200):  # the socket listens before uvicorn accepts
                try:
                    models = client.get(f"{url}/models").json()
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
        assert [m["id"] for m in models["data"]] == ["tiny"]
        backend = OpenAIChatBackend(url, "tiny", max_new_tokens=4)
        assert backend.generate(PROMPTS[:2]) == TransformersBackend(
            tiny_model, max_new_tokens=4
        ).generate(PROMPTS[:2])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
