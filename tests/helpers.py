"""Helpers shared by several test modules (no test module imports another)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from requests import PreparedRequest

from m365watch.records import Entry


def owed(entry: Entry[Any]) -> list[str]:
    """The labels of the units an outbox entry is still owed to ("ops", "ops#2")."""
    return [o.unit.label for o in entry.owed]


def attempts(entry: Entry[Any]) -> dict[str, int]:
    """Failed tries so far, by unit label."""
    return {o.unit.label: o.attempts for o in entry.owed if o.attempts}


def last_errors(entry: Entry[Any]) -> dict[str, str]:
    """The last failure of each unit that has one, by unit label."""
    return {o.unit.label: o.last_error for o in entry.owed if o.last_error}


def body_of(request: PreparedRequest) -> str | bytes:
    """The body a mocked webhook received (for ``json.loads``); it must have one."""
    body = request.body
    assert body is not None
    return body


def text_of(request: PreparedRequest) -> str:
    """The body a mocked webhook received, which must be text."""
    body = request.body
    assert isinstance(body, str)
    return body


def url_of(request: PreparedRequest) -> str:
    """The URL a mocked request went to; it must have one."""
    url = request.url
    assert url is not None
    return url


# -- sample payloads, the demo timeline, webhook URLs -------------------------------

DATA = Path(__file__).parent / "data"
SHARED_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "graph-samples"


def load_json(name: str) -> Any:
    """A payload from tests/data (copied unchanged from ../shared/graph-samples)."""
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def timeline_steps() -> list[dict[str, Any]]:
    """The bundled demo timeline (m365watch/data/demo-timeline.json)."""
    from m365watch.demo import load_timeline

    return load_timeline()


def timeline_change(before: int | None, after: int, issue_id: str) -> Any:
    """The change of ``issue_id`` from timeline step ``before`` (None = unseen) to ``after``."""
    from m365watch.diff import diff_issue
    from m365watch.models import parse_issues

    def at(step: int) -> Any:
        return {i.id: i for i in parse_issues(timeline_steps()[step]["issues"])[0]}[issue_id]

    change = diff_issue(at(before) if before is not None else None, at(after))
    assert change is not None
    return change


def json_strings(value: Any) -> list[str]:
    """Every string inside a JSON-like value (to search a payload's texts)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in json_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in json_strings(v)]
    return []


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SLACK_URL = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"
SLACK_WEBHOOK = "https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"
TEAMS_URL = "workflows://prod-12.westus.logic.azure.com:443/f0a1b2c3d4e5/Sig0123456789abcdefSecret"
TEAMS_ENDPOINT = (
    "https://prod-12.westus.logic.azure.com:443/workflows/f0a1b2c3d4e5/triggers/manual/paths/invoke"
)


def resolved_incident(issue_id: str, status: str) -> dict[str, Any]:
    """A resolved Exchange incident as Graph sends it, in ``status`` (e.g. a PIR published)."""
    return {
        "id": issue_id,
        "title": "Mail delayed",
        "service": "Exchange Online",
        "status": status,
        "classification": "incident",
        "isResolved": True,
        "lastModifiedDateTime": "2026-11-21T09:00:00Z",
        "posts": [],
    }


# -- what a command loads ------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]

_PROBE = """
import json, runpy, sys
watched = json.loads(sys.argv[2])
sys.argv = ["m365watch", *json.loads(sys.argv[1])]
code = 0
try:
    runpy.run_module("m365watch", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "loaded": [m for m in watched if m in sys.modules]}),
      file=sys.stderr)
"""
HEAVY = ("msal", "requests", "apprise", "rich", "tinydb")


def probe(
    *args: str, watched: Sequence[str] = HEAVY, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run m365watch in a fresh interpreter; which of the ``watched`` modules did it import?

    ``env`` adds to a minimal environment (no proxy, no config of the user's).
    """
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args), json.dumps(list(watched))],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "COLUMNS": "80", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    result: dict[str, Any] = json.loads(done.stderr.strip().splitlines()[-1])
    return result
