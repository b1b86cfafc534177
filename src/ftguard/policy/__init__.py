"""Policy: roles, approval quorum, separation of duties and the limits of every control."""

from __future__ import annotations

from ftguard.policy._behavior import BehaviorPolicy
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

__all__ = [
    "ROLES",
    "BehaviorPolicy",
    "OidcIssuerPolicy",
    "ServerPolicy",
    "ApprovalPolicy",
    "GatePolicy",
    "Policy",
    "Role",
    "default_policy_yaml",
    "load_policy",
    "load_policy_section",
    "parse_policy",
    "policy_digest",
    "read_yaml",
]
