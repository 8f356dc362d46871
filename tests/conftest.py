"""Shared fixtures: sample payloads, the demo timeline, and a fixed clock."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

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


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 11, 20, 21, 0, tzinfo=timezone.utc)


class RecordingSMTPHandler:
    """Collects every message an aiosmtpd server receives."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[Any]:
        """The received messages, parsed."""
        import email
        from email import policy

        return [
            email.message_from_bytes(e.original_content or e.content, policy=policy.default)
            for e in self.envelopes
        ]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_server() -> Any:
    """A real SMTP server on 127.0.0.1 (aiosmtpd); yields (handler, port)."""
    from aiosmtpd.controller import Controller

    handler = RecordingSMTPHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


SLACK_URL = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"
SLACK_WEBHOOK = "https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"
TEAMS_URL = "workflows://prod-12.westus.logic.azure.com:443/f0a1b2c3d4e5/Sig0123456789abcdefSecret"
TEAMS_ENDPOINT = (
    "https://prod-12.westus.logic.azure.com:443/workflows/f0a1b2c3d4e5/triggers/manual/paths/invoke"
)
