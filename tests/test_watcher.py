"""Self-monitoring: one alert after N failed polls, one "working again", no repeats."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import responses

from m365watch.deliver import SendResult
from m365watch.errors import GraphError, M365WatchError, StateError
from m365watch.messages import WATCHER_DOWN_TITLE, WATCHER_UP_TITLE, Message
from m365watch.settings import TargetSettings
from m365watch.store import WatcherStore, watcher_path_for
from m365watch.watcher import (
    MonitoredSource,
    WatcherRecord,
    WatcherReport,
    record_failure,
    record_success,
    watched_poll,
)
from tests.identity import mock_identity
from tests.installation import FEED_AFTER, FEED_BEFORE
from tests.json_hooks import GRAPH_ISSUES, invoke, mock_hooks, received, write_config

T0 = datetime(2026, 11, 20, 21, 0, tzinfo=timezone.utc)
REASON = "Microsoft Graph is unavailable (503 Service Unavailable) after 4 attempts"


@dataclass
class FakeSender:
    """Accepts messages except for targets listed in ``down``."""

    down: set[str] = field(default_factory=set)
    sent: list[tuple[str, Message, bool]] = field(default_factory=list)

    def check(self) -> None:
        pass

    def send(self, target: str, message: Message, *, url: int | None = None) -> SendResult:
        ok = target not in self.down
        self.sent.append((target, message, ok))
        return SendResult(ok, "" if ok else "json: HTTP 500")


def targets(*names_and_events: tuple[str, tuple[str, ...]]) -> tuple[TargetSettings, ...]:
    return tuple(
        TargetSettings(name=name, urls=(f"json://hooks.example/{name}",), events=events)
        for name, events in names_and_events
    )


WATCHERS = targets(("w1", ("watcher",)), ("w2", ("new", "watcher")), ("x", ()), ("y", ("new",)))


def run_steps(
    tmp_path: Path,
    steps: list[str],
    *,
    alert_after: int = 3,
    configured: tuple[TargetSettings, ...] = WATCHERS,
) -> list[list[str]]:
    """Run F (failed poll) / S (good poll) steps; ``F:w1`` means w1 is down in that step.

    Returns, per step, what was sent: ``w1:down``, ``w2:up``, ``w1:down!`` (refused).
    """
    store = WatcherStore(tmp_path / "state.health.json")
    sender = FakeSender()
    log = []
    for number, step in enumerate(steps):
        kind, _, down = step.partition(":")
        sender.down = set(filter(None, down.split(",")))
        sent_before = len(sender.sent)
        now = T0 + timedelta(minutes=5 * number)
        if kind == "F":
            record_failure(
                store,
                reason=REASON,
                alert_after=alert_after,
                targets=configured,
                make_sender=lambda: sender,
                now=now,
            )
        else:
            record_success(store, targets=configured, make_sender=lambda: sender, now=now)
        log.append(
            [
                f"{target}:{'down' if message.title == WATCHER_DOWN_TITLE else 'up'}"
                + ("" if ok else "!")
                for target, message, ok in sender.sent[sent_before:]
            ]
        )
    return log


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            ["F", "F", "F", "F", "F", "S", "S"],
            [[], [], ["w1:down", "w2:down"], [], [], ["w1:up", "w2:up"], []],
        ),
        (
            ["F", "F", "S", "F", "F", "S"],
            [[], [], [], [], [], []],
        ),
        (
            ["F", "F", "F:w1", "F", "F", "S"],
            [[], [], ["w1:down!", "w2:down"], ["w1:down"], [], ["w1:up", "w2:up"]],
        ),
        (
            ["F", "F", "F:w1,w2", "S"],
            [[], [], ["w1:down!", "w2:down!"], []],
        ),
        (
            ["F", "F", "F", "S:w2", "S", "S"],
            [[], [], ["w1:down", "w2:down"], ["w1:up", "w2:up!"], ["w2:up"], []],
        ),
        (
            ["F", "F", "F", "S:w2", "F", "F", "F", "F", "S"],
            [
                [],
                [],
                ["w1:down", "w2:down"],
                ["w1:up", "w2:up!"],
                [],
                [],
                ["w1:down"],
                [],
                ["w1:up", "w2:up"],
            ],
        ),
    ],
    ids=[
        "one-alert-one-recovery",
        "short-outages-reset-the-count",
        "down-target-hears-on-a-later-failed-poll",
        "nobody-told-nobody-owed",
        "recovery-retried-until-accepted",
        "still-told-target-not-alerted-twice",
    ],
)
def test_watcher_messages(tmp_path: Path, steps: list[str], expected: list[list[str]]) -> None:
    assert run_steps(tmp_path, steps) == expected


def test_alert_after_one_alerts_on_the_first_failure(tmp_path: Path) -> None:
    assert run_steps(tmp_path, ["F", "F", "S"], alert_after=1) == [
        ["w1:down", "w2:down"],
        [],
        ["w1:up", "w2:up"],
    ]


def test_messages_say_what_failed_since_when_and_what_to_do(tmp_path: Path) -> None:
    store = WatcherStore(tmp_path / "h.json")
    sender = FakeSender()
    for minutes in (0, 5, 10):
        record_failure(
            store,
            reason=REASON,
            alert_after=3,
            targets=WATCHERS[:1],
            make_sender=lambda: sender,
            now=T0 + timedelta(minutes=minutes),
        )
    record_success(
        store, targets=WATCHERS[:1], make_sender=lambda: sender, now=T0 + timedelta(minutes=15)
    )
    (_, down, _), (_, up, _) = sender.sent
    assert down.title == "m365watch cannot reach Microsoft Graph"
    assert down.text.startswith(f"m365watch cannot reach Microsoft Graph: {REASON}\n\n")
    assert "3 polls in a row have failed, the first at 2026-11-20 21:00 UTC." in down.text
    for body in (
        down.text,
        down.markdown,
        json.dumps(down.payload("teams")),
        json.dumps(down.payload("slack")),
    ):
        assert "Run m365watch doctor on its host to see what is wrong." in body
    assert down.notify_type == "failure"
    assert up.title == WATCHER_UP_TITLE
    assert (
        "m365watch reached Microsoft Graph again at 2026-11-20 21:15 UTC, after failing since "
        "2026-11-20 21:00 UTC. Changes made meanwhile are sent as usual."
    ) in up.text.splitlines()
    assert up.notify_type == "success"


def test_target_dropped_from_config_is_forgotten(tmp_path: Path) -> None:
    log = run_steps(tmp_path, ["F", "F", "F"])
    assert log[-1] == ["w1:down", "w2:down"]
    store = WatcherStore(tmp_path / "state.health.json")
    sender = FakeSender()
    record_success(store, targets=WATCHERS[1:], make_sender=lambda: sender, now=T0)
    assert [target for target, _, _ in sender.sent] == ["w2"]
    assert WatcherRecord.from_json(store.load()).all_clear


def test_quiet_success_reads_one_file_and_writes_nothing(tmp_path: Path) -> None:
    store = WatcherStore(tmp_path / "state.health.json")

    def no_sender() -> Any:
        raise AssertionError("a quiet success must not build a sender (it imports apprise)")

    report = record_success(store, targets=WATCHERS, make_sender=no_sender, now=T0)
    assert report.deliveries == ()
    assert list(tmp_path.iterdir()) == []  # no health file, not even a lock file


def test_damaged_health_file_is_reported_and_counting_restarts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.health.json"
    path.write_text('{"failures": 2, "toldD')
    store = WatcherStore(path)
    with caplog.at_level(logging.WARNING):
        report = record_failure(
            store, reason=REASON, alert_after=3, targets=WATCHERS, make_sender=FakeSender, now=T0
        )
    assert report.failures == 1
    assert f"health file {path} is damaged; counting failed polls from zero" in caplog.text
    assert path.stat().st_mode & 0o777 == 0o600


def test_health_file_lives_beside_the_state() -> None:
    assert watcher_path_for(Path("/var/lib/m365watch/state.json")) == Path(
        "/var/lib/m365watch/state.health.json"
    )


def test_monitored_source_remembers_only_its_own_error() -> None:
    from m365watch.errors import GraphError

    class Broken:
        def list_issues(self) -> list[dict[str, Any]]:
            raise GraphError("Graph answered 403 Forbidden")

    source = MonitoredSource(Broken())
    with pytest.raises(GraphError) as raised:
        source.list_issues()
    assert source.failure is raised.value


# -- through the command line -------------------------------------------------------------


def test_cli_alerts_once_after_three_failed_polls_and_once_when_working_again(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    state = tmp_path / "state" / "state.json"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_identity(rsps)
        rsps.get(GRAPH_ISSUES, json={"value": FEED_BEFORE})
        assert invoke(config, "poll").exit_code == 0
    before = state.read_bytes()

    outputs = []
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(GRAPH_ISSUES, status=403, json={"error": {"code": "Forbidden", "message": "no"}})
        mock_hooks(rsps)
        for _ in range(5):
            result = invoke(config, "poll")
            assert result.exit_code == 1
            outputs.append(result.output)
        sent = received(rsps)
    assert sent == [("watch", WATCHER_DOWN_TITLE)]
    assert outputs[2].startswith(
        f"Sent '{WATCHER_DOWN_TITLE}' to watch.\nError: Graph answered 403"
    )
    assert all(o.startswith("Error: ") for i, o in enumerate(outputs) if i != 2)
    assert state.read_bytes() == before  # failures never touch the state
    health = json.loads((tmp_path / "state" / "state.health.json").read_text())
    assert (health["failures"], health["toldDown"]) == (5, ["watch"])
    assert health["lastError"].startswith("Graph answered 403 Forbidden: grant the application")

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(GRAPH_ISSUES, json={"value": FEED_AFTER})
        mock_hooks(rsps)
        recovered = invoke(config, "poll")
        again = invoke(config, "poll")
        sent = received(rsps)
    assert recovered.exit_code == 0, recovered.output
    assert recovered.output.startswith(f"Sent '{WATCHER_UP_TITLE}' to watch.\n")
    assert again.exit_code == 0
    assert [t for t in sent if t[0] == "watch"] == [("watch", WATCHER_UP_TITLE)]
    assert len([t for t in sent if t[0] != "watch"]) == 12  # the news made meanwhile, once


def test_cli_refused_working_again_exits_3_and_is_retried(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[health]\nalert_after = 1\n")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_identity(rsps)
        rsps.get(GRAPH_ISSUES, json={"value": FEED_BEFORE})
        assert invoke(config, "poll").exit_code == 0
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(GRAPH_ISSUES, status=503, headers={"Retry-After": "0"}, body="{}")
        mock_hooks(rsps)
        assert invoke(config, "-q", "poll").exit_code == 1
        assert received(rsps) == [("watch", WATCHER_DOWN_TITLE)]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(GRAPH_ISSUES, json={"value": FEED_BEFORE})
        mock_hooks(rsps, failing=("watch",))
        refused = invoke(config, "-q", "poll")
    assert refused.exit_code == 3
    assert refused.output.startswith(
        f"Warning: '{WATCHER_UP_TITLE}' not delivered to watch: json: "
    )
    assert refused.output.rstrip().endswith("(tried again next poll)")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(GRAPH_ISSUES, json={"value": FEED_BEFORE})
        mock_hooks(rsps)
        assert invoke(config, "-q", "poll").exit_code == 0
        assert received(rsps) == [("watch", WATCHER_UP_TITLE)]


def test_cli_dry_run_and_locked_or_damaged_state_are_not_counted(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[health]\nalert_after = 1\n")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_identity(rsps)
        rsps.get(GRAPH_ISSUES, status=403, json={"error": {"message": "no"}})
        mock_hooks(rsps)
        assert invoke(config, "poll", "--dry-run").exit_code == 1
        assert received(rsps) == []
    assert not (tmp_path / "state" / "state.health.json").exists()
    state = tmp_path / "state" / "state.json"
    state.write_text("{")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_hooks(rsps)
        assert invoke(config, "poll").exit_code == 1
        assert received(rsps) == []
    assert not (tmp_path / "state" / "state.health.json").exists()


class Unreachable:
    def list_issues(self) -> list[dict[str, Any]]:
        raise GraphError(REASON)


class Reachable:
    def list_issues(self) -> list[dict[str, Any]]:
        return []


@pytest.mark.parametrize(
    ("source", "poll_error", "failures", "record"),
    [
        (Unreachable(), None, 1, True),
        (Reachable(), StateError("state file is damaged"), 0, True),
        (Unreachable(), None, 0, False),
    ],
    ids=["graph-failure-counted", "own-failure-not-counted", "dry-run-records-nothing"],
)
def test_watched_poll_counts_only_the_sources_failures(
    tmp_path: Path,
    source: Any,
    poll_error: M365WatchError | None,
    failures: int,
    record: bool,
) -> None:
    store = WatcherStore(tmp_path / "state.health.json")
    heard: list[WatcherReport] = []

    def poll(monitored: Any) -> str:
        monitored.list_issues()
        if poll_error is not None:
            raise poll_error
        return "polled"

    with pytest.raises(M365WatchError) as caught:
        watched_poll(
            poll,
            source,
            store,
            alert_after=1,
            targets=WATCHERS,
            make_sender=FakeSender,
            now=lambda: T0,
            on_report=heard.append,
            record=record,
        )
    assert str(caught.value) == str(poll_error or REASON)
    assert WatcherRecord.from_json(store.load()).failures == failures
    # Told as soon as it was sent (before the error is raised on): both watcher targets.
    assert [[d.target for d in r.deliveries] for r in heard] == ([["w1", "w2"]] if failures else [])
