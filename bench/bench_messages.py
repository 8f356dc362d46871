"""Benchmark: the Message center with 5,000 posts of 20 KB each (issue 10's performance contract).

Starts a loopback HTTPS stand-in for Entra ID and Graph (tests/loopback.py)
serving the posts 1,000 to a page (five pages, @odata.nextLink between them),
then runs as real subprocesses, each with ``[messages]``:

1. the baseline poll (every post recorded, nothing sent);
2. a quiet poll (nothing changed);
3. a poll in which one post changed (its act-by date moved, a paragraph added):
   one message, to a JSON webhook on the same stand-in.

For each it prints the wall time, the whole process's peak memory (max RSS, as
``/usr/bin/time -v`` reports it: ``os.wait4``'s rusage of that child), Graph
requests and messages delivered, and the state file's size.

Run: python bench/bench_messages.py [--posts N] [--body-kb K]
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.loopback import FakeMicrosoft  # noqa: E402

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


def run(argv: list[str], env: dict[str, str], folder: Path) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in KiB (the child's own, from wait4) and the output of ``argv``."""
    out = folder / "out.txt"
    with out.open("w") as sink:
        start = time.perf_counter()
        child = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    text = out.read_text()
    assert child.returncode == 0, text[-2000:]
    return seconds, usage.ru_maxrss, text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--body-kb", type=int, default=20)
    args = parser.parse_args()

    posts = make_posts(args.posts, args.body_kb)
    served_mb = sum(len(p["body"]["content"]) for p in posts) / 1e6
    with tempfile.TemporaryDirectory() as tmp, FakeMicrosoft(Path(tmp)).start() as fake:
        folder = Path(tmp)
        fake.messages = posts
        state = folder / "state" / "state.json"
        config = folder / "config.toml"
        notify = f'[[notify]]\nname = "hook"\nurl = "{fake.hook_url("ops")}"\n'
        config.write_text(fake.config_text(state, notify=notify, extra="[messages]\n"))
        config.chmod(0o600)
        env = {
            **os.environ,
            "M365WATCH_CLIENT_SECRET": "bench-secret",
            "REQUESTS_CA_BUNDLE": str(fake.ca_bundle),
            "PYTHONPATH": str(ROOT),
        }
        profile = os.environ.get("BENCH_PROFILE")  # a file: cProfile the changed poll into it
        poll = [sys.executable, "-m", "m365watch", "-c", str(config), "poll"]

        rows = []
        for label, change in (("baseline", False), ("quiet", False), ("one post changed", True)):
            if change:
                middle = len(posts) // 2
                post = copy.deepcopy(posts[middle])
                post["actionRequiredByDateTime"] = "2027-08-31T07:00:00Z"
                post["body"]["content"] = (
                    "<p>Updated: we have moved the act-by date.</p>" + post["body"]["content"]
                )
                fake.messages = [*posts[:middle], post, *posts[middle + 1 :]]
            before = dict(fake.counts)
            hooks = len(fake.hooks["ops"])
            argv = poll
            if change and profile:
                argv = [sys.executable, "-m", "cProfile", "-o", profile, *poll[1:]]
            seconds, rss_kib, output = run(argv, env, folder)
            rows.append(
                (
                    label,
                    seconds,
                    rss_kib,
                    fake.counts["messages"] - before.get("messages", 0),
                    len(fake.hooks["ops"]) - hooks,
                    state.stat().st_size,
                    output.strip().splitlines()[-1],
                )
            )

    print(
        f"Message center: {args.posts} posts x {args.body_kb} KB bodies "
        f"({served_mb:.0f} MB of HTML, {args.posts // fake.messages_page or 1} pages), "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} cores"
    )
    print(
        f"{'poll':<18} {'wall s':>7} {'peak RSS MiB':>13} {'pages':>6} {'sent':>5} {'state MB':>9}"
    )
    for label, seconds, rss, pages, sent, size, _ in rows:
        print(
            f"{label:<18} {seconds:7.1f} {rss / 1024:13.0f} {pages:6d} {sent:5d} {size / 1e6:9.1f}"
        )
    for label, *_, summary in rows:
        print(f"  {label}: {summary}")


if __name__ == "__main__":
    main()
