"""Jobs at the gate for the integration tests (the gate tests' own helpers)."""

from __future__ import annotations

from pathlib import Path

from ftguard.control import service
from tests.control.conftest import Env
from tests.gate.test_gate import _evidence, _trained


def passed_job(cp: Env, name: str = "job") -> tuple[str, Path, Path]:
    """A job that passed the gate: (its id, its output folder, its attestation file)."""
    job, adapter = _trained(cp, name)
    _evidence(cp, job, review="pass", weights="pass", behavior="pass")
    outcome = service.decide_gate(cp.ws, actor="sec", job_id=job)
    assert outcome.decision.decision == "pass" and outcome.attestation_path is not None
    return job, adapter, outcome.attestation_path


def blocked_job(cp: Env, name: str = "bad") -> str:
    """A job the gate blocked (its behaviour comparison blocks)."""
    job, _ = _trained(cp, name)
    _evidence(cp, job, review="pass", weights="pass", behavior="block")
    assert service.decide_gate(cp.ws, actor="sec", job_id=job).decision.decision == "block"
    return job
