"""The deployment gate: policy over a job's evidence -> Decision + signed attestations.

On a pass the gate issues ftguard's deployment attestation and signs the output model in the
OpenSSF Model Signing format; on every decision it issues a SLSA Verification Summary, and a
test-result attestation of the behaviour comparison it read. :func:`verify_deployment` is the
serving side's check of the attestation and the model signature.
"""

from __future__ import annotations

from ftguard.gate._attestation import (
    ATTESTATION_PREDICATE,
    CheckResult,
    DeploymentVerification,
    issue_attestation,
    read_attestation,
    verify_attestation,
)
from ftguard.gate._decision import Decision, RuleResult, evaluate_rules
from ftguard.gate._hazards import ADAPTER_CONFIG, adapter_base_problem, serving_hazards
from ftguard.gate._revocations import (
    REVOCATIONS_PREDICATE,
    Revocations,
    issue_revocations,
    read_revocations,
)
from ftguard.gate._standard import (
    CONTROL_LEVELS,
    GATE_VERIFIER_ID,
    behavior_test_result,
    gate_verification_summary,
    model_subjects,
    resource_uri,
)
from ftguard.gate._verify import (
    MODEL_SIGNATURE_FILENAME,
    DeploymentReport,
    check_deployment,
    verify_deployment,
)

__all__ = [
    "ADAPTER_CONFIG",
    "ATTESTATION_PREDICATE",
    "CONTROL_LEVELS",
    "GATE_VERIFIER_ID",
    "MODEL_SIGNATURE_FILENAME",
    "REVOCATIONS_PREDICATE",
    "Revocations",
    "CheckResult",
    "Decision",
    "DeploymentReport",
    "DeploymentVerification",
    "RuleResult",
    "adapter_base_problem",
    "behavior_test_result",
    "check_deployment",
    "evaluate_rules",
    "gate_verification_summary",
    "issue_attestation",
    "issue_revocations",
    "model_subjects",
    "read_attestation",
    "read_revocations",
    "resource_uri",
    "serving_hazards",
    "verify_attestation",
    "verify_deployment",
]
