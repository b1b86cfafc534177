"""Loading, validating and digesting policy files."""

from __future__ import annotations

import json
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, SequenceNode

from ftguard._files import read_regular_file
from ftguard.digests import canonical_json, sha256_bytes
from ftguard.errors import BadInputError, PolicyError
from ftguard.policy._model import Policy

if TYPE_CHECKING:
    from ftguard.policy._behavior import BehaviorPolicy
    from ftguard.policy._review import ReviewPolicy
    from ftguard.policy._weights import WeightsPolicy

__all__ = [
    "default_policy_yaml",
    "load_policy",
    "load_policy_section",
    "parse_policy",
    "policy_digest",
    "read_yaml",
]

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
  preparer_confirms: true   # the named preparer signs 'ftguard job confirm-data' first

gate:
  overridable: [review]  # controls whose block a security reviewer may override
"""


def default_policy_yaml() -> str:
    """The text of the default policy written by ``ftguard init``."""
    return _DEFAULT_YAML


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping naming the same key twice, at any depth.

    PyYAML keeps the last value of a repeated key without a word; in a policy that silently
    drops a limit someone wrote down (``quorum: 3`` then ``quorum: 1``).
    """

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        self._refuse_duplicates(node)
        return super().construct_mapping(node, deep=deep)

    def _refuse_duplicates(self, node: MappingNode) -> None:
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                # `<<: *defaults`: keys written beside it override, as YAML says; the merged
                # mappings are flattened without being constructed, so they are checked here
                merged = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for mapping in merged:
                    if isinstance(mapping, MappingNode):
                        self._refuse_duplicates(mapping)
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the base class reports an unhashable key
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)


def read_yaml(text: str, *, source: str) -> Any:
    """Parse YAML text strictly: safe tags only, no duplicate keys.

    Raises:
        BadInputError: The text is not valid YAML, repeats a key, nests too deeply, or holds
            an integer too long to convert; the message names ``source`` and the line.

    """
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None)
        if isinstance(problem, str) and problem.startswith("found duplicate key"):
            raise BadInputError(f"{source}: {problem.removeprefix('found ')}{where}") from None
        raise BadInputError(f"{source}: not valid YAML{where}") from None
    except RecursionError:
        raise BadInputError(f"{source}: YAML nested too deeply") from None
    except ValueError as exc:  # an integer of more than sys.get_int_max_str_digits() digits
        why = str(exc).split(":")[0]
        raise BadInputError(f"{source}: YAML value cannot be read ({why})") from None


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "[key]") or "(top level)"


def parse_policy(text: str, *, source: str = "policy") -> Policy:
    """Parse and validate policy YAML text.

    The YAML is read strictly: a key given twice in one mapping is an error, as are a boolean
    where a number is meant (``quorum: true``), a number where a boolean is meant, and limits
    outside their range.

    Raises:
        PolicyError: The YAML is malformed or a field is invalid; the message names the
            first invalid field and why.

    """
    if len(text.encode("utf-8", "replace")) > _MAX_POLICY_BYTES:
        raise PolicyError(f"{source}: policy file is larger than 1 MiB")
    try:
        data: Any = read_yaml(text, source=source)
    except BadInputError as exc:
        raise PolicyError(exc.message) from None
    return _validated(data, source=source)


def _validated(data: Any, *, source: str) -> Policy:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: a policy is a mapping of sections, got {type(data).__name__}")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        got = err.get("input")
        shown = f" (got {json.dumps(got)[:40]})" if isinstance(got, str | int | float) else ""
        raise PolicyError(
            f"{source}: invalid policy field '{_field_path(err['loc'])}': {err['msg']}{shown}"
        ) from None
    except RecursionError:
        raise PolicyError(f"{source}: policy nested too deeply") from None


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file.

    Raises:
        BadInputError: The file cannot be read, or is not a regular file (a FIFO or a folder
            is refused without being opened).
        PolicyError: The file is not a valid policy.

    """
    p = Path(path)
    raw = read_regular_file(p, what="policy file", max_bytes=_MAX_POLICY_BYTES)
    if len(raw) > _MAX_POLICY_BYTES:
        raise PolicyError(f"{p}: policy file is larger than 1 MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{p}: policy file is not valid UTF-8 (byte {exc.start})") from None
    return parse_policy(text, source=str(p))


Section = Literal["review", "weights", "behavior"]


@overload
def load_policy_section(path: str | Path | None, section: Literal["review"]) -> ReviewPolicy: ...
@overload
def load_policy_section(path: str | Path | None, section: Literal["weights"]) -> WeightsPolicy: ...
@overload
def load_policy_section(
    path: str | Path | None, section: Literal["behavior"]
) -> BehaviorPolicy: ...
def load_policy_section(path: str | Path | None, section: Section) -> Any:
    """One analyzer's limits from a policy file (no file: the defaults).

    The file is a whole workspace policy, or holds only that section's fields (``--policy``
    of ``ftguard eval`` or ``weights diff`` on files outside a workspace). Either way it is
    read and validated as :func:`load_policy` does, so the two forms cannot disagree.

    Raises:
        BadInputError: The file cannot be read.
        PolicyError: The file is not a valid policy or section; the message names the field.

    """
    if path is None:
        return getattr(Policy(), section)
    p = Path(path)
    raw = read_regular_file(p, what="policy file", max_bytes=_MAX_POLICY_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{p}: policy file is not valid UTF-8 (byte {exc.start})") from None
    try:
        data = read_yaml(text, source=str(p))
    except BadInputError as exc:
        raise PolicyError(exc.message) from None
    if isinstance(data, dict) and data and not set(data) & set(Policy.model_fields):
        data = {section: data}  # only the section's fields
    return getattr(_validated(data, source=str(p)), section)


def policy_digest(policy: Policy) -> str:
    """SHA-256 of the policy's canonical JSON form (formatting and comments do not count)."""
    # ensure_ascii keeps the digests already stored in approvals and the chain.
    return sha256_bytes(canonical_json(policy.model_dump(mode="json"), ensure_ascii=True))
