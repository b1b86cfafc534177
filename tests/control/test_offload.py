"""Analyses in worker processes: results, errors and a dead worker come back as they should."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ftguard.control._offload import AnalysisFailedError, AnalysisPool, run_here
from ftguard.errors import EXIT_DEPENDENCY, MissingDependencyError


def _pid_and_niceness(value: int) -> tuple[int, int, int]:
    return os.getpid(), os.nice(0), value * 2


def _needs_an_extra() -> None:
    raise MissingDependencyError("sentence_transformers", "ml")


def _die() -> None:
    os._exit(3)  # what the OOM killer does to a worker, as far as the pool can tell


@pytest.fixture
def pool() -> Iterator[AnalysisPool]:
    analyses = AnalysisPool(1, niceness=5)
    try:
        yield analyses
    finally:
        analyses.shutdown()


def test_an_analysis_runs_in_a_lower_priority_process_and_returns_its_result(
    pool: AnalysisPool,
) -> None:
    pid, niceness, doubled = pool(_pid_and_niceness, 21)
    assert doubled == 42
    assert pid != os.getpid()
    assert niceness >= os.nice(0) + 5 or niceness == 19  # capped at the lowest priority
    assert pool(_pid_and_niceness, 1)[0] == pid  # the worker is reused (models stay loaded)
    assert run_here(_pid_and_niceness, 2)[0] == os.getpid()


def test_an_error_crosses_with_its_type_message_and_exit_code(pool: AnalysisPool) -> None:
    with pytest.raises(MissingDependencyError, match=r"ftguard\[ml\]") as caught:
        pool(_needs_an_extra)
    assert caught.value.exit_code == EXIT_DEPENDENCY


def test_a_dead_worker_fails_its_analysis_and_the_next_one_gets_a_fresh_worker(
    pool: AnalysisPool,
) -> None:
    first = pool(_pid_and_niceness, 0)[0]
    with pytest.raises(AnalysisFailedError, match="stopped before it answered"):
        pool(_die)
    again = pool(_pid_and_niceness, 0)[0]
    assert again not in (first, os.getpid())


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        AnalysisPool(0)
