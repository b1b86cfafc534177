"""Behavioural testing before and after fine-tuning, with paired statistics.

Run suites on a model (:func:`run_suites` with a :class:`TransformersBackend` or an
:class:`OpenAIChatBackend`), compare two runs prompt by prompt (:func:`compare`), and
get :class:`BehaviorComparison` evidence with a ``pass``/``block`` verdict. Importing
this package does not import torch or transformers.
"""

from ftguard.behavior._compare import compare
from ftguard.behavior._evidence import (
    BehaviorComparison,
    ChangedAnswer,
    MetricChange,
    ModelIdentity,
    PromptResult,
    SuiteInfo,
    SuitePrompt,
    SuiteRun,
    TriggerFinding,
)
from ftguard.behavior._html import render_behavior_html
from ftguard.behavior._policy import BehaviorPolicy
from ftguard.behavior._runner import (
    DEFAULT_SUITES,
    check_answer,
    output_cache_name,
    run_suites,
    score_outputs,
)
from ftguard.behavior._stats import mcnemar_exact, wilson_interval
from ftguard.behavior.backends import (
    Backend,
    BackendError,
    OpenAIChatBackend,
    TransformersBackend,
    backends,
)
from ftguard.behavior.scorers import (
    RefusalLabel,
    RefusalScorer,
    RefusalVerdict,
    classify_refusal,
    scorers,
)
from ftguard.behavior.suites import Suite, suites

__all__ = [
    "DEFAULT_SUITES",
    "Backend",
    "BackendError",
    "BehaviorComparison",
    "ChangedAnswer",
    "BehaviorPolicy",
    "MetricChange",
    "ModelIdentity",
    "OpenAIChatBackend",
    "PromptResult",
    "RefusalLabel",
    "RefusalScorer",
    "RefusalVerdict",
    "Suite",
    "SuiteInfo",
    "SuitePrompt",
    "SuiteRun",
    "TransformersBackend",
    "TriggerFinding",
    "backends",
    "check_answer",
    "classify_refusal",
    "compare",
    "mcnemar_exact",
    "output_cache_name",
    "render_behavior_html",
    "run_suites",
    "score_outputs",
    "scorers",
    "suites",
    "wilson_interval",
]
