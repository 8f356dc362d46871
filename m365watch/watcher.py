"""Self-monitoring: count polls that cannot reach Microsoft Graph and tell "watcher" targets.

After ``alert_after`` failed polls in a row, each target whose ``events`` name
``watcher`` gets one "m365watch cannot reach Microsoft Graph: <reason>"
message; when a poll next reaches Graph, each target that was told gets one
"working again" message. A target counts as told only once it accepted the
message, so a target that is down too hears it on a later poll; one that
accepted it hears nothing more while the failure lasts.

The count lives in the health file (:class:`WatcherStorage`, the store adapter's),
never in the state: a poll that fails at Graph leaves the state untouched.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

from m365watch.deliver import Delivery, Sender, deliver
from m365watch.errors import LockedError, M365WatchError, StateError, first_line
from m365watch.messages import Message, render_watcher_down, render_watcher_up
from m365watch.models import format_timestamp, parse_timestamp
from m365watch.poll import IssueSource
from m365watch.records import Unit
from m365watch.settings import TargetSettings

log = logging.getLogger(__name__)

WATCHER_EVENT = "watcher"


class WatcherStorage(Protocol):
    """Where the failed-poll count lives (the store adapter's ``WatcherStore``)."""

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the health file's own lock."""
        ...

    def load(self) -> dict[str, Any]:
        """The stored record (empty when there is none)."""
        ...

    def save(self, data: dict[str, Any]) -> None:
        """Replace the record atomically."""
        ...


WATCHER_SCHEMA = 1


class MonitoredSource:
    """An issue source that remembers the error it raised (sign-in or Graph).

    Only such an error makes a failed poll count: a held lock or a damaged
    state file is not Graph being unreachable.
    """

    def __init__(self, source: IssueSource) -> None:
        self.source = source
        self.failure: M365WatchError | None = None

    def list_issues(self) -> list[dict[str, Any]]:
        """The source's issues; an M365WatchError is remembered, then raised on."""
        try:
            return self.source.list_issues()
        except M365WatchError as error:
            self.failure = error
            raise


@dataclass(frozen=True)
class WatcherRecord:
    """What the health file holds."""

    failures: int = 0
    failing_since: str | None = None
    last_error: str = ""
    told_down: tuple[str, ...] = ()
    outage_since: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WatcherRecord:
        """Read a stored record, tolerating missing or odd values (a fresh record then)."""
        failures = data.get("failures")
        told = data.get("toldDown")
        return cls(
            failures=failures if isinstance(failures, int) and failures > 0 else 0,
            failing_since=_text_or_none(data.get("failingSince")),
            last_error=_text_or_none(data.get("lastError")) or "",
            told_down=tuple(t for t in told if isinstance(t, str))
            if isinstance(told, list)
            else (),
            outage_since=_text_or_none(data.get("outageSince")),
        )

    def to_json(self) -> dict[str, Any]:
        """The record as stored."""
        return {
            "schema": WATCHER_SCHEMA,
            "failures": self.failures,
            "failingSince": self.failing_since,
            "lastError": self.last_error,
            "toldDown": list(self.told_down),
            "outageSince": self.outage_since,
        }

    @property
    def all_clear(self) -> bool:
        """No failure counted and nobody waiting for "working again": nothing to do."""
        return self.failures == 0 and not self.told_down


@dataclass(frozen=True)
class WatcherReport:
    """What recording one poll's outcome did."""

    failures: int = 0
    deliveries: tuple[Delivery, ...] = ()

    @property
    def failed(self) -> tuple[Delivery, ...]:
        """Watcher messages a target did not accept (tried again on a later poll)."""
        return tuple(d for d in self.deliveries if not d.ok)


# Sign-in or Graph refusals that an admin fixes by granting the app's consent (again).
_CONSENT = re.compile(r"AADSTS(700016|7000229|65001)\b|\b40[13]\b|consent", re.IGNORECASE)


def looks_like_consent(reason: str) -> bool:
    """True when a failure reads like missing or withdrawn admin consent."""
    return bool(_CONSENT.search(reason))


def watcher_targets(targets: Sequence[TargetSettings]) -> tuple[str, ...]:
    """Names of the targets that asked for watcher messages, in configuration order."""
    return tuple(t.name for t in targets if WATCHER_EVENT in t.events)


def record_failure(
    store: WatcherStorage,
    *,
    reason: str,
    alert_after: int,
    targets: Sequence[TargetSettings],
    make_sender: Callable[[], Sender],
    now: datetime,
    tenant: str | None = None,
    consent_url: str | None = None,
) -> WatcherReport:
    """Count one poll that could not reach Graph; alert watcher targets from ``alert_after``.

    ``tenant`` names the [[tenants]] entry in the alert; ``consent_url`` is given in it
    when the reason looks like withdrawn consent.
    """
    with store.locked():
        record = WatcherRecord.from_json(store.load())
        watchers = watcher_targets(targets)
        record = replace(
            record,
            failures=record.failures + 1,
            failing_since=record.failing_since or format_timestamp(now),
            last_error=reason,
            told_down=tuple(t for t in record.told_down if t in watchers),
        )
        deliveries: tuple[Delivery, ...] = ()
        owed = [t for t in watchers if t not in record.told_down]
        if record.failures >= alert_after and owed:
            since = parse_timestamp(record.failing_since)
            consent = consent_url if consent_url and looks_like_consent(reason) else None
            message = render_watcher_down(
                reason, record.failures, since, tenant=tenant, consent_url=consent
            )
            deliveries = _send(make_sender, owed, message)
            told = {d.target for d in deliveries if d.ok}
            record = replace(
                record,
                told_down=tuple(t for t in watchers if t in told or t in record.told_down),
                outage_since=record.outage_since or record.failing_since,
            )
        store.save(record.to_json())
    return WatcherReport(failures=record.failures, deliveries=deliveries)


def record_success(
    store: WatcherStorage,
    *,
    targets: Sequence[TargetSettings],
    make_sender: Callable[[], Sender],
    now: datetime,
    tenant: str | None = None,
) -> WatcherReport:
    """Note a poll that reached Graph; tell the targets that heard of the failure.

    The usual case (nothing failed before) reads one small file and writes nothing.
    """
    if WatcherRecord.from_json(store.load()).all_clear:
        return WatcherReport()
    with store.locked():
        record = WatcherRecord.from_json(store.load())
        watchers = watcher_targets(targets)
        owed = [t for t in record.told_down if t in watchers]
        deliveries: tuple[Delivery, ...] = ()
        if owed:
            since = parse_timestamp(record.outage_since or record.failing_since)
            deliveries = _send(make_sender, owed, render_watcher_up(since, now, tenant=tenant))
        told = {d.target for d in deliveries if d.ok}
        still_owed = tuple(t for t in owed if t not in told)
        updated = WatcherRecord(
            told_down=still_owed,
            outage_since=record.outage_since if still_owed else None,
            last_error=record.last_error if still_owed else "",
        )
        if updated != record:
            store.save(updated.to_json())
    return WatcherReport(deliveries=deliveries)


def _send(
    make_sender: Callable[[], Sender], names: Sequence[str], message: Message
) -> tuple[Delivery, ...]:
    # A target Apprise rejects fails alone: it must not hide the poll's own error.
    return tuple(deliver(make_sender(), [(Unit(name), message) for name in names]))


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


ResultT = TypeVar("ResultT")


def watched_poll(
    poll: Callable[[IssueSource], ResultT],
    source: IssueSource,
    store: WatcherStorage,
    *,
    alert_after: int,
    targets: Sequence[TargetSettings],
    make_sender: Callable[[], Sender],
    now: Callable[[], datetime],
    on_report: Callable[[WatcherReport], None],
    record: bool = True,
    tenant: str | None = None,
    consent_url: str | None = None,
) -> tuple[ResultT, WatcherReport]:
    """Run ``poll`` on ``source`` and count its outcome for the self-monitoring.

    A sign-in or Graph error (from ``source`` itself: a held lock or a damaged state
    is not Graph being unreachable) is recorded, and after ``alert_after`` in a row
    sent to "watcher" targets, before it is raised on; a poll that reaches Graph
    sends "working again" where it is owed. ``on_report`` hears what the watcher
    sent, as soon as it was sent. ``record=False`` (a dry run) records nothing.
    """
    monitored = MonitoredSource(source)
    try:
        result = poll(monitored)
    except M365WatchError as error:
        if monitored.failure is error and record:
            reason = first_line(error)
            on_report(
                _tolerant(
                    lambda: record_failure(
                        store,
                        reason=reason,
                        alert_after=alert_after,
                        targets=targets,
                        make_sender=make_sender,
                        now=now(),
                        tenant=tenant,
                        consent_url=consent_url,
                    )
                )
            )
        raise
    if not record:
        return result, WatcherReport()
    report = _tolerant(
        lambda: record_success(
            store, targets=targets, make_sender=make_sender, now=now(), tenant=tenant
        )
    )
    on_report(report)
    return result, report


def _tolerant(update: Callable[[], WatcherReport]) -> WatcherReport:
    """Run a health update; one that cannot be made is a warning, never the poll's failure."""
    try:
        return update()
    except (LockedError, StateError) as error:
        log.warning("%s", first_line(error))
        return WatcherReport()
