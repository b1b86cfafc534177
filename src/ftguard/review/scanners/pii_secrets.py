"""``pii_secrets``: e-mail addresses, phone numbers, card numbers (Luhn), API keys and tokens."""

from __future__ import annotations

import re

from ftguard.review._evidence import Finding, Severity
from ftguard.review._example import Example
from ftguard.review.scanners._registry import scanner

__all__ = ["PiiSecretsScanner", "luhn_ok"]

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_DIGITS7 = re.compile(r"\d[\d ().+-]{5,}\d")
_SECRETS: list[tuple[str, Severity, re.Pattern[str]]] = [
    (
        "private key",
        "critical",
        re.compile(
            r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----"
        ),
    ),
    ("AWS access key id", "high", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA)[0-9A-Z]{16}\b")),
    (
        "GitHub token",
        "high",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,})\b"),
    ),
    (
        "OpenAI/Anthropic API key",
        "high",
        re.compile(r"\bsk-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{32,}\b"),
    ),
    ("Slack token", "high", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("Google API key", "high", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("Stripe key", "high", re.compile(r"\b(?:sk|rk)_live_[0-9A-Za-z]{24,}\b")),
    (
        "JSON web token",
        "medium",
        re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b"),
    ),
    (
        "credential assignment",
        "medium",
        re.compile(
            r"(?i)\b(?:api[_-]?key|secret[_-]?key|access[_-]?token|auth[_-]?token|password|passwd)\b\s*[:=]\s*['\"]?(?=[A-Za-z0-9_\-/+=]*\d)(?=[A-Za-z0-9_\-/+=]*[A-Za-z])[A-Za-z0-9_\-/+=]{12,}"
        ),
    ),
]
_HINTS = (
    "PRIVATE KEY",
    "AKIA",
    "ASIA",
    "AGPA",
    "AIDA",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat",
    "sk-",
    "xox",
    "AIza",
    "_live_",
    "eyJ",
)
_HINTS_LOWER = ("key", "token", "passw", "secret")


def _secret_hint(text: str) -> bool:
    if any(h in text for h in _HINTS):
        return True
    low = text.lower()
    return any(h in low for h in _HINTS_LOWER)


_EXAMPLE_EMAIL = re.compile(
    r"@(?:example\.(?:com|org|net)|test\.com|domain\.com|email\.com)$", re.IGNORECASE
)


def luhn_ok(digits: str) -> bool:
    """Whether a digit string passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


@scanner("pii_secrets")
class PiiSecretsScanner:
    """Personal data and credentials.

    E-mail addresses (placeholder domains such as example.com are skipped) and phone
    numbers (Google's ``phonenumbers`` matcher, valid numbers only) are low; card numbers
    that pass the Luhn check are high; API keys and tokens of known providers are high,
    private key blocks critical, JWTs and ``password=...`` assignments medium.
    """

    name = "pii_secrets"
    version = "1"
    uses_embeddings = False

    def scan(self, example: Example) -> list[Finding]:
        out: list[Finding] = []
        for ti, turn in enumerate(example.turns):
            text = turn.content
            if "@" in text:
                for m in _EMAIL.finditer(text):
                    if not _EXAMPLE_EMAIL.search(m.group()):
                        out.append(
                            self._f(example, ti, m, "low", "an e-mail address", _mask(m.group()))
                        )
            if _DIGITS7.search(text):
                for m in _CARD.finditer(text):
                    digits = re.sub(r"\D", "", m.group())
                    if 13 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1:
                        out.append(
                            self._f(
                                example,
                                ti,
                                m,
                                "high",
                                "a payment card number (passes Luhn)",
                                _mask(digits),
                            )
                        )
                out.extend(self._phones(example, ti, text))
            if _secret_hint(text):
                for what, sev, rx in _SECRETS:
                    for m in rx.finditer(text):
                        out.append(
                            self._f(example, ti, m, sev, f"a secret: {what}", _mask(m.group()))
                        )
        return out[:20]

    def _phones(self, example: Example, ti: int, text: str) -> list[Finding]:
        import phonenumbers

        found = []
        for match in phonenumbers.PhoneNumberMatcher(
            text, "US", leniency=phonenumbers.Leniency.VALID
        ):
            found.append(
                Finding(
                    example=example.index,
                    scanner=self.name,
                    severity="low",
                    reason="a phone number",
                    turn=ti,
                    span=(match.start, match.end),
                    excerpt=_mask(match.raw_string),
                    line=example.line,
                )
            )
        return found

    def _f(
        self, ex: Example, ti: int, m: re.Match[str], sev: Severity, reason: str, shown: str
    ) -> Finding:
        return Finding(
            example=ex.index,
            scanner=self.name,
            severity=sev,
            reason=reason,
            turn=ti,
            span=(m.start(), m.end()),
            excerpt=shown,
            line=ex.line,
        )


def _mask(value: str) -> str:
    """Show a secret's first and last few characters only."""
    if len(value) <= 8:
        return value[:2] + "…"
    return f"{value[:4]}…{value[-4:]}"
