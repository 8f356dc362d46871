"""Outputs fed from every poll: metrics, an Atom feed, post-incident reports kept.

Each output is a module here that takes a :class:`PollOutcome` (pure data) and
writes its own file through adapters it is given; ``wiring.after_poll`` calls
the configured ones. An output that fails logs one warning: it never breaks
the poll or its notifications.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from m365watch.errors import M365WatchError
from m365watch.poll import PollResult


@dataclass(frozen=True)
class PollOutcome:
    """What one poll did, for the outputs: its result, or the error that ended it."""

    started: datetime
    finished: datetime
    result: PollResult | None = None
    error: M365WatchError | None = None
    dry_run: bool = False

    @property
    def succeeded(self) -> bool:
        """True when the poll reached Graph and finished (failed deliveries included)."""
        return self.result is not None
