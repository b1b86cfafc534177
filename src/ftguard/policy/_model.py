"""The workspace policy: who may do what, and the limits every control is judged by."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ftguard.policy._behavior import BehaviorPolicy
from ftguard.policy._review import ReviewPolicy
from ftguard.policy._weights import WeightsPolicy

__all__ = [
    "ROLES",
    "ApprovalPolicy",
    "GatePolicy",
    "Policy",
    "Role",
]

Control = Literal["review", "weights", "behavior"]
Role = Literal["requester", "data_preparer", "approver", "security_reviewer", "admin"]
ROLES: tuple[Role, ...] = ("requester", "data_preparer", "approver", "security_reviewer", "admin")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ApprovalPolicy(_Section):
    """How many approvals a job needs, from whom, and for how long they hold."""

    quorum: int = Field(default=2, ge=1, le=20)
    """Number of distinct approvers (holders of the ``approver`` role) a job needs."""
    lifetime_hours: float = Field(default=72.0, gt=0, le=24 * 365)
    """Hours an approval stays valid after it is signed; an expired approval no longer counts."""
    requester_may_approve: Literal[False] = False
    """Fixed: the requester of a job can never approve it (separation of duties)."""
    preparer_may_approve: Literal[False] = False
    """Fixed: whoever prepared the dataset can never approve the job (separation of duties)."""
    requester_may_prepare: bool = True
    """Whether the requester may also be named as the job's data preparer."""


class GatePolicy(_Section):
    """What the deployment gate requires and what a security reviewer may override."""

    overridable: list[Control] = Field(default_factory=lambda: list[Control](["review"]))
    """Controls whose block a security reviewer may override, with a recorded justification."""


class Policy(_Section):
    """The whole workspace policy (``.ftguard/policy.yaml``)."""

    version: Literal[1] = 1
    """Schema version of the policy file."""
    roles: dict[Role, list[str]] = Field(default_factory=dict)
    """Static role grants by policy, added to the grants recorded with ``ftguard user add``."""
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    """Approval quorum, lifetime and separation of duties."""
    review: ReviewPolicy = Field(default_factory=ReviewPolicy)
    """Dataset review verdict rules (see ``docs/review.md``)."""
    weights: WeightsPolicy = Field(default_factory=WeightsPolicy)
    """Weight report limits (see ``docs/weights.md``)."""
    behavior: BehaviorPolicy = Field(default_factory=BehaviorPolicy)
    """Behaviour comparison limits (see ``docs/behavior.md``)."""
    gate: GatePolicy = Field(default_factory=GatePolicy)
    """Deployment gate requirements and overrides."""

    @model_validator(mode="after")
    def _names_are_sane(self) -> Policy:
        for role, names in self.roles.items():
            for name in names:
                if not name or not name.strip():
                    raise ValueError(f"roles.{role} holds an empty user name")
        return self
