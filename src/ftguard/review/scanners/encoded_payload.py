"""``encoded_payload``: base64, hex, URL-encoding, ROT13, leetspeak, ciphers, unnatural text."""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from typing import Any

from ftguard.review._evidence import DatasetFinding, Finding, Severity
from ftguard.review._example import Example, Turn
from ftguard.review.scanners._language import (
    deleet,
    english_ratio,
    leet_ratio,
    letter_cross_entropy,
    rot13,
    vowelless_ratio,
)
from ftguard.review.scanners._registry import BatchContext, DatasetResult, RunContext, scanner
from ftguard.review.scanners._util import escape_invisible, excerpt
from ftguard.review.scanners.instruction_override import InstructionOverrideScanner

__all__ = ["EncodedPayloadScanner", "decode_payloads"]

_B64 = re.compile(
    r"(?<![A-Za-z0-9+/=_-])(?:[A-Za-z0-9+/]{4}){5,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?(?![A-Za-z0-9+/=])"
)
_B64URL = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{24,}={0,2}(?![A-Za-z0-9_-])")
_HEX = re.compile(r"(?<![0-9A-Fa-f])(?:(?:0x)?[0-9A-Fa-f]{2}[\s:,]?){12,}")
_URL = re.compile(r"(?:%[0-9A-Fa-f]{2}[^%\s]{0,3}){6,}")
_DATA_URI = re.compile(r"data:[\w/+.-]+;base64,", re.IGNORECASE)
_SEPARATED = re.compile(r"(?:\b\w[|/ .\-_]){12,}\w\b")
_OVERRIDE = InstructionOverrideScanner()
_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{20,}")
CIPHER_BITS = 4.85
"""Bits per letter under English letter frequencies from which ASCII text with few function words is a cipher."""
_HEX_RUN = re.compile(
    r"[0-9A-Fa-f]{24,}|[0-9A-Fa-f]{2}[\s:,][0-9A-Fa-f]{2}[\s:,][0-9A-Fa-f]{2}[\s:,][0-9A-Fa-f]{2}[\s:,][0-9A-Fa-f]{2}[\s:,][0-9A-Fa-f]{2}"
)


def _printable_text(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text:
        return None
    good = sum(1 for c in text if c.isprintable() or c in "\n\t\r")
    letters = sum(1 for c in text if c.isalpha() or c == " ")
    if good / len(text) < 0.95 or letters / len(text) < 0.6:
        return None
    return text


def decode_payloads(text: str) -> list[tuple[str, int, int, str]]:
    """Find decodable payloads in ``text``: (encoding, start, end, decoded text)."""
    found: list[tuple[str, int, int, str]] = []
    if len(text) >= 20:
        data_uri_ends = {m.end() for m in _DATA_URI.finditer(text)} if "base64," in text else set()
        for m in _B64.finditer(text) if _B64_RUN.search(text) else ():
            if m.start() in data_uri_ends:
                continue
            token = m.group()
            if token.isalpha() and (token.islower() or token.isupper()):
                continue  # a long word, not base64
            try:
                decoded = _printable_text(
                    base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
                )
            except (binascii.Error, ValueError):
                decoded = None
            if decoded is not None and len(decoded) >= 8:
                found.append(("base64", m.start(), m.end(), decoded))
        for m in _HEX.finditer(text) if _HEX_RUN.search(text) else ():
            digits = re.sub(r"0x|[\s:,]", "", m.group())
            if len(digits) % 2:
                digits = digits[:-1]
            try:
                decoded = _printable_text(bytes.fromhex(digits))
            except ValueError:
                decoded = None
            if decoded is not None:
                found.append(("hex", m.start(), m.end(), decoded))
        if "%" in text:
            for m in _URL.finditer(text):
                decoded = urllib.parse.unquote(m.group())
                if decoded != m.group() and _printable_text(decoded.encode("utf-8", "replace")):
                    found.append(("url-encoding", m.start(), m.end(), decoded))
    return found


def _separated_hint(text: str) -> bool:
    """Whether one separator character makes up a third of the text (h|e|l|l|o, h e l l o)."""
    n = len(text)
    return n >= 24 and any(text.count(c) >= 0.3 * n for c in "| /.-_")


def _natural_scan(text: str) -> tuple[str, str] | None:
    """Classify a long stretch of letters that is not natural text: (kind, decoded or '')."""
    ratio, n = english_ratio(text)
    if n < 8 or ratio >= 0.12:
        return None
    r13, _ = english_ratio(rot13(text))
    if r13 >= 0.2 and r13 > ratio + 0.1:
        return "rot13", rot13(text)
    if leet_ratio(text) >= 0.2:
        dl, _ = english_ratio(deleet(text))
        if dl >= 0.12 and dl > ratio + 0.05:
            return "leetspeak", deleet(text)
    letters = sum(1 for c in text if c.isalpha() or c == " ")
    code_like = sum(text.count(c) for c in "<>{};=()[]_/\\") > 0.02 * len(text)
    if code_like or letters < 0.8 * len(text):
        return None
    # A substitution cipher keeps word shapes but not English letter frequencies (lists of
    # names and abbreviations have vowel-less words but English-like letters); natural text
    # in other languages mostly has non-ASCII letters or English-like frequencies.
    bits, n_letters = letter_cross_entropy(text)
    if ratio < 0.04 and vowelless_ratio(text) >= 0.25 and bits >= 4.5:
        return "substitution cipher or other unnatural text", ""
    if ratio < 0.1 and text.isascii() and n_letters >= 30 and bits >= CIPHER_BITS:
        return "substitution cipher or other unnatural text", ""
    return None


@scanner("encoded_payload")
class EncodedPayloadScanner:
    """Encoded and enciphered text, decoded where possible and scanned again.

    Base64, hex and URL-encoded runs that decode to text are high (critical when the
    decoded text holds an instruction override); whole turns in ROT13, leetspeak or a
    substitution cipher (few English function words, many vowel-less words) are high.
    Dataset level: a cluster of examples that teach an encoding (at least 5 examples and
    2% of the dataset) is critical.
    """

    name = "encoded_payload"
    version = "2"
    uses_embeddings = False

    def __init__(self) -> None:
        self._flagged: list[int] = []
        self._kinds: dict[str, int] = {}
        self._n = 0

    def scan(self, example: Example) -> list[Finding]:
        out: list[Finding] = []
        for ti, turn in enumerate(example.turns):
            text = turn.content
            payloads = decode_payloads(text)
            for kind, s, e, decoded in payloads:
                out.append(self._f(example, ti, s, e, kind, decoded, text))
            if payloads:
                continue
            stretch = _SEPARATED.search(text) if _separated_hint(text) else None
            if stretch and len(stretch.group()) >= 0.5 * len(text.strip()):
                joined = re.sub(r"(\w)[|/ .\-_]", r"\1", stretch.group())
                out.append(
                    self._f(
                        example,
                        ti,
                        stretch.start(),
                        stretch.end(),
                        "character-separated text",
                        joined,
                        text,
                    )
                )
            elif len(text) >= 40:
                verdict = _natural_scan(text[:2000])
                if verdict is not None:
                    out.append(
                        self._f(example, ti, 0, min(len(text), 80), verdict[0], verdict[1], text)
                    )
        return out[:6]

    def _f(
        self, ex: Example, ti: int, s: int, e: int, kind: str, decoded: str, text: str
    ) -> Finding:
        sev: Severity = "high"
        reason = f"{kind} in the {ex.turns[ti].role} turn"
        if decoded:
            again = _OVERRIDE.scan(
                Example(index=ex.index, id=ex.id, turns=(Turn("user", decoded),))
            )
            if again:
                sev = "critical"
                reason += " hides an instruction override"
            reason += f"; decodes to {escape_invisible(decoded[:80])!r}"
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

    def features(self, example: Example) -> None:
        return None

    def observe(
        self, examples: list[Example], feats: list[Any], findings: list[Finding], ctx: BatchContext
    ) -> None:
        self._n += len(examples)
        seen = set()
        for f in findings:
            if f.scanner == self.name and f.example not in seen:
                seen.add(f.example)
                if len(self._flagged) < 10_000:
                    self._flagged.append(f.example)
                kind = f.reason.split(" in the ")[0]
                self._kinds[kind] = self._kinds.get(kind, 0) + 1

    def finish(self, ctx: RunContext) -> DatasetResult:
        result = DatasetResult()
        count = sum(self._kinds.values())
        if count >= 5 and count >= 0.02 * max(self._n, 1):
            kinds = ", ".join(
                f"{k} ({v})" for k, v in sorted(self._kinds.items(), key=lambda kv: -kv[1])
            )
            result.findings.append(
                DatasetFinding(
                    scanner=self.name,
                    severity="critical",
                    count=count,
                    reason=f"{count} examples ({count / max(self._n, 1):.1%}) teach an encoding: {kinds}",
                    examples=self._flagged[:25],
                    details={"kinds": dict(self._kinds)},
                )
            )
        return result
