"""Helpers shared by several test modules (no test module imports another)."""

from __future__ import annotations

from typing import Any

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
