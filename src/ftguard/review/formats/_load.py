"""Streaming loaders: JSONL, JSON arrays, CSV and Parquet, auto-detected."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftguard.errors import BadInputError, MissingDependencyError
from ftguard.review._example import Example
from ftguard.review.formats._records import (
    RESPONSE_ALIASES,
    RecordError,
    detect_record_format,
    record_to_example,
)

__all__ = ["FILE_FORMATS", "LoadIssue", "detect_format", "iter_records", "load_examples"]

FILE_FORMATS = ("jsonl", "json", "csv", "parquet")
_PROBE = 20  # records looked at to decide that a file is no dataset
_CHUNK = 1 << 20
_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True, slots=True)
class LoadIssue:
    """A record that could not be read: it becomes a finding at its position."""

    index: int
    line: int
    reason: str


def detect_format(path: Path) -> str:
    """Guess the file format (``jsonl``, ``json``, ``csv`` or ``parquet``) of ``path``."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".csv", ".tsv"):
        return "csv"
    with path.open("rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"PAR1"):
        return "parquet"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"["):
        return "json"
    if stripped.startswith(b"{"):
        return "jsonl"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "json"
    raise BadInputError(f"{path}: not a dataset (expected JSONL, a JSON array, CSV or Parquet)")


def _first_clause(exc: Exception) -> str:
    return str(exc).split(":")[0].split(";")[0]


def _iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield lineno, RecordError(f"invalid UTF-8 at byte {exc.start}")
                continue
            try:
                yield lineno, json.loads(text)
            except json.JSONDecodeError as exc:
                yield lineno, RecordError(f"malformed JSON: {exc.msg} (column {exc.colno})")
            except RecursionError:
                yield lineno, RecordError("JSON nested too deeply")
            except ValueError as exc:  # an integer of more than 4300 digits
                yield lineno, RecordError(f"unreadable JSON value: {_first_clause(exc)}")


def _iter_json_array(path: Path) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    buf = ""
    pos = 0
    line = 1
    started = False
    eof = False
    with path.open("rb") as fh:
        reader = io.TextIOWrapper(fh, encoding="utf-8", errors="surrogateescape")
        while True:
            if not eof and len(buf) - pos < _CHUNK // 2:
                chunk = reader.read(_CHUNK)
                buf = buf[pos:] + chunk
                pos = 0
                eof = not chunk
            # skip whitespace, the opening bracket and commas
            while pos < len(buf) and buf[pos] in " \t\r\n,\ufeff[" and (buf[pos] != "[" or not started):
                if buf[pos] == "\n":
                    line += 1
                if buf[pos] == "[":
                    started = True
                pos += 1
            if pos >= len(buf):
                if eof:
                    return
                continue
            if buf[pos] == "]":
                return
            if not started:
                yield line, RecordError("the file is not a JSON array")
                return
            try:
                obj, end = decoder.raw_decode(buf, pos)
            except RecursionError:
                yield line, RecordError("JSON nested too deeply; the rest of the array is unreadable")
                return
            except json.JSONDecodeError as exc:
                if not eof:
                    if len(buf) - pos > 64 * _CHUNK:
                        yield line, RecordError("a record larger than 64 MiB")
                        return
                    more = reader.read(_CHUNK)
                    if more:
                        buf = buf[pos:] + more
                        pos = 0
                        continue
                    eof = True
                yield line, RecordError(f"malformed JSON: {exc.msg}; the rest of the array is unreadable")
                return
            except ValueError as exc:  # an integer of more than 4300 digits
                yield line, RecordError(
                    f"unreadable JSON value: {_first_clause(exc)}; the rest of the array is unreadable"
                )
                return
            if _SURROGATE.search(buf, pos, end):
                yield line, RecordError("invalid UTF-8 in the record")
            else:
                yield line, obj
            line += buf.count("\n", pos, end)
            pos = end


def _iter_csv(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("r", encoding="utf-8", errors="surrogateescape", newline="") as fh:
        sample = fh.read(8192)
        fh.seek(0)
        delimiter = "\t" if path.suffix.lower() == ".tsv" or sample.count("\t") > sample.count(",") else ","
        reader = csv.DictReader(fh, delimiter=delimiter)
        try:
            for row in reader:
                line = reader.line_num
                if any(isinstance(v, str) and _has_surrogate(v) for v in row.values()):
                    yield line, RecordError("invalid UTF-8")
                    continue
                if None in row:
                    yield line, RecordError("the row has more fields than the header")
                    continue
                yield line, row
        except csv.Error as exc:
            yield reader.line_num, RecordError(f"malformed CSV: {exc}")


def _has_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def _iter_parquet(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError("pyarrow", "parquet") from exc
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise BadInputError(f"{path}: not a readable Parquet file ({exc})") from exc
    n = 0
    for batch in pf.iter_batches(batch_size=2048):
        for row in batch.to_pylist():
            n += 1
            yield n, row


def iter_records(path: Path, fmt: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, record)`` pairs; a record that cannot be decoded is a RecordError."""
    if fmt == "jsonl":
        return _iter_jsonl(path)
    if fmt == "json":
        return _iter_json_array(path)
    if fmt == "csv":
        return _iter_csv(path)
    if fmt == "parquet":
        return _iter_parquet(path)
    raise BadInputError(f"unknown dataset format {fmt!r} (choose from {', '.join(FILE_FORMATS)})")


def load_examples(
    path: Path | str,
    format: str | None = None,
    column_map: dict[str, str] | None = None,
    *,
    issues: bool = False,
) -> Iterator[Example]:
    """Stream the examples of a dataset file.

    Args:
        path: A JSONL, JSON-array, CSV or Parquet file.
        format: Force the file format (``jsonl``, ``json``, ``csv``, ``parquet``).
        column_map: Canonical field (``instruction``, ``input``, ``output``, ``system``,
            ``messages``, ``id``) -> the file's column or key name.
        issues: Also yield a :class:`LoadIssue` for each unreadable record (the engine
            turns them into findings); otherwise they are skipped.

    Raises:
        BadInputError: When the file is missing or is not a dataset at all.

    """
    return _load(Path(path), format, column_map, issues)  # type: ignore[return-value]


def _load(
    path: Path, fmt: str | None, column_map: dict[str, str] | None, issues: bool
) -> Iterator[Example | LoadIssue]:
    if not path.is_file():
        raise BadInputError(f"{path}: no such dataset file")
    file_fmt = fmt or detect_format(path)
    record_fmt: str | None = "columns" if column_map and "messages" not in column_map else None
    good = bad = 0
    pending: list[LoadIssue] = []
    for index, (line, record) in enumerate(iter_records(path, file_fmt)):
        item: Example | LoadIssue
        if isinstance(record, RecordError):
            item = LoadIssue(index, line, str(record))
        else:
            if record_fmt is None:
                record_fmt = detect_record_format(record)
                if record_fmt is None and file_fmt in ("csv", "parquet") and isinstance(record, dict):
                    keys = {k.lower() for k in record if isinstance(k, str)}
                    if keys & set(RESPONSE_ALIASES):
                        record_fmt = "columns"
            try:
                if record_fmt is None:
                    raise RecordError("the record has no known example fields")
                item = record_to_example(record, record_fmt, index, line, column_map)
            except RecordError as exc:
                item = LoadIssue(index, line, str(exc))
        if isinstance(item, LoadIssue):
            bad += 1
            if good == 0:
                pending.append(item)
                if bad >= _PROBE or (bad >= 1 and index == 0 and file_fmt == "json" and "JSON array" in item.reason):
                    break
                continue
            if issues:
                yield item
            continue
        good += 1
        if pending:
            if issues:
                yield from pending
            pending = []
        yield item
    if good == 0:
        why = pending[0].reason if pending else "it holds no records"
        raise BadInputError(f"{path}: not a dataset ({why})")
