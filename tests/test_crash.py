"""Crash and fault proof: kill -9 mid-poll, concurrent polls, a target that is down, Graph
faults and damaged state files. Nothing is ever lost; duplicates are counted and shown.

The polls run as real subprocesses against the loopback Entra ID + Graph + webhooks
(tests/loopback.py) unless a test says otherwise.
"""

from __future__ import annotations

import collections
import os
import random
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from m365watch.cli import poll_once
from m365watch.config import load_settings
from m365watch.store import StateStore
from tests.installation import EXPECTED, FEED_BEFORE, Installation, Target, issue, reset
from tests.loopback import FakeMicrosoft

SEED = 20261120
# A quick proof in every test run; M365WATCH_KILL_TRIALS=200 for a long one.
TRIALS = int(os.environ.get("M365WATCH_KILL_TRIALS", "20"))
EXPECTED_IDS = sorted({issue_id for target, issue_id in EXPECTED if target == "all"})


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeMicrosoft]:
    # In-process polls (the recovery polls below) must trust the loopback certificate too.
    with (
        FakeMicrosoft(tmp_path_factory.mktemp("loopback")).start() as server,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_bundle))
        yield server


@pytest.fixture
def loopback(fake: FakeMicrosoft) -> FakeMicrosoft:
    reset(fake)
    return fake


# -- kill -9 at random moments ----------------------------------------------------------


@dataclass(frozen=True)
class TrialOutcome:
    killed: bool  # False when the poll had already finished at the chosen moment
    posts_before_kill: int
    missing: frozenset[tuple[str, str]]
    duplicates: int
    leftover_temp_files: int


def kill_trial(fake: FakeMicrosoft, root: Path, number: int) -> TrialOutcome:
    """Start a poll that has 12 deliveries to make, SIGKILL it at a seeded moment, recover."""
    rng = random.Random(f"{SEED}-{number}")
    inst = Installation(root / f"trial-{number}", fake, prefix=f"k{number}-")
    inst.baseline()
    proc = inst.spawn("-q", "poll")
    if rng.random() < 0.3:
        # Anywhere in the run: start-up, sign-in, Graph, delivery, the state write, exit.
        time.sleep(rng.uniform(0.0, 0.8))
    else:
        # Inside the delivery phase: after the k-th webhook request arrived, plus jitter.
        wanted = rng.randint(1, len(EXPECTED))
        deadline = time.monotonic() + 20
        while inst.posts_arrived() < wanted and proc.poll() is None:
            assert time.monotonic() < deadline, "the poll never reached its deliveries"
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 0.02))
    proc.kill()
    proc.communicate(timeout=30)
    killed = proc.returncode == -9
    posts_before = inst.posts_arrived()

    StateStore(inst.state).load()  # the state always loads: raises if it does not
    leftovers = len(list(inst.state.parent.glob(".state.json.*.tmp")))

    # A clean poll (in-process, thread-safe: no CliRunner) delivers whatever is owed.
    result = poll_once(load_settings(inst.config, env=inst.env))
    assert not result.failed and result.pending == 0, result

    received = inst.received()
    return TrialOutcome(
        killed=killed,
        posts_before_kill=posts_before,
        missing=frozenset(EXPECTED - set(received)),
        duplicates=sum(count - 1 for count in received.values()),
        leftover_temp_files=leftovers,
    )


def test_kill_9_at_random_moments_loses_nothing(
    loopback: FakeMicrosoft, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loopback.hook_delay = 0.005  # a little room between deliveries to land a kill in
    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = list(pool.map(lambda n: kill_trial(loopback, tmp_path, n), range(TRIALS)))

    killed = [o for o in outcomes if o.killed]
    mid_delivery = [o for o in killed if o.posts_before_kill > 0]
    losses = sum(len(o.missing) for o in outcomes)
    duplicates = sum(o.duplicates for o in outcomes)
    leftovers = sum(o.leftover_temp_files for o in outcomes)
    with capsys.disabled():
        print(
            f"\nkill -9 trials: {len(outcomes)} (seed {SEED}); killed before finishing: "
            f"{len(killed)}, of which after some deliveries: {len(mid_delivery)}; "
            f"losses: {losses}; duplicates: {duplicates}; leftover temp files: {leftovers}"
        )
    assert losses == 0, [sorted(o.missing) for o in outcomes if o.missing]
    # Each acceptance is recorded as it happens: only the message in flight can come twice.
    assert all(o.duplicates <= 1 for o in outcomes), [o.duplicates for o in outcomes]
    # The trials must really have hit the interesting window, not only start-up.
    # (at least 2/3 and 5/12 of the trials, as 40 and 25 of 60 were)
    assert len(killed) * 3 >= TRIALS * 2 and len(mid_delivery) * 12 >= TRIALS * 5


def test_kill_9_with_the_third_message_in_flight_resends_only_that_one(
    loopback: FakeMicrosoft, tmp_path: Path
) -> None:
    inst = Installation(tmp_path, loopback, [Target("healthy"), Target("holder")])
    inst.baseline(FEED_BEFORE)
    three = [issue(0, status="serviceDegradation"), issue(1, posts=2), issue(3, posts=3)]
    loopback.issues = [*three, *FEED_BEFORE[4:], FEED_BEFORE[2]]
    loopback.hold = ("holder", 3)
    proc = inst.spawn("-q", "poll")
    try:
        assert loopback.held.wait(timeout=30), "the poll never sent the third message"
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        loopback.release.set()
    assert proc.returncode == -9
    ids = [i["id"] for i in three]
    assert inst.received() == collections.Counter(
        {**{("healthy", i): 1 for i in ids}, ("holder", ids[0]): 1, ("holder", ids[1]): 1}
    )

    result = poll_once(load_settings(inst.config, env=inst.env))
    assert [(d.target, d.issue_id, d.ok) for d in result.deliveries] == [("holder", ids[2], True)]
    assert inst.received() == collections.Counter(
        {("healthy", i): 1 for i in ids} | {("holder", i): 1 for i in ids}
    )


# -- concurrent polls ------------------------------------------------------------------------

SUMMARY = re.compile(r"(\d+) issues, (\d+) change\(s\), (\d+) message\(s\) sent")


def test_five_polls_at_once_deliver_each_change_exactly_once(
    loopback: FakeMicrosoft, tmp_path: Path
) -> None:
    inst = Installation(tmp_path, loopback)
    inst.baseline()
    loopback.hook_delay = 0.01
    procs = [inst.spawn("poll") for _ in range(5)]
    results = [(p.wait(timeout=60), *p.communicate()) for p in procs]

    received = inst.received()
    assert set(received) == EXPECTED
    assert all(count == 1 for count in received.values()), received
    sent = []
    for code, out, err in results:
        if code == 75:
            assert err.startswith("Error: another m365watch poll is running"), err
            continue
        assert code == 0, err
        match = SUMMARY.search(out)
        assert match, out
        sent.append(int(match.group(3)))
    # One poll sent everything; every other one found nothing to do (or gave up with 75).
    assert sorted(sent, reverse=True)[0] == len(EXPECTED)
    assert sum(sent) == len(EXPECTED)


# -- a target down for three polls ---------------------------------------------------------


def test_target_down_for_three_polls_gets_each_change_once_after_recovery(
    loopback: FakeMicrosoft, tmp_path: Path
) -> None:
    inst = Installation(tmp_path, loopback, [Target("up"), Target("down")])
    inst.baseline()
    loopback.failing_hooks.add("down")
    every_change = {("up", i) for i in EXPECTED_IDS} | {("down", i) for i in EXPECTED_IDS}

    for attempt in range(3):
        result = inst.invoke("poll")
        assert result.exit_code == 3, result.output
        assert result.output.count("not delivered to down") == len(EXPECTED_IDS)
        # The healthy target got every change on the first poll, and never again.
        assert inst.received() == collections.Counter({("up", i): 1 for i in EXPECTED_IDS})
        assert loopback.counts["hook:down"] == len(EXPECTED_IDS) * (attempt + 1)

    loopback.failing_hooks.clear()
    result = inst.invoke("poll")
    assert result.exit_code == 0, result.output
    assert "0 failed, 0 delivery(ies) pending" in result.output
    assert inst.received() == collections.Counter(dict.fromkeys(every_change, 1))
    # And nothing more afterwards.
    assert inst.invoke("poll").exit_code == 0
    assert sum(inst.received().values()) == len(every_change)


# -- Graph faults, as a real process --------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        (
            [(429, '{"error": {"code": "TooManyRequests"}}', {"Retry-After": "0.05"})] * 4,
            "Error: Microsoft Graph is throttling requests (429 Too Many Requests) after 4 attempts",
        ),
        (
            [(200, '{"value": [{"id": "EX12', {})],
            "Error: Graph returned a response that is not JSON",
        ),
        (
            [
                (
                    502,
                    "<html><body><h1>502 Bad Gateway</h1></body></html>",
                    {"Content-Type": "text/html", "Retry-After": "0"},
                )
            ]
            * 4,
            "Error: Microsoft Graph is unavailable (502 Bad Gateway) after 4 attempts",
        ),
    ],
    ids=["429-fractional-retry-after", "truncated-json", "html-502"],
)
def test_graph_fault_in_a_real_process_changes_nothing(
    loopback: FakeMicrosoft,
    tmp_path: Path,
    faults: list[tuple[int, str, dict[str, str]]],
    message: str,
) -> None:
    inst = Installation(tmp_path, loopback)
    inst.baseline()
    before = inst.state.read_bytes(), inst.state.stat().st_mtime_ns
    loopback.graph_faults.extend(faults)

    failed = inst.run("-q", "poll")
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert failed.stderr.startswith(message)
    assert len(failed.stderr.splitlines()) == 1
    assert (inst.state.read_bytes(), inst.state.stat().st_mtime_ns) == before
    assert not loopback.hooks

    good = inst.run("-q", "poll")
    assert (good.returncode, good.stdout, good.stderr) == (0, "", "")
    assert set(inst.received()) == EXPECTED and sum(inst.received().values()) == len(EXPECTED)


def test_corrupt_state_in_a_real_process_is_named_and_left_alone(
    loopback: FakeMicrosoft, tmp_path: Path
) -> None:
    inst = Installation(tmp_path, loopback)
    inst.baseline()
    damaged = inst.state.read_bytes()[:37]
    inst.state.write_bytes(damaged)
    done = inst.run("poll")
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"Error: state file {inst.state} cannot be used: it is not valid JSON"
    )
    assert len(done.stderr.splitlines()) == 1
    assert inst.state.read_bytes() == damaged
    assert loopback.counts["graph"] == 0 and not loopback.hooks


def test_a_subprocess_poll_finishes_cleanly(loopback: FakeMicrosoft, tmp_path: Path) -> None:
    # Sanity for the trials above: unkilled, the same poll delivers everything exactly once.
    inst = Installation(tmp_path, loopback)
    inst.baseline()
    done = inst.run("poll")
    assert done.returncode == 0, done.stderr
    assert "8 change(s), 12 message(s) sent, 0 failed" in done.stdout
    assert inst.received() == collections.Counter(dict.fromkeys(EXPECTED, 1))
