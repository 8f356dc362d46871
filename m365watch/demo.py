"""``m365watch demo``: replay a bundled incident timeline through the real pipeline.

Each step of the timeline is one poll: the real diff, a real TinyDB state file
in a temporary folder, and real Apprise delivery, to a ``console://`` target
that prints each notification (or to URLs the user passes with ``--notify``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timezone
from importlib import resources
from pathlib import Path
from typing import Any

from m365watch.errors import ConfigError
from m365watch.models import parse_timestamp
from m365watch.poll import issues_from, run_poll
from m365watch.settings import PollSettings, TargetSettings
from m365watch.store import StateStore

CONSOLE_SCHEME = "m365console"

_echo: Callable[[str], None] = print


def load_timeline() -> list[dict[str, Any]]:
    """The bundled timeline: steps, each a label, a time and the issues feed at that time."""
    text = resources.files("m365watch").joinpath("data/demo-timeline.json").read_text("utf-8")
    steps: list[dict[str, Any]] = json.loads(text)["steps"]
    return steps


@dataclass
class TimelineSource:
    """An issue source that serves one step of the timeline (stands in for Graph)."""

    issues: list[dict[str, Any]]

    def list_issues(self) -> list[dict[str, Any]]:
        return self.issues


def _register_console() -> None:
    import apprise
    from apprise.decorators import notify

    if CONSOLE_SCHEME in apprise.Apprise().details().get("schemas", ()):  # pragma: no cover
        return

    @notify(on=CONSOLE_SCHEME, name="m365watch terminal", body_format="text")  # type: ignore[untyped-decorator,no-untyped-call]
    def _console(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
        rule = "─" * 72
        _echo(f"  ┌{rule}\n  │ [{notify_type}] {title}\n  ├{rule}")
        for line in body.splitlines():
            _echo(f"  │ {line}")
        _echo(f"  └{rule}")
        return True


def run_demo(
    notify_urls: Sequence[str] = (),
    *,
    echo: Callable[[str], None] = print,
    state_dir: Path | None = None,
) -> int:
    """Replay the timeline; returns how many deliveries failed."""
    global _echo
    _echo = echo
    if notify_urls:
        from m365watch.config import parse_settings

        # Reuse the config checks (e.g. retired Teams connector URLs) on --notify URLs.
        doc = {"notify": [{"name": "demo", "urls": list(notify_urls)}]}
        targets = parse_settings(doc, env={}, base_dir=None).targets
    else:
        _register_console()
        targets = (TargetSettings(name="terminal", urls=(f"{CONSOLE_SCHEME}://",)),)

    from m365watch.notify import Notifier

    notifier = Notifier({t.name: t.urls for t in targets}, throttle=False)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="m365watch-demo-") as tmp:
        store = StateStore(Path(state_dir or tmp) / "state.json")
        for number, step in enumerate(load_timeline(), start=1):
            now = parse_timestamp(step["at"])
            if now is None:  # pragma: no cover - the bundled file is fixed
                raise ConfigError("demo timeline has a step without a time")
            echo(
                f"\n== Poll {number} at {now.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC: "
                f"{step['label']}"
            )
            result = run_poll(
                sources=[issues_from(TimelineSource(step["issues"]))],
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
                echo(
                    f"   baseline: recorded {result.issues_seen} issues, sent nothing "
                    "(no first-run flood)"
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
