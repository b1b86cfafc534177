"""The per-job HTML report.

It shows the job, its gate decision, approvals, evidence (with the analyzers' own reports
written beside it) and the job's audit trail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment
from markupsafe import Markup
from sqlalchemy import select

from ftguard._html import report_environment
from ftguard.control import Workspace, chain_state, service
from ftguard.digests import sha256_bytes
from ftguard.errors import BadInputError
from ftguard.store import EvidenceRow

__all__ = ["render_evidence_html", "write_job_report"]


def _env() -> Environment:
    return report_environment("ftguard.report")


def render_evidence_html(kind: str, body: dict[str, Any]) -> str | None:
    """The analyzer's own HTML report for stored evidence, when the analyzer is installed."""
    try:
        if kind == "review":
            from ftguard.review import DatasetReview, render_review_html

            return str(render_review_html(DatasetReview.model_validate(body)))
        if kind == "weights":
            from ftguard.weights import WeightReport, render_weights_html

            return str(render_weights_html(WeightReport.model_validate(body)))
        if kind == "behavior":
            from ftguard.behavior import BehaviorComparison, render_behavior_html

            return str(render_behavior_html(BehaviorComparison.model_validate(body)))
    except (ImportError, ValueError):
        return None
    return None


def _weights_heatmap(body: dict[str, Any], ident: object) -> Markup | None:
    """The weight report's layer x module heatmap (inline SVG), when the analyzer is installed."""
    try:
        from ftguard.weights import weights_heatmap_svg
    except ImportError:
        return None
    svg = weights_heatmap_svg(body, ident=f"ev{ident}")
    return Markup(svg) if svg else None  # noqa: S704 - every text in it is escaped


def _summary(payload: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in payload.items() if k not in ("public_key",))
    return text[:200]


def write_job_report(ws: Workspace, job_id: str, out_dir: Path | None = None) -> Path:
    """Write ``job.html`` (and one HTML per analyzer report) for a job; returns its path.

    Raises:
        NotFoundError: No such job.
        BadInputError: The folder cannot be created or written to.

    """
    job = service.get_job(ws, job_id)
    folder = out_dir or ws.reports_dir / job_id
    _writable_folder(folder)
    evidence: list[dict[str, Any]] = []
    gate: dict[str, Any] | None = None
    with ws.store.read() as session:
        # Only evidence the verified chain records for the job, its body matching the digest:
        # a row added or edited in the database is never shown to the people who decide.
        recorded = {e.digest for e in chain_state(ws, session).job(job_id).evidence}
        rows = session.scalars(
            select(EvidenceRow).where(EvidenceRow.job_id == job_id).order_by(EvidenceRow.id)
        ).all()
        for row in rows:
            if row.digest not in recorded or sha256_bytes(row.body.encode()) != row.digest:
                continue
            body = json.loads(row.body)
            link = None
            html = render_evidence_html(row.kind, body)
            if html is not None:
                link = f"{row.kind}.html"
                _write(folder / link, html)
            if row.kind == "gate":
                gate = body
            evidence.append(
                {
                    "kind": row.kind,
                    "digest": row.digest,
                    "verdict": body.get("verdict") or body.get("decision"),
                    "link": link,
                    "heatmap": _weights_heatmap(body, row.id) if row.kind == "weights" else None,
                }
            )
    events = [
        {
            "seq": e.seq,
            "ts": e.ts,
            "actor": e.actor,
            "action": e.action,
            "summary": _summary(e.payload),
        }
        for e in service.iter_audit(ws, job_id=job_id)
    ]
    html = (
        _env().get_template("job.html").render(job=job, gate=gate, evidence=evidence, events=events)
    )
    path = folder / "job.html"
    _write(path, html)
    return path


def _writable_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(
            f"cannot create the report folder {folder}: {exc.strerror or exc}"
        ) from None
    if not folder.is_dir():
        raise BadInputError(f"cannot write the report into {folder}: not a folder")


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BadInputError(f"cannot write the report {path}: {exc.strerror or exc}") from None
