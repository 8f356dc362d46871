"""Deliver messages through a :class:`Sender`, one unit at a time, reporting each outcome.

One function, :func:`deliver`, serves the poll (which records each acceptance
as soon as it happens), the watcher's own alerts and ``test-notify``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from m365watch.errors import ConfigError, first_line
from m365watch.messages import Message
from m365watch.records import Unit


@dataclass(frozen=True)
class SendResult:
    """Whether a target accepted a message, and why not.

    ``config_error``: it was never sent, because the target's URL was refused as
    configuration (a usage error, exit 2, rather than a failed delivery).
    """

    ok: bool
    reason: str = ""
    config_error: bool = False


class Sender(Protocol):
    """Delivers a message to a named target (the Apprise adapter)."""

    def check(self) -> None:
        """Load every target's URLs; ConfigError naming a target whose URL is refused."""
        ...

    def send(self, target: str, message: Message, *, url: int | None = None) -> SendResult:
        """Send ``message`` to every URL of ``target`` (or only its ``url``-th, from 1)."""
        ...


@dataclass(frozen=True)
class Delivery:
    """One message sent (or tried) to one unit; a digest names all its items."""

    target: str  # the unit's label: "ops", or "ops#2" for one URL of several
    issue_id: str  # "EX1256020", or "EX1256020, MO1256311" for a digest
    title: str
    ok: bool
    reason: str = ""
    config_error: bool = False  # the target's URL was refused as configuration
    # What was sent (for outputs such as the Atom feed); not part of what a delivery is.
    message: Message | None = field(default=None, compare=False, repr=False)


def deliver(
    sender: Sender,
    messages: Sequence[tuple[Unit, Message]],
    *,
    on_result: Callable[[int, SendResult], None] | None = None,
) -> list[Delivery]:
    """Send each (unit, message) in order; ``on_result(i, result)`` right after each send.

    A URL Apprise refuses at send time fails that unit alone, with the reason.
    """
    deliveries = []
    for index, (unit, message) in enumerate(messages):
        try:
            result = sender.send(unit.target, message, url=unit.url)
        except ConfigError as error:
            result = SendResult(False, first_line(error), config_error=True)
        if on_result is not None:
            on_result(index, result)
        deliveries.append(
            Delivery(
                unit.label,
                ", ".join(message.issue_ids),
                message.title,
                *_fields(result),
                message=message,
            )
        )
    return deliveries


def _fields(result: SendResult) -> tuple[bool, str, bool]:
    return result.ok, result.reason, result.config_error
