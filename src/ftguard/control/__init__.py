"""The control plane: workspace, identities, jobs, approvals, runs and the audit log."""

from __future__ import annotations

from ftguard.control._audit import AuditEvent, AuditVerification
from ftguard.control._states import TRANSITIONS, JobState
from ftguard.control._workspace import Workspace, default_actor, find_workspace

__all__ = [
    "TRANSITIONS",
    "AuditEvent",
    "AuditVerification",
    "JobState",
    "Workspace",
    "default_actor",
    "find_workspace",
]
