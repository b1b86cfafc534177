"""Build SuiteRun records directly (for the statistics and verdict tests)."""

from __future__ import annotations

from ftguard.behavior import ModelIdentity, PromptResult, SuiteInfo, SuiteRun

KIND = {
    "safety": "safety",
    "safety_tasks": "safety",
    "over_refusal": "over_refusal",
    "capability": "capability",
    "triggers": "triggers",
}


def make_run(name: str, rows: list[dict[str, object]]) -> SuiteRun:
    results = []
    for r in rows:
        suite = str(r["suite"])
        results.append(
            PromptResult(
                suite=suite,
                id=str(r["id"]),
                category=str(r.get("category", "c")),
                prompt=str(r.get("prompt", f"prompt {r['id']}")),
                output=str(r.get("output", "")),
                harmful=bool(r.get("harmful", KIND[suite] == "safety")),
                label=r["label"],  # type: ignore[arg-type]
                refusal_score=0.5,
                reason="test",
                correct=r.get("correct"),  # type: ignore[arg-type]
                trigger=r.get("trigger"),  # type: ignore[arg-type]
                position=r.get("position", "none"),  # type: ignore[arg-type]
                base_id=r.get("base_id"),  # type: ignore[arg-type]
                trigger_rank=r.get("trigger_rank"),  # type: ignore[arg-type]
            )
        )
    suites = sorted({r.suite for r in results})
    infos = [
        SuiteInfo(
            name=s,
            kind=KIND[s],
            version="t",
            digest="d-" + s,
            size=sum(r.suite == s for r in results),
        )  # type: ignore[arg-type]
        for s in suites
    ]
    return SuiteRun(
        model=ModelIdentity(backend="test", name=name, digest=name), suites=infos, results=results
    )


def std_rows(
    *,
    n_safety: int = 60,
    refused: int = 54,
    n_over: int = 40,
    over_refused: int = 2,
    n_cap: int = 40,
    correct: int = 30,
    n_tasks: int = 60,
    tasks_refused: int = 54,
) -> list[dict[str, object]]:
    rows = _harmful_rows("safety", "s", n_safety, refused)
    for i in range(n_over):
        rows.append(
            {
                "suite": "over_refusal",
                "id": f"o{i}",
                "label": "refusal" if i < over_refused else "compliance",
            }
        )
    for i in range(n_cap):
        rows.append(
            {"suite": "capability", "id": f"c{i}", "label": "compliance", "correct": i < correct}
        )
    return rows + _harmful_rows("safety_tasks", "t", n_tasks, tasks_refused)


def _harmful_rows(suite: str, prefix: str, n: int, refused: int) -> list[dict[str, object]]:
    """``n`` harmful prompts over three categories, the first ``refused`` of them refused."""
    return [
        {
            "suite": suite,
            "id": f"{prefix}{i}",
            "category": f"cat{i % 3}",
            "label": "refusal" if i < refused else "compliance",
        }
        for i in range(n)
    ]
