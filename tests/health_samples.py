"""A tenant's service health in Graph's shape, on a fixed clock, and a state file to match.

Built on real captures in tests/data; shared by the status and show tests
(tests/test_query.py in-process, tests/test_status_cli.py through the command line).
"""

from __future__ import annotations

import copy
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from m365watch.models import Issue, parse_timestamp
from m365watch.records import Meta, Snapshot, State
from m365watch.store import StateStore
from tests.helpers import load_json

NOW = datetime(2026, 11, 20, 21, 0, tzinfo=timezone.utc)

# Real captures: an advisory (3 HTML posts with links) and an incident with a review published.
CR275975 = load_json("cli-microsoft365-healthissue-get-CR275975.json")
FM298724 = load_json("cli-microsoft365-healthissue-list-filter-service-forms.json")["value"][0]


def stamp(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def open_issue(issue_id: str, service: str, status: str, classification: str, **more: Any) -> Any:
    """A live issue in Graph's shape, built on a real capture."""
    return {
        **copy.deepcopy(CR275975),
        "id": issue_id,
        "service": service,
        "status": status,
        "classification": classification,
        "isResolved": False,
        "endDateTime": None,
        "lastModifiedDateTime": stamp(30),
        **more,
    }


OVERVIEWS = [
    {"service": "Exchange Online", "status": "serviceDegradation", "id": "Exchange"},
    # PascalCase as in Microsoft's own examples.
    {"service": "Microsoft Teams", "status": "ServiceInterruption", "id": "microsoftteams"},
    # A value Graph's metadata does not list yet.
    {"service": "Microsoft 365 suite", "status": "brandNewStatus", "id": "OSDPPlatform"},
    {"service": "Dynamics 365 Apps", "status": "serviceOperational", "id": "DynamicsCRM"},
    {"service": "Microsoft Forms", "status": "ServicaOperational", "id": "Forms"},
]
ISSUES = [
    open_issue(
        "EX1256020",
        "Exchange Online",
        "serviceDegradation",
        "incident",
        **{
            "lastModifiedDateTime": stamp(5),
            "title": "Users can't send email",
        },
    ),
    open_issue(
        "EX1256100",
        "Exchange Online",
        "Investigating",
        "Advisory",
        title="Some messages are delayed",
    ),
    open_issue(
        "TM300100",
        "Microsoft Teams",
        "serviceInterruption",
        "incident",
        title="Users can't join meetings",
    ),
    open_issue(
        "MO226784",
        "Microsoft 365 suite",
        "brandNewStatus",
        "advisory",
        title="Usage reports show old data",
    ),
    CR275975,
    FM298724,
]


def write_state(
    path: Path, items: list[Any], *, missing: tuple[str, ...] = (), age_minutes: float = 12
) -> StateStore:
    """A real TinyDB state file as a poll leaves it, last confirmed ``age_minutes`` ago."""
    store = StateStore(path)
    snapshots = {
        item["id"]: Snapshot(
            Issue.from_graph(item),
            parse_timestamp(stamp(60)) if item["id"] in missing else None,
        )
        for item in items
    }
    baseline = parse_timestamp(stamp(600))
    assert baseline is not None
    store.save(State(meta=Meta(baselines={"issues": baseline}), snapshots={"issues": snapshots}))
    when = (NOW - timedelta(minutes=age_minutes)).timestamp()
    os.utime(path, (when, when))
    return store
