"""The digests computed alongside the diff equal ftguard.digests for the same paths."""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ftguard.digests import manifest_of
from ftguard.errors import BadInputError
from ftguard.weights import diff
from ftguard.weights._hashing import Cancelled, hash_file, start_digests, start_manifests

sys.path.insert(0, str(Path(__file__).parent))
from _ckpt import llama_tensors, perturb, write_adapter, write_model  # noqa: E402


def _folder(root: Path) -> Path:
    w = llama_tensors(num_layers=4, seed=1)
    m = write_model(root, w, shards=3)
    (m / "nested" / "deeper").mkdir(parents=True)
    (m / "nested" / "deeper" / "notes.txt").write_text("not weights\n")
    (m / "nested" / "tokenizer.json").write_bytes(os.urandom(3 * (1 << 20) + 17))  # several slices
    (m / "empty.bin").write_bytes(b"")
    return m


def test_manifests_equal_digests_for_multi_file_nested_and_other_files(tmp_path: Path) -> None:
    a, b = _folder(tmp_path / "a"), tmp_path / "b.safetensors"
    b.write_bytes((a / "model-00001-of-00003.safetensors").read_bytes())
    with ThreadPoolExecutor(2) as pool:
        jobs = start_manifests([a, b], pool, first=[[a / "model-00002-of-00003.safetensors"], []])
        got = [j.result() for j in jobs]
    assert got[0] == manifest_of(a) and got[1] == manifest_of(b)
    assert {f.path for f in got[0].files} >= {
        "nested/deeper/notes.txt",
        "nested/tokenizer.json",
        "empty.bin",
    }


def test_diff_reports_the_same_digests_as_the_digests_module(tmp_path: Path) -> None:
    w = llama_tensors(num_layers=4, seed=2)
    base = write_model(tmp_path / "base", w, shards=2)
    (base / "extra").mkdir()
    (base / "extra" / "README.md").write_text("base model\n")
    tuned = write_model(tmp_path / "tuned", perturb(w, 0.01))
    r = diff(base, tuned)
    assert (r.base_digest, r.tuned_digest) == (manifest_of(base).root, manifest_of(tuned).root)
    adapter = write_adapter(tmp_path / "adapter", w)
    (adapter / "README.md").write_text("an adapter\n")
    r = diff(base, adapter)
    assert r.tuned_digest == manifest_of(adapter).root

    one = tmp_path / "one.safetensors"
    one.write_bytes((tuned / "model.safetensors").read_bytes())
    assert (
        diff(tuned / "model.safetensors", one).base_digest
        == manifest_of(tuned / "model.safetensors").root
    )


def test_every_byte_counts_same_size_and_time(tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"a" * 5000)
    st = f.stat()
    first = hash_file(f)
    with open(f, "r+b") as fh:
        fh.seek(4000)
        fh.write(b"b")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
    assert hash_file(f) != first


def test_links_and_empty_folders_are_refused_like_digests(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    with ThreadPoolExecutor(1) as pool, pytest.raises(BadInputError, match="empty"):
        start_manifests([folder], pool)
    (folder / "real.txt").write_text("x")
    (folder / "link.txt").symlink_to(folder / "real.txt")
    with ThreadPoolExecutor(1) as pool, pytest.raises(BadInputError, match="symbolic link"):
        start_manifests([folder], pool)


def test_digests_started_early_give_the_same_report(tmp_path: Path) -> None:
    w = llama_tensors(num_layers=4, seed=3)
    base = write_model(tmp_path / "base", w, shards=2)
    tuned = write_model(tmp_path / "tuned", perturb(w, 0.01), shards=3)
    plain = diff(base, tuned)
    with start_digests(base, tuned) as running:
        early = diff(base, tuned, digests=running)
    assert (early.base_digest, early.tuned_digest) == (
        manifest_of(base).root,
        manifest_of(tuned).root,
    )
    assert early.model_dump(exclude={"seconds"}) == plain.model_dump(exclude={"seconds"})
    with start_digests(base, base) as wrong, pytest.raises(ValueError, match="tuned"):
        diff(base, tuned, digests=wrong)
    with start_digests(base, base) as wrong:  # a known digest needs no hashing
        assert diff(base, tuned, digests=wrong, tuned_digest="1" * 64).tuned_digest == "1" * 64


def test_closing_stops_the_hashing(tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(os.urandom(3 * (1 << 20)))
    stop = threading.Event()
    assert hash_file(f, stop=stop)[0] == manifest_of(f).root
    stop.set()
    with pytest.raises(Cancelled):
        hash_file(f, stop=stop)
    running = start_digests(f, f)
    running.close()  # returns: whatever was left is cancelled or stopped within a block
    with pytest.raises(BadInputError, match="no such file"):
        start_digests(f, tmp_path / "nowhere")
