"""The CLI as a client of a team server (``ftguard login``, or FTGUARD_SERVER and FTGUARD_TOKEN).

Against a server the commands print what they print locally, take the same ``--json`` and end
in the same exit codes: the server's error answers are turned back into the same error types.
There is no ``--as``: the server knows who you are from your token.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ftguard.attest import PublicKey
from ftguard.control import JobView
from ftguard.errors import (
    AuthenticationError,
    BadInputError,
    ConflictError,
    DatabaseError,
    FtguardError,
    MissingDependencyError,
    NotFoundError,
    PermissionDeniedError,
    VerificationError,
)

__all__ = ["RemoteClient", "client_config_path", "pinned_server_key", "remote", "save_login"]

_ERRORS: dict[int, type[FtguardError]] = {
    400: BadInputError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: BadInputError,
    422: VerificationError,
    429: PermissionDeniedError,
    503: DatabaseError,
}


def client_config_path() -> Path:
    """Where ``ftguard login`` keeps the server URL and token (owner-only)."""
    home = os.environ.get("FTGUARD_CLIENT_CONFIG")
    return Path(home) if home else Path.home() / ".ftguard" / "client.json"


def save_login(server: str, token: str, server_key: str) -> Path:
    """Remember a server, token and the server's pinned public key (file mode 0600)."""
    path = client_config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    scratch = path.with_suffix(".new")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"server": server.rstrip("/"), "token": token, "server_key": server_key}, out)
    scratch.replace(path)
    return path


class RemoteClient:
    """A thin HTTP client of the ``/api/v1`` API that raises ftguard's own errors."""

    def __init__(self, server: str, token: str, *, timeout: float = 600.0) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise MissingDependencyError("httpx", "server") from exc
        if not server.startswith(("http://", "https://")):
            raise BadInputError(f"the server URL must start with https:// (or http://): {server}")
        self.server = server.rstrip("/")
        self._http = httpx.Client(
            base_url=self.server + "/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
    ) -> Any:
        """One API call; an error answer raises the error type the local command would."""
        import httpx

        try:
            response = self._http.request(
                method, path, json=body, params={k: v for k, v in params.items() if v is not None}
            )
        except httpx.HTTPError as exc:
            raise DatabaseError(f"cannot reach the ftguard server at {self.server}: {exc}") from exc
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message"))
            except ValueError:
                message = response.text.strip()[:300] or response.reason_phrase
            kind = _ERRORS.get(response.status_code, FtguardError)
            raise kind(f"server: {message}")
        return response.json()

    def job(self, method: str, path: str, body: dict[str, Any] | None = None) -> JobView:
        return JobView.model_validate(self.call(method, path, body))


def pinned_server_key() -> PublicKey:
    """The server's public key pinned at login (``FTGUARD_SERVER_KEY``, a key or its file, wins).

    Raises:
        VerificationError: None is pinned.

    """
    value = os.environ.get("FTGUARD_SERVER_KEY")
    if value:
        text = Path(value).read_text(encoding="ascii").strip() if Path(value).is_file() else value
        return PublicKey.from_b64(text.strip())
    path = client_config_path()
    try:
        return PublicKey.from_b64(str(json.loads(path.read_text(encoding="utf-8"))["server_key"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VerificationError(
            "no pinned server key: run 'ftguard login' (it pins the key) or set FTGUARD_SERVER_KEY"
        ) from exc


def remote() -> RemoteClient | None:
    """The configured server client, or None for the local workspace.

    ``FTGUARD_SERVER`` (with ``FTGUARD_TOKEN``) wins over the file ``ftguard login`` wrote.
    """
    server = os.environ.get("FTGUARD_SERVER")
    token = os.environ.get("FTGUARD_TOKEN")
    if server:
        if not token:
            raise BadInputError("FTGUARD_SERVER is set but FTGUARD_TOKEN is not")
        return RemoteClient(server, token)
    path = client_config_path()
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RemoteClient(str(data["server"]), str(data["token"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInputError(f"{path} is unreadable: run 'ftguard login' again") from exc
