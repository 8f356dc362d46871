"""plan_poll and outgoing, table-tested: no Apprise, no TinyDB, no clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from m365watch.diff import ChangeKind, IssueChange
from m365watch.feeds.issues import ISSUES
from m365watch.models import Issue
from m365watch.plan import FORGET_AFTER, Dropped, outgoing, plan_poll
from m365watch.records import Entry, Meta, Owed, Snapshot, State, Unit
from m365watch.settings import PollSettings, TargetSettings

T0 = datetime(2026, 11, 20, 13, 30, tzinfo=timezone.utc)
LATER = T0 + timedelta(minutes=5)


def raw(issue_id: str, status: str = "investigating", **more: Any) -> dict[str, Any]:
    return {
        "id": issue_id,
        "title": "Mail",
        "service": more.pop("service", "Exchange Online"),
        "classification": more.pop("classification", "incident"),
        "status": status,
        "isResolved": status == "serviceRestored",
        **more,
    }


def seen(*items: dict[str, Any], missing_since: datetime | None = None) -> State:
    """A state that has already seen ``items`` (baseline done)."""
    snapshots = {i["id"]: Snapshot(Issue.from_graph(i), missing_since) for i in items}
    meta = Meta(generation=3, baselines={"issues": T0})
    return State(meta=meta, snapshots={"issues": snapshots}, exists=True)


def target(name: str, urls: int = 1, **filters: Any) -> TargetSettings:
    return TargetSettings(
        name=name, urls=tuple(f"json://h/{name}/{n}" for n in range(urls)), **filters
    )


@dataclass(frozen=True)
class Case:
    state: State
    fetched: list[dict[str, Any]]
    targets: tuple[TargetSettings, ...]
    changes: list[tuple[str, set[str]]]  # (issue id, kinds)
    owed: list[tuple[str, list[str]]]  # outbox after the plan: (issue id, unit labels)
    snapshots_changed: bool
    poll: PollSettings = field(default_factory=PollSettings)
    notify_existing: bool = False


CASES = {
    "first-poll-is-a-baseline": Case(
        State(), [raw("EX1")], (target("ops"),), [], [], snapshots_changed=True
    ),
    "first-poll-notify-existing-open-only": Case(
        State(),
        [raw("EX1"), raw("EX2", "serviceRestored")],
        (target("ops"),),
        [("EX1", {"new"})],
        [("EX1", ["ops"])],
        snapshots_changed=True,
        notify_existing=True,
    ),
    "nothing-changed": Case(
        seen(raw("EX1")), [raw("EX1")], (target("ops"),), [], [], snapshots_changed=False
    ),
    "only-lastModified-moved": Case(
        seen(raw("EX1")),
        [raw("EX1", lastModifiedDateTime="2026-11-21T00:00:00Z")],
        (target("ops"),),
        [],
        [],
        snapshots_changed=False,
    ),
    "status-change-to-two-units-of-one-target": Case(
        seen(raw("EX1")),
        [raw("EX1", "serviceDegradation")],
        (target("ops", urls=2),),
        [("EX1", {"status"})],
        [("EX1", ["ops#1", "ops#2"])],
        snapshots_changed=True,
    ),
    "target-filters-route": Case(
        seen(raw("EX1")),
        [raw("EX1", "serviceRestored"), raw("TM1", service="Microsoft Teams")],
        (
            target("teams-only", services=("microsoft teams",)),
            target("resolved-only", events=("resolved",)),
        ),
        [("EX1", {"status", "resolved"}), ("TM1", {"new"})],
        [("EX1", ["resolved-only"]), ("TM1", ["teams-only"])],
        snapshots_changed=True,
    ),
    "poll-filter-drops-the-change-but-keeps-the-snapshot": Case(
        seen(raw("EX1")),
        [raw("EX1"), raw("TM1", service="Microsoft Teams")],
        (target("ops"),),
        [],
        [],
        snapshots_changed=True,
        poll=PollSettings(services=("Exchange Online",)),
    ),
    "an-issue-leaves-the-feed": Case(
        seen(raw("EX1")), [], (target("ops"),), [], [], snapshots_changed=True
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_plan_poll(case: Case) -> None:
    plan = plan_poll(
        case.state,
        {"issues": case.fetched},
        feeds=[ISSUES],
        poll=case.poll,
        targets=case.targets,
        now=LATER,
        notify_existing=case.notify_existing,
    )
    assert [(c.issue.id, {k.value for k in c.kinds}) for c in plan.changes] == case.changes
    assert [(e.item_id, [o.unit.label for o in e.owed]) for e in plan.state.outbox] == case.owed
    assert plan.snapshots_changed is case.snapshots_changed
    # New entries belong to the next generation; the state file is written with it.
    generation = case.state.meta.generation + (1 if case.snapshots_changed else 0)
    assert plan.state.meta.generation == generation
    assert all(e.generation == generation for e in plan.state.outbox)
    assert set(plan.state.items("issues")) >= {i["id"] for i in case.fetched}


def test_the_baseline_time_is_recorded_once() -> None:
    plan = plan_poll(
        State(), {"issues": []}, feeds=[ISSUES], poll=PollSettings(), targets=(), now=T0
    )
    assert plan.state.meta.baselines == {"issues": T0}
    again = plan_poll(
        plan.state, {"issues": []}, feeds=[ISSUES], poll=PollSettings(), targets=(), now=LATER
    )
    assert again.state.meta.baselines == {"issues": T0}
    assert not again.feeds[0].baseline


@pytest.mark.parametrize(
    ("missing_for", "kept"),
    [(timedelta(days=89), True), (FORGET_AFTER, False)],
    ids=["kept-within-90-days", "forgotten-after-90-days"],
)
def test_a_missing_issue_is_forgotten_after_90_days(missing_for: timedelta, kept: bool) -> None:
    state = seen(raw("EX1"), missing_since=T0)
    plan = plan_poll(
        state, {"issues": []}, feeds=[ISSUES], poll=PollSettings(), targets=(), now=T0 + missing_for
    )
    assert ("EX1" in plan.state.items("issues")) is kept
    assert plan.snapshots_changed is not kept


def queued(issue_id: str, status: str, previous: str, *units: Unit) -> Entry[IssueChange]:
    change = IssueChange(
        Issue.from_graph(raw(issue_id, status)),
        frozenset({ChangeKind.STATUS}),
        previous_status=previous,
        previous_status_raw=previous,
    )
    return Entry("issues", issue_id, change, tuple(Owed(u) for u in units), T0, 1)


def test_owed_units_of_removed_targets_are_dropped_and_a_grown_target_owes_each_url() -> None:
    state = State(
        meta=Meta(generation=1, baselines={"issues": T0}),
        outbox=(queued("EX1", "serviceDegradation", "investigating", Unit("gone"), Unit("ops")),),
    )
    plan = plan_poll(
        state,
        {"issues": []},
        feeds=[ISSUES],
        poll=PollSettings(),
        targets=(target("ops", urls=2),),
        now=LATER,
    )
    assert plan.dropped == (Dropped("EX1", "gone"),)
    assert [o.unit.label for o in plan.state.outbox[0].owed] == ["ops#1", "ops#2"]


def test_outgoing_merges_an_items_changes_and_settles_what_cancelled_out() -> None:
    ops = Unit("ops")
    outbox = (
        queued("EX1", "serviceDegradation", "investigating", ops),
        queued("EX2", "serviceInterruption", "investigating", ops),
        queued("EX1", "serviceRestored", "serviceDegradation", ops),
        queued("EX2", "investigating", "serviceInterruption", ops),
    )
    [silent, ex1] = outgoing(outbox, (target("ops"),), [ISSUES])
    assert (silent.changes, silent.entries) == ((), (1, 3))  # EX2 went and came back
    assert ex1.entries == (0, 2)
    [merged] = ex1.changes
    assert (merged.previous_status, merged.issue.status) == ("investigating", "serviceRestored")


def test_outgoing_a_digest_target_gets_one_message() -> None:
    ops = Unit("ops")
    outbox = (
        queued("EX1", "serviceDegradation", "investigating", ops),
        queued("EX2", "serviceInterruption", "investigating", ops),
    )
    [digest] = outgoing(outbox, (target("ops", digest=True),), [ISSUES])
    assert ([c.issue.id for c in digest.changes], digest.entries) == (["EX1", "EX2"], (0, 1))
