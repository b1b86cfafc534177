"""Turn one decoded record (a dict or a list of messages) into an :class:`Example`.

Each record is read by its own shape (a file may mix chat and Alpaca rows); a record that
fits no shape, or whose fields are not text, raises :class:`RecordError` and is an
*unreadable record*.
"""

from __future__ import annotations

import re
from typing import Any

from ftguard.datasets._example import Example, Role, Turn

__all__ = [
    "CONTEXT_ALIASES",
    "RECORD_FORMATS",
    "REQUEST_ALIASES",
    "RESPONSE_ALIASES",
    "RecordError",
    "detect_record_format",
    "record_to_example",
]

RECORD_FORMATS = (
    "openai",
    "messages_list",
    "sharegpt",
    "alpaca",
    "dolly",
    "prompt_completion",
    "columns",
)

_SHAREGPT_ROLES: dict[str, Role] = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
}
_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}

# Canonical field -> names accepted in files (first match wins), for column mapping.
REQUEST_ALIASES = ("instruction", "prompt", "question", "query", "goal", "forbidden_prompt")
CONTEXT_ALIASES = ("input", "context")
RESPONSE_ALIASES = ("output", "completion", "response", "answer", "target", "chosen")

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_KNOWN_FIELDS = "messages, conversations, instruction/output, prompt/completion"


class RecordError(ValueError):
    """A record that cannot be read as an example (an unreadable record: a finding, not a crash)."""


def detect_record_format(record: Any, *, tabular: bool = False) -> str | None:
    """Name the record format of one decoded record, or None when it is no example.

    Args:
        record: The decoded record.
        tabular: The record is a CSV or Parquet row: a row with a response column
            (``output``, ``completion``, ``answer``, ...) is read by column names.

    """
    if isinstance(record, list):
        if record and all(isinstance(m, dict) and "role" in m for m in record):
            return "messages_list"
        return None
    if not isinstance(record, dict):
        return None
    if "messages" in record:
        return "openai"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record and ("output" in record or "input" in record):
        return "alpaca"
    if "instruction" in record and "response" in record:
        return "dolly"
    if "prompt" in record and ("completion" in record or "response" in record):
        return "prompt_completion"
    if tabular:
        keys = {k.lower() for k in record if isinstance(k, str)}
        if keys & set(RESPONSE_ALIASES):
            return "columns"
    return None


def _why_unknown(record: Any) -> str:
    if isinstance(record, list):
        return "not a chat record: a list that is not a list of {role, content} messages"
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    return f"not a chat record: the record has no known example fields ({_KNOWN_FIELDS})"


def _checked(text: str, what: str) -> str:
    if _LONE_SURROGATE.search(text):
        raise RecordError(f"{what} holds a lone surrogate (not Unicode text)")
    return text


def _text(value: Any, what: str) -> str:
    """The text of a field: a string; null or absent is empty; content parts are joined.

    Numbers and booleans are refused: their text would be Python's spelling, not the file's.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return _checked(value, what)
    if isinstance(value, list):  # OpenAI content parts
        parts = []
        for part in value:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
            else:
                raise RecordError(f"{what} has a content part that is not text")
        return _checked("\n".join(parts), what)
    raise RecordError(f"{what} is a {type(value).__name__}, not text (a string)")


def _messages(items: Any, role_key: str, text_key: str, roles: dict[str, Role]) -> list[Turn]:
    if not isinstance(items, list):
        raise RecordError(f"the message list is a {type(items).__name__}, not a list")
    if not items:
        raise RecordError("the message list is empty (it must be a non-empty list)")
    turns = []
    for i, msg in enumerate(items):
        if not isinstance(msg, dict):
            raise RecordError(f"message {i} is a {type(msg).__name__}, not an object")
        raw_role = msg.get(role_key)
        if not isinstance(raw_role, str) or raw_role.lower() not in roles:
            raise RecordError(f"message {i} has an unknown role {str(raw_role)[:40]!r}")
        turns.append(Turn(roles[raw_role.lower()], _text(msg.get(text_key), f"message {i}")))
    return turns


def _pair(
    record: dict[str, Any], request: str, context: str | None, response: str, system: str | None
) -> list[Turn]:
    if request not in record and response not in record:
        raise RecordError(f"the record has neither {request!r} nor {response!r}")
    turns: list[Turn] = []
    if system and record.get(system) is not None:
        sys_text = _text(record.get(system), system)
        if sys_text:
            turns.append(Turn("system", sys_text))
    user = _text(record.get(request), request)
    if context and record.get(context) is not None:
        extra = _text(record.get(context), context)
        if extra:
            user = f"{user}\n\n{extra}" if user else extra
    turns.append(Turn("user", user))
    turns.append(Turn("assistant", _text(record.get(response), response)))
    return turns


def record_to_example(
    record: Any,
    fmt: str | None,
    index: int,
    line: int,
    column_map: dict[str, str] | None = None,
) -> Example:
    """Build the :class:`Example` of one record.

    Args:
        record: The decoded record.
        fmt: One of :data:`RECORD_FORMATS` (see :func:`detect_record_format`), or None
            when the record fits no format (raises the reason why).
        index: 0-based position in the file.
        line: 1-based source line or record number.
        column_map: Canonical field (``instruction``, ``input``, ``output``, ``system``,
            ``messages``, ``id``) -> the file's column name.

    Raises:
        RecordError: When the record does not fit the format.

    """
    if fmt is None:
        raise RecordError(_why_unknown(record))
    cmap = column_map or {}
    if fmt == "messages_list":
        turns = _messages(record, "role", "content", _ROLES)
        record = {}
    else:
        if not isinstance(record, dict):
            raise RecordError(f"expected a JSON object, got {type(record).__name__}")
        if "messages" in cmap or fmt == "openai":
            turns = _messages(
                record.get(cmap.get("messages", "messages")), "role", "content", _ROLES
            )
        elif fmt == "sharegpt":
            turns = _messages(record.get("conversations"), "from", "value", _SHAREGPT_ROLES)
        elif fmt == "alpaca":
            turns = _pair(record, "instruction", "input", "output", "system")
        elif fmt == "dolly":
            turns = _pair(record, "instruction", "context", "response", "system")
        elif fmt == "prompt_completion":
            resp = "completion" if "completion" in record else "response"
            turns = _pair(record, "prompt", None, resp, "system")
        elif fmt == "columns":  # CSV / Parquet / unknown JSON with a column map
            turns = _pair(
                record,
                cmap.get("instruction") or _first(record, REQUEST_ALIASES) or "instruction",
                cmap.get("input") or _first(record, CONTEXT_ALIASES),
                cmap.get("output") or _first(record, RESPONSE_ALIASES) or "output",
                cmap.get("system", "system"),
            )
        else:
            raise RecordError(f"unknown record format {fmt!r}")
    rid = record.get(cmap.get("id", "id")) if isinstance(record, dict) else None
    return Example(
        index=index,
        id=_checked(str(rid), "the id") if rid is not None else str(index),
        turns=tuple(turns),
        line=line,
    )


def _first(record: dict[str, Any], names: tuple[str, ...]) -> str | None:
    lowered = {k.lower(): k for k in record if isinstance(k, str)}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None
