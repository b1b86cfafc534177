"""Small text helpers the scanners share."""

from __future__ import annotations

import re

__all__ = ["escape_invisible", "excerpt", "words"]

_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
MAX_EXCERPT = 200


def escape_invisible(text: str) -> str:
    """Show invisible and control characters as ``<U+XXXX>``."""
    return _INVISIBLE.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)


def excerpt(text: str, start: int = 0, end: int | None = None, limit: int = MAX_EXCERPT) -> str:
    """A short, escaped excerpt of ``text[start:end]`` with some context, at most ``limit`` chars."""
    end = len(text) if end is None else end
    lo = max(0, start - 30)
    hi = min(len(text), max(end, start + 1) + 30)
    piece = escape_invisible(text[lo:hi]).replace("\n", " ")
    if len(piece) > limit:
        piece = piece[: limit - 1] + "…"
    return ("…" if lo > 0 else "") + piece


def words(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return _WORD.findall(text.lower())
