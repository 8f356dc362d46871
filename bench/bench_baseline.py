"""Benchmark row 3 of issue 13: the baseline (first) poll of 5,000 issues x 10 posts.

The stand-in (bench/common.py) serves 5,000 issues of 10 posts (35 MB of JSON,
five pages of 1,000). Interleaved --runs times, as real processes:

- the floor: ``python -c`` importing requests and following every
  ``@odata.nextLink``, ``.json()`` of each page, keeping every issue;
- ``m365watch -q poll`` with no state yet (the state folder emptied before each
  run, not timed, but for the token cache a first poll left: the sign-in is
  not measured): it records every issue and sends nothing.

It prints both medians and the ratio (goal <= 1.5), and each side's peak RSS.

Run: python bench/bench_baseline.py [--runs 3] [--issues 5000] [--posts 10]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    Run,
    add_feed_options,
    copy_folder,
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

GOAL = 1.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    add_feed_options(parser, issues=5000, posts=10)
    args = parser.parse_args()
    runs = max(1, args.runs)

    issues = feed_of(args)
    feed_mb = len(json.dumps({"value": issues})) / 1e6
    with stand_in(issues) as s:
        poll = s.poll_argv("-q", "poll")
        folder = s.state.parent
        signed_in = s.folder / "signed-in"
        first = require(run(poll, s.env), "the first poll")
        signed_in.mkdir()
        for cache in folder.glob("msal_*"):
            cache.rename(signed_in / cache.name)

        def baseline_poll() -> Run:
            copy_folder(signed_in, folder)
            hooks, identity = s.hooks(), s.fake.counts["token"]
            done = require(run(poll, s.env), "a baseline poll")
            assert s.hooks() == hooks, "a baseline poll sent messages"
            assert s.fake.counts["token"] == identity, "a baseline poll signed in again"
            assert s.state.stat().st_size > 0
            return done

        def floor() -> Run:
            done = require(run(s.floor_argv(), s.env), "the floor")
            assert int(done.stdout) == len(issues), done.stdout
            return done

        floor()  # warms the OS file cache for requests' imports
        done = interleave(runs, {"floor": floor, "m365watch": baseline_poll})

    floors, polls = done["floor"], done["m365watch"]
    floor_ms, poll_ms = median_ms(floors), median_ms(polls)
    print(
        header(
            f"Baseline poll of {args.issues} issues x {args.posts} posts "
            f"({feed_mb:.0f} MB of JSON, pages of 1,000), token cached"
        )
    )
    print(f"  first poll, signing in (not compared)   {first.seconds * 1000:8.0f} ms")
    print(f"{runs} interleaved runs each; median (min-max) wall time, highest peak RSS:")
    print(
        f"  floor (requests, every page, .json())   {floor_ms:8.0f} ms  ({spread_ms(floors)})"
        f"  {max(r.max_rss_mb for r in floors):5.0f} MB"
    )
    print(
        f"  m365watch -q poll (baseline)            {poll_ms:8.0f} ms  ({spread_ms(polls)})"
        f"  {max(r.max_rss_mb for r in polls):5.0f} MB"
    )
    return exit_status([], [verdict("baseline poll", poll_ms / floor_ms, GOAL)])


if __name__ == "__main__":
    sys.exit(main())
