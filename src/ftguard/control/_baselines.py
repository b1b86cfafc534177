"""Registered weight baselines: fine-tunes a security reviewer vouches for as normal.

A weight report judges a job against the fingerprints of earlier jobs on the same base model
that passed the gate; with fewer than the policy's ``min_baseline_jobs`` it falls back to
fixed limits. A workspace that starts today has no such jobs, although the organisation has
fine-tuned this base model before. A security reviewer can register those earlier fine-tunes
(adapters or models it trusts) as baselines: ftguard computes their weight report, stores its
fingerprint as evidence that belongs to no job, and later weight reports on the same base model
count them together with the passed jobs. Registration and revocation are audited with their
justification; a revoked baseline no longer counts, and nothing is deleted.

Baselines also move between workspaces as records (:func:`export_baselines`,
:func:`import_baselines`): each carries the fingerprint its origin computed from the weights,
bound to the base model's digest. Importing is a security reviewer's act like registering,
but the reviewer vouches for a record, not for bytes read here; the imported baseline says so.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from ftguard.control._chain import ChainState
from ftguard.control._identities import (
    Caller,
    acting,
    authenticate,
    chain_state,
    name_of,
    policy_in_force,
    require_role,
)
from ftguard.control._jobs import chain_evidence, store_evidence
from ftguard.control._states import JobState
from ftguard.control._workspace import Workspace, now_iso
from ftguard.digests import canonical_json, manifest_of, sha256_bytes
from ftguard.errors import BadInputError, ConflictError, NotFoundError, VerificationError
from ftguard.store import EvidenceRow

__all__ = [
    "BASELINE_KIND",
    "EXPORT_FORMAT",
    "MAX_EXPORT_BYTES",
    "REVOKE_KIND",
    "BaselineExport",
    "BaselineRecord",
    "BaselineView",
    "baseline_sources",
    "export_baselines",
    "import_baselines",
    "parse_baseline_export",
    "workspace_weight_report",
    "list_baselines",
    "register_baseline",
    "revoke_baseline",
]

BASELINE_KIND = "weights.baseline"
"""Evidence kind of a registered baseline (stored with no job)."""
REVOKE_KIND = "weights.baseline.revoke"
"""Evidence kind of a baseline's revocation."""


class BaselineView(BaseModel):
    """One registered baseline as the CLI and scripts see it."""

    digest: str
    """Digest of the stored baseline evidence: the handle for ``revoke``."""
    base_model_digest: str
    tuned_digest: str
    tuned_kind: str
    tuned_path: str
    registered_by: str
    registered_at: str
    justification: str
    verdict: str
    """The weight report's own verdict at registration (against the baselines then known)."""
    anomaly_score: float
    revoked: bool = False
    revoked_by: str | None = None
    revoked_at: str | None = None
    revoke_justification: str | None = None
    imported_from: str | None = None
    """For a baseline imported as a record: the SHA-256 of the export it came from (its
    weights were not read in this workspace)."""


EXPORT_FORMAT: Literal["ftguard-weight-baselines"] = "ftguard-weight-baselines"
"""The ``format`` of a baseline export."""
MAX_EXPORT_BYTES = 64 * 1024 * 1024
"""The largest baseline export that is read."""
_DIGEST = r"^[0-9a-f]{64}$"


class BaselineRecord(BaseModel):
    """One baseline as another workspace imports it: the fine-tune's fingerprint and its vouching."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    base_model_digest: str = Field(pattern=_DIGEST)
    tuned_digest: str = Field(pattern=_DIGEST)
    tuned_kind: Literal["full", "lora"]
    justification: str = Field(min_length=1, max_length=4000)
    """Why the origin's security reviewer trusted it."""
    verdict: Literal["pass", "flag"]
    """The fine-tune's own weight report at the origin."""
    anomaly_score: float
    fingerprint: dict[str, Any]
    """The fingerprint the origin computed from the weights (:class:`ftguard.weights.Fingerprint`)."""

    @model_validator(mode="after")
    def _consistent(self) -> BaselineRecord:
        from ftguard.weights import Fingerprint

        fingerprint = Fingerprint.model_validate(self.fingerprint)
        if fingerprint.base_digest != self.base_model_digest:
            raise ValueError("the fingerprint is of another base model than the record names")
        if fingerprint.kind != self.tuned_kind:
            raise ValueError("the fingerprint's kind differs from the record's tuned_kind")
        values = [self.anomaly_score, *fingerprint.features.values()]
        if not all(math.isfinite(v) for v in values):
            raise ValueError("the anomaly score and every feature must be finite numbers")
        self.fingerprint = fingerprint.model_dump(mode="json")  # as validated, nothing else
        return self


class BaselineExport(BaseModel):
    """Unrevoked baselines of a workspace, as ``ftguard weights baseline export`` writes them."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    format: Literal["ftguard-weight-baselines"] = EXPORT_FORMAT
    version: Literal[1] = 1
    records: list[BaselineRecord] = Field(max_length=10_000)
    """Oldest first."""

    def to_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces): the same baselines give the same bytes."""
        return canonical_json(self.model_dump(mode="json"))


def _justified(text: str, what: str) -> str:
    text = text.strip()
    if not text:
        raise BadInputError(f"--justification must say why the baseline is {what}")
    return text


def _rows(session: Session, state: ChainState, kind: str) -> list[EvidenceRow]:
    """Stored evidence of ``kind`` with no job, as the chain records it, oldest first.

    Raises:
        VerificationError: A body the chain records is missing or does not hash to its
            digest (edited in the database).

    """
    in_chain = [e.digest for e in state.baselines if e.kind == kind]
    recorded = set(in_chain)
    rows: dict[str, EvidenceRow] = {}
    for row in session.scalars(
        select(EvidenceRow).where(EvidenceRow.kind == kind, EvidenceRow.job_id.is_(None))
    ):
        if row.digest in recorded and sha256_bytes(row.body.encode()) == row.digest:
            rows.setdefault(row.digest, row)
    missing = [digest for digest in in_chain if digest not in rows]
    if missing:
        raise VerificationError(
            f"the {kind} evidence {missing[0][:16]} the audit chain records is missing or "
            "altered in the database"
        )
    return [rows[digest] for digest in dict.fromkeys(in_chain)]


def _revocations(
    session: Session, state: ChainState
) -> dict[str, tuple[EvidenceRow, dict[str, Any]]]:
    out: dict[str, tuple[EvidenceRow, dict[str, Any]]] = {}
    for row in _rows(session, state, REVOKE_KIND):
        body = json.loads(row.body)
        out.setdefault(str(body["baseline"]), (row, body))
    return out


def _views(session: Session, state: ChainState) -> list[tuple[BaselineView, dict[str, Any]]]:
    revoked = _revocations(session, state)
    out = []
    for row in _rows(session, state, BASELINE_KIND):
        body = json.loads(row.body)
        view = BaselineView(
            digest=row.digest,
            base_model_digest=body["base_model_digest"],
            tuned_digest=body["tuned_digest"],
            tuned_kind=body["tuned_kind"],
            tuned_path=body["tuned_path"],
            registered_by=body["registered_by"],
            registered_at=row.created_at,
            justification=body["justification"],
            verdict=body["verdict"],
            anomaly_score=float(body["anomaly_score"]),
            imported_from=(body.get("imported") or {}).get("sha256"),
        )
        if row.digest in revoked:
            rev_row, rev = revoked[row.digest]
            view.revoked = True
            view.revoked_by = rev["revoked_by"]
            view.revoked_at = rev_row.created_at
            view.revoke_justification = rev["justification"]
        out.append((view, body))
    return out


def baseline_sources(
    session: Session,
    base_model_digest: str,
    *,
    state: ChainState,
    exclude_job: str | None = None,
) -> tuple[list[Any], list[Any]]:
    """What a weight report on this base model is judged against, by source.

    (fingerprints of earlier jobs on this base model that passed the gate, oldest first;
    fingerprints of the unrevoked baselines registered for it, oldest first), as the
    verified chain records them.
    """
    from ftguard.weights import Fingerprint

    passed = (JobState.PASSED.value, JobState.DEPLOYED.value)
    jobs = []
    for record in state.jobs.values():
        if (
            record.state in passed
            and record.digests.get("base_model") == base_model_digest
            and record.id != exclude_job
        ):
            found = chain_evidence(session, record, "weights")
            if found is not None:
                jobs.append(found[1].get("fingerprint"))
    registered = [
        body["fingerprint"]
        for view, body in _views(session, state)
        if not view.revoked and view.base_model_digest == base_model_digest
    ]
    return (
        [Fingerprint.model_validate(b) for b in jobs if b],
        [Fingerprint.model_validate(b) for b in registered],
    )


def workspace_weight_report(
    ws: Workspace, base: Path, tuned: Path, *, baselines: list[Any], **options: Any
) -> Any:
    """A weight report under the workspace's policy, with its base-model fingerprint cache."""
    from ftguard.weights import diff

    return ws.offload(
        diff,
        base,
        tuned,
        policy=ws.policy().weights,  # the callers checked it is the policy in force
        baselines=baselines,
        fingerprint_cache=ws.path / "cache" / "weights",
        **options,
    )


def _security_reviewer(
    ws: Workspace, session: Session, actor: Caller, *, to: str
) -> tuple[ChainState, Any]:
    """The verified chain and ``actor`` as a security reviewer under the policy in force.

    Raises:
        PermissionDeniedError: ``actor`` is not a security reviewer.

    """
    state = chain_state(ws, session)
    who = authenticate(state, actor)
    require_role(state, policy_in_force(ws, state), name_of(actor), "security_reviewer", to=to)
    return state, who


def _store_baseline(ws: Workspace, session: Session, who: Any, body: dict[str, Any]) -> str:
    """Store a baseline's evidence with its audit event (digests, justification, the export)."""
    payload = {
        "tuned": body["tuned_digest"],
        "base_model": body["base_model_digest"],
        "justification": body["justification"],
    }
    if "imported" in body:
        payload["imported_from"] = body["imported"]["sha256"]
    return store_evidence(
        ws, session, job_id=None, kind=BASELINE_KIND, body=body, actor=who, payload=payload
    )


def list_baselines(
    ws: Workspace, *, base_model_digest: str | None = None, include_revoked: bool = True
) -> list[BaselineView]:
    """Registered baselines, oldest first (optionally of one base model, or unrevoked only)."""
    with ws.store.read() as session:
        views = [v for v, _ in _views(session, chain_state(ws, session))]
    return [
        v
        for v in views
        if (base_model_digest is None or v.base_model_digest == base_model_digest)
        and (include_revoked or not v.revoked)
    ]


def register_baseline(
    ws: Workspace,
    *,
    actor: Caller,
    base: Path,
    tuned: Path,
    justification: str,
    base_digest: str | None = None,
    progress: bool = False,
    **options: Any,
) -> BaselineView:
    """A security reviewer registers a trusted fine-tune of ``base`` as a weight baseline.

    The fine-tune's weight report is computed like a job's (``options`` go to
    :func:`ftguard.weights.diff`, e.g. ``alignment``: give the pair the jobs use, or the
    alignment features are missing from the baseline and are not judged) and its
    fingerprint is stored. A report that flags is still registered (the reviewer vouches for
    it); its verdict is kept and shown. ``base_digest``: the base's manifest root when the
    caller already has it (registering several fine-tunes of one base hashes it once).

    Raises:
        PermissionDeniedError: ``actor`` is not a security reviewer.
        ConflictError: This fine-tune is already an unrevoked baseline of this base model.
        BadInputError: Empty justification, or unreadable / mismatched models.

    """
    text = _justified(justification, "trusted")
    with ws.store.read() as session:
        state, policy, _ = acting(ws, session, actor)
        require_role(
            state, policy, name_of(actor), "security_reviewer", to="register weight baselines"
        )
    base_digest = base_digest or manifest_of(Path(base)).root
    with ws.store.read() as session:
        jobs, registered = baseline_sources(session, base_digest, state=chain_state(ws, session))
    report = workspace_weight_report(
        ws,
        base,
        tuned,
        baselines=jobs + registered,
        base_digest=base_digest,
        progress=progress,
        **options,
    )
    body = {
        "version": 1,
        "base_model_digest": report.base_digest,
        "base_model_path": str(Path(base).resolve()),
        "tuned_digest": report.tuned_digest,
        "tuned_kind": report.tuned_kind,
        "tuned_path": str(Path(tuned).resolve()),
        "registered_by": name_of(actor),
        "registered_at": now_iso(),
        "justification": text,
        "verdict": report.verdict,
        "anomaly_score": report.anomaly_score,
        "judgement": report.judgement,
        "fingerprint": report.fingerprint.model_dump(mode="json"),
    }
    with ws.store.write() as session:
        state = chain_state(ws, session)
        who = authenticate(state, actor)
        require_role(
            state, policy, name_of(actor), "security_reviewer", to="register weight baselines"
        )
        for view, _ in _views(session, state):
            if (
                not view.revoked
                and view.base_model_digest == report.base_digest
                and view.tuned_digest == report.tuned_digest
            ):
                raise ConflictError(
                    f"this fine-tune is already baseline {view.digest[:16]} of this base model "
                    f"(registered by {view.registered_by})"
                )
        digest = _store_baseline(ws, session, who, body)
    for view in list_baselines(ws):
        if view.digest == digest:
            return view
    raise NotFoundError(f"baseline {digest} was not stored")  # pragma: no cover


def export_baselines(ws: Workspace, *, base_model_digest: str | None = None) -> BaselineExport:
    """The workspace's unrevoked baselines as records (of one base model, or all), oldest first."""
    with ws.store.read() as session:
        pairs = _views(session, chain_state(ws, session))
    return BaselineExport(
        records=[
            BaselineRecord(
                base_model_digest=view.base_model_digest,
                tuned_digest=view.tuned_digest,
                tuned_kind=view.tuned_kind,  # type: ignore[arg-type]
                justification=view.justification,
                verdict=view.verdict,  # type: ignore[arg-type]
                anomaly_score=view.anomaly_score,
                fingerprint=body["fingerprint"],
            )
            for view, body in pairs
            if not view.revoked
            and (base_model_digest is None or view.base_model_digest == base_model_digest)
        ]
    )


def parse_baseline_export(data: bytes) -> BaselineExport:
    """Read a baseline export (strict JSON: no duplicate keys, NaN or Infinity).

    Raises:
        BadInputError: Too large, not UTF-8 or JSON, or not a baseline export of this version.

    """
    from ftguard.datasets import RecordError, decode_record

    if len(data) > MAX_EXPORT_BYTES:
        raise BadInputError(f"a baseline export is at most {MAX_EXPORT_BYTES} bytes")
    try:
        document = decode_record(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadInputError("the baseline export is not UTF-8 text") from None
    except RecordError as exc:
        raise BadInputError(f"the baseline export is not readable: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise BadInputError(f"not a baseline export (its 'format' must be {EXPORT_FORMAT!r})")
    try:
        return BaselineExport.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the export"
        raise BadInputError(f"invalid baseline export at {where}: {first['msg']}") from None


def import_baselines(
    ws: Workspace, *, actor: Caller, export: BaselineExport, justification: str
) -> list[BaselineView]:
    """A security reviewer imports baseline records, all or none (audited, one event each).

    Each becomes a baseline of its base model like a registered one, marked with the SHA-256
    of the export (``imported_from``); later weight reports count it by its fingerprint.

    Raises:
        PermissionDeniedError: ``actor`` is not a security reviewer.
        ConflictError: A record's fine-tune is already an unrevoked baseline of its base
            model, or the export holds it twice.
        BadInputError: Empty justification or an export without records.

    """
    text = _justified(justification, "trusted")
    if not export.records:
        raise BadInputError("the baseline export holds no records")
    source = sha256_bytes(export.to_bytes())
    stored: list[str] = []
    with ws.store.write() as session:
        state, who = _security_reviewer(ws, session, actor, to="import weight baselines")
        taken = {
            (view.base_model_digest, view.tuned_digest)
            for view, _ in _views(session, state)
            if not view.revoked
        }
        seen: set[tuple[str, str]] = set()
        for record in export.records:
            key = (record.base_model_digest, record.tuned_digest)
            if key in taken or key in seen:
                where = "listed twice in the export" if key in seen else "already a baseline"
                raise ConflictError(
                    f"fine-tune sha256:{record.tuned_digest[:16]} is {where} of base model "
                    f"sha256:{record.base_model_digest[:16]}: nothing was imported"
                )
            seen.add(key)
        for record in export.records:
            body = {
                "version": 1,
                "base_model_digest": record.base_model_digest,
                "base_model_path": "",
                "tuned_digest": record.tuned_digest,
                "tuned_kind": record.tuned_kind,
                "tuned_path": "",
                "registered_by": name_of(actor),
                "registered_at": now_iso(),
                "justification": text,
                "verdict": record.verdict,
                "anomaly_score": record.anomaly_score,
                "judgement": "imported record: the weight report its origin computed; "
                "the weights were not read in this workspace",
                "fingerprint": record.fingerprint,
                "imported": {"sha256": source, "justification": record.justification},
            }
            stored.append(_store_baseline(ws, session, who, body))
    views = {view.digest: view for view in list_baselines(ws)}
    return [views[digest] for digest in stored]


def revoke_baseline(
    ws: Workspace, *, actor: Caller, digest: str, justification: str
) -> BaselineView:
    """A security reviewer withdraws a registered baseline (by its digest or a unique prefix).

    Raises:
        NotFoundError: No baseline has this digest (prefix).
        ConflictError: The prefix is ambiguous, or the baseline is already revoked.

    """
    text = _justified(justification, "revoked")
    prefix = digest.strip().lower().removeprefix("sha256:")
    if len(prefix) < 8:
        raise BadInputError("give at least the first 8 hex digits of the baseline's digest")
    with ws.store.write() as session:
        state, who = _security_reviewer(ws, session, actor, to="revoke weight baselines")
        matches = [v for v, _ in _views(session, state) if v.digest.startswith(prefix)]
        if not matches:
            raise NotFoundError(f"no registered weight baseline has digest {digest}")
        if len(matches) > 1:
            raise ConflictError(f"{len(matches)} baselines start with {digest}: give more digits")
        view = matches[0]
        if view.revoked:
            raise ConflictError(
                f"baseline {view.digest[:16]} was already revoked by {view.revoked_by}"
            )
        store_evidence(
            ws,
            session,
            job_id=None,
            kind=REVOKE_KIND,
            body={
                "version": 1,
                "baseline": view.digest,
                "revoked_by": name_of(actor),
                "justification": text,
            },
            actor=who,
            payload={"baseline": view.digest, "justification": text},
        )
    return next(v for v in list_baselines(ws) if v.digest == view.digest)
