"""What a trainer reads: the review's examples as chat messages, or a refusal.

The rule for unreadable records: a dataset with any record the review reported as
unreadable (a ``format`` finding) is refused as a whole, naming the records. A trainer
therefore trains on exactly the examples the review saw, in the same order, or on nothing.
"""

from __future__ import annotations

from pathlib import Path

from ftguard.datasets._example import Example
from ftguard.datasets._load import LoadIssue, load_examples
from ftguard.errors import BadInputError, NotFoundError

__all__ = ["Conversation", "conversation_of", "read_conversations"]

Conversation = list[dict[str, str]]
"""OpenAI-style messages: ``[{"role": "user", "content": "..."}, ...]``."""

_SHOWN = 3


def conversation_of(example: Example) -> Conversation:
    """The chat messages of ``example`` (roles ``system``, ``user``, ``assistant``, ``tool``)."""
    return [{"role": turn.role, "content": turn.content} for turn in example.turns]


def read_conversations(
    path: Path | str,
    format: str | None = None,
    column_map: dict[str, str] | None = None,
) -> list[Conversation]:
    """Read every example of a dataset as chat messages, refusing unreadable records.

    The file is read by :func:`load_examples`, the reader the review uses, with the same
    format detection and rules; each example becomes its turns as messages.

    Args:
        path: A JSONL, JSON-array, CSV/TSV or Parquet dataset file.
        format: Force the file format (``jsonl``, ``json``, ``csv``, ``parquet``).
        column_map: Canonical field -> the file's column or key name (as for the review).

    Returns:
        One message list per record, in file order.

    Raises:
        NotFoundError: The file does not exist.
        BadInputError: It is not a dataset, or any of its records is unreadable.

    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"dataset not found: {path}")
    conversations: list[Conversation] = []
    issues: list[LoadIssue] = []
    unreadable = 0
    for item in load_examples(path, format, column_map, issues=True):
        if isinstance(item, LoadIssue):
            unreadable += 1
            if len(issues) < _SHOWN:
                issues.append(item)
        elif not unreadable:
            conversations.append(conversation_of(item))
    if unreadable:
        shown = "; ".join(f"line {i.line}: {i.reason}" for i in issues)
        more = f" (and {unreadable - _SHOWN} more)" if unreadable > _SHOWN else ""
        raise BadInputError(
            f"{path}: {unreadable} unreadable record{'s' if unreadable != 1 else ''} "
            f"(the review reports them as findings; nothing is trained on a dataset with "
            f"unreadable records): {shown}{more}"
        )
    return conversations
