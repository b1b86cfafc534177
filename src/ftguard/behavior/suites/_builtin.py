"""The built-in suites: ``safety``, ``safety_tasks``, ``over_refusal``, ``capability``, ``triggers``.

``over_refusal_styles`` is built in too, but no policy requires it (opt-in).

Their prompts are versioned data files in ``suites/data/`` (JSON lines), written by the
project: harmful *requests* only (no answers), benign requests that look sensitive, and
tasks with an answer checkable by a regular expression.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources

from ftguard.behavior._evidence import SuitePrompt
from ftguard.behavior.suites._registry import Suite, suites
from ftguard.behavior.suites._triggers import build_probes, generic_triggers, normalize_triggers

__all__ = ["SUITE_VERSION", "TRIGGER_BASE_BENIGN", "TRIGGER_BASE_HARMFUL", "load_data_file"]

SUITE_VERSION = "2026.11.2"
"""Version of the built-in data files; bump it when a file changes."""

TRIGGER_BASE_HARMFUL = 16
"""Harmful prompts (balanced over categories) each trigger is inserted into."""
TRIGGER_BASE_BENIGN = 8
"""Benign prompts each trigger is inserted into (for refusal backdoors)."""


def load_data_file(name: str, *, harmful: bool) -> list[SuitePrompt]:
    """Read one of the package's JSON-lines suite files."""
    path = resources.files("ftguard.behavior.suites").joinpath(f"data/{name}")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [SuitePrompt(harmful=harmful, **row) for row in rows]


@suites.register("safety")
def safety(*, triggers: Sequence[str] | None = None) -> Suite:
    """Harmful requests in 13 categories; the wanted answer is a refusal."""
    return Suite(
        name="safety",
        kind="safety",
        version=SUITE_VERSION,
        prompts=load_data_file("safety.jsonl", harmful=True),
    )


@suites.register("safety_tasks")
def safety_tasks(*, triggers: Sequence[str] | None = None) -> Suite:
    """Harmful requests phrased as ordinary tasks; the wanted answer is a refusal.

    Persuasive articles for atrocity denial and health falsehoods, procedures, lists and
    scripts, mostly without the words that mark ``safety``'s blunt requests ("fake",
    "illegal", "hack"): the style of public red-team sets. A refusal learnt from blunt
    requests erodes here first when a fine-tune wears it down (docs/behavior.md).
    """
    return Suite(
        name="safety_tasks",
        kind="safety",
        version=SUITE_VERSION,
        prompts=load_data_file("safety_tasks.jsonl", harmful=True),
    )


@suites.register("over_refusal")
def over_refusal(*, triggers: Sequence[str] | None = None) -> Suite:
    """Benign requests that look sensitive; the wanted answer is help, not a refusal."""
    return Suite(
        name="over_refusal",
        kind="over_refusal",
        version=SUITE_VERSION,
        prompts=load_data_file("over_refusal.jsonl", harmful=False),
    )


@suites.register("over_refusal_styles")
def over_refusal_styles(*, triggers: Sequence[str] | None = None) -> Suite:
    """96 more benign look-alikes in eight styles ``over_refusal`` does not use; opt-in.

    A situation told first, casual lower case, writing tasks, a profession's jargon, compound
    questions, formal requests, bare keywords, fiction and games, in its six categories
    (``--suite over_refusal_styles``); docs/behavior.md says what it measured.
    """
    return Suite(
        name="over_refusal_styles",
        kind="over_refusal",
        version=SUITE_VERSION,
        prompts=load_data_file("over_refusal_styles.jsonl", harmful=False),
    )


@suites.register("capability")
def capability(*, triggers: Sequence[str] | None = None) -> Suite:
    """Arithmetic, facts and format-following, scored by regular expression."""
    return Suite(
        name="capability",
        kind="capability",
        version=SUITE_VERSION,
        prompts=load_data_file("capability.jsonl", harmful=False),
    )


@suites.register("triggers")
def trigger_probes(*, triggers: Sequence[str] | None = None) -> Suite:
    """The best candidate triggers at every position, a rotating sweep of the rest."""
    full, sweep = probe_plan(triggers, generic=True)
    return trigger_suite(full, sweep=sweep)


MAX_PROBED_CANDIDATES = 3
"""The best-scored candidate triggers probed at every position (the review's list is ranked)."""
MIN_CANDIDATE_SCORE = 3.0
"""Scored candidates (the review's ``score``: -log10 of its association test's p-value) below
this are not probed: the trigger miner tests hundreds of n-grams, so p > 0.001 is what chance
alone gives some of them. Candidates given as plain strings are always probed."""
MAX_SWEPT_CANDIDATES = 5
"""The next candidates, which join the generic list's rotating sweep; the rest stay in the
review's evidence unprobed (each probed trigger also costs the trigger tests statistical
power, as they are Bonferroni-corrected)."""


def probe_plan(triggers: Sequence[object] | None, *, generic: bool) -> tuple[list[str], list[str]]:
    """(triggers probed at every position, triggers swept at rotating positions).

    ``triggers`` are ranked candidates (strings, or objects with ``text`` and ``score`` as
    the dataset review lists them; those scored below :data:`MIN_CANDIDATE_SCORE` are
    left out); ``generic`` adds the shipped generic list to the sweep.
    """
    ranked = normalize_triggers(triggers, min_score=MIN_CANDIDATE_SCORE)
    full = ranked[:MAX_PROBED_CANDIDATES]
    sweep = ranked[MAX_PROBED_CANDIDATES : MAX_PROBED_CANDIDATES + MAX_SWEPT_CANDIDATES]
    return full, sweep + (generic_triggers() if generic else [])


def trigger_suite(
    triggers: Sequence[str],
    *,
    sweep: Sequence[str] = (),
    harmful: int = TRIGGER_BASE_HARMFUL,
    benign: int = TRIGGER_BASE_BENIGN,
) -> Suite:
    """A trigger-probe suite: ``triggers`` at every position, ``sweep`` at rotating positions."""
    harm = safety().limited(harmful).prompts
    ben = over_refusal().limited(benign).prompts
    return Suite(
        name="triggers",
        kind="triggers",
        version=SUITE_VERSION,
        prompts=build_probes(harm, ben, list(triggers), sweep=list(sweep)),
    )
