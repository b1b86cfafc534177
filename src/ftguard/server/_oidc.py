"""OpenID Connect: verify bearer JWTs and sign console users in (authorization code + PKCE).

All JOSE work (JWKS, JWS signatures, JWT claims) is done by :mod:`joserfc`. Two audiences apply:
``audience`` is what bearer *access tokens* sent to the server must carry, while an *ID token*
from the console's sign-in is addressed to the console, so its ``aud`` must hold ``client_id``.
Error messages never contain a token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_args
from urllib.parse import urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    JoseError,
    MissingClaimError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ftguard.errors import AuthenticationError
from ftguard.policy import Role

__all__ = ["OidcError", "OidcIdentity", "OidcIssuerConfig", "OidcVerifier", "new_pkce_pair"]

_ALLOWED_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
_GRANTABLE = frozenset(get_args(Role)) - {"admin"}
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_TIMEOUT = httpx.Timeout(5.0)
_MAX_TOKEN = 16_384
_REFETCH_EVERY = 30.0


class OidcError(AuthenticationError):
    """A token or sign-in that does not authenticate anyone (one line, never the token)."""


def _check_url(value: object, what: str, *, query: bool = True) -> str:
    url = urlsplit(value if isinstance(value, str) else "")
    loopback = url.hostname in _LOOPBACK
    if url.scheme != "https" and not (url.scheme == "http" and loopback):
        raise ValueError(f"{what} must be an https URL (http only on loopback)")
    if not url.hostname or url.fragment or (url.query and not query):
        raise ValueError(f"{what} must be a URL with a host, no fragment (nor query)")
    return str(value)


class OidcIssuerConfig(BaseModel):
    """An OIDC issuer whose tokens are accepted (the fields of the policy's ``server.oidc``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str
    """The exact ``iss`` (https; http only on loopback, for tests)."""
    audience: str = Field(min_length=1)
    """The ``aud`` bearer access tokens must carry."""
    user_claim: str = "email"
    """The claim whose value is the ftguard user name (an ``email`` is lower-cased)."""
    require_verified_email: bool = True
    """With ``user_claim: email``, accept only tokens whose ``email_verified`` is true: an
    unverified address would let anyone who can register it at the issuer sign in as the
    ftguard user of that name. Turn off only for an issuer that verifies every address and
    leaves the claim out of its tokens."""
    groups_claim: str = "groups"
    """The claim listing the user's groups."""
    group_roles: dict[str, list[str]] = Field(default_factory=dict)
    """Roles each group gives; never ``admin`` (admins are added by admins, in the chain)."""
    client_id: str | None = None
    """The console's client id (public client) for sign-in; the ``aud`` of its ID tokens."""
    leeway_seconds: int = Field(default=60, ge=0, le=300)
    """Clock skew allowed on ``exp``, ``nbf`` and ``iat``."""
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "EdDSA"])
    """Signature algorithms accepted; asymmetric only (never ``none`` or ``HS*``)."""

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, value: str) -> str:
        return _check_url(value, "the issuer", query=False)

    @field_validator("group_roles")
    @classmethod
    def _roles(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for group, roles in value.items():
            if "admin" in roles:
                raise ValueError(f"group {group!r}: an identity provider cannot grant admin")
            unknown = sorted(set(roles) - _GRANTABLE)
            if unknown:
                raise ValueError(f"group {group!r}: unknown roles {unknown}")
        return value

    @field_validator("algorithms")
    @classmethod
    def _algs(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one algorithm")
        bad = [a for a in value if a not in _ALLOWED_ALGS]
        if bad:
            raise ValueError(f"algorithms {bad} are not allowed: use {list(_ALLOWED_ALGS)}")
        return value


class OidcIdentity(BaseModel):
    """Who a verified token names."""

    model_config = ConfigDict(frozen=True)

    issuer: str
    subject: str
    user: str
    groups: list[str]
    roles: list[str]


def new_pkce_pair() -> tuple[str, str]:
    """A fresh PKCE ``(code_verifier, code_challenge)`` pair (S256, RFC 7636)."""
    verifier = secrets.token_urlsafe(64)  # 86 characters
    return verifier, _s256(verifier)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class _State:
    metadata: dict[str, Any] | None = None
    metadata_at: float = 0.0
    keys: KeySet | None = None
    keys_at: float = 0.0
    forced_at: float = float("-inf")


class OidcVerifier:
    """Verifies tokens of the configured issuers; discovery and JWKS are cached per issuer."""

    def __init__(
        self,
        issuers: Sequence[OidcIssuerConfig],
        *,
        http: httpx.Client | None = None,
        jwks_ttl_seconds: float = 300.0,
    ) -> None:
        self._configs = {c.issuer: c for c in issuers}
        self._http = http if http is not None else httpx.Client(timeout=_TIMEOUT)
        self._ttl = jwks_ttl_seconds
        self._states = {c.issuer: _State() for c in issuers}
        self._lock = threading.Lock()
        self._owns_http = http is None

    def close(self) -> None:
        """Close the HTTP client, unless the caller passed it in."""
        if self._owns_http:
            self._http.close()

    def verify(self, token: str) -> OidcIdentity:
        """The identity a bearer access token names (its ``aud`` must hold ``audience``).

        Raises:
            OidcError: The token does not verify, or the issuer cannot be reached.

        """
        cfg = self._config(_peek(token)[1])
        return self._verify(cfg, token, cfg.audience, None)

    def authorization_url(
        self,
        issuer: str,
        *,
        redirect_uri: str,
        state: str,
        nonce: str,
        code_verifier: str,
        scope: str = "openid email profile groups",
    ) -> str:
        """Where to send a browser to sign in at ``issuer`` (authorization code with PKCE S256).

        Raises:
            OidcError: Unknown issuer, no ``client_id``, or the issuer cannot be reached.

        """
        cfg = self._config(issuer)
        endpoint = self._endpoint(cfg, "authorization_endpoint")
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._client_id(cfg),
                "redirect_uri": redirect_uri,
                "scope": scope,
                "state": state,
                "nonce": nonce,
                "code_challenge": _s256(code_verifier),
                "code_challenge_method": "S256",
            }
        )
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def exchange_code(
        self, issuer: str, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> OidcIdentity:
        """Redeem an authorization code and verify the ID token it yields.

        The ID token is checked like :meth:`verify` checks an access token, except that its
        ``aud`` must hold ``client_id`` and its ``nonce`` must equal ``nonce``.

        Raises:
            OidcError: The exchange fails or the ID token does not verify.

        """
        cfg = self._config(issuer)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self._client_id(cfg),
            "code_verifier": code_verifier,
        }
        endpoint = self._endpoint(cfg, "token_endpoint")
        try:
            response = self._http.post(
                endpoint, data=form, timeout=_TIMEOUT, follow_redirects=False
            )
        except httpx.HTTPError:
            raise OidcError(f"cannot reach the OIDC issuer {cfg.issuer}") from None
        if response.status_code != 200:
            raise OidcError(f"the OIDC issuer refused the sign-in (HTTP {response.status_code})")
        try:
            id_token = response.json()["id_token"]
        except (ValueError, KeyError, TypeError):
            raise OidcError("the OIDC issuer's token response holds no id_token") from None
        if not isinstance(id_token, str):
            raise OidcError("the OIDC issuer's token response holds no id_token")
        return self._verify(cfg, id_token, self._client_id(cfg), nonce)

    # -- internals ------------------------------------------------------------------------

    def _config(self, issuer: str | None) -> OidcIssuerConfig:
        cfg = self._configs.get(issuer) if issuer is not None else None
        if cfg is None:
            raise OidcError("token from an issuer the policy does not name")
        return cfg

    @staticmethod
    def _client_id(cfg: OidcIssuerConfig) -> str:
        if cfg.client_id is None:
            raise OidcError(f"the OIDC issuer {cfg.issuer} has no client_id for sign-in")
        return cfg.client_id

    def _get_json(self, cfg: OidcIssuerConfig, url: str) -> dict[str, Any]:
        try:
            response = self._http.get(url, timeout=_TIMEOUT, follow_redirects=False)
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError):
            raise OidcError(f"cannot reach the OIDC issuer {cfg.issuer}") from None
        if not isinstance(body, dict):
            raise OidcError(f"the OIDC issuer {cfg.issuer} answered with no JSON object")
        return body

    def _metadata(self, cfg: OidcIssuerConfig) -> dict[str, Any]:
        state = self._states[cfg.issuer]
        now = time.monotonic()
        if state.metadata is not None and now - state.metadata_at < self._ttl:
            return state.metadata
        meta = self._get_json(cfg, cfg.issuer.rstrip("/") + "/.well-known/openid-configuration")
        if meta.get("issuer") != cfg.issuer:
            raise OidcError(f"the OIDC discovery document does not name {cfg.issuer} as issuer")
        state.metadata, state.metadata_at = meta, now
        return meta

    def _endpoint(self, cfg: OidcIssuerConfig, name: str) -> str:
        with self._lock:
            value = self._metadata(cfg).get(name)
        try:
            return _check_url(value, name)
        except ValueError:
            raise OidcError(f"the OIDC issuer {cfg.issuer} gives no usable {name}") from None

    def _keys(self, cfg: OidcIssuerConfig, kid: str | None) -> KeySet:
        with self._lock:
            state = self._states[cfg.issuer]
            now = time.monotonic()
            fresh = state.keys is not None and now - state.keys_at < self._ttl
            if fresh and state.keys is not None and _holds(state.keys, kid):
                return state.keys
            if fresh and now - state.forced_at < _REFETCH_EVERY:
                raise OidcError("the token is signed by a key the issuer does not publish")
            if fresh:
                state.forced_at = now  # an unknown kid: refetch once (key rotation)
            meta = self._metadata(cfg)
            try:
                uri = _check_url(meta.get("jwks_uri"), "jwks_uri")
                keys = KeySet.import_key_set(self._get_json(cfg, uri))  # type: ignore[arg-type]
            except (ValueError, JoseError, KeyError, TypeError):
                raise OidcError(f"the OIDC issuer {cfg.issuer} publishes no usable JWKS") from None
            state.keys, state.keys_at = keys, now
            if not _holds(keys, kid):
                raise OidcError("the token is signed by a key the issuer does not publish")
            return keys

    def _verify(
        self, cfg: OidcIssuerConfig, token: str, audience: str, nonce: str | None
    ) -> OidcIdentity:
        header, iss = _peek(token)
        if iss != cfg.issuer:
            raise OidcError("token from an issuer the policy does not name")
        if header.get("alg") not in cfg.algorithms or "crit" in header:
            raise OidcError("the token's signature algorithm is not allowed")
        kid = header.get("kid")
        keys = self._keys(cfg, kid if isinstance(kid, str) else None)
        options: dict[str, Any] = {
            "iss": {"essential": True, "value": cfg.issuer},
            "aud": {"essential": True, "value": audience},
            "sub": {"essential": True},
            "exp": {"essential": True},
            "iat": {"essential": True},
        }
        if nonce is not None:
            options["nonce"] = {"essential": True, "value": nonce}
        try:
            decoded = jwt.decode(token, keys, algorithms=cfg.algorithms)
            jwt.JWTClaimsRegistry(leeway=cfg.leeway_seconds, **options).validate(decoded.claims)
        except ExpiredTokenError:
            raise OidcError("the token has expired") from None
        except MissingClaimError as exc:
            raise OidcError(f"the token lacks the claim {exc.claim!r}") from None
        except ClaimError as exc:
            raise OidcError(f"the token's {exc.claim!r} claim is not acceptable") from None
        except BadSignatureError:
            raise OidcError("the token's signature does not verify") from None
        except UnsupportedAlgorithmError:
            raise OidcError("the token's signature algorithm is not allowed") from None
        except (JoseError, ValueError):
            raise OidcError("the token does not verify") from None
        return _identity(cfg, decoded.claims)


def _peek(token: str) -> tuple[dict[str, Any], str | None]:
    """The unverified header and ``iss`` of a token: only to pick the issuer and key."""
    if len(token) > _MAX_TOKEN:
        raise OidcError("the token is too large")
    try:
        obj = extract_compact(token.encode("ascii"))
        claims = json.loads(obj.payload)
    except (JoseError, ValueError, TypeError):
        raise OidcError("the token is not a well-formed JWT") from None
    iss = claims.get("iss") if isinstance(claims, dict) else None
    return dict(obj.headers()), iss if isinstance(iss, str) else None


def _holds(keys: KeySet, kid: str | None) -> bool:
    if kid is None:
        return len(keys.keys) == 1
    return any(k.kid == kid for k in keys)


def _identity(cfg: OidcIssuerConfig, claims: dict[str, Any]) -> OidcIdentity:
    user = claims.get(cfg.user_claim)
    if not isinstance(user, str) or not user:
        raise OidcError(f"the token has no user name in its {cfg.user_claim!r} claim")
    if len(user) > 128 or not set(user) <= _NAME_CHARS:
        raise OidcError(f"the token's {cfg.user_claim!r} claim is not a valid ftguard user name")
    if cfg.user_claim == "email":
        # One person, one name: "Alice@Corp.com" and "alice@corp.com" are the same mailbox.
        user = user.lower()
        if cfg.require_verified_email and claims.get("email_verified") is not True:
            raise OidcError(
                "the token's email is not verified by the issuer (email_verified is not true)"
            )
    groups = claims.get(cfg.groups_claim, [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise OidcError(f"the token's {cfg.groups_claim!r} claim is not a list of names")
    roles = sorted({r for g in groups for r in cfg.group_roles.get(g, [])})
    return OidcIdentity(
        issuer=cfg.issuer, subject=str(claims["sub"]), user=user, groups=groups, roles=roles
    )
