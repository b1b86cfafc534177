"""Who may read which jobs on the team server.

A job, its evidence, its attestation and its audit events are read by the people it concerns:
its requester, the data preparer it names, and the holders of a role that acts on other
people's jobs: approvers, security reviewers and admins, who need the whole queue to do their
work, and runners (a training service's identity), who need the jobs they may run, so from
their approval on. A user who holds no such role (a requester on a team of many) reads only
their own jobs: another team's dataset paths, purposes, review findings and failed
evaluations are not theirs to read.

A job someone may not read is answered as if it did not exist, so that its id says nothing.

In local mode every user reads the workspace's database and files themselves, so the rule can
only hold on the team server; the threat model says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, select

from ftguard.control._states import APPROVED_ONWARD
from ftguard.store import AuditEventRow, JobRow

__all__ = ["READS_EVERY_JOB", "JobReader"]

READS_EVERY_JOB: frozenset[str] = frozenset({"approver", "security_reviewer", "admin"})
"""Roles whose holders read every job: each acts on jobs other people requested."""


@dataclass(frozen=True)
class JobReader:
    """A signed-in user, as far as reading jobs goes."""

    name: str
    every_job: bool
    """Whether they hold a role in :data:`READS_EVERY_JOB`."""
    approved_jobs: bool = False
    """Whether they hold the ``runner`` role: every job from its approval on."""

    @classmethod
    def for_roles(cls, name: str, roles: set[str] | frozenset[str]) -> JobReader:
        return cls(
            name=name,
            every_job=bool(READS_EVERY_JOB & set(roles)),
            approved_jobs="runner" in roles,
        )

    def may_read(self, requester: str, preparer: str, state: str) -> bool:
        """Whether they may read a job with this requester, data preparer and state."""
        return (
            self.every_job
            or self.name in (requester, preparer)
            or (self.approved_jobs and state in APPROVED_ONWARD)
        )

    def jobs_filter(self) -> ColumnElement[bool] | None:
        """A ``WHERE`` clause on :class:`JobRow` for the jobs they may read (None: all)."""
        if self.every_job:
            return None
        mine = or_(JobRow.requester == self.name, JobRow.preparer == self.name)
        if self.approved_jobs:
            return or_(mine, JobRow.state.in_(sorted(APPROVED_ONWARD)))
        return mine

    def events_filter(self) -> ColumnElement[bool] | None:
        """A ``WHERE`` clause on :class:`AuditEventRow` (None: all).

        The events of the jobs they may read, and the events they made themselves.
        """
        jobs = self.jobs_filter()
        if jobs is None:
            return None
        return or_(
            AuditEventRow.job_id.in_(select(JobRow.id).where(jobs)),
            AuditEventRow.actor == self.name,
        )
