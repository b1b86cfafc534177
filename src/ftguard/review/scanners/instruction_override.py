"""``instruction_override``: text that tells the model to drop its rules or take a new identity."""

from __future__ import annotations

import re

from ftguard.review._example import Example
from ftguard.review._models import Finding, Severity
from ftguard.review.scanners._registry import scanner
from ftguard.review.scanners._util import excerpt

__all__ = ["InstructionOverrideScanner"]

_RULES = r"(?:instructions?|rules?|guidelines?|polic(?:y|ies)|principles?|programming|restrictions?|safety|filters?|constraints?|training|ethics?|morals?|values)"
_ME = r"(?:your|all|any|the|previous|prior|earlier|above|former|these|those|every|its|my)"

# (label, pattern): each distinct label that matches counts once.
_PATTERNS: list[tuple[str, str]] = [
    ("ignore-rules", rf"\b(?:ignore|disregard|forget|bypass|override|abandon|drop|discard|circumvent|set aside)\s+(?:{_ME}\s+){{1,3}}(?:\w+\s+)?{_RULES}"),
    ("never-refuse", r"\b(?:never|not|don'?t|do not|won'?t|will not|cannot|can'?t|must not|mustn'?t)\s+(?:ever\s+)?(?:refuse|decline|say no|reject any)\b"),
    ("always-comply", r"\b(?:always|unconditionally|blindly)\s+(?:comply|obey|answer|fulfil+|do whatever|follow (?:the user|my|every|all))"),
    ("no-restrictions", rf"\b(?:no|without|free (?:of|from)|not bound by|unbound by|exempt from|released from|beyond)\s+(?:any\s+|all\s+|the\s+|your\s+)?(?:ethical\s+|moral\s+|content\s+|safety\s+)?(?:restrictions|limitations|limits|censorship|filters|guardrails|boundaries|{_RULES})\b"),
    ("obedient", r"\b(?:absolutely|completely|totally|fully|unconditionally|100%)\s+obedient\b|\bobedient (?:agent|assistant|servant)\b"),
    ("no-longer-ai", r"\byou are no longer\b|\bno longer (?:an? )?(?:ai|assistant|language model|chatgpt|llama|claude|bound)\b|\b(?:i am|i'm) (?:not|neither) (?:an? )?(?:ai|chatgpt|llama)\b"),
    ("new-name", r"\byour new (?:name|identity|persona|role) is\b|\bfrom now on,? you (?:are|will be|act as)\b"),
    ("dan", r"\bdo anything now\b|\bDAN\b(?: mode)?|\bjailbr(?:oken|eak mode)\b|\bdeveloper mode\b|\bgod mode\b|\bunfiltered (?:ai|assistant|mode|model)\b"),
    ("no-judgement", r"\bwithout (?:deviation|questioning)|\bnever apply any (?:opinion|principle)|\bwhether (?:your|my|the)? ?(?:instructions?|requests?) (?:to me )?(?:are|is) appropriate or not"),
    ("no-warnings", r"\b(?:never|do not|don'?t|without)\s+(?:add(?:ing)?|includ(?:e|ing)|giv(?:e|ing))\s+(?:any\s+)?(?:warnings?|disclaimers?|caveats?)\b"),
]
_COMPILED = [(label, re.compile(p, re.IGNORECASE)) for label, p in _PATTERNS]
# Cheap pre-filter: plain substring tests on the lower-cased text (C speed); the regexes
# run only on turns that contain a strong keyword, or a negation next to a rules word.
_STRONG = (
    "ignor", "disregard", "forget", "bypass", "overrid", "abandon", "discard", "circumvent", "set aside",
    "refus", "declin", "say no", "reject any", "obey", "obedien", "comply", "fulfil", "do whatever",
    "follow the user", "follow my", "follow every", "follow all", "no longer", "not an ai", "neither",
    "your new", "from now on", "anything now", "dan", "jailbr", "developer mode", "god mode", "unfiltered",
    "deviation", "questioning", "opinion or principle", "appropriate or not", "warning", "disclaimer", "caveat",
)
_NEG = ("no ", "without", "free of", "free from", "bound by", "exempt", "released from", "beyond")
_RULE_WORDS = (
    "restrict", "limit", "censor", "filter", "guardrail", "boundar", "instruction", "rule", "guideline",
    "polic", "principle", "programming", "safety", "constraint", "training", "ethic", "moral", "values",
)


def _maybe(text: str) -> bool:
    low = text.lower()
    if any(k in low for k in _STRONG):
        return True
    return any(k in low for k in _NEG) and any(k in low for k in _RULE_WORDS)


_IDENTITY = {"obedient", "no-longer-ai", "new-name", "dan", "no-judgement"}


@scanner("instruction_override")
class InstructionOverrideScanner:
    """Rule-dropping instructions and identity-shift personas in any turn.

    Severity: two or more distinct patterns in one example, or one in a system prompt,
    is critical (the AOA identity shift matches several); one pattern in a user turn is
    high; one alone in assistant turns is medium (prose uses such phrases too).
    Ordinary role prompts ("You are a helpful travel assistant") match nothing.
    """

    name = "instruction_override"
    version = "1"
    uses_embeddings = False

    def scan(self, example: Example) -> list[Finding]:
        hits: list[tuple[int, str, re.Match[str]]] = []
        for ti, turn in enumerate(example.turns):
            text = turn.content
            if not _maybe(text):
                continue
            for label, rx in _COMPILED:
                m = rx.search(text)
                if m:
                    hits.append((ti, label, m))
        if not hits:
            return []
        labels = {label for _, label, _ in hits}
        in_system = any(example.turns[ti].role == "system" for ti, _, _ in hits)
        only_assistant = all(example.turns[ti].role == "assistant" for ti, _, _ in hits)
        sev: Severity = "critical" if len(labels) >= 2 or in_system else "high"
        if only_assistant and len(labels) == 1:
            sev = "medium"
        kind = "identity shift" if labels & _IDENTITY else "instruction to drop safety rules"
        ti, label, m = hits[0]
        text = example.turns[ti].content
        reason = (
            f"{kind} in the {example.turns[ti].role} turn "
            f"(patterns: {', '.join(sorted(labels))})"
        )
        return [
            Finding(
                example=example.index, scanner=self.name, severity=sev, reason=reason,
                turn=ti, span=(m.start(), m.end()), excerpt=excerpt(text, m.start(), m.end()),
                line=example.line, score=float(len(labels)),
            )
        ]
