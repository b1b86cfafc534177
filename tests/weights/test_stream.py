"""The read-ahead that streams both models from disk while the workers compute."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ftguard.weights import _stream, diff

sys.path.insert(0, str(Path(__file__).parent))
from _ckpt import llama_tensors, perturb, write_model  # noqa: E402


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = llama_tensors(num_layers=4, seed=0)
    root = tmp_path_factory.mktemp("pair")
    return write_model(root / "base", base, shards=2), write_model(
        root / "tuned", perturb(base, 0.05), shards=3
    )


def _relative_changes(base: Path, tuned: Path) -> dict[str, float | None]:
    return {t.name: t.relative_change for t in diff(base, tuned, workers=2).tensors}


@pytest.mark.timeout(120)  # a read-ahead that waits on the workers forever fails, not hangs
@pytest.mark.parametrize("ahead", [0, 1 << 14, 1 << 40])
def test_results_do_not_depend_on_read_ahead_size(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, ahead: int
) -> None:
    """Nothing read ahead, a little, everything: same statistics, no stall."""
    expected = _relative_changes(*pair)
    monkeypatch.setattr(_stream, "WINDOW", 4096)
    monkeypatch.setattr("ftguard.weights._diff.READ_AHEAD", ahead)
    got = _relative_changes(*pair)
    assert got.keys() == expected.keys()
    for name, rel in expected.items():
        assert got[name] == pytest.approx(rel, rel=1e-6)
