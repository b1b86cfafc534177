"""Policy: roles, approval quorum, separation of duties and the limits of every control."""

from __future__ import annotations

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
