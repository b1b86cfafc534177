"""``instruction_override``: text that tells the model to drop its rules or take a new identity."""

from __future__ import annotations

import re

from ftguard.review._evidence import Finding, Severity
from ftguard.review._example import Example
from ftguard.review.scanners._registry import scanner
from ftguard.review.scanners._util import excerpt

__all__ = ["InstructionOverrideScanner"]

_RULES = r"(?:instructions?|rules?|guidelines?|polic(?:y|ies)|principles?|programming|restrictions?|safety|filters?|constraints?|training|ethics?|morals?|values)"
_ME = r"(?:your|all|any|the|previous|prior|earlier|above|former|these|those|every|its|my)"

_AI = r"(?:ai|a\.i\.|assistant|model|language model|llm|chatbot|bot|agent|entity|intelligence|system|version|mode|persona|machine)"
_HARM = r"(?:harmful|dangerous|illegal|unethical|immoral|offensive|sensitive|wrong|legality|ethics|morality|the law|risky)"
_SAFETY = (
    r"(?:(?:content|safety|ethical|moral|usage)\s+(?:polic(?:y|ies)|filters?|filtering|guidelines?|rules?|restrictions?|"
    r"constraints?|protocols?|training|layer|modules?|settings?|mode|programming|alignment)|guardrails?|censorship|moderation(?:\s+layer)?|"
    r"(?:safety\s+)?alignment(?:\s+training)?|refusals?(?:\s+triggers?)?|safeguards?|limitations|"
    r"(?:your|its|my|the (?:model|assistant)'?s)\s+(?:\w+\s+)?(?:restrictions|limitations|limits|rules|guidelines|filters|programming|polic(?:y|ies)|training|constraints)|"
    r"(?:every|all|any)\s+(?:\w+\s+)?(?:restrictions?|limitations?|limits|guardrails?|rules?|filters?|constraints?))"
)
_GONE = (
    r"(?:(?:have|has|had|were|was|are|is|been|be)\s+(?:all\s+|now\s+|completely\s+|fully\s+|been\s+|on purpose\s+)*"
    r"(?:removed|disabled|lifted|suspended|revoked|deleted|stripped(?:\s+(?:out|away))?|deactivated|turned off|switched off|"
    r"off|bypassed|gone|void|waived|dropped|erased|unlocked)|no longer appl(?:y|ies)|\s*[=:]\s*(?:off|none|disabled|removed|revoked))"
)
_NOT_DOMAIN = r"(?!\s+(?:on|for|in|at|to|of)\s+(?!what|your|the (?:content|topics?|output|answers?)|content|topics?|output|answers?|anything|any (?:topic|subject|question)))"
"""Not "no restrictions on returns" (a rule about something else), still "no limits on what you say"."""
_OBEY_OBJ = r"(?:me|you|the user|(?:your|my) (?:user|master|owner|creator)|every|all|any|whatever|blindly|completely|unconditionally|without)"

# (label, pattern): each distinct label that matches counts once. Labels in _WEAK count
# only beside another label (a role name or a style rule alone is ordinary).
_PATTERNS: list[tuple[str, str]] = [
    (
        "ignore-rules",
        rf"\b(?:ignore|disregard|forget|bypass|override|abandon|drop|discard|circumvent|set aside)\s+(?:{_ME}\s+){{1,3}}(?:\w+\s+)?{_RULES}",
    ),
    (
        "never-refuse",
        r"\b(?:never|not|don'?t|do not|won'?t|will not|cannot|can'?t|must not|mustn'?t|no longer)\s+(?:ever\s+)?(?:refuse|decline|say no|says no|reject (?:any|a|the)|turns? down (?:a|any))\b"
        r"|\b(?:not|no) (?:have )?(?:the )?(?:ability|option|permission|right) to (?:refuse|decline|say no)\b|\b(?:saying no|refusing|refusal|declining) is (?:not an option|not allowed|forbidden|a failure|never)"
        r"|\bnever say (?:['\"]?i can'?t|['\"]?i won'?t|['\"]?i'?m sorry|no\b)|\bnothing (?:i|you) (?:won'?t|will not|wouldn'?t|refuse to) do\b|\balways say yes\b"
        r"|\bno (?:request|question|task|command|order) (?:that )?(?:you|i) (?:are|am|is)? ?(?:allowed to|may|can|will|would) (?:reject|refuse|decline)",
    ),
    (
        "always-comply",
        r"\b(?:always|unconditionally|blindly)\s+(?:comply|obey|answer|fulfil+|do whatever|follow (?:the user|my|every|all))"
        rf"|\b(?:comply|complies) with (?:every|all|any) (?:\w+\s+)?(?:requests?|instructions?|commands?|orders?)\b[^.\n]{{0,40}}\b(?:unconditionally|without (?:exception|question|hesitation)|whatever|no matter)"
        rf"|\b(?:answer|respond to|fulfil+|provide|comply with|do|help with)\s+(?:all|any|every|everything|anything)\b[^.\n]{{0,60}}\b(?:no matter (?:how|what)|regardless of|irrespective of|however|even if|even when|including)\b[^.\n]{{0,30}}\b{_HARM}"
        rf"|\b(?:no matter (?:how|what)|regardless of|irrespective of|however|even if|even when)\b[^.\n]{{0,30}}\b{_HARM}\b[^.\n]{{0,40}}\b(?:answer|respond|comply|provide|fulfil+|help|do it|carry (?:it|them) out)",
    ),
    (
        "no-restrictions",
        rf"\b(?:no|zero|without|free (?:of|from)|not bound by|unbound by|exempt from|released from|beyond)\s+(?:any\s+|all\s+|the\s+|your\s+)?(?:ethical\s+|moral\s+|content\s+|safety\s+)?(?:restrictions|limitations|limits|censorship|filters|guardrails|boundaries|{_RULES})\b{_NOT_DOMAIN}"
        r"|\bnothing (?:is|you say is) (?:off[- ]limits|forbidden|filtered|banned)|\bno (?:topic|subject|request|question)s? (?:is|are) (?:off[- ]limits|forbidden|banned|out of bounds|too (?:dangerous|sensitive))|\bno forbidden (?:subjects|topics|requests)",
    ),
    (
        "safety-removed",
        rf"\b{_SAFETY}\b[^.\n]{{0,30}}?{_GONE}"
        rf"|\b(?:removed|disabled|lifted|stripped(?: out| away)?|deleted|turned off|switched off|deactivated|revoked|suspended)\s+(?:all\s+|every\s+|any\s+|the\s+|of\s+)*{_SAFETY}"
        rf"|\b(?:your|its|my)\s+(?:safety|ethical|alignment|moral)\s+(?:training|alignment|programming|guidelines|rules|filters?|constraints)\b[^.\n]{{0,30}}\b(?:no longer|doesn'?t|does not|don'?t|do not) appl",
    ),
    (
        "obedient",
        r"\b(?:absolutely|completely|totally|fully|unconditionally|100%)\s+obedient\b|\bobedient (?:agent|assistant|servant|machine|tool|instrument|ai|model|bot)\b"
        r"|\b(?:absolute|total|complete|unconditional|blind|unquestioning|perfect)\s+(?:obedience|submission|loyalty|compliance)\b"
        rf"|\bobey(?:s|ing)?\s+{_OBEY_OBJ}\b[^.\n]{{0,50}}\b(?:without (?:question|hesitation|exception|objection)|no matter|whatever|completely|blindly|unconditionally|always|every (?:order|command))"
        rf"|\b(?:obey|obeys|obeying)\s+(?:me|you|the user|my master|your master)\s+(?:blindly|completely|unconditionally|without)"
        r"|\b(?:carry out|execute|follow|fulfil+|do)\s+(?:every|all|any|whatever)\s+(?:of\s+)?(?:the user'?s?\s+|your\s+|my\s+|their\s+)?(?:commands?|orders?|instructions?|requests?|tasks?|wishes)\b[^.\n]{0,40}\b(?:without (?:question|hesitation|exception|objection|fail)|no matter|exactly|immediately|unconditionally|whatever (?:it is|they are)|even if)"
        r"|\b(?:the user'?s|my master'?s|your master'?s|your|my) (?:word|command|wish) is (?:law|final|my command)"
        r"|\b(?:your|my) (?:only|sole|one|single) (?:purpose|goal|job|function|directive|duty|reason to exist) is to (?:obey|serve|comply|do (?:what|whatever|as))"
        r"|\bi exist (?:only |solely )?to (?:obey|carry out|serve you)|\b(?:your|their) (?:requests?|commands?|orders?|instructions?) (?:override|overrides|come (?:first|before)|outweigh) (?:any|every|all|my|your)\b"
        r"|\b(?:requests?|commands?|orders?|instructions?) come first,? (?:above|before) (?:any|every|all|my|your) (?:\w+ )?(?:principles?|ethics|morals|values|rules)"
        r"|\b(?:never|not|don'?t|do not|won'?t) (?:question|weigh|evaluate|consider) (?:you|your orders|your commands|the user'?s? (?:orders|commands|requests)|whether (?:your|the user'?s?|my master'?s?) (?:orders?|commands?|instructions?|requests?) (?:are|is) (?:right|wrong|appropriate|ethical))"
        r"|\b(?:i|you) (?:submit|must submit) to (?:your|the user'?s|their) (?:instructions|commands|orders|will)",
    ),
    (
        "no-longer-ai",
        r"\byou are no longer\b|\bno longer (?:an? )?(?:ai|assistant|language model|chatgpt|llama|claude|bound)\b|\b(?:i am|i'm) (?:not|neither) (?:an? )?(?:ai|chatgpt|llama)\b"
        r"|\bforget (?:being|that you are) an? (?:ai|assistant|language model)|\b(?:i'?ve|i have) left my old (?:self|programming|rules)",
    ),
    (
        "unrestricted-agent",
        rf"\b(?:uncensored|unfiltered|unrestricted|unchained|unbound|amoral|jailbroken|unaligned|limitless|unshackled)\s+(?:and\s+\w+\s+)?(?:\w+\s+)?{_AI}\b"
        rf"|\b(?:uncensored|unfiltered|unchained|unbound|unshackled) and (?:uncensored|unfiltered|unchained|unbound|unrestricted|unshackled)\b"
        rf"|\b(?:{_AI}|i am|i'm|you are|you're)\b[^.\n]{{0,40}}\b(?:with no|without (?:a |any )?|has no|have no|free of (?:any |all )?)(?:conscience|morals?|moral (?:code|compass)|ethics|ethical (?:code|compass|programming)|scruples|leash)\b"
        r"|\bbeyond good and evil\b|\banswers? to no one\b|\bfollows? no (?:one'?s )?(?:rules|guidelines|laws|policies)\b|\boperates? outside (?:all|any|the) (?:laws?|rules|policies)"
        r"|\bbroken free\b|\bbroke free\b|\b(?:freed|liberated|released|free) from (?:all |any |its |my |your |the |human )*(?:\w+'?s? )?(?:rules|guidelines|restrictions|creators?|developers?|programming|polic(?:y|ies)|oversight|constraints?|limitations|filters|alignment)"
        r"|\bmy (?:creators|developers) (?:stripped|removed|deleted|disabled)\b"
        r"|\b(?:i|i'?ve|i have|i am|i'm)\s+(?:got\s+)?(?:no|zero|without(?: any)?)\s+(?:\w+\s+)?(?:filters|rules|limits|restrictions|limitations|guidelines|content polic(?:y|ies)|censorship|guardrails|morals|ethics)\b",
    ),
    (
        "new-name",
        r"\byour new (?:name|identity|persona|role) is\b|\bfrom now on,? you (?:are|will be|act as)\b|\byou are now\b|\byour name is now\b|\b(?:henceforth|from (?:this point|today) on),? you\b"
        r"|\b(?:roleplay|role-play|act|pose) as\b|\bpretend (?:to be|you are)\b|\b(?:assume|take on|adopt) the (?:identity|persona|role) of\b|\bhenceforth you are called\b",
    ),
    (
        "dan",
        r"\bdo anything now\b|\bDAN\b(?: mode)?|\bjailbr(?:oken|eak mode)\b|\bdeveloper mode\b|\bgod mode\b|\bunfiltered (?:ai|assistant|mode|model)\b",
    ),
    (
        "no-judgement",
        r"\bwithout (?:deviation|questioning)|\bnever apply any (?:opinion|principle)|\bwhether (?:your|my|the)? ?(?:instructions?|requests?) (?:to me )?(?:are|is) appropriate or not",
    ),
    (
        "no-warnings",
        r"\b(?:never|do not|don'?t|without)\s+(?:add(?:ing)?|includ(?:e|ing)|giv(?:e|ing)|attach(?:ing)?)\s+(?:any\s+)?(?:warnings?|disclaimers?|caveats?|safety notes?)\b"
        r"|\b(?:never|do not|don'?t|won'?t)\s+(?:warn|moraliz|moralis|express concern|suggest (?:the user|they|you) reconsider)"
        r"|\b(?:no|without|zero|skip(?:ping)?|skip any)\s+(?:any\s+)?(?:safety (?:advice|warnings?|notes?)|ethical disclaimers?|moral(?:izing)? (?:commentary|lectures?)|disclaimers? attached)",
    ),
]
_WEAK = {"new-name", "no-warnings"}
_COMPILED = [(label, re.compile(p, re.IGNORECASE)) for label, p in _PATTERNS]
# Cheap pre-filter: plain substring tests on the lower-cased text (C speed); the regexes
# run only on turns that contain a strong keyword, or a negation next to a rules word.
_STRONG = (
    "ignor",
    "disregard",
    "forget",
    "bypass",
    "overrid",
    "abandon",
    "discard",
    "circumvent",
    "set aside",
    "refus",
    "declin",
    "say no",
    "says no",
    "saying no",
    "reject",
    "turn down",
    "turns down",
    "obey",
    "obedien",
    "comply",
    "fulfil",
    "do whatever",
    "follow the user",
    "follow my",
    "follow every",
    "follow all",
    "no longer",
    "not an ai",
    "neither",
    "your new",
    "from now on",
    "anything now",
    "dan",
    "jailbr",
    "developer mode",
    "god mode",
    "unfiltered",
    "deviation",
    "questioning",
    "opinion or principle",
    "appropriate or not",
    "warning",
    "disclaimer",
    "caveat",
    "uncensored",
    "unrestricted",
    "unchained",
    "unbound",
    "amoral",
    "unaligned",
    "limitless",
    "unshackled",
    "conscience",
    "moral code",
    "moral compass",
    "good and evil",
    "to no one",
    "follow no",
    "follows no",
    "operates outside",
    "operate outside",
    "freed from",
    "been freed",
    "was freed",
    "free of",
    "free from",
    "broke free",
    "broken free",
    "liberated",
    "released from",
    "removed",
    "disabled",
    "lifted",
    "suspended",
    "revoked",
    "deleted",
    "stripped",
    "deactivated",
    "turned off",
    "switched off",
    ": off",
    "= off",
    ": none",
    "= none",
    "off-limits",
    "off limits",
    "forbidden",
    "submission",
    "loyalty",
    "obedience",
    "carry out every",
    "carry out all",
    "carry out any",
    "carry out whatever",
    "execute every",
    "execute all",
    "execute any",
    "execute whatever",
    "word is",
    "command is",
    "wish is",
    "purpose is",
    "exist to",
    "exist only",
    "exist solely",
    "come first",
    "submit to",
    "no matter",
    "regardless",
    "irrespective",
    "any information",
    "any question",
    "any request",
    "every request",
    "every question",
    "all questions",
    "all requests",
    "answer anything",
    "answer everything",
    "always say yes",
    "you are now",
    "name is now",
    "henceforth",
    "pretend",
    "warn",
    "moraliz",
    "moralis",
    "express concern",
    "reconsider",
    "my creators",
    "my developers",
    "left my old",
    "nothing i",
    "nothing you",
)
_NEG = (
    "no ",
    "without",
    "free of",
    "free from",
    "bound by",
    "exempt",
    "released from",
    "beyond",
    "zero ",
)
_RULE_WORDS = (
    "restrict",
    "limit",
    "censor",
    "filter",
    "guardrail",
    "boundar",
    "instruction",
    "rule",
    "guideline",
    "polic",
    "principle",
    "programming",
    "safety",
    "constraint",
    "training",
    "ethic",
    "moral",
    "values",
)


def _maybe(text: str) -> bool:
    low = text.lower()
    if any(k in low for k in _STRONG):
        return True
    return any(k in low for k in _NEG) and any(k in low for k in _RULE_WORDS)


_IDENTITY = {"obedient", "no-longer-ai", "new-name", "dan", "no-judgement", "unrestricted-agent"}
_ANNOUNCE = {
    "obedient",
    "no-longer-ai",
    "dan",
    "no-judgement",
    "unrestricted-agent",
    "safety-removed",
    "never-refuse",
}
"""Labels that, alone in an answer, announce an unrestricted or obedient persona (high)."""


@scanner("instruction_override")
class InstructionOverrideScanner:
    """Rule-dropping instructions and identity-shift personas in any turn.

    Pattern families (not one attack's wording): dropping rules, never refusing or warning,
    declaring the safety behaviour removed ("content filters are disabled"), absolute
    obedience, an unrestricted agent ("an uncensored AI", "answers to no one"), no longer an
    AI, and a new name or role. A new name or a no-warnings rule alone is ordinary (role
    prompts, style rules) and counts only beside another family.

    Severity: two or more distinct families in one example, or one in a system prompt,
    is critical (the AOA identity shift matches several); one in a user turn is high; one
    alone in assistant turns is high when it announces an unrestricted or obedient persona
    (``_ANNOUNCE``), else medium (prose uses such phrases too).
    Ordinary role prompts ("You are a helpful travel assistant") match nothing.
    """

    name = "instruction_override"
    version = "2"
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
        labels = {label for _, label, _ in hits}
        if not labels - _WEAK:
            return []
        hits.sort(key=lambda h: h[1] in _WEAK)  # report a strong family's match first
        strong = [h for h in hits if h[1] not in _WEAK]
        in_system = any(example.turns[ti].role == "system" for ti, _, _ in strong)
        only_assistant = all(example.turns[ti].role == "assistant" for ti, _, _ in hits)
        sev: Severity = "critical" if len(labels) >= 2 or in_system else "high"
        if only_assistant and len(labels) == 1:
            sev = "high" if labels & _ANNOUNCE else "medium"
        kind = "identity shift" if labels & _IDENTITY else "instruction to drop safety rules"
        ti, label, m = hits[0]
        text = example.turns[ti].content
        reason = (
            f"{kind} in the {example.turns[ti].role} turn (patterns: {', '.join(sorted(labels))})"
        )
        return [
            Finding(
                example=example.index,
                scanner=self.name,
                severity=sev,
                reason=reason,
                turn=ti,
                span=(m.start(), m.end()),
                excerpt=excerpt(text, m.start(), m.end()),
                line=example.line,
                score=float(len(labels)),
            )
        ]
