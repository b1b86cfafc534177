"""The ``bom`` use case: what the control plane knows of a job, as a CycloneDX ML-BOM.

Every digest in the BOM is one the verified audit chain records (the inputs at submission, the
output the run recorded); the training configuration is read only from a copy whose digest is
the approved one; an attestation or signature is referred to only when it is the one the gate
issued (the attestation the chain records, the signature that attestation names, standard
attestations that verify under the workspace's attestation key).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ftguard.attest import Envelope, PublicKey, canonical_json, verify_envelope
from ftguard.bom import BomAttachment, BomInputs
from ftguard.control._chain import JobRecord
from ftguard.control._gate import STANDARD_FILES, _recorded_manifest
from ftguard.control._identities import chain_state
from ftguard.control._jobs import chain_evidence, checked_job, job_manifests
from ftguard.control._staging import staged_path
from ftguard.control._workspace import Workspace
from ftguard.digests import Manifest, sha256_bytes
from ftguard.errors import ConflictError, FtguardError
from ftguard.store import JobRow

__all__ = ["job_bom", "job_bom_inputs"]

_MAX_CONFIG_BYTES = 1 << 20


def _approved_config(ws: Workspace, row: JobRow, config: Manifest) -> dict[str, Any] | None:
    """The approved training config's top-level settings, from a copy with its digest."""
    if config.kind != "file":
        return None
    for candidate in (staged_path(ws, config.root, config.name), Path(row.config_path)):
        try:
            if not candidate.is_file() or candidate.stat().st_size > _MAX_CONFIG_BYTES:
                continue
            data = candidate.read_bytes()
        except OSError:
            continue
        if sha256_bytes(data) != config.root:
            continue
        try:
            parsed = yaml.safe_load(data.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError, RecursionError):
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _attachments(
    ws: Workspace, job_id: str, attestation_digest: str | None, trusted: PublicKey
) -> list[BomAttachment]:
    """The gate's files for the job that are the ones it issued, with their SHA-256."""
    folder = ws.reports_dir / job_id
    found: list[BomAttachment] = []
    attestation = _read_json(folder / "attestation.json")
    if attestation is not None and sha256_bytes(canonical_json(attestation)) == attestation_digest:
        path = folder / "attestation.json"
        found.append(
            BomAttachment(
                path=path,
                sha256=sha256_bytes(path.read_bytes()),
                comment="ftguard deployment attestation (in-toto Statement in DSSE)",
            )
        )
        payload = json.loads(Envelope.model_validate(attestation).payload_bytes())
        signing = (payload.get("predicate") or {}).get("model_signing") or {}
        signature = folder / STANDARD_FILES["model_signature"]
        if signature.is_file() and sha256_bytes(signature.read_bytes()) == signing.get(
            "signature_sha256"
        ):
            found.append(
                BomAttachment(
                    path=signature,
                    sha256=str(signing["signature_sha256"]),
                    comment="OpenSSF Model Signing signature (Sigstore bundle)",
                )
            )
    for key, comment in (
        ("verification_summary", "SLSA Verification Summary Attestation (DSSE)"),
        ("test_result", "in-toto Test Result of the behaviour comparison (DSSE)"),
    ):
        path = folder / STANDARD_FILES[key]
        body = _read_json(path)
        if body is None:
            continue
        try:
            verify_envelope(Envelope.parse(body), {trusted.keyid: trusted})
        except FtguardError:
            continue
        found.append(
            BomAttachment(path=path, sha256=sha256_bytes(path.read_bytes()), comment=comment)
        )
    return found


def _gate_outcome(session: Any, record: JobRecord) -> tuple[str | None, str | None]:
    gate = chain_evidence(session, record, "gate")
    attestation = record.latest_evidence("attestation")
    decision = str(gate[1].get("decision")) if gate is not None else None
    return decision, attestation.digest if attestation is not None else None


def job_bom_inputs(ws: Workspace, job_id: str) -> BomInputs:
    """What the verified chain says of a trained job, for its BOM.

    Raises:
        NotFoundError: No such job.
        ConflictError: The job has no trained output yet.
        VerificationError: The database disagrees with the audit chain.

    """
    with ws.store.read() as session:
        state = chain_state(ws, session)
        row = checked_job(session, state, job_id)
        record = state.job(job_id)
        output = record.output or {}
        if not output.get("root"):
            raise ConflictError(
                f"job {job_id} has no trained output: a BOM describes a trained model "
                "(train it with 'ftguard run')"
            )
        manifests = job_manifests(row)
        decision, attestation_digest = _gate_outcome(session, record)
        approvers = sorted({a.approver for a in record.approvals_of_run(record.run_count)})
    return BomInputs(
        job_id=job_id,
        purpose=row.purpose,
        state=row.state,
        requester=row.requester,
        approvers=approvers,
        output=_recorded_manifest(output),
        base_model=manifests["base_model"],
        dataset=manifests["dataset"],
        config=manifests["config"],
        training_config=_approved_config(ws, row, manifests["config"]),
        gate_decision=decision,
        attachments=_attachments(ws, job_id, attestation_digest, ws.attestation_public_key()),
    )


def job_bom(ws: Workspace, job_id: str) -> dict[str, Any]:
    """The job's CycloneDX 1.6 ML-BOM (validated against the schema) as a JSON object."""
    from ftguard.bom import build_ml_bom

    return build_ml_bom(job_bom_inputs(ws, job_id))
