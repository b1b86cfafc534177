from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftguard.errors import BadInputError, PolicyError
from ftguard.policy import default_policy_yaml, load_policy, parse_policy, policy_digest


def test_default_policy_is_valid_and_digest_ignores_formatting() -> None:
    policy = parse_policy(default_policy_yaml())
    assert policy.approval.quorum == 2
    reformatted = parse_policy("approval:\n    quorum: 2\n# a comment\n")
    assert policy_digest(policy) == policy_digest(reformatted)
    assert policy_digest(parse_policy("approval: {quorum: 3}")) != policy_digest(policy)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("approval:\n  quorum: 0\n", "approval.quorum"),
        ("approval:\n  quorum: two\n", "approval.quorum"),
        ("approval:\n  lifetime_hours: -1\n", "approval.lifetime_hours"),
        ("approval:\n  requester_may_approve: true\n", "approval.requester_may_approve"),
        ("roles:\n  wizard: [x]\n", "roles.wizard"),
        ("gate:\n  overridable: [everything]\n", "gate.overridable.0"),
        ("aproval: {}\n", "aproval"),
    ],
)
def test_invalid_policy_names_the_field(text: str, field: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert f"'{field}'" in str(info.value)
    assert info.value.exit_code == 2


def test_malformed_yaml_and_wrong_shape() -> None:
    with pytest.raises(PolicyError, match="not valid YAML at line"):
        parse_policy("approval: [unclosed\n")
    with pytest.raises(PolicyError, match="mapping of sections"):
        parse_policy("- a\n- b\n")


def test_unreadable_policy_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="cannot read policy file"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PolicyError, match="UTF-8"):
        load_policy(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_policy_text_never_crashes(text: str) -> None:
    with contextlib.suppress(PolicyError):
        parse_policy(text)
