"""Commands are imported on demand: the map of root commands to modules is right, and the
help lists them in the same order whichever command a process ran first."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import importlib, json
from ftguard.cli import COMMAND_MODULES, _MODULE_ORDER
from ftguard.cli._app import app
owner = {}
for module in _MODULE_ORDER:
    before = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    importlib.import_module("ftguard.cli." + module)
    after = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    owner.update(dict.fromkeys(after - before, module))
print(json.dumps([owner, COMMAND_MODULES]))
"""

_HELP_TWICE = """
import contextlib, io
from ftguard.cli import main
def help_text(argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(argv)
    return out.getvalue()
if {first!r}:
    help_text({first!r})
print(help_text(["--help"]))
"""


def _run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout


def test_every_root_command_maps_to_the_module_that_registers_it() -> None:
    owner, mapping = json.loads(_run(_PROBE))
    assert owner == mapping


def test_help_is_the_same_whichever_command_ran_first() -> None:
    fresh = _run(_HELP_TWICE.format(first=[]))
    after_weights = _run(_HELP_TWICE.format(first=["weights", "--help"]))
    assert "weights" in fresh and "audit" in fresh
    assert after_weights.endswith(fresh)
    rows = [line.split()[1] for line in fresh.splitlines() if line.startswith("│ ")]
    assert rows.index("audit") < rows.index("job") < rows.index("weights") < rows.index("policy")
