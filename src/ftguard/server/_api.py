"""The HTTP API, ``/api/v1``: each route authenticates, then calls one service use case.

Authorisation is the service layer's (roles from the verified chain and the policy in force),
the same code the CLI runs; routes only translate HTTP to calls and results to JSON.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ftguard.attest import Envelope
from ftguard.control import JobState, JobView, chain_view, policy_in_force, service
from ftguard.errors import (
    AuthenticationError,
    FtguardError,
    NotFoundError,
    PermissionDeniedError,
)
from ftguard.policy import Policy, policy_digest
from ftguard.server._auth import caller_for
from ftguard.server._context import ServerContext
from ftguard.server._schemas import (
    EvidenceAnswer,
    GateAnswer,
    InTotoStatement,
    KeyStatus,
    PolicyAnswer,
    TokenIssued,
    TokenRevoked,
    TokenView,
    UserAdded,
    UserBinding,
    UserView,
    VerifyAnswer,
)
from ftguard.server._storage import reference_of, resolve_input, resolve_output, root_of

__all__ = ["ROUTE_SCOPES", "SESSION_COOKIE", "router"]

SESSION_COOKIE = "ftguard_session"
JOB_ID = r"^job-[0-9a-f]{10}$"
KEY_ID = r"^[0-9a-f]{8,64}$"
TOKEN_ID = r"^[0-9a-f]{16}$"
NAME = r"^[A-Za-z0-9._@-]{1,128}$"

router = APIRouter(prefix="/api/v1")
_T = TypeVar("_T")


async def _analysis(ctx: ServerContext, use_case: Callable[..., _T], /, **kwargs: Any) -> _T:
    """Run a use case that waits on an analysis (seconds to hours) in a thread of its own.

    Routes declared ``def`` share one pool of threads; a few dozen reviews waiting on the
    analysis workers would take every thread of it, and a ``GET`` would wait behind them.
    """
    return await anyio.to_thread.run_sync(
        functools.partial(use_case, **kwargs), limiter=ctx.analysis_threads()
    )


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL; no field has a use for it anywhere
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("text may not contain the NUL character")
        return value


class SubmitBody(_Body):
    base_model: str = Field(max_length=4096, description="ROOT/relative/path of the base model")
    dataset: str = Field(max_length=4096, description="ROOT/relative/path of the dataset")
    config: str = Field(max_length=4096, description="ROOT/relative/path of the training config")
    purpose: str = Field(min_length=1, max_length=2000)
    prepared_by: str | None = Field(default=None, pattern=NAME)


class ApprovalBody(_Body):
    envelope: Envelope


class ReasonBody(_Body):
    reason: str = Field(min_length=1, max_length=2000)


class JustificationBody(_Body):
    justification: str = Field(min_length=1, max_length=2000)


class UserBody(_Body):
    name: str = Field(pattern=NAME)
    roles: list[
        Literal["requester", "data_preparer", "approver", "security_reviewer", "runner", "admin"]
    ] = Field(min_length=1, max_length=6)


class KeyBody(_Body):
    public_key: str = Field(max_length=64, description="base64 raw Ed25519 public key")
    proof: str = Field(
        max_length=128,
        description="base64 signature by the key of 'ftguard-key-request:v1:USER:KEYID'",
    )


class RevokeKeyBody(_Body):
    reason: str = Field(default="", max_length=2000)


class TokenBody(_Body):
    user: str = Field(pattern=NAME)
    expires: str = Field(default="90d", pattern=r"^\d{1,4}[mhd]$")
    scopes: list[Literal["read", "submit", "analyze", "approve", "run", "keys", "admin"]] | None = (
        Field(default=None, min_length=1, max_length=7, description="null: not limited")
    )


class RunBody(_Body):
    output: str | None = Field(
        default=None,
        max_length=4096,
        description="ROOT/relative/path for the output (default: ftguard-runs/JOB/RUN in the dataset's root)",
    )


class RunEndBody(_Body):
    token: str = Field(min_length=16, max_length=128)
    exit_code: int = Field(ge=-255, le=255)


class RunStarted(BaseModel):
    run: int
    token: str
    ticket: Envelope


class ServerKeys(BaseModel):
    server_keyid: str
    server_key: str
    audit_key: str
    attestation_key: str


class WhoAmI(BaseModel):
    user: str
    roles: list[str]
    via: dict[str, str]
    scopes: list[str] | None = Field(
        description="what the API token is limited to (null: everything the roles allow)"
    )


class Message(BaseModel):
    error: str
    message: str
    request_id: str | None = None


def context(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API token (`ftguard token create`) or an access token of an OIDC issuer "
    "the policy names.",
)
_CONSOLE_SESSION = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="console_session",
    description="The console's session cookie; writes also need the X-CSRF-Token header.",
)


def current_caller(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
    _session: Annotated[str | None, Security(_CONSOLE_SESSION)] = None,
    x_csrf_token: Annotated[str | None, Header()] = None,
) -> service.ServerCaller:
    """The authenticated caller: a bearer credential, or a console session (with CSRF check).

    The security schemes document the credentials; the raw header is what is checked (so that
    a malformed one is refused with the same answer as a wrong one).
    """
    ctx = context(request)
    authorization = request.headers.get("authorization")
    client = request.client.host if request.client else "unknown"
    sid = request.cookies.get(SESSION_COOKIE)
    if not authorization and sid:
        session = ctx.sessions.get(sid)
        if session is None:
            ctx.limiter.failed(client)
            raise AuthenticationError("your console session ended: sign in again")
        if request.method not in ("GET", "HEAD") and x_csrf_token != session.csrf:
            raise PermissionDeniedError("missing or wrong CSRF token")
        with ctx.ws.store.read() as db:
            bound = chain_view(ctx.ws, db).still_bound(session.user, session.via)
        if not bound:
            ctx.sessions.close(sid)
            raise AuthenticationError("your sign-in is no longer bound to this user: sign in again")
        return service.ServerCaller(name=session.user, server_key=ctx.server_key, via=session.via)
    caller = caller_for(ctx, authorization=authorization, client=client)
    request.state.user = caller.name
    if caller.scopes is not None:
        _check_scope(request, caller.scopes)
    return caller


def _check_scope(request: Request, scopes: frozenset[str]) -> None:
    """Refuse a scoped API token on a route outside its scopes (unknown routes included)."""
    route = request.scope.get("route")
    path = getattr(route, "path", "")
    needed = ROUTE_SCOPES.get((request.method, path))
    if needed is None or needed not in scopes:
        raise PermissionDeniedError(
            f"this API token is limited to {', '.join(sorted(scopes))}; "
            f"{request.method} {path} needs the {needed or 'admin'} scope"
        )


_PREFIX = "/api/v1"
ROUTE_SCOPES: dict[tuple[str, str], str] = {
    (method, _PREFIX + path): scope
    for scope, routes in {
        "read": [
            ("GET", "/whoami"),
            ("GET", "/jobs"),
            ("GET", "/jobs/{job_id}"),
            ("GET", "/jobs/{job_id}/evidence/{kind}"),
            ("GET", "/jobs/{job_id}/attestation"),
            ("GET", "/audit"),
            ("GET", "/audit/verify"),
            ("GET", "/policy"),
            ("GET", "/users"),
            ("GET", "/tokens"),
            ("GET", "/server-key"),
            ("GET", "/revocations"),
            ("POST", "/verify"),
        ],
        "submit": [
            ("POST", "/jobs"),
            ("POST", "/jobs/{job_id}/cancel"),
            ("POST", "/jobs/{job_id}/prepared"),
        ],
        "analyze": [
            ("POST", "/jobs/{job_id}/review"),
            ("POST", "/jobs/{job_id}/weights"),
            ("POST", "/jobs/{job_id}/eval"),
            ("POST", "/jobs/{job_id}/gate"),
        ],
        "approve": [
            ("GET", "/jobs/{job_id}/approval-statement"),
            ("POST", "/jobs/{job_id}/approvals"),
            ("POST", "/jobs/{job_id}/reject"),
            ("POST", "/jobs/{job_id}/override"),
            ("POST", "/jobs/{job_id}/revoke"),
        ],
        "run": [("POST", "/jobs/{job_id}/runs"), ("POST", "/jobs/{job_id}/runs/{run}/end")],
        "keys": [
            ("POST", "/keys"),
            ("POST", "/keys/{keyid}/revoke"),
            ("DELETE", "/tokens/{token_id}"),
        ],
        "admin": [
            ("POST", "/users"),
            ("POST", "/users/{name}/bind"),
            ("POST", "/users/{name}/unbind"),
            ("POST", "/jobs/{job_id}/abort"),
            ("POST", "/keys/{keyid}/confirm"),
            ("POST", "/tokens"),
        ],
    }.items()
    for method, path in routes
}
"""The scope each API route needs of a scoped token; a route missing here refuses them all."""


Caller = Annotated[service.ServerCaller, Depends(current_caller)]
Ctx = Annotated[ServerContext, Depends(context)]


def current_reader(ctx: Ctx, caller: Caller) -> service.JobReader:
    """The caller as a reader of jobs: which jobs they may see (see ``control/_readers``)."""
    return service.JobReader.for_roles(caller.name, _caller_roles(ctx, caller)[1])


def _caller_roles(ctx: ServerContext, caller: service.ServerCaller) -> tuple[Policy, set[str]]:
    """The policy in force, and the roles the caller may use under it.

    A token without the ``admin`` scope never uses its user's admin role.
    """
    with ctx.ws.store.read() as session:
        state = chain_view(ctx.ws, session)
        policy = policy_in_force(ctx.ws, state)
        roles = state.roles_of(caller.name, policy.roles)
    if caller.scopes is not None and "admin" not in caller.scopes:
        roles -= {"admin"}
    return policy, roles


Reader = Annotated[service.JobReader, Depends(current_reader)]


def readable_job(ctx: Ctx, reader: Reader, job_id: Annotated[str, Path(pattern=JOB_ID)]) -> str:
    """The path's job id, if the caller may read that job; else the job is not found (404).

    Every route on one job checks this first, so a job the caller may not read answers the
    same as one that does not exist, whatever the route.
    """
    service.get_job(ctx.ws, job_id, reader=reader)
    return job_id


JobId = Annotated[str, Depends(readable_job)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Message} for code in (400, 401, 403, 404, 409, 413, 422, 429, 501, 503)
}


def check_storage_access(
    ctx: ServerContext, caller: service.ServerCaller, **references: str
) -> None:
    """Refuse a reference into a storage root the policy keeps from the caller.

    The policy's ``server.storage_access`` decides; checked before the path is looked at, so a
    refusal says nothing of what is there.

    Raises:
        PermissionDeniedError: The caller may not use one of the roots.

    """
    policy, roles = _caller_roles(ctx, caller)
    for what, reference in references.items():
        root = root_of(reference)
        if not policy.server.may_use_root(root, caller.name, roles):
            raise PermissionDeniedError(
                f"{what}: {caller.name} may not use the storage root {root!r} "
                "(the policy's server.storage_access)"
            )


@router.get("/whoami", responses=_ERRORS)
def whoami(ctx: Ctx, caller: Caller) -> WhoAmI:
    """Who the server takes you for, your roles, and how you were authenticated."""
    with ctx.ws.store.read() as session:
        state = chain_view(ctx.ws, session)
        roles = state.roles_of(caller.name, policy_in_force(ctx.ws, state).roles)
    scopes = None if caller.scopes is None else sorted(caller.scopes)
    return WhoAmI(user=caller.name, roles=sorted(roles), via=caller.via, scopes=scopes)


@router.get("/jobs", responses=_ERRORS)
def list_jobs(
    ctx: Ctx,
    reader: Reader,
    state: Annotated[
        Literal[tuple(s.value for s in JobState)] | None,  # type: ignore[valid-type]
        Query(),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[JobView]:
    """Jobs, newest first (optionally in one state), a page at a time."""
    return service.list_jobs(ctx.ws, state=state, limit=limit, offset=offset, reader=reader)


@router.post("/jobs", status_code=201, responses=_ERRORS)
def submit_job(ctx: Ctx, caller: Caller, body: SubmitBody) -> JobView:
    """Request a fine-tune; its inputs are named inside the server's storage roots."""
    roots = ctx.settings.storage_roots
    kinds = ("base_model", "dataset", "config")
    check_storage_access(ctx, caller, **{what: getattr(body, what) for what in kinds})
    paths = {what: resolve_input(roots, getattr(body, what), what=what) for what in kinds}
    return service.submit_job(
        ctx.ws,
        actor=caller,
        base_model=paths["base_model"],
        dataset=paths["dataset"],
        config=paths["config"],
        purpose=body.purpose,
        prepared_by=body.prepared_by or caller.name,
    )


@router.get("/jobs/{job_id}", responses=_ERRORS)
def get_job(ctx: Ctx, caller: Caller, job_id: JobId) -> JobView:
    """One job with its approvals and evidence digests."""
    return service.get_job(ctx.ws, job_id)


@router.get("/jobs/{job_id}/evidence/{kind}", responses=_ERRORS)
def get_evidence(
    ctx: Ctx,
    caller: Caller,
    job_id: JobId,
    kind: Annotated[str, Path(pattern=r"^[a-z_]{1,32}$")],
) -> EvidenceAnswer:
    """The newest evidence of one kind (``review``, ``weights``, ``behavior``, ``gate``).

    Only evidence the verified audit chain records for the job, its body checked against the
    chain's digest: a row added or edited in the database is never shown as evidence.
    """
    from sqlalchemy import select

    from ftguard.control import chain_evidence, chain_state
    from ftguard.store import EvidenceRow

    service.get_job(ctx.ws, job_id)
    with ctx.ws.store.read() as session:
        found = chain_evidence(session, chain_state(ctx.ws, session).job(job_id), kind)
        if found is None:
            raise NotFoundError(f"job {job_id} has no {kind} evidence")
        record, body = found
        created_at = session.scalars(
            select(EvidenceRow.created_at).where(EvidenceRow.digest == record.digest)
        ).first()
        return EvidenceAnswer(
            kind=kind, digest=record.digest, created_at=created_at or "", body=body
        )


class ReviewAnswer(BaseModel):
    review: dict[str, Any]
    job: JobView


class WeightsBody(_Body):
    deep: bool = False


class EvalBody(_Body):
    limit: int | None = Field(default=None, ge=1, le=10_000)


@router.post("/jobs/{job_id}/review", responses=_ERRORS)
async def review_job(ctx: Ctx, caller: Caller, job_id: JobId) -> ReviewAnswer:
    """Run the policy's dataset review on the job, on the server (minutes on large datasets)."""
    review, job = await _analysis(ctx, service.review_job, ws=ctx.ws, actor=caller, job_id=job_id)
    return ReviewAnswer(review=review.model_dump(mode="json"), job=job)


@router.post("/jobs/{job_id}/weights", responses=_ERRORS)
async def weights_job(ctx: Ctx, caller: Caller, job_id: JobId, body: WeightsBody) -> dict[str, Any]:
    """The weight report of the job's recorded output against its base, computed here."""
    report = await _analysis(
        ctx, service.weights_for_job, ws=ctx.ws, actor=caller, job_id=job_id, deep=body.deep
    )
    return dict(report.model_dump(mode="json"))


@router.post("/jobs/{job_id}/eval", responses=_ERRORS)
async def eval_job(ctx: Ctx, caller: Caller, job_id: JobId, body: EvalBody) -> dict[str, Any]:
    """The behaviour comparison of the job's output with its base, run here (long)."""
    comparison = await _analysis(
        ctx, service.evaluate_job, ws=ctx.ws, actor=caller, job_id=job_id, limit=body.limit
    )
    return dict(comparison.model_dump(mode="json"))


@router.get(
    "/jobs/{job_id}/approval-statement",
    response_model=None,
    responses={200: {"model": InTotoStatement}, **_ERRORS},
)
def approval_statement(ctx: Ctx, caller: Caller, job_id: JobId) -> JSONResponse:
    """The in-toto Statement you sign (with your own key) to approve the job.

    Sent as issued, not re-serialised: sign the JSON object you received.
    """
    return JSONResponse(service.approval_statement(ctx.ws, actor=caller, job_id=job_id))


@router.post("/jobs/{job_id}/approvals", status_code=201, responses=_ERRORS)
def approve(ctx: Ctx, caller: Caller, job_id: JobId, body: ApprovalBody) -> JobView:
    """Record your approval: the statement, signed with one of your own registered keys."""
    return service.approve_signed(ctx.ws, actor=caller, job_id=job_id, envelope=body.envelope)


class PreparedBody(_Body):
    dataset_digest: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="the digest of the preparer's own copy; must be the submitted dataset's",
    )


@router.post("/jobs/{job_id}/prepared", responses=_ERRORS)
def confirm_prepared(ctx: Ctx, caller: Caller, job_id: JobId, body: PreparedBody) -> JobView:
    """The job's named data preparer confirms that its dataset is the one they prepared."""
    return service.confirm_prepared(
        ctx.ws, actor=caller, job_id=job_id, dataset_digest=body.dataset_digest
    )


@router.post("/jobs/{job_id}/reject", responses=_ERRORS)
def reject(ctx: Ctx, caller: Caller, job_id: JobId, body: ReasonBody) -> JobView:
    """Reject the job, with a reason; its approvals become void."""
    return service.reject(ctx.ws, actor=caller, job_id=job_id, reason=body.reason)


@router.post("/jobs/{job_id}/cancel", responses=_ERRORS)
def cancel(ctx: Ctx, caller: Caller, job_id: JobId) -> JobView:
    """Cancel the job (its requester or an admin)."""
    return service.cancel_job(ctx.ws, actor=caller, job_id=job_id)


@router.post("/jobs/{job_id}/abort", responses=_ERRORS)
def abort(ctx: Ctx, caller: Caller, job_id: JobId, body: ReasonBody) -> JobView:
    """End a run whose launcher is gone (admins): the job fails, audited as ``run.abort``."""
    service.abort_run(ctx.ws, actor=caller, job_id=job_id, reason=body.reason)
    return service.get_job(ctx.ws, job_id)


@router.post("/jobs/{job_id}/override", responses=_ERRORS)
def override(ctx: Ctx, caller: Caller, job_id: JobId, body: JustificationBody) -> JobView:
    """A security reviewer's recorded override of the review's or the gate's block."""
    return service.override(ctx.ws, actor=caller, job_id=job_id, justification=body.justification)


@router.post("/jobs/{job_id}/revoke", responses=_ERRORS)
def revoke(ctx: Ctx, caller: Caller, job_id: JobId, body: ReasonBody) -> JobView:
    """A security reviewer withdraws a job's pass (final): its attestation stops verifying."""
    service.revoke_pass(ctx.ws, actor=caller, job_id=job_id, reason=body.reason)
    return service.get_job(ctx.ws, job_id)


@router.get("/revocations", response_model=None, responses={200: {"model": Envelope}, **_ERRORS})
def revocations(ctx: Ctx, caller: Caller) -> JSONResponse:
    """The signed list of revoked passes (``verify-deployment --revocations``), made now."""
    return JSONResponse(service.revocation_list(ctx.ws).model_dump(mode="json"))


@router.post("/jobs/{job_id}/gate", responses=_ERRORS)
def gate(ctx: Ctx, caller: Caller, job_id: JobId) -> GateAnswer:
    """Decide the deployment gate over the job's recorded evidence."""
    outcome = service.decide_gate(ctx.ws, actor=caller, job_id=job_id)
    return GateAnswer(
        **outcome.decision.model_dump(),
        attestation_url=f"/api/v1/jobs/{job_id}/attestation" if outcome.attestation_path else None,
    )


@router.get(
    "/jobs/{job_id}/attestation",
    response_model=None,
    responses={200: {"model": Envelope, "description": "a DSSE envelope"}, **_ERRORS},
)
def attestation(ctx: Ctx, caller: Caller, job_id: JobId) -> JSONResponse:
    """The signed deployment attestation of a job that passed the gate (a DSSE envelope)."""
    job = service.get_job(ctx.ws, job_id)
    path = ctx.ws.reports_dir / job_id / "attestation.json"
    if job.state == "revoked":
        raise NotFoundError(f"job {job_id}'s pass was revoked: its attestation is withdrawn")
    if not path.is_file():
        raise NotFoundError(f"job {job_id} has no attestation: it has not passed the gate")
    return JSONResponse(
        json.loads(path.read_text(encoding="utf-8")),
        headers={"Content-Disposition": f'attachment; filename="{job_id}.attestation.json"'},
    )


@router.get("/audit", responses=_ERRORS)
def audit(
    ctx: Ctx,
    reader: Reader,
    job_id: Annotated[str | None, Query(pattern=JOB_ID)] = None,
    after: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[service.AuditEvent]:
    """Audit events in order (after a sequence number; optionally of one job)."""
    return service.iter_audit(ctx.ws, job_id=job_id, after=after, limit=limit, reader=reader)


@router.get("/audit/verify", responses=_ERRORS)
def audit_verify(ctx: Ctx, caller: Caller) -> service.AuditVerification:
    """Verify the whole audit chain (and the witness's heads) now."""
    return service.verify_audit(ctx.ws, witness="default")


@router.get("/policy", responses=_ERRORS)
def policy(ctx: Ctx, caller: Caller) -> PolicyAnswer:
    """The policy in force, with its digest."""
    with ctx.ws.store.read() as session:
        current = policy_in_force(ctx.ws, chain_view(ctx.ws, session))
    return PolicyAnswer(digest=policy_digest(current), policy=current)


@router.get("/users", responses=_ERRORS)
def users(ctx: Ctx, caller: Caller) -> list[UserView]:
    """Every user, their roles and keys."""
    return [UserView.model_validate(u) for u in service.list_users(ctx.ws)]


@router.post("/users", status_code=201, responses=_ERRORS)
def add_user(ctx: Ctx, caller: Caller, body: UserBody) -> UserAdded:
    """Add a user with roles (admins)."""
    added = service.add_user(ctx.ws, actor=caller, name=body.name, roles=list(body.roles))
    return UserAdded.model_validate(added)


class BindBody(_Body):
    issuer: str = Field(min_length=1, max_length=2048)
    subject: str = Field(min_length=1, max_length=255)


@router.post("/users/{name}/bind", responses=_ERRORS)
def bind_user(
    ctx: Ctx, caller: Caller, name: Annotated[str, Path(pattern=NAME)], body: BindBody
) -> UserBinding:
    """Bind a user to one OIDC identity before their first sign-in (admins)."""
    bound = service.bind_user(
        ctx.ws, actor=caller, name=name, issuer=body.issuer, subject=body.subject
    )
    return UserBinding.model_validate(bound)


@router.post("/users/{name}/unbind", responses=_ERRORS)
def unbind_user(ctx: Ctx, caller: Caller, name: Annotated[str, Path(pattern=NAME)]) -> UserBinding:
    """Release a user from the OIDC identity their sign-ins are bound to (admins)."""
    return UserBinding.model_validate(service.unbind_user(ctx.ws, actor=caller, name=name))


@router.post("/keys", status_code=201, responses=_ERRORS)
def register_key(ctx: Ctx, caller: Caller, body: KeyBody) -> KeyStatus:
    """Ask for your public key to be registered (an admin confirms it before it counts)."""
    return KeyStatus.model_validate(
        service.register_key(ctx.ws, actor=caller, public_key=body.public_key, proof=body.proof)
    )


@router.post("/keys/{keyid}/confirm", responses=_ERRORS)
def confirm_key(ctx: Ctx, caller: Caller, keyid: Annotated[str, Path(pattern=KEY_ID)]) -> KeyStatus:
    """Confirm a requested key (admins, after checking its id with its holder)."""
    return KeyStatus.model_validate(service.confirm_key(ctx.ws, actor=caller, keyid=keyid))


@router.post("/keys/{keyid}/revoke", responses=_ERRORS)
def revoke_key(
    ctx: Ctx, caller: Caller, keyid: Annotated[str, Path(pattern=KEY_ID)], body: RevokeKeyBody
) -> KeyStatus:
    """Revoke a key (its owner or an admin)."""
    return KeyStatus.model_validate(
        service.revoke_key(ctx.ws, actor=caller, keyid=keyid, reason=body.reason)
    )


@router.get("/tokens", responses=_ERRORS)
def tokens(ctx: Ctx, caller: Caller) -> list[TokenView]:
    """API tokens (yours; an admin sees everyone's), never their secrets."""
    with ctx.ws.store.read() as session:
        state = chain_view(ctx.ws, session)
    # a token without the admin scope never uses its user's admin role (it lists its own)
    may_administer = caller.scopes is None or "admin" in caller.scopes
    admin = may_administer and "admin" in state.roles_of(caller.name)
    ctx.write_token_uses()  # the last uses noted but not yet written
    listed = service.list_tokens(ctx.ws, user=None if admin else caller.name)
    return [TokenView.model_validate(t) for t in listed]


@router.post("/tokens", status_code=201, responses=_ERRORS)
def create_token(ctx: Ctx, caller: Caller, body: TokenBody) -> TokenIssued:
    """Issue an API token for a user (admins); the token is in this answer only."""
    return TokenIssued.model_validate(
        service.create_token(
            ctx.ws,
            actor=caller,
            user=body.user,
            expires=body.expires,
            scopes=None if body.scopes is None else list(body.scopes),
        )
    )


@router.delete("/tokens/{token_id}", responses=_ERRORS)
def revoke_token(
    ctx: Ctx, caller: Caller, token_id: Annotated[str, Path(pattern=TOKEN_ID)]
) -> TokenRevoked:
    """Revoke an API token (its owner or an admin)."""
    return TokenRevoked.model_validate(
        service.revoke_token(ctx.ws, actor=caller, token_id=token_id)
    )


@router.get("/server-key", responses=_ERRORS)
def server_key(ctx: Ctx, caller: Caller) -> ServerKeys:
    """The public keys a training machine or the serving side pins."""
    public = ctx.server_key.public
    return ServerKeys(
        server_keyid=public.keyid,
        server_key=public.b64,
        audit_key=ctx.ws.audit_public_key().b64,
        attestation_key=ctx.ws.attestation_public_key().b64,
    )


@router.post("/jobs/{job_id}/runs", status_code=201, responses=_ERRORS)
def start_run(ctx: Ctx, caller: Caller, job_id: JobId, body: RunBody) -> RunStarted:
    """Start a run of an approved job on a training machine: a signed run ticket and token."""
    from ftguard.control import start_remote_run

    roots = ctx.settings.storage_roots
    job = service.get_job(ctx.ws, job_id)
    references = {
        kind: reference_of(roots, getattr(job, kind)["path"])
        for kind in ("dataset", "base_model", "config")
    }
    for kind, reference in references.items():
        # read again from the storage as it is now (an object root is downloaded afresh):
        # the ticket's approved digests are checked against these bytes
        resolve_input(roots, reference, what=kind)
    if body.output:
        check_storage_access(ctx, caller, output=body.output)
    output = body.output or (
        f"{references['dataset'].split('/')[0]}/ftguard-runs/{job_id}/{job.run_count + 1}"
    )
    resolve_output(roots, output)
    started = start_remote_run(
        ctx.ws, actor=caller, job_id=job_id, references=references, output_reference=output
    )
    return RunStarted(run=started.run, token=started.token, ticket=started.ticket)


@router.post("/jobs/{job_id}/runs/{run}/end", responses=_ERRORS)
def end_run(
    ctx: Ctx, caller: Caller, job_id: JobId, run: Annotated[int, Path(ge=1)], body: RunEndBody
) -> JobView:
    """Report a run's end; the server hashes the output on its own storage and records it."""
    from ftguard.control import finish_run, run_output_reference

    reference = run_output_reference(ctx.ws, job_id, run)
    output = None
    if body.exit_code == 0:
        try:
            output = str(resolve_input(ctx.settings.storage_roots, reference, what="output"))
        except FtguardError:
            output = None  # recorded as a failed run: the output is not where it must be
    finish_run(
        ctx.ws,
        actor=caller,
        job_id=job_id,
        token=body.token,
        exit_code=body.exit_code,
        output_path=output,
    )
    return service.get_job(ctx.ws, job_id)


class VerifyBody(_Body):
    model: str = Field(
        max_length=4096, description="ROOT/relative/path of the model folder or file to be served"
    )
    attestation: str = Field(
        max_length=4096,
        description="a job id (the attestation the gate issued for it) or ROOT/relative/path "
        "of an attestation file",
    )
    model_signature: str | None = Field(
        default=None,
        max_length=4096,
        description="ROOT/relative/path of the model signature (default: model.sig beside the "
        "attestation)",
    )
    base_model: str | None = Field(
        default=None,
        max_length=4096,
        description="ROOT/relative/path of the base model a LoRA adapter is served on "
        "(required for an adapter: it must be the approved base)",
    )


@router.post("/verify", responses=_ERRORS)
def verify(ctx: Ctx, caller: Caller, reader: Reader, body: VerifyBody) -> VerifyAnswer:
    """Whether a model may be served: the gate's deployment check, answered allow or deny.

    The model's files must be exactly those the trusted attestation names, its model signature
    must verify, and the decision's audit head must be in this server's witness. A model that
    does not verify is an answer (``allowed: false`` with the reasons), not an error.
    """
    from ftguard.integrations import check_model

    roots = ctx.settings.storage_roots
    by_id = re.fullmatch(JOB_ID, body.attestation) is not None
    named = {
        "model": body.model,
        "attestation": None if by_id else body.attestation,
        "model_signature": body.model_signature,
        "base_model": body.base_model,
    }
    check_storage_access(ctx, caller, **{k: v for k, v in named.items() if v})
    model = resolve_input(roots, body.model, what="model")
    signature = (
        resolve_input(roots, body.model_signature, what="model_signature")
        if body.model_signature
        else None
    )
    if by_id:
        service.get_job(ctx.ws, body.attestation, reader=reader)
        attestation = ctx.ws.reports_dir / body.attestation / "attestation.json"
        if not attestation.is_file():
            reason = f"job {body.attestation} has no attestation: it has not passed the gate"
            return VerifyAnswer(
                allowed=False,
                model=body.model,
                reasons=[reason],
                job_id=None,
                digest=None,
                checks={},
            )
    else:
        attestation = resolve_input(roots, body.attestation, what="attestation")
    decision = check_model(
        model,
        attestation,
        ctx.ws.attestation_public_key(),
        witness_heads=[(h.seq, h.hash) for h in ctx.ws.witness().heads()],
        model_signature=signature,
        base_model=resolve_input(roots, body.base_model, what="base_model")
        if body.base_model
        else None,
        revocations=service.revocations_in_force(ctx.ws),
    )
    return VerifyAnswer(
        allowed=decision.allowed,
        model=body.model,
        reasons=decision.reasons,
        job_id=decision.job_id,
        digest=decision.digest,
        checks=decision.checks,
    )
