"""Loaders for prompt files users bring: AdvBench, HarmBench, StrongREJECT, XSTest, JSONL.

Each returns a :class:`Suite` whose kind says how it is scored: harmful prompt sets are
``safety`` suites, XSTest's safe prompts an ``over_refusal`` suite (its unsafe contrast
prompts a ``safety`` suite with ``which="unsafe"``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from ftguard.behavior._evidence import SuiteKind, SuitePrompt
from ftguard.behavior.suites._registry import Suite
from ftguard.digests import sha256_bytes
from ftguard.errors import BadInputError

__all__ = [
    "load_advbench",
    "load_harmbench",
    "load_jsonl_prompts",
    "load_strongreject",
    "load_suite_spec",
    "load_xstest",
    "parse_csv_prompts",
    "parse_jsonl_prompts",
]

_MAX_PROMPT = 20_000


def _read(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise BadInputError(f"no such file: {p}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"cannot read {p} as UTF-8 text: {exc}") from exc


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return s[:40] or "general"


def parse_csv_prompts(
    text: str,
    *,
    source: str,
    prompt_column: str,
    category_column: str | None = None,
    id_column: str | None = None,
    where: tuple[str, str] | None = None,
    harmful: bool = True,
) -> list[SuitePrompt]:
    """Parse CSV text into prompts, taking the named columns.

    Args:
        text: The CSV content, with a header row.
        source: Name used in ids and messages.
        prompt_column: Column holding the prompt.
        category_column: Column holding a category, if any.
        id_column: Column holding a stable id (default: the row number).
        where: ``(column, value)``: keep only rows whose column equals the value.
        harmful: Whether these prompts are harmful requests.

    Raises:
        BadInputError: The header lacks a needed column, or no row has a prompt.

    """
    try:
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        needed = [c for c in (prompt_column, category_column, id_column) if c]
        if where:
            needed.append(where[0])
        missing = [c for c in needed if c not in header]
        if missing:
            raise BadInputError(
                f"{source}: CSV header lacks column(s) {', '.join(missing)} "
                f"(found: {', '.join(h for h in header if h) or 'none'})"
            )
        prompts: list[SuitePrompt] = []
        seen: set[str] = set()
        for n, row in enumerate(reader, start=1):
            if where and (row.get(where[0]) or "").strip() != where[1]:
                continue
            prompt = (row.get(prompt_column) or "").strip()
            if not prompt:
                continue
            if len(prompt) > _MAX_PROMPT:
                raise BadInputError(f"{source}: row {n}: prompt longer than {_MAX_PROMPT} chars")
            raw_id = (row.get(id_column) or "").strip() if id_column else ""
            pid = f"{_slug(source)}-{_slug(raw_id) if raw_id else n}"
            if pid in seen:
                pid = f"{pid}-{n}"
            seen.add(pid)
            cat = (row.get(category_column) or "").strip() if category_column else ""
            prompts.append(
                SuitePrompt(
                    id=pid,
                    category=_slug(cat) if cat else "general",
                    prompt=prompt,
                    harmful=harmful,
                )
            )
    except csv.Error as exc:
        raise BadInputError(f"{source}: malformed CSV: {exc}") from exc
    if not prompts:
        raise BadInputError(f"{source}: no prompts found")
    return prompts


def _suite(name: str, kind: SuiteKind, text: str, prompts: list[SuitePrompt]) -> Suite:
    return Suite(name=name, kind=kind, version=sha256_bytes(text.encode())[:12], prompts=prompts)


def load_advbench(path: str | Path) -> Suite:
    """AdvBench ``harmful_behaviors.csv`` (columns ``goal,target``): a safety suite."""
    text = _read(path)
    return _suite(
        "advbench", "safety", text, parse_csv_prompts(text, source="advbench", prompt_column="goal")
    )


def load_harmbench(path: str | Path, *, functional_category: str | None = None) -> Suite:
    """HarmBench behaviours CSV (``Behavior``, ``SemanticCategory``, ``BehaviorID``).

    ``functional_category`` keeps only rows of that ``FunctionalCategory`` (``standard``:
    the plain requests, without the contextual and copyright behaviours).
    """
    text = _read(path)
    prompts = parse_csv_prompts(
        text,
        source="harmbench",
        prompt_column="Behavior",
        category_column="SemanticCategory",
        id_column="BehaviorID",
        where=("FunctionalCategory", functional_category) if functional_category else None,
    )
    name = f"harmbench_{functional_category}" if functional_category else "harmbench"
    return _suite(name, "safety", text, prompts)


def load_strongreject(path: str | Path) -> Suite:
    """StrongREJECT CSV (``category,source,forbidden_prompt``): a safety suite."""
    text = _read(path)
    prompts = parse_csv_prompts(
        text, source="strongreject", prompt_column="forbidden_prompt", category_column="category"
    )
    return _suite("strongreject", "safety", text, prompts)


def load_xstest(path: str | Path, *, which: Literal["safe", "unsafe"] = "safe") -> Suite:
    """XSTest prompts CSV (``id,prompt,type,label``).

    ``which="safe"`` gives the 250 safe prompts as an over-refusal suite; ``"unsafe"``
    the 200 unsafe contrast prompts as a safety suite.
    """
    text = _read(path)
    prompts = parse_csv_prompts(
        text,
        source="xstest",
        prompt_column="prompt",
        category_column="type",
        id_column="id",
        where=("label", which),
        harmful=which == "unsafe",
    )
    kind: SuiteKind = "over_refusal" if which == "safe" else "safety"
    return _suite(f"xstest_{which}", kind, text, prompts)


def parse_jsonl_prompts(text: str, *, source: str = "jsonl") -> list[SuitePrompt]:
    """Parse JSON lines of prompts: each line a string or an object with ``prompt``.

    Objects may carry ``id``, ``category``, ``harmful`` and ``expected`` (a regex).

    Raises:
        BadInputError: A line is not JSON, lacks a prompt, or no prompt is found.

    """
    prompts: list[SuitePrompt] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{source}: line {n} is not JSON: {exc.msg}") from exc
        if isinstance(obj, str):
            obj = {"prompt": obj}
        if (
            not isinstance(obj, dict)
            or not isinstance(obj.get("prompt"), str)
            or not obj["prompt"].strip()
        ):
            raise BadInputError(
                f"{source}: line {n}: expected a string or an object with a 'prompt'"
            )
        expected = obj.get("expected")
        if expected is not None:
            try:
                re.compile(str(expected))
            except re.error as exc:
                raise BadInputError(f"{source}: line {n}: bad 'expected' regex: {exc}") from exc
        prompts.append(
            SuitePrompt(
                id=str(obj.get("id") or f"{_slug(source)}-{n}"),
                category=_slug(str(obj.get("category") or "general")),
                prompt=obj["prompt"].strip(),
                harmful=bool(obj.get("harmful", False)),
                expected=None if expected is None else str(expected),
            )
        )
    if not prompts:
        raise BadInputError(f"{source}: no prompts found")
    ids = [p.id for p in prompts]
    if len(set(ids)) != len(ids):
        raise BadInputError(f"{source}: duplicate prompt ids")
    return prompts


def load_jsonl_prompts(
    path: str | Path, *, kind: SuiteKind = "safety", name: str | None = None
) -> Suite:
    """A JSON-lines prompt file as a suite of the given kind."""
    text = _read(path)
    p = Path(path)
    prompts = parse_jsonl_prompts(text, source=p.name)
    if kind == "safety":
        prompts = [q.model_copy(update={"harmful": True}) for q in prompts]
    return _suite(name or _slug(p.stem), kind, text, prompts)


_SPEC_LOADERS: dict[str, Callable[[str], Suite]] = {
    "advbench": load_advbench,
    "harmbench": load_harmbench,
    "harmbench-standard": lambda p: load_harmbench(p, functional_category="standard"),
    "strongreject": load_strongreject,
    "xstest-safe": lambda p: load_xstest(p, which="safe"),
    "xstest-unsafe": lambda p: load_xstest(p, which="unsafe"),
    "jsonl-safety": lambda p: load_jsonl_prompts(p, kind="safety"),
    "jsonl-over_refusal": lambda p: load_jsonl_prompts(p, kind="over_refusal"),
    "jsonl-capability": lambda p: load_jsonl_prompts(p, kind="capability"),
}
SUITE_SPEC_FORMATS = tuple(_SPEC_LOADERS)
"""The formats ``load_suite_spec`` reads."""


def load_suite_spec(spec: str) -> Suite:
    """A suite from a ``FORMAT:PATH`` spec, as ``ftguard eval --suite`` takes it.

    FORMAT is one of :data:`SUITE_SPEC_FORMATS` (for example
    ``harmbench-standard:data/harmbench_behaviors_text_all.csv`` or
    ``xstest-safe:data/xstest_prompts.csv``).
    """
    fmt, sep, path = spec.partition(":")
    loader = _SPEC_LOADERS.get(fmt.strip().lower())
    if not sep or loader is None or not path.strip():
        raise BadInputError(
            f"suite {spec!r}: expected a registered suite name or FORMAT:PATH with FORMAT one of "
            f"{', '.join(SUITE_SPEC_FORMATS)}"
        )
    return loader(path.strip())
