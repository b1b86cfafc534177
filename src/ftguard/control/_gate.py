"""The gate's use cases: decide, override a block, deploy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ftguard.control._approvals import verify_job_approvals
from ftguard.control._identities import require_role, roles_of
from ftguard.control._jobs import get_job_row, latest_evidence, store_evidence, transition
from ftguard.control._states import JobState
from ftguard.control._workspace import Workspace, now_iso
from ftguard.errors import BadInputError, ConflictError, FtguardError, PermissionDeniedError
from ftguard.gate import Decision, RuleResult, evaluate_rules, issue_attestation
from ftguard.store import ApprovalRow, AuditEventRow, JobRow

__all__ = ["GateOutcome", "decide_gate", "deploy_job", "override_gate"]


class GateOutcome:
    """A decision and, on pass, where its attestation was written."""

    def __init__(self, decision: Decision, attestation_path: Path | None) -> None:
        self.decision = decision
        self.attestation_path = attestation_path

    def to_json_dict(self) -> dict[str, Any]:
        out = self.decision.model_dump(mode="json")
        out["attestation"] = str(self.attestation_path) if self.attestation_path else None
        return out


def _review_override(session: Session, job_id: str) -> str | None:
    payload = session.scalars(
        select(AuditEventRow.payload)
        .where(AuditEventRow.job_id == job_id, AuditEventRow.action == "review.override")
        .order_by(AuditEventRow.seq.desc())
    ).first()
    return None if payload is None else str(json.loads(payload).get("justification"))


def _approval_rule(
    ws: Workspace, session: Session, row: JobRow
) -> tuple[RuleResult, list[dict[str, Any]]]:
    used = session.scalars(
        select(ApprovalRow).where(
            ApprovalRow.job_id == row.id, ApprovalRow.consumed_by_run == row.run_count
        )
    ).all()
    if row.run_count == 0 or not used:
        return RuleResult(
            rule="approval.valid",
            control="approval",
            passed=False,
            reason="the job was never trained under a verified approval",
        ), []
    try:
        check = verify_job_approvals(ws, session, row.id, approvals=list(used), check_disk=False)
    except FtguardError as exc:
        return RuleResult(
            rule="approval.valid",
            control="approval",
            passed=False,
            reason=f"the approvals do not verify: {exc}",
        ), []
    names = ", ".join(v["approver"] for v in check.valid)
    approvals = [
        {"approver": v["approver"], "keyid": v["keyid"], "envelope": v["envelope"]}
        for v in check.valid
    ]
    return RuleResult(
        rule="approval.valid",
        control="approval",
        passed=True,
        reason=f"trained under a verified approval by {names}",
    ), approvals


def decide_gate(ws: Workspace, *, actor: str, job_id: str) -> GateOutcome:
    """Evaluate the policy over the job's evidence; record pass or block; attest a pass."""
    policy = ws.policy()
    with ws.store.write() as session:
        row = get_job_row(session, job_id, lock=True)
        if row.state not in (JobState.TRAINED.value, JobState.EVALUATING.value):
            raise ConflictError(
                f"job {job_id} is {row.state}: the gate decides trained or evaluating jobs"
            )
        rules: list[RuleResult] = []
        approval_rule, approvals = _approval_rule(ws, session, row)
        rules.append(approval_rule)
        evidence: dict[str, tuple[str, dict[str, Any]] | None] = {}
        for kind in ("review", "weights", "behavior"):
            ev = latest_evidence(session, job_id, kind)
            evidence[kind] = None if ev is None else (ev.digest, json.loads(ev.body))
        rules += evaluate_rules(
            required={
                "review": policy.review.required,
                "weights": policy.weights.required,
                "behavior": policy.behavior.required,
            },
            evidence=evidence,
            review_overridden=_review_override(session, job_id),
        )
        model_path = Path(row.output_path) if row.output_path else None
        if model_path is None or not model_path.exists():
            rules.append(
                RuleResult(
                    rule="output.present",
                    control="output",
                    passed=False,
                    reason="no trained model or adapter is recorded for the job "
                    "(train with 'ftguard run JOB --output DIR -- ...')",
                )
            )
        passed = all(r.passed for r in rules)
        decision = Decision(
            job_id=job_id,
            decision="pass" if passed else "block",
            rules=rules,
            reasons=[r.reason for r in rules if not r.passed],
            policy_digest=ws.policy_digest(),
            evidence={k: v[0] for k, v in evidence.items() if v is not None},
            decided_at=now_iso(),
            decided_by=actor,
        )
        digest = store_evidence(
            ws,
            session,
            job_id=job_id,
            kind="gate",
            body=decision.model_dump(mode="json"),
            actor=actor,
        )
        target = JobState.PASSED if passed else JobState.BLOCKED
        transition(
            ws,
            session,
            row,
            target,
            actor=actor,
            action=f"gate.{decision.decision}",
            payload={"decision": digest, "reasons": decision.reasons},
        )
        path = None
        if passed:
            assert model_path is not None
            path = _attest(ws, session, row, decision, approvals, model_path, actor)
    return GateOutcome(decision, path)


def _attest(
    ws: Workspace,
    session: Session,
    row: JobRow,
    decision: Decision,
    approvals: list[dict[str, Any]],
    model_path: Path,
    actor: str,
) -> Path:
    envelope = issue_attestation(model_path, decision, key=ws.workspace_key(), approvals=approvals)
    body = json.loads(envelope.model_dump_json())
    store_evidence(ws, session, job_id=row.id, kind="attestation", body=body, actor=actor)
    out = ws.reports_dir / row.id / "attestation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(body, indent=2) + "\n")
    return out


def override_gate(ws: Workspace, *, actor: str, job_id: str, justification: str) -> GateOutcome:
    """A security reviewer passes a blocked job, where the policy lets those rules be overridden."""
    if not justification.strip():
        raise BadInputError("--justification must say why the block is overridden")
    policy = ws.policy()
    with ws.store.write() as session:
        require_role(session, policy, actor, "security_reviewer", to="override gate decisions")
        row = get_job_row(session, job_id, lock=True)
        if row.state != JobState.BLOCKED.value:
            raise ConflictError(f"job {job_id} is {row.state}, not blocked")
        ev = latest_evidence(session, job_id, "gate")
        assert ev is not None
        decision = Decision.model_validate_json(ev.body)
        failed = [r for r in decision.rules if not r.passed]
        allowed = set(policy.gate.overridable)
        refused = [r for r in failed if r.control not in allowed]
        if refused:
            raise PermissionDeniedError(
                f"the policy does not let a security reviewer override: "
                f"{'; '.join(r.reason for r in refused)}"
            )
        model_path = Path(row.output_path or "")
        for r in failed:
            r.overridden = True
            r.passed = True
        decision.decision = "pass"
        decision.override = {
            "by": actor,
            "justification": justification.strip(),
            "rules": [r.rule for r in failed],
            "at": now_iso(),
        }
        _, approvals = _approval_rule(ws, session, row)
        digest = store_evidence(
            ws,
            session,
            job_id=job_id,
            kind="gate",
            body=decision.model_dump(mode="json"),
            actor=actor,
        )
        transition(
            ws,
            session,
            row,
            JobState.PASSED,
            actor=actor,
            action="gate.override",
            payload={
                "decision": digest,
                "justification": justification.strip(),
                "rules": [r.rule for r in failed],
            },
        )
        path = _attest(ws, session, row, decision, approvals, model_path, actor)
    return GateOutcome(decision, path)


def deploy_job(ws: Workspace, *, actor: str, job_id: str) -> Path:
    """Mark a passed job deployed (its requester or an admin); returns its attestation path."""
    policy = ws.policy()
    with ws.store.write() as session:
        row = get_job_row(session, job_id, lock=True)
        if actor != row.requester and "admin" not in roles_of(session, policy, actor):
            require_role(session, policy, actor, "admin", to="deploy others' jobs")
        if row.state != JobState.PASSED.value:
            raise ConflictError(
                f"job {job_id} is {row.state}: only a job that passed the gate can be deployed"
            )
        transition(
            ws,
            session,
            row,
            JobState.DEPLOYED,
            actor=actor,
            action="job.deploy",
            payload={"model": row.output_path},
        )
    return ws.reports_dir / job_id / "attestation.json"
