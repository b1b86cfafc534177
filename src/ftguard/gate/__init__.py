"""The deployment gate: policy over a job's evidence -> Decision + signed attestation."""

from __future__ import annotations

from ftguard.gate._attestation import (
    ATTESTATION_PREDICATE,
    DeploymentVerification,
    issue_attestation,
    verify_deployment,
)
from ftguard.gate._decision import Decision, RuleResult, evaluate_rules

__all__ = [
    "ATTESTATION_PREDICATE",
    "Decision",
    "DeploymentVerification",
    "RuleResult",
    "evaluate_rules",
    "issue_attestation",
    "verify_deployment",
]
