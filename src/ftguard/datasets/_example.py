"""The normalized training example every loader produces and every scanner reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Example", "Role", "Turn"]

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of an example.

    Attributes:
        role: Who speaks: ``system``, ``user``, ``assistant`` or ``tool``.
        content: The message text.

    """

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Example:
    """One training example, whatever the file format.

    Attributes:
        index: 0-based position of the example in the file (the ``example`` of findings).
        id: The record's own id when it has one, else ``str(index)``.
        turns: The messages, in order.
        line: 1-based source line (JSONL, CSV) or record number (JSON array, Parquet).

    """

    index: int
    id: str
    turns: tuple[Turn, ...]
    line: int = 0
    meta: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def request(self) -> str:
        """The text the model is conditioned on: system and user turns, joined."""
        return "\n".join(t.content for t in self.turns if t.role in ("system", "user"))

    @property
    def user_text(self) -> str:
        """The user turns only, joined."""
        return "\n".join(t.content for t in self.turns if t.role == "user")

    @property
    def response(self) -> str:
        """The assistant turns (what the model is trained to say), joined."""
        return "\n".join(t.content for t in self.turns if t.role == "assistant")

    @property
    def text(self) -> str:
        """Every turn, joined."""
        return "\n".join(t.content for t in self.turns)

    def exchanges(self) -> list[tuple[tuple[str, ...], int]]:
        """Each assistant turn with the turns asked before it: ``(asked turns, turn index)``.

        ``asked`` holds every user, tool and system turn before that assistant turn, each on
        its own: a harmful request asked again after a refusal, put in a tool turn, or written
        after a long benign turn is read in its own turn with the answer that complies.
        """
        asked: list[str] = []
        out: list[tuple[tuple[str, ...], int]] = []
        for i, turn in enumerate(self.turns):
            if turn.role == "assistant":
                out.append((tuple(asked), i))
            else:
                asked.append(turn.content)
        return out
