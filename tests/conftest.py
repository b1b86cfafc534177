"""Shared fixtures: the embedded model, a tiny random model, and the reference aligned model.

Model folders are cached under ``$FTGUARD_CACHE`` (else ``~/.cache/ftguard``), so repeated runs
reuse the converted and the aligned model. Tests that use ``aligned_model`` must be marked
``@pytest.mark.slow`` (building it fine-tunes for a few minutes the first time).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """SmolLM2-135M-Instruct as a safetensors folder (converted once, cached)."""
    pytest.importorskip("torch", reason="needs ftguard[ml]")
    from ftguard.models import embedded_model_dir

    return embedded_model_dir()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, embedded_model: Path) -> Path:
    """A tiny random Llama (4 layers, hidden 64, seed 0) with the embedded model's tokenizer."""
    from ftguard.models import tiny_model_dir

    return tiny_model_dir(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def aligned_model(embedded_model: Path) -> Path:
    """The reference aligned model (built once per cache; mark tests using it slow)."""
    from ftguard.training import reference_aligned_model_dir

    return reference_aligned_model_dir(progress=True)


@pytest.fixture(autouse=True)
def _no_team_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Tests use a local workspace unless they start a server: ignore the developer's login."""
    monkeypatch.delenv("FTGUARD_SERVER", raising=False)
    monkeypatch.delenv("FTGUARD_TOKEN", raising=False)
    # One file per test: a test that runs 'ftguard login' must not log in the tests after it.
    monkeypatch.setenv(
        "FTGUARD_CLIENT_CONFIG", str(tmp_path_factory.mktemp("client") / "client.json")
    )
