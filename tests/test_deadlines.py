"""Time limits on the whole of each network exchange, not only on each read.

A peer that sends one byte every half second never trips a per-read timeout.
Against the loopback Entra ID, Graph and webhooks (tests/loopback.py) dribbling
their answers, with m365watch.budget's limits shortened to a second or two:
a poll fails within its limit (exit 1, one line, state untouched, counted by
the watcher), a send times out and stays owed, a huge Graph answer is refused
unread, and ``watch`` keeps polling.
"""

from __future__ import annotations

import json
import resource
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import m365watch.budget
import m365watch.watch
from tests.installation import EXPECTED, Installation, Target, reset
from tests.loopback import ISSUES_PATH, FakeMicrosoft

FETCH = 2.0  # the poll's limit for sign-in and Graph, in these tests
SEND = 1.5  # the limit for one message to one URL, in these tests
# Starting Python and importing m365watch's libraries, on a slow machine.
STARTUP = 8.0
DRIBBLE = 0.5  # seconds between the bytes of a dribbled answer


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


def state_of(inst: Installation) -> tuple[bytes, int]:
    return inst.state.read_bytes(), inst.state.stat().st_mtime_ns


def failures_counted(inst: Installation) -> int:
    count: int = json.loads(inst.health.read_text())["failures"]
    return count


def timed(run: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = run()
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    ("dribbling", "message"),
    [
        (
            "graph",
            f"Error: Microsoft Graph's answer for {ISSUES_PATH} was still arriving after 2s "
            "(from 127.0.0.1); no time left for another attempt within the 2s limit for "
            "sign-in and Graph in one poll; check the network and proxy, or run again later\n",
        ),
        (
            "token",
            "Error: sign-in to 127.0.0.1 did not finish within 2 s (the answer came too "
            "slowly); check the network and HTTPS_PROXY\n",
        ),
    ],
    ids=["graph-answer", "token-answer"],
)
def test_a_dribbled_answer_fails_the_poll_within_its_limit(
    inst: Installation, dribbling: str, message: str
) -> None:
    setattr(inst.fake, f"{dribbling}_dribble", DRIBBLE)
    before = state_of(inst)
    done, took = timed(
        lambda: inst.run_limited("-q", "poll", limits={"FETCH_SECONDS": FETCH}, timeout=20)
    )
    assert (done.returncode, done.stdout, done.stderr) == (1, "", message)
    assert took < FETCH + STARTUP
    assert state_of(inst) == before
    assert failures_counted(inst) == 1
    assert inst.fake.closed_early[dribbling] + inst.fake.sent[dribbling] > 0  # it was reached
    assert not inst.fake.hooks


def test_test_notify_gives_up_on_a_dribbling_webhook_and_exits_at_once(
    inst: Installation,
) -> None:
    inst.fake.dribbling_hooks.add("incidents")
    done, took = timed(
        lambda: inst.run_limited("test-notify", limits={"SEND_SECONDS": SEND}, timeout=20)
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == [
        "all: ok (json)",
        "incidents: FAILED (json): json: timed out after 1.5 s",
        "watch: ok (json)",
    ]
    # The process did not wait for the abandoned send at exit.
    assert took < SEND + STARTUP


def test_a_poll_keeps_what_a_dribbling_webhook_did_not_take(inst: Installation) -> None:
    inst.fake.dribbling_hooks.add("incidents")
    done, took = timed(
        lambda: inst.run_limited("-q", "poll", limits={"SEND_SECONDS": SEND}, timeout=30)
    )
    assert done.returncode == 3, done.stderr
    warnings = done.stderr.splitlines()
    # The first message waits SEND seconds; the other three are not tried while it hangs.
    assert len(warnings) == 4
    assert all("not tried: an earlier send to it timed out" in w for w in warnings[1:])
    assert warnings[0].endswith(
        "not delivered to incidents: json: timed out after 1.5 s (kept; retried next poll)"
    )
    assert all("timed out after 1.5 s" in w for w in warnings)
    assert took < SEND + STARTUP
    assert {t for t, _ in inst.received()} == {"all"}

    inst.fake.dribbling_hooks.clear()
    again = inst.run("-q", "poll")
    assert (again.returncode, again.stderr) == (0, "")
    assert set(inst.received()) == EXPECTED


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
def test_a_graph_answer_over_the_cap_is_refused_unread(inst: Installation, declared: bool) -> None:
    huge = 100 * 1024 * 1024
    inst.fake.huge_graph = huge
    inst.fake.huge_declared = declared
    before = state_of(inst)
    done = inst.run("-q", "poll", timeout=60)
    assert done.returncode == 1
    assert done.stderr == (
        f"Error: Graph's answer for {ISSUES_PATH} is larger than 64 MiB; refusing to read "
        "it: check that graph_endpoint points at Microsoft Graph and that no proxy is in "
        "the way\n"
    )
    assert state_of(inst) == before
    assert failures_counted(inst) == 1
    # m365watch hung up long before the end: the server could not send it all.
    assert inst.fake.sent["graph"] < huge * 0.8
    assert inst.fake.closed_early["graph"] == 1
    # No child process so far (this one included) held the 100 MB answer in memory.
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert peak_mib < 200


def test_watch_keeps_polling_a_dribbling_graph_and_the_watcher_alert_fires(
    fake: FakeMicrosoft, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reset(fake)
    inst = Installation(tmp_path, fake, (Target("all"), Target("watch", events=("watcher",))))
    inst.baseline()
    fake.graph_dribble = DRIBBLE
    monkeypatch.setattr(m365watch.budget, "FETCH_SECONDS", 1.0)
    waits: list[float] = []
    real = m365watch.watch.run_watch

    def three_polls(poll: Callable[[], int], **kwargs: Any) -> int:
        done = [0]
        stop: threading.Event = kwargs["stop"]

        def counted() -> int:
            spent = poll()
            done[0] += 1
            if done[0] == 3:
                stop.set()
            return spent

        return real(counted, **{**kwargs, "sleep": waits.append})

    monkeypatch.setattr(m365watch.watch, "run_watch", three_polls)
    result, took = timed(lambda: inst.invoke("watch", "--every", "20s"))
    assert result.exit_code == 0, result.output
    error = (
        f"Error: Microsoft Graph's answer for {ISSUES_PATH} was still arriving after 1s "
        "(from 127.0.0.1); no time left for another attempt within the 1s limit for "
        "sign-in and Graph in one poll; check the network and proxy, or run again later"
    )
    assert result.output.splitlines() == [
        "Polling every 20s; SIGTERM or Ctrl-C stops after the poll in progress.",
        error,
        error,
        "Sent 'm365watch cannot reach Microsoft Graph' to watch.",
        error,
        "Stopped after 3 poll(s).",
    ]
    # Each poll took between its 1 s limit and 3 s: the next started on time.
    assert len(waits) == 2 and all(17 < w <= 19 for w in waits)
    assert took < 3 * 1.0 + 3
    assert failures_counted(inst) == 3
