"""Benchmark row 2 of issue 13: 5,000 issues x 10 posts, one issue changed.

The stand-in (bench/common.py) serves 5,000 issues of 10 posts (35 MB of JSON,
five pages of 1,000). After a baseline poll, one issue in the middle changes
(reopened, a new post). Then, interleaved --runs times, as real processes:

- the floor: ``python -c`` importing requests and following every
  ``@odata.nextLink``, ``.json()`` of each page, keeping every issue;
- ``m365watch -q poll`` from the state the baseline left (restored before each
  run, not timed): it finds the one change and sends one message to a webhook.

It prints, with the ratio of each:

- wall time, medians (goal <= 1.3x the floor, fail > 1.5x);
- peak RSS of each process (ru_maxrss from wait4, as ``/usr/bin/time -v``), the
  highest of the runs (goal <= 2x the floor's);
- bytes m365watch wrote to its state folder: the sizes of the files in it whose
  inode, mtime or size changed during the poll (written atomically, so written
  whole), next to the size of what changed: the changed issue's JSON as Graph
  sends it plus the outbox holding its message (the outbox file as a poll whose
  delivery failed leaves it). Goal <= 2x. Also the kernel's count of bytes the
  process dirtied in files (ru_oublock x 512, in 4 KiB pages; 0 on tmpfs), for
  information: it also sees files written and removed within the poll.

Run: python bench/bench_change.py [--runs 3] [--issues 5000] [--posts 10]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    ChangePolls,
    Run,
    add_feed_options,
    changed_issue,
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

GOAL, FAIL = 1.3, 1.5
RSS_GOAL = 2.0
WRITE_GOAL = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    add_feed_options(parser, issues=5000, posts=10)
    args = parser.parse_args()
    runs = max(1, args.runs)

    issues = feed_of(args)
    middle = len(issues) // 2
    changed = changed_issue(issues[middle])
    changed_bytes = len(json.dumps(changed).encode())
    feed_mb = len(json.dumps({"value": issues})) / 1e6
    with stand_in(issues) as s:
        poll = s.poll_argv("-q", "poll")
        pristine = s.folder / "pristine"
        baseline = require(run(poll, s.env), "the baseline poll")
        copy_folder(s.state.parent, pristine)
        s.set_issues([*issues[:middle], changed, *issues[middle + 1 :]])

        change_poll = ChangePolls(s, poll, pristine)
        outbox_bytes = change_poll.outbox_bytes()

        def floor() -> Run:
            done = require(run(s.floor_argv(), s.env), "the floor")
            assert int(done.stdout) == len(issues), done.stdout
            return done

        floor()  # warms the OS file cache for requests' imports
        done = interleave(runs, {"floor": floor, "m365watch": change_poll})

    floors, polls = done["floor"], done["m365watch"]
    floor_ms, poll_ms = median_ms(floors), median_ms(polls)
    floor_rss = max(r.max_rss_mb for r in floors)
    poll_rss = max(r.max_rss_mb for r in polls)
    print(
        header(
            f"One issue changed among {args.issues} issues x {args.posts} posts "
            f"({feed_mb:.0f} MB of JSON, pages of 1,000)"
        )
    )
    print(f"  baseline poll (not compared here)       {baseline.seconds * 1000:8.0f} ms")
    print(f"{runs} interleaved runs each; median (min-max) wall time:")
    print(f"  floor (requests, every page, .json())   {floor_ms:8.0f} ms  ({spread_ms(floors)})")
    print(f"  m365watch -q poll (one change)          {poll_ms:8.0f} ms  ({spread_ms(polls)})")
    print("peak RSS (highest of the runs):")
    print(f"  floor                                   {floor_rss:8.0f} MB")
    print(f"  m365watch                               {poll_rss:8.0f} MB")
    lines, write_ratio = change_poll.report(
        polls, "the changed issue's", changed_bytes, outbox_bytes
    )
    print("\n".join(lines))
    return exit_status(
        [],
        [
            verdict("wall time", poll_ms / floor_ms, GOAL, FAIL),
            verdict("peak RSS", poll_rss / floor_rss, RSS_GOAL),
            verdict("bytes written vs changed issue + outbox", write_ratio, WRITE_GOAL),
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
