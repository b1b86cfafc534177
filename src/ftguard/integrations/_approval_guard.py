"""ApprovalGuard: the trainer-side check that a run is approved.

A transformers ``TrainerCallback`` that, in ``on_train_begin``, performs the launcher's
verification (signatures, quorum, separation of duties, expiry, input digests). Started by
``ftguard run``, it checks the run token the launcher handed over, re-verifies the approvals
that run consumed, and refuses a dataset or base model (``inputs``) that is not the run's
staged, approved copy. Started directly with ``ApprovalGuard(job_id=...)``, it starts the run
itself as the launcher would; such a run trains whatever its script reads, so it is an
*unbound* run: allowed only where the policy allows free-form runs, and blocked by the gate
unless the policy says otherwise. Without an approved job it raises
:class:`ftguard.errors.VerificationError` before the first training step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ftguard.errors import MissingDependencyError, VerificationError

__all__ = ["make_approval_guard_class", "verify_remote_ticket"]


def verify_remote_ticket(ticket: Path, *, job_id: str, token: str, inputs: dict[str, Path]) -> None:
    """Check a team server's run ticket offline: the pinned key, the staged copies, the job.

    Raises:
        VerificationError: Unpinned key, a ticket that does not verify or is for another job,
            or inputs outside the staged copies.

    """
    from ftguard.attest import load_public_key_file
    from ftguard.control import verify_ticket_run

    key_file = os.environ.get("FTGUARD_SERVER_KEY")
    if not key_file:
        raise VerificationError("training refused: FTGUARD_SERVER_KEY (the pinned key) is unset")
    staged = {
        kind: Path(os.environ[f"FTGUARD_STAGED_{kind.upper()}"])
        for kind in ("dataset", "base_model", "config")
        if os.environ.get(f"FTGUARD_STAGED_{kind.upper()}")
    }
    check = verify_ticket_run(
        ticket, load_public_key_file(Path(key_file)), token=token, staged=staged, inputs=inputs
    )
    if check.job_id != job_id:
        raise VerificationError(f"training refused: the run ticket is for job {check.job_id}")


def make_approval_guard_class() -> type:
    """Build the ``ApprovalGuard`` class (imports transformers)."""
    try:
        from transformers import TrainerCallback
    except ImportError as exc:  # pragma: no cover - exercised without the ml extra
        raise MissingDependencyError("transformers", "ml") from exc

    from ftguard.control import (
        RunTicket,
        default_actor,
        find_workspace,
        finish_run,
        start_run,
        verify_running,
    )

    class ApprovalGuard(TrainerCallback):  # type: ignore[misc]
        """Refuses to train unless the job is approved and its inputs are unchanged."""

        def __init__(
            self,
            job_id: str | None = None,
            *,
            run_token: str | None = None,
            workspace: str | Path | None = None,
            actor: str | None = None,
            inputs: dict[str, str | Path] | None = None,
        ) -> None:
            self.job_id = job_id
            self.run_token = run_token
            self.inputs = {k: Path(v) for k, v in (inputs or {}).items()}
            self.workspace_path = Path(workspace) if workspace else None
            self.actor = actor or default_actor()
            self._ticket: RunTicket | None = None
            self.verified = False

        @classmethod
        def from_env(cls, inputs: dict[str, str | Path] | None = None) -> ApprovalGuard:
            """Configure from the environment ``ftguard run`` sets (FTGUARD_JOB, ...).

            ``inputs``: the dataset and base model paths the trainer reads
            (``{"dataset": ..., "base_model": ...}``), checked against the staged copies.
            """
            return cls(
                os.environ.get("FTGUARD_JOB"),
                run_token=os.environ.get("FTGUARD_RUN_TOKEN"),
                workspace=os.environ.get("FTGUARD_HOME"),
                inputs=inputs,
            )

        def _workspace(self) -> Any:
            if self.workspace_path is not None:
                os.environ.setdefault("FTGUARD_HOME", str(self.workspace_path))
            return find_workspace()

        def verify(self) -> None:
            """Run the verification now (``on_train_begin`` calls it)."""
            if not self.job_id:
                raise VerificationError(
                    "training refused: no approved ftguard job; start it with "
                    "'ftguard run JOB -- CMD' or pass ApprovalGuard(job_id=...)"
                )
            ticket = os.environ.get("FTGUARD_RUN_TICKET")
            if self.run_token and ticket:
                self._verify_remote(Path(ticket))
                self.verified = True
                return
            ws = self._workspace()
            if self.run_token:
                verify_running(ws, job_id=self.job_id, token=self.run_token, inputs=self.inputs)
            else:
                self._ticket = start_run(
                    ws,
                    actor=self.actor,
                    job_id=self.job_id,
                    command=["<trainer started with ApprovalGuard>"],
                )
            self.verified = True

        def _verify_remote(self, ticket: Path) -> None:
            """A run started against a team server: check its ticket offline."""
            verify_remote_ticket(
                ticket, job_id=str(self.job_id), token=str(self.run_token), inputs=self.inputs
            )

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            self.verify()
            return control

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if self._ticket is not None:
                finish_run(
                    self._workspace(),
                    actor=self.actor,
                    job_id=self._ticket.job_id,
                    token=self._ticket.token,
                    exit_code=0,
                    output_path=str(getattr(args, "output_dir", "")) or None,
                )
                self._ticket = None
            return control

    return ApprovalGuard
