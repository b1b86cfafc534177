"""What is in force, computed from the verified audit chain, never from a table alone.

Every audit event is signed by its actor's own registered key (besides the workspace's signed
head), so the chain is a list of authenticated decisions. :class:`ChainState` replays them in
order: who the users are and which roles they hold, which keys are pending, active or revoked,
which policy is in force, and for every job its state, approvals, runs, evidence and output.
An event whose author was not allowed to make it (a ``user.add`` by a non-admin, a key that
confirms itself, a job approved by a requester's key) makes the chain invalid, so editing the
``users``, ``keys``, ``jobs``, ``approvals`` or ``evidence`` tables changes nothing that counts:
decisions compare those rows with this state and refuse on any difference.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from ftguard.attest import PrivateKey, PublicKey
from ftguard.control._states import TRANSITIONS, JobState
from ftguard.errors import PermissionDeniedError, VerificationError

__all__ = [
    "Actor",
    "ApprovalRecord",
    "ChainState",
    "EvidenceRecord",
    "JobRecord",
    "KeyRecord",
    "ServerRecord",
    "TokenRecord",
    "event_signature_message",
    "key_request_message",
]


def event_signature_message(event_hash: str) -> bytes:
    """What an actor signs for one audit event: a domain tag and the event's hash."""
    return f"ftguard-audit-event:v1:{event_hash}".encode()


@dataclass(frozen=True)
class Actor:
    """An authenticated identity: a user name and the private key that signs for it.

    In local mode ``key`` is the user's own key. On the team server it is the server's
    registered key and ``via`` says how the server authenticated the user (``{"method":
    "token", "token_id": ...}`` or ``{"method": "oidc", "issuer": ..., "subject": ...}``).
    """

    name: str
    key: PrivateKey
    via: dict[str, str] | None = None
    scopes: frozenset[str] | None = None
    """What the API token the server authenticated the user with is limited to (None: not)."""

    @property
    def keyid(self) -> str:
        return self.key.public.keyid

    def may_administer(self) -> bool:
        """Whether this act may use the user's admin role (a scoped token needs ``admin``)."""
        return self.scopes is None or "admin" in self.scopes


ACTION_SCOPES: dict[str, str] = {
    **dict.fromkeys(("job.submit", "job.cancel", "job.prepared"), "submit"),
    **dict.fromkeys(
        ("job.approve", "job.reject", "review.override", "gate.override", "gate.revoke"), "approve"
    ),
    **dict.fromkeys(("run.start", "run.end", "run.error"), "run"),
    **dict.fromkeys(("key.request", "key.revoke", "token.revoke"), "keys"),
    **dict.fromkeys(
        ("user.add", "user.bind", "user.unbind", "key.confirm", "token.create", "run.abort"),
        "admin",
    ),
}
"""The scope a scoped API token needs to write each of these events (checked when an event is
written and again on replay). Events that several use cases write (a review's, the gate's,
evidence) are left to the routes' scopes."""


@dataclass
class KeyRecord:
    """A user's public key and where it stands."""

    keyid: str
    user: str
    public: PublicKey
    status: Literal["pending", "active", "revoked"]
    requested_seq: int
    confirmed_by: str | None = None
    revoked_by: str | None = None


@dataclass
class ServerRecord:
    """A team server's key, registered by an admin; it signs for the users it authenticates."""

    keyid: str
    public: PublicKey
    status: Literal["active", "revoked"]
    registered_by: str


@dataclass
class TokenRecord:
    """An API token the chain issued: its owner, the SHA-256 of its secret, its expiry."""

    token_id: str
    user: str
    secret_hash: str
    expires_at: str | None
    issued_by: str
    revoked: bool = False
    scopes: tuple[str, ...] | None = None
    """What the token is limited to (None: every scope, as tokens issued before scopes)."""


@dataclass
class ApprovalRecord:
    """One recorded approval of a job."""

    approver: str
    keyid: str
    nonce: str
    envelope_digest: str
    policy_digest: str | None
    status: Literal["active", "consumed", "void"] = "active"
    consumed_by_run: int | None = None


@dataclass
class EvidenceRecord:
    """Evidence whose digest the chain holds, with the subjects it was computed on."""

    kind: str
    digest: str
    seq: int
    actor: str
    subjects: dict[str, str] = field(default_factory=dict)


@dataclass
class JobRecord:
    """A job as the chain knows it."""

    id: str
    state: str
    requester: str
    preparer: str
    digests: dict[str, str]
    policy_digest: str
    run_count: int = 0
    bound_run: bool = True
    review_digest: str | None = None
    output: dict[str, Any] | None = None
    approvals: dict[str, ApprovalRecord] = field(default_factory=dict)
    evidence: list[EvidenceRecord] = field(default_factory=list)
    awaits_preparer: bool = False
    """The named data preparer has yet to sign that the submitted dataset is theirs (the
    policy in force at submission asked for it); no approval counts until they do."""
    purpose: str | None = None
    """The purpose the requester stated (what approvers sign and the review checks against)."""
    rejected_by: str | None = None
    """``review`` or ``approver``: what rejected the job last (only a review's block is
    overridden)."""
    run_started_by: str | None = None
    """Who started the current or last run (only they record its end)."""
    run_token_sha256: str | None = None
    """SHA-256 of the current run's token, from its ``run.start`` (None: no run is on, or a
    run started before the chain recorded it)."""
    revocation: tuple[int, str, str] | None = None
    """``(seq, by, reason)`` of the ``gate.revoke`` that withdrew its pass (None: none)."""

    def copy(self) -> JobRecord:
        """An independent copy (evidence records are never changed once recorded)."""
        return replace(
            self,
            digests=dict(self.digests),
            approvals={n: replace(a) for n, a in self.approvals.items()},
            evidence=list(self.evidence),
        )

    def latest_evidence(self, kind: str) -> EvidenceRecord | None:
        """The newest evidence of ``kind`` in the chain."""
        found = [e for e in self.evidence if e.kind == kind]
        return found[-1] if found else None

    def approvals_of_run(self, run: int) -> list[ApprovalRecord]:
        return [a for a in self.approvals.values() if a.consumed_by_run == run]

    def active_approvals(self) -> list[ApprovalRecord]:
        return [a for a in self.approvals.values() if a.status == "active"]


class ChainProblem(Exception):
    """An event that is not allowed where it stands (raised during replay)."""


@dataclass
class ChainState:
    """Users, keys, policy and jobs as of the last verified event."""

    users: dict[str, set[str]] = field(default_factory=dict)
    sso_roles: dict[str, set[str]] = field(default_factory=dict)
    sso_identities: dict[str, tuple[str, str]] = field(default_factory=dict)
    """The (issuer, subject) each user's OIDC sign-ins are bound to: the first ``user.sync``
    binds it and only that identity may act as the user until an admin's ``user.unbind``."""
    keys: dict[str, KeyRecord] = field(default_factory=dict)
    servers: dict[str, ServerRecord] = field(default_factory=dict)
    tokens: dict[str, TokenRecord] = field(default_factory=dict)
    policy_digest: str | None = None
    audit_keyid: str | None = None
    attestation_keyid: str | None = None
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    baselines: list[EvidenceRecord] = field(default_factory=list)
    seq: int = 0
    head_hash: str = "0" * 64
    _owned_jobs: set[str] = field(default_factory=set, repr=False, compare=False)
    """Jobs whose records this state may change in place; the others are shared with a copy
    and are copied on their first change (:meth:`_changed_job`)."""

    def copy(self) -> ChainState:
        """An independent copy, made field by field (far cheaper than ``copy.deepcopy``).

        Public keys and evidence records are immutable once recorded and are shared. Job
        records are shared too and copied on write, by whichever state changes one first, so
        a copy costs one dictionary of references however many jobs the chain holds.
        """
        self._owned_jobs = set()  # the copy now shares every job record with this state
        return ChainState(
            users={k: set(v) for k, v in self.users.items()},
            sso_roles={k: set(v) for k, v in self.sso_roles.items()},
            sso_identities=dict(self.sso_identities),
            keys={k: replace(r) for k, r in self.keys.items()},
            servers={k: replace(r) for k, r in self.servers.items()},
            tokens={k: replace(r) for k, r in self.tokens.items()},
            policy_digest=self.policy_digest,
            audit_keyid=self.audit_keyid,
            attestation_keyid=self.attestation_keyid,
            jobs=dict(self.jobs),
            baselines=list(self.baselines),
            seq=self.seq,
            head_hash=self.head_hash,
        )

    # -- questions decisions ask ------------------------------------------------------------

    def roles_of(self, name: str, policy_roles: Mapping[Any, list[str]] | None = None) -> set[str]:
        """Roles the chain grants ``name``, plus the in-force policy's static grants.

        The chain's grants are an admin's ``user.add`` and the team server's ``user.sync``
        (roles its OIDC issuer's groups map to). Neither the policy nor a sync ever grants
        ``admin``: who administers is decided by admins in the chain alone.
        """
        held = set(self.users.get(name, set())) | self.sso_roles.get(name, set())
        if name in self.users:
            held |= {
                role
                for role, names in (policy_roles or {}).items()
                if name in names and role != "admin"
            }
        return held

    def still_bound(self, name: str, via: Mapping[str, Any]) -> bool:
        """Whether ``name`` may act through ``via``.

        Any way but OIDC may; over OIDC only the identity the name is bound to now (a console
        session or a long analysis outlives the check made at its sign-in).
        """
        method = via.get("method")
        if method == "token":
            token = self.tokens.get(str(via.get("token_id", "")))
            return (
                token is not None
                and not token.revoked
                and token.user == name
                and not _expired(token.expires_at)
            )
        if method != "oidc":
            return True
        return self.sso_identities.get(name) == (via.get("issuer"), via.get("subject"))

    def active_keys(self, user: str | None = None) -> dict[str, KeyRecord]:
        return {
            k: r
            for k, r in self.keys.items()
            if r.status == "active" and (user is None or r.user == user)
        }

    def _changed_job(self, job_id: str | None) -> JobRecord | None:
        """The record of ``job_id`` for changing in place (copied first if it is shared)."""
        if job_id is None:
            return None
        record = self.jobs.get(job_id)
        if record is not None and job_id not in self._owned_jobs:
            record = self.jobs[job_id] = record.copy()
            self._owned_jobs.add(job_id)
        return record

    def job(self, job_id: str) -> JobRecord:
        record = self.jobs.get(job_id)
        if record is None:
            raise VerificationError(
                f"job {job_id} is not in the audit chain (a row added to the database directly)"
            )
        return record

    def authenticate(self, name: str, key: PrivateKey) -> Actor:
        """An :class:`Actor` for ``name`` holding ``key``, if the chain says it is theirs.

        Raises:
            PermissionDeniedError: The key is not an active key of ``name``.

        """
        record = self.keys.get(key.public.keyid)
        if record is None or record.user != name:
            raise PermissionDeniedError(
                f"the key offered for {name} is not a registered key of {name}"
            )
        if record.status == "pending":
            raise PermissionDeniedError(
                f"{name}'s key {record.keyid[:16]} is not confirmed yet: an admin confirms it "
                f"with 'ftguard keys confirm {record.keyid[:16]}'"
            )
        if record.status == "revoked":
            raise PermissionDeniedError(f"{name}'s key {record.keyid[:16]} was revoked")
        return Actor(name=name, key=key)

    # -- replay -----------------------------------------------------------------------------

    def apply(
        self,
        *,
        seq: int,
        actor: str,
        action: str,
        job_id: str | None,
        payload: dict[str, Any],
        keyid: str | None,
        signature: bytes | None,
        event_hash: str,
        via: dict[str, Any] | None = None,
    ) -> None:
        """Check one event's signature and authority, then apply it.

        Raises:
            ChainProblem: The event is unsigned, signed by a key its actor does not hold, or
                not allowed to its actor at this point of the chain.

        """
        if keyid is None or signature is None:
            raise ChainProblem(f"event #{seq} ({action}) carries no signature of its actor")
        if via is not None:
            signer = self._server_signer(seq, actor, action, payload, keyid, via)
        else:
            signer = self._signer(seq, actor, action, payload, keyid)
        if not signer.verify(signature, event_signature_message(event_hash)):
            raise ChainProblem(f"event #{seq} ({action}) has an invalid signature by {actor}")
        handler = _HANDLERS.get(action)
        if action == "job.submit":
            self._submit(seq, actor, job_id, payload)
        elif handler is not None:
            handler(self, seq, actor, payload)
        elif action.startswith("evidence."):
            self._evidence(seq, actor, action.removeprefix("evidence."), job_id, payload)
        if job_id is not None and action != "job.submit":
            self._job_event(seq, actor, action, job_id, payload)
        self.seq = seq
        self.head_hash = event_hash

    def _signer(
        self, seq: int, actor: str, action: str, payload: dict[str, Any], keyid: str
    ) -> PublicKey:
        if action == "workspace.init":
            if seq != 1:
                raise ChainProblem(f"event #{seq} initialises the workspace again")
            return _payload_key(seq, payload, "admin_key", keyid)
        if action == "key.request":
            if actor not in self.users:
                raise ChainProblem(f"event #{seq}: a key is requested for unknown user {actor}")
            if keyid in self.keys:
                raise ChainProblem(f"event #{seq}: key {keyid[:16]} is already registered")
            # Proof of possession: the request is signed by the very key it registers.
            return _payload_key(seq, payload, "public_key", keyid)
        record = self.keys.get(keyid)
        if record is None or record.user != actor:
            raise ChainProblem(f"event #{seq} ({action}) is signed by a key {actor} does not hold")
        if record.status != "active":
            raise ChainProblem(
                f"event #{seq} ({action}) is signed by {actor}'s {record.status} key"
            )
        return record.public

    def _server_signer(
        self,
        seq: int,
        actor: str,
        action: str,
        payload: dict[str, Any],
        keyid: str,
        via: dict[str, Any],
    ) -> PublicKey:
        """The registered server key that signed an event for the user it authenticated."""
        server = self.servers.get(keyid)
        if server is None or server.status != "active":
            raise ChainProblem(
                f"event #{seq} ({action}) says a team server authenticated {actor}, but it is not "
                "signed by a registered server key"
            )
        method = via.get("method")
        if method == "token":
            token = self.tokens.get(str(via.get("token_id")))
            if token is None or token.user != actor or token.revoked:
                raise ChainProblem(
                    f"event #{seq} ({action}) names an API token {actor} does not hold"
                )
            needed = ACTION_SCOPES.get(action)
            if needed is not None and token.scopes is not None and needed not in token.scopes:
                raise ChainProblem(
                    f"event #{seq} ({action}) is made with an API token limited to "
                    f"{', '.join(token.scopes)}, without the {needed} scope"
                )
        elif method == "oidc":
            self._check_oidc_identity(seq, actor, action, payload, via)
        else:
            raise ChainProblem(f"event #{seq} ({action}) names an unknown authentication method")
        if action in ("workspace.init", "server.register"):
            raise ChainProblem(f"event #{seq}: {action} must be signed with an admin's own key")
        if action == "user.sync":
            if method != "oidc":
                raise ChainProblem(f"event #{seq}: only an OIDC sign-in syncs a user's roles")
        elif actor not in self.users:
            raise ChainProblem(f"event #{seq} ({action}) is made by unknown user {actor}")
        if action == "key.request":
            # Proof of possession, carried in the payload: the new key signs its own request.
            key = _payload_key(seq, payload, "public_key", str(payload.get("keyid")))
            if str(payload.get("keyid")) in self.keys:
                raise ChainProblem(
                    f"event #{seq}: key {str(payload.get('keyid'))[:16]} is already registered"
                )
            if not key.verify(_b64(payload.get("proof")), key_request_message(actor, key.keyid)):
                raise ChainProblem(
                    f"event #{seq}: the key request carries no valid proof of possession"
                )
        return server.public

    def _check_oidc_identity(
        self, seq: int, actor: str, action: str, payload: dict[str, Any], via: dict[str, Any]
    ) -> None:
        """An OIDC-authenticated event must come from the identity ``actor`` is bound to."""
        identity = (str(via.get("issuer")), str(via.get("subject")))
        if action == "user.sync":
            if (str(payload.get("issuer")), str(payload.get("subject"))) != identity:
                raise ChainProblem(
                    f"event #{seq}: a sign-in syncs another identity than the one it names"
                )
            return
        bound = self.sso_identities.get(actor)
        if bound is not None and bound != identity:
            raise ChainProblem(
                f"event #{seq} ({action}) is made as {actor} by an OIDC identity {actor} is not "
                "bound to"
            )

    def _require_admin(self, seq: int, actor: str, what: str) -> None:
        if "admin" not in self.users.get(actor, set()):
            raise ChainProblem(f"event #{seq}: {actor} {what} without the admin role")

    def _init(self, seq: int, actor: str, payload: dict[str, Any]) -> None:
        admin_key = PublicKey.from_b64(str(payload["admin_key"]))
        self.users[actor] = {"admin"}
        self.keys[admin_key.keyid] = KeyRecord(
            admin_key.keyid, actor, admin_key, "active", seq, confirmed_by=actor
        )
        self.policy_digest = str(payload.get("policy"))
        self.audit_keyid = _opt(payload.get("audit_key"))
        self.attestation_keyid = _opt(payload.get("attestation_key"))

    def _user_add(self, seq: int, actor: str, payload: dict[str, Any]) -> None:
        self._require_admin(seq, actor, "added a user")
        name = str(payload.get("name"))
        if name in self.users:
            raise ChainProblem(f"event #{seq}: user {name} already exists")
        self.users[name] = {str(r) for r in payload.get("roles") or []}

    def _key_request(self, seq: int, actor: str, payload: dict[str, Any]) -> None:
        key = PublicKey.from_b64(str(payload["public_key"]))
        self.keys[key.keyid] = KeyRecord(key.keyid, actor, key, "pending", seq)

    def _key_confirm(self, seq: int, actor: str, payload: dict[str, Any]) -> None:
        self._require_admin(seq, actor, "confirmed a key")
        record = self.keys.get(str(payload.get("keyid")))
        if record is None or record.status != "pending":
            raise ChainProblem(f"event #{seq} confirms a key that is not pending")
        record.status = "active"
        record.confirmed_by = actor

    def _key_revoke(self, seq: int, actor: str, payload: dict[str, Any]) -> None:
        record = self.keys.get(str(payload.get("keyid")))
        if record is None or record.status == "revoked":
            raise ChainProblem(f"event #{seq} revokes a key that is not registered or in force")
        if record.user != actor:
            self._require_admin(seq, actor, f"revoked {record.user}'s key")
        record.status = "revoked"
        record.revoked_by = actor

    def _server_register(self, seq: int, actor: str, payload: dict[str, Any]) -> None:
        self._require_admin(seq, actor, "registered a team server")
        key = PublicKey.from_b64(str(payload["public_key"]))
        if key.keyid in self.servers or key.keyid in self.keys:
            raise ChainProblem(f"event #{seq} registers key {key.keyid[:16]} again")
        self.servers[key.keyid] = ServerRecord(key.keyid, key, "active", actor)

    def _server_revoke(self, seq: int, actor: str, payload: dict[str, Any]) -> None:
        self._require_admin(seq, actor, "revoked a team server's key")
        record = self.servers.get(str(payload.get("keyid")))
        if record is None or record.status != "active":
            raise ChainProblem(f"event #{seq} revokes a server key that is not in force")
        record.status = "revoked"

    def _token_create(self, seq: int, actor: str, payload: dict[str, Any]) -> None:
        self._require_admin(seq, actor, "issued an API token")
        token_id = str(payload.get("token_id"))
        user = str(payload.get("user"))
        if token_id in self.tokens or user not in self.users:
            raise ChainProblem(f"event #{seq} issues token {token_id} again or to an unknown user")
        scopes = payload.get("scopes")
        self.tokens[token_id] = TokenRecord(
            token_id,
            user,
            str(payload.get("secret_hash")),
            _opt(payload.get("expires_at")),
            actor,
            scopes=None if scopes is None else tuple(str(s) for s in scopes),
        )

    def _token_revoke(self, seq: int, actor: str, payload: dict[str, Any]) -> None:
        record = self.tokens.get(str(payload.get("token_id")))
        if record is None or record.revoked:
            raise ChainProblem(f"event #{seq} revokes a token that is not in force")
        if record.user != actor:
            self._require_admin(seq, actor, f"revoked {record.user}'s token")
        record.revoked = True

    def _user_sync(self, seq: int, actor: str, payload: dict[str, Any]) -> None:
        roles = {str(r) for r in payload.get("roles") or []}
        if "admin" in roles:
            raise ChainProblem(f"event #{seq}: a sign-in cannot grant the admin role")
        if payload.get("name") != actor:
            raise ChainProblem(f"event #{seq}: a sign-in by {actor} syncs another user")
        identity = (str(payload.get("issuer")), str(payload.get("subject")))
        bound = self.sso_identities.get(actor)
        if bound is not None and bound != identity:
            raise ChainProblem(
                f"event #{seq}: a sign-in by another OIDC identity than the one {actor} is bound "
                "to (an admin unbinds it first)"
            )
        self.users.setdefault(actor, set())
        self.sso_roles[actor] = roles
        self.sso_identities[actor] = identity

    def _user_bind(self, seq: int, actor: str, payload: dict[str, Any]) -> None:
        self._require_admin(seq, actor, "bound a user's sign-in identity")
        name = str(payload.get("name"))
        if name not in self.users or name in self.sso_identities:
            raise ChainProblem(f"event #{seq} binds {name}, who is unknown or already bound")
        self.sso_identities[name] = (str(payload.get("issuer")), str(payload.get("subject")))

    def _user_unbind(self, seq: int, actor: str, payload: dict[str, Any]) -> None:
        self._require_admin(seq, actor, "unbound a user's sign-in identity")
        name = str(payload.get("name"))
        bound = self.sso_identities.get(name)
        if bound is None:
            raise ChainProblem(f"event #{seq} unbinds {name}, who is bound to no OIDC identity")
        if bound != (str(payload.get("issuer")), str(payload.get("subject"))):
            raise ChainProblem(f"event #{seq} unbinds {name} from an identity it is not bound to")
        del self.sso_identities[name]
        self.sso_roles.pop(name, None)

    def _policy_set(self, seq: int, actor: str, payload: dict[str, Any]) -> None:
        self._require_admin(seq, actor, "changed the policy")
        self.policy_digest = str(payload.get("digest"))

    def _submit(self, seq: int, actor: str, job_id: str | None, payload: dict[str, Any]) -> None:
        if job_id is None or job_id in self.jobs:
            raise ChainProblem(f"event #{seq} submits job {job_id} again")
        self.jobs[job_id] = JobRecord(
            id=job_id,
            state="submitted",
            requester=actor,
            preparer=str(payload.get("preparer")),
            digests={k: str(payload.get(k)) for k in ("dataset", "base_model", "config")},
            policy_digest=str(payload.get("policy")),
            awaits_preparer=payload.get("preparer_confirms") is True,
            purpose=_opt(payload.get("purpose")),
        )
        self._owned_jobs.add(job_id)

    def _evidence(
        self, seq: int, actor: str, kind: str, job_id: str | None, payload: dict[str, Any]
    ) -> None:
        record = EvidenceRecord(
            kind=kind,
            digest=str(payload.get("digest")),
            seq=seq,
            actor=actor,
            subjects={str(k): str(v) for k, v in (payload.get("subjects") or {}).items()},
        )
        if job_id is None:
            self.baselines.append(record)
            return
        job = self._changed_job(job_id)
        if job is None:
            raise ChainProblem(f"event #{seq} stores evidence on unknown job {job_id}")
        job.evidence.append(record)

    def _job_event(
        self, seq: int, actor: str, action: str, job_id: str, payload: dict[str, Any]
    ) -> None:
        job = self._changed_job(job_id)
        if job is None:
            raise ChainProblem(f"event #{seq} ({action}) names unknown job {job_id}")
        _check_job_event(seq, actor, action, job, payload)
        if action == "job.approve":
            nonce = str(payload.get("nonce"))
            job.approvals[nonce] = ApprovalRecord(
                approver=actor,
                keyid=str(payload.get("keyid")),
                nonce=nonce,
                envelope_digest=str(payload.get("envelope")),
                policy_digest=_opt(payload.get("policy")),
            )
        elif action == "run.start":
            _apply_run_start(seq, actor, job, payload)
        elif action in ("review.pass", "review.block"):
            job.review_digest = _opt(payload.get("review"))
        elif action == "job.prepared":
            job.awaits_preparer = False
        elif action == "run.end":
            output = payload.get("output")
            job.output = output if isinstance(output, dict) else None
            job.run_token_sha256 = None
        elif action == "gate.revoke":
            job.revocation = (seq, actor, str(payload.get("reason") or ""))
        elif action == "run.abort":
            self._require_admin(seq, actor, "aborted a run")
            job.output = None
            job.run_token_sha256 = None
        if action in _REJECTED_BY:
            job.rejected_by = _REJECTED_BY[action]
        if action in ("job.reject", "job.cancel"):
            for approval in job.active_approvals():
                approval.status = "void"
        if "to" in payload:
            if payload.get("from") != job.state:
                raise ChainProblem(
                    f"event #{seq} moves job {job_id} from {payload.get('from')}, "
                    f"but it was {job.state}"
                )
            job.state = str(payload["to"])


_REJECTED_BY: dict[str, str | None] = {
    "review.block": "review",
    "job.reject": "approver",
    "review.override": None,
}
"""What each action makes of :attr:`JobRecord.rejected_by`."""


def _apply_run_start(seq: int, actor: str, job: JobRecord, payload: dict[str, Any]) -> None:
    job.run_count = int(payload.get("run") or 0)
    job.bound_run = bool(payload.get("bound", False))
    job.output = None
    job.run_started_by = actor
    job.run_token_sha256 = _opt(payload.get("token_sha256"))
    for nonce in payload.get("approvals") or []:
        approval = job.approvals.get(str(nonce))
        if approval is None or approval.status != "active":
            raise ChainProblem(f"event #{seq} consumes an approval that is not active")
        approval.status = "consumed"
        approval.consumed_by_run = job.run_count


_MOVES: dict[str, frozenset[str]] = {
    "review.start": frozenset({"in_review"}),
    "review.pass": frozenset({"awaiting_approval"}),
    "review.block": frozenset({"rejected"}),
    "review.not_required": frozenset({"awaiting_approval"}),
    "review.override": frozenset({"awaiting_approval"}),
    "job.approved": frozenset({"approved"}),
    "job.reject": frozenset({"rejected"}),
    "job.cancel": frozenset({"cancelled"}),
    "run.start": frozenset({"running"}),
    "run.end": frozenset({"trained", "failed"}),
    "run.abort": frozenset({"failed"}),
    "evaluation.start": frozenset({"evaluating"}),
    "gate.pass": frozenset({"passed"}),
    "gate.block": frozenset({"blocked"}),
    "gate.override": frozenset({"passed"}),
    "job.deploy": frozenset({"deployed"}),
    "gate.revoke": frozenset({"revoked"}),
}
"""The job states each action may move a job to; a state change by any other action, or to
another state, is not one ftguard makes."""


def _check_job_event(
    seq: int, actor: str, action: str, job: JobRecord, payload: dict[str, Any]
) -> None:
    """What replay can check of a job event from the chain alone, before it is applied.

    A state change must be one the action makes and an edge of the job state machine; an
    approval or an override must not come from the job's requester or data preparer (nor a
    gate override from the run's starter); a job becomes approved only with an approval in
    force, and a bound run starts only by consuming approvals. (Who
    holds which role may also come from the policy file, which the chain names only by its
    digest: the decisions check roles when the event is made.)
    """
    if action in ("job.approve", "review.override", "gate.override") and actor in (
        job.requester,
        job.preparer,
    ):
        verb = {"job.approve": "approves"}.get(action, f"records {action} of")
        raise ChainProblem(
            f"event #{seq}: {actor} {verb} job {job.id}, which they requested or prepared"
        )
    if action == "gate.override" and actor == job.run_started_by:
        raise ChainProblem(
            f"event #{seq}: {actor} overrides the gate of job {job.id}, whose run they started"
        )
    if action == "job.approve" and job.awaits_preparer:
        raise ChainProblem(
            f"event #{seq}: job {job.id} is approved before its data preparer confirmed the dataset"
        )
    if action == "job.prepared":
        _check_prepared(seq, actor, job, payload)
    if action == "job.approved" and not job.active_approvals():
        raise ChainProblem(f"event #{seq}: job {job.id} is approved without an approval in force")
    if action == "run.start" and payload.get("bound", False) and not payload.get("approvals"):
        raise ChainProblem(f"event #{seq}: a bound run of job {job.id} consumes no approval")
    if action == "run.end" and job.run_started_by not in (None, actor):
        raise ChainProblem(
            f"event #{seq}: {actor} records the end of a run of job {job.id} that "
            f"{job.run_started_by} started"
        )
    if action == "review.override" and job.state == "rejected" and job.rejected_by != "review":
        raise ChainProblem(
            f"event #{seq} overrides a review of job {job.id}, which an approver rejected"
        )
    if "to" not in payload:
        return
    target = str(payload["to"])
    if target not in _MOVES.get(action, frozenset()):
        raise ChainProblem(f"event #{seq}: {action} cannot move job {job.id} to {target}")
    try:
        allowed = JobState(target) in TRANSITIONS[JobState(job.state)]
    except ValueError:
        allowed = False
    if not allowed:
        raise ChainProblem(f"event #{seq} moves job {job.id} from {job.state} to {target}")


def _check_prepared(seq: int, actor: str, job: JobRecord, payload: dict[str, Any]) -> None:
    if actor != job.preparer:
        raise ChainProblem(
            f"event #{seq}: {actor} confirms the dataset of job {job.id}, which {job.preparer} "
            "was named to prepare"
        )
    if not job.awaits_preparer:
        raise ChainProblem(f"event #{seq}: job {job.id} awaits no preparer's confirmation")
    if payload.get("dataset") != job.digests.get("dataset"):
        raise ChainProblem(f"event #{seq} confirms another dataset than job {job.id}'s")
    if job.state not in ("submitted", "in_review", "awaiting_approval"):
        raise ChainProblem(f"event #{seq} confirms the dataset of a job that is {job.state}")


def _expired(expires_at: str | None) -> bool:
    if not expires_at:
        return False
    try:
        return datetime.fromisoformat(expires_at) <= datetime.now(UTC)
    except ValueError:
        return True


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _payload_key(seq: int, payload: dict[str, Any], name: str, keyid: str) -> PublicKey:
    try:
        key = PublicKey.from_b64(str(payload.get(name)))
    except Exception as exc:
        raise ChainProblem(f"event #{seq} names no valid public key") from exc
    if key.keyid != keyid:
        raise ChainProblem(f"event #{seq} is not signed by the key it registers")
    return key


_HANDLERS = {
    "workspace.init": ChainState._init,
    "user.add": ChainState._user_add,
    "key.request": ChainState._key_request,
    "key.confirm": ChainState._key_confirm,
    "key.revoke": ChainState._key_revoke,
    "policy.set": ChainState._policy_set,
    "server.register": ChainState._server_register,
    "server.revoke": ChainState._server_revoke,
    "token.create": ChainState._token_create,
    "token.revoke": ChainState._token_revoke,
    "user.sync": ChainState._user_sync,
    "user.bind": ChainState._user_bind,
    "user.unbind": ChainState._user_unbind,
}


def key_request_message(user: str, keyid: str) -> bytes:
    """What a new key signs to prove its holder asked for it to be registered to ``user``."""
    return f"ftguard-key-request:v1:{user}:{keyid}".encode()


def _b64(value: object) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return b""


def parse_payload(text: str) -> dict[str, Any]:
    """An event's stored payload as a dict (``{}`` when it is not a JSON object)."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
