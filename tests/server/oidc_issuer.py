"""A real OpenID Connect issuer on loopback, for tests: discovery, JWKS, authorize, token.

It runs ``http.server.ThreadingHTTPServer`` in a background thread on 127.0.0.1 and signs with
its own RSA keys (joserfc). The authorization endpoint has no UI: it signs in the user named by
``login_hint`` (else :attr:`TestIssuer.default_login`) and redirects back with a one-time code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class User:
    sub: str
    email: str
    groups: list[str]


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    user: User
    expires: float


class TestIssuer:
    """A running OIDC issuer; use as a context manager or call :meth:`start`/:meth:`stop`."""

    __test__ = False  # not a pytest test class

    def __init__(self, *, audience: str = "ftguard", client_id: str = "ftguard-console") -> None:
        self.audience = audience
        self.client_id = client_id
        self.default_login: str | None = None
        self.discovery_overrides: dict[str, Any] = {}
        self.hits: Counter[str] = Counter()
        self.users: dict[str, User] = {}
        self._codes: dict[str, _Grant] = {}
        self._lock = threading.Lock()
        self._kid_counter = 0
        self.key = self._new_key()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> TestIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                issuer._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                issuer._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> TestIssuer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- keys, users, tokens --------------------------------------------------------------

    def _new_key(self) -> RSAKey:
        self._kid_counter += 1
        kid = f"k{self._kid_counter}-{secrets.token_hex(4)}"
        return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})

    def rotate_key(self) -> None:
        """Sign with a new key (new kid); the old one leaves the JWKS."""
        self.key = self._new_key()

    def other_key(self) -> RSAKey:
        """A key the JWKS does not publish (for forged tokens)."""
        return self._new_key()

    def jwks(self) -> dict[str, Any]:
        return dict(KeySet([self.key]).as_dict(private=False))

    def add_user(self, sub: str, email: str, groups: Iterable[str] = ()) -> User:
        user = User(sub=sub, email=email, groups=list(groups))
        self.users[sub] = user
        return user

    def find_user(self, email_or_sub: str) -> User | None:
        for user in self.users.values():
            if email_or_sub in (user.sub, user.email):
                return user
        return None

    def mint(
        self,
        email_or_sub: str,
        *,
        audience: str | list[str] | None = None,
        groups: Any = None,
        expires_in: int = 300,
        not_before: int | None = None,
        issued_at: int | None = None,
        extra_claims: Mapping[str, Any] | None = None,
        omit: Iterable[str] = (),
        sign_with: RSAKey | None = None,
        header_overrides: Mapping[str, Any] | None = None,
    ) -> str:
        """An access token for a registered user (else sub = email = ``email_or_sub``)."""
        user = self.find_user(email_or_sub) or User(email_or_sub, email_or_sub, [])
        now = int(time.time())
        iat = now if issued_at is None else issued_at
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": user.sub,
            "aud": self.audience if audience is None else audience,
            "iat": iat,
            "exp": iat + expires_in,
            "email": user.email,
            "email_verified": True,
            "groups": user.groups if groups is None else groups,
        }
        if not_before is not None:
            claims["nbf"] = not_before
        claims.update(extra_claims or {})
        for name in omit:
            claims.pop(name, None)
        key = sign_with or self.key
        header: dict[str, Any] = {"alg": "RS256", "typ": "JWT", "kid": key.kid}
        header.update(header_overrides or {})
        return jwt.encode(header, claims, key)

    # -- HTTP -----------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        doc = {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "subject_types_supported": ["public"],
            "token_endpoint_auth_methods_supported": ["none"],
        }
        doc.update(self.discovery_overrides)
        return doc

    def _handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(req.path)
        with self._lock:
            self.hits[url.path] += 1
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if method == "GET" and url.path == "/.well-known/openid-configuration":
            _send_json(req, 200, self.metadata())
        elif method == "GET" and url.path == "/jwks":
            _send_json(req, 200, self.jwks())
        elif method == "GET" and url.path == "/authorize":
            self._authorize(req, query)
        elif method == "POST" and url.path == "/token":
            length = int(req.headers.get("Content-Length") or 0)
            body = req.rfile.read(length).decode("utf-8")
            form = {k: v[0] for k, v in parse_qs(body).items()}
            self._token(req, form)
        else:
            _send_json(req, 404, {"error": "not_found"})

    def _authorize(self, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
        login = q.get("login_hint") or self.default_login
        user = self.find_user(login) if login else None
        redirect_uri = q.get("redirect_uri", "")
        if (
            q.get("response_type") != "code"
            or q.get("client_id") != self.client_id
            or not redirect_uri.startswith(("http://", "https://"))
            or q.get("code_challenge_method") != "S256"
            or not q.get("code_challenge")
            or user is None
        ):
            _send_json(req, 400, {"error": "invalid_request"})
            return
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Grant(
                client_id=q["client_id"],
                redirect_uri=redirect_uri,
                code_challenge=q["code_challenge"],
                nonce=q.get("nonce"),
                user=user,
                expires=time.monotonic() + 60,
            )
        params = {"code": code, **({"state": q["state"]} if "state" in q else {})}
        sep = "&" if "?" in redirect_uri else "?"
        req.send_response(302)
        req.send_header("Location", f"{redirect_uri}{sep}{urlencode(params)}")
        req.send_header("Content-Length", "0")
        req.end_headers()

    def _token(self, req: BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)  # one-time, even on failure
        if form.get("grant_type") != "authorization_code":
            _send_json(req, 400, {"error": "unsupported_grant_type"})
            return
        if (
            grant is None
            or grant.expires < time.monotonic()
            or form.get("client_id") != grant.client_id
            or form.get("redirect_uri") != grant.redirect_uri
            or s256(form.get("code_verifier", "")) != grant.code_challenge
        ):
            _send_json(req, 400, {"error": "invalid_grant"})
            return
        user = grant.user
        access = self.mint(user.sub)
        id_claims: dict[str, Any] = {} if grant.nonce is None else {"nonce": grant.nonce}
        id_token = self.mint(user.sub, audience=grant.client_id, extra_claims=id_claims)
        _send_json(
            req,
            200,
            {
                "access_token": access,
                "id_token": id_token,
                "token_type": "Bearer",
                "expires_in": 300,
            },
        )


def _send_json(req: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    data = json.dumps(body).encode("utf-8")
    req.send_response(status)
    req.send_header("Content-Type", "application/json")
    req.send_header("Content-Length", str(len(data)))
    req.send_header("Cache-Control", "no-store")
    req.end_headers()
    req.wfile.write(data)
