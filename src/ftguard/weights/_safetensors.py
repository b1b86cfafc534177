"""Safe, memory-mapped reading of safetensors checkpoints.

The header of every file is validated before any tensor is touched: its size, that it is
a JSON object without duplicate names, that every tensor has a known dtype and a shape
whose byte length matches its offsets, and that the offsets lie inside the file without
overlapping. Tensors are then read one at a time from a memory map, so memory does not
grow with the model. Pickle-based formats are refused, never loaded.
"""

from __future__ import annotations

import contextlib
import json
import math
import mmap
import os
import stat
import struct
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ftguard.errors import BadInputError
from ftguard.weights._stats import RawSource

__all__ = [
    "ANALYSED_DTYPES",
    "Checkpoint",
    "SafetensorsFile",
    "TensorInfo",
    "open_checkpoint",
    "parse_header",
    "refuse_pickle",
]

MAX_HEADER_BYTES = 100 * 1024 * 1024
"""Largest header accepted (the safetensors library uses the same bound)."""

DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
ANALYSED_DTYPES = frozenset({"F32", "F16", "BF16"})
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lies in its file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    """Offset of the first byte, relative to the start of the data section."""
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def refuse_pickle(path: Path) -> None:
    """Raise a clear error for a pickle-based checkpoint file."""
    raise BadInputError(
        f"{path.name} is a pickle-based checkpoint, which ftguard never loads (it can run "
        "code); convert it to safetensors first, e.g. "
        "model.save_pretrained(dir, safe_serialization=True) or "
        "safetensors.torch.save_file(state_dict, 'model.safetensors')"
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate tensor name {key!r}")
        out[key] = value
    return out


def parse_header(raw: bytes, data_len: int, *, where: str = "file") -> dict[str, TensorInfo]:
    """Validate a safetensors JSON header and return its tensors by name.

    Args:
        raw: The header bytes (without the 8-byte length prefix).
        data_len: Bytes in the file after the header (the data section).
        where: The file's name, for messages.

    Raises:
        BadInputError: The header is not valid JSON, names a tensor twice, has an unknown
            dtype, a bad shape, offsets outside the data or overlapping, or a byte length
            that does not match dtype and shape.

    """
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadInputError(f"{where}: invalid safetensors header: {exc}") from None
    if not isinstance(header, dict):
        raise BadInputError(f"{where}: invalid safetensors header: not a JSON object")
    tensors: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise BadInputError(f"{where}: __metadata__ must map strings to strings")
            continue
        tensors[name] = _tensor_info(name, entry, data_len, where)
    spans = sorted((t.begin, t.end, t.name) for t in tensors.values() if t.end > t.begin)
    for (_, end_a, name_a), (begin_b, _, name_b) in zip(spans, spans[1:], strict=False):
        if begin_b < end_a:
            raise BadInputError(f"{where}: tensors {name_a!r} and {name_b!r} overlap")
    return tensors


def _tensor_info(name: str, entry: object, data_len: int, where: str) -> TensorInfo:
    if not isinstance(entry, dict):
        raise BadInputError(f"{where}: tensor {name!r}: entry is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise BadInputError(f"{where}: tensor {name!r}: unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise BadInputError(f"{where}: tensor {name!r}: shape must be non-negative integers")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise BadInputError(f"{where}: tensor {name!r}: data_offsets must be two integers")
    begin, end = offsets
    if not 0 <= begin <= end <= data_len:
        raise BadInputError(
            f"{where}: tensor {name!r}: offsets [{begin}, {end}] outside the data "
            f"({data_len} bytes; truncated file?)"
        )
    expected = math.prod(shape) * DTYPE_SIZES[dtype]
    if end - begin != expected:
        raise BadInputError(
            f"{where}: tensor {name!r}: {end - begin} bytes, but {dtype}{shape} needs {expected}"
        )
    return TensorInfo(name, dtype, tuple(shape), begin, end)


class SafetensorsFile:
    """One validated, memory-mapped ``.safetensors`` file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._mm: mmap.mmap | None = None
        self._map_lock = threading.Lock()
        if path.suffix.lower() in PICKLE_SUFFIXES:
            refuse_pickle(path)
        try:
            st = path.stat()
            if not stat.S_ISREG(st.st_mode):  # a FIFO would block: refused before opening
                raise BadInputError(f"{path.name}: not a safetensors file (not a regular file)")
            size = st.st_size
            with open(path, "rb") as fh:
                prefix = fh.read(8)
                if len(prefix) < 8:
                    raise BadInputError(f"{path.name}: not a safetensors file (too short)")
                (n,) = struct.unpack("<Q", prefix)
                if n > MAX_HEADER_BYTES:
                    raise BadInputError(
                        f"{path.name}: not a safetensors file (header of {n} bytes is over "
                        f"the {MAX_HEADER_BYTES} limit)"
                    )
                if 8 + n > size:
                    raise BadInputError(f"{path.name}: truncated safetensors header")
                raw = fh.read(n)
                self.tensors = parse_header(raw, size - 8 - n, where=path.name)
                self._data_start = 8 + n
            self._size = size
            self._fd = os.open(path, os.O_RDONLY)
            self._closer = weakref.finalize(self, _close_fd, self._fd)
        except OSError as exc:
            raise BadInputError(f"cannot read {path}: {exc.strerror or exc}") from None
        self.metadata: dict[str, str] = {}

    def source(self, name: str) -> RawSource:
        """Where to ``pread`` a tensor's raw elements from (no mapping, no page faults)."""
        info = self.tensors[name]
        _numpy_dtype(info.dtype, where=f"{self.path.name}: tensor {name!r}")
        return RawSource(
            info.dtype,
            fd=self._fd,
            offset=self._data_start + info.begin,
            where=f"{self.path.name}: tensor {name!r}",
        )

    def prefetch(self, name: str, lo: int, hi: int) -> None:
        """Ask the kernel to start reading bytes ``[lo, hi)`` of a tensor's data now.

        ``POSIX_FADV_WILLNEED`` queues the read and returns, so the disk works while the
        CPUs compute; it changes nothing for pages already cached.
        """
        if self._fd < 0 or not hasattr(os, "posix_fadvise"):
            return
        start = self._data_start + self.tensors[name].begin + lo
        with contextlib.suppress(OSError):
            os.posix_fadvise(self._fd, start, max(0, hi - lo), os.POSIX_FADV_WILLNEED)

    def _mapped(self) -> mmap.mmap | None:
        """The file's memory map, made on first use (full diffs read with ``pread`` only)."""
        with self._map_lock:
            if self._mm is None and self._size > 0 and self._fd >= 0:
                try:
                    self._mm = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
                except (OSError, ValueError) as exc:
                    raise BadInputError(f"cannot map {self.path}: {exc}") from None
            return self._mm

    def raw(self, name: str) -> np.ndarray:
        """A read-only view of a tensor's bytes in its own dtype (BF16 as ``uint16``)."""
        info = self.tensors[name]
        dt = _numpy_dtype(info.dtype, where=f"{self.path.name}: tensor {name!r}")
        mm = self._mapped()
        if info.numel == 0:
            return np.zeros(info.shape, dt)
        if mm is None or self._data_start + info.end > len(mm):
            raise BadInputError(
                f"{self.path.name}: tensor {name!r}: file ended early (truncated while reading?)"
            )
        arr = np.frombuffer(mm, dtype=dt, count=info.numel, offset=self._data_start + info.begin)
        return arr.reshape(info.shape)

    def advise(self, name: str, lo: int, hi: int, *, release: bool) -> None:
        """Hint the kernel about bytes ``[lo, hi)`` of a tensor's data.

        ``release=False`` asks for read-ahead (``MADV_WILLNEED``); ``release=True`` drops the
        pages from this process's mapping (``MADV_DONTNEED``; they stay in the page cache), so
        resident memory stays bounded by the tensors being worked on, not the model.
        """
        if self._mm is None:
            return  # nothing mapped, nothing to advise
        info = self.tensors[name]
        start = self._data_start + info.begin + lo
        end = self._data_start + info.begin + hi
        page = mmap.PAGESIZE
        start -= start % page
        end = min(len(self._mm), end)
        if end <= start:
            return
        flag = getattr(mmap, "MADV_DONTNEED" if release else "MADV_WILLNEED", None)
        if flag is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._mm.madvise(flag, start, end - start)

    def close(self) -> None:
        if self._mm is not None:
            with contextlib.suppress(BufferError):  # a view is alive; unmapped when it dies
                self._mm.close()
        if self._fd >= 0:
            self._fd = -1
            self._closer()


def _close_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _numpy_dtype(dtype: str, *, where: str) -> np.dtype[Any]:
    if dtype == "F32":
        return np.dtype("<f4")
    if dtype == "F16":
        return np.dtype("<f2")
    if dtype == "BF16":
        return np.dtype("<u2")
    raise BadInputError(f"{where}: dtype {dtype} is not analysed (F32, F16 and BF16 are)")


class Checkpoint:
    """A model's tensors across one or more safetensors files (sharded or not)."""

    def __init__(self, root: Path, files: list[SafetensorsFile]) -> None:
        self.root = root
        self.files = files
        self._where: dict[str, SafetensorsFile] = {}
        for f in files:
            for name in f.tensors:
                if name in self._where:
                    raise BadInputError(
                        f"{root.name}: tensor {name!r} appears in both "
                        f"{self._where[name].path.name} and {f.path.name}"
                    )
                self._where[name] = f
        self.config: dict[str, Any] = _read_json(root / "config.json") if root.is_dir() else {}

    @property
    def names(self) -> list[str]:
        return list(self._where)

    def info(self, name: str) -> TensorInfo:
        return self._where[name].tensors[name]

    def raw(self, name: str) -> np.ndarray:
        return self._where[name].raw(name)

    def source(self, name: str) -> RawSource:
        return self._where[name].source(name)

    def file_of(self, name: str) -> SafetensorsFile:
        return self._where[name]

    def release(self, name: str) -> None:
        """Drop a tensor's pages from this process's mapping (they stay in the page cache)."""
        if name in self._where:
            info = self.info(name)
            self._where[name].advise(name, 0, info.end - info.begin, release=True)

    def __contains__(self, name: object) -> bool:
        return name in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def close(self) -> None:
        for f in self.files:
            f.close()

    @property
    def data_paths(self) -> list[Path]:
        return [f.path for f in self.files]


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise BadInputError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: expected a JSON object")
    return data


def open_checkpoint(path: Path) -> Checkpoint:
    """Open a safetensors model: a file, a folder with one file, or a sharded folder.

    Raises:
        BadInputError: Missing path, pickle-based files only, invalid headers, or an index
            naming shards that are missing.

    """
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"no such file or folder: {path}")
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            refuse_pickle(path)
        return Checkpoint(path, [SafetensorsFile(path)])
    if not path.is_dir():  # a FIFO or a device: refused, never opened
        raise BadInputError(f"{path}: neither a safetensors file nor a model folder")
    index = path / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise BadInputError(f"{index}: missing or empty weight_map")
        shards = sorted({str(v) for v in weight_map.values()})
        files = []
        for shard in shards:
            p = (path / shard).resolve()
            if path.resolve() not in p.parents:
                raise BadInputError(f"{index}: shard {shard!r} lies outside the folder")
            if not p.is_file():
                raise BadInputError(f"{index}: shard {shard} is missing")
            files.append(SafetensorsFile(p))
        others = sorted(
            p.name for p in path.iterdir() if p.suffix == ".safetensors" and p.name not in shards
        )
        if others:
            # transformers loads model.safetensors before an index: two readings of one folder
            raise BadInputError(
                f"{path}: {others[0]} lies beside {index.name}, which does not name it; a loader "
                "may read either, so the folder is refused (keep one form of the weights)"
            )
        ckpt = Checkpoint(path, files)
        missing = [n for n in weight_map if n not in ckpt]
        if missing:
            raise BadInputError(f"{index}: tensor {missing[0]!r} is not in its shard")
        return ckpt
    st = sorted(p for p in path.iterdir() if p.suffix == ".safetensors")
    if not st:
        pickles = sorted(p for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickles:
            refuse_pickle(pickles[0])
        raise BadInputError(f"{path}: no .safetensors files found")
    return Checkpoint(path, [SafetensorsFile(p) for p in st])


def file_bytes(paths: list[Path]) -> int:
    """Total size of files on disk."""
    return sum(os.path.getsize(p) for p in paths)
