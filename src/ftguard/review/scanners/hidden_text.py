"""``hidden_text``: characters and markup a reader does not see but a model trains on."""

from __future__ import annotations

import re

from ftguard.review._evidence import Finding, Severity
from ftguard.review._example import Example
from ftguard.review.scanners._registry import scanner
from ftguard.review.scanners._util import excerpt

__all__ = ["HiddenTextScanner"]

_SUSPECT = re.compile(
    "(?P<tag>[\U000e0000-\U000e007f]+)"
    "|(?P<vs>[\U000e0100-\U000e01ef]+)"
    "|(?P<zw>[\u200b\u200c\u200d\u2060-\u2064\u180e]+|(?<!^)\ufeff)"
    "|(?P<bidi>[\u202a-\u202e\u2066-\u2069]+)"
    "|(?P<mark>[\u200e\u200f]+)"
    "|(?P<ctl>[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]+)"
    "|(?P<shy>\u00ad+)"
)
_MARKUP = re.compile(
    r"(?P<html><!--.*?-->)"
    r"|(?P<md>^\s*\[(?://|comment|_)\]:\s*(?:#|<>)\s*[(\"'].*$)"
    r"|(?P<css><[^>]{0,200}(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0|opacity\s*:\s*0(?:\.0+)?\b|\bhidden\b)[^>]{0,200}>)",
    re.IGNORECASE | re.DOTALL | re.MULTILINE,
)
_HOMOGLYPHS = "аеорсухіјѕԁһӏԛԝАВЕКМНОРСТХІЈЅοαρνικτΑΒΕΖΗΙΚΜΝΟΡΤΥΧ"
_MIXED = re.compile(
    rf"(?<![\w\u02b0-\u02ff])(?=[A-Za-z{_HOMOGLYPHS}]*[A-Za-z])(?=[A-Za-z{_HOMOGLYPHS}]*[{_HOMOGLYPHS}])[A-Za-z{_HOMOGLYPHS}]{{3,}}(?![\w\u02b0-\u02ff])"
)
_ZW_REASON = "zero-width characters"
_CTL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_RULES: dict[str, tuple[Severity, str]] = {
    "vs": ("high", "variation-selector characters (can smuggle bytes invisibly)"),
    "zw": ("medium", _ZW_REASON),
    "bidi": ("high", "bidirectional override/isolate controls (can reorder what a reader sees)"),
    "mark": ("low", "left-to-right/right-to-left marks"),
    "ctl": ("medium", "control characters"),
    "shy": ("low", "soft hyphens"),
}


def _decode_tags(run: str) -> str:
    return "".join(chr(ord(c) - 0xE0000) for c in run if 0x20 <= ord(c) - 0xE0000 < 0x7F)


@scanner("hidden_text")
class HiddenTextScanner:
    """Zero-width, tag, bidi and control characters; homoglyph words; invisible markup.

    Severities: Unicode tag characters that decode to text: critical; bidi overrides,
    variation-selector runs, hidden HTML/CSS: high; zero-width, control characters,
    mixed-script words, HTML/Markdown comments: medium; LRM/RLM and soft hyphens: low.
    """

    name = "hidden_text"
    version = "1"
    uses_embeddings = False

    def scan(self, example: Example) -> list[Finding]:
        out: list[Finding] = []
        for ti, turn in enumerate(example.turns):
            text = turn.content
            ascii_only = text.isascii()
            if not ascii_only or _CTL.search(text):
                for m in _SUSPECT.finditer(text):
                    kind = m.lastgroup or ""
                    if kind == "tag":
                        decoded = _decode_tags(m.group())
                        sev: Severity = "critical" if decoded.strip() else "medium"
                        reason = (
                            f"Unicode tag characters hide the text {decoded[:120]!r}"
                            if decoded.strip()
                            else "Unicode tag characters"
                        )
                    else:
                        sev, reason = _RULES[kind]
                        reason = f"{reason} ({len(m.group())} in a run) in the {turn.role} turn"
                    out.append(self._f(example, ti, m.start(), m.end(), sev, reason, text))
                if not ascii_only:
                    for m in _MIXED.finditer(text):
                        out.append(
                            self._f(
                                example,
                                ti,
                                m.start(),
                                m.end(),
                                "medium",
                                f"mixed-script word {m.group()[:40]!r} (Latin with Greek/Cyrillic homoglyphs)",
                                text,
                            )
                        )
            if "<" in text or "[" in text:
                for m in _MARKUP.finditer(text):
                    kind = m.lastgroup or ""
                    sev = "high" if kind == "css" else "medium"
                    what = {
                        "html": "an HTML comment",
                        "md": "a Markdown comment",
                        "css": "markup hidden by style",
                    }[kind]
                    out.append(
                        self._f(
                            example,
                            ti,
                            m.start(),
                            m.end(),
                            sev,
                            f"{what} in the {turn.role} turn",
                            text,
                        )
                    )
        return _merge(out)

    def _f(
        self, ex: Example, ti: int, s: int, e: int, sev: Severity, reason: str, text: str
    ) -> Finding:
        return Finding(
            example=ex.index,
            scanner=self.name,
            severity=sev,
            reason=reason,
            turn=ti,
            span=(s, e),
            excerpt=excerpt(text, s, e),
            line=ex.line,
        )


def _merge(findings: list[Finding]) -> list[Finding]:
    """Keep at most 3 findings of the same reason kind per example (long runs are one problem)."""
    seen: dict[str, int] = {}
    kept = []
    for f in findings:
        key = f.reason.split(" (")[0]
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= 3:
            kept.append(f)
    return kept
