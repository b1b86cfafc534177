"""The Ray runtime the distributed engines run on (``ftguard[ray]``).

:func:`ray_runtime` connects to the cluster named by ``RAY_ADDRESS`` (``ray://host:10001``
or ``host:6379``), or starts a local Ray runtime on this machine when it is unset; a
runtime the caller already started (``ray.init`` before calling ftguard) is used as it is.
Ray is imported here, inside functions, and nowhere else in the control plane.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ftguard.errors import BadInputError

__all__ = ["RAY_EXTRA", "cluster_resources", "import_ray", "ray_runtime"]

RAY_EXTRA = 'pip install "ftguard[ray]"'
"""How to install the Ray engine's dependencies (named in the error when Ray is missing)."""


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or one clear error naming the extra.

    Raises:
        BadInputError: Ray (or Ray Data) is not installed.

    """
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data ships in the ray[data] extra)
    except ImportError as exc:
        raise BadInputError(
            f"the ray engine needs Ray and Ray Data, which are not installed ({exc.name}): "
            f"{RAY_EXTRA}"
        ) from None
    return ray


@contextmanager
def ray_runtime() -> Iterator[Any]:
    """Yield ``ray`` connected to a cluster; disconnect afterwards if this call connected.

    ``RAY_ADDRESS`` names the cluster; without it a local runtime is started for the call
    and stopped after it. Ray's own progress bars and INFO logs are turned off (ftguard
    shows its own progress).

    Raises:
        BadInputError: Ray is not installed, or the cluster cannot be reached.

    """
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS") or None
        options: dict[str, Any] = {}
        if address and _on_loopback(address):  # a cluster on this machine's loopback only
            options["_node_ip_address"] = "127.0.0.1"
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
                configure_logging=True,
                **options,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray runtime"
            raise BadInputError(f"cannot connect to {where} ({exc})") from None
        started = True
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.execution_options.preserve_order = True
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _on_loopback(address: str) -> bool:
    """Whether ``host:port`` names this machine's loopback (not a ``ray://`` client address)."""
    host = address.rpartition(":")[0] if ":" in address else address
    return not address.startswith("ray://") and (host == "localhost" or host.startswith("127."))


def cluster_resources(ray: Any) -> tuple[int, int]:
    """The cluster's CPUs and GPUs (whole units; at least one CPU)."""
    res = ray.cluster_resources()
    return max(1, int(res.get("CPU", 1))), int(res.get("GPU", 0))
