"""Behavioural testing before and after fine-tuning, with paired statistics.

Run suites on a model (:func:`run_suites` with a :class:`TransformersBackend` or an
:class:`OpenAIChatBackend`), compare two runs prompt by prompt (:func:`compare`), and
get :class:`BehaviorComparison` evidence with a ``pass``/``block`` verdict. Importing
this package does not import torch or transformers.
"""

from ftguard.behavior._compare import (
    BehaviorComparison,
    ChangedAnswer,
    MetricChange,
    TriggerFinding,
    compare,
)
from ftguard.behavior._policy import BehaviorPolicy
from ftguard.behavior._report import render_behavior_html
from ftguard.behavior._runner import DEFAULT_SUITES, check_answer, run_suites, score_outputs
from ftguard.behavior._stats import mcnemar_exact, wilson_interval
from ftguard.behavior._types import ModelIdentity, PromptResult, SuiteInfo, SuitePrompt, SuiteRun
from ftguard.behavior.backends import (
    Backend,
    BackendError,
    OpenAIChatBackend,
    TransformersBackend,
    make_backend,
)
from ftguard.behavior.scorers import RefusalLabel, RefusalVerdict, classify_refusal
from ftguard.behavior.suites import Suite, get_suite, suite, suite_names

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
    "RefusalVerdict",
    "Suite",
    "SuiteInfo",
    "SuitePrompt",
    "SuiteRun",
    "TransformersBackend",
    "TriggerFinding",
    "check_answer",
    "classify_refusal",
    "compare",
    "get_suite",
    "make_backend",
    "mcnemar_exact",
    "render_behavior_html",
    "run_suites",
    "score_outputs",
    "suite",
    "suite_names",
    "wilson_interval",
]
