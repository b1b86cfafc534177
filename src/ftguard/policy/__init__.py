"""Policy: roles, approval quorum, separation of duties and the limits of every control."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftguard._lazy import lazy_attributes

if TYPE_CHECKING:
    from ftguard.policy._behavior import DEFAULT_SUITES, BehaviorPolicy
    from ftguard.policy._load import (
        default_policy_yaml,
        load_policy,
        load_policy_section,
        parse_policy,
        policy_digest,
        read_yaml,
    )
    from ftguard.policy._model import (
        ROLES,
        ApprovalPolicy,
        GatePolicy,
        OidcIssuerPolicy,
        Policy,
        Role,
        ServerPolicy,
    )
    from ftguard.policy._review import ReviewPolicy
    from ftguard.policy._weights import WeightsPolicy

_HOME = {
    **dict.fromkeys(("DEFAULT_SUITES", "BehaviorPolicy"), "_behavior"),
    **dict.fromkeys(
        (
            "default_policy_yaml",
            "load_policy",
            "load_policy_section",
            "parse_policy",
            "policy_digest",
            "read_yaml",
        ),
        "_load",
    ),
    **dict.fromkeys(
        (
            "ROLES",
            "ApprovalPolicy",
            "GatePolicy",
            "OidcIssuerPolicy",
            "Policy",
            "Role",
            "ServerPolicy",
        ),
        "_model",
    ),
    "ReviewPolicy": "_review",
    "WeightsPolicy": "_weights",
}
"""Each public name by the module that defines it, imported on first use: a command that
needs one section (``ftguard weights diff`` needs ``WeightsPolicy``) does not build the
models of every other section, nor import the YAML loader."""

__all__ = [
    "DEFAULT_SUITES",
    "ROLES",
    "BehaviorPolicy",
    "OidcIssuerPolicy",
    "ServerPolicy",
    "WeightsPolicy",
    "ApprovalPolicy",
    "GatePolicy",
    "Policy",
    "ReviewPolicy",
    "Role",
    "default_policy_yaml",
    "load_policy",
    "load_policy_section",
    "parse_policy",
    "policy_digest",
    "read_yaml",
]


__getattr__, __dir__ = lazy_attributes(__name__, _HOME)
