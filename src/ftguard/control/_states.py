"""The job life cycle as an explicit state machine."""

from __future__ import annotations

from enum import StrEnum

from ftguard.errors import ConflictError

__all__ = ["APPROVED_ONWARD", "TRANSITIONS", "JobState", "check_transition"]


class JobState(StrEnum):
    """States of a fine-tuning job."""

    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    RUNNING = "running"
    TRAINED = "trained"
    FAILED = "failed"
    EVALUATING = "evaluating"
    PASSED = "passed"
    BLOCKED = "blocked"
    DEPLOYED = "deployed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REVOKED = "revoked"


APPROVED_ONWARD: frozenset[str] = frozenset(
    {
        "approved",
        "running",
        "trained",
        "failed",
        "evaluating",
        "passed",
        "blocked",
        "deployed",
        "revoked",
    }
)
"""The states of a job from its approval on: those a ``runner`` reads and analyses."""

S = JobState
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.SUBMITTED: frozenset({S.IN_REVIEW, S.AWAITING_APPROVAL, S.REJECTED, S.CANCELLED}),
    S.IN_REVIEW: frozenset({S.AWAITING_APPROVAL, S.REJECTED, S.CANCELLED}),
    S.AWAITING_APPROVAL: frozenset({S.APPROVED, S.REJECTED, S.CANCELLED, S.EXPIRED}),
    S.APPROVED: frozenset({S.RUNNING, S.REJECTED, S.CANCELLED, S.EXPIRED}),
    S.RUNNING: frozenset({S.TRAINED, S.FAILED}),
    S.TRAINED: frozenset({S.EVALUATING, S.PASSED, S.BLOCKED}),
    S.FAILED: frozenset({S.AWAITING_APPROVAL, S.CANCELLED}),
    S.EVALUATING: frozenset({S.PASSED, S.BLOCKED}),
    S.PASSED: frozenset({S.DEPLOYED, S.BLOCKED, S.REVOKED}),
    # Passed by an override, or decided again when only missing evidence blocked it.
    S.BLOCKED: frozenset({S.PASSED, S.BLOCKED}),
    # A security reviewer withdraws a pass: final, whatever evidence comes later.
    S.DEPLOYED: frozenset({S.REVOKED}),
    S.REVOKED: frozenset(),
    # A review rejection can be overridden by a security reviewer; an approver's cannot.
    S.REJECTED: frozenset({S.AWAITING_APPROVAL}),
    S.CANCELLED: frozenset(),
    S.EXPIRED: frozenset({S.AWAITING_APPROVAL}),
}


def check_transition(job_id: str, current: str, target: JobState) -> None:
    """Raise :class:`ConflictError` unless ``current -> target`` is allowed."""
    state = JobState(current)
    if target not in TRANSITIONS[state]:
        allowed = ", ".join(sorted(t.value for t in TRANSITIONS[state])) or "none (final state)"
        raise ConflictError(
            f"job {job_id} is {state.value}; it cannot become {target.value} "
            f"(allowed from {state.value}: {allowed})"
        )
