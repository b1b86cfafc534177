from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ftguard.digests import manifest_of
from ftguard.errors import BadInputError


def _folder(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)) * 10)
    return root


def test_file_digest_is_plain_sha256(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl"
    f.write_bytes(b"hello\n")
    m = manifest_of(f)
    assert m.root == hashlib.sha256(b"hello\n").hexdigest()
    assert m.subject() == {"name": "x.jsonl", "digest": {"sha256": m.root}}


def test_folder_root_changes_with_one_byte_and_with_files(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "m")
    base = manifest_of(folder)
    assert [f.path for f in base.files] == ["a.txt", "sub/b.bin"]
    data = bytearray((folder / "sub" / "b.bin").read_bytes())
    data[1000] ^= 1
    (folder / "sub" / "b.bin").write_bytes(bytes(data))
    changed = manifest_of(folder)
    assert changed.root != base.root
    assert base.differences(changed) == ["changed: sub/b.bin"]
    (folder / "extra").write_text("")
    added = manifest_of(folder)
    assert base.differences(added) == ["added: extra", "changed: sub/b.bin"]
    (folder / "a.txt").unlink()
    assert "removed: a.txt" in base.differences(manifest_of(folder))
    (folder / "a.txt").write_text("alpha")
    (folder / "extra").unlink()
    (folder / "sub" / "b.bin").write_bytes(bytes(range(256)) * 10)
    assert manifest_of(folder).root == base.root


def test_rename_changes_root(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "m")
    before = manifest_of(folder).root
    (folder / "a.txt").rename(folder / "c.txt")
    assert manifest_of(folder).root != before


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such file"):
        manifest_of(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="empty"):
        manifest_of(tmp_path / "empty")
