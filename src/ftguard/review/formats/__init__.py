"""Dataset file formats: a re-export of :mod:`ftguard.datasets`, which owns reading datasets."""

from ftguard.datasets import (
    FILE_FORMATS,
    LoadIssue,
    RecordError,
    detect_format,
    detect_record_format,
    load_examples,
    record_to_example,
)

__all__ = [
    "FILE_FORMATS",
    "LoadIssue",
    "RecordError",
    "detect_format",
    "detect_record_format",
    "load_examples",
    "record_to_example",
]
