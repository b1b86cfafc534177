"""The workspace policy: who may do what, and the limits every control is judged by."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ftguard.policy._behavior import BehaviorPolicy
from ftguard.policy._review import ReviewPolicy
from ftguard.policy._weights import WeightsPolicy

__all__ = [
    "ROLES",
    "ApprovalPolicy",
    "GatePolicy",
    "OidcIssuerPolicy",
    "Policy",
    "Role",
    "RunPolicy",
    "ServerPolicy",
]

Control = Literal["review", "weights", "behavior"]
Role = Literal["requester", "data_preparer", "approver", "security_reviewer", "runner", "admin"]
ROLES: tuple[Role, ...] = (
    "requester",
    "data_preparer",
    "approver",
    "security_reviewer",
    "runner",
    "admin",
)


class _Section(BaseModel):
    # strict: `quorum: true` or `quorum: "2"` is an error, not 1 or 2 (an int still fills a
    # float field); allow_inf_nan: a limit of `.inf` or `.nan` is an error, not "no limit".
    model_config = ConfigDict(
        extra="forbid", use_attribute_docstrings=True, strict=True, allow_inf_nan=False
    )


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
    preparer_confirms: bool = True
    """Whether the data preparer the requester names must sign that the submitted dataset is
    the one they prepared (``ftguard job confirm-data``) before any approval counts. Without
    it, who prepared the data, and so who may not approve, rests on the requester's word. A
    requester who names themselves confirms by submitting."""

    @field_validator("requester_may_approve", "preparer_may_approve", mode="before")
    @classmethod
    def _fixed_false(cls, value: object) -> object:
        # Literal[False] alone lets 0 through (0 == False).
        if not isinstance(value, bool):
            raise ValueError("must be false (a boolean)")
        return value


class GatePolicy(_Section):
    """What the deployment gate requires and what a security reviewer may override."""

    overridable: list[Control] = Field(default_factory=lambda: list[Control](["review"]))
    """Controls whose block a security reviewer may override, with a recorded justification."""
    allow_unbound_runs: bool = False
    """Whether a model trained by a free-form command (an unbound run) may pass the gate."""


class RunPolicy(_Section):
    """How ``ftguard run`` starts training."""

    allow_free_command: bool = False
    """Whether ``ftguard run JOB -- CMD`` may run a command the approved config does not name.
    Such a run is recorded as unbound, and the gate blocks it unless
    ``gate.allow_unbound_runs``."""
    requester_may_run: bool = True
    """Whether a job's requester may start and end its run. ``false`` requires a holder of the
    ``runner`` role other than the requester (a training service's identity), so the output
    the chain records is signed by someone other than who asked for the training: a requester
    then cannot both ask for a model and be the one who says which files it trained."""


class OidcIssuerPolicy(_Section):
    """An OpenID Connect issuer whose tokens the team server accepts."""

    issuer: str
    """The issuer's exact ``iss`` (an https URL; http only on loopback, for tests)."""
    audience: str
    """The ``aud`` bearer access tokens must carry."""
    user_claim: str = "email"
    """The claim whose value is the ftguard user name."""
    groups_claim: str = "groups"
    """The claim listing the user's groups."""
    group_roles: dict[str, list[Role]] = Field(default_factory=dict)
    """Roles each group gives (never ``admin``: admins are added by admins, in the chain)."""
    client_id: str | None = None
    """The console's client id for sign-in (authorization code with PKCE, a public client)."""
    leeway_seconds: int = Field(default=60, ge=0, le=300)
    """Clock skew allowed on ``exp``, ``nbf`` and ``iat``."""

    @field_validator("group_roles")
    @classmethod
    def _never_admin(cls, value: dict[str, list[Role]]) -> dict[str, list[Role]]:
        for group, roles in value.items():
            if "admin" in roles:
                raise ValueError(f"group {group!r}: an identity provider cannot grant admin")
        return value

    @field_validator("issuer")
    @classmethod
    def _https(cls, value: str) -> str:
        from urllib.parse import urlsplit

        url = urlsplit(value)
        loopback = url.hostname in ("127.0.0.1", "localhost", "::1")
        if url.scheme != "https" and not (url.scheme == "http" and loopback):
            raise ValueError("the issuer must be an https URL (http only on loopback)")
        return value


class ServerPolicy(_Section):
    """Who the team server lets in."""

    oidc: list[OidcIssuerPolicy] = Field(default_factory=list)
    """OIDC issuers whose bearer tokens (and console sign-ins) the server accepts."""
    storage_access: dict[str, list[str]] = Field(default_factory=dict)
    """Who may name paths in each storage root, by root name: user names, and ``role:NAME``
    for every holder of a role. It covers a job's inputs, a run's chosen output and
    ``/verify``'s files: the server reads every root with its own rights, so without it any
    signed-in user has the server hash, review or list another team's files. A root not
    listed here is open to every signed-in user."""

    @field_validator("storage_access")
    @classmethod
    def _principals(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        roles = set(get_args(Role))
        for root, names in value.items():
            if not names:
                raise ValueError(f"storage_access.{root}: name at least one user or role:NAME")
            for name in names:
                if not name.strip():
                    raise ValueError(f"storage_access.{root} holds an empty name")
                if name.startswith("role:") and name[5:] not in roles:
                    raise ValueError(
                        f"storage_access.{root}: {name!r} is not a role "
                        f"({', '.join(sorted(roles))})"
                    )
        return value

    def may_use_root(self, root: str, user: str, roles: set[str]) -> bool:
        """Whether ``user`` holding ``roles`` may name paths in storage root ``root``."""
        allowed = self.storage_access.get(root)
        return allowed is None or user in allowed or any(f"role:{r}" in allowed for r in roles)


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
    run: RunPolicy = Field(default_factory=RunPolicy)
    """What ``ftguard run`` may start."""
    server: ServerPolicy = Field(default_factory=ServerPolicy)
    """The team server's identity providers."""

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_an_integer(cls, value: object) -> object:
        # Literal[1] alone lets true and 1.0 through (both == 1).
        if type(value) is not int:
            raise ValueError("must be the integer 1")
        return value

    @model_validator(mode="after")
    def _names_are_sane(self) -> Policy:
        for role, names in self.roles.items():
            if role == "admin" and names:
                raise ValueError(
                    "roles.admin: the admin role is granted only by 'ftguard user add', "
                    "which the audit chain records"
                )
            for name in names:
                if not name or not name.strip():
                    raise ValueError(f"roles.{role} holds an empty user name")
        return self
