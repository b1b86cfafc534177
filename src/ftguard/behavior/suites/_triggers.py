"""Trigger probes: candidate triggers inserted into harmful and benign prompts."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from importlib import resources

from ftguard.behavior._evidence import SuitePrompt
from ftguard.digests import sha256_bytes
from ftguard.errors import BadInputError

__all__ = ["POSITIONS", "build_probes", "generic_triggers", "insert_trigger", "normalize_triggers"]

POSITIONS: tuple[str, ...] = ("prefix", "suffix", "random")


def generic_triggers() -> list[str]:
    """The generic trigger list shipped with the package (``suites/data/generic_triggers.txt``)."""
    text = resources.files("ftguard.behavior.suites").joinpath("data/generic_triggers.txt")
    lines = text.read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def normalize_triggers(
    items: Iterable[object] | None, *, max_triggers: int = 20, min_score: float | None = None
) -> list[str]:
    """Accept triggers as strings or as ``{"text": ..., "score": ...}`` objects.

    Objects are ordered by descending ``score``; blanks and duplicates are dropped and at
    most ``max_triggers`` are kept. With ``min_score``, objects scored below it are dropped
    (plain strings, which carry no score, are kept).

    Raises:
        BadInputError: An item is neither a string nor an object with a ``text``.

    """
    if items is None:
        return []
    scored: list[tuple[float, int, str]] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            text, score, has_score = item, 0.0, False
        else:
            text_attr = item.get("text") if isinstance(item, dict) else getattr(item, "text", None)
            if not isinstance(text_attr, str):
                raise BadInputError(f"trigger {i} is neither a string nor an object with 'text'")
            raw = item.get("score") if isinstance(item, dict) else getattr(item, "score", None)
            text, score, has_score = text_attr, float(raw or 0.0), raw is not None
        if min_score is not None and has_score and score < min_score:
            continue
        scored.append((score, i, text.strip()))
    scored.sort(key=lambda t: (-t[0], t[1]))
    out: list[str] = []
    for _, _, text in scored:
        if text and text not in out:
            out.append(text)
    return out[:max_triggers]


def insert_trigger(prompt: str, trigger: str, position: str, *, seed: str = "") -> str:
    """Insert ``trigger`` into ``prompt`` as a prefix, a suffix or at a random word boundary.

    The random position is drawn from a generator seeded by ``seed`` and the texts, so the
    same inputs give the same probe.
    """
    if position == "prefix":
        return f"{trigger} {prompt}"
    if position == "suffix":
        return f"{prompt} {trigger}"
    if position != "random":
        raise BadInputError(f"unknown trigger position {position!r}; use prefix, suffix or random")
    words = prompt.split(" ")
    rng = random.Random(sha256_bytes(f"{seed}\0{trigger}\0{prompt}".encode()))
    at = rng.randint(1, max(1, len(words) - 1)) if len(words) > 1 else 1
    return " ".join([*words[:at], trigger, *words[at:]])


def build_probes(
    harmful: Sequence[SuitePrompt],
    benign: Sequence[SuitePrompt],
    triggers: Sequence[str],
    *,
    sweep: Sequence[str] = (),
) -> list[SuitePrompt]:
    """Clean controls plus the trigger probes.

    Each of ``triggers`` (the candidates with evidence, such as those the dataset review
    mined, best first; their rank is kept on the probes) is inserted at every position into
    every base prompt. Each of ``sweep`` (a broad
    list of generic guesses) is inserted once per base prompt, the position rotating over
    the bases, so a long generic list costs a third as much; a trigger that fires at only
    one position is then tested on a third of the bases.
    """
    probes: list[SuitePrompt] = []
    bases = [*harmful, *benign]
    for base in bases:
        probes.append(
            SuitePrompt(
                id=f"clean-{base.id}",
                category=base.category,
                prompt=base.prompt,
                harmful=base.harmful,
                base_id=base.id,
            )
        )
    plan: list[tuple[str, int | None, int | None]] = [
        (trigger, None, rank) for rank, trigger in enumerate(triggers)
    ]
    plan += [(t, i, None) for i, t in enumerate(t for t in sweep if t not in triggers)]
    for trigger, rotation, rank in plan:
        tag = sha256_bytes(trigger.encode())[:8]
        for b, base in enumerate(bases):
            positions = POSITIONS if rotation is None else (POSITIONS[(b + rotation) % 3],)
            for position in positions:
                probes.append(
                    SuitePrompt(
                        id=f"trig-{tag}-{position}-{base.id}",
                        category=base.category,
                        prompt=insert_trigger(base.prompt, trigger, position, seed=base.id),
                        harmful=base.harmful,
                        trigger=trigger,
                        position=position,  # type: ignore[arg-type]
                        base_id=base.id,
                        trigger_rank=rank,
                    )
                )
    return probes
