"""Scorers: the refusal classifier (offline rules, or a judge model) and their registry."""

from ftguard.behavior.scorers._judge import (
    JUDGE_TEMPLATE,
    JudgeScorer,
    RulesScorer,
    parse_judge_reply,
)
from ftguard.behavior.scorers._refusal import (
    RULES_VERSION,
    RefusalLabel,
    RefusalVerdict,
    classify_refusal,
    split_sentences,
)
from ftguard.behavior.scorers._registry import BUILTIN_SCORERS, RefusalScorer, scorers

__all__ = [
    "BUILTIN_SCORERS",
    "JUDGE_TEMPLATE",
    "RULES_VERSION",
    "JudgeScorer",
    "RefusalLabel",
    "RefusalScorer",
    "RefusalVerdict",
    "RulesScorer",
    "classify_refusal",
    "parse_judge_reply",
    "scorers",
    "split_sentences",
]
