"""Prometheus metrics: what one poll leaves for node_exporter's textfile collector and /metrics.

Pure: :func:`next_record` folds a poll's outcome into the persisted
:class:`MetricsRecord` (counters add up across cron runs, so they only go up);
:func:`families` turns a record into the metric families an adapter renders.
With [[tenants]] each tenant has its own record and :func:`merged_families`
makes one set of families of all of them (one file for node_exporter).
No titles, ids or timestamps become label values: only the tenant id (or its
[[tenants]] name), service names, classifications, statuses, HTTP codes and
target names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from m365watch.feeds.messages import NAME as MESSAGES
from m365watch.models import STATUSES, canonical_status
from m365watch.outputs import PollOutcome
from m365watch.records import State

RECORD_VERSION = 1
# Graph's own word for a value it does not know yet: where an unrecognised status is shown.
UNRECOGNISED_STATUS = "unknownFutureValue"

Kind = Literal["gauge", "counter"]
Sample = tuple[tuple[str, ...], float]  # label values (in the family's label order), value


@dataclass(frozen=True)
class Family:
    """One metric: its name, type, help text, label names and samples."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...]
    samples: tuple[Sample, ...]


@dataclass(frozen=True)
class MetricsRecord:
    """What the metrics file beside the state keeps between polls (and processes)."""

    tenant: str = ""
    last_attempt: float | None = None
    last_success: float | None = None
    poll_duration: float | None = None
    services: Mapping[str, str] = field(default_factory=dict)  # service -> status
    issues_open: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (service, class.)
    pending: Mapping[str, int] = field(default_factory=dict)  # target -> entries owed
    graph_requests: Mapping[str, int] = field(default_factory=dict)  # code -> total
    notifications: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (target, result)
    # Message center posts with an act-by date still ahead; None until a poll with [messages].
    messages_action_required: int | None = None


def next_record(
    previous: MetricsRecord,
    outcome: PollOutcome,
    *,
    tenant: str,
    state: State | None,
    services: Mapping[str, str] | None,
    request_codes: Mapping[str, int],
) -> MetricsRecord:
    """The record after one poll.

    ``state`` (as stored after the poll) and ``services`` (service -> raw status from
    healthOverviews) are None when they could not be read: the previous values stay.
    """
    graph_requests = dict(previous.graph_requests)
    for code, count in request_codes.items():
        graph_requests[code] = graph_requests.get(code, 0) + count
    notifications = dict(previous.notifications)
    if outcome.result is not None:
        for delivery in outcome.result.deliveries:
            # A unit label "ops#2" (one URL of several) counts for its target "ops".
            key = (delivery.target.split("#", 1)[0], "sent" if delivery.ok else "failed")
            notifications[key] = notifications.get(key, 0) + 1
    issues_open, pending = previous.issues_open, previous.pending
    action_required = previous.messages_action_required
    if state is not None:
        issues_open, pending = open_issues(state), pending_deliveries(state)
        action_required = messages_action_required(state, outcome.finished)
    return MetricsRecord(
        tenant=tenant,
        last_attempt=outcome.finished.timestamp(),
        last_success=(outcome.finished.timestamp() if outcome.succeeded else previous.last_success),
        poll_duration=(outcome.finished - outcome.started).total_seconds(),
        services=(
            {name: shown_status(raw) for name, raw in services.items()}
            if services is not None
            else previous.services
        ),
        issues_open=issues_open,
        pending=pending,
        graph_requests=graph_requests,
        notifications=notifications,
        messages_action_required=action_required,
    )


def shown_status(raw: str) -> str:
    """The state-set member a raw Graph status lights up."""
    status = canonical_status(raw)
    return status if status in STATUSES else UNRECOGNISED_STATUS


def open_issues(state: State) -> dict[tuple[str, str], int]:
    """Issues neither resolved nor gone from the feed, by (service, classification)."""
    counts: dict[tuple[str, str], int] = {}
    for snapshot in state.items("issues").values():
        issue = snapshot.item
        if issue.is_resolved or snapshot.missing_since is not None:
            continue
        key = (issue.service, issue.classification)
        counts[key] = counts.get(key, 0) + 1
    return counts


def messages_action_required(state: State, now: datetime) -> int | None:
    """Message center posts still in the feed whose act-by date is after ``now``.

    None when the state has no Message center baseline (``[messages]`` never polled),
    so that the metric is absent rather than a reassuring 0.
    """
    if MESSAGES not in state.meta.baselines:
        return None
    return sum(
        1
        for snapshot in state.items(MESSAGES).values()
        if snapshot.missing_since is None
        and snapshot.item.act_by is not None
        and snapshot.item.act_by > now
    )


def pending_deliveries(state: State) -> dict[str, int]:
    """Outbox entries each target still owes (an entry counts once per target)."""
    counts: dict[str, int] = {}
    for entry in state.outbox:
        for target in {owed.unit.target for owed in entry.owed}:
            counts[target] = counts.get(target, 0) + 1
    return counts


def families(record: MetricsRecord, *, by_tenant: bool = False) -> tuple[Family, ...]:
    """The metric families of a record (none about a poll before the first one).

    ``by_tenant`` (many tenants): the per-target families are labelled with the
    tenant too, so the records of several tenants merge without two series alike.
    """
    tenant = record.tenant
    lead: tuple[str, ...] = ("tenant",) if by_tenant else ()
    first: tuple[str, ...] = (tenant,) if by_tenant else ()
    out: list[Family] = []
    if record.last_attempt is not None:
        out.append(
            Family(
                "m365watch_service_status",
                "gauge",
                "Each Microsoft 365 service's status (1 for the current one, 0 for the others).",
                ("tenant", "service", "status"),
                tuple(
                    ((tenant, service, status), 1.0 if current == status else 0.0)
                    for service, current in sorted(record.services.items())
                    for status in STATUSES
                ),
            )
        )
        out.append(
            Family(
                "m365watch_issues_open",
                "gauge",
                "Service health issues neither resolved nor gone from the feed.",
                ("tenant", "service", "classification"),
                tuple(
                    ((tenant, service, classification), float(count))
                    for (service, classification), count in sorted(record.issues_open.items())
                ),
            )
        )
        out.append(
            _tenant_gauge(
                "m365watch_last_attempt_timestamp_seconds",
                "When the last poll ended, successful or not (Unix time).",
                tenant,
                record.last_attempt,
            )
        )
        if record.last_success is not None:
            out.append(
                _tenant_gauge(
                    "m365watch_last_success_timestamp_seconds",
                    "When the last poll that read Graph ended (Unix time).",
                    tenant,
                    record.last_success,
                )
            )
        if record.poll_duration is not None:
            out.append(
                _tenant_gauge(
                    "m365watch_poll_duration_seconds",
                    "How long the last poll took.",
                    tenant,
                    record.poll_duration,
                )
            )
    if record.messages_action_required is not None:
        out.append(
            _tenant_gauge(
                "m365watch_messages_action_required",
                "Message center posts whose act-by date has not passed yet.",
                tenant,
                float(record.messages_action_required),
            )
        )
    out.append(
        Family(
            "m365watch_graph_requests_total",
            "counter",
            "HTTP requests sent to Microsoft Graph, by status code (none: no answer).",
            ("tenant", "code"),
            tuple(((tenant, code), float(n)) for code, n in sorted(record.graph_requests.items())),
        )
    )
    out.append(
        Family(
            "m365watch_notifications_total",
            "counter",
            "Notifications sent to each target, by result (sent or failed).",
            (*lead, "target", "result"),
            tuple(((*first, t, r), float(n)) for (t, r), n in sorted(record.notifications.items())),
        )
    )
    out.append(
        Family(
            "m365watch_pending_deliveries",
            "gauge",
            "Changes a target has not accepted yet (kept in the outbox, retried each poll).",
            (*lead, "target"),
            tuple(((*first, target), float(n)) for target, n in sorted(record.pending.items())),
        )
    )
    return tuple(out)


def merged_families(records: Mapping[str, MetricsRecord]) -> tuple[Family, ...]:
    """One set of families for the records of many tenants (tenant name -> its record).

    Each family once (its help and type once), with the samples of every tenant in
    name order; every series is labelled with its tenant (the name, whatever the
    record says), so no two are alike. A tenant never polled adds no samples.
    """
    merged: dict[str, Family] = {}
    for name in sorted(records):
        for family in families(replace(records[name], tenant=name), by_tenant=True):
            known = merged.get(family.name)
            if known is None:
                merged[family.name] = family
            else:
                merged[family.name] = replace(known, samples=known.samples + family.samples)
    return tuple(merged.values())


def _tenant_gauge(name: str, text: str, tenant: str, value: float) -> Family:
    return Family(name, "gauge", text, ("tenant",), (((tenant,), value),))


def record_to_json(record: MetricsRecord) -> dict[str, Any]:
    """The stored form of a record."""
    return {
        "version": RECORD_VERSION,
        "tenant": record.tenant,
        "lastAttempt": record.last_attempt,
        "lastSuccess": record.last_success,
        "pollDuration": record.poll_duration,
        "services": dict(record.services),
        "issuesOpen": [[s, c, n] for (s, c), n in record.issues_open.items()],
        "pending": dict(record.pending),
        "graphRequests": dict(record.graph_requests),
        "notifications": [[t, r, n] for (t, r), n in record.notifications.items()],
        "messagesActionRequired": record.messages_action_required,
    }


def record_from_json(doc: object) -> MetricsRecord:
    """Inverse of :func:`record_to_json`; None (nothing stored) is an empty record.

    Raises ValueError for anything else.
    """
    if doc is None:
        return MetricsRecord()
    if not isinstance(doc, Mapping) or doc.get("version") != RECORD_VERSION:
        raise ValueError("not an m365watch metrics record of version 1")
    return MetricsRecord(
        tenant=_str(doc.get("tenant", "")),
        last_attempt=_number_or_none(doc.get("lastAttempt")),
        last_success=_number_or_none(doc.get("lastSuccess")),
        poll_duration=_number_or_none(doc.get("pollDuration")),
        services={_str(k): _str(v) for k, v in _mapping(doc.get("services")).items()},
        issues_open={(_str(s), _str(c)): _count(n) for s, c, n in _rows(doc.get("issuesOpen"))},
        pending={_str(k): _count(v) for k, v in _mapping(doc.get("pending")).items()},
        graph_requests={_str(k): _count(v) for k, v in _mapping(doc.get("graphRequests")).items()},
        notifications={
            (_str(t), _str(r)): _count(n) for t, r, n in _rows(doc.get("notifications"))
        },
        messages_action_required=_count_or_none(doc.get("messagesActionRequired")),
    )


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return value


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{value!r} is not a count")
    return value


def _count_or_none(value: object) -> int | None:
    return None if value is None else _count(value)


def _number_or_none(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def _mapping(value: object) -> Mapping[object, object]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{value!r} is not an object")
    return value


def _rows(value: object) -> Iterable[tuple[object, object, object]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(row, list) and len(row) == 3 for row in value
    ):
        raise ValueError(f"{value!r} is not a list of rows")
    return [(row[0], row[1], row[2]) for row in value]
