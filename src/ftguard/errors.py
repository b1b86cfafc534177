"""Error types of ftguard, each with the CLI exit code it ends in.

Every failure a user can cause is raised as a subclass of :class:`FtguardError`. The CLI
catches it, prints its message on one line to stderr and exits with :attr:`exit_code`.
The codes are part of the scripting contract documented in ``docs/cli.md``:

====  ===============================================================
code  meaning
====  ===============================================================
0     success; for analyzers and the gate: the verdict is *pass*
1     the verdict is *block* (review, gate) or *flag* (weights)
2     bad input: usage, unreadable or malformed file, invalid policy
3     not found: workspace, job, user, key
4     permission denied: missing role, separation of duties, or
      (team server) no valid credential
5     conflict: transition not allowed from the job's current state
6     verification failed: signature, digest mismatch, audit chain,
      expired or insufficient approvals, attestation
7     a required optional dependency is not installed
8     the database cannot be used: unreachable server, a folder that
      cannot hold it, a file that is no (or a corrupted) database
====  ===============================================================
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_CONFLICT",
    "EXIT_DATABASE",
    "EXIT_DEPENDENCY",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_PERMISSION",
    "EXIT_VERDICT",
    "EXIT_VERIFICATION",
    "AuthenticationError",
    "BadInputError",
    "ConflictError",
    "DatabaseError",
    "FtguardError",
    "MissingDependencyError",
    "NotFoundError",
    "PermissionDeniedError",
    "PolicyError",
    "VerificationError",
]

EXIT_OK = 0
EXIT_VERDICT = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_FOUND = 3
EXIT_PERMISSION = 4
EXIT_CONFLICT = 5
EXIT_VERIFICATION = 6
EXIT_DEPENDENCY = 7
EXIT_DATABASE = 8


class FtguardError(Exception):
    """Base of every error ftguard raises on purpose."""

    exit_code: int = EXIT_BAD_INPUT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, tuple[type[FtguardError], str]]:
        # Pickled by message alone, whatever the subclass's constructor takes: an analysis
        # run in a worker process (the team server) raises the same error in the server.
        return _rebuild, (type(self), self.message)


def _rebuild(kind: type[FtguardError], message: str) -> FtguardError:
    error = kind.__new__(kind)
    FtguardError.__init__(error, message)
    return error


class BadInputError(FtguardError):
    """A file, argument or request body that cannot be used as given."""

    exit_code = EXIT_BAD_INPUT


class PolicyError(BadInputError):
    """An invalid policy file; the message names the field."""


class NotFoundError(FtguardError):
    """A workspace, job, user or key that does not exist."""

    exit_code = EXIT_NOT_FOUND


class PermissionDeniedError(FtguardError):
    """The acting identity lacks the role, or separation of duties forbids the act."""

    exit_code = EXIT_PERMISSION


class AuthenticationError(PermissionDeniedError):
    """The caller could not be authenticated: no, a wrong, an expired or a revoked credential.

    The team server answers it with HTTP 401 (other permission errors are 403).
    """


class ConflictError(FtguardError):
    """A job transition not allowed from the job's current state."""

    exit_code = EXIT_CONFLICT


class VerificationError(FtguardError):
    """A signature, digest, approval, attestation or audit chain did not verify."""

    exit_code = EXIT_VERIFICATION


class MissingDependencyError(FtguardError):
    """An optional extra (for example ``ftguard[ml]``) is needed and not installed."""

    exit_code = EXIT_DEPENDENCY

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"this needs the Python package '{package}': install it with "
            f"pip install 'ftguard[{extra}]'"
        )


class DatabaseError(FtguardError):
    """The database cannot be opened or used (the message never holds a password)."""

    exit_code = EXIT_DATABASE
