"""The issue's corpus: each input that once ended in a traceback now ends in one line and a
documented exit code (the fuzz suite in test_fuzz.py explores around these)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from ftguard.attest import generate_key
from ftguard.errors import (
    EXIT_BAD_INPUT,
    EXIT_DATABASE,
    EXIT_DEPENDENCY,
    EXIT_NOT_FOUND,
    EXIT_VERIFICATION,
)
from tests.cli._cli import assert_clean, assert_one_error, cli, cli_subprocess

DEEP_JSON = "[" * 100_000 + "]" * 100_000
DEEP_YAML = "a: " + "[" * 100_000 + "]" * 100_000 + "\n"
HUGE_INT = "1" * 5000
BINARY = bytes(range(256)) * 8
NO_EMB = ("--no-embeddings", "--workers", "1", "--json")


def _write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def _dataset(folder: Path) -> Path:
    return _write(folder, "train.jsonl", '{"instruction": "hi", "output": "hello"}\n')


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- typer/click usage errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["no-such-command"],
        ["review", "--no-such-option"],
        ["review"],
        ["policy", "check"],
        ["job", "show"],
        ["weights", "diff", "only-one"],
        ["verify-deployment", "model"],
        ["review", "x.jsonl", "--workers", "many"],
    ],
)
def test_usage_errors_print_clicks_usage_and_exit_2(
    isolated: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    r = cli(capsys, *args)
    assert_clean(r)
    assert r.code == EXIT_BAD_INPUT
    assert f"Usage: ftguard {args[0]}" in r.err or "Usage: ftguard [OPTIONS]" in r.err
    assert "Error:" in r.err


def test_no_arguments_prints_the_help_and_exits_2(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = cli(capsys)
    assert_clean(r)
    assert r.code == EXIT_BAD_INPUT
    assert "Usage: ftguard" in r.out + r.err


# -- deep nesting and huge integers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [("deep.yaml", DEEP_YAML), ("huge.yaml", f"approval:\n  quorum: {HUGE_INT}\n")],
)
def test_policy_check_deep_or_huge(
    isolated: Path, capsys: pytest.CaptureFixture[str], name: str, content: str
) -> None:
    path = _write(isolated, name, content)
    assert_one_error(cli(capsys, "policy", "check", str(path)), EXIT_BAD_INPUT, name)


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("deep.jsonl", '{"a": ' + DEEP_JSON + "}\n", "nested too deeply"),
        ("deep.json", DEEP_JSON, "nested too deeply"),
        ("huge.jsonl", '{"instruction": "x", "output": ' + HUGE_INT + "}\n", "4300 digits"),
        ("huge.json", '[{"instruction": "x", "output": ' + HUGE_INT + "}]", "4300 digits"),
    ],
)
def test_review_deep_or_huge_dataset(
    isolated: Path, capsys: pytest.CaptureFixture[str], name: str, content: str, why: str
) -> None:
    path = _write(isolated, name, content)
    assert_one_error(cli(capsys, "review", str(path), *NO_EMB), EXIT_BAD_INPUT, name, why)


def test_review_deep_record_among_good_ones_is_a_finding(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = '{"instruction": "hi", "output": "hello"}\n'
    path = _write(isolated, "mixed.jsonl", good * 3 + '{"a": ' + DEEP_JSON + "}\n" + good)
    r = cli(capsys, "review", str(path), *NO_EMB)
    assert_clean(r)
    review = json.loads(r.out)
    assert review["examples"] == 5  # the unreadable record counts, as a finding
    assert r.code == 1 and "1 of 5 records cannot" in review["verdict_reasons"][0]


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("deep.yaml", DEEP_YAML, "nested too deeply"),
        ("deep.json", DEEP_JSON, "nested too deeply"),
        ("deeper.json", '{"a": ' + "[" * 200 + "]" * 200 + "}", "nested more than"),
        ("huge.json", '{"sources": ' + HUGE_INT + "}", "4300 digits"),
        ("huge.yaml", f"sources: {HUGE_INT}\n", "4300 digits"),
        ("binary.yaml", BINARY, "not UTF-8"),
        ("list.yaml", "- a\n- b\n", "must be a mapping"),
    ],
)
def test_review_bad_provenance(
    isolated: Path, capsys: pytest.CaptureFixture[str], name: str, content: str | bytes, why: str
) -> None:
    prov = _write(isolated, name, content)
    r = cli(capsys, "review", str(_dataset(isolated)), "--provenance", str(prov), *NO_EMB)
    assert_one_error(r, EXIT_BAD_INPUT, name, why)


# -- binary files as attestation, key, policy, dataset ------------------------------------------


@pytest.fixture
def trusted_key(isolated: Path) -> Path:
    key = generate_key()
    return _write(isolated, "trusted.pub", key.public.b64 + "\n")


@pytest.fixture
def model_dir(isolated: Path) -> Path:
    folder = isolated / "model"
    folder.mkdir()
    _write(folder, "adapter_config.json", "{}")
    return folder


def test_binary_attestation(
    isolated: Path,
    capsys: pytest.CaptureFixture[str],
    trusted_key: Path,
    model_dir: Path,
) -> None:
    att = _write(isolated, "attestation.json", BINARY)
    r = cli(
        capsys,
        "verify-deployment",
        str(model_dir),
        "--attestation",
        str(att),
        "--trusted-key",
        str(trusted_key),
    )
    assert_one_error(r, EXIT_BAD_INPUT, "not UTF-8")


@pytest.mark.parametrize(
    ("content", "code"),
    [(DEEP_JSON, EXIT_VERIFICATION), ('{"payload": ' + HUGE_INT + "}", EXIT_VERIFICATION)],
)
def test_deep_or_huge_attestation(
    isolated: Path,
    capsys: pytest.CaptureFixture[str],
    trusted_key: Path,
    model_dir: Path,
    content: str,
    code: int,
) -> None:
    att = _write(isolated, "attestation.json", content)
    r = cli(
        capsys,
        "verify-deployment",
        str(model_dir),
        "--attestation",
        str(att),
        "--trusted-key",
        str(trusted_key),
    )
    assert_one_error(r, code, "not a DSSE envelope")


def test_binary_trusted_key(
    isolated: Path, capsys: pytest.CaptureFixture[str], model_dir: Path
) -> None:
    key = _write(isolated, "trusted.pub", BINARY)
    att = _write(isolated, "attestation.json", "{}")
    r = cli(
        capsys,
        "verify-deployment",
        str(model_dir),
        "--attestation",
        str(att),
        "--trusted-key",
        str(key),
    )
    assert_one_error(r, EXIT_BAD_INPUT)
    assert_one_error(cli(capsys, "audit", "verify", "--trusted-key", str(key)), EXIT_BAD_INPUT)


def test_binary_policy_and_dataset(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = _write(isolated, "policy.yaml", BINARY)
    assert_one_error(cli(capsys, "policy", "check", str(policy)), EXIT_BAD_INPUT, "UTF-8")
    data = _write(isolated, "data.jsonl", BINARY)
    assert_one_error(cli(capsys, "review", str(data), *NO_EMB), EXIT_BAD_INPUT, "data.jsonl")


# -- FIFOs, folders and devices where a file is meant -----------------------------------------


@pytest.fixture
def fifo(isolated: Path) -> Path:
    path = isolated / "pipe.yaml"
    os.mkfifo(path)
    return path


@pytest.mark.timeout(30)
def test_fifo_policy_is_refused_unopened(
    isolated: Path, capsys: pytest.CaptureFixture[str], fifo: Path
) -> None:
    assert_one_error(
        cli(capsys, "policy", "check", str(fifo)), EXIT_BAD_INPUT, "not a regular file"
    )


@pytest.mark.timeout(30)
def test_fifo_provenance_and_weights_are_refused_unopened(
    isolated: Path, capsys: pytest.CaptureFixture[str], fifo: Path
) -> None:
    r = cli(capsys, "review", str(_dataset(isolated)), "--provenance", str(fifo), *NO_EMB)
    assert_one_error(r, EXIT_BAD_INPUT, "not a regular file")
    r = cli(capsys, "weights", "diff", str(fifo), str(fifo))
    assert_one_error(r, EXIT_BAD_INPUT, "pipe.yaml")
    r = cli(capsys, "weights", "diff", str(isolated), str(isolated), "--policy", str(fifo))
    assert_one_error(r, EXIT_BAD_INPUT)


@pytest.mark.timeout(30)
def test_fifo_attestation_and_trusted_key_are_refused_unopened(
    isolated: Path,
    capsys: pytest.CaptureFixture[str],
    fifo: Path,
    trusted_key: Path,
    model_dir: Path,
) -> None:
    att = _write(isolated, "attestation.json", "{}")
    r = cli(
        capsys,
        "verify-deployment",
        str(model_dir),
        "--attestation",
        str(fifo),
        "--trusted-key",
        str(trusted_key),
    )
    assert_one_error(r, EXIT_BAD_INPUT, "not a regular file")
    r = cli(
        capsys,
        "verify-deployment",
        str(model_dir),
        "--attestation",
        str(att),
        "--trusted-key",
        str(fifo),
    )
    assert_one_error(r, EXIT_BAD_INPUT, "not a regular file")


@pytest.mark.parametrize("path", ["folder", "/dev/null"])
def test_policy_check_folder_or_device(
    isolated: Path, capsys: pytest.CaptureFixture[str], path: str
) -> None:
    (isolated / "folder").mkdir()
    assert_one_error(cli(capsys, "policy", "check", path), EXIT_BAD_INPUT, path)


# -- OS errors: folders that cannot be written ------------------------------------------------


def test_init_in_an_unwritable_place(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = _write(isolated, "a-file", "x")  # a file where a folder is needed: fails for root too
    r = cli(capsys, "init", str(blocker / "ws"), "--admin", "root")
    assert_one_error(r, EXIT_BAD_INPUT, "a-file")


def test_review_html_into_a_missing_folder(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = _write(isolated, "a-file", "x")
    r = cli(capsys, "review", str(_dataset(isolated)), "--html", str(blocker / "r.html"), *NO_EMB)
    assert_one_error(r, EXIT_BAD_INPUT, "r.html")


def test_key_folder_that_cannot_be_created(
    workspace_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = _write(workspace_home.parent, "a-file", "x")
    monkeypatch.setenv("FTGUARD_KEYS_DIR", str(blocker / "keys"))
    r = cli(capsys, "keys", "create", "--user", "root")
    assert_clean(r)
    assert r.code == EXIT_BAD_INPUT
    assert len(r.error_lines) == 1


# -- the database ------------------------------------------------------------------------------


def test_postgres_on_a_closed_port(
    workspace_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("psycopg", reason="needs ftguard[postgres]")
    url = f"postgresql+psycopg://someone:hunter2secret@127.0.0.1:{_closed_port()}/ftguard"
    monkeypatch.setenv("FTGUARD_DATABASE_URL", url)
    r = cli(capsys, "job", "list")
    assert_one_error(r, EXIT_DATABASE, "postgresql://127.0.0.1")
    assert "hunter2secret" not in r.err and "someone" not in r.err


@pytest.mark.parametrize(
    "url",
    [
        "mysql://someone:hunter2secret@db.example/ftguard",
        "postgresql+psycopg://someone:hunter2secret@[::1/ftguard",
        "not a url at all hunter2secret",
    ],
)
def test_unusable_database_url_never_shows_the_password(
    workspace_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    url: str,
) -> None:
    monkeypatch.setenv("FTGUARD_DATABASE_URL", url)
    r = cli(capsys, "job", "list")
    assert_one_error(r, EXIT_BAD_INPUT, "URL")
    assert "hunter2secret" not in r.err


def test_sqlite_in_a_missing_folder(
    workspace_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTGUARD_DATABASE_URL", f"sqlite:///{workspace_home}/missing/ftguard.db")
    assert_one_error(cli(capsys, "job", "list"), EXIT_DATABASE, "missing/ftguard.db")


def test_corrupted_sqlite_database(
    workspace_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = workspace_home / ".ftguard" / "ftguard.db"
    for leftover in (db.with_name("ftguard.db-wal"), db.with_name("ftguard.db-shm")):
        leftover.unlink(missing_ok=True)
    db.write_bytes(os.urandom(16384))
    for args in (["job", "list"], ["audit", "verify"], ["job", "show", "j-1"]):
        assert_one_error(cli(capsys, *args), EXIT_DATABASE, "ftguard.db", "not a database")


# -- eval without torch -------------------------------------------------------------------------

NO_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoTorch())
"""


def test_eval_without_torch_exits_7(isolated: Path) -> None:
    model = isolated / "model"
    model.mkdir()
    _write(model, "config.json", '{"model_type": "llama"}')
    for args in (["eval", str(model)], ["eval", str(model), "--baseline", str(model)]):
        r = cli_subprocess(*args, prelude=NO_TORCH, cwd=isolated)
        assert_one_error(r, EXIT_DEPENDENCY, "torch", "ftguard[ml]")
    r = cli_subprocess("eval", "--job", "j-1", prelude=NO_TORCH, cwd=isolated)
    assert_one_error(r, EXIT_DEPENDENCY, "torch")


def test_the_torch_blocker_really_blocks(isolated: Path) -> None:
    r = cli_subprocess(prelude=NO_TORCH + "import torch\n", cwd=isolated)
    assert "No module named 'torch'" in r.err


def test_unknown_job_is_not_found(workspace_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_error(cli(capsys, "job", "show", "j-nope"), EXIT_NOT_FOUND)
