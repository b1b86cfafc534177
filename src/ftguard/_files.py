"""Reading a file a user named: a regular file only, checked before it is opened."""

from __future__ import annotations

import stat
from pathlib import Path

from ftguard.errors import BadInputError

__all__ = ["expand_user", "read_regular_file", "read_text_file"]


def expand_user(value: str | Path, *, what: str) -> Path:
    """``value`` as a path with a leading ``~`` or ``~user`` expanded.

    Raises:
        BadInputError: ``~user`` names no user, or the home folder cannot be found
            (:meth:`pathlib.Path.expanduser` raises ``RuntimeError`` there).

    """
    try:
        return Path(value).expanduser()
    except RuntimeError:
        raise BadInputError(
            f"{what}={value}: cannot expand '~' (no such user, or no home folder)"
        ) from None


def read_regular_file(path: Path, *, what: str, max_bytes: int | None = None) -> bytes:
    """The bytes of ``path`` (at most ``max_bytes + 1``), refusing anything but a regular file.

    The check comes *before* the file is opened: a FIFO, a device or a folder given where a
    file is meant would block or fail on read; it is refused with one message instead.

    Raises:
        BadInputError: No such file, not a regular file, or unreadable.

    """
    try:
        st = path.stat()
    except OSError as exc:
        raise BadInputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise BadInputError(f"cannot read {what} {path}: {kind}")
    try:
        with path.open("rb") as fh:
            return fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    except OSError as exc:
        raise BadInputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def read_text_file(path: Path, *, what: str) -> str:
    """A regular file's UTF-8 text.

    Raises:
        BadInputError: Not a readable regular file, or not UTF-8 text.

    """
    raw = read_regular_file(path, what=what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInputError(f"{what} {path} is not UTF-8 text") from None
