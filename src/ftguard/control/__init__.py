"""The control plane: workspace, identities, jobs, approvals, runs and the audit log.

The use cases are in :mod:`ftguard.control.service`; what the other faces of the control
plane (the CLI, the team server, the training-side guard) need besides them is exported
here, so that no other package reaches into this one's private modules. That includes the
primitives an integration composes its own audited use case from (the MLflow registry, the
webhooks): :func:`acting`, :func:`authenticate`, :func:`require_role`, :func:`checked_job`,
:func:`append_event`, :func:`now_iso` and :func:`parse_payload`.
"""

from __future__ import annotations

from ftguard.control._audit import AuditEvent, AuditVerification, ChainCache, append_event
from ftguard.control._chain import ChainState, key_request_message, parse_payload
from ftguard.control._delegation import note_token_use
from ftguard.control._identities import (
    Caller,
    acting,
    authenticate,
    chain_state,
    chain_view,
    check_witness,
    name_of,
    policy_in_force,
    private_key_path,
    require_role,
)
from ftguard.control._jobs import JobView, chain_evidence, checked_job
from ftguard.control._offload import AnalysisFailedError, AnalysisPool
from ftguard.control._remote_runs import start_remote_run, verify_run_ticket, verify_ticket_run
from ftguard.control._runs import (
    RunTicket,
    abort_run,
    check_command_files,
    fill_command,
    finish_run,
    fresh_run_folder,
    python_isolation,
    run_output_reference,
    start_run,
    verify_running,
)
from ftguard.control._staging import INPUT_KINDS, stage_into
from ftguard.control._states import TRANSITIONS, JobState
from ftguard.control._witness import open_witness
from ftguard.control._workspace import (
    Workspace,
    default_actor,
    find_workspace,
    now_iso,
    user_keys_dir,
)

__all__ = [
    "abort_run",
    "INPUT_KINDS",
    "TRANSITIONS",
    "AnalysisFailedError",
    "AnalysisPool",
    "AuditEvent",
    "AuditVerification",
    "Caller",
    "ChainCache",
    "ChainState",
    "JobState",
    "JobView",
    "RunTicket",
    "Workspace",
    "acting",
    "append_event",
    "authenticate",
    "chain_evidence",
    "chain_state",
    "check_command_files",
    "check_witness",
    "chain_view",
    "checked_job",
    "default_actor",
    "fill_command",
    "find_workspace",
    "finish_run",
    "fresh_run_folder",
    "key_request_message",
    "name_of",
    "note_token_use",
    "now_iso",
    "open_witness",
    "parse_payload",
    "policy_in_force",
    "python_isolation",
    "private_key_path",
    "require_role",
    "run_output_reference",
    "stage_into",
    "user_keys_dir",
    "start_remote_run",
    "start_run",
    "verify_run_ticket",
    "verify_running",
    "verify_ticket_run",
]
