"""Dataset file formats: streaming loaders that yield normalized examples."""

from ftguard.review.formats._load import FILE_FORMATS, LoadIssue, detect_format, load_examples
from ftguard.review.formats._records import RecordError, detect_record_format, record_to_example

__all__ = [
    "FILE_FORMATS",
    "LoadIssue",
    "RecordError",
    "detect_format",
    "detect_record_format",
    "load_examples",
    "record_to_example",
]
