"""``ftguard doctor``: what is installed, what this CLI would use, and what is still to come.

Every check is a function returning :class:`Check`; :func:`diagnose` runs them all. None of them
downloads anything, connects to a database or server, or imports torch, transformers or the
embedded model packages: packages are found with :func:`importlib.util.find_spec` and their
distribution metadata, torch's build is read from its ``torch/version.py`` without running it,
and the cached models are found by their folder names.
"""

from __future__ import annotations

import platform
import sys

from ftguard import __version__
from ftguard.cli._doctor._install import (
    check_extras,
    check_install,
    check_kernel,
    check_torch,
    requirements,
)
from ftguard.cli._doctor._local import (
    check_builds,
    check_cache,
    check_models,
    check_server,
    check_workspace,
)
from ftguard.cli._doctor._model import Check, DoctorReport, Status

__all__ = ["Check", "DoctorReport", "Status", "diagnose"]


def diagnose() -> DoctorReport:
    """Run every check; ``core_ok`` is false when a check marked ``core`` is an ``error``."""
    from ftguard.models import cache_root

    reqs = requirements()
    cache = cache_root()
    checks = [
        *check_install(reqs),
        check_kernel(),
        *check_extras(reqs),
        check_torch(reqs),
        *check_models(cache),
        *check_workspace(),
        check_server(),
        check_cache(cache),
        *check_builds(cache),
    ]
    return DoctorReport(
        ftguard=__version__,
        python=f"{platform.python_version()} ({sys.executable})",
        core_ok=not any(c.core and c.status == "error" for c in checks),
        checks=checks,
    )
