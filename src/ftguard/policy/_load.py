"""Loading, validating and digesting policy files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ftguard.digests import sha256_bytes
from ftguard.errors import BadInputError, PolicyError
from ftguard.policy._model import Policy

__all__ = ["default_policy_yaml", "load_policy", "parse_policy", "policy_digest"]

_MAX_POLICY_BYTES = 1 << 20

_DEFAULT_YAML = """\
# ftguard workspace policy. Every field is documented in docs/policy.md.
# The policy is versioned by digest: every approval and decision records the digest it used.
version: 1

# Static role grants (in addition to `ftguard user add NAME --role ROLE`).
roles: {}

approval:
  quorum: 2              # distinct approvers a job needs
  lifetime_hours: 72     # an approval expires this long after it was signed
  requester_may_prepare: true

gate:
  overridable: [review]  # controls whose block a security reviewer may override
"""


def default_policy_yaml() -> str:
    """The text of the default policy written by ``ftguard init``."""
    return _DEFAULT_YAML


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "[key]") or "(top level)"


def parse_policy(text: str, *, source: str = "policy") -> Policy:
    """Parse and validate policy YAML text.

    Raises:
        PolicyError: The YAML is malformed or a field is invalid; the message names the
            first invalid field and why.

    """
    if len(text.encode("utf-8", "replace")) > _MAX_POLICY_BYTES:
        raise PolicyError(f"{source}: policy file is larger than 1 MiB")
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PolicyError(f"{source}: not valid YAML{where}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: a policy is a mapping of sections, got {type(data).__name__}")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise PolicyError(
            f"{source}: invalid policy field '{_field_path(err['loc'])}': {err['msg']}"
        ) from exc


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file.

    Raises:
        BadInputError: The file cannot be read.
        PolicyError: The file is not a valid policy.

    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise BadInputError(f"cannot read policy file {p}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{p}: policy file is not valid UTF-8") from exc
    return parse_policy(text, source=str(p))


def policy_digest(policy: Policy) -> str:
    """SHA-256 of the policy's canonical JSON form (formatting and comments do not count)."""
    canonical = json.dumps(policy.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return sha256_bytes(canonical.encode())
