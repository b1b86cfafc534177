"""The team server: the control plane over HTTP with real identities, and a web console.

``create_app(settings)`` builds the FastAPI application; ``ftguard server`` runs it with
uvicorn. The server alone holds the workspace's keys (audit, attestation, server); it
authenticates callers by API token or OIDC and signs their events with its registered key.
Needs the ``server`` extra (``pip install 'ftguard[server]'``).
"""

from __future__ import annotations

from ftguard.server._app import create_app, settle_heap
from ftguard.server._settings import ServerSettings

__all__ = ["ServerSettings", "create_app", "settle_heap"]
