"""Benchmark row 4 of issue 13: `status --cached`, `show --cached`, next to `import click`.

Run from the repository root:  python bench/bench_status.py [--runs N]

Times, as real processes taking turns (interleaved rounds, medians), `python -c
"import click"` (the floor), `m365watch --help`, `status --cached`, `show ID
--cached`, `status --cached --json` and a live `status` (token cached, and
signing in), and prints each goal's ratio to the floor: `status --cached` and
`show --cached` <= 1.5, `status --cached --json` <= 1.3.

A live `status` talks to the loopback HTTPS stand-in for Entra ID and Graph in
tests/loopback.py (config.py accepts only https:// for authority and
graph_endpoint; the child processes trust its certificate through
REQUESTS_CA_BUNDLE). It serves the sample payloads in tests/data, with a few
of them reopened as during an outage. Nothing leaves the loopback interface.

It also checks that `status --cached`, `show --cached` and `--help` import
neither msal, requests nor apprise, and that a live `status` with a cached
token makes exactly two Graph requests and none to the identity platform.
Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
sys.path.insert(0, str(ROOT))

from bench.common import verdict  # noqa: E402
from tests.loopback import FakeMicrosoft  # noqa: E402

MAX_RUNS = 100
# Issue 13's goals: each command's median over `python -c "import click"`'s.
GOALS = {
    "m365watch status --cached": 1.5,
    "m365watch show EX900000 --cached": 1.5,
    "m365watch status --cached --json": 1.3,
}
RUN_TIMEOUT = 60.0
NETWORK_MODULES = ("msal", "requests", "apprise")


# -- test data ---------------------------------------------------------------------------------


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def sample_issues() -> list[dict[str, Any]]:
    """Real captures (CR275975, FM298724) plus open copies of them, as during an outage."""
    resolved = [
        load("cli-microsoft365-healthissue-get-CR275975.json"),
        *load("cli-microsoft365-healthissue-list-filter-service-forms.json")["value"],
    ]
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    opened = []
    for n, (service, status) in enumerate(
        [
            ("Exchange Online", "serviceDegradation"),
            ("Microsoft Teams", "ServiceInterruption"),
            ("Exchange Online", "investigating"),
        ]
    ):
        issue = copy.deepcopy(resolved[n % 2])
        issue.update(
            id=f"{'TM' if 'Teams' in service else 'EX'}90000{n}",
            service=service,
            status=status,
            isResolved=False,
            endDateTime=None,
            lastModifiedDateTime=now,
        )
        opened.append(issue)
    return opened + resolved


def sample_overviews() -> list[dict[str, Any]]:
    overviews = load("docs-beta2021-list-healthoverviews.json")["value"]
    return [
        *overviews,
        {"service": "Microsoft Teams", "status": "serviceInterruption", "id": "microsoftteams"},
        {"service": "Microsoft Forms", "status": "serviceOperational", "id": "Forms"},
    ]


# -- measuring ------------------------------------------------------------------------------


def wall_time(command: list[str], env: dict[str, str]) -> float:
    """Wall time in ms of one run of ``command`` (exit 1 when it fails)."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, timeout=RUN_TIMEOUT, check=False)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(command[-3:])} failed with {done.returncode}: "
            f"{done.stderr.decode(errors='replace').strip()[-300:]}"
        )
    return elapsed


def interleaved(
    commands: list[tuple[str, list[str], Callable[[], None] | None]],
    env: dict[str, str],
    runs: int,
) -> dict[str, list[float]]:
    """Wall times in ms of each command, ``runs`` rounds taking turns (the order rotating),
    after one unmeasured round that warms the OS file cache."""
    times: dict[str, list[float]] = {name: [] for name, _, _ in commands}
    for n in range(runs + 1):
        shift = n % len(commands)
        for name, command, before in commands[shift:] + commands[:shift]:
            if before is not None:
                before()
            elapsed = wall_time(command, env)
            if n:
                times[name].append(elapsed)
    return times


PROBE = """
import json, runpy, sys
sys.argv = ["m365watch", *json.loads(sys.argv[1])]
code = 0
try:
    runpy.run_module("m365watch", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "loaded": sorted(m for m in %r if m in sys.modules)}),
      file=sys.stderr)
"""


def loaded_modules(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Which of msal, requests, apprise a command imported (checked in a fresh interpreter)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE % (NETWORK_MODULES,), json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    result: dict[str, Any] = json.loads(done.stderr.strip().splitlines()[-1])
    return result


def write_state(path: Path, issues: list[dict[str, Any]]) -> None:
    from datetime import datetime, timezone

    from m365watch.models import Issue
    from m365watch.records import Meta, Snapshot, State
    from m365watch.store import StateStore

    snapshots = {i["id"]: Snapshot(Issue.from_graph(i)) for i in issues}
    baseline = datetime(2026, 11, 20, tzinfo=timezone.utc)
    StateStore(path).save(
        State(meta=Meta(baselines={"issues": baseline}), snapshots={"issues": snapshots})
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help=f"runs per command (1-{MAX_RUNS})")
    runs = max(1, min(parser.parse_args().runs, MAX_RUNS))
    with (
        tempfile.TemporaryDirectory(prefix="m365watch-bench-") as tmp,
        FakeMicrosoft(Path(tmp)) as fake,
    ):
        fake.health = sample_overviews()
        fake.issues = sample_issues()
        return run_benchmark(Path(tmp), fake, runs)


def run_benchmark(folder: Path, fake: FakeMicrosoft, runs: int) -> int:
    state = folder / "state" / "state.json"
    config = folder / "config.toml"
    config.write_text(fake.config_text(state), encoding="utf-8")
    config.chmod(0o600)
    write_state(state, fake.issues)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder),
        "PYTHONPATH": str(ROOT),
        "M365WATCH_CONFIG": str(config),
        "M365WATCH_CLIENT_SECRET": "bench-secret",
        "REQUESTS_CA_BUNDLE": str(fake.ca_bundle),
        "NO_PROXY": "127.0.0.1",
        "COLUMNS": "100",
    }
    python = [sys.executable]
    m365watch = [*python, "-m", "m365watch"]
    msal_caches = [state.parent / "msal_token_cache.json", state.parent / "msal_http_cache.json"]

    def forget_sign_in() -> None:
        for path in msal_caches:
            path.unlink(missing_ok=True)

    click_row = 'python -c "import click"'
    times = interleaved(
        [
            (click_row, [*python, "-c", "import click"], None),
            ("m365watch --help", [*m365watch, "--help"], None),
            ("m365watch status --cached", [*m365watch, "status", "--cached"], None),
            (
                "m365watch show EX900000 --cached",
                [*m365watch, "show", "EX900000", "--cached"],
                None,
            ),
            (
                "m365watch status --cached --json",
                [*m365watch, "status", "--cached", "--json"],
                None,
            ),
            ("m365watch status (live, token cached)", [*m365watch, "status"], None),
            ("m365watch status (live, signs in)", [*m365watch, "status"], forget_sign_in),
        ],
        env,
        runs,
    )
    # One more live run with the token cached: which requests does it make?
    before = dict(fake.counts)
    wall_time([*m365watch, "status"], env)
    made = {k: fake.counts[k] - before.get(k, 0) for k in ("graph", "token", "openid")}

    click_ms = statistics.median(times[click_row])
    print(
        f"Median wall time of {runs} interleaved runs each (Python {sys.version.split()[0]}, ",
        end="",
    )
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}):\n")
    print(f"{'command':<40} {'median':>8} {'min':>8} {'max':>8} {'vs click':>9}")
    for name, row in times.items():
        mid = statistics.median(row)
        extra = "" if name == click_row else f"{mid - click_ms:+8.0f}"
        print(f"{name:<40} {mid:8.0f} {min(row):8.0f} {max(row):8.0f} {extra:>9}")
    print("(milliseconds)\n")

    failed = False
    for args in (["status", "--cached"], ["show", "EX900000", "--cached"], ["--help"]):
        probe = loaded_modules(args, env)
        ok = probe["code"] == 0 and not probe["loaded"]
        failed |= not ok
        loaded = ", ".join(probe["loaded"]) or "none of " + ", ".join(NETWORK_MODULES)
        print(f"imports of m365watch {' '.join(args)}: {loaded} [{'ok' if ok else 'FAIL'}]")
    ok = made == {"graph": 2, "token": 0, "openid": 0}
    failed |= not ok
    print(
        f"requests of a live status with a cached token: {made['graph']} to Graph, "
        f"{made['token'] + made['openid']} to the identity platform [{'ok' if ok else 'FAIL'}]"
    )
    for name, goal in GOALS.items():
        print(
            verdict(
                name.removeprefix("m365watch "), statistics.median(times[name]) / click_ms, goal
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
