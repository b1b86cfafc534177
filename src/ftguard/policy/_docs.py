"""Render the policy reference (``docs/policy.md``) from the pydantic models' field docs.

``python -m ftguard.policy._docs > docs/policy.md``; a test keeps the file in step with the code.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from ftguard.policy._model import Policy

_INTRO = """\
# Policy reference

The workspace policy lives in `.ftguard/policy.yaml`. It is validated on every use (an invalid
field ends in one message naming it, exit code 2) and versioned by digest: the SHA-256 of its
canonical JSON form, so comments and formatting do not change it. Every approval, decision and
attestation records the digest of the policy it used. `ftguard policy show` prints it with its
digest; `ftguard policy check FILE` validates a file before you install it.

Separation of duties that no policy can relax: the requester of a job and its data preparer can
never approve it, nor override its review's or its gate's block (even holding the
`security_reviewer` role); one person counts once towards the quorum; only holders of the
`approver` role approve; an approval is for one job, one set of input digests and one run.

The file is read strictly: a key written twice in one mapping is an error (YAML would keep the
last one silently), a number field takes numbers only (`quorum: true` or `quorum: "2"` is an
error; an integer is fine where a decimal is meant), a boolean field takes `true` or `false` only,
and a limit of `.inf` or `.nan` is an error too. The type column gives each number's allowed range.

This page is generated from the code (`python -m ftguard.policy._docs`).
"""


def _default(info: Any) -> str:
    value = info.default_factory() if info.default_factory is not None else info.default
    if isinstance(value, BaseModel):
        return "(section)"
    return f"`{json.dumps(value, default=str)}`"


_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


def _type(info: Any) -> str:
    ann = info.annotation
    text = ann.__name__ if isinstance(ann, type) else str(ann).replace("typing.", "")
    bounds = [
        f"{sign} {getattr(m, attr)}"
        for m in info.metadata
        for attr, sign in _BOUNDS
        if getattr(m, attr, None) is not None
    ]
    if bounds:
        text += ", " + ", ".join(bounds)
    return text.replace("|", "\\|")


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows: list[str] = []
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            nested.append((f"{prefix}{name}", ann))
            continue
        doc = (info.description or "").replace("\n", " ")
        rows.append(f"| `{prefix}{name}` | {_type(info)} | {_default(info)} | {doc} |")
    out = []
    if rows:
        out += ["| field | type | default | meaning |", "|---|---|---|---|", *rows, ""]
    for path, sub in nested:
        out += [f"## `{path}`", "", (sub.__doc__ or "").strip(), "", *_rows(sub, f"{path}.")]
    return out


def render_policy_docs() -> str:
    """The whole policy reference as Markdown."""
    return "\n".join([_INTRO, "## Top level", "", *_rows(Policy, "")]).rstrip() + "\n"


if __name__ == "__main__":
    print(render_policy_docs(), end="")
