"""Object storage (S3 and S3-compatible) as storage roots: checked keys, bounded downloads.

A storage root may be ``s3://bucket/prefix``. A reference ``ROOT/relative/path`` names the
object ``prefix/relative/path`` or, as a folder, every object under ``prefix/relative/path/``.
It is downloaded into a local folder, streamed and counted against the root's limits, and
only then hashed by the caller: nothing here trusts an ETag, a size or a cached copy.

Refused: a reference that is both an object and a folder prefix, one that holds no object, an
object key under a folder that would make an unsafe local name (empty, ``.``, ``..``, a
backslash, a NUL), or that is both a file and a folder, more objects or bytes than the root
allows. Credentials and the endpoint come from the standard AWS configuration (environment,
``~/.aws``, instance roles; ``AWS_ENDPOINT_URL_S3``), or the root's own ``endpoint_url``.

Needs the ``s3`` extra (boto3), imported only when a root is used.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from ftguard.errors import BadInputError, MissingDependencyError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_OBJECTS",
    "ObjectRoot",
    "fetch",
    "is_object_uri",
    "materialise",
    "occupied",
    "parse_root",
    "upload",
    "validation_problems",
]

DEFAULT_MAX_BYTES = 64 << 30
"""The most bytes one input may hold in an object root, unless the root says otherwise."""
DEFAULT_MAX_OBJECTS = 100_000
"""The most objects one input (a folder) may hold in an object root, unless it says otherwise."""

_BLOCK = 1 << 20
_WORKERS = 8
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def is_object_uri(text: str) -> bool:
    """Whether a storage root is given as a URI (``scheme://...``) rather than a folder."""
    return "://" in text


def _unsafe(segment: str) -> bool:
    return segment in ("", ".", "..") or "\\" in segment or "\x00" in segment


class ObjectRoot(BaseModel):
    """A storage root in object storage: ``s3://bucket/prefix`` and how to reach it."""

    model_config = ConfigDict(extra="forbid")

    uri: str
    """``s3://bucket`` or ``s3://bucket/prefix`` (S3 or an S3-compatible store)."""
    endpoint_url: str | None = None
    """The store's endpoint (``https://minio.example.com``); default: the AWS configuration's."""
    region: str | None = None
    """The bucket's region; default: the AWS configuration's."""
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1)
    """The most bytes one input (a file or a folder) may hold; more is refused."""
    max_objects: int = Field(default=DEFAULT_MAX_OBJECTS, ge=1)
    """The most objects one input (a folder) may hold; more is refused."""

    _cache: Path | None = PrivateAttr(default=None)
    _workspace: Path | None = PrivateAttr(default=None)
    _name: str = PrivateAttr(default="")

    @field_validator("uri")
    @classmethod
    def _s3_uri(cls, uri: str) -> str:
        scheme, sep, rest = uri.partition("://")
        if not sep or scheme != "s3":
            raise ValueError(f"{uri!r}: only s3://bucket/prefix object storage is supported")
        bucket, _, prefix = rest.partition("/")
        if not _BUCKET.match(bucket):
            raise ValueError(f"{uri!r}: {bucket!r} is not a valid bucket name")
        prefix = prefix.rstrip("/")
        if prefix and any(_unsafe(s) for s in prefix.split("/")):
            raise ValueError(f"{uri!r}: the prefix must be plain key segments (no '..', '//')")
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("https://", "http://")):
            raise ValueError(f"endpoint_url {url!r} must be an http(s) URL")
        return url

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        return self.uri.removeprefix("s3://").partition("/")[0]

    @property
    def prefix(self) -> str:
        """The key prefix every object of the root starts with (no trailing ``/``; may be "")."""
        return self.uri.removeprefix("s3://").partition("/")[2]

    def key_of(self, relative: tuple[str, ...]) -> str:
        """The object key of a path inside the root (its segments already checked)."""
        if not relative or any(_unsafe(s) for s in relative):
            raise BadInputError(f"{'/'.join(relative)!r} is not a plain path inside {self.uri}")
        return "/".join((self.prefix, *relative) if self.prefix else relative)

    def bind_cache(self, name: str, *, cache: Path | None, workspace: Path) -> ObjectRoot:
        """A copy that materialises under ``cache`` (default: in the workspace found there)."""
        bound = self.model_copy()
        bound._name = name
        bound._cache = cache
        bound._workspace = workspace
        return bound

    def cache_folder(self) -> Path:
        """The server-private folder this root's inputs are downloaded into.

        Raises:
            BadInputError: The root was not bound to a server's workspace.

        """
        if self._cache is not None:
            return self._cache
        if self._workspace is None:
            raise BadInputError(f"{self.uri}: this object root has no cache folder")
        from ftguard.control import find_workspace

        return find_workspace(self._workspace).path / "cache" / "objects" / self._name


def validation_problems(exc: ValidationError) -> str:
    """A pydantic error about an object root as one line."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'uri'}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()
    )


def parse_root(uri: str) -> ObjectRoot:
    """The object root a URI names (``s3://bucket/prefix``).

    Raises:
        BadInputError: Not a supported object-storage URI.

    """
    try:
        return ObjectRoot(uri=uri)
    except ValidationError as exc:
        raise BadInputError(validation_problems(exc)) from None


def _client(root: ObjectRoot) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise MissingDependencyError("boto3", "s3") from exc
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=root.endpoint_url,
        region_name=root.region,
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )


@contextmanager
def _storage_errors(root: ObjectRoot, doing: str) -> Iterator[None]:
    """Turn botocore's failures (no credentials, refused, unreachable) into one clear line."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "error")
        message = error.get("Message", "")
        raise BadInputError(
            f"object storage {root.uri}: cannot {doing}: {code} {message}".rstrip()
        ) from None
    except (BotoCoreError, Boto3Error) as exc:
        raise BadInputError(f"object storage {root.uri}: cannot {doing}: {exc}") from None


def _head_size(client: Any, root: ObjectRoot, key: str) -> int | None:
    from botocore.exceptions import ClientError

    try:
        answer = client.head_object(Bucket=root.bucket, Key=key)
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404 or exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            return None
        raise
    return int(answer["ContentLength"])


def _list(client: Any, root: ObjectRoot, prefix: str, limit: int) -> list[tuple[str, int]]:
    """Keys and sizes under ``prefix`` (at most ``limit + 1``: one more means too many)."""
    found: list[tuple[str, int]] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=root.bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found.append((str(item["Key"]), int(item["Size"])))
            if len(found) > limit:
                return found
    return found


def _plan(
    client: Any, root: ObjectRoot, key: str, *, label: str
) -> list[tuple[str, tuple[str, ...], int]]:
    """What to download for ``key``: (object key, local relative parts, size) each.

    A single object has the parts ``()``; a folder's members their path under it.
    """
    limit = root.max_objects
    single = _head_size(client, root, key)
    members = _list(client, root, key + "/", limit)
    plan: list[tuple[str, tuple[str, ...], int]] = []
    for member, size in members:
        relative = member[len(key) + 1 :]
        if relative.endswith("/") and size == 0:
            continue  # a "folder marker" some consoles create: no content
        parts = tuple(relative.split("/"))
        if any(_unsafe(p) for p in parts):
            raise BadInputError(
                f"{label}: the object {member!r} would make an unsafe local name "
                "(empty, '.', '..', a backslash or a NUL in its path)"
            )
        plan.append((member, parts, size))
    if single is not None and plan:
        raise BadInputError(f"{label}: is both an object and a folder of objects: rename one")
    if single is not None:
        plan = [(key, (), single)]
    if not plan:
        raise BadInputError(f"{label}: does not exist under its storage root")
    if len(plan) > limit:
        raise BadInputError(
            f"{label}: holds more than {limit} objects (the root's max_objects): refused"
        )
    total = sum(size for _, _, size in plan)
    if total > root.max_bytes:
        raise BadInputError(
            f"{label}: holds {total} bytes, more than the root's max_bytes ({root.max_bytes})"
        )
    names = {parts for _, parts, _ in plan}
    for _, parts, _ in plan:
        for cut in range(1, len(parts)):
            if parts[:cut] in names:
                raise BadInputError(
                    f"{label}: {'/'.join(parts[:cut])!r} is both an object and a folder: rename one"
                )
    return plan


def _download(client: Any, root: ObjectRoot, key: str, target: Path, size: int, label: str) -> int:
    """Stream one object to ``target`` (new); more bytes than listed is refused."""
    answer = client.get_object(Bucket=root.bucket, Key=key)
    body = answer["Body"]
    written = 0
    try:
        with open(target, "xb") as out:
            for chunk in body.iter_chunks(_BLOCK):
                written += len(chunk)
                if written > size:
                    raise BadInputError(
                        f"{label}: the object {key!r} changed while it was downloaded: try again"
                    )
                out.write(chunk)
    finally:
        body.close()
    return written


def fetch(root: ObjectRoot, relative: tuple[str, ...], into: Path, *, label: str) -> Path:
    """Download the object or folder ``relative`` of ``root`` to ``into/<its name>``.

    ``into`` must exist; the result is a new file or folder there, of exactly the bytes just
    downloaded.

    Raises:
        BadInputError: Missing, unsafe, over the root's limits, or the storage refused.
        MissingDependencyError: boto3 is not installed.

    """
    key = root.key_of(relative)
    client = _client(root)
    with _storage_errors(root, f"read {key}"):
        plan = _plan(client, root, key, label=label)
        target = into / relative[-1]
        jobs: list[tuple[str, Path, int]] = []
        if plan[0][1] == ():
            jobs.append((plan[0][0], target, plan[0][2]))
        else:
            for member, parts, size in plan:
                destination = target.joinpath(*parts)
                destination.parent.mkdir(parents=True, exist_ok=True)
                jobs.append((member, destination, size))

        def get(job: tuple[str, Path, int]) -> int:
            return _download(client, root, job[0], job[1], job[2], label)

        try:
            with ThreadPoolExecutor(max_workers=min(_WORKERS, len(jobs))) as pool:
                list(pool.map(get, jobs))
        except OSError as exc:
            raise BadInputError(
                f"{label}: cannot write the download: {exc.strerror or exc}"
            ) from None
    return target


_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path, threading.Lock())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _make_room(cache: Path, target: Path) -> None:
    """Make every folder between ``cache`` and ``target`` a folder (a cached file may sit there)."""
    folder = cache
    for part in target.relative_to(cache).parts[:-1]:
        folder = folder / part
        try:
            mode = folder.lstat().st_mode
        except FileNotFoundError:
            folder.mkdir()
            continue
        if not stat.S_ISDIR(mode):
            folder.unlink()
            folder.mkdir()


def materialise(root: ObjectRoot, relative: tuple[str, ...], *, label: str) -> Path:
    """Download ``relative`` afresh into the root's cache folder; its local path there.

    The download goes to a scratch folder first and is then renamed into place, so the path
    holds either the previous download or this one, never a partial one. Concurrent requests
    for the same path in this process take turns.

    Raises:
        BadInputError: Missing, unsafe, over the root's limits, or the storage refused.
        MissingDependencyError: boto3 is not installed.

    """
    cache = root.cache_folder()
    target = cache.joinpath(*relative)
    cache.mkdir(parents=True, exist_ok=True)
    with _lock_for(target):
        scratch = cache.parent / f".incoming-{secrets.token_hex(8)}"
        (scratch / "new").mkdir(mode=0o700, parents=True)
        try:
            fresh = fetch(root, relative, scratch / "new", label=label)
            _make_room(cache, target)
            if target.is_file() and fresh.is_file() and not target.is_symlink():
                os.replace(fresh, target)
            else:
                old = scratch / "previous"
                if target.exists() or target.is_symlink():
                    os.rename(target, old)
                os.rename(fresh, target)
        except OSError as exc:
            raise BadInputError(
                f"{label}: cannot place the download in the cache: {exc.strerror or exc}"
            ) from None
        finally:
            _remove(scratch)
    return target


def occupied(root: ObjectRoot, relative: tuple[str, ...]) -> bool:
    """Whether an object, or any object under the folder prefix, exists at ``relative``."""
    key = root.key_of(relative)
    client = _client(root)
    with _storage_errors(root, f"read {key}"):
        return _head_size(client, root, key) is not None or bool(_list(client, root, key + "/", 0))


def _files_under(source: Path) -> list[tuple[Path, tuple[str, ...]]]:
    """Every regular file of ``source`` (a file or folder); links and special files refused."""
    mode = source.lstat().st_mode
    if stat.S_ISREG(mode):
        return [(source, ())]
    if not stat.S_ISDIR(mode):
        raise BadInputError(f"{source} is not a regular file or folder: not uploaded")
    found: list[tuple[Path, tuple[str, ...]]] = []
    for folder, dirs, files in os.walk(source, followlinks=False):
        for name in sorted(dirs + files):
            path = Path(folder) / name
            kind = path.lstat().st_mode
            if stat.S_ISDIR(kind):
                continue
            if not stat.S_ISREG(kind):
                raise BadInputError(
                    f"{path} is a link or a special file: the output is not uploaded"
                )
            found.append((path, path.relative_to(source).parts))
    if not found:
        raise BadInputError(f"{source} is empty: nothing to upload")
    return found


def upload(root: ObjectRoot, relative: tuple[str, ...], source: Path) -> int:
    """Upload a file or folder to ``relative`` in ``root``; returns the number of objects.

    Raises:
        BadInputError: A link or special file in ``source``, or the storage refused.
        MissingDependencyError: boto3 is not installed.

    """
    key = root.key_of(relative)
    files = _files_under(source)
    client = _client(root)

    def put(item: tuple[Path, tuple[str, ...]]) -> None:
        client.upload_file(str(item[0]), root.bucket, "/".join((key, *item[1])))

    with (
        _storage_errors(root, f"write {key}"),
        ThreadPoolExecutor(max_workers=min(_WORKERS, len(files))) as pool,
    ):
        list(pool.map(put, files))
    return len(files)
