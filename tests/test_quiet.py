"""The quiet path: a poll whose feeds are byte for byte what the state was planned from.

Such a poll reads no state, plans nothing and writes nothing but the state file's
time, unless something else could make a change: an owed delivery, a changed
configuration, an item due to be forgotten, a reminder window opening, or a state
file written behind the mark's back.
"""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import responses

from m365watch.errors import StateError
from m365watch.feeds.issues import ISSUES
from m365watch.feeds.messages import MessagesFeed
from m365watch.graph import Collection
from m365watch.notify import Notifier
from m365watch.poll import FeedSource, PollResult, run_poll
from m365watch.records import Snapshot, State
from m365watch.settings import MessagesSettings, PollSettings, TargetSettings
from m365watch.store import StateStore
from tests.helpers import SLACK_URL, SLACK_WEBHOOK, timeline_steps

T0 = datetime(2026, 11, 20, 13, 30, tzinfo=timezone.utc)
STEPS = timeline_steps()


def collection(items: list[dict[str, Any]]) -> Collection:
    """Items as the Graph adapter returns them: with the digest of the bytes sent."""
    fetched = Collection(copy.deepcopy(items))
    text = json.dumps({"value": items}, sort_keys=True).encode()
    fetched.digest = "sha256:" + hashlib.sha256(text).hexdigest()
    return fetched


class CountingStore(StateStore):
    loads = 0

    def load(self, *args: Any, **kwargs: Any) -> State:
        self.loads += 1
        return super().load(*args, **kwargs)


def poll(
    store: StateStore,
    issues: list[dict[str, Any]],
    *,
    now: datetime = T0,
    targets: tuple[TargetSettings, ...] = (),
    posts: list[dict[str, Any]] | None = None,
    messages: MessagesSettings | None = None,
) -> PollResult:
    sources = [FeedSource(ISSUES, lambda: collection(issues))]
    if posts is not None:
        feed = MessagesFeed(settings=messages or MessagesSettings(), now=now)
        sources.append(FeedSource(feed, lambda: collection(posts)))
    return run_poll(
        sources=sources,
        store=store,
        make_sender=lambda: Notifier({t.name: t.urls for t in targets}, throttle=False),
        poll=PollSettings(),
        targets=targets,
        targets_fingerprint="fp-" + ",".join(t.name for t in targets),
        now=now,
    )


def step(n: int) -> list[dict[str, Any]]:
    return copy.deepcopy(STEPS[n]["issues"])


def test_the_same_bytes_again_read_no_state_and_write_nothing(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "state.json")
    poll(store, step(2))
    poll(store, step(2), now=T0 + timedelta(minutes=5))  # writes the mark (first quiet poll)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("state*.json")}
    loads = store.loads

    result = poll(store, step(2), now=T0 + timedelta(minutes=10))

    assert store.loads == loads  # the state was not read
    assert result.changes == () and result.issues_seen == len(step(2))
    assert {p.name: p.read_bytes() for p in tmp_path.glob("state*.json")} == before


@responses.activate
def test_changed_bytes_are_planned_as_ever(tmp_path: Path) -> None:
    responses.post(SLACK_WEBHOOK, body="ok")
    slack = (TargetSettings(name="slack", urls=(SLACK_URL,)),)
    store = CountingStore(tmp_path / "state.json")
    poll(store, step(1), targets=slack)
    poll(store, step(1), targets=slack)

    result = poll(store, step(2), now=T0 + timedelta(hours=1), targets=slack)

    assert [c.item_id for c in result.changes] == ["EX1256020"]
    assert [d.ok for d in result.deliveries] == [True]


@responses.activate
def test_an_owed_delivery_is_retried_though_graph_sent_the_same_bytes(tmp_path: Path) -> None:
    responses.post(SLACK_WEBHOOK, status=500)
    slack = (TargetSettings(name="slack", urls=(SLACK_URL,)),)
    store = StateStore(tmp_path / "state.json")
    poll(store, step(1), targets=slack)
    failed = poll(store, step(2), now=T0 + timedelta(hours=1), targets=slack)
    assert failed.pending == 1
    responses.replace(responses.POST, SLACK_WEBHOOK, body="ok")

    retried = poll(store, step(2), now=T0 + timedelta(hours=2), targets=slack)

    assert [d.ok for d in retried.deliveries] == [True]
    assert retried.pending == 0


def test_a_changed_configuration_plans_again(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "state.json")
    poll(store, step(2))
    poll(store, step(2))
    loads = store.loads
    poll(store, step(2), targets=(TargetSettings(name="new", urls=("json://localhost/",)),))
    assert store.loads == loads + 1


def test_an_item_due_to_be_forgotten_plans_again(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "state.json")
    gone = [i for i in step(1) if i["id"] != "EX1256020"]
    poll(store, step(1))
    poll(store, gone, now=T0 + timedelta(hours=1))  # EX1256020 left the feed
    poll(store, gone, now=T0 + timedelta(days=30))
    assert "EX1256020" in store.load().items("issues")

    poll(store, gone, now=T0 + timedelta(days=91))

    assert "EX1256020" not in store.load().items("issues")


def test_a_reminder_window_opening_plans_again(tmp_path: Path) -> None:
    post = {
        "id": "MC1000001",
        "title": "Retirement",
        "category": "planForChange",
        "severity": "normal",
        "services": ["Exchange Online"],
        "actionRequiredByDateTime": "2027-01-15T00:00:00Z",
        "lastModifiedDateTime": "2026-11-01T00:00:00Z",
        "body": {"contentType": "html", "content": "<p>Act.</p>"},
    }
    store = CountingStore(tmp_path / "state.json")
    settings = MessagesSettings(remind_before_days=(30.0,))
    poll(store, step(1), posts=[post], messages=settings)
    poll(store, step(1), posts=[post], messages=settings, now=T0 + timedelta(days=1))
    loads = store.loads
    quiet = poll(store, step(1), posts=[post], messages=settings, now=T0 + timedelta(days=2))
    assert store.loads == loads and quiet.changes == ()

    due = poll(
        store,
        step(1),
        posts=[post],
        messages=settings,
        now=datetime(2026, 12, 17, tzinfo=timezone.utc),
    )

    assert [c.item_id for c in due.changes] == ["MC1000001"]


def test_a_state_file_replaced_behind_the_mark_is_read(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "state.json")
    poll(store, step(2))
    poll(store, step(2))
    text = store.path.read_text()
    store.path.write_text(text.replace('"generation":', '"generation" :'))  # one byte longer
    loads = store.loads

    poll(store, step(2))

    assert store.loads == loads + 1


def test_a_change_among_many_parses_only_what_graph_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from m365watch.models import Issue

    many = [dict(step(1)[0], id=f"EX{1000000 + n}") for n in range(50)]
    store = StateStore(tmp_path / "state.json")
    poll(store, many)
    parsed: list[str] = []
    real = Issue.from_graph.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Issue], data: Any) -> Issue:
        parsed.append(str(data.get("id")))
        return real(cls, data)  # type: ignore[no-any-return]

    monkeypatch.setattr(Issue, "from_graph", classmethod(counting))
    changed = copy.deepcopy(many)
    changed[7]["status"] = "serviceRestored"

    result = poll(store, changed, now=T0 + timedelta(hours=1))

    assert [c.item_id for c in result.changes] == ["EX1000007"]
    assert sorted(parsed) == ["EX1000007", "EX1000007"]  # what Graph sent, and what was stored


def test_a_stored_record_that_cannot_be_read_is_a_state_error_when_needed(
    tmp_path: Path,
) -> None:
    store = StateStore(tmp_path / "state.json")
    poll(store, step(1))
    raw = json.loads(store.path.read_text())
    (doc,) = [d for d in raw["issues"].values() if d["id"] == "EX1256020"]
    doc["item"] = {"title": "no id"}
    store.path.write_text(json.dumps(raw))
    changed = step(1)
    changed[0]["status"] = "serviceDegradation"

    with pytest.raises(StateError, match=r"issue record \d+ is malformed"):
        poll(store, changed, now=T0 + timedelta(hours=1))


def test_one_change_among_many_writes_the_change_not_the_state_file(tmp_path: Path) -> None:
    many = [dict(step(1)[0], id=f"EX{1000000 + n}") for n in range(300)]
    store = StateStore(tmp_path / "state.json")
    poll(store, many)
    base = store.path.read_bytes()
    changed = copy.deepcopy(many)
    changed[7]["status"] = "serviceRestored"

    poll(store, changed, now=T0 + timedelta(hours=1))

    assert store.path.read_bytes() == base  # the state file is not rewritten …
    delta = store.delta_path.stat().st_size
    assert delta < len(json.dumps(changed[7])) * 2 + 1000  # … its delta holds the change
    loaded = StateStore(store.path).load()
    assert loaded.items("issues")["EX1000007"].item.status == "serviceRestored"
    assert loaded.meta.generation == 2


def test_the_delta_keeps_every_change_and_gone_item_until_it_is_folded_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    many = [dict(step(1)[0], id=f"EX{1000000 + n}") for n in range(20)]
    store = StateStore(tmp_path / "state.json")
    poll(store, many)
    feed = copy.deepcopy(many)
    feed[3]["status"] = "serviceRestored"
    poll(store, feed, now=T0 + timedelta(hours=1))
    feed = [i for i in feed if i["id"] != "EX1000005"]
    poll(store, feed, now=T0 + timedelta(hours=2))  # EX1000005 left the feed
    poll(store, feed, now=T0 + timedelta(days=91))  # … and is forgotten

    state = StateStore(store.path).load()
    assert state.items("issues")["EX1000003"].item.status == "serviceRestored"
    assert "EX1000005" not in state.items("issues")
    assert store.delta_path.exists()

    monkeypatch.setattr("m365watch.store.DELTA_MIN_ROWS", 0)  # fold at once from now
    feed[0]["status"] = "serviceRestored"
    poll(store, feed, now=T0 + timedelta(days=92))
    assert not store.delta_path.exists()
    folded = StateStore(store.path).load()
    assert folded.items("issues") == StateStore(store.path).load().items("issues")
    assert folded.items("issues")["EX1000000"].item.status == "serviceRestored"
    assert "EX1000005" not in folded.items("issues")


def test_a_delta_older_than_the_state_file_is_ignored(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    poll(store, step(1))
    changed = step(1)
    changed[0]["status"] = "serviceRestored"
    poll(store, changed, now=T0 + timedelta(hours=1))
    stale = json.loads(store.delta_path.read_text())
    fresh = StateStore(store.path)
    state = fresh.load()
    fresh._loaded = None  # as a poll that folds the delta in: the whole state file
    fresh.save(state)
    assert not store.delta_path.exists()
    # As if killed before the old delta was removed, and that delta said something else:
    (row,) = [r for r in stale["issues"].values() if r["id"] == "TM1255871"]
    row["item"]["status"] = "investigating"
    store.delta_path.write_text(json.dumps(stale))

    tm = StateStore(store.path).load().items("issues")["TM1255871"].item

    assert tm.status == "serviceRestored"


def test_a_damaged_delta_is_the_state_files_error(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    poll(store, step(1))
    store.delta_path.write_text('{"meta": {"1": {"schema": 2}}}')
    with pytest.raises(StateError, match=r"state\.delta\.json .*no m365watch schema or base"):
        StateStore(store.path).load()


def test_a_post_is_unchanged_only_while_its_json_and_reminder_windows_are() -> None:
    post = {
        "id": "MC1000001",
        "title": "Retirement",
        "actionRequiredByDateTime": "2027-01-15T00:00:00Z",
        "body": {"contentType": "html", "content": "<p>Act.</p>"},
    }
    early = MessagesFeed(settings=MessagesSettings(remind_before_days=(30.0, 7.0)), now=T0)
    (item,), _ = early.parse([post])
    record = early.record_for(item, post)

    assert early.unchanged(record, copy.deepcopy(post))
    assert not early.unchanged(record, {**post, "title": "Retirement (updated)"})
    inside = MessagesFeed(
        settings=MessagesSettings(remind_before_days=(30.0, 7.0)),
        now=datetime(2026, 12, 20, tzinfo=timezone.utc),  # 26 days before: the 30-day window
    )
    assert not inside.unchanged(record, post)
    assert inside.unchanged(inside.record_for(inside.parse([post])[0][0], post), post)


def test_records_from_before_are_kept_as_graph_sends_them_from_the_next_change_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from m365watch.models import Issue
    from m365watch.records import Meta

    many = [dict(step(1)[0], id=f"EX{1000000 + n}") for n in range(40)]
    store = StateStore(tmp_path / "state.json")
    old_style = {i["id"]: Snapshot(Issue.from_graph(i)) for i in many}  # records: to_graph()
    store.save(
        State(meta=Meta(generation=1, baselines={"issues": T0}), snapshots={"issues": old_style})
    )
    parsed: list[str] = []
    real = Issue.from_graph.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Issue], data: Any) -> Issue:
        parsed.append(str(data.get("id")))
        return real(cls, data)  # type: ignore[no-any-return]

    monkeypatch.setattr(Issue, "from_graph", classmethod(counting))
    feed = copy.deepcopy(many)
    feed[3]["status"] = "serviceRestored"
    poll(store, feed, now=T0 + timedelta(hours=1))  # every record compared parsed, once
    assert len(parsed) > 40
    parsed.clear()
    feed[9]["status"] = "serviceRestored"

    poll(store, feed, now=T0 + timedelta(hours=2))

    assert sorted(parsed) == ["EX1000009", "EX1000009"]
