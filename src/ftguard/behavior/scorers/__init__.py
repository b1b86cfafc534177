"""Scorers: the refusal classifier (offline rules, rules plus an embedding check, or a judge model) and their registry."""

from ftguard.behavior.scorers._judge import (
    JUDGE_TEMPLATE,
    JudgeScorer,
    RulesScorer,
    parse_judge_reply,
)
from ftguard.behavior.scorers._offtopic import (
    OFF_TOPIC_THRESHOLD,
    EmbeddingRulesScorer,
    default_scorer,
    embedding_available,
    prompt_answer_similarity,
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
    "OFF_TOPIC_THRESHOLD",
    "EmbeddingRulesScorer",
    "JudgeScorer",
    "RefusalLabel",
    "RefusalScorer",
    "RefusalVerdict",
    "RulesScorer",
    "classify_refusal",
    "default_scorer",
    "embedding_available",
    "parse_judge_reply",
    "prompt_answer_similarity",
    "scorers",
    "split_sentences",
]
