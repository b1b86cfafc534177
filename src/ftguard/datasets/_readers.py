"""File readers: JSONL, JSON arrays, CSV/TSV and Parquet, streamed record by record.

Each reader yields ``(line, record)`` pairs, where a record that cannot be decoded is a
:class:`RecordError` in place of the record. The byte-level rules are the same in every
format: a UTF-8 byte order mark is skipped at the very start of the file only; invalid
UTF-8 makes its record unreadable; no record may be larger than :data:`MAX_RECORD_BYTES`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ftguard.datasets._json import StrictDecoder, decode_record
from ftguard.datasets._records import RecordError
from ftguard.errors import BadInputError, MissingDependencyError

__all__ = ["FILE_FORMATS", "MAX_RECORD_BYTES", "detect_format", "iter_records"]

FILE_FORMATS = ("jsonl", "json", "csv", "parquet")
MAX_RECORD_BYTES = 64 << 20
"""The largest record (a JSONL line, a JSON array element, a CSV row) read, in bytes."""

_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20
_ESCAPED = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8 (surrogateescape)
_WS = " \t\r\n"
_LENIENT = json.JSONDecoder()  # only to find where a refused record ends


def detect_format(path: Path) -> str:
    """Guess the file format (``jsonl``, ``json``, ``csv`` or ``parquet``) of ``path``.

    The extension decides for Parquet and CSV/TSV; otherwise the first character after an
    optional byte order mark and whitespace does (``[``: a JSON array, ``{``: JSONL), then
    the extension (``.jsonl``/``.ndjson``, ``.json``).

    Raises:
        BadInputError: The file is none of these.

    """
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".csv", ".tsv"):
        return "csv"
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read the dataset ({exc.strerror})") from exc
    if head.startswith(b"PAR1"):
        return "parquet"
    stripped = head.removeprefix(_BOM).lstrip(_WS.encode())
    if stripped.startswith(b"["):
        return "json"
    if stripped.startswith(b"{"):
        return "jsonl"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "json"
    raise BadInputError(f"{path}: not a dataset (expected JSONL, a JSON array, CSV or Parquet)")


def iter_records(path: Path, fmt: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, record)`` pairs; a record that cannot be decoded is a RecordError.

    Raises:
        BadInputError: An unknown format, or a file that cannot be read as that format at all.
        MissingDependencyError: Parquet without pyarrow.

    """
    if fmt == "jsonl":
        return _iter_jsonl(path)
    if fmt == "json":
        return _iter_json_array(path)
    if fmt == "csv":
        return _iter_csv(path)
    if fmt == "parquet":
        return _iter_parquet(path)
    raise BadInputError(f"unknown dataset format {fmt!r} (choose from {', '.join(FILE_FORMATS)})")


def _iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """One record a line; LF (or CRLF) ends a line, a lone CR does not."""
    decoder = StrictDecoder()
    limit = MAX_RECORD_BYTES
    with path.open("rb") as fh:
        lineno = 0
        while True:
            raw = fh.readline(limit + 1)
            if not raw:
                return
            lineno += 1
            if lineno == 1:
                raw = raw.removeprefix(_BOM)
            if len(raw) > limit and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                    raw = fh.readline(_CHUNK)
                yield lineno, RecordError(f"a line longer than {limit} bytes")
                continue
            if not raw.strip(_WS.encode()):
                continue
            try:
                text = raw.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8")
            except UnicodeDecodeError as exc:
                yield lineno, RecordError(f"invalid UTF-8 at byte {exc.start}")
                continue
            try:
                yield lineno, decode_record(text, decoder)
            except RecordError as exc:
                yield lineno, exc


class _ArrayCursor:
    """A position in a JSON array's text, read in chunks (for :func:`_iter_json_array`)."""

    def __init__(self, reader: io.TextIOWrapper) -> None:
        self.reader = reader
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False

    def fill(self, size: int = _CHUNK) -> bool:
        """Append the next chunk to what is left of the buffer; False at the end of the file."""
        chunk = self.reader.read(size)
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        self.eof = not chunk
        return bool(chunk)

    def next_char(self) -> str | None:
        """The next character that is not whitespace (not consumed), or None at the end."""
        while True:
            buf, pos = self.buf, self.pos
            while pos < len(buf) and buf[pos] in _WS:
                if buf[pos] == "\n":
                    self.line += 1
                pos += 1
            self.pos = pos
            if pos < len(buf) or self.eof or not self.fill():
                break
        return self.buf[self.pos] if self.pos < len(self.buf) else None

    def decode_value(self, decoder: StrictDecoder) -> tuple[Any, int, RecordError | None]:
        """Decode the value at the cursor, reading more while the buffer's end may cut it.

        Raises:
            RecordError: The value cannot be read (why, without the "rest" suffix).

        """
        while True:
            try:
                obj, end, refused = _decode_value(decoder, self.buf, self.pos)
            except json.JSONDecodeError as exc:
                left = len(self.buf) - self.pos
                if not self.eof and left <= MAX_RECORD_BYTES:
                    self.fill(max(_CHUNK, left))
                    continue
                if left > MAX_RECORD_BYTES:
                    raise RecordError(f"a record larger than {MAX_RECORD_BYTES} bytes") from None
                raise RecordError(f"invalid JSON: {exc.msg}") from None
            if end < len(self.buf) or self.eof:
                return obj, end, refused
            self.fill()  # a number may go on past the buffer's end


def _iter_json_array(path: Path) -> Iterator[tuple[int, Any]]:
    """The elements of one JSON array, decoded one at a time (strict JSON between them)."""
    decoder = StrictDecoder()
    rest = "; the rest of the array is unreadable"
    with path.open("rb") as fh:
        reader = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="surrogateescape", newline="")
        cur = _ArrayCursor(reader)
        state = "start"  # start, first (after '['), value (after ','), next (after a value), end
        while True:
            char = cur.next_char()
            if char is None:
                if state not in ("start", "end"):
                    yield cur.line, RecordError(f"invalid JSON: the array is not closed{rest}")
                return
            if state in ("start", "end", "next") or (state == "first" and char == "]"):
                state, error = _array_punctuation(state, char, rest)
                if error is not None:
                    yield cur.line, error
                    return
                cur.pos += 1
                continue
            try:
                obj, end, refused = cur.decode_value(decoder)
            except RecordError as exc:
                yield cur.line, RecordError(f"{exc}{rest}")
                return
            if end - cur.pos > MAX_RECORD_BYTES:
                yield cur.line, RecordError(f"a record larger than {MAX_RECORD_BYTES} bytes{rest}")
                return
            if refused is not None:
                yield cur.line, refused
            elif _ESCAPED.search(cur.buf, cur.pos, end):
                yield cur.line, RecordError("invalid UTF-8 in the record")
            else:
                yield cur.line, obj
            cur.line += cur.buf.count("\n", cur.pos, end)
            cur.pos = end
            state = "next"


def _array_punctuation(state: str, char: str, rest: str) -> tuple[str, RecordError | None]:
    """The state after ``char`` where the array's syntax, not a value, is expected."""
    if state == "start":
        if char != "[":
            return state, RecordError("the file is not a JSON array")
        return "first", None
    if state == "end":
        return state, RecordError("invalid JSON: data after the end of the array")
    if state == "next":
        if char not in ",]":
            return state, RecordError(f"invalid JSON: expected ',' or ']' after a record{rest}")
        return ("value" if char == "," else "end"), None
    return "end", None  # "first" and "]": an empty array


def _decode_value(
    decoder: StrictDecoder, buf: str, pos: int
) -> tuple[Any, int, RecordError | None]:
    """Decode the value at ``pos``: ``(value, end, None)``, or ``(None, end, why)``.

    The second form is a value the strict rules refuse that is otherwise JSON: reading goes
    on after it.

    Raises:
        json.JSONDecodeError: Not JSON there, or cut off by the buffer's end.
        RecordError: Refused, and where it ends is unknown (too deep, too large a number).

    """
    try:
        obj, end = decoder.raw_decode(buf, pos)
    except RecordError as refused:
        try:
            _, end = _LENIENT.raw_decode(buf, pos)
        except json.JSONDecodeError:
            raise
        except (ValueError, RecursionError):
            raise refused from None
        return None, end, refused
    return obj, end, None


def _iter_csv(path: Path) -> Iterator[tuple[int, Any]]:
    """Rows of a CSV (or TSV) file with a header row; blank lines are skipped."""
    if csv.field_size_limit() < MAX_RECORD_BYTES:  # process-wide; only ever raised
        csv.field_size_limit(MAX_RECORD_BYTES)
    with path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        sample = fh.read(8192)
        fh.seek(0)
        tab = path.suffix.lower() == ".tsv" or sample.count("\t") > sample.count(",")
        reader = csv.DictReader(fh, delimiter="\t" if tab else ",")
        try:
            header = reader.fieldnames
        except csv.Error as exc:
            yield 1, RecordError(f"malformed CSV header: {exc}")
            return
        if header:
            seen: set[str] = set()
            for name in header:
                if name in seen:
                    raise BadInputError(f"{path}: the CSV header repeats the column {name[:40]!r}")
                seen.add(name)
        try:
            for row in reader:
                line = reader.line_num
                if any(isinstance(v, str) and _ESCAPED.search(v) for v in row.values()):
                    yield line, RecordError("invalid UTF-8")
                elif None in row:
                    yield line, RecordError("the row has more fields than the header")
                elif any(v is None for v in row.values()):
                    yield line, RecordError("the row has fewer fields than the header")
                else:
                    yield line, row
        except csv.Error as exc:
            yield (
                reader.line_num,
                RecordError(f"malformed CSV: {exc}; the rest of the file is unreadable"),
            )


def _iter_parquet(path: Path) -> Iterator[tuple[int, Any]]:
    """Rows of a Parquet file, as dicts of column name -> value."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError("pyarrow", "parquet") from exc
    try:
        pf = pq.ParquetFile(path)
        names = list(pf.schema_arrow.names)
    except Exception as exc:
        raise BadInputError(f"{path}: not a readable Parquet file ({exc})") from exc
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise BadInputError(f"{path}: the Parquet file repeats the column {dup[:40]!r}")
    n = 0
    batches = pf.iter_batches(batch_size=2048)
    while True:
        try:
            batch = next(batches, None)
            rows = batch.to_pylist() if batch is not None else []
        except Exception as exc:  # a corrupt page: pyarrow raises its own errors
            yield (
                n + 1,
                RecordError(f"unreadable Parquet data ({exc}); the rest of the file is unreadable"),
            )
            return
        if batch is None:
            return
        for row in rows:
            n += 1
            yield n, row
