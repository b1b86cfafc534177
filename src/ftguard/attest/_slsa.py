"""SLSA Verification Summary Attestations (https://slsa.dev/spec/v1.1/verification_summary).

A VSA says that a verifier checked an artifact (the statement's subjects) against a policy for a
resource, which attestations it read, and the result. Anyone who trusts the verifier's key can act
on the result without reading the evidence behind it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from ftguard.attest._dsse import statement

__all__ = ["VSA_PREDICATE", "resource_descriptor", "rfc3339", "verification_summary"]

VSA_PREDICATE = "https://slsa.dev/verification_summary/v1"
_CUSTOM_LEVEL = re.compile(r"^(?!SLSA_)[A-Z][A-Z0-9_]*$")


def rfc3339(timestamp: str) -> str:
    """An ISO-8601 timestamp as RFC 3339 UTC with a ``Z`` (the in-toto Timestamp form)."""
    moment = datetime.fromisoformat(timestamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def resource_descriptor(
    *, uri: str | None = None, sha256: str | None = None, name: str | None = None
) -> dict[str, Any]:
    """An in-toto ResourceDescriptor (at least a ``uri`` or a digest)."""
    if uri is None and sha256 is None:
        raise ValueError("a resource descriptor needs a uri or a digest")
    out: dict[str, Any] = {}
    if name is not None:
        out["name"] = name
    if uri is not None:
        out["uri"] = uri
    if sha256 is not None:
        out["digest"] = {"sha256": sha256}
    return out


def verification_summary(
    *,
    subjects: list[dict[str, Any]],
    verifier_id: str,
    time_verified: str,
    resource_uri: str,
    policy: dict[str, Any],
    input_attestations: Sequence[dict[str, Any]],
    passed: bool,
    verified_levels: Sequence[str],
    slsa_version: str = "1.1",
) -> dict[str, Any]:
    """An in-toto Statement v1 carrying a SLSA VSA v1 predicate.

    Args:
        subjects: The artifacts verified (in-toto subjects with a ``sha256`` digest each).
        verifier_id: URI of the verifier's identity.
        time_verified: When the verification happened (ISO-8601; written as RFC 3339 UTC).
        resource_uri: URI of the resource the artifact was verified for.
        policy: ResourceDescriptor of the policy (``uri`` required, ``digest`` recommended).
        input_attestations: ResourceDescriptors (``uri`` and ``digest``) of every attestation
            the verification read.
        passed: The result (``PASSED`` or ``FAILED``).
        verified_levels: What was verified on a pass: custom values (upper-case, never starting
            with ``SLSA_``, which SLSA reserves) or SLSA levels. A failure records ``FAILED``.
        slsa_version: The SLSA specification version the verifier followed.

    Raises:
        ValueError: A subject has no digest, the policy no uri, or a level is malformed.

    """
    if not subjects or any(not (s.get("digest") or {}) for s in subjects):
        raise ValueError("every VSA subject needs a digest")
    if not policy.get("uri"):
        raise ValueError("the VSA policy needs a uri")
    levels = list(verified_levels) if passed else ["FAILED"]
    bad = [lv for lv in levels if not (_CUSTOM_LEVEL.match(lv) or lv.startswith("SLSA_BUILD"))]
    if bad or not levels:
        raise ValueError(f"malformed verified levels: {bad or levels}")
    result: Literal["PASSED", "FAILED"] = "PASSED" if passed else "FAILED"
    predicate: dict[str, Any] = {
        "verifier": {"id": verifier_id},
        "timeVerified": rfc3339(time_verified),
        "resourceUri": resource_uri,
        "policy": policy,
        "inputAttestations": list(input_attestations),
        "verificationResult": result,
        "verifiedLevels": levels,
        "slsaVersion": slsa_version,
    }
    return statement(subjects, VSA_PREDICATE, predicate)
