"""Benchmark: a poll that finds nothing new (issue 2's performance contract).

Starts a loopback HTTPS stand-in for Entra ID and Graph (tests/loopback.py)
serving 1,000 issues, runs one baseline poll, then times quiet polls as real
subprocesses, next to `python -c "import requests"`. Prints, for the quiet
polls: wall time (median), Graph requests, identity-platform requests, whether
apprise was imported, and whether the state file was rewritten.

Run: python bench/bench_poll.py [--runs N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.loopback import FakeMicrosoft  # noqa: E402


def make_issues(count: int) -> list[dict[str, object]]:
    issues = []
    for n in range(count):
        issues.append(
            {
                "id": f"EX{1200000 + n}",
                "title": f"Users may be unable to reach mailboxes (issue {n})",
                "impactDescription": "Users may be unable to access their mailboxes.",
                "classification": "incident" if n % 3 else "advisory",
                "origin": "microsoft",
                "status": "serviceRestored" if n % 5 else "serviceDegradation",
                "service": ["Exchange Online", "Microsoft Teams", "SharePoint Online"][n % 3],
                "feature": "E-Mail and calendar access",
                "featureGroup": "E-Mail and calendar access",
                "isResolved": bool(n % 5),
                "startDateTime": "2026-11-01T10:00:00Z",
                "endDateTime": None,
                "lastModifiedDateTime": "2026-11-02T10:00:00.1234567Z",
                "details": [],
                "posts": [
                    {
                        "createdDateTime": f"2026-11-01T1{p}:00:00Z",
                        "postType": "regular",
                        "description": {
                            "contentType": "html",
                            "content": "<p>Title: …</p><p>User impact: …</p>" + "x" * 1500,
                        },
                    }
                    for p in range(3)
                ],
            }
        )
    return issues


def imports_apprise(importtime_log: str) -> bool:
    return any(line.rsplit("|", 1)[-1].strip() == "apprise" for line in importtime_log.splitlines())


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT, check=False)
    return time.perf_counter() - start, done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--issues", type=int, default=1000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, FakeMicrosoft(Path(tmp)).start() as fake:
        fake.issues = make_issues(args.issues)
        state = Path(tmp) / "state" / "state.json"
        config = Path(tmp) / "config.toml"
        config.write_text(
            fake.config_text(
                state, notify='[[notify]]\nname = "hook"\nurl = "' + fake.hook_url("ops") + '"\n'
            )
        )
        config.chmod(0o600)
        env = {
            **os.environ,
            "M365WATCH_CLIENT_SECRET": "bench-secret",
            "REQUESTS_CA_BUNDLE": str(fake.ca_bundle),
            "PYTHONPATH": str(ROOT),
        }
        poll = [sys.executable, "-m", "m365watch", "-c", str(config), "-q", "poll"]
        traced = [sys.executable, "-X", "importtime", *poll[1:]]
        _, first = timed(traced, env)
        assert first.returncode == 0, first.stderr[-2000:]
        # The baseline poll checks the notification URLs, so it must show apprise: proves the probe.
        assert imports_apprise(first.stderr), "importtime probe did not see apprise on the baseline"
        digest = hashlib.sha256(state.read_bytes()).hexdigest()
        inode = state.stat().st_ino

        _, quiet_traced = timed(traced, env)
        apprise_loaded = imports_apprise(quiet_traced.stderr)
        times, graph, identity = [], [], []
        for _ in range(args.runs):
            before = dict(fake.counts)
            seconds, done = timed(poll, env)
            assert done.returncode == 0, done.stderr[-2000:]
            times.append(seconds)
            graph.append(fake.counts["graph"] - before.get("graph", 0))
            identity.append(
                fake.counts["token"]
                + fake.counts["openid"]
                - before.get("token", 0)
                - before.get("openid", 0)
            )
        rewritten = (
            hashlib.sha256(state.read_bytes()).hexdigest() != digest or state.stat().st_ino != inode
        )

        baseline = []
        for _ in range(args.runs):
            seconds, _ = timed([sys.executable, "-c", "import requests"], env)
            baseline.append(seconds)

    print(f"quiet poll over {args.issues} issues, {args.runs} runs (median wall time):")
    print(f"  m365watch poll (nothing new)  {statistics.median(times) * 1000:7.0f} ms")
    print(f"  python -c 'import requests'   {statistics.median(baseline) * 1000:7.0f} ms")
    print(f"  Graph requests per poll       {sorted(set(graph))}")
    print(f"  identity requests per poll    {sorted(set(identity))}")
    print(f"  apprise imported              {apprise_loaded}")
    print(f"  state file rewritten          {rewritten}")


if __name__ == "__main__":
    main()
