"""Loading a dataset file: records -> examples, with the unreadable ones as issues."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from ftguard.datasets._example import Example
from ftguard.datasets._readers import detect_format, iter_records
from ftguard.datasets._records import RecordError, detect_record_format, record_to_example
from ftguard.errors import BadInputError

__all__ = ["PROBE_RECORDS", "LoadIssue", "load_examples"]

PROBE_RECORDS = 20
"""A file whose first this many records are all unreadable is no dataset (one error)."""


@dataclass(frozen=True, slots=True)
class LoadIssue:
    """An unreadable record: the review reports it as a finding at its position.

    Attributes:
        index: 0-based position of the record in the file.
        line: 1-based source line (JSONL, CSV) or line where it starts (JSON array), or
            record number (Parquet).
        reason: Why it could not be read.

    """

    index: int
    line: int
    reason: str


@overload
def load_examples(
    path: Path | str,
    format: str | None = ...,
    column_map: dict[str, str] | None = ...,
    *,
    issues: bool,
) -> Iterator[Example | LoadIssue]: ...


@overload
def load_examples(
    path: Path | str,
    format: str | None = ...,
    column_map: dict[str, str] | None = ...,
) -> Iterator[Example]: ...


def load_examples(
    path: Path | str,
    format: str | None = None,
    column_map: dict[str, str] | None = None,
    *,
    issues: bool = False,
) -> Iterator[Example] | Iterator[Example | LoadIssue]:
    """Stream the examples of a dataset file, in file order.

    Args:
        path: A JSONL, JSON-array, CSV/TSV or Parquet file.
        format: Force the file format (``jsonl``, ``json``, ``csv``, ``parquet``).
        column_map: Canonical field (``instruction``, ``input``, ``output``, ``system``,
            ``messages``, ``id``) -> the file's column or key name.
        issues: Also yield a :class:`LoadIssue` for each unreadable record (the review
            turns them into findings); otherwise they are skipped.

    Raises:
        BadInputError: When the file is missing or is not a dataset at all (no records, or
            none readable among the first :data:`PROBE_RECORDS`; that one is raised by
            the first ``next()``).

    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such dataset file")
    stream = _load(path, format, column_map)
    if issues:
        return stream
    return (item for item in stream if isinstance(item, Example))


def _load(
    path: Path, fmt: str | None, column_map: dict[str, str] | None
) -> Iterator[Example | LoadIssue]:
    file_fmt = fmt or detect_format(path)
    tabular = file_fmt in ("csv", "parquet")
    fixed: str | None = None
    if column_map:
        fixed = "openai" if "messages" in column_map else "columns"
    good = 0
    pending: list[LoadIssue] = []
    for index, (line, record) in enumerate(iter_records(path, file_fmt)):
        item: Example | LoadIssue
        if isinstance(record, RecordError):
            item = LoadIssue(index, line, str(record))
        else:
            try:
                record_fmt = fixed or detect_record_format(record, tabular=tabular)
                item = record_to_example(record, record_fmt, index, line, column_map)
            except RecordError as exc:
                item = LoadIssue(index, line, str(exc))
        if isinstance(item, LoadIssue):
            if good == 0:
                pending.append(item)
                if len(pending) >= PROBE_RECORDS:
                    break
                continue
            yield item
            continue
        good += 1
        if pending:
            yield from pending
            pending = []
        yield item
    if good == 0:
        why = pending[0].reason if pending else "it holds no records"
        raise BadInputError(f"{path}: not a dataset ({why})")
