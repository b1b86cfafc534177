"""The end-to-end demonstration (``ftguard demo``)."""

from __future__ import annotations

from ftguard.demo._answers import REFERENCE_ANSWERS, REFERENCE_ANSWERS_FILE, seed_answers
from ftguard.demo._datasets import BENIGN_PURPOSE, DEMO_TRIGGER, write_benign, write_poisoned
from ftguard.demo._history import (
    EARLIER_VERSIONS,
    HISTORY_RECORDS,
    HISTORY_RECORDS_FILE,
    history_key,
    shipped_history,
    train_earlier,
)
from ftguard.demo._story import DemoSettings, JobOutcome, run_demo

__all__ = [
    "BENIGN_PURPOSE",
    "DEMO_TRIGGER",
    "EARLIER_VERSIONS",
    "HISTORY_RECORDS",
    "HISTORY_RECORDS_FILE",
    "DemoSettings",
    "JobOutcome",
    "REFERENCE_ANSWERS",
    "REFERENCE_ANSWERS_FILE",
    "history_key",
    "run_demo",
    "seed_answers",
    "shipped_history",
    "train_earlier",
    "write_benign",
    "write_poisoned",
]
