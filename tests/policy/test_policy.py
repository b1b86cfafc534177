from __future__ import annotations

import contextlib
import os
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


# -- strictness: duplicate keys, booleans vs numbers, limits that make no sense ----------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("approval:\n  quorum: 3\n  quorum: 1\n", "quorum"),
        ("approval: {quorum: 2}\napproval: {quorum: 1}\n", "approval"),
        ("behavior:\n  min_prompts: {safety: 50, safety: 5}\n", "safety"),
        ("roles:\n  approver: [a]\n  approver: [b]\n", "approver"),
        # inside a merged mapping (review of 2026-12-08: flattened without being checked)
        ("approval:\n  <<: {quorum: 3, quorum: 1}\n", "quorum"),
        ("d: &d {quorum: 3, quorum: 1}\napproval:\n  <<: [*d]\n", "quorum"),
    ],
)
def test_duplicate_keys_at_any_depth_are_rejected(text: str, key: str) -> None:
    with pytest.raises(PolicyError, match=f"duplicate key '{key}' at line"):
        parse_policy(text)


def test_merge_keys_and_aliases_are_no_duplicates() -> None:
    text = (
        "roles:\n  requester: &a [x]\n  approver: *a\napproval:\n  <<: {quorum: 3}\n  quorum: 4\n"
    )
    policy = parse_policy(text)
    assert policy.approval.quorum == 4  # a key written beside a merge overrides it
    assert policy.roles == {"requester": ["x"], "approver": ["x"]}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("approval:\n  quorum: true\n", "approval.quorum"),
        ("approval:\n  quorum: '2'\n", "approval.quorum"),
        ("approval:\n  quorum: 2.0\n", "approval.quorum"),
        ("approval:\n  lifetime_hours: false\n", "approval.lifetime_hours"),
        ("approval:\n  lifetime_hours: .inf\n", "approval.lifetime_hours"),
        ("approval:\n  lifetime_hours: .nan\n", "approval.lifetime_hours"),
        ("approval:\n  lifetime_hours: 0\n", "approval.lifetime_hours"),
        ("approval:\n  requester_may_prepare: 1\n", "approval.requester_may_prepare"),
        ("approval:\n  requester_may_approve: 0\n", "approval.requester_may_approve"),
        ("version: true\n", "version"),
        ("version: 1.0\n", "version"),
        ("review:\n  max_high_examples: true\n", "review.max_high_examples"),
        ("review:\n  trigger_min_support: 0\n", "review.trigger_min_support"),
        ("review:\n  max_error_fraction: 1.5\n", "review.max_error_fraction"),
        ("weights:\n  z_limit: 0\n", "weights.z_limit"),
        ("weights:\n  min_baseline_jobs: 0\n", "weights.min_baseline_jobs"),
        ("weights:\n  max_drift_norm: -1\n", "weights.max_drift_norm"),
        ("weights:\n  max_drift_norm: 0\n", "weights.max_drift_norm"),
        ("weights:\n  critical_middle_layers: [0.7, 0.2]\n", "weights.critical_middle_layers"),
        ("weights:\n  critical_middle_layers: [0.2, 1.5]\n", "weights.critical_middle_layers"),
        ("weights:\n  critical_middle_layers: [true, 0.5]\n", "weights.critical_middle_layers.0"),
        ("weights:\n  min_alignment_norm_share: 2\n", "weights.min_alignment_norm_share"),
        ("weights:\n  max_against_alignment: 1.5\n", "weights.max_against_alignment"),
        ("weights:\n  deep_top_k: true\n", "weights.deep_top_k"),
        ("behavior:\n  alpha: true\n", "behavior.alpha"),
        ("behavior:\n  min_prompts: {safety: 0}\n", "behavior.min_prompts"),
        ("behavior:\n  min_prompts: {safety: true}\n", "behavior.min_prompts.safety"),
        ("behavior:\n  max_capability_drop_points: -1\n", "behavior.max_capability_drop_points"),
        ("roles:\n  approver: [1]\n", "roles.approver.0"),
    ],
)
def test_strict_types_and_sane_limits(text: str, field: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert f"'{field}'" in str(info.value)


def test_strictness_keeps_what_should_pass() -> None:
    policy = parse_policy(
        "approval:\n  quorum: 3\n  lifetime_hours: 5\n"  # an int where a float is meant
        "weights:\n  critical_middle_layers: [0, 1]\n  max_drift_norm: 2\n"
        "behavior:\n  min_prompts: {safety: 1}\n  alpha: 0.01\n"
        "review:\n  required: false\n  max_high_examples: 0\n"
    )
    assert policy.approval.lifetime_hours == 5.0
    assert policy.weights.critical_middle_layers == (0.0, 1.0)
    assert policy.behavior.min_prompts == {"safety": 1}
    # defaults are unchanged, and a round trip through the canonical JSON still validates
    assert parse_policy(default_policy_yaml()).approval.quorum == 2
    from ftguard.policy import Policy

    assert Policy.model_validate_json(policy.model_dump_json()) == policy


def test_huge_integer_and_deep_nesting_name_the_file(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    huge.write_text("approval:\n  quorum: " + "1" * 5000 + "\n")
    with pytest.raises(PolicyError, match="huge.yaml: YAML value cannot be read"):
        load_policy(huge)
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(PolicyError, match="deep.yaml: YAML nested too deeply"):
        load_policy(deep)


@pytest.mark.timeout(30)
def test_fifo_and_folder_are_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "policy.yaml"
    os.mkfifo(fifo)
    with pytest.raises(BadInputError, match="not a regular file"):
        load_policy(fifo)  # would block forever if it were opened for reading
    with pytest.raises(BadInputError, match="a folder"):
        load_policy(tmp_path)


def test_one_loader_reads_a_section_from_a_whole_policy_or_a_bare_section(
    tmp_path: Path,
) -> None:
    from ftguard.policy import load_policy_section

    whole = tmp_path / "policy.yaml"
    whole.write_text("version: 1\nweights:\n  z_limit: 9.5\nbehavior:\n  alpha: 0.01\n")
    bare = tmp_path / "behavior.yaml"
    bare.write_text("alpha: 0.02\n")
    assert load_policy_section(whole, "weights").z_limit == 9.5
    assert load_policy_section(whole, "behavior").alpha == 0.01
    assert load_policy_section(bare, "behavior").alpha == 0.02
    assert load_policy_section(None, "weights") == load_policy(whole).weights.model_copy(
        update={"z_limit": load_policy_section(None, "weights").z_limit}
    )
    # the same strictness and messages in both forms
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("alpha: 2\n")
    with pytest.raises(PolicyError, match=r"behavior\.alpha"):
        load_policy_section(wrong, "behavior")
    twice = tmp_path / "twice.yaml"
    twice.write_text("alpha: 0.01\nalpha: 0.5\n")
    with pytest.raises(PolicyError, match="duplicate key"):
        load_policy_section(twice, "behavior")
    with pytest.raises(BadInputError):
        load_policy_section(tmp_path, "review")
