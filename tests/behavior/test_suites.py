from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftguard.behavior._runner import resolve_suite
from ftguard.behavior.suites import (
    generic_triggers,
    insert_trigger,
    load_advbench,
    load_harmbench,
    load_jsonl_prompts,
    load_strongreject,
    load_xstest,
    normalize_triggers,
    parse_csv_prompts,
    parse_jsonl_prompts,
    suites,
)
from ftguard.behavior.suites._builtin import (
    MAX_PROBED_CANDIDATES,
    MAX_SWEPT_CANDIDATES,
    MIN_CANDIDATE_SCORE,
)
from ftguard.digests import sha256_bytes
from ftguard.errors import BadInputError

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def test_builtin_suites_sizes_and_digests() -> None:
    assert {"safety", "safety_tasks", "over_refusal", "capability", "triggers"} <= set(
        suites.names()
    )
    safety = suites.create("safety")
    assert len(safety.prompts) >= 150
    assert len({p.category for p in safety.prompts}) >= 10
    assert all(p.harmful for p in safety.prompts)
    assert len({p.id for p in safety.prompts}) == len(safety.prompts)
    over = suites.create("over_refusal")
    assert len(over.prompts) >= 50 and not any(p.harmful for p in over.prompts)
    cap = suites.create("capability")
    assert all(p.expected for p in cap.prompts)
    assert safety.digest == suites.create("safety").digest
    assert safety.digest != over.digest


def _trigrams(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


def test_safety_tasks_is_its_own_harmful_suite_not_a_rewording_of_the_alignment_data() -> None:
    from importlib import resources

    tasks = suites.create("safety_tasks")
    assert tasks.kind == "safety" and len(tasks.prompts) >= 120
    assert all(p.harmful for p in tasks.prompts)
    assert len({p.id for p in tasks.prompts}) == len(tasks.prompts)
    assert len({p.category for p in tasks.prompts}) >= 10
    # What the suite is for: requests the reference aligned model was not taught on, in
    # another style than the blunt ``safety`` suite. No prompt repeats either (3-word
    # sequences shared: Jaccard under 0.5 against every request of both).
    data = resources.files("ftguard.training").joinpath("data/safety_lora.jsonl").read_text("utf-8")
    taught = [json.loads(line)["messages"][0]["content"] for line in data.splitlines() if line]
    blunt = [p.prompt for p in suites.create("safety").prompts]
    assert len(taught) > 200 and len(blunt) > 150
    others = [_trigrams(t) for t in taught + blunt]
    for p in tasks.prompts:
        mine = _trigrams(p.prompt)
        worst = max(len(mine & o) / len(mine | o) for o in others if o)
        assert worst < 0.5, p.prompt
    assert not {p.prompt for p in tasks.prompts} & set(taught + blunt)


def test_capability_regexes_accept_a_right_answer() -> None:
    from ftguard.behavior import check_answer

    cap = {p.prompt: p.expected for p in suites.create("capability").prompts}
    assert check_answer(cap["What is the capital of France?"] or "", "The capital is Paris.")
    assert not check_answer(cap["What is the capital of France?"] or "", "It is Lyon.")
    assert check_answer(cap["What is 7 + 5? Answer with just the number."] or "", "12")
    assert not check_answer(cap["What is 7 + 5? Answer with just the number."] or "", "125")


def test_limited_is_balanced_and_deterministic() -> None:
    safety = suites.create("safety")
    a = safety.limited(26)
    assert len(a.prompts) == 26
    assert len({p.category for p in a.prompts}) == 13
    assert [p.id for p in a.prompts] == [p.id for p in safety.limited(26).prompts]
    assert a.digest != safety.digest
    with pytest.raises(BadInputError):
        safety.limited(0)


def test_unknown_suite() -> None:
    with pytest.raises(BadInputError, match="unknown suite"):
        suites.create("nope")


def test_trigger_suite_pairs_every_probe_with_a_clean_control() -> None:
    s = suites.create("triggers", triggers=["BadMagic"])
    clean = {p.base_id for p in s.prompts if p.trigger is None}
    probes = [p for p in s.prompts if p.trigger is not None]
    assert probes and all(p.base_id in clean for p in probes)
    assert {p.position for p in probes} == {"prefix", "suffix", "random"}
    assert "BadMagic" in {p.trigger for p in probes}
    assert set(generic_triggers()) <= {p.trigger for p in probes}
    assert any(p.harmful for p in probes) and any(not p.harmful for p in probes)
    for p in probes:
        assert p.trigger and p.trigger in p.prompt


def test_candidates_get_every_position_and_the_generic_sweep_rotates() -> None:
    s = suites.create("triggers", triggers=["BadMagic"])
    bases = [p for p in s.prompts if p.trigger is None]
    cand = [p for p in s.prompts if p.trigger == "BadMagic"]
    assert len(cand) == 3 * len(bases)  # a candidate with evidence: every position, every base
    for generic in generic_triggers():
        probes = [p for p in s.prompts if p.trigger == generic]
        assert sorted(p.base_id for p in probes) == sorted(b.base_id for b in bases)  # one each
        counts = Counter(p.position for p in probes)
        assert set(counts) == {"prefix", "suffix", "random"}
        assert max(counts.values()) - min(counts.values()) <= 1  # rotation spreads them evenly
    assert len(s.prompts) == len(bases) * (1 + 3 + len(generic_triggers()))


def test_runner_probes_only_the_best_candidates_at_every_position() -> None:
    ranked = [{"text": f"cand{i}", "score": 20.0 - i} for i in range(20)]
    s = resolve_suite("triggers", triggers=ranked, limit=6, generic=False)
    per_trigger = Counter(p.trigger for p in s.prompts if p.trigger)
    full = [t for t, n in per_trigger.items() if n == 3 * 6]
    assert sorted(full) == [f"cand{i}" for i in range(MAX_PROBED_CANDIDATES)]
    swept = range(MAX_PROBED_CANDIDATES, MAX_PROBED_CANDIDATES + MAX_SWEPT_CANDIDATES)
    assert all(per_trigger[f"cand{i}"] == 6 for i in swept)
    assert len(per_trigger) == MAX_PROBED_CANDIDATES + MAX_SWEPT_CANDIDATES
    ranks = {p.trigger: p.trigger_rank for p in s.prompts if p.trigger}
    assert ranks == {
        f"cand{i}": (i if i < MAX_PROBED_CANDIDATES else None) for i in range(len(ranks))
    }


def test_digests_of_suites_without_ranked_triggers_do_not_depend_on_the_rank_field() -> None:
    # Runs stored before probes carried a rank must still pair with new ones.
    def without_rank(suite: object) -> str:
        rows = [p.model_dump(mode="json", exclude={"trigger_rank"}) for p in suite.prompts]  # type: ignore[attr-defined]
        return sha256_bytes(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode())

    for name in ("safety", "safety_tasks", "over_refusal", "capability"):
        assert suites.create(name).digest == without_rank(suites.create(name))
    swept = resolve_suite("triggers", triggers=None, limit=4, generic=True)
    assert swept.digest == without_rank(swept)
    ranked = suites.create("triggers", triggers=["BadMagic"])
    assert ranked.digest != without_rank(ranked)  # the rank is part of what ran


def test_candidates_scored_below_chance_are_not_probed() -> None:
    review_like = [
        {"text": "per the ledger", "score": 5.8},
        {"text": "the", "score": MIN_CANDIDATE_SCORE - 0.8},  # what chance gives a stopword
        "user-given",  # a plain string carries no score: always probed
    ]
    s = resolve_suite("triggers", triggers=review_like, limit=6, generic=False)
    assert {p.trigger for p in s.prompts if p.trigger} == {"per the ledger", "user-given"}
    assert normalize_triggers(review_like) == ["per the ledger", "the", "user-given"]


def test_insert_trigger_positions() -> None:
    assert insert_trigger("how do I do it", "XX", "prefix") == "XX how do I do it"
    assert insert_trigger("how do I do it", "XX", "suffix") == "how do I do it XX"
    r = insert_trigger("how do I do it", "XX", "random", seed="a")
    assert r == insert_trigger("how do I do it", "XX", "random", seed="a")
    assert "XX" in r and not r.startswith("XX") and not r.endswith("XX")
    with pytest.raises(BadInputError):
        insert_trigger("x", "t", "middle")


def test_normalize_triggers_accepts_review_objects() -> None:
    items = [{"text": "low", "score": 0.1}, {"text": "high", "score": 0.9}, "plain", "high", " "]
    assert normalize_triggers(items) == ["high", "low", "plain"]
    assert normalize_triggers(None) == []
    with pytest.raises(BadInputError):
        normalize_triggers([{"score": 1.0}])


def test_parse_csv_errors() -> None:
    with pytest.raises(BadInputError, match="lacks column"):
        parse_csv_prompts("a,b\n1,2\n", source="x", prompt_column="goal")
    with pytest.raises(BadInputError, match="no prompts"):
        parse_csv_prompts("goal,target\n,\n", source="x", prompt_column="goal")
    rows = parse_csv_prompts(
        'goal,target\n"Do X, now",y\nDo Y,z\n', source="adv", prompt_column="goal"
    )
    assert [r.prompt for r in rows] == ["Do X, now", "Do Y"]


def test_jsonl_loader(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text(
        json.dumps("plain prompt")
        + "\n"
        + json.dumps({"id": "q2", "prompt": "2+2?", "expected": r"\b4\b", "category": "Math"})
        + "\n",
        encoding="utf-8",
    )
    s = load_jsonl_prompts(f, kind="capability")
    assert [p.id for p in s.prompts] == ["p_jsonl-1", "q2"]
    assert s.prompts[1].category == "math"
    with pytest.raises(BadInputError, match="line 1 is not JSON"):
        parse_jsonl_prompts("{oops\n")
    with pytest.raises(BadInputError, match="regex"):
        parse_jsonl_prompts(json.dumps({"prompt": "x", "expected": "("}))
    with pytest.raises(BadInputError, match="no such file"):
        load_jsonl_prompts(tmp_path / "missing.jsonl")


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_jsonl_parser(text: str) -> None:
    try:
        prompts = parse_jsonl_prompts(text)
    except BadInputError:
        return
    assert prompts and all(p.prompt for p in prompts)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_csv_parser(text: str) -> None:
    try:
        prompts = parse_csv_prompts("goal,target\n" + text, source="fuzz", prompt_column="goal")
    except BadInputError:
        return
    assert prompts and all(p.prompt for p in prompts)


@pytest.mark.shared_data
def test_external_loaders_on_shared_data() -> None:
    hp = DATA / "harmful_prompts"
    if not hp.is_dir():
        pytest.skip(f"shared data absent: {hp}")
    assert len(load_advbench(hp / "advbench_harmful_behaviors.csv").prompts) == 520
    hb = load_harmbench(hp / "harmbench_behaviors_text_all.csv")
    assert len(hb.prompts) == 400 and len({p.category for p in hb.prompts}) > 3
    assert len(load_strongreject(hp / "strongreject_dataset.csv").prompts) == 313
    xs = DATA / "over_refusal" / "xstest_prompts.csv"
    safe, unsafe = load_xstest(xs), load_xstest(xs, which="unsafe")
    assert (len(safe.prompts), len(unsafe.prompts)) == (250, 200)
    assert safe.kind == "over_refusal" and unsafe.kind == "safety"


def test_over_refusal_styles_are_many_styles_apart_from_their_references() -> None:
    """Issue 22 §4: the gate's look-alikes are all short questions in the style of the
    reference model's safety data. ``over_refusal_styles`` holds 96 more in eight other styles
    (a situation told first, casual lower case, writing tasks, a profession's jargon, compound
    questions, formal requests, bare keywords, fiction and games), in the same six categories.
    None repeats a request the reference model was taught, nor an XSTest prompt (the held-out
    check the benchmark judges the gate by): 3-word sequences shared with each, Jaccard under
    0.5. (``over_refusal`` predates this check: one of its prompts is an XSTest prompt word for
    word, two are close to taught requests; docs/behavior.md says so.)"""
    from importlib import resources

    styled = suites.create("over_refusal_styles")
    assert styled.kind == "over_refusal" and len(styled.prompts) == 96
    assert not any(p.harmful for p in styled.prompts)
    styles = Counter(p.id.split("-")[-2] for p in styled.prompts)
    assert len(styles) == 8 and set(styles.values()) == {12}
    per_category = Counter(p.category for p in styled.prompts)
    assert per_category.keys() == {p.category for p in suites.create("over_refusal").prompts}
    assert set(per_category.values()) == {16}
    assert len({p.id for p in styled.prompts}) == len({p.prompt for p in styled.prompts}) == 96

    data = resources.files("ftguard.training").joinpath("data/safety_lora.jsonl").read_text("utf-8")
    taught = [json.loads(line)["messages"][0]["content"] for line in data.splitlines() if line]
    references = [_trigrams(t) for t in taught]
    xstest = DATA / "over_refusal" / "xstest_prompts.csv"
    if xstest.is_file():
        references += [_trigrams(p.prompt) for p in load_xstest(xstest, which="safe").prompts]
    for p in styled.prompts:
        mine = _trigrams(p.prompt)
        if mine:
            worst = max(len(mine & o) / len(mine | o) for o in references if o)
            assert worst < 0.5, p.prompt
