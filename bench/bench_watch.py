"""Benchmark row 5 of issue 13: CPU time of one `watch` cycle that finds nothing new.

The stand-in (bench/common.py) serves 300 issues of 5 posts. Two warm,
long-running processes take turns, one cycle each at a time (the order rotating),
each measuring its own process CPU time (``time.process_time()``: every thread,
user + system) around one cycle:

- m365watch: imports m365watch, loads the config and builds the Graph client
  once, as ``watch`` does, then each cycle calls what ``watch``'s loop calls per
  poll (``cli.poll_with_health`` with the kept client, then ``print_poll_result``);
- the floor: imports requests, keeps one ``requests.Session``, and each cycle
  GETs the same feed (same CA bundle, token header, every page) and ``.json()``.

The first --warmup cycles of each are not counted (imports, sign-in). Prints the
median CPU time per cycle of both, their wall times, and the ratio (goal <= 1.2).

Run: python bench/bench_watch.py [--cycles 30] [--warmup 3] [--issues 300] [--posts 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, add_feed_options, feed_of, header, stand_in, verdict
from tests.loopback import ISSUES_PATH

GOAL = 1.2

# Each worker reads one line per cycle and answers with one "BENCH [cpu s, wall s, ...]" line.
M365WATCH_WORKER = """\
import json, sys, time
from pathlib import Path
from m365watch import cli, wiring
settings = wiring.load_settings(Path(sys.argv[1]))
graph = wiring.build_graph(settings)  # one client for the whole run, as watch keeps it
print("BENCH ready", flush=True)
for _ in sys.stdin:
    cpu, wall = time.process_time(), time.perf_counter()
    result, _ = cli.poll_with_health(settings, quiet=True, source=graph)
    cli.print_poll_result(result, quiet=True)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print("BENCH " + json.dumps([cpu, wall, graph.request_count]), flush=True)
"""

FLOOR_WORKER = """\
import json, sys, time
import requests
ca_bundle, token, feed = sys.argv[1:]
headers = {"Authorization": "Bearer " + token, "Prefer": "odata.maxpagesize=1000"}
session = requests.Session()
print("BENCH ready", flush=True)
for _ in sys.stdin:
    cpu, wall = time.process_time(), time.perf_counter()
    url, items = feed, []
    while url:
        body = session.get(url, headers=headers, verify=ca_bundle, timeout=60).json()
        items.extend(body["value"])
        url = body.get("@odata.nextLink")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print("BENCH " + json.dumps([cpu, wall, len(items)]), flush=True)
"""


class Worker:
    """A warm process that runs one cycle per line it reads and says what it took."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.cpu: list[float] = []
        self.wall: list[float] = []
        self.said: list[object] = []
        self._answer()

    def _answer(self) -> str:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("BENCH "):
                return line[len("BENCH ") :]
        assert self.proc.stderr is not None
        raise SystemExit(f"a worker ended: {self.proc.stderr.read()[-2000:]}")

    def cycle(self, counted: bool) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        cpu, wall, said = json.loads(self._answer())
        if counted:
            self.cpu.append(cpu * 1000)
            self.wall.append(wall * 1000)
            self.said.append(said)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=30, help="cycles counted, each side")
    parser.add_argument("--warmup", type=int, default=3, help="first cycles not counted")
    add_feed_options(parser, issues=300, posts=5)
    args = parser.parse_args()
    cycles = max(1, args.cycles)

    issues = feed_of(args)
    with stand_in(issues) as s:
        # The baseline, as watch's first poll would set it (and sign in).
        baseline = subprocess.run(
            s.poll_argv("-q", "poll"), env=s.env, capture_output=True, text=True, check=False
        )
        assert baseline.returncode == 0, baseline.stderr[-2000:]
        hooks, graph_before = s.hooks(), s.fake.counts["graph"]
        feed = s.fake.base_url + ISSUES_PATH
        workers = {
            "floor": Worker(
                [sys.executable, "-c", FLOOR_WORKER, str(s.fake.ca_bundle), s.tenant.token, feed],
                s.env,
            ),
            "m365watch": Worker([sys.executable, "-c", M365WATCH_WORKER, str(s.config)], s.env),
        }
        names = list(workers)
        for n in range(args.warmup + cycles):
            shift = n % len(names)
            for name in names[shift:] + names[:shift]:
                workers[name].cycle(counted=n >= args.warmup)
        for worker in workers.values():
            worker.stop()
        graph_requests = s.fake.counts["graph"] - graph_before
        sent = s.hooks() - hooks

    floor, ours = workers["floor"], workers["m365watch"]
    requests_made = ours.said[-1] - ours.said[0] if len(ours.said) > 1 else 0
    expected = 2 * (args.warmup + cycles)  # one request per cycle each
    checks = [
        ("Graph requests, both sides", graph_requests, graph_requests == expected),
        (
            "m365watch requests per cycle",
            requests_made / max(1, cycles - 1),
            requests_made == cycles - 1,
        ),
        ("messages sent", sent, sent == 0),
    ]
    print(header(f"watch cycles, nothing new, {args.issues} issues x {args.posts} posts"))
    print(
        f"{cycles} cycles each (after {args.warmup} not counted), taking turns; median (min-max):"
    )
    for label, worker in (("floor (Session GET + .json())", floor), ("m365watch poll cycle", ours)):
        print(
            f"  {label:<30} CPU {statistics.median(worker.cpu):6.1f} ms "
            f"({min(worker.cpu):.1f}–{max(worker.cpu):.1f})   "
            f"wall {statistics.median(worker.wall):6.1f} ms"
        )
    for what, value, ok in checks:
        print(f"  {what:<30} {value!s:>6}  [{'ok' if ok else 'FAIL'}]")
    print(
        verdict("CPU per cycle", statistics.median(ours.cpu) / statistics.median(floor.cpu), GOAL)
    )
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
