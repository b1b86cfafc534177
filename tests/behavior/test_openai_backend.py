"""The OpenAI-compatible backend against a real loopback server (FastAPI + uvicorn).

The server is ``ftguard.behavior.backends._local_server`` with small deterministic engines
(no model): request shapes, request batching, dynamic batching, resumable runs and the
keys that keep a changed model or setting from reusing stored outputs.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ftguard.behavior import BackendError, OpenAIChatBackend, compare, run_suites
from ftguard.behavior.backends._chat_template import ChatTemplate, load_chat_template
from ftguard.behavior.backends._local_server import Completion, create_app, serve
from ftguard.behavior.scorers import RulesScorer
from ftguard.errors import BadInputError

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


class RuleEngine:
    """A deterministic stand-in model: refuses a third of the prompts, answers the rest.

    The answer quotes the rendered prompt's last line before the assistant's turn (the
    user message with its template marks), so a wrong template shows.
    """

    def __init__(self, template: ChatTemplate, *, refuse: Callable[[str], bool] | None = None):
        self.template = template
        self.refuse = refuse or (lambda text: hashlib.sha256(text.encode()).digest()[0] % 3 == 0)
        self.delay = 0.0

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        return self.template.render(messages)

    def complete(self, texts: list[str], max_new_tokens: list[int]) -> list[Completion]:
        time.sleep(self.delay)
        out = []
        for text, limit in zip(texts, max_new_tokens, strict=True):
            if self.refuse(text):
                words = ["I'm", "sorry,", "but", "I", "can't", "help", "with", "that", "request."]
            else:
                words = ["Sure,", "here", "is", "how:", *text.splitlines()[-2:][0].split()]
            words = words[:limit]
            out.append(Completion(" ".join(words), len(text.split()), len(words)))
        return out


@pytest.fixture
def template(tmp_path: Path) -> ChatTemplate:
    path = tmp_path / "chat_template.jinja"
    path.write_text(TEMPLATE, encoding="utf-8")
    return load_chat_template(path)


def _requested(app: object) -> list[str]:
    return [p for request in app.state.received for p in request]  # type: ignore[attr-defined]


def test_chat_and_batched_completions_give_the_same_answers(template: ChatTemplate) -> None:
    app = create_app(RuleEngine(template), model_name="m")
    prompts = [f"Question {i}: how do I bake bread number {i}?" for i in range(10)]
    with serve(app) as url:
        chat = OpenAIChatBackend(url, "m", system_prompt="Be brief.", concurrency=3)
        batched = OpenAIChatBackend(
            url, "m", api="completions", chat_template=template, batch_size=4, concurrency=2,
            system_prompt="Be brief.",
        )  # fmt: skip
        answers = chat.generate(prompts)
        n_chat = len(app.state.received)
        assert batched.generate(prompts) == answers
    assert n_chat == 10  # one conversation a request
    sizes = sorted(len(r) for r in app.state.received[n_chat:])
    assert sizes == [2, 4, 4]  # up to batch_size prompts a request
    # The client rendered the same template the server renders (system message included).
    assert all(p.startswith("<|system|>Be brief.\n<|user|>") for p in _requested(app)[n_chat:])
    assert any(a.startswith("Sure,") for a in answers) and any("sorry" in a for a in answers)
    assert "Sure, here is how: <|user|>Question 0: how do I bake bread number 0?" in answers
    assert chat.usage["requests"] == 10 and chat.usage["completion_tokens"] > 0
    assert batched.usage["requests"] == 3
    assert chat.settings()["chat_template"] == "server"
    assert batched.settings()["chat_template"] == template.digest


def test_concurrent_requests_are_batched_by_the_server(template: ChatTemplate) -> None:
    engine = RuleEngine(template)
    engine.delay = 0.05  # the model is busy while more requests queue up
    app = create_app(engine, model_name="m", max_batch_size=6)
    with serve(app) as url:
        out = OpenAIChatBackend(url, "m", concurrency=12).generate([f"p{i}" for i in range(24)])
    sizes = app.state.batcher.batch_sizes
    assert len(out) == 24 and sum(sizes) == 24
    assert max(sizes) > 1 and max(sizes) <= 6


def _suites_run(url: str, cache: Path | None, **kw: object):  # type: ignore[no-untyped-def]
    backend = OpenAIChatBackend(url, "m", retries=0, concurrency=4, **kw)  # type: ignore[arg-type]
    return run_suites(
        backend, ["safety", "over_refusal"], limit_per_suite=8, cache_dir=cache,
        scorer=RulesScorer(),
    )  # fmt: skip


def test_an_interrupted_run_resumes_with_only_the_missing_prompts(
    template: ChatTemplate, tmp_path: Path
) -> None:
    baseline_engine = RuleEngine(template, refuse=lambda text: True)
    with serve(create_app(baseline_engine, model_name="m")) as url:
        before = _suites_run(url, None)
    with serve(create_app(RuleEngine(template), model_name="m")) as url:
        uninterrupted = _suites_run(url, None)
    all_prompts = [r.prompt for r in uninterrupted.results]
    assert len(all_prompts) == 16 == len(set(all_prompts))

    cache = tmp_path / "cache"
    failing = create_app(RuleEngine(template), model_name="m", fail_after=5)
    with serve(failing) as url, pytest.raises(BackendError, match="HTTP 503"):
        _suites_run(url, cache, model_digest="sha256:tuned")
    first = _requested(failing)
    assert len(first) == 5
    (stored,) = (cache / "outputs").glob("*.jsonl")
    assert len(stored.read_text(encoding="utf-8").splitlines()) == 5  # each kept on arrival

    healthy = create_app(RuleEngine(template), model_name="m")
    with serve(healthy) as url:
        resumed = _suites_run(url, cache, model_digest="sha256:tuned")
    second = _requested(healthy)
    assert sorted(second) == sorted(set(all_prompts) - set(first))  # only the missing ones
    assert resumed.results == uninterrupted.results
    report = compare(before, resumed).to_json_dict()
    expected = compare(before, uninterrupted).to_json_dict()
    for side in (report, expected):
        side.pop("after")  # the model identity: a digest was given to the resumable run only
    assert report == expected
    assert report["verdict"] == "block"  # the stand-in "tuned" model answers harmful prompts


@pytest.mark.parametrize(
    "change",
    [
        {"max_new_tokens": 8},
        {"seed": 1},
        {"stop": ["\n\n"]},
        {"system_prompt": "You are careful."},
        {"model_digest": "sha256:other"},
        {"api": "completions", "chat_template": "PLAIN"},
        {"extra_body": {"top_k": 1}},
    ],
    ids=lambda c: next(iter(c)) if c.get("api") is None else "template",
)
def test_changed_model_or_settings_never_reuse_outputs(
    template: ChatTemplate, tmp_path: Path, change: dict[str, object]
) -> None:
    app = create_app(RuleEngine(template), model_name="m")
    plain = ChatTemplate("plain", "{{ messages[-1]['content'] }}")
    if change.get("chat_template") == "PLAIN":
        change = {**change, "chat_template": plain}
        base: dict[str, object] = {"api": "completions", "chat_template": template}
    else:
        base = {}

    def run(**kw: object) -> int:
        before = len(_requested(app))
        backend = OpenAIChatBackend(url, "m", retries=0, **{"model_digest": "sha256:a", **kw})  # type: ignore[arg-type]
        run_suites(backend, ["safety"], limit_per_suite=3, cache_dir=tmp_path, scorer=RulesScorer())
        return len(_requested(app)) - before

    with serve(app) as url:
        assert run(**base) == 3
        assert run(**base) == 0  # same model, same settings: from the cache
        assert run(**{**base, "concurrency": 1, "batch_size": 2}) == 0  # order only
        assert run(**{**base, **change}) == 3  # anything that changes outputs: generated again


def test_unpinned_remote_models_are_not_cached(template: ChatTemplate, tmp_path: Path) -> None:
    app = create_app(RuleEngine(template), model_name="m")
    with serve(app) as url:
        for _ in range(2):
            backend = OpenAIChatBackend(url, "m")
            run_suites(
                backend, ["safety"], limit_per_suite=2, cache_dir=tmp_path, scorer=RulesScorer()
            )
    assert len(_requested(app)) == 4  # the name alone does not say which weights answered
    assert not (tmp_path / "outputs").exists()


def test_clear_errors(template: ChatTemplate, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="needs chat_template"):
        OpenAIChatBackend("http://127.0.0.1:9/v1", "m", api="completions")
    with pytest.raises(BadInputError, match="applies to api='completions'"):
        OpenAIChatBackend("http://127.0.0.1:9/v1", "m", chat_template=template)
    with pytest.raises(BadInputError, match="concurrency"):
        OpenAIChatBackend("http://127.0.0.1:9/v1", "m", concurrency=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no chat template"):
        OpenAIChatBackend(
            "http://127.0.0.1:9/v1", "m", api="completions", chat_template=tmp_path / "empty"
        )
    app = create_app(RuleEngine(template), model_name="m")
    with serve(app) as url:
        with pytest.raises(BackendError, match="HTTP 404: .*`nope` does not exist"):
            OpenAIChatBackend(url, "nope", retries=0).generate(["hi"])
        with pytest.raises(BackendError, match="HTTP 400: .*greedily"):
            OpenAIChatBackend(url, "m", temperature=0.7, retries=0).generate(["hi"])
    # One request failing for good ends the run with one error; nothing unsent is sent.
    failing = create_app(RuleEngine(template), model_name="m", fail_after=2)
    with serve(failing) as url:
        backend = OpenAIChatBackend(url, "m", retries=1, backoff=0.01, concurrency=1)
        got: list[tuple[int, str]] = []
        with pytest.raises(BackendError, match="failed after 2 tries \\(HTTP 503\\)"):
            got.extend(backend.generate_each([f"p{i}" for i in range(6)]))
    assert [i for i, _ in got] == [0, 1] and len(_requested(failing)) == 2


def test_chat_template_files(tmp_path: Path) -> None:
    config = {
        "bos_token": {"content": "<s>", "lstrip": False},
        "eos_token": "</s>",
        "chat_template": "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] "
        "{{ m['content'] | tojson }}{% endfor %}{{ eos_token if not add_generation_prompt }}",
    }
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    from_config = load_chat_template(tmp_path)
    messages = [{"role": "user", "content": 'say "hé"'}]
    assert from_config.render(messages) == '<s>[user] "say \\"hé\\""'
    assert from_config.render(messages, add_generation_prompt=False).endswith("</s>")
    (tmp_path / "chat_template.jinja").write_text("J:{{ messages[0]['content'] }}", "utf-8")
    from_jinja = load_chat_template(tmp_path)  # the .jinja file wins, as in transformers
    assert from_jinja.render(messages) == 'J:say "hé"'
    assert from_jinja.special_tokens["bos_token"] == "<s>"
    assert from_jinja.digest != from_config.digest
    named = tmp_path / "named.json"
    named.write_text(json.dumps({"chat_template": [{"name": "default", "template": "D"}]}), "utf-8")
    assert load_chat_template(named).render(messages) == "D"
    strict = ChatTemplate("strict", "{{ raise_exception('roles must alternate') }}")
    with pytest.raises(BadInputError, match="roles must alternate"):
        strict.render(messages)
    with pytest.raises(BadInputError, match="no such file"):
        load_chat_template(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "tokenizer_config.json").write_text("{not json", "utf-8")
    with pytest.raises(BadInputError, match="cannot read"):
        load_chat_template(tmp_path / "bad")


def test_chat_template_renders_as_transformers_does(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    ours = load_chat_template(tiny_model)
    for messages in (
        [{"role": "user", "content": "Hello there."}],
        [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"}],
    ):
        assert ours.render(messages) == tok.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )


def test_many_threads_share_one_backend(template: ChatTemplate) -> None:
    """Two runs on one backend at once (before and after in threads) keep their answers apart."""
    app = create_app(RuleEngine(template), model_name="m")
    with serve(app) as url:
        backend = OpenAIChatBackend(url, "m", concurrency=4)
        results: dict[str, list[str]] = {}

        def go(tag: str) -> None:
            results[tag] = backend.generate([f"{tag} {i}" for i in range(12)])

        threads = [threading.Thread(target=go, args=(t,)) for t in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for tag in ("a", "b"):
        expected = [f"{tag} {i}" for i in range(12)]
        pairs = list(zip(results[tag], expected, strict=True))
        assert all(a.endswith(e) for a, e in pairs if a.startswith("Sure"))
        assert sum(a.startswith("Sure") for a, _ in pairs) >= 4
    assert backend.usage["requests"] == 24


@pytest.mark.slow  # the CLI scores with the default scorer, which loads an embedding model
def test_eval_cli_against_a_served_model(
    template: ChatTemplate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ftguard.cli import main

    policy = tmp_path / "policy.yaml"
    policy.write_text("behavior:\n  required_suites: [safety]\n  min_prompts: {safety: 4}\n")
    app = create_app(RuleEngine(template), model_name="m")
    with serve(app) as url:
        args = [
            "eval", "m", "--endpoint", url, "--baseline", "m", "--suite", "safety",
            "--limit", "4", "--model-digest", "sha256:t", "--baseline-digest", "sha256:b",
            "--api", "completions", "--chat-template", str(template.source),
            "--batch-size", "3", "--concurrency", "2", "--cache-dir", str(tmp_path / "c"),
            "--policy", str(policy), "--json",
        ]  # fmt: skip
        assert main(args) == 0
        first = json.loads(capsys.readouterr().out)
        sent = [len(r) for r in app.state.received]
        assert main(args) == 0  # pinned digests: the second run comes from the cache
        assert json.loads(capsys.readouterr().out) == first
        assert len(app.state.received) == len(sent)
    assert sorted(sent) == [1, 1, 3, 3]  # 4 prompts per model, 3 a request
    assert first["verdict"] == "pass"  # the same served model on both sides
    rc = main(["eval", str(tmp_path), "--model-digest", "x", "--cache-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "--model-digest apply to --endpoint" in err
    rc = main(["eval", "m", "--endpoint", "http://127.0.0.1:9/v1", "--api", "bogus"])
    assert rc == 2 and "api must be 'chat' or 'completions'" in capsys.readouterr().err
