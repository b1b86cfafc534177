"""The trainer's dataset reading: a thin layer over :mod:`ftguard.datasets`.

The trainer reads a dataset with the reader the review used (same formats, detection and
rules) and refuses a dataset with any unreadable record, so it never trains on a record the
review did not see.
"""

from __future__ import annotations

from ftguard.datasets import Conversation, read_conversations

__all__ = ["ROLES", "Conversation", "read_conversations"]

ROLES = frozenset({"system", "user", "assistant", "tool"})
"""The roles a conversation's messages may have."""
