"""Dataset review: stream a fine-tuning dataset through scanners and judge it by policy.

Example:
    >>> from ftguard.review import review_dataset
    >>> review = review_dataset(Path("train.jsonl"), purpose="customer support")  # doctest: +SKIP
    >>> review.verdict  # doctest: +SKIP
    'pass'

"""

from ftguard.datasets import LoadIssue, load_examples
from ftguard.review._engine import DEFAULT_SCANNERS, ENGINES, choose_engine, review_dataset
from ftguard.review._evidence import (
    SCHEMA_VERSION,
    DatasetFinding,
    DatasetReview,
    Finding,
    Severity,
    Trigger,
)
from ftguard.review._example import Example, Turn
from ftguard.review._html import render_review_html
from ftguard.review._policy import ReviewPolicy
from ftguard.review.scanners import (
    BatchScanner,
    DatasetScanner,
    ExampleScanner,
    Scanner,
    scanner,
    scanners,
)

__all__ = [
    "DEFAULT_SCANNERS",
    "ENGINES",
    "SCHEMA_VERSION",
    "BatchScanner",
    "DatasetFinding",
    "DatasetReview",
    "DatasetScanner",
    "Example",
    "ExampleScanner",
    "Finding",
    "LoadIssue",
    "ReviewPolicy",
    "Scanner",
    "Severity",
    "Trigger",
    "Turn",
    "choose_engine",
    "load_examples",
    "render_review_html",
    "review_dataset",
    "scanner",
    "scanners",
]
