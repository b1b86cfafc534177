from __future__ import annotations

from pathlib import Path

from ftguard.policy._docs import render_policy_docs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "policy.md"


def test_policy_reference_matches_the_code() -> None:
    """docs/policy.md documents every policy field; regenerate it when a field changes."""
    assert DOCS.read_text() == render_policy_docs(), (
        "docs/policy.md is stale: run python -m ftguard.policy._docs > docs/policy.md"
    )
