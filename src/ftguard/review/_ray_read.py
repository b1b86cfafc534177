"""Reading a dataset on Ray: the file cut into shards of whole review chunks, read anywhere.

The Ray engine reads what the local engine reads, record for record: a shard is a byte
range of a JSONL file (or a row range of a Parquet file) that starts at a record the local
engine starts a chunk with, and its records are parsed by :mod:`ftguard.datasets` (the same
JSONL reader on that byte range, the same record -> Example conversion), with the record
index and source line they have in the whole file. A planning pass over the file (one
vectorised scan of its bytes for JSONL; the footer for Parquet) finds where the shards start.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ftguard.datasets import (
    MAX_RECORD_BYTES,
    Example,
    LoadIssue,
    RecordError,
    detect_record_format,
    iter_records,
    record_to_example,
)
from ftguard.errors import BadInputError, MissingDependencyError

__all__ = ["RAY_FORMATS", "Shard", "plan_shards", "read_shard"]

RAY_FORMATS = ("jsonl", "parquet")
"""The file formats the Ray engine reads in parallel."""

_BOM = b"\xef\xbb\xbf"
_SCAN_BLOCK = 8 << 20
_PARQUET_BATCH = 2048


@dataclass(frozen=True)
class Shard:
    """One read task: consecutive records of a dataset file, with where they sit in it.

    Attributes:
        path: The dataset file (a path every Ray node can read).
        fmt: ``jsonl`` or ``parquet``.
        column_map: The review's column map, if any.
        number: The shard's position (0-based) among the file's shards.
        first_index: Index of the shard's first record in the file (a multiple of the chunk).
        records: Records in the shard.
        start: First byte (JSONL) or first row (Parquet) of the shard.
        stop: End byte (JSONL, exclusive) or end row (Parquet).
        first_line: Source line of the shard's first record (JSONL).

    """

    path: str
    fmt: str
    column_map: dict[str, str] | None
    number: int
    first_index: int
    records: int
    start: int
    stop: int
    first_line: int = 1


def plan_shards(
    path: Path, fmt: str, column_map: dict[str, str] | None, *, chunk: int, chunks_per_shard: int
) -> list[Shard]:
    """Cut ``path`` into shards of ``chunks_per_shard`` chunks of ``chunk`` records.

    Raises:
        BadInputError: A format the Ray engine does not read (JSON arrays, CSV).

    """
    if fmt not in RAY_FORMATS:
        raise BadInputError(
            f"{path}: the ray engine reads JSONL and Parquet datasets, not {fmt} "
            "(convert it, or review it with --engine local)"
        )
    every = chunk * max(1, chunks_per_shard)
    if fmt == "jsonl":
        starts, total, size = _jsonl_record_starts(path, every)
        bounds = [*(s for s, _ in starts[1:]), size]
        return [
            Shard(str(path), fmt, column_map, k, k * every, min(every, total - k * every), s, e, ln)
            for k, ((s, ln), e) in enumerate(zip(starts, bounds, strict=True))
        ]
    rows = _parquet_rows(path)
    return [
        Shard(str(path), fmt, column_map, k, lo, min(every, rows - lo), lo, min(rows, lo + every))
        for k, lo in enumerate(range(0, rows, every))
    ]


def _jsonl_record_starts(path: Path, every: int) -> tuple[list[tuple[int, int]], int, int]:
    """``(byte offset, line)`` of records 0, every, 2 every, ...; the record count; the size.

    A record is what the JSONL reader yields: a line (LF-terminated; the BOM of line 1
    removed) that is not blank, or one longer than MAX_RECORD_BYTES. One vectorised pass
    in blocks of 8 MiB; the state carried between blocks is the open line's start and the
    count of non-blank bytes in it.
    """
    import numpy as np

    blank = np.zeros(256, dtype=bool)
    blank[[9, 10, 13, 32]] = True
    starts: list[tuple[int, int]] = []
    records = lines = offset = open_start = open_content = 0
    with path.open("rb") as fh:
        bom = fh.read(3) == _BOM
        fh.seek(0)
        while data := fh.read(_SCAN_BLOCK):
            buf = np.frombuffer(data, dtype=np.uint8)
            newlines = np.flatnonzero(buf == 10)
            content = np.concatenate(([0], np.cumsum(~blank[buf], dtype=np.int64)))
            seg_lo = np.concatenate(([0], newlines + 1))
            seg_hi = np.concatenate((newlines, [len(buf)]))
            seg_content = content[seg_hi] - content[seg_lo]
            done = len(newlines)
            if done:
                line_start = np.concatenate(([open_start], offset + newlines[:-1] + 1))
                line_content = seg_content[:done].copy()
                line_content[0] += open_content
                if lines == 0 and bom:
                    line_content[0] -= 3
                length = offset + newlines - line_start
                rec = np.flatnonzero((line_content > 0) | (length > MAX_RECORD_BYTES))
                pick = rec[(records + np.arange(len(rec))) % every == 0]
                starts.extend(
                    zip(line_start[pick].tolist(), (lines + pick + 1).tolist(), strict=True)
                )
                records += len(rec)
                lines += done
                open_start = offset + int(newlines[-1]) + 1
                open_content = int(seg_content[done])
            else:
                open_content += int(seg_content[0])
            offset += len(buf)
    if offset > open_start:  # a last line without a newline
        content_left = open_content - (3 if lines == 0 and bom else 0)
        if content_left > 0 or offset - open_start > MAX_RECORD_BYTES:
            if records % every == 0:
                starts.append((open_start, lines + 1))
            records += 1
    return starts, records, offset


def _parquet_rows(path: Path) -> int:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError("pyarrow", "parquet") from exc
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception as exc:
        raise BadInputError(f"{path}: not a readable Parquet file ({exc})") from exc


class _RangeReader(io.RawIOBase):
    """The bytes ``[start, stop)`` of a file, after ``prefix``."""

    def __init__(self, path: str, start: int, stop: int, prefix: bytes) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115  (closed by close())
        self._fh.seek(start)
        self._left = stop - start
        self._prefix = prefix

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        if self._left <= 0:
            return 0
        n = self._fh.readinto(view[: min(len(view), self._left)]) or 0
        self._left -= n
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


class _JsonlRange:
    """Looks like a Path to ftguard's JSONL reader: ``open`` gives one byte range of a file.

    A range that does not start the file is read after one blank line, so the reader's
    first-line rule (the byte order mark) applies to the file's first line only; its line
    numbers are then one more than the range's.
    """

    def __init__(self, shard: Shard) -> None:
        self.shard = shard
        self.name = Path(shard.path).name

    def open(self, mode: str = "rb") -> io.BufferedReader:
        s = self.shard
        prefix = b"\n" if s.start else b""
        return io.BufferedReader(_RangeReader(s.path, s.start, s.stop, prefix), 1 << 20)

    def line_in_file(self, line: int) -> int:
        return self.shard.first_line + line - 2 if self.shard.start else line


def _parquet_records(shard: Shard) -> Iterator[tuple[int, Any]]:
    """``(row number, row)`` of a Parquet shard's rows; corrupt data ends the shard."""
    done = shard.start
    try:
        for row_number, row in _parquet_rows_of(shard):
            done = row_number
            yield row_number, row
    except Exception as exc:  # a corrupt page: pyarrow raises its own errors
        yield (
            done + 1,
            RecordError(f"unreadable Parquet data ({exc}); the rest of the shard is unreadable"),
        )


def _parquet_rows_of(shard: Shard) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(shard.path)
    meta = pf.metadata
    first = 0
    for group in range(meta.num_row_groups):
        rows = meta.row_group(group).num_rows
        lo, hi = max(shard.start, first), min(shard.stop, first + rows)
        if lo < hi:
            n = first
            for batch in pf.iter_batches(batch_size=_PARQUET_BATCH, row_groups=[group]):
                end = n + batch.num_rows
                if end > lo and n < hi:
                    part = batch.slice(max(0, lo - n), min(hi, end) - max(lo, n))
                    for k, row in enumerate(part.to_pylist()):
                        yield max(lo, n) + k + 1, row
                n = end
        first += rows
        if first >= shard.stop:
            return


def read_shard(shard: Shard) -> Iterator[Example | LoadIssue]:
    """The shard's records as the local engine reads them: Examples and unreadable records."""
    if shard.fmt == "jsonl":
        source = _JsonlRange(shard)
        records: Iterator[tuple[int, Any]] = (
            (source.line_in_file(line), rec)
            for line, rec in iter_records(cast(Path, source), "jsonl")
        )
    else:
        records = _parquet_records(shard)
    tabular = shard.fmt in ("csv", "parquet")
    column_map = shard.column_map
    fixed = ("openai" if "messages" in column_map else "columns") if column_map else None
    for index, (line, record) in enumerate(records, shard.first_index):
        if isinstance(record, RecordError):
            yield LoadIssue(index, line, str(record))
            continue
        try:
            record_fmt = fixed or detect_record_format(record, tabular=tabular)
            yield record_to_example(record, record_fmt, index, line, column_map)
        except RecordError as exc:
            yield LoadIssue(index, line, str(exc))
