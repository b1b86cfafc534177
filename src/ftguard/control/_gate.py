"""The gate's use cases: decide, override a block, deploy.

The gate reads only what the verified audit chain vouches for: the approvals the run consumed,
each analysis's newest evidence whose digest the chain records *and* whose subjects (the digests
it was computed on) are the job's recorded base model and output, and the output manifest the
launcher recorded, which it hashes again before it signs. The attestation names that exact
manifest and the audit head the decision was recorded under.

Beside it, in the job's reports folder: on a pass the model's OpenSSF Model Signing signature
(``model.sig``, by the workspace's EC P-256 model-signing key, which the attestation names); on
every decision a SLSA Verification Summary (``vsa.json``) and, where the decision read a
behaviour comparison, its in-toto Test Result (``test-result.json``), both signed with the
attestation key. No key leaves this process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ftguard.attest import Envelope, ensure_model_signing_key, model_signing_keyid, sign_model
from ftguard.control._approvals import verify_job_approvals
from ftguard.control._chain import Actor, ChainState, JobRecord
from ftguard.control._identities import (
    Caller,
    acting,
    chain_state,
    chain_view,
    name_of,
    require_role,
)
from ftguard.control._jobs import (
    awaits_evidence,
    chain_evidence,
    checked_job,
    evidence_body,
    job_manifests,
    require_job_analyst,
    require_not_party,
    store_evidence,
    transition,
)
from ftguard.control._states import JobState
from ftguard.control._workspace import Workspace, now_iso
from ftguard.digests import Manifest, manifest_of
from ftguard.errors import BadInputError, ConflictError, FtguardError, PermissionDeniedError
from ftguard.gate import (
    ADAPTER_CONFIG,
    MODEL_SIGNATURE_FILENAME,
    Decision,
    Revocations,
    RuleResult,
    adapter_base_problem,
    behavior_test_result,
    evaluate_rules,
    gate_verification_summary,
    issue_attestation,
    issue_revocations,
    serving_hazards,
)
from ftguard.policy import Policy
from ftguard.store import AuditEventRow, JobRow, pending_path, publish_on_commit

__all__ = [
    "GateOutcome",
    "decide_gate",
    "deploy_job",
    "hash_recorded_output",
    "override_blocked",
    "override_gate",
]


STANDARD_FILES = {
    "model_signature": MODEL_SIGNATURE_FILENAME,
    "verification_summary": "vsa.json",
    "test_result": "test-result.json",
}
"""The files the gate writes beside ``attestation.json``, by their JSON key."""


class GateOutcome:
    """A decision and, on pass, where its attestation was written.

    ``files`` names the other files the gate wrote: ``model_signature`` (a pass),
    ``verification_summary`` (always), ``test_result`` (when a behaviour comparison was read).
    """

    def __init__(
        self,
        decision: Decision,
        attestation_path: Path | None,
        files: dict[str, Path] | None = None,
    ) -> None:
        self.decision = decision
        self.attestation_path = attestation_path
        self.files = dict(files or {})

    def to_json_dict(self) -> dict[str, Any]:
        out = self.decision.model_dump(mode="json")
        out["attestation"] = str(self.attestation_path) if self.attestation_path else None
        for name in STANDARD_FILES:
            out[name] = str(self.files[name]) if name in self.files else None
        return out


def _review_override(session: Session, job_id: str) -> str | None:
    payload = session.scalars(
        select(AuditEventRow.payload)
        .where(AuditEventRow.job_id == job_id, AuditEventRow.action == "review.override")
        .order_by(AuditEventRow.seq.desc())
    ).first()
    return None if payload is None else str(json.loads(payload).get("justification"))


def _approval_rule(
    ws: Workspace, session: Session, state: ChainState, policy: Policy, record: JobRecord
) -> tuple[list[RuleResult], list[dict[str, Any]]]:
    rules: list[RuleResult] = []
    if record.run_count == 0 or not record.approvals_of_run(record.run_count):
        return [
            RuleResult(
                rule="approval.valid",
                control="approval",
                passed=False,
                reason="the job was never trained under a verified approval",
            )
        ], []
    if not record.bound_run and not policy.gate.allow_unbound_runs:
        rules.append(
            RuleResult(
                rule="run.bound",
                control="approval",
                passed=False,
                reason="the model was trained by a free-form command, not the one the approved "
                "config names (an unbound run; the policy's gate.allow_unbound_runs is off)",
            )
        )
    runner = _runner_problem(state, policy, record)
    if runner is not None:
        rules.append(RuleResult(rule="run.runner", control="approval", passed=False, reason=runner))
    try:
        check = verify_job_approvals(ws, session, state, policy, record.id, run=record.run_count)
    except FtguardError as exc:
        rules.insert(
            0,
            RuleResult(
                rule="approval.valid",
                control="approval",
                passed=False,
                reason=f"the approvals do not verify: {exc}",
            ),
        )
        return rules, []
    names = ", ".join(v["approver"] for v in check.valid)
    approvals = [
        {"approver": v["approver"], "keyid": v["keyid"], "envelope": v["envelope"]}
        for v in check.valid
    ]
    rules.insert(
        0,
        RuleResult(
            rule="approval.valid",
            control="approval",
            passed=True,
            reason=f"trained under a verified approval by {names}",
        ),
    )
    return rules, approvals


def _runner_problem(state: ChainState, policy: Policy, record: JobRecord) -> str | None:
    """Why the run's starter could not have started it under the policy in force, or None.

    The launcher checks this when the run starts; the gate checks it again on the chain's
    record, so a ``run.start`` signed past the launcher (by whoever can append to the log) by
    a user without the right does not pass.
    """
    starter = record.run_started_by
    if starter is None:
        return None
    if starter == record.requester:
        if policy.run.requester_may_run:
            return None
        return (
            f"the run was started by the job's requester {starter}, and the policy asks for a "
            "runner other than the requester (run.requester_may_run: false)"
        )
    if "runner" in state.roles_of(starter, policy.roles):
        return None
    return (
        f"the run was started by {starter}, who neither requested the job nor holds the runner role"
    )


def _expected_subjects(row: JobRow, output_root: str | None) -> dict[str, dict[str, str]]:
    both = {"base_model": row.base_model_digest, "output": str(output_root)}
    return {"review": {"dataset": row.dataset_digest}, "weights": both, "behavior": both}


def _bound_evidence(
    session: Session, row: JobRow, record: JobRecord
) -> tuple[dict[str, tuple[str, dict[str, Any]] | None], list[RuleResult]]:
    """Each analysis's newest chain-recorded evidence, if computed on the recorded files."""
    output_root = (record.output or {}).get("root")
    expected = _expected_subjects(row, output_root)
    evidence: dict[str, tuple[str, dict[str, Any]] | None] = {}
    rules: list[RuleResult] = []
    for kind in ("review", "weights", "behavior"):
        found = chain_evidence(session, record, kind)
        if found is None:
            evidence[kind] = None
            continue
        entry, body = found
        if entry.subjects != expected[kind]:
            rules.append(
                RuleResult(
                    rule=f"{kind}.subjects",
                    control=kind,  # type: ignore[arg-type]
                    passed=False,
                    reason=f"the newest {kind} evidence was computed on other files than the "
                    "job's recorded inputs and output",
                    evidence_digest=entry.digest,
                )
            )
            evidence[kind] = None
            continue
        evidence[kind] = (entry.digest, body)
    return evidence, rules


def _output_rule(record: JobRecord, current: Manifest | None, problem: str | None) -> RuleResult:
    output = record.output or {}
    if not output.get("root"):
        reason = "no trained model or adapter is recorded for the job (train it with 'ftguard run')"
    elif current is None:
        reason = f"the recorded output cannot be read: {problem}"
    elif current.root != output["root"]:
        diff = "; ".join(_recorded_manifest(output).differences(current)[:5]) or "content differs"
        reason = f"the output changed since the run recorded it ({diff})"
    else:
        return RuleResult(
            rule="output.recorded",
            control="output",
            passed=True,
            reason=f"the output is the one the run recorded (sha256:{current.root[:16]})",
        )
    return RuleResult(rule="output.recorded", control="output", passed=False, reason=reason)


def _servable_rule(ws: Workspace, record: JobRecord, current: Manifest | None) -> RuleResult:
    """Nothing in the output makes a server load more than the gate evaluated."""
    path = (record.output or {}).get("path")
    if not path or current is None:
        hazards = ["not checked: the output cannot be read"]
    else:
        try:
            hazards = serving_hazards(str(path))
            base = record.digests.get("base_model")
            if base and (Path(str(path)) / ADAPTER_CONFIG).is_file():
                named = adapter_base_problem(
                    Path(str(path)), str(base), read_named=True, staged=ws.staged_dir
                )
                hazards += [named] if named else []
        except BadInputError as exc:
            hazards = [f"not checked: {exc.message}"]
    if hazards:
        return RuleResult(
            rule="output.servable", control="output", passed=False, reason="; ".join(hazards)
        )
    return RuleResult(
        rule="output.servable",
        control="output",
        passed=True,
        reason="a server loads what the gate evaluated: no custom code, no adapter tokenizer "
        "of its own, no base named by hub id, no hard link",
    )


def _recorded_manifest(output: dict[str, Any]) -> Manifest:
    return Manifest.model_validate(
        {
            "name": Path(str(output.get("path"))).name,
            "kind": output.get("kind") or "folder",
            "root": output.get("root"),
            "files": output.get("files") or [],
        }
    )


def _hash_output(record: JobRecord) -> tuple[Manifest | None, str | None]:
    path = (record.output or {}).get("path")
    if not path:
        return None, "no output recorded"
    try:
        return manifest_of(str(path)), None
    except BadInputError as exc:
        return None, str(exc)


def _check_decidable(session: Session, state: ChainState, row: JobRow) -> None:
    """Refuse a gate decision on a job that is not open to one (see :func:`awaits_evidence`).

    Raises:
        ConflictError: The job is not trained, or its gate decision stands.

    """
    if awaits_evidence(session, state, row):
        return
    if row.state == JobState.BLOCKED.value:
        raise ConflictError(
            f"job {row.id} is blocked by its gate decision: only a security reviewer's override "
            "changes that"
        )
    raise ConflictError(f"job {row.id} is {row.state}: the gate decides trained or evaluating jobs")


def decide_gate(ws: Workspace, *, actor: Caller, job_id: str) -> GateOutcome:
    """Evaluate the policy over the job's evidence; record pass or block; attest a pass."""
    with ws.store.read() as session:
        state, policy, who = acting(ws, session, actor)
        require_job_analyst(
            state, policy, who, checked_job(session, state, job_id), to="decide the gate of"
        )
        current, problem = _hash_output(state.job(job_id))
        # Read outside the write transaction, as the output's hash is; the output rule below
        # refuses an output that changed since.
        servable = _servable_rule(ws, state.job(job_id), current)
    with ws.store.write() as session:
        state, policy, who = acting(ws, session, actor)
        row = checked_job(session, state, job_id, lock=True)
        require_job_analyst(state, policy, who, row, to="decide the gate of")
        record = state.job(job_id)
        _check_decidable(session, state, row)
        rules, approvals = _approval_rule(ws, session, state, policy, record)
        evidence, subject_rules = _bound_evidence(session, row, record)
        rules += subject_rules
        rules += evaluate_rules(
            required={
                "review": policy.review.required,
                "weights": policy.weights.required,
                "behavior": policy.behavior.required,
            },
            evidence=evidence,
            review_overridden=_review_override(session, job_id),
        )
        rules.append(_output_rule(record, current, problem))
        rules.append(servable)
        passed = all(r.passed for r in rules)
        decision = Decision(
            job_id=job_id,
            decision="pass" if passed else "block",
            rules=rules,
            reasons=[r.reason for r in rules if not r.passed],
            policy_digest=str(state.policy_digest),
            evidence={k: v[0] for k, v in evidence.items() if v is not None},
            decided_at=now_iso(),
            decided_by=who.name,
        )
        digest = store_evidence(
            ws,
            session,
            job_id=job_id,
            kind="gate",
            body=decision.model_dump(mode="json"),
            actor=who,
        )
        target = JobState.PASSED if passed else JobState.BLOCKED
        transition(
            ws,
            session,
            row,
            target,
            actor=who,
            action=f"gate.{decision.decision}",
            payload={"decision": digest, "reasons": decision.reasons},
        )
        path = None
        if passed:
            assert current is not None
            path = _attest(ws, session, row, decision, approvals, current, who)
            subject: Manifest | None = current
        else:
            subject = current or _recorded_output(record)
        files = _standard_attestations(ws, session, row, decision, approvals, subject)
    return GateOutcome(decision, path, files)


def _recorded_output(record: JobRecord) -> Manifest | None:
    output = record.output or {}
    return _recorded_manifest(output) if output.get("root") else None


def model_signing_key_paths(ws: Workspace) -> tuple[Path, Path]:
    """The workspace's EC P-256 model-signing key (owner-only) and its published public key.

    They live beside the attestation key: ``keys/model-signing.key`` and
    ``keys/model-signing.pub``.
    """
    keys = ws.attestation_key_path.parent
    return keys / "model-signing.key", keys / "model-signing.pub"


def _sign_model(ws: Workspace, session: Session, row: JobRow, manifest: Manifest) -> dict[str, Any]:
    """Sign the output with ``model_signing``; what the attestation records of the signature.

    The signature reaches its place only when the decision commits.
    """
    private, public = model_signing_key_paths(ws)
    pem = ensure_model_signing_key(private, public)
    signature = ws.reports_dir / row.id / MODEL_SIGNATURE_FILENAME
    signature.parent.mkdir(parents=True, exist_ok=True)
    pending = pending_path(signature)
    try:
        digest = sign_model(
            Path(str(row.output_path)), pending, private_key=private, expected=manifest
        )
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    publish_on_commit(session, pending, signature)
    return {
        "signature": MODEL_SIGNATURE_FILENAME,
        "signature_sha256": digest,
        "public_key": pem.decode(),
        "keyid": model_signing_keyid(pem),
    }


def _write_envelope(session: Session, path: Path, envelope: Envelope) -> None:
    """Write a signed statement to ``path`` once the decision's transaction commits."""
    body = json.loads(envelope.model_dump_json())
    path.parent.mkdir(parents=True, exist_ok=True)
    pending = pending_path(path)
    pending.write_text(json.dumps(body, indent=2) + "\n")
    publish_on_commit(session, pending, path)


def _attest(
    ws: Workspace,
    session: Session,
    row: JobRow,
    decision: Decision,
    approvals: list[dict[str, Any]],
    manifest: Manifest,
    actor: Actor,
) -> Path:
    head = dict((session.info.get("audit_heads") or [{}])[-1])
    envelope = issue_attestation(
        manifest,
        decision,
        key=ws.attestation_key(),
        approvals=approvals,
        audit_head={"seq": head.get("seq"), "hash": head.get("hash")},
        model_signature=_sign_model(ws, session, row, manifest),
        # checked_job compared the stored manifests with the chain's inputs
        base_model=job_manifests(row)["base_model"],
    )
    body: dict[str, Any] = json.loads(envelope.model_dump_json())
    store_evidence(ws, session, job_id=row.id, kind="attestation", body=body, actor=actor)
    out = ws.reports_dir / row.id / "attestation.json"
    _write_envelope(session, out, envelope)
    return out


def _standard_attestations(
    ws: Workspace,
    session: Session,
    row: JobRow,
    decision: Decision,
    approvals: list[dict[str, Any]],
    manifest: Manifest | None,
) -> dict[str, Path]:
    """Write the decision's SLSA VSA and the behaviour comparison's in-toto Test Result.

    Nothing is written without a known output (there is no artifact to name); a stale Test
    Result of an earlier decision is removed when this one read no behaviour comparison.
    """
    folder = ws.reports_dir / row.id
    files: dict[str, Path] = {}
    if decision.decision == "pass":
        files["model_signature"] = folder / STANDARD_FILES["model_signature"]
    if manifest is None:
        return files
    key = ws.attestation_key()
    vsa = folder / STANDARD_FILES["verification_summary"]
    _write_envelope(
        session, vsa, gate_verification_summary(manifest, decision, approvals=approvals, key=key)
    )
    files["verification_summary"] = vsa
    tested = folder / STANDARD_FILES["test_result"]
    behavior = decision.evidence.get("behavior")
    if behavior is None:
        tested.unlink(missing_ok=True)
        return files
    body = evidence_body(session, behavior)
    _write_envelope(
        session, tested, behavior_test_result(manifest, row.id, (behavior, body), key=key)
    )
    files["test_result"] = tested
    return files


def override_gate(ws: Workspace, *, actor: Caller, job_id: str, justification: str) -> GateOutcome:
    """A security reviewer passes a blocked job, where the policy lets those rules be overridden."""
    if not justification.strip():
        raise BadInputError("--justification must say why the block is overridden")
    output = hash_recorded_output(ws, job_id)
    with ws.store.write() as session:
        state, policy, who = acting(ws, session, actor)
        row = checked_job(session, state, job_id, lock=True)
        return override_blocked(
            ws, session, state, policy, row, actor=who, justification=justification, output=output
        )


def hash_recorded_output(ws: Workspace, job_id: str) -> tuple[Manifest | None, str | None]:
    """The manifest of a job's recorded output as it is now (or why it cannot be read).

    Hashed outside any transaction (it reads every byte); the state is re-checked after.
    """
    with ws.store.read() as session:
        state = chain_state(ws, session)
        checked_job(session, state, job_id)
        return _hash_output(state.job(job_id))


def override_blocked(
    ws: Workspace,
    session: Session,
    state: ChainState,
    policy: Policy,
    row: JobRow,
    *,
    actor: Actor,
    justification: str,
    output: tuple[Manifest | None, str | None],
) -> GateOutcome:
    """Pass a blocked job over the rules a security reviewer may override; record, attest.

    Runs in the caller's write transaction; ``output`` is the output's hash, taken before it.
    """
    job_id = row.id
    require_role(state, policy, actor.name, "security_reviewer", to="override gate decisions")
    require_not_party(row, actor.name, to="override the gate of")
    record = state.job(job_id)
    if actor.name == record.run_started_by:
        raise PermissionDeniedError(
            f"{actor.name} may not override the gate of job {job_id}: they started the run "
            "whose output it judged (separation of duties); another security reviewer must"
        )
    if row.state != JobState.BLOCKED.value:
        raise ConflictError(f"job {job_id} is {row.state}, not blocked")
    found = chain_evidence(session, record, "gate")
    if found is None:
        raise ConflictError(f"job {job_id} has no recorded gate decision to override")
    decision = Decision.model_validate(found[1])
    failed = [r for r in decision.rules if not r.passed]
    allowed = set(policy.gate.overridable)
    refused = [r for r in failed if r.control not in allowed]
    current, problem = output
    output_rule = _output_rule(record, current, problem)
    if not output_rule.passed:
        refused.append(output_rule)
    if refused:
        raise PermissionDeniedError(
            f"the policy does not let a security reviewer override: "
            f"{'; '.join(r.reason for r in refused)}"
        )
    for r in failed:
        r.overridden = True
        r.passed = True
    decision.decision = "pass"
    decision.override = {
        "by": actor.name,
        "justification": justification.strip(),
        "rules": [r.rule for r in failed],
        "at": now_iso(),
    }
    _, approvals = _approval_rule(ws, session, state, policy, record)
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
    assert current is not None
    path = _attest(ws, session, row, decision, approvals, current, actor)
    files = _standard_attestations(ws, session, row, decision, approvals, current)
    return GateOutcome(decision, path, files)


def revoke_pass(ws: Workspace, *, actor: Caller, job_id: str, reason: str) -> None:
    """A security reviewer withdraws a job's pass: the job becomes ``revoked`` (final).

    Its attestation no longer verifies where the serving side checks revocations: the team
    server's ``/verify`` and attestation route refuse it at once, and
    :func:`revocation_list` signs the list that ``verify-deployment --revocations`` and the
    admission webhook read.

    Raises:
        BadInputError: No reason given.
        PermissionDeniedError: Not a security reviewer.
        ConflictError: The job has not passed the gate (or is already revoked).

    """
    if not reason.strip():
        raise BadInputError("--reason must say why the pass is withdrawn")
    with ws.store.write() as session:
        state, policy, who = acting(ws, session, actor)
        row = checked_job(session, state, job_id, lock=True)
        require_role(state, policy, who.name, "security_reviewer", to="revoke a pass")
        if row.state not in (JobState.PASSED.value, JobState.DEPLOYED.value):
            raise ConflictError(
                f"job {job_id} is {row.state}: only a job that passed the gate can be revoked"
            )
        transition(
            ws,
            session,
            row,
            JobState.REVOKED,
            actor=who,
            action="gate.revoke",
            payload={"reason": reason.strip()},
        )


def revocation_list(ws: Workspace) -> Envelope:
    """The revoked passes the verified chain records, signed with the attestation key.

    For serving sides that verify offline (``verify-deployment --revocations``, the admission
    webhook): publish it where they read it, and again after every revocation.
    """
    revoked, head = _revoked_passes(ws)
    return issue_revocations(revoked, key=ws.attestation_key(), audit_head=head)


def revocations_in_force(ws: Workspace) -> Revocations:
    """The same list, unsigned, for a check made here (the team server's ``/verify``)."""
    revoked, head = _revoked_passes(ws)
    return Revocations.of(revoked, audit_head=head, keyid=ws.attestation_public_key().keyid)


def _revoked_passes(ws: Workspace) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Each ``gate.revoke`` of the cached, verified chain, oldest first; and the chain's head."""
    with ws.store.read() as session:
        state = chain_view(ws, session)
        withdrawn = {j.id: j.revocation for j in state.jobs.values() if j.revocation}
        query = select(AuditEventRow.seq, AuditEventRow.ts).where(
            AuditEventRow.seq.in_([r[0] for r in withdrawn.values()])
        )
        times = {seq: ts for seq, ts in session.execute(query)}
        head = {"seq": state.seq, "hash": state.head_hash}
    revoked = [
        {"job_id": job_id, "revoked_at": times.get(seq, ""), "revoked_by": by, "reason": reason}
        for job_id, (seq, by, reason) in sorted(withdrawn.items(), key=lambda kv: kv[1][0])
    ]
    return revoked, head


def deploy_job(ws: Workspace, *, actor: Caller, job_id: str) -> Path:
    """Mark a passed job deployed (its requester or an admin); returns its attestation path."""
    with ws.store.write() as session:
        state, policy, who = acting(ws, session, actor)
        row = checked_job(session, state, job_id, lock=True)
        if name_of(actor) != row.requester:
            require_role(state, policy, name_of(actor), "admin", to="deploy others' jobs")
        if row.state != JobState.PASSED.value:
            raise ConflictError(
                f"job {job_id} is {row.state}: only a job that passed the gate can be deployed"
            )
        transition(
            ws,
            session,
            row,
            JobState.DEPLOYED,
            actor=who,
            action="job.deploy",
            payload={"model": row.output_path},
        )
    return ws.reports_dir / job_id / "attestation.json"
