"""Benchmark row 6 of issue 13: many tenants in one poll (and issue 11's scale contract).

Starts the loopback HTTPS stand-in for Entra ID and Graph serving many tenants
(tests/loopback.py FakeTenants; 200 tenants x 300 issues by default) in a
thread, then measures, as real subprocesses and side by side:

- the floor: a plain script (written to a temporary file) that fetches the same
  feeds with `requests` over 8 threads (ThreadPoolExecutor), the tokens already
  known, and decodes each answer with `.json()`;
- `m365watch poll` of all tenants (config with one [[tenants]] block each,
  `[poll] concurrency = 8`), tokens cached by a first poll, nothing changed.

The two run interleaved --runs times; it prints their medians and the ratio
(issue 13's goal <= 1.3, fail > 1.5: issue 11's contract), each side's peak RSS
(ru_maxrss from wait4) and checks m365watch's (contract: under 300 MB). It
also times the first poll (every tenant signs in) and a poll where one new
incident appears in every tenant, with one `group_tenants = true` json://
target, counting the messages the receiver got (contract: 1).

Run from the repository root:
    python bench/bench_tenants.py [--tenants 200] [--issues 300] [--runs 3]
    python bench/bench_tenants.py --floor-only      (the floor alone)
Exit status 1 when m365watch fails, a check fails or the ratio is past 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    Run,
    exit_status,
    header,
    interleave,
    make_issues,
    median_ms,
    require,
    run,
    spread_ms,
    verdict,
)
from tests.loopback import ISSUES_PATH, FakeTenants  # noqa: E402

MAX_RUNS = 50
MAX_RSS_MB = 300
# Issue 13's goal (issue 11's contract was 1.5: now the fail bound).
GOAL, FAIL = 1.3, 1.5
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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--issues", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
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
            header(
                f"{args.tenants} tenants x {args.issues} issues "
                f"({len(json.dumps({'value': issues})) / 1e6:.1f} MB each), "
                f"{args.concurrency} at a time, nothing new"
            )
        )
        if args.floor_only:
            floors = [floor() for _ in range(runs)]
            print(f"  floor (requests, {args.concurrency} threads)  {median_ms(floors):7.0f} ms")
            print(f"  floor peak RSS                  {max(r.max_rss_mb for r in floors):7.0f} MB")
            return 0

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
        graph_per_poll, identity_per_poll = set(), set()

        def quiet_poll() -> Run:
            before = dict(fake.counts)
            done = require(run(poll, env), "a quiet m365watch poll")
            graph_per_poll.add(fake.counts["graph"] - before.get("graph", 0))
            identity_per_poll.add(
                sum(fake.counts[k] - before.get(k, 0) for k in ("token", "openid"))
            )
            return done

        done = interleave(runs, {"floor": floor, "m365watch": quiet_poll})
        floors, polls = done["floor"], done["m365watch"]
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
    floor_peak = max(r.max_rss_mb for r in floors)
    quiet_peak = max(r.max_rss_mb for r in polls)
    print(f"{runs} interleaved runs each; median (min-max) wall time, highest peak RSS:")
    print(
        f"  {f'floor (requests, {args.concurrency} threads)':<34}{floor_ms:7.0f} ms  "
        f"({spread_ms(floors)})  {floor_peak:5.0f} MB"
    )
    print(
        f"  {'m365watch -q poll (nothing new)':<34}{poll_ms:7.0f} ms  "
        f"({spread_ms(polls)})  {quiet_peak:5.0f} MB"
    )
    print(
        f"  {f'first poll ({args.tenants} sign-ins)':<34}{first.seconds * 1000:7.0f} ms  "
        f"{'':>11}  {first.max_rss_mb:5.0f} MB   identity requests {sign_ins}"
    )
    print(
        f"  {'poll with one new incident':<34}{incident.seconds * 1000:7.0f} ms  "
        f"{'':>11}  {incident.max_rss_mb:5.0f} MB"
    )
    checks = [
        (f"m365watch peak RSS < {MAX_RSS_MB} MB", f"{peak:.0f} MB", peak < MAX_RSS_MB),
        ("quiet polls: Graph requests", sorted(graph_per_poll), graph_per_poll == {args.tenants}),
        ("quiet polls: identity requests", sorted(identity_per_poll), identity_per_poll == {0}),
        ("quiet polls: messages sent", quiet_hooks, quiet_hooks == 0),
        ("one grouped incident: NOC messages", grouped, grouped == 1),
    ]
    return exit_status(
        checks,
        [
            verdict("wall time", poll_ms / floor_ms, GOAL, FAIL),
            f"peak RSS of the quiet polls: {quiet_peak / floor_peak:.2f} x the floor's (information)",
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
