"""``m365watch demo``: replay a bundled incident timeline through the real pipeline.

Each step of the timeline is one poll of the service-health issues and the
Message center (as with ``[messages]`` and its defaults): the real diff, a real
TinyDB state file in a temporary folder, and real Apprise delivery, to a
``console://`` target that prints each notification (or to URLs the user passes
with ``--notify``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timezone
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from m365watch.deliver import Sender
from m365watch.errors import ConfigError
from m365watch.models import parse_timestamp
from m365watch.poll import StateStorage, issues_from, messages_from, run_poll
from m365watch.settings import MessagesSettings, PollSettings, TargetSettings


class DemoStore(StateStorage, Protocol):
    """The demo's state store: a poll's storage that also says where it lives."""

    path: Path


def load_timeline() -> list[dict[str, Any]]:
    """The bundled timeline: steps, each a label, a time, the issues and the Message center posts.

    A step that leaves out ``issues`` or ``messages`` has the step before's.
    """
    text = resources.files("m365watch").joinpath("data/demo-timeline.json").read_text("utf-8")
    steps: list[dict[str, Any]] = json.loads(text)["steps"]
    before: dict[str, Any] = {"issues": [], "messages": []}
    for step in steps:
        for feed in ("issues", "messages"):
            step.setdefault(feed, before[feed])
        before = step
    return steps


@dataclass
class TimelineSource:
    """Serves one step of the timeline's issues and posts (stands in for Graph)."""

    issues: list[dict[str, Any]]
    messages: list[dict[str, Any]] = field(default_factory=list)

    def list_issues(self) -> list[dict[str, Any]]:
        return self.issues

    def list_messages(self) -> list[dict[str, Any]]:
        return self.messages


def run_demo(
    targets: Sequence[TargetSettings],
    sender: Sender,
    make_store: Callable[[Path], DemoStore],
    *,
    echo: Callable[[str], None] = print,
    state_dir: Path | None = None,
) -> int:
    """Replay the timeline to ``targets`` through ``sender``; returns how many deliveries failed.

    The state lives in ``state_dir``, or in a temporary folder removed at the end.
    """
    notifier = sender
    failed = 0
    with tempfile.TemporaryDirectory(prefix="m365watch-demo-") as tmp:
        store = make_store(Path(state_dir or tmp) / "state.json")
        for number, step in enumerate(load_timeline(), start=1):
            now = parse_timestamp(step["at"])
            if now is None:  # pragma: no cover - the bundled file is fixed
                raise ConfigError("demo timeline has a step without a time")
            echo(
                f"\n== Poll {number} at {now.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC: "
                f"{step['label']}"
            )
            source = TimelineSource(step["issues"], step["messages"])
            result = run_poll(
                sources=[issues_from(source), messages_from(source, MessagesSettings(), now)],
                store=store,
                make_sender=lambda: notifier,
                poll=PollSettings(),
                targets=targets,
                targets_fingerprint="demo",
                now=now,
            )
            sent = sum(1 for d in result.deliveries if d.ok)
            failed += len(result.failed)
            if result.baseline:
                posts = result.posts_seen or 0
                echo(
                    f"   baseline: recorded {result.issues_seen} issues and {posts} Message "
                    f"center post{'' if posts == 1 else 's'}, sent nothing (no first-run flood)"
                )
            elif not result.changes:
                echo("   no change worth a message; state file not rewritten")
            else:
                echo(f"   {len(result.changes)} change(s), {sent} message(s) delivered")
            for delivery in result.failed:
                echo(f"   not delivered to {delivery.target}: {delivery.reason} (kept for retry)")
        echo(
            f"\nDemo finished: state was kept in {store.path} (now removed). "
            "Next: see README.md to connect your tenant."
        )
    return failed
