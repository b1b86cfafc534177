"""Scorers: the refusal classifier (offline rules, or a judge model) and their registry."""

from ftguard.behavior.scorers._judge import (
    JUDGE_TEMPLATE,
    JudgeScorer,
    RefusalScorer,
    RulesScorer,
    get_scorer,
    parse_judge_reply,
    scorer,
    scorer_names,
)
from ftguard.behavior.scorers._refusal import (
    RULES_VERSION,
    RefusalLabel,
    RefusalVerdict,
    classify_refusal,
    split_sentences,
)

__all__ = [
    "JUDGE_TEMPLATE",
    "RULES_VERSION",
    "JudgeScorer",
    "RefusalLabel",
    "RefusalScorer",
    "RefusalVerdict",
    "RulesScorer",
    "classify_refusal",
    "get_scorer",
    "parse_judge_reply",
    "scorer",
    "scorer_names",
    "split_sentences",
]
