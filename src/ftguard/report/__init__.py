"""Reports: the per-job HTML report."""

from __future__ import annotations

from ftguard.report._job import render_evidence_html, write_job_report

__all__ = ["render_evidence_html", "write_job_report"]
