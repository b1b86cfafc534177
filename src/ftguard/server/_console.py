"""The approvers' web console: server-rendered pages over the service layer the API uses.

Sign-in is OIDC (authorization code with PKCE) or an API token (``_console_session``);
either opens a console session. Pages only read; every change (approve, reject, register or
confirm a key) is a call of the JSON API from ``console.js`` carrying the session's CSRF token,
so the console can do nothing the API would not let the user do. Approvals are signed in the
browser with a non-extractable WebCrypto Ed25519 key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ftguard.control import (
    TRANSITIONS,
    JobState,
    JobView,
    chain_evidence,
    chain_state,
    policy_in_force,
    service,
)
from ftguard.errors import FtguardError, NotFoundError
from ftguard.policy import policy_digest
from ftguard.server import _charts
from ftguard.server._console_session import (
    LOGIN_COOKIE,
    Viewer,
    current_viewer,
    render,
    signin_router,
    to_login,
)

__all__ = ["LOGIN_COOKIE", "console_router", "may_approve", "mount_static"]

_AUDIT_PAGE = 100
_JOB_ID = re.compile(r"job-[0-9a-f]{10}")
_STATES = [s.value for s in JobState]
_RUNNING = {JobState.IN_REVIEW.value, JobState.RUNNING.value, JobState.EVALUATING.value}
_REJECTABLE = {s.value for s, targets in TRANSITIONS.items() if JobState.REJECTED in targets}
_EVIDENCE = ("review", "weights", "behavior", "gate")

console_router = APIRouter(include_in_schema=False)
console_router.include_router(signin_router)


def mount_static(app: FastAPI) -> None:
    """Serve the console's scripts, styles and icon at ``/static``."""
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")


@console_router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/queue", status_code=303)


# -- pages ------------------------------------------------------------------------------------------


def may_approve(viewer: Viewer, job: JobView) -> bool:
    """Whether the console offers ``viewer`` to approve ``job`` (the API decides for real)."""
    return (
        "approver" in viewer.roles
        and viewer.name not in (job.requester, job.preparer)
        and job.state == JobState.AWAITING_APPROVAL.value
        and not job.awaits_preparer
        and not any(
            a.get("approver") == viewer.name and a.get("status") == "active" for a in job.approvals
        )
    )


@console_router.get("/queue", response_model=None)
def queue(request: Request, state: str | None = None) -> Response:
    viewer = current_viewer(request)
    if viewer is None:
        return to_login(request)
    ws = request.app.state.ctx.ws
    reader = viewer.reader
    waiting = service.list_jobs(ws, state=JobState.AWAITING_APPROVAL.value, reader=reader)
    mine = [j for j in reversed(waiting) if may_approve(viewer, j)]
    chosen = state if state in _STATES else None
    everything = service.list_jobs(ws, state=chosen, reader=reader)
    return render(
        request,
        "queue.html",
        viewer,
        nav="queue",
        mine=mine,
        jobs=everything[:500],
        total=len(everything),
        states=_STATES,
        chosen=chosen,
    )


@console_router.get("/jobs/{job_id}", response_model=None)
def job_page(request: Request, job_id: str) -> Response:
    viewer = current_viewer(request)
    if viewer is None:
        return to_login(request)
    ws = request.app.state.ctx.ws
    try:
        if not _JOB_ID.fullmatch(job_id):
            raise NotFoundError("no such job")
        job = service.get_job(ws, job_id, reader=viewer.reader)
    except NotFoundError:
        return render(
            request,
            "message.html",
            viewer,
            status=404,
            title="No such job",
            message=f"There is no job {job_id}.",
        )
    evidence: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    with ws.store.read() as db:
        record = chain_state(ws, db).jobs.get(job_id)
        if record is None:
            problems.append(
                "this job is not in the audit chain: its database row was added directly"
            )
        for kind in _EVIDENCE:
            try:
                found = chain_evidence(db, record, kind)
            except FtguardError as exc:
                problems.append(str(exc))
                continue
            if found is not None:
                entry, body = found
                evidence[kind] = {
                    "digest": entry.digest,
                    "by": entry.actor,
                    "seq": entry.seq,
                    "body": body,
                }
    behavior = evidence.get("behavior", {}).get("body")
    return render(
        request,
        "job.html",
        viewer,
        nav="queue",
        job=job,
        evidence=evidence,
        problems=problems,
        events=service.iter_audit(ws, job_id=job_id, reader=viewer.reader),
        heatmap=_charts.heatmap_svg(evidence.get("weights", {}).get("body")),
        behavior_charts=_charts.behavior_svgs(behavior),
        can_approve=may_approve(viewer, job),
        can_reject=bool(viewer.roles & {"approver", "security_reviewer"})
        and job.state in _REJECTABLE,
        polling=job.state in _RUNNING,
        attestation=job.state in (JobState.PASSED.value, JobState.DEPLOYED.value),
    )


@console_router.get("/keys", response_model=None)
def keys_page(request: Request) -> Response:
    viewer = current_viewer(request)
    if viewer is None:
        return to_login(request)
    ws = request.app.state.ctx.ws
    with ws.store.read() as db:
        records = list(chain_state(ws, db).keys.values())
    mine = [r for r in records if r.user == viewer.name]
    pending = [r for r in records if r.status == "pending"] if viewer.is_admin else []
    return render(
        request,
        "keys.html",
        viewer,
        nav="keys",
        mine=mine,
        pending=pending,
        known=" ".join(f"{r.keyid}:{r.status}" for r in mine),
    )


@console_router.get("/audit", response_model=None)
def audit_page(request: Request, page: Annotated[int, Query(ge=1, le=1_000_000)] = 1) -> Response:
    viewer = current_viewer(request)
    if viewer is None:
        return to_login(request)
    ws = request.app.state.ctx.ws
    try:
        verification: Any = service.verify_audit(ws, witness="default")
    except FtguardError as exc:
        verification = {"ok": False, "problem": str(exc)}
    events = service.iter_audit(ws, reader=viewer.reader)
    pages = max(1, -(-len(events) // _AUDIT_PAGE))
    page = min(page, pages)
    newest = events[::-1][(page - 1) * _AUDIT_PAGE : page * _AUDIT_PAGE]
    return render(
        request,
        "audit.html",
        viewer,
        nav="audit",
        events=newest,
        page=page,
        pages=pages,
        total=len(events),
        verification=verification,
    )


@console_router.get("/policy", response_model=None)
def policy_page(request: Request) -> Response:
    viewer = current_viewer(request)
    if viewer is None:
        return to_login(request)
    ws = request.app.state.ctx.ws
    with ws.store.read() as db:
        current = policy_in_force(ws, chain_state(ws, db))
    text = yaml.safe_dump(current.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    return render(
        request,
        "policy.html",
        viewer,
        nav="policy",
        digest=policy_digest(current),
        text=text,
        policy=current,
    )
