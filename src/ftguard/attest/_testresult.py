"""in-toto Test Result predicates (https://in-toto.io/attestation/test-result/v0.1).

One attestation per test run: its subjects are the artifacts tested, ``configuration`` the
ResourceDescriptors of what configured the run, and the names of the tests that passed, warned
and failed. ``result`` is ``PASSED`` only when no test warned or failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ftguard.attest._dsse import statement

__all__ = ["TEST_RESULT_PREDICATE", "in_toto_test_result"]

TEST_RESULT_PREDICATE = "https://in-toto.io/attestation/test-result/v0.1"


def in_toto_test_result(
    *,
    subjects: list[dict[str, Any]],
    configuration: Sequence[dict[str, Any]],
    passed_tests: Sequence[str],
    warned_tests: Sequence[str] = (),
    failed_tests: Sequence[str] = (),
    url: str | None = None,
) -> dict[str, Any]:
    """An in-toto Statement v1 carrying a Test Result v0.1 predicate.

    The result is ``PASSED`` when every test passed, ``WARNED`` when some warned and none
    failed, and ``FAILED`` otherwise (the values of the predicate's published schema).

    Raises:
        ValueError: No subject with a digest, or no configuration.

    """
    if not subjects or any(not (s.get("digest") or {}) for s in subjects):
        raise ValueError("every test-result subject needs a digest")
    if not configuration:
        raise ValueError("a test result names the configuration it ran with")
    if failed_tests:
        result = "FAILED"
    elif warned_tests:
        result = "WARNED"
    else:
        result = "PASSED"
    predicate: dict[str, Any] = {
        "result": result,
        "configuration": list(configuration),
        "passedTests": list(passed_tests),
        "warnedTests": list(warned_tests),
        "failedTests": list(failed_tests),
    }
    if url is not None:
        predicate["url"] = url
    return statement(subjects, TEST_RESULT_PREDICATE, predicate)
