"""Benchmark row 1 of issue 13: a poll that finds nothing new, next to the floor.

The loopback HTTPS stand-in (bench/common.py) serves 300 issues of 5 posts
(about 750 bytes of HTML each). After one baseline poll (which signs in and
caches the token), it runs, interleaved --runs times as real processes:

- the floor: ``python -c`` importing requests, GETting the same feed with the
  same CA bundle and token header (``Prefer: odata.maxpagesize=1000``), ``.json()``;
- ``m365watch -q poll``, token cached, nothing changed.

It prints both medians and their ratio (goal <= 1.3, fail > 1.5), and checks
issue 2's contract: one Graph request and none to the identity platform per
quiet poll, apprise not imported, the state file not rewritten (exit 1 if not).

Run: python bench/bench_poll.py [--runs 9] [--issues 300] [--posts 5] [--post-chars 300]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    Run,
    add_feed_options,
    exit_status,
    feed_of,
    header,
    interleave,
    median_ms,
    require,
    run,
    spread_ms,
    stand_in,
    verdict,
)

GOAL, FAIL = 1.3, 1.5


def imports_apprise(importtime_log: str) -> bool:
    return any(line.rsplit("|", 1)[-1].strip() == "apprise" for line in importtime_log.splitlines())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    add_feed_options(parser, issues=300, posts=5)
    args = parser.parse_args()
    runs = max(1, args.runs)

    issues = feed_of(args)
    with stand_in(issues) as s:
        poll = s.poll_argv("-q", "poll")
        traced = [sys.executable, "-X", "importtime", *poll[1:]]
        first = require(run(traced, s.env), "the baseline poll")
        # The baseline poll checks the notification URLs, so it must show apprise: proves the probe.
        assert imports_apprise(first.stderr), "importtime probe did not see apprise on the baseline"
        digest = hashlib.sha256(s.state.read_bytes()).hexdigest()
        inode = s.state.stat().st_ino
        apprise_loaded = imports_apprise(require(run(traced, s.env), "a quiet poll").stderr)

        graph, identity = set(), set()

        def quiet_poll() -> Run:
            before = dict(s.fake.counts)
            done = require(run(poll, s.env), "a quiet poll")
            graph.add(s.fake.counts["graph"] - before.get("graph", 0))
            identity.add(sum(s.fake.counts[k] - before.get(k, 0) for k in ("token", "openid")))
            return done

        def floor() -> Run:
            done = require(run(s.floor_argv(), s.env), "the floor")
            assert int(done.stdout) == len(issues), done.stdout
            return done

        floor()  # warms the OS file cache for requests' imports
        done = interleave(runs, {"floor": floor, "m365watch": quiet_poll})
        rewritten = (
            hashlib.sha256(s.state.read_bytes()).hexdigest() != digest
            or s.state.stat().st_ino != inode
        )

    floor_ms, poll_ms = median_ms(done["floor"]), median_ms(done["m365watch"])
    checks = [
        ("Graph requests per quiet poll", sorted(graph), graph == {1}),
        ("identity requests per quiet poll", sorted(identity), identity == {0}),
        ("apprise imported", apprise_loaded, not apprise_loaded),
        ("state file rewritten", rewritten, not rewritten),
    ]
    print(header(f"No-change poll, {args.issues} issues x {args.posts} posts, token cached"))
    print(f"{runs} interleaved runs each; median (min-max) wall time:")
    print(f"  floor (requests GET + .json())  {floor_ms:7.0f} ms  ({spread_ms(done['floor'])})")
    print(f"  m365watch -q poll               {poll_ms:7.0f} ms  ({spread_ms(done['m365watch'])})")
    return exit_status(checks, [verdict("no-change poll", poll_ms / floor_ms, GOAL, FAIL)])


if __name__ == "__main__":
    sys.exit(main())
