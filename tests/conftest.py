"""Shared fixtures only: a fixed clock and a real SMTP server.

Constants and plain helpers live in tests/helpers.py (no test module imports
conftest or another test module; tests/test_test_layout.py checks that).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from tests.helpers import free_port


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
