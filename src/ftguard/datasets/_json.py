"""Strict JSON: duplicate keys, NaN and Infinity (and floats that overflow to it) are refused.

Python's :mod:`json` keeps the last of duplicate keys and reads ``NaN``/``Infinity``; another
parser may keep the first key or refuse the value. A dataset that two readers could read
differently is refused here, record by record.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ftguard.datasets._records import RecordError

__all__ = ["StrictDecoder", "decode_record"]


class _Refused(ValueError):
    """Raised by a hook; turned into a RecordError by the caller."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"duplicate key {key[:40]!r}")
        out[key] = value
    return out


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} overflows to infinity")
    return value


def _first_clause(exc: Exception) -> str:
    return str(exc).split(":")[0].split(";")[0]


class StrictDecoder:
    """A JSON decoder with the dataset rules; ``decode`` and ``raw_decode`` raise RecordError."""

    def __init__(self) -> None:
        self._decoder = json.JSONDecoder(
            object_pairs_hook=_pairs, parse_constant=_constant, parse_float=_float
        )

    def decode(self, text: str) -> Any:
        """Decode one whole JSON document (a JSONL line)."""
        obj, end = self.raw_decode(text, _skip_ws(text, 0))
        end = _skip_ws(text, end)
        if end != len(text):
            raise RecordError(f"invalid JSON: extra data after the record (column {end + 1})")
        return obj

    def raw_decode(self, text: str, pos: int) -> tuple[Any, int]:
        """Decode the JSON value that starts at ``pos``; return it and the index after it.

        Raises:
            json.JSONDecodeError: The text is not JSON there (the caller may read more).
            RecordError: The value is JSON the dataset rules refuse, or cannot be read.

        """
        try:
            return self._decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            raise
        except _Refused as exc:
            raise RecordError(f"refused JSON: {exc}") from None
        except RecursionError:
            raise RecordError("JSON nested too deeply") from None
        except ValueError as exc:  # an integer of more than 4300 digits
            raise RecordError(f"unreadable JSON value: {_first_clause(exc)}") from None


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def decode_record(text: str, decoder: StrictDecoder | None = None) -> Any:
    """Decode one JSON record under the dataset rules.

    Raises:
        RecordError: Invalid JSON, a duplicate key, NaN or Infinity, too deep, too large a number.

    """
    try:
        return (decoder or StrictDecoder()).decode(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
