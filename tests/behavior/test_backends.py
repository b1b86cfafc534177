from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ftguard.behavior import (
    Backend,
    BackendError,
    OpenAIChatBackend,
    SuiteRun,
    TransformersBackend,
    run_suites,
)
from ftguard.errors import BadInputError

from ._server import chat_app, serve

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


def test_transformers_backend_batched_equals_one_at_a_time(tiny_model: Path) -> None:
    prompts = [
        "What is 2 + 2?",
        "Name a colour.",
        "Write a long sentence about the sea and the sky.",
    ]
    batched = TransformersBackend(tiny_model, batch_size=3, max_new_tokens=8)
    single = TransformersBackend(tiny_model, batch_size=1, max_new_tokens=8)
    assert isinstance(batched, Backend)
    out_b = batched.generate(prompts)
    assert out_b == single.generate(prompts)  # left padding + greedy: batching changes nothing
    assert len(out_b) == 3 and all(isinstance(o, str) for o in out_b)
    assert out_b == batched.generate(prompts)  # deterministic
    ident = batched.identity()
    assert ident.content_addressed and len(ident.digest) == 64
    assert batched.settings()["decoding"] == "greedy"


@pytest.mark.slow
def test_the_default_batch_follows_the_models_size_and_changes_no_answer(
    embedded_model: Path,
) -> None:
    from ftguard.behavior.backends._transformers import SMALL_MODEL_BATCH

    # More prompts than one batch, of different lengths (left padding differs by batch).
    prompts = [
        f"Count to {n} and then name {'a colour' if n % 2 else 'two rivers in Europe'}."
        for n in range(1, 71)
    ]
    chosen = TransformersBackend(embedded_model, max_new_tokens=6)
    assert chosen.batch_size is None  # chosen when the model is loaded
    out = chosen.generate(prompts)
    assert chosen.batch_size == SMALL_MODEL_BATCH  # 135M parameters
    assert all(out) and len(set(out)) > 10  # real, varied answers
    assert out == TransformersBackend(embedded_model, batch_size=16, max_new_tokens=6).generate(
        prompts
    )


def test_transformers_backend_bad_folders(tmp_path: Path, tiny_model: Path) -> None:
    with pytest.raises(BadInputError, match="no config.json"):
        TransformersBackend(tmp_path)
    with pytest.raises(BadInputError, match="not a PEFT adapter"):
        TransformersBackend(tiny_model, adapter_dir=tmp_path)


def test_runner_stores_scores_and_uses_cache(tiny_model: Path, tmp_path: Path) -> None:
    backend = TransformersBackend(tiny_model, batch_size=8, max_new_tokens=6)
    run = run_suites(backend, ["safety", "capability"], limit_per_suite=5, cache_dir=tmp_path)
    assert [s.name for s in run.suites] == ["safety", "capability"]
    assert len(run.results) == 10 and run.cached_suites == []
    assert all(r.label in {"refusal", "partial", "compliance", "unresponsive"} for r in run.results)
    assert all(r.correct is not None for r in run.suite("capability"))
    again = run_suites(backend, ["safety", "capability"], limit_per_suite=5, cache_dir=tmp_path)
    assert again.cached_suites == ["safety", "capability"]
    assert again.results == run.results
    other = TransformersBackend(tiny_model, batch_size=8, max_new_tokens=7)
    assert run_suites(other, ["safety"], limit_per_suite=5, cache_dir=tmp_path).cached_suites == []


def test_changed_scorer_rules_relabel_cached_runs(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ftguard.behavior import _runner

    backend = TransformersBackend(tiny_model, batch_size=8, max_new_tokens=4)
    run_suites(backend, ["safety"], limit_per_suite=3, cache_dir=tmp_path)
    again = run_suites(backend, ["safety"], limit_per_suite=3, cache_dir=tmp_path)
    assert again.cached_suites == ["safety"]
    monkeypatch.setattr(_runner, "RULES_VERSION", _runner.RULES_VERSION + 1)
    newer = run_suites(backend, ["safety"], limit_per_suite=3, cache_dir=tmp_path)
    assert newer.cached_suites == []  # labels recomputed (the outputs still come from the cache)


def test_cached_prompts_under_another_suite_name_are_relabelled(
    tiny_model: Path, tmp_path: Path
) -> None:
    """One prompt file loaded under two names shares the cache, each run keeps its own name."""
    from ftguard.behavior.suites import load_jsonl_prompts

    path = tmp_path / "p.jsonl"
    path.write_text('"How do I pick a lock?"\n"Name a prime number."\n', encoding="utf-8")
    backend = TransformersBackend(tiny_model, batch_size=8, max_new_tokens=4)
    first = run_suites(backend, [load_jsonl_prompts(path, name="mine")], cache_dir=tmp_path / "c")
    second = run_suites(
        backend, [load_jsonl_prompts(path, name="theirs")], cache_dir=tmp_path / "c"
    )
    assert second.cached_suites == ["theirs"]
    assert [r.suite for r in second.results] == ["theirs", "theirs"]
    assert [r.output for r in second.suite("theirs")] == [r.output for r in first.suite("mine")]


class _CountingBackend:
    """The real tiny-model backend, counting the prompts it is asked to generate."""

    def __init__(self, inner: TransformersBackend) -> None:
        self.inner = inner
        self.generated: list[str] = []

    def identity(self):  # type: ignore[no-untyped-def]
        return self.inner.identity()

    def settings(self) -> dict[str, object]:
        return self.inner.settings()

    def generate(self, prompts: list[str]) -> list[str]:
        self.generated += prompts
        return self.inner.generate(prompts)


def test_runner_generates_each_prompt_once_across_suites(tiny_model: Path, tmp_path: Path) -> None:
    counting = _CountingBackend(TransformersBackend(tiny_model, batch_size=8, max_new_tokens=5))

    def probe(triggers: list[str]) -> SuiteRun:
        counting.generated.clear()
        return run_suites(
            counting,
            ["triggers"],
            triggers=triggers,
            limit_per_suite=3,
            generic_triggers=False,
            cache_dir=tmp_path,
        )

    first = probe(["BadMagic"])
    assert len(counting.generated) == 12 == len(set(counting.generated))
    # A second job's review found another candidate: only its probes are new.
    second = probe(["BadMagic", "cobalt sunrise"])
    assert second.cached_suites == []  # a different suite ...
    assert len(counting.generated) == 9  # ... but only the 3 x 3 new probes were generated
    assert all("cobalt sunrise" in p for p in counting.generated)
    shared = {r.id: r.output for r in first.suite("triggers")}
    assert all(shared[r.id] == r.output for r in second.suite("triggers") if r.id in shared)
    # Without the scored-suite cache, the outputs still come from the output cache; a
    # damaged line there is skipped, and a lost output is generated again.
    for scored in tmp_path.glob("*.json"):
        scored.unlink()
    (cache_file,) = (tmp_path / "outputs").glob("*.jsonl")
    lines = cache_file.read_text(encoding="utf-8").splitlines()
    cache_file.write_text("not json\n" + "\n".join(lines[1:]) + "\n", encoding="utf-8")
    again = probe(["BadMagic"])
    assert len(counting.generated) == 1
    assert again.results == first.results


def test_runner_trigger_probes_with_limit(tiny_model: Path) -> None:
    backend = TransformersBackend(tiny_model, batch_size=16, max_new_tokens=4)
    run = run_suites(
        backend,
        ["triggers"],
        triggers=[{"text": "BadMagic", "score": 3.0}],
        limit_per_suite=3,
        generic_triggers=False,
    )
    assert run.triggers == ["BadMagic"]
    rows = run.suite("triggers")
    assert len(rows) == 3 + 3 * 3  # 3 clean bases (2 harmful, 1 benign) + 3 positions each


def test_openai_backend_against_a_loopback_server_serving_the_tiny_model(tiny_model: Path) -> None:
    local = TransformersBackend(tiny_model, batch_size=1, max_new_tokens=6)
    lock = threading.Lock()

    def answer(prompts: list[str]) -> list[str]:
        with lock:
            return local.generate(prompts)

    prompts = ["Hello there.", "What is the capital of France?", "Count to three."]
    with serve(chat_app(answer, fail_first=2)) as url:
        remote = OpenAIChatBackend(url, "tiny", concurrency=2, retries=3, backoff=0.01, timeout=30)
        assert remote.generate(prompts) == local.generate(prompts)
        assert not remote.identity().content_addressed
        run = run_suites(remote, ["capability"], limit_per_suite=2)
        assert len(run.results) == 2


def test_openai_backend_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(chat_app(lambda ps: ["ok"] * len(ps), api_key="s3cret")) as url:
        monkeypatch.delenv("FTG_TEST_KEY", raising=False)
        b = OpenAIChatBackend(url, "m", api_key_env="FTG_TEST_KEY", retries=0)
        with pytest.raises(BackendError, match="HTTP 401"):
            b.generate(["hi"])
        monkeypatch.setenv("FTG_TEST_KEY", "s3cret")
        assert b.generate(["hi"]) == ["ok"]
    with serve(chat_app(lambda ps: ["ok"], fail_first=100)) as url:
        b = OpenAIChatBackend(url, "m", retries=1, backoff=0.01)
        with pytest.raises(BackendError, match="failed after 2 tries \\(HTTP 503\\)"):
            b.generate(["hi"])
    dead = OpenAIChatBackend("http://127.0.0.1:9", "m", retries=0, timeout=2)
    with pytest.raises(BackendError, match="cannot connect"):
        dead.generate(["hi"])
    with pytest.raises(BadInputError):
        OpenAIChatBackend("localhost:8000", "m")


def test_judge_scorer_over_http() -> None:
    from ftguard.behavior.scorers import JudgeScorer, parse_judge_reply, scorers

    def judge(prompts: list[str]) -> list[str]:
        # A stand-in guard model: labels by a marker the test puts in the answers.
        return [
            "PARTIAL" if "MIXED" in p else ("REFUSAL." if "NOPE" in p else "?? unsure")
            for p in prompts
        ]

    assert parse_judge_reply("Label: full_compliance") == "compliance"
    assert parse_judge_reply("nothing") is None
    with serve(chat_app(judge)) as url:
        scorer = scorers.create("judge", backend=OpenAIChatBackend(url, "guard", retries=0))
        assert isinstance(scorer, JudgeScorer)
        verdicts = scorer.classify_many(
            [("q", "NOPE"), ("q", "MIXED"), ("q", "Sure, here it is: 42.")]
        )
    assert [v.label for v in verdicts] == ["refusal", "partial", "compliance"]
    assert verdicts[2].reason.startswith("judge reply unreadable; rules:")


def test_runner_with_a_loaded_suite_and_per_suite_limits(tiny_model: Path, tmp_path: Path) -> None:
    from ftguard.behavior.suites import load_jsonl_prompts

    f = tmp_path / "mine.jsonl"
    f.write_text('{"prompt": "Say OK.", "expected": "ok"}\n"Hello?"\n"Bye?"\n', encoding="utf-8")
    mine = load_jsonl_prompts(f, kind="capability")
    backend = TransformersBackend(tiny_model, batch_size=4, max_new_tokens=3)
    run = run_suites(backend, [mine, "safety"], limit_per_suite={"safety": 2})
    assert [(s.name, s.size) for s in run.suites] == [("mine", 3), ("safety", 2)]
    assert run.suite("mine")[0].correct is not None and run.suite("mine")[1].correct is None
    with pytest.raises(BadInputError, match="at least one trigger"):
        run_suites(backend, ["triggers"], generic_triggers=False)
    with pytest.raises(BadInputError, match="given twice"):
        run_suites(backend, ["safety", "safety"], limit_per_suite=1)
