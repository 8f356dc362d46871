"""Every error m365watch raises on purpose, each with the exit code the CLI uses.

Only the CLI catches these; library code raises them with a one-sentence
message that says what happened and what to do. Messages never hold secrets.
"""

from __future__ import annotations

from m365watch import redact

EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_DELIVERY = 3
EXIT_NOT_FOUND = 4
EXIT_LOCKED = 75  # EX_TEMPFAIL from sysexits.h: try again later


class M365WatchError(Exception):
    """Base of all m365watch errors; ``exit_code`` is what the CLI exits with."""

    exit_code = EXIT_RUNTIME


class ConfigError(M365WatchError):
    """The configuration file or command line is wrong."""

    exit_code = EXIT_USAGE


class AuthError(M365WatchError):
    """Signing in to Microsoft Entra ID failed."""


class GraphError(M365WatchError):
    """Microsoft Graph answered with an error or could not be reached.

    ``status`` is the HTTP status of a refused request (None when Graph never answered).
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFoundError(M365WatchError):
    """The thing asked for (an issue id) does not exist."""

    exit_code = EXIT_NOT_FOUND


class StateError(M365WatchError):
    """The local state file cannot be read or written."""


class LockedError(M365WatchError):
    """Another m365watch process holds the state lock."""

    exit_code = EXIT_LOCKED


def first_line(error: BaseException) -> str:
    """An error's message as one line, for ``Error: …`` and checklists."""
    return redact.first_line(str(error)) or type(error).__name__
