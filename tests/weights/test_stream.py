"""The read-ahead that streams both models from disk while the workers compute."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ftguard.weights import _safetensors as safetensors_mod
from ftguard.weights import _stream, diff
from ftguard.weights._safetensors import open_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from _ckpt import llama_tensors, perturb, write_model  # noqa: E402


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = llama_tensors(num_layers=4, seed=0)
    root = tmp_path_factory.mktemp("pair")
    return write_model(root / "base", base, shards=2), write_model(root / "tuned", perturb(base, 0.05), shards=3)


def _relative_changes(base: Path, tuned: Path) -> dict[str, float | None]:
    return {t.name: t.relative_change for t in diff(base, tuned, workers=2).tensors}


def test_spans_merge_adjacent_windows_per_file(pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_stream, "WINDOW", 1000)  # several windows per tensor
    base = open_checkpoint(pair[0])
    names = [n for n in base.names if ".layers.0." in n]
    items = [(n, lo, hi) for n in names for lo, hi in _stream.windows(base.info(n).numel)]
    sched = _stream.Schedule([base], items, ahead_bytes=0)
    sched.close()
    spans = sched._spans(0, len(items))
    n_bytes = sum(base.info(n).numel * 4 for n in names)
    assert sum(e - s for ss in spans.values() for s, e in ss) == n_bytes  # every byte once
    for f, ss in spans.items():
        assert all(a[1] != b[0] for a, b in zip(ss, ss[1:], strict=False))  # adjacent ones merged
        for name in names:
            if base.file_of(name) is f:
                start, end = f.span(name, 0, base.info(name).numel * 4)
                assert any(s <= start and end <= e for s, e in ss)  # each tensor inside one span
    base.close()


@pytest.mark.parametrize(("step", "ahead"), [(1, 0), (1 << 12, 1 << 14), (1 << 40, 1 << 40)])
def test_results_do_not_depend_on_read_ahead_sizes(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, step: int, ahead: int
) -> None:
    expected = _relative_changes(*pair)
    monkeypatch.setattr(_stream, "WINDOW", 4096)
    monkeypatch.setattr(_stream, "READ_STEP", step)
    monkeypatch.setattr("ftguard.weights._diff.READ_AHEAD", ahead)
    got = _relative_changes(*pair)
    assert got.keys() == expected.keys()
    for name, rel in expected.items():
        assert got[name] == pytest.approx(rel, rel=1e-6)


def test_prefetch_reads_every_byte_and_leaves_read_errors_to_the_workers(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _relative_changes(*pair)
    ck = open_checkpoint(pair[1])
    name = ck.names[0]
    f = ck.file_of(name)
    start, end = f.span(name, 0, ck.info(name).numel * 4)
    read: list[tuple[int, int]] = []
    real = os.preadv

    def counting(fd: int, buffers: list[memoryview], offset: int) -> int:
        n = real(fd, buffers, offset)
        read.append((offset, n))
        return n

    monkeypatch.setattr(safetensors_mod.os, "preadv", counting)
    f.prefetch(start, end)
    assert sum(n for _, n in read) == end - start
    assert [o for o, _ in read] == sorted(o for o, _ in read)  # sequential, for the kernel's read-ahead
    assert max(n for _, n in read) <= 1 << 20  # through the 1 MiB buffer, not the whole range

    def broken(fd: int, buffers: list[memoryview], offset: int) -> int:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(safetensors_mod.os, "preadv", broken)
    f.prefetch(start, end)  # no error from the read-ahead itself
    ck.close()
    monkeypatch.undo()
    assert _relative_changes(*pair) == expected
