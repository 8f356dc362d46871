"""The loop behind ``m365watch watch``: a poll every interval, within Graph's request budget.

Microsoft allows 800 requests per hour per app and tenant under
``/admin/serviceAnnouncement``. An interval is refused when polls that each
spend their worst case (every retry of a one-page read) could exceed that,
and while running, the requests really spent in the last hour are counted:
a poll that could break the budget waits. The loop stops, after the poll in
progress, when ``stop`` is set (the CLI sets it on SIGTERM and SIGINT).
"""

from __future__ import annotations

import collections
import logging
import math
import re
import threading
import time
from collections.abc import Callable

from m365watch.errors import ConfigError, M365WatchError, first_line

log = logging.getLogger(__name__)

GRAPH_REQUESTS_PER_HOUR = 800
# An unexpected error's text is cut here: 500 characters with the "Error: " printed before it.
MAX_UNEXPECTED_ERROR = 493
HOUR = 3600.0
DEFAULT_EVERY = "5m"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": HOUR}


MAX_INTERVAL = 24 * 3600.0  # a watcher that polls less than daily is not watching


def parse_duration(text: str, option: str) -> float:
    """Seconds from ``90``, ``90s``, ``5m``, ``1.5h``; a ConfigError naming ``option`` else."""
    match = _DURATION.match(text)
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()] if match else 0.0
    if not 0 < seconds < math.inf:
        raise ConfigError(f"{option} must be a duration such as 30s, 5m or 1h, not {text!r}")
    return seconds


def parse_interval(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``5m``, ``1.5h``; ConfigError for anything else."""
    seconds = parse_duration(text, "--every")
    if seconds > MAX_INTERVAL:
        raise ConfigError(
            f"--every is at most 24h (use cron or a timer for rarer polls), not {text!r}"
        )
    return seconds


def format_interval(seconds: float) -> str:
    """``5m``, ``18s``, ``1h``: the shortest exact spelling."""
    for unit, size in (("h", HOUR), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def minimum_interval(requests_per_poll: int) -> float:
    """The shortest interval at which worst-case polls stay within the hourly budget."""
    return math.ceil(HOUR * requests_per_poll / GRAPH_REQUESTS_PER_HOUR)


def check_interval(every: float, requests_per_poll: int) -> None:
    """Refuse an interval whose worst case would break Graph's hourly budget."""
    shortest = minimum_interval(requests_per_poll)
    if every < shortest:
        worst = math.ceil(HOUR / every) * requests_per_poll
        raise ConfigError(
            f"--every {format_interval(every)} could spend {worst} Graph requests an hour "
            f"({requests_per_poll} per poll when Graph must be retried), more than the "
            f"{GRAPH_REQUESTS_PER_HOUR} Microsoft allows per app and tenant: use "
            f"--every {format_interval(shortest)} or more (the default is {DEFAULT_EVERY})"
        )


class RequestBudget:
    """Graph requests spent in the last hour, so a poll never breaks the hourly limit."""

    def __init__(self, per_hour: int = GRAPH_REQUESTS_PER_HOUR) -> None:
        self.per_hour = per_hour
        self._spent: collections.deque[tuple[float, int]] = collections.deque()

    def record(self, at: float, count: int) -> None:
        """Note ``count`` requests made at time ``at`` (seconds, any monotonic clock)."""
        if count > 0:
            self._spent.append((at, count))

    def spent(self, at: float) -> int:
        """Requests made in the hour before ``at``."""
        while self._spent and self._spent[0][0] <= at - HOUR:
            self._spent.popleft()
        return sum(count for _, count in self._spent)

    def wait_before(self, at: float, cost: int) -> float:
        """Seconds to wait at ``at`` before spending ``cost`` more requests (0 = go ahead)."""
        total = self.spent(at)
        if total + cost <= self.per_hour:
            return 0.0
        for stamp, count in self._spent:  # oldest first: wait until enough are an hour old
            total -= count
            if total + cost <= self.per_hour:
                return stamp + HOUR - at
        return HOUR


def run_watch(
    poll: Callable[[], int],
    *,
    every: float,
    requests_per_poll: int,
    stop: threading.Event,
    sleep: Callable[[float], object] | None = None,
    clock: Callable[[], float] = time.monotonic,
    budget: RequestBudget | None = None,
) -> int:
    """Call ``poll`` every ``every`` seconds until ``stop`` is set; return how many ran.

    ``poll`` runs one poll, reports it, and returns the Graph requests it spent;
    it must not raise for a failed poll (the loop goes on). A set ``stop`` ends
    the loop after the poll in progress. ``sleep`` defaults to waiting on
    ``stop``, so a signal ends the wait between polls at once.
    """
    check_interval(every, requests_per_poll)
    wait = sleep if sleep is not None else stop.wait
    budget = budget or RequestBudget()
    polls = 0
    while not stop.is_set():
        started = clock()
        delay = budget.wait_before(started, requests_per_poll)
        if delay > 0:
            log.warning(
                "%d Graph requests spent in the last hour (limit %d): next poll in %s",
                budget.spent(started),
                budget.per_hour,
                format_interval(math.ceil(delay)),
            )
            wait(delay)
            continue
        budget.record(started, poll())
        polls += 1
        if stop.is_set():
            break
        wait(max(0.0, started + every - clock()))
    return polls


def keep_polling(
    poll: Callable[[], object],
    *,
    requests_made: Callable[[], int],
    report_error: Callable[[str], None],
    every: float,
    requests_per_poll: int,
    stop: threading.Event,
) -> int:
    """Run ``poll`` every ``every`` seconds until ``stop`` is set; return how many ran.

    ``requests_made`` is the Graph client's running request count: the
    difference across a poll is what that poll spent from the hourly budget.
    A poll that raises, whatever it raised, is told to ``report_error`` in one
    line (printed as ``Error: …``) and the loop goes on.
    """

    def one_poll() -> int:
        before = requests_made()
        try:
            poll()
        except M365WatchError as error:
            report_error(first_line(error))
        except Exception as error:  # one failed poll must not end the loop, whatever failed
            log.debug("poll failed", exc_info=True)
            text = f"unexpected {type(error).__name__} in this poll: {error}"
            report_error(text[:MAX_UNEXPECTED_ERROR])
        return requests_made() - before

    return run_watch(one_poll, every=every, requests_per_poll=requests_per_poll, stop=stop)
