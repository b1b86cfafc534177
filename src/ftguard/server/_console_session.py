"""Console sessions: sign-in (OIDC with PKCE, or an API token), sign-out, page rendering.

A console session is an HttpOnly, SameSite=Strict cookie naming a session in the server's
memory (:class:`~ftguard.server._auth.SessionStore`); its CSRF token is in every page's
``<meta name="csrf-token">`` for ``console.js`` to send with each API call. An OIDC sign-in
under way is kept server-side, keyed by the short-lived ``ftguard_login`` cookie.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlsplit

import jinja2
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ftguard.control import chain_state, policy_in_force, service
from ftguard.errors import AuthenticationError, FtguardError
from ftguard.server import _charts
from ftguard.server._api import SESSION_COOKIE
from ftguard.server._auth import ConsoleSession, TooManyFailures, caller_for
from ftguard.server._context import ServerContext

__all__ = ["LOGIN_COOKIE", "Viewer", "current_viewer", "render", "signin_router", "to_login"]

LOGIN_COOKIE = "ftguard_login"
_LOGIN_TTL_S = 600.0
_MAX_PENDING = 10_000

signin_router = APIRouter(include_in_schema=False)

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.ChainableUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(
    dash=_charts.dash,
    num=_charts.num,
    pct=_charts.pct,
    short=_charts.short,
    as_list=_charts.as_list,
    as_dict=_charts.as_dict,
    payload=_charts.payload_summary,
)


# -- sessions and sign-in state ---------------------------------------------------------------


@dataclass
class Viewer:
    """The signed-in user of a page: name, roles now, and their console session."""

    name: str
    roles: set[str]
    session: ConsoleSession
    active_keys: list[str] = field(default_factory=list)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def reader(self) -> service.JobReader:
        """Which jobs they may read (see ``control/_readers``)."""
        return service.JobReader.for_roles(self.name, self.roles)


@dataclass
class _PendingLogin:
    issuer: str
    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    next: str
    expires: float


class _LoginStore:
    """OIDC sign-ins under way, keyed by the random value of the ``ftguard_login`` cookie."""

    def __init__(self) -> None:
        self._items: dict[str, _PendingLogin] = {}
        self._lock = threading.Lock()

    def put(self, item: _PendingLogin) -> str:
        key = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            for old in [k for k, v in self._items.items() if v.expires < now]:
                del self._items[old]
            while len(self._items) >= _MAX_PENDING:
                del self._items[next(iter(self._items))]
            self._items[key] = item
        return key

    def pop(self, key: str | None) -> _PendingLogin | None:
        with self._lock:
            item = self._items.pop(key or "", None)
        return item if item is not None and item.expires >= time.time() else None


_STORE_LOCK = threading.Lock()


def _logins(request: Request) -> _LoginStore:
    with _STORE_LOCK:
        store = getattr(request.app.state, "console_logins", None)
        if store is None:
            store = request.app.state.console_logins = _LoginStore()
        return store  # type: ignore[no-any-return]


def _ctx(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def current_viewer(request: Request) -> Viewer | None:
    """The signed-in user of a request (their roles as of now), or None without a session."""
    ctx = _ctx(request)
    sid = request.cookies.get(SESSION_COOKIE)
    session = ctx.sessions.get(sid)
    if session is None:
        return None
    with ctx.ws.store.read() as db:
        state = chain_state(ctx.ws, db)
        if not state.still_bound(session.user, session.via):
            ctx.sessions.close(sid)  # the name was unbound or rebound since the sign-in
            return None
        roles = state.roles_of(session.user, policy_in_force(ctx.ws, state).roles)
        keys = sorted(state.active_keys(session.user))
    return Viewer(name=session.user, roles=roles, session=session, active_keys=keys)


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form body (read here: the console needs no multipart parser)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    raw = (await request.body()).decode("utf-8", "replace")
    try:
        fields = parse_qs(raw, keep_blank_values=True, max_num_fields=20)
    except ValueError:  # more fields than any console form has
        return {}
    return {k: v[0] for k, v in fields.items()}


FormData = Annotated[dict[str, str], Depends(_form)]


_LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,511}")


def _safe_next(value: str | None) -> str:
    """A local path to go to after sign-in, never another site (such as ``//host``)."""
    return value if value and _LOCAL_PATH.fullmatch(value) else "/queue"


def _same_origin(request: Request) -> bool:
    """Whether a form post comes from this site (a browser's cross-site post is refused).

    Browsers send ``Sec-Fetch-Site``; ``Origin`` is checked too, except when it is ``null``
    (what they send under the server's ``Referrer-Policy: no-referrer``).
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    own = {str(request.base_url).rstrip("/")}
    public = _ctx(request).settings.public_url
    if public:
        parts = urlsplit(public)
        own.add(f"{parts.scheme}://{parts.netloc}")
    return origin in own


def _redirect_uri(request: Request) -> str:
    public = _ctx(request).settings.public_url
    base = public.rstrip("/") if public else str(request.base_url).rstrip("/")
    return base + "/auth/callback"


def render(
    request: Request, template: str, viewer: Viewer | None, *, status: int = 200, **context: Any
) -> HTMLResponse:
    """A page from ``templates/`` (autoescaped), never cached."""
    html = _ENV.get_template(template).render(
        viewer=viewer, csrf=viewer.session.csrf if viewer else "", path=request.url.path, **context
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def to_login(request: Request) -> RedirectResponse:
    """Send a visitor without a session to sign in, then back to where they were going."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if target in ("/", "/queue"):
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)


def _cookie_secure(request: Request) -> bool:
    return _ctx(request).settings.secure_cookies


# -- sign-in and sign-out -----------------------------------------------------------------------


def _issuers(ctx: ServerContext) -> list[dict[str, Any]]:
    with ctx.ws.store.read() as db:
        policy = policy_in_force(ctx.ws, chain_state(ctx.ws, db))
    return [
        {"index": i, "issuer": p.issuer, "host": urlsplit(p.issuer).netloc or p.issuer}
        for i, p in enumerate(policy.server.oidc)
        if p.client_id
    ]


def _login_page(
    request: Request, *, error: str | None = None, status: int = 200, next_path: str = "/queue"
) -> HTMLResponse:
    return render(
        request,
        "login.html",
        None,
        status=status,
        error=error,
        issuers=_issuers(_ctx(request)),
        next_path=_safe_next(next_path),
    )


@signin_router.get("/login", response_model=None)
def login(request: Request, next: str | None = None) -> Response:  # noqa: A002
    if current_viewer(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_page(request, next_path=_safe_next(next))


@signin_router.get("/login/oidc", response_model=None)
def login_oidc(
    request: Request,
    issuer: Annotated[int, Query(ge=0, le=1000)] = 0,
    next: str | None = None,  # noqa: A002
) -> Response:
    from ftguard.server._oidc import new_pkce_pair

    ctx = _ctx(request)
    choices = {i["index"]: i["issuer"] for i in _issuers(ctx)}
    if issuer not in choices:
        return _login_page(request, error="unknown sign-in provider", status=404)
    code_verifier, _ = new_pkce_pair()
    pending = _PendingLogin(
        issuer=choices[issuer],
        state=secrets.token_urlsafe(24),
        nonce=secrets.token_urlsafe(24),
        code_verifier=code_verifier,
        redirect_uri=_redirect_uri(request),
        next=_safe_next(next),
        expires=time.time() + _LOGIN_TTL_S,
    )
    try:
        ctx.limiter.check(_client(request))
        with ctx.ws.store.read() as db:
            verifier = ctx.oidc(chain_state(ctx.ws, db))
        url = verifier.authorization_url(
            pending.issuer,
            redirect_uri=pending.redirect_uri,
            state=pending.state,
            nonce=pending.nonce,
            code_verifier=code_verifier,
        )
    except TooManyFailures as exc:
        return _login_page(request, error=str(exc), status=429)
    except FtguardError as exc:
        return _login_page(request, error=str(exc), status=502)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        LOGIN_COOKIE,
        _logins(request).put(pending),
        max_age=int(_LOGIN_TTL_S),
        path="/auth",
        httponly=True,
        samesite="lax",
        secure=_cookie_secure(request),
    )
    return response


@signin_router.get("/auth/callback", response_model=None)
def auth_callback(
    request: Request,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    ctx = _ctx(request)
    client = _client(request)
    pending = _logins(request).pop(request.cookies.get(LOGIN_COOKIE))
    if error:
        return _login_page(request, error=f"the identity provider refused: {error}", status=401)
    if (
        pending is None
        or not code
        or not state
        or not secrets.compare_digest(state.encode(), pending.state.encode())
    ):
        ctx.limiter.failed(client)
        return _login_page(request, error="the sign-in expired or was not started here", status=400)
    try:
        ctx.limiter.check(client)
        with ctx.ws.store.read() as db:
            verifier = ctx.oidc(chain_state(ctx.ws, db))
        identity = verifier.exchange_code(
            pending.issuer,
            code=code,
            redirect_uri=pending.redirect_uri,
            code_verifier=pending.code_verifier,
            nonce=pending.nonce,
        )
        with ctx.ws.store.write() as db:
            caller = service.sync_oidc_user(
                ctx.ws,
                db,
                chain_state(ctx.ws, db),
                server_key=ctx.server_key,
                user=identity.user,
                issuer=identity.issuer,
                subject=identity.subject,
                roles=list(identity.roles),
            )
    except TooManyFailures as exc:
        return _login_page(request, error=str(exc), status=429)
    except AuthenticationError as exc:
        ctx.limiter.failed(client)
        return _login_page(request, error=str(exc), status=401)
    except FtguardError as exc:
        return _login_page(request, error=str(exc), status=400)
    # The browser arrives here from the identity provider (a cross-site redirect chain), where
    # a SameSite=Strict cookie is not sent; a same-site step to the next page makes it count.
    response = render(request, "signed_in.html", None, next_path=pending.next)
    _start_session(request, response, caller.name, caller.via)
    response.delete_cookie(LOGIN_COOKIE, path="/auth")
    return response


@signin_router.post("/login/token", response_model=None)
def login_token(request: Request, form: FormData) -> Response:
    next_path = _safe_next(form.get("next"))
    if not _same_origin(request):
        return _login_page(request, error="sign-in from another site refused", status=403)
    token = form.get("token", "").strip()
    if not token or len(token) > 4096:
        return _login_page(request, error="enter an API token", status=400, next_path=next_path)
    try:
        caller = caller_for(_ctx(request), authorization=f"Bearer {token}", client=_client(request))
    except TooManyFailures as exc:
        return _login_page(request, error=str(exc), status=429, next_path=next_path)
    except AuthenticationError as exc:
        return _login_page(request, error=str(exc), status=401, next_path=next_path)
    if caller.scopes is not None:
        # the console does everything its user's roles allow: a limited token cannot open it
        return _login_page(
            request,
            error="this API token is limited to some scopes; the console needs an unlimited "
            "token or a sign-in with your identity provider",
            status=403,
            next_path=next_path,
        )
    response = RedirectResponse(next_path, status_code=303)
    _start_session(request, response, caller.name, caller.via)
    return response


def _start_session(request: Request, response: Response, user: str, via: dict[str, str]) -> None:
    ctx = _ctx(request)
    ctx.sessions.close(request.cookies.get(SESSION_COOKIE))  # a new id on every sign-in
    sid, _ = ctx.sessions.open(user, dict(via))
    response.set_cookie(
        SESSION_COOKIE,
        sid,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_cookie_secure(request),
    )


@signin_router.post("/logout", response_model=None)
def logout(request: Request, form: FormData) -> Response:
    ctx = _ctx(request)
    sid = request.cookies.get(SESSION_COOKIE)
    session = ctx.sessions.get(sid)
    if session is not None and not secrets.compare_digest(
        form.get("csrf", "").encode(), session.csrf.encode()
    ):
        return render(
            request,
            "message.html",
            None,
            status=403,
            title="Not signed out",
            message="The sign-out form was not this session's; sign out again.",
        )
    ctx.sessions.close(sid)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
