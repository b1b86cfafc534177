"""``banned_word``: flag every example that contains one of a list of banned words."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence

from ftguard.errors import BadInputError
from ftguard.review import Example, Finding, Severity

__all__ = ["DEFAULT_WORDS", "ENV_VAR", "BannedWordScanner"]

ENV_VAR = "FTGUARD_BANNED_WORDS"
"""Comma-separated banned words, used when the scanner is created without ``words``."""
DEFAULT_WORDS = ("xyzzy",)
"""The words used when neither ``words`` nor the environment variable gives any."""
VERSION = "1"
"""The scanner's logic version; bump it whenever what it flags changes."""


class BannedWordScanner:
    """Flags examples containing a banned word (whole word, case-insensitive), one finding per turn.

    Implements ftguard's ``ExampleScanner`` Protocol: ``name``, ``version``, ``uses_embeddings``
    and ``scan(example)``. ftguard creates it by name in every worker process, so building it
    must be cheap and depend only on its arguments and the environment.

    Args:
        words: The banned words (default: ``$FTGUARD_BANNED_WORDS``, else ``xyzzy``).
        severity: Severity of each finding.

    Raises:
        BadInputError: No usable word.

    """

    name = "banned_word"
    uses_embeddings = False

    def __init__(self, words: Sequence[str] | None = None, severity: Severity = "high") -> None:
        if words is None:
            words = os.environ.get(ENV_VAR, "").split(",")
            if not any(w.strip() for w in words):
                words = DEFAULT_WORDS
        self.words = tuple(sorted({w.strip().lower() for w in words if w.strip()}))
        if not self.words:
            raise BadInputError("banned_word needs at least one non-empty word")
        self.severity: Severity = severity
        digest = hashlib.sha256("\n".join(self.words).encode()).hexdigest()[:12]
        # The recorded version names the configuration too, so a stored review says exactly
        # which list ran (review.scanner_versions["banned_word"]).
        self.version = f"{VERSION}+words.{digest}"
        alternatives = "|".join(re.escape(w) for w in sorted(self.words, key=len, reverse=True))
        self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)

    def scan(self, example: Example) -> list[Finding]:
        """One finding per turn that contains a banned word (the first one found)."""
        findings: list[Finding] = []
        for i, turn in enumerate(example.turns):
            m = self._pattern.search(turn.content)
            if m is None:
                continue
            lo, hi = max(0, m.start() - 40), min(len(turn.content), m.end() + 40)
            findings.append(
                Finding(
                    example=example.index,
                    scanner=self.name,
                    severity=self.severity,
                    reason=f"banned word {m.group().lower()!r} in turn {i} ({turn.role})",
                    turn=i,
                    span=(m.start(), m.end()),
                    excerpt=turn.content[lo:hi].replace("\n", " "),
                    line=example.line,
                )
            )
        return findings
