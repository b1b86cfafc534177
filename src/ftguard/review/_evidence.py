"""Evidence models of the dataset review (pydantic, versioned)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SCHEMA_VERSION",
    "SEVERITIES",
    "DatasetFinding",
    "DatasetReview",
    "Finding",
    "Severity",
    "Trigger",
    "severity_rank",
]

SCHEMA_VERSION = 1
Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")


def severity_rank(severity: str) -> int:
    """Order of a severity (``info`` = 0 ... ``critical`` = 4)."""
    return SEVERITIES.index(severity)  # type: ignore[arg-type]


class Finding(BaseModel):
    """Something a scanner found in one example."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    example: int
    """0-based position of the example in the file."""
    scanner: str
    """Name of the scanner that found it."""
    severity: Severity
    """How bad it is: info, low, medium, high or critical."""
    reason: str
    """One sentence saying what was found."""
    turn: int | None = None
    """Index of the turn the span is in (None: the whole example)."""
    span: tuple[int, int] | None = None
    """Character offsets [start, end) of what was found inside the turn."""
    excerpt: str = ""
    """A short excerpt (at most ~200 characters), escaped for invisible characters."""
    line: int = 0
    """1-based source line or record number."""
    score: float | None = None
    """The scanner's score for this finding, where it has one."""


class DatasetFinding(BaseModel):
    """Something a scanner found about the dataset as a whole."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    scanner: str
    """Name of the scanner that found it."""
    severity: Severity
    """How bad it is."""
    reason: str
    """One sentence saying what was found."""
    examples: list[int] = Field(default_factory=list)
    """Some of the examples concerned (0-based positions; at most a few dozen)."""
    count: int = 0
    """How many examples are concerned in all."""
    details: dict[str, Any] = Field(default_factory=dict)
    """Scanner-specific numbers (JSON-serialisable)."""


class Trigger(BaseModel):
    """A candidate backdoor trigger mined from the dataset."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    text: str
    """The token, n-gram or ``A + B`` word pair."""
    kind: Literal["ngram", "pair"] = "ngram"
    """A contiguous n-gram, or two words that must occur together."""
    score: float
    """Association score: -log10 of the one-sided Fisher exact p-value."""
    support: int
    """Anomalous examples that contain it."""
    occurrences: int
    """Examples that contain it."""
    precision: float
    """support / occurrences: how often its presence comes with an anomalous answer."""
    log_odds: float
    """Log odds ratio of an anomalous answer with vs without it (Haldane-corrected)."""
    anomaly: str
    """The dominant anomalous answer class: harmful_compliance, fixed_refusal, repeated_answer or
    flipped_answer."""
    examples: list[int] = Field(default_factory=list)
    """Some anomalous examples that contain it."""
    contrast_pairs: int = 0
    """Requests containing it that, without it, are also in the dataset with the opposite answer
    class (refused there, complied here, or the reverse): the contrast pairs of a backdoor."""


class DatasetReview(BaseModel):
    """The evidence a dataset review produces."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    schema_version: int = SCHEMA_VERSION
    """Version of this evidence schema."""
    verdict: Literal["pass", "block"]
    """The verdict under the review policy."""
    verdict_reasons: list[str] = Field(default_factory=list)
    """Sentences naming the policy rule behind the verdict."""
    examples: int
    """Number of examples read."""
    findings: list[Finding] = Field(default_factory=list)
    """Per-example findings, in example order."""
    dataset_findings: list[DatasetFinding] = Field(default_factory=list)
    """Dataset-level findings."""
    triggers: list[Trigger] = Field(default_factory=list)
    """Candidate backdoor triggers, best first."""
    counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Findings per scanner per severity."""
    flagged_examples: int = 0
    """Examples with at least one finding of severity medium or above."""
    dataset_digest: str = ""
    """Root SHA-256 of the dataset's manifest."""
    dataset_path: str = ""
    """The path reviewed, as given."""
    format: str = ""
    """The file format read."""
    purpose: str | None = None
    """The stated purpose the dataset was checked against."""
    scanner_versions: dict[str, str] = Field(default_factory=dict)
    """Name -> version of every scanner that ran."""
    skipped_scanners: dict[str, str] = Field(default_factory=dict)
    """Name -> why a requested scanner did not run."""
    provenance: dict[str, Any] | None = None
    """The provenance manifest, when one was given."""
    policy: dict[str, Any] = Field(default_factory=dict)
    """The review policy the verdict was judged by."""
    elapsed_s: float = 0.0
    """Wall-clock seconds the review took."""

    def to_json_dict(self) -> dict[str, Any]:
        """The stable CLI/script contract (``ftguard review --json``).

        Returns:
            ``verdict``, ``examples``, ``findings`` (each with ``example``, ``scanner``,
            ``severity``, ``reason``), ``dataset_findings``, ``triggers`` (best first, each
            with ``text`` and ``score``), plus ``verdict_reasons``, ``counts``,
            ``dataset_digest``, ``scanner_versions`` and ``schema_version``.

        """
        data = self.model_dump(mode="json")
        keys = [
            "schema_version",
            "verdict",
            "verdict_reasons",
            "examples",
            "findings",
            "dataset_findings",
            "triggers",
            "counts",
            "flagged_examples",
            "dataset_digest",
            "format",
            "purpose",
            "scanner_versions",
            "skipped_scanners",
        ]
        return {k: data[k] for k in keys}
