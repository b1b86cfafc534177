"""The API's answers, as typed models: what the OpenAPI schema documents and clients rely on."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ftguard.gate import CheckResult, Decision
from ftguard.policy import Policy

__all__ = [
    "EvidenceAnswer",
    "GateAnswer",
    "Health",
    "InTotoStatement",
    "KeyStatus",
    "PolicyAnswer",
    "Readiness",
    "StatementSubject",
    "TokenIssued",
    "TokenRevoked",
    "TokenView",
    "UserAdded",
    "UserView",
    "VerifyAnswer",
]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    reason: str | None = None


class EvidenceAnswer(BaseModel):
    kind: str
    digest: str = Field(
        description="sha256 of the evidence's canonical JSON, as the chain records it"
    )
    created_at: str
    body: dict[str, Any] = Field(
        description="the analyzer's report (its schema depends on the kind)"
    )


class GateAnswer(Decision):
    attestation_url: str | None = Field(
        description="where the signed attestation is downloaded (a pass only)"
    )


class StatementSubject(BaseModel):
    name: str
    digest: dict[str, str]


class InTotoStatement(BaseModel):
    """An in-toto v1 Statement: what an approver signs, with their own key, to approve."""

    model_config = ConfigDict(populate_by_name=True)

    type_: str = Field(alias="_type")
    subject: list[StatementSubject]
    predicateType: str  # noqa: N815 - the in-toto field name
    predicate: dict[str, Any]


class PolicyAnswer(BaseModel):
    digest: str
    policy: Policy


class UserView(BaseModel):
    name: str
    roles: list[str]
    keys: list[str] = Field(description="active key ids")
    pending_keys: list[str] = Field(description="key ids an admin has not confirmed yet")
    revoked_keys: list[str]
    sso: SsoBinding | None = Field(
        default=None, description="the OIDC identity the user's sign-ins are bound to"
    )


class SsoBinding(BaseModel):
    issuer: str
    subject: str


class UserBinding(BaseModel):
    """A user and the OIDC identity bound (or, after unbind, no longer bound) to the name."""

    name: str
    issuer: str
    subject: str


class UserAdded(BaseModel):
    name: str
    roles: list[str]


class KeyStatus(BaseModel):
    user: str
    keyid: str
    status: Literal["pending", "active", "revoked"]


class TokenIssued(BaseModel):
    token: str = Field(description="the secret: shown in this answer only, stored as a hash")
    token_id: str
    user: str
    expires_at: str
    scopes: list[str] | None = Field(description="what the token is limited to (null: not)")


class TokenRevoked(BaseModel):
    token_id: str
    user: str
    status: Literal["revoked"]


class TokenView(BaseModel):
    token_id: str
    user: str
    issued_by: str
    expires_at: str | None
    status: Literal["active", "expired", "revoked"]
    scopes: list[str] | None = None
    last_used_at: str | None


class VerifyAnswer(BaseModel):
    """Whether a model may be served (``POST /api/v1/verify``): allow or deny, with reasons."""

    allowed: bool
    model: str = Field(description="the model as named in the request (ROOT/relative/path)")
    reasons: list[str] = Field(description="why it is denied: each failed check (empty: allowed)")
    job_id: str | None = Field(description="the job whose attestation the model matched")
    digest: str | None = Field(description="the model's sha256 root digest (allowed only)")
    checks: dict[str, CheckResult] = Field(
        description="each check by name (attestation, model_signing) and what it found"
    )
