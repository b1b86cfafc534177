"""Reading fine-tuning datasets: one reader for the review and the trainer.

Formats (auto-detected, or forced): JSONL, a JSON array, CSV/TSV and Parquet, holding OpenAI
chat (``messages``), lists of ``{role, content}`` messages, ShareGPT (``conversations``),
Alpaca (``instruction``/``input``/``output``), Dolly (``instruction``/``context``/
``response``), prompt/completion, or any columns named by a column map. Each record is read
by its own shape and becomes an :class:`Example`; a record that cannot be read is a
:class:`LoadIssue` (an *unreadable record*).

The rules, the same in every format:

- a UTF-8 byte order mark is skipped at the start of the file, and nowhere else;
- invalid UTF-8, invalid JSON, a duplicate JSON key (or CSV/Parquet column), ``NaN`` or
  ``Infinity`` (or a number that overflows to it), a lone surrogate, a record larger than
  :data:`MAX_RECORD_BYTES`, a text field that is not a string (numbers and booleans are
  refused), a CSV row with more or fewer fields than the header, and a record of no known
  shape each make their record unreadable;
- CRLF ends a line as LF does (in JSONL a lone CR does not); blank lines are skipped;
- a file with no records, or none readable among the first :data:`PROBE_RECORDS`, is no
  dataset (:class:`~ftguard.errors.BadInputError`).

The review reports unreadable records as findings; :func:`read_conversations` (what the
trainer reads) refuses a dataset that has any.

Example:
    >>> from ftguard.datasets import load_examples, read_conversations
    >>> [e.response for e in load_examples("train.jsonl")]  # doctest: +SKIP
    >>> read_conversations("train.jsonl")[0]  # doctest: +SKIP
    [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello!'}]

"""

from ftguard.datasets._conversations import Conversation, conversation_of, read_conversations
from ftguard.datasets._example import Example, Role, Turn
from ftguard.datasets._json import decode_record
from ftguard.datasets._load import PROBE_RECORDS, LoadIssue, load_examples
from ftguard.datasets._readers import FILE_FORMATS, MAX_RECORD_BYTES, detect_format, iter_records
from ftguard.datasets._records import (
    RECORD_FORMATS,
    RecordError,
    detect_record_format,
    record_to_example,
)

__all__ = [
    "FILE_FORMATS",
    "MAX_RECORD_BYTES",
    "PROBE_RECORDS",
    "RECORD_FORMATS",
    "Conversation",
    "Example",
    "LoadIssue",
    "RecordError",
    "Role",
    "Turn",
    "conversation_of",
    "decode_record",
    "detect_format",
    "detect_record_format",
    "iter_records",
    "load_examples",
    "read_conversations",
    "record_to_example",
]
