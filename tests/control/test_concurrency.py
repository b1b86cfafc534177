"""Two approvers and two launchers acting at once leave one consistent state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ftguard.control import service

from .conftest import Env


def _spawn(cp: Env, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, **cp.env}
    return subprocess.Popen(
        [sys.executable, "-m", "ftguard", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_two_approvers_then_two_launchers_at_once(cp: Env, tmp_path: Path) -> None:
    for round_ in range(2):
        out = tmp_path / f"ran{round_}.txt"
        script = (
            f"import shutil, sys; open({str(out)!r}, 'a').write('run\\n'); "
            "shutil.copytree(sys.argv[1], sys.argv[2])"
        )
        job = cp.submit(
            f"job{round_}", command=["python", "-c", script, "{base_model}", "{output}"]
        )
        approvers = [_spawn(cp, "approve", job, "--as", who) for who in ("bob", "carol")]
        codes = [p.wait(timeout=120) for p in approvers]
        assert codes == [0, 0], [p.stderr.read() for p in approvers if p.stderr]
        view = service.get_job(cp.ws, job)
        assert view.state == "approved"
        assert sorted(a["approver"] for a in view.approvals) == ["bob", "carol"]

        launchers = [_spawn(cp, "run", job, "--as", "alice") for _ in range(2)]
        results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in launchers]
        codes = sorted(code for code, _ in results)
        assert codes[0] == 0 and codes[1] in (5, 6), results
        assert out.read_text() == "run\n"
        view = service.get_job(cp.ws, job)
        assert view.state == "trained" and view.run_count == 1
        actions = [e.action for e in service.iter_audit(cp.ws, job_id=job)]
        assert actions.count("job.approve") == 2
        assert actions.count("job.approved") == 1
        assert actions.count("run.start") == 1 and actions.count("run.end") == 1
    check = service.verify_audit(cp.ws)
    assert check.ok, check.problem
