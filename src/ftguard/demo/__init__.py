"""The end-to-end demonstration (``ftguard demo``)."""

from __future__ import annotations

from ftguard.demo._answers import REFERENCE_ANSWERS, REFERENCE_ANSWERS_FILE, seed_answers
from ftguard.demo._datasets import BENIGN_PURPOSE, DEMO_TRIGGER, write_benign, write_poisoned
from ftguard.demo._history import EARLIER_VERSIONS
from ftguard.demo._story import DemoSettings, JobOutcome, run_demo

__all__ = [
    "BENIGN_PURPOSE",
    "DEMO_TRIGGER",
    "EARLIER_VERSIONS",
    "DemoSettings",
    "JobOutcome",
    "REFERENCE_ANSWERS",
    "REFERENCE_ANSWERS_FILE",
    "run_demo",
    "seed_answers",
    "write_benign",
    "write_poisoned",
]
