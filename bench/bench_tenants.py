"""Benchmark: many tenants in one poll (issue 11's scale contract).

Starts the loopback HTTPS stand-in for Entra ID and Graph serving many tenants
(tests/loopback.py FakeTenants; 200 tenants x 300 issues by default) in a
thread, then measures, as real subprocesses and side by side:

- the floor: a plain script (written to a temporary file) that fetches the same
  feeds with `requests` over 8 threads (ThreadPoolExecutor), the tokens already
  known, and decodes each answer with `.json()`;
- `m365watch poll` of all tenants (config with one [[tenants]] block each,
  `[poll] concurrency = 8`), tokens cached by a first poll, nothing changed.

The two run interleaved --runs times; it prints their medians, the ratio
(contract: within 1.5x) and m365watch's peak RSS (contract: under 300 MB). It
also times the first poll (every tenant signs in) and a poll where one new
incident appears in every tenant, with one `group_tenants = true` json://
target, counting the messages the receiver got (contract: 1).

Run from the repository root:
    python bench/bench_tenants.py [--tenants 200] [--issues 300] [--runs 5]
    python bench/bench_tenants.py --floor-only      (the floor alone)
Exit status 1 when m365watch fails or a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import make_issues  # noqa: E402
from tests.loopback import ISSUES_PATH, FakeTenants  # noqa: E402

MAX_RUNS = 50
RUN_TIMEOUT = 600.0
MAX_RSS_MB = 300
MAX_RATIO = 1.5
# Graph's default page size; both sides ask for 1000 per page, so 300 issues come in one.
PAGE_SIZE = 100
NEW_INCIDENT_ID = "EX1999999"

FLOOR_SCRIPT = '''\
"""The floor: the same feeds with requests over a thread pool, tokens known."""
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import requests

job = json.loads(open(sys.argv[1], encoding="utf-8").read())
local = threading.local()


def fetch(token):
    if job["connections"] == "thread":
        if not hasattr(local, "session"):
            local.session = requests.Session()
        get = local.session.get
    else:
        get = requests.get
    headers = {"Authorization": "Bearer " + token, "Prefer": "odata.maxpagesize=1000"}
    url, items, pages = job["url"], 0, 0
    while url and pages < 100:
        body = get(url, headers=headers, verify=job["ca_bundle"], timeout=60).json()
        items += len(body["value"])
        url = body.get("@odata.nextLink")
        pages += 1
    return items


with ThreadPoolExecutor(max_workers=job["threads"]) as pool:
    counts = list(pool.map(fetch, job["tokens"]))
print(json.dumps({"feeds": len(counts), "items": sum(counts)}))
'''


@dataclass
class Run:
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    max_rss_mb: float


def run(argv: list[str], env: dict[str, str]) -> Run:
    """Run ``argv`` to its end (killed after RUN_TIMEOUT): wall time and its own peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=err)
        watchdog = threading.Timer(RUN_TIMEOUT, os.kill, (proc.pid, signal.SIGKILL))
        watchdog.start()
        try:
            # wait4 gives this child's own rusage (RUSAGE_CHILDREN would mix in the floor's).
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(
            seconds,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            usage.ru_maxrss / 1024,  # kilobytes on Linux
        )


def tenant_ids(count: int) -> list[tuple[str, str]]:
    """(name, tenant_id): every other tenant by GUID, the others by domain."""
    return [
        (
            f"t{n:04d}",
            f"00000000-0000-4000-8000-{n:012d}" if n % 2 else f"t{n:04d}.onmicrosoft.com",
        )
        for n in range(count)
    ]


def new_incident() -> dict[str, Any]:
    return {
        "id": NEW_INCIDENT_ID,
        "title": "Users can't send or receive email",
        "impactDescription": "Users may be unable to send or receive email.",
        "classification": "incident",
        "origin": "microsoft",
        "status": "serviceDegradation",
        "service": "Exchange Online",
        "feature": "E-Mail and calendar access",
        "featureGroup": "E-Mail and calendar access",
        "isResolved": False,
        "startDateTime": "2026-11-28T09:00:00Z",
        "endDateTime": None,
        "lastModifiedDateTime": "2026-11-28T09:05:00Z",
        "details": [],
        "posts": [
            {
                "createdDateTime": "2026-11-28T09:05:00Z",
                "postType": "regular",
                "description": {
                    "contentType": "text",
                    "content": "Title: Mail flow\n\nWe're on it.",
                },
            }
        ],
    }


def median_ms(runs: list[Run]) -> float:
    return statistics.median(r.seconds for r in runs) * 1000


def require(done: Run, what: str) -> None:
    if done.returncode != 0:
        print(f"{what} failed (exit {done.returncode}):", file=sys.stderr)
        print((done.stderr or done.stdout)[-3000:], file=sys.stderr)
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--issues", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--floor-connections",
        choices=["thread", "request"],
        default="thread",
        help="the floor keeps one connection per thread (default) or opens one per feed",
    )
    parser.add_argument("--floor-only", action="store_true", help="time the floor alone")
    args = parser.parse_args()
    runs = max(1, min(args.runs, MAX_RUNS))

    with tempfile.TemporaryDirectory() as tmp_name, FakeTenants(Path(tmp_name)).start() as fake:
        tmp = Path(tmp_name)
        fake.cache_answers = True  # the server serialises each feed once, not per request
        issues = make_issues(args.issues)
        for name, tenant_id in tenant_ids(args.tenants):
            tenant = fake.add_tenant(name, tenant_id, issues=issues)  # one list: one answer
            tenant.page_size = PAGE_SIZE
        env = {
            **os.environ,
            "M365WATCH_CLIENT_SECRET": "bench-secret",
            "REQUESTS_CA_BUNDLE": str(fake.ca_bundle),
            "PYTHONPATH": str(ROOT),
        }
        floor_script = tmp / "floor.py"
        floor_script.write_text(FLOOR_SCRIPT)
        job = tmp / "floor.json"
        job.write_text(
            json.dumps(
                {
                    "url": fake.base_url + ISSUES_PATH,
                    "tokens": [t.token for t in fake.tenants.values()],
                    "ca_bundle": str(fake.ca_bundle),
                    "threads": args.concurrency,
                    "connections": args.floor_connections,
                }
            )
        )
        floor_argv = [sys.executable, str(floor_script), str(job)]
        expected_items = args.tenants * args.issues

        def floor() -> Run:
            done = run(floor_argv, env)
            require(done, "the floor script")
            got = json.loads(done.stdout)
            assert got == {"feeds": args.tenants, "items": expected_items}, got
            return done

        print(
            f"{args.tenants} tenants x {args.issues} issues "
            f"({len(json.dumps({'value': issues})) / 1e6:.1f} MB each), "
            f"{args.concurrency} at a time, {runs} runs"
        )
        if args.floor_only:
            floors = [floor() for _ in range(runs)]
            print(f"  floor (requests, {args.concurrency} threads)  {median_ms(floors):7.0f} ms")
            print(f"  floor peak RSS                  {max(r.max_rss_mb for r in floors):7.0f} MB")
            return

        state = tmp / "state" / "state.json"
        config = tmp / "config.toml"
        notify = (
            '[[notify]]\nname = "noc"\n'
            f'url = "{fake.hook_url("noc")}"\ntenants = []\ngroup_tenants = true\n'
        )
        config.write_text(
            fake.config_text(state, notify, f"[poll]\nconcurrency = {args.concurrency}\n")
        )
        config.chmod(0o600)
        poll = [sys.executable, "-m", "m365watch", "-c", str(config), "-q", "poll"]

        # 1. The first poll: every tenant signs in (discovery + token) and sets its baseline.
        first = run(poll, env)
        require(first, "the first m365watch poll")
        sign_ins = {
            "openid": sum(t.counts["openid"] for t in fake.tenants.values()),
            "token": sum(t.counts["token"] for t in fake.tenants.values()),
        }
        quiet_hooks = len(fake.hooks["noc"])

        # 2. Quiet polls (tokens cached, nothing changed), interleaved with the floor.
        floors, polls = [], []
        graph_per_poll, identity_per_poll = set(), set()
        for _ in range(runs):
            floors.append(floor())
            before = dict(fake.counts)
            done = run(poll, env)
            require(done, "a quiet m365watch poll")
            polls.append(done)
            graph_per_poll.add(fake.counts["graph"] - before.get("graph", 0))
            identity_per_poll.add(
                fake.counts["token"]
                + fake.counts["openid"]
                - before.get("token", 0)
                - before.get("openid", 0)
            )
        quiet_hooks = len(fake.hooks["noc"]) - quiet_hooks

        # 3. One new incident in every tenant: one grouped message for the NOC target.
        for tenant in fake.tenants.values():
            tenant.issues = [*issues, new_incident()]
        fake.forget_answers()
        hooks_before = len(fake.hooks["noc"])
        incident = run(poll, env)
        require(incident, "the m365watch poll with a new incident")
        grouped = len(fake.hooks["noc"]) - hooks_before

    floor_ms, poll_ms = median_ms(floors), median_ms(polls)
    peak = max(r.max_rss_mb for r in [first, *polls, incident])
    ratio = poll_ms / floor_ms
    print(f"  floor (requests, {args.concurrency} threads)  {floor_ms:7.0f} ms")
    print(f"  m365watch poll (nothing new)    {poll_ms:7.0f} ms")
    print(f"  ratio                           {ratio:7.2f}   (contract: <= {MAX_RATIO})")
    print(f"  m365watch peak RSS              {peak:7.0f} MB (contract: < {MAX_RSS_MB} MB)")
    print(f"    quiet polls                   {max(r.max_rss_mb for r in polls):7.0f} MB")
    print(f"  first poll ({args.tenants} sign-ins)      {first.seconds * 1000:7.0f} ms")
    print(f"    peak RSS                      {first.max_rss_mb:7.0f} MB")
    print(f"    identity requests             {sign_ins}")
    print(f"  quiet polls: Graph requests     {sorted(graph_per_poll)}")
    print(f"  quiet polls: identity requests  {sorted(identity_per_poll)}")
    print(f"  quiet polls: messages sent      {quiet_hooks}")
    print(f"  poll with one new incident      {incident.seconds * 1000:7.0f} ms")
    print(f"    peak RSS                      {incident.max_rss_mb:7.0f} MB")
    print(f"    messages the NOC target got   {grouped}   (contract: 1)")
    failed = [
        what
        for what, ok in [
            (f"ratio {ratio:.2f} > {MAX_RATIO}", ratio <= MAX_RATIO),
            (f"peak RSS {peak:.0f} MB >= {MAX_RSS_MB} MB", peak < MAX_RSS_MB),
            (f"{grouped} messages for one grouped incident", grouped == 1),
            (f"{quiet_hooks} messages from quiet polls", quiet_hooks == 0),
        ]
        if not ok
    ]
    if failed:
        print("FAILED: " + "; ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
