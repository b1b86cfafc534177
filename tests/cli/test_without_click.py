"""The CLI runs where click itself is not installed (current typer vendors its own copy)."""

from __future__ import annotations

import subprocess
import sys


def _run(script: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done


def test_the_cli_starts_and_reports_usage_errors_without_click() -> None:
    script = (
        "import sys; sys.modules['click'] = None\n"  # as if click were not installed
        "from ftguard.cli import main\n"
        "assert main(['--help']) == 0\n"
        "assert main(['no-such-command']) == 2\n"
        "assert 'click' not in [m.split('.')[0] for m in sys.modules if sys.modules[m]]\n"
    )
    assert "Traceback" not in _run(script).stderr


def test_version() -> None:
    from ftguard import __version__

    done = subprocess.run(
        [sys.executable, "-m", "ftguard", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == f"ftguard {__version__}"


def test_version_loads_no_command() -> None:
    script = (
        "import sys\n"
        "from ftguard.cli import main\n"
        "assert main(['--version']) == 0\n"
        "assert not [m for m in sys.modules if m.startswith(('ftguard.control', 'sqlalchemy'))]\n"
        "assert not [m for m in sys.modules if m.startswith('ftguard.cli.') and\n"
        "            m.split('.')[2] in ('weights', 'jobs', 'server', 'review')]\n"
    )
    assert _run(script).stdout.strip().startswith("ftguard ")
