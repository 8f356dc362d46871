"""A throwaway m365watch installation pointed at the loopback Microsoft (tests/loopback.py).

Used by the unattended-operation tests (crash, fault, watch, secrets): it
writes a config whose targets are the loopback's json:// webhook receivers,
runs m365watch as a real subprocess or in-process, and reads back what each
target received.
"""

from __future__ import annotations

import collections
import copy
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from tests.loopback import CLIENT_ID, FakeMicrosoft

ROOT = Path(__file__).resolve().parents[1]
# A client secret that must never show up in output, logs or files m365watch writes.
SENTINEL = "S3ntinel~Secret.Value_Do-Not-Print_8e1f2a"
T0 = datetime(2026, 11, 20, 13, 30, tzinfo=timezone.utc)
_ISSUE_ID = re.compile(r"\b([A-Z]{2}\d{5,})\b")


def issue(
    n: int,
    *,
    status: str = "investigating",
    classification: str | None = None,
    resolved: bool = False,
    posts: int = 1,
) -> dict[str, Any]:
    """A service-health issue as Graph sends it; even numbers are incidents."""
    return {
        "id": f"EX{1200000 + n}",
        "title": f"Users can't reach mailboxes (case {n})",
        "impactDescription": "Users may be unable to access their mailboxes.",
        "classification": classification or ("incident" if n % 2 == 0 else "advisory"),
        "origin": "microsoft",
        "status": status,
        "service": "Exchange Online",
        "feature": "E-Mail and calendar access",
        "featureGroup": "E-Mail and calendar access",
        "isResolved": resolved,
        "startDateTime": "2026-11-20T10:00:00Z",
        "endDateTime": "2026-11-20T13:00:00Z" if resolved else None,
        "lastModifiedDateTime": f"2026-11-20T1{posts}:00:00Z",
        "details": [],
        "posts": [
            {
                "createdDateTime": f"2026-11-20T1{p}:00:00Z",
                "postType": "regular",
                "description": {"contentType": "html", "content": f"<p>Update {p} on {n}</p>"},
            }
            for p in range(posts)
        ],
    }


# Six issues, then a feed in which eight of them (four incidents) changed or are new.
FEED_BEFORE = [issue(n) for n in range(6)]
FEED_AFTER = [
    issue(0, status="serviceDegradation", posts=2),
    issue(1, status="serviceDegradation", posts=2),
    issue(2, status="serviceRestored", resolved=True, posts=2),
    issue(3),
    issue(4),
    issue(5, posts=2),
    *(issue(n) for n in range(6, 10)),
]
CHANGED = {f"EX{1200000 + n}" for n in (0, 1, 2, 5, 6, 7, 8, 9)}
CHANGED_INCIDENTS = {f"EX{1200000 + n}" for n in (0, 2, 6, 8)}


@dataclass(frozen=True)
class Target:
    """A [[notify]] block pointing at one loopback webhook."""

    name: str
    events: tuple[str, ...] = ()
    classifications: tuple[str, ...] = ()


# "all" gets every change, "incidents" only incidents, "watch" only watcher messages.
STANDARD_TARGETS = (
    Target("all"),
    Target("incidents", classifications=("incident",)),
    Target("watch", events=("watcher",)),
)
# What FEED_BEFORE -> FEED_AFTER must deliver to STANDARD_TARGETS: (target, issue id).
EXPECTED = {("all", i) for i in CHANGED} | {("incidents", i) for i in CHANGED_INCIDENTS}


class Installation:
    """One config + state folder using the loopback Entra ID, Graph and webhooks."""

    def __init__(
        self,
        root: Path,
        fake: FakeMicrosoft,
        targets: Sequence[Target] = STANDARD_TARGETS,
        *,
        prefix: str = "",
        extra: str = "",
    ) -> None:
        self.root = root
        self.fake = fake
        self.targets = tuple(targets)
        self.prefix = prefix
        self.state = root / "state" / "state.json"
        self.health = root / "state" / "state.health.json"
        self.config = root / "config.toml"
        root.mkdir(parents=True, exist_ok=True)
        blocks = []
        for target in self.targets:
            block = f'[[notify]]\nname = "{target.name}"\nurl = "{self.hook_url(target.name)}"\n'
            if target.events:
                block += f"events = {list(target.events)!r}\n".replace("'", '"')
            if target.classifications:
                block += f"classifications = {list(target.classifications)!r}\n".replace("'", '"')
            blocks.append(block)
        self.config.write_text(fake.config_text(self.state, "\n".join(blocks), extra))
        self.config.chmod(0o600)

    def hook_url(self, target: str) -> str:
        return self.fake.hook_url(self.prefix + target)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "M365WATCH_CLIENT_SECRET": SENTINEL,
            "REQUESTS_CA_BUNDLE": str(self.fake.ca_bundle),
            "PYTHONPATH": str(ROOT),
        }

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "m365watch", "-c", str(self.config), *args]

    def run(
        self, *args: str, timeout: float = 60, **popen: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run ``m365watch -c CONFIG ARGS`` as a subprocess and wait for it."""
        return subprocess.run(
            self.argv(*args),
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **popen,
        )

    def run_limited(
        self, *args: str, limits: dict[str, float], timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Like :meth:`run`, with some of m365watch.budget's time limits shortened.

        ``limits`` maps a constant of ``m365watch.budget`` (``FETCH_SECONDS``) to its value.
        """
        script = (
            "import sys, m365watch.budget as budget\n"
            f"for name, value in {limits!r}.items():\n"
            "    assert hasattr(budget, name), name\n"
            "    setattr(budget, name, value)\n"
            "from m365watch.cli import main\n"
            "main(prog_name='m365watch')\n"
        )
        return subprocess.run(
            [sys.executable, "-c", script, "-c", str(self.config), *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        """Start ``m365watch -c CONFIG ARGS`` as a subprocess."""
        return subprocess.Popen(
            self.argv(*args),
            env=self.env,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def invoke(self, *args: str) -> Result:
        """Run the CLI in-process (not thread-safe: CliRunner swaps sys.stdout)."""
        from m365watch.cli import main

        env = {
            "M365WATCH_CLIENT_SECRET": SENTINEL,
            "REQUESTS_CA_BUNDLE": str(self.fake.ca_bundle),
        }
        return CliRunner().invoke(main, ["-c", str(self.config), *args], env=env)

    def baseline(self, issues: list[dict[str, Any]] = FEED_BEFORE) -> None:
        """Record ``issues`` as already seen, in-process, without Graph or sending."""
        from m365watch.config import load_settings
        from m365watch.poll import issues_from, run_poll
        from m365watch.store import StateStore
        from m365watch.wiring import build_sender

        settings = load_settings(self.config, env=self.env)
        feed = copy.deepcopy(issues)

        class Feed:
            def list_issues(self) -> list[dict[str, Any]]:
                return feed

        run_poll(
            sources=[issues_from(Feed())],
            store=StateStore(settings.state_path),
            make_sender=lambda: build_sender(settings, throttle=False),
            poll=settings.poll,
            targets=settings.targets,
            targets_fingerprint=settings.targets_fingerprint,
            now=T0,
        )

    def received(self) -> collections.Counter[tuple[str, str]]:
        """How often each (target, issue id) arrived at a webhook."""
        seen: collections.Counter[tuple[str, str]] = collections.Counter()
        for target in self.targets:
            for payload in self.fake.hooks.get(self.prefix + target.name, []):
                match = _ISSUE_ID.search(str(payload.get("title", "")))
                seen[(target.name, match.group(1) if match else str(payload.get("title")))] += 1
        return seen

    def titles(self, target: str) -> list[str]:
        """Titles of the messages a target received, in order."""
        return [str(p.get("title")) for p in self.fake.hooks.get(self.prefix + target, [])]

    def posts_arrived(self) -> int:
        """Webhook requests that reached the loopback for this installation (answered or not)."""
        return sum(self.fake.counts[f"hook:{self.prefix}{t.name}"] for t in self.targets)


def reset(fake: FakeMicrosoft) -> None:
    """Forget what earlier tests did to a shared loopback server."""
    fake.issues = copy.deepcopy(FEED_AFTER)
    fake.health = [{"id": "Exchange", "service": "Exchange Online", "status": "serviceOperational"}]
    fake.graph_faults.clear()
    fake.failing_hooks.clear()
    fake.graph_delay = fake.hook_delay = 0.0
    fake.token_echo = None
    fake.graph_dribble = fake.token_dribble = fake.hook_dribble = 0.0
    fake.dribbling_hooks.clear()
    fake.huge_graph = 0
    fake.huge_declared = False
    fake.sent.clear()
    fake.closed_early.clear()
    fake.hooks.clear()
    fake.hook_times.clear()
    fake.reports.clear()
    fake.report_delay = 0.0
    fake.counts.clear()
    fake.hold = None
    fake.messages = []
    fake.tenant_issues.clear()
    fake.tenant_messages.clear()
    fake.refused_tenants.clear()
    fake.tenant_faults.clear()
    fake.held.clear()
    fake.release.clear()


def tenants_config(fake: FakeMicrosoft, root: Path, names: Sequence[str], rest: str = "") -> Path:
    """``root/config.toml``: [[tenants]] ``names`` (tenant_id ``NAME.onmicrosoft.com``) signed
    in at the loopback with one app's secret, the state under ``root/state``, then ``rest``."""
    tenants = "".join(
        f'[[tenants]]\nname = "{n}"\ntenant_id = "{n}.onmicrosoft.com"\n\n' for n in names
    )
    config = root / "config.toml"
    config.write_text(
        f'[tenant]\nclient_id = "{CLIENT_ID}"\nclient_secret = "${{M365WATCH_CLIENT_SECRET}}"\n'
        f'authority = "{fake.base_url}"\ngraph_endpoint = "{fake.base_url}"\n\n'
        f'{tenants}[state]\npath = "{root / "state" / "state.json"}"\n\n{rest}'
    )
    config.chmod(0o600)
    return config
