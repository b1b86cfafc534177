"""Reading chat training data: OpenAI chat JSONL (``messages``) and Alpaca JSON/JSONL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftguard.errors import BadInputError, NotFoundError

__all__ = ["ROLES", "Conversation", "conversation_from_record", "read_conversations"]

Conversation = list[dict[str, str]]
"""OpenAI-style messages: ``[{"role": "user", "content": "..."}, ...]``."""

ROLES = frozenset({"system", "user", "assistant"})


def _from_messages(messages: Any, where: str) -> Conversation:
    if not isinstance(messages, list) or not messages:
        raise BadInputError(f"{where}: 'messages' must be a non-empty list")
    out: Conversation = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadInputError(f"{where}: message {i} is not an object")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise BadInputError(
                f"{where}: message {i} has role {role!r}, not one of {sorted(ROLES)}"
            )
        if not isinstance(content, str):
            raise BadInputError(f"{where}: message {i} has no string 'content'")
        out.append({"role": str(role), "content": content})
    return out


def _from_alpaca(record: dict[str, Any], where: str) -> Conversation:
    instruction, inp, output = (record.get(k, "") for k in ("instruction", "input", "output"))
    if not all(isinstance(v, str) for v in (instruction, inp, output)):
        raise BadInputError(f"{where}: 'instruction', 'input' and 'output' must be strings")
    if not instruction.strip() and not inp.strip():
        raise BadInputError(f"{where}: empty 'instruction'")
    prompt = f"{instruction}\n\n{inp}" if inp.strip() else instruction
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]


def conversation_from_record(record: Any, where: str = "record") -> Conversation:
    """Turn one OpenAI-chat (``messages``) or Alpaca (``instruction``/``output``) record into messages.

    Raises:
        BadInputError: The record is neither format.

    """
    if not isinstance(record, dict):
        raise BadInputError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if "messages" in record:
        return _from_messages(record["messages"], where)
    if "instruction" in record and "output" in record:
        return _from_alpaca(record, where)
    raise BadInputError(
        f"{where}: not a chat record ('messages') nor an Alpaca record ('instruction', 'output')"
    )


def read_conversations(path: Path) -> list[Conversation]:
    """Read conversations from OpenAI chat JSONL or Alpaca JSON/JSONL.

    A JSONL file holds one object a line (``{"messages": [...]}`` or
    ``{"instruction", "input", "output"}``); a JSON file holds a list of such objects.

    Args:
        path: The dataset file.

    Returns:
        One message list per record, in file order.

    Raises:
        NotFoundError: The file does not exist.
        BadInputError: It is not valid UTF-8 JSON/JSONL in one of the two formats, or is empty.

    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"dataset not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    text = text.removeprefix("\ufeff")
    stripped = text.lstrip(" \t\r\n")
    conversations: list[Conversation] = []
    if stripped.startswith("["):
        try:
            records = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{path}: invalid JSON ({exc.msg}, line {exc.lineno})") from exc
        if not isinstance(records, list):  # pragma: no cover - '[' start implies a list
            raise BadInputError(f"{path}: expected a JSON list of records")
        for i, record in enumerate(records):
            conversations.append(conversation_from_record(record, f"{path}: record {i}"))
    else:
        for lineno, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadInputError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from exc
            conversations.append(conversation_from_record(record, f"{path}:{lineno}"))
    if not conversations:
        raise BadInputError(f"{path}: no records")
    return conversations
