"""``m365watch watch``: the interval, Graph's hourly budget, failed polls, and stopping cleanly."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

import m365watch.watch
from m365watch.errors import ConfigError, GraphError
from m365watch.watch import (
    RequestBudget,
    check_interval,
    format_interval,
    keep_polling,
    minimum_interval,
    parse_interval,
    run_watch,
)
from tests.identity import mock_identity
from tests.installation import EXPECTED, FEED_AFTER, FEED_BEFORE, Installation, reset
from tests.json_hooks import GRAPH_ISSUES, invoke, mock_hooks, received, write_config
from tests.loopback import FakeMicrosoft


class FakeClock:
    """A monotonic clock that only moves when the loop sleeps (or a poll takes time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1.5m", 90.0), ("1h", 3600.0), (" 2M ", 120.0)],
)
def test_parse_interval(text: str, seconds: float) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "-5m", "5x", "five minutes", "5m30s", "inf"])
def test_parse_interval_refuses_nonsense(text: str) -> None:
    with pytest.raises(ConfigError, match="--every must be a duration such as 30s, 5m or 1h"):
        parse_interval(text)


@pytest.mark.parametrize("text", ["25h", "24.5h", "9999999999h", "86401s"])
def test_parse_interval_refuses_more_than_a_day(text: str) -> None:
    with pytest.raises(ConfigError, match="--every is at most 24h"):
        parse_interval(text)


def test_budget_arithmetic() -> None:
    # 4 attempts per poll at most: 3600 * 4 / 800 = 18 s between poll starts.
    assert minimum_interval(4) == 18
    assert [format_interval(s) for s in (18, 90, 300, 3600, 5400, 7.5)] == [
        "18s",
        "90s",
        "5m",
        "1h",
        "90m",
        "7.5s",
    ]


@pytest.mark.parametrize("every", [18.0, 60.0, 300.0, 3600.0], ids=["18s", "1m", "5m", "1h"])
def test_intervals_within_the_budget_are_accepted(every: float) -> None:
    check_interval(every, 4)


@pytest.mark.parametrize(
    ("every", "worst"), [(17.0, 848), (10.0, 1440), (1.0, 14400)], ids=["17s", "10s", "1s"]
)
def test_intervals_that_could_break_the_budget_are_refused(every: float, worst: int) -> None:
    with pytest.raises(ConfigError) as raised:
        check_interval(every, 4)
    assert str(raised.value) == (
        f"--every {format_interval(every)} could spend {worst} Graph requests an hour (4 per "
        "poll when Graph must be retried), more than the 800 Microsoft allows per app and "
        "tenant: use --every 18s or more (the default is 5m)"
    )


def run_script(
    script: list[tuple[float, int]], *, every: float = 300.0, budget: RequestBudget | None = None
) -> tuple[int, list[float], list[float]]:
    """Run the loop over scripted polls (seconds taken, Graph requests spent).

    The last poll sets the stop flag while it runs, as SIGTERM would. Returns the
    number of polls, their start times and the loop's sleeps.
    """
    clock = FakeClock()
    stop = threading.Event()
    starts: list[float] = []

    def poll() -> int:
        starts.append(clock.now)
        took, spent = script[len(starts) - 1]
        clock.now += took
        if len(starts) == len(script):
            stop.set()
        return spent

    count = run_watch(
        poll,
        every=every,
        requests_per_poll=4,
        stop=stop,
        sleep=clock.sleep,
        clock=clock,
        budget=budget,
    )
    return count, [s - 1000.0 for s in starts], clock.sleeps


def test_polls_start_on_a_fixed_schedule_and_a_slow_one_delays_only_the_next() -> None:
    count, starts, sleeps = run_script([(0, 1), (50, 1), (400, 4), (0, 1)])
    assert count == 4
    assert starts == [0, 300, 600, 1000]
    assert sleeps == [300, 250, 0]  # and no sleep after the poll that saw the stop


def test_stop_during_a_poll_lets_it_finish_and_ends_the_loop() -> None:
    count, starts, sleeps = run_script([(12, 1)])
    assert (count, starts, sleeps) == (1, [0], [])


def test_stop_before_the_first_poll_runs_nothing() -> None:
    stop = threading.Event()
    stop.set()
    assert run_watch(lambda: 1, every=300, requests_per_poll=4, stop=stop, sleep=None) == 0


def test_the_loop_itself_refuses_an_interval_that_breaks_the_budget() -> None:
    with pytest.raises(ConfigError, match="could spend 1440 Graph requests an hour"):
        run_watch(lambda: 1, every=10, requests_per_poll=4, stop=threading.Event())


def test_a_poll_that_would_break_the_hourly_budget_waits() -> None:
    # Polls spending 100 requests each (a huge paged feed): the ninth would pass 800.
    count, starts, sleeps = run_script([(0, 100)] * 10, every=18)
    assert count == 10
    assert starts[:8] == [18 * n for n in range(8)]
    assert starts[8] == 3600  # the first poll's requests are an hour old
    assert 3600 - 8 * 18 in sleeps
    assert starts[9] == 3618


def test_request_budget_arithmetic() -> None:
    budget = RequestBudget(per_hour=10)
    budget.record(0.0, 4)
    budget.record(100.0, 4)
    assert budget.wait_before(200.0, 2) == 0.0
    assert budget.wait_before(200.0, 4) == 3400.0  # until the first 4 are an hour old
    budget.record(200.0, 2)
    assert budget.wait_before(300.0, 4) == 3300.0
    assert budget.wait_before(300.0, 8) == 3400.0  # two batches must age out
    assert budget.spent(3600.0) == 6
    assert budget.spent(3700.0) == 2


# -- the command, in-process ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("every", "message"),
    [
        ("10s", "Error: --every 10s could spend 1440 Graph requests an hour"),
        ("soon", "Error: --every must be a duration such as 30s, 5m or 1h, not 'soon'"),
    ],
    ids=["over-budget", "not-a-duration"],
)
def test_watch_refuses_a_bad_interval_before_doing_anything(
    tmp_path: Path, every: str, message: str
) -> None:
    config = write_config(tmp_path)
    with responses.RequestsMock() as rsps:
        result = invoke(config, "watch", "--every", every)
        assert len(rsps.calls) == 0
    assert result.exit_code == 2
    assert result.output.startswith(message)
    assert len(result.output.splitlines()) == 1


@pytest.mark.parametrize(
    ("error", "reported"),
    [
        (GraphError("Graph answered 503\nretry later"), "Graph answered 503"),
        (RuntimeError("x" * 1000), f"unexpected RuntimeError in this poll: {'x' * 1000}"[:493]),
    ],
    ids=["ours-first-line", "unexpected-cut-to-500-with-its-prefix"],
)
def test_keep_polling_reports_a_failed_poll_in_one_line(error: Exception, reported: str) -> None:
    stop = threading.Event()
    errors: list[str] = []

    def poll() -> None:
        stop.set()  # the loop ends after this poll, without waiting
        raise error

    polls = keep_polling(
        poll,
        requests_made=lambda: 0,
        report_error=errors.append,
        every=300,
        requests_per_poll=4,
        stop=stop,
    )
    assert (polls, errors) == (1, [reported])
    assert len(f"Error: {errors[0]}") <= 500


@pytest.fixture
def three_polls(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Make `watch` run three polls on a fake clock, then stop as SIGTERM would."""
    real = m365watch.watch.run_watch
    clock = FakeClock()

    def scripted(poll: Callable[[], int], **kwargs: Any) -> int:
        done = [0]

        def counted() -> int:
            spent = poll()
            done[0] += 1
            if done[0] == 3:
                kwargs["stop"].set()
            return spent

        return real(counted, **{**kwargs, "sleep": clock.sleep, "clock": clock})

    monkeypatch.setattr(m365watch.watch, "run_watch", scripted)
    return clock


def test_a_failed_poll_does_not_end_the_loop(tmp_path: Path, three_polls: FakeClock) -> None:
    config = write_config(tmp_path)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_identity(rsps)
        rsps.get(GRAPH_ISSUES, json={"value": FEED_BEFORE})
        assert invoke(config, "poll").exit_code == 0
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(GRAPH_ISSUES, status=403, json={"error": {"message": "no"}})
        rsps.get(GRAPH_ISSUES, json={"value": FEED_AFTER})
        mock_hooks(rsps)
        result = invoke(config, "watch")
        sent = received(rsps)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "Polling every 5m; SIGTERM or Ctrl-C stops after the poll in progress.",
        "Error: Graph answered 403 Forbidden: grant the application permission "
        "ServiceHealth.Read.All to the app registration and have an admin grant consent",
        "10 issues, 8 change(s), 12 message(s) sent, 0 failed, 0 delivery(ies) pending.",
        "10 issues, 0 change(s), 0 message(s) sent, 0 failed, 0 delivery(ies) pending.",
        "Stopped after 3 poll(s).",
    ]
    assert len(sent) == len(EXPECTED)
    assert three_polls.sleeps == [300, 300]


# -- the command, as a real process receiving real signals -----------------------------------


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeMicrosoft]:
    with FakeMicrosoft(tmp_path_factory.mktemp("loopback")).start() as server:
        yield server


@pytest.fixture
def inst(fake: FakeMicrosoft, tmp_path: Path) -> Installation:
    reset(fake)
    installation = Installation(tmp_path, fake)
    installation.baseline()
    return installation


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_sigterm_during_a_poll_finishes_it_then_exits_0(inst: Installation) -> None:
    inst.fake.hook_delay = 0.05
    proc = inst.spawn("watch", "--every", "1h")
    wait_for(lambda: inst.posts_arrived() >= 1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "10 issues, 8 change(s), 12 message(s) sent, 0 failed, 0 delivery(ies) pending." in out
    assert out.endswith("Stopped after 1 poll(s).\n")
    assert inst.received() == {pair: 1 for pair in EXPECTED}
    assert inst.run("-q", "poll").returncode == 0  # and the state says nothing is owed
    assert sum(inst.received().values()) == len(EXPECTED)


def test_sigint_between_polls_exits_0_at_once(inst: Installation) -> None:
    proc = inst.spawn("watch", "--every", "1h")
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("Polling every 1h")
    assert "12 message(s) sent" in proc.stdout.readline()
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out, err) == (0, "Stopped after 1 poll(s).\n", "")
    assert time.monotonic() - started < 5


def test_a_second_signal_stops_at_once_and_loses_nothing(inst: Installation) -> None:
    inst.fake.hook_delay = 0.2
    proc = inst.spawn("watch", "--every", "1h")
    wait_for(lambda: inst.posts_arrived() >= 1)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)  # two signals in a row can reach Python's handler as one
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip().endswith("Interrupted.")
    assert len(inst.received()) < len(EXPECTED)
    inst.fake.hook_delay = 0.0
    assert inst.run("-q", "poll").returncode == 0
    assert set(inst.received()) == EXPECTED


def test_an_unexpected_failure_in_a_poll_does_not_end_the_loop(
    tmp_path: Path, three_polls: FakeClock
) -> None:
    config = write_config(tmp_path)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_identity(rsps)
        rsps.get(GRAPH_ISSUES, json={"value": FEED_BEFORE})
        assert invoke(config, "poll").exit_code == 0
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(GRAPH_ISSUES, body=RuntimeError("a bug somewhere"))
        rsps.get(GRAPH_ISSUES, json={"value": FEED_AFTER})
        mock_hooks(rsps)
        result = invoke(config, "watch")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1] == "Error: unexpected RuntimeError in this poll: a bug somewhere"
    assert lines[2].startswith("10 issues, 8 change(s), 12 message(s) sent")
    assert lines[-1] == "Stopped after 3 poll(s)."


def test_the_request_budget_counts_every_read_a_poll_makes() -> None:
    from m365watch import wiring
    from m365watch.config import parse_settings
    from m365watch.graph import DEFAULT_MAX_ATTEMPTS

    base: dict[str, Any] = {"state": {"path": "/tmp/m365watch-test/state.json"}}
    plain = parse_settings(base, env={})
    both = parse_settings({**base, "metrics": {"textfile": "/tmp/m.prom"}, "messages": {}}, env={})

    assert wiring.graph_requests_per_poll(plain) == DEFAULT_MAX_ATTEMPTS
    assert wiring.graph_requests_per_poll(both) == 3 * DEFAULT_MAX_ATTEMPTS
