"""Benchmark row 7 of issue 13: the Message center at 5,000 posts of 20 KB, next to the floor.

The stand-in (bench/common.py) serves 5,000 posts with 20 KB HTML bodies (about
100 MB of JSON, five pages of 1,000 with @odata.nextLink) and no issues; the
config has ``[messages]`` and a webhook. After the baseline poll it runs, as
real processes, interleaved --runs times each:

1. the floor (``python -c``: requests, the issues feed and every page of the
   Message center, ``.json()`` each, every post kept) and a quiet
   ``m365watch -q poll`` (nothing changed);
2. the floor and a poll in which one post changed (its act-by date moved, a
   paragraph added: one message), each from the state the baseline left
   (restored before each run, not timed).

It prints medians, each side's peak memory (max RSS, as ``/usr/bin/time -v``
reports it: ``os.wait4``'s rusage of that child), the bytes the changed poll
wrote to the state folder (as bench_change.py counts them), and the ratios:
no-change and one-change polls <= 1.3x the floor (fail > 1.5x), peak RSS <= 2x,
bytes written <= 2x the changed post's JSON plus the outbox. BENCH_PROFILE=FILE
cProfiles one more changed poll into FILE.

Run: python bench/bench_messages.py [--runs 3] [--posts 5000] [--body-kb 20]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    ChangePolls,
    Run,
    copy_folder,
    exit_status,
    header,
    interleave,
    median_ms,
    require,
    run,
    spread_ms,
    stand_in,
    verdict,
)
from tests.loopback import ISSUES_PATH, MESSAGES_PATH  # noqa: E402

# Issue 13: the same ratios as the issues feed's.
GOAL, FAIL = 1.3, 1.5
RSS_GOAL = 2.0
WRITE_GOAL = 2.0
SERVICES = ("Exchange Online", "Microsoft Teams", "SharePoint Online", "Microsoft Entra")


def make_posts(count: int, body_kb: int) -> list[dict[str, Any]]:
    """``count`` posts shaped like real ones, each body about ``body_kb`` KB of HTML."""
    paragraph = (
        "<p>[How this will affect your organization:] Users will see the new experience "
        "once the rollout reaches your tenant; admins can manage it in the admin center "
        "under Settings, and the previous experience stays available until retirement. "
        'See <a href="https://learn.microsoft.com/microsoft-365/">the documentation</a>.</p>'
        "<ul><li>Targeted release: rolling out</li><li>Standard release: early next month</li>"
        "</ul>"
    )
    repeat = max(1, body_kb * 1024 // len(paragraph))
    posts = []
    for n in range(count):
        posts.append(
            {
                "id": f"MC{1100000 + n}",
                "title": f"Planned change {n}: a new experience for {SERVICES[n % 4]}",
                "category": ("planForChange", "stayInformed", "preventOrFixIssue")[n % 3],
                "severity": "high" if n % 17 == 0 else "normal",
                "tags": ["Admin impact", "User impact", "Feature update"][: 1 + n % 3],
                "isMajorChange": n % 7 == 0,
                # Every tenth post has an act-by date, far enough ahead that no reminder fires.
                "actionRequiredByDateTime": "2027-06-30T07:00:00Z" if n % 10 == 0 else None,
                "services": [SERVICES[n % 4]],
                "startDateTime": "2026-10-01T10:00:00Z",
                "endDateTime": "2027-09-30T07:00:00Z",
                "lastModifiedDateTime": "2026-10-01T10:00:00.1234567Z",
                "expiryDateTime": None,
                "hasAttachments": False,
                "viewPoint": None,
                "details": [{"name": "RoadmapIds", "value": str(400000 + n)}],
                "body": {
                    "contentType": "html",
                    "content": f"<p>Post {n}: what is changing.</p>" + paragraph * repeat,
                },
            }
        )
    return posts


def changed_post(post: dict[str, Any]) -> dict[str, Any]:
    """``post`` as Microsoft updates it: the act-by date moved, a paragraph added."""
    post = copy.deepcopy(post)
    post["actionRequiredByDateTime"] = "2027-08-31T07:00:00Z"
    post["lastModifiedDateTime"] = "2026-11-03T09:30:00Z"
    post["body"]["content"] = (
        "<p>Updated: we have moved the act-by date.</p>" + post["body"]["content"]
    )
    return post


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--body-kb", type=int, default=20)
    args = parser.parse_args()
    runs = max(1, args.runs)

    posts = make_posts(args.posts, args.body_kb)
    served_mb = len(json.dumps({"value": posts})) / 1e6
    middle = len(posts) // 2
    changed = changed_post(posts[middle])
    changed_bytes = len(json.dumps(changed).encode())
    with stand_in(messages=posts, extra="[messages]\n") as s:
        poll = s.poll_argv("-q", "poll")
        pristine = s.folder / "pristine"
        graph = s.tenant.counts
        before = graph["messages"]
        baseline = require(run(poll, s.env), "the baseline poll")
        pages = graph["messages"] - before
        copy_folder(s.state.parent, pristine)
        state_mb = s.state.stat().st_size / 1e6

        def floor() -> Run:
            done = require(run(s.floor_argv(ISSUES_PATH, MESSAGES_PATH), s.env), "the floor")
            assert int(done.stdout) == len(posts), done.stdout
            return done

        def quiet_poll() -> Run:
            hooks = s.hooks()
            done = require(run(poll, s.env), "a quiet poll")
            assert s.hooks() == hooks, "a quiet poll sent messages"
            return done

        floor()  # warms the OS file cache for requests' imports
        quiet = interleave(runs, {"floor": floor, "m365watch": quiet_poll})

        s.set_messages([*posts[:middle], changed, *posts[middle + 1 :]])
        change_poll = ChangePolls(s, poll, pristine)
        outbox_bytes = change_poll.outbox_bytes()
        change = interleave(runs, {"floor": floor, "m365watch": change_poll})

        profile = os.environ.get("BENCH_PROFILE")  # a file: cProfile one more changed poll
        if profile:
            ChangePolls(s, [sys.executable, "-m", "cProfile", "-o", profile, *poll[1:]], pristine)()

    print(
        header(
            f"Message center: {args.posts} posts x {args.body_kb} KB bodies "
            f"({served_mb:.0f} MB of JSON, {pages} pages; state file {state_mb:.0f} MB)"
        )
    )
    print(
        f"  {'baseline poll (not compared here)':<40}{baseline.seconds * 1000:8.0f} ms"
        f"  {'':>13}  {baseline.max_rss_mb:5.0f} MB"
    )
    print(f"{runs} interleaved runs each; median (min-max) wall time, highest peak RSS:")
    rows = [
        ("floor (requests, every page, .json())", quiet["floor"]),
        ("m365watch -q poll (nothing new)", quiet["m365watch"]),
        ("floor (the same, one post changed)", change["floor"]),
        ("m365watch -q poll (one post changed)", change["m365watch"]),
    ]
    for label, done in rows:
        print(
            f"  {label:<40}{median_ms(done):8.0f} ms  ({spread_ms(done):>11})"
            f"  {max(r.max_rss_mb for r in done):5.0f} MB"
        )
    lines, write_ratio = change_poll.report(
        change["m365watch"], "the changed post's", changed_bytes, outbox_bytes
    )
    print("\n".join(lines))
    change_rss = max(r.max_rss_mb for r in change["m365watch"])
    floor_rss = max(r.max_rss_mb for r in change["floor"])
    return exit_status(
        [],
        [
            verdict(
                "no-change poll",
                median_ms(quiet["m365watch"]) / median_ms(quiet["floor"]),
                GOAL,
                FAIL,
            ),
            verdict(
                "one post changed",
                median_ms(change["m365watch"]) / median_ms(change["floor"]),
                GOAL,
                FAIL,
            ),
            verdict("peak RSS (one post changed)", change_rss / floor_rss, RSS_GOAL),
            verdict("bytes written vs changed post + outbox", write_ratio, WRITE_GOAL),
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
