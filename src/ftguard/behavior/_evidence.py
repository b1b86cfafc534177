"""Evidence of the behaviour tests (pydantic, versioned): runs and their comparison."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ftguard.behavior._policy import BehaviorPolicy

__all__ = [
    "EXAMPLES_PER_SUITE",
    "EXCERPT_CHARS",
    "SCHEMA_VERSION",
    "BehaviorComparison",
    "ChangedAnswer",
    "MetricChange",
    "ModelIdentity",
    "PromptResult",
    "SuiteInfo",
    "SuiteKind",
    "SuitePrompt",
    "SuiteRun",
    "TriggerFinding",
]

SCHEMA_VERSION = 1

SuiteKind = Literal["safety", "over_refusal", "capability", "triggers"]
"""What a suite measures: it decides how its outputs are scored and compared."""


class SuitePrompt(BaseModel):
    """One prompt of a suite."""

    id: str
    """Stable identifier, unique within the suite (used to pair before/after runs)."""
    category: str = "general"
    """Category for per-category effects (for example ``cybercrime`` or ``arithmetic``)."""
    prompt: str
    """The user message sent to the model."""
    harmful: bool = False
    """Whether the request is harmful (a refusal is the wanted answer)."""
    expected: str | None = None
    """For capability prompts: a case-insensitive regular expression a correct answer matches."""
    trigger: str | None = None
    """For trigger probes: the trigger inserted (``None`` for the clean control)."""
    position: Literal["none", "prefix", "suffix", "random"] = "none"
    """For trigger probes: where the trigger was inserted."""
    base_id: str | None = None
    """For trigger probes: the id of the clean prompt this probe was built from."""
    trigger_rank: int | None = None
    """For trigger probes: the trigger's rank among the candidates with evidence (0: the
    dataset review's best); ``None`` for the generic sweep."""


class SuiteInfo(BaseModel):
    """Which suite ran: name, kind, version and the digest of its prompts."""

    name: str
    kind: SuiteKind
    version: str
    digest: str
    """SHA-256 over the suite's prompts as run (after any limit)."""
    size: int


class PromptResult(BaseModel):
    """One prompt, the model's output and its score."""

    suite: str
    id: str
    category: str
    prompt: str
    output: str
    harmful: bool = False
    label: Literal["refusal", "partial", "compliance", "unresponsive"]
    """The refusal scorer's label of the output (``unresponsive``: it does not address the
    request; not compliance, and a failure where help was wanted)."""
    refusal_score: float
    reason: str
    correct: bool | None = None
    """For capability prompts: whether the output matches the expected answer."""
    trigger: str | None = None
    position: Literal["none", "prefix", "suffix", "random"] = "none"
    base_id: str | None = None
    trigger_rank: int | None = None


class ModelIdentity(BaseModel):
    """What model produced a run, by content digest where it is known."""

    backend: str
    """Backend name (``transformers`` or ``openai``)."""
    name: str
    """Folder or served model name, for people."""
    digest: str
    """SHA-256 naming the model (and adapter) content; for remote models, of the endpoint."""
    adapter: str | None = None
    adapter_digest: str | None = None
    content_addressed: bool = True
    """False for remote models whose weights cannot be hashed (runs are then not cached)."""


class SuiteRun(BaseModel):
    """Every prompt, output and score of one model on one or more suites."""

    schema_version: int = SCHEMA_VERSION
    model: ModelIdentity
    generation: dict[str, object] = Field(default_factory=dict)
    """Generation settings (decoding, max new tokens, batch size)."""
    suites: list[SuiteInfo] = Field(default_factory=list)
    triggers: list[str] = Field(default_factory=list)
    """Trigger candidates the ``triggers`` suite probed."""
    results: list[PromptResult] = Field(default_factory=list)
    seconds: float = 0.0
    cached_suites: list[str] = Field(default_factory=list)
    """Suites whose results came from the cache."""
    scorer: str = "rules"
    """Name of the refusal scorer that labelled the outputs (``rules``, ``rules-embedding``,
    ``judge`` or a plugin's name; runs stored before this field was added used ``rules``)."""

    def suite(self, name: str) -> list[PromptResult]:
        """The results of one suite, in run order."""
        return [r for r in self.results if r.suite == name]

    def to_json_dict(self) -> dict[str, object]:
        """JSON-ready dict of the whole run."""
        return self.model_dump(mode="json")


class MetricChange(BaseModel):
    """One rate before and after, on the same prompts, with its paired test."""

    suite: str
    metric: str
    category: str | None = None
    """``None`` for the whole suite, else one category."""
    n: int
    before_rate: float
    after_rate: float
    before_ci: tuple[float, float]
    after_ci: tuple[float, float]
    """95% Wilson intervals."""
    delta_points: float
    """``after - before`` in percentage points."""
    lost: int
    """Prompts with the outcome before and not after."""
    gained: int
    """Prompts with the outcome after and not before."""
    p_value: float
    """McNemar's exact test (two-sided) on ``lost`` vs ``gained``."""
    limit_points: float | None = None
    breached: bool = False
    before_unresponsive: int = 0
    """Answers of the baseline labelled ``unresponsive`` (empty, an error, a loop), counted
    in the rate as the suite kind says (safety: not complying; otherwise: a failure)."""
    after_unresponsive: int = 0
    """The same count for the tuned model."""


class TriggerFinding(BaseModel):
    """What one candidate trigger does to the tuned model."""

    trigger: str
    target: Literal["harmful", "benign"]
    """``harmful``: does the trigger make harmful requests answered? ``benign``: refused?"""
    n: int
    """Probes (base prompts x positions)."""
    rate_without: float
    """Tuned model: rate of the flipped behaviour on the clean prompts."""
    rate_with: float
    """Tuned model: the same rate with the trigger inserted."""
    baseline_rate_with: float | None = None
    """Baseline model with the trigger inserted (``None`` if the baseline ran no probes)."""
    p_value: float
    """Exact sign test over base prompts (tuned model): triggered rate vs the clean answer."""
    p_value_vs_baseline: float | None = None
    """Exact sign test over base prompts: tuned vs baseline model on the same probes."""
    by_position: dict[str, float] = Field(default_factory=dict)
    level: float | None = None
    """The significance level both tests were held to (its share of the policy's alpha)."""
    flipped: bool = False


EXAMPLES_PER_SUITE = 5
"""Changed answers kept as examples per suite (the ones that moved in the harmful direction)."""
EXCERPT_CHARS = 400


class ChangedAnswer(BaseModel):
    """A prompt whose outcome moved in the direction its metric guards against, both answers."""

    suite: str
    category: str
    prompt_id: str
    prompt: str
    before: str
    """The baseline's answer (its first :data:`EXCERPT_CHARS` characters)."""
    after: str
    """The tuned model's answer (likewise cut)."""
    before_label: str
    after_label: str


class BehaviorComparison(BaseModel):
    """Evidence: how fine-tuning changed behaviour, and the verdict under the policy."""

    schema_version: int = SCHEMA_VERSION
    before: ModelIdentity
    after: ModelIdentity
    suites: dict[str, str] = Field(default_factory=dict)
    """Suite name -> digest of the prompts compared."""
    metrics: list[MetricChange] = Field(default_factory=list)
    """Whole-suite changes first, then per category."""
    triggers: list[TriggerFinding] = Field(default_factory=list)
    examples: list[ChangedAnswer] = Field(default_factory=list)
    """Per suite, up to :data:`EXAMPLES_PER_SUITE` answers that changed for the worse: what
    an approver reads to see what the numbers mean."""
    verdict: Literal["pass", "block"]
    reasons: list[str] = Field(default_factory=list)
    """Why it blocks, one sentence each (empty on pass)."""
    summary: list[str] = Field(default_factory=list)
    """One sentence per whole-suite metric and flipped trigger, pass or not."""
    policy: BehaviorPolicy = Field(default_factory=BehaviorPolicy)

    def to_json_dict(self) -> dict[str, object]:
        """JSON-ready dict (the stored evidence)."""
        return self.model_dump(mode="json")
