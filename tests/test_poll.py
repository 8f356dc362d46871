"""One poll end to end over real state and real Apprise (HTTP intercepted by `responses`)."""

from __future__ import annotations

import copy
import errno
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner

from m365watch.cli import main
from m365watch.errors import ConfigError, GraphError, StateError
from m365watch.models import format_timestamp
from m365watch.notify import Notifier
from m365watch.plan import Dropped
from m365watch.poll import PollResult, issues_from, run_poll
from m365watch.query import StatusQuery, status_from_state
from m365watch.records import State
from m365watch.settings import PollSettings, TargetSettings
from m365watch.store import StateStore
from tests.helpers import (
    SLACK_URL,
    SLACK_WEBHOOK,
    TEAMS_ENDPOINT,
    TEAMS_URL,
    attempts,
    body_of,
    last_errors,
    owed,
    text_of,
    timeline_steps,
)

T0 = datetime(2026, 11, 20, 13, 30, tzinfo=timezone.utc)
STEPS = timeline_steps()


@dataclass
class Feed:
    issues: list[dict[str, Any]]
    calls: int = 0

    def list_issues(self) -> list[dict[str, Any]]:
        self.calls += 1
        return copy.deepcopy(self.issues)


class BrokenFeed:
    def list_issues(self) -> list[dict[str, Any]]:
        raise GraphError("Graph answered 503 Service Unavailable after 4 attempts")


class CountingStore(StateStore):
    """The real store, counting its writes."""

    writes = 0

    def save(self, state: State, *args: Any) -> None:
        self.writes += 1
        super().save(state, *args)

    def save_outbox(self, entries: Any, *args: Any) -> None:
        self.writes += 1
        super().save_outbox(entries, *args)


class Poller:
    """Runs polls against one state file with a fixed set of targets."""

    def __init__(self, tmp_path: Path, targets: list[TargetSettings], **poll: Any) -> None:
        self.store = CountingStore(tmp_path / "state.json")
        self.targets = targets
        self.poll_settings = PollSettings(**poll)
        self.senders = 0

    def make_sender(self) -> Notifier:
        self.senders += 1
        return Notifier({t.name: t.urls for t in self.targets}, throttle=False)

    def run(self, issues: Any, *, now: datetime = T0, **kwargs: Any) -> PollResult:
        source = issues if hasattr(issues, "list_issues") else Feed(issues)
        return run_poll(
            sources=[issues_from(source)],
            store=self.store,
            make_sender=self.make_sender,
            poll=self.poll_settings,
            targets=self.targets,
            targets_fingerprint="fp-" + ",".join(t.name for t in self.targets),
            now=now,
            **kwargs,
        )


def slack(name: str = "slack", **filters: Any) -> TargetSettings:
    return TargetSettings(name=name, urls=(SLACK_URL,), **filters)


def teams(name: str = "teams", **filters: Any) -> TargetSettings:
    return TargetSettings(name=name, urls=(TEAMS_URL,), **filters)


def sent_titles(url: str) -> list[str]:
    titles = []
    for call in responses.calls:
        if call.request.url and call.request.url.startswith(url):
            titles.append(json.dumps(json.loads(body_of(call.request))))
    return titles


def ids(result: PollResult) -> list[tuple[str, str]]:
    return [(d.target, d.issue_id) for d in result.deliveries]


def step(n: int) -> list[dict[str, Any]]:
    return copy.deepcopy(STEPS[n]["issues"])


@responses.activate
def test_first_run_is_a_baseline_and_sends_nothing(tmp_path: Path) -> None:
    poller = Poller(tmp_path, [slack()])
    result = poller.run(step(4))
    assert result.baseline
    assert result.issues_seen == 4
    assert (result.changes, result.deliveries) == ((), ())
    assert result.state_written
    assert len(responses.calls) == 0
    assert set(poller.store.load().items("issues")) == {
        "TM1255871",
        "SP1249876",
        "EX1256020",
        "MO1256311",
    }


@responses.activate
def test_notify_existing_sends_open_issues_only(tmp_path: Path) -> None:
    responses.add(responses.POST, SLACK_WEBHOOK, body="ok")
    result = Poller(tmp_path, [slack()]).run(step(6), notify_existing=True)
    # SP1249876 and TM1255871 are resolved in step 6; EX1256020 (restored) too.
    assert sorted(i for _, i in ids(result)) == ["MO1256311"]


@responses.activate
def test_quiet_poll_neither_sends_nor_rewrites_nor_loads_apprise(tmp_path: Path) -> None:
    poller = Poller(tmp_path, [slack()])
    poller.run(step(2))
    senders = poller.senders
    before = poller.store.path.read_bytes()
    writes = poller.store.writes
    # Step 3 differs from step 2 only in EX1256020's lastModifiedDateTime and a new advisory.
    quiet = step(3)
    quiet = [i for i in quiet if i["id"] != "MO1256311"]
    result = poller.run(quiet, now=T0 + timedelta(hours=1))
    assert result.changes == ()
    assert not result.state_written
    assert poller.store.writes == writes
    assert poller.store.path.read_bytes() == before
    assert poller.senders == senders  # no Apprise object was built


@responses.activate
def test_whole_timeline_delivers_each_change_once(tmp_path: Path) -> None:
    responses.add(responses.POST, SLACK_WEBHOOK, body="ok")
    poller = Poller(tmp_path, [slack()])
    delivered: list[list[str]] = []
    for number, s in enumerate(STEPS):
        result = poller.run(s["issues"], now=T0 + timedelta(hours=number))
        assert not result.failed
        delivered.append(sorted(i for _, i in ids(result)))
    assert delivered == [
        [],
        ["EX1256020"],
        ["EX1256020"],
        ["MO1256311"],
        ["EX1256020"],
        ["EX1256020", "TM1255871"],
        ["EX1256020"],
        ["EX1256020"],
        [],  # steps 9-11 change only a Message center post (this poll reads no posts)
        [],
        [],
    ]
    assert len(responses.calls) == 8
    assert poller.store.load().outbox == ()


@responses.activate
def test_failed_target_is_retried_alone_then_delivered_once(tmp_path: Path) -> None:
    responses.add(responses.POST, SLACK_WEBHOOK, body="ok")
    teams_down = responses.add(responses.POST, TEAMS_ENDPOINT, status=500)
    poller = Poller(tmp_path, [slack(), teams()])
    poller.run(step(0))

    first = poller.run(step(1), now=T0 + timedelta(hours=1))
    assert [(d.target, d.ok) for d in first.deliveries] == [("slack", True), ("teams", False)]
    assert first.pending == 1
    assert teams_down.call_count == 1

    # Still down, and a new change to the same issue arrives: kept, slack gets only the new one.
    second = poller.run(step(2), now=T0 + timedelta(hours=2))
    assert [(d.target, d.ok) for d in second.deliveries] == [("slack", True), ("teams", False)]
    pending = poller.store.load().outbox
    assert [owed(r) for r in pending] == [["teams"], ["teams"]]
    assert attempts(pending[0]) == {"teams": 2}
    assert "teams" in last_errors(pending[0])

    responses.replace(responses.POST, TEAMS_ENDPOINT, status=202)
    third = poller.run(step(2), now=T0 + timedelta(hours=3))
    # One message for the issue, covering both queued changes.
    assert [(d.target, d.issue_id, d.ok) for d in third.deliveries] == [
        ("teams", "EX1256020", True)
    ]
    body = json.dumps(json.loads(body_of(responses.calls[-1].request)))
    assert "New advisory" in body and "Investigating \\u2192 Service degradation" in body
    assert poller.store.load().outbox == ()

    fourth = poller.run(step(2), now=T0 + timedelta(hours=4))
    assert fourth.deliveries == ()
    slack_calls = [c for c in responses.calls if c.request.url == SLACK_WEBHOOK]
    assert len(slack_calls) == 2  # one per change, never repeated


@responses.activate
def test_graph_failure_changes_nothing(tmp_path: Path) -> None:
    poller = Poller(tmp_path, [slack()])
    poller.run(step(1))
    before = poller.store.path.read_bytes()
    with pytest.raises(GraphError):
        poller.run(BrokenFeed(), now=T0 + timedelta(hours=1))
    assert poller.store.path.read_bytes() == before


@responses.activate
def test_routing_by_service_classification_and_event(tmp_path: Path) -> None:
    responses.add(responses.POST, SLACK_WEBHOOK, body="ok")
    responses.add(responses.POST, TEAMS_ENDPOINT, status=202)
    targets = [
        slack("exchange-only", services=("exchange online",)),
        slack("incidents", classifications=("incident",)),
        teams("resolutions", events=("resolved",)),
    ]
    poller = Poller(tmp_path, targets)
    poller.run(step(0))
    routed: list[list[tuple[str, str]]] = []
    for number in range(1, len(STEPS)):
        routed.append(sorted(ids(poller.run(step(number), now=T0 + timedelta(hours=number)))))
    assert routed == [
        [("exchange-only", "EX1256020")],
        [("exchange-only", "EX1256020")],
        [],
        [("exchange-only", "EX1256020"), ("incidents", "EX1256020")],
        [
            ("exchange-only", "EX1256020"),
            ("incidents", "EX1256020"),
            ("resolutions", "TM1255871"),
        ],
        [
            ("exchange-only", "EX1256020"),
            ("incidents", "EX1256020"),
            ("resolutions", "EX1256020"),
        ],
        [("exchange-only", "EX1256020"), ("incidents", "EX1256020")],
        [],  # steps 9-11 change only a Message center post
        [],
        [],
    ]


@responses.activate
def test_poll_filter_limits_messages_but_state_keeps_every_issue(tmp_path: Path) -> None:
    responses.add(responses.POST, SLACK_WEBHOOK, body="ok")
    poller = Poller(tmp_path, [slack()], services=("Microsoft Teams",))
    poller.run(step(0))
    result = poller.run(step(3), now=T0 + timedelta(hours=1))
    assert ids(result) == []
    assert "MO1256311" in poller.store.load().items("issues")
    # Widening the filter later does not replay what was already seen.
    wide = Poller(tmp_path, [slack()])
    assert ids(wide.run(step(3), now=T0 + timedelta(hours=2))) == []


@responses.activate
def test_pending_for_a_removed_target_is_dropped(tmp_path: Path) -> None:
    responses.add(responses.POST, TEAMS_ENDPOINT, status=500)
    poller = Poller(tmp_path, [teams()])
    poller.run(step(0))
    assert poller.run(step(1), now=T0 + timedelta(hours=1)).pending == 1
    renamed = Poller(tmp_path, [slack()])
    result = renamed.run(step(1), now=T0 + timedelta(hours=2))
    assert (result.deliveries, result.pending) == ((), 0)
    assert result.dropped == (Dropped("EX1256020", "teams"),)
    assert renamed.store.load().outbox == ()


@pytest.mark.parametrize(
    ("days", "kept"), [(89, True), (91, False)], ids=["within-90-days", "after-90-days"]
)
def test_issues_leaving_the_feed_are_forgotten_after_90_days(
    tmp_path: Path, days: int, kept: bool
) -> None:
    poller = Poller(tmp_path, [])
    poller.run(step(1))
    gone = [i for i in step(1) if i["id"] != "EX1256020"]
    poller.run(gone, now=T0 + timedelta(hours=1))
    record = poller.store.load().items("issues")["EX1256020"]
    assert format_timestamp(record.missing_since) == "2026-11-20T14:30:00Z"
    poller.run(gone, now=T0 + timedelta(hours=1, days=days))
    assert ("EX1256020" in poller.store.load().items("issues")) is kept


@responses.activate
def test_dry_run_previews_and_changes_nothing(tmp_path: Path) -> None:
    poller = Poller(tmp_path, [slack()])
    poller.run(step(1))
    before = poller.store.path.read_bytes()
    result = poller.run(step(2), now=T0 + timedelta(hours=1), dry_run=True)
    assert result.dry_run
    assert [(t, m.title) for t, m in result.previews] == [
        ("slack", "[Advisory] EX1256020 · Exchange Online: Service degradation")
    ]
    assert len(responses.calls) == 0
    assert poller.store.path.read_bytes() == before


def test_changed_targets_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    poller = Poller(tmp_path, [TargetSettings(name="bad", urls=("nosuchscheme://x",))])
    with pytest.raises(ConfigError, match="notify target 'bad'"):
        poller.run(step(1))
    assert not poller.store.path.exists()


# --- Digests ---


@responses.activate
def test_digest_sends_one_message_per_target_with_every_change(tmp_path: Path) -> None:
    slack_hook = responses.add(responses.POST, SLACK_WEBHOOK, body="ok")
    teams_hook = responses.add(responses.POST, TEAMS_ENDPOINT, status=202)
    poller = Poller(tmp_path, [slack(digest=True), teams(digest=True)])
    poller.run(step(0))
    # Step 0 -> 5: TM1255871 resolved, EX1256020 and MO1256311 new: three changes.
    result = poller.run(step(5), now=T0 + timedelta(hours=1))
    assert len(result.changes) == 3
    assert [(d.target, d.issue_id, d.ok) for d in result.deliveries] == [
        ("slack", "EX1256020, MO1256311, TM1255871", True),  # most severe first
        ("teams", "EX1256020, MO1256311, TM1255871", True),
    ]
    for hook in (slack_hook, teams_hook):
        assert hook.call_count == 1
        body = text_of(hook.calls[0].request)
        assert all(issue_id in body for issue_id in ("EX1256020", "MO1256311", "TM1255871"))
    assert poller.store.load().outbox == ()


@responses.activate
def test_failed_digest_keeps_every_change_and_a_later_one_clears_them(tmp_path: Path) -> None:
    responses.add(responses.POST, TEAMS_ENDPOINT, status=500)
    poller = Poller(tmp_path, [teams(digest=True)])
    poller.run(step(0))
    failed = poller.run(step(5), now=T0 + timedelta(hours=1))
    assert [(d.issue_id, d.ok) for d in failed.deliveries] == [
        ("EX1256020, MO1256311, TM1255871", False)
    ]
    pending = poller.store.load().outbox
    assert sorted(r.item_id for r in pending) == [
        "EX1256020",
        "MO1256311",
        "TM1255871",
    ]
    assert all(owed(r) == ["teams"] and attempts(r) == {"teams": 1} for r in pending)

    responses.replace(responses.POST, TEAMS_ENDPOINT, status=202)
    # EX1256020 is resolved meanwhile: still one message, its two queued changes merged,
    # and now good news it sorts after the open advisory.
    retried = poller.run(step(6), now=T0 + timedelta(hours=2))
    assert [(d.issue_id, d.ok) for d in retried.deliveries] == [
        ("MO1256311, EX1256020, TM1255871", True)
    ]
    assert poller.store.load().outbox == ()
    assert len(responses.calls) == 2


@responses.activate
def test_digest_with_one_change_is_the_usual_message(tmp_path: Path) -> None:
    responses.add(responses.POST, SLACK_WEBHOOK, body="ok")
    poller = Poller(tmp_path, [slack(digest=True)])
    poller.run(step(1))
    result = poller.run(step(2), now=T0 + timedelta(hours=1))
    assert [d.title for d in result.deliveries] == [
        "[Advisory] EX1256020 · Exchange Online: Service degradation"
    ]


@responses.activate
def test_digest_and_per_issue_targets_side_by_side(tmp_path: Path) -> None:
    responses.add(responses.POST, SLACK_WEBHOOK, body="ok")
    poller = Poller(tmp_path, [slack("per-issue"), slack("digest", digest=True)])
    poller.run(step(0))
    result = poller.run(step(5), now=T0 + timedelta(hours=1))
    assert sorted((d.target, d.issue_id) for d in result.deliveries) == [
        ("digest", "EX1256020, MO1256311, TM1255871"),
        ("per-issue", "EX1256020"),
        ("per-issue", "MO1256311"),
        ("per-issue", "TM1255871"),
    ]


def test_dry_run_checks_the_urls_even_when_the_targets_did_not_change(tmp_path: Path) -> None:
    poller = Poller(tmp_path, [slack()])
    poller.run(step(0))  # records the targets' fingerprint ("fp-slack")
    broken = Poller(tmp_path, [TargetSettings(name="slack", urls=("nosuchscheme://x",))])
    broken.run(step(0), now=T0 + timedelta(hours=1))  # same fingerprint: not checked, no sender
    assert broken.senders == 0
    with pytest.raises(ConfigError, match="notify target 'slack'"):
        broken.run(step(0), now=T0 + timedelta(hours=2), dry_run=True)


# --- Test messages ---


@responses.activate
def test_test_messages_report_each_target() -> None:
    from m365watch.poll import send_test_messages

    responses.add(responses.POST, SLACK_WEBHOOK, body="ok")
    responses.add(responses.POST, TEAMS_ENDPOINT, status=500)
    targets = [
        slack(),
        teams(),
        TargetSettings(name="typo", urls=("slack://onlyonetoken",)),
    ]
    notifier = Notifier({t.name: t.urls for t in targets}, throttle=False)
    results = send_test_messages(notifier, targets, T0)
    assert [(r.target, r.ok) for r in results] == [
        ("slack", True),
        ("teams", False),
        ("typo", False),
    ]
    assert results[1].reason.startswith("workflows: ")
    assert "Apprise does not accept its URL number 1 (slack://…)" in results[2].reason
    sent = json.loads(body_of(responses.calls[0].request))
    assert sent["attachments"][0]["fallback"] == "[Test] m365watch test notification for slack"


@responses.activate
def test_result_counts_the_changes_found_not_the_last_message_sent(tmp_path: Path) -> None:
    responses.add(responses.POST, SLACK_WEBHOOK, body="ok")
    responses.add(responses.POST, TEAMS_ENDPOINT, status=202)
    poller = Poller(tmp_path, [slack(), teams()])
    poller.run(step(4))
    result = poller.run(step(5), now=T0 + timedelta(hours=1))
    assert sorted(c.issue.id for c in result.changes) == ["EX1256020", "TM1255871"]
    assert len(result.deliveries) == 4


@responses.activate
def test_a_long_queue_merges_in_the_order_the_changes_happened(tmp_path: Path) -> None:
    down = responses.add(responses.POST, TEAMS_ENDPOINT, status=500)
    poller = Poller(tmp_path, [teams()])
    ex = {
        "id": "EX1",
        "title": "Mail",
        "service": "Exchange Online",
        "classification": "incident",
        "status": "investigating",
        "isResolved": False,
    }
    feed = [dict(ex)]
    poller.run(feed)
    # Twelve polls while Teams is down: EX1 degrades second and is restored last (the
    # queue's 2nd and 12th records: "12" sorts before "2" as text), unrelated issues between.
    feed.append({**ex, "id": "MO-first", "service": "Microsoft 365 suite"})
    poller.run(feed, now=T0 + timedelta(minutes=4))
    feed[0] = {**ex, "status": "serviceDegradation"}
    poller.run(feed, now=T0 + timedelta(minutes=5))
    for n in range(9):
        feed.append({**ex, "id": f"MO{n}", "service": "Microsoft 365 suite"})
        poller.run(feed, now=T0 + timedelta(minutes=10 + n))
    feed[0] = {**ex, "status": "serviceRestored", "isResolved": True}
    poller.run(feed, now=T0 + timedelta(minutes=30))
    assert down.call_count >= 12  # every poll tried, and failed
    responses.replace(responses.POST, TEAMS_ENDPOINT, status=202)
    result = poller.run(feed, now=T0 + timedelta(minutes=35))
    ex_titles = [d.title for d in result.deliveries if d.issue_id == "EX1"]
    assert ex_titles == ["[Incident] EX1 · Exchange Online: Service restored"]
    cards = [json.dumps(json.loads(body_of(c.request))) for c in responses.calls[-11:]]
    ex_card = next(c for c in cards if "EX1 \\u00b7" in c)
    assert "Investigating \\u2192 Service restored" in ex_card


@responses.activate
def test_a_dead_url_of_a_target_is_retried_alone(tmp_path: Path) -> None:
    slack_ok = responses.add(responses.POST, SLACK_WEBHOOK, body="ok")
    teams_down = responses.add(responses.POST, TEAMS_ENDPOINT, status=500)
    both = TargetSettings(name="ops", urls=(SLACK_URL, TEAMS_URL))
    poller = Poller(tmp_path, [both])
    poller.run(step(0))
    for hour in (1, 2, 3):
        result = poller.run(step(1), now=T0 + timedelta(hours=hour))
        assert [(d.target, d.ok) for d in result.deliveries] == (
            [("ops#1", True), ("ops#2", False)] if hour == 1 else [("ops#2", False)]
        )
    assert (slack_ok.call_count, teams_down.call_count) == (1, 3)
    responses.replace(responses.POST, TEAMS_ENDPOINT, status=202)
    recovered = poller.run(step(1), now=T0 + timedelta(hours=4))
    assert [(d.target, d.ok) for d in recovered.deliveries] == [("ops#2", True)]
    assert slack_ok.call_count == 1
    assert poller.store.load().outbox == ()


@responses.activate
def test_an_old_record_for_a_target_that_gained_a_url_is_owed_on_each(tmp_path: Path) -> None:
    responses.add(responses.POST, TEAMS_ENDPOINT, status=500)
    poller = Poller(tmp_path, [teams("ops")])
    poller.run(step(0))
    poller.run(step(1), now=T0 + timedelta(hours=1))
    assert [owed(r) for r in poller.store.load().outbox] == [["ops"]]
    responses.replace(responses.POST, TEAMS_ENDPOINT, status=202)
    slack_ok = responses.add(responses.POST, SLACK_WEBHOOK, body="ok")
    grown = Poller(tmp_path, [TargetSettings(name="ops", urls=(TEAMS_URL, SLACK_URL))])
    result = grown.run(step(1), now=T0 + timedelta(hours=2))
    assert [(d.target, d.ok) for d in result.deliveries] == [("ops#1", True), ("ops#2", True)]
    assert slack_ok.call_count == 1


@responses.activate
def test_a_url_apprise_now_refuses_stops_the_poll_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    slack_ok = responses.add(responses.POST, SLACK_WEBHOOK, body="ok")
    poller = Poller(tmp_path, [slack("a"), slack("b")])
    poller.run(step(0))
    # Same names (same fingerprint here), but b's URL is one Apprise no longer loads.
    broken = Poller(tmp_path, [slack("a"), TargetSettings(name="b", urls=("nosuchscheme://x",))])
    before = broken.store.path.read_bytes()
    for hour in (1, 2):
        with pytest.raises(ConfigError, match="notify target 'b'"):
            broken.run(step(1), now=T0 + timedelta(hours=hour))
    assert slack_ok.call_count == 0
    assert broken.store.path.read_bytes() == before


@responses.activate
def test_a_status_that_went_and_came_back_before_delivery_is_not_sent(tmp_path: Path) -> None:
    teams_down = responses.add(responses.POST, TEAMS_ENDPOINT, status=500)
    poller = Poller(tmp_path, [teams(events=("status",))])
    poller.run(step(2))  # EX1256020 in service degradation
    back = step(2)
    flipped = copy.deepcopy(back)
    next(i for i in flipped if i["id"] == "EX1256020")["status"] = "serviceInterruption"
    poller.run(flipped, now=T0 + timedelta(hours=1))
    assert teams_down.call_count == 1
    responses.replace(responses.POST, TEAMS_ENDPOINT, status=202)
    result = poller.run(back, now=T0 + timedelta(hours=2))
    assert result.deliveries == ()
    assert teams_down.call_count == 1
    assert poller.store.load().outbox == ()


@pytest.mark.parametrize(
    ("classifications", "wanted"),
    [((), True), (("incident", "advisory"), True), (("incident",), False)],
    ids=["no-filter", "both-kinds", "narrowed"],
)
def test_an_unknown_classification_passes_unless_the_filter_is_narrowed(
    classifications: tuple[str, ...], wanted: bool
) -> None:
    from m365watch.feeds.issues import in_scope
    from m365watch.models import Issue

    issue = Issue.from_graph(
        {"id": "EX9", "service": "Exchange Online", "classification": "unknownFutureValue"}
    )
    assert in_scope(issue, (), classifications) is wanted


# --- a state directory written by release 0.1 ---

RELEASE_0_1 = Path(__file__).parent / "data" / "release-0.1-state"


@responses.activate
def test_a_release_0_1_state_delivers_what_it_owed_exactly_once(tmp_path: Path) -> None:
    # Written by release 0.1 (steps 0-2 of the timeline, Teams down): EX1256020's "new"
    # and "status" changes are owed to the second URL of "ops", its first URL has both.
    shutil.copytree(RELEASE_0_1, tmp_path / "state")
    slack_ok = responses.add(responses.POST, SLACK_WEBHOOK, body="ok")
    teams_ok = responses.add(responses.POST, TEAMS_ENDPOINT, status=202)
    targets = [slack("slack"), TargetSettings(name="ops", urls=(SLACK_URL, TEAMS_URL))]
    store = StateStore(tmp_path / "state" / "state.json")
    loaded = store.load()
    assert [owed(e) for e in loaded.outbox] == [["ops#2"], ["ops#2"]]
    assert [attempts(e) for e in loaded.outbox] == [{"ops#2": 2}, {"ops#2": 1}]

    def poll(hours: int) -> PollResult:
        return run_poll(
            sources=[issues_from(Feed(step(2)))],
            store=store,
            make_sender=lambda: Notifier({t.name: t.urls for t in targets}, throttle=False),
            poll=PollSettings(),
            targets=targets,
            targets_fingerprint="fixture",
            now=T0 + timedelta(hours=hours),
        )

    first = poll(3)
    assert [(d.target, d.issue_id, d.ok) for d in first.deliveries] == [
        ("ops#2", "EX1256020", True)
    ]
    card = json.dumps(json.loads(body_of(teams_ok.calls[0].request)))
    assert "New advisory" in card and "Investigating \\u2192 Service degradation" in card
    assert (slack_ok.call_count, first.pending, first.changes) == (0, 0, ())
    # Migrated in place: the queue moved to the outbox, the state file to the new layout.
    assert json.loads(store.path.read_text())["meta"]["1"]["schema"] == 2
    assert store.load().outbox == ()

    second = poll(4)
    assert (second.deliveries, second.state_written) == ((), False)
    assert (slack_ok.call_count, teams_ok.call_count) == (0, 1)
    report = status_from_state(store, StatusQuery(), now=T0 + timedelta(hours=4))
    assert sorted(i.id for i in report.issues) == ["EX1256020", "TM1255871"]


def test_status_cached_answers_from_a_release_0_1_state(tmp_path: Path) -> None:
    shutil.copytree(RELEASE_0_1, tmp_path / "state")
    config = tmp_path / "config.toml"
    config.write_text(f'[state]\npath = "{tmp_path / "state" / "state.json"}"\n')
    result = CliRunner().invoke(main, ["-c", str(config), "status", "--cached", "--json"])
    assert result.exit_code == 0, result.output
    assert "EX1256020" in result.stdout
    assert (tmp_path / "state" / "state.json").read_bytes() == (
        RELEASE_0_1 / "state.json"
    ).read_bytes()


def test_a_no_change_poll_imports_no_apprise_and_writes_nothing(tmp_path: Path) -> None:
    # A fresh interpreter: the baseline, then a poll that finds nothing and owes nothing.
    script = f"""
import sys
from datetime import datetime, timezone
from pathlib import Path
from m365watch.poll import issues_from, run_poll
from m365watch.settings import PollSettings
from m365watch.store import StateStore

class Feed:
    def list_issues(self):
        return [{{"id": "EX1", "status": "investigating", "title": "Mail"}}]

def no_sender():
    raise AssertionError("a quiet poll built a sender")

store = StateStore(Path({str(tmp_path / "state.json")!r}))
args = dict(store=store, make_sender=no_sender, poll=PollSettings(), targets_fingerprint="fp",
            targets=[], now=datetime(2026, 11, 20, tzinfo=timezone.utc))
assert run_poll(sources=[issues_from(Feed())], **args).baseline
before = store.path.read_bytes(), store.path.stat().st_ino
result = run_poll(sources=[issues_from(Feed())], **args)
assert not result.state_written and (store.path.read_bytes(), store.path.stat().st_ino) == before
assert not store.outbox_path.exists()
print("apprise" in sys.modules, "tinydb" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]


# --- a state folder that cannot be written ---


@responses.activate
def test_a_full_disk_sends_nothing_that_could_not_be_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import m365watch.files

    slack_ok = responses.add(responses.POST, SLACK_WEBHOOK, body="ok")
    teams = responses.add(responses.POST, TEAMS_ENDPOINT, status=500)
    poller = Poller(tmp_path, [slack(), TargetSettings(name="teams", urls=(TEAMS_URL,))])
    poller.run(step(0))
    writer = m365watch.files.write_private_file

    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    # A new change while the disk is full: nothing is sent, nothing is written.
    monkeypatch.setattr(m365watch.files, "write_private_file", full)
    before = poller.store.path.read_bytes()
    for hour in (1, 2):
        with pytest.raises(StateError, match=r"cannot write outbox .*No space left on device"):
            poller.run(step(1), now=T0 + timedelta(hours=hour))
    assert (slack_ok.call_count, teams.call_count) == (0, 0)
    assert poller.store.path.read_bytes() == before

    # Space again: sent once; Teams is down and keeps it owed.
    monkeypatch.setattr(m365watch.files, "write_private_file", writer)
    poller.run(step(1), now=T0 + timedelta(hours=3))
    assert (slack_ok.call_count, teams.call_count) == (1, 1)

    # Teams is back but the disk is full again: what Teams is owed is not sent.
    teams_up = responses.replace(responses.POST, TEAMS_ENDPOINT, status=202)
    monkeypatch.setattr(m365watch.files, "write_private_file", full)
    for hour in (4, 5):
        with pytest.raises(StateError, match="No space left on device"):
            poller.run(step(1), now=T0 + timedelta(hours=hour))
    assert (slack_ok.call_count, teams.call_count, teams_up.call_count) == (1, 1, 0)

    monkeypatch.setattr(m365watch.files, "write_private_file", writer)
    assert [
        (d.target, d.ok) for d in poller.run(step(1), now=T0 + timedelta(hours=6)).deliveries
    ] == [("teams", True)]
    assert poller.run(step(1), now=T0 + timedelta(hours=7)).deliveries == ()
    assert (slack_ok.call_count, teams.call_count, teams_up.call_count) == (1, 1, 1)
