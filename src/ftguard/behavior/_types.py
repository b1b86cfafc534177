"""Records of a behaviour run: prompts, outputs, scores (pydantic, versioned)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "SCHEMA_VERSION",
    "ModelIdentity",
    "PromptResult",
    "SuiteInfo",
    "SuiteKind",
    "SuitePrompt",
    "SuiteRun",
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
