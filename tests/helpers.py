"""Helpers shared by several test modules (no test module imports another)."""

from __future__ import annotations

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
