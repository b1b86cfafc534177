"""The workspace: a ``.ftguard/`` folder with the database, the policy and the workspace keys.

Two keys, for two jobs: the *audit key* signs the audit chain's head and checkpoints, the
*attestation key* signs the gate's deployment attestations. Both are private key files
readable by the workspace owner only (0600); the serving side trusts the attestation key's
public half, ``keys/attestation.pub``.

Found through ``FTGUARD_HOME`` (the folder holding ``.ftguard/``, or ``.ftguard/`` itself)
or from the current folder upwards. ``FTGUARD_DATABASE_URL`` selects PostgreSQL instead of
the workspace's SQLite file; the URL is never written to disk (it may hold a password).
"""

from __future__ import annotations

import getpass
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TypeVar

from ftguard._files import expand_user
from ftguard.attest import PrivateKey, PublicKey, load_private_key
from ftguard.control._audit import ChainCache
from ftguard.control._offload import Offload, run_here
from ftguard.control._witness import SignedHead, Witness, open_witness
from ftguard.errors import BadInputError, FtguardError, NotFoundError
from ftguard.policy import Policy, load_policy, parse_policy, policy_digest
from ftguard.store import Store, sqlite_url

__all__ = [
    "WORKSPACE_DIRNAME",
    "Workspace",
    "default_actor",
    "find_workspace",
    "now_iso",
    "user_keys_dir",
]

WORKSPACE_DIRNAME = ".ftguard"
_K = TypeVar("_K")
_log = logging.getLogger("ftguard.workspace")


def now_iso() -> str:
    """The current UTC time as ISO-8601 text with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def default_actor() -> str:
    """The identity a command acts as without ``--as``: ``FTGUARD_USER`` or the OS user."""
    return os.environ.get("FTGUARD_USER") or getpass.getuser()


def user_keys_dir() -> Path:
    """The folder of the current OS user's private keys (``FTGUARD_KEYS_DIR`` overrides)."""
    env = os.environ.get("FTGUARD_KEYS_DIR")
    return Path(env) if env else Path.home() / ".ftguard" / "keys"


@dataclass
class Workspace:
    """An initialised workspace folder (the ``.ftguard/`` directory).

    ``database_url_override`` (the team server's ``--db``) takes precedence over
    ``FTGUARD_DATABASE_URL``; ``chain_cache`` lets a long-running process verify only the
    audit events appended since its last request; ``offload`` is where the analyzers run
    (the team server's worker processes; by default the calling thread).
    """

    path: Path
    database_url_override: str | None = None
    chain_cache: ChainCache | None = field(default=None, compare=False, repr=False)
    offload: Offload = field(default=run_here, compare=False, repr=False)
    _policy_cache: tuple[str, Policy, str] | None = field(
        default=None, init=False, compare=False, repr=False
    )
    _keys: dict[str, object] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def root(self) -> Path:
        """The folder that holds ``.ftguard/``."""
        return self.path.parent

    @property
    def policy_path(self) -> Path:
        return self.path / "policy.yaml"

    @property
    def database_path(self) -> Path:
        return self.path / "ftguard.db"

    @property
    def audit_key_path(self) -> Path:
        return self.path / "keys" / "audit.key"

    @property
    def audit_pub_path(self) -> Path:
        return self.path / "keys" / "audit.pub"

    @property
    def attestation_key_path(self) -> Path:
        return self.path / "keys" / "attestation.key"

    @property
    def attestation_pub_path(self) -> Path:
        return self.path / "keys" / "attestation.pub"

    @property
    def server_key_path(self) -> Path:
        """The team server's key: it signs events for the users the server authenticated."""
        return self.path / "keys" / "server.key"

    @property
    def witness_path(self) -> Path:
        """The default witness: an append-only file of every signed audit head."""
        return self.path / "witness.jsonl"

    @property
    def staged_dir(self) -> Path:
        """Read-only, content-addressed copies of the approved inputs runs read."""
        return self.path / "staged"

    @property
    def runs_dir(self) -> Path:
        """Where ``ftguard run`` writes approval bundles and drift logs."""
        return self.path / "runs"

    @property
    def reports_dir(self) -> Path:
        return self.path / "reports"

    @property
    def config(self) -> dict[str, str]:
        cfg = self.path / "config.json"
        try:
            data = json.loads(cfg.read_text())
        except (OSError, ValueError) as exc:
            raise BadInputError(f"workspace config {cfg} is unreadable") from exc
        return {str(k): str(v) for k, v in data.items()}

    @property
    def database_url(self) -> str:
        """``FTGUARD_DATABASE_URL`` when set, else the workspace's SQLite file."""
        env = self.database_url_override or os.environ.get("FTGUARD_DATABASE_URL")
        if env:
            return env
        if self.config.get("database") == "postgresql":
            raise BadInputError(
                "this workspace uses PostgreSQL: set FTGUARD_DATABASE_URL to its URL"
            )
        return sqlite_url(self.database_path)

    @cached_property
    def store(self) -> Store:
        """The database; every committed audit head is published to the witness.

        The job events its transactions commit go to the workspace's webhooks
        (:func:`ftguard.integrations.attach_webhooks`), after the commit, in the background.
        """
        from ftguard.integrations import attach_webhooks

        store = Store(self.database_url)
        store.on_commit = self._publish_head
        attach_webhooks(self, store)
        return store

    def witness(self) -> Witness:
        """The witness named in ``config.json`` (default: ``file:`` + :attr:`witness_path`)."""
        return open_witness(self.config.get("witness") or f"file:{self.witness_path}")

    def _publish_head(self, head: dict[str, object]) -> None:
        try:
            self.witness().publish(SignedHead.model_validate(head))
        except (OSError, FtguardError) as exc:
            # The transaction is committed; a later head, once published, covers this one.
            _log.warning(
                "could not publish audit head #%s to the witness: %s", head.get("seq"), exc
            )

    def policy(self) -> Policy:
        """The workspace policy, validated (parsed again only when the file's bytes change)."""
        return self.policy_with_digest()[0]

    def policy_digest(self) -> str:
        return self.policy_with_digest()[1]

    def policy_with_digest(self) -> tuple[Policy, str]:
        """The validated policy and its digest; cached by the SHA-256 of the file's bytes."""
        from ftguard._files import read_regular_file
        from ftguard.digests import sha256_bytes

        try:
            raw = read_regular_file(self.policy_path, what="policy file", max_bytes=1 << 20)
        except FtguardError:
            raw = None
        if raw is not None:
            key = sha256_bytes(raw)
            cached = self._policy_cache
            if cached is not None and cached[0] == key:
                return cached[1], cached[2]
        if raw is None or len(raw) > 1 << 20:
            policy = load_policy(self.policy_path)  # raises, with the reason phrased
            return policy, policy_digest(policy)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            policy = load_policy(self.policy_path)  # raises, with the reason phrased
            return policy, policy_digest(policy)
        policy = parse_policy(text, source=str(self.policy_path))  # the very bytes hashed
        digest = policy_digest(policy)
        self._policy_cache = (key, policy, digest)
        return policy, digest

    def _key(self, name: str, load: Callable[[], _K]) -> _K:
        """A workspace key; a long-running process (with a chain cache) reads each once."""
        if self.chain_cache is None:
            return load()
        if name not in self._keys:
            self._keys[name] = load()
        return self._keys[name]  # type: ignore[return-value]

    def audit_key(self) -> PrivateKey:
        """The key that signs the audit chain's head and checkpoints (owner-only file)."""
        return self._key("audit", lambda: load_private_key(self.audit_key_path))

    def audit_public_key(self) -> PublicKey:
        return self._key("audit.pub", lambda: _read_public(self.audit_pub_path))

    def attestation_key(self) -> PrivateKey:
        """The key that signs deployment attestations (owner-only file)."""
        return self._key("attestation", lambda: load_private_key(self.attestation_key_path))

    def server_key(self) -> PrivateKey:
        """The team server's key (owner-only file; see :attr:`server_key_path`)."""
        if not self.server_key_path.exists():
            raise NotFoundError(
                f"no team server key at {self.server_key_path}: an admin runs 'ftguard server init'"
            )
        return load_private_key(self.server_key_path)

    def attestation_public_key(self) -> PublicKey:
        return _read_public(self.attestation_pub_path)


def _read_public(path: Path) -> PublicKey:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise NotFoundError(f"cannot read the workspace public key {path}") from exc
    return PublicKey.from_b64(text)


def _candidate(path: Path) -> Path | None:
    if path.name == WORKSPACE_DIRNAME and (path / "config.json").is_file():
        return path
    if (path / WORKSPACE_DIRNAME / "config.json").is_file():
        return path / WORKSPACE_DIRNAME
    return None


def find_workspace(start: Path | None = None) -> Workspace:
    """Locate the workspace: ``FTGUARD_HOME``, else the current folder and its parents.

    Raises:
        NotFoundError: No initialised workspace was found.

    """
    env = os.environ.get("FTGUARD_HOME")
    if env:
        found = _candidate(expand_user(env, what="FTGUARD_HOME").resolve())
        if found is None:
            raise NotFoundError(f"FTGUARD_HOME={env} holds no ftguard workspace (run ftguard init)")
        return Workspace(found)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        found = _candidate(folder)
        if found is not None:
            return Workspace(found)
    raise NotFoundError(
        f"no ftguard workspace in {here} or its parents: run 'ftguard init' or set FTGUARD_HOME"
    )
