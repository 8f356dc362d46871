"""What the benchmarks of issue 13 share: the stand-in, the floor, runs, ratios.

Every benchmark in bench/ compares m365watch with a *floor*: what any Python
tool must spend to do the same job (import requests, GET the same feed over the
same TLS with the same token header, ``.json()`` each page). Both run as real
processes, side by side in one run, interleaved (the order alternating from one
round to the next), against the same loopback HTTPS stand-in for Entra ID and
Graph (tests/loopback.py ``FakeTenants``; one tenant unless many are asked for).
The stand-in pages like Graph: 100 items a page unless the request says
``Prefer: odata.maxpagesize=N`` (up to 1000); both sides ask for 1000. It keeps
each answer's bytes, so serialising the feed (in this process, on the same
cores) is paid once, not per request.

Each benchmark ends with lines such as::

    ratio 1.27 (goal <= 1.3, fail > 1.5): OK

OK at or under the goal, OVER above it, FAIL above the fail bound (when the
issue names one). Times are medians. A script exits 1 when a run or a check
fails or a ratio is past its fail bound (OVER alone exits 0).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.loopback import ISSUES_PATH, TENANT, FakeTenants  # noqa: E402

RUN_TIMEOUT = 600.0
# Characters of prose per post: about 750 bytes of HTML, so 5,000 issues x 10 posts make
# a 35 MB feed and state file (issue 13's profile saw 37 MB).
POST_CHARS = 300
# Graph's own page size when the request does not ask (both sides ask for 1000).
SERVER_PAGE_SIZE = 100

# The floor: what any Python poller must do. argv: CA bundle, token, then the feed URLs.
FLOOR = """\
import sys
import requests
ca_bundle, token, *urls = sys.argv[1:]
headers = {"Authorization": "Bearer " + token, "Prefer": "odata.maxpagesize=1000"}
session = requests.Session()
items = []
for url in urls:
    while url:
        body = session.get(url, headers=headers, verify=ca_bundle, timeout=60).json()
        items.extend(body["value"])
        url = body.get("@odata.nextLink")
print(len(items))
"""


# -- test data ---------------------------------------------------------------------------------

SERVICES = ("Exchange Online", "Microsoft Teams", "SharePoint Online")
SENTENCE = (
    "We're reviewing service monitoring telemetry to isolate the root cause and develop a "
    "remediation plan; users may be unable to access their mailboxes meanwhile. "
)


def post_content(n: int, p: int, chars: int) -> str:
    """A post's HTML as Microsoft writes them: title, impact, then about ``chars`` of text."""
    text = (SENTENCE * (chars // len(SENTENCE) + 1))[:chars]
    return (
        f"<p>Title: Users may be unable to reach mailboxes (issue {n})</p>"
        f"<p>User impact: Users may be unable to access their mailboxes.</p>"
        f"<p>Current status: update {p}. {text}</p>"
        f"<p>Next update by: Monday, November 2, 2026, at 1{p % 10}:00 PM UTC</p>"
    )


def make_issues(
    count: int, posts: int = 3, post_chars: int = 1500, filler: bool = True
) -> list[dict[str, Any]]:
    """``count`` issues of ``posts`` posts each, shaped like Graph's.

    ``filler``: each post is "<p>Title: …</p><p>User impact: …</p>" and ``post_chars``
    x's (the data of issues 2 and 11); otherwise prose of about ``post_chars`` characters.
    """
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
                "service": SERVICES[n % 3],
                "feature": "E-Mail and calendar access",
                "featureGroup": "E-Mail and calendar access",
                "isResolved": bool(n % 5),
                "startDateTime": "2026-11-01T10:00:00Z",
                "endDateTime": None,
                "lastModifiedDateTime": "2026-11-02T10:00:00.1234567Z",
                "details": [],
                "posts": [
                    {
                        "createdDateTime": f"2026-11-01T{10 + p % 14:02d}:{p // 14:02d}:00Z",
                        "postType": "regular",
                        "description": {
                            "contentType": "html",
                            "content": (
                                "<p>Title: …</p><p>User impact: …</p>" + "x" * post_chars
                                if filler
                                else post_content(n, p, post_chars)
                            ),
                        },
                    }
                    for p in range(posts)
                ],
            }
        )
    return issues


def changed_issue(issue: dict[str, Any]) -> dict[str, Any]:
    """``issue`` as Microsoft updates it: reopened, a new post, a later lastModifiedDateTime."""
    posts = issue["posts"]
    return {
        **issue,
        "status": "serviceDegradation",
        "isResolved": False,
        "lastModifiedDateTime": "2026-11-03T09:30:00Z",
        "posts": [
            *posts,
            {
                "createdDateTime": "2026-11-03T09:30:00Z",
                "postType": "regular",
                "description": {
                    "contentType": "html",
                    "content": "<p>Title: Mail flow</p><p>Current status: we're on it again.</p>",
                },
            },
        ],
    }


# -- the stand-in -------------------------------------------------------------------------------


@dataclass
class StandIn:
    """The stand-in with one tenant (``contoso``), a webhook ``ops``, and a config for it."""

    fake: FakeTenants
    tenant: Any  # tests.loopback.Tenant
    folder: Path
    state: Path  # the state file; its folder is the state folder
    config: Path
    env: dict[str, str]

    def set_issues(self, issues: list[dict[str, Any]]) -> None:
        self.tenant.issues = issues
        self.fake.forget_answers()

    def set_messages(self, messages: list[dict[str, Any]]) -> None:
        self.tenant.messages = messages
        self.fake.forget_answers()

    def poll_argv(self, *more: str) -> list[str]:
        return [sys.executable, "-m", "m365watch", "-c", str(self.config), *more]

    def floor_argv(self, *feeds: str) -> list[str]:
        """The floor fetching ``feeds`` (Graph paths; default the issues) to their last page."""
        urls = [self.fake.base_url + path for path in feeds or (ISSUES_PATH,)]
        return [
            sys.executable,
            "-c",
            FLOOR,
            str(self.fake.ca_bundle),
            self.tenant.token,
            *urls,
        ]

    def hooks(self) -> int:
        """Messages the webhook received so far."""
        return len(self.fake.hooks["ops"])


@contextlib.contextmanager
def stand_in(
    issues: list[dict[str, Any]] | None = None,
    messages: list[dict[str, Any]] | None = None,
    *,
    notify: bool = True,
    extra: str = "",
) -> Iterator[StandIn]:
    """A temporary folder, the stand-in serving one tenant, and m365watch's config for it."""
    with tempfile.TemporaryDirectory(prefix="m365watch-bench-") as tmp:
        folder = Path(tmp)
        fake = FakeTenants(folder).start()
        try:
            fake.cache_answers = True
            tenant = fake.add_tenant(
                "contoso", TENANT, issues=issues or [], messages=messages or []
            )
            tenant.page_size = SERVER_PAGE_SIZE
            state = folder / "state" / "state.json"
            config = folder / "config.toml"
            hook = f'[[notify]]\nname = "ops"\nurl = "{fake.hook_url("ops")}"\n'
            config.write_text(
                fake.single_config_text("contoso", state, hook if notify else "", extra)
            )
            config.chmod(0o600)
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("M365WATCH_")},
                "M365WATCH_CLIENT_SECRET": "bench-secret",
                "REQUESTS_CA_BUNDLE": str(fake.ca_bundle),
                "PYTHONPATH": str(ROOT),
                "NO_PROXY": "127.0.0.1",
                "COLUMNS": "100",
            }
            yield StandIn(fake, tenant, folder, state, config, env)
        finally:
            fake.stop()


# -- running ------------------------------------------------------------------------------------


@dataclass
class Run:
    """One child process: wall time, its own peak RSS and CPU time, its output."""

    seconds: float
    returncode: int
    stdout: str
    stderr: str
    max_rss_mb: float  # ru_maxrss: the whole process's peak resident set, as time -v says
    cpu_seconds: float  # user + system
    block_writes: int  # ru_oublock * 512: bytes it dirtied in files on disk (0 on tmpfs)


def run(argv: Sequence[str], env: dict[str, str], timeout: float = RUN_TIMEOUT) -> Run:
    """Run ``argv`` to its end (killed after ``timeout``): wall time and its own rusage."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=err)
        watchdog = threading.Timer(timeout, os.kill, (proc.pid, signal.SIGKILL))
        watchdog.start()
        try:
            # wait4: this child's own rusage (RUSAGE_CHILDREN would mix in every child's).
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
            usage.ru_utime + usage.ru_stime,
            usage.ru_oublock * 512,
        )


def require(done: Run, what: str) -> Run:
    """``done``, or exit 1 saying what failed and how."""
    if done.returncode != 0:
        print(f"{what} failed (exit {done.returncode}):", file=sys.stderr)
        print((done.stderr or done.stdout)[-3000:], file=sys.stderr)
        sys.exit(1)
    return done


def interleave(runs: int, sides: dict[str, Callable[[], Run]]) -> dict[str, list[Run]]:
    """Each side ``runs`` times, taking turns; the order rotates from one round to the next."""
    names = list(sides)
    done: dict[str, list[Run]] = {name: [] for name in names}
    for n in range(runs):
        shift = n % len(names)
        for name in names[shift:] + names[:shift]:
            done[name].append(sides[name]())
    return done


def median_ms(runs: Sequence[Run]) -> float:
    return statistics.median(r.seconds for r in runs) * 1000


def spread_ms(runs: Sequence[Run]) -> str:
    """min–max, for the reader to judge the noise."""
    times = [r.seconds * 1000 for r in runs]
    return f"{min(times):.0f}–{max(times):.0f}"


# -- what a poll wrote ----------------------------------------------------------------------------

FileMark = tuple[int, int, int]  # inode, mtime (ns), size


def files_in(folder: Path) -> dict[str, FileMark]:
    """Every file under ``folder``: its inode, mtime and size."""
    marks = {}
    for path in folder.rglob("*"):
        if path.is_file():
            info = path.stat()
            marks[str(path.relative_to(folder))] = (info.st_ino, info.st_mtime_ns, info.st_size)
    return marks


def bytes_written(before: dict[str, FileMark], after: dict[str, FileMark]) -> tuple[int, list[str]]:
    """The sizes of the files created, replaced or modified between ``before`` and ``after``.

    A file whose inode, mtime or size changed counts whole: m365watch writes
    files atomically (a new file renamed over the old), so a changed file was
    written in full. Files written and removed in between are not seen.
    """
    changed = sorted(name for name, mark in after.items() if before.get(name) != mark)
    return sum(after[name][2] for name in changed), changed


# -- verdicts -------------------------------------------------------------------------------------


def verdict(label: str, ratio: float, goal: float, fail: float | None = None) -> str:
    """``LABEL: ratio 1.27 (goal <= 1.3, fail > 1.5): OK``; OVER above goal, FAIL above fail."""
    bounds = f"goal <= {goal:g}" + (f", fail > {fail:g}" if fail is not None else "")
    word = "OK" if ratio <= goal else "FAIL" if fail is not None and ratio > fail else "OVER"
    return f"{label}: ratio {ratio:.2f} ({bounds}): {word}"


def header(what: str) -> str:
    return f"{what}\nPython {sys.version.split()[0]}, {os.cpu_count()} cores, load average " + (
        " ".join(f"{x:.1f}" for x in os.getloadavg())
    )


def add_feed_options(parser: argparse.ArgumentParser, issues: int, posts: int) -> None:
    """--issues, --posts and --post-chars: the issues feed the stand-in serves."""
    parser.add_argument("--issues", type=int, default=issues, help=f"issues (default {issues})")
    parser.add_argument("--posts", type=int, default=posts, help=f"posts each (default {posts})")
    parser.add_argument(
        "--post-chars",
        type=int,
        default=POST_CHARS,
        help=f"characters of prose per post (default {POST_CHARS}: about 750 bytes of HTML)",
    )


def feed_of(args: argparse.Namespace) -> list[dict[str, Any]]:
    return make_issues(args.issues, args.posts, args.post_chars, filler=False)


def copy_folder(source: Path, target: Path) -> None:
    """``target`` becomes a copy of ``source`` (files only; what a state folder holds)."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)


def exit_status(checks: Sequence[tuple[str, object, bool]], verdicts: Sequence[str]) -> int:
    """Print the checks and verdicts; 1 when a check failed or a ratio is past its fail bound."""
    for what, value, ok in checks:
        print(f"  {what:<40} {value!s:>10}  [{'ok' if ok else 'FAIL'}]")
    for line in verdicts:
        print(line)
    failed = not all(ok for *_, ok in checks) or any(v.endswith(": FAIL") for v in verdicts)
    return 1 if failed else 0


class ChangePolls:
    """Polls that each start from the state ``pristine`` holds and find one change.

    Calling it restores the state folder (not timed), runs ``argv``, checks the
    webhook got one message and records the bytes written to the state folder.
    """

    def __init__(self, s: StandIn, argv: list[str], pristine: Path) -> None:
        self.s, self.argv, self.pristine = s, argv, pristine
        self.written: list[int] = []
        self.files: set[str] = set()

    def __call__(self) -> Run:
        folder = self.s.state.parent
        copy_folder(self.pristine, folder)
        before, hooks = files_in(folder), self.s.hooks()
        done = require(run(self.argv, self.s.env), "the poll with one change")
        assert self.s.hooks() == hooks + 1, f"{self.s.hooks() - hooks} messages sent, not 1"
        size, files = bytes_written(before, files_in(folder))
        self.written.append(size)
        self.files.update(files)
        return done

    def outbox_bytes(self) -> int:
        """The outbox holding the change's message: as a poll whose delivery failed leaves it."""
        folder = self.s.state.parent
        copy_folder(self.pristine, folder)
        self.s.fake.failing_hooks.add("ops")
        try:
            failed = run(self.argv, self.s.env)
        finally:
            self.s.fake.failing_hooks.discard("ops")
        assert "not delivered" in failed.stderr, (failed.returncode, failed.stderr[-2000:])
        return sum(p.stat().st_size for p in folder.glob("*outbox*"))

    def report(
        self, polls: Sequence[Run], what: str, changed_bytes: int, outbox_bytes: int
    ) -> tuple[list[str], float]:
        """Lines saying what the polls wrote, and its ratio to what changed plus the outbox."""
        wrote = max(self.written)
        kernel = statistics.median(r.block_writes for r in polls)
        lines = [
            "written to the state folder by the poll (files replaced or modified, whole):",
            f"  m365watch                               {wrote / 1e3:8.1f} kB  "
            f"({', '.join(sorted(self.files))})",
            f"  {what + ' JSON':<40}{changed_bytes / 1e3:8.1f} kB",
            f"  {'the outbox holding its message':<40}{outbox_bytes / 1e3:8.1f} kB",
            f"  {'kernel: bytes dirtied in files (info)':<40}{kernel / 1e3:8.1f} kB  "
            "(ru_oublock x 512)",
        ]
        return lines, wrote / (changed_bytes + outbox_bytes)
